package CartKafka;

# Kafka helpers for the event tests: read a topic with kcat, wait for a
# cart owner's events, stop and start the test brokers. Called by full
# name (CartKafka::...) from "--- init" code, so they work under the real
# Test::Nginx and under our runner alike.
#
# The brokers are the test command's mock cluster (util/kafka.sh):
# $TEST_NGINX_KAFKA_BROKERS, controlled with $TEST_NGINX_KAFKA_CTL.

use strict;
use warnings;

use CartConf;
use JSON::PP ();
use Time::HiRes ();

# A block preprocessor for the event tests: CartConf's server, a
# /_status location (cart_status), and events on (cart_kafka_brokers and
# the given extra http lines) unless the block has its own http_config.
sub preprocessor {
    my @http = @_;
    return sub {
        my $block = shift;
        CartConf::default_config($block);
        $block->set_value(config => $block->config
            . "    location = /_status { cart_status; }\n");
        return if defined $block->http_config;
        $block->set_value(http_config => join "\n",
            'cart_kafka_brokers $TEST_NGINX_KAFKA_BROKERS;', @http, '');
    };
}

sub brokers {
    return $ENV{TEST_NGINX_KAFKA_BROKERS}
        // die "TEST_NGINX_KAFKA_BROKERS is not set (run the tests with util/test.sh)";
}

# Every message of $topic: a list of hashes {key, partition, offset, value,
# event (the decoded JSON, or undef), headers}, in partition then offset order.
sub read_topic {
    my ($topic) = @_;
    my @cmd = ('kcat', '-C', '-q', '-b', brokers(), '-t', $topic, '-o',
               'beginning', '-e', '-f', '%p\t%o\t%k\t%h\t%s\n');
    open my $fh, '-|', @cmd or die "cannot run kcat: $!";
    my @msgs;
    while (my $line = <$fh>) {
        chomp $line;
        my ($p, $o, $k, $h, $v) = split /\t/, $line, 5;
        next unless defined $v;
        my $event = eval { JSON::PP::decode_json($v) };
        push @msgs, { partition => $p, offset => $o, key => $k,
                      headers => $h, value => $v, event => $event };
    }
    close $fh;
    return sort { $a->{partition} <=> $b->{partition}
                  || $a->{offset} <=> $b->{offset} } @msgs;
}

# The messages keyed $key on $topic (default cart-events), waiting up to
# $timeout seconds (default 20) until there are at least $count of them.
sub wait_events {
    my ($key, $count, $timeout, $topic) = @_;
    $timeout //= 20;
    $topic //= 'cart-events';
    my $deadline = Time::HiRes::time() + $timeout;
    my @mine;
    for (;;) {
        @mine = grep { $_->{key} eq $key } read_topic($topic);
        return @mine if @mine >= $count || Time::HiRes::time() > $deadline;
        Time::HiRes::sleep(0.2);
    }
}

# Waits up to $timeout seconds (default 10) until the block's error log has
# a line matching $re: for what the producer logs in the background.
sub wait_log {
    my ($re, $timeout) = @_;
    my $log = ($ENV{TEST_NGINX_SERVROOT} // 't/servroot') . '/logs/error.log';
    my $deadline = Time::HiRes::time() + ($timeout // 10);
    while (Time::HiRes::time() < $deadline) {
        if (open my $fh, '<', $log) {
            while (my $line = <$fh>) {
                return 1 if $line =~ $re;
            }
        }
        Time::HiRes::sleep(0.1);
    }
    return 0;
}

# down | up: every broker refuses connections / accepts them again
sub ctl {
    my ($action) = @_;
    my $ctl = $ENV{TEST_NGINX_KAFKA_CTL} or die "TEST_NGINX_KAFKA_CTL is not set";
    system($ctl, $action, $ENV{TEST_NGINX_KAFKA_PORT},
           $ENV{TEST_NGINX_KAFKA_DIR}) == 0
        or die "kafka $action failed";
}

# Produces one message (key, value) with kcat and waits for its delivery.
sub produce {
    my ($topic, $key, $value) = @_;
    open my $fh, '|-', 'kcat', '-P', '-q', '-b', brokers(), '-t', $topic,
                       '-K', "\t", '-X', 'enable.idempotence=true'
        or die "cannot run kcat: $!";
    print {$fh} "$key\t$value\n";
    close $fh or die "kcat -P failed";
}

1;
