# What lands in Redis (key shapes, values, TTLs, encoding) and how the
# cart behaves when Redis goes away, hangs, or comes back without its
# scripts — all without restarting nginx.

use lib 't/lib';
use CartTest;
use CartConf;
use CartClient;
use Test::More ();

plan 'no_plan';
no_shuffle();
add_block_preprocessor(\&CartConf::default_config);

sub redis_pid {
    open my $fh, '<', "$ENV{TEST_NGINX_REDIS_DIR}/redis.pid" or die "pid: $!";
    my $pid = <$fh>;
    chomp $pid;
    return $pid;
}

run_tests();

__DATA__

=== TEST 1: writes set the key shapes and TTLs (checked after the blocks)
--- http_config
cart_ttl 1h;
cart_idempotency_ttl 2h;
--- init
redis_cmd('DEL', 'cart:{user-k1}', 'cart_count:{user-k1}', 'idem:{user-k1}:key-1');
--- request eval
["POST /api/v1/cart/items\n{\"sku_id\":\"SKU-1\",\"quantity\":2}",
 "POST /api/v1/cart/items\n{\"sku_id\":\"SKU-2\",\"quantity\":5}",
 "PUT /api/v1/cart/items/SKU-2\n{\"quantity\":5}"]
--- more_headers eval
["X-User-Id: k1\nContent-Type: application/json\nIdempotency-Key: key-1",
 "X-User-Id: k1\nContent-Type: application/json",
 "X-User-Id: k1\nContent-Type: application/json"]
--- response_body_like eval
['"version":1', '"version":2', '"item_count":7,.*"version":3']



=== TEST 2: a five-line cart
--- init
redis_cmd('DEL', 'cart:{user-k5}', 'cart_count:{user-k5}');
--- request eval
[map { "POST /nocatalog/items\n{\"sku_id\":\"SKU-LINE-$_\",\"quantity\":1}" } 1 .. 5]
--- more_headers
X-User-Id: k5
Content-Type: application/json
--- response_body_like eval
[map { "\"version\":$_" } 1 .. 5]



=== TEST 3: (checks of TEST 1 and 2) key shapes, values, TTLs and encoding
--- init
my $line = redis_cmd('HGET', 'cart:{user-k1}', 'SKU-1');
Test::More::like($line, qr/^2\|2999\|seller-1\|[0-9a-z]{6}$/,
                 'a line is "qty|price minor units|seller|added_at in base 36"');
my ($added) = $line =~ /([0-9a-z]+)$/;
my $t = CartClient::line_time($added);
Test::More::ok(abs($t - time) < 600, "added_at $added is the time of the add: $t");
Test::More::is(redis_cmd('HGET', 'cart:{user-k1}', '#v'), 3,
               'the version lives in the cart hash');
Test::More::is(redis_cmd('GET', 'cart_count:{user-k1}'), 7,
               'the counter holds the total quantity');
Test::More::is(redis_cmd('TYPE', 'cart:{user-k1}'), 'hash', 'the cart is a hash');
for my $key ('cart:{user-k1}', 'cart_count:{user-k1}') {
    my $ttl = redis_cmd('TTL', $key);
    Test::More::ok($ttl > 3500 && $ttl <= 3600, "$key has cart_ttl (1h): $ttl");
}
my $ttl = redis_cmd('TTL', 'idem:{user-k1}:key-1');
Test::More::ok($ttl > 7100 && $ttl <= 7200,
               "the idempotency key has cart_idempotency_ttl (2h): $ttl");
Test::More::like(redis_cmd('OBJECT', 'ENCODING', 'cart:{user-k5}'),
                 qr/^(listpack|ziplist)$/,
                 'a 5-line cart stays in the compact encoding');
--- request
GET /nocatalog/count
--- more_headers
X-User-Id: k1
--- response_body chomp
{"item_count":7}



=== TEST 4: a counter lost on its own is rebuilt from the lines
--- init
CartClient::seed('k3');
redis_cmd('DEL', 'cart_count:{user-k3}');
--- request eval
["POST /nocatalog/items\n{\"sku_id\":\"SKU-3\",\"quantity\":1}", "GET /nocatalog/count"]
--- more_headers
X-User-Id: k3
Content-Type: application/json
--- response_body eval
['{"cart_id":"cart:user-k3","item_count":3,"item":{"sku_id":"SKU-3","quantity":1,"price":null,"seller_id":""},"version":6}',
 '{"item_count":3}']



=== TEST 4a: a counter at 0 beside a full cart is rebuilt by a PUT (meta fields are not lines)
--- init
CartClient::seed('k4');
redis_cmd('HSET', 'cart:{user-k4}', 'SKU-2', '3|100|s|1764547200',
          '#c', 'SAVE10', '#a', 'DE|10115');
redis_cmd('SET', 'cart_count:{user-k4}', 0);
--- request eval
["PUT /nocatalog/items/SKU-1\n{\"quantity\":5}", "GET /nocatalog/count"]
--- more_headers
X-User-Id: k4
Content-Type: application/json
--- response_body_like eval
['^\{"cart_id":"cart:user-k4","item_count":8,"item":\{"sku_id":"SKU-1","quantity":5,.*"version":6\}$',
 '^\{"item_count":8\}$']



=== TEST 4b: a counter at 0 beside a full cart is rebuilt by a POST
--- init
CartClient::seed('k6');
redis_cmd('HSET', 'cart:{user-k6}', 'SKU-2', '3|100|s|1764547200',
          '#c', 'SAVE10', '#a', 'DE|10115');
redis_cmd('SET', 'cart_count:{user-k6}', 0);
--- request eval
["POST /nocatalog/items\n{\"sku_id\":\"SKU-3\",\"quantity\":1}",
 "POST /nocatalog/items\n{\"sku_id\":\"SKU-3\",\"quantity\":2}",
 "GET /nocatalog/count"]
--- more_headers
X-User-Id: k6
Content-Type: application/json
--- response_body_like eval
['"item_count":6,.*"version":6\}$', '"item_count":8,.*"version":7\}$',
 '^\{"item_count":8\}$']



=== TEST 4b2: a missing counter is rebuilt by a DELETE
--- init
CartClient::seed('k7');
redis_cmd('HSET', 'cart:{user-k7}', 'SKU-2', '3|100|s|1764547200', '#c', 'SAVE10');
redis_cmd('DEL', 'cart_count:{user-k7}');
--- request eval
["DELETE /nocatalog/items/SKU-2", "GET /nocatalog/count"]
--- more_headers
X-User-Id: k7
--- response_body_like eval
['"item_count":2,.*"version":6\}$', '^\{"item_count":2\}$']



=== TEST 4c: one Redis round trip per request (counted after this block)
--- init
CartClient::seed('k8');
redis_cmd('CONFIG', 'RESETSTAT');
--- request eval
["POST /nocatalog/items\n{\"sku_id\":\"SKU-1\",\"quantity\":1}",
 "PUT /nocatalog/items/SKU-1\n{\"quantity\":3}",
 "DELETE /nocatalog/items/SKU-1",
 "GET /nocatalog",
 "GET /nocatalog/count"]
--- more_headers
X-User-Id: k8
Content-Type: application/json
--- response_body_like eval
['"quantity":3,.*"version":6', '"quantity":3,.*"version":7', '"quantity":0,.*"version":8',
 '"items":\[\],.*"version":8', '^\{"item_count":0\}$']



=== TEST 4d: (checks of TEST 4c) an add, update or remove is one EVALSHA, a view one HGETALL, a count one GET
--- init
my %calls = map { /^cmdstat_([^:]+):calls=(\d+)/ ? ($1, $2) : () }
            split /\r?\n/, redis_cmd('INFO', 'commandstats');
Test::More::is($calls{evalsha}, 3, 'one EVALSHA per add, update and remove');
Test::More::ok(!$calls{eval}, 'no EVAL: the scripts were loaded at connect');
# the view reads the cart; a fresh worker also reads its promotions copy once
Test::More::ok($calls{hgetall} >= 1 && $calls{hgetall} <= 2,
               "one HGETALL for the view, plus at most the promotions copy: $calls{hgetall}");
Test::More::is($calls{get}, 1, 'one GET for the count (none inside the scripts)');
# inside the scripts: version and line read by one HMGET, line and version
# written by one HSET, the counter by INCRBY alone
Test::More::is($calls{hmget}, 3, 'one HMGET per add, update and remove');
Test::More::is($calls{hset}, 3, 'one HSET per add, update and remove');
Test::More::ok(!$calls{exists} && !$calls{hget} && !$calls{hincrby},
               'no EXISTS, HGET or HINCRBY inside them');
--- request
GET /nocatalog/count
--- more_headers
X-User-Id: k8
--- response_body: {"item_count":0}



=== TEST 5: Redis forgot its scripts (SCRIPT FLUSH): the write still works
--- init
# after the worker has connected (and loaded the scripts), Redis forgets them
CartClient::request('GET', '/api/v1/cart/count', 'k4');
redis_cmd('SCRIPT', 'FLUSH');
redis_cmd('DEL', 'cart:{user-k4}', 'cart_count:{user-k4}');
--- request
POST /api/v1/cart/items
{"sku_id":"SKU-1","quantity":1}
--- more_headers
X-User-Id: k4
Content-Type: application/json
--- response_body_like: "quantity":1,.*"version":1
--- error_log
script cache lost, loading it again



=== TEST 6: Redis stopped: 503 with Retry-After at once; restarted: the same nginx recovers
--- init
CartClient::seed('k5b');
CartClient::redis_ctl('stop');
# Redis comes back (empty, without scripts) a second later
if (fork() == 0) {
    select(undef, undef, undef, 1.0);
    CartClient::redis_ctl('start');
    require POSIX; POSIX::_exit(0);
}
--- request eval
["POST /api/v1/cart/items\n{\"sku_id\":\"SKU-1\",\"quantity\":1}",
 "GET /api/v1/cart",
 "GET /api/v1/cart/count",
 "GET /wait", "GET /wait",
 "POST /api/v1/cart/items\n{\"sku_id\":\"SKU-1\",\"quantity\":1}",
 "GET /api/v1/cart/count"]
--- more_headers
X-User-Id: k5b
Content-Type: application/json
--- error_code eval
[503, 503, 503, 200, 200, 200, 200]
--- response_headers eval
[{'Retry-After' => '1'}, {'Retry-After' => '1'}, {'Retry-After' => '1'}, {}, {}, {}, {}]
--- response_body_like eval
['^\{"error":\{"code":"store_unavailable","message":"[^"]+"\}\}$',
 '"code":"store_unavailable"', '"code":"store_unavailable"', '', '',
 '"version":1', '^\{"item_count":1\}$']
--- timeout: 10
--- no_error_log
[alert]
[crit]



=== TEST 7: Redis hanging: 503 within cart_redis_timeout, then answers again
--- http_config
cart_redis_timeout 200ms;
--- init
CartClient::seed('k6');
# the worker's connections ready before Redis stops (a slow start, as
# under valgrind, would find none ready: store_unavailable)
CartClient::request('GET', '/api/v1/cart/count', 'k6');
kill 'STOP', main::redis_pid();
if (fork() == 0) {
    select(undef, undef, undef, 1.0);
    kill 'CONT', main::redis_pid();
    require POSIX; POSIX::_exit(0);
}
--- request eval
["GET /api/v1/cart/count", "GET /wait", "GET /api/v1/cart/count"]
--- more_headers
X-User-Id: k6
--- error_code eval
[503, 200, 200]
--- response_body_like eval
['^\{"error":\{"code":"store_timeout","message":"[^"]+"\}\}$', '', '^\{"item_count":2\}$']
--- timeout: 10



=== TEST 8: (sets up TEST 9 and 10) a Redis user with a password, known before nginx starts
--- init
redis_cmd('ACL', 'SETUSER', 'cart-t', 'reset', 'on', '>s3cret', '~*', '&*', '+@all');
redis_cmd('EVAL', "redis.call('SELECT', 5) return redis.call('DEL', KEYS[1], KEYS[2])",
          2, 'cart:{user-db5}', 'cart_count:{user-db5}');
redis_cmd('DEL', 'cart:{user-db5}', 'cart_count:{user-db5}');
--- request
GET /nocatalog/count
--- more_headers
X-User-Id: db5
--- response_body: {"item_count":0}



=== TEST 9: a URL with a user, a password and a database: AUTH and SELECT run ahead of the commands
--- http_config
cart_redis redis://cart-t:s3cret@127.0.0.1:$TEST_NGINX_REDIS_PORT/5;
--- request eval
["POST /nocatalog/items\n{\"sku_id\":\"SKU-1\",\"quantity\":2}", "GET /nocatalog/count"]
--- more_headers
X-User-Id: db5
Content-Type: application/json
--- response_body_like eval
['"quantity":2,.*"version":1', '^\{"item_count":2\}$']
--- no_error_log
[error]



=== TEST 10: (checks of TEST 9) the cart is in database 5, not 0; a wrong password: 503, the write never runs
--- http_config
cart_redis redis://cart-t:wrong@127.0.0.1:$TEST_NGINX_REDIS_PORT/5;
--- init
Test::More::is(redis_cmd('EXISTS', 'cart:{user-db5}'), 0, 'not in database 0');
Test::More::like(redis_cmd('EVAL', "redis.call('SELECT', 5) return redis.call('HGET', KEYS[1], 'SKU-1')",
                           1, 'cart:{user-db5}'),
                 qr/^2\|/, 'the line is in database 5');
redis_cmd('ACL', 'DELUSER', 'cart-t');
redis_cmd('EVAL', "redis.call('SELECT', 5) return redis.call('DEL', KEYS[1], KEYS[2])",
          2, 'cart:{user-db10}', 'cart_count:{user-db10}');
redis_cmd('DEL', 'cart:{user-db10}', 'cart_count:{user-db10}');
# no connection gets past AUTH: the write is refused at once, or waits for
# a handshake that fails; it never runs as Redis's default user
--- request
POST /nocatalog/items
{"sku_id":"SKU-1","quantity":1}
--- more_headers
X-User-Id: db10
Content-Type: application/json
--- error_code: 503
--- response_body_like: "code":"store_unavailable"
--- error_log eval
qr/cart redis: AUTH on "redis:\/\/cart-t:\*\*\*@[^"]+" failed: WRONGPASS/
--- no_error_log
[alert]
cart-t:wrong



=== TEST 11: (checks of TEST 10) nothing was written, in database 0 or 5
--- init
Test::More::is(redis_cmd('EXISTS', 'cart:{user-db10}'), 0, 'nothing in database 0');
Test::More::is(redis_cmd('EVAL', "redis.call('SELECT', 5) return redis.call('EXISTS', KEYS[1])",
                         1, 'cart:{user-db10}'),
               0, 'nothing in database 5');
--- request
GET /nocatalog/count
--- more_headers
X-User-Id: db10
--- response_body: {"item_count":0}
