# Drills on the test Redis Cluster (util/redis-cluster.sh, started by
# util/test.sh), the cart nginx with cart_redis_cluster on:
#
#  - cluster-slot-migration: the slots of the clients' carts moved to
#    another master with redis-cli --cluster reshard under a load of
#    writes (ASK, TRYAGAIN, then MOVED); no acknowledged write lost.
#  - cluster-failover: a master with a replica killed (kill -9), the
#    replica promoted, the old master restarted (it rejoins as a replica).
#    Replication is asynchronous: the loss is measured, not asserted.
#    Runs only on a cluster with replicas; util/redis-cluster.sh starts
#    masters only, so it is skipped, with the reason, until it has them.
#
# See t/lib/CartDrill.pm.

use strict;
use warnings;
use lib 't/lib';
use CartDrill;
use Test::More;

my $P = $ENV{TEST_NGINX_REDIS_CLUSTER_PORT} // '';
my $Dir = $ENV{TEST_NGINX_REDIS_CLUSTER_DIR} // '';
my $up = $P && eval {
    CartDrill::cli($P, 'CLUSTER', 'INFO') =~ /cluster_state:ok/;
};
if (!$up) {
    CartDrill::report_skip($_, 'no Redis Cluster (run through util/test.sh)')
        for 'cluster-slot-migration', 'cluster-failover';
    plan skip_all => 'no Redis Cluster: util/test.sh starts one '
                     . '(TEST_NGINX_REDIS_CLUSTER_PORT)';
}
CartDrill::plan_drill('cluster');
CartDrill::catalog_start(name => 'cluster');

my $nodes = CartDrill::cluster_nodes($P);
my @masters = grep { $_->{flags} =~ /master/ && $_->{flags} !~ /fail/
                     && @{ $_->{slots} } } @$nodes;
my $seeds = join ' ', map { "redis://127.0.0.1:$_->{port}" } @masters;
my $nginx = CartDrill::nginx_start(name => 'cluster',
    redis => "cart_redis $seeds;\n    cart_redis_cluster on;");

# $n users (one per client) whose carts hash to a slot of @$slots
sub users_in {
    my ($prefix, $n, $slots) = @_;
    my %want = map { $_ => 1 } @$slots;
    my @users;
    for (my $k = 0; @users < $n && $k < 2_000_000; $k++) {
        my $u = "dr-$prefix-$CartDrill::Run-$k";
        push @users, [$u] if $want{ CartDrill::keyslot("cart:{user-$u}") };
    }
    die "no users in the slots wanted\n" unless @users == $n;
    return \@users;
}

# --- slot migration --------------------------------------------------------

{
    my $name = 'cluster-slot-migration';
    my ($from) = sort { @{ $b->{slots} } <=> @{ $a->{slots} } } @masters;
    my ($to) = grep { $_->{id} ne $from->{id} } @masters;
    # redis-cli --cluster reshard takes the source's lowest slots first:
    # each client's cart lives in one of the 8 it will move
    my @moving = (sort { $a <=> $b } @{ $from->{slots} })[0 .. 7];
    my $users = users_in('mig', 4, \@moving);
    my $log = "$CartDrill::Out/$name/reshard.log";
    my $r = CartDrill::load(
        name  => $name,
        users => $users,
        fault => sub {
            my ($f) = @_;
            $f->start('reshard 8 slots');
            my $rc = CartDrill::quiet('sh', '-c',
                "redis-cli --cluster reshard 127.0.0.1:$from->{port} "
                . "--cluster-from $from->{id} --cluster-to $to->{id} "
                . "--cluster-slots 8 --cluster-yes --cluster-pipeline 100 "
                . ">$log 2>&1");
            $f->end;
            die "redis-cli --cluster reshard failed: see $log\n" if $rc;
        },
    );
    CartDrill::verify($r, $P, '-c');
    my $after = CartDrill::cluster_nodes($P);
    my ($dst) = grep { $_->{id} eq $to->{id} } @$after;
    my %owned = map { $_ => 1 } @{ $dst->{slots} };
    my $moved = grep { $owned{$_} } @moving;
    my $took = $r->{faults}[0][2] - $r->{faults}[0][1];
    CartDrill::report($r, note => sprintf('8 slots (the 4 carts\' among them) '
        . 'moved from :%d to :%d under load in %.2f s',
        $from->{port}, $to->{port}, $took));
    CartDrill::check_ledger($r);
    is($moved, 8, "$name: the 8 slots are on :$to->{port} now");
    my $on_new = grep {
        CartDrill::cli($to->{port}, 'EXISTS', "cart:{user-$_->[0]}") == 1
    } @$users;
    is($on_new, 4, "$name: the carts are on the new master");
}

# --- replica failover ------------------------------------------------------

SKIP: {
    my $name = 'cluster-failover';
    $nodes = CartDrill::cluster_nodes($P);
    my %by_id = map { $_->{id} => $_ } @$nodes;
    my ($replica) = grep { $_->{flags} =~ /slave/ && $by_id{ $_->{master} }
                           && $_->{link} eq 'connected' } @$nodes;
    if (!$replica) {
        my $why = 'the test cluster has no replicas (util/redis-cluster.sh '
                . 'starts masters only): no replica to promote';
        CartDrill::report_skip($name, $why);
        skip "$name: $why", 1;
    }
    my $master = $by_id{ $replica->{master} };
    my $users = users_in('fo', 4, $master->{slots});
    my $pid = (CartDrill::cli($master->{port}, 'INFO', 'server')
               =~ /process_id:(\d+)/)[0];
    my $r = CartDrill::load(
        name  => $name,
        users => $users,
        after => 4,
        fault => sub {
            my ($f) = @_;
            $f->start("kill -9 master :$master->{port}");
            kill 'KILL', $pid;
            # until its replica is a master and the cluster is ok again
            for (1 .. 600) {
                my $ok = eval {
                    my ($me) = grep { $_->{id} eq $replica->{id} }
                               @{ CartDrill::cluster_nodes($replica->{port}) };
                    $me && $me->{flags} =~ /master/
                        && CartDrill::cli($replica->{port}, 'CLUSTER', 'INFO')
                           =~ /cluster_state:ok/;
                };
                last if $ok;
                CartDrill::nap(0.1);
            }
            $f->end;
        },
    );
    # the old master comes back as a replica of the promoted one (once
    # init reaped it: util/redis.sh takes a zombie for a live server)
    for (1 .. 300) {
        last unless -e "/proc/$pid";
        CartDrill::nap(0.05);
    }
    my $back = CartDrill::quiet("$CartDrill::Top/util/redis.sh", 'start',
                                $master->{port}, "$Dir/$master->{port}",
                                "$CartDrill::Top/util/redis-cluster.conf");
    CartDrill::verify($r, $replica->{port}, '-c');
    my $took = $r->{faults}[0][2] - $r->{faults}[0][1];
    CartDrill::report($r, note => sprintf('master :%d killed, replica :%d '
        . 'promoted after %.1f s; asynchronous replication: loss measured',
        $master->{port}, $replica->{port}, $took));
    CartDrill::check_ledger($r, loss_allowed => 1);
    my ($me) = grep { $_->{id} eq $replica->{id} }
               @{ CartDrill::cluster_nodes($replica->{port}) };
    like($me->{flags}, qr/master/, "$name: the replica was promoted");
    is($back, 0, "$name: the old master started again");
    my $rejoined;
    for (1 .. 100) {
        my ($old) = grep { $_->{id} eq $master->{id} }
                    @{ CartDrill::cluster_nodes($replica->{port}) };
        $rejoined = $old && $old->{flags} =~ /slave/
                    && $old->{master} eq $replica->{id};
        last if $rejoined;
        CartDrill::nap(0.1);
    }
    ok($rejoined, "$name: the old master rejoined as a replica of :"
                  . $replica->{port});
}

diag($_) for CartDrill::log_digest(CartDrill::error_log($nginx));
