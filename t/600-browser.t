# The browser client and the demo storefront. First the client's logic
# without a browser (t/browser/client.test.mjs, node --test), then the
# store in a real browser: Debian's chromium driven by playwright-core
# (t/browser/store.e2e.mjs) against an nginx of its own, configured from
# conf/nginx.conf exactly as `make run` renders it (util/run.sh render),
# on TEST_NGINX_PORT and the suite's Redis.
#
# "Server stopped" is the real thing: the scenario stops this nginx
# (nginx -s stop) while the page, loaded before, stays open, and starts it
# again; nothing is simulated in the page. Screenshots: build/browser/.
# Skips only when chromium or node is missing (util/deps.sh installs both);
# without its node modules (util/test.sh: npm ci in t/browser) it fails.

use strict;
use warnings;
use File::Basename qw(dirname);
use Cwd qw(abs_path);
use lib 't/lib';
use CartTest ();
use JSON::PP ();

my $top = abs_path(dirname(__FILE__) . '/..');
chdir $top or die "cd $top: $!";
$| = 1;

if (!-x '/usr/bin/chromium' || system('node --version >/dev/null 2>&1') != 0) {
    print "1..0 # SKIP needs /usr/bin/chromium and node (util/deps.sh)\n";
    exit 0;
}
if ($ENV{TEST_NGINX_USE_HUP}) {
    print "1..0 # SKIP an nginx of its own, stopped and started: not a HUP test\n";
    exit 0;
}

my $tests = 0;
my $failures = 0;
sub check {
    my ($ok, $name) = @_;
    $tests++;
    $failures++ unless $ok;
    print(($ok ? '' : 'not ') . "ok $tests - $name\n");
    return $ok;
}

# Passes a node --test TAP stream through, numbering its top-level results
# as ours (its subtests and diagnostics as comments).
sub run_node {
    my @cmd = @_;
    open my $run, '-|', @cmd or die "run @cmd: $!";
    # the whole TAP of node, failures' details included
    mkdir "$top/build/browser";
    open my $keep, '>>', "$top/build/browser/node.tap" or die $!;
    my ($seen, $failing) = (0, 0);
    while (my $line = <$run>) {
        print {$keep} $line;
        if ($line =~ /^(not )?ok \d+ - (.*)/) {
            check(!$1, $2);
            $seen++;
            $failing = $1;
        } elsif ($line !~ /^(?:TAP version|1\.\.\d+)/) {
            # a failure's details to stderr, where prove shows them
            print { $failing ? \*STDERR : \*STDOUT } "# $line";
        }
    }
    close $run;
    my $status = $? >> 8;
    check(0, "@cmd exited with $status") if $status != 0 && $failures == 0;
    check(0, "@cmd reported no test") if $seen == 0;
}

my @node_test = ('node', '--test', '--test-reporter=tap',
                 '--test-concurrency=1');

mkdir "$top/build";
unlink "$top/build/browser/node.tap";
run_node(@node_test, 't/browser/client.test.mjs');

if (!check(system('node util/npm-installed.js t/browser') == 0,
           "t/browser's node modules are installed (npm ci --prefix t/browser)")) {
    print "1..$tests\n";
    exit 1;
}

my $dir = ($ENV{TEST_NGINX_SERVROOT} // "$top/t/servroot") . '-browser';
my $port = $ENV{TEST_NGINX_PORT} // 1984;
system('rm', '-rf', $dir);
{
    local $ENV{CART_RUN_DIR} = $dir;
    local $ENV{CART_PORT} = $port;
    local $ENV{CART_REDIS_PORT} = $ENV{TEST_NGINX_REDIS_PORT};
    local $ENV{CART_MODULE_SO} = $ENV{TEST_NGINX_CART_SO}
        // "$top/build/nginx/ngx_http_cart_module.so";
    system('util/run.sh', 'render') == 0 or die "util/run.sh render failed\n";
}
# the nginx the scenario stops and starts: ASan's preload included
my @nginx = (CartTest::nginx_command(), '-p', "$dir/", '-c', 'conf/nginx.conf');

sub stop_nginx {
    open my $saved, '>&', \*STDERR or die $!;
    open STDERR, '>', '/dev/null' or die $!;
    system(@nginx, '-s', 'stop');
    open STDERR, '>&', $saved or die $!;
}
END { stop_nginx() if @nginx && -s "$dir/logs/nginx.pid" }

if (!check(system(@nginx) == 0, "nginx starts with the demo configuration")) {
    print "1..$tests\n";
    exit 1;
}

{
    local $ENV{STORE_URL} = "http://127.0.0.1:$port";
    local $ENV{E2E_NGINX} = JSON::PP::encode_json(\@nginx);
    local $ENV{E2E_SHOTS} = "$top/build/browser";
    local $ENV{E2E_RUN} = $$ . time;
    local $ENV{NODE_PATH};
    run_node(@node_test, 't/browser/store.e2e.mjs');
}

# what the worker logged of note while the browser used it
if (open my $log, '<', "$dir/logs/error.log") {
    my @bad = grep { /\[(?:alert|emerg|crit)\]|sanitizer|segfault/i } <$log>;
    check(!@bad, 'no alert, crit or emerg in the error log')
        or print map { "# $_" } @bad;
}

print "1..$tests\n";
exit($failures ? 1 : 0);
