-- wrk: GET of a 5-line cart, over the 1000 users the add run filled.
local n = 0
request = function()
    n = n + 1
    return wrk.format("GET", os.getenv("CART_PATH") or "/nocatalog",
                      { ["X-User-Id"] = "bench-" .. (n % 1000) })
end
