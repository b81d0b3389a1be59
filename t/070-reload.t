# Reload (HUP) under traffic: no request fails, no write is lost, and the
# old workers leave no Redis connection behind.

use lib 't/lib';
use CartTest;
use CartConf;
use CartClient;
use Time::HiRes qw(time);
use Test::More ();

# valgrind mode runs nginx as a single process, which cannot reload
plan $ENV{TEST_NGINX_USE_VALGRIND}
     ? (skip_all => 'reload needs a master process; valgrind mode has none')
     : 'no_plan';
no_shuffle();
master_on();
workers(2);
add_block_preprocessor(\&CartConf::default_config);

sub nginx_clients {
    # Redis clients other than this redis-cli itself
    my @lines = grep { !/cmd=client/ } split /\n/, redis_cmd('CLIENT', 'LIST');
    return scalar @lines;
}

run_tests();

__DATA__

=== TEST 1: adds from 3 clients while nginx reloads twice: all answered 200, all counted
--- http_config
cart_max_quantity 100000;
cart_redis_connections 2;
--- init
redis_cmd('DEL', 'cart:{user-h1}', 'cart_count:{user-h1}');
my $pidfile = "$ENV{TEST_NGINX_SERVROOT}/logs/nginx.pid";
open my $fh, '<', $pidfile or die "$pidfile: $!";
chomp(my $master = <$fh>);
my @results = CartClient::parallel(4, sub {
    my ($i) = @_;
    if ($i == 1) {
        # the reloader: two HUPs while the others write
        select(undef, undef, undef, 0.3);
        kill 'HUP', $master;
        select(undef, undef, undef, 0.5);
        kill 'HUP', $master;
        return 'reloaded';
    }
    # writers: add for 1.5 s, across both reloads
    my ($ok, $until) = (0, time + 1.5);
    while (time < $until) {
        my ($status, $body) = CartClient::request('POST', '/nocatalog/items',
            'h1', '{"sku_id":"SKU-1","quantity":1}');
        return "status $status: $body" unless $status == 200;
        $ok++;
    }
    return $ok;
});
my ($reloader, @writers) = @results;
die "a request failed during the reload: @results\n"
    if $reloader ne 'reloaded' || grep { !/^\d+$/ } @writers;
my $sent = 0;
$sent += $_ for @writers;
my ($status, $body) = CartClient::request('GET', '/nocatalog/count', 'h1');
die "$sent adds answered 200, but the cart counts $body\n"
    unless $body eq qq({"item_count":$sent});
Test::More::note("$sent adds across two reloads");
# the old workers are gone with their connections: 2 workers x 2 remain
my $clients;
for (1 .. 100) {
    $clients = main::nginx_clients();
    last if $clients == 4;
    select(undef, undef, undef, 0.1);
}
die "expected 4 Redis connections after the reloads, found $clients\n"
    unless $clients == 4;
--- request
GET /nocatalog/count
--- more_headers
X-User-Id: h1
--- response_body_like: ^\{"item_count":[1-9]\d*\}$
--- timeout: 60
