-- Applies a list of lines to the cart: step 2 of POST /merge (the
-- guest's claimed lines, on the user's slot) and POST /shared/{t}/copy.
--
-- own_key(1), for a merge: merged:{owner}:<merge id>, the answer of the
--         merge once applied; a second apply of the same merge (a retry,
--         a concurrent request) answers it again and changes nothing
-- ARGV[7] 'apply', or 'check' (only Idempotency-Key and If-Match)
-- ARGV[8] strategy for a SKU in both: 'max', 'sum' or 'guest' (the
--         incoming line wins)
-- ARGV[9] max lines  ARGV[10] max quantity  ARGV[11] TTL of own_key(1)
-- ARGV[12..] sku, line, sku, line, ... ("qty|price|seller|added_at"),
--         or "!<reason>|<qty>" for a line the caller left out (reported
--         in adjusted, so that a replay reports it too)
--
-- Incoming lines are taken oldest first, so the ones left out by the line
-- limit are the newest. A line over the max quantity is capped.
-- -> {'ok' | 'replay' | 'done', version, count, applied, conflicts,
--     adjusted, lines}, adjusted = {{sku, requested, quantity, reason}, ...}
--    with reason 'quantity_capped' or 'line_limit' (quantity 0), and
--    lines = {{sku, qty, price, seller}, ...}, the lines applied as they
--    are now

local r = idem_check()
if r then
    return r
end

local marker = own_key(1)

if marker then
    local done = redis.call('GET', marker)
    if done then
        r = cjson.decode(done)
        r[1] = 'done'
        return r
    end
end

local v = version()
r = precondition(v)
if r then
    return r
end

if ARGV[7] == 'check' then
    return {'ok'}
end

local strategy = ARGV[8]
local maxl, maxq = tonumber(ARGV[9]), tonumber(ARGV[10])

local todo, adjusted = {}, {}
for i = 12, #ARGV - 1, 2 do
    local q, p, s, a = parse_line(ARGV[i + 1])
    local reason, left = string.match(ARGV[i + 1], '^!([%a_]+)|(%d+)$')
    if reason then
        adjusted[#adjusted + 1] = {ARGV[i], tonumber(left), 0, reason}
    elseif q then
        todo[#todo + 1] = {sku = ARGV[i], q = q, p = p, s = s, a = a,
                           t = line_time(a)}
    end
end
table.sort(todo, function(x, y)
    if x.t ~= y.t then
        return x.t < y.t
    end
    return x.sku < y.sku
end)

local cur, nlines = {}, 0
local fields = redis.call('HGETALL', cart)
for i = 1, #fields, 2 do
    if string.sub(fields[i], 1, 1) ~= '#' then
        cur[fields[i]] = fields[i + 1]
        nlines = nlines + 1
    end
end

-- plan every line first: nothing is written if any line is malformed
local writes, now_lines = {}, {}
local applied, conflicts, delta = 0, 0, 0

for _, g in ipairs(todo) do
    local line, q, new = cur[g.sku], nil, nil
    if line then
        local uq, up, us, ua = parse_line(line)
        if strategy == 'sum' then
            q = uq + g.q
        elseif strategy == 'guest' then
            q = g.q
        else
            q = math.max(uq, g.q)
        end
        conflicts = conflicts + 1
        if q > maxq then
            adjusted[#adjusted + 1] = {g.sku, q, maxq, 'quantity_capped'}
            q = maxq
        end
        if strategy == 'guest' then
            new = make_line(q, g.p, g.s, g.a)
        else
            new = make_line(q, up, us, ua)
        end
        delta = delta + q - uq
    elseif nlines >= maxl then
        adjusted[#adjusted + 1] = {g.sku, g.q, 0, 'line_limit'}
    else
        q = g.q
        if q > maxq then
            adjusted[#adjusted + 1] = {g.sku, q, maxq, 'quantity_capped'}
            q = maxq
        end
        new = make_line(q, g.p, g.s, g.a)
        nlines = nlines + 1
        delta = delta + q
    end
    if new then
        local _, np, ns = parse_line(new)
        applied = applied + 1
        now_lines[#now_lines + 1] = {g.sku, q, np, ns}
        if new ~= line then
            writes[#writes + 1] = g.sku
            writes[#writes + 1] = new
        end
        cur[g.sku] = new
    end
end

r = {'ok', v, 0, applied, conflicts, adjusted, now_lines}

if #writes > 0 then
    redis.call('HSET', cart, unpack(writes))
    commit(r, delta)
else
    r[3] = tonumber(redis.call('GET', count) or '0')
    if idem then
        redis.call('SET', idem, ARGV[4] .. '\n' .. cjson.encode(r),
                   'EX', ARGV[5])
    end
end

if marker then
    redis.call('SET', marker, cjson.encode(r), 'EX', ARGV[11])
end

return r
