# Redis stalls (CLIENT PAUSE): what a client is told when a command gets
# no answer, and what the worker does meanwhile. Under valgrind (make
# test-valgrind) each block is also checked for invalid accesses.

use lib 't/lib';
use CartTest;
use CartConf;
use CartClient;
use Time::HiRes ();
use Test::More ();

plan 'no_plan';
no_shuffle();
add_block_preprocessor(\&CartConf::default_config);

# Requests on new connections at once; each child returns
# "status code elapsed-seconds".
sub burst {
    my ($n, $make) = @_;
    return CartClient::parallel($n, sub {
        my ($i) = @_;
        my $t0 = Time::HiRes::time();
        my ($status, $body) = $make->($i);
        my ($code) = $body =~ /"code":"([^"]+)"/;
        return sprintf '%s %s %.3f', $status, $code // '-',
                       Time::HiRes::time() - $t0;
    });
}

# Redis runs no command for $ms milliseconds ($mode: ALL or WRITE); returns
# when it answers again (the pause ends on its own).
sub pause {
    my ($ms, $mode) = @_;
    redis_cmd('CLIENT', 'PAUSE', $ms, $mode // 'ALL');
}

sub sleep_until {
    my ($t) = @_;
    my $left = $t - Time::HiRes::time();
    Time::HiRes::sleep($left) if $left > 0;
}

run_tests();

__DATA__

=== TEST 1: timeouts that close their client connections: the connection's later timeouts log through the cycle's log, not freed request memory
Six reads on two connections time out while Redis is paused; each answer
closes its client connection (keepalive_timeout 0), and the third timeout
of each Redis connection drops it. Under valgrind: no invalid read.
--- http_config
cart_redis_timeout 1s;
cart_redis_connections 2;
--- config eval
"keepalive_timeout 0;\n" . $CartConf::Config
--- init
CartClient::seed('o1');
my ($status) = CartClient::request('GET', '/nocatalog/count', 'o1');
die "warm-up: $status\n" unless $status == 200;
my $until = Time::HiRes::time() + 3.5;
main::pause(3000);
my @got = main::burst(6, sub { CartClient::request('GET', '/nocatalog/count', 'o1') });
Test::More::is(scalar(grep { /^503 store_timeout / } @got), 6,
               "six reads time out: @got");
main::sleep_until($until);
--- request
GET /nocatalog/count
--- more_headers
X-User-Id: o1
--- response_body: {"item_count":2}
--- timeout: 10
--- error_log
is not answering, reconnecting
--- no_error_log
[alert]
[crit]



=== TEST 2: cart_redis_max_pending: past it a command fails at once (503 store_unavailable) and never runs
One connection, room for two commands: of six adds sent while Redis holds
writes, two are sent and time out (store_outcome_unknown), four are
refused at once. After the pause the two run; the four never do.
--- http_config
cart_redis_connections 1;
cart_redis_max_pending 2;
cart_redis_timeout 1500ms;
--- init
redis_cmd('DEL', 'cart:{user-o2}', 'cart_count:{user-o2}');
my ($status) = CartClient::request('GET', '/nocatalog/count', 'o2');
die "warm-up: $status\n" unless $status == 200;
my $until = Time::HiRes::time() + 3.7;
main::pause(3500, 'WRITE');
my @got = main::burst(6, sub {
    CartClient::request('POST', '/nocatalog/items', 'o2',
                        qq({"sku_id":"SKU-P$_[0]","quantity":1}));
});
my @sent = grep { /^503 store_outcome_unknown (\S+)/ && $1 >= 1.4 } @got;
my @refused = grep { /^503 store_unavailable (\S+)/ && $1 < 0.75 } @got;
Test::More::is(scalar @sent, 2, "two wait for Redis: @got");
Test::More::is(scalar @refused, 4, "four are refused at once: @got");
main::sleep_until($until);
my @lines = grep { !/^#/ } split /\n/, redis_cmd('HKEYS', 'cart:{user-o2}');
Test::More::is(scalar @lines, 2, "the two sent ran, the four refused did not: @lines");
--- request
GET /nocatalog/count
--- more_headers
X-User-Id: o2
--- response_body: {"item_count":2}
--- timeout: 10
--- error_log
has 2 commands in flight (cart_redis_max_pending)
--- no_error_log
[alert]
[crit]



=== TEST 3: a write sent and not answered in time is store_outcome_unknown, and may be applied; its retry with the same Idempotency-Key replays it (applied once)
--- http_config
cart_redis_connections 1;
cart_redis_timeout 1s;
--- init
redis_cmd('DEL', 'cart:{user-o3}', 'cart_count:{user-o3}', 'idem:{user-o3}:key-o3');
my ($status) = CartClient::request('GET', '/nocatalog/count', 'o3');
die "warm-up: $status\n" unless $status == 200;
my $until = Time::HiRes::time() + 2.7;
main::pause(2500, 'WRITE');
my ($code, $body) = CartClient::request('POST', '/nocatalog/items', 'o3',
    '{"sku_id":"SKU-1","quantity":1}', 'Idempotency-Key' => 'key-o3');
Test::More::is($code, 503, 'the write timed out');
Test::More::like($body,
    qr/^\{"error":\{"code":"store_outcome_unknown","message":"[^"]*may have been applied[^"]*Idempotency-Key"\}\}$/,
    'its outcome is unknown, and the answer says what to do');
main::sleep_until($until);
Test::More::like(redis_cmd('HGET', 'cart:{user-o3}', 'SKU-1'), qr/^1\|/,
                 'Redis ran it after the pause: it was applied');
--- request eval
["POST /nocatalog/items\n{\"sku_id\":\"SKU-1\",\"quantity\":1}", "GET /nocatalog/count"]
--- more_headers eval
["X-User-Id: o3\nContent-Type: application/json\nIdempotency-Key: key-o3",
 "X-User-Id: o3"]
--- response_headers eval
[{'Idempotent-Replayed' => 'true'}, {}]
--- response_body_like eval
['"item":\{"sku_id":"SKU-1","quantity":1,.*"version":1\}$', '^\{"item_count":1\}$']
--- timeout: 10
--- no_error_log
[alert]
[crit]



=== TEST 4: writes of unknown outcome whose connection is then dropped (three timeouts): retried with their keys, each is applied exactly once
The three time out together on the one connection, which is then
dropped, while Redis holds writes: whether Redis ran them or dropped them
with the connection, a retry with the same key applies each once.
--- http_config
cart_redis_connections 1;
cart_redis_timeout 1s;
--- init
redis_cmd('DEL', 'cart:{user-o4}', 'cart_count:{user-o4}',
          map { "idem:{user-o4}:key-o4-$_" } 1 .. 3);
my ($status) = CartClient::request('GET', '/nocatalog/count', 'o4');
die "warm-up: $status\n" unless $status == 200;
my $until = Time::HiRes::time() + 2.7;
main::pause(2500, 'WRITE');
my @got = main::burst(3, sub {
    CartClient::request('POST', '/nocatalog/items', 'o4',
        '{"sku_id":"SKU-1","quantity":1}', 'Idempotency-Key' => "key-o4-$_[0]");
});
Test::More::is(scalar(grep { /^503 store_outcome_unknown / } @got), 3,
               "three writes of unknown outcome: @got");
main::sleep_until($until);
my @retried = map {
    my ($code, $body) = CartClient::request('POST', '/nocatalog/items', 'o4',
        '{"sku_id":"SKU-1","quantity":1}', 'Idempotency-Key' => "key-o4-$_");
    $code;
} 1 .. 3;
Test::More::is("@retried", '200 200 200', 'the retries succeed');
Test::More::like(redis_cmd('HGET', 'cart:{user-o4}', 'SKU-1'), qr/^3\|/,
                 'three units: each add applied once');
--- request
GET /nocatalog/count
--- more_headers
X-User-Id: o4
--- response_body: {"item_count":3}
--- timeout: 10
--- error_log
is not answering, reconnecting
--- no_error_log
[alert]
[crit]



=== TEST 5: the connection breaks after the write was sent: store_outcome_unknown at once, and the retry applies it once
Redis holds writes; the worker's connection is killed while the add waits
in it (a read goes on, so the connection is not dropped for timeouts).
--- http_config
cart_redis_connections 1;
cart_redis_timeout 3s;
--- init
redis_cmd('DEL', 'cart:{user-o5}', 'cart_count:{user-o5}', 'idem:{user-o5}:key-o5');
my ($status) = CartClient::request('GET', '/nocatalog/count', 'o5');
die "warm-up: $status\n" unless $status == 200;
my $until = Time::HiRes::time() + 1.7;
main::pause(1500, 'WRITE');
if (fork() == 0) {
    Time::HiRes::sleep(0.5);
    redis_cmd('CLIENT', 'KILL', 'TYPE', 'normal', 'SKIPME', 'yes');
    require POSIX; POSIX::_exit(0);
}
my @got = main::burst(1, sub {
    CartClient::request('POST', '/nocatalog/items', 'o5',
        '{"sku_id":"SKU-1","quantity":1}', 'Idempotency-Key' => 'key-o5');
});
wait;
Test::More::like($got[0], qr/^503 store_outcome_unknown (\S+)$/,
                 "the write's outcome is unknown: @got");
Test::More::ok(($got[0] =~ /(\S+)$/)[0] < 2.5, 'known when the connection broke');
main::sleep_until($until);
--- request eval
["POST /nocatalog/items\n{\"sku_id\":\"SKU-1\",\"quantity\":1}", "GET /nocatalog/count"]
--- more_headers eval
["X-User-Id: o5\nContent-Type: application/json\nIdempotency-Key: key-o5",
 "X-User-Id: o5"]
--- response_body_like eval
['"item":\{"sku_id":"SKU-1","quantity":1,', '^\{"item_count":1\}$']
--- timeout: 10
--- no_error_log
[alert]
[crit]



=== TEST 6: a reservation of an Idempotency-Key that got no answer is given back: after the stall a retry with the key is applied (once), not 409 in flight
An add through the catalog reserves its key first; Redis holds writes,
so the reservation times out (503 store_timeout) and the add is never
sent. The release queued behind it on the one connection runs after it.
--- http_config
cart_redis_connections 1;
cart_redis_timeout 300ms;
--- init
redis_cmd('DEL', 'cart:{user-o6}', 'cart_count:{user-o6}', 'idem:{user-o6}:key-o6');
my ($status) = CartClient::request('GET', '/nocatalog/count', 'o6');
die "warm-up: $status\n" unless $status == 200;
my $until = Time::HiRes::time() + 1.7;
main::pause(1500, 'WRITE');
my ($code, $body) = CartClient::request('POST', '/api/v1/cart/items', 'o6',
    '{"sku_id":"SKU-1","quantity":1}', 'Idempotency-Key' => 'key-o6');
Test::More::is($code, 503, 'the reservation timed out');
Test::More::like($body, qr/^\{"error":\{"code":"store_timeout"/,
                 'store_timeout: the add was not sent');
main::sleep_until($until);
Test::More::is(redis_cmd('EXISTS', 'idem:{user-o6}:key-o6'), 0,
               'the reservation ran after the pause, and was given back');
Test::More::is(redis_cmd('HGET', 'cart:{user-o6}', 'SKU-1') // '', '',
               'nothing was added');
--- request eval
["POST /api/v1/cart/items\n{\"sku_id\":\"SKU-1\",\"quantity\":1}",
 "POST /api/v1/cart/items\n{\"sku_id\":\"SKU-1\",\"quantity\":1}",
 "GET /nocatalog/count"]
--- more_headers eval
["X-User-Id: o6\nContent-Type: application/json\nIdempotency-Key: key-o6",
 "X-User-Id: o6\nContent-Type: application/json\nIdempotency-Key: key-o6",
 "X-User-Id: o6"]
--- response_headers eval
[{'Idempotent-Replayed' => ''}, {'Idempotent-Replayed' => 'true'}, {}]
--- response_body_like eval
['"item":\{"sku_id":"SKU-1","quantity":1,.*"version":1\}$',
 '"item":\{"sku_id":"SKU-1","quantity":1,.*"version":1\}$',
 '^\{"item_count":1\}$']
--- timeout: 10
--- no_error_log
[alert]
[crit]



=== TEST 7: a reservation lives cart_lookup_timeout + 4 x cart_redis_timeout, not 30 s; a failed add gives it back
The catalog (/wait, through a proxy: limit_rate applies to main requests
only) takes about two seconds and answers no price; while
it is asked the key is in flight (a retry is 409), with a TTL of at most
3 s + 4 x 100 ms; the add then fails and the key is free again.
--- http_config
cart_redis_timeout 100ms;
--- config eval
"location /slowcat {
    cart_api;
    cart_user \$http_x_user_id;
    cart_catalog /_slow;
    cart_lookup_timeout 3s;
}
location = /_slow {
    internal;
    proxy_pass http://127.0.0.1:\$TEST_NGINX_SERVER_PORT/wait;
}
" . $CartConf::Config
--- init
redis_cmd('DEL', 'cart:{user-o7}', 'cart_count:{user-o7}', 'idem:{user-o7}:key-o7');
my @got;
require POSIX;
my $pid = fork // die "fork: $!";
if ($pid == 0) {
    my ($code, $body) = CartClient::request('POST', '/slowcat/items', 'o7',
        '{"sku_id":"SKU-1","quantity":1}', 'Idempotency-Key' => 'key-o7');
    my ($c) = $body =~ /"code":"([^"]+)"/;
    open my $fh, '>', "$ENV{TEST_NGINX_SERVROOT}/o7.out" or POSIX::_exit(1);
    print {$fh} "$code " . ($c // '-');
    close $fh;
    POSIX::_exit(0);
}
my $pttl = -2;
for (1 .. 100) {
    $pttl = redis_cmd('PTTL', 'idem:{user-o7}:key-o7');
    last if $pttl > 0;
    Time::HiRes::sleep(0.02);
}
Test::More::ok($pttl > 0 && $pttl <= 3400,
               "the key is reserved for at most 3.4 s: PTTL $pttl ms");
my ($code, $body) = CartClient::request('POST', '/slowcat/items', 'o7',
    '{"sku_id":"SKU-1","quantity":1}', 'Idempotency-Key' => 'key-o7');
Test::More::like("$code $body", qr/^409 .*"idempotency_in_flight"/,
                 'a retry meanwhile is 409 in flight');
waitpid $pid, 0;
open my $fh, '<', "$ENV{TEST_NGINX_SERVROOT}/o7.out" or die "o7.out: $!";
Test::More::is(scalar <$fh>, '503 catalog_unavailable',
               'the add failed: the catalog gave no price');
Test::More::is(redis_cmd('EXISTS', 'idem:{user-o7}:key-o7'), 0,
               'the key was given back');
--- request eval
"POST /nocatalog/items\n{\"sku_id\":\"SKU-1\",\"quantity\":1}"
--- more_headers
X-User-Id: o7
Content-Type: application/json
Idempotency-Key: key-o7
--- response_body_like: "item":\{"sku_id":"SKU-1","quantity":1,
--- timeout: 10
--- no_error_log
[alert]
[crit]
