-- Records the user's answer to an order waiting for confirmation, once.
-- KEYS[1] order hash; ARGV[1] 'confirmed' | 'cancelled'
-- Returns {1, status} when the answer stands (new, or the same answer again), else {0, why}.
local status = redis.call('HGET', KEYS[1], 'status')
if not status then
  return {0, 'missing'}
end
local decided = redis.call('HGET', KEYS[1], 'decision')
if decided then
  if decided == ARGV[1] then
    return {1, status}
  end
  return {0, 'already ' .. decided}
end
if status ~= 'AWAITING_CONFIRMATION' then
  return {0, status}
end
redis.call('HSET', KEYS[1], 'decision', ARGV[1])
return {1, status}
