-- DELETE /saved/{sku}: drops line ARGV[7] of the saved list own_key(1).
-- The cart is not changed: no version bump, If-Match does not apply.
-- -> {'ok', version, count, sku, qty, price, seller, saved_at (seconds)}

local r = idem_check()
if r then
    return r
end

local saved, sku = own_key(1), ARGV[7]
local line = redis.call('HGET', saved, sku)

if not line then
    return {'saved_not_found'}
end

redis.call('HDEL', saved, sku)

local qty, price, seller, at = parse_line(line)
r = {'ok', version(), tonumber(redis.call('GET', count) or '0'),
     sku, qty, price, seller, line_time(at)}

if idem then
    redis.call('SET', idem, ARGV[4] .. '\n' .. cjson.encode(r), 'EX', ARGV[5])
end

return r
