# cart_redis_cluster on, while the cluster's topology changes under a
# running nginx: a master moves to a new address again and again (a new
# node becomes its replica, the old one stops, the new one takes over with
# CLUSTER FAILOVER TAKEOVER, the old one is forgotten). The worker keeps
# serving the moved slots without a reload, and retires the nodes that no
# slot map names any more, so its node count stays bounded; the worker's
# subscriber (GET /stream) leaves a seed that stopped for another master.
#
# A cluster of this file's own (util/redis-cluster.sh): 3 masters on
# TEST_NGINX_REDIS_CLUSTER_PORT + 20 .. + 22; the nodes that take over
# listen on port + 23 of 127.0.0.2, 127.0.0.3, ... (an address each).
# TEST_NGINX_CLUSTER_MOVES moves (default 10) in TEST 2.

use lib 't/lib';
use CartTest;
use CartConf;
use CartClient;
use CartStream;
use File::Path ();
use POSIX ();
use Time::HiRes qw(time sleep);
use Test::More ();

our $P = $ENV{TEST_NGINX_REDIS_CLUSTER_PORT} // '';
our $Base = $P ? $P + 20 : 0;
our $MoverPort = $Base + 3;
our $Dir = ($ENV{TEST_NGINX_REDIS_CLUSTER_DIR} // 'build/test/redis-cluster')
           . '-topology';
our $Moves = $ENV{TEST_NGINX_CLUSTER_MOVES} || 10;

sub cli {
    my ($host, $port, @args) = @_;
    # quiet: a node just started refuses connections for a moment
    my $pid = open(my $out, '-|') // die "cannot fork: $!\n";
    if (!$pid) {
        open STDERR, '>', '/dev/null';
        exec 'timeout', '5', 'redis-cli', '-h', $host, '-p', $port, '--raw',
             @args;
        POSIX::_exit(127);
    }
    my $output = do { local $/; <$out> } // '';
    close $out;
    chomp $output;
    return $output;
}

# a command on the node of its key (redis-cli follows redirections)
sub cl { cli('127.0.0.1', $Base, '-c', @_) }

sub wait_for {
    my ($what, $seconds, $check) = @_;
    my $deadline = time + $seconds;
    while (time < $deadline) {
        return 1 if $check->();
        sleep 0.05;
    }
    die "timed out waiting for $what\n";
}

our @Started;    # [ip, dir] of the nodes this file started itself
our @Mover = ('127.0.0.1', $Base + 2);    # the master that moves
our $Moved = 0;

# the master at @Mover moves to the next address, with its data
sub move {
    my ($oh, $op) = @Mover;
    my $ip = '127.0.0.' . (2 + $Moved++ % 250);
    my $dir = "$Dir/mover-$Moved";
    File::Path::make_path($dir);
    system('redis-server', 'util/redis-cluster.conf', '--port', $MoverPort,
           '--bind', $ip, '--cluster-announce-ip', $ip, '--dir', $dir,
           '--daemonize', 'yes', '--pidfile', "$dir/redis.pid",
           '--logfile', "$dir/redis.log") == 0
        or die "cannot start a node on $ip:$MoverPort\n";
    push @Started, [$ip, $dir];
    wait_for("$ip:$MoverPort", 10, sub { cli($ip, $MoverPort, 'PING') eq 'PONG' });

    my $old = cli($oh, $op, 'CLUSTER', 'MYID');
    cli('127.0.0.1', $Base, 'CLUSTER', 'MEET', $ip, $MoverPort);
    # heard from the master itself, not only of it: with its slots, which
    # the takeover claims
    wait_for("$ip to know the master's slots", 10, sub {
        cli($ip, $MoverPort, 'CLUSTER', 'SLOTS') =~ /^\Q$oh\E\n$op$/m });
    wait_for("$ip to replicate", 10, sub {
        cli($ip, $MoverPort, 'CLUSTER', 'REPLICATE', $old) eq 'OK' });
    wait_for("$ip to sync", 10, sub {
        cli($ip, $MoverPort, 'INFO', 'replication') =~ /master_link_status:up/ });

    cli($oh, $op, 'SHUTDOWN', 'NOSAVE');
    wait_for("$ip to take over", 10, sub {
        cli($ip, $MoverPort, 'CLUSTER', 'FAILOVER', 'TAKEOVER') eq 'OK' });
    wait_for("the cluster to see $ip", 10, sub {
        cli('127.0.0.1', $Base, 'CLUSTER', 'SLOTS') =~ /^\Q$ip\E$/m
        && cli('127.0.0.1', $Base + 1, 'CLUSTER', 'SLOTS') =~ /^\Q$ip\E$/m });
    cli($_->[0], $_->[1], 'CLUSTER', 'FORGET', $old)
        for ['127.0.0.1', $Base], ['127.0.0.1', $Base + 1], [$ip, $MoverPort];

    @Mover = ($ip, $MoverPort);
}

# the port of the master of $key's slot, as its address "ip:port"
sub owner {
    my ($key) = @_;
    my $slot = cli('127.0.0.1', $Base, 'CLUSTER', 'KEYSLOT', $key);
    my @f = split /\n/, cli('127.0.0.1', $Base, 'CLUSTER', 'SLOTS');
    for (my $i = 0; $i + 4 < @f; $i++) {
        next unless $f[$i] =~ /^\d+$/ && $f[$i + 1] =~ /^\d+$/
                    && $f[$i + 2] =~ /^\d+\.\d+\.\d+\.\d+$/;
        return "$f[$i + 2]:$f[$i + 3]" if $slot >= $f[$i] && $slot <= $f[$i + 1];
    }
    die "no owner for $key (slot $slot)\n";
}

sub seed {
    my ($user) = @_;
    cl('DEL', "cart:{user-$user}", "cart_count:{user-$user}");
    cl('HSET', "cart:{user-$user}", 'SKU-1', '2|2999|seller-1|1764547200', '#v', 5);
    cl('SET', "cart_count:{user-$user}", 2);
}

# POST an add until it answers 200 (the failover window answers 503):
# (status, seconds it took)
sub add_until_ok {
    my ($user, $seconds) = @_;
    my ($t0, $status, $body) = (time, 0, '');
    while (time < $t0 + $seconds) {
        ($status, $body) = CartClient::request('POST', '/nocatalog/items', $user,
                                               '{"sku_id":"SKU-3","quantity":1}');
        last if $status == 200;
        die "unexpected $status: $body\n" if $status != 503;
        sleep 0.1;
    }
    return ($status, time - $t0);
}

# the last "cluster map" debug line: (nodes, spare)
sub node_count {
    open my $log, '<', "$ServRoot/logs/error.log" or die "error.log: $!";
    my ($nodes, $spare) = (-1, -1);
    for (<$log>) {
        ($nodes, $spare) = ($1, $2) if /cluster map from .* (\d+) nodes, (\d+) spare/;
    }
    return ($nodes, $spare);
}

sub cluster_stop {
    for my $n (@Started) {
        cli($n->[0], $MoverPort, 'SHUTDOWN', 'NOSAVE');
    }
    system('util/redis-cluster.sh', 'stop', $Base, $Dir);
}

our $Up = 0;
# a port may be some client's ephemeral port for a moment: try again
for (1 .. ($P ? 3 : 0)) {
    cluster_stop();
    File::Path::remove_tree($Dir);
    $Up = system('util/redis-cluster.sh', 'start', $Base, $Dir) == 0;
    last if $Up;
    sleep 5;
}
cluster_stop() if $P && !$Up;

if (!$Up) {
    plan skip_all => 'no Redis Cluster of its own: util/test.sh sets '
                     . 'TEST_NGINX_REDIS_CLUSTER_PORT';
} else {
    plan 'no_plan';
}

END { cluster_stop() if $Up }

no_shuffle();
add_block_preprocessor(\&CartConf::default_config);

# users on a master that does not move, and on the one that does
our ($Still) = grep { owner("cart:{user-$_}") ne "127.0.0.1:" . ($Base + 2) }
               map { "t$_" } 1 .. 20 if $Up;
our ($Mobile) = grep { owner("cart:{user-$_}") eq "127.0.0.1:" . ($Base + 2) }
                map { "m$_" } 1 .. 20 if $Up;

run_tests();

__DATA__

=== TEST 1: the seed the subscriber uses stops for good (its master moved): the subscriber leaves it for another master, the stream hears changes
--- http_config eval
"cart_redis redis://127.0.0.1:" . ($main::Base + 2) . " redis://127.0.0.1:$main::Base;
cart_redis_cluster on;
cart_subscriber_ping 500ms 1s;"
--- init
main::seed($main::Still);
my $st = main::stream_open('/nocatalog/stream', 'X-User-Id' => $main::Still);
Test::More::is(main::stream_next($st, 5), '5 5 2', 'the current state');
Test::More::is(main::numsub_is("user-$main::Still", 1, $main::Base + 2), 1,
               'subscribed on the first seed');
main::move();
my ($status) = main::add_until_ok($main::Still, 10);
Test::More::is($status, 200, 'a write on a master that did not move');
Test::More::is(main::stream_next($st, 10), '6 6 3', 'the stream has it');
Test::More::ok(!$st->{closed}, 'the stream stayed open');
close $st->{sock};
--- request
GET /nocatalog/count
--- more_headers eval
"X-User-Id: $main::Still"
--- response_body: {"item_count":3}
--- error_log eval
qr/the subscriber moves from "redis:\/\/127\.0\.0\.1:\d+" to/
--- no_error_log
[alert]
[crit]
--- timeout: 10



=== TEST 2: a master moves to a new address again and again: served without a reload, every write kept, the node count bounded
--- http_config eval
"cart_redis redis://127.0.0.1:$main::Base;
cart_redis_cluster on;
cart_max_quantity 100000;"
--- init
main::seed($main::Mobile);
my ($status, $took) = main::add_until_ok($main::Mobile, 10);
Test::More::is($status, 200, 'a write before the moves');
my ($ok, $slowest) = (0, 0);
for my $i (1 .. $main::Moves) {
    main::move();
    ($status, $took) = main::add_until_ok($main::Mobile, 15);
    $ok++ if $status == 200;
    $slowest = $took if $took > $slowest;
}
Test::More::is($ok, $main::Moves, "a write after each of $main::Moves moves "
               . sprintf('(the slowest after %.1f s)', $slowest));
Test::More::is(main::owner("cart:{user-$main::Mobile}"), join(':', @main::Mover),
               'the slot is on the last node');
# the last moves' nodes are retired by the next maps
sleep 3;
CartClient::request('GET', '/nocatalog/count', $main::Still);
my ($nodes, $spare) = main::node_count();
Test::More::cmp_ok($nodes, '>=', 3, "the worker knows the 3 masters ($nodes nodes)");
Test::More::cmp_ok($nodes, '<=', 4, "and not the addresses left ($nodes nodes)");
Test::More::cmp_ok($nodes + $spare, '<=', 6,
                   "node structures made: $nodes in use, $spare spare");
--- request
GET /nocatalog/count
--- more_headers eval
"X-User-Id: $main::Mobile"
--- response_body eval
'{"item_count":' . (2 + 1 + $main::Moves) . '}'
--- error_log eval
qr/cluster node "redis:\/\/127\.0\.0\.\d+:\d+" retired, no slot map names it/
--- no_error_log
[alert]
[crit]
--- timeout: 10
