# Stock: in stock, short, out, unknown to the inventory, and an inventory
# that fails — on the cart view (in_stock and typed warnings) and at
# checkout (409 naming the lines, 503), each refusal followed by reads
# showing the cart unchanged.

use lib 't/lib';
use CartTest;
use CartShop;

plan 'no_plan';
no_shuffle();
add_block_preprocessor(\&CartShop::prepare);

run_tests();

__DATA__

=== TEST 1: in stock, short and out of stock on the view
A-1 has 100, A-2 has 3 (4 wanted), B-1 has none.
--- init
CartShop::cart('s1', [['A-1', 5, 2999, 'seller-a'], ['A-2', 4, 500, 'seller-a'],
                      ['B-1', 1, 99, 'seller-b']]);
--- request
GET /api/v1/cart
--- more_headers
X-User-Id: s1
--- response_body_like chomp
^\{"cart_id":"cart:user-s1","items":\[\{"sku_id":"A-1",[^}]*"image":"https://cdn.example.com/a-1.jpg","in_stock":true\},\{"sku_id":"A-2",[^}]*"image":"","in_stock":false\},\{"sku_id":"B-1",[^}]*"image":"","in_stock":false\}\],"item_count":10,"subtotal":170.94,"currency":"USD","version":1,"warnings":\[\{"code":"insufficient_stock","sku_id":"A-2","message":"fewer items are in stock than the quantity in the cart"\},\{"code":"out_of_stock","sku_id":"B-1","message":"this item is out of stock"\}\],.*"estimated_total":170.94\}$



=== TEST 2: exactly the stock available is in stock
--- init
CartShop::cart('s2', [['A-2', 3, 500, 'seller-a']]);
--- request
GET /api/v1/cart
--- more_headers
X-User-Id: s2
--- response_body_like: "in_stock":true\}\],"item_count":3,"subtotal":15.00,"currency":"USD","version":1,"warnings":\[\],



=== TEST 3: an inventory that fails leaves stock unverified, and the view goes on
INV-DOWN's inventory answers 500; GONE's inventory does not know it
(404: nothing in stock).
--- init
CartShop::cart('s3', [['INV-DOWN', 1, 700, 'seller-c'], ['A-1', 1, 2999, 'seller-a']]);
--- request
GET /api/v1/cart
--- more_headers
X-User-Id: s3
--- response_body_like: ^\{"cart_id":"cart:user-s3","items":\[\{"sku_id":"INV-DOWN","quantity":1,"price_at_add":7.00,"seller_id":"seller-c","added_at":"2025-12-01T00:00:00Z","current_price":7.00,"price_changed":false,"name":"Lamp","seller":"seller-c","image":"","stock_verified":false\},\{"sku_id":"A-1",[^}]+,"in_stock":true\}\],"item_count":2,"subtotal":36.99,"currency":"USD","version":1,"warnings":\[\],
--- error_log
upstream answered 500 for "INV-DOWN"



=== TEST 4: checkout refuses short and out-of-stock lines, naming them; nothing changes
--- init
CartShop::cart('s4', [['A-1', 5, 2999, 'seller-a'], ['A-2', 4, 500, 'seller-a'],
                      ['B-1', 1, 99, 'seller-b'], ['GONE', 2, 100, 'seller-x']], '#a', 'US|94107');
--- request eval
["POST /api/v1/cart/checkout\n{\"accept_price_increase\":true}",
 "GET /api/v1/cart/count", "GET /api/v1/cart"]
--- more_headers
X-User-Id: s4
Content-Type: application/json
--- error_code eval
[409, 200, 200]
--- response_body_like eval
['^\{"error":\{"code":"out_of_stock","message":"some items are not available in the quantity asked for","lines":\[\{"sku_id":"A-2","reason":"insufficient_stock","quantity":4,"available":3\},\{"sku_id":"B-1","reason":"out_of_stock","quantity":1,"available":0\},\{"sku_id":"GONE","reason":"unavailable","quantity":2\}\]\}\}$',
 '^\{"item_count":12\}$', '"item_count":12,"subtotal":172.94,"currency":"USD","version":1,']



=== TEST 5: checkout with an inventory that fails: 503, nothing changes
--- init
CartShop::cart('s5', [['INV-DOWN', 1, 700, 'seller-c']], '#a', 'US|94107');
--- request eval
["POST /api/v1/cart/checkout", "GET /api/v1/cart/count", "GET /api/v1/cart"]
--- more_headers
X-User-Id: s5
--- error_code eval
[503, 200, 200]
--- response_headers eval
[{'Retry-After' => 1}, {}, {}]
--- response_body_like eval
['^\{"error":\{"code":"inventory_unavailable","message":"[^"]+"\}\}$',
 '^\{"item_count":1\}$', '"version":1,']



=== TEST 6: the line the inventory does not know is out of stock at checkout
--- config eval
$CartShop::Config =~ s#location = /_inventory/A-1 #location = /_inventory/A-1x #r
--- init
CartShop::cart('s6', [['A-1', 1, 2999, 'seller-a']], '#a', 'US|94107');
--- request
POST /api/v1/cart/checkout
--- more_headers
X-User-Id: s6
--- error_code: 409
--- response_body chomp
{"error":{"code":"out_of_stock","message":"some items are not available in the quantity asked for","lines":[{"sku_id":"A-1","reason":"out_of_stock","quantity":1,"available":0}]}}



=== TEST 7: an inventory answer that is not usable leaves stock unverified; checkout refuses with 503
--- config eval
$CartShop::Config =~ s#'\{"sku_id":"A-2","available":3\}'#'{"sku_id":"A-2","available":"3"}'#r
=~ s#'\{"sku_id":"B-2","available":50\}'#'not json'#r
--- init
CartShop::cart('s7', [['A-2', 1, 500, 'seller-a'], ['B-2', 1, 1250, 'seller-b']], '#a', 'US|94107');
--- request eval
["GET /api/v1/cart", "POST /api/v1/cart/checkout", "GET /api/v1/cart/count"]
--- more_headers
X-User-Id: s7
--- error_code eval
[200, 503, 200]
--- response_body_like eval
['"sku_id":"A-2",[^}]+"stock_verified":false\},\{"sku_id":"B-2",[^}]+"stock_verified":false\}\],',
 '"code":"inventory_unavailable"', '^\{"item_count":2\}$']
