-- Moves a payment on, at most once per order:
--   AUTHORIZED -> CAPTURED (money taken) or VOIDED (hold released);
--   CAPTURED   -> REFUNDED (the captured money back to the wallet, and the day's spend given back).
-- A void never undoes a capture (only a refund does); anything else is left as it is and answered with
-- the status that stands, so a repeat gets the first answer.
-- KEYS[1] wallet hash, KEYS[2] payment hash, KEYS[3] ledger stream
-- ARGV[1] target status (CAPTURED | VOIDED | REFUNDED), ARGV[2] order id,
-- ARGV[3] ledger MAXLEN (approximate; 0 keeps every entry), ARGV[4] seconds a settled payment record is kept
local status = redis.call('HGET', KEYS[2], 'status')
local amount = tonumber(redis.call('HGET', KEYS[2], 'amount') or '0')
local target = ARGV[1]
-- Releasing money also gives back the day's spend (same hash tag as the wallet, so the same slot), while
-- that day's counter is kept: a counter that expired is not brought back (negative, without a TTL).
local day_key = redis.call('HGET', KEYS[2], 'day_key')
local function release_day()
  if day_key and redis.call('EXISTS', day_key) == 1 then
    redis.call('HINCRBY', day_key, 'spent', -amount)
  end
end
-- The ledger entry, with the wallet's totals after it (see authorize.lua), and the record's new status,
-- which starts its TTL: a settled record is kept ARGV[4] seconds, then expires.
local function settle(new_status, kind)
  redis.call('HSET', KEYS[2], 'status', new_status)
  redis.call('EXPIRE', KEYS[2], ARGV[4])
  local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
  local after = redis.call('HMGET', KEYS[1], 'balance', 'held', 'spent')
  local entry = {'type', kind, 'order', ARGV[2], 'amount', tostring(amount), 'seq', tostring(seq),
    'balance', after[1], 'held', after[2], 'spent', after[3]}
  if tonumber(ARGV[3]) > 0 then
    redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], '*', unpack(entry))
  else
    redis.call('XADD', KEYS[3], '*', unpack(entry))
  end
  return {new_status, tostring(amount)}
end
if status == 'AUTHORIZED' and target == 'CAPTURED' then
  redis.call('HINCRBY', KEYS[1], 'held', -amount)
  redis.call('HINCRBY', KEYS[1], 'spent', amount)
  return settle('CAPTURED', 'capture')
end
if status == 'AUTHORIZED' and target == 'VOIDED' then
  redis.call('HINCRBY', KEYS[1], 'held', -amount)
  redis.call('HINCRBY', KEYS[1], 'balance', amount)
  release_day()
  return settle('VOIDED', 'void')
end
if status == 'CAPTURED' and target == 'REFUNDED' then
  redis.call('HINCRBY', KEYS[1], 'spent', -amount)
  redis.call('HINCRBY', KEYS[1], 'balance', amount)
  release_day()
  return settle('REFUNDED', 'refund')
end
return {status or 'NONE', tostring(amount)}
