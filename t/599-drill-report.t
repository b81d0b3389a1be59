# The fault drills' table: prints build/drills.md, which each drill
# (t/5xx-drill-*.t) updated with its row. See t/README.md#fault-drills.

use strict;
use warnings;
use lib 't/lib';
use CartDrill;
use Test::More;

my $md = "$CartDrill::Out.md";
if ($ENV{TEST_NGINX_USE_VALGRIND} || !-e $md) {
    plan skip_all => 'no drill has run';
}
plan tests => 1;
my $table = CartDrill::slurp($md);
my @rows = grep { /^\| [a-z]/ && !/^\| drill \|/ } split /\n/, $table;
ok(@rows, scalar(@rows) . " drills in $md");
diag("\n$table");
