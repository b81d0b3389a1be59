# Many connections writing one cart at the same time: every add counts
# (no lost update), the counter agrees with the lines, versions are unique.

use lib 't/lib';
use CartTest;
use CartConf;
use CartClient;
use Test::More ();

plan 'no_plan';
no_shuffle();
add_block_preprocessor(\&CartConf::default_config);

run_tests();

__DATA__

=== TEST 1: 20 clients x 10 adds to one cart: 200 units, 200 versions
--- http_config
cart_max_quantity 100000;
--- init
redis_cmd('DEL', 'cart:{user-c1}', 'cart_count:{user-c1}');
my @results = CartClient::parallel(20, sub {
    my ($n, @versions) = (0);
    for (1 .. 10) {
        my ($status, $body) = CartClient::request('POST', '/api/v1/cart/items',
            'c1', '{"sku_id":"SKU-' . (1 + $_ % 3) . '","quantity":1}');
        return "status $status: $body" unless $status == 200;
        push @versions, $body =~ /"version":(\d+)/;
    }
    return join ',', @versions;
});
my %seen;
for my $r (@results) {
    die "a concurrent add failed: $r\n" if $r !~ /^[\d,]+$/;
    $seen{$_}++ for split /,/, $r;
}
die "versions are not 1..200 each once\n"
    unless keys(%seen) == 200 && !grep { $seen{$_} != 1 } 1 .. 200;
--- request eval
["GET /api/v1/cart/count", "GET /nocatalog"]
--- more_headers
X-User-Id: c1
--- response_body_like eval
['^\{"item_count":200\}$', '"item_count":200,.*"version":200,']
--- timeout: 30



=== TEST 2: concurrent PUTs with If-Match on one version: exactly one wins
--- init
CartClient::seed('c2');
my @results = CartClient::parallel(10, sub {
    my ($i) = @_;
    my ($status) = CartClient::request('PUT', '/api/v1/cart/items/SKU-1', 'c2',
        qq({"quantity":$i}), 'If-Match' => '"5"');
    return $status;
});
my $won = grep { $_ == 200 } @results;
my $lost = grep { $_ == 412 } @results;
die "expected one 200 and nine 412, got @results\n" unless $won == 1 && $lost == 9;
--- request
GET /nocatalog
--- more_headers
X-User-Id: c2
--- response_body_like: "version":6,
--- timeout: 30



=== TEST 3: concurrent adds of distinct SKUs stop exactly at cart_max_lines
--- http_config
cart_max_lines 5;
--- init
redis_cmd('DEL', 'cart:{user-c3}', 'cart_count:{user-c3}');
my @results = CartClient::parallel(12, sub {
    my ($i) = @_;
    my ($status) = CartClient::request('POST', '/nocatalog/items', 'c3',
        qq({"sku_id":"SKU-L$i","quantity":1}));
    return $status;
});
my $ok = grep { $_ == 200 } @results;
my $full = grep { $_ == 422 } @results;
die "expected 5 adds and 7 refusals, got @results\n" unless $ok == 5 && $full == 7;
--- request
GET /nocatalog/count
--- more_headers
X-User-Id: c3
--- response_body chomp
{"item_count":5}
--- timeout: 30
