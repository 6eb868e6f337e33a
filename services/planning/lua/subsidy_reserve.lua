-- Grants the campaign subsidy to one order at most once, never overspending the budget.
-- KEYS[1] budget, KEYS[2] uses of this user, KEYS[3] this order's grant, KEYS[4] ledger stream,
-- KEYS[5] ledger sequence
-- ARGV[1] discount, ARGV[2] max uses per user, ARGV[3] order id, ARGV[4] user id, ARGV[5] grant ttl (s),
-- ARGV[6] ledger MAXLEN (approximate; 0 keeps every entry)
-- Returns {granted fen, budget left fen}
local granted = redis.call('GET', KEYS[3])
if granted then
  -- 'released': this order's subsidy was given back, or the release came first and left a tombstone
  -- (the order was cancelled before it was planned): either way nothing is granted again
  return {tonumber(granted) or 0, tonumber(redis.call('GET', KEYS[1]) or '0')}
end
local discount = tonumber(ARGV[1])
local uses = tonumber(redis.call('GET', KEYS[2]) or '0')
local budget = tonumber(redis.call('GET', KEYS[1]) or '0')
if uses >= tonumber(ARGV[2]) or budget < discount then
  redis.call('SET', KEYS[3], '0', 'EX', ARGV[5])
  return {0, budget}
end
local left = redis.call('DECRBY', KEYS[1], discount)
local used = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[3], tostring(discount), 'EX', ARGV[5])
-- Each ledger entry carries a sequence number and the campaign's budget left and this user's use count
-- after it, so a trimmed ledger still proves the budget: reconcile replays what is kept from the first
-- kept entry's totals. The sequence starts after the entries already there (written before it existed,
-- never trimmed), so it numbers every entry the stream ever had.
if redis.call('EXISTS', KEYS[5]) == 0 then
  redis.call('SET', KEYS[5], redis.call('XLEN', KEYS[4]))
end
local seq = redis.call('INCR', KEYS[5])
local entry = {'type', 'subsidy_granted', 'order', ARGV[3], 'user', ARGV[4], 'amount', tostring(discount),
  'seq', tostring(seq), 'budget', tostring(left), 'uses', tostring(used)}
if tonumber(ARGV[6]) > 0 then
  redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[6], '*', unpack(entry))
else
  redis.call('XADD', KEYS[4], '*', unpack(entry))
end
return {discount, left}
