# The include rule of docs/design.md ("a file includes only headers of its
# own layer or below"), checked by util/layers.sh over the module's sources.

use strict;
use warnings;
use Test::More tests => 2;

my $out = `util/layers.sh 2>&1`;
is($?, 0, 'util/layers.sh finds no include of an upper layer') or diag($out);
like($out, qr/every include is of the file's layer or below/, 'it says so');
