-- Redemption of one promotion by one checkout, on the promotion's own
-- slot (its keys share the hash tag {promo-<id>}); not a cart script:
--
-- KEYS[1] promo_use:{promo-<id>}   hash "n" -> redemptions,
--                                  "u:<owner>" -> the owner's redemptions
-- KEYS[2] promo_ck:{promo-<id>}:<checkout_id>   the owner, while the
--                                  checkout is remembered
-- ARGV[1] 'redeem' | 'release'   ARGV[2] the owner
-- ARGV[3] max_redemptions (0: none)   ARGV[4] max_per_user (0: none)
-- ARGV[5] how long the checkout is remembered (seconds)
--
-- A checkout is counted once however often it is retried; 'release'
-- gives back what a checkout that then failed had taken.
-- -> {'ok'} | {'coupon_exhausted'} | {'coupon_limit_reached'} | {'released'}

local use, ck, owner = KEYS[1], KEYS[2], ARGV[2]
local user = 'u:' .. owner

if ARGV[1] == 'release' then
    if redis.call('GET', ck) == owner then
        redis.call('HINCRBY', use, 'n', -1)
        redis.call('HINCRBY', use, user, -1)
        redis.call('DEL', ck)
    end
    return {'released'}
end

if redis.call('EXISTS', ck) == 1 then
    return {'ok'}
end

local max, per = tonumber(ARGV[3]), tonumber(ARGV[4])

if max > 0 and tonumber(redis.call('HGET', use, 'n') or '0') >= max then
    return {'coupon_exhausted'}
end

if per > 0 and tonumber(redis.call('HGET', use, user) or '0') >= per then
    return {'coupon_limit_reached'}
end

redis.call('HINCRBY', use, 'n', 1)
redis.call('HINCRBY', use, user, 1)
redis.call('SET', ck, owner, 'EX', ARGV[5])
return {'ok'}
