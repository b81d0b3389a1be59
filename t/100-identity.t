# Who the caller is: JWTs (HS256, RS256, ES256) verified in the module with
# the configured algorithm only, exp/nbf with a 60 s leeway, sub as the
# user id; every bad token is 401 before Redis is asked anything.

use lib 't/lib';
use CartTest;
use CartConf;
use CartAuth;
use CartClient;
use MIME::Base64 qw(encode_base64url);
use Test::More ();

plan 'no_plan';
no_shuffle();
add_block_preprocessor(\&CartAuth::default_config);

# An HS256 token keyed with the RSA public key's PEM text: what an attacker
# can compute when a verifier lets the token choose the algorithm.
our $Confused = CartAuth::jwt('HS256', CartAuth::claims('j-evil'),
                              secret => CartAuth::slurp("$CartAuth::Dir/rsa.pub"));

# A valid token with another user in the payload, signature kept.
sub tampered {
    my ($alg) = @_;
    my ($h, $p, $s) = split /\./, CartAuth::jwt($alg, CartAuth::claims('j-owner'));
    my $other = encode_base64url(JSON::PP->new->canonical->encode(CartAuth::claims('j-thief')));
    return "$h.$other.$s";
}

our $IdpLocation = <<'END';
    location /idp {
        cart_api;
        cart_jwt_key $TEST_NGINX_KEYS/hs256.secret iss=https://idp.example aud=cart;
    }
END

run_tests();

__DATA__

=== TEST 1: HS256, RS256 and ES256 tokens: sub is the user
--- init
redis_cmd('DEL', 'cart:{user-j1}', 'cart_count:{user-j1}');
CartClient::seed('j1');
--- request eval
["GET /jwt/hs/count", "GET /jwt/rs/count", "GET /jwt/es/count", "GET /jwt/hs"]
--- more_headers eval
["Authorization: Bearer " . CartAuth::jwt('HS256', CartAuth::claims('j1')),
 "Authorization: Bearer " . CartAuth::jwt('RS256', CartAuth::claims('j1')),
 "Authorization: bearer " . CartAuth::jwt('ES256', CartAuth::claims('j1')),
 "Authorization: Bearer " . CartAuth::jwt('HS256', CartAuth::claims('j1'))]
--- response_body eval
['{"item_count":2}', '{"item_count":2}', '{"item_count":2}',
 qr/^\{"cart_id":"cart:user-j1","items":\[\{"sku_id":"SKU-1","quantity":2,/]
--- no_error_log
[error]



=== TEST 2: a write with a token goes to the token's user
--- init
redis_cmd('DEL', 'cart:{user-j2}', 'cart_count:{user-j2}');
--- request
POST /jwt/rs/items
{"sku_id":"SKU-9","quantity":3}
--- more_headers eval
"Content-Type: application/json\nAuthorization: Bearer " . CartAuth::jwt('RS256', CartAuth::claims('j2'))
--- response_body chomp
{"cart_id":"cart:user-j2","item_count":3,"item":{"sku_id":"SKU-9","quantity":3,"price":null,"seller_id":""},"version":1}



=== TEST 3: every forged, confused, expired or garbage token is 401 and touches no key
--- init
redis_cmd('CONFIG', 'RESETSTAT');
--- request eval
[("POST /jwt/hs/items\n{\"sku_id\":\"SKU-1\",\"quantity\":1}") x 10,
 ("POST /jwt/rs/items\n{\"sku_id\":\"SKU-1\",\"quantity\":1}") x 4,
 ("POST /jwt/es/items\n{\"sku_id\":\"SKU-1\",\"quantity\":1}") x 3,
 "GET /jwt/hs", "GET /jwt/rs/count", "DELETE /jwt/hs/items/SKU-1"]
--- more_headers eval
[map { "Content-Type: application/json\nAuthorization: Bearer $_" } (
   # HS256 location
   CartAuth::jwt('none', CartAuth::claims('j3')),                             # alg none
   CartAuth::jwt('none', CartAuth::claims('j3'), header => {alg => 'none'}),
   CartAuth::jwt('HS256', CartAuth::claims('j3'), secret => 'another-secret-of-enough-length-0123'),
   main::tampered('HS256'),
   CartAuth::jwt('HS256', CartAuth::claims('j3', exp => time - 120)),        # expired
   CartAuth::jwt('HS256', CartAuth::claims('j3', nbf => time + 600)),        # not yet
   CartAuth::jwt('HS256', {sub => 'j3'}),                                     # no exp
   CartAuth::jwt('RS256', CartAuth::claims('j3')),                            # other alg
   CartAuth::jwt('HS256', CartAuth::claims('j3'), header => {alg => 'HS256', typ => 'JWS+X'}),
   CartAuth::jwt('HS256', CartAuth::claims('j3'), header => {alg => 'HS256', crit => ['exp']}),
   # RS256 location
   $main::Confused,                                                           # alg confusion
   CartAuth::jwt('ES256', CartAuth::claims('j3')),
   main::tampered('RS256'),
   CartAuth::jwt('RS256', CartAuth::claims('j3'), header => {alg => 'rs256'}),
   # ES256 location
   CartAuth::jwt('ES256', CartAuth::claims('j3'), key => "$CartAuth::Dir/ec384.pem"),
   main::tampered('ES256'),
   CartAuth::jwt('RS256', CartAuth::claims('j3')),
   # garbage
   'abc', 'a.b.c', '...')]
--- error_code eval
[(401) x 20]
--- response_body_like eval
[('^\{"error":\{"code":"invalid_token","message":"the bearer token is invalid or expired"\}\}$') x 20]
--- response_headers eval
[({'WWW-Authenticate' => 'Bearer error="invalid_token"'}) x 20]
--- error_log
JWT refused:



=== TEST 4: (checks of TEST 3) Redis saw no command of the module
--- init
my $stats = redis_cmd('INFO', 'commandstats');
for my $cmd (qw(evalsha eval hgetall get set hset del incrby expire)) {
    Test::More::unlike($stats, qr/^cmdstat_$cmd:/m, "no $cmd reached Redis");
}
Test::More::is(redis_cmd('EXISTS', 'cart:{user-j3}'), 0, 'no cart for j3');
Test::More::is(redis_cmd('EXISTS', 'cart:{user-j-thief}'), 0, 'no cart for the thief');
Test::More::is(redis_cmd('EXISTS', 'cart:{user-j-evil}'), 0, 'no cart for the alg confusion');
--- request
GET /jwt/hs/count
--- more_headers eval
"Authorization: Bearer " . CartAuth::jwt('HS256', CartAuth::claims('j4'))
--- response_body chomp
{"item_count":0}



=== TEST 5: the alg confusion is refused for what it is
--- request
GET /jwt/rs/count
--- more_headers eval
"Authorization: Bearer $main::Confused"
--- error_code: 401
--- error_log
JWT refused: not the configured algorithm



=== TEST 6: a payload changed under a valid signature
--- request eval
["GET /jwt/hs/count", "GET /jwt/rs/count", "GET /jwt/es/count"]
--- more_headers eval
["Authorization: Bearer " . main::tampered('HS256'),
 "Authorization: Bearer " . main::tampered('RS256'),
 "Authorization: Bearer " . main::tampered('ES256')]
--- error_code eval
[401, 401, 401]
--- error_log
JWT refused: bad signature



=== TEST 7: exp and nbf have a 60 s leeway, and no more
--- request eval
["GET /jwt/hs/count", "GET /jwt/hs/count", "GET /jwt/hs/count", "GET /jwt/hs/count"]
--- more_headers eval
["Authorization: Bearer " . CartAuth::jwt('HS256', CartAuth::claims('j5', exp => time - 20)),
 "Authorization: Bearer " . CartAuth::jwt('HS256', CartAuth::claims('j5', nbf => time + 20)),
 "Authorization: Bearer " . CartAuth::jwt('HS256', CartAuth::claims('j5', exp => time - 100)),
 "Authorization: Bearer " . CartAuth::jwt('HS256', CartAuth::claims('j5', nbf => time + 100))]
--- error_code eval
[200, 200, 401, 401]



=== TEST 8: sub must be a usable user id
--- request eval
["GET /jwt/hs/count", "GET /jwt/hs/count", "GET /jwt/hs/count", "GET /jwt/hs/count"]
--- more_headers eval
["Authorization: Bearer " . CartAuth::jwt('HS256', CartAuth::claims('a}b')),
 "Authorization: Bearer " . CartAuth::jwt('HS256', CartAuth::claims('x' x 129)),
 "Authorization: Bearer " . CartAuth::jwt('HS256', {exp => time + 60}),
 "Authorization: Bearer " . CartAuth::jwt('HS256', {sub => 42, exp => time + 60})]
--- error_code eval
[401, 401, 401, 401]
--- response_body_like eval
['"code":"invalid_identity"', '"code":"invalid_identity"', '"code":"invalid_token"', '"code":"invalid_token"']



=== TEST 9: no token: a guest where guest cookies are on, else 401 with a Bearer challenge
--- request eval
["GET /jwt/hs/count", "GET /jwt/rs/count", "GET /jwt/rs/count"]
--- more_headers eval
["", "", "Authorization: Basic dTpw"]
--- error_code eval
[200, 401, 401]
--- response_headers eval
[{'WWW-Authenticate' => ''}, {'WWW-Authenticate' => 'Bearer'}, {'WWW-Authenticate' => 'Bearer'}]
--- response_body_like eval
['^\{"item_count":0\}$', '"code":"unauthorized"', '"code":"unauthorized"']



=== TEST 10: a token that does not verify never falls back to a guest or to cart_user
--- config
    location /both {
        cart_api;
        cart_jwt_key $TEST_NGINX_KEYS/hs256.secret;
        cart_user $http_x_user_id;
        cart_guest_cookie cart_guest secret=$TEST_NGINX_KEYS/cookie.secret;
    }
--- request eval
["GET /both/count", "GET /both/count", "GET /both"]
--- more_headers eval
["Authorization: Bearer " . CartAuth::jwt('HS256', CartAuth::claims('j8', exp => time - 3600)) . "\nX-User-Id: j8b",
 "X-User-Id: j8b",
 "Authorization: Bearer " . CartAuth::jwt('HS256', CartAuth::claims('j8')) . "\nX-User-Id: j8b"]
--- error_code eval
[401, 200, 200]
--- response_body_like eval
['"code":"invalid_token"', '^\{"item_count":0\}$', '"cart_id":"cart:user-j8"']



=== TEST 10b: iss= and aud= make those claims required: exact issuer, audience among aud
--- config eval: $main::IdpLocation
--- request eval
[("GET /idp/count") x 2]
--- more_headers eval
[map { "Authorization: Bearer " . CartAuth::jwt('HS256', CartAuth::claims('j10', %$_)) }
 ({ iss => 'https://idp.example', aud => 'cart' },
  { iss => 'https://idp.example', aud => ['orders', 'cart'] })]
--- response_body_like eval
[('^\{"item_count":0\}$') x 2]



=== TEST 10c: a missing, different or non-string issuer is 401
--- config eval: $main::IdpLocation
--- request eval
[("GET /idp/count") x 3]
--- more_headers eval
[map { "Authorization: Bearer " . CartAuth::jwt('HS256', CartAuth::claims('j10', %$_)) }
 ({ aud => 'cart' },
  { iss => 'https://idp.example.evil', aud => 'cart' },
  { iss => ['https://idp.example'], aud => 'cart' })]
--- error_code eval
[401, 401, 401]
--- response_body_like eval
[('"code":"invalid_token"') x 3]
--- error_log
JWT refused: another issuer (iss)



=== TEST 10d: an audience that is missing or not among aud is 401
--- config eval: $main::IdpLocation
--- request eval
[("GET /idp/count") x 3]
--- more_headers eval
[map { "Authorization: Bearer " . CartAuth::jwt('HS256', CartAuth::claims('j10', %$_)) }
 ({ iss => 'https://idp.example' },
  { iss => 'https://idp.example', aud => ['orders', 'carts'] },
  { iss => 'https://idp.example', aud => { cart => 1 } })]
--- error_code eval
[401, 401, 401]
--- response_body_like eval
[('"code":"invalid_token"') x 3]
--- error_log
JWT refused: not for this audience (aud)



=== TEST 10e: a NUL byte in sub, iss or aud is 401: no claim is cut short into another
--- config eval: $main::IdpLocation
--- init
redis_cmd('DEL', 'cart:{user-alice}', 'cart_count:{user-alice}');
redis_cmd('SET', 'cart_count:{user-alice}', 7);
--- request eval
[("GET /idp/count") x 3]
--- more_headers eval
[map { "Authorization: Bearer " . CartAuth::jwt('HS256', CartAuth::claims(@$_)) }
 (["alice\x00evil", iss => 'https://idp.example', aud => 'cart'],
  ['j10', iss => "https://idp.example\x00.evil", aud => 'cart'],
  ['j10', iss => 'https://idp.example', aud => "cart\x00s"])]
--- error_code eval
[401, 401, 401]
--- response_body_like eval
[('"code":"invalid_token"') x 3]



=== TEST 11: keys that must not load: a PEM as HS256 secret, a short secret, wrong curve or type
--- init
my @cases = (
    ["cart_jwt_key $CartAuth::Dir/rsa.pub HS256;", qr/cannot be an HS256 secret/],
    ["cart_jwt_key $CartAuth::Dir/short.secret;", qr/at least 32 bytes/],
    ["cart_jwt_key $CartAuth::Dir/ec384.pub;", qr/P-256/],
    ["cart_jwt_key $CartAuth::Dir/ec.pub RS256;", qr/ES256 key, not one for "RS256"/],
    ["cart_jwt_key $CartAuth::Dir/hs256.secret ES256;", qr/need a PEM public key/],
    ["cart_guest_cookie g secret=$CartAuth::Dir/short.secret;", qr/at least 32 bytes/],
    ["cart_guest_cookie g;", qr/needs secret=FILE/],
    ["cart_guest_cookie g secret=$CartAuth::Dir/cookie.secret samesite=none;", qr/needs secure/],
    ["cart_guest_cookie g;x secret=$CartAuth::Dir/cookie.secret;", qr/./],
    ["cart_jwt_key $CartAuth::Dir/hs256.secret iss=;", qr/one non-empty value each/],
    ["cart_jwt_key $CartAuth::Dir/hs256.secret aud=a aud=b;", qr/one non-empty value each/],
    ["cart_jwt_key $CartAuth::Dir/hs256.secret HS256 RS256;", qr/invalid parameter "RS256"/],
);
for my $case (@cases) {
    my ($status, $out) = CartConf::nginx_t('', $case->[0]);
    Test::More::isnt($status, 0, "refused: $case->[0]");
    Test::More::like($out, $case->[1], "reason given for: $case->[0]");
}
my ($status, $out) = CartConf::nginx_t('', "cart_jwt_key $CartAuth::Dir/rsa.pub iss=idp aud=cart RS256; "
    . "cart_guest_cookie g secret=$CartAuth::Dir/cookie.secret max_age=2h secure samesite=strict path=/api;");
Test::More::is($status, 0, "a good configuration loads") or Test::More::diag($out);
--- request
GET /jwt/hs/count
--- response_body chomp
{"item_count":0}
