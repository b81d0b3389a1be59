-- The alternative users would pick: the same cart API written for
-- OpenResty-style nginx + Lua (Debian's libnginx-mod-http-lua,
-- lua-nginx-redis = lua-resty-redis, lua-cjson), as a team would write it
-- in an afternoon: cjson in and out, a pooled cosocket to Redis, the very
-- same write scripts (`src/lua/embed.sh --lua src/lua add`, and set) by
-- EVALSHA, the same line format, ngx.location.capture(_multi) to the same
-- catalog location. What the benchmark compares: POST /items, GET /, GET /count,
-- PUT and DELETE /items/{sku}. Like the module, update and remove do not
-- ask the catalog; If-Match and Idempotency-Key are left out (the module
-- only looks at them when a request sends them, and wrk never does).

local redis = require "nginx.redis"
local cjson = require "cjson.safe"

local _M = {}

local conf = {
    host = "127.0.0.1", port = 6379, ttl = 2592000, idem_ttl = 86400,
    max_lines = 100, max_quantity = 99, currency = "USD",
}
-- name -> { text, sha } of each write script (written by run.sh)
local scripts = {}


local function hex(s)
    return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end


-- init_by_lua: settings, and the scripts' text from the files named in
-- opts.scripts (name -> path)
function _M.init(opts)
    for k, v in pairs(opts) do
        conf[k] = v
    end
    for name, path in pairs(conf.scripts) do
        local f = assert(io.open(path))
        local text = f:read("*a")
        f:close()
        scripts[name] = { text = text, sha = hex(ngx.sha1_bin(text)) }
    end
end


-- Debian's lua-cjson encodes an empty table as {}: empty arrays are
-- named in "arrays" and spliced in as [].
local function send(status, doc, version, arrays)
    ngx.status = status
    ngx.header["Content-Type"] = "application/json"
    -- as the module: an answer cached at an edge would be another's cart
    ngx.header["Cache-Control"] = "no-store"
    if version then
        ngx.header["ETag"] = '"' .. version .. '"'
    end
    local extra = ""
    for _, name in ipairs(arrays or {}) do
        if next(doc[name]) == nil then
            doc[name] = nil
            extra = extra .. ',"' .. name .. '":[]'
        end
    end
    local body = cjson.encode(doc)
    if extra ~= "" then
        body = body:sub(1, -2) .. extra .. "}"
    end
    -- a length, as the module sends, rather than chunks
    ngx.header["Content-Length"] = #body
    ngx.print(body)
    return ngx.exit(status)
end


local function fail(status, code, message)
    return send(status, { error = { code = code, message = message } })
end


local function valid_id(s, max)
    return type(s) == "string" and #s > 0 and #s <= max
           and not s:find("[^%w._:-]")
end


local function owner()
    local user = ngx.var.http_x_user_id
    if not user or user == "" then
        return fail(401, "unauthorized", "sign in to use the cart")
    end
    if not valid_id(user, 128) then
        return fail(401, "invalid_identity", "the user id is not acceptable")
    end
    return "user-" .. user
end


local function connect()
    local red = redis:new()
    red:set_timeout(1000)
    local ok, err = red:connect(conf.host, conf.port)
    if not ok then
        ngx.log(ngx.ERR, "peer redis: ", err)
        return fail(503, "store_unavailable", "the cart store is unavailable")
    end
    return red
end


local function release(red)
    red:set_keepalive(60000, 512)
end


-- 29.99 -> 2999 (cjson decodes numbers to doubles)
local function minor(price)
    if type(price) ~= "number" or price < 0 then
        return nil
    end
    return math.floor(price * 100 + 0.5)
end


local function amount(m)
    m = tonumber(m)
    if not m then
        return cjson.null
    end
    return m / 100
end


local function catalog_doc(res)
    if res.status == 404 then
        return nil, "unknown"
    end
    if res.status ~= 200 then
        return nil, "failed"
    end
    local doc = cjson.decode(res.body)
    if type(doc) ~= "table" or not minor(doc.price) then
        return nil, "failed"
    end
    return doc
end


local answers = {
    precondition_failed = { 412, "If-Match does not match the cart's version" },
    line_limit = { 422, "the cart has reached its maximum number of lines" },
    quantity_limit = { 422, "the line would exceed the maximum quantity per line" },
    line_not_found = { 404, "this SKU is not in the cart" },
}


-- One write script by EVALSHA (EVAL when Redis lost it) with the shared
-- arguments of src/lua/_lib.lua, then the script's own; the answer of
-- add.lua and set.lua alike: the line after the write.
local function write(own, name, ...)
    local s = scripts[name]
    local red = connect()
    -- KEYS[3], the activity index: one set stands for the module's
    -- per-slot sets on this single Redis (as bench/run.sh fills it)
    local args = { 3, "cart:{" .. own .. "}", "cart_count:{" .. own .. "}",
                   "cart_activity:{bench}", ngx.time(), conf.ttl, "", "",
                   conf.idem_ttl, "0", ... }
    local res, err = red:evalsha(s.sha, unpack(args))
    if not res and err and err:find("NOSCRIPT", 1, true) then
        res, err = red:eval(s.text, unpack(args))
    end
    if not res then
        ngx.log(ngx.ERR, "peer redis: ", err)
        return fail(503, "store_unavailable", "the cart store is unavailable")
    end
    release(red)

    if res[1] ~= "ok" then
        local a = answers[res[1]] or { 500, "internal error" }
        return fail(a[1], res[1], a[2])
    end

    return send(200, {
        cart_id = "cart:" .. own,
        item_count = res[3],
        item = { sku_id = res[4], quantity = tonumber(res[5]),
                 price = amount(res[6]), seller_id = res[7] },
        version = res[2],
    }, res[2])
end


-- the JSON object of a write's body; as the module, only application/json
local function json_body()
    local ctype = ngx.var.content_type
    if not ctype or ctype:sub(1, 16):lower() ~= "application/json" then
        return fail(415, "unsupported_media_type", "the body must be application/json")
    end
    ngx.req.read_body()
    local body = cjson.decode(ngx.req.get_body_data() or "")
    -- cjson gives arrays as tables too: one with an element 1 is no object
    if type(body) ~= "table" or body[1] ~= nil then
        return fail(400, "invalid_json", "the body must be a JSON object")
    end
    return body
end


-- "quantity" of a body: an integer in [min, max_quantity]
local function quantity(body, min)
    local qty = body.quantity
    if type(qty) ~= "number" or qty % 1 ~= 0 then
        return fail(400, "invalid_field", "quantity is required and must be an integer")
    end
    if qty < min or qty > conf.max_quantity then
        return fail(422, "quantity_out_of_range",
                    "quantity must be between " .. min .. " and cart_max_quantity")
    end
    return qty
end


local function invalid_sku()
    return fail(400, "invalid_sku", "sku_id must be 1-64 characters of A-Z a-z 0-9 . _ : -")
end


-- POST /items
function _M.add(catalog)
    local own = owner()
    local body = json_body()

    local sku, seller = body.sku_id, body.seller_id or ""
    if type(sku) ~= "string" then
        return fail(400, "invalid_field", "sku_id is required and must be a string")
    end
    if not valid_id(sku, 64) then
        return invalid_sku()
    end
    local qty = quantity(body, 1)

    local price = ""
    if catalog then
        local doc, err = catalog_doc(ngx.location.capture("/_catalog/" .. sku))
        if err == "unknown" then
            return fail(422, "unknown_sku", "the catalog has no such SKU")
        elseif err then
            return fail(503, "catalog_unavailable", "the price could not be verified, retry later")
        end
        price = minor(doc.price)
        if type(doc.seller_id) == "string" and doc.seller_id ~= "" then
            seller = doc.seller_id
        end
    end

    return write(own, "add", sku, qty, price, seller, conf.max_lines,
                 conf.max_quantity)
end


-- PUT /items/{sku} {"quantity"} (0 removes the line), DELETE /items/{sku}:
-- set.lua, as the module runs it for both
function _M.line()
    local method = ngx.req.get_method()
    if method ~= "PUT" and method ~= "DELETE" then
        ngx.header["Allow"] = "PUT, DELETE"
        return fail(405, "method_not_allowed", "this method is not allowed here")
    end
    local sku = ngx.var.sku
    if not valid_id(sku, 64) then
        return invalid_sku()
    end
    local own = owner()
    local qty = 0
    if method == "PUT" then
        qty = quantity(json_body(), 0)
    end
    return write(own, "set", sku, qty)
end


-- GET /count: the counter key alone
function _M.count()
    local own = owner()
    local red = connect()
    local n, err = red:get("cart_count:{" .. own .. "}")
    if not n then
        ngx.log(ngx.ERR, "peer redis: ", err)
        return fail(503, "store_unavailable", "the cart store is unavailable")
    end
    release(red)
    return send(200, { item_count = tonumber(n) or 0 })
end


-- the line format of src/lua/_lib.lua
local function parse_line(line)
    local qty, price, seller, added =
        line:match("^(%d+)|(-?%d*)|([^|]*)|(%w+)$")
    if not qty then
        return nil
    end
    return tonumber(qty), tonumber(price), seller, tonumber(added, 36)
end


-- GET /
function _M.view(catalog)
    local own = owner()
    local red = connect()
    local fields, err = red:hgetall("cart:{" .. own .. "}")
    if not fields then
        ngx.log(ngx.ERR, "peer redis: ", err)
        return fail(503, "store_unavailable", "the cart store is unavailable")
    end
    release(red)

    local items, version = {}, 0
    for i = 1, #fields, 2 do
        local f, v = fields[i], fields[i + 1]
        if f == "#v" then
            version = tonumber(v)
        elseif f:sub(1, 1) ~= "#" then
            local qty, price, seller, added = parse_line(v)
            if qty then
                items[#items + 1] = { sku_id = f, quantity = qty, price = price,
                                      seller_id = seller, added = added }
            end
        end
    end

    local docs = {}
    if catalog and #items > 0 then
        local reqs = {}
        for i, it in ipairs(items) do
            reqs[i] = { "/_catalog/" .. it.sku_id }
        end
        local res = { ngx.location.capture_multi(reqs) }
        for i = 1, #items do
            local doc, e = catalog_doc(res[i])
            docs[i] = doc or e
        end
    end

    local out, warnings, count, subtotal = {}, {}, 0, 0
    for i, it in ipairs(items) do
        count = count + it.quantity
        if it.price then
            subtotal = subtotal + it.quantity * it.price
        end
        local o = {
            sku_id = it.sku_id, quantity = it.quantity,
            price_at_add = amount(it.price), seller_id = it.seller_id,
            added_at = os.date("!%Y-%m-%dT%H:%M:%SZ", it.added),
        }
        local doc = docs[i]
        if type(doc) == "table" then
            local cur = minor(doc.price)
            o.current_price = cur / 100
            o.price_changed = it.price ~= nil and cur ~= it.price
            o.name = doc.name
            o.seller = doc.seller_id or it.seller_id
            o.image = doc.image
            if it.price and cur > it.price then
                warnings[#warnings + 1] = { code = "price_increased", sku_id = it.sku_id,
                    message = "the price went up since the item was added" }
            elseif it.price and cur < it.price then
                warnings[#warnings + 1] = { code = "price_decreased", sku_id = it.sku_id,
                    message = "the price went down since the item was added" }
            end
        elseif doc == "unknown" then
            o.available = false
            warnings[#warnings + 1] = { code = "unavailable", sku_id = it.sku_id,
                message = "this item is no longer sold" }
        elseif doc == "failed" then
            o.price_verified = false
            warnings[#warnings + 1] = { code = "price_unverified", sku_id = it.sku_id,
                message = "the current price could not be checked" }
        end
        out[i] = o
    end

    return send(200, {
        cart_id = "cart:" .. own, items = out, item_count = count,
        subtotal = subtotal / 100, currency = conf.currency, version = version,
        warnings = warnings,
    }, version, { "items", "warnings" })
end


return _M
