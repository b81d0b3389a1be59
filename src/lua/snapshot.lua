-- The start of a write that must price the cart first (POST /coupons,
-- POST /checkout): answers a replay or a conflict of its Idempotency-Key
-- at once, checks If-Match, reserves the key (30 s: a checkout spans
-- several upstream waves) and
-- returns the cart as it is now.
-- -> {'cart', field, value, ...} | the answers of idem_check()
--    | {'precondition_failed', version}

local r = begin()
if r then
    return r
end

if idem then
    redis.call('SET', idem, ARGV[4] .. '\n', 'EX', 30, 'NX')
end

local reply = redis.call('HGETALL', cart)
table.insert(reply, 1, 'cart')
return reply
