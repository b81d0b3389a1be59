# Promotions on the cart: each kind (percent, amount, bundle cheapest
# free / percent / amount, free shipping) with its scope and minimum,
# rounding (half up, spread exactly), validity windows, coupons applied,
# replaced and removed, stacking, and redemption limits consumed only by
# checkout, atomically. Promotions are created through the admin API.

use lib 't/lib';
use CartTest;
use CartShop;
use CartClient;

plan 'no_plan';
no_shuffle();
add_block_preprocessor(\&CartShop::prepare);

# the seller entries of a view: [seller, subtotal, discount, shipping, estimated_total]
sub sellers {
    return '"sellers":\[' . join(',', map {
        my ($s, $sub, $d, $ship, $t) = @$_;
        qq(\\{"seller_id":"$s","item_count":\\d+,"subtotal":$sub,"price_adjustment":0.00,)
        . qq("discount":$d,"shipping":$ship,"estimated_total":$t\\})
    } @_) . '\]';
}

run_tests();

__DATA__

=== TEST 1: a percent coupon: 10% of 47.49 is 4.75 (half up), spread exactly over sellers; the answer is the priced cart
--- init
CartShop::reset_promotions();
CartShop::promotion('{"code":"SAVE10","type":"percent","value":10}');
CartShop::cart('q1', [['A-1', 1, 2999, 'seller-a'], ['A-2', 1, 500, 'seller-a'],
                      ['B-2', 1, 1250, 'seller-b']]);
--- request eval
["POST /api/v1/cart/coupons\n{\"code\":\"save10\"}", "GET /api/v1/cart"]
--- more_headers
X-User-Id: q1
Content-Type: application/json
--- response_headers eval
[{'ETag' => '"2"'}, {'ETag' => '"2"'}]
--- response_body_like eval
[main::sellers(['seller-a', '34.99', '-3.50', '0.00', '31.49'], ['seller-b', '12.50', '-1.25', '0.00', '11.25'])
 . ',"promotions_applied":\[\{"id":"1","code":"SAVE10","type":"percent","discount":-4.75\}\],"coupon":\{"code":"SAVE10","applied":true\},.*"discount":-4.75,"shipping_total":0.00,"estimated_total":42.74\}$',
 '"version":2,.*"promotions_applied":\[\{"id":"1","code":"SAVE10","type":"percent","discount":-4.75\}\],.*"estimated_total":42.74\}$']



=== TEST 1b: applying a coupon is a coupon_applied event
--- init
CartShop::reset_promotions();
CartShop::promotion('{"code":"SAVE10","type":"percent","value":10}');
CartShop::cart('q1b', [['A-1', 1, 2999, 'seller-a']]);
--- request
POST /api/v1/cart/coupons
{"code":"SAVE10"}
--- more_headers
X-User-Id: q1b
Content-Type: application/json
--- error_log
cart event coupon_applied "" v2



=== TEST 2: half up, not truncated, not half even: 50% of 2.97 is 1.49
--- init
CartShop::reset_promotions();
CartShop::promotion('{"code":"HALF","type":"percent","value":50,"skus":["B-1"]}');
CartShop::cart('q2', [['B-1', 3, 99, 'seller-b'], ['A-1', 1, 2999, 'seller-a']], '#c', 'HALF');
--- request
GET /api/v1/cart
--- more_headers
X-User-Id: q2
--- response_body_like eval
main::sellers(['seller-b', '2.97', '-1.49', '0.00', '1.48'], ['seller-a', '29.99', '0.00', '0.00', '29.99'])
 . ',"promotions_applied":\[\{"id":"1","code":"HALF","type":"percent","discount":-1.49\}\],.*"estimated_total":31.47\}$'



=== TEST 3: an amount coupon is spread by the largest remainder; it never takes more than the cart
10.00 over 29.99 / 5.00 / 12.50: 6.32 / 1.05 / 2.63.
--- init
CartShop::reset_promotions();
CartShop::promotion('{"code":"TENOFF","type":"amount","value":10,"min_subtotal":20}');
CartShop::promotion('{"code":"BIG","type":"amount","value":100}');
CartShop::cart('q3', [['A-1', 1, 2999, 'seller-a'], ['A-2', 1, 500, 'seller-a'],
                      ['B-2', 1, 1250, 'seller-b']], '#c', 'TENOFF');
CartShop::cart('q3b', [['A-2', 1, 500, 'seller-a']], '#c', 'BIG');
--- request eval
["GET /api/v1/cart", "GET /api/v1/cart"]
--- more_headers eval
["X-User-Id: q3", "X-User-Id: q3b"]
--- response_body_like eval
[main::sellers(['seller-a', '34.99', '-7.37', '0.00', '27.62'], ['seller-b', '12.50', '-2.63', '0.00', '9.87'])
 . ',"promotions_applied":\[\{"id":"1","code":"TENOFF","type":"amount","discount":-10.00\}\],.*"estimated_total":37.49\}$',
 '"promotions_applied":\[\{"id":"2","code":"BIG","type":"amount","discount":-5.00\}\],.*"discount":-5.00,"shipping_total":0.00,"estimated_total":0.00\}$']



=== TEST 4: scopes: a seller, some SKUs; a minimum counts the scope only
SELLERB: 20% of seller-b's 25.00; A2OFF: 3.00 off A-2 lines; BIGB needs
30.00 of seller-b (the whole cart has more): refused, nothing changes.
--- init
CartShop::reset_promotions();
CartShop::promotion('{"code":"SELLERB","type":"percent","value":20,"seller_id":"seller-b"}');
CartShop::promotion('{"code":"A2OFF","type":"amount","value":3,"skus":["A-2","C-2"]}');
CartShop::promotion('{"code":"BIGB","type":"percent","value":20,"seller_id":"seller-b","min_subtotal":30}');
CartShop::cart('q4', [['A-1', 1, 2999, 'seller-a'], ['B-2', 2, 1250, 'seller-b'],
                      ['A-2', 2, 500, 'seller-a']]);
--- request eval
["POST /api/v1/cart/coupons\n{\"code\":\"SELLERB\"}",
 "POST /api/v1/cart/coupons\n{\"code\":\"A2OFF\"}",
 "POST /api/v1/cart/coupons\n{\"code\":\"BIGB\"}",
 "GET /api/v1/cart"]
--- more_headers
X-User-Id: q4
Content-Type: application/json
--- error_code eval
[200, 200, 422, 200]
--- response_body_like eval
[main::sellers(['seller-a', '39.99', '0.00', '0.00', '39.99'], ['seller-b', '25.00', '-5.00', '0.00', '20.00']),
 main::sellers(['seller-a', '39.99', '-3.00', '0.00', '36.99'], ['seller-b', '25.00', '0.00', '0.00', '25.00']),
 '^\{"error":\{"code":"coupon_conditions_unmet","message":"[^"]+"\}\}$',
 '"version":3,.*"coupon":\{"code":"A2OFF","applied":true\},.*"estimated_total":61.99\}$']



=== TEST 5: bundle, cheapest free: buy 3, the cheapest of each group of 3 (dearest first) is free
Five units 29.99 29.99 12.50 5.00 5.00: one group, 12.50 free. Six units
(one more 5.00): two groups, 12.50 and 5.00 free.
--- init
CartShop::reset_promotions();
CartShop::promotion('{"type":"bundle","skus":["A-1","A-2","B-2"],"bundle_quantity":3}');
CartShop::cart('q5', [['A-1', 2, 2999, 'seller-a'], ['A-2', 2, 500, 'seller-a'],
                      ['B-2', 1, 1250, 'seller-b']]);
CartShop::cart('q5b', [['A-1', 2, 2999, 'seller-a'], ['A-2', 3, 500, 'seller-a'],
                       ['B-2', 1, 1250, 'seller-b']]);
--- request eval
["GET /api/v1/cart", "GET /api/v1/cart"]
--- more_headers eval
["X-User-Id: q5", "X-User-Id: q5b"]
--- response_body_like eval
[main::sellers(['seller-a', '69.98', '0.00', '0.00', '69.98'], ['seller-b', '12.50', '-12.50', '0.00', '0.00'])
 . ',"promotions_applied":\[\{"id":"1","type":"bundle","discount":-12.50\}\],"coupon":null,.*"estimated_total":69.98\}$',
 main::sellers(['seller-a', '74.98', '-5.00', '0.00', '69.98'], ['seller-b', '12.50', '-12.50', '0.00', '0.00'])
 . ',"promotions_applied":\[\{"id":"1","type":"bundle","discount":-17.50\}\],.*"estimated_total":69.98\}$']



=== TEST 6: bundle, percent and amount: 50% off each pair of A-2; 3.00 off each pair of A-1 / B-2
A-2 x3: one pair, 5.00. A-1 x2 + B-2 x2: two pairs, 6.00 spread over
59.98 and 25.00: 4.23 and 1.77.
--- init
CartShop::reset_promotions();
CartShop::promotion('{"type":"bundle","skus":["A-2"],"bundle_quantity":2,"bundle_discount":"percent","value":50}');
CartShop::promotion('{"type":"bundle","skus":["A-1","B-2"],"bundle_quantity":2,"bundle_discount":"amount","value":3}');
CartShop::cart('q6', [['A-2', 3, 500, 'seller-a']]);
CartShop::cart('q6b', [['A-1', 2, 2999, 'seller-a'], ['B-2', 2, 1250, 'seller-b']]);
--- request eval
["GET /api/v1/cart", "GET /api/v1/cart"]
--- more_headers eval
["X-User-Id: q6", "X-User-Id: q6b"]
--- response_body_like eval
['"promotions_applied":\[\{"id":"1","type":"bundle","discount":-5.00\}\],.*"estimated_total":10.00\}$',
 main::sellers(['seller-a', '59.98', '-4.23', '0.00', '55.75'], ['seller-b', '25.00', '-1.77', '0.00', '23.23'])
 . ',"promotions_applied":\[\{"id":"2","type":"bundle","discount":-6.00\}\],.*"estimated_total":78.98\}$']



=== TEST 7: free shipping over a threshold, for the whole cart or one seller; a free-shipping coupon before any address
--- init
CartShop::reset_promotions();
CartShop::promotion('{"type":"free_shipping","min_subtotal":50,"seller_id":"seller-a"}');
CartShop::promotion('{"code":"SHIPFREE","type":"free_shipping"}');
CartShop::cart('q7', [['A-1', 2, 2999, 'seller-a'], ['B-2', 1, 1250, 'seller-b']], '#a', 'US|94107');
CartShop::cart('q7b', [['A-2', 1, 500, 'seller-a']], '#a', 'US|94107');
CartShop::cart('q7c', [['A-2', 1, 500, 'seller-a']], '#c', 'SHIPFREE');
--- request eval
["GET /api/v1/cart", "GET /api/v1/cart", "GET /api/v1/cart"]
--- more_headers eval
["X-User-Id: q7", "X-User-Id: q7b", "X-User-Id: q7c"]
--- response_body_like eval
[main::sellers(['seller-a', '59.98', '-9.98', '9.98', '59.98'], ['seller-b', '12.50', '0.00', '2.00', '14.50'])
 . ',"promotions_applied":\[\{"id":"1","type":"free_shipping","discount":-9.98\}\],.*"discount":-9.98,"shipping_total":11.98,"estimated_total":74.48\}$',
 '"promotions_applied":\[\],.*"discount":0.00,"shipping_total":1.50,"estimated_total":6.50\}$',
 '"promotions_applied":\[\{"id":"2","code":"SHIPFREE","type":"free_shipping","discount":0.00\}\],"coupon":\{"code":"SHIPFREE","applied":true\},"shipping_address":null,"shipping":\[\],.*"estimated_total":5.00\}$']



=== TEST 8: coupons that are unknown, not valid yet, expired, or not a code: 422; not a string: 400; nothing changes
--- init
CartShop::reset_promotions();
CartShop::promotion('{"code":"SOON","type":"percent","value":5,"starts_at":"2099-01-01T00:00:00Z"}');
CartShop::promotion('{"code":"OLD","type":"percent","value":5,"expires_at":"2020-01-01T00:00:00Z"}');
CartShop::cart('q8', [['A-1', 1, 2999, 'seller-a']]);
--- request eval
["POST /api/v1/cart/coupons\n{\"code\":\"SOON\"}",
 "POST /api/v1/cart/coupons\n{\"code\":\"OLD\"}",
 "POST /api/v1/cart/coupons\n{\"code\":\"NOSUCH\"}",
 "POST /api/v1/cart/coupons\n{\"code\":\"no such!\"}",
 "POST /api/v1/cart/coupons\n{\"code\":10}",
 "POST /api/v1/cart/coupons\n{}",
 "POST /api/v1/cart/coupons\n{\"code\":\"SOON\"",
 "GET /api/v1/cart"]
--- more_headers
X-User-Id: q8
Content-Type: application/json
--- error_code eval
[422, 422, 422, 422, 400, 400, 400, 200]
--- response_body_like eval
['^\{"error":\{"code":"coupon_not_yet_valid","message":"[^"]+"\}\}$',
 '^\{"error":\{"code":"coupon_expired","message":"[^"]+"\}\}$',
 '^\{"error":\{"code":"coupon_unknown","message":"[^"]+"\}\}$',
 '"code":"coupon_unknown"', '"code":"invalid_field"', '"code":"invalid_field"',
 '"code":"invalid_json"',
 '"version":1,.*"promotions_applied":\[\],"coupon":null,']



=== TEST 9: stacking: automatic bundle, then automatic percent, then the one coupon, each on what is left
bundle 12.50 (B-2 free); 10% of the remaining 69.98 = 7.00; coupon 5.00
of the remaining 62.98. A second coupon replaces the first.
--- init
CartShop::reset_promotions();
CartShop::promotion('{"type":"bundle","skus":["A-1","A-2","B-2"],"bundle_quantity":3}');
CartShop::promotion('{"type":"percent","value":10}');
CartShop::promotion('{"code":"FIVE","type":"amount","value":5}');
CartShop::promotion('{"code":"ONE","type":"amount","value":1}');
CartShop::cart('q9', [['A-1', 2, 2999, 'seller-a'], ['A-2', 2, 500, 'seller-a'],
                      ['B-2', 1, 1250, 'seller-b']]);
--- request eval
["GET /api/v1/cart",
 "POST /api/v1/cart/coupons\n{\"code\":\"FIVE\"}",
 "POST /api/v1/cart/coupons\n{\"code\":\"ONE\"}"]
--- more_headers
X-User-Id: q9
Content-Type: application/json
--- response_body_like eval
['"promotions_applied":\[\{"id":"1","type":"bundle","discount":-12.50\},\{"id":"2","type":"percent","discount":-7.00\}\],"coupon":null,.*"discount":-19.50,"shipping_total":0.00,"estimated_total":62.98\}$',
 main::sellers(['seller-a', '69.98', '-12.00', '0.00', '57.98'], ['seller-b', '12.50', '-12.50', '0.00', '0.00'])
 . ',"promotions_applied":\[\{"id":"1","type":"bundle","discount":-12.50\},\{"id":"2","type":"percent","discount":-7.00\},\{"id":"3","code":"FIVE","type":"amount","discount":-5.00\}\],"coupon":\{"code":"FIVE","applied":true\},.*"discount":-24.50,"shipping_total":0.00,"estimated_total":57.98\}$',
 '"version":3,.*"promotions_applied":\[\{"id":"1","type":"bundle","discount":-12.50\},\{"id":"2","type":"percent","discount":-7.00\},\{"id":"4","code":"ONE","type":"amount","discount":-1.00\}\],"coupon":\{"code":"ONE","applied":true\},.*"estimated_total":61.98\}$']



=== TEST 10: DELETE /coupons/{code} removes the coupon (any case); another code is 404 and changes nothing
--- init
CartShop::reset_promotions();
CartShop::promotion('{"code":"SAVE10","type":"percent","value":10}');
CartShop::cart('q10', [['A-1', 1, 2999, 'seller-a']], '#c', 'SAVE10');
--- request eval
["DELETE /api/v1/cart/coupons/OTHER", "DELETE /api/v1/cart/coupons/save10",
 "DELETE /api/v1/cart/coupons/SAVE10", "GET /api/v1/cart"]
--- more_headers
X-User-Id: q10
--- error_code eval
[404, 200, 404, 200]
--- response_body_like eval
['^\{"error":\{"code":"coupon_not_found","message":"[^"]+"\}\}$',
 '^\{"cart_id":"cart:user-q10","removed":"SAVE10","version":2\}$',
 '"code":"coupon_not_found"',
 '"version":2,.*"promotions_applied":\[\],"coupon":null,.*"estimated_total":29.99\}$']



=== TEST 11: a coupon that stopped being valid after it was applied: shown as not applied, refused at checkout, nothing changes
--- init
CartShop::reset_promotions();
CartShop::promotion('{"code":"GONE10","type":"percent","value":10}');
CartShop::cart('q11', [['A-1', 1, 2999, 'seller-a']], '#c', 'GONE10', '#a', 'US|94107');
(CartClient::request('DELETE', '/admin/cart/promotions/1'))[0] == 200
    or die "delete failed\n";
--- request eval
["GET /api/v1/cart", "POST /api/v1/cart/checkout", "GET /api/v1/cart/count"]
--- more_headers
X-User-Id: q11
--- error_code eval
[200, 422, 200]
--- response_body_like eval
['"promotions_applied":\[\],"coupon":\{"code":"GONE10","applied":false,"reason":"coupon_unknown"\},',
 '^\{"error":\{"code":"coupon_unknown","message":"[^"]+"\}\}$', '^\{"item_count":1\}$']



=== TEST 12: applying a coupon is idempotent with a key; the same key for another code is refused
--- init
CartShop::reset_promotions();
CartShop::promotion('{"code":"SAVE10","type":"percent","value":10}');
CartShop::promotion('{"code":"ONE","type":"amount","value":1}');
CartShop::cart('q12', [['A-1', 1, 2999, 'seller-a']]);
redis_cmd('DEL', 'idem:{user-q12}:c1');
--- request eval
["POST /api/v1/cart/coupons\n{\"code\":\"SAVE10\"}",
 "POST /api/v1/cart/coupons\n{\"code\":\"SAVE10\"}",
 "POST /api/v1/cart/coupons\n{\"code\":\"ONE\"}",
 "GET /api/v1/cart/count"]
--- more_headers eval
[("X-User-Id: q12\nContent-Type: application/json\nIdempotency-Key: c1") x 3, "X-User-Id: q12"]
--- error_code eval
[200, 200, 422, 200]
--- response_headers eval
[{'!Idempotent-Replayed' => '', 'ETag' => '"2"'}, {'Idempotent-Replayed' => 'true', 'ETag' => '"2"'}, {}, {}]
--- response_body_like eval
['"version":2,.*"coupon":\{"code":"SAVE10","applied":true\},.*"estimated_total":26.99\}$',
 '"version":2,.*"coupon":\{"code":"SAVE10","applied":true\},.*"estimated_total":26.99\}$',
 '"code":"idempotency_mismatch"', '^\{"item_count":1\}$']



=== TEST 13: max_redemptions: applying does not consume, checkout does; the second checkout finds it used up and changes nothing
--- init
CartShop::reset_promotions();
CartShop::promotion('{"code":"ONCE","type":"amount","value":2,"max_redemptions":1}');
CartShop::cart('q13a', [['A-1', 1, 2999, 'seller-a']], '#a', 'US|94107');
CartShop::cart('q13b', [['A-2', 1, 500, 'seller-a']], '#a', 'US|94107');
CartShop::cart('q13c', [['A-2', 1, 500, 'seller-a']]);
--- request eval
["POST /api/v1/cart/coupons\n{\"code\":\"ONCE\"}",
 "POST /api/v1/cart/coupons\n{\"code\":\"ONCE\"}",
 "POST /api/v1/cart/checkout",
 "POST /api/v1/cart/checkout",
 "GET /api/v1/cart/count",
 "POST /api/v1/cart/coupons\n{\"code\":\"ONCE\"}",
 "GET /admin/cart/promotions/1"]
--- more_headers eval
[map { "X-User-Id: $_\nContent-Type: application/json" } qw(q13a q13b q13a q13b q13b q13c q13c)]
--- error_code eval
[200, 200, 200, 422, 200, 422, 200]
--- response_body_like eval
['"coupon":\{"code":"ONCE","applied":true\}', '"coupon":\{"code":"ONCE","applied":true\}',
 '"promotions_applied":\[\{"id":"1","code":"ONCE","type":"amount","discount":-2.00\}\],.*"total":32.98,',
 '^\{"error":\{"code":"coupon_exhausted","message":"[^"]+"\}\}$',
 '^\{"item_count":1\}$',
 '"code":"coupon_exhausted"', '"max_redemptions":1,.*"redemptions":1\}$']



=== TEST 14: max_per_user: the same user's second order cannot use it again
--- init
CartShop::reset_promotions();
CartShop::promotion('{"code":"MINE","type":"amount","value":2,"max_per_user":1}');
CartShop::cart('q14', [['A-1', 1, 2999, 'seller-a']], '#a', 'US|94107', '#c', 'MINE');
--- request eval
["POST /api/v1/cart/checkout",
 "POST /api/v1/cart/items\n{\"sku_id\":\"A-2\",\"quantity\":1}",
 "POST /api/v1/cart/coupons\n{\"code\":\"MINE\"}",
 "GET /admin/cart/promotions/1"]
--- more_headers
X-User-Id: q14
Content-Type: application/json
--- error_code eval
[200, 200, 422, 200]
--- response_body_like eval
['"code":"MINE"', '"item_count":1,', '^\{"error":\{"code":"coupon_limit_reached","message":"[^"]+"\}\}$',
 '"redemptions":1\}$']



=== TEST 15: an automatic promotion used up is left out at checkout, which goes on without it
--- init
CartShop::reset_promotions();
CartShop::promotion('{"type":"percent","value":10,"max_redemptions":1}');
CartShop::cart('q15a', [['A-1', 1, 2999, 'seller-a']], '#a', 'US|94107');
CartShop::cart('q15b', [['A-1', 1, 2999, 'seller-a']], '#a', 'US|94107');
--- request eval
["POST /api/v1/cart/checkout", "GET /api/v1/cart", "POST /api/v1/cart/checkout"]
--- more_headers eval
["X-User-Id: q15a", "X-User-Id: q15b", "X-User-Id: q15b"]
--- error_code eval
[200, 200, 200]
--- response_body_like eval
['"promotions_applied":\[\{"id":"1","type":"percent","discount":-3.00\}\],.*"subtotal":29.99,"discount":-3.00,"shipping_total":4.99,"total":31.98,',
 '"promotions_applied":\[\{"id":"1","type":"percent","discount":-3.00\}\],.*"estimated_total":31.98\}$',
 '"promotions_applied":\[\],.*"subtotal":29.99,"discount":0.00,"shipping_total":4.99,"total":34.98,']



=== TEST 16: 20 checkouts at once for a coupon with 5 redemptions: exactly 5 get it
--- init
CartShop::reset_promotions();
CartShop::promotion('{"code":"FIRST5","type":"amount","value":1,"max_redemptions":5}');
CartShop::cart("q16-$_", [['B-2', 1, 1250, 'seller-b']], '#a', 'US|94107', '#c', 'FIRST5') for 1 .. 20;
my @r = CartClient::parallel(20, sub {
    my ($status, $body) = CartClient::request('POST', '/api/v1/cart/checkout', "q16-$_[0]");
    return $status == 200 && $body =~ /"total":13.50,/ ? 'ok'
         : $status == 422 && $body =~ /"coupon_exhausted"/ ? 'exhausted'
         : "$status $body";
});
my $ok = grep { $_ eq 'ok' } @r;
my $out = grep { $_ eq 'exhausted' } @r;
die "checkouts: @r\n" unless $ok == 5 && $out == 15;
--- request
GET /admin/cart/promotions/1
--- response_body_like: "max_redemptions":5,.*"redemptions":5\}$
--- timeout: 10
