# The lookup caches (cart_catalog_cache, cart_inventory_cache,
# cart_shipping_cache): what the upstreams answer, counted in the shop's
# own log (logs/shop.log, t/lib/CartShop.pm): views and adds read the
# cache, a 404 is kept and a failure is not, an entry past "valid" is
# refreshed once while the others serve it, checkout always asks and
# refreshes the cache, shipping is keyed by destination, batch upstreams
# ask only for what is missing, two workers share one zone, and a tiny
# zone evicts the oldest entries and still answers right.
#
# The shop serves catalog and inventory documents from files in the html
# directory, so that a block can change a price while nginx runs.

use lib 't/lib';
use CartTest;
use CartShop;
use CartClient;
use IO::Select;
use IO::Socket::INET;
use File::Path ();
use POSIX ();
use Time::HiRes ();

plan 'no_plan';
no_shuffle();
add_block_preprocessor(\&CartShop::prepare);

# a block with "--- two_workers" runs a master and two workers, one with
# "--- master" a master and one worker (valgrind mode runs one process)
add_block_preprocessor(sub {
    my ($block) = @_;
    if (defined $block->two_workers && !$ENV{TEST_NGINX_USE_VALGRIND}) {
        master_on();
        workers(2);
    } elsif (defined $block->master && !$ENV{TEST_NGINX_USE_VALGRIND}) {
        master_on();
        workers(1);
    } else {
        master_off();
        workers(1);
    }
});

# under valgrind everything is ten times slower: so are the clocks here
our $Slow = $ENV{TEST_NGINX_USE_VALGRIND} ? 10 : 1;

our $Html = "$ENV{TEST_NGINX_SERVROOT}/html";

# The cart API with all three caches in zone $zone, entries valid for
# $valid; /nocache the same upstreams without them; /batch the batch
# upstreams of CartShop through the cache. $extra goes into the server.
sub conf {
    my ($zone, $valid, $extra) = @_;
    $extra //= '';
    my $size = $zone =~ /^tiny/ ? '32k' : '1m';
    my $upstreams = <<'_EOC_';
        cart_catalog /_catalog/$cart_sku;
        cart_inventory /_inventory/$cart_sku;
        cart_shipping /_shipping/$cart_sku?country=$cart_country&postal=$cart_postal_code;
_EOC_
    my $padding = '.' x 2048;
    return <<"_EOC_" . $CartShop::Batch;
    $extra
    location /api/v1/cart {
        cart_api;
        cart_user \$http_x_user_id;
$upstreams
        cart_catalog_cache zone=$zone:$size valid=$valid;
        cart_inventory_cache zone=$zone valid=$valid;
        cart_shipping_cache zone=$zone valid=$valid;
        add_header X-Pid \$pid always;
    }
    location /nocache {
        cart_api;
        cart_user \$http_x_user_id;
$upstreams
    }
    location /batch {
        cart_api;
        cart_user \$http_x_user_id;
        cart_catalog /_batch/catalog?skus=\$cart_skus;
        cart_catalog_cache zone=$zone valid=$valid;
    }
    # shop {
    location /_catalog/ {
        internal;
        default_type application/json;
        alias $Html/catalog/;
        log_not_found off;
    }
    location = /_catalog/DOWN {
        internal;
        return 500;
    }
    # about two seconds to answer
    location = /_catalog/LAZY {
        internal;
        limit_rate 1024;
        limit_rate_after 0;
        default_type application/json;
        return 200 '{"sku_id":"LAZY","price":3.00,"name":"Clock","seller_id":"seller-x","padding":"$padding"}';
    }
    location /_inventory/ {
        internal;
        default_type application/json;
        alias $Html/inventory/;
        log_not_found off;
    }
    location /_shipping/ {
        internal;
        default_type application/json;
        if (\$arg_country = NZ) {
            return 404;
        }
        return 200 '{"cost":2.00,"min_days":1,"max_days":3}';
    }
_EOC_
}

# a document of the shop, written now (nginx reads it on every request)
sub doc {
    my ($path, $body) = @_;
    my $file = "$Html/$path";
    (my $dir = $file) =~ s{/[^/]+$}{};
    File::Path::make_path($dir);
    open(my $fh, '>', "$file.tmp") or die "$file: $!";
    print {$fh} $body;
    close $fh;
    rename("$file.tmp", $file) or die "$file: $!";
}

# a product at $price (a string: "10.00"), in stock
sub product {
    my ($sku, $price, $name, $stock) = @_;
    $name //= "Product $sku";
    doc("catalog/$sku",
        qq({"sku_id":"$sku","price":$price,"name":"$name","seller_id":"seller-x"}));
    doc("inventory/$sku", qq({"sku_id":"$sku","available":) . ($stock // 100) . '}');
}

# the shop's log since the block's mark() (one nginx may serve the whole
# file: TEST_NGINX_USE_HUP)
our $Mark = 0;

sub mark {
    $Mark = () = CartShop::shop_log();
}

sub shop {
    my @lines = CartShop::shop_log();
    return @lines[$Mark .. $#lines];
}

# how many requests the shop got for paths starting with /_$what
# ("catalog", "catalog/X-1", "shipping/X-1?country=FR") since mark()
sub asked {
    my ($what) = @_;
    return scalar grep { /^GET \/_\Q$what\E[\/ ?&]/ } shop();
}

# the counts of catalog, inventory and shipping requests so far
sub counts {
    return map { asked($_) } qw(catalog inventory shipping);
}

# one request on a new connection: (status, body, X-Pid)
sub call {
    my ($method, $path, $user, $body, $port) = @_;
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                     PeerPort => $port || $ENV{TEST_NGINX_PORT},
                                     Timeout => 10) or die "connect: $!";
    my $req = "$method $path HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
            . "X-User-Id: $user\r\n";
    $req .= "Content-Type: application/json\r\nContent-Length: " . length($body) . "\r\n"
        if defined $body;
    print {$sock} "$req\r\n" . ($body // '');
    my ($resp, $deadline) = ('', Time::HiRes::time() + 20 * $Slow);
    my $select = IO::Select->new($sock);
    while (Time::HiRes::time() < $deadline
           && $select->can_read($deadline - Time::HiRes::time())) {
        sysread($sock, my $buf, 65536) or last;
        $resp .= $buf;
    }
    my ($status) = $resp =~ m{^HTTP/1\.1 (\d+)};
    my ($pid) = $resp =~ m{^X-Pid: (\d+)}mi;
    my (undef, $payload) = split /\r\n\r\n/, $resp, 2;
    return ($status // 0, $payload // '', $pid);
}

# the view of $user at $path: (status, body)
sub view {
    my ($user, $path) = @_;
    my ($status, $body) = call('GET', $path // '/api/v1/cart', $user);
    return ($status, $body);
}

# "sku=current_price" of every line of a view
sub prices {
    my ($body) = @_;
    my @p;
    while ($body =~ /"sku_id":"([^"]+)","quantity":\d+,"price_at_add":[^,]+,"seller_id":"[^"]*","added_at":"[^"]*","current_price":([\d.]+)/g) {
        push @p, "$1=$2";
    }
    return join(' ', @p);
}

run_tests();

__DATA__

=== TEST 1: ten views of a five-line cart ask the catalog and the inventory five times each, not fifty; the view is the uncached one
The first view fills the cache (5 + 5 lookups), the next nine find every
line in it: no subrequest at all ("cart wave: 0 pending" apart from the
promotions). Every view is byte for byte the view without a cache.
--- config eval
main::conf('c1', '60s')
--- init
main::mark();
CartShop::reset_promotions();
main::product("X-$_", "1$_.00") for 1 .. 5;
CartShop::cart('c1', [map { ["X-$_", $_, "1${_}00", 'seller-x'] } 1 .. 5]);
my @before = main::counts();
my ($status, $plain) = main::view('c1', '/nocache');
my @after = main::counts();
Test::More::is($after[0] - $before[0], 5, 'without the cache: 5 catalog lookups a view');
my @views;
push @views, [main::view('c1')] for 1 .. 10;
my @end = main::counts();
Test::More::is($end[0] - $after[0], 5, 'with the cache: 5 catalog lookups for 10 views');
Test::More::is($end[1] - $after[1], 5, 'and 5 inventory lookups');
Test::More::is(scalar(grep { $_->[0] == 200 && $_->[1] eq $plain } @views), 10,
               'every view is the view without the cache');
Test::More::is(main::prices($plain), 'X-1=11.00 X-2=12.00 X-3=13.00 X-4=14.00 X-5=15.00',
               'the catalog prices');
--- request
GET /api/v1/cart
--- more_headers
X-User-Id: c1
--- response_body_like: "current_price":11\.00,.*"current_price":15\.00,
--- error_log
cart cache hit: "cX-1"
cart cache hit: "iX-5"
--- no_error_log
[error]



=== TEST 2: an add reads the cache: no catalog request for a SKU a view has seen, the cached price at add; an unknown SKU (404) is asked once
--- config eval
main::conf('c2', '60s')
--- init
main::mark();
main::product('X-1', '11.00');
CartShop::cart('c2', [['X-1', 1, 1100, 'seller-x']]);
redis_cmd('DEL', 'cart:{user-c2b}', 'cart_count:{user-c2b}');
unlink "$main::Html/catalog/NOPE";
main::view('c2');
my @before = main::counts();
my ($s1, $b1) = main::call('POST', '/api/v1/cart/items', 'c2b', '{"sku_id":"X-1","quantity":2}');
my ($s2, $b2) = main::call('POST', '/api/v1/cart/items', 'c2b', '{"sku_id":"NOPE","quantity":1}');
my ($s3, $b3) = main::call('POST', '/api/v1/cart/items', 'c2b', '{"sku_id":"NOPE","quantity":1}');
my @after = main::counts();
Test::More::is($s1, 200, 'the add of a cached SKU');
Test::More::like(redis_cmd('HGET', 'cart:{user-c2b}', 'X-1'), qr/^2\|1100\|seller-x\|/,
                 'at the cached price, from the cached seller');
Test::More::is("$s2 $s3", '422 422', 'an unknown SKU, twice');
Test::More::is(main::asked('catalog/NOPE'), 1, 'asked once: the 404 is kept');
Test::More::is($after[0] - $before[0], 1, 'one catalog request in all');
--- request
GET /api/v1/cart/count
--- more_headers
X-User-Id: c2b
--- response_body: {"item_count":2}
--- no_error_log
[error]



=== TEST 3: a 404 is kept, a failure is not: three views ask the catalog once about a SKU no longer sold and three times about one whose catalog fails
GONE has no documents (404 from catalog and inventory), DOWN's catalog
answers 500; NZ is no destination for shipping (404, kept).
--- config eval
main::conf('c3', '60s')
--- init
main::mark();
main::product('X-1', '11.00');
main::product('DOWN', '1.00');
unlink "$main::Html/catalog/GONE", "$main::Html/inventory/GONE";
CartShop::cart('c3', [['X-1', 1, 1100, 'seller-x'], ['GONE', 1, 500, 'seller-x'],
                      ['DOWN', 1, 100, 'seller-x']], '#a', 'NZ|6011');
my @views;
push @views, join(' ', (main::view('c3'))[0]) for 1 .. 3;
Test::More::is("@views", '200 200 200', 'three views');
Test::More::is(main::asked('catalog/GONE'), 1, 'the catalog 404 is asked once');
Test::More::is(main::asked('inventory/GONE'), 1, 'the inventory 404 is asked once');
Test::More::is(main::asked('catalog/DOWN'), 3, 'the catalog failure is asked every time');
Test::More::is(main::asked('catalog/X-1'), 1, 'a good answer once');
Test::More::is(main::asked('shipping/X-1'), 1, 'not shipped there (404): asked once');
--- request
GET /api/v1/cart
--- more_headers
X-User-Id: c3
--- response_body_like: "sku_id":"GONE",.*"available":false,.*"sku_id":"DOWN",.*"price_verified":false,.*"shippable":false
--- error_log
upstream answered 500 for "DOWN"
cart cache hit: "cGONE"



=== TEST 4: past "valid", each entry is refreshed by one request; five views at once ask the catalog once per line
valid=1s: the five views, all at once, find every entry stale; one of
them refreshes each entry, the others serve it as it was. Then the
entries are fresh again.
--- config eval
main::conf('c4', "${main::Slow}s")
--- init
main::mark();
main::product("X-$_", "1$_.00") for 1 .. 5;
CartShop::cart('c4', [map { ["X-$_", 1, "1${_}00", 'seller-x'] } 1 .. 5]);
my @first = main::counts();
main::view('c4');
my @filled = main::counts();
Test::More::is($filled[0] - $first[0], 5, 'the first view fills the cache');
Time::HiRes::sleep(1.3 * $main::Slow);
my @got = CartClient::parallel(5, sub {
    my ($status, $body) = main::view('c4');
    return "$status " . main::prices($body);
});
my @after = main::counts();
my $want = '200 X-1=11.00 X-2=12.00 X-3=13.00 X-4=14.00 X-5=15.00';
Test::More::is(scalar(grep { $_ eq $want } @got), 5, 'five right views') or Test::More::diag("@got");
Test::More::is($after[0] - $filled[0], 5, 'each catalog entry refreshed once');
Test::More::is($after[1] - $filled[1], 5, 'each inventory entry refreshed once');
main::view('c4');
my @end = main::counts();
Test::More::is($end[0] - $after[0], 0, 'fresh again');
--- request
GET /api/v1/cart
--- more_headers
X-User-Id: c4
--- response_body_like: "current_price":11\.00
--- error_log
cart cache refresh: "cX-1"
--- no_error_log
[error]



=== TEST 5: stale-while-revalidate: while one view waits for a slow refresh, another view is served the stale entry at once
LAZY's catalog takes about two seconds. The first view fills the cache; past
valid=1s a view refreshes it (and waits); a view started 0.3 s later is
answered from the stale entry without waiting and without asking.
--- config eval
main::conf('c5', "${main::Slow}s")
--- init
main::mark();
main::doc('inventory/LAZY', '{"sku_id":"LAZY","available":10}');
CartShop::cart('c5', [['LAZY', 1, 300, 'seller-x']]);
main::view('c5');
Test::More::is(main::asked('catalog/LAZY'), 1, 'filled');
Time::HiRes::sleep(1.2 * $main::Slow);
my @got = CartClient::parallel(2, sub {
    my ($i) = @_;
    Time::HiRes::sleep($ENV{TEST_NGINX_USE_VALGRIND} ? 1 : 0.3) if $i == 2;
    my $t = Time::HiRes::time();
    my ($status, $body) = main::view('c5');
    return sprintf('%d %s %.2f', $status, main::prices($body), Time::HiRes::time() - $t);
});
my ($refresher, $stale) = map { [split / /] } @got;
Test::More::note("views: @got");
Test::More::is("$refresher->[0] $refresher->[1]", '200 LAZY=3.00', 'the refresher');
Test::More::cmp_ok($refresher->[2], '>', 1, 'waited for the slow catalog');
Test::More::is("$stale->[0] $stale->[1]", '200 LAZY=3.00', 'the other view');
Test::More::cmp_ok($stale->[2], '<', 0.8 * $main::Slow, 'served the stale entry at once');
Test::More::is(main::asked('catalog/LAZY'), 2, 'one refresh');
--- request
GET /api/v1/cart/count
--- more_headers
X-User-Id: c5
--- response_body: {"item_count":1}
--- error_log
cart cache stale: "cLAZY"



=== TEST 6: a price changed upstream: the view shows the cached one until "valid" has passed; checkout asks at once (409 price_increased) and refreshes the cache
valid=2s. P-1 was added at 10.00 and goes up to 12.00 while cached: the
view still says 10.00, checkout finds 12.00 and refuses; the cache now
holds 12.00. Then it falls to 11.00: once valid has passed, the view
sees it.
--- config eval
main::conf('c6', (2 * $main::Slow) . 's')
--- init
main::mark();
main::product('P-1', '10.00');
CartShop::cart('c6', [['P-1', 1, 1000, 'seller-x']], '#a', 'US|10001');
my ($s, $b) = main::view('c6');
Test::More::is(main::prices($b), 'P-1=10.00', 'cached at 10.00');
main::product('P-1', '12.00');
($s, $b) = main::view('c6');
Test::More::is(main::prices($b), 'P-1=10.00', 'the view: still the cached price');
my @before = main::counts();
my ($cs, $cb) = main::call('POST', '/api/v1/cart/checkout', 'c6');
my @after = main::counts();
Test::More::is($cs, 409, 'checkout refuses');
Test::More::like($cb, qr/"code":"price_increased".*"price_at_add":10\.00,"current_price":12\.00/,
                 'price_increased, against the catalog of now');
Test::More::is(join(' ', map { $after[$_] - $before[$_] } 0 .. 2), '1 1 1',
               'checkout asked catalog, inventory and shipping');
($s, $b) = main::view('c6');
my @then = main::counts();
Test::More::is(main::prices($b), 'P-1=12.00', 'checkout refreshed the cache');
Test::More::is($then[0] - $after[0], 0, 'the view asked nothing');
main::product('P-1', '11.00');
Time::HiRes::sleep(2.2 * $main::Slow);
--- request
GET /api/v1/cart
--- more_headers
X-User-Id: c6
--- response_body_like: "current_price":11\.00,"price_changed":true
--- no_error_log
[error]



=== TEST 7: checkout always reaches the upstreams, and orders at their prices, whatever is cached
--- config eval
main::conf('c7', '60s')
--- init
main::mark();
main::product("X-$_", "1$_.00") for 1 .. 3;
CartShop::cart('c7', [map { ["X-$_", 1, "1${_}00", 'seller-x'] } 1 .. 3], '#a', 'US|10001');
main::view('c7') for 1 .. 2;
my @before = main::counts();
my ($cs, $cb) = main::call('POST', '/api/v1/cart/checkout', 'c7');
my @after = main::counts();
Test::More::is($cs, 200, 'ordered');
Test::More::like($cb, qr/"total":42\.00/, '36.00 + 3 x 2.00 shipping');
Test::More::is(join(' ', map { $after[$_] - $before[$_] } 0 .. 2), '3 3 3',
               'three lines: three lookups of each upstream');
--- request
GET /api/v1/cart/count
--- more_headers
X-User-Id: c7
--- response_body: {"item_count":0}
--- no_error_log
[error]



=== TEST 8: shipping is cached by SKU, country and postal code
--- config eval
main::conf('c8', '60s')
--- init
main::mark();
main::product('X-1', '11.00');
CartShop::cart('c8', [['X-1', 1, 1100, 'seller-x']], '#a', 'US|10001');
main::view('c8') for 1 .. 2;
Test::More::is(main::asked('shipping/X-1'), 1, 'US 10001: once');
redis_cmd('HSET', 'cart:{user-c8}', '#a', 'FR|75001');
main::view('c8') for 1 .. 2;
Test::More::is(main::asked('shipping/X-1?country=FR'), 1, 'FR 75001: once more');
redis_cmd('HSET', 'cart:{user-c8}', '#a', 'US|10002');
main::view('c8');
Test::More::is(main::asked('shipping/X-1'), 3, 'US 10002: another postal code');
redis_cmd('HSET', 'cart:{user-c8}', '#a', 'US|10001');
main::view('c8');
Test::More::is(main::asked('shipping/X-1'), 3, 'US 10001 again: cached');
--- request
GET /api/v1/cart
--- more_headers
X-User-Id: c8
--- response_body_like: "shipping_address":\{"country":"US","postal_code":"10001"\}.*"shipping_total":2\.00
--- no_error_log
[error]



=== TEST 9: batch upstreams: one batch for the first view, nothing for the next, and then a batch of the missing SKU alone
--- config eval
main::conf('c9', '60s')
--- init
main::mark();
CartShop::cart('c9', [['A-1', 1, 2999, 'seller-a'], ['A-2', 1, 500, 'seller-a'],
                      ['B-2', 1, 1250, 'seller-b']]);
main::view('c9', '/batch') for 1 .. 3;
my @b = grep { m{^GET /_batch/catalog} } main::shop();
Test::More::is(scalar(@b), 1, 'one batch for three views');
Test::More::like($b[0], qr/skus=A-1,A-2,B-2 /, 'of the three SKUs');
redis_cmd('HSET', 'cart:{user-c9}', 'C-1', '1|10000|seller-c|t6kdc0');
my ($s, $body) = main::view('c9', '/batch');
@b = grep { m{^GET /_batch/catalog} } main::shop();
Test::More::is(scalar(@b), 2, 'a line more: one batch more');
Test::More::like($b[1], qr/skus=C-1 /, 'of that SKU alone');
Test::More::is(main::prices($body), 'A-1=29.99 A-2=5.00 B-2=12.50 C-1=100.00', 'the four prices');
--- request
GET /batch
--- more_headers
X-User-Id: c9
--- response_body_like: "sku_id":"C-1",.*"current_price":100\.00
--- no_error_log
[error]
--- error_log
cart cache hit: "cC-1"



=== TEST 10: the shared view and its copy read the cache too
--- config eval
main::conf('c10', '60s')
--- init
main::mark();
main::product("X-$_", "1$_.00") for 1 .. 2;
CartShop::cart('c10', [['X-1', 1, 1100, 'seller-x'], ['X-2', 2, 1200, 'seller-x']]);
redis_cmd('DEL', 'cart:{user-c10b}', 'cart_count:{user-c10b}');
main::view('c10');
my ($s, $b) = main::call('POST', '/api/v1/cart/share', 'c10');
Test::More::is($s, 201, 'shared');
my ($token) = $b =~ m{"token":"([^"]+)"};
my @before = main::counts();
my ($vs, $vb) = main::call('GET', "/api/v1/cart/shared/$token", 'c10b');
Test::More::is($vs, 200, 'the shared view');
Test::More::like($vb, qr/"sku_id":"X-2","quantity":2,"price":12\.00/, 'at the cached price');
my ($ps) = main::call('POST', "/api/v1/cart/shared/$token/copy", 'c10b');
Test::More::is($ps, 200, 'copied');
my @after = main::counts();
Test::More::is($after[0] - $before[0], 0, 'no catalog request');
--- request
GET /api/v1/cart/count
--- more_headers
X-User-Id: c10b
--- response_body: {"item_count":3}
--- no_error_log
[error]



=== TEST 11: two workers share one zone: views served by both ask the catalog once per line
--- two_workers
--- config eval
main::conf('c11', '60s', "listen 127.0.0.1:" . ($ENV{TEST_NGINX_PORT} + 2) . " reuseport;")
--- init
main::mark();
main::product("X-$_", "1$_.00") for 1 .. 5;
CartShop::cart('c11', [map { ["X-$_", 1, "1${_}00", 'seller-x'] } 1 .. 5]);
my $port = $ENV{TEST_NGINX_PORT} + 2;
my (%pids, @bad);
for my $i (1 .. 40) {
    my ($status, $body, $pid) = main::call('GET', '/api/v1/cart', 'c11', undef, $port);
    push @bad, $status unless $status == 200 && main::prices($body) =~ /X-5=15\.00/;
    $pids{$pid}++;
    last if keys %pids > 1 && $i >= 10;
}
Time::HiRes::sleep(0.3);
Test::More::ok(keys %pids > 1 || $ENV{TEST_NGINX_USE_VALGRIND}, 'both workers served views');
Test::More::is("@bad", '', 'every view right');
Test::More::is(main::asked('catalog'), 5, 'five catalog lookups in all');
Test::More::is(main::asked('inventory'), 5, 'five inventory lookups in all');
--- request
GET /api/v1/cart
--- more_headers
X-User-Id: c11
--- response_body_like: "current_price":15\.00
--- no_error_log
[error]



=== TEST 12: a tiny zone: 40 lines of 1 KB documents do not fit; the oldest entries make room, every answer is right, nothing is logged as an error
32 KB holds a dozen such entries. Two views of 40 lines, then a two-line
cart that fits: its second view asks nothing.
--- config eval
main::conf('tiny12', '60s')
--- init
main::mark();
my $name = 'n' x 1000;
main::product("T-$_", "$_.00", $name) for 1 .. 40;
CartShop::cart('c12', [map { ["T-$_", 1, "${_}00", 'seller-x'] } 1 .. 40]);
my $want = join(' ', map { "T-$_=$_.00" } 1 .. 40);
for my $i (1 .. 2) {
    my ($s, $b) = main::view('c12');
    Test::More::is("$s " . main::prices($b), "200 $want", "view $i: all 40 priced");
    Test::More::unlike($b, qr/price_verified/, "view $i: nothing unverified");
}
CartShop::cart('c12b', [['T-1', 1, 100, 'seller-x'], ['T-2', 1, 200, 'seller-x']]);
main::view('c12b');
my @before = main::counts();
my ($s, $b) = main::view('c12b');
my @after = main::counts();
Test::More::is(main::prices($b), 'T-1=1.00 T-2=2.00', 'the small cart');
Test::More::is($after[0] - $before[0], 0, 'its second view from the cache');
--- request
GET /api/v1/cart/count
--- more_headers
X-User-Id: c12
--- response_body: {"item_count":40}
--- error_log
cart cache evict: "cT-
--- no_error_log
[error]
[crit]
[alert]



=== TEST 13: a refresher that dies blocks nobody: its entry is served stale, and past cart_lookup_timeout another request refreshes it
The worker is killed while it refreshes LAZY (about two seconds); the
master starts another. A view then finds the entry being updated and is
served at once; once cart_lookup_timeout (3s) has passed since the
refresh began, the next view takes it over.
--- master
--- config eval
main::conf('c13', '1s', 'cart_lookup_timeout 3s;')
--- init
main::mark();
if ($ENV{TEST_NGINX_USE_VALGRIND}) {
    Test::More::pass('no worker to kill under valgrind');
} else {
    main::doc('inventory/LAZY', '{"sku_id":"LAZY","available":10}');
    CartShop::cart('c13', [['LAZY', 1, 300, 'seller-x']]);
    my (undef, undef, $pid) = main::call('GET', '/api/v1/cart', 'c13');
    Test::More::is(main::asked('catalog/LAZY'), 1, 'filled');
    Time::HiRes::sleep(1.2);
    my $t1 = Time::HiRes::time();
    my $child = fork // die "fork: $!";
    if ($child == 0) {
        eval { main::call('GET', '/api/v1/cart', 'c13') };
        POSIX::_exit(0);
    }
    Time::HiRes::sleep(0.5);
    kill 'KILL', $pid;
    waitpid $child, 0;
    Time::HiRes::sleep(0.3);
    my $t = Time::HiRes::time();
    my ($status, $body, $new) = main::call('GET', '/api/v1/cart', 'c13');
    Test::More::isnt($new, $pid, 'another worker');
    Test::More::is("$status " . main::prices($body), '200 LAZY=3.00', 'served');
    Test::More::cmp_ok(Time::HiRes::time() - $t, '<', 0.8, 'at once, from the stale entry');
    Test::More::is(main::asked('catalog/LAZY'), 1, 'not asked: the refresh is still "under way"');
    Time::HiRes::sleep($t1 + 3.3 - Time::HiRes::time());
    $t = Time::HiRes::time();
    ($status, $body) = main::call('GET', '/api/v1/cart', 'c13');
    Test::More::is("$status " . main::prices($body), '200 LAZY=3.00', 'refreshed');
    Test::More::cmp_ok(Time::HiRes::time() - $t, '>', 1, 'by this view, which waited for it');
    Test::More::is(main::asked('catalog/LAZY'), 2, 'asked again');
}
--- request
GET /api/v1/cart/count
--- more_headers
X-User-Id: c13
--- response_body_like: ^\{"item_count":\d\}$
--- error_log eval
# the worker killed on purpose
$ENV{TEST_NGINX_USE_VALGRIND} ? 'cart' : '[alert]'
