# Guest carts: a signed cookie (128-bit random session + HMAC-SHA256) is
# issued on a guest's first write and refreshed on each write; a missing,
# forged, tampered or expired cookie is never honoured: that client gets a
# fresh, empty cart of its own.

use lib 't/lib';
use CartTest;
use CartConf;
use CartAuth;
use CartClient;
use Test::More ();

plan 'no_plan';
no_shuffle();
add_block_preprocessor(\&CartAuth::default_config);

our $S1 = CartAuth::session('g1');
our $Victim = CartAuth::session('victim');

sub seed_guest {
    my ($session) = @_;
    redis_cmd('DEL', "cart:{guest-$session}", "cart_count:{guest-$session}");
    redis_cmd('HSET', "cart:{guest-$session}", 'SKU-1', '4|2999|seller-1|1764547200', '#v', '7');
    redis_cmd('SET', "cart_count:{guest-$session}", '4');
}

# a guest request on a new connection: (status, body, Set-Cookie)
sub guest {
    my ($method, $path, $cookie, $body) = @_;
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                     PeerPort => $ENV{TEST_NGINX_PORT}) or die;
    my $req = "$method $path HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n";
    $req .= "Cookie: cart_guest=$cookie\r\n" if defined $cookie;
    $req .= "Content-Type: application/json\r\nContent-Length: " . length($body) . "\r\n"
        if defined $body;
    print {$sock} $req . "\r\n" . ($body // '');
    local $/;
    my $resp = <$sock>;
    my ($status) = $resp =~ m{^HTTP/1\.1 (\d+)};
    my ($set) = $resp =~ m{^Set-Cookie: ([^\r\n]*)}mi;
    my (undef, $payload) = split /\r\n\r\n/, $resp, 2;
    return ($status, $payload, $set);
}

run_tests();

__DATA__

=== TEST 1: a guest that only reads gets an empty cart and no cookie
--- init
# every command Redis runs is logged, with its keys (checked by TEST 1b)
redis_cmd('CONFIG', 'SET', 'slowlog-log-slower-than', '0');
redis_cmd('SLOWLOG', 'RESET');
--- request eval
["GET /api/v1/cart/count", "GET /api/v1/cart"]
--- response_headers eval
[{'Set-Cookie' => ''}, {'Set-Cookie' => ''}]
--- response_body_like eval
['^\{"item_count":0\}$',
 '^\{"cart_id":"cart:guest-[0-9a-f]{32}","items":\[\],"item_count":0,"subtotal":0.00,"currency":"USD","version":0,"warnings":\[\],']



=== TEST 1b: (checks of TEST 1) those reads of a session made for them never reached Redis
--- init
redis_cmd('EXISTS', 'slowlog-probe');
my $log = redis_cmd('SLOWLOG', 'GET', '1000');
redis_cmd('CONFIG', 'SET', 'slowlog-log-slower-than', '10000');
Test::More::like($log, qr/slowlog-probe/, 'the slow log names the keys of commands');
Test::More::unlike($log, qr/\{guest-/, 'no command named a guest key');
--- request
GET /api/v1/cart/count
--- more_headers eval
"Cookie: cart_guest=" . CartAuth::guest_cookie($main::S1)
--- response_body_like: ^\{"item_count":\d+\}$



=== TEST 2: the first write issues the cookie; with it the guest finds the cart again
--- init
my ($status, $body, $set) = main::guest('POST', '/api/v1/cart/items', undef,
                                        '{"sku_id":"SKU-1","quantity":2}');
Test::More::is($status, 200, 'first write of a guest');
Test::More::like($set, qr/^cart_guest=[0-9a-f]{32}\.\d{10}\.[A-Za-z0-9_-]{43}; Max-Age=86400; Path=\/; HttpOnly; SameSite=Lax$/,
                 'Set-Cookie: session.expires.tag, HttpOnly, SameSite=Lax');
my $session = CartAuth::session_of($set);
Test::More::like($body, qr/^\{"cart_id":"cart:guest-$session","item_count":2,/,
                 'the cart is cart:{guest-<session>}');
my ($value) = $set =~ /^cart_guest=([^;]+)/;
($status, $body) = main::guest('GET', '/api/v1/cart/count', $value);
Test::More::is($body, '{"item_count":2}', 'the cookie finds the cart again');
my $ttl = redis_cmd('TTL', "cart:{guest-$session}");
Test::More::ok($ttl > 86000 && $ttl <= 86400, "guest cart has cart_guest_ttl (1d): $ttl");
($status, $body, my $again) = main::guest('POST', '/api/v1/cart/items', $value,
                                          '{"sku_id":"SKU-2","quantity":1}');
Test::More::is(CartAuth::session_of($again), $session, 'a later write refreshes the same session');
($status, $body, $again) = main::guest('GET', '/api/v1/cart', $value);
Test::More::ok(!defined $again, 'a read issues no cookie');
Test::More::like($body, qr/"item_count":3,/, 'both lines are there');
--- request
GET /api/v1/cart/count
--- response_body chomp
{"item_count":0}



=== TEST 3: every cart endpoint works for a guest with a valid cookie
--- init
redis_cmd('DEL', "cart:{guest-$main::S1}", "cart_count:{guest-$main::S1}");
--- request eval
["POST /api/v1/cart/items\n{\"sku_id\":\"SKU-1\",\"quantity\":2}",
 "POST /api/v1/cart/items\n{\"sku_id\":\"SKU-3\",\"quantity\":1}",
 "PUT /api/v1/cart/items/SKU-1\n{\"quantity\":5}",
 "DELETE /api/v1/cart/items/SKU-3",
 "GET /api/v1/cart/count",
 "GET /api/v1/cart"]
--- more_headers eval
"Content-Type: application/json\nCookie: other=1; cart_guest=" . CartAuth::guest_cookie($main::S1) . "; x=y"
--- response_headers_like eval
[{'Set-Cookie' => "^cart_guest=$main::S1\\.\\d+\\.[A-Za-z0-9_-]{43}; Max-Age=86400;"},
 {'Set-Cookie' => "^cart_guest=$main::S1\\."},
 {'Set-Cookie' => "^cart_guest=$main::S1\\."},
 {'Set-Cookie' => "^cart_guest=$main::S1\\."},
 {}, {}]
--- response_body_like eval
["\"cart_id\":\"cart:guest-$main::S1\",\"item_count\":2,",
 '"item_count":3,',
 '"item_count":6,.*"quantity":5,',
 '"item_count":5,',
 '^\{"item_count":5\}$',
 "^\\{\"cart_id\":\"cart:guest-$main::S1\",\"items\":\\[\\{\"sku_id\":\"SKU-1\",\"quantity\":5,.*\"version\":4,"]



=== TEST 4: a forged cookie (another secret) gets a fresh cart, never the victim's
--- init
main::seed_guest($main::Victim);
--- request eval
["GET /api/v1/cart/count",
 "POST /api/v1/cart/items\n{\"sku_id\":\"SKU-2\",\"quantity\":1}"]
--- more_headers eval
"Content-Type: application/json\nCookie: cart_guest="
    . CartAuth::guest_cookie($main::Victim, time + 3600, 'a-guessed-secret-that-is-long-enough-000')
--- response_body_like eval
['^\{"item_count":0\}$', '^\{"cart_id":"cart:guest-(?!' . $main::Victim . ')[0-9a-f]{32}","item_count":1,']
--- response_headers_like eval
[{}, {'Set-Cookie' => '^cart_guest=(?!' . $main::Victim . ')[0-9a-f]{32}\.'}]
--- error_log
guest cookie refused



=== TEST 5: a tampered cookie: the victim's session under someone else's valid tag
--- request eval
["GET /api/v1/cart/count", "GET /api/v1/cart/count", "GET /api/v1/cart/count", "GET /api/v1/cart/count"]
--- more_headers eval
[map { "Cookie: cart_guest=$_" } (
    do { my $c = CartAuth::guest_cookie(CartAuth::session('attacker')); $c =~ s/^[0-9a-f]{32}/$main::Victim/; $c },
    do { my $c = CartAuth::guest_cookie($main::Victim, time + 60); $c =~ s/\.(\d+)\./'.' . ($1 + 86400 * 365) . '.'/e; $c },
    do { my $c = CartAuth::guest_cookie($main::Victim); $c =~ s/.$/$& eq 'A' ? 'B' : 'A'/e; $c },
    uc CartAuth::guest_cookie($main::Victim))]
--- response_body eval
[('{"item_count":0}') x 4]
--- error_log
guest cookie refused



=== TEST 6: an expired cookie, even validly signed, is not honoured
--- request eval
["GET /api/v1/cart/count", "GET /api/v1/cart/count"]
--- more_headers eval
["Cookie: cart_guest=" . CartAuth::guest_cookie($main::Victim, time - 1),
 "Cookie: cart_guest=" . CartAuth::guest_cookie($main::Victim, time + 3600)]
--- response_body eval
['{"item_count":0}', '{"item_count":4}']



=== TEST 7: garbage cookies are refused; among several of that name the valid one counts
--- request eval
["GET /api/v1/cart/count", "GET /api/v1/cart/count", "GET /api/v1/cart/count", "GET /api/v1/cart/count"]
--- more_headers eval
["Cookie: cart_guest=",
 "Cookie: cart_guest=" . ('a' x 4000),
 "Cookie: cart_guest=..;cart_guest=$main::Victim",
 "Cookie: cart_guest=junk; cart_guest=" . CartAuth::guest_cookie($main::Victim)]
--- response_body eval
['{"item_count":0}', '{"item_count":0}', '{"item_count":0}', '{"item_count":4}']



=== TEST 8: (after the blocks above) the victim's cart was never changed
--- init
Test::More::is(redis_cmd('HGET', "cart:{guest-$main::Victim}", 'SKU-1'), '4|2999|seller-1|1764547200', 'victim line intact');
Test::More::is(redis_cmd('HGET', "cart:{guest-$main::Victim}", '#v'), 7, 'victim version intact');
Test::More::is(redis_cmd('HLEN', "cart:{guest-$main::Victim}"), 2, 'victim has no new line');
--- request
GET /api/v1/cart/count
--- more_headers eval
"Cookie: cart_guest=" . CartAuth::guest_cookie($main::Victim)
--- response_body chomp
{"item_count":4}



=== TEST 9: what needs an account answers 401 to guests
--- request eval
["POST /api/v1/cart/merge\n{\"guest_session_id\":\"$main::S1\"}",
 "POST /api/v1/cart/items/SKU-1/save", "GET /api/v1/cart/saved",
 "POST /api/v1/cart/saved/SKU-1/move", "DELETE /api/v1/cart/saved/SKU-1"]
--- more_headers eval
"Content-Type: application/json\nCookie: cart_guest=" . CartAuth::guest_cookie($main::S1)
--- error_code eval
[(401) x 5]
--- response_body_like eval
[('"code":"unauthorized"') x 5]
--- response_headers eval
[({'Set-Cookie' => ''}) x 5]



=== TEST 10: cart_guest_ttl and the cookie's options
--- http_config
cart_guest_ttl 2h;
--- config
    location /g {
        cart_api;
        cart_guest_cookie sid secret=$TEST_NGINX_KEYS/cookie.secret max_age=30m secure samesite=strict path=/g;
    }
--- init
redis_cmd('DEL', "cart:{guest-$main::S1}", "cart_count:{guest-$main::S1}");
--- request
POST /g/items
{"sku_id":"SKU-1","quantity":1}
--- more_headers eval
"Content-Type: application/json\nCookie: sid=" . CartAuth::guest_cookie($main::S1)
--- response_headers_like
Set-Cookie: ^sid=[0-9a-f]{32}\.\d+\.[A-Za-z0-9_-]{43}; Max-Age=1800; Path=/g; HttpOnly; SameSite=Strict; Secure$
--- response_body_like: "cart_id":"cart:guest-



=== TEST 11: (checks of TEST 10) the guest cart's TTL is cart_guest_ttl
--- init
for my $key ("cart:{guest-$main::S1}", "cart_count:{guest-$main::S1}") {
    my $ttl = redis_cmd('TTL', $key);
    Test::More::ok($ttl > 7100 && $ttl <= 7200, "$key has cart_guest_ttl (2h): $ttl");
}
--- request
GET /api/v1/cart/count
--- response_body chomp
{"item_count":0}



=== TEST 12: without cart_guest_cookie there are no guests
--- config
    location /u {
        cart_api;
        cart_user $http_x_user_id;
    }
--- request
POST /u/items
{"sku_id":"SKU-1","quantity":1}
--- more_headers eval
"Content-Type: application/json\nCookie: cart_guest=" . CartAuth::guest_cookie($main::S1)
--- error_code: 401
--- response_body_like: "code":"unauthorized"
--- response_headers
Set-Cookie:
