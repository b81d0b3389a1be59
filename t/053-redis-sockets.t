# The worker's Redis sockets as the kernel sees them, and what an outage
# writes to the error log.

use lib 't/lib';
use CartTest;
use CartConf;
use CartClient;
use Test::More ();
use Time::HiRes ();

plan 'no_plan';
no_shuffle();
add_block_preprocessor(\&CartConf::default_config);

# The established TCP sockets of the block's nginx (its process and, with
# a master, the workers) to the test Redis, as [inode, timer] from
# /proc/net/tcp; timer 2 is the keepalive timer (an idle socket without
# SO_KEEPALIVE has none).
sub redis_sockets {
    my $pidfile = "$ENV{TEST_NGINX_SERVROOT}/logs/nginx.pid";
    open my $pf, '<', $pidfile or die "$pidfile: $!";
    chomp(my $pid = <$pf>);

    my @pids = ($pid);
    for my $stat (glob '/proc/[0-9]*/stat') {
        open my $sf, '<', $stat or next;
        my ($child, $ppid) = (<$sf> // '') =~ /^(\d+) \(.*\) \S+ (\d+)/;
        push @pids, $child if defined $ppid && $ppid == $pid;
    }

    my %mine;
    for my $fd (map { glob "/proc/$_/fd/*" } @pids) {
        my $link = readlink($fd) // '';
        $mine{$1} = 1 if $link =~ /^socket:\[(\d+)\]$/;
    }

    my $port = sprintf '%04X', $CartTest::RedisPort;
    my @found;
    open my $tcp, '<', '/proc/net/tcp' or die "/proc/net/tcp: $!";
    <$tcp>;
    while (<$tcp>) {
        my @f = split ' ';
        my ($timer) = split /:/, $f[5];
        next unless $f[2] =~ /:$port$/ && $f[3] eq '01' && $mine{$f[9]};
        push @found, [$f[9], $timer + 0];
    }
    return @found;
}

run_tests();

__DATA__

=== TEST 1: every Redis connection has SO_KEEPALIVE: a peer gone without a FIN is noticed while idle
--- http_config
cart_redis_connections 3;
--- init
redis_cmd('DEL', 'cart:{user-s1}', 'cart_count:{user-s1}');
my ($status) = CartClient::request('GET', '/nocatalog/count', 's1');
die "warm-up: $status\n" unless $status == 200;
my @sockets = main::redis_sockets();
Test::More::cmp_ok(scalar @sockets, '>=', 3, 'three connections to Redis');
Test::More::is(scalar(grep { $_->[1] != 2 } @sockets), 0,
               'each has a keepalive timer: '
               . join ' ', map { "$_->[0]:$_->[1]" } @sockets);
--- request
GET /nocatalog/count
--- more_headers
X-User-Id: s1
--- response_body: {"item_count":0}



=== TEST 2: Redis stopped: 200 requests write a handful of error lines, not 200; the held-back ones are counted in the next line
--- init
redis_cmd('DEL', 'cart:{user-s2}', 'cart_count:{user-s2}');
my ($status) = CartClient::request('GET', '/nocatalog/count', 's2');
die "warm-up: $status\n" unless $status == 200;
my $log = "$ENV{TEST_NGINX_SERVROOT}/logs/error.log";
my $from = -s $log;
CartClient::redis_ctl('stop');
my @codes = map { (CartClient::request('GET', '/nocatalog/count', 's2'))[0] } 1 .. 200;
Test::More::is(scalar(grep { $_ == 503 } @codes), 200, '200 answers 503');
# the count comes with the next line past the interval: a request or two
# more (a loaded machine may need the second)
my @errors;
for (1 .. 3) {
    Time::HiRes::sleep(1.1);
    CartClient::request('GET', '/nocatalog/count', 's2');
    open my $fh, '<', $log or die "$log: $!";
    seek $fh, $from, 0;
    @errors = grep { /\[error\].*cart redis/ } <$fh>;
    last if grep { /more in the last/ } @errors;
}
Test::More::cmp_ok(scalar @errors, '<=', 8,
                   'a handful of error lines: ' . scalar @errors);
Test::More::ok((grep { /cart redis: no connection to "[^"]+" \(\d+ more in the last \d+s\)$/ } @errors),
               'one says how many like it were held back')
    or Test::More::diag(join '', @errors);
CartClient::redis_ctl('start');
--- request eval
["GET /wait", "GET /wait", "GET /nocatalog/count"]
--- more_headers
X-User-Id: s2
--- response_body_like eval
['', '', '^\{"item_count":0\}$']
--- timeout: 10
--- no_error_log
[alert]
[crit]
