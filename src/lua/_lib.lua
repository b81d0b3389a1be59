-- Shared prologue of every cart write script (embed.sh prepends it).
--
-- KEYS[1] cart hash   cart:{owner}     sku -> "qty|price|seller|added_at",
--                                      plus meta fields, whose names start
--                                      with '#' (no SKU does): "#v" the
--                                      cart version, "#c" the coupon code,
--                                      "#a" the shipping address
-- KEYS[2] counter     cart_count:{owner}  total quantity (badge)
-- KEYS[3] activity    cart_activity:{<tag of the cart's slot>}  sorted set
--                                      owner -> time of the last write
-- KEYS[4] optional    idem:{owner}:<Idempotency-Key>
--                                      "<fingerprint>\n<json reply>", or
--                                      "<fingerprint>\n" while in flight;
--                                      given when ARGV[4] is not empty
-- KEYS[4 or 5...]     the script's own keys: own_key(1), own_key(2)
-- ARGV[1] now (unix seconds)   ARGV[2] TTL of cart and counter
-- ARGV[3] If-Match version or ''   ARGV[4] request fingerprint
-- ARGV[5] idempotency TTL          ARGV[6] '1' when the caller holds the
--                                          in-flight reservation of KEYS[4]
-- ARGV[7..] the script's own arguments
--
-- Every script answers an array whose first element says what happened:
-- 'ok', 'replay', or an error code the module maps to an HTTP status.

local cart, count, activity = KEYS[1], KEYS[2], KEYS[3]
local idem = ARGV[4] ~= '' and KEYS[4] or nil

local function own_key(n)
    return KEYS[(idem and 4 or 3) + n]
end

local now, ttl = ARGV[1], tonumber(ARGV[2])

local function parse_line(line)
    local qty, price, seller, added =
        string.match(line, '^(%d+)|(-?%d*)|([^|]*)|(%d+)$')
    return tonumber(qty), price, seller, added
end

local function make_line(qty, price, seller, added)
    return qty .. '|' .. price .. '|' .. seller .. '|' .. added
end

-- A stored answer is replayed, another request under the same key is
-- refused, and one whose first attempt has not finished is in flight.
local function idem_check()
    if not idem then
        return nil
    end
    local prev = redis.call('GET', idem)
    if not prev then
        return nil
    end
    local nl = string.find(prev, '\n', 1, true)
    if string.sub(prev, 1, nl - 1) ~= ARGV[4] then
        return {'idempotency_mismatch'}
    end
    local body = string.sub(prev, nl + 1)
    if body == '' then
        if ARGV[6] == '1' then
            return nil
        end
        return {'idempotency_in_flight'}
    end
    local reply = cjson.decode(body)
    reply[1] = 'replay'
    return reply
end

-- The number of lines: the fields that are not meta fields.
local META = {'#v', '#c', '#a'}
local function line_count()
    local n = redis.call('HLEN', cart)
    for _, f in ipairs(META) do
        n = n - redis.call('HEXISTS', cart, f)
    end
    return n
end

local function version()
    return tonumber(redis.call('HGET', cart, '#v') or '0')
end

local function precondition(v)
    if ARGV[3] ~= '' and tonumber(ARGV[3]) ~= v then
        return {'precondition_failed', v}
    end
    return nil
end

-- What every write checks first: a replay or a conflict of its
-- Idempotency-Key, then If-Match. -> the answer to return (or nil), and
-- the cart's version.
local function begin()
    local r = idem_check()
    if r then
        return r, 0
    end
    local v = version()
    return precondition(v), v
end

-- The counter is kept by increments; if it is missing while the cart
-- exists (expired apart, restored cart), it is rebuilt from the lines.
local function count_add(delta)
    if redis.call('EXISTS', count) == 1 then
        return redis.call('INCRBY', count, delta)
    end
    local fields = redis.call('HGETALL', cart)
    local total = 0
    for i = 1, #fields, 2 do
        if string.byte(fields[i]) ~= 35 then  -- '#': a meta field
            total = total + parse_line(fields[i + 1])
        end
    end
    redis.call('SET', count, total)
    return total
end

-- GET /stream: tells every worker of every node that follows this cart
-- (channel cart_events:{owner}, the cart's hash tag) its version and count.
local function publish(v, n)
    redis.call('PUBLISH', 'cart_events:' .. string.sub(cart, 6), v .. ' ' .. n)
end

-- Bumps the version, refreshes the TTLs, stamps the activity index (the
-- companion daemon finds idle carts there) and remembers the answer under
-- the idempotency key. reply[2] and reply[3] receive version and count.
local function commit(reply, delta)
    reply[2] = redis.call('HINCRBY', cart, '#v', 1)
    reply[3] = count_add(delta)
    publish(reply[2], reply[3])
    redis.call('EXPIRE', cart, ttl)
    redis.call('EXPIRE', count, ttl)
    redis.call('ZADD', activity, now, string.sub(cart, 7, -2))
    if idem then
        redis.call('SET', idem, ARGV[4] .. '\n' .. cjson.encode(reply),
                   'EX', ARGV[5])
    end
    return reply
end

