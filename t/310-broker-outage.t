# Brokers down during writes: the cart API answers as usual, the events
# wait in the worker's producer and are all delivered, exactly once and in
# order, when the brokers come back. Prints the count of events lost.

use lib 't/lib';
use CartTest;
use CartConf;
use CartClient;
use CartKafka;
use Test::More ();
use Time::HiRes ();

plan 'no_plan';
no_shuffle();

add_block_preprocessor(sub {
    my $block = shift;
    CartConf::default_config($block);
    $block->set_value(config => $block->config
        . "    location = /_status { cart_status; }\n");
    $block->set_value(http_config =>
        "cart_kafka_brokers \$TEST_NGINX_KAFKA_BROKERS;\n"
        . "cart_kafka_property reconnect.backoff.max.ms 500;\n");
});

our $Run = $$ . '-' . time;

run_tests();

__DATA__

=== TEST 1: 60 writes on 3 carts while every broker is down; all delivered after
--- init
my @users = map { "out$_-$main::Run" } 1 .. 3;
CartTest::redis_cmd('DEL', "cart:{user-$_}") for @users;
# the producer has connected before the outage
CartClient::request('POST', '/nocatalog/items', $users[0], '{"sku_id":"SKU-0","quantity":1}');
CartKafka::wait_events("user-$users[0]", 1);
# 3 clients x 20 writes, each client on its cart; timed (reported only)
sub main::burst {
    my @u = @_;
    return CartClient::parallel(3, sub {
        my $u = $u[$_[0] - 1];
        my ($ok, $slowest) = (0, 0);
        for my $i (1 .. 20) {
            my $t0 = Time::HiRes::time();
            my ($status) = CartClient::request('POST', '/nocatalog/items', $u,
                                               "{\"sku_id\":\"SKU-$i\",\"quantity\":1}");
            $ok++ if $status == 200;
            my $t = Time::HiRes::time() - $t0;
            $slowest = $t if $t > $slowest;
        }
        return sprintf('%d,%.1f', $ok, $slowest * 1000);
    });
}
sub main::slowest { return (sort { $b <=> $a } map { (split /,/)[1] } @_)[0] }
my @base = main::burst(map { "base$_-$main::Run" } 1 .. 3);
CartKafka::ctl('down');
my @st = main::burst(@users);
Test::More::is(join(' ', map { (split /,/)[0] } @st), '20 20 20',
               'every write answered 200 while the brokers were down');
Test::More::diag('slowest of 60 writes: ' . main::slowest(@base) . ' ms with the brokers up, '
                 . main::slowest(@st) . ' ms with them down');
CartKafka::ctl('up');
my ($sent, $lost, $dup) = (61, 0, 0);
for my $u (@users) {
    my $want = $u eq $users[0] ? 21 : 20;
    my @m = CartKafka::wait_events("user-$u", $want, 60);
    my %seen;
    $seen{$_->{event}{version}}++ for @m;
    $lost += grep { !$seen{$_} } 1 .. $want;
    $dup += grep { $_ > 1 } values %seen;
    Test::More::is_deeply([map { $_->{event}{version} } @m], [1 .. $want],
                          "user-$u: every version once, in order");
}
Test::More::diag("broker outage: $sent events produced, $lost lost, $dup duplicated");
Test::More::is($lost, 0, 'no event lost');
Test::More::is($dup, 0, 'no event duplicated (idempotent producer)');
# the delivery reports follow the messages: wait until all are counted
for (1 .. 100) {
    last if (CartClient::request('GET', '/_status'))[1] =~ /delivered"\} 121\n/;
    Time::HiRes::sleep(0.1);
}
--- request
GET /_status
--- response_body_like
enqueued"\} 121
cart_events_total\{outcome="delivered"\} 121
cart_events_total\{outcome="failed"\} 0
cart_events_total\{outcome="dropped"\} 0
--- no_error_log
not delivered
dropped
