-- Grants the campaign subsidy to one order at most once, never overspending the budget.
-- KEYS[1] budget, KEYS[2] uses of this user, KEYS[3] this order's grant, KEYS[4] ledger stream
-- ARGV[1] discount, ARGV[2] max uses per user, ARGV[3] order id, ARGV[4] user id
-- Returns {granted fen, budget left fen}
local granted = redis.call('GET', KEYS[3])
if granted then
  -- 'released': this order's subsidy was given back
  return {tonumber(granted) or 0, tonumber(redis.call('GET', KEYS[1]) or '0')}
end
local discount = tonumber(ARGV[1])
local uses = tonumber(redis.call('GET', KEYS[2]) or '0')
local budget = tonumber(redis.call('GET', KEYS[1]) or '0')
if uses >= tonumber(ARGV[2]) or budget < discount then
  redis.call('SET', KEYS[3], '0')
  return {0, budget}
end
redis.call('DECRBY', KEYS[1], discount)
redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[3], tostring(discount))
redis.call('XADD', KEYS[4], '*', 'type', 'subsidy_granted', 'order', ARGV[3], 'user', ARGV[4],
  'amount', tostring(discount))
return {discount, budget - discount}
