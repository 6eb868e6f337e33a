-- Holds an order's amount on the payer's wallet, at most once per order.
-- The user's per-day limit is checked and counted in the same step, so concurrent orders can't pass it.
-- KEYS[1] wallet hash, KEYS[2] payment hash, KEYS[3] ledger stream, KEYS[4] today's spend hash
-- ARGV[1] amount, ARGV[2] order id, ARGV[3] user id, ARGV[4] authorization id, ARGV[5] per-day limit,
-- ARGV[6] ledger MAXLEN (approximate; 0 keeps every entry), ARGV[7] seconds a settled payment record is kept
local status = redis.call('HGET', KEYS[2], 'status')
if status then
  return {status, redis.call('HGET', KEYS[2], 'amount'), redis.call('HGET', KEYS[2], 'authorization_id') or ''}
end
local amount = tonumber(ARGV[1])
-- A refusal is settled at once: its record expires (it only answers redeliveries the same way).
local function refuse(why)
  redis.call('HSET', KEYS[2], 'status', why, 'amount', ARGV[1], 'user', ARGV[3])
  redis.call('EXPIRE', KEYS[2], ARGV[7])
  return {why, ARGV[1], ''}
end
local balance = tonumber(redis.call('HGET', KEYS[1], 'balance') or '-1')
if balance < 0 then
  return refuse('NO_WALLET')
end
local today = tonumber(redis.call('HGET', KEYS[4], 'spent') or '0')
if today + amount > tonumber(ARGV[5]) then
  return refuse('OVER_DAILY_LIMIT')
end
if balance < amount then
  return refuse('DECLINED')
end
redis.call('HINCRBY', KEYS[1], 'balance', -amount)
redis.call('HINCRBY', KEYS[1], 'held', amount)
redis.call('HINCRBY', KEYS[4], 'spent', amount)
redis.call('EXPIRE', KEYS[4], 3 * 86400)
redis.call('HSET', KEYS[2], 'status', 'AUTHORIZED', 'amount', ARGV[1], 'user', ARGV[3],
  'authorization_id', ARGV[4], 'day_key', KEYS[4])
-- Each ledger entry carries the wallet's totals after it and a sequence number, so a trimmed ledger
-- still proves the wallet: reconcile replays what is kept from the first kept entry's totals.
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
local after = redis.call('HMGET', KEYS[1], 'balance', 'held', 'spent')
local entry = {'type', 'authorize', 'order', ARGV[2], 'amount', ARGV[1], 'seq', tostring(seq),
  'balance', after[1], 'held', after[2], 'spent', after[3]}
if tonumber(ARGV[6]) > 0 then
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[6], '*', unpack(entry))
else
  redis.call('XADD', KEYS[3], '*', unpack(entry))
end
return {'AUTHORIZED', ARGV[1], ARGV[4]}
