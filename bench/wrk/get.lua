-- GET / of a cart (also the ceiling and /count, by BENCH_PATH).
dofile(os.getenv("BENCH_WRK") .. "/common.lua")

function gen(i)
    return get_req(user(i * 7 + tid))
end
