# docs/openapi.yaml cannot drift: every answer the suite received on a
# cart_api or cart_admin location (captured by the own runner into
# TEST_NGINX_CAPTURE, which util/test.sh sets) is validated against the
# operation's response in the document: status, content type, the body's
# JSON Schema, documented headers. With the whole suite
# (TEST_NGINX_CAPTURE_ALL) every operation must also have been answered with
# a success. The validator is t/openapi/validate.js (node, ajv, yaml; its
# modules installed by util/test.sh with npm ci). Runs last: prove takes
# t/ in name order.

use strict;
use warnings;
use File::Basename qw(dirname);
use Cwd qw(abs_path);

my $top = abs_path(dirname(__FILE__) . '/..');
chdir $top or die "cd $top: $!";

$| = 1;

my $capture = $ENV{TEST_NGINX_CAPTURE};
if (!$capture) {
    print "1..0 # SKIP no TEST_NGINX_CAPTURE: run the suite with util/test.sh (make test)\n";
    exit 0;
}
if (!-e $capture) {
    # the real Test::Nginx captures nothing
    print "1..0 # SKIP nothing captured in $capture (the real Test::Nginx ran?)\n";
    exit 0;
}

if (system('node util/npm-installed.js t/openapi') != 0) {
    print "1..1\nnot ok 1 - the validator's node modules are installed"
        . " (npm ci --prefix t/openapi)\n";
    exit 1;
}

my @cmd = ('node', 't/openapi/validate.js', 'docs/openapi.yaml', $capture,
           ($ENV{TEST_NGINX_CAPTURE_ALL} ? '--all' : ()));

open my $run, '-|', @cmd or die "run @cmd: $!";
# the TAP goes to prove as it comes, but for the plan, which goes last
my ($tests, $failures) = (0, 0);
while (my $line = <$run>) {
    next if $line =~ /^1\.\.\d+/;
    if ($line =~ /^(not )?ok \d+/) {
        $tests++;
        $failures++ if $1;
    } elsif ($line !~ /^#/) {
        $line = "# $line";
    }
    print $line;
}
close $run;
my $status = $? >> 8;

if ($status != 0 && $failures == 0) {
    # every check said ok, yet the validator failed (it died)
    $tests++;
    print "not ok $tests - the validator exited with $status\n";
}
print "1..$tests\n";
exit($status || $failures ? 1 : 0);
