# Configured limits and big carts: cart_max_lines, cart_max_quantity,
# cart_currency, and a cart whose Redis reply is far larger than one
# hiredis read (16 KB), viewed with one catalog subrequest per line.

use lib 't/lib';
use CartTest;
use CartConf;

plan 'no_plan';
no_shuffle();
add_block_preprocessor(\&CartConf::default_config);

run_tests();

__DATA__

=== TEST 1: cart_max_lines: the line after the last allowed one is refused
--- http_config
cart_max_lines 2;
--- init
redis_cmd('DEL', 'cart:{user-l1}', 'cart_count:{user-l1}');
--- request eval
["POST /api/v1/cart/items\n{\"sku_id\":\"SKU-1\",\"quantity\":1}",
 "POST /api/v1/cart/items\n{\"sku_id\":\"SKU-2\",\"quantity\":1}",
 "POST /api/v1/cart/items\n{\"sku_id\":\"SKU-3\",\"quantity\":1}",
 "POST /api/v1/cart/items\n{\"sku_id\":\"SKU-2\",\"quantity\":1}",
 "GET /api/v1/cart/count"]
--- more_headers
X-User-Id: l1
Content-Type: application/json
--- error_code eval
[200, 200, 422, 200, 200]
--- response_body_like eval
['"version":1', '"version":2',
 '^\{"error":\{"code":"line_limit","message":"[^"]+"\}\}$',
 '"quantity":2,.*"version":3', '^\{"item_count":3\}$']



=== TEST 2: cart_max_quantity and cart_currency
--- http_config
cart_max_quantity 5;
cart_currency EUR;
--- init
redis_cmd('DEL', 'cart:{user-l2}', 'cart_count:{user-l2}');
--- request eval
["POST /api/v1/cart/items\n{\"sku_id\":\"SKU-3\",\"quantity\":5}",
 "POST /api/v1/cart/items\n{\"sku_id\":\"SKU-3\",\"quantity\":1}",
 "PUT /api/v1/cart/items/SKU-3\n{\"quantity\":6}",
 "GET /api/v1/cart"]
--- more_headers
X-User-Id: l2
Content-Type: application/json
--- error_code eval
[200, 422, 422, 200]
--- response_body_like eval
['"quantity":5', '"code":"quantity_limit"', '"code":"quantity_out_of_range"',
 '"item_count":5,"subtotal":4.95,"currency":"EUR","version":1,']



=== TEST 3: a 600-line cart (a Redis reply of about 60 KB) viewed with 600 parallel catalog subrequests
--- http_config
cart_max_lines 1000;
--- init
my @fields;
for my $i (1 .. 600) {
    push @fields, sprintf('SKU-%s-%04d', 'X' x 50, $i), '1|100|seller-big|1764547200';
}
redis_cmd('DEL', 'cart:{user-l3}', 'cart_count:{user-l3}');
redis_cmd('HSET', 'cart:{user-l3}', @fields, '#v', '9');
--- request
GET /api/v1/cart
--- more_headers
X-User-Id: l3
--- response_body_like: ^\{"cart_id":"cart:user-l3","items":\[(\{"sku_id":"SKU-X{50}-\d{4}","quantity":1,"price_at_add":1.00,"seller_id":"seller-big","added_at":"2025-12-01T00:00:00Z","available":false\},?){600}\],"item_count":600,"subtotal":600.00,"currency":"USD","version":9,"warnings":\[(\{"code":"unavailable"[^}]+\},?){600}\],"sellers":\[\{"seller_id":"seller-big","item_count":600,"subtotal":600.00,"price_adjustment":-600.00,"discount":0.00,"shipping":0.00,"estimated_total":0.00\}\],"promotions_applied":\[\],"coupon":null,"shipping_address":null,"shipping":\[\],"price_adjustment":-600.00,"discount":0.00,"shipping_total":0.00,"estimated_total":0.00\}$
--- timeout: 20
--- no_error_log
[alert]
[crit]



=== TEST 4: limits whose product could overflow a cart's total, and a guest cookie's age past 400 days, are refused at configuration time
--- init
# the cookie's secret, 64 bytes, in every run's directory
my $secret = "$ENV{TEST_NGINX_SERVROOT}-cookie.secret";
open my $sf, '>', $secret or die "$secret: $!";
print {$sf} 'k' x 64;
close $sf;
for my $case (
    ['cart_max_lines 1000; cart_max_quantity 1000000;',
     qr/"cart_max_lines" 1000 x "cart_max_quantity" 1000000 is over 10000000 units: a cart's total could overflow/],
    ['cart_max_lines 1000; cart_max_quantity 10001;',
     qr/"cart_max_lines" 1000 x "cart_max_quantity" 10001 is over 10000000 units/],
    ['cart_max_lines 1000; cart_max_quantity 10000;', undef],
    ['cart_guest_ttl 401d;', qr/"cart_guest_ttl" must be at most 400d/],
    ['cart_guest_ttl 400d;', undef],
    ["cart_guest_cookie g secret=$secret max_age=999999999y;",
     qr/has an invalid max_age|has a max_age over 400 days/],
    ["cart_guest_cookie g secret=$secret max_age=401d;",
     qr/has a max_age over 400 days/],
    ["cart_guest_cookie g secret=$secret max_age=400d;", undef])
{
    my ($status, $out, $dir) = CartConf::nginx_t($case->[0], '');
    if ($case->[1]) {
        Test::More::isnt($status, 0, "refused: $case->[0]");
        Test::More::like($out, $case->[1], "with a clear message: $case->[0]");
    } else {
        Test::More::is($status, 0, "accepted: $case->[0]") or Test::More::diag($out);
    }
}
--- request
GET /nocatalog/count
--- more_headers
X-User-Id: l4
--- response_body: {"item_count":0}
