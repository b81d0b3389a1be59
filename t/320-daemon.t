# The companion daemon (cartd): snapshots in PostgreSQL from the events,
# the end-to-end lag, dedup of replayed events, a poison message to the
# DLQ after three tries, a daemon killed mid-batch, reconciliation from
# Redis, and restore after FLUSHALL.
#
# Needs the test command's brokers and PostgreSQL (util/test.sh).

use lib 't/lib';
use CartTest;
use CartConf;
use CartClient;
use CartKafka;
use CartDaemon;
use Digest::SHA ();
use Test::More ();
use Time::HiRes ();

plan 'no_plan';
no_shuffle();

add_block_preprocessor(CartKafka::preprocessor('cart_kafka_property linger.ms 1;'));

our $Run = $$ . '-' . time;
sub main::owner { return "dm$_[0]-$main::Run" }
our $Group = "cartd-test-$main::Run";

# a consumer group of its own: this file's daemon starts from the
# beginning of the topic, whatever ran before
# a member killed without leaving holds up the next one's join until its
# session times out: the shortest session Kafka allows
our @Kafka = (kafka_property => ['session.timeout.ms 6000',
                                 'heartbeat.interval.ms 1000',
                                 'fetch.wait.max.ms 20']);
our $Conf = CartDaemon::conf('320', kafka_group => $Group, batch_size => 50,
                             @Kafka);

sub main::write {
    my ($user, $method, $path, $body) = @_;
    $path = "/api/v1/cart$path" unless $path =~ m{^/nocatalog};
    my ($status, $resp) = CartClient::request($method, $path, $user, $body);
    die "$method $path: $status $resp" unless $status == 200;
    my ($v) = $resp =~ /"version":(\d+)/;
    return $v;
}

# waits until the snapshot of $user has Redis's version; true when it does
sub main::caught_up {
    my ($user, $timeout) = @_;
    my $owner = "user-$user";
    my ($v) = split /;/, CartDaemon::redis_cart($owner);
    return CartDaemon::wait_sql("SELECT version FROM carts WHERE user_id = '$owner'",
                                $v, $timeout) eq $v;
}

# how many of these messages' event ids the daemon has recorded
sub main::processed {
    my $ids = join "','", map { $_->{event}{event_id} } @_;
    return CartDaemon::sql("SELECT count(*) FROM processed_events WHERE event_id IN ('$ids')");
}

run_tests();

__DATA__

=== TEST 1: a burst of writes on three carts: snapshots equal Redis
--- init
my ($rc, $out) = CartDaemon::run($main::Conf, 'migrate');
Test::More::is($rc, 0, 'migrate') or Test::More::diag($out);
$main::Daemon = CartDaemon::start('320', $main::Conf);
my @users = map { main::owner("b$_") } 1 .. 3;
CartTest::redis_cmd('DEL', "cart:{user-$_}", "cart_count:{user-$_}") for @users;
my @st = CartClient::parallel(3, sub {
    my $u = $users[$_[0] - 1];
    for my $i (1 .. 10) {
        main::write($u, 'POST', '/items', "{\"sku_id\":\"SKU-" . (1 + $i % 3) . "\",\"quantity\":1}");
        main::write($u, 'PUT', '/items/SKU-2', '{"quantity":4}') if $i == 5;
        main::write($u, 'DELETE', '/items/SKU-1') if $i == 8;
    }
    return 'ok';
});
Test::More::is("@st", 'ok ok ok', '36 writes answered');
for my $u (@users) {
    Test::More::ok(main::caught_up($u), "snapshot of $u caught up");
    Test::More::is(CartDaemon::pg_cart("user-$u"), CartDaemon::redis_cart("user-$u"),
                   "snapshot of $u equals Redis: lines, prices, sellers, added_at, version");
}
Test::More::is(CartDaemon::sql("SELECT events_applied FROM carts WHERE user_id = 'user-$users[0]'"),
               12, 'twelve events applied for twelve writes');
Test::More::is(CartDaemon::sql("SELECT price_at_add || ' ' || seller_id FROM cart_snapshots"
               . " WHERE user_id = 'user-$users[0]' AND sku_id = 'SKU-2'"),
               '5.00 seller-2', 'price_at_add in currency units, seller');
--- request
GET /api/v1/cart/count
--- more_headers eval
"X-User-Id: " . main::owner("b1")
--- response_body chomp
{"item_count":10}



=== TEST 2: end-to-end lag, write -> snapshot row (measured, not asserted)
A daemon of its own, caught up before the first measured write, so that
its lag figures are the steady state (not a backlog).
--- init
CartDaemon::stop($main::Daemon);
my $u = main::owner('lag');
my $pid = CartDaemon::start('320-lag', $main::Conf);
Test::More::ok(CartDaemon::wait_log('320-lag', qr/assigned \d+ partitions/, 60),
               'the daemon joined the group');
my @lag;
for my $i (1 .. 30) {
    my $t0 = Time::HiRes::time();
    my $v = main::write($u, 'POST', '/items', '{"sku_id":"SKU-3","quantity":1}');
    my $got = CartDaemon::wait_sql("SELECT version FROM carts WHERE user_id = 'user-$u'", $v, 30, 0.005);
    push @lag, (Time::HiRes::time() - $t0) * 1000;
    Test::More::is($got, $v, "write $i in the snapshot") or last;
    Time::HiRes::sleep(0.05);
}
CartDaemon::stop($pid);
@lag = sort { $a <=> $b } @lag;
Test::More::diag(sprintf('lag seen by the client (response -> row visible to a polling psql) over %d writes: '
    . 'median %.1f ms, p90 %.1f ms, max %.1f ms', scalar @lag,
    $lag[$#lag / 2], $lag[int($#lag * 0.9)], $lag[-1]));
open my $fh, '<', CartDaemon::log_path('320-lag') or die $!;
my ($line) = grep { /lag from event ts/ } <$fh>;
Test::More::like($line // '', qr/over 30 events/, 'the daemon measured each write');
Test::More::diag("cartd: $1") if ($line // '') =~ /info: (.*)/;
$main::Daemon = CartDaemon::start('320', $main::Conf);
--- request
GET /api/v1/cart/count
--- more_headers eval
"X-User-Id: " . main::owner("lag")
--- response_body chomp
{"item_count":30}



=== TEST 3: the same events delivered again are applied once
--- init
my $u = main::owner('dup');
CartTest::redis_cmd('DEL', "cart:{user-$u}");
main::write($u, 'POST', '/items', '{"sku_id":"SKU-1","quantity":1}');
main::write($u, 'POST', '/items', '{"sku_id":"SKU-2","quantity":1}');
my @m = CartKafka::wait_events("user-$u", 2);
Test::More::ok(main::caught_up($u), 'first delivery applied');
# at-least-once: both events come again (a producer retry, a replay)
CartKafka::produce('cart-events', "user-$u", $_->{value}) for @m, @m;
# a later write marks the point where the duplicates are behind us
my $v = main::write($u, 'POST', '/items', '{"sku_id":"SKU-3","quantity":1}');
Test::More::ok(main::caught_up($u), 'the marker write applied');
Test::More::is(CartDaemon::sql("SELECT events_applied FROM carts WHERE user_id = 'user-$u'"),
               3, 'three events applied, not seven');
Test::More::is(main::processed(@m), 2, 'each event id remembered once');
Test::More::is(CartDaemon::pg_cart("user-$u"), CartDaemon::redis_cart("user-$u"),
               'snapshot equals Redis');
--- request
GET /api/v1/cart/count
--- more_headers eval
"X-User-Id: " . main::owner("dup")
--- response_body chomp
{"item_count":3}



=== TEST 3b: the owner is read from "owner"; an event written before it existed (the owner in user_id) still applies; a guest's (user_id null) applies to its owner
--- init
my $u = main::owner('old');
CartTest::redis_cmd('DEL', "cart:{user-$u}");
main::write($u, 'POST', '/items', '{"sku_id":"SKU-1","quantity":1}');
my ($m) = CartKafka::wait_events("user-$u", 1);
Test::More::is($m->{event}{owner}, "user-$u", 'a new event names its owner');
Test::More::ok(main::caught_up($u), 'and is applied to it');
# as the module wrote events before: no owner, user_id the owner's form
my $old = $m->{value} =~ s/"user_id":"[^"]*","owner":"[^"]*","owner_kind":"user",/"user_id":"user-$u",/r
                      =~ s/"event_id":"[0-9a-f]+"/"event_id":"old-$main::Run"/r;
Test::More::unlike($old, qr/"owner"/, 'the old form has no owner');
CartKafka::produce('cart-events', "user-$u", $old);
# a guest's cart, and its event as the module writes it
my $g = 'guest-' . substr(Digest::SHA::sha1_hex($main::Run), 0, 32);
CartTest::redis_cmd('HSET', "cart:{$g}", 'SKU-2', '2|500|seller-2|t6kdc0', '#v', '1');
CartKafka::produce('cart-events', $g, '{"event_id":"guest-' . $main::Run . '","type":"item_added",'
    . '"cart_id":"cart:' . $g . '","user_id":null,"owner":"' . $g . '","owner_kind":"guest",'
    . '"sku_id":"SKU-2","quantity":2,"version":1,"ts":"2026-12-01T10:00:00.000Z"}');
Test::More::is(CartDaemon::wait_sql("SELECT events_applied FROM carts WHERE user_id = 'user-$u'", 2, 30),
               2, 'the old-form event applied to its owner');
Test::More::is(CartDaemon::wait_sql("SELECT events_applied FROM carts WHERE user_id = '$g'", 1, 30),
               1, "the guest's event applied to the guest's cart");
Test::More::is(CartDaemon::pg_cart($g), CartDaemon::redis_cart($g), 'its snapshot equals Redis');
--- request
GET /api/v1/cart/count
--- more_headers eval
"X-User-Id: " . main::owner("old")
--- response_body chomp
{"item_count":1}



=== TEST 4: poison messages go to the DLQ after three tries; the rest goes on
--- init
my $u = main::owner('poison');
CartKafka::produce('cart-events', "user-$u", 'this is not json');
CartKafka::produce('cart-events', "user-$u", '{"event_id":"x","type":"item_added"}');
my $v = main::write($u, 'POST', '/items', '{"sku_id":"SKU-1","quantity":2}');
Test::More::ok(main::caught_up($u), 'the write behind the poison is applied');
my @dlq = CartKafka::wait_events("user-$u", 2, 20, 'cart-events-dlq');
Test::More::is_deeply([map { $_->{value} } @dlq],
    ['this is not json', '{"event_id":"x","type":"item_added"}'],
    'both poison messages in cart-events-dlq, as they were');
for my $m (@dlq) {
    Test::More::like($m->{headers}, qr/x-tries=3/, 'after three tries');
    Test::More::like($m->{headers}, qr/x-original-topic=cart-events/, 'with the original topic');
    Test::More::like($m->{headers}, qr/x-original-offset=\d+/, 'and offset');
    Test::More::like($m->{headers}, qr/x-error=\S/, 'and the reason');
}
open my $fh, '<', CartDaemon::log_path('320') or die $!;
my $log = do { local $/; <$fh> };
Test::More::like($log, qr/failed \(try 2 of 3\): lexical error/, 'each try is logged');
Test::More::like($log, qr/sent to cart-events-dlq after 3 tries/, 'and the dead letter');
--- request
GET /api/v1/cart/count
--- more_headers eval
"X-User-Id: " . main::owner("poison")
--- response_body chomp
{"item_count":2}



=== TEST 5: killed between the database commit and the offset commit, then SIGKILLed at random: nothing lost, nothing twice
--- init
my $u = main::owner('kill');
CartTest::redis_cmd('DEL', "cart:{user-$u}");
CartDaemon::stop($main::Daemon);
main::write($u, 'POST', '/nocatalog/items', "{\"sku_id\":\"SKU-K$_\",\"quantity\":$_}") for 1 .. 40;
my @m = CartKafka::wait_events("user-$u", 40);
Test::More::is(scalar @m, 40, 'forty events on the topic');
my $conf = CartDaemon::conf('320-kill', kafka_group => $main::Group, batch_size => 5,
                            @main::Kafka);
my $pid = CartDaemon::start('320', $conf, CARTD_TEST_EXIT_AFTER_COMMITS => 1);
my $st = CartDaemon::wait_exit($pid, 60);
Test::More::is(defined $st ? $st >> 8 : 'running', 137,
               'the daemon died right after its first database commit');
my $applied = CartDaemon::sql("SELECT COALESCE(max(events_applied), 0) FROM carts WHERE user_id = 'user-$u'");
Test::More::ok($applied > 0 && $applied < 40, "it had applied part of the events: $applied");
for my $round (1 .. 3) {
    $pid = CartDaemon::start('320', $conf);
    Time::HiRes::sleep(0.05 * $round);
    CartDaemon::stop($pid, 'KILL');
}
$main::Daemon = CartDaemon::start('320', $main::Conf);
Test::More::is(CartDaemon::wait_sql("SELECT events_applied FROM carts WHERE user_id = 'user-$u'", 40),
               40, 'forty events applied: none lost, none twice (yet)');
Test::More::is(main::processed(@m), 40, 'every event id processed');
Test::More::is(CartDaemon::pg_cart("user-$u"), CartDaemon::redis_cart("user-$u"),
               'snapshot equals Redis');
--- request
GET /api/v1/cart/count
--- more_headers eval
"X-User-Id: " . main::owner("kill")
--- response_body chomp
{"item_count":820}



=== TEST 6: reconcile finds what no event told (SCAN of Redis)
--- init
CartDaemon::stop($main::Daemon);
Test::More::is(CartDaemon::sql("SELECT events_applied FROM carts WHERE user_id = 'user-"
               . main::owner('kill') . "'"), 40, 'still forty once the daemon stopped');

my $u = main::owner('drift');
CartTest::redis_cmd('DEL', "cart:{user-$u}");
# SKU-D's added_at in decimal seconds (a line written before base 36),
# SKU-E's in base 36: the daemon reads both
CartTest::redis_cmd('HSET', "cart:{user-$u}", 'SKU-D', '3|1250|seller-9|1764547200',
                    'SKU-E', '1|100|s|t6kdc1', '#v', '9');
CartTest::redis_cmd('SET', "cart_count:{user-$u}", 4);
Test::More::is(CartDaemon::pg_cart("user-$u"), 'none;', 'no snapshot: no event was sent');
my ($rc, $out) = CartDaemon::run($main::Conf, 'reconcile');
Test::More::is($rc, 0, 'reconcile exits 0') or Test::More::diag($out);
Test::More::like($out, qr/reconcile: \d+ carts in Redis, [1-9]\d* snapshots updated/, 'and reports');
Test::More::is(CartDaemon::pg_cart("user-$u"),
               '9;SKU-D=3|1250|seller-9|1764547200,SKU-E=1|100|s|1764547201',
               'the snapshot now equals Redis (added_at in decimal or base 36)');
($rc, $out) = CartDaemon::run($main::Conf, 'reconcile');
Test::More::like($out, qr/, 0 snapshots updated/, 'a second pass changes nothing');
# the running daemon reconciles on its interval, between batches
CartTest::redis_cmd('HSET', "cart:{user-$u}", 'SKU-D', '4|1250|seller-9|1764547200', '#v', '10');
my $conf = CartDaemon::conf('320-rec', kafka_group => $main::Group, reconcile_interval => '1s',
                            @main::Kafka);
my $pid = CartDaemon::start('320-rec', $conf);
Test::More::is(CartDaemon::wait_sql("SELECT version FROM carts WHERE user_id = 'user-$u'", 10, 30),
               10, 'the running daemon repaired the drift within its interval');
CartDaemon::stop($pid);
--- request
GET /nocatalog/
--- more_headers eval
"X-User-Id: " . main::owner("drift")
--- response_body_like: "sku_id":"SKU-D","quantity":4,.*"version":10



=== TEST 7: FLUSHALL, then restore: the carts are back, with TTLs
--- init
my @users = map { main::owner($_) } qw(b1 b2 b3 dup kill);
my %before = map { $_ => CartDaemon::redis_cart("user-$_") } @users;
CartTest::redis_flush();
my ($rc, $out) = CartDaemon::run($main::Conf, 'restore');
Test::More::is($rc, 0, 'restore exits 0') or Test::More::diag($out);
Test::More::like($out, qr/restore: [1-9]\d* carts restored, 0 already in Redis/, 'and reports');
for my $u (@users) {
    Test::More::is(CartDaemon::redis_cart("user-$u"), $before{$u}, "cart of $u restored");
    my $ttl = CartTest::redis_cmd('TTL', "cart:{user-$u}");
    Test::More::ok($ttl > 29 * 86400 && $ttl <= 30 * 86400, "with the TTL it had left: $ttl");
    my $count_ttl = CartTest::redis_cmd('TTL', "cart_count:{user-$u}");
    Test::More::ok(abs($count_ttl - $ttl) <= 1, "the counter too: $count_ttl");
}
my $drift = main::owner('drift');
Test::More::is(CartTest::redis_cmd('HGET', "cart:{user-$drift}", 'SKU-D'), '4|1250|seller-9|t6kdc0',
               'a restored line has its added_at in base 36');
($rc, $out) = CartDaemon::run($main::Conf, 'restore');
Test::More::like($out, qr/restore: 0 carts restored, [1-9]\d* already in Redis/,
                 'a second restore overwrites nothing');
--- request eval
["GET /nocatalog/count", "POST /nocatalog/items\n{\"sku_id\":\"SKU-1\",\"quantity\":1}"]
--- more_headers eval
"X-User-Id: " . main::owner("b1") . "\nContent-Type: application/json"
--- response_body_like eval
['^\{"item_count":10\}$', '"item_count":11,"item":\{"sku_id":"SKU-1","quantity":2,.*"version":13\}']
