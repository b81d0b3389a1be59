-- Shared by every workload of bench/run.sh (loaded with dofile).
--
-- Environment: BENCH_PATH  location prefix (/n no catalog, /c catalog,
--                          /peer/n, /peer/c, /ceiling)
--              BENCH_USERS how many users the carts are spread over
--              BENCH_SKUS  lines per cart (SKU-1 .. SKU-<n>)
--              BENCH_UPREFIX  prefix of the user ids (cost-growth carts)
--              BENCH_STRIDE   step between the users of consecutive
--                             requests (growth: spread them over a million
--                             carts, not the first few thousand)
--              BENCH_SKU_BASE SKU-<base + k> is a cart's line k
-- Users are 12-digit ids, the shape redis-benchmark gives __rand_int__,
-- so that the Redis-only runs address the same carts.

path = os.getenv("BENCH_PATH") or "/n"
users = tonumber(os.getenv("BENCH_USERS") or "1000")
skus = tonumber(os.getenv("BENCH_SKUS") or "5")
uprefix = os.getenv("BENCH_UPREFIX") or ""
stride = tonumber(os.getenv("BENCH_STRIDE") or "1")
sku_base = tonumber(os.getenv("BENCH_SKU_BASE") or "0")

local threads = {}

function setup(thread)
    thread:set("tid", #threads)
    table.insert(threads, thread)
end

n = 0

-- Requests are built once per thread in init() (gen(i) for i = 0 ..
-- cycle - 1) and replayed in a cycle: wrk shares a CPU with Redis, and a
-- request built in Lua for each send would cost it more than the server.
cycle = 5000
reqs = {}

function init(args)
    for i = 0, cycle - 1 do
        reqs[i + 1] = gen(i)
    end
end

function request()
    n = n + 1
    return reqs[(n - 1) % cycle + 1]
end

function user(i)
    return uprefix .. string.format("%012d", (i * stride) % users)
end

function hdr(u, with_body)
    local h = { ["X-User-Id"] = u }
    if with_body then
        h["Content-Type"] = "application/json"
    end
    return h
end

function get_req(u)
    return wrk.format("GET", path, hdr(u))
end

function add_req(u, k)
    return wrk.format("POST", path .. "/items", hdr(u, true),
                      string.format('{"sku_id":"SKU-%d","quantity":1}',
                                    sku_base + k))
end

-- One machine-readable line for run.sh; wrk's own summary goes to stderr.
function done(summary, latency, requests)
    local e = summary.errors
    io.write(string.format(
        "RESULT requests=%d duration_us=%d p50=%d p99=%d p999=%d " ..
        "non2xx=%d errors=%d\n",
        summary.requests, summary.duration,
        latency:percentile(50), latency:percentile(99),
        latency:percentile(99.9), e.status,
        e.connect + e.read + e.write + e.timeout))
end
