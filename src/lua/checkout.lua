-- POST /checkout, the last step: the cart priced at version ARGV[7]
-- becomes an order. Its lines and coupon are removed (the address stays
-- for the next order), the counter drops to 0, and the summary ARGV[8] is
-- the answer an Idempotency-Key replays.
-- -> {'ok', version, count, summary} | {'cart_changed', version}
--    | the answers of idem_check() and precondition()

local r, v = begin()
if r then
    return r
end

if tonumber(ARGV[7]) ~= v then
    return {'cart_changed', v}
end

local fields = redis.call('HGETALL', cart)
for i = 1, #fields, 2 do
    if string.byte(fields[i]) ~= 35 then  -- '#': a meta field
        redis.call('HDEL', cart, fields[i])
    end
end
redis.call('HDEL', cart, '#c')
redis.call('SET', count, 0)

return commit({'ok', 0, 0, ARGV[8]}, 0)
