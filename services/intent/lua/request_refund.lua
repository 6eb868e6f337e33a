-- Marks a COMPLETED order REFUND_PENDING, once: the one place where two refund requests meet.
-- KEYS[1] order hash, KEYS[2] history list
-- ARGV[1] requested by ("user:<id>" | "operator:<id>"), ARGV[2] reason, ARGV[3] at, ARGV[4] update channel,
-- ARGV[5] the status's rank
-- Returns {outcome, status, requested_at, requested_by, reason}; outcome is
-- 'new' (marked now), 'exists' (asked for before: the same answer), 'not_refundable' or 'missing'.
local status = redis.call('HGET', KEYS[1], 'status')
if not status then
  return {'missing', '', '', '', ''}
end
local at = redis.call('HGET', KEYS[1], 'refund_requested_at')
if at then
  return {'exists', status, at, redis.call('HGET', KEYS[1], 'refund_requested_by') or '',
    redis.call('HGET', KEYS[1], 'refund_reason') or ''}
end
if status == 'REFUND_PENDING' or status == 'REFUNDED' then
  -- refunded before the document kept who asked (e.g. a projection rebuilt from the events)
  return {'exists', status, '', '', ''}
end
if status ~= 'COMPLETED' then
  return {'not_refundable', status, '', '', ''}
end
redis.call('HSET', KEYS[1], 'status', 'REFUND_PENDING', 'rank', ARGV[5], 'refund_requested_by', ARGV[1],
  'refund_reason', ARGV[2], 'refund_requested_at', ARGV[3], 'reason', 'refund requested: ' .. ARGV[2])
local entry = 'REFUND_PENDING|' .. ARGV[3]
if not redis.call('LPOS', KEYS[2], entry) then
  redis.call('RPUSH', KEYS[2], entry)
end
redis.call('PUBLISH', ARGV[4], 'REFUND_PENDING')
return {'new', 'REFUND_PENDING', ARGV[3], ARGV[1], ARGV[2]}
