-- Moves an authorization to CAPTURED (money taken) or VOIDED (hold released), at most once.
-- A capture that is later undone becomes REFUNDED. Anything else is left as it is.
-- KEYS[1] wallet hash, KEYS[2] payment hash, KEYS[3] ledger stream
-- ARGV[1] target status (CAPTURED | VOIDED), ARGV[2] order id
local status = redis.call('HGET', KEYS[2], 'status')
local amount = tonumber(redis.call('HGET', KEYS[2], 'amount') or '0')
local target = ARGV[1]
-- Releasing money also gives back the day's spend (same hash tag as the wallet, so the same slot).
local day_key = redis.call('HGET', KEYS[2], 'day_key')
local function release_day()
  if day_key then
    redis.call('HINCRBY', day_key, 'spent', -amount)
  end
end
if status == 'AUTHORIZED' and target == 'CAPTURED' then
  redis.call('HINCRBY', KEYS[1], 'held', -amount)
  redis.call('HINCRBY', KEYS[1], 'spent', amount)
  redis.call('HSET', KEYS[2], 'status', 'CAPTURED')
  redis.call('XADD', KEYS[3], '*', 'type', 'capture', 'order', ARGV[2], 'amount', tostring(amount))
  return {'CAPTURED', tostring(amount)}
end
if status == 'AUTHORIZED' and target == 'VOIDED' then
  redis.call('HINCRBY', KEYS[1], 'held', -amount)
  redis.call('HINCRBY', KEYS[1], 'balance', amount)
  release_day()
  redis.call('HSET', KEYS[2], 'status', 'VOIDED')
  redis.call('XADD', KEYS[3], '*', 'type', 'void', 'order', ARGV[2], 'amount', tostring(amount))
  return {'VOIDED', tostring(amount)}
end
if status == 'CAPTURED' and target == 'VOIDED' then
  redis.call('HINCRBY', KEYS[1], 'spent', -amount)
  redis.call('HINCRBY', KEYS[1], 'balance', amount)
  release_day()
  redis.call('HSET', KEYS[2], 'status', 'REFUNDED')
  redis.call('XADD', KEYS[3], '*', 'type', 'refund', 'order', ARGV[2], 'amount', tostring(amount))
  return {'REFUNDED', tostring(amount)}
end
return {status or 'NONE', tostring(amount)}
