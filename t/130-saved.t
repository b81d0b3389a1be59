# Saved for later: each move between the cart and saved:{user} is one
# script; failures change nothing; the list lives cart_saved_ttl.

use lib 't/lib';
use CartTest;
use CartConf;
use CartAuth;
use CartClient;
use Test::More ();

plan 'no_plan';
no_shuffle();
add_block_preprocessor(\&CartAuth::default_config);

sub fresh {
    my ($user) = @_;
    CartClient::seed($user);
    redis_cmd('DEL', "saved:{user-$user}", "idem:{user-$user}:save-1");
}

run_tests();

__DATA__

=== TEST 1: save a line, list it, move it back
--- http_config
cart_saved_ttl 2h;
--- init
main::fresh('s1');
--- request eval
["POST /nocatalog/items/SKU-1/save", "GET /nocatalog/saved", "GET /nocatalog/count",
 "POST /nocatalog/saved/SKU-1/move", "GET /nocatalog/saved", "GET /nocatalog"]
--- more_headers
X-User-Id: s1
--- response_body_like eval
['^\{"cart_id":"cart:user-s1","item_count":0,"saved":\{"sku_id":"SKU-1","quantity":2,"price":29.99,"seller_id":"seller-1","saved_at":"\d{4}-[^"]+Z"\},"version":6\}$',
 '^\{"items":\[\{"sku_id":"SKU-1","quantity":2,"price":29.99,"seller_id":"seller-1","saved_at":"[^"]+"\}\],"item_count":2\}$',
 '^\{"item_count":0\}$',
 '^\{"cart_id":"cart:user-s1","item_count":2,"item":\{"sku_id":"SKU-1","quantity":2,"price":29.99,"seller_id":"seller-1"\},"version":7\}$',
 '^\{"items":\[\],"item_count":0\}$',
 '^\{"cart_id":"cart:user-s1","items":\[\{"sku_id":"SKU-1","quantity":2,"price_at_add":29.99,"seller_id":"seller-1","added_at":"[^"]+"\}\],"item_count":2,"subtotal":59.98,"currency":"USD","version":7,']
--- response_headers eval
[{ETag => '"6"'}, {}, {}, {ETag => '"7"'}, {}, {}]



=== TEST 2: the saved list is saved:{user-<id>} with cart_saved_ttl; lines keep their price and seller
--- http_config
cart_saved_ttl 2h;
--- init
main::fresh('s2');
--- request
POST /nocatalog/items/SKU-1/save
--- more_headers
X-User-Id: s2
--- response_body_like: "version":6



=== TEST 3: (checks of TEST 2)
--- init
Test::More::like(redis_cmd('HGET', 'saved:{user-s2}', 'SKU-1'), qr/^2\|2999\|seller-1\|[0-9a-z]{6}$/, 'saved line');
my $ttl = redis_cmd('TTL', 'saved:{user-s2}');
Test::More::ok($ttl > 7100 && $ttl <= 7200, "cart_saved_ttl (2h): $ttl");
Test::More::is(redis_cmd('HEXISTS', 'cart:{user-s2}', 'SKU-1'), 0, 'gone from the cart');
Test::More::is(redis_cmd('GET', 'cart_count:{user-s2}'), 0, 'counter follows');
--- request
DELETE /nocatalog/saved/SKU-1
--- more_headers
X-User-Id: s2
--- response_body_like: ^\{"cart_id":"cart:user-s2","item_count":0,"saved":\{"sku_id":"SKU-1","quantity":0,"price":29.99,"seller_id":"seller-1","saved_at":"[^"]+"\},"version":6\}$



=== TEST 3b: saved_at in decimal seconds (lines saved before base 36) or in base 36 renders alike
--- init
main::fresh('s3b');
redis_cmd('HSET', 'saved:{user-s3b}', 'SKU-1', '2|2999|seller-1|1764547200', 'SKU-2', '1|500|seller-2|t6kdc0');
--- request eval
["GET /nocatalog/saved", "DELETE /nocatalog/saved/SKU-2", "DELETE /nocatalog/saved/SKU-1"]
--- more_headers
X-User-Id: s3b
--- response_body_like eval
['^\{"items":\[\{"sku_id":"SKU-\d","quantity":\d,"price":\d+.\d\d,"seller_id":"seller-\d","saved_at":"2025-12-01T00:00:00Z"\},\{"sku_id":"SKU-\d","quantity":\d,"price":\d+.\d\d,"seller_id":"seller-\d","saved_at":"2025-12-01T00:00:00Z"\}\],"item_count":3\}$',
 '"saved":\{"sku_id":"SKU-2","quantity":0,"price":5.00,"seller_id":"seller-2","saved_at":"2025-12-01T00:00:00Z"\}',
 '"saved":\{"sku_id":"SKU-1","quantity":0,"price":29.99,"seller_id":"seller-1","saved_at":"2025-12-01T00:00:00Z"\}']



=== TEST 4: a missing line or saved item: 404, each followed by a read showing nothing changed
--- init
main::fresh('s4');
--- request eval
["POST /nocatalog/items/SKU-3/save", "GET /nocatalog/count",
 "POST /nocatalog/saved/SKU-1/move", "GET /nocatalog/count",
 "DELETE /nocatalog/saved/SKU-1", "GET /nocatalog/saved",
 "POST /nocatalog/items/SKU%7C1/save", "GET /nocatalog/saved/SKU-1",
 "PUT /nocatalog/items/SKU-1/save"]
--- more_headers
X-User-Id: s4
--- error_code eval
[404, 200, 404, 200, 404, 200, 400, 405, 405]
--- response_body_like eval
['"code":"line_not_found"', '^\{"item_count":2\}$', '"code":"saved_not_found"', '^\{"item_count":2\}$',
 '"code":"saved_not_found"', '^\{"items":\[\],"item_count":0\}$', '"code":"invalid_sku"',
 '"code":"method_not_allowed"', '"code":"method_not_allowed"']



=== TEST 5: a move back that would pass cart_max_lines or cart_max_quantity is 422 and changes nothing
--- http_config
cart_max_lines 1;
cart_max_quantity 3;
--- init
main::fresh('s5');
redis_cmd('HSET', 'saved:{user-s5}', 'SKU-2', '1|500|seller-2|1764547200', 'SKU-1', '2|2999|seller-1|1764547200');
--- request eval
["POST /nocatalog/saved/SKU-2/move", "POST /nocatalog/saved/SKU-1/move", "GET /nocatalog/count", "GET /nocatalog/saved"]
--- more_headers
X-User-Id: s5
--- error_code eval
[422, 422, 200, 200]
--- response_body_like eval
['"code":"line_limit"', '"code":"quantity_limit"', '^\{"item_count":2\}$', '"item_count":3\}$']



=== TEST 5b: the meta fields (coupon, address) do not count as lines for a move back
--- http_config
cart_max_lines 2;
--- init
main::fresh('s5b');
redis_cmd('HSET', 'cart:{user-s5b}', '#c', 'SAVE10', '#a', 'DE|10115');
redis_cmd('HSET', 'saved:{user-s5b}', 'SKU-2', '1|500|seller-2|1764547200');
--- request eval
["POST /nocatalog/saved/SKU-2/move", "GET /nocatalog/count"]
--- more_headers
X-User-Id: s5b
--- error_code eval
[200, 200]
--- response_body_like eval
['"item_count":3,"item":\{"sku_id":"SKU-2","quantity":1,', '^\{"item_count":3\}$']



=== TEST 6: saving a SKU saved already adds up (capped); a full saved list is 422
--- http_config
cart_max_lines 2;
cart_max_quantity 3;
--- init
main::fresh('s6');
redis_cmd('HSET', 'saved:{user-s6}', 'SKU-1', '2|2999|seller-1|1764547200');
--- request eval
["POST /nocatalog/items/SKU-1/save", "POST /nocatalog/items\n{\"sku_id\":\"SKU-2\",\"quantity\":1}",
 "POST /nocatalog/items\n{\"sku_id\":\"SKU-3\",\"quantity\":1}",
 "POST /nocatalog/items/SKU-2/save", "POST /nocatalog/items/SKU-3/save", "GET /nocatalog/count"]
--- more_headers
X-User-Id: s6
Content-Type: application/json
--- error_code eval
[200, 200, 200, 200, 422, 200]
--- response_body_like eval
['"saved":\{"sku_id":"SKU-1","quantity":3,', '"item_count":1,', '"item_count":2,', '"item_count":1,', '"code":"saved_limit"', '^\{"item_count":1\}$']



=== TEST 7: If-Match and Idempotency-Key on a save
--- init
main::fresh('s7');
--- request eval
["POST /nocatalog/items/SKU-1/save", "GET /nocatalog/count",
 "POST /nocatalog/items/SKU-1/save", "POST /nocatalog/items/SKU-1/save"]
--- more_headers eval
["X-User-Id: s7\nIf-Match: \"4\"", "X-User-Id: s7",
 "X-User-Id: s7\nIf-Match: \"5\"\nIdempotency-Key: save-1",
 "X-User-Id: s7\nIdempotency-Key: save-1"]
--- error_code eval
[412, 200, 200, 200]
--- response_body_like eval
['"code":"precondition_failed"', '^\{"item_count":2\}$', '"version":6\}$', '"version":6\}$']
--- response_headers eval
[{}, {}, {'Idempotent-Replayed' => ''}, {'Idempotent-Replayed' => 'true'}]



=== TEST 8: item_saved and item_moved_to_cart events
--- init
main::fresh('s8');
CartClient::request('POST', '/nocatalog/items/SKU-1/save', 's8');
--- request
POST /nocatalog/saved/SKU-1/move
--- more_headers
X-User-Id: s8
--- error_log eval
[qr/cart event item_saved "SKU-1" v6/, qr/cart event item_moved_to_cart "SKU-1" v7/]
