# Drill: nginx reloaded (SIGHUP) twice under a load of writes. No
# acknowledged write is lost, and the old workers leave no Redis
# connection behind. See t/lib/CartDrill.pm.

use strict;
use warnings;
use lib 't/lib';
use CartDrill;
use Test::More;

my $name = 'nginx-reload';
CartDrill::plan_drill($name);

CartDrill::redis_start(name => $name);
CartDrill::catalog_start(name => $name);
my $nginx = CartDrill::nginx_start(name => $name);
my $master = CartDrill::nginx_master($nginx);

# SIGHUP, then waits until the master has two workers it did not have before
sub reload {
    my ($f) = @_;
    my %old = map { $_ => 1 } CartDrill::workers($master);
    $f->start('HUP');
    kill 'HUP', $master;
    for (1 .. 400) {
        last if 2 <= grep { !$old{$_} } CartDrill::workers($master);
        CartDrill::nap(0.025);
    }
    $f->end;
}

# Redis clients other than this redis-cli, once the workers are connected
sub clients {
    return scalar grep { !/cmd=client/ } split /\n/,
                   CartDrill::cli(undef, 'CLIENT', 'LIST');
}
my $before = 0;
for (1 .. 50) {
    my $n = clients();
    last if $n && $n == $before;
    $before = $n;
    CartDrill::nap(0.1);
}

my $r = CartDrill::load(
    name  => $name,
    path  => ['/api/v1/cart', '/api/v1/cart', '/nocatalog', '/nocatalog'],
    fault => sub {
        my ($f) = @_;
        reload($f);
        CartDrill::nap(1.5);
        reload($f);
    },
);
CartDrill::verify($r);
my $non2xx = grep { !/^2/ } keys %{ $r->{status} };
CartDrill::report($r, note => 'two HUPs 1.5 s apart');
CartDrill::check_ledger($r);
is($non2xx, 0, 'every request answered 2xx across the reloads');
# as many connections as before: the old workers closed theirs
my $clients;
for (1 .. 100) {
    $clients = clients();
    last if $clients == $before;
    CartDrill::nap(0.1);
}
is($clients, $before, "the old workers closed their Redis connections "
                      . "($before before the reloads)");
diag($_) for CartDrill::log_digest(CartDrill::error_log($nginx));
