# Drill: nginx's binary upgrade under a load of writes (SIGUSR2 to the
# master: a new master with new workers next to the old ones; then SIGQUIT
# to the old master), and the same upgrade rolled back as a bad deploy
# would be (SIGUSR2, SIGWINCH: the old workers leave; then SIGHUP to the
# old master: its workers come back, SIGQUIT to the new master). No
# acknowledged write is lost. See t/lib/CartDrill.pm.

use strict;
use warnings;
use lib 't/lib';
use CartDrill;
use Test::More;

CartDrill::plan_drill('nginx-upgrade');
CartDrill::redis_start(name => 'nginx-upgrade');
CartDrill::catalog_start(name => 'nginx-upgrade');
my $nginx = CartDrill::nginx_start(name => 'nginx-upgrade');

sub wait_for {
    my ($what, $cond) = @_;
    for (1 .. 600) {
        return 1 if $cond->();
        CartDrill::nap(0.025);
    }
    die "nginx-upgrade: timed out waiting for $what\n";
}

# SIGUSR2: -> the new master, once it has its 2 workers
sub usr2 {
    my ($old) = @_;
    kill 'USR2', $old;
    my $new;
    wait_for('the new master', sub {
        $new = CartDrill::nginx_master($nginx);
        return $new && $new != $old
               && CartDrill::workers($new) >= 2;
    });
    return $new;
}

my %phase = (
    'nginx-binary-upgrade' => sub {
        my ($f) = @_;
        my $old = CartDrill::nginx_master($nginx);
        $f->start('USR2 + QUIT');
        my $new = usr2($old);
        CartDrill::nap(0.5);                 # both generations serve
        kill 'QUIT', $old;
        wait_for('the old master to exit', sub { !CartDrill::alive($old) });
        $f->end;
    },
    'nginx-upgrade-rollback' => sub {
        my ($f) = @_;
        my $old = CartDrill::nginx_master($nginx);
        $f->start('USR2, WINCH, HUP old, QUIT new');
        my $new = usr2($old);
        my @old_workers = CartDrill::workers($old);
        kill 'WINCH', $old;                  # only the new binary serves
        wait_for('the old workers to leave',
                 sub { !grep { CartDrill::alive($_) } @old_workers });
        CartDrill::nap(0.5);
        kill 'HUP', $old;                    # the rollback: old workers back
        wait_for('the old workers to return',
                 sub { CartDrill::workers($old) >= 2 });
        kill 'QUIT', $new;
        wait_for('the new master to exit', sub { !CartDrill::alive($new) });
        wait_for('nginx.pid to name the old master again',
                 sub { (CartDrill::nginx_master($nginx) // 0) == $old });
        $f->end;
    },
);

for my $name ('nginx-binary-upgrade', 'nginx-upgrade-rollback') {
    my $r = CartDrill::load(
        name  => $name,
        path  => ['/api/v1/cart', '/api/v1/cart', '/nocatalog', '/nocatalog'],
        fault => $phase{$name},
    );
    CartDrill::verify($r);
    my $non2xx = grep { !/^2/ } keys %{ $r->{status} };
    my $took = $r->{faults}[0][2] - $r->{faults}[0][1];
    CartDrill::report($r, note => sprintf('%s, %.1f s from USR2 to one master',
                                          $r->{faults}[0][0], $took));
    CartDrill::check_ledger($r);
    is($non2xx, 0, "$name: every request answered 2xx");
}
my $master = CartDrill::nginx_master($nginx);
is(scalar(() = CartDrill::workers($master)), 2,
   'one master with its 2 workers in the end');
diag($_) for CartDrill::log_digest(CartDrill::error_log($nginx));
