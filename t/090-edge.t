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



=== TEST 3: chunked request bodies are read on every write endpoint
--- init
CartShop::reset_promotions();
CartShop::cart('e3', [['A-1', 1, 2999, 'seller-a']]);
--- request eval
sub chunked { my ($line, $body) = @_;
              "$line\n" . sprintf("%x\r\n%s\r\n0\r\n\r\n", length($body), $body) }
[chunked("POST /api/v1/cart/items", '{"sku_id":"A-2","quantity":2}'),
 chunked("PUT /api/v1/cart/items/A-2", '{"quantity":1}'),
 chunked("PUT /api/v1/cart/shipping-address", '{"country":"US","postal_code":"94107"}'),
 chunked("POST /admin/cart/promotions", '{"type":"percent","value":10,"code":"EDGE10"}'),
 chunked("POST /api/v1/cart/coupons", '{"code":"EDGE10"}'),
 chunked("POST /api/v1/cart/checkout", '{"accept_price_increase":true}')]
--- more_headers
X-User-Id: e3
Content-Type: application/json
Transfer-Encoding: chunked
--- error_code eval
[200, 200, 200, 201, 200, 200]
--- response_body_like eval
['"item":\{"sku_id":"A-2","quantity":2,', '"item":\{"sku_id":"A-2","quantity":1,',
 '"shipping_address":\{"country":"US","postal_code":"94107"\}', '"code":"EDGE10"',
 '"coupon":\{"code":"EDGE10","applied":true', '"checkout_id":"[0-9a-f]+"']



=== TEST 4: an empty body is 400 invalid_json, with Content-Length: 0 and chunked alike
--- init
redis_cmd('DEL', 'cart:{user-e4}', 'cart_count:{user-e4}');
--- request eval
["POST /api/v1/cart/items\n", "POST /api/v1/cart/items\n0\r\n\r\n",
 "GET /api/v1/cart/count"]
--- more_headers eval
["X-User-Id: e4\nContent-Type: application/json\nContent-Length: 0",
 "X-User-Id: e4\nContent-Type: application/json\nTransfer-Encoding: chunked",
 "X-User-Id: e4"]
--- error_code eval
[400, 400, 200]
--- response_body_like eval
['"code":"invalid_json"', '"code":"invalid_json"', '^\{"item_count":0\}$']



=== TEST 5: HTTP/1.0 and Connection: close clients get whole answers
--- init
redis_cmd('DEL', 'cart:{user-e5}', 'cart_count:{user-e5}');
--- request eval
["POST /api/v1/cart/items HTTP/1.0\n{\"sku_id\":\"A-1\",\"quantity\":1}",
 "POST /api/v1/cart/items\n{\"sku_id\":\"A-2\",\"quantity\":1}",
 "GET /api/v1/cart HTTP/1.0"]
--- more_headers eval
["X-User-Id: e5\nContent-Type: application/json",
 "X-User-Id: e5\nContent-Type: application/json\nConnection: close",
 "X-User-Id: e5"]
--- error_code eval
[200, 200, 200]
--- response_body_like eval
['"item_count":1,', '"item_count":2,', '"item_count":2,.*"estimated_total":34.99\}$']



=== TEST 6: lookups reach the shop as bodiless GETs without the client's body headers, cookies or credentials; keepalive upstream connections stay in step
--- init
redis_cmd('DEL', 'cart:{user-e6}', 'cart_count:{user-e6}');
my @status = map {
    (CartClient::request('POST', '/api/v1/cart/items', 'e6',
                         '{"sku_id":"A-1","quantity":1}',
                         Cookie => 'session=secret-cookie',
                         Authorization => 'Bearer secret-token',
                         'If-Match' => '*'))[0]
} 1 .. 6;
Test::More::is("@status", '200 200 200 200 200 200', 'six adds in a row all succeed');
my @log = grep { m{^GET /_catalog/A-1 } } CartShop::shop_log();
Test::More::is(scalar @log, 6, 'six catalog lookups, all GET');
Test::More::is(scalar(grep { / cl=- te=- cookie=- auth=-$/ } @log), 6,
               'none with Content-Length, Transfer-Encoding, Cookie or Authorization')
    or Test::More::diag(join("\n", @log));
--- request
GET /api/v1/cart/count
--- more_headers
X-User-Id: e6
--- response_body chomp
{"item_count":6}
--- no_error_log
[error]



=== TEST 7: strict JSON: duplicate keys, comments and "\u0000" in a string are 400 and change nothing
--- init
redis_cmd('DEL', 'cart:{user-e8}', 'cart_count:{user-e8}');
--- request eval
["POST /api/v1/cart/items\n{\"sku_id\":\"A-1\",\"quantity\":1,\"quantity\":50}",
 "POST /api/v1/cart/items\n{\"sku_id\":\"A-1\",\"sku_id\":\"A-2\",\"quantity\":1}",
 "POST /api/v1/cart/items\n{\"sku_id\":\"A-1\",/*c*/\"quantity\":1}",
 "POST /api/v1/cart/items\n{\"sku_id\":\"A-1\",\"quantity\":1}// trailing",
 "POST /api/v1/cart/items\n{\"sku_id\":\"A-1\\u0000x\",\"quantity\":1}",
 "POST /api/v1/cart/items\n{\"sku_id\":\"A-1\",\"quantity\":1,\"a\\u0000\":1}",
 "GET /api/v1/cart/count"]
--- more_headers
X-User-Id: e8
Content-Type: application/json
--- error_code eval
[400, 400, 400, 400, 400, 400, 200]
--- response_body_like eval
[('"code":"invalid_json"') x 6, '^\{"item_count":0\}$']



=== TEST 8: nginx's own errors on a cart location are JSON: client_max_body_size, limit_req, access
--- http_config
limit_req_zone $http_x_user_id zone=carts:1m rate=1r/m;
--- config eval
$CartShop::Config =~ s#location /api/v1/cart \{#location /api/v1/cart {
        client_max_body_size 1k;
        limit_req zone=carts nodelay;
        limit_req_status 429;#r
. <<'_EOC_'
    location /denied {
        cart_api;
        cart_user $http_x_user_id;
        deny all;
    }
_EOC_
--- init
redis_cmd('DEL', 'cart:{user-e9}', 'cart_count:{user-e9}');
--- request eval
["POST /api/v1/cart/items\n{\"sku_id\":\"A-1\",\"quantity\":1,\"pad\":\"" . ('x' x 2000) . "\"}",
 "GET /api/v1/cart/count", "GET /api/v1/cart/count", "GET /denied/count"]
--- more_headers
X-User-Id: e9
Content-Type: application/json
--- error_code eval
[413, 200, 429, 403]
--- response_headers eval
[{'Content-Type' => 'application/json', 'Cache-Control' => 'no-store'},
 {'Content-Type' => 'application/json'},
 {'Content-Type' => 'application/json', 'Retry-After' => 1, 'Cache-Control' => 'no-store'},
 {'Content-Type' => 'application/json', 'Retry-After' => undef}]
--- response_body eval
['{"error":{"code":"body_too_large","message":"the request body is too large"}}',
 '{"item_count":0}',
 '{"error":{"code":"too_many_requests","message":"too many requests, retry later"}}',
 '{"error":{"code":"forbidden","message":"access is denied"}}']



=== TEST 9: other locations keep nginx's own pages
--- config eval
$CartShop::Config . <<'_EOC_'
    location /elsewhere {
        return 503;
    }
_EOC_
--- request
GET /elsewhere
--- error_code: 503
--- response_body_like: <html>



=== TEST 10: HTTP/2 (prior knowledge): bodies read, answers whole, no-store
--- http_config eval
"server {\n    listen 127.0.0.1:" . ($ENV{TEST_NGINX_PORT} + 8) . " http2;\n"
. "    location /h2 {\n        cart_api;\n        cart_user \$http_x_user_id;\n    }\n}\n"
--- init
redis_cmd('DEL', 'cart:{user-e10}', 'cart_count:{user-e10}');
my $base = 'http://127.0.0.1:' . ($ENV{TEST_NGINX_PORT} + 8) . '/h2';
sub h2 {
    my ($stdin, @args) = @_;
    my @cmd = ('curl', '-s', '-i', '--http2-prior-knowledge', '-H', 'X-User-Id: e10',
               '-H', 'Content-Type: application/json', @args);
    if (defined $stdin) {
        open(my $in, '|-', join(' ', map { "'$_'" } @cmd) . " > $ENV{TEST_NGINX_SERVROOT}/h2.out")
            or die "curl: $!";
        print {$in} $stdin;
        close $in;
        open(my $out, '<', "$ENV{TEST_NGINX_SERVROOT}/h2.out") or die;
        local $/;
        return <$out>;
    }
    open(my $out, '-|', @cmd) or die "curl: $!";
    local $/;
    return <$out>;
}
my $add = h2(undef, '-d', '{"sku_id":"A-1","quantity":2}', "$base/items");
Test::More::like($add, qr{^HTTP/2 200}, 'an add over HTTP/2');
Test::More::like($add, qr{^cache-control: no-store\r?$}mi, 'no-store');
Test::More::like($add, qr{"item_count":2,}, 'the body was read');
my $put = h2('{"quantity":5}', '-X', 'PUT', '--data-binary', '@-', "$base/items/A-1");
Test::More::like($put, qr{"quantity":5}, 'a body streamed from stdin');
my $bad = h2(undef, '-d', '{"sku_id":"A-1","quantity":1,"quantity":2}', "$base/items");
Test::More::like($bad, qr{^HTTP/2 400.*"code":"invalid_json"}s, 'strict JSON over HTTP/2 too');
--- request
GET /api/v1/cart/count
--- more_headers
X-User-Id: e10
--- response_body chomp
{"item_count":5}



=== TEST 11: an upstream document over subrequest_output_buffer_size: the add is 503, the view goes on unverified, checkout is 503 — never a dropped connection
--- init
CartShop::cart('e7', [['A-1', 1, 2999, 'seller-a'], ['BIG', 1, 100, 'seller-c']], '#a', 'US|94107');
--- request eval
["POST /api/v1/cart/items\n{\"sku_id\":\"BIG\",\"quantity\":1}",
 "GET /api/v1/cart",
 "POST /api/v1/cart/checkout\n{}",
 "GET /api/v1/cart"]
--- more_headers
X-User-Id: e7
Content-Type: application/json
--- error_code eval
[503, 200, 503, 200]
--- response_body_like eval
['"code":"catalog_unavailable"',
 '"sku_id":"BIG",[^}]*"price_verified":false',
 '"code":"catalog_unavailable"',
 '"item_count":2,']
--- error_log
is over subrequest_output_buffer_size



=== TEST 12: the same for a shared view (unverified price) and a copy (503, nothing copied)
--- init
CartShop::cart('e12', [['A-1', 1, 2999, 'seller-a'], ['BIG', 1, 100, 'seller-c']]);
redis_cmd('DEL', 'cart:{user-e12b}', 'cart_count:{user-e12b}');
redis_cmd('SET', 'share:{Edge-Token_0123456789abcdefghijk}', (time + 3600) . '|user-e12', 'EX', 3600);
--- request eval
["GET /api/v1/cart/shared/Edge-Token_0123456789abcdefghijk",
 "POST /api/v1/cart/shared/Edge-Token_0123456789abcdefghijk/copy",
 "GET /api/v1/cart/shared/Edge-Token_0123456789abcdefghijk"]
--- more_headers
X-User-Id: e12b
--- error_code eval
[200, 503, 200]
--- response_body_like eval
['"sku_id":"A-1",.*"item_count":2,', '"code":"catalog_unavailable"', '"item_count":2,']
--- error_log
is over subrequest_output_buffer_size



=== TEST 13: cart_subrequests bounds the lookups in flight: with 1, a 6-line cart's 18 lookups run one by one and all land
--- config eval
$CartShop::Config =~ s#location /api/v1/cart \{#location /api/v1/cart {
        cart_subrequests 1;#r
--- init
CartShop::cart('e13', [['A-1', 1, 2999, 'seller-a'], ['A-2', 1, 500, 'seller-a'],
                       ['B-1', 1, 99, 'seller-b'], ['B-2', 1, 1250, 'seller-b'],
                       ['C-1', 1, 10000, 'seller-c'], ['C-2', 1, 1999, 'seller-c']],
               '#a', 'US|94107');
--- request
GET /api/v1/cart
--- more_headers
X-User-Id: e13
--- response_body_like: "item_count":6,.*"warnings":\[\{"code":"out_of_stock","sku_id":"B-1",[^]]*\],.*"shipping_total":21.81,"estimated_total":190.28\}$
--- no_error_log
[error]



=== TEST 14: cart_lookup_timeout: a slow inventory (about 2 s) is given up at the deadline; the view answers on time, stock unverified
--- config eval
$CartShop::Config =~ s#location /api/v1/cart \{#location /api/v1/cart {
        cart_lookup_timeout 300ms;#r
--- init
CartShop::cart('e14', [['A-1', 1, 2999, 'seller-a'], ['SLOWINV', 1, 300, 'seller-c']]);
CartShop::cart('e14w', [['A-1', 1, 2999, 'seller-a']]);
# a first view warms the worker and the upstream connections (valgrind
# translates code on first use), so the deadline below is the inventory's
CartClient::request('GET', '/api/v1/cart', 'e14w');
my $t0 = Time::HiRes::time();
my ($status, $body) = CartClient::request('GET', '/api/v1/cart', 'e14');
my $took = Time::HiRes::time() - $t0;
Test::More::is($status, 200, 'the view answers');
Test::More::cmp_ok($took, '<', 1.5, 'well before the slow inventory would have');
Test::More::like($body, qr/"sku_id":"SLOWINV",[^}]*"stock_verified":false/, 'its stock unverified');
Test::More::like($body, qr/"sku_id":"A-1",[^}]*"in_stock":true/, 'the others verified');
--- request
GET /api/v1/cart/count
--- more_headers
X-User-Id: e14
--- response_body chomp
{"item_count":2}
--- error_log
lookups not done within cart_lookup_timeout



=== TEST 15: a catalog served from static files (read from disk, not in memory) is captured like any other
--- config
    location /files {
        cart_api;
        cart_user $http_x_user_id;
        cart_catalog /_files/$cart_sku.json;
    }
    location /_files/ {
        internal;
        alias $TEST_NGINX_HTML_DIR/catalog/;
        default_type application/json;
    }
--- user_files
>>> catalog/F-1.json
{"sku_id":"F-1","price":12.34,"name":"From a file","seller_id":"seller-f"}
--- init
redis_cmd('DEL', 'cart:{user-e15}', 'cart_count:{user-e15}');
--- request eval
["POST /files/items\n{\"sku_id\":\"F-1\",\"quantity\":2}", "POST /files/items\n{\"sku_id\":\"F-2\",\"quantity\":1}"]
--- more_headers
X-User-Id: e15
Content-Type: application/json
--- error_code eval
[200, 422]
--- response_body_like eval
['"item":\{"sku_id":"F-1","quantity":2,"price":12.34,"seller_id":"seller-f"\}', '"code":"unknown_sku"']
