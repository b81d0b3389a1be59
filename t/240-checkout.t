# POST /checkout: re-validation of price and stock, customer-wins prices,
# price increases refused unless accepted, promotions, one fulfillment
# group per seller with exact totals and delivery dates, the cart turned
# into an order, idempotency (a retry never counts a redemption twice),
# concurrency, and every refusal leaving the cart as it was.

use lib 't/lib';
use CartTest;
use CartShop;
use CartClient;
use Digest::SHA ();

plan 'no_plan';
no_shuffle();
add_block_preprocessor(\&CartShop::prepare);

our ($D1, $D2, $D5, $D10) = map { CartShop::day($_) } 1, 2, 5, 10;

# the checkout id an Idempotency-Key gives
sub checkout_id {
    my ($user, $key) = @_;
    return substr(Digest::SHA::sha1_hex("idem:{user-$user}:$key"), 0, 32);
}

our $Summary1 = '{"checkout_id":"' . checkout_id('k1', 'order-1') . '","cart_id":"cart:user-k1","currency":"USD","fulfillment_groups":['
  . '{"seller_id":"seller-a","items":[{"sku_id":"A-1","name":"Wireless Mouse","quantity":2,"unit_price":29.99,"price_at_add":29.99,"line_total":59.98,"discount":-6.00,"shipping":9.98},'
  . '{"sku_id":"A-2","name":"Mouse Pad","quantity":3,"unit_price":5.00,"price_at_add":6.00,"line_total":15.00,"discount":-1.50,"shipping":4.50}],'
  . '"subtotal":74.98,"discount":-7.50,"shipping":14.48,"total":81.96,"delivery":{"min_days":2,"max_days":5,"from":"' . $D2 . '","to":"' . $D5 . '"}},'
  . '{"seller_id":"seller-b","items":[{"sku_id":"B-2","name":"Cable","quantity":1,"unit_price":12.50,"price_at_add":12.50,"line_total":12.50,"discount":-1.25,"shipping":2.00}],'
  . '"subtotal":12.50,"discount":-1.25,"shipping":2.00,"total":13.25,"delivery":{"min_days":1,"max_days":2,"from":"' . $D1 . '","to":"' . $D2 . '"}},'
  . '{"seller_id":"seller-c","items":[{"sku_id":"C-1","name":"Keyboard","quantity":1,"unit_price":100.00,"price_at_add":100.00,"line_total":100.00,"discount":-10.00,"shipping":9.99}],'
  . '"subtotal":100.00,"discount":-10.00,"shipping":9.99,"total":99.99,"delivery":{"min_days":5,"max_days":10,"from":"' . $D5 . '","to":"' . $D10 . '"}}],'
  . '"promotions_applied":[{"id":"1","code":"SAVE10","type":"percent","discount":-18.75}],'
  . '"shipping_address":{"country":"US","postal_code":"94107"},'
  . '"item_count":7,"subtotal":187.48,"discount":-18.75,"shipping_total":26.47,"total":195.20,"version":2}';

run_tests();

__DATA__

=== TEST 1: three sellers, three fulfillment groups, exact totals; the view estimated what checkout charges; the cart becomes an order
A-2's price fell from 6.00 to 5.00: the customer pays 5.00. 10% of
187.48 = 18.75, spread 6.00 / 1.50 / 1.25 / 10.00.
--- init
CartShop::reset_promotions();
CartShop::promotion('{"code":"SAVE10","type":"percent","value":10}');
CartShop::cart('k1', [['A-1', 2, 2999, 'seller-a'], ['A-2', 3, 600, 'seller-a'],
                      ['B-2', 1, 1250, 'seller-b'], ['C-1', 1, 10000, 'seller-c']],
               '#a', 'US|94107', '#c', 'SAVE10');
redis_cmd('DEL', 'idem:{user-k1}:order-1');
--- request eval
["GET /api/v1/cart", "POST /api/v1/cart/checkout", "GET /api/v1/cart", "GET /api/v1/cart/count"]
--- more_headers eval
["X-User-Id: k1", "X-User-Id: k1\nIdempotency-Key: order-1", "X-User-Id: k1", "X-User-Id: k1"]
--- response_headers eval
[{}, {'ETag' => '"2"'}, {'ETag' => '"2"'}, {}]
--- response_body eval
[qr/"sellers":\[\{"seller_id":"seller-a","item_count":5,"subtotal":77.98,"price_adjustment":-3.00,"discount":-7.50,"shipping":14.48,"estimated_total":81.96\},\{"seller_id":"seller-b","item_count":1,"subtotal":12.50,"price_adjustment":0.00,"discount":-1.25,"shipping":2.00,"estimated_total":13.25\},\{"seller_id":"seller-c","item_count":1,"subtotal":100.00,"price_adjustment":0.00,"discount":-10.00,"shipping":9.99,"estimated_total":99.99\}\].*"price_adjustment":-3.00,"discount":-18.75,"shipping_total":26.47,"estimated_total":195.20\}$/,
 $main::Summary1,
 '{"cart_id":"cart:user-k1","items":[],"item_count":0,"subtotal":0.00,"currency":"USD","version":2,"warnings":[],"sellers":[],"promotions_applied":[],"coupon":null,"shipping_address":{"country":"US","postal_code":"94107"},"shipping":[],"price_adjustment":0.00,"discount":0.00,"shipping_total":0.00,"estimated_total":0.00}',
 '{"item_count":0}']



=== TEST 2: a checkout is a checkout event
--- init
CartShop::reset_promotions();
CartShop::cart('k2', [['A-1', 1, 2999, 'seller-a']], '#a', 'US|94107');
--- request
POST /api/v1/cart/checkout
--- more_headers
X-User-Id: k2
--- response_body_like: "total":34.98,"version":2\}$
--- error_log
cart event checkout



=== TEST 3: a price that rose: 409 naming the line, nothing changes; accepted, the current price is charged
--- init
CartShop::reset_promotions();
CartShop::cart('k3', [['C-1', 1, 9000, 'seller-c'], ['A-1', 1, 2999, 'seller-a'],
                      ['A-2', 1, 400, 'seller-a']], '#a', 'US|94107');
--- request eval
["POST /api/v1/cart/checkout", "POST /api/v1/cart/checkout\n{\"accept_price_increase\":false}",
 "GET /api/v1/cart/count",
 "POST /api/v1/cart/checkout\n{\"accept_price_increase\":true}"]
--- more_headers
X-User-Id: k3
Content-Type: application/json
--- error_code eval
[409, 409, 200, 200]
--- response_body eval
['{"error":{"code":"price_increased","message":"prices went up since the items were added; check out with accept_price_increase to pay them","lines":[{"sku_id":"C-1","price_at_add":90.00,"current_price":100.00},{"sku_id":"A-2","price_at_add":4.00,"current_price":5.00}]}}',
 qr/"code":"price_increased"/, '{"item_count":3}',
 qr/"items":\[\{"sku_id":"C-1","name":"Keyboard","quantity":1,"unit_price":100.00,"price_at_add":90.00,"line_total":100.00,.*"subtotal":134.99,"discount":0.00,"shipping_total":16.48,"total":151.47,"version":2\}$/]



=== TEST 4: a catalog that fails, times out or answers garbage: 503, nothing changes
--- init
CartShop::reset_promotions();
CartShop::cart("k4$_->[0]", [['A-1', 1, 2999, 'seller-a'], [$_->[1], 1, 100, 'seller-x']], '#a', 'US|94107')
    for ['a', 'CAT-DOWN'], ['b', 'SLOW'], ['c', 'CAT-BAD'];
--- request eval
["POST /api/v1/cart/checkout", "GET /api/v1/cart/count",
 "POST /api/v1/cart/checkout", "GET /api/v1/cart/count",
 "POST /api/v1/cart/checkout", "GET /api/v1/cart/count"]
--- more_headers eval
["X-User-Id: k4a", "X-User-Id: k4a", "X-User-Id: k4b", "X-User-Id: k4b", "X-User-Id: k4c", "X-User-Id: k4c"]
--- error_code eval
[503, 200, 503, 200, 503, 200]
--- response_body eval
[('{"error":{"code":"catalog_unavailable","message":"prices could not be verified, retry later"}}', '{"item_count":2}') x 3]



=== TEST 5: nothing to check out: 422
--- init
redis_cmd('DEL', 'cart:{user-k5}', 'cart_count:{user-k5}');
redis_cmd('HSET', 'cart:{user-k5}', '#v', 4, '#a', 'US|94107');
--- request eval
["POST /api/v1/cart/checkout", "GET /api/v1/cart/count"]
--- more_headers
X-User-Id: k5
--- error_code eval
[422, 200]
--- response_body eval
['{"error":{"code":"cart_empty","message":"the cart is empty"}}', '{"item_count":0}']



=== TEST 6: idempotent: a retry with the same key replays the order and counts the coupon once; another body under the key is refused
--- init
CartShop::reset_promotions();
CartShop::promotion('{"code":"TEN","type":"amount","value":1,"max_redemptions":10}');
CartShop::cart('k6', [['A-1', 1, 2999, 'seller-a']], '#a', 'US|94107', '#c', 'TEN');
redis_cmd('DEL', 'idem:{user-k6}:o6');
--- request eval
["POST /api/v1/cart/checkout", "POST /api/v1/cart/checkout",
 "POST /api/v1/cart/checkout\n{\"accept_price_increase\":true}",
 "GET /admin/cart/promotions/1"]
--- more_headers eval
[("X-User-Id: k6\nContent-Type: application/json\nIdempotency-Key: o6") x 3, ""]
--- error_code eval
[200, 200, 422, 200]
--- response_headers eval
[{'!Idempotent-Replayed' => '', 'ETag' => '"2"'}, {'Idempotent-Replayed' => 'true', 'ETag' => '"2"'}, {}, {}]
--- response_body eval
['{"checkout_id":"' . main::checkout_id('k6', 'o6') . '","cart_id":"cart:user-k6","currency":"USD","fulfillment_groups":[{"seller_id":"seller-a","items":[{"sku_id":"A-1","name":"Wireless Mouse","quantity":1,"unit_price":29.99,"price_at_add":29.99,"line_total":29.99,"discount":-1.00,"shipping":4.99}],"subtotal":29.99,"discount":-1.00,"shipping":4.99,"total":33.98,"delivery":{"min_days":2,"max_days":5,"from":"' . $main::D2 . '","to":"' . $main::D5 . '"}}],"promotions_applied":[{"id":"1","code":"TEN","type":"amount","discount":-1.00}],"shipping_address":{"country":"US","postal_code":"94107"},"item_count":1,"subtotal":29.99,"discount":-1.00,"shipping_total":4.99,"total":33.98,"version":2}',
 '{"checkout_id":"' . main::checkout_id('k6', 'o6') . '","cart_id":"cart:user-k6","currency":"USD","fulfillment_groups":[{"seller_id":"seller-a","items":[{"sku_id":"A-1","name":"Wireless Mouse","quantity":1,"unit_price":29.99,"price_at_add":29.99,"line_total":29.99,"discount":-1.00,"shipping":4.99}],"subtotal":29.99,"discount":-1.00,"shipping":4.99,"total":33.98,"delivery":{"min_days":2,"max_days":5,"from":"' . $main::D2 . '","to":"' . $main::D5 . '"}}],"promotions_applied":[{"id":"1","code":"TEN","type":"amount","discount":-1.00}],"shipping_address":{"country":"US","postal_code":"94107"},"item_count":1,"subtotal":29.99,"discount":-1.00,"shipping_total":4.99,"total":33.98,"version":2}',
 qr/"code":"idempotency_mismatch"/, qr/"redemptions":1\}$/]



=== TEST 7: a retry after a checkout died between its redemption and its order does not count the redemption again
The first attempt with key o7 counted the coupon (its marker is there)
and never committed; the retry with the same key finds the marker.
--- init
CartShop::reset_promotions();
CartShop::promotion('{"code":"TEN","type":"amount","value":1,"max_redemptions":10}');
CartShop::cart('k7', [['A-1', 1, 2999, 'seller-a']], '#a', 'US|94107', '#c', 'TEN');
redis_cmd('DEL', 'idem:{user-k7}:o7');
redis_cmd('HSET', 'promo_use:{promo-1}', 'n', 1, 'u:user-k7', 1);
redis_cmd('SET', 'promo_ck:{promo-1}:' . main::checkout_id('k7', 'o7'), 'user-k7', 'EX', 600);
--- request eval
["POST /api/v1/cart/checkout", "GET /admin/cart/promotions/1"]
--- more_headers eval
["X-User-Id: k7\nIdempotency-Key: o7", ""]
--- response_body_like eval
['"total":33.98,"version":2\}$', '"redemptions":1\}$']



=== TEST 8: a checkout refused after its redemption gives the redemption back
While the checkout waits for a slow inventory, the cart changes: the
order is not written (409 cart_changed) and the coupon's redemption is
given back.
--- init
CartShop::reset_promotions();
CartShop::promotion('{"code":"TEN","type":"amount","value":1,"max_redemptions":10}');
CartShop::cart('k8', [['A-1', 1, 2999, 'seller-a'], ['SLOWINV', 1, 300, 'seller-c']],
               '#a', 'US|94107', '#c', 'TEN');
my @r = CartClient::parallel(2, sub {
    if ($_[0] == 1) {
        my ($status, $body) = CartClient::request('POST', '/api/v1/cart/checkout', 'k8');
        return $status == 409 && $body =~ /"cart_changed"/ ? 'changed' : "$status $body";
    }
    select undef, undef, undef, 0.5;
    my ($status) = CartClient::request('PUT', '/api/v1/cart/items/A-1', 'k8', '{"quantity":2}');
    return $status;
});
die "results: @r\n" unless "@r" eq 'changed 200';
--- request eval
["GET /admin/cart/promotions/1", "GET /api/v1/cart/count"]
--- more_headers eval
["", "X-User-Id: k8"]
--- response_body_like eval
['"redemptions":0\}$', '^\{"item_count":3\}$']
--- timeout: 10



=== TEST 8b: concurrent checkouts of one cart: one order, the others refused, the coupon counted once
--- init
CartShop::reset_promotions();
CartShop::promotion('{"code":"TEN","type":"amount","value":1,"max_redemptions":10}');
CartShop::cart('k8', [['A-1', 1, 2999, 'seller-a']], '#a', 'US|94107', '#c', 'TEN');
my @r = CartClient::parallel(6, sub {
    my ($status, $body) = CartClient::request('POST', '/api/v1/cart/checkout', 'k8');
    return $status == 200 ? 'ok' : $body =~ /"(cart_changed|cart_empty)"/ ? $1 : "$status $body";
});
die "checkouts: @r\n" unless (grep { $_ eq 'ok' } @r) == 1
    && (grep { /^cart_(changed|empty)$/ } @r) == 5;
--- request eval
["GET /admin/cart/promotions/1", "GET /api/v1/cart/count"]
--- more_headers eval
["", "X-User-Id: k8"]
--- response_body_like eval
['"redemptions":1\}$', '^\{"item_count":0\}$']
--- timeout: 10



=== TEST 9: If-Match at checkout: a stale version is 412 and changes nothing
--- init
CartShop::cart('k9', [['A-1', 1, 2999, 'seller-a']], '#a', 'US|94107');
--- request eval
["POST /api/v1/cart/checkout", "GET /api/v1/cart/count", "POST /api/v1/cart/checkout"]
--- more_headers eval
["X-User-Id: k9\nIf-Match: \"7\"", "X-User-Id: k9", "X-User-Id: k9\nIf-Match: \"1\""]
--- error_code eval
[412, 200, 200]
--- response_body_like eval
['"code":"precondition_failed"', '^\{"item_count":1\}$', '"version":2\}$']



=== TEST 10: checkout bodies that are refused: 400, 415; nothing changes
--- init
CartShop::cart('k10', [['A-1', 1, 2999, 'seller-a']], '#a', 'US|94107');
--- request eval
["POST /api/v1/cart/checkout\n{\"accept_price_increase\":\"yes\"}",
 "POST /api/v1/cart/checkout\n{\"accept_price_increase\":",
 "POST /api/v1/cart/checkout\n[]",
 "POST /api/v1/cart/checkout\n{\"accept_price_increase\":true}",
 "GET /api/v1/cart/count"]
--- more_headers eval
[("X-User-Id: k10\nContent-Type: application/json") x 3, "X-User-Id: k10\nContent-Type: text/plain", "X-User-Id: k10"]
--- error_code eval
[400, 400, 400, 415, 200]
--- response_body_like eval
['"code":"invalid_field"', '"code":"invalid_json"', '"code":"invalid_json"',
 '"code":"unsupported_media_type"', '^\{"item_count":1\}$']



=== TEST 11: without upstreams the prices added at are charged; a line without any price cannot be checked out
--- init
CartShop::cart('k11', [['A-1', 2, 2999, 'seller-a'], ['B-2', 1, 1250, 'seller-b']]);
CartShop::cart('k11b', [['A-1', 2, 2999, 'seller-a'], ['X-9', 1, '', 'seller-b']]);
--- request eval
["POST /plain/checkout", "POST /plain/checkout", "GET /plain/count"]
--- more_headers eval
["X-User-Id: k11", "X-User-Id: k11b", "X-User-Id: k11b"]
--- error_code eval
[200, 503, 200]
--- response_body_like eval
['"fulfillment_groups":\[\{"seller_id":"seller-a",.*"total":59.98,"delivery":null\},\{"seller_id":"seller-b",.*"subtotal":72.48,"discount":0.00,"shipping_total":0.00,"total":72.48,"version":2\}$',
 '"code":"catalog_unavailable"', '^\{"item_count":3\}$']
