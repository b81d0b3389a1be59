package CartHolds;

# A fake inventory service that really counts, for the stock holds of
# checkout (t/245-holds.t): a small HTTP/1.1 server in core Perl (IO::Socket,
# IO::Select, JSON::PP), one process, one request at a time, so every hold
# is atomic. It keeps, per SKU, the units not held ("stock") and, per hold
# id, the SKU and quantity held. The cart's nginx reaches it through a
# proxied keepalive upstream (see upstream()); the tests talk to it
# directly (state(), set(), mode()).
#
#   GET    /inventory/<sku>   200 {"sku_id","available"}: the stock not held
#                             (404 for a SKU it does not know)
#   POST   /holds/<hold_id>   {"sku_id","quantity","hold_id"}: hold. A new
#                             hold id takes the units (201) or, when fewer
#                             are left, answers 409 {"sku_id","available"};
#                             a known one is set to the new quantity (200,
#                             409 if it cannot grow that much): idempotent.
#   DELETE /holds/<hold_id>   the units go back (200), 404 if not held
#
# The hold id of the URI must be the body's ("hold_id"), else 400.
# Every request is logged (method, URI, Content-Type, Cookie,
# Authorization, body) for the tests to read back.
#
# Control (the test's own requests, not through nginx):
#   POST /_ctl/set      {"stock":{"SKU":N,...}}: stock; holds and log cleared
#   POST /_ctl/mode     {"SKU":"fail"|"slow"|"refuse_release"|"ok"}:
#                       fail: holds of it answer 500; slow: they answer
#                       after 1.5 s (other requests are served meanwhile);
#                       refuse_release: its releases answer 500
#   GET  /_ctl/state    {"stock":{...},"holds":{"id":["SKU",N]},"log":[...]}

use strict;
use warnings;

use IO::Select;
use IO::Socket::INET;
use JSON::PP ();
use POSIX ();
use Time::HiRes ();

sub port { ($ENV{TEST_NGINX_PORT} || 1984) + 9 }

our ($Pid, $Parent);

# The http_config lines of the cart's nginx: an upstream with keepalive.
sub upstream {
    my $port = port();
    return "upstream cart_inventory_svc {\n    server 127.0.0.1:$port;\n"
         . "    keepalive 8;\n}\n";
}

# Starts the service in a child process (once); waits until it answers.
sub start {
    return $Pid if $Pid;
    my $listen = IO::Socket::INET->new(
        LocalAddr => '127.0.0.1', LocalPort => port(), Listen => 128,
        ReuseAddr => 1, Proto => 'tcp',
    ) or die "inventory service: cannot listen on " . port() . ": $!\n";
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        serve($listen);
        POSIX::_exit(0);
    }
    close $listen;
    ($Pid, $Parent) = ($pid, $$);
    return $pid;
}

sub stop {
    return unless $Pid && $$ == $Parent;
    kill 'TERM', $Pid;
    waitpid $Pid, 0;
    undef $Pid;
}

END { stop() }

# --- the test's side

sub ctl {
    my ($method, $path, $body) = @_;
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                     PeerPort => port(), Timeout => 10)
        or die "inventory service: connect: $!\n";
    $body = defined $body ? JSON::PP::encode_json($body) : '';
    print {$sock} "$method $path HTTP/1.1\r\nHost: inventory\r\n"
        . "Connection: close\r\nContent-Length: " . length($body)
        . "\r\n\r\n$body";
    local $/;
    my $resp = <$sock> // '';
    my (undef, $payload) = split /\r\n\r\n/, $resp, 2;
    return JSON::PP::decode_json($payload || '{}');
}

sub set { ctl('POST', '/_ctl/set', { stock => {@_} }) }
sub mode { ctl('POST', '/_ctl/mode', {@_}) }
sub state { ctl('GET', '/_ctl/state') }

# --- the service

my (%stock, %holds, @log, %mode);

sub serve {
    my ($listen) = @_;
    $SIG{TERM} = sub { POSIX::_exit(0) };
    $SIG{PIPE} = 'IGNORE';     # a peer that timed out and left
    my $sel = IO::Select->new($listen);
    my %conn;     # fileno -> { sock, in }
    my @later;    # [due, sock, response]

    for (;;) {
        my $now = Time::HiRes::time();
        my @due = grep { $_->[0] <= $now } @later;
        @later = grep { $_->[0] > $now } @later;
        for my $d (@due) {
            my ($c) = grep { $_->{sock} == $d->[1] } values %conn;
            next unless $c;
            write_all($d->[1], $d->[2]->());
            drop($sel, \%conn, $d->[1]) if $d->[3];
        }
        my ($next) = sort { $a <=> $b } map { $_->[0] } @later;
        my $wait = defined $next ? $next - $now : 1;
        $wait = 0 if $wait < 0;

        for my $fh ($sel->can_read($wait)) {
            if ($fh == $listen) {
                my $s = $listen->accept or next;
                $s->autoflush(1);
                $sel->add($s);
                $conn{fileno $s} = { sock => $s, in => '' };
                next;
            }
            my $c = $conn{fileno $fh};
            my $n = sysread($fh, my $buf, 65536);
            if (!$n) {
                drop($sel, \%conn, $fh);
                next;
            }
            $c->{in} .= $buf;
            while (my $req = take_request($c)) {
                my ($delay, $resp) = handle($req);
                if ($delay) {
                    push @later, [Time::HiRes::time() + $delay, $fh, $resp,
                                  $req->{close}];
                    last;
                }
                write_all($fh, $resp);
                if ($req->{close}) {
                    drop($sel, \%conn, $fh);
                    last;
                }
            }
        }
    }
}

sub drop {
    my ($sel, $conn, $fh) = @_;
    $sel->remove($fh);
    delete $conn->{fileno $fh};
    close $fh;
}

sub write_all {
    my ($fh, $data) = @_;
    while (length $data) {
        my $n = syswrite($fh, $data);
        return unless defined $n;
        substr($data, 0, $n) = '';
    }
}

# One complete request out of the connection's buffer, or undef.
sub take_request {
    my ($c) = @_;
    my $end = index($c->{in}, "\r\n\r\n");
    return undef if $end < 0;
    my $head = substr($c->{in}, 0, $end);
    my ($line, @h) = split /\r\n/, $head;
    my %h;
    for (@h) {
        my ($k, $v) = split /:\s*/, $_, 2;
        $h{lc $k} = $v;
    }
    my $len = $h{'content-length'} // 0;
    return undef if length($c->{in}) < $end + 4 + $len;
    my $body = substr($c->{in}, $end + 4, $len);
    substr($c->{in}, 0, $end + 4 + $len) = '';
    my ($method, $uri) = split / /, $line;
    return { method => $method, uri => $uri, headers => \%h, body => $body,
             close => lc($h{connection} // '') eq 'close' };
}

sub response {
    my ($status, $doc) = @_;
    my %text = (200 => 'OK', 201 => 'Created', 400 => 'Bad Request',
                404 => 'Not Found', 409 => 'Conflict',
                500 => 'Internal Server Error');
    my $body = ref $doc ? JSON::PP->new->canonical->encode($doc) : $doc // '';
    return "HTTP/1.1 $status $text{$status}\r\n"
         . "Content-Type: application/json\r\n"
         . "Content-Length: " . length($body) . "\r\n\r\n$body";
}

# (delay in seconds, response)
sub handle {
    my ($req) = @_;
    my ($m, $uri, $h) = @$req{qw(method uri headers)};

    if ($uri =~ m{^/_ctl/}) {
        my $in = length $req->{body} ? JSON::PP::decode_json($req->{body}) : {};
        if ($uri eq '/_ctl/set') {
            %stock = %{ $in->{stock} };
            %holds = ();
            @log = ();
            %mode = ();
        } elsif ($uri eq '/_ctl/mode') {
            %mode = (%mode, %$in);
        }
        return (0, response(200, { stock => \%stock, holds => \%holds,
                                   log => \@log }));
    }

    push @log, { method => $m, uri => $uri,
                 content_type => $h->{'content-type'},
                 cookie => $h->{cookie}, authorization => $h->{authorization},
                 body => $req->{body} };

    if ($m eq 'GET' && $uri =~ m{^/inventory/([^/?]+)}) {
        my $sku = $1;
        return (0, response(404, '')) unless exists $stock{$sku};
        return (0, response(200, { sku_id => $sku,
                                   available => $stock{$sku} }));
    }

    my ($id) = $uri =~ m{^/holds/([^/?]+)$} or return (0, response(404, ''));
    my $in = eval { JSON::PP::decode_json($req->{body}) };
    return (0, response(400, '{"error":"bad body"}'))
        unless ref $in eq 'HASH' && ($in->{hold_id} // '') eq $id;
    my $sku = $in->{sku_id} // '';

    if ($m eq 'DELETE') {
        return (0, response(500, ''))
            if ($mode{$sku} // '') eq 'refuse_release';
        my $hold = delete $holds{$id} or return (0, response(404, ''));
        $stock{$hold->[0]} += $hold->[1];
        return (0, response(200, { hold_id => $id, released => $hold->[1] }));
    }

    return (0, response(404, '')) unless $m eq 'POST';

    my $mode = $mode{$sku} // '';
    return (0, response(500, '')) if $mode eq 'fail';
    # a slow service decides when it answers, as it would after its work
    return (1.5, sub { hold($id, $sku, $in->{quantity}) }) if $mode eq 'slow';
    return (0, hold($id, $sku, $in->{quantity}));
}

sub hold {
    my ($id, $sku, $qty) = @_;
    return response(400, '{"error":"bad quantity"}')
        unless defined $qty && $qty =~ /^\d+$/ && $qty > 0;
    return response(404, '') unless exists $stock{$sku};
    my $had = $holds{$id} ? $holds{$id}[1] : 0;
    if ($qty - $had > $stock{$sku}) {
        return response(409, { sku_id => $sku, available => $stock{$sku} });
    }
    $stock{$sku} -= $qty - $had;
    my $new = !$holds{$id};
    $holds{$id} = [$sku, $qty];
    return response($new ? 201 : 200,
                    { hold_id => $id, sku_id => $sku, quantity => $qty });
}

1;
