-- The promotions admin API: create or delete a promotion. Every key has
-- the hash tag {promo}; not a cart script:
--
-- KEYS[1] promos:{promo}        hash id -> the promotion's JSON document
-- KEYS[2] promo_codes:{promo}   hash CODE -> id
-- KEYS[3] promo_seq:{promo}     the last id given
-- ARGV[1] 'create': ARGV[2] the code ('' automatic), ARGV[3] the document
--         without its opening '{' (the id is put in front of it here)
--         -> {'ok', id, document} | {'code_exists'}
-- ARGV[1] 'delete': ARGV[2] the id
--         -> {'ok', id, document} | {'promotion_not_found'}

local promos, codes, seq = KEYS[1], KEYS[2], KEYS[3]

if ARGV[1] == 'delete' then
    local id = ARGV[2]
    local doc = redis.call('HGET', promos, id)
    if not doc then
        return {'promotion_not_found'}
    end
    local code = cjson.decode(doc).code
    if code and redis.call('HGET', codes, code) == id then
        redis.call('HDEL', codes, code)
    end
    redis.call('HDEL', promos, id)
    return {'ok', id, doc}
end

local code = ARGV[2]
if code ~= '' and redis.call('HEXISTS', codes, code) == 1 then
    return {'code_exists'}
end

local id = tostring(redis.call('INCR', seq))
local doc = '{"id":"' .. id .. '",' .. ARGV[3]

redis.call('HSET', promos, id, doc)
if code ~= '' then
    redis.call('HSET', codes, code, id)
end

return {'ok', id, doc}
