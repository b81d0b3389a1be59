package CartShop;

# A fake shop for the pricing, checkout and promotions tests (t/2xx): the
# cart API with catalog, inventory and shipping, one exact "location =" per
# SKU and upstream; the same data through batch upstreams ($cart_skus, one
# answer keyed by SKU); and the promotions admin API. A block without
# "--- config" gets $Config; the maps the shipping upstream uses are added
# to every block's http_config.
#
# As in production, the shop is another server: prepare() moves the part of
# the config between "# shop {" and "# shop }" into a server block of its
# own on TEST_NGINX_PORT + 7, which the cart's upstream locations reach
# through a proxied upstream with keepalive. The shop logs what it receives
# to logs/shop.log, one line per request (see $ShopLog and shop_log()).
#
#   SKU         price   seller    stock  shipping (per unit, days)
#   A-1         29.99   seller-a  100    4.99, 2-5 (19.99, 6-12 outside US)
#   A-2          5.00   seller-a    3    1.50, 1-3
#   B-1          0.99   seller-b    0    0.00, 3-7
#   B-2         12.50   seller-b   50    2.00, 1-2
#   C-1        100.00   seller-c   10    9.99, 5-10; not shipped to NZ
#   C-2         19.99   seller-c    5    3.33, 2-4
#   INV-DOWN     7.00   seller-c  (500)  1.00, 1-1
#   SHIP-DOWN    8.00   seller-c   10    (500)
#   CAT-DOWN    (500)             10     1.00, 1-1
#   CAT-BAD     (not JSON)        10     1.00, 1-1
#   SLOW        (times out)       10     1.00, 1-1
#   GONE        (404)             (404)  (404)
#   SLOWINV      3.00   seller-c   10    1.00, 1-1; inventory answers in ~2 s
#   BIG         (3 KB document; 1 KB buffer)  10  1.00, 1-1
#
# Postal code 99999 adds 10 days to every max_days (the upstream sees
# $cart_postal_code).

use strict;
use warnings;

use CartClient;

our %Sku = (
    'A-1' => ['29.99', 'Wireless Mouse', 'seller-a', 100, '4.99', 2, 5],
    'A-2' => ['5.00', 'Mouse Pad', 'seller-a', 3, '1.50', 1, 3],
    'B-1' => ['0.99', 'Sticker', 'seller-b', 0, '0.00', 3, 7],
    'B-2' => ['12.50', 'Cable', 'seller-b', 50, '2.00', 1, 2],
    'C-1' => ['100.00', 'Keyboard', 'seller-c', 10, '9.99', 5, 10],
    'C-2' => ['19.99', 'Headset', 'seller-c', 5, '3.33', 2, 4],
    'INV-DOWN' => ['7.00', 'Lamp', 'seller-c', undef, '1.00', 1, 1],
    'SHIP-DOWN' => ['8.00', 'Vase', 'seller-c', 10, undef],
);

sub catalog_doc {
    my ($sku) = @_;
    my ($price, $name, $seller) = @{ $Sku{$sku} };
    my $image = $sku eq 'A-1' ? ',"image":"https://cdn.example.com/a-1.jpg"' : '';
    return qq({"sku_id":"$sku","price":$price,"name":"$name","seller_id":"$seller"$image});
}

sub inventory_doc {
    my ($sku) = @_;
    return qq({"sku_id":"$sku","available":$Sku{$sku}[3]});
}

sub shipping_doc {
    my ($sku) = @_;
    (my $v = $sku) =~ s/-/_/g;
    return qq({"sku_id":"$sku","cost":\$ship_cost_$v,"min_days":\$ship_min_$v,)
         . qq("max_days":\$ship_max_$v});
}

sub loc {
    my ($path, $body, $status) = @_;
    $status //= 200;
    return <<"_EOC_";
    location = $path {
        internal;
        default_type application/json;
        return $status '$body';
    }
_EOC_
}

# per-SKU upstreams
our $Upstreams = "    # shop {\n";
for my $sku (sort keys %Sku) {
    $Upstreams .= loc("/_catalog/$sku", catalog_doc($sku));
    $Upstreams .= defined $Sku{$sku}[3]
        ? loc("/_inventory/$sku", inventory_doc($sku))
        : loc("/_inventory/$sku", '', 500);
    next if $sku eq 'C-1';    # below
    $Upstreams .= defined $Sku{$sku}[4]
        ? loc("/_shipping/$sku", shipping_doc($sku))
        : loc("/_shipping/$sku", '', 500);
}
$Upstreams .= loc('/_catalog/SLOWINV',
    '{"sku_id":"SLOWINV","price":3.00,"name":"Clock","seller_id":"seller-c"}');
for my $sku (qw(CAT-DOWN CAT-BAD SLOW SLOWINV)) {
    $Upstreams .= loc("/_inventory/$sku", qq({"sku_id":"$sku","available":10}))
        unless $sku eq 'SLOWINV';
    $Upstreams .= loc("/_shipping/$sku",
                      qq({"sku_id":"$sku","cost":1.00,"min_days":1,"max_days":1}));
}
# BIG: a catalog document over the cart's subrequest_output_buffer_size
$Upstreams .= loc('/_catalog/BIG',
    '{"sku_id":"BIG","price":1.00,"name":"Big","seller_id":"seller-c",'
    . '"description":"' . ('x' x 3000) . '"}');
$Upstreams .= loc("/_inventory/BIG", '{"sku_id":"BIG","available":10}');
$Upstreams .= loc("/_shipping/BIG",
                  '{"sku_id":"BIG","cost":1.00,"min_days":1,"max_days":1}');
$Upstreams .= loc('/_catalog/CAT-DOWN', '', 500);
$Upstreams .= loc('/_catalog/CAT-BAD', 'not json');
$Upstreams .= <<'_EOC_';
    # C-1 is not shipped to New Zealand
    location = /_shipping/C-1 {
        internal;
        default_type application/json;
        if ($arg_country = NZ) {
            return 404;
        }
        return 200 '{"sku_id":"C-1","cost":$ship_cost_C_1,"min_days":$ship_min_C_1,"max_days":$ship_max_C_1}';
    }
    # a catalog that does not answer in time (the cart's proxy_read_timeout)
    location = /_catalog/SLOW {
        limit_rate 1;
        limit_rate_after 0;
        return 200 '{"sku_id":"SLOW","price":1.00,"padding":"................"}';
    }
    # an inventory that takes about two seconds (2 KB at 1 KB/s)
    location = /_inventory/SLOWINV {
        limit_rate 1024;
        limit_rate_after 0;
        default_type application/json;
        return 200 '{"sku_id":"SLOWINV","available":10,"padding":"%s"}';
    }
    location /_catalog/ {
        internal;
        return 404;
    }
    location /_inventory/ {
        internal;
        return 404;
    }
    location /_shipping/ {
        internal;
        return 404;
    }
_EOC_
$Upstreams = sprintf($Upstreams =~ s/%(?!s)/%%/gr, '.' x 2048);

# batch upstreams: one object keyed by SKU, whatever was asked (an SKU
# whose per-SKU upstream fails is left out)
sub batch {
    my ($doc, $col) = @_;
    return '{' . join(',', map { qq("$_":) . $doc->($_) }
                           grep { !defined $col || defined $Sku{$_}[$col] }
                           sort keys %Sku) . '}';
}

our $Batch = loc('/_batch/catalog', batch(\&catalog_doc))
           . loc('/_batch/inventory', batch(\&inventory_doc, 3))
           . loc('/_batch/shipping', batch(\&shipping_doc, 4))
           . "    # shop }\n";

# the cart's side of the shop: proxied, keepalive, as conf/nginx.conf says
our $Proxy = <<'_EOC_';
    location /_catalog/ {
        internal;
        proxy_pass http://cart_shop;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
    }
    location = /_catalog/BIG {
        internal;
        proxy_pass http://cart_shop;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        subrequest_output_buffer_size 1k;
    }
    location = /_catalog/SLOW {
        internal;
        proxy_pass http://cart_shop;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_read_timeout 300ms;
    }
    location /_inventory/ {
        internal;
        proxy_pass http://cart_shop;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
    }
    location /_shipping/ {
        internal;
        proxy_pass http://cart_shop;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
    }
    location /_batch/ {
        internal;
        proxy_pass http://cart_shop;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
    }
_EOC_

# what the shop logs of each request it gets
our $ShopLog = "log_format cart_shop '\$request_method \$request_uri"
    . " cl=\$http_content_length te=\$http_transfer_encoding"
    . " cookie=\$http_cookie auth=\$http_authorization';\n";

our $Api = <<'_EOC_';
    location /api/v1/cart {
        cart_api;
        cart_user $http_x_user_id;
        cart_catalog /_catalog/$cart_sku;
        cart_inventory /_inventory/$cart_sku;
        cart_shipping /_shipping/$cart_sku?country=$cart_country&postal=$cart_postal_code;
    }
    location /batch {
        cart_api;
        cart_user $http_x_user_id;
        cart_catalog /_batch/catalog?skus=$cart_skus;
        cart_inventory /_batch/inventory?skus=$cart_skus;
        cart_shipping /_batch/shipping?skus=$cart_skus&country=$cart_country&postal=$cart_postal_code;
    }
    location /admin/cart {
        cart_admin;
    }
    location /plain {
        cart_api;
        cart_user $http_x_user_id;
    }
_EOC_

our $Config = $Api . $Upstreams . $Batch;

# what the shipping upstream charges depends on the destination
our $HttpConfig = "map \$arg_country \$ship_abroad { US 0; default 1; }\n"
    . "map \$arg_postal \$ship_remote { 99999 1; default 0; }\n";
for my $sku (grep { defined $Sku{$_}[4] } sort keys %Sku) {
    my (undef, undef, undef, undef, $cost, $min, $max) = @{ $Sku{$sku} };
    (my $v = $sku) =~ s/-/_/g;
    my ($acost, $amin, $amax) = $sku eq 'A-1' ? ('19.99', 6, 12) : ($cost, $min, $max);
    $HttpConfig .= "map \$ship_abroad \$ship_cost_$v { 1 $acost; default $cost; }\n"
        . "map \$ship_abroad \$ship_min_$v { 1 $amin; default $min; }\n"
        . "map \$ship_abroad\$ship_remote \$ship_max_$v { 01 " . ($max + 10)
        . "; 11 " . ($amax + 10) . "; 10 $amax; default $max; }\n";
}

sub shop_port { $ENV{TEST_NGINX_PORT} + 7 }

sub prepare {
    my ($block) = @_;
    my $config = $block->config // $Config;
    my $http = ($block->http_config // '') . $HttpConfig;

    if ($config =~ s/^\s*# shop \{\n(.*?)^\s*# shop \}\n/$Proxy/ms) {
        (my $shop = $1) =~ s/^\s*internal;\n//mg;
        my $port = shop_port();
        $http .= $ShopLog
            . "upstream cart_shop {\n    server 127.0.0.1:$port;\n"
            . "    keepalive 8;\n}\n"
            . "server {\n    listen 127.0.0.1:$port;\n"
            . "    access_log logs/shop.log cart_shop;\n$shop}\n";
    }

    $block->set_value('config', $config);
    $block->set_value('http_config', $http);
}

# The lines logs/shop.log holds so far (see $ShopLog).
sub shop_log {
    my $file = "$ENV{TEST_NGINX_SERVROOT}/logs/shop.log";
    open(my $fh, '<', $file) or return ();
    my @lines = <$fh>;
    chomp @lines;
    return @lines;
}

# Promotions: none, and ids from 1 again.
sub reset_promotions {
    my @keys = grep { length } split /\n/,
        CartTest::redis_cmd('KEYS', 'promo*');
    CartTest::redis_cmd('DEL', @keys) if @keys;
}

# Creates a promotion through the admin API; returns its id.
sub promotion {
    my ($json) = @_;
    my ($status, $body) = CartClient::request('POST', '/admin/cart/promotions',
                                              undef, $json);
    die "creating $json: $status $body\n" unless $status == 201;
    my ($id) = $body =~ /"id":"(\d+)"/;
    return $id;
}

# A cart of user $user with these lines: [sku, qty, price_at_add or '',
# seller]; version 1; plus meta fields given as '#c' => ..., '#a' => ...
sub cart {
    my ($user, $lines, %meta) = @_;
    my @fields;
    my $count = 0;
    for my $l (@$lines) {
        my ($sku, $qty, $price, $seller) = @$l;
        push @fields, $sku, join('|', $qty, $price // '', $seller // '', 1764547200);
        $count += $qty;
    }
    CartTest::redis_cmd('DEL', "cart:{user-$user}", "cart_count:{user-$user}");
    CartTest::redis_cmd('HSET', "cart:{user-$user}", @fields, '#v', 1, %meta);
    CartTest::redis_cmd('SET', "cart_count:{user-$user}", $count);
}

# 'YYYY-MM-DD', $days after today (UTC)
sub day {
    my ($days) = @_;
    my @t = gmtime(time - time % 86400 + $days * 86400);
    return sprintf('%04d-%02d-%02d', $t[5] + 1900, $t[4] + 1, $t[3]);
}

1;
