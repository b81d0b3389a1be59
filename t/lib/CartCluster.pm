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

# the port of the master serving $key's slot, from CLUSTER SLOTS asked of
# the node at $port
sub owner {
    my ($port, $key) = @_;
    my $slot = cli($port, 'CLUSTER', 'KEYSLOT', $key);
    my @f = split /\n/, cli($port, 'CLUSTER', 'SLOTS');
    # --raw flattens: start end ip port id [ip port id ...] start end ...
    for (my $i = 0; $i + 4 < @f; $i++) {
        next unless $f[$i] =~ /^\d+$/ && $f[$i + 1] =~ /^\d+$/
                    && $f[$i + 2] =~ /^\d+\.\d+\.\d+\.\d+$/;
        return $f[$i + 3] if $slot >= $f[$i] && $slot <= $f[$i + 1];
    }
    die "no owner for $key (slot $slot)\n";
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
