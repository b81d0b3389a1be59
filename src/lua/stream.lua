-- GET /stream: the cart's version and count, read together (KEYS[1] the
-- cart, KEYS[2] its counter; no ARGV).
-- -> {version, count}

return {version(), tonumber(redis.call('GET', count) or '0')}
