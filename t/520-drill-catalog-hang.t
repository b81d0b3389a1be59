# Drill: the catalog stops answering (its nginx is SIGSTOPped: connections
# are accepted, nothing is answered) for 4 s under writes and views. Adds,
# which price from the catalog, answer 503 catalog_unavailable after
# cart_lookup_timeout (1 s here) instead of hanging; PUT and DELETE do not
# ask the catalog and go on (two of the four clients only PUT); views
# answer 200 with price_verified false.
# Every answer comes within a bound. See t/lib/CartDrill.pm.

use strict;
use warnings;
use lib 't/lib';
use CartDrill;
use Test::More;

my $name = 'catalog-hang';
CartDrill::plan_drill($name);

CartDrill::redis_start(name => $name);
my $catalog = CartDrill::catalog_start(name => $name);
my $nginx = CartDrill::nginx_start(name => $name);

my $r = CartDrill::load(
    name  => $name,
    path  => '/api/v1/cart',
    mix   => ['all', 'all', 'set', 'set'],   # two clients only PUT
    reads => 5,
    fault => sub {
        my ($f) = @_;
        $f->start('catalog SIGSTOP');
        kill 'STOP', $catalog;
        CartDrill::nap(4);
        kill 'CONT', $catalog;
        $f->end;
    },
);
CartDrill::verify($r);
my ($fs, $fe) = @{ $r->{faults}[0] }[1, 2];
my (%during, $slowest_add);
for my $a (@{ $r->{answers} }) {
    next if $a->[0] < $fs || $a->[0] > $fe;
    $during{"$a->[4] $a->[2]"}++;
}
my $note = sprintf('catalog hung 4 s, cart_lookup_timeout 1s; during it: '
    . 'adds %s, sets/deletes %s, views %s (%d with price_verified false)',
    join('/', map { "$_:" . ($during{"add $_"} // 0) } 200, 503),
    join('/', map { "$_:" . (($during{"set $_"} // 0)
                             + ($during{"del $_"} // 0)) } 200, 503),
    join('/', map { "$_:" . ($during{"view $_"} // 0) } 200, 503),
    $r->{views_unverified});
CartDrill::report($r, note => $note);
CartDrill::check_ledger($r);
ok($during{'add 503'}, 'adds answered 503 while the catalog hung');
ok(($during{'set 200'} // 0) + ($during{'del 200'} // 0),
   'PUT and DELETE went on while the catalog hung');
ok($r->{views_unverified}, 'views answered 200, prices flagged unverified');
ok(!grep({ $_->[4] eq 'view' && $_->[2] != 200 } @{ $r->{answers} }),
   'no view failed');
# a bound, not a timing: cart_lookup_timeout is 1 s, the box may be busy
cmp_ok($r->{max_latency}, '<', 5, 'every answer within 5 s');
diag($_) for CartDrill::log_digest(CartDrill::error_log($nginx));
