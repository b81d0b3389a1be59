# Stock holds at checkout (cart_inventory_reserve): a POST per line to an
# inventory service that really counts (t/lib/CartHolds.pm, a Perl server
# behind a proxied keepalive upstream), with hold ids derived from the
# checkout id; 409 is out_of_stock naming the lines, anything else
# inventory_unavailable; a checkout that fails after holding (a line
# refused, the inventory failing, a coupon used up, the cart changed)
# releases what it held with a DELETE per line; 20 concurrent checkouts of
# the last 5 units never oversell.
#
# /api/v1/cart checks stock with live lookups of the same service; /stale
# with lookups that always say 100 (a cached or lagging stock read), so
# that only the holds stand between the checkouts and overselling.

use lib 't/lib';
use CartTest;
use CartShop;
use CartClient;
use CartHolds;
use Digest::SHA ();
use JSON::PP ();
use Test::More ();

plan 'no_plan';
no_shuffle();

our $Config = <<'_EOC_' . $CartShop::Upstreams . $CartShop::Batch;
    location /api/v1/cart {
        cart_api;
        cart_user $http_x_user_id;
        cart_catalog /_catalog/$cart_sku;
        cart_inventory /_inv/$cart_sku;
        cart_inventory_reserve /_holds/$cart_hold_id;
    }
    location /stale {
        cart_api;
        cart_user $http_x_user_id;
        cart_catalog /_catalog/$cart_sku;
        cart_inventory /_stale/$cart_sku;
        cart_inventory_reserve /_holds/$cart_hold_id;
    }
    location /quick {
        cart_api;
        cart_user $http_x_user_id;
        cart_catalog /_catalog/$cart_sku;
        cart_inventory_reserve /_holds/$cart_hold_id;
        cart_lookup_timeout 500ms;
    }
    location /admin/cart {
        cart_admin;
    }
    location /_inv/ {
        internal;
        proxy_pass http://cart_inventory_svc/inventory/;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
    }
    location /_holds/ {
        internal;
        proxy_pass http://cart_inventory_svc/holds/;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
    }
    location /_stale/ {
        internal;
        default_type application/json;
        return 200 '{"available":100}';
    }
_EOC_

add_block_preprocessor(sub {
    my ($block) = @_;
    $block->set_value(config => $main::Config) unless defined $block->config;
    $block->set_value(http_config => ($block->http_config // '')
                                     . CartHolds::upstream());
    CartShop::prepare($block);
});

CartHolds::start();

# the checkout id an Idempotency-Key gives, and the hold id of a line
sub main::checkout_id {
    my ($user, $key) = @_;
    return substr(Digest::SHA::sha1_hex("idem:{user-$user}:$key"), 0, 32);
}

# the service's log as "METHOD uri" lines, of POSTs and DELETEs
sub main::writes {
    return map { "$_->{method} $_->{uri}" }
           grep { $_->{method} ne 'GET' } @{ $_[0]{log} };
}

our $Short = '{"error":{"code":"out_of_stock","message":"some items are not'
    . ' available in the quantity asked for","lines":[{"sku_id":"C-2",'
    . '"reason":"insufficient_stock","quantity":2,"available":1}]}}';

run_tests();

__DATA__

=== TEST 1: a hold per line, then the order; the replay asks for nothing
--- init
CartShop::reset_promotions();
CartHolds::set('A-1' => 10, 'C-2' => 5);
CartShop::cart('h1', [['A-1', 2, 2999, 'seller-a'], ['C-2', 1, 1999, 'seller-c']]);
redis_cmd('DEL', 'idem:{user-h1}:o1');
--- request eval
["POST /api/v1/cart/checkout", "POST /api/v1/cart/checkout", "GET /api/v1/cart/count"]
--- more_headers
X-User-Id: h1
Idempotency-Key: o1
Cookie: session=client-secret
Authorization: Basic Y2xpZW50OnNlY3JldA==
--- error_code eval
[200, 200, 200]
--- response_headers eval
[{'!Idempotent-Replayed' => ''}, {'Idempotent-Replayed' => 'true'}, {}]
--- response_body_like eval
['^\{"checkout_id":"' . main::checkout_id('h1', 'o1') . '",.*"item_count":3,"subtotal":79.97,"discount":0.00,"shipping_total":0.00,"total":79.97,"version":2\}$',
 '^\{"checkout_id":"' . main::checkout_id('h1', 'o1') . '",.*"total":79.97,"version":2\}$',
 '^\{"item_count":0\}$']
--- no_error_log
[error]



=== TEST 2: (checks of TEST 1) what the service holds and what it was sent
--- init
my $st = CartHolds::state();
my $cid = main::checkout_id('h1', 'o1');
Test::More::is_deeply($st->{holds}, { "$cid-A-1" => ['A-1', 2], "$cid-C-2" => ['C-2', 1] },
    'one hold per line, named by the checkout id and the SKU');
Test::More::is_deeply($st->{stock}, { 'A-1' => 8, 'C-2' => 4 }, 'the units held are taken');
Test::More::is_deeply([sort(main::writes($st))], ["POST /holds/$cid-A-1", "POST /holds/$cid-C-2"],
    'a POST per line; the replay asked for nothing');
for my $req (grep { $_->{method} eq 'POST' } @{ $st->{log} }) {
    my $body = JSON::PP::decode_json($req->{body});
    my ($sku) = $req->{uri} =~ /-([A-Z]-\d)$/;
    Test::More::is_deeply($body, { sku_id => $sku, quantity => $sku eq 'A-1' ? 2 : 1,
                                   hold_id => "$cid-$sku" }, "the hold of $sku");
    Test::More::is($req->{content_type}, 'application/json', 'a JSON body');
}
Test::More::is_deeply([map { [$_->{cookie}, $_->{authorization}] } @{ $st->{log} }],
    [([undef, undef]) x 4], "no lookup and no hold carries the client's Cookie or Authorization");
--- request
GET /api/v1/cart/count
--- more_headers
X-User-Id: h1
--- response_body chomp
{"item_count":0}



=== TEST 3: a line the service cannot hold: 409 naming it, in the shape of the stock check's; the other line's hold released, the cart unchanged
With live lookups the stock check refuses first and no hold is asked for;
with stale ones the holds refuse, with the same answer.
--- init
CartHolds::set('A-1' => 10, 'C-2' => 1);
CartShop::cart('h3', [['A-1', 2, 2999, 'seller-a'], ['C-2', 2, 1999, 'seller-c']]);
redis_cmd('DEL', 'idem:{user-h3}:o3');
--- request eval
["POST /api/v1/cart/checkout", "POST /stale/checkout", "GET /stale/count"]
--- more_headers
X-User-Id: h3
Idempotency-Key: o3
--- error_code eval
[409, 409, 200]
--- response_body eval
[$main::Short, $main::Short, '{"item_count":4}']



=== TEST 4: (checks of TEST 3) both holds asked for, both released with the same hold ids; the key was given back
--- init
my $st = CartHolds::state();
my $cid = main::checkout_id('h3', 'o3');
Test::More::is_deeply($st->{holds}, {}, 'nothing held');
Test::More::is_deeply($st->{stock}, { 'A-1' => 10, 'C-2' => 1 }, 'every unit back');
my @w = main::writes($st);
Test::More::is_deeply([sort @w[0, 1]], ["POST /holds/$cid-A-1", "POST /holds/$cid-C-2"],
    'the holds');
Test::More::is_deeply([sort @w[2, 3]], ["DELETE /holds/$cid-A-1", "DELETE /holds/$cid-C-2"],
    'then a DELETE per line, same ids');
Test::More::is(scalar @w, 4, 'nothing else');
my ($del) = grep { $_->{method} eq 'DELETE' && $_->{uri} =~ /A-1$/ } @{ $st->{log} };
Test::More::is_deeply(JSON::PP::decode_json($del->{body}),
    { sku_id => 'A-1', quantity => 2, hold_id => "$cid-A-1" }, 'the release carries the hold');
--- request
POST /stale/checkout
--- more_headers
X-User-Id: h3
Idempotency-Key: o3
--- error_code: 409
--- response_body eval
$main::Short



=== TEST 5: the inventory fails on a line: 503 inventory_unavailable, the other hold released
--- init
CartHolds::set('A-1' => 10, 'C-2' => 5);
CartHolds::mode('C-2' => 'fail');
CartShop::cart('h5', [['A-1', 2, 2999, 'seller-a'], ['C-2', 1, 1999, 'seller-c']]);
--- request
POST /api/v1/cart/checkout
--- more_headers
X-User-Id: h5
--- error_code: 503
--- response_body chomp
{"error":{"code":"inventory_unavailable","message":"stock could not be verified, retry later"}}
--- error_log eval
qr/cart: hold "[0-9a-f]{32}-C-2" of "C-2" failed: the inventory answered 500/



=== TEST 6: (checks of TEST 5) the hold of A-1 released; then a hold that does not answer within cart_lookup_timeout is 503 too
--- init
my $st = CartHolds::state();
Test::More::is_deeply($st->{holds}, {}, 'nothing held');
Test::More::is_deeply($st->{stock}, { 'A-1' => 10, 'C-2' => 5 }, 'every unit back');
Test::More::is_deeply([sort map { s/[0-9a-f]{32}/ID/r } main::writes($st)],
    ['DELETE /holds/ID-A-1', 'DELETE /holds/ID-C-2', 'POST /holds/ID-A-1', 'POST /holds/ID-C-2'],
    'both asked for, both released');
Test::More::is((CartClient::request('GET', '/api/v1/cart/count', 'h5'))[1],
               '{"item_count":3}', 'the cart unchanged');
CartHolds::mode('C-2' => 'slow');
--- request
POST /quick/checkout
--- more_headers
X-User-Id: h5
--- error_code: 503
--- response_body chomp
{"error":{"code":"inventory_unavailable","message":"stock could not be verified, retry later"}}
--- error_log
lookups not done within cart_lookup_timeout



=== TEST 7: a coupon used up after the holds were made: 422, the holds released
--- init
CartShop::reset_promotions();
CartShop::promotion('{"code":"ONCE","type":"amount","value":1,"max_redemptions":1}');
redis_cmd('HSET', 'promo_use:{promo-1}', 'n', 1);
CartHolds::set('A-1' => 10);
CartShop::cart('h7', [['A-1', 3, 2999, 'seller-a']], '#c', 'ONCE');
redis_cmd('DEL', 'idem:{user-h7}:o7');
--- request eval
["POST /api/v1/cart/checkout", "GET /api/v1/cart/count"]
--- more_headers
X-User-Id: h7
Idempotency-Key: o7
--- error_code eval
[422, 200]
--- response_body eval
['{"error":{"code":"coupon_exhausted","message":"this coupon has been used up"}}',
 '{"item_count":3}']



=== TEST 8: (checks of TEST 7) the units are back; a retry with the key, once the coupon has room, asks for the same hold and checks out
--- init
my $st = CartHolds::state();
my $cid = main::checkout_id('h7', 'o7');
Test::More::is_deeply($st->{stock}, { 'A-1' => 10 }, 'the units are back');
Test::More::is_deeply([main::writes($st)], ["POST /holds/$cid-A-1", "DELETE /holds/$cid-A-1"],
    'held, then released');
redis_cmd('HSET', 'promo_use:{promo-1}', 'n', 0);
--- request
POST /api/v1/cart/checkout
--- more_headers
X-User-Id: h7
Idempotency-Key: o7
--- response_body_like: "total":88.97,"version":2\}$



=== TEST 9: (checks of TEST 8) the same hold id again, now kept by the order
--- init
my $st = CartHolds::state();
my $cid = main::checkout_id('h7', 'o7');
Test::More::is_deeply([main::writes($st)],
    ["POST /holds/$cid-A-1", "DELETE /holds/$cid-A-1", "POST /holds/$cid-A-1"],
    'the retry asked for the same hold');
Test::More::is_deeply($st->{holds}, { "$cid-A-1" => ['A-1', 3] }, 'held for the order');
Test::More::is_deeply($st->{stock}, { 'A-1' => 7 }, 'three units taken');
--- request
GET /admin/cart/promotions/1
--- response_body_like: "redemptions":1\}$



=== TEST 10: the cart changes while its holds are asked for: 409 cart_changed, the holds released
--- init
CartShop::reset_promotions();
CartHolds::set('A-1' => 10, 'C-2' => 5);
CartHolds::mode('C-2' => 'slow');
CartShop::cart('h10', [['A-1', 1, 2999, 'seller-a'], ['C-2', 1, 1999, 'seller-c']]);
my @r = CartClient::parallel(2, sub {
    if ($_[0] == 1) {
        my ($status, $body) = CartClient::request('POST', '/api/v1/cart/checkout', 'h10');
        return $status == 409 && $body =~ /"cart_changed"/ ? 'changed' : "$status $body";
    }
    select undef, undef, undef, 0.7;
    my ($status) = CartClient::request('PUT', '/api/v1/cart/items/A-1', 'h10', '{"quantity":2}');
    return $status;
});
Test::More::is("@r", 'changed 200', 'the checkout found the cart changed');
my $st = CartHolds::state();
Test::More::is_deeply($st->{holds}, {}, 'nothing held');
Test::More::is_deeply($st->{stock}, { 'A-1' => 10, 'C-2' => 5 }, 'every unit back');
Test::More::is(scalar(grep { /^DELETE/ } main::writes($st)), 2, 'a release per line');
--- request
GET /api/v1/cart/count
--- more_headers
X-User-Id: h10
--- response_body chomp
{"item_count":3}
--- timeout: 10



=== TEST 11: 20 concurrent checkouts want the last 5 units: 5 orders, 15 out_of_stock, never oversold, every refused checkout's other hold released
Stale lookups let every checkout past the stock check: only the holds
decide.
--- init
CartShop::reset_promotions();
CartHolds::set('A-1' => 1000, 'C-2' => 5);
for my $i (1 .. 20) {
    CartShop::cart("race$i", [['A-1', 1, 2999, 'seller-a'], ['C-2', 1, 1999, 'seller-c']]);
    redis_cmd('DEL', "idem:{user-race$i}:r");
}
my @r = CartClient::parallel(20, sub {
    my ($status, $body) = CartClient::request('POST', '/stale/checkout', "race$_[0]",
                                              undef, 'Idempotency-Key' => 'r');
    return "ok $_[0]" if $status == 200;
    return 'short' if $status == 409 && $body eq '{"error":{"code":"out_of_stock",'
        . '"message":"some items are not available in the quantity asked for",'
        . '"lines":[{"sku_id":"C-2","reason":"out_of_stock","quantity":1,"available":0}]}}';
    return "$status $body";
});
my @ok = map { /^ok (\d+)$/ ? $1 : () } @r;
Test::More::is(scalar @ok, 5, '5 orders') or Test::More::diag("@r");
Test::More::is(scalar(grep { $_ eq 'short' } @r), 15, '15 out_of_stock naming C-2, none left');
my $st = CartHolds::state();
my %want = map { my $cid = main::checkout_id("race$_", 'r');
                 ("$cid-A-1" => ['A-1', 1], "$cid-C-2" => ['C-2', 1]) } @ok;
Test::More::is_deeply($st->{holds}, \%want,
    'held: exactly the lines of the orders, under their checkout ids');
Test::More::is_deeply($st->{stock}, { 'A-1' => 995, 'C-2' => 0 },
    'never oversold; the refused checkouts gave A-1 back');
my %ok = map { $_ => 1 } @ok;
for my $i (1 .. 20) {
    my (undef, $body) = CartClient::request('GET', '/stale/count', "race$i");
    Test::More::is($body, '{"item_count":' . ($ok{$i} ? 0 : 2) . '}',
                   $ok{$i} ? "race$i: an order, its cart empty" : "race$i: its cart unchanged");
}
--- request
GET /stale/count
--- more_headers
X-User-Id: race1
--- response_body_like: ^\{"item_count":[02]\}$
--- timeout: 30



=== TEST 12: a release the service refuses is logged; the client still gets its answer
--- init
CartHolds::set('A-1' => 10, 'C-2' => 5);
CartHolds::mode('C-2' => 'fail', 'A-1' => 'refuse_release');
CartShop::cart('h12', [['A-1', 1, 2999, 'seller-a'], ['C-2', 1, 1999, 'seller-c']]);
--- request
POST /api/v1/cart/checkout
--- more_headers
X-User-Id: h12
--- error_code: 503
--- response_body chomp
{"error":{"code":"inventory_unavailable","message":"stock could not be verified, retry later"}}
--- error_log eval
qr/cart: hold "[0-9a-f]{32}-A-1" of "A-1" not released: the inventory answered 500; it stays held until the service lets it expire/



=== TEST 13: cart_inventory_reserve holds one line per subrequest: $cart_skus is refused at configuration time
--- init
my $dir = "$ENV{TEST_NGINX_SERVROOT}/conf";
open my $fh, '>', "$dir/bad.conf" or die $!;
print {$fh} "load_module $ENV{TEST_NGINX_CART_SO};\nevents {}\nhttp {\n"
    . "  cart_redis redis://127.0.0.1:$ENV{TEST_NGINX_REDIS_PORT};\n"
    . "  server { location / { cart_api; cart_user x;\n"
    . "    cart_inventory_reserve /_holds?skus=\$cart_skus; } }\n}\n";
close $fh;
my $nginx = join ' ', CartTest::nginx_command();
my $out = `$nginx -t -p $ENV{TEST_NGINX_SERVROOT} -c $dir/bad.conf 2>&1`;
Test::More::isnt($?, 0, 'nginx -t fails');
Test::More::like($out, qr/cart_inventory_reserve holds one line per subrequest/, 'and says why')
    or Test::More::diag($out);
--- request
GET /api/v1/cart/count
--- more_headers
X-User-Id: nobody
--- response_body chomp
{"item_count":0}
