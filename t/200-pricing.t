# The cart view priced: catalog annotations for every price case, stock,
# per-seller subtotals, price_adjustment and estimated_total, and what
# happens when an upstream fails, times out or answers garbage. The fake
# shop is t/lib/CartShop.pm.

use lib 't/lib';
use CartTest;
use CartShop;

plan 'no_plan';
no_shuffle();
add_block_preprocessor(\&CartShop::prepare);

run_tests();

__DATA__

=== TEST 1: every price case: equal, lower, higher, unknown at add; one wave of lookups
A-1 kept its price, A-2 went from 6.00 to 5.00, C-1 from 90.00 to
100.00, B-2 had no price when added. subtotal stays at price_at_add;
price_adjustment brings it to today's prices. Catalog and inventory for
the four lines and the promotions are looked up at once (9 pending).
--- init
CartShop::reset_promotions();
CartShop::cart('p1', [['A-1', 2, 2999, 'seller-a'], ['A-2', 2, 600, 'seller-a'],
                      ['C-1', 1, 9000, 'seller-c'], ['B-2', 1, '', 'seller-b']]);
--- request
GET /api/v1/cart
--- more_headers
X-User-Id: p1
--- response_headers
ETag: "1"
--- response_body chomp
{"cart_id":"cart:user-p1","items":[{"sku_id":"A-1","quantity":2,"price_at_add":29.99,"seller_id":"seller-a","added_at":"2025-12-01T00:00:00Z","current_price":29.99,"price_changed":false,"name":"Wireless Mouse","seller":"seller-a","image":"https://cdn.example.com/a-1.jpg","in_stock":true},{"sku_id":"A-2","quantity":2,"price_at_add":6.00,"seller_id":"seller-a","added_at":"2025-12-01T00:00:00Z","current_price":5.00,"price_changed":true,"name":"Mouse Pad","seller":"seller-a","image":"","in_stock":true},{"sku_id":"C-1","quantity":1,"price_at_add":90.00,"seller_id":"seller-c","added_at":"2025-12-01T00:00:00Z","current_price":100.00,"price_changed":true,"name":"Keyboard","seller":"seller-c","image":"","in_stock":true},{"sku_id":"B-2","quantity":1,"price_at_add":null,"seller_id":"seller-b","added_at":"2025-12-01T00:00:00Z","current_price":12.50,"price_changed":false,"name":"Cable","seller":"seller-b","image":"","in_stock":true}],"item_count":6,"subtotal":161.98,"currency":"USD","version":1,"warnings":[{"code":"price_decreased","sku_id":"A-2","message":"the price went down since the item was added"},{"code":"price_increased","sku_id":"C-1","message":"the price went up since the item was added"}],"sellers":[{"seller_id":"seller-a","item_count":4,"subtotal":71.98,"price_adjustment":-2.00,"discount":0.00,"shipping":0.00,"estimated_total":69.98},{"seller_id":"seller-c","item_count":1,"subtotal":90.00,"price_adjustment":10.00,"discount":0.00,"shipping":0.00,"estimated_total":100.00},{"seller_id":"seller-b","item_count":1,"subtotal":0.00,"price_adjustment":12.50,"discount":0.00,"shipping":0.00,"estimated_total":12.50}],"promotions_applied":[],"coupon":null,"shipping_address":null,"shipping":[],"price_adjustment":20.50,"discount":0.00,"shipping_total":0.00,"estimated_total":182.48}
--- error_log
cart wave: 9 pending
--- no_error_log
[error]



=== TEST 2: a failing, garbled, slow or unknown catalog answer flags the line and the view goes on
CAT-DOWN answers 500, CAT-BAD no JSON, SLOW does not answer within the
proxy_read_timeout of its location, GONE is 404. Unverified lines count
at price_at_add, a line no longer sold counts for nothing.
--- init
CartShop::cart('p2', [['A-1', 1, 2999, 'seller-a'], ['CAT-DOWN', 1, 100, 's-x'],
                      ['CAT-BAD', 2, 150, 's-x'], ['SLOW', 1, 200, 's-x'],
                      ['GONE', 3, 1000, 's-y']]);
--- request
GET /api/v1/cart
--- more_headers
X-User-Id: p2
--- error_code: 200
--- response_body chomp
{"cart_id":"cart:user-p2","items":[{"sku_id":"A-1","quantity":1,"price_at_add":29.99,"seller_id":"seller-a","added_at":"2025-12-01T00:00:00Z","current_price":29.99,"price_changed":false,"name":"Wireless Mouse","seller":"seller-a","image":"https://cdn.example.com/a-1.jpg","in_stock":true},{"sku_id":"CAT-DOWN","quantity":1,"price_at_add":1.00,"seller_id":"s-x","added_at":"2025-12-01T00:00:00Z","price_verified":false,"in_stock":true},{"sku_id":"CAT-BAD","quantity":2,"price_at_add":1.50,"seller_id":"s-x","added_at":"2025-12-01T00:00:00Z","price_verified":false,"in_stock":true},{"sku_id":"SLOW","quantity":1,"price_at_add":2.00,"seller_id":"s-x","added_at":"2025-12-01T00:00:00Z","price_verified":false,"in_stock":true},{"sku_id":"GONE","quantity":3,"price_at_add":10.00,"seller_id":"s-y","added_at":"2025-12-01T00:00:00Z","available":false,"in_stock":false}],"item_count":8,"subtotal":65.99,"currency":"USD","version":1,"warnings":[{"code":"price_unverified","sku_id":"CAT-DOWN","message":"the current price could not be checked"},{"code":"price_unverified","sku_id":"CAT-BAD","message":"the current price could not be checked"},{"code":"price_unverified","sku_id":"SLOW","message":"the current price could not be checked"},{"code":"unavailable","sku_id":"GONE","message":"this item is no longer sold"}],"sellers":[{"seller_id":"seller-a","item_count":1,"subtotal":29.99,"price_adjustment":0.00,"discount":0.00,"shipping":0.00,"estimated_total":29.99},{"seller_id":"s-x","item_count":4,"subtotal":6.00,"price_adjustment":0.00,"discount":0.00,"shipping":0.00,"estimated_total":6.00},{"seller_id":"s-y","item_count":3,"subtotal":30.00,"price_adjustment":-30.00,"discount":0.00,"shipping":0.00,"estimated_total":0.00}],"promotions_applied":[],"coupon":null,"shipping_address":null,"shipping":[],"price_adjustment":-30.00,"discount":0.00,"shipping_total":0.00,"estimated_total":35.99}
--- error_log
upstream answered 500 for "CAT-DOWN"
upstream answer for "CAT-BAD" is not a JSON object
upstream timed out
--- no_error_log
[alert]
[crit]



=== TEST 3: the catalog's seller wins over the one stored with the line
--- init
CartShop::cart('p3', [['A-1', 1, 2999, 'seller-old'], ['B-2', 1, 1250, 'seller-old']]);
--- request
GET /api/v1/cart
--- more_headers
X-User-Id: p3
--- response_body_like: "sellers":\[\{"seller_id":"seller-a","item_count":1,"subtotal":29.99,[^}]+\},\{"seller_id":"seller-b","item_count":1,"subtotal":12.50,[^}]+\}\]



=== TEST 4: meta fields are never lines: not shown, not counted, not taking a line of cart_max_lines
The cart holds a coupon and an address besides its version; with
cart_max_lines 2 it still takes two lines, the counter (rebuilt from the
lines when it is missing) counts only lines.
--- http_config
cart_max_lines 2;
--- init
redis_cmd('DEL', 'cart:{user-p4}', 'cart_count:{user-p4}');
redis_cmd('HSET', 'cart:{user-p4}', '#v', 3, '#c', 'NOPE', '#a', 'US|10001');
--- request eval
["GET /api/v1/cart",
 "POST /api/v1/cart/items\n{\"sku_id\":\"A-1\",\"quantity\":1}",
 "POST /api/v1/cart/items\n{\"sku_id\":\"A-2\",\"quantity\":2}",
 "POST /api/v1/cart/items\n{\"sku_id\":\"B-2\",\"quantity\":1}",
 "GET /api/v1/cart/count"]
--- more_headers
X-User-Id: p4
Content-Type: application/json
--- error_code eval
[200, 200, 200, 422, 200]
--- response_body_like eval
['^\{"cart_id":"cart:user-p4","items":\[\],"item_count":0,"subtotal":0.00,"currency":"USD","version":3,.*"coupon":\{"code":"NOPE","applied":false,"reason":"coupon_conditions_unmet"\},"shipping_address":\{"country":"US","postal_code":"10001"\},"shipping":\[\],',
 '"item_count":1,.*"version":4', '"item_count":3,.*"version":5',
 '"code":"line_limit"', '^\{"item_count":3\}$']



=== TEST 5: the counter is rebuilt from the lines only, meta fields skipped
--- init
redis_cmd('DEL', 'cart:{user-p5}', 'cart_count:{user-p5}');
redis_cmd('HSET', 'cart:{user-p5}', '#v', 3, '#c', 'NOPE', '#a', 'US|10001',
          'A-1', '2|2999|seller-a|1764547200', 'B-2', '1|1250|seller-b|1764547200');
--- request eval
["PUT /api/v1/cart/items/A-1\n{\"quantity\":4}", "GET /api/v1/cart/count"]
--- more_headers
X-User-Id: p5
Content-Type: application/json
--- response_body_like eval
['"item_count":5,.*"version":4', '^\{"item_count":5\}$']
--- no_error_log
[error]
