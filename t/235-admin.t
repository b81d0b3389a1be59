# The promotions admin API below a cart_admin location: create, list,
# read, delete; every invalid body refused (400 / 422 / 409) with nothing
# stored.

use lib 't/lib';
use CartTest;
use CartShop;

plan 'no_plan';
no_shuffle();
add_block_preprocessor(\&CartShop::prepare);

our $Created = '"created_at":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"';

run_tests();

__DATA__

=== TEST 1: create every kind; the stored document is normalised and gets an id
--- init
CartShop::reset_promotions();
--- request eval
["POST /admin/cart/promotions\n{\"code\":\"save10\",\"type\":\"percent\",\"value\":10,\"min_subtotal\":50,\"max_redemptions\":100,\"max_per_user\":1,\"starts_at\":\"2026-01-01T00:00:00Z\",\"expires_at\":\"2099-12-31T23:59:59Z\"}",
 "POST /admin/cart/promotions\n{\"type\":\"amount\",\"value\":5.5,\"seller_id\":\"seller-a\",\"code\":null}",
 "POST /admin/cart/promotions\n{\"type\":\"bundle\",\"skus\":[\"A-1\",\"A-2\"],\"bundle_quantity\":3}",
 "POST /admin/cart/promotions\n{\"type\":\"bundle\",\"skus\":[\"A-2\"],\"bundle_quantity\":2,\"value\":12.5}",
 "POST /admin/cart/promotions\n{\"type\":\"bundle\",\"skus\":[\"A-2\"],\"bundle_quantity\":2,\"bundle_discount\":\"amount\",\"value\":1}",
 "POST /admin/cart/promotions\n{\"type\":\"free_shipping\",\"min_subtotal\":49.99,\"code\":\"SHIPFREE\"}"]
--- more_headers
Content-Type: application/json
--- error_code eval
[201, 201, 201, 201, 201, 201]
--- response_body_like eval
["^\\{\"id\":\"1\",\"code\":\"SAVE10\",\"type\":\"percent\",\"value\":10.00,\"min_subtotal\":50.00,\"starts_at\":\"2026-01-01T00:00:00Z\",\"expires_at\":\"2099-12-31T23:59:59Z\",\"max_redemptions\":100,\"max_per_user\":1,$main::Created\\}\$",
 "^\\{\"id\":\"2\",\"type\":\"amount\",\"value\":5.50,\"seller_id\":\"seller-a\",$main::Created\\}\$",
 "^\\{\"id\":\"3\",\"type\":\"bundle\",\"bundle_quantity\":3,\"bundle_discount\":\"cheapest_free\",\"skus\":\\[\"A-1\",\"A-2\"\\],$main::Created\\}\$",
 "^\\{\"id\":\"4\",\"type\":\"bundle\",\"value\":12.50,\"bundle_quantity\":2,\"bundle_discount\":\"percent\",\"skus\":\\[\"A-2\"\\],$main::Created\\}\$",
 "^\\{\"id\":\"5\",\"type\":\"bundle\",\"value\":1.00,\"bundle_quantity\":2,\"bundle_discount\":\"amount\",\"skus\":\\[\"A-2\"\\],$main::Created\\}\$",
 "^\\{\"id\":\"6\",\"code\":\"SHIPFREE\",\"type\":\"free_shipping\",\"min_subtotal\":49.99,$main::Created\\}\$"]



=== TEST 2: list, read (with its redemptions), delete, and the code is free again
--- init
CartShop::reset_promotions();
CartShop::promotion('{"code":"A","type":"percent","value":10}');
CartShop::promotion('{"code":"B","type":"amount","value":1}');
redis_cmd('HSET', 'promo_use:{promo-2}', 'n', 7);
--- request eval
["GET /admin/cart/promotions", "GET /admin/cart/promotions/2",
 "DELETE /admin/cart/promotions/1", "GET /admin/cart/promotions/1",
 "DELETE /admin/cart/promotions/1", "GET /admin/cart/promotions",
 "POST /admin/cart/promotions\n{\"code\":\"a\",\"type\":\"amount\",\"value\":2}"]
--- more_headers
Content-Type: application/json
--- error_code eval
[200, 200, 200, 404, 404, 200, 201]
--- response_body_like eval
["^\\{\"promotions\":\\[\\{\"id\":\"1\",\"code\":\"A\",\"type\":\"percent\",\"value\":10.00,$main::Created\\},\\{\"id\":\"2\",\"code\":\"B\",\"type\":\"amount\",\"value\":1.00,$main::Created\\}\\]\\}\$",
 "^\\{\"id\":\"2\",\"code\":\"B\",\"type\":\"amount\",\"value\":1.00,$main::Created,\"redemptions\":7\\}\$",
 "^\\{\"id\":\"1\",\"code\":\"A\",",
 "^\\{\"error\":\\{\"code\":\"promotion_not_found\",\"message\":\"[^\"]+\"\\}\\}\$",
 "\"code\":\"promotion_not_found\"",
 "^\\{\"promotions\":\\[\\{\"id\":\"2\",\"code\":\"B\",[^}]+\\}\\]\\}\$",
 "^\\{\"id\":\"3\",\"code\":\"A\",\"type\":\"amount\""]



=== TEST 3: bodies that are malformed or mistyped: 400, nothing stored
--- init
CartShop::reset_promotions();
--- request eval
[(map { "POST /admin/cart/promotions\n$_" }
  '[{"type":"percent","value":10}]',
  '{"value":10}',
  '{"type":3,"value":10}',
  '{"type":"percent","value":"10"}',
  '{"type":"percent","value":10,"skus":"A-1"}',
  '{"type":"percent","value":10,"skus":["A-1",2]}',
  '{"type":"bundle","skus":["A-1"],"bundle_quantity":"2"}',
  '{"type":"percent","value":10,"max_redemptions":1.5}',
  '{"type":"percent","value":10,"amount_off":5}',
  '{"type":"percent","value":10,"starts_at":1767225600}',
  '{"type":"percent","value":10,"id":"7"}',
  '{"type":"percent","value":10,"code":7}',
  '{"type":"percent","value":1e1}',
  '{"type":"percent","value":10.005}'),
 "GET /admin/cart/promotions"]
--- more_headers
Content-Type: application/json
--- error_code eval
[(400) x 14, 200]
--- response_body_like eval
['"code":"invalid_json"', ('^\{"error":\{"code":"invalid_field","message":"[^"]+"\}\}$') x 7,
 '"message":"unknown field \\\\"amount_off\\\\""', '"code":"invalid_field"',
 '"message":"unknown field \\\\"id\\\\""', '"code":"invalid_field"',
 '"code":"invalid_field"', '"message":"value must be a number with at most two decimals"',
 '^\{"promotions":\[\]\}$']



=== TEST 4: values out of range or inconsistent: 422, nothing stored
--- init
CartShop::reset_promotions();
--- request eval
[(map { "POST /admin/cart/promotions\n$_" }
  '{"type":"bogus","value":10}',
  '{"type":"percent"}',
  '{"type":"percent","value":0}',
  '{"type":"percent","value":100.01}',
  '{"type":"amount"}',
  '{"type":"amount","value":-1}',
  '{"type":"free_shipping","value":5}',
  '{"type":"bundle","skus":["A-1"],"bundle_quantity":1}',
  '{"type":"bundle","skus":["A-1"]}',
  '{"type":"bundle","skus":["A-1"],"bundle_quantity":3,"bundle_discount":"cheapest_free","value":5}',
  '{"type":"bundle","skus":["A-1"],"bundle_quantity":3,"bundle_discount":"percent","value":101}',
  '{"type":"bundle","skus":["A-1"],"bundle_quantity":3,"bundle_discount":"amount"}',
  '{"type":"bundle","skus":["A-1"],"bundle_quantity":3,"bundle_discount":"half"}',
  '{"type":"percent","value":10,"bundle_quantity":3}',
  '{"type":"percent","value":10,"code":"TWO WORDS"}',
  '{"type":"percent","value":10,"code":"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456"}',
  '{"type":"percent","value":10,"skus":[]}',
  '{"type":"percent","value":10,"skus":["A|1"]}',
  '{"type":"percent","value":10,"seller_id":"s x"}',
  '{"type":"percent","value":10,"min_subtotal":-5}',
  '{"type":"percent","value":10,"starts_at":"2026-13-01T00:00:00Z"}',
  '{"type":"percent","value":10,"starts_at":"2026-02-29T00:00:00Z"}',
  '{"type":"percent","value":10,"expires_at":"2026-01-01 00:00:00"}',
  '{"type":"percent","value":10,"starts_at":"2026-06-01T00:00:00Z","expires_at":"2026-06-01T00:00:00Z"}',
  '{"type":"percent","value":10,"max_per_user":0}'),
 "GET /admin/cart/promotions"]
--- more_headers
Content-Type: application/json
--- error_code eval
[(422) x 25, 200]
--- response_body_like eval
[('^\{"error":\{"code":"invalid_promotion","message":"[^"]+"\}\}$') x 25, '^\{"promotions":\[\]\}$']



=== TEST 5: a code is unique, whatever its case: 409, the first one stays
--- init
CartShop::reset_promotions();
CartShop::promotion('{"code":"Welcome","type":"percent","value":10}');
--- request eval
["POST /admin/cart/promotions\n{\"code\":\"WELCOME\",\"type\":\"amount\",\"value\":5}",
 "GET /admin/cart/promotions"]
--- more_headers
Content-Type: application/json
--- error_code eval
[409, 200]
--- response_body_like eval
['^\{"error":\{"code":"code_exists","message":"[^"]+"\}\}$',
 '^\{"promotions":\[\{"id":"1","code":"WELCOME","type":"percent",[^}]+\}\]\}$']



=== TEST 6: routes: unknown resource, wrong method, bad id; no identity needed; not below cart_api
--- init
CartShop::reset_promotions();
--- request eval
["GET /admin/cart/coupons", "PUT /admin/cart/promotions\n{}", "GET /admin/cart/promotions/x%7Cy",
 "GET /admin/cart/promotions/99", "POST /api/v1/cart/promotions\n{\"type\":\"percent\",\"value\":1}"]
--- more_headers eval
["", "Content-Type: application/json", "", "", "X-User-Id: m6\nContent-Type: application/json"]
--- error_code eval
[404, 405, 400, 404, 404]
--- response_body_like eval
['"code":"not_found"', '"code":"method_not_allowed"', '"code":"invalid_sku"',
 '"code":"promotion_not_found"', '"code":"not_found"']
