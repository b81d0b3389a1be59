# Drill: every Kafka broker down for 3 s under a load of writes (the mock
# cluster of util/kafka.sh refuses connections, as t/310 does), then back.
# The cart API answers as usual; the events wait in the workers' producers
# and are all delivered, each acknowledged write's event exactly once.
# See t/lib/CartDrill.pm.

use strict;
use warnings;
use lib 't/lib';
use CartDrill;
use CartKafka;
use Test::More;

my $name = 'kafka-down';
if (!$ENV{TEST_NGINX_KAFKA_BROKERS} || !$ENV{TEST_NGINX_KAFKA_CTL}) {
    CartDrill::report_skip($name, 'no test Kafka (run through util/test.sh)');
    plan skip_all => 'no test Kafka: util/test.sh starts one';
}
CartDrill::plan_drill($name);

CartDrill::redis_start(name => $name);
CartDrill::catalog_start(name => $name);
my $nginx = CartDrill::nginx_start(name => $name, http =>
    "cart_kafka_brokers $ENV{TEST_NGINX_KAFKA_BROKERS};\n"
    . "    cart_kafka_property reconnect.backoff.max.ms 500;");

# the producers connect before the outage
my $warm = "dr-$name-$CartDrill::Run-warm";
CartDrill::http('POST', '/nocatalog/items', $warm,
                '{"sku_id":"W","quantity":1}');
CartKafka::wait_events("user-$warm", 1);

my $r = CartDrill::load(
    name  => $name,
    fault => sub {
        my ($f) = @_;
        $f->start('brokers down');
        CartKafka::ctl('down');
        CartDrill::nap(3);
        CartKafka::ctl('up');
        $f->end;
    },
);
CartDrill::verify($r);

# every acknowledged version of every cart: one event, once
my ($want, $lost, $dup) = (0, 0, 0);
my %versions;
my $ledger = CartDrill::slurp("$CartDrill::Out/$name/ledger.txt");
for my $line (split /\n/, $ledger) {
    my (undef, undef, $u, undef, undef, undef, $v) = split / /, $line;
    next unless defined $v && $v =~ /^\d+$/;
    $versions{$u}{$v} = 1;
}
my $t0 = CartDrill::now();
for my $u (@{ $r->{users} }) {
    my @acked = keys %{ $versions{$u} // {} };
    $want += @acked;
    my @m = CartKafka::wait_events("user-$u", scalar @acked, 60);
    my %seen;
    $seen{ $_->{event}{version} // -1 }++ for @m;
    $lost += grep { !$seen{$_} } @acked;
    $dup += grep { $_ > 1 } values %seen;
}
my $drained = CartDrill::now() - $t0;
my ($st, undef, $status) = CartDrill::http('GET', '/_status', 'x');
my %c = $status =~ /outcome="(\w+)"\} (\d+)/g;
CartDrill::report($r, note => sprintf('brokers down 3 s; %d events expected, '
    . '%d lost, %d duplicated; cart_status enqueued %d, delivered %d, '
    . 'failed %d, dropped %d', $want, $lost, $dup,
    map { $c{$_} // -1 } qw(enqueued delivered failed dropped)));
CartDrill::check_ledger($r);
is($lost, 0, 'no event of an acknowledged write lost');
is($dup, 0, 'no event duplicated');
is($c{failed}, 0, 'cart_status: no event failed');
is($c{dropped}, 0, 'cart_status: no event dropped');
diag($_) for CartDrill::log_digest(CartDrill::error_log($nginx));
