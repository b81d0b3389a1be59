package CartTest;

# What every test file uses:
#
#   use lib 't/lib';
#   use CartTest;
#
# It gives the test file the API of OpenResty's Test::Nginx::Socket: the
# real one when it is installed (and TEST_NGINX_OWN_RUNNER is not set),
# else the project's own CartTest::Runner.  On top of that it
#
#  - loads the cart module into every block's nginx and points it at the
#    test Redis (see cart_block_preprocessor below);
#  - exports redis_cmd, redis_flush and $RedisPort for talking to that
#    Redis, plus $ServerPort, $ServRoot, done_testing and note;
#  - has nginx_command() for tests that run nginx themselves.
#
# See t/README.md.

use strict;
use warnings;

use Cwd ();
use File::Basename qw(dirname);
use Test::More ();

our $RedisPort;
BEGIN {
    $ENV{TEST_NGINX_REDIS_PORT} //= 16379;
    $RedisPort = $ENV{TEST_NGINX_REDIS_PORT};
}

my $RepoRoot = Cwd::abs_path(dirname(__FILE__) . '/../..');
my $DefaultModule = "$RepoRoot/build/nginx/ngx_http_cart_module.so";

# The implementation of the Test::Nginx::Socket API, and the package that
# holds its $ServerPort and $ServRoot.
our ($Impl, $ImplVars);
if (!$ENV{TEST_NGINX_OWN_RUNNER} && eval { require Test::Nginx::Socket; 1 }) {
    ($Impl, $ImplVars) = ('Test::Nginx::Socket', 'Test::Nginx::Util');

    # Test::Nginx sets no such variables; our tests use them in both worlds.
    $ENV{TEST_NGINX_HTML_DIR} //= Test::Nginx::Socket::html_dir();
    $ENV{TEST_NGINX_SERVROOT} //= Test::Nginx::Socket::server_root();
    $ENV{TEST_NGINX_PORT}     //= Test::Nginx::Socket::server_port();

    # Test::Nginx evaluates "--- init" code in Test::Nginx::Util and "eval"
    # sections in Test::Base::Filter, while our runner uses main, where the
    # helpers are exported: make the helpers callable there too.
    no strict 'refs';
    for my $package (qw(Test::Nginx::Util Test::Base::Filter)) {
        *{"${package}::$_"} = \&{$_} for qw(redis_cmd redis_flush);
    }
} else {
    require CartTest::Runner;
    ($Impl, $ImplVars) = ('CartTest::Runner', 'CartTest::Runner');
}

$Impl->can('add_block_preprocessor')->(\&cart_block_preprocessor);

sub import {
    my $caller = caller;

    # Export the implementation's API as "use $Impl;" in the test file would.
    eval "package $caller; $Impl->import; 1" or die $@;

    no strict 'refs';
    *{"${caller}::$_"} = \&{$_} for qw(redis_cmd redis_flush);
    *{"${caller}::$_"} = \&{"Test::More::$_"} for qw(done_testing note);
    *{"${caller}::RedisPort"}  = \$RedisPort;
    *{"${caller}::ServerPort"} = \${"${ImplVars}::ServerPort"};
    *{"${caller}::ServRoot"}   = \${"${ImplVars}::ServRoot"};
}

# Makes a block's nginx load the cart module and use the test Redis:
#
#  - prepends "load_module <so>;" to --- main_config, where <so> is
#    $TEST_NGINX_CART_SO, by default build/nginx/ngx_http_cart_module.so;
#    not when TEST_NGINX_CART_SO is "none", the block has a
#    "--- no_cart_module" section, or its main_config loads the module
#    itself;
#  - when the module is loaded, prepends
#    "cart_redis redis://127.0.0.1:<TEST_NGINX_REDIS_PORT>;" to
#    --- http_config, unless that has a cart_redis directive already;
#  - under valgrind, a generous cart_redis_timeout and cart_lookup_timeout
#    unless the block sets them.
sub cart_block_preprocessor {
    my ($block) = @_;
    my $module = $ENV{TEST_NGINX_CART_SO} // $DefaultModule;

    my $main_config = $block->main_config // '';
    my $loaded = $main_config =~ /\bload_module\s+\S*ngx_http_cart_module/;
    if (!$loaded && $module ne 'none' && !defined $block->no_cart_module) {
        Test::More::BAIL_OUT("cart module $module not found: build it with"
                             . " 'make' or set TEST_NGINX_CART_SO")
            unless -f $module;
        $block->set_value(main_config => "load_module $module;\n$main_config");
        $loaded = 1;
    }

    return unless $loaded;

    my $http_config = $block->http_config // '';
    if ($http_config !~ /\bcart_redis\b/) {
        $http_config = "cart_redis redis://127.0.0.1:$RedisPort;\n$http_config";
    }

    # under valgrind nginx runs ten times slower: the default 100ms Redis
    # timeout would turn the first commands after start-up into 503s
    if ($ENV{TEST_NGINX_USE_VALGRIND} && $http_config !~ /\bcart_redis_timeout\b/)
    {
        $http_config = "cart_redis_timeout 5s;\n$http_config";
    }

    # and a wave of lookups through the proxied shop takes seconds
    if ($ENV{TEST_NGINX_USE_VALGRIND}
        && $http_config !~ /\bcart_lookup_timeout\b/
        && ($block->config // '') !~ /\bcart_lookup_timeout\b/)
    {
        $http_config = "cart_lookup_timeout 60s;\n$http_config";
    }

    $block->set_value(http_config => $http_config);
}

# Runs one redis-cli command against the test Redis; returns its output
# (--raw: values as they are, one per line) without the final newline.
# Dies when redis-cli fails, e.g. because Redis is not running.
sub redis_cmd {
    my @args = @_;
    open my $out, '-|', 'redis-cli', '-h', '127.0.0.1', '-p', $RedisPort,
                        '--raw', @args
        or die "cannot run redis-cli: $!\n";
    my $output = do { local $/; <$out> } // '';
    close $out
        or die "redis-cli @args failed (exit status " . ($? >> 8) . ")\n";
    chomp $output;
    return $output;
}

# The command that runs nginx for a test that starts one itself (nginx -t,
# an nginx of its own): TEST_NGINX_BINARY, and in ASan mode (util/test.sh
# ASAN=1) with the ASan runtime preloaded, as the runner starts its own.
sub nginx_command {
    my @cmd = ($ENV{TEST_NGINX_BINARY} // '/usr/sbin/nginx');
    unshift @cmd, 'env', "LD_PRELOAD=$ENV{TEST_NGINX_ASAN_PRELOAD}"
        if $ENV{TEST_NGINX_USE_ASAN};
    return @cmd;
}

sub redis_flush {
    my $reply = redis_cmd('FLUSHALL');
    die "redis FLUSHALL failed: $reply\n" unless $reply eq 'OK';
    return;
}

# An answer a test read with its own client, for t/990-openapi.t: the own
# runner captures it with its own answers (TEST_NGINX_CAPTURE); under the
# real Test::Nginx nothing is captured. Called by full name.
sub capture_exchange {
    my ($method, $uri, $status, $headers, $body) = @_;
    return unless $Impl eq 'CartTest::Runner';
    CartTest::Runner::capture_exchange($method, $uri, $status, $headers, $body);
}

1;
