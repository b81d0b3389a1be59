package CartClient;

# Plain HTTP and Redis helpers for the test blocks that need more than one
# request at a time (concurrency, reload under traffic, Redis outages).
# Called by full name (CartClient::...) from "--- init" code, so they work
# under the real Test::Nginx and under our runner alike.

use strict;
use warnings;

use IO::Socket::INET;
use Time::HiRes ();
use POSIX ();

# One request on a new connection: returns (status, body).
sub request {
    my ($method, $path, $user, $body, %headers) = @_;

    my $sock = IO::Socket::INET->new(
        PeerAddr => '127.0.0.1',
        PeerPort => $ENV{TEST_NGINX_PORT} || 1984,
        Timeout  => 10,
    ) or return (0, "connect: $!");

    my $req = "$method $path HTTP/1.1\r\nHost: localhost\r\n"
            . "Connection: close\r\n";
    $req .= "X-User-Id: $user\r\n" if defined $user;
    $req .= "$_: $headers{$_}\r\n" for sort keys %headers;
    if (defined $body) {
        $req .= "Content-Type: application/json\r\n"
              . "Content-Length: " . length($body) . "\r\n";
    }
    $req .= "\r\n" . ($body // '');

    print {$sock} $req;

    local $/;
    my $resp = <$sock> // '';
    close $sock;

    my ($status) = $resp =~ m{^HTTP/1\.\d (\d+)};
    my (undef, $payload) = split /\r\n\r\n/, $resp, 2;
    return ($status || 0, $payload // '');
}

# Runs $code->($i) in $n child processes at once and returns the line each
# child's code returned, in order.
sub parallel {
    my ($n, $code) = @_;
    my @children;

    for my $i (1 .. $n) {
        pipe(my $r, my $w) or die "pipe: $!";
        my $pid = fork // die "fork: $!";
        if ($pid == 0) {
            close $r;
            my $line = eval { $code->($i) } // "error: $@";
            print {$w} "$line\n";
            close $w;
            POSIX::_exit(0);
        }
        close $w;
        push @children, [$pid, $r];
    }

    my @out;
    for my $child (@children) {
        my $fh = $child->[1];
        my $line = <$fh> // '';
        chomp $line;
        push @out, $line;
        waitpid $child->[0], 0;
    }

    return @out;
}

# A line's added_at in unix seconds: base 36, or decimal seconds (9
# characters or more) in a line written before base 36.
sub line_time {
    my ($added) = @_;
    return $added if length $added >= 9;
    my $t = 0;
    $t = $t * 36 + index('0123456789abcdefghijklmnopqrstuvwxyz', $_)
        for split //, $added;
    return $t;
}

# A known cart for user $user: SKU-1 x2 at 29.99, version 5.
sub seed {
    my ($user) = @_;
    my @cli = ('redis-cli', '-h', '127.0.0.1', '-p',
               $ENV{TEST_NGINX_REDIS_PORT} || 16379);
    system(@cli, 'DEL', "cart:{user-$user}", "cart_count:{user-$user}")
        == 0 or die "redis-cli failed";
    system(@cli, 'HSET', "cart:{user-$user}",
           'SKU-1', '2|2999|seller-1|1764547200', '#v', '5') == 0
        or die "redis-cli failed";
    system(@cli, 'SET', "cart_count:{user-$user}", '2') == 0
        or die "redis-cli failed";
}

# The view of that cart from the API location without a catalog.
our $SeededView = '{"cart_id":"cart:user-%s","items":[{"sku_id":"SKU-1",'
    . '"quantity":2,"price_at_add":29.99,"seller_id":"seller-1",'
    . '"added_at":"2025-12-01T00:00:00Z"}],"item_count":2,'
    . '"subtotal":59.98,"currency":"USD","version":5,"warnings":[],'
    . '"sellers":[{"seller_id":"seller-1","item_count":2,"subtotal":59.98,'
    . '"price_adjustment":0.00,"discount":0.00,"shipping":0.00,'
    . '"estimated_total":59.98}],"promotions_applied":[],"coupon":null,'
    . '"shipping_address":null,"shipping":[],"price_adjustment":0.00,'
    . '"discount":0.00,"shipping_total":0.00,"estimated_total":59.98}';

# Stops or starts the test Redis (util/redis.sh through the test command).
sub redis_ctl {
    my ($action) = @_;
    my $ctl = $ENV{TEST_NGINX_REDIS_CTL} or die "TEST_NGINX_REDIS_CTL is not set";
    my $dir = $ENV{TEST_NGINX_REDIS_DIR} or die "TEST_NGINX_REDIS_DIR is not set";
    system($ctl, $action, $ENV{TEST_NGINX_REDIS_PORT} || 16379, $dir) == 0
        or die "redis $action failed";
}

1;
