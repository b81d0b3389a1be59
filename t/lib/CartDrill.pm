package CartDrill;

# Fault drills (t/5xx-drill-*.t): a load of cart writes from several
# concurrent clients against an nginx of the drill's own, a fault injected
# meanwhile, then the ledger of acknowledged writes compared with Redis.
# Core Perl only. See t/README.md#fault-drills.
#
# What each drill starts, on ports of its own derived from the test
# command's, and always stops again (END, also after a die):
#
#   TEST_NGINX_PORT + 20         the cart nginx (master, 2 workers, daemon)
#   TEST_NGINX_PORT + 21         the catalog: a stock nginx, one process
#   TEST_NGINX_REDIS_PORT + 30   a Redis, a child of the test, in
#                                build/drills/<drill>/redis
#
# The load: each client owns its users, so the cart each must end with is
# known whatever the interleaving. Per user, in turn: four SKUs that only
# get adds (+1, POST /items), one SKU whose quantity is set with PUT to one
# more each time, and one SKU added and deleted in turn. Every write has
# its own Idempotency-Key; a write that is not answered 2xx (503, 5xx, 409
# in flight, 429, no answer at all) is sent again with the SAME key until
# it is answered 2xx or the write deadline passes. Only 2xx answers are
# acknowledged: they go to the ledger (build/drills/<drill>/ledger.txt).
#
# The check, per user, against Redis (HGETALL cart:{user-<id>}, GET
# cart_count:{user-<id>}):
#
#   lost        acknowledged writes whose effect is gone. Every applied write
#               adds one to the cart's version (#v), and an answer carries
#               the version after it: when a later answer, or the final
#               #v, is not above an acknowledged version, the writes with
#               those versions were lost (a store that came back older).
#               lost_at: when each lost write was answered 2xx.
#   extra       versions no acknowledged write accounts for: a write applied
#               twice, or one given up at the deadline that ran after all
#   lines       lines whose quantity is not what the ledger implies
#   count       cart_count differs from the sum of the lines
#
# Each drill prints one summary line and adds its row to build/drills.md.

use strict;
use warnings;

use Cwd ();
use Fcntl qw(:flock);
use File::Basename ();
use File::Path ();
use IO::Select;
use IO::Socket::INET;
use POSIX ();
use Test::More ();
use Time::HiRes ();

our $Top = Cwd::abs_path(File::Basename::dirname(__FILE__) . '/../..');
our $Out = "$Top/build/drills";
our $Port = ($ENV{TEST_NGINX_PORT} || 1984) + 20;
our $CatalogPort = $Port + 1;
our $RedisPort = ($ENV{TEST_NGINX_REDIS_PORT} || 16379) + 30;
our $NginxBin = $ENV{TEST_NGINX_BINARY} || '/usr/sbin/nginx';
# in ASan mode (make test-asan) nginx runs with the ASan runtime preloaded
our @Nginx = ($ENV{TEST_NGINX_USE_ASAN}
              ? ('env', "LD_PRELOAD=$ENV{TEST_NGINX_ASAN_PRELOAD}") : (),
              $NginxBin);
our $So = $ENV{TEST_NGINX_CART_SO}
         || "$Top/build/nginx/ngx_http_cart_module.so";
our $Run = sprintf('%x%x', time, $$);   # in user ids and keys: one per run

my $Parent = $$;
our $Died;                                  # why the drill died, if it did
my @Cleanup;                                # [name, sub], run last first

sub now { Time::HiRes::time() }
sub nap { Time::HiRes::sleep($_[0]) }

# Skips the whole drill file (with a plan) when it cannot run here.
sub plan_drill {
    my ($name) = @_;
    if ($ENV{TEST_NGINX_USE_VALGRIND}) {
        Test::More::plan(skip_all => 'drills run nginx with a master process '
                         . 'and under load; valgrind mode has neither');
    }
    for my $p ($Port, $CatalogPort, $RedisPort) {
        die "drill port $p is not below 60000: lower TEST_NGINX_PORT / "
            . "TEST_NGINX_REDIS_PORT\n" if $p >= 60000;
    }
    Test::More::plan('no_plan');
    File::Path::make_path("$Out/$name");
    # a drill that dies (outside an eval) fails, rather than prove's
    # "skipped" for a file that ran no test
    $SIG{__DIE__} = sub { $Died //= $_[0] if defined $^S && !$^S };
}

sub at_end {
    my ($name, $code) = @_;
    push @Cleanup, [$name, $code];
}

# Runs (and forgets) the cleanup registered under $name now.
sub cleanup_now {
    my ($name) = @_;
    my @now = grep { $_->[0] eq $name } @Cleanup;
    @Cleanup = grep { $_->[0] ne $name } @Cleanup;
    $_->[1]->() for reverse @now;
}

END {
    if ($$ == $Parent) {
        my $rc = $?;
        if ($Died) {
            chomp $Died;
            Test::More::fail("the drill ran to its end: $Died");
        }
        for my $c (reverse @Cleanup) {
            eval { $c->[1]->(); 1 } or Test::More::diag("cleanup $c->[0]: $@");
        }
        @Cleanup = ();
        $? = $rc;
    }
}
$SIG{INT} = $SIG{TERM} = sub { exit 1 };    # so that END runs

sub slurp {
    my ($file) = @_;
    open my $fh, '<', $file or return '';
    local $/;
    return scalar <$fh>;
}

sub spew {
    my ($file, $text) = @_;
    open my $fh, '>', $file or die "$file: $!\n";
    print {$fh} $text;
    close $fh or die "$file: $!\n";
}

# Runs a command quietly (its output to $Quiet); returns its exit status.
our $Quiet = '/dev/null';

sub quiet {
    my (@cmd) = @_;
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDOUT, '>>', $Quiet;
        open STDERR, '>&', \*STDOUT;
        exec @cmd or POSIX::_exit(127);
    }
    waitpid $pid, 0;
    return $?;
}

# redis-cli on $port (default: the drill's Redis), --raw; -c follows
# redirections. Output without the final newline; dies if it fails.
sub cli {
    my ($port, @args) = @_;
    open my $out, '-|', 'timeout', '10', 'redis-cli', '-h', '127.0.0.1',
                        '-p', $port // $RedisPort, '--raw', @args
        or die "cannot run redis-cli: $!\n";
    my $output = do { local $/; <$out> } // '';
    close $out;
    die "redis-cli -p " . ($port // $RedisPort) . " @args failed\n" if $?;
    $output =~ s/\n\z//;
    return $output;
}

# A process that exists and is not a zombie (kill 0 finds zombies too).
sub alive {
    my ($pid) = @_;
    return 0 unless $pid && kill(0, $pid);
    my $stat = slurp("/proc/$pid/stat");
    return $stat =~ /^\d+ \(.*\) Z/s ? 0 : 1;
}

sub wait_gone {
    my ($pid, $secs) = @_;
    my $until = now() + $secs;
    while (now() < $until) {
        waitpid($pid, POSIX::WNOHANG());    # reaps it if it is our child
        return 1 unless alive($pid);
        nap(0.05);
    }
    return 0;
}

sub port_open {
    my ($port) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                  Timeout => 1);
    return $s ? 1 : 0;
}

# --- Redis: a redis-server of the drill's own, a child of this process ----
#
# Not util/redis.sh: that one daemonizes, and a daemon killed with -9 stays
# a zombie until init reaps it (kill 0 still finds it); a child is reaped
# here at once, so it can be started again on the same port and directory.

# Starts the drill's own Redis, empty, in build/drills/<name>/redis.
# appendfsync => 'always' | 'everysec' turns AOF on.
sub redis_start {
    my (%o) = @_;
    my $redis = { dir => "$Out/$o{name}/redis", conf => [] };
    File::Path::remove_tree($redis->{dir});
    File::Path::make_path($redis->{dir});
    if ($o{appendfsync}) {
        my $conf = "$Out/$o{name}/redis.conf";
        spew($conf, "appendonly yes\nappendfsync $o{appendfsync}\n"
                    . "save \"\"\naof-use-rdb-preamble yes\n");
        $redis->{conf} = [$conf];
    } else {
        $redis->{args} = ['--save', '', '--appendonly', 'no'];
    }
    at_end('redis', sub { redis_stop($redis) });
    redis_run($redis);
    return $redis;
}

# Starts (again) the Redis of redis_start(); waits until it answers PING
# (an AOF being loaded answers LOADING until it is done).
sub redis_run {
    my ($redis) = @_;
    my $dir = $redis->{dir};
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDOUT, '>>', "$dir/redis.out";
        open STDERR, '>&', \*STDOUT;
        exec 'redis-server', @{ $redis->{conf} }, '--port', $RedisPort,
             '--bind', '127.0.0.1', '--dir', $dir, '--daemonize', 'no',
             '--logfile', "$dir/redis.log", @{ $redis->{args} // [] }
            or POSIX::_exit(127);
    }
    $redis->{pid} = $pid;
    for (1 .. 400) {
        return $pid if redis_ping($RedisPort);
        die "redis-server on $RedisPort exited:\n" . tail("$dir/redis.log")
            unless alive($pid);
        nap(0.05);
    }
    die "redis-server on $RedisPort does not answer PING:\n"
        . tail("$dir/redis.log");
}

sub redis_pid { $_[0]{pid} }

# True when the Redis on $port answers PING with PONG (not LOADING).
sub redis_ping {
    my ($port) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                  Timeout => 1) or return 0;
    syswrite $s, "PING\r\n";
    my $sel = IO::Select->new($s);
    return 0 unless $sel->can_read(1);
    my $got = '';
    sysread $s, $got, 64;
    return $got =~ /^\+PONG/ ? 1 : 0;
}

# kill -9, and reaped
sub redis_kill {
    my ($redis) = @_;
    kill 'KILL', $redis->{pid};
    waitpid $redis->{pid}, 0;
}

sub redis_stop {
    my ($redis) = @_;
    my $pid = $redis->{pid};
    return unless alive($pid);
    kill 'CONT', $pid;
    kill 'TERM', $pid;
    kill 'KILL', $pid unless wait_gone($pid, 10);
    waitpid $pid, 0;
}

# --- the catalog: a stock nginx, one process (SIGSTOP makes it hang) -------

sub catalog_start {
    my (%o) = @_;
    my $dir = "$Out/$o{name}/catalog";
    File::Path::remove_tree($dir);
    File::Path::make_path("$dir/conf", "$dir/logs", "$dir/tmp");
    my $doc = '{"sku_id":"$sku","price":1.25,"name":"Drill item",'
            . '"seller_id":"seller-d"}';
    spew("$dir/conf/nginx.conf", <<"_EOC_");
daemon off;
master_process off;
pid logs/nginx.pid;
error_log logs/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path tmp/body;
    proxy_temp_path tmp/proxy;
    fastcgi_temp_path tmp/fastcgi;
    uwsgi_temp_path tmp/uwsgi;
    scgi_temp_path tmp/scgi;
    server {
        listen 127.0.0.1:$CatalogPort;
        location ~ ^/sku/(?<sku>[A-Za-z0-9._:-]+)\$ {
            default_type application/json;
            return 200 '$doc';
        }
    }
}
_EOC_
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDOUT, '>>', "$dir/logs/stdout.log";
        open STDERR, '>&', \*STDOUT;
        exec @Nginx, '-p', "$dir/", '-c', 'conf/nginx.conf'
            or POSIX::_exit(127);
    }
    at_end('catalog', sub {
        kill 'CONT', $pid;
        kill 'TERM', $pid;
        wait_gone($pid, 5) or kill 'KILL', $pid;
        waitpid $pid, 0;
    });
    for (1 .. 100) {
        return $pid if port_open($CatalogPort);
        die "the catalog nginx did not start:\n"
            . slurp("$dir/logs/error.log") . slurp("$dir/logs/stdout.log")
            unless alive($pid);
        nap(0.05);
    }
    die "the catalog nginx does not listen on $CatalogPort\n";
}

# --- the cart nginx: master and workers, on $Port ---------------------------

# http => extra lines in http {}, redis => the cart_redis lines (default:
# the drill's Redis), workers => 2
sub nginx_start {
    my (%o) = @_;
    my $dir = "$Out/$o{name}/nginx";
    File::Path::remove_tree($dir);
    File::Path::make_path("$dir/conf", "$dir/logs", "$dir/tmp");
    my $redis = $o{redis} // "cart_redis redis://127.0.0.1:$RedisPort;";
    my $http = $o{http} // '';
    my $workers = $o{workers} // 2;
    # a binary upgrade execs nginx with only the environment "env" names
    my $env = $ENV{TEST_NGINX_USE_ASAN}
              ? "env LD_PRELOAD;\nenv ASAN_OPTIONS;\nenv UBSAN_OPTIONS;\n" : '';
    spew("$dir/conf/nginx.conf", <<"_EOC_");
${env}load_module $So;
daemon on;
master_process on;
worker_processes $workers;
pid logs/nginx.pid;
error_log logs/error.log info;
events { worker_connections 2048; }
http {
    access_log off;
    client_body_temp_path tmp/body;
    proxy_temp_path tmp/proxy;
    fastcgi_temp_path tmp/fastcgi;
    uwsgi_temp_path tmp/uwsgi;
    scgi_temp_path tmp/scgi;
    $redis
    cart_max_quantity 100000;
    cart_max_lines 100;
    $http
    upstream drill_catalog {
        server 127.0.0.1:$CatalogPort;
        keepalive 16;
    }
    server {
        listen 127.0.0.1:$Port;
        location /api/v1/cart {
            cart_api;
            cart_user \$http_x_user_id;
            cart_catalog /_catalog/\$cart_sku;
            cart_lookup_timeout 1s;
        }
        location /nocatalog {
            cart_api;
            cart_user \$http_x_user_id;
        }
        location /_catalog/ {
            internal;
            proxy_pass http://drill_catalog/sku/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
        location = /_status {
            cart_status;
        }
    }
}
_EOC_
    my $n = { dir => $dir, masters => {} };
    at_end('nginx', sub { nginx_stop($n) });
    quiet(@Nginx, '-p', "$dir/", '-c', 'conf/nginx.conf') == 0
        or die "the drill nginx did not start:\n" . tail("$dir/logs/error.log");
    my $master = nginx_master($n)
        or die "no nginx.pid:\n" . tail("$dir/logs/error.log");
    wait_workers($n, $master, $workers);
    for (1 .. 100) {
        return $n if port_open($Port);
        nap(0.05);
    }
    die "the drill nginx does not listen on $Port\n";
}

sub tail {
    my @l = split /\n/, slurp($_[0]);
    return join("\n", @l[($#l > 20 ? $#l - 20 : 0) .. $#l]) . "\n";
}

# The master in logs/nginx.pid (or $file), remembered for the cleanup.
sub nginx_master {
    my ($n, $file) = @_;
    my $pid = slurp("$n->{dir}/logs/" . ($file // 'nginx.pid'));
    chomp $pid;
    return undef unless $pid =~ /^\d+$/ && alive($pid);
    $n->{masters}{$pid} = 1;
    return $pid;
}

sub children {
    my ($pid) = @_;
    my $list = slurp("/proc/$pid/task/$pid/children");
    return grep { /^\d+$/ } split ' ', $list;
}

# The worker processes of a master (after SIGUSR2 a master's children
# also include the new master).
sub workers {
    my ($pid) = @_;
    return grep { slurp("/proc/$_/cmdline") =~ /worker process/ }
           children($pid);
}

# Waits until $master has $count worker processes (up to 10 s).
sub wait_workers {
    my ($n, $master, $count) = @_;
    for (1 .. 200) {
        my @w = workers($master);
        return @w if @w >= $count;
        nap(0.05);
    }
    die "nginx master $master has no $count workers\n";
}

# Stops every master this drill saw (and their workers); TERM, then KILL.
sub nginx_stop {
    my ($n) = @_;
    for my $m (keys %{ $n->{masters} }) {
        next unless alive($m);
        my @w = children($m);
        kill 'TERM', $m;
        kill 'KILL', $m unless wait_gone($m, 10);
        for my $w (@w) {
            kill 'KILL', $w if alive($w) && !wait_gone($w, 5);
        }
    }
    $n->{masters} = {};
}

# The new error log lines since the last call, for the drill's log summary.
sub error_log {
    my ($n) = @_;
    return slurp("$n->{dir}/logs/error.log");
}

# nginx's own notices of starts, stops, reloads and upgrades
my $Routine = join '|', map { quotemeta } 'start worker process',
    'using the "epoll"', 'nginx/', 'built by', 'OS: ', 'getrlimit',
    'gracefully shutting', 'exiting', 'start cache', 'reconfiguring',
    'using inherited', 'changing binary', 'start new binary',
    'signal process started', 'reopening logs';
$Routine = qr/$Routine|\bsignal \d+ \(|\bexit$|worker process \d+ exited/;

# Distinct messages of an error log with numbers, addresses and ids
# masked: what an operator would grep for. Returns "count  message" lines.
sub log_digest {
    my ($text) = @_;
    my %seen;
    for my $line (split /\n/, $text) {
        next unless $line =~ /\[(emerg|alert|crit|error|warn|notice|info)\]/;
        my $level = $1;
        next if $line =~ $Routine;
        my ($msg) = $line =~ /\[\w+\] \d+#\d+: (?:\*\d+ )?(.*)$/;
        next unless defined $msg;
        $msg =~ s/, client: .*//;
        $msg =~ s/\b\d+(\.\d+)*\b/N/g;
        $msg =~ s/"([^"]{40})[^"]+"/"$1…"/g;
        $seen{"[$level] $msg"}++;
    }
    return map { sprintf('%6d  %s', $seen{$_}, $_) }
           sort { $seen{$b} <=> $seen{$a} || $a cmp $b } keys %seen;
}

# --- HTTP: one request per connection, with a deadline ---------------------

# -> (status, error code, body, headers, sent at, answered at); status 0:
# no answer (connection refused or reset, or no answer in $timeout s).
sub http {
    my ($method, $path, $user, $body, $headers, $timeout) = @_;
    $timeout //= 10;
    my $t0 = now();
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $Port,
                                  Timeout => $timeout)
        or return (0, 'connect', '', '', $t0, now());
    my $req = "$method $path HTTP/1.1\r\nHost: localhost\r\n"
            . "Connection: close\r\nX-User-Id: $user\r\n";
    $req .= "$_: $headers->{$_}\r\n" for sort keys %{ $headers // {} };
    $req .= "Content-Type: application/json\r\nContent-Length: "
            . length($body) . "\r\n" if defined $body;
    $req .= "\r\n" . ($body // '');
    my $deadline = $t0 + $timeout;
    while (length $req) {
        my $n = syswrite($s, $req);
        return (0, 'reset', '', '', $t0, now()) unless defined $n && $n > 0;
        substr($req, 0, $n, '');
    }
    my $sel = IO::Select->new($s);
    my $resp = '';
    for (;;) {
        my $left = $deadline - now();
        return (0, 'timeout', '', '', $t0, now())
            if $left <= 0 || !$sel->can_read($left);
        my $n = sysread($s, $resp, 65536, length $resp);
        return (0, 'reset', '', '', $t0, now()) unless defined $n;
        last if $n == 0;
    }
    close $s;
    my $t1 = now();
    my ($head, $payload) = split /\r\n\r\n/, $resp, 2;
    my ($status) = ($head // '') =~ m{^HTTP/1\.\d (\d+)};
    return (0, 'reset', '', '', $t0, $t1) unless $status;
    my ($code) = ($payload // '') =~ /^\{"error":\{"code":"([^"]+)"/;
    return ($status, $code // '', $payload // '', $head, $t0, $t1);
}

sub retryable {
    my ($status) = @_;
    return $status == 0 || $status >= 500 || $status == 408
        || $status == 409 || $status == 429;
}

# --- the load ----------------------------------------------------------------

# The op a client sends next for user $u: a hash with method, path, body,
# kind (add | set | del), sku, value (the quantity a set sets). Mix 'all':
# A1..A4, S, D in turn; 'set': S only (one add, then PUTs).
sub next_op {
    my ($u, $turn, $believed, $prefix, $mix) = @_;
    my $step = $mix eq 'set' ? 4 : $turn % 6;
    if ($step < 4) {
        my $sku = 'A' . ($step + 1);
        return { kind => 'add', sku => $sku, method => 'POST',
                 path => "$prefix/items",
                 body => qq({"sku_id":"$sku","quantity":1}) };
    }
    my $sku = $step == 4 ? 'S' : 'D';
    my $q = $believed->{"$u\t$sku"} // 0;
    if ($q == 0) {
        return { kind => 'add', sku => $sku, method => 'POST',
                 path => "$prefix/items",
                 body => qq({"sku_id":"$sku","quantity":1}) };
    }
    if ($sku eq 'S') {
        return { kind => 'set', sku => $sku, value => $q + 1, method => 'PUT',
                 path => "$prefix/items/$sku",
                 body => '{"quantity":' . ($q + 1) . '}' };
    }
    return { kind => 'del', sku => $sku, value => 0, method => 'DELETE',
             path => "$prefix/items/$sku" };
}

# One client: writes for its users until the stop file appears, then
# finishes the write in hand. Logs to $file:
#   A sent answered status code kind user sku try   every answer
#   L answered user sku kind value version quantity replayed   acknowledged
#   N answered user sku                           404 line_not_found
#   X user sku kind key                           given up at the deadline
#   M user sku quantity                           the ledger's cart at the end
sub client {
    my ($i, $o, $file) = @_;
    $SIG{PIPE} = 'IGNORE';
    $SIG{INT} = $SIG{TERM} = 'DEFAULT';
    srand($$ ^ int(now() * 1000));
    open my $log, '>', $file or die "$file: $!";
    select((select($log), $| = 1)[0]);
    my @users = @{ $o->{users}[$i - 1] };
    my $prefix = ref $o->{path} ? $o->{path}[$i - 1] : $o->{path};
    my (%implied, %believed);
    my ($n, $reads) = (0, 0);
    my $spike = $o->{base} && $i > $o->{base};
    if ($spike) {                          # a client of the spike: waits for it
        nap(0.02) until -e "$o->{stop}-spike" || -e $o->{stop};
    }
    my $next = now();
    until (-e $o->{stop} || ($spike && -e "$o->{stop}-spike-end")) {
        if ($o->{rate}) {                  # paced: at most rate writes a second
            my $wait = $next - now();
            nap($wait) if $wait > 0;
            $next = ($wait > 0 ? $next : now()) + 1 / $o->{rate};
        }
        my $u = $users[$n % @users];
        my $op = next_op($u, int($n / @users), \%believed, $prefix,
                         $o->{mix} ? $o->{mix}[$i - 1] : 'all');
        my $key = "d$Run-$i-$n";
        $n++;
        my $first = now();
        for (my $try = 1; ; $try++) {
            my ($st, $code, $body, $head, $t0, $t1) =
                http($op->{method}, $op->{path}, $u, $op->{body},
                     { 'Idempotency-Key' => $key }, $o->{timeout});
            print {$log} join(' ', 'A', sprintf('%.4f', $t0),
                sprintf('%.4f', $t1), $st, $code || '-', $op->{kind}, $u,
                $op->{sku}, $try), "\n";
            if ($st >= 200 && $st < 300) {
                my ($v) = $body =~ /"version":(\d+)/;
                my ($q) = $body =~ /"quantity":(\d+)/;
                my $replayed = $head =~ /^Idempotent-Replayed: true/mi ? 1 : 0;
                my $k = "$u\t$op->{sku}";
                $implied{$k} = $op->{kind} eq 'add' ? ($implied{$k} // 0) + 1
                             : $op->{value};
                $believed{$k} = $q // $implied{$k};
                print {$log} join(' ', 'L', sprintf('%.4f', $t1), $u,
                    $op->{sku}, $op->{kind}, $op->{value} // 1, $v // -1,
                    $q // -1, $replayed), "\n";
                last;
            }
            if (retryable($st)) {
                if (now() - $first > $o->{deadline}) {
                    print {$log} "X $u $op->{sku} $op->{kind} $key\n";
                    $o->{gave_up}++;
                    last;
                }
                # 429 says when (Retry-After); other failures are retried
                # soon, so that the recovery is measured closely
                my ($after) = $head =~ /^Retry-After: (\d+)/mi;
                nap($st == 429 && $after ? $after : 0.05 + rand(0.1));
                next;
            }
            if ($st == 404 && $code eq 'line_not_found') {
                # the ledger says the line is there: the store lost it
                $believed{"$u\t$op->{sku}"} = 0;
                printf {$log} "N %.4f %s %s\n", $t1, $u, $op->{sku};
            }
            last;      # another 4xx: refused, not applied, not retried
        }
        last if $o->{gave_up};   # this user's cart is unknown from here
        if ($o->{reads} && $n % $o->{reads} == 0) {
            my ($st, $code, $body, $head, $t0, $t1) =
                http('GET', $prefix, $users[0], undef, {}, $o->{timeout});
            my $unverified = $body =~ /"price_verified":false/ ? 1 : 0;
            print {$log} join(' ', 'A', sprintf('%.4f', $t0),
                sprintf('%.4f', $t1), $st, $code || '-', 'view', $users[0],
                $unverified, 1), "\n";
        }
    }
    for my $k (sort keys %implied) {
        my ($u, $sku) = split /\t/, $k;
        print {$log} "M $u $sku $implied{$k}\n";
    }
    print {$log} "E\n";
    close $log;
}

# Runs the load and the fault. Options:
#   name      the drill
#   clients   concurrent clients (4)
#   users     [[user ids of client 1], ...]  (default one user per client)
#   path      '/nocatalog' | '/api/v1/cart', or one per client
#   fault     sub ($f): injects the fault; calls $f->start($what) and
#             $f->end when the fault begins and is undone (several times
#             for several faults)
#   warmup    seconds of load before the fault (1.5)
#   after     seconds of load after the fault (3)
#   deadline  seconds a write is retried (40)
#   timeout   seconds one request may take (10)
#   mix       ['all' | 'set', ...] per client (default all 'all'; next_op)
#   reads     a view (GET) every n-th write of each client (0: none)
#   rate      writes a second per client at most (250; 0: as fast as
#             answered)
#   base      clients 1..base run all along; the others only between
#             $f->spike_begin and $f->spike_end (a traffic spike)
# -> the result (see verify()).
sub load {
    my (%o) = @_;
    my $dir = "$Out/$o{name}";
    File::Path::make_path($dir);
    $o{clients} //= 4;
    $o{users} //= [map { ["dr-$o{name}-$Run-$_"] } 1 .. $o{clients}];
    $o{path} //= '/nocatalog';
    $o{deadline} //= 40;
    $o{rate} //= 250;
    $o{timeout} //= 10;
    $o{stop} = "$dir/stop";
    unlink $o{stop}, "$o{stop}-spike", "$o{stop}-spike-end",
           glob("$dir/client-*.log");
    my %kids;
    for my $i (1 .. $o{clients}) {
        my $pid = fork // die "fork: $!";
        if ($pid == 0) {
            eval { client($i, \%o, "$dir/client-$i.log"); 1 }
                or print STDERR "drill client $i: $@";
            POSIX::_exit(0);
        }
        $kids{$pid} = $i;
    }
    at_end('clients', sub {
        kill 'KILL', keys %kids;
        waitpid $_, 0 for keys %kids;
    });
    my $f = CartDrill::Faults->new($o{stop});
    my $t_start = now();
    my $ok = eval {
        nap($o{warmup} // 1.5);
        $o{fault}->($f) if $o{fault};
        $f->end if $f->is_open;
        nap($o{after} // 3);
        1;
    };
    my $err = $@;
    spew($o{stop}, '');
    # the clients finish the write in hand: up to the write deadline
    my $until = now() + $o{deadline} + $o{timeout} + 10;
    while (%kids && now() < $until) {
        my $pid = waitpid(-1, POSIX::WNOHANG());
        if ($pid > 0) { delete $kids{$pid}; next }
        nap(0.05);
    }
    if (%kids) {
        kill 'KILL', keys %kids;
        waitpid $_, 0 for keys %kids;
        die "drill clients did not finish: @{[values %kids]}\n";
    }
    cleanup_now('clients');
    spew("$dir/faults.txt", join '', map { "$_->[1] " . ($_->[2] // '-')
                                          . " $_->[0]\n" } @{ $f->{faults} });
    die $err unless $ok;
    return read_logs(\%o, $f, now() - $t_start);
}

sub read_logs {
    my ($o, $f, $took) = @_;
    my $dir = "$Out/$o->{name}";
    my %r = (name => $o->{name}, took => $took, faults => $f->{faults},
             status => {}, requests => 0, acked => 0, replayed => 0,
             answers => [], versions => {}, implied => {}, gave_up => 0,
             not_found => 0, users => [map { @$_ } @{ $o->{users} }],
             max_latency => 0, views => 0, views_unverified => 0, ended => 0);
    my @ledger;
    for my $i (1 .. $o->{clients}) {
        open my $fh, '<', "$dir/client-$i.log" or die "client $i left no log\n";
        while (my $line = <$fh>) {
            chomp $line;
            my ($t, @f) = split / /, $line;
            if ($t eq 'A') {
                my ($t0, $t1, $st, $code, $kind, $u, $sku) = @f;
                $r{requests}++;
                $r{status}{$st}++;
                $r{codes}{$st}{$code}++ if $st !~ /^2/;
                push @{ $r{answers} }, [$t0, $t1, $st, $code, $kind, $i];
                $r{max_latency} = $t1 - $t0 if $t1 - $t0 > $r{max_latency};
                if ($kind eq 'view') {
                    $r{views}++;
                    $r{views_unverified}++ if $st == 200 && $sku;
                }
            } elsif ($t eq 'L') {
                my ($t1, $u, $sku, $kind, $value, $v, $q, $rep) = @f;
                $r{acked}++;
                $r{replayed} += $rep;
                push @{ $r{versions}{$u} }, $v;
                push @{ $r{answered}{$u} }, $t1;
                push @ledger, "$line\n";
            } elsif ($t eq 'M') {
                $r{implied}{$f[0]}{$f[1]} = $f[2];
            } elsif ($t eq 'X') {
                $r{gave_up}++;
                $r{tainted}{$f[0]} = 1;
            } elsif ($t eq 'N') {
                $r{not_found}++;
            } elsif ($t eq 'E') {
                $r{ended}++;
            }
        }
    }
    die "only $r{ended} of $o->{clients} drill clients ended their log\n"
        unless $r{ended} == $o->{clients};
    spew("$dir/ledger.txt",
         "# L answered-at user sku kind value version quantity replayed\n"
         . join('', sort { (split / /, $a)[1] <=> (split / /, $b)[1] }
                         @ledger));
    recovery(\%r);
    return \%r;
}

# Recovery: for each fault, from its end to the first 2xx answer to a kind
# of request that failed (non-2xx) during the fault; 0 when nothing failed.
# "all" is the same per client, the slowest one.
sub recovery {
    my ($r) = @_;
    my ($rec, $all) = (-1, -1);        # -1: nothing failed
    my @sorted = sort { $a->[1] <=> $b->[1] } @{ $r->{answers} };
    for my $fault (@{ $r->{faults} }) {
        my ($start, $end) = @$fault[1, 2];
        my (%failed, %client_failed);
        for my $a (@sorted) {
            next if $a->[2] =~ /^2/;
            next if $a->[1] < $start || $a->[0] > $end;
            $failed{$a->[4]} = 1;
            $client_failed{$a->[5]}{$a->[4]} = 1;
        }
        next unless %failed;
        my ($first, %client_first);
        for my $a (@sorted) {
            next unless $a->[2] =~ /^2/ && $a->[1] >= $end;
            $first //= $a->[1] if $failed{$a->[4]};
            my $cf = $client_failed{$a->[5]};    # (no autovivification)
            $client_first{$a->[5]} //= $a->[1] if $cf && $cf->{$a->[4]};
        }
        my $t = defined $first ? $first - $end : 9e9;
        $rec = $t if $t > $rec;
        for my $c (keys %client_failed) {
            # a client that sent no request of a failed kind after the
            # fault (one that left with it, the spike's) is not measured
            next unless grep { $_->[5] == $c && $_->[0] >= $end
                               && $client_failed{$c}{ $_->[4] } } @sorted;
            my $ct = defined $client_first{$c} ? $client_first{$c} - $end : 9e9;
            $all = $ct if $ct > $all;
        }
    }
    $r->{recovery} = $rec;
    $r->{recovery_all} = $all;
}

# The $pct-th percentile of the latency of the answers sent between $from
# and $to (default: all), in seconds.
sub latency {
    my ($r, $pct, $from, $to) = @_;
    my @l = sort { $a <=> $b }
            map { $_->[1] - $_->[0] }
            grep { (!defined $from || $_->[0] >= $from)
                   && (!defined $to || $_->[0] <= $to) } @{ $r->{answers} };
    return 0 unless @l;
    return $l[int($#l * $pct / 100 + 0.5)];
}

# --- the check ---------------------------------------------------------------

# Reads each user's cart from Redis (@cli: the redis-cli arguments before
# the command, default the drill's Redis) and compares it with the ledger.
sub verify {
    my ($r, @cli) = @_;
    @cli = ($RedisPort) unless @cli;
    my %v = (lost => 0, extra => 0, lines => 0, count => 0, carts => 0,
             lost_at => []);
    for my $u (@{ $r->{users} }) {
        my %h = split /\n/, cli(@cli, 'HGETALL', "cart:{user-$u}");
        my $count = cli(@cli, 'GET', "cart_count:{user-$u}");
        my $final = $h{'#v'} // 0;
        my (%actual, $sum);
        for my $sku (grep { !/^#/ } keys %h) {
            my ($q) = split /\|/, $h{$sku};
            $actual{$sku} = $q;
            $sum += $q;
        }
        $v{carts}++ if %h;
        $v{count}++ if ($count || 0) != ($sum // 0);
        # versions: each acknowledged one must still be there in the end;
        # the stack holds [version, answered at]
        my @stack = ([0, 0]);     # a new cart: version 0
        my @at = @{ $r->{answered}{$u} // [] };
        my $i = 0;
        for my $ver (@{ $r->{versions}{$u} // [] }, $final + 1) {
            while (@stack && $stack[-1][0] >= $ver) {
                my $gone = pop @stack;
                $v{lost}++;
                push @{ $v{lost_at} }, $gone->[1];
            }
            my $top = @stack ? $stack[-1][0] : 0;
            $v{extra} += $ver - $top - 1 if $ver > $top + 1;
            push @stack, [$ver, $at[$i++] // 0];
        }
        next if $r->{tainted}{$u};
        my $implied = $r->{implied}{$u} // {};
        my %skus = map { $_ => 1 } keys %$implied, keys %actual;
        for my $sku (keys %skus) {
            $v{lines}++ if ($implied->{$sku} // 0) != ($actual{$sku} // 0);
        }
    }
    %$r = (%$r, %v);
    return $r;
}

# --- the report --------------------------------------------------------------

# "200:1234 503:12 (store_timeout 10, store_unavailable 2)"
sub statuses {
    my ($r) = @_;
    return join ' ', map {
        my $c = $r->{codes}{$_};
        "$_:$r->{status}{$_}" . ($c ? ' (' . join(', ', map { "$_ $c->{$_}" }
                                                  sort keys %$c) . ')' : '')
    } sort { $a <=> $b } keys %{ $r->{status} };
}

sub secs {
    my ($t) = @_;
    return 'n/a' if $t >= 9e9;
    return '– (nothing failed)' if $t < 0;
    return sprintf($t < 1 ? '%.3f s' : '%.2f s', $t);
}

# Prints the drill's summary line and puts its row into build/drills.md.
# %extra: note => text for the table's last column.
sub report {
    my ($r, %extra) = @_;
    my $rec = secs($r->{recovery});
    $rec .= ' (all clients ' . secs($r->{recovery_all}) . ')'
        if $r->{recovery_all} > $r->{recovery} + 0.05;
    my $line = sprintf('drill %s: %d requests, answers %s, %d writes '
        . 'acknowledged, %d acknowledged writes lost, recovery %s, '
        . 'slowest answer %.2f s, %.0f s',
        $r->{name}, $r->{requests}, statuses($r), $r->{acked}, $r->{lost},
        $rec, $r->{max_latency}, $r->{took});
    $line .= "; $extra{note}" if $extra{note};
    Test::More::diag($line);
    my $row = join(' | ', '', $r->{name}, $r->{requests}, statuses($r),
                   $r->{acked}, $r->{lost}, $rec,
                   sprintf('%.2f s', $r->{max_latency}),
                   $extra{note} // '', stamp(), '');
    $row =~ s/^ //;
    $row =~ s/ $//;
    write_row($r->{name}, $row);
    return $line;
}

# A drill that did not run gets a row saying why.
sub report_skip {
    my ($name, $why) = @_;
    write_row($name, "| $name | – | – | – | – | – | – "
                     . "| not run: $why | " . stamp() . ' |');
}

sub stamp { POSIX::strftime('%Y-%m-%d %H:%M', localtime) }

# Rows live in build/drills/rows/<drill>; build/drills.md is rebuilt from
# all of them, so it shows the latest measure of every drill.
sub write_row {
    my ($name, $row) = @_;
    my $dir = "$Out/rows";
    File::Path::make_path($dir);
    spew("$dir/$name", $row . "\n");
    open my $lock, '>', "$Out/.lock" or die $!;
    flock $lock, LOCK_EX;
    my $md = "# Fault drills\n\n"
        . "The latest run of each drill (`make drills`, or `make test`), "
        . "on this machine. Requests count every HTTP request, retries "
        . "included; status 0 means no answer (refused, reset or timed "
        . "out). Recovery: from the end of the fault to the first 2xx "
        . "answer to a kind of request that failed during it (all clients: "
        . "the slowest client's).\n\n"
        . "| drill | requests | answers by status | acknowledged writes "
        . "| acknowledged writes lost | recovery | slowest answer | notes "
        . "| measured |\n"
        . "|---|---|---|---|---|---|---|---|---|\n";
    for my $f (sort glob("$dir/*")) {
        $md .= slurp($f);
    }
    spew("$Out.md", $md);
    close $lock;
}

# The standard assertions of a drill whose store keeps every acknowledged
# write.
sub check_ledger {
    my ($r, %o) = @_;
    Test::More::cmp_ok($r->{acked}, '>', 0, "$r->{name}: writes acknowledged");
    Test::More::is($r->{lost}, 0, "$r->{name}: no acknowledged write lost")
        unless $o{loss_allowed};
    Test::More::is($r->{extra}, 0,
                   "$r->{name}: no write applied twice or unaccounted for");
    Test::More::is($r->{lines}, 0,
                   "$r->{name}: every line as the ledger implies")
        unless $o{loss_allowed};
    Test::More::is($r->{count}, 0, "$r->{name}: cart_count equals the lines");
    Test::More::is($r->{gave_up}, 0,
                   "$r->{name}: no write left unacknowledged at the deadline");
}

# --- Redis Cluster helpers ---------------------------------------------------

# CRC16/XMODEM, the Redis Cluster key hash
sub crc16 {
    my ($s) = @_;
    my $crc = 0;
    for my $c (unpack 'C*', $s) {
        $crc ^= $c << 8;
        for (1 .. 8) {
            $crc = $crc & 0x8000 ? (($crc << 1) ^ 0x1021) & 0xffff
                                 : ($crc << 1) & 0xffff;
        }
    }
    return $crc;
}

sub keyslot {
    my ($key) = @_;
    if ($key =~ /\{([^}]+)\}/) {
        $key = $1;
    }
    return crc16($key) % 16384;
}

# CLUSTER NODES of the node on $port: [{id, port, flags, master, slots => [..]}]
sub cluster_nodes {
    my ($port) = @_;
    my @nodes;
    for my $line (split /\n/, cli($port, 'CLUSTER', 'NODES')) {
        my ($id, $addr, $flags, $master, undef, undef, undef, $link, @slots) =
            split ' ', $line;
        my ($p) = $addr =~ /:(\d+)/;
        my @s;
        for (@slots) {
            next if /^\[/;                         # importing / migrating
            my ($a, $b) = split /-/;
            push @s, $a .. ($b // $a);
        }
        push @nodes, { id => $id, port => $p, flags => $flags,
                       master => $master, link => $link, slots => \@s };
    }
    return \@nodes;
}

package CartDrill::Faults;

sub new {
    my ($class, $stop) = @_;
    return bless { faults => [], stop => $stop }, $class;
}

sub spike_begin { CartDrill::spew("$_[0]{stop}-spike", '') }
sub spike_end { CartDrill::spew("$_[0]{stop}-spike-end", '') }

sub start {
    my ($self, $what) = @_;
    push @{ $self->{faults} }, [$what, CartDrill::now(), undef];
}

sub end {
    my ($self) = @_;
    $self->{faults}[-1][2] = CartDrill::now();
}

sub is_open {
    my ($self) = @_;
    return @{ $self->{faults} } && !defined $self->{faults}[-1][2];
}

1;
