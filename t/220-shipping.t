# Shipping: PUT /shipping-address (validated, normalised, idempotent),
# estimates per line and per seller with delivery dates, the destination
# reaching the upstream ($cart_country, $cart_postal_code), lines not
# shipped there, and a shipping upstream that fails.

use lib 't/lib';
use CartTest;
use CartShop;

plan 'no_plan';
no_shuffle();
add_block_preprocessor(\&CartShop::prepare);

our ($D1, $D2, $D3, $D5, $D6, $D10, $D12, $D13, $D15, $D22) =
    map { CartShop::day($_) } 1, 2, 3, 5, 6, 10, 12, 13, 15, 22;

run_tests();

__DATA__

=== TEST 1: a destination, then estimates: cost per line (per unit x quantity), dates, per-seller totals
--- init
CartShop::cart('h1', [['A-1', 2, 2999, 'seller-a'], ['A-2', 3, 500, 'seller-a'],
                      ['B-2', 1, 1250, 'seller-b'], ['C-1', 1, 10000, 'seller-c']]);
--- request eval
["PUT /api/v1/cart/shipping-address\n{\"country\":\"US\",\"postal_code\":\"94107\"}",
 "GET /api/v1/cart"]
--- more_headers
X-User-Id: h1
Content-Type: application/json
--- response_headers eval
[{'ETag' => '"2"'}, {'ETag' => '"2"'}]
--- response_body eval
['{"cart_id":"cart:user-h1","shipping_address":{"country":"US","postal_code":"94107"},"version":2}',
 qr/^\{"cart_id":"cart:user-h1",.*"item_count":7,"subtotal":187.48,"currency":"USD","version":2,"warnings":\[\],"sellers":\[\{"seller_id":"seller-a","item_count":5,"subtotal":74.98,"price_adjustment":0.00,"discount":0.00,"shipping":14.48,"estimated_total":89.46\},\{"seller_id":"seller-b","item_count":1,"subtotal":12.50,"price_adjustment":0.00,"discount":0.00,"shipping":2.00,"estimated_total":14.50\},\{"seller_id":"seller-c","item_count":1,"subtotal":100.00,"price_adjustment":0.00,"discount":0.00,"shipping":9.99,"estimated_total":109.99\}\],"promotions_applied":\[\],"coupon":null,"shipping_address":\{"country":"US","postal_code":"94107"\},"shipping":\[\{"seller_id":"seller-a","cost":14.48,"delivery_from":"$main::D2","delivery_to":"$main::D5","items":\[\{"sku_id":"A-1","quantity":2,"cost":9.98,"min_days":2,"max_days":5,"delivery_from":"$main::D2","delivery_to":"$main::D5"\},\{"sku_id":"A-2","quantity":3,"cost":4.50,"min_days":1,"max_days":3,"delivery_from":"$main::D1","delivery_to":"$main::D3"\}\]\},\{"seller_id":"seller-b","cost":2.00,"delivery_from":"$main::D1","delivery_to":"$main::D2","items":\[\{"sku_id":"B-2","quantity":1,"cost":2.00,"min_days":1,"max_days":2,"delivery_from":"$main::D1","delivery_to":"$main::D2"\}\]\},\{"seller_id":"seller-c","cost":9.99,"delivery_from":"$main::D5","delivery_to":"$main::D10","items":\[\{"sku_id":"C-1","quantity":1,"cost":9.99,"min_days":5,"max_days":10,"delivery_from":"$main::D5","delivery_to":"$main::D10"\}\]\}\],"price_adjustment":0.00,"discount":0.00,"shipping_total":26.47,"estimated_total":213.95\}$/]



=== TEST 2: the destination reaches the upstream: abroad costs more and takes longer, a remote postal code longer still
--- init
CartShop::cart('h2', [['A-1', 1, 2999, 'seller-a']]);
--- request eval
["PUT /api/v1/cart/shipping-address\n{\"country\":\"de\",\"postal_code\":\"10115\"}",
 "GET /api/v1/cart",
 "PUT /api/v1/cart/shipping-address\n{\"country\":\"DE\",\"postal_code\":\"99999\"}",
 "GET /api/v1/cart",
 "PUT /api/v1/cart/shipping-address\n{\"country\":\"US\",\"postal_code\":\"99999\"}",
 "GET /api/v1/cart"]
--- more_headers
X-User-Id: h2
Content-Type: application/json
--- response_body_like eval
['"shipping_address":\{"country":"DE","postal_code":"10115"\},"version":2\}$',
 qr/"shipping":\[\{"seller_id":"seller-a","cost":19.99,"delivery_from":"$main::D6","delivery_to":"$main::D12","items":\[\{"sku_id":"A-1","quantity":1,"cost":19.99,"min_days":6,"max_days":12,.*"shipping_total":19.99,"estimated_total":49.98\}$/,
 '"version":3\}$',
 qr/"min_days":6,"max_days":22,"delivery_from":"$main::D6","delivery_to":"$main::D22"/,
 '"version":4\}$',
 qr/"cost":4.99,"min_days":2,"max_days":15,"delivery_from":"$main::D2","delivery_to":"$main::D15"/]



=== TEST 3: a line not shipped to the destination: flagged on the view, refused at checkout, nothing changes
--- init
CartShop::cart('h3', [['A-1', 1, 2999, 'seller-a'], ['C-1', 2, 10000, 'seller-c']],
               '#a', 'NZ|6011');
--- request eval
["GET /api/v1/cart", "POST /api/v1/cart/checkout", "GET /api/v1/cart/count",
 "GET /api/v1/cart"]
--- more_headers
X-User-Id: h3
--- error_code eval
[200, 409, 200, 200]
--- response_body_like eval
['"shipping":\[\{"seller_id":"seller-a","cost":19.99,[^\]]+\]\},\{"seller_id":"seller-c","cost":0.00,"delivery_from":null,"delivery_to":null,"items":\[\{"sku_id":"C-1","quantity":2,"shippable":false\}\]\}\],"price_adjustment":0.00,"discount":0.00,"shipping_total":19.99,"estimated_total":249.98\}$',
 '^\{"error":\{"code":"not_shippable","message":"some items are not shipped to this address","lines":\[\{"sku_id":"C-1"\}\]\}\}$',
 '^\{"item_count":3\}$', '"item_count":3,"subtotal":229.99,"currency":"USD","version":1,']



=== TEST 4: a shipping upstream that fails: unverified on the view, 503 at checkout, nothing changes
--- init
CartShop::cart('h4', [['SHIP-DOWN', 1, 800, 'seller-c']], '#a', 'US|94107');
--- request eval
["GET /api/v1/cart", "POST /api/v1/cart/checkout", "GET /api/v1/cart/count"]
--- more_headers
X-User-Id: h4
--- error_code eval
[200, 503, 200]
--- response_body_like eval
['"shipping":\[\{"seller_id":"seller-c","cost":0.00,"delivery_from":null,"delivery_to":null,"items":\[\{"sku_id":"SHIP-DOWN","quantity":1,"shipping_verified":false\}\]\}\],',
 '^\{"error":\{"code":"shipping_unavailable","message":"[^"]+"\}\}$',
 '^\{"item_count":1\}$']



=== TEST 5: addresses that are refused (400, 422) change nothing
--- init
CartShop::cart('h5', [['A-1', 1, 2999, 'seller-a']], '#a', 'US|94107');
--- request eval
["PUT /api/v1/cart/shipping-address\n{\"country\":\"US\"}",
 "PUT /api/v1/cart/shipping-address\n{\"country\":1,\"postal_code\":\"94107\"}",
 "PUT /api/v1/cart/shipping-address\n{\"country\":\"USA\",\"postal_code\":\"94107\"}",
 "PUT /api/v1/cart/shipping-address\n{\"country\":\"U\",\"postal_code\":\"94107\"}",
 "PUT /api/v1/cart/shipping-address\n{\"country\":\"U1\",\"postal_code\":\"94107\"}",
 "PUT /api/v1/cart/shipping-address\n{\"country\":\"US\",\"postal_code\":\"941|07\"}",
 "PUT /api/v1/cart/shipping-address\n{\"country\":\"US\",\"postal_code\":\"12345678901\"}",
 "PUT /api/v1/cart/shipping-address\n{\"country\":\"US\",\"postal_code\":\"  \"}",
 "PUT /api/v1/cart/shipping-address\n[1]",
 "GET /api/v1/cart"]
--- more_headers
X-User-Id: h5
Content-Type: application/json
--- error_code eval
[400, 400, 422, 422, 422, 422, 422, 422, 400, 200]
--- response_body_like eval
['"code":"invalid_field"', '"code":"invalid_field"', '"code":"invalid_address"',
 '"code":"invalid_address"', '"code":"invalid_address"', '"code":"invalid_address"',
 '"code":"invalid_address"', '"code":"invalid_address"', '"code":"invalid_json"',
 '"version":1,.*"shipping_address":\{"country":"US","postal_code":"94107"\},']



=== TEST 6: postal codes are kept in upper case without spaces
--- init
redis_cmd('DEL', 'cart:{user-h6}', 'cart_count:{user-h6}');
--- request eval
["PUT /api/v1/cart/shipping-address\n{\"country\":\"gb\",\"postal_code\":\"sw1a 1aa\"}",
 "GET /api/v1/cart"]
--- more_headers
X-User-Id: h6
Content-Type: application/json
--- response_body eval
['{"cart_id":"cart:user-h6","shipping_address":{"country":"GB","postal_code":"SW1A1AA"},"version":1}',
 '{"cart_id":"cart:user-h6","items":[],"item_count":0,"subtotal":0.00,"currency":"USD","version":1,"warnings":[],"sellers":[],"promotions_applied":[],"coupon":null,"shipping_address":{"country":"GB","postal_code":"SW1A1AA"},"shipping":[],"price_adjustment":0.00,"discount":0.00,"shipping_total":0.00,"estimated_total":0.00}']



=== TEST 7: an address write is idempotent with a key, honours If-Match, refreshes the TTL
--- http_config
cart_ttl 1h;
--- init
CartShop::cart('h7', [['A-1', 1, 2999, 'seller-a']]);
redis_cmd('DEL', 'idem:{user-h7}:a1');
--- request eval
["PUT /api/v1/cart/shipping-address\n{\"country\":\"US\",\"postal_code\":\"10001\"}",
 "PUT /api/v1/cart/shipping-address\n{\"country\":\"US\",\"postal_code\":\"10001\"}",
 "PUT /api/v1/cart/shipping-address\n{\"country\":\"US\",\"postal_code\":\"10002\"}",
 "PUT /api/v1/cart/shipping-address\n{\"country\":\"US\",\"postal_code\":\"10003\"}",
 "GET /api/v1/cart/count"]
--- more_headers eval
["X-User-Id: h7\nContent-Type: application/json\nIdempotency-Key: a1",
 "X-User-Id: h7\nContent-Type: application/json\nIdempotency-Key: a1",
 "X-User-Id: h7\nContent-Type: application/json\nIdempotency-Key: a1",
 "X-User-Id: h7\nContent-Type: application/json\nIf-Match: \"1\"",
 "X-User-Id: h7"]
--- error_code eval
[200, 200, 422, 412, 200]
--- response_headers eval
[{'!Idempotent-Replayed' => ''}, {'Idempotent-Replayed' => 'true'}, {}, {}, {}]
--- response_body eval
['{"cart_id":"cart:user-h7","shipping_address":{"country":"US","postal_code":"10001"},"version":2}',
 '{"cart_id":"cart:user-h7","shipping_address":{"country":"US","postal_code":"10001"},"version":2}',
 qr/"code":"idempotency_mismatch"/, qr/"code":"precondition_failed"/,
 '{"item_count":1}']



=== TEST 8: (checks of TEST 7) the address is stored in the cart hash, which got the cart's TTL
--- init
my $a = redis_cmd('HGET', 'cart:{user-h7}', '#a');
die "address field is '$a'\n" unless $a eq 'US|10001';
my $ttl = redis_cmd('TTL', 'cart:{user-h7}');
die "cart TTL is $ttl\n" unless $ttl > 3500 && $ttl <= 3600;
--- request
GET /api/v1/cart/count
--- more_headers
X-User-Id: h7
--- response_body chomp
{"item_count":1}



=== TEST 9: checkout needs a destination when shipping is configured; nothing changes
--- init
CartShop::cart('h9', [['A-1', 1, 2999, 'seller-a']]);
--- request eval
["POST /api/v1/cart/checkout", "GET /api/v1/cart/count"]
--- more_headers
X-User-Id: h9
--- error_code eval
[422, 200]
--- response_body eval
['{"error":{"code":"shipping_address_required","message":"set a shipping address before checking out"}}',
 '{"item_count":1}']



=== TEST 10: a shipping answer that is not usable (no cost, days the wrong way round) is unverified
--- config eval
$CartShop::Config =~ s#"cost":\$ship_cost_A_2,#"cost":"free",#r
=~ s#"min_days":\$ship_min_B_2,"max_days":\$ship_max_B_2#"min_days":5,"max_days":2#r
--- init
CartShop::cart('h10', [['A-2', 1, 500, 'seller-a'], ['B-2', 1, 1250, 'seller-b']], '#a', 'US|94107');
--- request eval
["GET /api/v1/cart", "POST /api/v1/cart/checkout"]
--- more_headers
X-User-Id: h10
--- error_code eval
[200, 503]
--- response_body_like eval
['"items":\[\{"sku_id":"A-2","quantity":1,"shipping_verified":false\}\]\},\{"seller_id":"seller-b",[^\]]+"items":\[\{"sku_id":"B-2","quantity":1,"shipping_verified":false\}\]',
 '"code":"shipping_unavailable"']
