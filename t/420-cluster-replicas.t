# cart_redis_cluster on against 3 masters with a replica each
# (util/redis-cluster.sh PORT DIR 3 1, cluster-node-timeout 2000), under
# load: writers add to carts on every master all the time, each add with
# an Idempotency-Key, retried with the same key until it is acknowledged.
#
#  - a master killed (SIGKILL): its carts answer 503 (store_unavailable,
#    store_timeout, store_outcome_unknown for a write sent to it) only until its replica is promoted, then the same
#    worker serves them again, without a reload; the other masters' carts
#    never fail;
#  - slots migrated by hand (SETSLOT IMPORTING / MIGRATING, MIGRATE,
#    SETSLOT NODE) while the writers run: nothing is lost, nothing is
#    counted twice: every cart holds exactly the adds acknowledged.
#
# A cluster of this file's own on TEST_NGINX_REDIS_CLUSTER_PORT + 30 ..
# + 35 (buses + 10000).

use lib 't/lib';
use CartTest;
use CartConf;
use CartClient;
use File::Path ();
use POSIX ();
use Time::HiRes qw(time sleep);
use Test::More ();

our $P = $ENV{TEST_NGINX_REDIS_CLUSTER_PORT} // '';
our $Base = $P ? $P + 30 : 0;
our $Dir = ($ENV{TEST_NGINX_REDIS_CLUSTER_DIR} // 'build/test/redis-cluster')
           . '-replicas';
our $Slow = $ENV{TEST_NGINX_USE_VALGRIND} ? 3 : 1;

sub cli {
    my ($port, @args) = @_;
    # quiet: the killed master refuses connections
    my $pid = open(my $out, '-|') // die "cannot fork: $!\n";
    if (!$pid) {
        open STDERR, '>', '/dev/null';
        exec 'timeout', '5', 'redis-cli', '-h', '127.0.0.1', '-p', $port,
             '--raw', @args;
        POSIX::_exit(127);
    }
    my $output = do { local $/; <$out> } // '';
    close $out;
    chomp $output;
    return $output;
}

sub cl { cli($Base, '-c', @_) }

sub wait_for {
    my ($what, $seconds, $check) = @_;
    my $deadline = time + $seconds;
    while (time < $deadline) {
        return 1 if $check->();
        sleep 0.05;
    }
    die "timed out waiting for $what\n";
}

# the port of the master serving $key's slot, asked of node $port
sub owner {
    my ($key, $port) = @_;
    my $slot = cli($Base, 'CLUSTER', 'KEYSLOT', $key);
    my @f = split /\n/, cli($port // $Base, 'CLUSTER', 'SLOTS');
    for (my $i = 0; $i + 4 < @f; $i++) {
        next unless $f[$i] =~ /^\d+$/ && $f[$i + 1] =~ /^\d+$/
                    && $f[$i + 2] =~ /^\d+\.\d+\.\d+\.\d+$/;
        return $f[$i + 3] if $slot >= $f[$i] && $slot <= $f[$i + 1];
    }
    return 0;
}

sub masters {
    return grep { cli($_, 'ROLE') =~ /^master/ } $Base .. $Base + 5;
}

sub cluster_ctl {
    my ($action) = @_;
    system('util/redis-cluster.sh', $action, $Base, $Dir, 3, 1) == 0;
}

our $Up = 0;
# a port may be some client's ephemeral port for a moment: try again
for (1 .. ($P ? 3 : 0)) {
    cluster_ctl('stop');
    File::Path::remove_tree($Dir);
    $Up = cluster_ctl('start');
    last if $Up;
    sleep 5;
}
cluster_ctl('stop') if $P && !$Up;

if (!$Up) {
    plan skip_all => 'no Redis Cluster with replicas: util/test.sh sets '
                     . 'TEST_NGINX_REDIS_CLUSTER_PORT';
} else {
    plan 'no_plan';
}

END { cluster_ctl('stop') if $Up }

no_shuffle();
add_block_preprocessor(\&CartConf::default_config);

# writers: one process per user, adding SKU-1 x1 again and again for
# $seconds, each add retried with its Idempotency-Key until it answers
# 200; each writes "<user> <acked> <t status code>..." (the failures, t in
# unix seconds) into $Dir/load-<user>
our %Writers;

sub writers_start {
    my ($tag, $seconds, @users) = @_;
    for my $user (@users) {
        my $pid = fork // die "fork: $!";
        if ($pid == 0) {
            my ($acked, @failed) = (0);
            my $end = time + $seconds;
            my $i = 0;
            while (time < $end) {
                my $key = "$tag-$user-" . $i++;
                while (1) {
                    my ($status, $body) = CartClient::request(
                        'POST', '/nocatalog/items', $user,
                        '{"sku_id":"SKU-1","quantity":1}',
                        'Idempotency-Key' => $key);
                    if ($status == 200) {
                        $acked++;
                        # load, not a flood: the machine runs other tests
                        sleep 0.01;
                        last;
                    }
                    my ($code) = $body =~ /"code":"([^"]+)"/;
                    push @failed, sprintf('%.2f:%s:%s', time, $status,
                                          $code // '-');
                    # only a 503 is worth a retry
                    $end = 0 if $status != 503;
                    last if $status != 503;
                    sleep 0.05;
                    # an add given up unacknowledged would not be countable
                    last if time > $end + 30;
                }
            }
            open my $fh, '>', "$Dir/load-$user" or POSIX::_exit(1);
            print {$fh} "$user $acked @failed\n";
            close $fh;
            POSIX::_exit(0);
        }
        $Writers{$user} = $pid;
    }
}

# { user => [acked, [t, status, code]...] }
sub writers_wait {
    my %r;
    for my $user (sort keys %Writers) {
        waitpid $Writers{$user}, 0;
        open my $fh, '<', "$Dir/load-$user" or die "no result of $user\n";
        my ($u, $acked, @failed) = split ' ', scalar <$fh>;
        $r{$user} = [$acked, map { [split /:/] } @failed];
    }
    %Writers = ();
    return \%r;
}

sub quantity {
    my ($user) = @_;
    my ($qty) = split /\|/, cl('HGET', "cart:{user-$user}", 'SKU-1') || '0';
    return $qty;
}

# moves $key's slot to the master on $to while writes go on: migrate
# until the source has no key of the slot left, then assign it
sub migrate {
    my ($key, $to) = @_;
    my $from = owner($key);
    my $slot = cli($Base, 'CLUSTER', 'KEYSLOT', $key);
    my ($fid, $tid) = (cli($from, 'CLUSTER', 'MYID'), cli($to, 'CLUSTER', 'MYID'));
    cli($to, 'CLUSTER', 'SETSLOT', $slot, 'IMPORTING', $fid);
    cli($from, 'CLUSTER', 'SETSLOT', $slot, 'MIGRATING', $tid);
    for (1 .. 100) {
        my @keys = grep { length } split /\n/,
                   cli($from, 'CLUSTER', 'GETKEYSINSLOT', $slot, 1000);
        last unless @keys;
        cli($from, 'MIGRATE', '127.0.0.1', $to, '', 0, 5000, 'KEYS', @keys);
        sleep 0.1;
    }
    cli($_, 'CLUSTER', 'SETSLOT', $slot, 'NODE', $tid) for $to, $from,
        grep { $_ != $to && $_ != $from } masters();
}

# users: two on each master
our (@Users, %On);
if ($Up) {
    for my $i (1 .. 100) {
        my $port = owner("cart:{user-r$i}");
        next if ($On{$port} //= 0) >= 2;
        $On{$port}++;
        push @Users, "r$i";
        last if @Users == 6;
    }
}

run_tests();

__DATA__

=== TEST 1: a master killed under load: 503 for its carts only, and only until its replica is promoted; then served again without a reload
--- http_config eval
"cart_redis redis://127.0.0.1:$main::Base redis://127.0.0.1:" . ($main::Base + 1) . ";
cart_redis_cluster on;
cart_max_quantity 1000000;
cart_max_lines 10;"
--- init
main::cl('DEL', "cart:{user-$_}", "cart_count:{user-$_}") for @main::Users;
my $victim = main::owner("cart:{user-$main::Users[0]}");
my @hit = grep { main::owner("cart:{user-$_}") == $victim } @main::Users;
my ($replica) = grep { main::cli($_, 'ROLE') =~ /^slave\n127\.0\.0\.1\n$victim\n/ }
                $main::Base .. $main::Base + 5;
Test::More::ok($replica, "master $victim has a replica: $replica");

main::writers_start('kill', 14 * $main::Slow, @main::Users);
sleep 3;
open my $fh, '<', "$main::Dir/$victim/redis.pid" or die "pid: $!";
chomp(my $pid = <$fh>);
my $killed = time;
kill 'KILL', $pid;
main::wait_for('the replica to be promoted', 20, sub {
    main::owner("cart:{user-$hit[0]}", $main::Base == $victim ? $main::Base + 1
                                                              : $main::Base)
    == $replica });
my $promoted = time;
my $r = main::writers_wait();

my (@outside, @others, %codes);
for my $user (@main::Users) {
    my ($acked, @failed) = @{$r->{$user}};
    Test::More::cmp_ok($acked, '>', 10, "$user: $acked adds acknowledged");
    for my $f (@failed) {
        $codes{"$f->[1] $f->[2]"}++;
        push @others, "$user @$f" unless grep { $_ eq $user } @hit;
        # the writers' times have two decimals: one that failed as the
        # kill happened may print 0.01 s before $killed
        push @outside, "$user @$f" if $f->[0] < $killed - 0.01
                                      || $f->[0] > $promoted + 2 * $main::Slow;
    }
}
Test::More::is("@others", '', "the other masters' carts never failed");
Test::More::is("@outside", '', sprintf('failures only between the kill and '
               . '2 s after the promotion (%.1f s later)', $promoted - $killed));
Test::More::is(join(',', grep { !/^503 store_(unavailable|timeout|outcome_unknown)$/ } keys %codes),
               '', 'every failure a 503 store_unavailable, store_timeout or store_outcome_unknown: '
               . join(', ', map { "$_ x$codes{$_}" } sort keys %codes));
for my $user (@main::Users) {
    my $acked = $r->{$user}[0];
    my $qty = main::quantity($user);
    if (grep { $_ eq $user } @hit) {
        # replication is asynchronous: an add acknowledged just before the
        # kill may not have reached the replica
        Test::More::ok($qty <= $acked && $qty >= $acked - 1,
                       "$user (killed master): $qty of $acked adds kept");
    } else {
        Test::More::is($qty, $acked, "$user: every acknowledged add kept");
    }
}
our $Hit = $hit[0];
--- request eval
"GET /nocatalog/count"
--- more_headers eval
"X-User-Id: $main::Users[0]"
--- response_body_like: ^\{"item_count":\d+\}$
--- no_error_log
[alert]
[crit]
--- timeout: 20



=== TEST 2: slots migrated by hand under load: every acknowledged add is in Redis, none twice
--- http_config eval
"cart_redis redis://127.0.0.1:$main::Base redis://127.0.0.1:" . ($main::Base + 1) . ";
cart_redis_cluster on;
cart_max_quantity 1000000;
cart_max_lines 10;"
--- init
main::cl('DEL', "cart:{user-$_}", "cart_count:{user-$_}") for @main::Users;
main::writers_start('reshard', 10 * $main::Slow, @main::Users);
sleep 2;
# each user's slot to another master, one after the other
my @masters = main::masters();
for my $user (@main::Users) {
    my $from = main::owner("cart:{user-$user}");
    my ($to) = grep { $_ != $from } @masters;
    main::migrate("cart:{user-$user}", $to);
    Test::More::is(main::owner("cart:{user-$user}"), $to, "$user: slot moved to $to");
}
my $r = main::writers_wait();
my %codes;
for my $user (@main::Users) {
    my ($acked, @failed) = @{$r->{$user}};
    $codes{"$_->[1] $_->[2]"}++ for @failed;
    Test::More::cmp_ok($acked, '>', 10, "$user: $acked adds acknowledged");
    Test::More::is(main::quantity($user), $acked, "$user: all of them in Redis");
}
Test::More::is(join(',', grep { !/^503 store_(unavailable|timeout)$/ } keys %codes),
               '', 'failures (TRYAGAIN) are 503: '
               . join(', ', map { "$_ x$codes{$_}" } sort keys %codes));
--- request eval
"GET /nocatalog/count"
--- more_headers eval
"X-User-Id: $main::Users[0]"
--- response_body_like: ^\{"item_count":\d+\}$
--- error_log eval
qr/following "(ASK|MOVED) \d+ 127\.0\.0\.1:\d+"/
--- no_error_log
[alert]
[crit]
--- timeout: 20
