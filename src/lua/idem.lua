-- Reserve (ARGV[7] = 'reserve') or release (ARGV[7] = 'release') the
-- idempotency key of a write that must wait for an upstream before its
-- own script runs. A reservation lives 30 s at most, so a worker that
-- died mid-request does not block the key for the whole idempotency TTL.
-- -> {'reserved'} | {'released'} | the answers of idem_check()

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

redis.call('SET', idem, ARGV[4] .. '\n', 'EX', 30, 'NX')
return {'reserved'}
