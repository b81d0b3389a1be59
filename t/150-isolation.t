# User A never reads or changes user B's data through any endpoint: every
# route is walked with A's identity (a header, a JWT, a guest cookie)
# carrying B's ids, sessions, keys and tokens; afterwards B's keys are
# byte for byte what they were.

use lib 't/lib';
use CartTest;
use CartConf;
use CartAuth;
use CartClient;
use Test::More ();

plan 'no_plan';
no_shuffle();
add_block_preprocessor(\&CartAuth::default_config);

our $GB = CartAuth::session('iso-b-guest');      # B's guest session
our $GA = CartAuth::session('iso-a-guest');      # A's guest session
our $TB = 'IsoB-Token_0123456789abcdefghijk';    # B's share token

our @BKeys = ('cart:{user-iso-b}', 'cart_count:{user-iso-b}', 'saved:{user-iso-b}',
              "cart:{guest-$GB}", "cart_count:{guest-$GB}", 'idem:{user-iso-b}:key-b',
              "share:{$TB}");

sub snapshot { join "\n", map { unpack('H*', redis_cmd('DUMP', $_)) } @BKeys }

# A's requests: [method, path, body]
our @Walk = (
    ['GET', '/api/v1/cart'], ['GET', '/api/v1/cart/count'],
    ['POST', '/api/v1/cart/items', '{"sku_id":"SKU-1","quantity":1}'],
    ['PUT', '/api/v1/cart/items/SKU-1', '{"quantity":5}'],
    ['DELETE', '/api/v1/cart/items/SKU-1'],
    ['POST', '/api/v1/cart/items/SKU-1/save'],
    ['GET', '/api/v1/cart/saved'],
    ['POST', '/api/v1/cart/saved/SKU-BS/move'],
    ['DELETE', '/api/v1/cart/saved/SKU-BS'],
    ['POST', '/api/v1/cart/merge', qq({"guest_session_id":"$GB"})],
    ['POST', '/api/v1/cart/share'],
    ['GET', "/api/v1/cart/shared/$TB"],
    ['POST', "/api/v1/cart/shared/$TB/copy"],
    ['POST', '/api/v1/cart/items/%7Buser-iso-b%7D/save'],
    ['GET', '/api/v1/cart/user-iso-b'],
);

run_tests();

__DATA__

=== TEST 1: B's data: a cart, a saved list, a guest cart, an idempotency key, a share
--- init
redis_cmd('DEL', @main::BKeys, 'cart:{user-iso-a}', 'cart_count:{user-iso-a}', 'saved:{user-iso-a}', 'idem:{user-iso-a}:key-b',
          "cart:{guest-$main::GA}", 'cart:{user-user-iso-b}');
redis_cmd('HSET', 'cart:{user-iso-b}', 'SKU-1', '3|100|s|1764547200', '#v', 9);
redis_cmd('SET', 'cart_count:{user-iso-b}', 3);
redis_cmd('HSET', 'saved:{user-iso-b}', 'SKU-BS', '1|100|s|1764547200');
redis_cmd('HSET', "cart:{guest-$main::GB}", 'SKU-BG', '2|100|s|1764547200', '#v', 1);
redis_cmd('SET', "cart_count:{guest-$main::GB}", 2);
# B's answer under B's key, with the fingerprint A's add will have
redis_cmd('SET', 'idem:{user-iso-b}:key-b', "POST SKU-1 1 \n[\"ok\",9,3,\"SKU-1\",3,\"100\",\"s\",\"1764547200\"]");
redis_cmd('SET', "share:{$main::TB}", "1893456000|user-iso-b");
$main::Before = main::snapshot();
--- request
GET /api/v1/cart/count
--- more_headers
X-User-Id: iso-b
--- response_body chomp
{"item_count":3}



=== TEST 2: A (header identity) walks every route with B's ids: only A's own data answers
--- init
my @out;
for my $w (@main::Walk) {
    my ($m, $path, $body) = @$w;
    my ($status, $resp) = CartClient::request($m, $path, 'iso-a', $body,
        ($path =~ m{/items$} ? ('Idempotency-Key' => 'key-b') : ()),
        Cookie => 'cart_guest=' . CartAuth::guest_cookie($main::GA));
    push @out, "$m $path -> $status";
    Test::More::unlike($resp, qr/iso-b|guest-$main::GB/, "$m $path: nothing of B's ids in the answer");
    Test::More::unlike($resp, qr/SKU-BG|SKU-BS|"version":9\b/, "$m $path: none of B's private data");
}
Test::More::is_deeply(\@out, [
    'GET /api/v1/cart -> 200', 'GET /api/v1/cart/count -> 200',
    'POST /api/v1/cart/items -> 200',      # A's own new line, not B's replay
    'PUT /api/v1/cart/items/SKU-1 -> 200', # A's own line
    'DELETE /api/v1/cart/items/SKU-1 -> 200',
    'POST /api/v1/cart/items/SKU-1/save -> 404',
    'GET /api/v1/cart/saved -> 200',
    'POST /api/v1/cart/saved/SKU-BS/move -> 404',
    'DELETE /api/v1/cart/saved/SKU-BS -> 404',
    'POST /api/v1/cart/merge -> 403',
    'POST /api/v1/cart/share -> 201',
    'GET /api/v1/cart/shared/' . $main::TB . ' -> 200',       # read-only, by design
    'POST /api/v1/cart/shared/' . $main::TB . '/copy -> 200', # into A's cart
    'POST /api/v1/cart/items/%7Buser-iso-b%7D/save -> 400',
    'GET /api/v1/cart/user-iso-b -> 404',
], 'statuses of the walk') or Test::More::diag(join "\n", @out);
Test::More::is(main::snapshot(), $main::Before, "B's keys are unchanged");
--- request
GET /nocatalog
--- more_headers
X-User-Id: iso-a
--- response_body_like: ^\{"cart_id":"cart:user-iso-a","items":\[\{"sku_id":"SKU-1","quantity":3,"price_at_add":29.99,.*"version":4,



=== TEST 3: the same walk as a guest holding B's session id only, forged, and as a JWT user
--- init
my @ids = (
    [undef, 'cart_guest=' . CartAuth::guest_cookie($main::GB, time + 3600, 'x' x 40)],
    [undef, "cart_guest=$main::GB"],
    [undef, 'cart_guest=' . CartAuth::guest_cookie($main::GB, time - 10)],
);
for my $id (@ids) {
    for my $w (@main::Walk) {
        my ($m, $path, $body) = @$w;
        my ($status, $resp) = CartClient::request($m, $path, $id->[0], $body,
            Cookie => $id->[1]);
        Test::More::unlike($resp, qr/guest-$main::GB|SKU-BG/, "$m $path as a forger: nothing of B's");
    }
}
for my $w (@main::Walk) {
    my ($m, $path, $body) = @$w;
    $path =~ s{^/api/v1/cart}{/jwt/hs};
    my ($status, $resp) = CartClient::request($m, $path, undef, $body,
        Authorization => 'Bearer ' . CartAuth::jwt('HS256', CartAuth::claims('iso-a')));
    Test::More::unlike($resp, qr/iso-b"|SKU-BS|SKU-BG/, "$m $path with A's JWT: nothing of B's");
}
Test::More::is(main::snapshot(), $main::Before, "B's keys are unchanged");
--- request
GET /api/v1/cart/count
--- more_headers
X-User-Id: iso-b
--- response_body chomp
{"item_count":3}



=== TEST 4: ids that try to reach into B's keys are refused or stay A's own
--- request eval
["GET /api/v1/cart/count", "GET /api/v1/cart/count", "GET /api/v1/cart/count", "GET /api/v1/cart", "GET /jwt/hs/count"]
--- more_headers eval
["X-User-Id: iso-b}", "X-User-Id: {user-iso-b}", "X-User-Id: iso-a\r\nX-User-Id: iso-b", "X-User-Id: user-iso-b",
 "Authorization: Bearer " . CartAuth::jwt('HS256', CartAuth::claims('iso-b}x'))]
--- error_code eval
[401, 401, 200, 200, 401]
--- response_body_like eval
['"code":"invalid_identity"', '"code":"invalid_identity"', '^\{"item_count":\d+\}$', '"cart_id":"cart:user-user-iso-b","items":\[\]', '"code":"invalid_identity"']
