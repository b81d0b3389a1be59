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

# TEST 2 stops its nginx and reads the counters of that one nginx: HUP
# mode keeps one nginx, and its shared-memory counters, across blocks.
plan $ENV{TEST_NGINX_USE_HUP}
     ? (skip_all => 'counts per nginx and a shutdown: not with HUP reloads')
     : 'no_plan';
no_shuffle();

add_block_preprocessor(CartKafka::preprocessor('cart_kafka_property reconnect.backoff.max.ms 500;'));

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



=== TEST 2: shutdown while the brokers are down: the worker waits at most 3 s, then logs what it discards
An nginx of its own (master and one worker) on the next port, stopped
with "nginx -s quit" during an outage.
--- init
my $dir = "$ENV{TEST_NGINX_SERVROOT}-quit";
my $port = $ENV{TEST_NGINX_PORT} + 1;
mkdir $dir; mkdir "$dir/logs"; mkdir "$dir/conf";
open my $fh, '>', "$dir/conf/nginx.conf" or die $!;
print {$fh} <<"_EOC_";
load_module $ENV{TEST_NGINX_CART_SO};
daemon on;
master_process on;
worker_processes 1;
pid $dir/logs/nginx.pid;
error_log $dir/logs/error.log info;
events {}
http {
    access_log off;
    client_body_temp_path $dir/tmp;
    cart_redis redis://127.0.0.1:$ENV{TEST_NGINX_REDIS_PORT};
    cart_kafka_brokers $ENV{TEST_NGINX_KAFKA_BROKERS};
    server {
        listen 127.0.0.1:$port;
        location /nocatalog { cart_api; cart_user \$http_x_user_id; }
    }
}
_EOC_
close $fh;
unlink "$dir/logs/error.log";
system(CartTest::nginx_command(), '-p', "$dir/", '-c', 'conf/nginx.conf') == 0 or die 'nginx did not start';
# the producer connects, then the brokers go away
Time::HiRes::sleep(0.5);
CartKafka::ctl('down');
my $u = "quit-$main::Run";
local $ENV{TEST_NGINX_PORT} = $port;
my @st = map { (CartClient::request('POST', '/nocatalog/items', $u,
                                    "{\"sku_id\":\"SKU-$_\",\"quantity\":1}"))[0] } 1 .. 2;
Test::More::is("@st", '200 200', 'two writes answered during the outage');
my $t0 = Time::HiRes::time();
{
    # quiet: "signal process started" would end up in prove's output
    open my $saved, '>&', \*STDERR or die $!;
    open STDERR, '>', '/dev/null' or die $!;
    system(CartTest::nginx_command(), '-p', "$dir/", '-c', 'conf/nginx.conf', '-s', 'quit');
    open STDERR, '>&', $saved or die $!;
}
my $gone = 0;
for (1 .. 200) {
    if (!-e "$dir/logs/nginx.pid") { $gone = 1; last }
    Time::HiRes::sleep(0.05);
}
my $took = Time::HiRes::time() - $t0;
CartKafka::ctl('up');
Test::More::ok($gone, sprintf('nginx exited (after %.1f s)', $took));
Test::More::ok($took < 8, 'the flush on exit is bounded');
open $fh, '<', "$dir/logs/error.log" or die $!;
my $log = do { local $/; <$fh> };
Test::More::like($log, qr/cart kafka: 2 events not delivered within 3000 ms of the worker's exit, discarding them/,
                 'what could not leave is logged');
Test::More::like($log, qr/cart kafka: event for "user-quit-[^"]+" not delivered: Local: Purged in (queue|flight)/,
                 'each discarded event with its payload');
Test::More::like($log, qr/producer closed; events of all workers: 2 enqueued, 0 delivered, 2 failed, 0 dropped/,
                 'and the counts');
--- request
GET /_status
--- response_body_like
delivered"\} 0
