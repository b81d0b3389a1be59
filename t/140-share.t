# Share links: POST /share gives an unguessable token (192 bits), the
# shared view needs no identity and shows nothing of its owner, copy adds
# the lines to the caller's cart at current prices, within the limits;
# unknown, expired or guessed tokens are 404.

use lib 't/lib';
use CartTest;
use CartConf;
use CartAuth;
use CartClient;
use Test::More ();

plan 'no_plan';
no_shuffle();
add_block_preprocessor(\&CartAuth::default_config);

our $T = 'Share-Token_0123456789abcdefghij';      # 32 characters
our $Tb = 'Share-Token_0123456789abcdefghiZ';

# user $owner's cart: SKU-1 x2 added at 25.00, SKU-GONE x1; shared as $token
sub share {
    my ($owner, $token) = @_;
    redis_cmd('DEL', "cart:{user-$owner}", "cart_count:{user-$owner}");
    redis_cmd('HSET', "cart:{user-$owner}", 'SKU-1', '2|2500|seller-1|1764547200',
              'SKU-GONE', '1|100|s|1764547201', '#v', 4);
    redis_cmd('SET', "cart_count:{user-$owner}", 3);
    redis_cmd('SET', "share:{$token}", "1893456000|user-$owner", 'EX', 3600);
}

run_tests();

__DATA__

=== TEST 1: POST /share: a token, its URL and when it expires
--- http_config
cart_share_ttl 2h;
--- init
CartClient::seed('sh1');
--- request
POST /api/v1/cart/share
--- more_headers
X-User-Id: sh1
--- error_code: 201
--- response_body_like: ^\{"token":"[A-Za-z0-9_-]{32}","url":"/api/v1/cart/shared/[A-Za-z0-9_-]{32}","expires_at":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"\}$



=== TEST 1b: the link's base is cart_share_url, never the client's Host header
--- config eval
$CartAuth::Config =~ s{cart_api;}{cart_api;\n        cart_share_url https://shop.example.com/s/\$http_x_tenant/;}r
--- init
CartClient::seed('sh1b');
--- request
POST /api/v1/cart/share
--- more_headers
X-User-Id: sh1b
X-Tenant: eu
Host: evil.example
--- error_code: 201
--- response_body_like: ^\{"token":"([A-Za-z0-9_-]{32})","url":"https://shop.example.com/s/eu/[A-Za-z0-9_-]{32}",



=== TEST 2: tokens are new each time; the key holds the owner for cart_share_ttl; the view works
--- http_config
cart_share_ttl 2h;
--- init
CartClient::seed('sh2');
my %seen;
for (1 .. 5) {
    my ($status, $body) = CartClient::request('POST', '/api/v1/cart/share', 'sh2');
    Test::More::is($status, 201, 'share created');
    my ($token) = $body =~ /"token":"([A-Za-z0-9_-]{32})"/;
    $seen{$token}++;
    Test::More::like(redis_cmd('GET', "share:{$token}"), qr/^\d{10}\|user-sh2$/, 'share key');
    my $ttl = redis_cmd('TTL', "share:{$token}");
    Test::More::ok($ttl > 7100 && $ttl <= 7200, "cart_share_ttl (2h): $ttl");
    ($status, $body) = CartClient::request('GET', "/api/v1/cart/shared/$token");
    Test::More::is($status, 200, 'shared view without identity');
    Test::More::like($body, qr/^\{"items":\[\{"sku_id":"SKU-1","quantity":2,"price":29.99,/, 'shared view');
}
Test::More::is(scalar keys %seen, 5, 'five different tokens');
--- request
GET /api/v1/cart/count
--- more_headers
X-User-Id: sh2
--- response_body chomp
{"item_count":2}



=== TEST 2b: POST /share with an Idempotency-Key: a retry gets the same link, replayed; a new key a new link
--- init
CartClient::seed('sh2b');
redis_cmd('DEL', 'idem:{user-sh2b}:share-1', 'idem:{user-sh2b}:share-2', 'idem:{user-sh2b}:share-3');
# another request holds share-3 (in flight), with the same fingerprint
redis_cmd('SET', 'idem:{user-sh2b}:share-3', "POST /api/v1/cart/share\n", 'EX', 30);
--- request eval
["POST /api/v1/cart/share", "POST /api/v1/cart/share", "POST /api/v1/cart/share",
 "POST /api/v1/cart/share", "POST /api/v1/cart/share"]
--- more_headers eval
["X-User-Id: sh2b\nIdempotency-Key: share-1", "X-User-Id: sh2b\nIdempotency-Key: share-1",
 "X-User-Id: sh2b\nIdempotency-Key: share-2", "X-User-Id: sh2b\nIdempotency-Key: share-3",
 "X-User-Id: sh2b-other\nIdempotency-Key: share-1"]
--- error_code eval
[201, 201, 201, 409, 201]
--- response_headers eval
[{'Idempotent-Replayed' => ''}, {'Idempotent-Replayed' => 'true'}, {'Idempotent-Replayed' => ''},
 {}, {'Idempotent-Replayed' => ''}]
--- response_body_like eval
['^\{"token":"[A-Za-z0-9_-]{32}"', '^\{"token":"[A-Za-z0-9_-]{32}"', '^\{"token":"[A-Za-z0-9_-]{32}"',
 '"code":"idempotency_in_flight"', '^\{"token":"[A-Za-z0-9_-]{32}"']



=== TEST 2c: (checks of TEST 2b) one link per key, the replay is the first answer byte for byte
--- init
my $first = redis_cmd('GET', 'idem:{user-sh2b}:share-1');
Test::More::like($first, qr/^POST \/api\/v1\/cart\/share\n\["ok",-1,0,"\{\\"token\\":\\"([A-Za-z0-9_-]{32})/,
                 'the answer is kept under the key');
my ($token) = $first =~ /token\\":\\"([A-Za-z0-9_-]{32})/;
Test::More::like(redis_cmd('GET', "share:{$token}"), qr/\|user-sh2b$/, 'its link exists');
my @links = grep { redis_cmd('GET', $_) =~ /\|user-sh2b$/ }
            split /\n/, redis_cmd('--scan', '--pattern', 'share:*');
Test::More::is(scalar @links, 2, 'two links for keys share-1 and share-2, none for the retry or share-3');
my ($status, $body) = CartClient::request('POST', '/api/v1/cart/share', 'sh2b', undef,
                                          'Idempotency-Key' => 'share-1');
Test::More::is($status, 201, 'replayed again');
Test::More::like($body, qr/"token":"$token"/, 'the same token');
--- request
GET /api/v1/cart/count
--- more_headers
X-User-Id: sh2b
--- response_body chomp
{"item_count":2}



=== TEST 3: the shared view: current prices, no owner id, no internal field, and live
--- init
main::share('sh3', $main::T);
--- request eval
["GET /api/v1/cart/shared/$main::T",
 "POST /api/v1/cart/items\n{\"sku_id\":\"SKU-3\",\"quantity\":4}",
 "GET /api/v1/cart/shared/$main::T"]
--- more_headers eval
["", "X-User-Id: sh3\nContent-Type: application/json", "Cookie: cart_guest=" . CartAuth::guest_cookie(CartAuth::session('x'))]
--- response_body eval
['{"items":[{"sku_id":"SKU-1","quantity":2,"price":29.99,"seller_id":"seller-1","name":"Wireless Mouse","image":"https://cdn.example.com/sku-1.jpg"},{"sku_id":"SKU-GONE","quantity":1,"price":1.00,"seller_id":"s","available":false}],"item_count":3,"subtotal":59.98,"currency":"USD","expires_at":"2030-01-01T00:00:00Z"}',
 qr/"item_count":7,/,
 '{"items":[{"sku_id":"SKU-1","quantity":2,"price":29.99,"seller_id":"seller-1","name":"Wireless Mouse","image":"https://cdn.example.com/sku-1.jpg"},{"sku_id":"SKU-GONE","quantity":1,"price":1.00,"seller_id":"s","available":false},{"sku_id":"SKU-3","quantity":4,"price":0.99,"seller_id":"seller-1","name":"Sticker","image":""}],"item_count":7,"subtotal":63.94,"currency":"USD","expires_at":"2030-01-01T00:00:00Z"}']
--- response_headers eval
[{'ETag' => '', 'Set-Cookie' => ''}, {}, {'Set-Cookie' => ''}]



=== TEST 4: unknown, malformed and expired tokens are 404, for the view and the copy
--- init
main::share('sh4', $main::Tb);
redis_cmd('EXPIRE', "share:{$main::Tb}", 0);
--- request eval
["GET /api/v1/cart/shared/$main::Tb", "GET /api/v1/cart/shared/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
 "GET /api/v1/cart/shared/short", "GET /api/v1/cart/shared/" . ('A' x 31) . '%7D',
 "GET /api/v1/cart/shared/%7Buser-sh4%7D", "POST /api/v1/cart/shared/$main::Tb/copy",
 "GET /api/v1/cart/count"]
--- more_headers
X-User-Id: sh4b
--- error_code eval
[404, 404, 404, 404, 404, 404, 200]
--- response_body_like eval
[('"code":"share_not_found"') x 6, '^\{"item_count":0\}$']



=== TEST 4b: a link past its stored expiry is 404 whatever the key's TTL says
--- init
main::share('sh4c', $main::T);
redis_cmd('SET', "share:{$main::T}", (time - 10) . '|user-sh4c', 'EX', 3600);
--- request eval
["GET /api/v1/cart/shared/$main::T", "POST /api/v1/cart/shared/$main::T/copy",
 "GET /api/v1/cart/count"]
--- more_headers
X-User-Id: sh4d
--- error_code eval
[404, 404, 200]
--- response_body_like eval
[('"code":"share_not_found"') x 2, '^\{"item_count":0\}$']



=== TEST 5: 200 guessed tokens: all 404
--- init
main::share('sh5', $main::T);
my @chars = ('A' .. 'Z', 'a' .. 'z', 0 .. 9, '-', '_');
my $found = 0;
for (1 .. 200) {
    my $guess = join '', map { $chars[rand @chars] } 1 .. 32;
    my ($status) = CartClient::request('GET', "/api/v1/cart/shared/$guess");
    $found++ if $status != 404;
}
Test::More::is($found, 0, 'no guessed token answered anything but 404');
--- request eval
"GET /api/v1/cart/shared/$main::T"
--- response_body_like: "item_count":3,



=== TEST 6: copy: the shared lines join the caller's cart at current prices; the owner's is untouched
--- init
main::share('sh6', $main::T);
redis_cmd('DEL', 'cart:{user-sh6b}', 'cart_count:{user-sh6b}');
--- request eval
["POST /api/v1/cart/shared/$main::T/copy", "GET /nocatalog", "GET /nocatalog"]
--- more_headers eval
["X-User-Id: sh6b", "X-User-Id: sh6b", "X-User-Id: sh6"]
--- response_body_like eval
['^\{"cart_id":"cart:user-sh6b","copied_items":1,"adjusted":\[\{"sku_id":"SKU-GONE","requested":1,"quantity":0,"reason":"unavailable"\}\],"item_count":2,"version":1\}$',
 '^\{"cart_id":"cart:user-sh6b","items":\[\{"sku_id":"SKU-1","quantity":2,"price_at_add":29.99,"seller_id":"seller-1","added_at":"[^"]+"\}\],"item_count":2,"subtotal":59.98,',
 '^\{"cart_id":"cart:user-sh6","items":\[\{"sku_id":"SKU-1","quantity":2,"price_at_add":25.00,"seller_id":"seller-1","added_at":"2025-12-01T00:00:00Z"\},\{"sku_id":"SKU-GONE","quantity":1,.*"version":4,']


=== TEST 6b: (checks of TEST 6) the copied line has the time of the copy, in base 36
--- init
my $line = redis_cmd('HGET', 'cart:{user-sh6b}', 'SKU-1');
Test::More::like($line, qr/^2\|2999\|seller-1\|[0-9a-z]{6}$/, "copied line $line");
my ($added) = $line =~ /([0-9a-z]+)$/;
Test::More::ok(abs(CartClient::line_time($added) - time) < 600, 'added_at is the time of the copy');
--- request
GET /nocatalog/count
--- more_headers
X-User-Id: sh6b
--- response_body chomp
{"item_count":2}



=== TEST 7: copy within limits: capped at cart_max_quantity, left out at cart_max_lines
--- http_config
cart_max_lines 1;
cart_max_quantity 3;
--- init
main::share('sh7', $main::T);
redis_cmd('HSET', 'cart:{user-sh7}', 'SKU-2', '1|500|seller-2|1764547300');
CartClient::seed('sh7b');
--- request
POST /api/v1/cart/shared/Share-Token_0123456789abcdefghij/copy
--- more_headers
X-User-Id: sh7b
--- response_body chomp
{"cart_id":"cart:user-sh7b","copied_items":1,"adjusted":[{"sku_id":"SKU-GONE","requested":1,"quantity":0,"reason":"unavailable"},{"sku_id":"SKU-1","requested":4,"quantity":3,"reason":"quantity_capped"},{"sku_id":"SKU-2","requested":1,"quantity":0,"reason":"line_limit"}],"item_count":3,"version":6}
--- error_log
cart event item_added "SKU-1" v6



=== TEST 8: your own cart, a failing catalog, a replayed key
--- init
main::share('sh8', $main::T);
redis_cmd('HSET', 'cart:{user-sh8}', 'SKU-DOWN', '1|100|s|1764547300');
redis_cmd('DEL', 'cart:{user-sh8b}', 'cart_count:{user-sh8b}', 'idem:{user-sh8b}:copy-1', 'idem:{user-sh8b}:copy-2');
--- request eval
["POST /api/v1/cart/shared/$main::T/copy", "POST /api/v1/cart/shared/$main::T/copy",
 "GET /api/v1/cart/count", "POST /nocatalog/shared/$main::T/copy", "POST /nocatalog/shared/$main::T/copy"]
--- more_headers eval
["X-User-Id: sh8", "X-User-Id: sh8b\nIdempotency-Key: copy-1", "X-User-Id: sh8b",
 "X-User-Id: sh8b\nIdempotency-Key: copy-2", "X-User-Id: sh8b\nIdempotency-Key: copy-2"]
--- error_code eval
[422, 503, 200, 200, 200]
--- response_body_like eval
['"code":"own_cart"', '"code":"catalog_unavailable"', '^\{"item_count":0\}$',
 '^\{"cart_id":"cart:user-sh8b","copied_items":3,"adjusted":\[\],"item_count":4,"version":1\}$',
 '^\{"cart_id":"cart:user-sh8b","copied_items":3,"adjusted":\[\],"item_count":4,"version":1\}$']
--- response_headers eval
[{}, {}, {}, {'Idempotent-Replayed' => ''}, {'Idempotent-Replayed' => 'true'}]



=== TEST 9: (checks of TEST 8) the failed copy gave its Idempotency-Key back
--- init
Test::More::is(redis_cmd('EXISTS', 'idem:{user-sh8b}:copy-1'), 0, 'key released');
--- request
GET /api/v1/cart/count
--- more_headers
X-User-Id: sh8b
--- response_body chomp
{"item_count":4}



=== TEST 10: a guest shares and copies; the copy issues the cookie
--- init
main::share('sh10', $main::T);
--- request eval
["POST /api/v1/cart/shared/$main::T/copy", "POST /api/v1/cart/share"]
--- more_headers eval
["", "Cookie: cart_guest=" . CartAuth::guest_cookie(CartAuth::session('sh10g'))]
--- error_code eval
[200, 201]
--- response_headers_like eval
[{'Set-Cookie' => '^cart_guest=[0-9a-f]{32}\.'}, {'Set-Cookie' => '^cart_guest=' . CartAuth::session('sh10g') . '\.'}]
--- response_body_like eval
['^\{"cart_id":"cart:guest-[0-9a-f]{32}","copied_items":1,', '"token":"']
