# Self-test of the test harness (t/lib/CartTest.pm and, where the real
# Test::Nginx::Socket is not installed, t/lib/CartTest/Runner.pm), using
# stock nginx directives only: no cart module, no Redis.

use strict;
use warnings;

BEGIN { $ENV{TEST_NGINX_CART_SO} = 'none' }    # run nginx without the cart module

use lib 't/lib';
use CartTest;

$ENV{TEST_NGINX_GREETING} = 'hello';

repeat_each(2);
no_shuffle();
plan 'no_plan';

run_tests();

# -- CartTest's block preprocessor, on stand-in blocks ----------------------

{
    package StubBlock;
    our $AUTOLOAD;
    sub new { my ($class, %sections) = @_; bless {%sections}, $class }
    sub set_value { $_[0]{ $_[1] } = $_[2] }
    sub AUTOLOAD { (my $name = $AUTOLOAD) =~ s/.*:://; $_[0]{$name} }
    sub DESTROY { }
}

{
    # Any existing file will do as the module here; the valgrind extras
    # are checked apart below.
    local $ENV{TEST_NGINX_CART_SO} = __FILE__;
    local $ENV{TEST_NGINX_USE_VALGRIND};
    my $redis = "cart_redis redis://127.0.0.1:$RedisPort;\n";

    my $block = StubBlock->new(http_config => "foo on;\n");
    CartTest::cart_block_preprocessor($block);
    is($block->main_config, "load_module ${\ __FILE__};\n",
       'preprocessor: loads the module');
    is($block->http_config, "${redis}foo on;\n",
       'preprocessor: points the module at the test Redis');

    $block = StubBlock->new(no_cart_module => '');
    CartTest::cart_block_preprocessor($block);
    ok(!defined $block->main_config && !defined $block->http_config,
       'preprocessor: --- no_cart_module leaves the block alone');

    $block = StubBlock->new(main_config => "load_module /x/ngx_http_cart_module.so;\n",
                            http_config => "cart_redis redis://10.0.0.1:1;\n");
    CartTest::cart_block_preprocessor($block);
    is($block->main_config, "load_module /x/ngx_http_cart_module.so;\n",
       'preprocessor: keeps the load_module of the block');
    is($block->http_config, "cart_redis redis://10.0.0.1:1;\n",
       'preprocessor: keeps the cart_redis of the block');

    {
        local $ENV{TEST_NGINX_USE_VALGRIND} = 1;
        $block = StubBlock->new(http_config => "foo on;\n");
        CartTest::cart_block_preprocessor($block);
        is($block->http_config,
           "cart_lookup_timeout 60s;\ncart_redis_timeout 5s;\n${redis}foo on;\n",
           'preprocessor: under valgrind, generous Redis and lookup timeouts');
        $block = StubBlock->new(http_config => "cart_redis_timeout 1s;\n"
                                               . "cart_lookup_timeout 1s;\n");
        CartTest::cart_block_preprocessor($block);
        is($block->http_config,
           "${redis}cart_redis_timeout 1s;\ncart_lookup_timeout 1s;\n",
           'preprocessor: ... unless the block sets its own');
    }

    local $ENV{TEST_NGINX_CART_SO} = 'none';
    $block = StubBlock->new;
    CartTest::cart_block_preprocessor($block);
    ok(!defined $block->main_config && !defined $block->http_config,
       'preprocessor: TEST_NGINX_CART_SO=none loads nothing');
}

# -- CartTest::Runner's HTTP client on its own ------------------------------

SKIP: {
    skip 'the real Test::Nginx::Socket is in use', 4
        unless $CartTest::Impl eq 'CartTest::Runner';

    my $res = CartTest::Runner::_parse_response(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        . "3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nX-Trailer: t\r\n\r\n", 0);
    ok($res->{complete} && $res->{body} eq 'abcde' && !$res->{error},
       'runner: decodes chunks with extensions and trailers');

    $res = CartTest::Runner::_parse_response(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n", 0);
    ok(!$res->{complete}, 'runner: a chunked body without its last chunk is incomplete');

    $res = CartTest::Runner::_parse_response(
        "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", 1);
    ok($res->{complete} && $res->{body} eq '',
       'runner: a HEAD response has no body');

    # A server that accepts and never answers.
    my $silent = IO::Socket::INET->new(Listen => 1, LocalAddr => '127.0.0.1',
                                       LocalPort => 0, Proto => 'tcp')
        or die "cannot listen: $!";
    my ($raw, $error) = CartTest::Runner::_http_exchange(
        $silent->sockport, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 0.3, 0);
    like($error, qr/request timed out/, 'runner: a request times out');
}

# -- CartTest::Runner's capture (TEST_NGINX_CAPTURE): locations as nginx
# -- picks them, paths as the module routes them -----------------------------

SKIP: {
    skip 'the real Test::Nginx::Socket is in use', 9
        unless $CartTest::Impl eq 'CartTest::Runner';

    my $locations = CartTest::Runner::_config_locations(<<'EOC');
    location /api/v1/cart {
        cart_api;    # a comment { with a brace
        cart_user $http_x_user_id;
    }
    location = /_catalog/SKU-1 { return 200 '{"sku_id":"SKU-1"}'; }
    location /admin/cart { allow 127.0.0.1; cart_admin; }
    location /outer { location /outer/inner { cart_api; } }
    location ^~ /api/v1/cart/static { root /tmp; }
EOC
    my $pick = sub {
        my $loc = CartTest::Runner::_match_location($locations, shift);
        return $loc ? join ' ', $loc->{path}, $loc->{kind} // '-' : 'none';
    };
    is($pick->('/api/v1/cart/items/SKU-1'), '/api/v1/cart cart_api',
       'capture: a cart_api prefix location');
    is($pick->('/admin/cart/promotions'), '/admin/cart cart_admin',
       'capture: a cart_admin location');
    is($pick->('/_catalog/SKU-1'), '/_catalog/SKU-1 -',
       'capture: an exact location, quoted braces and all');
    is($pick->('/outer/inner/count'), '/outer/inner cart_api',
       'capture: a nested location');
    is($pick->('/api/v1/cart/static/x'), '/api/v1/cart/static -',
       'capture: the longest prefix wins');
    is($pick->('/elsewhere'), 'none', 'capture: no location');
    is(CartTest::Runner::_normalized_path('/a//b/./c/../d?x=1'), '/a/b/d',
       'capture: the path without query, "//", "." and ".."');
    is(CartTest::Runner::_normalized_path('/a/%2E%2e/b%2F'), '/b/',
       'capture: %XX decoded before the dot segments');
    ok(!defined CartTest::Runner::_normalized_path('/..'),
       'capture: ".." above the root is no path');
}

__DATA__

=== TEST 1: exact response body, default status 200
--- config
    location = /t {
        return 200 "hello\n";
    }
--- request
GET /t
--- response_body
hello



=== TEST 2: one-line sections, chomp, error_code
--- config
    location = /t {
        return 201 "no newline";
    }
--- request: GET /t
--- error_code: 201
--- response_body chomp
no newline



=== TEST 3: response_body_like matches with /s
--- config
    location = /t {
        return 200 "line one\nline two\n";
    }
--- request
GET /t
--- response_body_like: ^line one.line two$



=== TEST 4: response_body_unlike, error_code_like
--- config
    location = /t {
        return 503 "busy\n";
    }
--- request
GET /t
--- error_code_like: ^5\d\d$
--- response_body_unlike: ok



=== TEST 5: response_headers: present, repeated, absent, empty
--- config
    location = /t {
        add_header X-Test yes;
        add_header X-Multi a;
        add_header X-Multi b;
        return 200 "ok\n";
    }
--- request
GET /t
--- response_headers
X-Test: yes
X-Multi: a, b
Content-Type: text/plain
!X-Absent
X-Not-Set:
--- response_body
ok



=== TEST 6: response_headers_like matches whole values
--- config
    location = /t {
        return 200 "ok\n";
    }
--- request
GET /t
--- response_headers_like
Content-Length: \d
Server: nginx(/[\d.]+)?



=== TEST 7: more_headers, replacing the default Host
--- config
    location = /t {
        return 200 "foo=$http_x_foo host=$host ua=$http_user_agent\n";
    }
--- request
GET /t
--- more_headers
X-Foo: bar
Host: example.com
User-Agent: runner
--- response_body
foo=bar host=example.com ua=runner



=== TEST 8: the request body is sent, with its Content-Length
--- config
    location = /echo {
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/sink;
        proxy_set_header X-Body $request_body;
        proxy_set_header X-Length $content_length;
    }
    location = /sink {
        return 200 "$request_method length=$http_x_length body=$http_x_body\n";
    }
--- request
POST /echo
hello world
--- response_body
POST length=11 body=hello world



=== TEST 9: several requests in one block, with arrays of expected results
--- config
    add_header X-Got $http_x_n always;
    location = /a {
        return 200 "A\n";
    }
    location = /b {
        return 404;
    }
--- request eval
["GET /a", "GET /b", "HEAD /a"]
--- more_headers eval
["X-N: 1", "X-N: 2", "X-N: 3"]
--- error_code eval
[200, 404, 200]
--- response_headers eval
["X-Got: 1", "X-Got: 2", "X-Got: 3\nContent-Length: 2"]
--- response_body eval
["A\n", qr{<title>404 Not Found</title>}, ""]



=== TEST 10: error_log and no_error_log, as text
--- config
--- request
GET /missing.txt
--- error_code: 404
--- error_log
No such file or directory
missing.txt
--- no_error_log
[alert]
[emerg]



=== TEST 11: error_log and no_error_log, as regexes and arrays
--- config
--- request
GET /missing.txt
--- error_code: 404
--- error_log eval
[qr/open\(\) "[^"]+\/missing\.txt" failed/, "[error]"]
--- no_error_log eval
qr/\[crit\]/



=== TEST 12: a block's log_level, and checks after each of several requests
--- config
--- log_level: warn
--- request eval
["GET /missing.txt", "GET /index.html"]
--- error_code eval
[404, 200]
--- response_body_like eval
["404 Not Found", "It works!"]
--- no_error_log
http request line



=== TEST 13: user_files, in sub-directories, with $TEST_NGINX_ variables
--- config
--- user_files
>>> hello.txt
hi there
>>> sub/dir/nested.txt
nested $TEST_NGINX_GREETING
--- request eval
["GET /hello.txt", "GET /sub/dir/nested.txt"]
--- response_body eval
["hi there\n", "nested hello\n"]



=== TEST 14: init code runs once nginx is up, before the requests
--- config
--- init
my $file = "$ENV{TEST_NGINX_HTML_DIR}/from-init.txt";
open my $fh, '>', $file or die "cannot write $file: $!";
print $fh "written by init\n";
close $fh or die "cannot write $file: $!";
--- request
GET /from-init.txt
--- response_body
written by init



=== TEST 15: $TEST_NGINX_ variables are expanded, nginx variables are not
--- config
    location = /t {
        return 200 "port=$TEST_NGINX_SERVER_PORT uri=$uri greeting=$TEST_NGINX_GREETING\n";
    }
--- request
GET /t
--- response_body
port=$TEST_NGINX_SERVER_PORT uri=/t greeting=$TEST_NGINX_GREETING



=== TEST 16: chunked responses are decoded
--- config
    location = /cat.txt {
        root $TEST_NGINX_HTML_DIR;
        sub_filter_types text/plain;
        sub_filter cat dog;
        sub_filter_once off;
    }
--- user_files
>>> cat.txt
cat and cat
--- request
GET /cat.txt
--- response_headers
Transfer-Encoding: chunked
!Content-Length
--- response_body
dog and dog



=== TEST 17: a response without length is read until the connection closes
--- config
    location = /cat.txt {
        root $TEST_NGINX_HTML_DIR;
        sub_filter_types text/plain;
        sub_filter cat dog;
        sub_filter_once off;
    }
--- user_files
>>> cat.txt
cat and cat
--- request
GET /cat.txt HTTP/1.0
--- response_headers
!Transfer-Encoding
!Content-Length
--- response_body
dog and dog



=== TEST 18: raw_request is sent as it is; timeout and wait
--- config
    location = /t {
        return 200 "host=$host\n";
    }
--- raw_request eval
"GET /t HTTP/1.0\r\nHost: raw.example\r\n\r\n"
--- timeout: 5s
--- wait: 0.1
--- response_body
host=raw.example
