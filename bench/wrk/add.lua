-- POST /items: one unit of one of the cart's SKUs (the line grows; the
-- cart keeps its lines, so get and add see the same carts).
dofile(os.getenv("BENCH_WRK") .. "/common.lua")

function gen(i)
    return add_req(user(i * 7 + tid), i % skus + 1)
end
