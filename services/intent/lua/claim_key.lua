-- Client idempotency keys (agentic-checkout semantics).
-- KEYS[1] key hash; ARGV[1] request fingerprint, ARGV[2] candidate order id, ARGV[3] now ms,
-- ARGV[4] ttl seconds, ARGV[5] ms after which an unfinished claim may be taken over
-- Returns {outcome, order id}: new | done | in_flight | retry | conflict
local fingerprint = redis.call('HGET', KEYS[1], 'fingerprint')
if not fingerprint then
  redis.call('HSET', KEYS[1], 'fingerprint', ARGV[1], 'order_id', ARGV[2], 'state', 'pending', 'at', ARGV[3])
  redis.call('EXPIRE', KEYS[1], ARGV[4])
  return {'new', ARGV[2]}
end
local order_id = redis.call('HGET', KEYS[1], 'order_id')
if fingerprint ~= ARGV[1] then
  return {'conflict', order_id}
end
if redis.call('HGET', KEYS[1], 'state') == 'done' then
  return {'done', order_id}
end
if tonumber(ARGV[3]) - tonumber(redis.call('HGET', KEYS[1], 'at')) > tonumber(ARGV[5]) then
  redis.call('HSET', KEYS[1], 'at', ARGV[3])
  return {'retry', order_id}
end
return {'in_flight', order_id}
