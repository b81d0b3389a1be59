# The pricing engine's unit tests (t/unit/engine_test.c): builds them with
# "make unit" and passes their TAP through; under VALGRIND=1 they run in
# memcheck; under ASAN=1 (TEST_NGINX_USE_ASAN) the ASan + UBSan build of
# the test module (make unit-build-asan) runs with the ASan runtime preloaded.
# Needs nginx-dev and /usr/sbin/nginx, no Redis.

use strict;
use warnings;
use File::Basename qw(dirname);
use Cwd qw(abs_path);

my $top = abs_path(dirname(__FILE__) . '/..');
chdir $top or die "cd $top: $!";

$| = 1;

my $log = "$top/build/unit/make.log";
system('mkdir', '-p', "$top/build/unit");

my $asan = $ENV{TEST_NGINX_USE_ASAN} && !$ENV{TEST_NGINX_USE_VALGRIND};
my $conf = 't/unit/engine.conf';

if (system("make -s -C '$top' " . ($asan ? 'unit-build-asan' : 'unit-build')
           . " >'$log' 2>&1") != 0)
{
    print "1..1\nnot ok 1 - make unit\n";
    open my $fh, '<', $log or exit 1;
    print "# $_" while <$fh>;
    exit 1;
}

if ($asan) {
    # the same configuration, loading the ASan build of the test module
    $conf = 'build/asan/unit/engine.conf';
    open my $in, '<', "$top/t/unit/engine.conf" or die "engine.conf: $!";
    open my $out, '>', "$top/$conf" or die "$conf: $!";
    while (my $line = <$in>) {
        $line =~ s{build/unit/nginx/}{build/asan/unit/};
        print {$out} $line;
    }
    close $out or die "$conf: $!";
}

my @cmd = ('/usr/sbin/nginx', '-q', '-t', '-p', "$top/", '-e', 'stderr',
           '-c', $conf);

if ($ENV{TEST_NGINX_USE_VALGRIND}) {
    # nginx -t leaves its cycle to exit(): invalid accesses only
    unshift @cmd, 'valgrind', '-q', '--error-exitcode=99', '--leak-check=no';

} elsif ($asan) {
    # reports to stderr, which become TAP comments; nginx -t leaves its
    # cycle to exit(): no leak checking
    unshift @cmd, 'env', "LD_PRELOAD=$ENV{TEST_NGINX_ASAN_PRELOAD}",
        'ASAN_OPTIONS=' . join(':', grep { length } $ENV{ASAN_OPTIONS} // '',
                                    'detect_leaks=0:log_path=stderr'),
        'UBSAN_OPTIONS=' . join(':', grep { length } $ENV{UBSAN_OPTIONS} // '',
                                     'halt_on_error=1:print_stacktrace=1:log_path=stderr');
}

# the TAP goes to prove as it comes; nginx's own messages become comments
open my $run, '-|', join(' ', map { "'$_'" } @cmd) . ' 2>&1'
    or die "run nginx: $!";

my ($plan, $seen) = (0, 0);

while (my $line = <$run>) {
    if ($line =~ /^1\.\.(\d+)$/) {
        $plan = $1;
    } elsif ($line =~ /^(not )?ok \d+/) {
        $seen++;
    } elsif ($line !~ /^#/) {
        $line = "# $line";
    }

    print $line;
}

close $run;
my $status = $? >> 8;

if ($status != 0 && $seen == $plan) {
    # every case said ok, yet nginx failed (valgrind, a crash at exit)
    print "not ok ", $plan + 1, " - nginx -t exited with $status\n";
}

exit($status ? 1 : 0);
