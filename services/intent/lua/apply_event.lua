-- Applies one order event to the status document. Status moves only forward (by rank) and never
-- leaves a terminal status (except COMPLETED, which moves on to REFUND_PENDING and REFUNDED); each
-- section (plan, payment, fulfilment) keeps its most advanced version.
-- Idempotent: the same event applied again changes nothing (a history entry "STATUS|at" is added
-- once), so the projection needs no de-duplication keys. Returns 1 when anything changed.
-- KEYS[1] order hash, KEYS[2] history list
-- ARGV[1] status or '', ARGV[2] rank, ARGV[3] at, ARGV[4] reason, ARGV[5] update channel,
-- then triples: section name, section rank, section JSON
-- An event for an order this projection never opened (a stray or hostile record, or a document lost
-- with Redis) still builds a document, but one that expires like every order document.
local fresh = redis.call('EXISTS', KEYS[1]) == 0
local current = tonumber(redis.call('HGET', KEYS[1], 'rank') or '0')
local changed = 0
if ARGV[1] ~= '' then
  local entry = ARGV[1] .. '|' .. ARGV[3]
  if not redis.call('LPOS', KEYS[2], entry) then
    redis.call('RPUSH', KEYS[2], entry)
    changed = 1
  end
  -- Past a terminal status (rank 100) only a completed order moves on, to its refund statuses.
  local now = redis.call('HGET', KEYS[1], 'status')
  if tonumber(ARGV[2]) > current and (current < 100 or now == 'COMPLETED' or now == 'REFUND_PENDING') then
    redis.call('HSET', KEYS[1], 'status', ARGV[1], 'rank', ARGV[2])
    if ARGV[4] ~= '' then
      redis.call('HSET', KEYS[1], 'reason', ARGV[4])
    end
    changed = 1
  end
end
for i = 6, #ARGV, 3 do
  local held = tonumber(redis.call('HGET', KEYS[1], ARGV[i] .. ':rank') or '-1')
  if tonumber(ARGV[i + 1]) > held or (tonumber(ARGV[i + 1]) == held and
      redis.call('HGET', KEYS[1], ARGV[i]) ~= ARGV[i + 2]) then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 2], ARGV[i] .. ':rank', ARGV[i + 1])
    changed = 1
  end
end
if fresh then
  redis.call('EXPIRE', KEYS[1], 2592000)
  redis.call('EXPIRE', KEYS[2], 2592000)
end
if changed == 1 then
  redis.call('PUBLISH', ARGV[5], ARGV[1])
end
return changed
