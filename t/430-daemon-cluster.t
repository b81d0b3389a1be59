# cartd on a Redis Cluster (redis_cluster on): the module writes carts on
# the 3 masters of the test command's cluster, cartd reads each on its
# master (snapshots equal Redis), reconciles by a SCAN of every master,
# finds abandoned carts in the activity sets of every slot, and restores
# carts lost from every master.
#
# Needs the test command's cluster, brokers and PostgreSQL (util/test.sh).

use lib 't/lib';
use CartTest;
use CartCluster;
use CartConf;
use CartClient;
use CartKafka;
use CartDaemon;
use Test::More ();

our $P = $ENV{TEST_NGINX_REDIS_CLUSTER_PORT} // '';
our @Ports = $P ? ($P, $P + 1, $P + 2) : ();

sub cli { CartCluster::cli(@_) }

sub cl { cli($P, '-c', @_) }

if (!$P || cli($P, 'CLUSTER', 'INFO') !~ /cluster_state:ok/
    || !$ENV{TEST_NGINX_KAFKA_BROKERS} || !$ENV{TEST_NGINX_PG_DSN})
{
    plan skip_all => 'needs the Redis Cluster, the brokers and PostgreSQL '
                     . 'of util/test.sh';
} else {
    plan 'no_plan';
}

no_shuffle();

add_block_preprocessor(CartKafka::preprocessor(
    'cart_kafka_property linger.ms 1;', "cart_redis redis://127.0.0.1:$P;",
    'cart_redis_cluster on;'));

our $Run = $$ . '-' . time;
our $Group = "cartd-cluster-$Run";
our $Conf = CartDaemon::conf('430', kafka_group => $Group, batch_size => 50,
    redis => "redis://127.0.0.1:$P", redis_cluster => 'on',
    kafka_property => ['session.timeout.ms 6000', 'heartbeat.interval.ms 1000',
                       'fetch.wait.max.ms 20']);

# the port of the master of $key's slot
sub owner_port { CartCluster::owner($P, $_[0]) }

# two users on each master: "<port>" => [users]
our (@Users, %On);
if ($P) {
    for my $i (1 .. 200) {
        my $u = "cd$i-$Run";
        my $port = owner_port("cart:{user-$u}");
        next if @{$On{$port} //= []} >= 2;
        push @{$On{$port}}, $u;
        push @Users, $u;
        last if @Users == 6;
    }
}

# TEST 1 moves the slot of $Moving (and adds to its cart), TEST 2 changes
# the first user of each master; $Quiet is none of those
our $Moving = $Users[-1];
our ($Quiet) = grep { defined && $_ ne $Moving } map { $On{$_}[1] } sort keys %On;

# as CartDaemon::redis_cart, on the cluster
sub redis_cart {
    my ($owner) = @_;
    my %h = split /\n/, cl('HGETALL', "cart:{$owner}");
    my $v = delete $h{'#v'} // 0;
    s/\|([0-9a-z]+)$/'|' . CartClient::line_time($1)/e for values %h;
    return "$v;" . join ',', sort map { "$_=$h{$_}" } grep { !/^#/ } keys %h;
}

# moves $key's slot, with its keys, to the master on $to
sub migrate {
    my ($key, $to) = @_;
    my $from = owner_port($key);
    my $slot = cli($P, 'CLUSTER', 'KEYSLOT', $key);
    my ($fid, $tid) = (cli($from, 'CLUSTER', 'MYID'), cli($to, 'CLUSTER', 'MYID'));
    cli($to, 'CLUSTER', 'SETSLOT', $slot, 'IMPORTING', $fid);
    cli($from, 'CLUSTER', 'SETSLOT', $slot, 'MIGRATING', $tid);
    my @keys = grep { length } split /\n/,
               cli($from, 'CLUSTER', 'GETKEYSINSLOT', $slot, 1000);
    cli($from, 'MIGRATE', '127.0.0.1', $to, '', 0, 5000, 'KEYS', @keys) if @keys;
    cli($_, 'CLUSTER', 'SETSLOT', $slot, 'NODE', $tid) for $to, $from,
        grep { $_ != $to && $_ != $from } @Ports;
}

sub add {
    my ($user, $sku, $qty) = @_;
    my ($status, $body) = CartClient::request('POST', '/nocatalog/items', $user,
        "{\"sku_id\":\"$sku\",\"quantity\":$qty}");
    die "add for $user: $status $body" unless $status == 200;
}

run_tests();

__DATA__

=== TEST 1: writes on carts of every master: each snapshot equals its master's cart
--- init
my ($rc, $out) = CartDaemon::run($main::Conf, 'migrate');
Test::More::is($rc, 0, 'migrate') or Test::More::diag($out);
Test::More::is(scalar(keys %main::On), 3, 'users on the 3 masters: '
               . join(' ', map { "$_=@{$main::On{$_}}" } sort keys %main::On));
my $pid = CartDaemon::start('430', $main::Conf);
for my $u (@main::Users) {
    main::cl('DEL', "cart:{user-$u}", "cart_count:{user-$u}");
    main::add($u, 'SKU-1', 2);
    main::add($u, 'SKU-3', 1);
}
for my $u (@main::Users) {
    my ($v) = split /;/, main::redis_cart("user-$u");
    Test::More::is(CartDaemon::wait_sql("SELECT version FROM carts WHERE user_id = 'user-$u'",
                                        $v, 60), $v, "snapshot of $u caught up");
    Test::More::is(CartDaemon::pg_cart("user-$u"), main::redis_cart("user-$u"),
                   "snapshot of $u equals its master's cart (" . main::owner_port("cart:{user-$u}")
                   . ')');
}

# a slot moves under the running daemon: its read gets MOVED and follows
my $m = $main::Moving;
my $to = (grep { $_ != main::owner_port("cart:{user-$m}") } @main::Ports)[0];
main::migrate("cart:{user-$m}", $to);
Test::More::is(main::owner_port("cart:{user-$m}"), $to, "the slot of $m moved to $to");
main::add($m, 'SKU-2', 1);
my ($v) = split /;/, main::redis_cart("user-$m");
Test::More::is(CartDaemon::wait_sql("SELECT version FROM carts WHERE user_id = 'user-$m'",
                                    $v, 60), $v, "snapshot of $m caught up after the move");
Test::More::is(CartDaemon::pg_cart("user-$m"), main::redis_cart("user-$m"),
               "and equals the cart on its new master");
CartDaemon::stop($pid);
--- request
GET /nocatalog/count
--- more_headers eval
"X-User-Id: $main::Users[0]"
--- response_body chomp
{"item_count":3}



=== TEST 2: reconcile: carts changed behind the events' back on every master, found by a SCAN of each
--- init
for my $u (map { $main::On{$_}[0] } sort keys %main::On) {
    main::cl('HSET', "cart:{user-$u}", 'SKU-D', '3|1250|seller-9|1764547200', '#v', '9');
    main::cl('SET', "cart_count:{user-$u}", 6);
}
my ($rc, $out) = CartDaemon::run($main::Conf, 'reconcile');
Test::More::is($rc, 0, 'reconcile exits 0') or Test::More::diag($out);
my ($changed) = $out =~ /reconcile: \d+ carts in Redis, (\d+) snapshots updated/;
Test::More::cmp_ok($changed // 0, '>=', 3, 'at least the three carts changed')
    or Test::More::diag($out);
for my $u (@main::Users) {
    Test::More::is(CartDaemon::pg_cart("user-$u"), main::redis_cart("user-$u"),
                   "snapshot of $u equals Redis");
}
($rc, $out) = CartDaemon::run($main::Conf, 'reconcile');
Test::More::like($out, qr/, 0 snapshots updated/, 'a second pass changes nothing');
--- request
GET /nocatalog/count
--- more_headers eval
"X-User-Id: $main::On{$main::Ports[0]}[0]"
--- response_body chomp
{"item_count":6}



=== TEST 3: abandonment: the activity sets of every slot, on every master
--- init
my ($rc, $out) = CartDaemon::run($main::Conf, '--now', time + 3600 + 60, 'abandon');
Test::More::is($rc, 0, 'abandonment pass an hour later') or Test::More::diag($out);
my %seen;
for my $m (CartKafka::read_topic('cart-events')) {
    next unless ($m->{event}{type} // '') eq 'cart_abandoned';
    $seen{$1}++ if $m->{key} =~ /^user-(cd\d+-\Q$main::Run\E)$/;
}
Test::More::is(join(' ', sort keys %seen), join(' ', sort @main::Users),
               'every cart of every master abandoned');
--- request
GET /nocatalog/count
--- more_headers eval
"X-User-Id: $main::Quiet"
--- response_body chomp
{"item_count":3}



=== TEST 4: carts lost on every master, then restore: each back on its master
--- init
my %before = map { $_ => main::redis_cart("user-$_") } @main::Users;
main::cl('DEL', "cart:{user-$_}", "cart_count:{user-$_}") for @main::Users;
Test::More::is(main::redis_cart("user-$main::Users[0]"), '0;', 'gone');
my ($rc, $out) = CartDaemon::run($main::Conf, 'restore');
Test::More::is($rc, 0, 'restore exits 0') or Test::More::diag($out);
my ($n) = $out =~ /restore: (\d+) carts restored/;
Test::More::cmp_ok($n // 0, '>=', 6, 'and reports the carts restored')
    or Test::More::diag($out);
for my $u (@main::Users) {
    Test::More::is(main::redis_cart("user-$u"), $before{$u}, "cart of $u restored");
    my $port = main::owner_port("cart:{user-$u}");
    Test::More::is(main::cli($port, 'EXISTS', "cart:{user-$u}", "cart_count:{user-$u}"), 2,
                   "on its master $port, with its counter");
}
--- request
GET /nocatalog/count
--- more_headers eval
"X-User-Id: $main::Quiet"
--- response_body chomp
{"item_count":3}
