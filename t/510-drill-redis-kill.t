# Drill: Redis killed (kill -9) under a load of writes, down for 1 s, then
# started again on its append-only file. With appendfsync always no
# acknowledged write may be lost (asserted); with appendfsync everysec
# the loss is measured and printed, not asserted. See t/lib/CartDrill.pm.

use strict;
use warnings;
use lib 't/lib';
use CartDrill;
use Test::More;

CartDrill::plan_drill('redis-kill9');
CartDrill::catalog_start(name => 'redis-kill9');

for my $fsync ('always', 'everysec') {
    my $name = "redis-kill9-$fsync";
    my $redis = CartDrill::redis_start(name => $name, appendfsync => $fsync);
    my $nginx = CartDrill::nginx_start(name => $name);
    my $r = CartDrill::load(
        name  => $name,
        fault => sub {
            my ($f) = @_;
            $f->start('kill -9');
            CartDrill::redis_kill($redis);
            CartDrill::nap(1);
            CartDrill::redis_run($redis);      # loads its AOF
            $f->end;
        },
    );
    CartDrill::verify($r);
    CartDrill::report($r, note => "appendonly yes, appendfsync $fsync; "
                                  . 'down 1 s, restarted on its AOF');
    CartDrill::check_ledger($r, loss_allowed => $fsync ne 'always');
    ok($r->{status}{503} || $r->{status}{0},
       "$name: writes not acknowledged while Redis was down");
    diag($_) for CartDrill::log_digest(CartDrill::error_log($nginx));
    CartDrill::cleanup_now('nginx');
    CartDrill::cleanup_now('redis');
}
