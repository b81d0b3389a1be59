package CartProxy;

# A TCP forwarder the test controls, between nginx and a Redis, to make
# connections silently dead as a NAT or a load balancer does when it drops
# an idle flow: nothing is closed, bytes just stop going through.
#
#   my $pid = CartProxy::start($listen_port, $redis_port);
#   CartProxy::freeze($pid, 'subscribers');  # connections that subscribed
#   CartProxy::freeze($pid, 'all');          # every connection open now
#   CartProxy::stop($pid);
#
# A frozen connection swallows what either side sends and is never
# closed by the proxy; connections made afterwards are forwarded as
# usual. Called by full name from "--- init" code.

use strict;
use warnings;

use IO::Select;
use IO::Socket::INET;
use POSIX ();
use Time::HiRes ();

sub start {
    my ($listen, $target) = @_;

    # the port may be some client's ephemeral port for a moment
    my $server;
    for (1 .. 100) {
        $server = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
                                        LocalPort => $listen,
                                        Listen => 128, ReuseAddr => 1)
            and last;
        Time::HiRes::sleep(0.1);
    }
    $server or die "proxy: cannot listen on $listen: $!";

    my $pid = fork // die "fork: $!";
    if ($pid) {
        close $server;
        return $pid;
    }

    # the child: one select loop, signals say what to freeze
    my ($freeze_subs, $freeze_all, $quit) = (0, 0, 0);
    local $SIG{USR1} = sub { $freeze_subs = 1 };
    local $SIG{USR2} = sub { $freeze_all = 1 };
    local $SIG{TERM} = sub { $quit = 1 };

    my $select = IO::Select->new($server);
    my %peer;      # fileno => the other socket (undef: closed)
    my %conn;      # fileno => the pair's state, shared by both sides

    while (!$quit) {
        if ($freeze_subs || $freeze_all) {
            for my $c (values %conn) {
                $c->{frozen} = 1 if $freeze_all || $c->{sub};
            }
            ($freeze_subs, $freeze_all) = (0, 0);
        }

        my @ready = $select->can_read(0.2);

        for my $fh (@ready) {
            if ($fh == $server) {
                my $client = $server->accept or next;
                my $upstream = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                                     PeerPort => $target);
                if (!$upstream) {
                    close $client;
                    next;
                }
                my $c = { frozen => 0, sub => 0 };
                $peer{fileno $client} = $upstream;
                $peer{fileno $upstream} = $client;
                $conn{fileno $client} = $c;
                $conn{fileno $upstream} = $c;
                $c->{client} = fileno $client;
                $select->add($client, $upstream);
                next;
            }

            my $fd = fileno $fh;
            my $c = $conn{$fd} or next;
            my $n = sysread $fh, my $buf, 65536;

            if (!$n) {
                # a frozen flow tells nobody that a side went away
                my $other = $peer{$fd};
                $select->remove($fh);
                delete $conn{$fd};
                delete $peer{$fd};
                close $fh;
                next if $c->{frozen} && $fd != $c->{client};
                if ($other) {
                    $select->remove($other);
                    delete $conn{fileno $other};
                    delete $peer{fileno $other};
                    close $other;
                }
                next;
            }

            next if $c->{frozen};

            $c->{sub} = 1 if $fd == $c->{client} && $buf =~ /SUBSCRIBE/i;

            my $other = $peer{$fd} or next;
            my $off = 0;
            while ($off < $n) {
                my $w = syswrite $other, $buf, $n - $off, $off;
                last unless defined $w;
                $off += $w;
            }
        }
    }

    POSIX::_exit(0);
}

sub freeze {
    my ($pid, $what) = @_;
    kill $what eq 'all' ? 'USR2' : 'USR1', $pid;
    # the loop wakes up at least every 0.2 s
    Time::HiRes::sleep(0.5);
}

sub stop {
    my ($pid) = @_;
    return unless $pid;
    kill 'TERM', $pid;
    waitpid $pid, 0;
}

1;
