# Every way a request can be wrong: each answers the contract's JSON error
# with the right status, and the cart is unchanged afterwards (checked by
# reading it back, view and counter, in the same block).

use lib 't/lib';
use CartTest;
use CartConf;
use CartClient;

plan 'no_plan';
no_shuffle();

# A block with "--- unchanged" is run against a seeded cart of its own user
# and followed by two reads that must show that cart untouched.
add_block_preprocessor(sub {
    my $block = shift;
    CartConf::default_config($block);
    return unless defined $block->unchanged;

    my $user = $block->user // 'e' . $block->seq_num;
    $block->set_value('init', "CartClient::seed('$user');");
    $block->set_value('request', [$block->request, 'GET /nocatalog',
                                  'GET /nocatalog/count']);
    $block->set_value('more_headers', [
        join("\n", grep { length } ($block->user ? () : ("X-User-Id: $user")),
             $block->more_headers // 'Content-Type: application/json'),
        "X-User-Id: $user", "X-User-Id: $user"]);
    $block->set_value('error_code', [$block->error_code, 200, 200]);
    if (defined $block->response_headers) {
        $block->set_value('response_headers',
                          [$block->response_headers, '', '']);
    }
    $block->set_value('response_body_like', [$block->response_body_like,
        '^' . quotemeta(sprintf($CartClient::SeededView, $user)) . '$',
        '^\{"item_count":2\}$']);
});

run_tests();

__DATA__

=== TEST 1: quantity 0 on add
--- request
POST /api/v1/cart/items
{"sku_id":"SKU-1","quantity":0}
--- unchanged
--- error_code: 422
--- response_body_like: ^\{"error":\{"code":"quantity_out_of_range","message":"[^"]+"\}\}$



=== TEST 2: negative quantity
--- request
POST /api/v1/cart/items
{"sku_id":"SKU-1","quantity":-3}
--- unchanged
--- error_code: 422
--- response_body_like: "code":"quantity_out_of_range"



=== TEST 3: quantity over cart_max_quantity
--- request
POST /api/v1/cart/items
{"sku_id":"SKU-2","quantity":100}
--- unchanged
--- error_code: 422
--- response_body_like: "code":"quantity_out_of_range"



=== TEST 4: quantity beyond 64 bits
--- request
POST /api/v1/cart/items
{"sku_id":"SKU-1","quantity":123456789012345678901234567890}
--- unchanged
--- error_code: 422
--- response_body_like: "code":"quantity_out_of_range"



=== TEST 5: quantity as a string
--- request
POST /api/v1/cart/items
{"sku_id":"SKU-1","quantity":"2"}
--- unchanged
--- error_code: 400
--- response_body_like: "code":"invalid_field","message":"quantity



=== TEST 6: fractional quantity
--- request
POST /api/v1/cart/items
{"sku_id":"SKU-1","quantity":2.5}
--- unchanged
--- error_code: 400
--- response_body_like: "code":"invalid_field"



=== TEST 7: quantity missing
--- request
POST /api/v1/cart/items
{"sku_id":"SKU-1"}
--- unchanged
--- error_code: 400
--- response_body_like: "code":"invalid_field"



=== TEST 8: sku_id missing
--- request
POST /api/v1/cart/items
{"quantity":1}
--- unchanged
--- error_code: 400
--- response_body_like: "code":"invalid_field","message":"sku_id



=== TEST 9: sku_id of the wrong type
--- request
POST /api/v1/cart/items
{"sku_id":12,"quantity":1}
--- unchanged
--- error_code: 400
--- response_body_like: "code":"invalid_field"



=== TEST 10: sku_id that could break the line encoding
--- request
POST /api/v1/cart/items
{"sku_id":"SKU|1","quantity":1}
--- unchanged
--- error_code: 400
--- response_body_like: "code":"invalid_sku"



=== TEST 11: sku_id naming the version field
--- request
POST /api/v1/cart/items
{"sku_id":"#v","quantity":1}
--- unchanged
--- error_code: 400
--- response_body_like: "code":"invalid_sku"



=== TEST 12: sku_id too long
--- request eval
"POST /api/v1/cart/items\n{\"sku_id\":\"" . ("S" x 65) . "\",\"quantity\":1}"
--- unchanged
--- error_code: 400
--- response_body_like: "code":"invalid_sku"



=== TEST 13: sku_id with non-ASCII text
--- request
POST /api/v1/cart/items
{"sku_id":"SKU-\u00e9","quantity":1}
--- unchanged
--- error_code: 400
--- response_body_like: "code":"invalid_sku"



=== TEST 14: seller_id with a separator
--- request
POST /api/v1/cart/items
{"sku_id":"SKU-1","quantity":1,"seller_id":"a|b"}
--- unchanged
--- error_code: 400
--- response_body_like: "code":"invalid_field","message":"seller_id



=== TEST 15: malformed JSON
--- request
POST /api/v1/cart/items
{"sku_id":"SKU-1","quantity":
--- unchanged
--- error_code: 400
--- response_body_like: ^\{"error":\{"code":"invalid_json","message":"[^"]+"\}\}$



=== TEST 16: a JSON array instead of an object
--- request
POST /api/v1/cart/items
[{"sku_id":"SKU-1","quantity":1}]
--- unchanged
--- error_code: 400
--- response_body_like: "code":"invalid_json"



=== TEST 17: empty body
--- request eval
"POST /api/v1/cart/items\n"
--- unchanged
--- error_code: 400
--- response_body_like: "code":"invalid_json"



=== TEST 18: deeply nested JSON is refused without harm
--- request eval
"POST /api/v1/cart/items\n{\"sku_id\":\"SKU-1\",\"quantity\":" . ("[" x 3000) . ("]" x 3000) . "}"
--- unchanged
--- error_code: 400
--- response_body_like: "code":"invalid_field"



=== TEST 19: not JSON by content type
--- request
POST /api/v1/cart/items
{"sku_id":"SKU-1","quantity":1}
--- more_headers
Content-Type: text/plain
--- unchanged
--- error_code: 415
--- response_body_like: "code":"unsupported_media_type"



=== TEST 20: a body over the buffer (Content-Length)
--- request eval
"POST /api/v1/cart/items\n{\"sku_id\":\"SKU-1\",\"quantity\":1,\"pad\":\"" . ("x" x 40000) . "\"}"
--- unchanged
--- error_code: 413
--- response_body_like: "code":"body_too_large"



=== TEST 21: a chunked body over the buffer
--- request eval
my $body = "{\"sku_id\":\"SKU-1\",\"quantity\":1,\"pad\":\"" . ("x" x 40000) . "\"}";
"POST /api/v1/cart/items\n" . sprintf("%x\r\n%s\r\n0\r\n\r\n", length($body), $body)
--- more_headers
Content-Type: application/json
Transfer-Encoding: chunked
--- unchanged
--- error_code: 413
--- response_body_like: "code":"body_too_large"



=== TEST 22: an SKU the catalog does not know
--- request
POST /api/v1/cart/items
{"sku_id":"SKU-UNKNOWN","quantity":1}
--- unchanged
--- error_code: 422
--- response_body_like: "code":"unknown_sku"



=== TEST 23: the catalog failing: 503 with Retry-After
--- request
POST /api/v1/cart/items
{"sku_id":"SKU-DOWN","quantity":1}
--- unchanged
--- error_code: 503
--- response_headers
Retry-After: 1
--- response_body_like: "code":"catalog_unavailable"



=== TEST 24: the catalog answering garbage
--- request
POST /api/v1/cart/items
{"sku_id":"SKU-GARBAGE","quantity":1}
--- unchanged
--- error_code: 503
--- response_body_like: "code":"catalog_unavailable"



=== TEST 25: the catalog answering a price that is not a number
--- request
POST /api/v1/cart/items
{"sku_id":"SKU-NOPRICE","quantity":1}
--- unchanged
--- error_code: 503
--- response_body_like: "code":"catalog_unavailable"



=== TEST 26: adding beyond cart_max_quantity on an existing line
--- request
POST /api/v1/cart/items
{"sku_id":"SKU-1","quantity":98}
--- unchanged
--- error_code: 422
--- response_body_like: "code":"quantity_limit"



=== TEST 27: PUT of a line that is not in the cart
--- request
PUT /api/v1/cart/items/SKU-2
{"quantity":1}
--- unchanged
--- error_code: 404
--- response_body_like: "code":"line_not_found"



=== TEST 28: PUT over the maximum quantity
--- request
PUT /api/v1/cart/items/SKU-1
{"quantity":100}
--- unchanged
--- error_code: 422
--- response_body_like: "code":"quantity_out_of_range"



=== TEST 29: PUT with a negative quantity
--- request
PUT /api/v1/cart/items/SKU-1
{"quantity":-1}
--- unchanged
--- error_code: 422
--- response_body_like: "code":"quantity_out_of_range"



=== TEST 30: an SKU in the path that is not valid
--- request
PUT /api/v1/cart/items/SKU%7C1
{"quantity":1}
--- unchanged
--- error_code: 400
--- response_body_like: "code":"invalid_sku"



=== TEST 31: DELETE of a line that is not in the cart
--- request
DELETE /api/v1/cart/items/SKU-3
--- unchanged
--- error_code: 404
--- response_body_like: "code":"line_not_found"



=== TEST 32: a method the resource does not have
--- request
PATCH /api/v1/cart/items/SKU-1
{"quantity":1}
--- unchanged
--- error_code: 405
--- response_headers
Allow: PUT, DELETE
--- response_body_like: "code":"method_not_allowed"



=== TEST 32a: a 405 lists the methods of the resource that was asked for
--- request
DELETE /api/v1/cart/
--- unchanged
--- error_code: 405
--- response_headers
Allow: GET, HEAD
--- response_body_like: "code":"method_not_allowed"



=== TEST 33: a resource that does not exist
--- request
POST /api/v1/cart/nothing
{}
--- unchanged
--- error_code: 404
--- response_body_like: "code":"not_found"



=== TEST 34: no identity
--- request
POST /api/v1/cart/items
{"sku_id":"SKU-1","quantity":1}
--- user: e34
--- more_headers
Content-Type: application/json
--- unchanged
--- error_code: 401
--- response_body_like: ^\{"error":\{"code":"unauthorized","message":"[^"]+"\}\}$



=== TEST 35: an identity that would escape its hash tag
--- request
GET /api/v1/cart
--- user: e35
--- more_headers
X-User-Id: e35}:x
--- unchanged
--- error_code: 401
--- response_body_like: "code":"invalid_identity"



=== TEST 36: an identity that is too long
--- request
DELETE /api/v1/cart/items/SKU-1
--- user: e36
--- more_headers eval
"X-User-Id: " . ("u" x 129)
--- unchanged
--- error_code: 401
--- response_body_like: "code":"invalid_identity"



=== TEST 37: an Idempotency-Key that is not acceptable
--- request
POST /api/v1/cart/items
{"sku_id":"SKU-1","quantity":1}
--- more_headers
Content-Type: application/json
Idempotency-Key: has spaces in it
--- unchanged
--- error_code: 400
--- response_body_like: "code":"invalid_idempotency_key"



=== TEST 38: If-Match with a stale version
--- request
PUT /api/v1/cart/items/SKU-1
{"quantity":3}
--- more_headers
Content-Type: application/json
If-Match: "4"
--- unchanged
--- error_code: 412
--- response_body_like: "code":"precondition_failed"



=== TEST 39: If-Match that is no ETag of ours
--- request
DELETE /api/v1/cart/items/SKU-1
--- more_headers
If-Match: "abc"
--- unchanged
--- error_code: 412
--- response_body_like: "code":"precondition_failed"



=== TEST 40: nothing went to the error log as a crash or alert
--- request
GET /api/v1/cart/count
--- more_headers
X-User-Id: e40
--- response_body chomp
{"item_count":0}
--- no_error_log
[alert]
[crit]
[emerg]
