# The handshake gates every connection: no command runs before AUTH,
# SELECT and SCRIPT LOAD have succeeded on it. Against a Redis of its own
# (TEST_NGINX_REDIS_PORT + 11, started and stopped here) with 4 databases,
# an ACL user, and later a password for the default user.
#
# The blocks that check the gate hold the handshake up: the block before
# pauses that Redis (CLIENT PAUSE) as it ends, so the next nginx connects
# into the pause and its first write arrives while AUTH or SELECT has not
# been answered yet. Without the gate the write was pipelined behind
# them and ran as Redis's default user, or in database 0.

use lib 't/lib';
use CartTest;
use CartConf;
use CartClient;
use Test::More ();

our ($Port, $Dir, $Password);
BEGIN {
    $Port = ($ENV{TEST_NGINX_REDIS_PORT} // 16379) + 11;
    $ENV{TEST_NGINX_REDIS_AUTH_PORT} = $Port;
    $Dir = ($ENV{TEST_NGINX_REDIS_DIR} // 't/servroot-redis') . '-auth';
}

plan 'no_plan';
no_shuffle();
add_block_preprocessor(\&CartConf::default_config);

# How long a gate block's Redis holds the handshake up; under valgrind
# nginx takes seconds to start.
our $Pause = $ENV{TEST_NGINX_USE_VALGRIND} ? 8000 : 2500;

sub ctl {
    my ($action, @conf) = @_;
    local $ENV{REDISCLI_AUTH} = $Password if defined $Password;
    system($ENV{TEST_NGINX_REDIS_CTL} // 'util/redis.sh', $action, $Port,
           $Dir, @conf) == 0
        or die "redis on $Port: $action failed\n";
}

sub start {
    ctl('stop');
    system('mkdir', '-p', $Dir) == 0 or die "mkdir $Dir\n";
    open my $fh, '>', "$Dir/redis.conf" or die "$Dir/redis.conf: $!\n";
    print {$fh} "databases 4\nsave \"\"\nappendonly no\n",
                "user cart-acl on >acl-pw ~* &* +\@all\n";
    close $fh;
    ctl('start', "$Dir/redis.conf");
}

# redis_cmd for this Redis
sub cmd {
    my @auth = defined $Password ? ('--no-auth-warning', '-a', $Password) : ();
    open my $out, '-|', 'redis-cli', '-h', '127.0.0.1', '-p', $Port, @auth,
                        '--raw', @_
        or die "cannot run redis-cli: $!\n";
    my $output = do { local $/; <$out> } // '';
    close $out or die "redis-cli @_ failed\n";
    chomp $output;
    return $output;
}

sub in_db {
    my ($db, @args) = @_;
    my $script = "redis.call('SELECT', ARGV[1]) return redis.call(unpack(ARGV, 2))";
    return cmd('EVAL', $script, 0, $db, @args);
}

sub hold_handshake {
    cmd('CLIENT', 'PAUSE', $Pause, 'ALL');
}

END { ctl('stop') if $Dir && -e "$Dir/redis.pid" }

run_tests();

__DATA__

=== TEST 1: (sets up TEST 2) a Redis of our own: 4 databases, user cart-acl, no password for the default user
--- init
main::start();
main::cmd('FLUSHALL');
main::hold_handshake();
--- config
    location = /t {
        return 200 "ok\n";
    }
--- request
GET /t
--- response_body
ok



=== TEST 2: a wrong password for an ACL user: the write waits for the handshake, AUTH fails, the write never runs (503 store_unavailable); the log names the node without its password
--- http_config
cart_redis redis://cart-acl:wrong-s3cret@127.0.0.1:$TEST_NGINX_REDIS_AUTH_PORT;
cart_redis_timeout 1s;
--- request
POST /nocatalog/items
{"sku_id":"SKU-1","quantity":1}
--- more_headers
X-User-Id: h2
Content-Type: application/json
--- error_code: 503
--- response_headers
Retry-After: 1
--- response_body_like: ^\{"error":\{"code":"store_unavailable","message":"[^"]+"\}\}$
--- wait eval: $main::Pause / 1000 + 0.5
--- error_log eval
qr/cart redis: AUTH on "redis:\/\/cart-acl:\*\*\*\@127\.0\.0\.1:\d+" failed: WRONGPASS/
--- no_error_log
wrong-s3cret
[alert]
[crit]



=== TEST 3: (checks of TEST 2) nothing was written as the default user; (sets up TEST 4)
--- init
Test::More::is(main::in_db(0, 'EXISTS', 'cart:{user-h2}'), 0,
               'no cart written as the default user');
Test::More::is(main::in_db(0, 'EXISTS', 'cart_count:{user-h2}'), 0,
               'no counter either');
main::hold_handshake();
--- config
    location = /t {
        return 200 "ok\n";
    }
--- request
GET /t
--- response_body
ok



=== TEST 4: a database beyond "databases": the write waits for the handshake, SELECT fails, nothing goes to database 0 (503 store_unavailable)
--- http_config
cart_redis redis://127.0.0.1:$TEST_NGINX_REDIS_AUTH_PORT/9;
cart_redis_timeout 1s;
--- request
POST /nocatalog/items
{"sku_id":"SKU-1","quantity":1}
--- more_headers
X-User-Id: h4
Content-Type: application/json
--- error_code: 503
--- response_body_like: "code":"store_unavailable"
--- wait eval: $main::Pause / 1000 + 0.5
--- error_log eval
qr/cart redis: SELECT on "redis:\/\/127\.0\.0\.1:\d+\/9" failed: ERR DB index is out of range, closing the connection/
--- no_error_log
[alert]
[crit]



=== TEST 5: (checks of TEST 4) nothing in database 0; (sets up TEST 6) the default user gets a password
--- init
Test::More::is(main::in_db(0, 'DBSIZE'), 0, 'database 0 is empty');
main::cmd('CONFIG', 'SET', 'requirepass', 's3cret');
$main::Password = 's3cret';
--- config
    location = /t {
        return 200 "ok\n";
    }
--- request
GET /t
--- response_body
ok



=== TEST 6: requirepass: redis://:password@ sends AUTH password
--- http_config
cart_redis redis://:s3cret@127.0.0.1:$TEST_NGINX_REDIS_AUTH_PORT/1;
--- request eval
["POST /nocatalog/items\n{\"sku_id\":\"SKU-1\",\"quantity\":2}", "GET /nocatalog/count"]
--- more_headers
X-User-Id: h6
Content-Type: application/json
--- response_body_like eval
['"quantity":2,.*"version":1', '^\{"item_count":2\}$']
--- no_error_log
[error]



=== TEST 7: an ACL user: redis://user:password@ sends AUTH user password
--- http_config
cart_redis redis://cart-acl:acl-pw@127.0.0.1:$TEST_NGINX_REDIS_AUTH_PORT/2;
--- request eval
["POST /nocatalog/items\n{\"sku_id\":\"SKU-2\",\"quantity\":3}", "GET /nocatalog/count"]
--- more_headers
X-User-Id: h7
Content-Type: application/json
--- response_body_like eval
['"quantity":3,.*"version":1', '^\{"item_count":3\}$']
--- no_error_log
[error]



=== TEST 8: a wrong password for the default user: 503 store_unavailable, the failure logged, the password not
--- http_config
cart_redis redis://:nope-s3cret@127.0.0.1:$TEST_NGINX_REDIS_AUTH_PORT;
--- request
POST /nocatalog/items
{"sku_id":"SKU-1","quantity":1}
--- more_headers
X-User-Id: h8
Content-Type: application/json
--- error_code: 503
--- response_body_like: "code":"store_unavailable"
--- error_log eval
qr/cart redis: AUTH on "redis:\/\/:\*\*\*\@127\.0\.0\.1:\d+" failed: WRONGPASS/
--- no_error_log
nope-s3cret



=== TEST 9: (checks of TEST 6 to 8) each cart in its database, nothing else anywhere; the Redis is stopped
--- init
Test::More::like(main::in_db(1, 'HGET', 'cart:{user-h6}', 'SKU-1'), qr/^2\|/,
                 'the requirepass cart is in database 1');
Test::More::like(main::in_db(2, 'HGET', 'cart:{user-h7}', 'SKU-2'), qr/^3\|/,
                 'the ACL user cart is in database 2');
Test::More::is(main::in_db(0, 'DBSIZE'), 0, 'database 0 is still empty');
Test::More::is(main::in_db(1, 'EXISTS', 'cart:{user-h8}')
               + main::in_db(0, 'EXISTS', 'cart:{user-h8}'), 0,
               'the wrong password wrote nothing');
main::ctl('stop');
--- config
    location = /t {
        return 200 "ok\n";
    }
--- request
GET /t
--- response_body
ok
