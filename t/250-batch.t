# The batch form: upstream URIs with $cart_skus get one subrequest per
# batch of SKUs (at most 50) and an answer keyed by SKU. It must price a
# cart exactly as the per-SKU form does.

use lib 't/lib';
use CartTest;
use CartShop;
use CartClient;

plan 'no_plan';
no_shuffle();
add_block_preprocessor(\&CartShop::prepare);

our $Extra = <<'_EOC_';
    # answers only when asked for exactly these SKUs, in cart order
    location /exact {
        cart_api;
        cart_user $http_x_user_id;
        cart_catalog /_exact?skus=$cart_skus;
    }
    location = /_exact {
        internal;
        if ($arg_skus != "A-1,A-2,B-2") {
            return 500;
        }
        return 200 '{"A-1":{"price":1.00},"A-2":{"price":2.00},"B-2":{"price":3.00}}';
    }
    # a batch answer with holes: A-2 null, B-2 not an object, C-1 missing
    location /holes {
        cart_api;
        cart_user $http_x_user_id;
        cart_catalog /_holes?skus=$cart_skus;
    }
    location = /_holes {
        internal;
        return 200 '{"A-1":{"sku_id":"A-1","price":29.99,"name":"Wireless Mouse","seller_id":"seller-a"},"A-2":null,"B-2":"cheap"}';
    }
    location /b500 {
        cart_api;
        cart_user $http_x_user_id;
        cart_catalog /_b500?skus=$cart_skus;
    }
    location = /_b500 {
        internal;
        return 500;
    }
    location /bgarbage {
        cart_api;
        cart_user $http_x_user_id;
        cart_catalog /_bgarbage?skus=$cart_skus;
    }
    location = /_bgarbage {
        internal;
        return 200 '[1,2,3]';
    }
    # 120 SKUs
    location /many {
        cart_api;
        cart_user $http_x_user_id;
        cart_catalog /_many?skus=$cart_skus;
    }
    location = /_many {
        internal;
        return 200 '%s';
    }
_EOC_
$Extra = sprintf($Extra, '{' . join(',', map { sprintf('"N-%03d":{"price":0.%02d}', $_, $_ % 100) } 1 .. 120) . '}');

# a view with its cart id taken out, to compare two users' views
sub view_of {
    my ($path, $user, $method, $body) = @_;
    my ($status, $view) = CartClient::request($method // 'GET', $path, $user, $body);
    die "$path for $user: $status $view\n" unless $status == 200;
    $view =~ s/"cart_id":"cart:user-[^"]+"//;
    $view =~ s/"checkout_id":"\w+"//;
    return $view;
}

run_tests();

__DATA__

=== TEST 1: the same cart priced per SKU and in batches: the same view, byte for byte
Prices that changed, stock short and out, shipping, an automatic bundle
and a coupon.
--- init
CartShop::reset_promotions();
CartShop::promotion('{"type":"bundle","skus":["A-1","A-2","B-2"],"bundle_quantity":3}');
CartShop::promotion('{"code":"SAVE10","type":"percent","value":10}');
my @lines = (['A-1', 2, 2999, 'seller-a'], ['A-2', 4, 600, 'seller-a'], ['B-1', 1, 99, 'seller-b'],
             ['B-2', 1, 1250, 'seller-b'], ['C-1', 1, 9000, 'seller-c'], ['GONE', 1, 100, 'seller-x']);
CartShop::cart($_, \@lines, '#a', 'DE|10115', '#c', 'SAVE10') for qw(b1a b1b);
my $per_sku = main::view_of('/api/v1/cart', 'b1a');
my $batch = main::view_of('/batch', 'b1b');
die "views differ:\n$per_sku\n$batch\n" unless $per_sku eq $batch;
die "view lacks what it is about: $batch\n"
    unless $batch =~ /"insufficient_stock".*"out_of_stock".*"price_increased".*"unavailable"/
        && $batch =~ /"promotions_applied":\[\{"id":"1","type":"bundle",[^]]+"code":"SAVE10"/
        && $batch =~ /"cost":39.98,"min_days":6,"max_days":12/;
--- request
GET /batch
--- more_headers
X-User-Id: b1b
--- response_body_like: "estimated_total":\d+\.\d\d\}$
--- error_log eval
qr/cart wave: [34] pending/



=== TEST 2: the same checkout per SKU and in batches
--- init
CartShop::reset_promotions();
CartShop::promotion('{"code":"SAVE10","type":"percent","value":10}');
my @lines = (['A-1', 2, 2999, 'seller-a'], ['A-2', 3, 600, 'seller-a'], ['B-2', 1, 1250, 'seller-b'],
             ['C-1', 1, 10000, 'seller-c']);
CartShop::cart($_, \@lines, '#a', 'US|94107', '#c', 'SAVE10') for qw(b2a b2b);
my $per_sku = main::view_of('/api/v1/cart/checkout', 'b2a', 'POST');
my $batch = main::view_of('/batch/checkout', 'b2b', 'POST');
die "checkouts differ:\n$per_sku\n$batch\n" unless $per_sku eq $batch;
die "checkout lacks its total: $batch\n" unless $batch =~ /"total":195.20,"version":2\}$/;
--- request
GET /batch/count
--- more_headers
X-User-Id: b2b
--- response_body chomp
{"item_count":0}



=== TEST 3: a batch upstream is asked for the cart's SKUs, comma-joined; an add prices through it too
--- config eval
$CartShop::Config . $main::Extra
--- init
CartShop::cart('b3', [['A-1', 1, 100, 'seller-a'], ['A-2', 1, 200, 'seller-a'], ['B-2', 1, 300, 'seller-b']]);
redis_cmd('DEL', 'cart:{user-b3b}', 'cart_count:{user-b3b}');
--- request eval
["GET /exact", "POST /batch/items\n{\"sku_id\":\"C-2\",\"quantity\":2}"]
--- more_headers eval
["X-User-Id: b3", "X-User-Id: b3b\nContent-Type: application/json"]
--- response_body_like eval
['"warnings":\[\],.*"estimated_total":6.00\}$',
 '^\{"cart_id":"cart:user-b3b","item_count":2,"item":\{"sku_id":"C-2","quantity":2,"price":19.99,"seller_id":"seller-c"\},"version":1\}$']



=== TEST 4: holes in a batch answer: null or missing is no longer sold, not an object is unverified
--- config eval
$CartShop::Config . $main::Extra
--- init
CartShop::cart('b4', [['A-1', 1, 2999, 'seller-a'], ['A-2', 1, 500, 'seller-a'],
                      ['B-2', 1, 1250, 'seller-b'], ['C-1', 1, 10000, 'seller-c']]);
--- request
GET /holes
--- more_headers
X-User-Id: b4
--- response_body_like: "warnings":\[\{"code":"unavailable","sku_id":"A-2","message":"[^"]+"\},\{"code":"price_unverified","sku_id":"B-2","message":"[^"]+"\},\{"code":"unavailable","sku_id":"C-1","message":"[^"]+"\}\],.*"estimated_total":42.49\}$
--- error_log
batch upstream answer for "B-2" is not a JSON object



=== TEST 5: a batch upstream that fails or answers no object: every line unverified, the view goes on, checkout refuses
--- config eval
$CartShop::Config . $main::Extra
--- init
CartShop::cart('b5', [['A-1', 1, 2999, 'seller-a'], ['A-2', 1, 500, 'seller-a']]);
--- request eval
["GET /b500", "GET /bgarbage", "POST /b500/checkout", "GET /b500/count"]
--- more_headers
X-User-Id: b5
--- error_code eval
[200, 200, 503, 200]
--- response_body_like eval
['"warnings":\[\{"code":"price_unverified","sku_id":"A-1",[^}]+\},\{"code":"price_unverified","sku_id":"A-2",[^}]+\}\],.*"estimated_total":34.99\}$',
 '"warnings":\[\{"code":"price_unverified","sku_id":"A-1",[^}]+\},\{"code":"price_unverified","sku_id":"A-2",[^}]+\}\],',
 '"code":"catalog_unavailable"', '^\{"item_count":2\}$']



=== TEST 6: 120 lines in batches of at most 50: three subrequests (and the promotions), all lines priced
--- config eval
$CartShop::Config . $main::Extra
--- http_config
cart_max_lines 200;
--- init
CartShop::cart('b6', [map { [sprintf('N-%03d', $_), 1, 1, 's-n'] } 1 .. 120]);
--- request
GET /many
--- more_headers
X-User-Id: b6
--- response_body_like: "item_count":120,"subtotal":1.20,"currency":"USD","version":1,"warnings":\[(\{"code":"price_(increased|decreased)"[^}]+\},?){118}\],.*"price_adjustment":50.40,.*"estimated_total":51.60\}$
--- error_log
cart wave: 4 pending
