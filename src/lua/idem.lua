-- Reserve (ARGV[7] = 'reserve'), store into (ARGV[7] = 'store') or
-- release (ARGV[7] = 'release') the idempotency key of a write that must
-- wait for an upstream, or another slot, before its own step runs. A
-- reservation lives ARGV[8] ms (as long as the request may still write:
-- ngx_http_cart_stored_reserve()), so a request that failed or a worker
-- that died mid-way does not block the key for the idempotency TTL.
-- -> {'reserved'} | {'stored'} | {'released'} | the answers of idem_check()

-- 'store' keeps ARGV[8], the answer of a write made outside a script
-- (POST /share makes its link on the token's slot), for replays; only
-- while this request still holds the reservation.
if ARGV[7] == 'store' then
    if redis.call('GET', idem) == ARGV[4] .. '\n' then
        redis.call('SET', idem,
                   ARGV[4] .. '\n' .. cjson.encode({'ok', -1, 0, ARGV[8]}),
                   'EX', ARGV[5])
    end
    return {'stored'}
end

if ARGV[7] == 'release' then
    if redis.call('GET', idem) == ARGV[4] .. '\n' then
        redis.call('DEL', idem)
    end
    return {'released'}
end

local r = idem_check()
if r then
    return r
end

redis.call('SET', idem, ARGV[4] .. '\n', 'PX', ARGV[8], 'NX')
return {'reserved'}
