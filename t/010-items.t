# The cart's lines: add, view, count, update, remove — the happy paths,
# with prices from the catalog.

use lib 't/lib';
use CartTest;
use CartConf;

plan 'no_plan';
no_shuffle();
add_block_preprocessor(\&CartConf::default_config);

run_tests();

__DATA__

=== TEST 1: add an item: the price comes from the catalog, not the client
--- init
redis_cmd('DEL', 'cart:{user-i1}', 'cart_count:{user-i1}');
--- request
POST /api/v1/cart/items
{"sku_id":"SKU-1","quantity":2,"price":0.01}
--- more_headers
X-User-Id: i1
Content-Type: application/json
--- error_code: 200
--- response_headers
Content-Type: application/json
ETag: "1"
--- response_body chomp
{"cart_id":"cart:user-i1","item_count":2,"item":{"sku_id":"SKU-1","quantity":2,"price":29.99,"seller_id":"seller-1"},"version":1}



=== TEST 2: adding the same SKU again increments the line
--- init
redis_cmd('DEL', 'cart:{user-i2}', 'cart_count:{user-i2}');
--- request eval
["POST /api/v1/cart/items\n{\"sku_id\":\"SKU-1\",\"quantity\":1}",
 "POST /api/v1/cart/items\n{\"sku_id\":\"SKU-1\",\"quantity\":3}",
 "GET /api/v1/cart/count"]
--- more_headers
X-User-Id: i2
Content-Type: application/json
--- response_body eval
['{"cart_id":"cart:user-i2","item_count":1,"item":{"sku_id":"SKU-1","quantity":1,"price":29.99,"seller_id":"seller-1"},"version":1}',
 '{"cart_id":"cart:user-i2","item_count":4,"item":{"sku_id":"SKU-1","quantity":4,"price":29.99,"seller_id":"seller-1"},"version":2}',
 '{"item_count":4}']



=== TEST 3: the cart view: lines, subtotal, item_count, version, catalog annotations
--- init
redis_cmd('DEL', 'cart:{user-i3}', 'cart_count:{user-i3}');
--- request eval
["POST /api/v1/cart/items\n{\"sku_id\":\"SKU-1\",\"quantity\":2}",
 "POST /api/v1/cart/items\n{\"sku_id\":\"SKU-2\",\"quantity\":3,\"seller_id\":\"seller-9\"}",
 "GET /api/v1/cart"]
--- more_headers
X-User-Id: i3
Content-Type: application/json
--- response_headers eval
[{}, {}, {'ETag' => '"2"'}]
--- response_body_like eval
['"version":1', '"seller_id":"seller-2"',
 '^\{"cart_id":"cart:user-i3","items":\[\{"sku_id":"SKU-1","quantity":2,"price_at_add":29.99,"seller_id":"seller-1","added_at":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ","current_price":29.99,"price_changed":false,"name":"Wireless Mouse","seller":"seller-1","image":"https://cdn.example.com/sku-1.jpg"\},\{"sku_id":"SKU-2","quantity":3,"price_at_add":5.00,"seller_id":"seller-2","added_at":"[^"]+","current_price":5.00,"price_changed":false,"name":"Mouse Pad","seller":"seller-2","image":""\}\],"item_count":5,"subtotal":74.98,"currency":"USD","version":2,"warnings":\[\],"sellers":\[\{"seller_id":"seller-1","item_count":2,"subtotal":59.98,"price_adjustment":0.00,"discount":0.00,"shipping":0.00,"estimated_total":59.98\},\{"seller_id":"seller-2","item_count":3,"subtotal":15.00,"price_adjustment":0.00,"discount":0.00,"shipping":0.00,"estimated_total":15.00\}\],"promotions_applied":\[\],"coupon":null,"shipping_address":null,"shipping":\[\],"price_adjustment":0.00,"discount":0.00,"shipping_total":0.00,"estimated_total":74.98\}$']



=== TEST 4: an empty cart
--- init
redis_cmd('DEL', 'cart:{user-i4}', 'cart_count:{user-i4}');
--- request eval
["GET /api/v1/cart", "GET /api/v1/cart/count", "GET /api/v1/cart/"]
--- more_headers
X-User-Id: i4
--- response_body eval
['{"cart_id":"cart:user-i4","items":[],"item_count":0,"subtotal":0.00,"currency":"USD","version":0,"warnings":[],"sellers":[],"promotions_applied":[],"coupon":null,"shipping_address":null,"shipping":[],"price_adjustment":0.00,"discount":0.00,"shipping_total":0.00,"estimated_total":0.00}',
 '{"item_count":0}',
 '{"cart_id":"cart:user-i4","items":[],"item_count":0,"subtotal":0.00,"currency":"USD","version":0,"warnings":[],"sellers":[],"promotions_applied":[],"coupon":null,"shipping_address":null,"shipping":[],"price_adjustment":0.00,"discount":0.00,"shipping_total":0.00,"estimated_total":0.00}']



=== TEST 5: PUT sets the quantity, 0 removes the line
--- init
redis_cmd('DEL', 'cart:{user-i5}', 'cart_count:{user-i5}');
--- request eval
["POST /api/v1/cart/items\n{\"sku_id\":\"SKU-1\",\"quantity\":2}",
 "POST /api/v1/cart/items\n{\"sku_id\":\"SKU-3\",\"quantity\":1}",
 "PUT /api/v1/cart/items/SKU-1\n{\"quantity\":7}",
 "PUT /api/v1/cart/items/SKU-3\n{\"quantity\":0}",
 "GET /api/v1/cart/count"]
--- more_headers
X-User-Id: i5
Content-Type: application/json
--- response_body eval
['{"cart_id":"cart:user-i5","item_count":2,"item":{"sku_id":"SKU-1","quantity":2,"price":29.99,"seller_id":"seller-1"},"version":1}',
 '{"cart_id":"cart:user-i5","item_count":3,"item":{"sku_id":"SKU-3","quantity":1,"price":0.99,"seller_id":"seller-1"},"version":2}',
 '{"cart_id":"cart:user-i5","item_count":8,"item":{"sku_id":"SKU-1","quantity":7,"price":29.99,"seller_id":"seller-1"},"version":3}',
 '{"cart_id":"cart:user-i5","item_count":7,"item":{"sku_id":"SKU-3","quantity":0,"price":0.99,"seller_id":"seller-1"},"version":4}',
 '{"item_count":7}']



=== TEST 6: DELETE removes the line
--- init
redis_cmd('DEL', 'cart:{user-i6}', 'cart_count:{user-i6}');
--- request eval
["POST /api/v1/cart/items\n{\"sku_id\":\"SKU-2\",\"quantity\":4}",
 "DELETE /api/v1/cart/items/SKU-2",
 "GET /api/v1/cart"]
--- more_headers
X-User-Id: i6
Content-Type: application/json
--- response_body eval
['{"cart_id":"cart:user-i6","item_count":4,"item":{"sku_id":"SKU-2","quantity":4,"price":5.00,"seller_id":"seller-2"},"version":1}',
 '{"cart_id":"cart:user-i6","item_count":0,"item":{"sku_id":"SKU-2","quantity":0,"price":5.00,"seller_id":"seller-2"},"version":2}',
 '{"cart_id":"cart:user-i6","items":[],"item_count":0,"subtotal":0.00,"currency":"USD","version":2,"warnings":[],"sellers":[],"promotions_applied":[],"coupon":null,"shipping_address":null,"shipping":[],"price_adjustment":0.00,"discount":0.00,"shipping_total":0.00,"estimated_total":0.00}']



=== TEST 7: without a catalog the price is unknown (null) and the client's seller is kept
--- init
redis_cmd('DEL', 'cart:{user-i7}', 'cart_count:{user-i7}');
--- request eval
["POST /nocatalog/items\n{\"sku_id\":\"ANY-SKU\",\"quantity\":1,\"seller_id\":\"s-7\",\"price\":1.00}",
 "GET /nocatalog"]
--- more_headers
X-User-Id: i7
Content-Type: application/json
--- response_body_like eval
['^\{"cart_id":"cart:user-i7","item_count":1,"item":\{"sku_id":"ANY-SKU","quantity":1,"price":null,"seller_id":"s-7"\},"version":1\}$',
 '^\{"cart_id":"cart:user-i7","items":\[\{"sku_id":"ANY-SKU","quantity":1,"price_at_add":null,"seller_id":"s-7","added_at":"[^"]+"\}\],"item_count":1,"subtotal":0.00,"currency":"USD","version":1,"warnings":\[\],"sellers":\[\{"seller_id":"s-7","item_count":1,"subtotal":0.00,"price_adjustment":0.00,"discount":0.00,"shipping":0.00,"estimated_total":0.00\}\],"promotions_applied":\[\],"coupon":null,"shipping_address":null,"shipping":\[\],"price_adjustment":0.00,"discount":0.00,"shipping_total":0.00,"estimated_total":0.00\}$']



=== TEST 8: price changes since the add are flagged, not applied to the subtotal
--- init
redis_cmd('DEL', 'cart:{user-i8}', 'cart_count:{user-i8}');
redis_cmd('HSET', 'cart:{user-i8}', 'SKU-1', '1|2500|seller-1|1764547200', 'SKU-2', '2|600|seller-2|1764547200', '#v', '3');
--- request
GET /api/v1/cart
--- more_headers
X-User-Id: i8
--- response_body_like chomp
"price_at_add":25.00,"seller_id":"seller-1","added_at":"2025-12-01T00:00:00Z","current_price":29.99,"price_changed":true,.*"price_at_add":6.00,.*"current_price":5.00,"price_changed":true,.*"item_count":3,"subtotal":37.00,.*"warnings":\[\{"code":"price_increased","sku_id":"SKU-1","message":"[^"]+"\},\{"code":"price_decreased","sku_id":"SKU-2","message":"[^"]+"\}\]



=== TEST 8b: added_at stored in decimal seconds (lines written before base 36) or in base 36 renders alike
--- init
redis_cmd('DEL', 'cart:{user-i8b}', 'cart_count:{user-i8b}');
redis_cmd('HSET', 'cart:{user-i8b}', 'SKU-1', '1|2999|seller-1|1764547200',
          'SKU-2', '1|500|seller-2|t6kdc0', 'SKU-3', '1|99|seller-1|1764547X00', '#v', '1');
--- request
GET /nocatalog/
--- more_headers
X-User-Id: i8b
--- response_body_like chomp
^\{"cart_id":"cart:user-i8b","items":\[\{"sku_id":"SKU-1","quantity":1,"price_at_add":29.99,"seller_id":"seller-1","added_at":"2025-12-01T00:00:00Z"\},\{"sku_id":"SKU-2","quantity":1,"price_at_add":5.00,"seller_id":"seller-2","added_at":"2025-12-01T00:00:00Z"\}\],"item_count":2,
--- error_log
skipping malformed line "SKU-3"



=== TEST 9: lines the catalog cannot price are flagged unverified or unavailable
--- init
redis_cmd('DEL', 'cart:{user-i9}', 'cart_count:{user-i9}');
redis_cmd('HSET', 'cart:{user-i9}', 'SKU-DOWN', '1|100|s|1764547200', 'SKU-GARBAGE', '1|100|s|1764547200', 'SKU-GONE', '1|100|s|1764547200', 'SKU-NOPRICE', '1|100|s|1764547200', '#v', '1');
--- request
GET /api/v1/cart
--- more_headers
X-User-Id: i9
--- error_code: 200
--- response_body_like chomp
"sku_id":"SKU-DOWN",[^}]*"price_verified":false\}.*"sku_id":"SKU-GARBAGE",[^}]*"price_verified":false\}.*"sku_id":"SKU-GONE",[^}]*"available":false\}.*"sku_id":"SKU-NOPRICE",[^}]*"price_verified":false\}.*"subtotal":4.00,.*"warnings":\[\{"code":"price_unverified","sku_id":"SKU-DOWN",[^}]+\},\{"code":"price_unverified","sku_id":"SKU-GARBAGE",[^}]+\},\{"code":"unavailable","sku_id":"SKU-GONE",[^}]+\},\{"code":"price_unverified","sku_id":"SKU-NOPRICE",[^}]+\}\]



=== TEST 10: HEAD of the cart
--- request
HEAD /api/v1/cart/count
--- more_headers
X-User-Id: i10
--- response_headers
Content-Type: application/json
--- response_body
