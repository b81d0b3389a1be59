# Cart change events on Kafka: one per successful write, with the
# contract's fields, keyed by the owner, in version order per key; user_id
# the user's own id (null for a guest), the owner and its kind in their own
# fields; none for a failed write or an idempotent replay; a full local
# queue drops events with a logged error and never fails or stalls the
# request.
#
# Needs the test command's brokers (util/test.sh starts them).

use lib 't/lib';
use CartTest;
use CartConf;
use CartClient;
use CartKafka;
use CartAuth;
use Digest::SHA ();
use Test::More ();

# In HUP mode one nginx lives across blocks: its shared-memory counters
# outlive reloads by design (cart_status), and the old workers log their
# producer's close after the next block starts; blocks here assert exact
# counts and quiet logs per nginx, so they need a fresh one each.
plan $ENV{TEST_NGINX_USE_HUP}
     ? (skip_all => 'exact event counters per nginx: not with HUP reloads')
     : 'no_plan';
no_shuffle();

add_block_preprocessor(CartKafka::preprocessor());

our $Run = $$ . '-' . time;   # owners unique to this run: the topic outlives it

sub main::owner { return "ev$_[0]-$main::Run" }

run_tests();

__DATA__

=== TEST 1: add, update, remove: three events from one worker
--- init
redis_cmd('DEL', "cart:{user-" . main::owner(1) . "}");
--- request eval
my $u = main::owner(1);
["POST /api/v1/cart/items\n{\"sku_id\":\"SKU-1\",\"quantity\":2}",
 "PUT /api/v1/cart/items/SKU-1\n{\"quantity\":5}",
 "POST /api/v1/cart/items\n{\"sku_id\":\"SKU-2\",\"quantity\":1}",
 "DELETE /api/v1/cart/items/SKU-1"]
--- more_headers eval
"X-User-Id: " . main::owner(1) . "\nContent-Type: application/json"
--- error_code eval
[200, 200, 200, 200]
--- response_body_like eval
['"version":1', '"version":2', '"version":3', '"version":4']
--- no_error_log
[error]



=== TEST 2: (checks of TEST 1) each event's fields, order and key
--- init
my $owner = 'user-' . main::owner(1);
my @m = CartKafka::wait_events($owner, 4);
Test::More::is(scalar @m, 4, 'four events for four writes');
my @ev = map { $_->{event} } @m;
Test::More::is_deeply([map { $_->{type} } @ev],
    ['item_added', 'quantity_updated', 'item_added', 'item_removed'],
    'the contract types, in write order');
Test::More::is_deeply([map { $_->{version} } @ev], [1, 2, 3, 4],
    'version is the per-cart sequence number, in offset order');
Test::More::is(scalar(keys %{{ map { $_->{partition} => 1 } @m }}), 1,
    'one key, one partition');
Test::More::is(scalar(keys %{{ map { $_->{event_id} => 1 } @ev }}), 4,
    'event ids are unique');
for my $e (@ev) {
    Test::More::like($e->{event_id}, qr/^[0-9a-f]{32}$/, 'event_id');
    Test::More::is($e->{cart_id}, "cart:$owner", 'cart_id');
    Test::More::is($e->{user_id}, main::owner(1), "user_id is the user's own id");
    Test::More::is($e->{owner}, $owner, 'owner is the owner as the cart key names it');
    Test::More::is($e->{owner_kind}, 'user', 'owner_kind');
    Test::More::like($e->{ts}, qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/, 'ts');
}
Test::More::is_deeply({ map { $_ => $ev[0]{$_} } qw(sku_id quantity price seller_id) },
    { sku_id => 'SKU-1', quantity => 2, price => 29.99, seller_id => 'seller-1' },
    'item_added carries the line: sku, quantity, catalog price, seller');
Test::More::is($ev[1]{quantity}, 5, 'quantity_updated carries the new quantity');
Test::More::is($ev[2]{price}, 5, 'a price of 5.00 is the number 5');
Test::More::is($ev[3]{quantity}, 0, 'item_removed: quantity 0');
Test::More::is($ev[3]{sku_id}, 'SKU-1', 'item_removed names the line');
Test::More::like($m[0]{value}, qr/^\{"event_id":"[0-9a-f]{32}","type":"item_added",/,
    'the document starts with event_id and type');
Test::More::like($m[0]{value}, qr/"cart_id":"cart:\Q$owner\E","user_id":"\Q${\ main::owner(1)}\E","owner":"\Q$owner\E","owner_kind":"user","sku_id"/,
    'user_id, owner, owner_kind after cart_id');
Test::More::is($_->{key}, $owner, 'the message key is still the owner') for @m;
--- request
GET /api/v1/cart/count
--- more_headers eval
"X-User-Id: " . main::owner(1)
--- response_body chomp
{"item_count":1}



=== TEST 3: failed writes and idempotent replays publish nothing
--- init
redis_cmd('DEL', "cart:{user-" . main::owner(3) . "}");
--- request eval
["POST /api/v1/cart/items\n{\"sku_id\":\"SKU-1\",\"quantity\":1}",
 "POST /api/v1/cart/items\n{\"sku_id\":\"SKU-1\",\"quantity\":1}",
 "PUT /api/v1/cart/items/SKU-9\n{\"quantity\":1}",
 "POST /api/v1/cart/items\n{\"sku_id\":\"SKU-UNKNOWN\",\"quantity\":1}",
 "POST /api/v1/cart/items\n{\"sku_id\":\"SKU-1\",\"quantity\":100}",
 "PUT /api/v1/cart/items/SKU-1\n{\"quantity\":3}",
 "DELETE /api/v1/cart/items/SKU-1"]
--- more_headers eval
my $h = "X-User-Id: " . main::owner(3) . "\nContent-Type: application/json";
["$h\nIdempotency-Key: k1", "$h\nIdempotency-Key: k1", $h, $h, $h,
 "$h\nIf-Match: \"7\"", $h]
--- error_code eval
[200, 200, 404, 422, 422, 412, 200]
--- response_headers eval
["!Idempotent-Replayed", "Idempotent-Replayed: true", "", "", "", "", ""]



=== TEST 4: (checks of TEST 3) two events: the add and the delete
--- init
my @m = CartKafka::wait_events('user-' . main::owner(3), 2);
# the two expected ones were produced by the previous nginx, which flushed
# them before it exited: anything else would be there too
Test::More::is_deeply([map { "$_->{event}{type} v$_->{event}{version}" } @m],
    ['item_added v1', 'item_removed v2'],
    'no event for a replay, a 404, 422s or a 412');
--- request
GET /api/v1/cart/count
--- more_headers eval
"X-User-Id: " . main::owner(3)
--- response_body chomp
{"item_count":0}



=== TEST 5: ten writes in a row: offsets follow versions
--- init
redis_cmd('DEL', "cart:{user-" . main::owner(5) . "}");
--- request eval
[map { "POST /nocatalog/items\n{\"sku_id\":\"SKU-$_\",\"quantity\":1}" } 1 .. 10]
--- more_headers eval
"X-User-Id: " . main::owner(5) . "\nContent-Type: application/json"
--- error_code eval
[(200) x 10]



=== TEST 6: (checks of TEST 5) per-key order; no price without a catalog
--- init
my @m = CartKafka::wait_events('user-' . main::owner(5), 10);
Test::More::is_deeply([map { $_->{event}{version} } @m], [1 .. 10],
    'versions 1..10 in offset order');
Test::More::is_deeply([map { $_->{event}{sku_id} } @m], [map { "SKU-$_" } 1 .. 10],
    'the lines in write order');
Test::More::ok(!grep({ exists $_->{event}{price} } @m),
    'an unknown price is left out, not null');
--- request
GET /nocatalog/count
--- more_headers eval
"X-User-Id: " . main::owner(5)
--- response_body chomp
{"item_count":10}



=== TEST 6b: a guest's events: user_id null, the owner guest-<session>, the key too; a checkout's names its checkout id
--- config
    location /guest {
        cart_api;
        cart_user $http_x_user_id;
        cart_guest_cookie cart_guest secret=$TEST_NGINX_KEYS/cookie.secret;
    }
    location /nocatalog {
        cart_api;
        cart_user $http_x_user_id;
    }
--- init
my ($st, $body) = CartClient::request('POST', '/guest/items', undef,
                                      '{"sku_id":"SKU-1","quantity":1}');
Test::More::is($st, 200, 'a guest adds');
my ($guest) = $body =~ /"cart_id":"cart:(guest-[0-9a-f]{32})"/;
my @g = CartKafka::wait_events($guest, 1);
Test::More::is(scalar @g, 1, 'one event, keyed by the guest owner');
Test::More::ok(exists $g[0]{event}{user_id} && !defined $g[0]{event}{user_id},
               'user_id is null for a guest');
Test::More::is($g[0]{event}{owner}, $guest, 'owner: guest-<session>');
Test::More::is($g[0]{event}{owner_kind}, 'guest', 'owner_kind: guest');

my $u = main::owner('6b');
redis_cmd('DEL', "idem:{user-$u}:c6");
CartClient::seed($u);       # SKU-1 x2 at 29.99, version 5
($st) = CartClient::request('POST', '/nocatalog/checkout', $u, undef, 'Idempotency-Key' => 'c6');
Test::More::is($st, 200, 'a user checks out');
my @c = CartKafka::wait_events("user-$u", 1);
Test::More::is_deeply([map { $_->{event}{type} } @c], ['checkout'], 'a checkout event');
Test::More::is($c[0]{event}{checkout_id},
               substr(Digest::SHA::sha1_hex("idem:{user-$u}:c6"), 0, 32),
               'it names the checkout id (the holds are named by it)');
Test::More::is($c[0]{event}{user_id}, $u, 'user_id');
Test::More::ok(!exists $g[0]{event}{checkout_id}, 'other events have none');
--- request
GET /nocatalog/count
--- more_headers eval
"X-User-Id: " . main::owner('6b')
--- response_body chomp
{"item_count":0}



=== TEST 7: no cart_kafka_brokers: events are off, writes work
--- http_config
--- init
redis_cmd('DEL', "cart:{user-" . main::owner(7) . "}");
--- request
POST /nocatalog/items
{"sku_id":"SKU-1","quantity":1}
--- more_headers eval
"X-User-Id: " . main::owner(7) . "\nContent-Type: application/json"
--- response_body_like: "version":1
--- error_log
(events off)
--- no_error_log
cart kafka



=== TEST 8: a full local queue drops the event, logged, counted; the write is 200
Brokers down and a queue of one message: the first event waits in the
queue (and times out after a second), the next two cannot be enqueued.
--- http_config
cart_kafka_brokers $TEST_NGINX_KAFKA_BROKERS;
cart_kafka_property queue.buffering.max.messages 1;
cart_kafka_property message.timeout.ms 1000;
--- init
CartKafka::ctl('down');
redis_cmd('DEL', "cart:{user-" . main::owner(8) . "}");
my @st = map { (CartClient::request('POST', '/nocatalog/items', main::owner(8),
                                    "{\"sku_id\":\"SKU-$_\",\"quantity\":1}"))[0] } 1 .. 3;
Test::More::is("@st", "200 200 200", 'every write answered 200');
CartKafka::wait_log(qr/Message timed out/);
--- request
GET /_status
--- response_body_like eval
'^# HELP cart_events_total Cart events by outcome since nginx started.\n# TYPE cart_events_total counter\ncart_events_total\{outcome="enqueued"\} 1\ncart_events_total\{outcome="delivered"\} 0\ncart_events_total\{outcome="failed"\} 1\ncart_events_total\{outcome="dropped"\} 2\n# HELP cart_requests_total '
--- error_log eval
[qr/cart kafka: event for "user-ev8-[^"]+" dropped: Local: Queue full \(1 dropped since the last report, 1 in all\)/,
 qr/cart kafka: event for "user-ev8-[^"]+" not delivered: Local: Message timed out \(1 failed in all\): \{"event_id"/]



=== TEST 9: (after TEST 8) brokers back; the dropped events never show up
--- init
CartKafka::ctl('up');
--- request
GET /nocatalog/count
--- more_headers eval
"X-User-Id: " . main::owner(8)
--- response_body chomp
{"item_count":3}



=== TEST 10: an unknown cart_kafka_property is refused at configuration time
--- init
my $dir = "$ENV{TEST_NGINX_SERVROOT}/conf";
open my $fh, '>', "$dir/bad.conf" or die $!;
print {$fh} "load_module $ENV{TEST_NGINX_CART_SO};\nevents {}\nhttp {\n"
    . "  cart_redis redis://127.0.0.1:$ENV{TEST_NGINX_REDIS_PORT};\n"
    . "  cart_kafka_brokers 127.0.0.1:1;\n"
    . "  cart_kafka_property no.such.thing 1;\n}\n";
close $fh;
my $nginx = join ' ', CartTest::nginx_command();
my $out = `$nginx -t -p $ENV{TEST_NGINX_SERVROOT} -c $dir/bad.conf 2>&1`;
Test::More::isnt($?, 0, 'nginx -t fails');
Test::More::like($out, qr/librdkafka: No such configuration property: "no.such.thing"/,
    'and says why') or Test::More::diag($out);
--- request
GET /nocatalog/count
--- more_headers
X-User-Id: nobody
--- response_body chomp
{"item_count":0}



=== TEST 11: cart_status without events: zeros; only GET
--- http_config
--- request eval
["GET /_status", "POST /_status\nx"]
--- error_code eval
[200, 405]
--- response_body_like eval
['^# HELP cart_events_total .*\ncart_events_total\{outcome="enqueued"\} 0\ncart_events_total\{outcome="delivered"\} 0\ncart_events_total\{outcome="failed"\} 0\ncart_events_total\{outcome="dropped"\} 0\n# HELP cart_requests_total ',
 '405']
--- response_headers eval
["Content-Type: text/plain; version=0.0.4", ""]
