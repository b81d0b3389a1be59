package CartConf;

# The server configuration most test blocks share: the cart API at
# /api/v1/cart with the user id from X-User-Id, a second API location
# without a catalog, and a fake catalog served by nginx itself, one
# internal location per SKU (prices 29.99, 5.00, 0.99, and SKUs whose
# catalog answers garbage, 500 or nothing), and /wait, which takes about
# two seconds.
#
# A block that has no "--- config" gets this one.

use strict;
use warnings;

our $Catalog = <<'_EOC_';
    location = /_catalog/SKU-1 {
        internal;
        default_type application/json;
        return 200 '{"sku_id":"SKU-1","price":29.99,"name":"Wireless Mouse","seller_id":"seller-1","image":"https://cdn.example.com/sku-1.jpg"}';
    }
    location = /_catalog/SKU-2 {
        internal;
        default_type application/json;
        return 200 '{"sku_id":"SKU-2","price":5,"name":"Mouse Pad","seller_id":"seller-2"}';
    }
    location = /_catalog/SKU-3 {
        internal;
        default_type application/json;
        return 200 '{"sku_id":"SKU-3","price":0.99,"name":"Sticker","seller_id":"seller-1"}';
    }
    location = /_catalog/SKU-GARBAGE {
        internal;
        default_type application/json;
        return 200 'not json at all';
    }
    location = /_catalog/SKU-NOPRICE {
        internal;
        default_type application/json;
        return 200 '{"sku_id":"SKU-NOPRICE","price":"cheap"}';
    }
    location = /_catalog/SKU-DOWN {
        internal;
        return 500;
    }
    location /_catalog/ {
        internal;
        return 404;
    }
    # about two seconds to answer: lets a block wait for something in the
    # background while its nginx keeps running
    location = /wait {
        limit_rate 1024;
        limit_rate_after 0;
        return 200 '%s';
    }
_EOC_
$Catalog = sprintf($Catalog, '.' x 2048);

our $Config = <<'_EOC_' . $Catalog;
    location /api/v1/cart {
        cart_api;
        cart_user $http_x_user_id;
        cart_catalog /_catalog/$cart_sku;
    }
    location /nocatalog {
        cart_api;
        cart_user $http_x_user_id;
    }
_EOC_

sub default_config {
    my $block = shift;
    if (!defined $block->config) {
        $block->set_value('config', $Config);
    }
}


# nginx -t on a small config of its own in a fresh directory $dir (under
# TEST_NGINX_SERVROOT): $http in the http block, $loc in "location /";
# "%DIR%" in either is $dir. Returns (exit status, output).
sub nginx_t {
    my ($http, $loc) = @_;
    my $dir = ($ENV{TEST_NGINX_SERVROOT} || 't/servroot') . "-t-$$-"
              . int(rand 1e9);
    mkdir $dir; mkdir "$dir/logs"; mkdir "$dir/conf";
    s/%DIR%/$dir/g for $http, $loc;
    open my $fh, '>', "$dir/conf/nginx.conf" or die "$dir: $!";
    print {$fh} "load_module $ENV{TEST_NGINX_CART_SO};\n"
        . "error_log $dir/logs/error.log;\npid $dir/logs/nginx.pid;\n"
        . "events {}\nhttp {\n cart_redis redis://127.0.0.1:1;\n $http\n"
        . " server { listen 127.0.0.1:1; location / { cart_api; $loc } }\n}\n";
    close $fh;
    my $nginx = join ' ', CartTest::nginx_command();
    my $out = `$nginx -t -p $dir -c conf/nginx.conf 2>&1`;
    return ($? >> 8, $out, $dir);
}

1;
