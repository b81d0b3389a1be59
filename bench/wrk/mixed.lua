-- Reads and writes 3:1: three GET / for each POST /items, same carts.
dofile(os.getenv("BENCH_WRK") .. "/common.lua")

function gen(i)
    local u = user(i * 7 + tid)
    if i % 4 == 3 then
        return add_req(u, i % skus + 1)
    end
    return get_req(u)
end
