# cart_redis_cluster on: the data plane on a Redis Cluster of 3 masters
# (util/redis-cluster.sh, started by util/test.sh). Carts spread over the
# masters; add, view, update, remove, count, merge, saved, share and
# checkout work across slots; a slot migrated while nginx runs is followed
# (ASK during the migration, MOVED after it); a master stopped makes its
# own slots 503 while the others keep working, and its restart is picked
# up; seeds that cannot be reached answer 503 at once.

use lib 't/lib';
use CartTest;
use CartCluster;
use CartConf;
use CartAuth;
use CartClient;
use Test::More ();

our $P = $ENV{TEST_NGINX_REDIS_CLUSTER_PORT} // '';
our $Dir = $ENV{TEST_NGINX_REDIS_CLUSTER_DIR} // '';
our @Ports = $P ? ($P, $P + 1, $P + 2) : ();

sub cli { CartCluster::cli(@_) }

# a command on the node of its key (redis-cli follows redirections)
sub cl { cli($P, '-c', @_) }

if (!$P || cli($P, 'CLUSTER', 'INFO') !~ /cluster_state:ok/) {
    plan skip_all => 'no Redis Cluster: util/test.sh starts one '
                     . '(TEST_NGINX_REDIS_CLUSTER_PORT)';
} else {
    plan 'no_plan';
}

no_shuffle();
add_block_preprocessor(\&CartAuth::default_config);

# the cluster is this file's Redis (added before CartTest's single node)
add_block_preprocessor(sub {
    my $block = shift;
    my $http_config = $block->http_config // '';
    return if $http_config =~ /\bcart_redis\b/;
    $block->set_value(http_config => "cart_redis redis://127.0.0.1:$P;\n"
                                     . "cart_redis_cluster on;\n$http_config");
});

sub node_id { cli($_[0], 'CLUSTER', 'MYID') }

# the port of the master serving $key's slot
sub owner { CartCluster::owner($P, $_[0]) }

# moves $key's slot to node $to: IMPORTING / MIGRATING, MIGRATE of its
# keys, and with $finish SETSLOT NODE everywhere
sub migrate {
    my ($key, $to, $finish) = @_;
    my $from = owner($key);
    my $slot = cli($P, 'CLUSTER', 'KEYSLOT', $key);
    my ($fid, $tid) = (node_id($from), node_id($to));
    cli($to, 'CLUSTER', 'SETSLOT', $slot, 'IMPORTING', $fid);
    cli($from, 'CLUSTER', 'SETSLOT', $slot, 'MIGRATING', $tid);
    my @keys = grep { length } split /\n/,
               cli($from, 'CLUSTER', 'GETKEYSINSLOT', $slot, 1000);
    cli($from, 'MIGRATE', '127.0.0.1', $to, '', 0, 5000, 'KEYS', @keys) if @keys;
    return unless $finish;
    cli($_, 'CLUSTER', 'SETSLOT', $slot, 'NODE', $tid) for $to, $from,
        grep { $_ != $to && $_ != $from } @Ports;
}

sub node_ctl {
    my ($action, $port) = @_;
    my @conf = $action eq 'start' ? ('util/redis-cluster.conf') : ();
    system('util/redis.sh', $action, $port, "$Dir/$port", @conf) == 0
        or die "redis $action $port failed";
}

sub seed {
    my ($user) = @_;
    cl('DEL', "cart:{user-$user}", "cart_count:{user-$user}");
    cl('HSET', "cart:{user-$user}", 'SKU-1', '2|2999|seller-1|1764547200', '#v', 5);
    cl('SET', "cart_count:{user-$user}", 2);
}

our @Users = map { "c$_" } 1 .. 12;

# values the request sections use (they are evaluated before any block
# runs): a guest session on another master than user c6, a share token,
# the master of user "down" and a user on another master
our ($G, $T, $Down, $Up);
if ($P) {
    ($G) = grep { owner("cart:{guest-$_}") != owner('cart:{user-c6}') }
           map { CartAuth::session("cluster-merge-$_") } 1 .. 10;
    $T = 'Cluster-Token_0123456789abcdefgh';
    $Down = owner('cart:{user-down}');
    ($Up) = grep { owner("cart:{user-$_}") != $Down } @Users;
}

run_tests();

__DATA__

=== TEST 1: carts of 12 users: one add each, with the map learned from the seed
--- init
cli($_, 'FLUSHALL') for @main::Ports;
--- request eval
[map { "POST /nocatalog/items\n{\"sku_id\":\"SKU-1\",\"quantity\":1}" } @main::Users]
--- more_headers eval
[map { "X-User-Id: $_\nContent-Type: application/json" } @main::Users]
--- response_body_like eval
[map { '"quantity":1,.*"version":1' } @main::Users]
--- no_error_log
[error]



=== TEST 2: (checks of TEST 1) every cart on the master of its slot, all 3 masters used
--- init
my %on;
for my $user (@main::Users) {
    my $port = main::owner("cart:{user-$user}");
    $on{$port}++;
    Test::More::is(main::cli($port, 'EXISTS', "cart:{user-$user}", "cart_count:{user-$user}"),
                   2, "cart and counter of $user on $port");
}
Test::More::is(scalar(keys %on), 3, 'carts on all 3 masters: ' . join(' ', %on));
--- request
GET /nocatalog/count
--- more_headers
X-User-Id: c2
--- response_body chomp
{"item_count":1}
--- error_log eval
qr/cart redis: cluster node "redis:\/\/127\.0\.0\.1:\d+" added/



=== TEST 3: add, update, view, remove, count on users of each master
--- request eval
[(map { ("POST /nocatalog/items\n{\"sku_id\":\"SKU-2\",\"quantity\":2}",
         "PUT /nocatalog/items/SKU-2\n{\"quantity\":4}",
         "DELETE /nocatalog/items/SKU-1") } 'c1', 'c2', 'c4'),
 "GET /nocatalog/count"]
--- more_headers eval
[(map { ("X-User-Id: $_\nContent-Type: application/json") x 3 } 'c1', 'c2', 'c4'),
 "X-User-Id: c4"]
--- response_body_like eval
[('"quantity":2,.*"version":2', '"quantity":4,.*"version":3', '"quantity":0,.*"version":4') x 3,
 '^\{"item_count":4\}$']
--- no_error_log
[error]



=== TEST 4: an Idempotency-Key replays on the cart's slot
--- request eval
["POST /nocatalog/items\n{\"sku_id\":\"SKU-3\",\"quantity\":1}",
 "POST /nocatalog/items\n{\"sku_id\":\"SKU-3\",\"quantity\":1}",
 "GET /nocatalog/count"]
--- more_headers
X-User-Id: c5
Content-Type: application/json
Idempotency-Key: cl-1
--- response_body_like eval
['"version":2', '"version":2', '^\{"item_count":2\}$']



=== TEST 5: merge: claimed on the guest's slot, applied on the user's
--- init
main::cl('DEL', 'cart:{user-c6}', 'cart_count:{user-c6}');
main::cl('HSET', "cart:{guest-$main::G}", 'SKU-1', '1|2999|seller-1|1764547200',
         'SKU-2', '2|450|seller-2|1764547201', '#v', 3);
main::cl('SET', "cart_count:{guest-$main::G}", 3);
Test::More::isnt(main::owner("cart:{guest-$main::G}"), main::owner('cart:{user-c6}'),
                 'guest and user carts on different masters');
--- request eval
"POST /nocatalog/merge\n{\"guest_session_id\":\"$main::G\"}"
--- more_headers eval
"Content-Type: application/json\nX-User-Id: c6\nCookie: cart_guest="
. CartAuth::guest_cookie($main::G)
--- response_body chomp
{"cart_id":"cart:user-c6","merged_items":2,"conflicts_resolved":0,"adjusted":[],"item_count":3,"version":1}



=== TEST 6: (checks of TEST 5) the guest cart and its claim are gone, the user's cart has the lines
--- init
Test::More::is(main::cl('EXISTS', "cart:{guest-$main::G}"), 0, 'guest cart gone');
Test::More::is(main::cl('EXISTS', "merge:{guest-$main::G}"), 0, 'claim gone');
--- request
GET /nocatalog/count
--- more_headers
X-User-Id: c6
--- response_body chomp
{"item_count":3}



=== TEST 7: saved for later, and back
--- init
main::seed('c7');
main::cl('DEL', 'saved:{user-c7}');
--- request eval
["POST /nocatalog/items/SKU-1/save", "GET /nocatalog/saved", "GET /nocatalog/count",
 "POST /nocatalog/saved/SKU-1/move", "GET /nocatalog/count"]
--- more_headers
X-User-Id: c7
--- response_body_like eval
['"version":6', '"sku_id":"SKU-1","quantity":2', '^\{"item_count":0\}$',
 '"version":7', '^\{"item_count":2\}$']



=== TEST 8: share: the token's key and the owner's cart live on other slots; copy into a third cart
--- init
main::seed('c8');
main::cl('DEL', 'cart:{user-c9}', 'cart_count:{user-c9}');
my ($status, $body) = CartClient::request('POST', '/api/v1/cart/share', 'c8');
Test::More::is($status, 201, 'share');
my ($token) = $body =~ /"token":"([^"]+)"/;
Test::More::like(main::cl('GET', "share:{$token}"), qr/\|user-c8$/, 'token key on its slot');
main::cl('SET', "share:{$main::T}", '1893456000|user-c8', 'EX', 3600);
--- request eval
["GET /api/v1/cart/shared/$main::T", "POST /api/v1/cart/shared/$main::T/copy"]
--- more_headers
X-User-Id: c9
--- response_body_like eval
['^\{"items":\[\{"sku_id":"SKU-1","quantity":2,', '"item_count":2']



=== TEST 9: checkout: the cart becomes an order; nothing to check out is 422
--- init
main::seed('c10');
main::cl('HSET', 'cart:{user-c10}', '#a', 'US|94107');
main::cl('DEL', 'cart:{user-c11}', 'cart_count:{user-c11}');
--- request eval
["POST /api/v1/cart/checkout", "GET /api/v1/cart/count", "POST /api/v1/cart/checkout"]
--- more_headers eval
["X-User-Id: c10", "X-User-Id: c10", "X-User-Id: c11"]
--- error_code eval
[200, 200, 422]
--- response_body_like eval
['"checkout_id":"', '^\{"item_count":0\}$', '"cart_empty"']



=== TEST 10: a slot migrating: reads and a write whose keys all moved are followed by ASK
--- init
main::seed('ask');
CartClient::request('GET', '/nocatalog/count', 'ask');        # map known
CartClient::request('POST', '/nocatalog/items', 'ask',
                    '{"sku_id":"SKU-3","quantity":1}');      # activity key
our $To = (grep { $_ != main::owner('cart:{user-ask}') } @main::Ports)[0];
main::migrate('cart:{user-ask}', $To);
--- request eval
["GET /nocatalog/count", "GET /nocatalog",
 "POST /nocatalog/items\n{\"sku_id\":\"SKU-3\",\"quantity\":1}"]
--- more_headers
X-User-Id: ask
Content-Type: application/json
--- response_body_like eval
['^\{"item_count":3\}$', '"version":6', '"quantity":2,.*"version":7']
--- error_log eval
qr/following "ASK \d+ 127\.0\.0\.1:\d+"/
--- no_error_log
[error]



=== TEST 11: still migrating: a write needing a key the new master lacks is TRYAGAIN, 503
--- request
POST /nocatalog/items
{"sku_id":"SKU-3","quantity":1}
--- more_headers
X-User-Id: ask
Content-Type: application/json
Idempotency-Key: new-key
--- error_code: 503
--- response_headers
Retry-After: 1
--- response_body_like: "store_unavailable"
--- error_log eval
qr/answered "TRYAGAIN/



=== TEST 11b: still migrating, the new master hangs: the command redirected there times out (503), its late answer goes nowhere
--- http_config eval
"cart_redis redis://127.0.0.1:$main::P;\ncart_redis_cluster on;\ncart_redis_timeout 300ms;"
--- init
CartClient::request('GET', '/nocatalog/count', 'ask');        # map known
open my $fh, '<', "$main::Dir/$main::To/redis.pid" or die "pid: $!";
chomp(our $ToPid = <$fh>);
kill 'STOP', $ToPid;
if (fork() == 0) {
    select(undef, undef, undef, 1.0);
    kill 'CONT', $main::ToPid;
    require POSIX; POSIX::_exit(0);
}
--- request eval
["GET /nocatalog/count", "GET /wait", "GET /nocatalog/count"]
--- more_headers
X-User-Id: ask
--- error_code eval
[503, 200, 200]
--- response_body_like eval
['"store_timeout"', '', '^\{"item_count":4\}$']
--- timeout: 10
--- no_error_log
[alert]
[crit]



=== TEST 12: the migration finished: MOVED is followed once, then the slot is remembered; the data moved with it
--- init
CartClient::request('GET', '/nocatalog/count', 'ask');        # map known
main::migrate('cart:{user-ask}', $main::To, 1);
Test::More::is(main::owner('cart:{user-ask}'), $main::To, 'slot moved');
my @r = (join(' ', CartClient::request('GET', '/nocatalog/count', 'ask')),
         join(' ', CartClient::request('POST', '/nocatalog/items', 'ask',
                                       '{"sku_id":"SKU-3","quantity":1}')),
         join(' ', CartClient::request('GET', '/nocatalog/count', 'ask')));
Test::More::like($r[0], qr/^200 \{"item_count":4\}$/, 'count after MOVED');
Test::More::like($r[1], qr/^200 .*"quantity":3,.*"version":8/, 'write');
Test::More::like($r[2], qr/^200 \{"item_count":5\}$/, 'count');
open my $log, '<', "$main::ServRoot/logs/error.log" or die "error.log: $!";
my @moved = grep { /following "MOVED \d+ 127\.0\.0\.1:$main::To"/ } <$log>;
Test::More::is(scalar(@moved), 1, 'one MOVED: the slot map was updated');
--- request
GET /nocatalog/count
--- more_headers
X-User-Id: ask
--- response_body chomp
{"item_count":5}
--- no_error_log
[error]



=== TEST 13: a master stopped: 503 for its slots at once, the other masters keep working; restarted: recovered
--- init
CartClient::request('GET', '/nocatalog/count', 'down');
main::node_ctl('stop', $main::Down);
if (fork() == 0) {
    select(undef, undef, undef, 1.5);
    main::node_ctl('start', $main::Down);
    require POSIX; POSIX::_exit(0);
}
--- request eval
["POST /nocatalog/items\n{\"sku_id\":\"SKU-1\",\"quantity\":1}",
 "GET /nocatalog/count",
 "GET /nocatalog/count",
 "GET /wait", "GET /wait",
 "POST /nocatalog/items\n{\"sku_id\":\"SKU-1\",\"quantity\":1}",
 "GET /nocatalog/count"]
--- more_headers eval
["X-User-Id: down\nContent-Type: application/json",
 "X-User-Id: down",
 "X-User-Id: $main::Up",
 "", "",
 "X-User-Id: down\nContent-Type: application/json",
 "X-User-Id: down"]
--- error_code eval
[503, 503, 200, 200, 200, 200, 200]
--- response_body_like eval
['"store_unavailable"', '"store_unavailable"', '^\{"item_count":\d+\}$', '', '',
 '"version":1', '^\{"item_count":1\}$']
--- timeout: 10
--- no_error_log
[alert]
[crit]



=== TEST 14: seeds that cannot be reached: 503 at once, not a hang
--- http_config eval
"cart_redis redis://127.0.0.1:" . ($main::P + 5) . ";\ncart_redis_cluster on;"
--- request eval
["GET /nocatalog/count", "POST /nocatalog/items\n{\"sku_id\":\"SKU-1\",\"quantity\":1}"]
--- more_headers
X-User-Id: c1
Content-Type: application/json
--- error_code eval
[503, 503]
--- response_headers eval
[{'Retry-After' => '1'}, {'Retry-After' => '1'}]
--- response_body_like eval
['"store_unavailable"', '"store_unavailable"']
--- timeout: 2
