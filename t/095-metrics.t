# cart_status: requests by operation and status, latency histograms per
# operation, idempotent replays and conflicts, Redis per node, subrequests
# per upstream, the lookup caches, streams, merges and checkouts by
# outcome, the Kafka queue; the numbers move exactly as the requests are
# made, and a reload keeps them. nginx runs a master and two workers, so
# the gauges are sums over the workers.

use lib 't/lib';
use CartTest;
use CartShop;
use CartClient;
use CartKafka;
use IO::Socket::INET;
use Time::HiRes ();

plan 'no_plan';
no_shuffle();
# valgrind mode runs one process, which cannot reload
if (!$ENV{TEST_NGINX_USE_VALGRIND}) {
    master_on();
    workers(2);
}
add_block_preprocessor(\&CartShop::prepare);

our $Node = "127.0.0.1:" . ($ENV{TEST_NGINX_REDIS_PORT} || 16379);

# how much a sample grew between two scrapes
sub delta {
    my ($before, $after, $name) = @_;
    return sample($after, $name) - sample($before, $name);
}

# a scrape once $name is $want (a gauge settles), or the last one after 5 s
sub settle {
    my ($name, $want) = @_;
    my $scrape;
    for (1 .. 50) {
        $scrape = scrape();
        last if sample($scrape, $name) == $want;
        Time::HiRes::sleep(0.1);
    }
    return $scrape;
}

our $Conns = $ENV{TEST_NGINX_USE_VALGRIND} ? 2 : 4;   # 2 per worker

# the config with the lookup caches on the cart API's location
sub cached_config {
    (my $c = $CartShop::Config) =~ s{(cart_shipping /_shipping/\S+;\n)}
        {$1        cart_catalog_cache zone=m_cache:1m valid=1m;\n}
        or die "no cart_shipping in CartShop::Config";
    return $c;
}

# the value of one sample line of the scrape, 0 when absent
sub sample {
    my ($scrape, $name) = @_;
    my $re = quotemeta($name);
    return $scrape =~ /^$re (\S+)$/m ? $1 : 0;
}

sub scrape {
    my ($status, $body) = CartClient::request('GET', '/_status');
    die "scrape: $status\n" unless $status == 200;
    return $body;
}

our $Status = <<'_EOC_';
    location = /_status {
        cart_status;
    }
_EOC_

run_tests();

__DATA__

=== TEST 1: counters and histograms move with the requests, per operation and status
--- config eval: $CartShop::Config . $main::Status
--- init
redis_cmd('DEL', 'cart:{user-m1}', 'cart_count:{user-m1}', 'idem:{user-m1}:k1');
my $before = main::scrape();
my @r;
push @r, (CartClient::request('POST', '/api/v1/cart/items', 'm1', '{"sku_id":"A-1","quantity":1}'))[0] for 1 .. 3;
push @r, (CartClient::request('POST', '/api/v1/cart/items', 'm1', '{"sku_id":"A-1","quantity":1}',
                              'Idempotency-Key' => 'k1'))[0] for 1 .. 2;
push @r, (CartClient::request('POST', '/api/v1/cart/items', 'm1', '{"sku_id":"A-1","quantity":1}',
                              'Idempotency-Key' => 'k1'))[0] if 0;
push @r, (CartClient::request('POST', '/api/v1/cart/items', 'm1', '{"sku_id":"A-2","quantity":1}',
                              'Idempotency-Key' => 'k1'))[0];
push @r, (CartClient::request('POST', '/api/v1/cart/items', 'm1', '{"sku_id":"A-1"'))[0];
push @r, (CartClient::request('GET', '/api/v1/cart', 'm1'))[0];
push @r, (CartClient::request('GET', '/api/v1/cart/nope', 'm1'))[0];
Test::More::is("@r", '200 200 200 200 200 422 400 200 404', 'the requests answered as expected');
my $after = main::scrape();
my %d;
for my $s ('cart_requests_total{op="add",status="200"}', 'cart_requests_total{op="add",status="422"}',
           'cart_requests_total{op="add",status="400"}', 'cart_requests_total{op="view",status="200"}',
           'cart_requests_total{op="other",status="404"}', 'cart_request_duration_seconds_count{op="add"}',
           'cart_request_duration_seconds_bucket{op="add",le="+Inf"}',
           'cart_idempotent_replays_total', 'cart_idempotency_conflicts_total') {
    $d{$s} = main::sample($after, $s) - main::sample($before, $s);
}
Test::More::is($d{'cart_requests_total{op="add",status="200"}'}, 5, 'five adds answered 200');
Test::More::is($d{'cart_requests_total{op="add",status="422"}'}, 1, 'one 422 (the key reused)');
Test::More::is($d{'cart_requests_total{op="add",status="400"}'}, 1, 'one 400 (malformed body)');
Test::More::is($d{'cart_requests_total{op="view",status="200"}'}, 1, 'one view');
Test::More::is($d{'cart_requests_total{op="other",status="404"}'}, 1, 'one unknown path');
Test::More::is($d{'cart_request_duration_seconds_count{op="add"}'}, 7, 'seven adds timed');
Test::More::is($d{'cart_request_duration_seconds_bucket{op="add",le="+Inf"}'}, 7, 'the +Inf bucket is the count');
Test::More::is($d{'cart_idempotent_replays_total'}, 1, 'one replay');
Test::More::is($d{'cart_idempotency_conflicts_total'}, 1, 'one conflict');
my @buckets = $after =~ /^cart_request_duration_seconds_bucket\{op="add",le="[^"]+"\} (\d+)$/mg;
Test::More::is(join(',', @buckets), join(',', sort { $a <=> $b } @buckets), 'buckets are cumulative');
Test::More::like($after, qr/^# TYPE cart_request_duration_seconds histogram$/m, 'a histogram');
Test::More::like($after, qr/^cart_request_duration_seconds_sum\{op="add"\} \d+\.\d{3}$/m, 'its sum in seconds');
--- request
GET /_status
--- response_body_like: cart_requests_total\{op="add",status="200"\} \d+



=== TEST 2: every metric the dashboard (conf/cart-dashboard.json) and the alert rules (conf/cart-alerts.yml) use is in a real scrape
--- config eval: $CartShop::Config . $main::Status
--- init
CartClient::request('GET', '/api/v1/cart', 'm2');
my $scrape = main::scrape();
my %used;
for my $file ('conf/cart-dashboard.json', 'conf/cart-alerts.yml') {
    open(my $fh, '<', $file) or die "$file: $!";
    local $/;
    my $text = <$fh>;
    $used{$_}++ for $text =~ /\b(cart_[a-z_]+_(?:total|bucket|sum|count|seconds))\b/g;
}
for my $name (sort keys %used) {
    (my $base = $name) =~ s/_(?:bucket|sum|count)\z//;
    Test::More::like($scrape, qr/^# TYPE (?:\Q$name\E|\Q$base\E) /m,
                     "$name is scraped");
}
--- request
GET /_status
--- response_body_like: cart_requests_total\{op="view",status="200"\} \d+



=== TEST 3: Redis per node: the pools' connections, a command pending while Redis is paused, its timeout
--- http_config
cart_redis_timeout 300ms;
--- config eval: $CartShop::Config . $main::Status
--- init
my $n = $main::Node;
CartClient::request('GET', '/plain/count', 'm3');
my $before = main::settle(qq{cart_redis_connections{node="$n"}}, $main::Conns);
Test::More::is(main::sample($before, qq{cart_redis_connections{node="$n"}}), $main::Conns,
               'every connection of every worker is up (2 per worker)');
Test::More::is(main::sample($before, qq{cart_redis_pending{node="$n"}}), 0,
               'nothing pending at rest');
redis_cmd('CLIENT', 'PAUSE', 1200, 'ALL');
my $pid = fork() // die "fork: $!";
if ($pid == 0) {
    CartClient::request('GET', '/plain/count', 'm3');
    require POSIX; POSIX::_exit(0);
}
Time::HiRes::sleep(0.15);
my $during = main::scrape();
Test::More::is(main::sample($during, qq{cart_redis_pending{node="$n"}}), 1,
               'the paused command is pending');
waitpid($pid, 0);
Time::HiRes::sleep(1.3);
my $after = main::scrape();
Test::More::is(main::delta($before, $after, qq{cart_redis_timeouts_total{node="$n"}}), 1,
               'its timeout counted');
Test::More::is(main::sample($after, qq{cart_redis_pending{node="$n"}}), 0,
               'nothing pending once Redis answered');
Test::More::like($after, qr/^cart_redis_redirections_total\{node="\Q$n\E",type="moved"\} 0$/m,
                 'no redirection on a single Redis');
--- request
GET /_status
--- response_body_like: cart_redis_connections\{node="127\.0\.0\.1:\d+"\} \d+
--- timeout: 10



=== TEST 4: Redis restarted: the connections go down and come back, the reconnections counted
--- config eval: $CartShop::Config . $main::Status
--- init
my $n = $main::Node;
CartClient::request('GET', '/plain/count', 'm4');
my $before = main::settle(qq{cart_redis_connections{node="$n"}}, $main::Conns);
CartClient::redis_ctl('stop');
my $down = main::settle(qq{cart_redis_connections{node="$n"}}, 0);
Test::More::is(main::sample($down, qq{cart_redis_connections{node="$n"}}), 0,
               'no connection up while Redis is stopped');
CartClient::redis_ctl('start');
my $after = main::settle(qq{cart_redis_connections{node="$n"}}, $main::Conns);
Test::More::is(main::sample($after, qq{cart_redis_connections{node="$n"}}), $main::Conns,
               'every connection up again');
Test::More::cmp_ok(main::delta($before, $after, qq{cart_redis_reconnects_total{node="$n"}}),
                   '>=', 1, 'reconnections counted');
Test::More::is((CartClient::request('GET', '/plain/count', 'm4'))[0], 200, 'served again');
--- request
GET /_status
--- response_body_like: cart_redis_reconnects_total\{node="127\.0\.0\.1:\d+"\} [1-9]
--- timeout: 15



=== TEST 5: subrequests per upstream kind: sent, failed (a 500), timed out (proxy_read_timeout), their latency
--- config eval: $CartShop::Config . $main::Status
--- init
redis_cmd('DEL', 'cart:{user-m5}', 'cart_count:{user-m5}');
my $before = main::scrape();
my @r = map { (CartClient::request('POST', '/api/v1/cart/items', 'm5',
                                   qq({"sku_id":"$_","quantity":1})))[0] }
        qw(A-1 CAT-DOWN SLOW);
Test::More::is("@r", '200 503 503', 'one priced, two refused');
my $after = main::scrape();
my %d = map { $_ => main::delta($before, $after, $_) }
        'cart_subrequests_total{kind="catalog"}',
        'cart_subrequests_failed_total{kind="catalog"}',
        'cart_subrequests_timeouts_total{kind="catalog"}',
        'cart_subrequest_duration_seconds_count{kind="catalog"}',
        'cart_subrequest_duration_seconds_bucket{kind="catalog",le="0.250"}',
        'cart_subrequest_duration_seconds_bucket{kind="catalog",le="+Inf"}';
Test::More::is($d{'cart_subrequests_total{kind="catalog"}'}, 3, 'three catalog lookups sent');
Test::More::is($d{'cart_subrequests_failed_total{kind="catalog"}'}, 1, 'the 500 failed');
Test::More::is($d{'cart_subrequests_timeouts_total{kind="catalog"}'}, 1, 'the slow one timed out');
Test::More::is($d{'cart_subrequest_duration_seconds_count{kind="catalog"}'}, 3, 'three timed');
Test::More::is($d{'cart_subrequest_duration_seconds_bucket{kind="catalog",le="+Inf"}'}, 3,
               'the +Inf bucket is the count');
Test::More::cmp_ok($d{'cart_subrequest_duration_seconds_bucket{kind="catalog",le="0.250"}'},
                   '<=', 2, 'the timeout (300 ms) is above 250 ms');
--- request
GET /_status
--- response_body_like: cart_subrequests_total\{kind="catalog"\} [1-9]
--- timeout: 10



=== TEST 6: the catalog cache: a miss asks the upstream, the next view is a hit
--- config eval: main::cached_config() . $main::Status
--- init
redis_cmd('DEL', 'cart:{user-m6}', 'cart_count:{user-m6}');
redis_cmd('HSET', 'cart:{user-m6}', 'B-2', '1|1250|seller-b|t0000', '#v', 1);
redis_cmd('SET', 'cart_count:{user-m6}', 1);
my $before = main::scrape();
my @r = map { (CartClient::request('GET', '/api/v1/cart', 'm6'))[0] } 1 .. 3;
Test::More::is("@r", '200 200 200', 'three views');
my $after = main::scrape();
Test::More::is(main::delta($before, $after, 'cart_cache_lookups_total{kind="catalog",outcome="miss"}'),
               1, 'the first view missed');
Test::More::is(main::delta($before, $after, 'cart_cache_lookups_total{kind="catalog",outcome="hit"}'),
               2, 'the others hit');
Test::More::is(main::delta($before, $after, 'cart_cache_lookups_total{kind="catalog",outcome="stale"}'),
               0, 'nothing stale within valid');
Test::More::is(main::delta($before, $after, 'cart_subrequests_total{kind="catalog"}'),
               1, 'one catalog lookup for three views');
--- request
GET /_status
--- response_body_like: cart_cache_lookups_total\{kind="catalog",outcome="hit"\} [1-9]



=== TEST 7: streams: open while the client reads, events written, closed by the client
--- config eval: $CartShop::Config . $main::Status
--- init
redis_cmd('DEL', 'cart:{user-m7}', 'cart_count:{user-m7}');
my $before = main::scrape();
my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $ENV{TEST_NGINX_PORT},
                                 Timeout => 5) or die "connect: $!";
print {$sock} "GET /api/v1/cart/stream HTTP/1.1\r\nHost: localhost\r\nX-User-Id: m7\r\n\r\n";
my $got = '';
my $until = Time::HiRes::time() + 5;
while ($got !~ /"item_count":0/ && Time::HiRes::time() < $until) {
    sysread($sock, my $buf, 4096) or last;
    $got .= $buf;
}
CartClient::request('POST', '/plain/items', 'm7', '{"sku_id":"Z-1","quantity":1}');
while ($got !~ /"item_count":1/ && Time::HiRes::time() < $until) {
    sysread($sock, my $buf, 4096) or last;
    $got .= $buf;
}
Test::More::like($got, qr/"item_count":1/, 'the stream got the change');
my $open = main::scrape();
Test::More::is(main::sample($open, 'cart_streams_open'), 1, 'one stream open');
close $sock;
my $closed;
for (1 .. 30) {
    Time::HiRes::sleep(0.1);
    $closed = main::scrape();
    last if main::sample($closed, 'cart_streams_open') == 0;
}
Test::More::is(main::sample($closed, 'cart_streams_open'), 0, 'none once it left');
Test::More::is(main::delta($before, $closed, 'cart_streams_closed_total{reason="client"}'), 1,
               'closed by the client');
Test::More::is(main::delta($before, $closed, 'cart_stream_events_total'), 2,
               'two events written: the state, then the change');
--- request
GET /_status
--- response_body_like: cart_streams_closed_total\{reason="client"\} [1-9]
--- timeout: 10



=== TEST 8: merges and checkouts by outcome: ok, replayed, the error code answered
--- config eval: $CartShop::Config . $main::Status
--- init
redis_cmd('DEL', 'cart:{user-m8}', 'cart_count:{user-m8}', 'idem:{user-m8}:o1');
my $before = main::scrape();
my @r;
push @r, join ' ', CartClient::request('POST', '/api/v1/cart/checkout', 'm8');
CartClient::request('POST', '/api/v1/cart/items', 'm8', '{"sku_id":"A-1","quantity":1}');
CartClient::request('PUT', '/api/v1/cart/shipping-address', 'm8',
                    '{"country":"US","postal_code":"94107"}');
push @r, (CartClient::request('POST', '/api/v1/cart/checkout', 'm8', undef,
                              'Idempotency-Key' => 'o1'))[0] for 1 .. 2;
push @r, join ' ', CartClient::request('POST', '/api/v1/cart/merge', 'm8', '{}');
Test::More::like($r[0], qr/^422 .*"cart_empty"/, 'an empty cart');
Test::More::is("$r[1] $r[2]", '200 200', 'a checkout and its replay');
my ($code) = $r[3] =~ /"code":"([a-z_]+)"/;
Test::More::ok($code, "the merge refused: $r[3]");
my $after = main::scrape();
Test::More::is(main::delta($before, $after, 'cart_checkouts_total{outcome="cart_empty"}'), 1,
               'cart_empty counted');
Test::More::is(main::delta($before, $after, 'cart_checkouts_total{outcome="ok"}'), 1,
               'one checkout done');
Test::More::is(main::delta($before, $after, 'cart_checkouts_total{outcome="replayed"}'), 1,
               'one replayed');
Test::More::is(main::delta($before, $after, qq{cart_merges_total{outcome="$code"}}), 1,
               "the merge counted as $code");
--- request
GET /_status
--- response_body_like: cart_checkouts_total\{outcome="ok"\} [1-9]



=== TEST 9: the Kafka queue grows while the brokers are down and drains when they are back
--- http_config
cart_kafka_brokers $TEST_NGINX_KAFKA_BROKERS;
cart_kafka_property reconnect.backoff.max.ms 500;
--- config eval: $CartShop::Config . $main::Status
--- init
my $u = "m9-$$";
CartClient::request('POST', '/plain/items', $u, '{"sku_id":"K-0","quantity":1}');
CartKafka::wait_events("user-$u", 1);
CartKafka::ctl('down');
CartClient::request('POST', '/plain/items', $u, qq({"sku_id":"K-$_","quantity":1})) for 1 .. 5;
my $queued = 0;
for (1 .. 30) {
    Time::HiRes::sleep(0.2);
    $queued = main::sample(main::scrape(), 'cart_kafka_queue');
    last if $queued >= 5;
}
Test::More::cmp_ok($queued, '>=', 5, "five events wait in the queues ($queued)");
CartKafka::ctl('up');
CartKafka::wait_events("user-$u", 6);
Test::More::is(main::sample(main::settle('cart_kafka_queue', 0), 'cart_kafka_queue'), 0,
               'the queues drained');
--- request
GET /_status
--- response_body_like: cart_kafka_queue 0
--- timeout: 30



=== TEST 10: a reload (HUP) keeps every counter
--- config eval: $CartShop::Config . $main::Status
--- init
redis_cmd('DEL', 'cart:{user-m10}', 'cart_count:{user-m10}');
CartClient::request('POST', '/api/v1/cart/items', 'm10', '{"sku_id":"A-1","quantity":1}');
CartClient::request('PUT', '/api/v1/cart/shipping-address', 'm10',
                    '{"country":"US","postal_code":"94107"}');
CartClient::request('POST', '/api/v1/cart/checkout', 'm10');
CartClient::request('GET', '/api/v1/cart', 'm10');
my $before = main::scrape();
my @names = ('cart_requests_total{op="view",status="200"}',
             'cart_request_duration_seconds_count{op="add"}',
             'cart_subrequests_total{kind="catalog"}',
             'cart_subrequest_duration_seconds_count{kind="catalog"}',
             'cart_checkouts_total{outcome="ok"}');
Test::More::cmp_ok(main::sample($before, $_), '>', 0, "$_ counted before") for @names;
if ($ENV{TEST_NGINX_USE_VALGRIND}) {
    Test::More::note('no reload in valgrind mode (one process)');
} else {
    open my $fh, '<', "$ENV{TEST_NGINX_SERVROOT}/logs/nginx.pid" or die "pid: $!";
    chomp(my $master = <$fh>);
    kill 'HUP', $master;
    Time::HiRes::sleep(0.5);
    my $after = main::settle(qq{cart_redis_connections{node="$main::Node"}}, 4);
    Test::More::is(main::sample($after, $_), main::sample($before, $_), "$_ kept")
        for @names;
    Test::More::is(main::sample($after, qq{cart_redis_connections{node="$main::Node"}}), 4,
                   "the new workers' connections, the old ones' gone");
}
--- request
GET /_status
--- response_body_like: cart_requests_total\{op="view",status="200"\} [1-9]
