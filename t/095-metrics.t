# cart_status: requests by operation and status, latency histograms per
# operation, idempotent replays and conflicts; the numbers move exactly as
# the requests are made.

use lib 't/lib';
use CartTest;
use CartShop;
use CartClient;

plan 'no_plan';
no_shuffle();
add_block_preprocessor(\&CartShop::prepare);

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
