-- Holds an order's amount on the payer's wallet, at most once per order.
-- The user's per-day limit is checked and counted in the same step, so concurrent orders can't pass it.
-- KEYS[1] wallet hash, KEYS[2] payment hash, KEYS[3] ledger stream, KEYS[4] today's spend hash
-- ARGV[1] amount, ARGV[2] order id, ARGV[3] user id, ARGV[4] authorization id, ARGV[5] per-day limit
local status = redis.call('HGET', KEYS[2], 'status')
if status then
  return {status, redis.call('HGET', KEYS[2], 'amount'), redis.call('HGET', KEYS[2], 'authorization_id') or ''}
end
local amount = tonumber(ARGV[1])
local balance = tonumber(redis.call('HGET', KEYS[1], 'balance') or '-1')
if balance < 0 then
  redis.call('HSET', KEYS[2], 'status', 'NO_WALLET', 'amount', ARGV[1], 'user', ARGV[3])
  return {'NO_WALLET', ARGV[1], ''}
end
local today = tonumber(redis.call('HGET', KEYS[4], 'spent') or '0')
if today + amount > tonumber(ARGV[5]) then
  redis.call('HSET', KEYS[2], 'status', 'OVER_DAILY_LIMIT', 'amount', ARGV[1], 'user', ARGV[3])
  return {'OVER_DAILY_LIMIT', ARGV[1], ''}
end
if balance < amount then
  redis.call('HSET', KEYS[2], 'status', 'DECLINED', 'amount', ARGV[1], 'user', ARGV[3])
  return {'DECLINED', ARGV[1], ''}
end
redis.call('HINCRBY', KEYS[1], 'balance', -amount)
redis.call('HINCRBY', KEYS[1], 'held', amount)
redis.call('HINCRBY', KEYS[4], 'spent', amount)
redis.call('EXPIRE', KEYS[4], 3 * 86400)
redis.call('HSET', KEYS[2], 'status', 'AUTHORIZED', 'amount', ARGV[1], 'user', ARGV[3],
  'authorization_id', ARGV[4], 'day_key', KEYS[4])
redis.call('XADD', KEYS[3], '*', 'type', 'authorize', 'order', ARGV[2], 'amount', ARGV[1])
return {'AUTHORIZED', ARGV[1], ARGV[4]}
