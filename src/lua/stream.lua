-- GET /stream: the cart's version and count, read together (KEYS[1] the
-- cart, KEYS[2] its counter), and with ARGV[1] > 0 its fields when it has
-- at most ARGV[1] lines, so that an event carries the cart in this same
-- round trip.
-- -> {version, count}                       ARGV[1] '0'
--    | {version, count, 'cart', field, value, ...}
--    | {version, count, 'omitted'}          more lines than ARGV[1]

local limit = tonumber(ARGV[1]) or 0
local reply = {version(), tonumber(redis.call('GET', count) or '0')}

if limit <= 0 then
    return reply
end

-- HLEN first: a cart far over the limit is never copied whole; the meta
-- fields ('#v', '#c', '#a') are at most 3
if redis.call('HLEN', cart) > limit + 3 then
    reply[3] = 'omitted'
    return reply
end

local fields = redis.call('HGETALL', cart)

if tally(fields) > limit then
    reply[3] = 'omitted'
    return reply
end

reply[3] = 'cart'
for i = 1, #fields do
    reply[3 + i] = fields[i]
end
return reply
