# Redis stalls (CLIENT PAUSE): what a client is told when a command gets
# no answer, and what the worker does meanwhile. Under valgrind (make
# test-valgrind) each block is also checked for invalid accesses.

use lib 't/lib';
use CartTest;
use CartConf;
use CartClient;
use Time::HiRes ();
use Test::More ();

plan 'no_plan';
no_shuffle();
add_block_preprocessor(\&CartConf::default_config);

# Requests on new connections at once; each child returns
# "status code elapsed-seconds".
sub burst {
    my ($n, $make) = @_;
    return CartClient::parallel($n, sub {
        my ($i) = @_;
        my $t0 = Time::HiRes::time();
        my ($status, $body) = $make->($i);
        my ($code) = $body =~ /"code":"([^"]+)"/;
        return sprintf '%s %s %.3f', $status, $code // '-',
                       Time::HiRes::time() - $t0;
    });
}

# Redis runs no command for $ms milliseconds ($mode: ALL or WRITE); returns
# when it answers again (the pause ends on its own).
sub pause {
    my ($ms, $mode) = @_;
    redis_cmd('CLIENT', 'PAUSE', $ms, $mode // 'ALL');
}

sub sleep_until {
    my ($t) = @_;
    my $left = $t - Time::HiRes::time();
    Time::HiRes::sleep($left) if $left > 0;
}

run_tests();

__DATA__

=== TEST 1: timeouts that close their client connections: the connection's later timeouts log through the cycle's log, not freed request memory
Six reads on two connections time out while Redis is paused; each answer
closes its client connection (keepalive_timeout 0), and the third timeout
of each Redis connection drops it. Under valgrind: no invalid read.
--- http_config
cart_redis_timeout 1s;
cart_redis_connections 2;
--- config eval
"keepalive_timeout 0;\n" . $CartConf::Config
--- init
CartClient::seed('o1');
my ($status) = CartClient::request('GET', '/nocatalog/count', 'o1');
die "warm-up: $status\n" unless $status == 200;
my $until = Time::HiRes::time() + 3.5;
main::pause(3000);
my @got = main::burst(6, sub { CartClient::request('GET', '/nocatalog/count', 'o1') });
Test::More::is(scalar(grep { /^503 store_timeout / } @got), 6,
               "six reads time out: @got");
main::sleep_until($until);
--- request
GET /nocatalog/count
--- more_headers
X-User-Id: o1
--- response_body: {"item_count":2}
--- timeout: 10
--- error_log
is not answering, reconnecting
--- no_error_log
[alert]
[crit]



=== TEST 2: cart_redis_max_pending: past it a command fails at once (503 store_unavailable) and never runs
One connection, room for two commands: of six adds sent while Redis holds
writes, two are sent and wait for it, four are refused at once. After the
pause the two run; the four never do.
--- http_config
cart_redis_connections 1;
cart_redis_max_pending 2;
cart_redis_timeout 1500ms;
--- init
redis_cmd('DEL', 'cart:{user-o2}', 'cart_count:{user-o2}');
my ($status) = CartClient::request('GET', '/nocatalog/count', 'o2');
die "warm-up: $status\n" unless $status == 200;
my $until = Time::HiRes::time() + 3.7;
main::pause(3500, 'WRITE');
my @got = main::burst(6, sub {
    CartClient::request('POST', '/nocatalog/items', 'o2',
                        qq({"sku_id":"SKU-P$_[0]","quantity":1}));
});
my @sent = grep { /^503 store_timeout (\S+)/ && $1 >= 1.4 } @got;
my @refused = grep { /^503 store_unavailable (\S+)/ && $1 < 0.75 } @got;
Test::More::is(scalar @sent, 2, "two wait for Redis: @got");
Test::More::is(scalar @refused, 4, "four are refused at once: @got");
main::sleep_until($until);
my @lines = grep { !/^#/ } split /\n/, redis_cmd('HKEYS', 'cart:{user-o2}');
Test::More::is(scalar @lines, 2, "the two sent ran, the four refused did not: @lines");
--- request
GET /nocatalog/count
--- more_headers
X-User-Id: o2
--- response_body: {"item_count":2}
--- timeout: 10
--- error_log
has 2 commands in flight (cart_redis_max_pending)
--- no_error_log
[alert]
[crit]
