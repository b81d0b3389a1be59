# POST /merge: a signed-in user takes over this client's guest cart,
# exactly once: the seed's worked example, the three strategies, the
# limits, 20 merges at once, and merges interrupted between their steps.

use lib 't/lib';
use CartTest;
use CartConf;
use CartAuth;
use CartClient;
use Test::More ();

plan 'no_plan';
no_shuffle();
add_block_preprocessor(\&CartAuth::default_config);

our %S = map { $_ => CartAuth::session("merge-$_") } 1 .. 12;

# The seed: guest {SKU-1: 1, SKU-2: 2, SKU-3: 1}, user-123 {SKU-2: 1, SKU-4: 3}
sub seed {
    my ($user, $session) = @_;
    redis_cmd('DEL', "cart:{user-$user}", "cart_count:{user-$user}",
              "cart:{guest-$session}", "cart_count:{guest-$session}",
              "merge:{guest-$session}");
    my @markers = grep { length } split /\n/, redis_cmd('KEYS', "merged:{user-$user}:*");
    redis_cmd('DEL', @markers) if @markers;
    redis_cmd('HSET', "cart:{guest-$session}",
              'SKU-1', '1|2999|seller-1|1764547200',
              'SKU-2', '2|450|seller-2|1764547201',
              'SKU-3', '1|99|seller-1|1764547202', '#v', 3);
    redis_cmd('SET', "cart_count:{guest-$session}", 4);
    redis_cmd('HSET', "cart:{user-$user}",
              'SKU-2', '1|500|seller-2|1764547100',
              'SKU-4', '3|1500|seller-4|1764547100', '#v', 2);
    redis_cmd('SET', "cart_count:{user-$user}", 4);
}

sub headers {
    my ($user, $session) = @_;
    return "Content-Type: application/json\nX-User-Id: $user\nCookie: cart_guest="
        . CartAuth::guest_cookie($session);
}

sub body { qq({"guest_session_id":"$_[0]"}) }

sub merge_now {
    my ($user, $session, %h) = @_;
    return CartClient::request('POST', '/nocatalog/merge', $user, body($session),
        Cookie => 'cart_guest=' . CartAuth::guest_cookie($session), %h);
}

our $SeedView = '{"cart_id":"cart:user-%s","items":['
    . '{"sku_id":"SKU-2","quantity":%d,"price_at_add":%s,"seller_id":"seller-2","added_at":"%s"},'
    . '{"sku_id":"SKU-4","quantity":3,"price_at_add":15.00,"seller_id":"seller-4","added_at":"2025-11-30T23:58:20Z"},'
    . '{"sku_id":"SKU-1","quantity":1,"price_at_add":29.99,"seller_id":"seller-1","added_at":"2025-12-01T00:00:00Z"},'
    . '{"sku_id":"SKU-3","quantity":1,"price_at_add":0.99,"seller_id":"seller-1","added_at":"2025-12-01T00:00:02Z"}],'
    . '"item_count":%d,"subtotal":%s,"currency":"USD","version":3,"warnings":[],';

# the merged cart as GET shows it: lines, totals and version exactly, then
# the priced view's per-seller and shipping parts (t/2xx test those)
sub seed_view {
    return '^' . quotemeta(sprintf($main::SeedView, @_)) . '"sellers":\[';
}

run_tests();

__DATA__

=== TEST 1: the seed's worked example, strategy max (the default)
--- init
main::seed('m1', $main::S{1});
--- request eval
"POST /nocatalog/merge\n" . main::body($main::S{1})
--- more_headers eval
main::headers('m1', $main::S{1})
--- response_body chomp
{"cart_id":"cart:user-m1","merged_items":3,"conflicts_resolved":1,"adjusted":[],"item_count":7,"version":3}
--- response_headers
ETag: "3"
Set-Cookie: cart_guest=; Max-Age=0; Path=/; HttpOnly; SameSite=Lax
--- error_log
cart event cart_merged



=== TEST 2: (after TEST 1) the seed's result: {SKU-1: 1, SKU-2: 2, SKU-3: 1, SKU-4: 3}
--- request
GET /nocatalog
--- more_headers
X-User-Id: m1
--- response_body_like eval
main::seed_view('m1', 2, '5.00', '2025-11-30T23:58:20Z', 7, '85.98')



=== TEST 3: (checks of TEST 1) the guest cart and the claim are gone; the marker stays
--- init
my $s = $main::S{1};
Test::More::is(redis_cmd('EXISTS', "cart:{guest-$s}", "cart_count:{guest-$s}", "merge:{guest-$s}"), 0,
               'guest cart, counter and claim deleted');
Test::More::is(redis_cmd('GET', 'cart_count:{user-m1}'), 7, 'user counter');
my @markers = grep { length } split /\n/, redis_cmd('KEYS', 'merged:{user-m1}:*');
Test::More::is(scalar @markers, 1, 'one merge marker on the user slot');
my $ttl = redis_cmd('TTL', $markers[0]);
Test::More::ok($ttl > 86000 && $ttl <= 86400, "marker lives cart_guest_ttl: $ttl");
--- request
POST /nocatalog/merge
{"guest_session_id":"placeholder"}
--- more_headers eval
main::headers('m1', $main::S{1})
--- response_body eval
qr/"code":"forbidden"/
--- error_code: 403



=== TEST 4: merging again finds nothing: zero, the cart unchanged
--- request eval
["POST /nocatalog/merge\n" . main::body($main::S{1}), "GET /nocatalog/count"]
--- more_headers eval
main::headers('m1', $main::S{1})
--- response_body eval
['{"cart_id":"cart:user-m1","merged_items":0,"conflicts_resolved":0,"adjusted":[],"item_count":7,"version":3}',
 '{"item_count":7}']
--- no_error_log
cart event cart_merged



=== TEST 5: strategy sum (option B): SKU-2 is 2 + 1
--- http_config
cart_merge_strategy sum;
--- init
main::seed('m4', $main::S{4});
--- request eval
["POST /nocatalog/merge\n" . main::body($main::S{4}), "GET /nocatalog"]
--- more_headers eval
main::headers('m4', $main::S{4})
--- response_body_like eval
['^' . quotemeta('{"cart_id":"cart:user-m4","merged_items":3,"conflicts_resolved":1,"adjusted":[],"item_count":8,"version":3}') . '$',
 main::seed_view('m4', 3, '5.00', '2025-11-30T23:58:20Z', 8, '90.98')]



=== TEST 6: strategy guest (option C): the guest's line wins, quantity and price
--- http_config
cart_merge_strategy guest;
--- init
main::seed('m5', $main::S{5});
--- request eval
["POST /nocatalog/merge\n" . main::body($main::S{5}), "GET /nocatalog"]
--- more_headers eval
main::headers('m5', $main::S{5})
--- response_body_like eval
['^' . quotemeta('{"cart_id":"cart:user-m5","merged_items":3,"conflicts_resolved":1,"adjusted":[],"item_count":7,"version":3}') . '$',
 main::seed_view('m5', 2, '4.50', '2025-12-01T00:00:01Z', 7, '84.98')]



=== TEST 7: someone else's session, no cookie, a bad body, a guest: refused, nothing moves
--- init
main::seed('m6', $main::S{6});
--- request eval
["POST /nocatalog/merge\n" . main::body($main::S{6}),
 "POST /nocatalog/merge\n" . main::body($main::S{6}),
 "POST /nocatalog/merge\n{\"guest_session_id\":12}",
 "POST /nocatalog/merge\n{}",
 "POST /nocatalog/merge\n" . main::body($main::S{6}),
 "GET /nocatalog/count", "GET /nocatalog/count"]
--- more_headers eval
[main::headers('m6', $main::S{7}),
 "Content-Type: application/json\nX-User-Id: m6",
 main::headers('m6', $main::S{6}),
 main::headers('m6', $main::S{6}),
 "Content-Type: application/json\nCookie: cart_guest=" . CartAuth::guest_cookie($main::S{6}),
 "X-User-Id: m6",
 "Cookie: cart_guest=" . CartAuth::guest_cookie($main::S{6})]
--- error_code eval
[403, 403, 400, 400, 401, 200, 200]
--- response_body_like eval
['"code":"forbidden"', '"code":"forbidden"', '"code":"invalid_field"', '"code":"invalid_field"',
 '"code":"unauthorized"', '^\{"item_count":4\}$', '^\{"item_count":4\}$']



=== TEST 8: adjusted: a line capped at cart_max_quantity, lines left out at cart_max_lines
--- http_config
cart_merge_strategy sum;
cart_max_lines 3;
cart_max_quantity 5;
--- init
my $s = $main::S{8};
redis_cmd('DEL', 'cart:{user-m7}', 'cart_count:{user-m7}', "cart:{guest-$s}", "merge:{guest-$s}");
redis_cmd('HSET', 'cart:{user-m7}', 'SKU-1', '4|2999|seller-1|1764547100', 'SKU-2', '1|500|seller-2|1764547100', '#v', 1);
# SKU-7's added_at in base 36 (t6kdc0 = 1764547200), SKU-8's in decimal
# seconds (a line written before base 36): SKU-7 is still the older one
redis_cmd('HSET', "cart:{guest-$s}", 'SKU-1', '3|2999|seller-1|1764547300',
          'SKU-7', '1|100|s|t6kdc0', 'SKU-8', '2|100|s|1764547201', '#v', 1);
--- request eval
["POST /nocatalog/merge\n" . main::body($main::S{8}), "GET /nocatalog/count"]
--- more_headers eval
main::headers('m7', $main::S{8})
--- response_body eval
['{"cart_id":"cart:user-m7","merged_items":2,"conflicts_resolved":1,"adjusted":[{"sku_id":"SKU-8","requested":2,"quantity":0,"reason":"line_limit"},{"sku_id":"SKU-1","requested":7,"quantity":5,"reason":"quantity_capped"}],"item_count":7,"version":2}',
 '{"item_count":7}']



=== TEST 9: If-Match that fails: 412 before the guest cart is claimed
--- init
main::seed('m8', $main::S{9});
--- request eval
["POST /nocatalog/merge\n" . main::body($main::S{9}), "GET /nocatalog/count", "POST /nocatalog/merge\n" . main::body($main::S{9})]
--- more_headers eval
[main::headers('m8', $main::S{9}) . "\nIf-Match: \"1\"",
 "Cookie: cart_guest=" . CartAuth::guest_cookie($main::S{9}),
 main::headers('m8', $main::S{9}) . "\nIf-Match: \"2\""]
--- error_code eval
[412, 200, 200]
--- response_body_like eval
['"code":"precondition_failed"', '^\{"item_count":4\}$', '"merged_items":3,"conflicts_resolved":1,']



=== TEST 10: Idempotency-Key: the repeat is the first answer
--- init
main::seed('m9', $main::S{10});
--- request eval
[("POST /nocatalog/merge\n" . main::body($main::S{10})) x 2]
--- more_headers eval
main::headers('m9', $main::S{10}) . "\nIdempotency-Key: merge-1"
--- response_body eval
[('{"cart_id":"cart:user-m9","merged_items":3,"conflicts_resolved":1,"adjusted":[],"item_count":7,"version":3}') x 2]
--- response_headers eval
[{'Idempotent-Replayed' => ''}, {'Idempotent-Replayed' => 'true'}]



=== TEST 11: 20 merges of one guest cart at once (strategy sum): merged exactly once
--- http_config
cart_merge_strategy sum;
--- init
main::seed('m10', $main::S{11});
my @r = CartClient::parallel(20, sub {
    my ($status, $body) = main::merge_now('m10', $main::S{11});
    return "$status $body";
});
my $merged = 0;
for (@r) {
    die "a merge failed: $_\n" unless /^200 /;
    $merged++ if /"merged_items":3,/;
    die "odd answer: $_\n" unless /"merged_items":(0|3),/;
}
Test::More::ok($merged >= 1, "$merged of 20 answers report the merge, the others 0");
--- request eval
["GET /nocatalog", "GET /nocatalog/count"]
--- more_headers
X-User-Id: m10
--- response_body_like eval
[main::seed_view('m10', 3, '5.00', '2025-11-30T23:58:20Z', 8, '90.98'), '^' . quotemeta('{"item_count":8}') . '$']
--- timeout: 30



=== TEST 12: interrupted after the claim (the user's slot fails): the retry finishes it
--- init
main::seed('m11', $main::S{12});
# the user's cart is not a hash: apply.lua fails before writing anything
redis_cmd('DEL', 'cart:{user-m11}');
redis_cmd('SET', 'cart:{user-m11}', 'broken');
my ($status, $body) = main::merge_now('m11', $main::S{12});
Test::More::is($status, 503, "step 2 failed: $body");
my $s = $main::S{12};
Test::More::is(redis_cmd('EXISTS', "cart:{guest-$s}"), 0, 'the guest cart was claimed');
Test::More::is(redis_cmd('HGET', "merge:{guest-$s}", 'SKU-2'), '2|450|seller-2|1764547201',
               'its lines wait in the claim');
Test::More::is(redis_cmd('HGET', "merge:{guest-$s}", '#to'), 'user-m11', 'claimed for m11');
# the user's slot is back
redis_cmd('DEL', 'cart:{user-m11}');
redis_cmd('HSET', 'cart:{user-m11}', 'SKU-2', '1|500|seller-2|1764547100',
          'SKU-4', '3|1500|seller-4|1764547100', '#v', 2);
--- request eval
["POST /nocatalog/merge\n" . main::body($main::S{12}), "GET /nocatalog"]
--- more_headers eval
main::headers('m11', $main::S{12})
--- response_body_like eval
['^' . quotemeta('{"cart_id":"cart:user-m11","merged_items":3,"conflicts_resolved":1,"adjusted":[],"item_count":7,"version":3}') . '$',
 main::seed_view('m11', 2, '5.00', '2025-11-30T23:58:20Z', 7, '85.98')]


=== TEST 13: interrupted after the apply (the claim was not deleted): the retry does not apply twice
--- http_config
cart_merge_strategy sum;
--- init
main::seed('m12', $main::S{1});
# a first attempt applied the claim "m-1" and died before step 3
my $s = $main::S{1};
redis_cmd('RENAME', "cart:{guest-$s}", "merge:{guest-$s}");
redis_cmd('DEL', "cart_count:{guest-$s}");
redis_cmd('HSET', "merge:{guest-$s}", '#to', 'user-m12', '#id', 'm-1');
my ($status, $body) = main::merge_now('m12', $s);
Test::More::like($body, qr/"merged_items":3,/, 'that attempt merged');
redis_cmd('HSET', "merge:{guest-$s}", 'SKU-1', '1|2999|seller-1|1764547200',
          'SKU-2', '2|450|seller-2|1764547201', 'SKU-3', '1|99|seller-1|1764547202',
          '#to', 'user-m12', '#id', 'm-1');
Test::More::is(redis_cmd('EXISTS', 'merged:{user-m12}:m-1'), 1, 'its marker is on the user slot');
--- request eval
["POST /nocatalog/merge\n" . main::body($main::S{1}), "GET /nocatalog"]
--- more_headers eval
main::headers('m12', $main::S{1})
--- response_body_like eval
['^' . quotemeta('{"cart_id":"cart:user-m12","merged_items":3,"conflicts_resolved":1,"adjusted":[],"item_count":8,"version":3}') . '$',
 main::seed_view('m12', 3, '5.00', '2025-11-30T23:58:20Z', 8, '90.98')]



=== TEST 14: (checks of TEST 13) the claim is gone after the retry
--- init
Test::More::is(redis_cmd('EXISTS', "merge:{guest-$main::S{1}}"), 0, 'claim deleted');
--- request
GET /nocatalog/count
--- more_headers
X-User-Id: m12
--- response_body chomp
{"item_count":8}



=== TEST 15: a claim of another account is not taken over
--- init
my $s = $main::S{2};
redis_cmd('DEL', "cart:{guest-$s}", "merge:{guest-$s}", 'cart:{user-m14}');
redis_cmd('HSET', "merge:{guest-$s}", 'SKU-1', '1|2999|seller-1|1764547200', '#to', 'user-other', '#id', 'x');
--- request eval
["POST /nocatalog/merge\n" . main::body($main::S{2}), "GET /nocatalog/count"]
--- more_headers eval
main::headers('m14', $main::S{2})
--- error_code eval
[409, 200]
--- response_body_like eval
['"code":"merge_conflict"', '^\{"item_count":0\}$']
