-- Shared prologue of every cart write script (embed.sh prepends it).
--
-- KEYS[1] cart hash   cart:{owner}     sku -> "qty|price|seller|added_at",
--                                      added_at in base 36 (stamp()),
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

local now, ttl = ARGV[1], ARGV[2]

-- Numbers reach Redis as strings: redis.call() would turn a Lua number
-- into text with "%.14g", which costs more than the call it is passed to
-- (callgrind of Redis); integers are formatted with "%d" instead.
local function int(n)
    return string.format('%d', n)
end

local function parse_line(line)
    local qty, price, seller, added =
        string.match(line, '^(%d+)|(-?%d*)|([^|]*)|(%w+)$')
    return tonumber(qty), price, seller, added
end

-- added_at of a line: unix seconds in base 36, 6 characters until 2038
-- instead of 10 decimal digits, which keeps a 5-line cart in a smaller
-- Redis allocation. Lines written in decimal seconds before stay as they
-- are: line_time() reads both.
local function stamp(t)
    local digits, s = '0123456789abcdefghijklmnopqrstuvwxyz', ''
    t = tonumber(t)
    repeat
        local d = t % 36
        s = string.sub(digits, d + 1, d + 1) .. s
        t = (t - d) / 36
    until t == 0
    return s
end

-- -> the unix seconds of an added_at: 9 characters or more are decimal
-- seconds (a line written before base 36), fewer base 36; 0 if malformed
-- (as ngx_http_cart_line_time() in the module reads them)
local function line_time(added)
    if #added >= 9 then
        return tonumber(added) or 0
    end
    return tonumber(added, 36) or 0
end

local function make_line(qty, price, seller, added)
    return string.format('%d|%s|%s|%s', qty, price, seller, added)
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

local function version()
    return tonumber(redis.call('HGET', cart, '#v') or '0')
end

-- What a write of one line reads, in one call: the version, the line
-- (false if none), and how many meta fields ('#v', '#c', '#a') the cart
-- has, for line_count().
local function version_line(sku)
    local got = redis.call('HMGET', cart, sku, '#v', '#c', '#a')
    local meta = 0
    for i = 2, 4 do
        if got[i] then
            meta = meta + 1
        end
    end
    return tonumber(got[2] or '0'), got[1], meta
end

-- The number of lines: the fields that are not meta fields.
local function line_count(meta)
    return redis.call('HLEN', cart) - meta
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

-- The lines of an HGETALL of the cart: how many, and their total quantity
-- (meta fields skipped).
local function tally(fields)
    local lines, total = 0, 0
    for i = 1, #fields, 2 do
        if string.byte(fields[i]) ~= 35 then  -- '#': a meta field
            lines = lines + 1
            total = total + (parse_line(fields[i + 1]) or 0)
        end
    end
    return lines, total
end

-- The counter is kept by increments. INCRBY answering exactly delta means
-- it was 0 or missing (expired apart from the cart, a restored cart, a new
-- cart): then it is rebuilt from the lines, written already. An EXISTS on
-- every write cost more than this rare HGETALL.
-- -> the count, and true when the counter was made again (no TTL yet)
local function count_add(delta)
    local n = redis.call('INCRBY', count, int(delta))
    if n ~= delta then
        return n, false
    end
    local _, total = tally(redis.call('HGETALL', cart))
    if total ~= n then
        redis.call('SET', count, int(total))
    end
    return total, true
end

-- GET /stream: tells every worker of every node that follows this cart
-- (channel cart_events:{owner}, the cart's hash tag) its version and count.
local function publish(v, n)
    redis.call('PUBLISH', 'cart_events:' .. string.sub(cart, 6),
               int(v) .. ' ' .. int(n))
end

-- The TTLs of cart and counter and the activity index (the companion
-- daemon finds idle carts there) move once per TOUCH_STEP seconds of a
-- cart's life, not on every write: while the cart's TTL is within
-- TOUCH_STEP of the full ttl, one TTL read replaces two EXPIREs and the
-- ZADD (a third of the add's Redis work, docs/performance.md). A cart
-- thus lives at least ttl - TOUCH_STEP after its last write, and its
-- activity score is at most TOUCH_STEP older than that write. A counter
-- made again (force) has no TTL: then it is always written.
local TOUCH_STEP = 60

local function touch(force)
    if not force then
        local left, full = redis.call('TTL', cart), tonumber(ttl)
        if left > full - TOUCH_STEP and left <= full then
            return
        end
    end
    redis.call('EXPIRE', cart, ttl)
    redis.call('EXPIRE', count, ttl)
    redis.call('ZADD', activity, now, string.sub(cart, 7, -2))
end

-- Counter, TTLs and activity (touch()), the stream's message and the
-- answer remembered under the idempotency key.
local function finish(reply, delta)
    local fresh
    reply[3], fresh = count_add(delta)
    publish(reply[2], reply[3])
    touch(fresh)
    if idem then
        redis.call('SET', idem, ARGV[4] .. '\n' .. cjson.encode(reply),
                   'EX', ARGV[5])
    end
    return reply
end

-- Bumps the version, then finish(). reply[2] and reply[3] receive version
-- and count.
local function commit(reply, delta)
    reply[2] = redis.call('HINCRBY', cart, '#v', '1')
    return finish(reply, delta)
end

-- commit() for a script that read version v (version_line()): line sku
-- and the new version in one HSET; a line of nil is deleted.
local function commit_line(reply, delta, v, sku, line)
    reply[2] = v + 1
    if line then
        redis.call('HSET', cart, sku, line, '#v', int(reply[2]))
    else
        redis.call('HDEL', cart, sku)
        redis.call('HSET', cart, '#v', int(reply[2]))
    end
    return finish(reply, delta)
end
