# GET /stream during a long Redis outage: every channel (an owner's streams
# in the worker) whose state read failed reads again every 500 ms for as
# long as the outage lasts; the worker's memory must not grow with the
# number of tries (a stream is a request that lives for hours: nothing of a
# try may stay in its pool, nor in the worker's).
# The outage: CLIENT PAUSE WRITE, as Redis does during a failover: the
# subscriber still answers, the scripts wait.

use lib 't/lib';
use CartTest;
use CartConf;
use CartClient;
use CartStream;
use Time::HiRes qw(time sleep);
use Test::More ();

plan 'no_plan';
no_shuffle();
worker_connections(1024);
add_block_preprocessor(\&CartConf::default_config);

our $Valgrind = $ENV{TEST_NGINX_USE_VALGRIND};

# the resident set of the (only) nginx process, in KB
sub rss {
    open my $fh, '<', "$ServRoot/logs/nginx.pid" or die "nginx.pid: $!";
    chomp(my $pid = <$fh>);
    open my $st, '<', "/proc/$pid/status" or die "status of $pid: $!";
    while (<$st>) {
        return $1 if /^VmRSS:\s+(\d+)\s+kB/;
    }
    die "no VmRSS for $pid";
}

# the tries logged so far (a debug line per failed state read)
sub retries {
    open my $log, '<', "$ServRoot/logs/error.log" or die "error.log: $!";
    return scalar grep { /cart stream: state read failed, again in/ } <$log>;
}

run_tests();

__DATA__

=== TEST 1: 200 streams of 50 carts through a 12 s outage: memory stays bounded however many tries; all streams recover
--- init
my $n = $main::Valgrind ? 20 : 200;
my $outage = $main::Valgrind ? 20 : 12;
# four streams per cart: a channel reads once for its streams, so the
# tries are per cart
my @owners = map { "o1-$_" } 1 .. $n / 4;
CartClient::seed($_) for @owners;
my @st = map { my $o = $_; map { main::stream_open('/nocatalog/stream', 'X-User-Id' => $o) } 1 .. 4 }
         @owners;
my $first = grep { (main::stream_next($_, 3) // '') eq '5 5 2' } @st;
Test::More::is($first, $n, "$n streams have the current state");

# the writes stop; the subscriber is made again, so every channel reads
my $t0 = time;
redis_cmd('CLIENT', 'PAUSE', $outage * 1000, 'WRITE');
redis_cmd('CLIENT', 'KILL', 'TYPE', 'pubsub');

# the first seconds fill the free lists and the logs' buffers
sleep $main::Valgrind ? 6 : 3;
my ($rss0, $tries0) = (main::rss(), main::retries());
sleep $t0 + $outage - 2 - time;
my ($rss1, $tries1) = (main::rss(), main::retries());
my $tries = $tries1 - $tries0;
Test::More::cmp_ok($tries, '>=', @owners * ($main::Valgrind ? 1 : 5),
                   "the channels kept trying: $tries tries");
# (not under valgrind or ASan: their allocators keep freed memory)
Test::More::cmp_ok($rss1 - $rss0, '<', 200, "the worker grew by "
                   . ($rss1 - $rss0) . " KB over $tries tries")
    unless $main::Valgrind || $ENV{TEST_NGINX_USE_ASAN};

# the outage ends: every channel reads its state again, then hears changes
sleep $t0 + $outage + 1.5 * $main::Slow - time;
my $ok = grep { (main::call('POST', '/nocatalog/items', "X-User-Id: $_\r\n",
                            '{"sku_id":"SKU-2","quantity":1}'))[0] == 200 } @owners;
Test::More::is($ok, scalar @owners, 'a write to each cart after the outage');
my $got = grep { my $e; do { $e = main::stream_next($_, 5) } while defined $e && $e ne '6 6 3';
                 defined $e } @st;
Test::More::is($got, $n, "all $n streams have the change");
close $_->{sock} for @st;
--- request
GET /nocatalog/count
--- more_headers
X-User-Id: o1-1
--- response_body: {"item_count":3}
--- no_error_log
[alert]
[crit]
--- timeout: 60
