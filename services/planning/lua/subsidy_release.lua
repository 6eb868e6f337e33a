-- Gives an order's subsidy back to the budget (order rejected, declined, failed or cancelled), once.
-- KEYS[1] budget, KEYS[2] uses of this user, KEYS[3] this order's grant, KEYS[4] ledger stream
-- ARGV[1] order id, ARGV[2] user id
local granted = tonumber(redis.call('GET', KEYS[3]) or '0') or 0
if granted <= 0 then
  return 0
end
redis.call('INCRBY', KEYS[1], granted)
redis.call('DECR', KEYS[2])
redis.call('SET', KEYS[3], 'released')
redis.call('XADD', KEYS[4], '*', 'type', 'subsidy_released', 'order', ARGV[1], 'user', ARGV[2],
  'amount', tostring(granted))
return granted
