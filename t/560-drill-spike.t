# Drill: a traffic spike, 10x: 2 clients write at 40 writes/s each, then
# 18 more join for 3 s. The cart locations shed what is over 200 requests/s
# with limit_req (429 too_many_requests, Retry-After: 1); the clients retry
# after Retry-After with the same Idempotency-Key. No acknowledged write is
# lost; latency before and during the spike is printed. See
# t/lib/CartDrill.pm.

use strict;
use warnings;
use lib 't/lib';
use CartDrill;
use Test::More;

my $name = 'traffic-spike';
CartDrill::plan_drill($name);

CartDrill::redis_start(name => $name);
CartDrill::catalog_start(name => $name);
my $nginx = CartDrill::nginx_start(name => $name, http => <<'_EOC_');
limit_req_zone $server_port zone=drill_carts:1m rate=200r/s;
    limit_req zone=drill_carts burst=20 nodelay;
    limit_req_status 429;
_EOC_

my $r = CartDrill::load(
    name    => $name,
    clients => 20,
    base    => 2,
    rate    => 40,
    path    => '/api/v1/cart',
    warmup  => 2,
    after   => 2,
    fault   => sub {
        my ($f) = @_;
        $f->start('10x clients');
        $f->spike_begin;
        CartDrill::nap(3);
        $f->spike_end;
        $f->end;
    },
);
CartDrill::verify($r);
my ($fs, $fe) = @{ $r->{faults}[0] }[1, 2];
my $note = sprintf('2 -> 20 clients at 40 writes/s each for 3 s, limit_req '
    . '200 r/s burst 20; latency p50/p99 %.1f/%.1f ms before, %.1f/%.1f ms '
    . 'during',
    1000 * CartDrill::latency($r, 50, undef, $fs),
    1000 * CartDrill::latency($r, 99, undef, $fs),
    1000 * CartDrill::latency($r, 50, $fs, $fe),
    1000 * CartDrill::latency($r, 99, $fs, $fe));
CartDrill::report($r, note => $note);
CartDrill::check_ledger($r);
ok($r->{status}{429}, 'the spike was shed with 429');
ok(!grep({ /^5/ } keys %{ $r->{status} }), 'no 5xx');
diag($_) for CartDrill::log_digest(CartDrill::error_log($nginx));
