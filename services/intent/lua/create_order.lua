-- Creates the order-status document once. KEYS[1] order hash, KEYS[2] history list
-- ARGV[1] user id, ARGV[2] text, ARGV[3] locale, ARGV[4] at, ARGV[5] trace id, ARGV[6] ttl seconds
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1], 'user_id', ARGV[1], 'text', ARGV[2], 'locale', ARGV[3], 'created_at', ARGV[4],
  'trace_id', ARGV[5], 'status', 'ACCEPTED', 'rank', '10')
redis.call('RPUSH', KEYS[2], 'ACCEPTED|' .. ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[6])
redis.call('EXPIRE', KEYS[2], ARGV[6])
return 1
