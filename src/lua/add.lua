-- POST /items: add ARGV[8] units of SKU ARGV[7] (an existing line grows
-- and keeps its price_at_add). ARGV[9] price in minor units ('' unknown),
-- ARGV[10] seller, ARGV[11] max lines, ARGV[12] max quantity per line.
-- -> {'ok', version, count, sku, qty, price, seller, added_at as stored}

local r = idem_check()
if r then
    return r
end

local sku, delta = ARGV[7], tonumber(ARGV[8])
local v, line, meta = version_line(sku)
r = precondition(v)
if r then
    return r
end

local qty, price, seller, added

if line then
    qty, price, seller, added = parse_line(line)
    qty = qty + delta
else
    local lines = line_count(meta)
    if lines >= tonumber(ARGV[11]) then
        return {'line_limit', lines}
    end
    qty, price, seller, added = delta, ARGV[9], ARGV[10], stamp(now)
end

if qty > tonumber(ARGV[12]) then
    return {'quantity_limit', qty - delta}
end

return commit_line({'ok', 0, 0, sku, qty, price, seller, added}, delta,
                   v, sku, make_line(qty, price, seller, added))
