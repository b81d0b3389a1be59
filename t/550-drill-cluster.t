# Drills on Redis Cluster, the cart nginx with cart_redis_cluster on:
#
#  - cluster-slot-migration, on the test cluster (util/redis-cluster.sh,
#    started by util/test.sh): the slots of the clients' carts moved to
#    another master with redis-cli --cluster reshard under a load of
#    writes (ASK, TRYAGAIN, then MOVED); no acknowledged write lost.
#  - cluster-failover, on a cluster of the drill's own: 3 masters with a
#    replica each on TEST_NGINX_REDIS_CLUSTER_PORT + 40 .. + 45 (buses
#    + 10000), util/redis-cluster.conf (cluster-node-timeout 2000, no
#    AOF, no RDB). A master killed (kill -9) under load, its replica
#    promoted, the old master restarted (it rejoins as a replica). The
#    writes to the dead master's slots answer 503, never hang, until the
#    promotion; then they are served again without a reload; the cart on
#    another master never fails. Replication is asynchronous and the
#    module does not WAIT: a write the master acknowledged just before it
#    died may never have reached the replica. Such losses are counted and
#    reported, and asserted to be writes answered before the promotion.
#
# See t/lib/CartDrill.pm.

use strict;
use warnings;
use lib 't/lib';
use CartDrill;
use File::Path ();
use Test::More;

my $P = $ENV{TEST_NGINX_REDIS_CLUSTER_PORT} // '';
my $up = $P && eval {
    CartDrill::cli($P, 'CLUSTER', 'INFO') =~ /cluster_state:ok/;
};
if (!$P) {
    CartDrill::report_skip($_, 'no Redis Cluster (run through util/test.sh)')
        for 'cluster-slot-migration', 'cluster-failover';
    plan skip_all => 'no Redis Cluster: util/test.sh sets '
                     . 'TEST_NGINX_REDIS_CLUSTER_PORT';
}
CartDrill::plan_drill('cluster');
CartDrill::catalog_start(name => 'cluster');

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

if (!$up) {
    CartDrill::report_skip('cluster-slot-migration',
                           'the test cluster is not up (util/test.sh)');
} else {
    my $name = 'cluster-slot-migration';
    my $nodes = CartDrill::cluster_nodes($P);
    my @masters = grep { $_->{flags} =~ /master/ && $_->{flags} !~ /fail/
                         && @{ $_->{slots} } } @$nodes;
    my $seeds = join ' ', map { "redis://127.0.0.1:$_->{port}" } @masters;
    my $nginx = CartDrill::nginx_start(name => $name,
        redis => "cart_redis $seeds;\n    cart_redis_cluster on;");
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
    diag($_) for CartDrill::log_digest(CartDrill::error_log($nginx));
    CartDrill::cleanup_now('nginx');
}

# --- replica failover ------------------------------------------------------

{
    my $name = 'cluster-failover';
    my $base = $P + 40;
    my $dir = "$CartDrill::Out/$name/cluster";
    local $CartDrill::Quiet = "$CartDrill::Out/$name/cluster.log";
    unlink $CartDrill::Quiet;
    my $ctl = sub {
        CartDrill::quiet("$CartDrill::Top/util/redis-cluster.sh", $_[0],
                         $base, $dir, 3, 1) == 0;
    };
    my $made;
    # a port may be some client's ephemeral port for a moment: try again
    for (1 .. 3) {
        $ctl->('stop');
        File::Path::remove_tree($dir);
        last if $made = $ctl->('start');
        CartDrill::nap(5);
    }
    CartDrill::at_end('failover-cluster', sub { $ctl->('stop') });
    die "no cluster with replicas on :$base: see $CartDrill::Quiet\n"
        unless $made;

    # the node asked may learn of the replicas by gossip a little later
    # than they synced (a loaded machine): ask again for up to 10 s
    my ($nodes, %by_id, $replica);
    for (1 .. 50) {
        $nodes = CartDrill::cluster_nodes($base);
        %by_id = map { $_->{id} => $_ } @$nodes;
        ($replica) = grep { $_->{flags} =~ /slave/ && $by_id{ $_->{master} }
                            && @{ $by_id{ $_->{master} }{slots} } } @$nodes;
        last if $replica;
        CartDrill::nap(0.2);
    }
    die "no replica in the cluster on :$base\n" unless $replica;
    my $master = $by_id{ $replica->{master} };
    my ($other) = grep { $_->{flags} =~ /master/ && @{ $_->{slots} }
                         && $_->{id} ne $master->{id} } @$nodes;
    # clients 1-3 write to carts on the master killed, client 4 elsewhere
    my $users = [@{ users_in('fo', 3, $master->{slots}) },
                 @{ users_in('fo-other', 1, $other->{slots}) }];
    my $seeds = join ' ', map { "redis://127.0.0.1:$_->{port}" }
                          grep { $_->{flags} =~ /master/ } @$nodes;
    my $nginx = CartDrill::nginx_start(name => $name,
        redis => "cart_redis $seeds;\n    cart_redis_cluster on;");
    my $pid = (CartDrill::cli($master->{port}, 'INFO', 'server')
               =~ /process_id:(\d+)/)[0];
    my ($killed, $promoted);
    my $r = CartDrill::load(
        name  => $name,
        users => $users,
        after => 4,
        fault => sub {
            my ($f) = @_;
            $f->start("kill -9 master :$master->{port}");
            $killed = CartDrill::now();
            kill 'KILL', $pid;
            # until its replica is a master and the cluster is ok again
            for (1 .. 600) {
                $promoted = eval {
                    my ($me) = grep { $_->{id} eq $replica->{id} }
                               @{ CartDrill::cluster_nodes($replica->{port}) };
                    $me && $me->{flags} =~ /master/
                        && CartDrill::cli($replica->{port}, 'CLUSTER', 'INFO')
                           =~ /cluster_state:ok/;
                };
                last if $promoted;
                CartDrill::nap(0.1);
            }
            $f->end;
            die "the replica :$replica->{port} was not promoted in 60 s\n"
                unless $promoted;
            $promoted = CartDrill::now();
        },
    );
    # the old master comes back as a replica of the promoted one (once
    # init reaped it: util/redis.sh takes a zombie for a live server)
    for (1 .. 300) {
        last unless -e "/proc/$pid";
        CartDrill::nap(0.05);
    }
    my $back = CartDrill::quiet("$CartDrill::Top/util/redis.sh", 'start',
                                $master->{port}, "$dir/$master->{port}",
                                "$CartDrill::Top/util/redis-cluster.conf");
    CartDrill::verify($r, $replica->{port}, '-c');

    # the failover window: from the kill to the promotion; the 503s in it
    my @failed = grep { $_->[2] !~ /^2/ } @{ $r->{answers} };
    my @not_503 = grep { $_->[2] != 503 || $_->[3] !~ /^store_/ } @failed;
    my @elsewhere = grep { $_->[5] == 4 } @failed;
    my @lost_late = grep { $_ > $promoted } @{ $r->{lost_at} };
    my $before = 0;
    for my $t (@{ $r->{lost_at} }) {
        $before = $killed - $t if $killed - $t > $before;
    }
    my $n503 = grep { $_->[2] == 503 } @failed;
    my ($first, $last) = (9e9, 0);
    for (@failed) {
        $first = $_->[1] if $_->[1] < $first;
        $last = $_->[1] if $_->[1] > $last;
    }
    CartDrill::report($r, note => sprintf('master :%d killed, replica :%d '
        . 'promoted %.2f s later; %d answers 503, from %.2f s to %.2f s '
        . 'after the kill; asynchronous replication, no WAIT: %d '
        . 'acknowledged writes lost%s',
        $master->{port}, $replica->{port}, $promoted - $killed, $n503,
        $n503 ? ($first - $killed, $last - $killed) : (0, 0), $r->{lost},
        $r->{lost} ? sprintf(' (answered up to %.3f s before the kill)',
                             $before) : ''));
    # the whole ledger check when nothing was lost; else all but the lines
    CartDrill::check_ledger($r, loss_allowed => $r->{lost} > 0);
    is(scalar @lost_late, 0, "$name: no write acknowledged after the "
       . "promotion was lost ($r->{lost} before it, to async replication)");
    cmp_ok($n503, '>', 0, "$name: writes to the dead master answered 503");
    is(join(', ', map { "$_->[2] $_->[3]" } @not_503), '',
       "$name: every failure a 503 store_*, none unanswered (hung)");
    is(scalar @elsewhere, 0, "$name: the cart on another master never "
       . "failed");
    cmp_ok($r->{recovery}, '<', 9e9, "$name: writes served again after "
           . 'the promotion, without a reload');
    like(join(',', map { $_->{flags} }
              grep { $_->{id} eq $replica->{id} }
              @{ CartDrill::cluster_nodes($replica->{port}) }),
         qr/master/, "$name: the replica was promoted");
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
    diag($_) for CartDrill::log_digest(CartDrill::error_log($nginx));
}
