package CartCluster;

# The test Redis Cluster (util/redis-cluster.sh, started by util/test.sh):
# redis-cli on one of its nodes.

use strict;
use warnings;

# redis-cli -p $port --raw @args: its output without the final newline
sub cli {
    my ($port, @args) = @_;
    open my $out, '-|', 'redis-cli', '-h', '127.0.0.1', '-p', $port, '--raw',
                        @args
        or die "cannot run redis-cli: $!\n";
    my $output = do { local $/; <$out> } // '';
    close $out;
    chomp $output;
    return $output;
}

# the cluster at $port is up and serving every slot
sub ready {
    my ($port) = @_;
    return $port && cli($port, 'CLUSTER', 'INFO') =~ /cluster_state:ok/;
}

# $slot from master $from to master $to, its keys migrated, the move
# finished on every master of @ports
sub move_slot {
    my ($slot, $from, $to, @ports) = @_;
    my $tid = cli($to, 'CLUSTER', 'MYID');
    cli($to, 'CLUSTER', 'SETSLOT', $slot, 'IMPORTING',
        cli($from, 'CLUSTER', 'MYID'));
    cli($from, 'CLUSTER', 'SETSLOT', $slot, 'MIGRATING', $tid);
    my @keys = grep { length } split /\n/,
               cli($from, 'CLUSTER', 'GETKEYSINSLOT', $slot, 1000);
    cli($from, 'MIGRATE', '127.0.0.1', $to, '', 0, 5000, 'KEYS', @keys)
        if @keys;
    cli($_, 'CLUSTER', 'SETSLOT', $slot, 'NODE', $tid)
        for $to, $from, grep { $_ != $to && $_ != $from } @ports;
}

1;
