-- PUT /items/{sku}: set a quantity of 1..9 on an existing line.
dofile(os.getenv("BENCH_WRK") .. "/common.lua")

function gen(i)
    return wrk.format("PUT", string.format("%s/items/SKU-%d", path, i % skus + 1),
                      hdr(user(i * 7 + tid), true),
                      string.format('{"quantity":%d}', i % 9 + 1))
end
