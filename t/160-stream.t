# GET /stream: Server-Sent Events, one per change of the caller's cart,
# through Redis pub/sub (cart_events:{owner}) to every worker; the first
# event is the current state; Last-Event-ID; heartbeats; a guest; the
# subscription leaves with the last stream; Redis restarted under an open
# stream; the cap of cart_stream_max.

use lib 't/lib';
use CartTest;
use CartConf;
use CartAuth;
use CartClient;
use CartStream;
use Time::HiRes qw(time sleep);
use Test::More ();
use JSON::PP ();

plan 'no_plan';
no_shuffle();
add_block_preprocessor(\&CartConf::default_config);

# a block with "--- two_workers" runs a master and two workers (valgrind
# mode runs one process: one worker then)
# the lines of the last event's cart, "SKU qty, ..." in order, or what it
# says instead of a cart
sub lines_of {
    my ($st) = @_;
    my $d = $st->{data} or return 'no event';
    return 'items_omitted' if $d->{items_omitted} && !exists $d->{cart};
    my $cart = $d->{cart} or return 'no cart';
    return join ', ', map { "$_->{sku_id} $_->{quantity}" } @{ $cart->{items} };
}

add_block_preprocessor(sub {
    my ($block) = @_;
    if (defined $block->two_workers && !$ENV{TEST_NGINX_USE_VALGRIND}) {
        master_on();
        workers(2);
    } else {
        master_off();
        workers(1);
    }
});

run_tests();

__DATA__

=== TEST 1: a user's stream: the current state at once, then one event per change, in order
--- init
CartClient::seed('s1');
my $st = main::stream_open('/nocatalog/stream', 'X-User-Id' => 's1');
Test::More::is($st->{status}, 200, 'the stream opens');
Test::More::is($st->{headers}{'content-type'}, 'text/event-stream', 'text/event-stream');
Test::More::is($st->{headers}{'cache-control'}, 'no-store', 'not stored by any cache');
Test::More::is($st->{headers}{'x-accel-buffering'}, 'no', 'not buffered by a proxy');
Test::More::is($st->{headers}{'transfer-encoding'}, 'chunked', 'chunked');
Test::More::is(main::stream_next($st, 3), '5 5 2', 'first: the current state (id, version, count)');
Test::More::is(main::numsub_is('user-s1', 1), 1, 'the worker subscribed to the cart');

# (each event read before the next write: writes faster than the reads
# of the cart may share one event, TEST 12)
my @writes = (['POST', '/nocatalog/items', '{"sku_id":"SKU-2","quantity":3}',
               '6 6 5', 'add: version 6, 5 items', 'SKU-1 2, SKU-2 3'],
              ['PUT', '/nocatalog/items/SKU-1', '{"quantity":4}',
               '7 7 7', 'update: version 7, 7 items', 'SKU-1 4, SKU-2 3'],
              ['DELETE', '/nocatalog/items/SKU-2', undef,
               '8 8 4', 'remove: version 8, 4 items', 'SKU-1 4']);
for my $w (@writes) {
    my ($status) = main::call($w->[0], $w->[1], "X-User-Id: s1\r\n", $w->[2]);
    Test::More::is($status, 200, "$w->[0] $w->[1]");
    Test::More::is(main::stream_next($st, 3), $w->[3], $w->[4]);
    Test::More::is(main::lines_of($st), $w->[5], "the event's cart: $w->[5]");
}

# a write that changes nothing else still publishes one event; another
# owner's write none
main::call('POST', '/nocatalog/items', "X-User-Id: s1-other\r\n", '{"sku_id":"SKU-1","quantity":1}');
Test::More::is(main::stream_next($st, 0.5), undef, "another cart's change is not sent");

close $st->{sock};
Test::More::is(main::numsub_is('user-s1', 0), 0, 'the last stream gone: unsubscribed');
--- request
GET /nocatalog/count
--- more_headers
X-User-Id: s1
--- response_body: {"item_count":4}
--- no_error_log
[error]
[alert]



=== TEST 2: Last-Event-ID: a client that has the current version is not sent it again
--- init
CartClient::seed('s2');
my $st = main::stream_open('/nocatalog/stream', 'X-User-Id' => 's2', 'Last-Event-ID' => '5');
Test::More::is($st->{status}, 200, 'the stream opens');
Test::More::is(main::numsub_is('user-s2', 1), 1, 'subscribed');
Test::More::is(main::stream_next($st, 0.5), undef, 'version 5 is not sent again');
main::call('PUT', '/nocatalog/items/SKU-1', "X-User-Id: s2\r\n", '{"quantity":3}');
Test::More::is(main::stream_next($st, 3), '6 6 3', 'the next change is');

# an older (or any other) id gets the current state
my $old = main::stream_open('/nocatalog/stream', 'X-User-Id' => 's2', 'Last-Event-ID' => '2');
Test::More::is(main::stream_next($old, 3), '6 6 3', 'an older id gets the current state');
my $two = main::numsub('user-s2');
Test::More::is($two, 1, 'two streams of one cart in a worker: one subscription');
close $st->{sock};
sleep 0.2 * $main::Slow;
Test::More::is(main::numsub('user-s2'), 1, 'one stream left: still subscribed');
main::call('DELETE', '/nocatalog/items/SKU-1', "X-User-Id: s2\r\n");
Test::More::is(main::stream_next($old, 3), '7 7 0', 'the stream left still hears changes');
close $old->{sock};
Test::More::is(main::numsub_is('user-s2', 0), 0, 'unsubscribed');
--- request
GET /nocatalog/count
--- more_headers
X-User-Id: s2
--- response_body: {"item_count":0}
--- no_error_log
[error]



=== TEST 3: no identity: 401 in the API's JSON shape
--- request
GET /api/v1/cart/stream
--- error_code: 401
--- response_body_like: ^\{"error":\{"code":"unauthorized","message":"[^"]+"\}\}$



=== TEST 4: a guest's stream follows the guest's cart (cookie), a merge empties it
--- config eval: $CartAuth::Config
--- init
my $s = CartAuth::session('stream-g1');
my $cookie = 'cart_guest=' . CartAuth::guest_cookie($s);
redis_cmd('DEL', "cart:{guest-$s}", "cart_count:{guest-$s}", "merge:{guest-$s}");
redis_cmd('DEL', 'cart:{user-s4}', 'cart_count:{user-s4}');
my $st = main::stream_open('/nocatalog/stream', Cookie => $cookie);
Test::More::is($st->{status}, 200, 'the stream opens');
Test::More::is(main::stream_next($st, 3), '0 0 0', 'no cart yet: version 0');
Test::More::is(main::numsub_is("guest-$s", 1), 1, "subscribed to the guest's cart");
my ($status) = main::call('POST', '/nocatalog/items', "Cookie: $cookie\r\n",
                          '{"sku_id":"SKU-3","quantity":2}');
Test::More::is($status, 200, 'the guest adds');
Test::More::is(main::stream_next($st, 3), '1 1 2', 'the guest stream hears it');
Test::More::is(main::lines_of($st), 'SKU-3 2', 'with the line');
Test::More::is($st->{data}{cart}{cart_id}, "cart:guest-$s", "the guest's cart");
my $user = main::stream_open('/nocatalog/stream', 'X-User-Id' => 's4');
Test::More::is(main::stream_next($user, 3), '0 0 0', "the user's stream: no cart yet");
Test::More::is(main::lines_of($user), '', 'an empty cart');
($status) = main::call('POST', '/nocatalog/merge', "Cookie: $cookie\r\nX-User-Id: s4\r\n",
                       qq({"guest_session_id":"$s"}));
Test::More::is($status, 200, 'signed in, the guest cart is merged');
Test::More::is(main::stream_next($st, 3), '0 0 0', 'the guest cart is gone: version 0');
Test::More::is(main::lines_of($st), '', 'its event: an empty cart');
Test::More::is(main::stream_next($user, 3), '1 1 2', "the user's stream has the merge");
Test::More::is(main::lines_of($user), 'SKU-3 2', "with the guest's line");
close $user->{sock};

# a client without a cookie follows nothing: its session was made for it
my $fresh = main::stream_open('/nocatalog/stream');
Test::More::is($fresh->{status}, 200, 'a new guest opens a stream');
Test::More::is(main::stream_next($fresh, 3), '0 0 0', 'an empty cart');
Test::More::is(main::lines_of($fresh), '', 'its view: no lines');
Test::More::cmp_ok($fresh->{data}{cart}{estimated_total}, '==', 0, 'nothing to pay');
close $fresh->{sock};
close $st->{sock};
Test::More::is(main::numsub_is("guest-$s", 0), 0, 'unsubscribed');
--- request
GET /nocatalog/count
--- more_headers
X-User-Id: s4
--- response_body: {"item_count":2}
--- no_error_log
[error]



=== TEST 5: heartbeats: a ": ping" comment every cart_stream_heartbeat
--- http_config
cart_stream_heartbeat 300ms;
--- init
CartClient::seed('s5');
my $st = main::stream_open('/nocatalog/stream', 'X-User-Id' => 's5');
Test::More::is(main::stream_next($st, 3), '5 5 2', 'the current state');
Test::More::is(main::stream_next($st, 2, 1), ': ping', 'a heartbeat');
Test::More::is(main::stream_next($st, 2, 1), ': ping', 'and another');
close $st->{sock};
--- request
GET /nocatalog/count
--- more_headers
X-User-Id: s5
--- response_body: {"item_count":2}
--- no_error_log
[error]



=== TEST 6: over cart_stream_max: 503 with Retry-After; a stream closed makes room
--- http_config
cart_stream_max 2;
--- init
CartClient::seed('s6');
our @Held = map { main::stream_open('/nocatalog/stream', 'X-User-Id' => 's6') } 1 .. 2;
Test::More::is(main::stream_next($_, 3), '5 5 2', 'a stream under the cap') for @Held;
my $over = main::stream_open('/nocatalog/stream', 'X-User-Id' => 's6');
Test::More::is($over->{status}, 503, 'the third: 503');
Test::More::is($over->{headers}{'retry-after'}, '1', 'with Retry-After');
Test::More::like($over->{headers}{'content-type'}, qr{^application/json}, 'in JSON');
close((shift @Held)->{sock});
sleep 0.2 * $main::Slow;
my $again = main::stream_open('/nocatalog/stream', 'X-User-Id' => 's6');
Test::More::is($again->{status}, 200, 'room again once one closed');
push @Held, $again;
--- request
GET /nocatalog/stream
--- more_headers
X-User-Id: s6
--- error_code: 503
--- response_headers
Retry-After: 1
--- response_body_like: ^\{"error":\{"code":"too_many_streams","message":"[^"]+"\}\}$
--- error_log
cart_stream_max reached



=== TEST 7: Redis restarted under an open stream: it stays open and gets the change made after
--- init
CartClient::seed('s7');
my $st = main::stream_open('/nocatalog/stream', 'X-User-Id' => 's7');
Test::More::is(main::stream_next($st, 3), '5 5 2', 'the current state');
Test::More::is(main::numsub_is('user-s7', 1), 1, 'subscribed');
CartClient::redis_ctl('stop');
sleep 0.3;
CartClient::redis_ctl('start');
# Redis came back empty: wait until nginx writes again
my ($status, $deadline) = (0, time + 10 * $main::Slow);
while ($status != 200 && time < $deadline) {
    ($status) = main::call('POST', '/nocatalog/items', "X-User-Id: s7\r\n",
                           '{"sku_id":"SKU-2","quantity":4}');
    sleep 0.1 if $status != 200;
}
Test::More::is($status, 200, 'a write after the restart');
my @got;
while (defined(my $e = main::stream_next($st, 3))) {
    push @got, $e;
    last if $e eq '1 1 4';
}
Test::More::is($got[-1], '1 1 4', "the change made after recovery is sent (@got)");
Test::More::ok(!$st->{closed}, 'the stream stayed open');
Test::More::is(main::numsub_is('user-s7', 1), 1, 'subscribed again');
close $st->{sock};
Test::More::is(main::numsub_is('user-s7', 0), 0, 'and unsubscribed');
--- request
GET /nocatalog/count
--- more_headers
X-User-Id: s7
--- response_body: {"item_count":4}
--- timeout: 20



=== TEST 8: two workers: a write served by the other worker reaches the stream
--- two_workers
--- http_config eval
"server {
    listen 127.0.0.1:" . ($ENV{TEST_NGINX_PORT} + 2) . " reuseport;
    location /nocatalog {
        cart_api;
        cart_user \$http_x_user_id;
        add_header X-Pid \$pid always;
    }
}"
--- init
CartClient::seed('s8');
my $port = $ENV{TEST_NGINX_PORT} + 2;
my $st = main::stream_open('/nocatalog/stream', 'X-User-Id' => 's8', port => $port);
my $mine = $st->{headers}{'x-pid'};
Test::More::is(main::stream_next($st, 3), '5 5 2', 'the current state');
my ($n, %pids) = (2);
for my $i (1 .. 40) {
    my ($status, undef, $pid) = main::call('POST', '/nocatalog/items', "X-User-Id: s8\r\n",
                                           '{"sku_id":"SKU-1","quantity":1}', $port);
    $n++;
    $pids{$pid}++;
    last if $pid != $mine && $i >= 3;
}
my $other = grep { $_ != $mine } keys %pids;
Test::More::ok($other || $ENV{TEST_NGINX_USE_VALGRIND},
               'some write was served by the other worker');
# each event is the whole newest state: writes in quick succession may
# share one; the versions grow and the last is the last write's
my $last = 5 + ($n - 2);
my @got;
while (defined(my $e = main::stream_next($st, 3))) {
    push @got, $e;
    last if $e eq "$last $last $n";
}
Test::More::is($got[-1], "$last $last $n", "the last write reached the stream (@got)");
my @v = map { (split ' ')[1] } @got;
Test::More::ok(!grep({ $v[$_] <= $v[$_ - 1] } 1 .. $#v), 'in order');
Test::More::ok(!grep({ !/^(\d+) \1 (\d+)$/ || $2 != $1 - 3 } @got),
               'each event has the count of its version');
Test::More::is(main::lines_of($st), "SKU-1 $n", 'and the cart of the last write');
close $st->{sock};
Test::More::is(main::numsub_is('user-s8', 0), 0, 'unsubscribed');
--- request
GET /nocatalog/count
--- more_headers
X-User-Id: s8
--- response_body_like: ^\{"item_count":\d+\}$



=== TEST 9: a slow client holds one event at most: it gets the newest state, not every step; one that reads nothing is closed (cart_stream_lines 0: events from the messages alone)
--- http_config eval
"server {
    listen 127.0.0.1:" . ($ENV{TEST_NGINX_PORT} + 3) . " sndbuf=4k;
    send_timeout " . ($ENV{TEST_NGINX_USE_VALGRIND} ? 5 : 1) . "s;
    location /nocatalog {
        cart_api;
        cart_user \$http_x_user_id;
        cart_stream_lines 0;
    }
}"
--- init
CartClient::seed('s9');
my $port = $ENV{TEST_NGINX_PORT} + 3;
my $st = main::stream_open('/nocatalog/stream', 'X-User-Id' => 's9', port => $port,
                           rcvbuf => 2048);
Test::More::is(main::stream_next($st, 3), '5 5 2', 'the current state');
Test::More::is(main::numsub_is('user-s9', 1), 1, 'subscribed');
# 3000 changes while the client reads nothing: far more than the sockets hold
main::publish_many('user-s9', 6, 3005);
my @got;
while (defined(my $e = main::stream_next($st, 3))) {
    push @got, $e;
    last if $e eq '3005 3005 3005';
}
Test::More::is($got[-1], '3005 3005 3005', 'the newest state arrives');
my @v = map { (split ' ')[1] } @got;
Test::More::ok(!grep({ $v[$_] <= $v[$_ - 1] } 1 .. $#v), 'versions only grow');
Test::More::cmp_ok(scalar @got, '<', 3000, 'steps were skipped while the client lagged: '
                   . scalar(@got) . ' events');

# this client never reads: closed after send_timeout, its subscription gone
# (changes spaced out, so that each is written until the sockets are full)
my $stuck = main::stream_open('/nocatalog/stream', 'X-User-Id' => 's9', port => $port,
                              rcvbuf => 2048);
Test::More::is($stuck->{status}, 200, 'a second stream');
close $st->{sock};
main::publish_many('user-s9', 3006, 3605, 0.002 * $main::Slow);
Test::More::is(main::numsub_is('user-s9', 0), 0, 'the stuck stream was closed');
--- request
GET /nocatalog/count
--- more_headers
X-User-Id: s9
--- response_body: {"item_count":2}
--- error_log
cart stream: client too slow, closing
--- timeout: 30



=== TEST 10: an event carries the cart as GET / shows it from stored data: same object, valid JSON
--- init
CartClient::seed('s10');
my $st = main::stream_open('/nocatalog/stream', 'X-User-Id' => 's10');
Test::More::is(main::stream_next($st, 3), '5 5 2', 'the current state');
my $json = JSON::PP->new->canonical;
my (undef, $view) = main::call('GET', '/nocatalog', "X-User-Id: s10\r\n");
Test::More::is($json->encode($st->{data}{cart}), $json->encode($json->decode($view)),
               'the first event: the cart view of GET /');
Test::More::is($json->encode($st->{data}{cart}),
               $json->encode($json->decode(sprintf $CartClient::SeededView, 's10')),
               'the seeded cart');

my ($status) = main::call('POST', '/nocatalog/items', "X-User-Id: s10\r\n",
                          '{"sku_id":"SKU-2","quantity":1,"seller_id":"seller-2"}');
Test::More::is($status, 200, 'a second line');
Test::More::is(main::stream_next($st, 3), '6 6 3', 'its event');
(undef, $view) = main::call('GET', '/nocatalog', "X-User-Id: s10\r\n");
Test::More::is($json->encode($st->{data}{cart}), $json->encode($json->decode($view)),
               'the same object as GET / answers');
my @sellers = map { $_->{seller_id} } @{ $st->{data}{cart}{sellers} };
Test::More::is("@sellers", 'seller-1 seller-2', 'totals per seller from the engine');
Test::More::is($st->{data}{cart}{subtotal}, '59.98', 'subtotal at price_at_add (no price for SKU-2)');
Test::More::is($st->{data}{cart}{version}, 6, "the cart's version is the event's");
close $st->{sock};
--- request
GET /nocatalog/count
--- more_headers
X-User-Id: s10
--- response_body: {"item_count":3}
--- no_error_log
[error]
[alert]



=== TEST 11: with a catalog: stored prices, each line price_verified false (the stream asks no upstream); a checkout empties it
--- init
CartClient::seed('s11');
my $st = main::stream_open('/api/v1/cart/stream', 'X-User-Id' => 's11');
Test::More::is(main::stream_next($st, 3), '5 5 2', 'the current state');
my $line = $st->{data}{cart}{items}[0];
Test::More::is($line->{price_at_add}, '29.99', 'the stored price');
Test::More::is($line->{price_verified}, JSON::PP::false, 'marked not verified');
Test::More::ok(!exists $line->{current_price}, 'no catalog price');
my @codes = map { $_->{code} } @{ $st->{data}{cart}{warnings} };
Test::More::is("@codes", 'price_unverified', 'the view\'s warning for it');
Test::More::is($st->{data}{cart}{estimated_total}, '59.98', 'totals at stored prices');
my (undef, $view) = main::call('GET', '/api/v1/cart', "X-User-Id: s11\r\n");
Test::More::like($view, qr/"current_price":29.99,"price_changed":false,"name":"Wireless Mouse"/,
                 'GET / prices against the catalog');

my ($status) = main::call('POST', '/api/v1/cart/items', "X-User-Id: s11\r\n",
                          '{"sku_id":"SKU-3","quantity":1}');
Test::More::is($status, 200, 'an add');
Test::More::is(main::stream_next($st, 3), '6 6 3', 'its event');
Test::More::is(main::lines_of($st), 'SKU-1 2, SKU-3 1', 'the new line with its quantity');
Test::More::is($st->{data}{cart}{estimated_total}, '60.97', 'and the totals');

($status) = main::call('POST', '/api/v1/cart/checkout', "X-User-Id: s11\r\n");
Test::More::is($status, 200, 'checkout');
Test::More::is(main::stream_next($st, 3), '7 7 0', 'its event');
Test::More::is(main::lines_of($st), '', 'the cart is empty');
close $st->{sock};
--- request
GET /api/v1/cart/count
--- more_headers
X-User-Id: s11
--- response_body: {"item_count":0}
--- no_error_log
[alert]



=== TEST 11b: with a catalog cache: what the cache holds is the line's current price and name (read, never refreshed, by the stream); a line it does not hold stays unverified
--- config eval
$CartConf::Config . '
    location /cached {
        cart_api;
        cart_user $http_x_user_id;
        cart_catalog /_catalog/$cart_sku;
        cart_catalog_cache zone=stream_docs:1m valid=1m;
    }'
--- init
CartClient::seed('s11c');
my $st = main::stream_open('/cached/stream', 'X-User-Id' => 's11c');
Test::More::is(main::stream_next($st, 3), '5 5 2', 'the current state');
my $line = $st->{data}{cart}{items}[0];
Test::More::is($line->{price_verified}, JSON::PP::false, 'nothing cached yet: not verified');
Test::More::ok(!exists $line->{name}, 'and no name');

my ($status) = main::call('GET', '/cached', "X-User-Id: s11c\r\n");
Test::More::is($status, 200, 'a view fills the cache');
($status) = main::call('PUT', '/cached/items/SKU-1', "X-User-Id: s11c\r\n",
                       '{"quantity":3}');
Test::More::is($status, 200, 'an update');
Test::More::is(main::stream_next($st, 3), '6 6 3', 'its event');
$line = $st->{data}{cart}{items}[0];
Test::More::ok(!exists $line->{price_verified}, 'the cached answer: verified, as in a view');
Test::More::is($line->{name}, 'Wireless Mouse', 'with its name');
Test::More::is($line->{current_price}, '29.99', 'and current price');
Test::More::is(scalar @{ $st->{data}{cart}{warnings} }, 0, 'no warning');
Test::More::is($st->{data}{cart}{estimated_total}, '89.97', 'the totals');

($status) = main::call('POST', '/cached/items', "X-User-Id: s11c\r\n",
                       '{"sku_id":"SKU-2","quantity":1}');
Test::More::is($status, 200, 'an add of a SKU no view has asked about');
Test::More::is(main::stream_next($st, 3), '7 7 4', 'its event');
my %by = map { $_->{sku_id} => $_ } @{ $st->{data}{cart}{items} };
Test::More::ok(!exists $by{'SKU-1'}{price_verified}, 'SKU-1 from the cache');
close $st->{sock};
--- request
GET /cached/count
--- more_headers
X-User-Id: s11c
--- response_body: {"item_count":4}
--- no_error_log
[error]
[alert]



=== TEST 12: over cart_stream_lines: the short form, items_omitted, and the client GETs
--- http_config
cart_stream_lines 2;
--- init
CartClient::seed('s12');
my $st = main::stream_open('/nocatalog/stream', 'X-User-Id' => 's12');
Test::More::is(main::stream_next($st, 3), '5 5 2', 'the current state');
Test::More::is(main::lines_of($st), 'SKU-1 2', 'one line: the cart');
main::call('POST', '/nocatalog/items', "X-User-Id: s12\r\n", '{"sku_id":"SKU-2","quantity":1}');
Test::More::is(main::stream_next($st, 3), '6 6 3', 'two lines');
Test::More::is(main::lines_of($st), 'SKU-1 2, SKU-2 1', 'still the cart');
main::call('POST', '/nocatalog/items', "X-User-Id: s12\r\n", '{"sku_id":"SKU-3","quantity":1}');
Test::More::is(main::stream_next($st, 3), '7 7 4', 'three lines');
Test::More::is(main::lines_of($st), 'items_omitted', 'no cart: items_omitted');
Test::More::is(join(',', sort keys %{ $st->{data} }), 'item_count,items_omitted,version',
               'version, item_count and items_omitted alone');
main::call('DELETE', '/nocatalog/items/SKU-3', "X-User-Id: s12\r\n");
Test::More::is(main::stream_next($st, 3), '8 8 3', 'two lines again');
Test::More::is(main::lines_of($st), 'SKU-1 2, SKU-2 1', 'the cart again');
close $st->{sock};
--- request
GET /nocatalog/count
--- more_headers
X-User-Id: s12
--- response_body: {"item_count":3}
--- no_error_log
[error]



=== TEST 13: carts in the events: a client that lags gets the newest cart, not every step
--- http_config eval
"server {
    listen 127.0.0.1:" . ($ENV{TEST_NGINX_PORT} + 3) . " sndbuf=4k;
    location /nocatalog {
        cart_api;
        cart_user \$http_x_user_id;
    }
}"
--- init
CartClient::seed('s13');
my $port = $ENV{TEST_NGINX_PORT} + 3;
my $st = main::stream_open('/nocatalog/stream', 'X-User-Id' => 's13', port => $port,
                           rcvbuf => 2048);
Test::More::is(main::stream_next($st, 3), '5 5 2', 'the current state');
Test::More::is(main::numsub_is('user-s13', 1), 1, 'subscribed');
# 200 writes while the client reads nothing
my $n = $main::Slow > 1 ? 40 : 200;
for my $i (1 .. $n) {
    main::call('PUT', '/nocatalog/items/SKU-1', "X-User-Id: s13\r\n",
               '{"quantity":' . ($i % 90 + 1) . '}', $port);
}
my ($last, $qty) = (5 + $n, $n % 90 + 1);
my (@got, @bad);
while (defined(my $e = main::stream_next($st, 3))) {
    push @got, $e;
    push @bad, $e unless $e =~ /^(\d+) \1 (\d+)$/
                         && $st->{data}{cart}{version} == $1
                         && $st->{data}{cart}{items}[0]{quantity} == $2;
    last if $e eq "$last $last $qty";
}
Test::More::is($got[-1], "$last $last $qty", 'the newest state arrives');
Test::More::is(main::lines_of($st), "SKU-1 $qty", 'with the newest cart');
Test::More::is("@bad", '', "each event's cart is the state of its version");
my @v = map { (split ' ')[1] } @got;
Test::More::ok(!grep({ $v[$_] <= $v[$_ - 1] } 1 .. $#v), 'versions only grow');
Test::More::cmp_ok(scalar @got, '<', $n, 'steps were skipped while the client lagged: '
                   . scalar(@got) . ' events');
close $st->{sock};
--- request
GET /nocatalog/count
--- more_headers
X-User-Id: s13
--- response_body_like: ^\{"item_count":\d+\}$
--- no_error_log
[error]
--- timeout: 30



=== TEST 14: one cart, many streams in a worker: one change is one state read in Redis and one event on every stream, each location's view of it
--- http_config eval
"server {
    listen 127.0.0.1:" . ($ENV{TEST_NGINX_PORT} + 3) . ";
    location /nocatalog {
        cart_api;
        cart_user \$http_x_user_id;
        cart_stream_lines 1;
    }
}"
--- init
CartClient::seed('s14');
my $n = $main::Slow > 1 ? 4 : 12;
my @plain = map { main::stream_open('/nocatalog/stream', 'X-User-Id' => 's14') } 1 .. $n;
my $priced = main::stream_open('/api/v1/cart/stream', 'X-User-Id' => 's14');
my $short = main::stream_open('/nocatalog/stream', 'X-User-Id' => 's14',
                              port => $ENV{TEST_NGINX_PORT} + 3);
my @all = (@plain, $priced, $short);
my $first = grep { (main::stream_next($_, 3) // '') eq '5 5 2' } @all;
Test::More::is($first, scalar @all, 'every stream has the current state');
Test::More::is(main::numsub_is('user-s14', 1), 1, 'one subscription');

# every command Redis runs is logged, with its arguments
redis_cmd('CONFIG', 'SET', 'slowlog-max-len', '1000');
redis_cmd('CONFIG', 'SET', 'slowlog-log-slower-than', '0');
redis_cmd('SLOWLOG', 'RESET');
my ($status) = main::call('POST', '/nocatalog/items', "X-User-Id: s14\r\n",
                          '{"sku_id":"SKU-2","quantity":1}');
Test::More::is($status, 200, 'one change');
my $got = grep { (main::stream_next($_, 3) // '') eq '6 6 3' } @all;
Test::More::is($got, scalar @all, 'every stream has its event');
Test::More::is(main::stream_next($plain[0], 0.5), undef, 'and no other');
my $log = redis_cmd('SLOWLOG', 'GET', '1000');
redis_cmd('CONFIG', 'SET', 'slowlog-log-slower-than', '10000');
my $scripts = () = $log =~ /^EVALSHA\n[0-9a-f]{40}\n\d+\ncart:\{user-s14\}$/mg;
# stream.lua's call: EVALSHA sha 2 cart count <the most lines a stream carries>
my $reads = () = $log =~ /^EVALSHA\n[0-9a-f]{40}\n2\ncart:\{user-s14\}\ncart_count:\{user-s14\}\n20$/mg;
Test::More::is($scripts - $reads, 1, 'the slow log has the write');
Test::More::is($reads, 1, 'one state read for ' . scalar(@all) . ' streams');

my $json = JSON::PP->new->canonical;
my %texts = map { $json->encode($_->{data}) => 1 } @plain;
Test::More::is(scalar keys %texts, 1, 'the streams of a location have the same event');
Test::More::is(main::lines_of($plain[0]), 'SKU-1 2, SKU-2 1', 'with the cart');
Test::More::ok(!exists $plain[0]{data}{cart}{items}[0]{price_verified}, 'no catalog: nothing to verify');
Test::More::is(main::lines_of($priced), 'SKU-1 2, SKU-2 1', 'the stream of the location with a catalog');
Test::More::is($priced->{data}{cart}{items}[0]{price_verified}, JSON::PP::false,
               'its view: stored prices, not verified');
Test::More::is(main::lines_of($short), 'items_omitted',
               'a location that carries one line: items_omitted');
close $_->{sock} for @all;
Test::More::is(main::numsub_is('user-s14', 0), 0, 'unsubscribed');
--- request
GET /nocatalog/count
--- more_headers
X-User-Id: s14
--- response_body: {"item_count":3}
--- no_error_log
[error]



=== TEST 15: streams closed while their channel's read is in flight, the one whose request carries it first: the stream left gets the state, nothing reaches the closed ones
--- http_config
cart_redis_timeout 30s;
--- init
CartClient::seed('s15');
my @st = map { main::stream_open('/nocatalog/stream', 'X-User-Id' => 's15') } 1 .. 4;
my $first = grep { (main::stream_next($_, 3) // '') eq '5 5 2' } @st;
Test::More::is($first, 4, 'four streams have the current state');
# writes paused: the subscriber comes back, and the channel's read (the
# oldest stream carries it) waits in Redis
redis_cmd('CLIENT', 'PAUSE', 20000, 'WRITE');
redis_cmd('CLIENT', 'KILL', 'TYPE', 'pubsub');
Test::More::is(main::numsub_is('user-s15', 1), 1, 'subscribed again');
sleep 0.3 * $main::Slow;
close $_->{sock} for splice @st, 0, 3;
sleep 0.3 * $main::Slow;
redis_cmd('CLIENT', 'UNPAUSE');
Test::More::is(main::stream_next($st[0], 1), undef, 'the state read again: nothing changed');
my ($status) = main::call('POST', '/nocatalog/items', "X-User-Id: s15\r\n",
                          '{"sku_id":"SKU-2","quantity":1}');
Test::More::is($status, 200, 'a change');
Test::More::is(main::stream_next($st[0], 3), '6 6 3', 'the stream left has it');
Test::More::is(main::lines_of($st[0]), 'SKU-1 2, SKU-2 1', 'with the cart');
close $st[0]{sock};
Test::More::is(main::numsub_is('user-s15', 0), 0, 'unsubscribed');
--- request
GET /nocatalog/count
--- more_headers
X-User-Id: s15
--- response_body: {"item_count":3}
--- error_log
cart stream: the stream carrying the state read closed, reading again
--- no_error_log
[alert]
[crit]
--- timeout: 30
