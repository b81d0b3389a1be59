# The edge as it really is: the shop behind a proxied keepalive upstream
# (t/lib/CartShop.pm), ordinary HTTP clients (chunked bodies, HTTP/1.0,
# Connection: close, HTTP/2) and hostile input.

use lib 't/lib';
use CartTest;
use CartShop;
use CartClient;

plan 'no_plan';
no_shuffle();
add_block_preprocessor(\&CartShop::prepare);

run_tests();

__DATA__

=== TEST 1: every answer that depends on identity says Cache-Control: no-store, errors too
--- init
CartShop::cart('e1', [['A-1', 1, 2999, 'seller-a']]);
--- request eval
["GET /api/v1/cart", "GET /api/v1/cart/count",
 "POST /api/v1/cart/items\n{\"sku_id\":\"A-2\",\"quantity\":1}",
 "DELETE /api/v1/cart/items/A-2", "GET /api/v1/cart/nope"]
--- more_headers
X-User-Id: e1
Content-Type: application/json
--- error_code eval
[200, 200, 200, 200, 404]
--- response_headers eval
[{'Cache-Control' => 'no-store'}, {'Cache-Control' => 'no-store'},
 {'Cache-Control' => 'no-store'}, {'Cache-Control' => 'no-store'},
 {'Cache-Control' => 'no-store'}]



=== TEST 2: sku_id "." and ".." are refused with 400 and reach neither the catalog nor Redis
--- init
redis_cmd('DEL', 'cart:{user-e2}', 'cart_count:{user-e2}');
--- request eval
["POST /api/v1/cart/items\n{\"sku_id\":\"..\",\"quantity\":1}",
 "POST /api/v1/cart/items\n{\"sku_id\":\".\",\"quantity\":1}",
 "GET /api/v1/cart/count"]
--- more_headers
X-User-Id: e2
Content-Type: application/json
Idempotency-Key: e2-key
--- error_code eval
[400, 400, 200]
--- response_body_like eval
['^\{"error":\{"code":"invalid_sku",', '^\{"error":\{"code":"invalid_sku",',
 '^\{"item_count":0\}$']
--- no_error_log
[error]
