# Idempotency-Key (replay, mismatch, in flight) and If-Match / ETag.

use lib 't/lib';
use CartTest;
use CartConf;
use CartClient;

plan 'no_plan';
no_shuffle();
add_block_preprocessor(\&CartConf::default_config);

# A catalog that takes about two seconds to answer SKU-SLOW: a proxied
# subrequest to a location whose body is rate limited.
our $SlowCatalog = <<'_EOC_' . $CartConf::Catalog;
    subrequest_output_buffer_size 16k;
    location /api/v1/cart {
        cart_api;
        cart_user $http_x_user_id;
        cart_catalog /_slow/$cart_sku;
    }
    location /nocatalog {
        cart_api;
        cart_user $http_x_user_id;
    }
    location /_slow/ {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NGINX_PORT/slowcat/;
    }
    location /slowcat/ {
        limit_rate 1024;
        limit_rate_after 0;
        default_type application/json;
        return 200 '{"sku_id":"SKU-SLOW","price":12.50,"seller_id":"s-slow","pad":"________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________________"}';
    }
_EOC_

run_tests();

__DATA__

=== TEST 1: a repeated add with the same key is replayed and changes nothing
--- init
redis_cmd('DEL', 'cart:{user-d1}', 'cart_count:{user-d1}', 'idem:{user-d1}:add-1');
--- request eval
["POST /api/v1/cart/items\n{\"sku_id\":\"SKU-1\",\"quantity\":2}",
 "POST /api/v1/cart/items\n{\"sku_id\":\"SKU-1\",\"quantity\":2}",
 "POST /api/v1/cart/items\n{ \"quantity\" : 2, \"sku_id\" : \"SKU-1\" }",
 "GET /nocatalog/count"]
--- more_headers eval
["X-User-Id: d1\nContent-Type: application/json\nIdempotency-Key: add-1",
 "X-User-Id: d1\nContent-Type: application/json\nIdempotency-Key: add-1",
 "X-User-Id: d1\nContent-Type: application/json\nIdempotency-Key: add-1",
 "X-User-Id: d1"]
--- response_headers eval
[{'!Idempotent-Replayed' => '', 'ETag' => '"1"'},
 {'Idempotent-Replayed' => 'true', 'ETag' => '"1"'},
 {'Idempotent-Replayed' => 'true'},
 {}]
--- response_body eval
['{"cart_id":"cart:user-d1","item_count":2,"item":{"sku_id":"SKU-1","quantity":2,"price":29.99,"seller_id":"seller-1"},"version":1}',
 '{"cart_id":"cart:user-d1","item_count":2,"item":{"sku_id":"SKU-1","quantity":2,"price":29.99,"seller_id":"seller-1"},"version":1}',
 '{"cart_id":"cart:user-d1","item_count":2,"item":{"sku_id":"SKU-1","quantity":2,"price":29.99,"seller_id":"seller-1"},"version":1}',
 '{"item_count":2}']



=== TEST 2: the same key with another body is refused (422) and changes nothing
--- init
redis_cmd('DEL', 'cart:{user-d2}', 'cart_count:{user-d2}', 'idem:{user-d2}:k');
--- request eval
["POST /api/v1/cart/items\n{\"sku_id\":\"SKU-1\",\"quantity\":1}",
 "POST /api/v1/cart/items\n{\"sku_id\":\"SKU-1\",\"quantity\":5}",
 "PUT /api/v1/cart/items/SKU-1\n{\"quantity\":1}",
 "GET /nocatalog/count"]
--- more_headers eval
["X-User-Id: d2\nContent-Type: application/json\nIdempotency-Key: k",
 "X-User-Id: d2\nContent-Type: application/json\nIdempotency-Key: k",
 "X-User-Id: d2\nContent-Type: application/json\nIdempotency-Key: k",
 "X-User-Id: d2"]
--- error_code eval
[200, 422, 422, 200]
--- response_body_like eval
['"version":1', '^\{"error":\{"code":"idempotency_mismatch","message":"[^"]+"\}\}$',
 '"code":"idempotency_mismatch"', '^\{"item_count":1\}$']



=== TEST 3: keys are per user: the same key of another user is another request
--- init
redis_cmd('DEL', 'cart:{user-d3a}', 'cart_count:{user-d3a}', 'idem:{user-d3a}:shared', 'cart:{user-d3b}', 'cart_count:{user-d3b}', 'idem:{user-d3b}:shared');
--- request eval
["POST /api/v1/cart/items\n{\"sku_id\":\"SKU-2\",\"quantity\":1}",
 "POST /api/v1/cart/items\n{\"sku_id\":\"SKU-2\",\"quantity\":1}"]
--- more_headers eval
["X-User-Id: d3a\nContent-Type: application/json\nIdempotency-Key: shared",
 "X-User-Id: d3b\nContent-Type: application/json\nIdempotency-Key: shared"]
--- response_headers eval
[{'!Idempotent-Replayed' => ''}, {'!Idempotent-Replayed' => ''}]
--- response_body_like eval
['"cart_id":"cart:user-d3a"', '"cart_id":"cart:user-d3b"']



=== TEST 4: PUT and DELETE with a key are replayed too
--- init
CartClient::seed('d4');
redis_cmd('DEL', 'idem:{user-d4}:p', 'idem:{user-d4}:d');
--- request eval
["PUT /api/v1/cart/items/SKU-1\n{\"quantity\":4}",
 "PUT /api/v1/cart/items/SKU-1\n{\"quantity\":4}",
 "DELETE /api/v1/cart/items/SKU-1",
 "DELETE /api/v1/cart/items/SKU-1"]
--- more_headers eval
["X-User-Id: d4\nContent-Type: application/json\nIdempotency-Key: p",
 "X-User-Id: d4\nContent-Type: application/json\nIdempotency-Key: p",
 "X-User-Id: d4\nIdempotency-Key: d",
 "X-User-Id: d4\nIdempotency-Key: d"]
--- response_body eval
['{"cart_id":"cart:user-d4","item_count":4,"item":{"sku_id":"SKU-1","quantity":4,"price":29.99,"seller_id":"seller-1"},"version":6}',
 '{"cart_id":"cart:user-d4","item_count":4,"item":{"sku_id":"SKU-1","quantity":4,"price":29.99,"seller_id":"seller-1"},"version":6}',
 '{"cart_id":"cart:user-d4","item_count":0,"item":{"sku_id":"SKU-1","quantity":0,"price":29.99,"seller_id":"seller-1"},"version":7}',
 '{"cart_id":"cart:user-d4","item_count":0,"item":{"sku_id":"SKU-1","quantity":0,"price":29.99,"seller_id":"seller-1"},"version":7}']



=== TEST 5: while the first request with a key is in flight, a retry gets 409; then its replay
--- config eval: $main::SlowCatalog
--- init
redis_cmd('DEL', 'cart:{user-d7}', 'cart_count:{user-d7}', 'idem:{user-d7}:slow');
# the first add waits about two seconds for the catalog, in the background
if (fork() == 0) {
    CartClient::request('POST', '/api/v1/cart/items', 'd7',
                        '{"sku_id":"SKU-SLOW","quantity":1}',
                        'Idempotency-Key' => 'slow');
    require POSIX; POSIX::_exit(0);
}
select(undef, undef, undef, 0.5);
--- request eval
["POST /api/v1/cart/items\n{\"sku_id\":\"SKU-SLOW\",\"quantity\":1}",
 "GET /slowcat/wait", "GET /slowcat/wait",
 "POST /api/v1/cart/items\n{\"sku_id\":\"SKU-SLOW\",\"quantity\":1}",
 "GET /nocatalog/count"]
--- more_headers eval
["X-User-Id: d7\nContent-Type: application/json\nIdempotency-Key: slow", "", "",
 "X-User-Id: d7\nContent-Type: application/json\nIdempotency-Key: slow", "X-User-Id: d7"]
--- error_code eval
[409, 200, 200, 200, 200]
--- response_headers eval
[{}, {}, {}, {'Idempotent-Replayed' => 'true'}, {}]
--- response_body_like eval
['^\{"error":\{"code":"idempotency_in_flight","message":"[^"]+"\}\}$',
 'SKU-SLOW', 'SKU-SLOW',
 '^\{"cart_id":"cart:user-d7","item_count":1,"item":\{"sku_id":"SKU-SLOW","quantity":1,"price":12.50,"seller_id":"s-slow"\},"version":1\}$',
 '^\{"item_count":1\}$']
--- timeout: 15



=== TEST 6: a failed add gives its key back: the retry is a new attempt
--- init
redis_cmd('DEL', 'cart:{user-d9}', 'cart_count:{user-d9}', 'idem:{user-d9}:r');
--- request eval
["POST /api/v1/cart/items\n{\"sku_id\":\"SKU-DOWN\",\"quantity\":1}",
 "POST /api/v1/cart/items\n{\"sku_id\":\"SKU-DOWN\",\"quantity\":1}"]
--- more_headers
X-User-Id: d9
Content-Type: application/json
Idempotency-Key: r
--- error_code eval
[503, 503]
--- response_body_like eval
['"code":"catalog_unavailable"', '"code":"catalog_unavailable"']



=== TEST 7: If-Match with the current ETag succeeds and answers the next ETag
--- init
CartClient::seed('d10');
--- request eval
["PUT /api/v1/cart/items/SKU-1\n{\"quantity\":3}",
 "PUT /api/v1/cart/items/SKU-1\n{\"quantity\":4}",
 "PUT /api/v1/cart/items/SKU-1\n{\"quantity\":5}",
 "POST /api/v1/cart/items\n{\"sku_id\":\"SKU-1\",\"quantity\":1}",
 "GET /nocatalog/count"]
--- more_headers eval
["X-User-Id: d10\nContent-Type: application/json\nIf-Match: \"5\"",
 "X-User-Id: d10\nContent-Type: application/json\nIf-Match: \"5\"",
 "X-User-Id: d10\nContent-Type: application/json\nIf-Match: W/\"6\"",
 "X-User-Id: d10\nContent-Type: application/json\nIf-Match: *",
 "X-User-Id: d10"]
--- error_code eval
[200, 412, 200, 200, 200]
--- response_headers eval
[{'ETag' => '"6"'}, {'!ETag' => ''}, {'ETag' => '"7"'}, {'ETag' => '"8"'}, {}]
--- response_body_like eval
['"quantity":3', '"code":"precondition_failed"', '"quantity":5', '"quantity":6', '^\{"item_count":6\}$']



=== TEST 8: GET with If-None-Match of the current ETag is 304
--- init
CartClient::seed('d11');
--- request eval
["GET /nocatalog", "GET /nocatalog"]
--- more_headers eval
["X-User-Id: d11\nIf-None-Match: \"5\"", "X-User-Id: d11\nIf-None-Match: \"4\""]
--- error_code eval
[304, 200]
--- response_body_like eval
['^$', '"version":5']
