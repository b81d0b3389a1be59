-- POST /saved/{sku}/move: moves line ARGV[7] of the saved list own_key(1)
-- back into the cart in one step. It keeps its price_at_add (the cart
-- view and checkout compare it with the catalog) and gets a new added_at;
-- a line already in the cart grows. ARGV[8] max lines, ARGV[9] max
-- quantity per line.
-- -> {'ok', version, count, sku, qty, price, seller, added_at (seconds)}

local r = idem_check()
if r then
    return r
end

local saved, sku = own_key(1), ARGV[7]
local v, cur, meta = version_line(sku)
r = precondition(v)
if r then
    return r
end

local line = redis.call('HGET', saved, sku)

if not line then
    return {'saved_not_found'}
end

local moved, price, seller = parse_line(line)
local qty, added = moved, nil

if cur then
    local have
    have, price, seller, added = parse_line(cur)
    qty = have + moved
else
    local lines = line_count(meta)
    if lines >= tonumber(ARGV[8]) then
        return {'line_limit', lines}
    end
    added = stamp(now)
end

if qty > tonumber(ARGV[9]) then
    return {'quantity_limit', qty - moved}
end

redis.call('HDEL', saved, sku)

return commit_line({'ok', 0, 0, sku, qty, price, seller, line_time(added)},
                   moved, v, sku, make_line(qty, price, seller, added))
