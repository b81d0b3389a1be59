-- POST /items/{sku}/save: moves line ARGV[7] from the cart to the saved
-- list own_key(1) (saved:{owner}, same hash tag) in one step. A SKU saved
-- already grows, up to ARGV[10] (max quantity); a new one needs room
-- (ARGV[9], max lines of the list). ARGV[8] is the list's TTL.
-- -> {'ok', version, count, sku, saved qty, price, seller, saved_at (seconds)}

local r = idem_check()
if r then
    return r
end

local saved, sku = own_key(1), ARGV[7]
local v, line = version_line(sku)
r = precondition(v)
if r then
    return r
end

if not line then
    return {'line_not_found'}
end

local qty, price, seller = parse_line(line)
local moved = qty
local prev = redis.call('HGET', saved, sku)

if prev then
    qty = math.min(qty + parse_line(prev), tonumber(ARGV[10]))
elseif redis.call('HLEN', saved) >= tonumber(ARGV[9]) then
    return {'saved_limit'}
end

redis.call('HSET', saved, sku, make_line(qty, price, seller, stamp(now)))
redis.call('EXPIRE', saved, ARGV[8])

return commit_line({'ok', 0, 0, sku, qty, price, seller, now}, -moved,
                   v, sku, nil)
