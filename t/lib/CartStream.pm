package CartStream;

# Clients of GET /stream for the test blocks (t/16x-*.t, t/4xx-*.t):
# stream_open, stream_fill, stream_next, numsub, numsub_is, publish_many,
# call and $Slow, exported into the test file's package (main), where
# "--- init" code reaches them as main::stream_open() and $main::Slow.

use strict;
use warnings;

use Exporter 'import';
use IO::Select;
use IO::Socket::INET;
use IO::Handle;
use JSON::PP ();
use Socket qw(PF_INET SOCK_STREAM SOL_SOCKET SO_RCVBUF pack_sockaddr_in inet_aton);
use Time::HiRes qw(time sleep);

our @EXPORT = qw(stream_open stream_fill stream_next numsub numsub_is
                 publish_many call $Slow);

our $Slow = $ENV{TEST_NGINX_USE_VALGRIND} ? 10 : 1;

sub redis_port { $ENV{TEST_NGINX_REDIS_PORT} || 16379 }

# Opens GET $path with these headers; returns the stream, its status and
# headers read.
sub stream_open {
    my ($path, %headers) = @_;
    my $port = delete $headers{port} || $ENV{TEST_NGINX_PORT};
    my $rcvbuf = delete $headers{rcvbuf};
    my $sock;
    if ($rcvbuf) {
        # a small receive window, set before connecting: a slow client
        socket($sock, PF_INET, SOCK_STREAM, 0) or die "socket: $!";
        setsockopt($sock, SOL_SOCKET, SO_RCVBUF, $rcvbuf) or die "SO_RCVBUF: $!";
        connect($sock, pack_sockaddr_in($port, inet_aton('127.0.0.1')))
            or die "connect: $!";
        $sock->autoflush(1);
    } else {
        $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                      Timeout => 10) or die "connect: $!";
    }
    my $req = "GET $path HTTP/1.1\r\nHost: localhost\r\n";
    $req .= "$_: $headers{$_}\r\n" for sort keys %headers;
    print {$sock} "$req\r\n";
    my $st = { sock => $sock, raw => '', body => '', status => 0, headers => {} };
    my $deadline = time + 5 * $Slow;
    stream_fill($st, $deadline - time) while !$st->{head} && !$st->{closed} && time < $deadline;
    # an open stream: its head and what came with it, for t/990-openapi.t
    # (our nginx only; its refusals are ordinary requests of the blocks)
    CartTest::capture_exchange('GET', $path, $st->{status}, $st->{headers}, $st->{body})
        if ($st->{status} // 0) == 200 && $port == $ENV{TEST_NGINX_PORT};
    return $st;
}

# Reads what has come, up to $timeout seconds; false when nothing did.
sub stream_fill {
    my ($st, $timeout) = @_;
    return 0 if $st->{closed};
    return 0 unless IO::Select->new($st->{sock})->can_read($timeout);
    my $n = sysread $st->{sock}, my $buf, 65536;
    if (!$n) {
        $st->{closed} = 1;
        return 0;
    }
    $st->{raw} .= $buf;
    if (!$st->{head}) {
        my $end = index $st->{raw}, "\r\n\r\n";
        return 1 if $end < 0;
        my ($line, @lines) = split /\r\n/, substr($st->{raw}, 0, $end);
        ($st->{status}) = $line =~ m{^HTTP/1\.\d (\d+)};
        for (@lines) {
            my ($k, $v) = /^([^:]+):\s*(.*)$/ or next;
            $st->{headers}{lc $k} = $v;
        }
        $st->{head} = 1;
        $st->{raw} = substr $st->{raw}, $end + 4;
    }
    if (($st->{headers}{'transfer-encoding'} // '') !~ /chunked/) {
        $st->{body} .= $st->{raw};
        $st->{raw} = '';
        return 1;
    }
    while ($st->{raw} =~ /^([0-9a-fA-F]+)\r\n/) {
        my ($size, $hl) = (hex $1, length($1) + 2);
        last if length($st->{raw}) < $hl + $size + 2;
        $st->{body} .= substr $st->{raw}, $hl, $size;
        substr($st->{raw}, 0, $hl + $size + 2) = '';
        $st->{ended} = 1 if $size == 0;
    }
    return 1;
}

# The next event as "id version item_count", or a comment as ": text", or
# undef after $timeout seconds without one. Comments are skipped unless
# $comments. The event's data, decoded, is left in $st->{data}.
sub stream_next {
    my ($st, $timeout, $comments) = @_;
    my $deadline = time + $timeout * $Slow;
    while (1) {
        while ($st->{body} =~ s/^(.*?)\n\n//s) {
            my $block = $1;
            if ($block =~ /^:/) {
                return $block if $comments;
                next;
            }
            my %f = map { /^(\w+): ?(.*)$/ ? ($1, $2) : () } split /\n/, $block;
            # version and item_count first, then the cart (or
            # items_omitted) when the stream carries it: valid JSON
            my ($v, $n) = ($f{data} // '') =~ /^\{"version":(-?\d+),"item_count":(-?\d+)[,}]/
                or return "malformed: $block";
            my $data = eval { JSON::PP->new->decode($f{data}) }
                or return "not JSON: $block";
            return "bad event name: $block" if ($f{event} // '') ne 'cart';
            $st->{data} = $data;
            return "$f{id} $v $n";
        }
        my $left = $deadline - time;
        return undef if $left <= 0 || $st->{closed};
        stream_fill($st, $left);
    }
}

# subscribers of the owner's channel on the Redis at $port (the test Redis)
sub numsub {
    my ($owner, $port) = @_;
    open my $out, '-|', 'redis-cli', '-h', '127.0.0.1', '-p',
                        $port || redis_port(), '--raw', 'PUBSUB', 'NUMSUB',
                        "cart_events:{$owner}"
        or die "redis-cli: $!";
    my @lines = <$out>;
    close $out;
    chomp @lines;
    return $lines[1] // 0;
}

# waits until numsub($owner) is $n; returns the last value seen
sub numsub_is {
    my ($owner, $n, $port) = @_;
    my $deadline = time + 5 * $Slow;
    my $now;
    while (($now = numsub($owner, $port)) != $n && time < $deadline) {
        sleep 0.05;
    }
    return $now;
}

# publishes "<v> <v>" on the cart's channel for v in $from .. $to, as the
# write scripts would, in one redis-cli run; $pause seconds between them
sub publish_many {
    my ($owner, $from, $to, $pause) = @_;
    open my $cli, '|-', 'redis-cli -h 127.0.0.1 -p ' . redis_port() . ' >/dev/null'
        or die "redis-cli: $!";
    $cli->autoflush(1) if $pause;
    for ($from .. $to) {
        print {$cli} "PUBLISH cart_events:{$owner} \"$_ $_\"\n";
        sleep $pause if $pause;
    }
    close $cli or die "redis-cli failed";
}

# one request on a new connection: (status, body, X-Pid)
sub call {
    my ($method, $path, $headers, $body, $port) = @_;
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                     PeerPort => $port || $ENV{TEST_NGINX_PORT},
                                     Timeout => 10) or die "connect: $!";
    my $req = "$method $path HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n$headers";
    $req .= "Content-Type: application/json\r\nContent-Length: " . length($body) . "\r\n"
        if defined $body;
    print {$sock} "$req\r\n" . ($body // '');
    my ($resp, $deadline) = ('', time + 10 * $Slow);
    my $select = IO::Select->new($sock);
    while (time < $deadline && $select->can_read($deadline - time)) {
        sysread($sock, my $buf, 65536) or last;
        $resp .= $buf;
    }
    my ($status) = $resp =~ m{^HTTP/1\.1 (\d+)};
    my ($pid) = $resp =~ m{^X-Pid: (\d+)}mi;
    my (undef, $payload) = split /\r\n\r\n/, $resp, 2;
    return ($status // 0, $payload // '', $pid);
}

1;
