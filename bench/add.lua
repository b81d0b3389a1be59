-- wrk: POST /items, one SKU per request out of five, spread over 1000 users
-- so that lines stay under cart_max_quantity.
local n = 0
request = function()
    n = n + 1
    local body = string.format('{"sku_id":"SKU-%d","quantity":1}', n % 5 + 1)
    local headers = {
        ["Content-Type"] = "application/json",
        ["X-User-Id"] = "bench-" .. (n % 1000),
    }
    return wrk.format("POST", (os.getenv("CART_PATH") or "/nocatalog") .. "/items", headers, body)
end
