-- PUT /items/{sku} and DELETE /items/{sku}: set the quantity of an
-- existing line to ARGV[8] (already checked against cart_max_quantity);
-- 0 removes it.
-- -> {'ok', version, count, sku, qty, price, seller, added_at as stored}

local r = idem_check()
if r then
    return r
end

local sku, qty = ARGV[7], tonumber(ARGV[8])
local v, line = version_line(sku)
r = precondition(v)
if r then
    return r
end

if not line then
    return {'line_not_found'}
end

local old, price, seller, added = parse_line(line)

if qty ~= 0 then
    line = make_line(qty, price, seller, added)
else
    line = nil
end

return commit_line({'ok', 0, 0, sku, qty, price, seller, added}, qty - old,
                   v, sku, line)
