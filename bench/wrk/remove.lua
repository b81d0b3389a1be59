-- DELETE /items/{sku} of lines that exist: users r<thread>-<n> of the
-- remove set, filled before the run (BENCH_USERS per thread, BENCH_SKUS
-- lines), each line deleted once: the cycle is every line of the set.
-- Running past them gives 404s, which run.sh reports as non-2xx.
dofile(os.getenv("BENCH_WRK") .. "/common.lua")

cycle = users * skus

function gen(i)
    return wrk.format("DELETE",
                      string.format("%s/items/SKU-%d", path, math.floor(i / users) + 1),
                      hdr(string.format("r%d-%d", tid, i % users)))
end
