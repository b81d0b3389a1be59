-- A cart's meta field: the coupon ('#c') or the shipping address ('#a').
-- ARGV[7] the field, ARGV[8] its new value ('' removes it), ARGV[9] the
-- version the caller priced the cart at ('' when it did not), ARGV[10]
-- the value the field must have now ('' any), ARGV[11] the response body
-- to replay for this Idempotency-Key ('' none).
-- -> {'ok', version, count, body} | {'cart_changed', version}
--    | {'not_set'} | the answers of idem_check() and precondition()

local r, v = begin()
if r then
    return r
end

if ARGV[9] ~= '' and tonumber(ARGV[9]) ~= v then
    return {'cart_changed', v}
end

local field, value = ARGV[7], ARGV[8]

if ARGV[10] ~= '' and redis.call('HGET', cart, field) ~= ARGV[10] then
    return {'not_set'}
end

if value == '' then
    redis.call('HDEL', cart, field)
else
    redis.call('HSET', cart, field, value)
end

return commit({'ok', 0, 0, ARGV[11]}, 0)
