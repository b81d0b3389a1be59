# Abandoned carts: the activity index the write scripts keep, cartd's
# abandonment pass with an injected clock (--now), cart_abandoned on
# cart-events, the 1 h / 4 h / 24 h / 72 h reminders on cart-reminders,
# and their suppression (opted out, under 10.00, checked out since).

use lib 't/lib';
use CartTest;
use CartConf;
use CartClient;
use CartKafka;
use CartDaemon;
use Test::More ();
use POSIX ();

plan 'no_plan';
no_shuffle();

add_block_preprocessor(CartKafka::preprocessor('cart_kafka_property linger.ms 1;'));

our $Run = $$ . '-' . time;
sub main::owner { return "ab$_[0]-$main::Run" }
our $Conf = CartDaemon::conf('330', kafka_group => "cartd-test-$main::Run",
    kafka_property => ['session.timeout.ms 6000', 'fetch.wait.max.ms 20']);

# the messages of this run's owners on a topic, as "owner type/step"
sub main::seen {
    my ($topic) = @_;
    my @out;
    for my $m (CartKafka::read_topic($topic)) {
        next unless $m->{key} =~ /^user-ab(\w+)-\Q$main::Run\E$/;
        my $e = $m->{event};
        push @out, "$1 " . ($e->{step} // $e->{type});
    }
    return join ', ', sort @out;
}

sub main::abandon_pass {
    my ($t) = @_;
    my ($rc, $out) = CartDaemon::run($main::Conf, '--now', $t, 'abandon');
    Test::More::is($rc, 0, "abandonment pass at +" . ($t - $main::T0) . " s")
        or Test::More::diag($out);
    return $out;
}

run_tests();

__DATA__

=== TEST 1: carts of five users; one opted out, one cheap, one checks out, one emptied
--- init
CartDaemon::run($main::Conf, 'migrate');
my %cart = (a => [1, 2], o => [1, 1], c => [3, 1], k => [1, 1], e => [2, 1]);
for my $u (sort keys %cart) {
    my ($sku, $qty) = @{$cart{$u}};
    my ($st) = CartClient::request('POST', '/api/v1/cart/items', main::owner($u),
                                   "{\"sku_id\":\"SKU-$sku\",\"quantity\":$qty}");
    die "add: $st" unless $st == 200;
}
CartClient::request('DELETE', '/api/v1/cart/items/SKU-2', main::owner('e'));
$main::T0 = time;
CartDaemon::sql("INSERT INTO marketing_opt_outs (user_id) VALUES ('user-" . main::owner('o') . "')");
# user k checks out (the module's checkout event, produced here as is)
my $k = 'user-' . main::owner('k');
CartKafka::produce('cart-events', $k, '{"event_id":"chk-' . $main::Run . '","type":"checkout",'
    . '"cart_id":"cart:' . $k . '","user_id":"' . main::owner('k') . '","owner":"' . $k
    . '","owner_kind":"user","version":2,"ts":"'
    . POSIX::strftime('%Y-%m-%dT%H:%M:%S.000Z', gmtime($main::T0 + 1)) . '"}');
my $pid = CartDaemon::start('330', $main::Conf);
my $got = CartDaemon::wait_sql("SELECT count(*) FROM carts WHERE user_id = '$k'"
                               . " AND last_checkout_at IS NOT NULL", 1, 60);
CartDaemon::stop($pid);
Test::More::is($got, 1, 'the checkout event reached the daemon');
# the index: one sorted set per slot, the owner scored with its last write
for my $u (sort keys %cart) {
    my $o = 'user-' . main::owner($u);
    my $key = CartDaemon::activity_key($o);
    my $score = CartTest::redis_cmd('ZSCORE', $key, $o);
    Test::More::ok($score >= $main::T0 - 5 && $score <= $main::T0,
                   "$o is in the activity index $key: $score");
}
--- request
GET /api/v1/cart/count
--- more_headers eval
"X-User-Id: " . main::owner('a')
--- response_body chomp
{"item_count":2}



=== TEST 2: the clock runs: nothing before an hour, then each step once
--- init
main::abandon_pass($main::T0 + 3500);
Test::More::unlike(main::seen('cart-events'), qr/cart_abandoned/, 'nothing abandoned before an hour');

main::abandon_pass($main::T0 + 3600 + 10);
Test::More::is(join(', ', grep { /cart_abandoned/ } split /, /, main::seen('cart-events')),
    'a cart_abandoned, c cart_abandoned, k cart_abandoned, o cart_abandoned',
    'cart_abandoned for each cart with items (not the emptied one)');
Test::More::is(main::seen('cart-reminders'), 'a 1h',
    '1 h reminder for a; o opted out, c under 10.00, k checked out since');
my $sup = CartDaemon::sql("SELECT substr(user_id, 8, 1) || '=' || suppressed FROM cart_abandonments"
    . " WHERE user_id LIKE 'user-ab%-$main::Run' AND suppressed IS NOT NULL ORDER BY 1");
Test::More::is($sup, "c=low_value\nk=checked_out\no=opted_out", 'the reasons are recorded');
my $e = 'user-' . main::owner('e');
Test::More::is(CartTest::redis_cmd('ZSCORE', CartDaemon::activity_key($e), $e), '',
               'the emptied cart left the index');

main::abandon_pass($main::T0 + 3600 + 20);
Test::More::is(main::seen('cart-reminders'), 'a 1h', 'a second pass sends nothing again');

main::abandon_pass($main::T0 + 4 * 3600 + 10);
main::abandon_pass($main::T0 + 24 * 3600 + 10);
main::abandon_pass($main::T0 + 72 * 3600 + 10);
Test::More::is(main::seen('cart-reminders'), 'a 1h, a 24h, a 4h, a 72h', 'the four steps, once each');

my @r = grep { $_->{key} eq 'user-' . main::owner('a') } CartKafka::read_topic('cart-reminders');
my %by = map { $_->{event}{step} => $_->{event} } @r;
Test::More::is(join(' ', map { $by{$_}{channel} } qw(1h 4h 24h 72h)), 'email push email email', 'channels');
Test::More::is($by{'24h'}{discount_code}, 'COMEBACK10', 'the 24 h step carries the discount code');
Test::More::ok(!exists $by{$_}{discount_code}, "$_ has none") for qw(1h 4h 72h);
Test::More::is_deeply($by{'1h'}{cart_items}, [{ sku_id => 'SKU-1', quantity => 2, price => 29.99 }],
                      'the reminder lists the items');
Test::More::is($by{'1h'}{total_value}, 59.98, 'and the value');
Test::More::is($by{'1h'}{user_id}, main::owner('a'), "user_id: the user's own id");
Test::More::is($by{'1h'}{owner}, 'user-' . main::owner('a'), 'owner');
Test::More::is($by{'1h'}{owner_kind}, 'user', 'owner_kind');
my ($ab) = grep { $_->{key} eq 'user-' . main::owner('a') && $_->{event}{type} eq 'cart_abandoned' }
           CartKafka::read_topic('cart-events');
Test::More::is_deeply([map { $ab->{event}{$_} } qw(user_id owner owner_kind)],
    [main::owner('a'), 'user-' . main::owner('a'), 'user'], 'cart_abandoned: the same fields');
my $a = 'user-' . main::owner('a');
Test::More::is(CartTest::redis_cmd('ZSCORE', CartDaemon::activity_key($a), $a), '',
               'after the last step the cart leaves the index');
--- request
GET /api/v1/cart/count
--- more_headers eval
"X-User-Id: " . main::owner('a')
--- response_body chomp
{"item_count":2}



=== TEST 3: new activity starts a new episode
--- init
my $c = 'user-' . main::owner('c');
# cartd's clock walked 72 h, Redis's did not: the write scripts move the
# activity index once a minute of a cart's TTL (src/lua/_lib.lua, touch()),
# so the cart's TTL is aged by those hours, as they would have aged it
my $left = CartTest::redis_cmd('TTL', "cart:{$c}");
CartTest::redis_cmd('EXPIRE', "cart:{$c}", $left - 72 * 3600);
my ($st) = CartClient::request('POST', '/api/v1/cart/items', main::owner('c'), '{"sku_id":"SKU-1","quantity":1}');
Test::More::is($st, 200, 'c adds a 29.99 item: now worth 30.98');
my $t = CartTest::redis_cmd('ZSCORE', CartDaemon::activity_key($c), $c);
main::abandon_pass($t + 3600 + 10);
my @r = grep { $_->{key} eq $c } CartKafka::read_topic('cart-reminders');
Test::More::is(scalar @r, 1, 'a 1 h reminder for the new episode, no longer suppressed');
Test::More::is($r[0]{event}{total_value}, 30.98, 'with the new value') if @r;
--- request
GET /api/v1/cart/count
--- more_headers eval
"X-User-Id: " . main::owner('c')
--- response_body chomp
{"item_count":2}



=== TEST 4: TTLs and the activity index move once a minute of a cart's TTL
--- init
my $f = 'user-' . main::owner('f');
my $key = CartDaemon::activity_key($f);
my $add = sub {
    my ($st) = CartClient::request('POST', '/api/v1/cart/items', main::owner('f'),
                                   '{"sku_id":"SKU-1","quantity":1}');
    die "add: $st" unless $st == 200;
};
$add->();
my $full = CartTest::redis_cmd('TTL', "cart:{$f}");
Test::More::ok(CartTest::redis_cmd('ZSCORE', $key, $f) >= time - 5, 'a new cart is indexed');
Test::More::ok(CartTest::redis_cmd('TTL', "cart_count:{$f}") >= $full - 5, 'its counter has the TTL');
# a write within the minute: the score and the TTLs stay
CartTest::redis_cmd('ZADD', $key, 1000, $f);
$add->();
Test::More::is(CartTest::redis_cmd('ZSCORE', $key, $f), 1000, 'a write within the minute leaves the score');
# a minute later (the TTL aged): both TTLs and the score move
CartTest::redis_cmd('EXPIRE', "cart:{$f}", $full - 61);
CartTest::redis_cmd('EXPIRE', "cart_count:{$f}", $full - 61);
$add->();
Test::More::ok(CartTest::redis_cmd('ZSCORE', $key, $f) >= time - 5, 'a write a minute later moves it');
Test::More::ok(CartTest::redis_cmd('TTL', "cart:{$f}") >= $full - 5, 'and the cart TTL');
Test::More::ok(CartTest::redis_cmd('TTL', "cart_count:{$f}") >= $full - 5, 'and the counter TTL');
# a counter made again (it had gone) gets its TTL at once
CartTest::redis_cmd('ZADD', $key, 1000, $f);
CartTest::redis_cmd('DEL', "cart_count:{$f}");
$add->();
Test::More::ok(CartTest::redis_cmd('TTL', "cart_count:{$f}") >= $full - 5, 'a counter made again has the TTL');
Test::More::ok(CartTest::redis_cmd('ZSCORE', $key, $f) >= time - 5, 'and the cart is stamped');
--- request
GET /api/v1/cart/count
--- more_headers eval
"X-User-Id: " . main::owner('f')
--- response_body chomp
{"item_count":4}
