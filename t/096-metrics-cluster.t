# cart_status on a Redis Cluster: one label per node, and a slot moved
# while nginx runs counts one MOVED on the node that answered it.

use lib 't/lib';
use CartTest;
use CartCluster;
use CartClient;
use Test::More ();

our $P = $ENV{TEST_NGINX_REDIS_CLUSTER_PORT} // '';
our @Ports = $P ? ($P, $P + 1, $P + 2) : ();

sub cli { CartCluster::cli(@_) }

plan(CartCluster::ready($P) ? 'no_plan'
     : (skip_all => 'no Redis Cluster: util/test.sh starts one '
                    . '(TEST_NGINX_REDIS_CLUSTER_PORT)'));

no_shuffle();

# the master of $slot, from CLUSTER NODES ("<id> <ip:port@bus> <flags>
# <master> <ping> <pong> <epoch> <state> <slots>...")
sub slot_owner {
    my ($slot) = @_;
    for my $line (split /\n/, cli($P, 'CLUSTER', 'NODES')) {
        my @f = split / /, $line;
        next unless $f[2] =~ /master/;
        for my $range (@f[8 .. $#f]) {
            my ($lo, $hi) = $range =~ /^(\d+)(?:-(\d+))?$/ or next;
            $hi //= $lo;
            return ($f[1] =~ /:(\d+)@/)[0] if $slot >= $lo && $slot <= $hi;
        }
    }
    die "no owner for slot $slot\n";
}

# the slot and its keys to $to; the master it was on
sub move_slot {
    my ($slot, $to) = @_;
    my $from = slot_owner($slot);
    CartCluster::move_slot($slot, $from, $to, @Ports);
    return $from;
}

sub scrape {
    my ($status, $body) = CartClient::request('GET', '/_status');
    die "scrape: $status\n" unless $status == 200;
    return $body;
}

sub sample {
    my ($scrape, $name) = @_;
    my $re = quotemeta($name);
    return $scrape =~ /^$re (\S+)$/m ? $1 : 0;
}

run_tests();

__DATA__

=== TEST 1: a label per master; a moved slot counts one MOVED on its old master
--- http_config eval
"cart_redis redis://127.0.0.1:$main::P;\ncart_redis_cluster on;\n"
--- config
    location /c {
        cart_api;
        cart_user $http_x_user_id;
    }
    location = /_status {
        cart_status;
    }
--- init
my $slot = main::cli($main::P, 'CLUSTER', 'KEYSLOT', 'user-mv');
CartClient::request('POST', '/c/items', 'mv', '{"sku_id":"M-1","quantity":1}');
# the pools of the masters the slot map named connect meanwhile (slowly
# under valgrind): wait for them, then count
my $before;
for (1 .. 50) {
    $before = main::scrape();
    last unless grep {
        main::sample($before, qq{cart_redis_connections{node="127.0.0.1:$_"}}) != 2
    } @main::Ports;
    select(undef, undef, undef, 0.2);
}
for my $port (@main::Ports) {
    Test::More::is(main::sample($before, qq{cart_redis_connections{node="127.0.0.1:$port"}}), 2,
                   "the pool of 127.0.0.1:$port is up");
}
my $to = (grep { $_ != main::slot_owner($slot) } @main::Ports)[0];
my $from = main::move_slot($slot, $to);
my @r = map { join ' ', CartClient::request('GET', '/c/count', 'mv') } 1 .. 2;
Test::More::is("@r", '200 {"item_count":1} 200 {"item_count":1}', 'followed, then known');
my $after = main::scrape();
Test::More::is(main::sample($after, qq{cart_redis_redirections_total{node="127.0.0.1:$from",type="moved"}})
               - main::sample($before, qq{cart_redis_redirections_total{node="127.0.0.1:$from",type="moved"}}),
               1, "one MOVED from 127.0.0.1:$from");
Test::More::is(main::sample($after, qq{cart_redis_redirections_total{node="127.0.0.1:$to",type="moved"}}),
               0, "none from 127.0.0.1:$to");
main::move_slot($slot, $from);
--- request
GET /_status
--- response_body_like: cart_redis_redirections_total\{node="127\.0\.0\.1:\d+",type="moved"\} 1
