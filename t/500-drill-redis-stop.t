# Drill: Redis hangs (SIGSTOP) for 3 s under a load of writes, then
# resumes (SIGCONT). Writes answer 503 within cart_redis_timeout while it
# hangs, retries with the same Idempotency-Key are acknowledged once it is
# back, and no acknowledged write is lost or applied twice. Two clients add
# through the catalog location (an add with a key reserves it first), two
# without. See t/lib/CartDrill.pm.

use strict;
use warnings;
use lib 't/lib';
use CartDrill;
use Test::More;

my $name = 'redis-sigstop';
CartDrill::plan_drill($name);

my $redis = CartDrill::redis_start(name => $name);
CartDrill::catalog_start(name => $name);
my $nginx = CartDrill::nginx_start(name => $name);

my $r = CartDrill::load(
    name  => $name,
    path  => ['/api/v1/cart', '/api/v1/cart', '/nocatalog', '/nocatalog'],
    fault => sub {
        my ($f) = @_;
        my $pid = CartDrill::redis_pid($redis);
        $f->start('SIGSTOP');
        kill 'STOP', $pid;
        CartDrill::nap(3);
        kill 'CONT', $pid;
        $f->end;
    },
);
CartDrill::verify($r);
CartDrill::report($r, note => 'Redis stopped 3 s');
CartDrill::check_ledger($r);
ok($r->{status}{503}, 'writes answered 503 while Redis was stopped');
diag($_) for CartDrill::log_digest(CartDrill::error_log($nginx));
