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

1;
