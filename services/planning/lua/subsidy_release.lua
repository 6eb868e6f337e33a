-- Gives an order's subsidy back to the budget (order rejected, declined, failed or cancelled), once.
-- KEYS[1] budget, KEYS[2] uses of this user, KEYS[3] this order's grant, KEYS[4] ledger stream,
-- KEYS[5] ledger sequence
-- ARGV[1] order id, ARGV[2] user id, ARGV[3] grant ttl (s), ARGV[4] ledger MAXLEN (approximate; 0 keeps
-- every entry)
local grant = redis.call('GET', KEYS[3])
local granted = tonumber(grant or '0') or 0
if granted <= 0 then
  if not grant then
    -- Nothing reserved (yet): the release overtook the reserve (an order cancelled on one replica
    -- while another plans it). The tombstone makes a reserve that comes later grant nothing.
    redis.call('SET', KEYS[3], 'released', 'EX', ARGV[3])
  end
  return 0
end
local left = redis.call('INCRBY', KEYS[1], granted)
local used = redis.call('DECR', KEYS[2])
redis.call('SET', KEYS[3], 'released', 'EX', ARGV[3])
-- The ledger entry, with the sequence number and the totals after it (see subsidy_reserve.lua).
if redis.call('EXISTS', KEYS[5]) == 0 then
  redis.call('SET', KEYS[5], redis.call('XLEN', KEYS[4]))
end
local seq = redis.call('INCR', KEYS[5])
local entry = {'type', 'subsidy_released', 'order', ARGV[1], 'user', ARGV[2], 'amount', tostring(granted),
  'seq', tostring(seq), 'budget', tostring(left), 'uses', tostring(used)}
if tonumber(ARGV[4]) > 0 then
  redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[4], '*', unpack(entry))
else
  redis.call('XADD', KEYS[4], '*', unpack(entry))
end
return granted
