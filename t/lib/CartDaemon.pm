package CartDaemon;

# Helpers for the companion daemon's tests (t/32x-*.t): a configuration
# file, starting and stopping cartd, one-shot commands, and SQL against
# the test PostgreSQL ($TEST_NGINX_PG_DSN). Called by full name from
# "--- init" code.

use strict;
use warnings;

use POSIX ();
use Time::HiRes ();
use CartClient ();

my $Dir = ($ENV{TEST_NGINX_SERVROOT} // 't/servroot') . '-cartd';

sub bin {
    my $bin = $ENV{TEST_NGINX_CARTD} // 'build/daemon/cartd';
    die "cartd is not built: $bin" unless -x $bin;
    return $bin;
}

# Writes a configuration file; %set overrides or adds directives.
sub conf {
    my ($name, %set) = @_;
    mkdir $Dir;
    my %conf = (
        kafka_brokers      => $ENV{TEST_NGINX_KAFKA_BROKERS},
        postgres           => $ENV{TEST_NGINX_PG_DSN},
        redis              => "redis://127.0.0.1:$ENV{TEST_NGINX_REDIS_PORT}",
        reconcile_interval => 0,
        abandon_interval   => 0,
        %set,
    );
    my $path = "$Dir/$name.conf";
    open my $fh, '>', $path or die "$path: $!";
    for my $k (sort keys %conf) {
        next unless defined $conf{$k};
        print {$fh} "$k $_\n" for ref $conf{$k} ? @{$conf{$k}} : $conf{$k};
    }
    close $fh;
    return $path;
}

sub log_path { return "$Dir/$_[0].log" }

# Starts "cartd -c CONF run" in the background; returns its pid. Its
# stderr goes to log_path($name). %env is added to its environment.
my %Logs;     # the logs this test file has started: each begins empty

sub start {
    my ($name, $conf, %env) = @_;
    unlink log_path($name) unless $Logs{$name}++;
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDERR, '>>', log_path($name) or POSIX::_exit(1);
        open STDOUT, '>&', \*STDERR;
        $ENV{$_} = $env{$_} for keys %env;
        { exec bin(), '-c', $conf, 'run' }
        POSIX::_exit(1);
    }
    return $pid;
}

# SIGTERM (or $sig) and wait; returns the exit status as $? has it.
sub stop {
    my ($pid, $sig) = @_;
    kill $sig // 'TERM', $pid;
    waitpid $pid, 0;
    return $?;
}

# Waits for a daemon to exit by itself (at most $timeout s); its $? or undef.
sub wait_exit {
    my ($pid, $timeout) = @_;
    my $deadline = Time::HiRes::time() + ($timeout // 20);
    while (Time::HiRes::time() < $deadline) {
        return $? if waitpid($pid, POSIX::WNOHANG()) == $pid;
        Time::HiRes::sleep(0.05);
    }
    return undef;
}

# Waits until the daemon's log ($name) has a line matching $re.
sub wait_log {
    my ($name, $re, $timeout) = @_;
    my $deadline = Time::HiRes::time() + ($timeout // 30);
    while (Time::HiRes::time() < $deadline) {
        if (open my $fh, '<', log_path($name)) {
            return 1 if grep { $_ =~ $re } <$fh>;
        }
        Time::HiRes::sleep(0.05);
    }
    return 0;
}

# Runs a one-shot command: (exit status, output).
sub run {
    my ($conf, @args) = @_;
    my $cmd = join ' ', map { quotemeta } bin(), '-c', $conf, @args;
    my $out = `$cmd 2>&1`;
    return ($? >> 8, $out);
}

# One SQL statement (or several separated by ;): the unaligned output,
# rows on lines, columns separated by |.
sub sql {
    my ($sql) = @_;
    open my $fh, '-|', 'psql', '-X', '-Atq', '-v', 'ON_ERROR_STOP=1',
                       '-d', $ENV{TEST_NGINX_PG_DSN}, '-c', $sql
        or die "psql: $!";
    my $out = do { local $/; <$fh> } // '';
    close $fh or die "psql failed: $sql";
    chomp $out;
    return $out;
}

# Polls $sql until it returns $want (at most $timeout s, default 30,
# every $pause s, default 0.05); returns the last answer.
sub wait_sql {
    my ($sql, $want, $timeout, $pause) = @_;
    my $deadline = Time::HiRes::time() + ($timeout // 30);
    my $got;
    do {
        $got = sql($sql);
        return $got if $got eq $want;
        Time::HiRes::sleep($pause // 0.05);
    } while (Time::HiRes::time() < $deadline);
    return $got;
}

# The activity index key of an owner's slot, as cartd names it.
sub activity_key {
    my ($owner) = @_;
    my $out = `$ENV{TEST_NGINX_CARTD} --activity-key \Q$owner\E`;
    chomp $out;
    return $out;
}

# A cart as Redis has it and as cart_snapshots has it, in one text form:
# "version;sku=qty|price|seller|added,..." (price in minor units, added in
# unix seconds).
sub redis_cart {
    my ($owner) = @_;
    my @kv = split /\n/, CartTest::redis_cmd('HGETALL', "cart:{$owner}");
    my %h = @kv;
    my $v = delete $h{'#v'} // 0;
    s/\|([0-9a-z]+)$/'|' . CartClient::line_time($1)/e for values %h;
    return "$v;" . join ',', sort map { "$_=$h{$_}" } grep { !/^#/ } keys %h;
}

sub pg_cart {
    my ($owner) = @_;
    my $v = sql("SELECT version FROM carts WHERE user_id = '$owner'");
    my @lines = split /\n/, sql("SELECT sku_id || '=' || quantity || '|'"
        . " || COALESCE((price_at_add * 100)::bigint::text, '') || '|'"
        . " || COALESCE(seller_id, '') || '|'"
        . " || EXTRACT(EPOCH FROM added_at)::bigint"
        . " FROM cart_snapshots WHERE user_id = '$owner'");
    return ($v eq '' ? 'none' : $v) . ';' . join ',', sort @lines;
}

1;
