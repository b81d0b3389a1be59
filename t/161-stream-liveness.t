# The worker's subscriber connection (GET /stream) checks that Redis still
# hears it: PING every cart_subscriber_ping interval, an answer within the
# deadline or the connection is dropped and made again, which subscribes
# again and reads every stream's state again. Redis is reached through a
# proxy of the test's own (t/lib/CartProxy.pm) that can make connections
# silently dead, as a NAT or a load balancer that forgot an idle flow.

use lib 't/lib';
use CartTest;
use CartConf;
use CartClient;
use CartStream;
use CartProxy;
use Time::HiRes qw(time sleep);
use Test::More ();

plan 'no_plan';
no_shuffle();
add_block_preprocessor(\&CartConf::default_config);

our $ProxyPort = $ENV{TEST_NGINX_REDIS_PORT} + 7;

# nginx reaches Redis through the proxy
add_block_preprocessor(sub {
    my ($block) = @_;
    my $http_config = $block->http_config // '';
    return if $http_config =~ /\bcart_redis\b/;
    $block->set_value(http_config => "cart_redis redis://127.0.0.1:$ProxyPort;\n"
                                     . $http_config);
});

# one proxy for the file: a frozen flow ends when its nginx closes it
our $Proxy = CartProxy::start($ProxyPort, $ENV{TEST_NGINX_REDIS_PORT});
END { CartProxy::stop($Proxy) if $Proxy }

run_tests();

__DATA__

=== TEST 1: the subscriber's connection goes silently dead: PING finds out, the stream gets the next change after the reconnect
--- http_config
cart_subscriber_ping 500ms 500ms;
--- init
CartClient::seed('l1');
my $st = main::stream_open('/nocatalog/stream', 'X-User-Id' => 'l1');
Test::More::is(main::stream_next($st, 3), '5 5 2', 'the current state');
Test::More::is(main::numsub_is('user-l1', 1), 1, 'subscribed');

CartProxy::freeze($main::Proxy, 'subscribers');
my ($status) = main::call('POST', '/nocatalog/items', "X-User-Id: l1\r\n",
                          '{"sku_id":"SKU-2","quantity":1}');
Test::More::is($status, 200, 'a write while the subscriber is dead');
Test::More::is(main::stream_next($st, 5), '6 6 3',
               'the change reaches the stream all the same, after the reconnect');

($status) = main::call('POST', '/nocatalog/items', "X-User-Id: l1\r\n",
                       '{"sku_id":"SKU-2","quantity":1}');
Test::More::is($status, 200, 'another write');
Test::More::is(main::stream_next($st, 3), '7 7 4', 'heard as a message again');
Test::More::ok(!$st->{closed}, 'the stream stayed open');
close $st->{sock};
--- request
GET /nocatalog/count
--- more_headers
X-User-Id: l1
--- response_body: {"item_count":4}
--- error_log
cart redis: the subscriber did not answer PING
cart stream: subscriber connection lost
--- no_error_log
[alert]
[crit]



=== TEST 2: a subscriber that answers is kept: idle for many intervals, no reconnect, changes still heard
--- http_config
cart_subscriber_ping 200ms 1s;
--- init
CartClient::seed('l2');
my $st = main::stream_open('/nocatalog/stream', 'X-User-Id' => 'l2');
Test::More::is(main::stream_next($st, 3), '5 5 2', 'the current state');
Test::More::is(main::stream_next($st, 2), undef, 'idle for 10 intervals');
my ($status) = main::call('PUT', '/nocatalog/items/SKU-1', "X-User-Id: l2\r\n",
                          '{"quantity":3}');
Test::More::is($status, 200, 'a write');
Test::More::is(main::stream_next($st, 3), '6 6 3', 'heard');
close $st->{sock};
--- request
GET /nocatalog/count
--- more_headers
X-User-Id: l2
--- response_body: {"item_count":3}
--- no_error_log
[error]
subscriber connection lost



=== TEST 3: Redis paused longer than the deadline (CLIENT PAUSE): the subscriber is made again, the stream catches up
--- http_config
cart_subscriber_ping 300ms 300ms;
cart_redis_timeout 2s;
--- init
CartClient::seed('l3');
my $st = main::stream_open('/nocatalog/stream', 'X-User-Id' => 'l3');
Test::More::is(main::stream_next($st, 3), '5 5 2', 'the current state');
Test::More::is(main::numsub_is('user-l3', 1), 1, 'subscribed');
redis_cmd('CLIENT', 'PAUSE', 1500, 'ALL');
my ($status) = main::call('PUT', '/nocatalog/items/SKU-1', "X-User-Id: l3\r\n",
                          '{"quantity":4}');
Test::More::is($status, 200, 'a write waits for the pause to end');
Test::More::is(main::stream_next($st, 5), '6 6 4', 'the stream has it');
close $st->{sock};
--- request
GET /nocatalog/count
--- more_headers
X-User-Id: l3
--- response_body: {"item_count":4}
--- error_log
cart redis: the subscriber did not answer PING
--- no_error_log
[alert]
[crit]
--- timeout: 10
