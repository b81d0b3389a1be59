-- POST /merge, steps 1 and 3, on the guest's slot (the user's cart is on
-- another slot: apply.lua is step 2).
--
-- KEYS[1] cart:{guest-<s>}  KEYS[2] cart_count:{guest-<s>}
-- KEYS[3] merge:{guest-<s>}, the claim: the guest's lines plus '#to' (the
--         owner merging) and '#id' (the merge id)
-- ARGV[1] now  ARGV[2] the claim's TTL  ARGV[3..6] unused
-- ARGV[7] 'claim' or 'done'  ARGV[8] owner merging  ARGV[9] merge id
--
-- claim: the guest cart becomes the claim, atomically, unless a claim
-- exists already (a merge that did not finish, or one running now): then
-- that one is answered, so every caller applies the same lines under the
-- same id.  -> {'claimed', id, sku, line, ...} | {'empty'}
--             | {'merge_conflict'} (claimed by another owner)
-- done: deletes the claim if it still is merge ARGV[9]  -> {'done'}

local claim, to, id = KEYS[3], ARGV[8], ARGV[9]

if ARGV[7] == 'done' then
    if redis.call('HGET', claim, '#id') == id then
        redis.call('DEL', claim)
    end
    return {'done'}
end

if redis.call('EXISTS', claim) == 0 then
    if redis.call('EXISTS', cart) == 0 then
        return {'empty'}
    end
    redis.call('RENAME', cart, claim)
    redis.call('DEL', count)
    redis.call('HSET', claim, '#to', to, '#id', id)
    redis.call('EXPIRE', claim, ttl)
    publish(0, 0)  -- the guest's cart is gone, version and all
elseif redis.call('HGET', claim, '#to') ~= to then
    return {'merge_conflict'}
end

local reply = {'claimed', redis.call('HGET', claim, '#id')}
local fields = redis.call('HGETALL', claim)

for i = 1, #fields, 2 do
    if string.sub(fields[i], 1, 1) ~= '#' then
        reply[#reply + 1] = fields[i]
        reply[#reply + 1] = fields[i + 1]
    end
end

return reply
