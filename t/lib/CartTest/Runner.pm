package CartTest::Runner;

# The project's own implementation of the part of OpenResty's
# Test::Nginx::Socket that our tests use, for machines where the real one
# cannot be installed.  Test files never use this module directly: they use
# CartTest, which picks the real Test::Nginx::Socket when it is available
# and this module otherwise, so every .t file must mean the same thing to
# both.  Where the two could differ, this module follows the real one (the
# test data format is Test::Base's, the checks and their names are
# Test::Nginx::Socket's), or is stricter than it, so that a test passing
# here also passes there.  t/README.md lists what is supported.
#
# Only core Perl modules are used.

use strict;
use warnings;

use Cwd ();
use Errno ();
use Exporter qw(import);
use File::Basename qw(dirname);
use File::Path qw(make_path remove_tree);
use File::Spec;
use IO::Select;
use IO::Socket::INET;
use POSIX qw(WNOHANG);
use Time::HiRes qw(sleep time);

# Test::Base re-exports these Test::More functions to test files; so do we.
use Test::More import => [qw(ok is isnt like unlike is_deeply cmp_ok skip
                             todo_skip pass fail can_ok isa_ok diag $TODO)];

our @EXPORT = (
    qw(plan run_tests blocks repeat_each add_block_preprocessor bail_out
       no_shuffle no_long_string no_root_location config_preamble
       log_level master_on master_off master_process_enabled workers
       worker_connections env_to_nginx timeout
       html_dir server_root server_port
       $ServerPort $ServRoot),
    qw(ok is isnt like unlike is_deeply cmp_ok skip todo_skip pass fail
       can_ok isa_ok diag $TODO),
);

# ---------------------------------------------------------------------------
# Settings: same names, environment variables and defaults as
# Test::Nginx::Util.

our $ServerPort = $ENV{TEST_NGINX_SERVER_PORT} || $ENV{TEST_NGINX_PORT} || 1984;
our $ServRoot   = $ENV{TEST_NGINX_SERVROOT} || File::Spec->rel2abs('t/servroot');

my $NginxBinary = $ENV{TEST_NGINX_BINARY} || '/usr/sbin/nginx';
my $UseValgrind = $ENV{TEST_NGINX_USE_VALGRIND};

# HUP mode reloads one long-lived nginx, which valgrind mode cannot do: it
# needs nginx to exit after each block to produce its leak report.
my $UseHup = $ENV{TEST_NGINX_USE_HUP} && !$UseValgrind;

# TEST_NGINX_CAPTURE=<file>: every request a block sends and its answer
# are appended to the file, one JSON line each (see _capture); t/990 checks
# the answers of the cart locations against docs/openapi.yaml.  The real
# Test::Nginx has no such thing: there nothing is captured.
my $CaptureFile = $ENV{TEST_NGINX_CAPTURE};

# ASan mode (make test-asan): the module is built with AddressSanitizer and
# UndefinedBehaviorSanitizer, and /usr/sbin/nginx runs with the ASan
# runtime preloaded (TEST_NGINX_ASAN_PRELOAD, set by util/test.sh). Their
# reports go to files, "$LogDir/sanitizer.<pid>"; each block gets one more
# check, "sanitizers clean", that fails with any report written while it
# ran, by its nginx or by another sanitized program whose reports go to
# TEST_NGINX_SANITIZER_LOG.<pid> (cartd, an nginx -t of a test).
my $UseAsan = $ENV{TEST_NGINX_USE_ASAN} && !$UseValgrind;
my $AsanPreload = $ENV{TEST_NGINX_ASAN_PRELOAD};
die "TEST_NGINX_USE_ASAN needs TEST_NGINX_ASAN_PRELOAD, the ASan runtime"
    . " to preload (util/test.sh sets it)\n"
    if $UseAsan && !($AsanPreload && -f $AsanPreload);
my $SanitizerLog = $ENV{TEST_NGINX_SANITIZER_LOG};
my %SanitizerSeen;    # report file => bytes already reported

my $Timeout              = $ENV{TEST_NGINX_TIMEOUT} || ($UseValgrind ? 15 : 3);
my $RepeatEach           = 1;
my $Workers              = 1;
my $WorkerConnections    = 64;
my $LogLevel             = $ENV{TEST_NGINX_LOG_LEVEL} || 'debug';
my $MasterProcessEnabled = $ENV{TEST_NGINX_MASTER_PROCESS} || 'off';
my $NoRootLocation       = 0;
my $ConfigPreamble       = '';
my @EnvToNginx;
my @BlockPreprocessors;

my $HtmlDir    = "$ServRoot/html";
my $ConfDir    = "$ServRoot/conf";
my $LogDir     = "$ServRoot/logs";
my $ErrLogFile = "$LogDir/error.log";
my $PidFile    = "$LogDir/nginx.pid";
my $OutFile    = "$LogDir/nginx.out";    # nginx's own stdout/stderr

my $StartupWait  = $UseValgrind ? 30 : 10;    # seconds
my $ShutdownWait = $UseValgrind ? 30 : 5;

# Like Test::Nginx, give nginx a moment before reading its error log: it
# writes log-phase messages after it has sent the response.
my $LogSettle = 0.045;

# The project's valgrind suppressions, if any, and ours: valgrind mode runs
# nginx as a single process, which at exit does not free its copy of the
# environment nor the event module's connections (ngx_event_process_init,
# static, reached from ngx_single_process_cycle through init_process).
my $ValgrindSuppressions =
    File::Spec->catfile(dirname(dirname(dirname(Cwd::abs_path(__FILE__)))),
                        'valgrind.suppress');
my $NginxSuppressions = <<'EOS';
{
   nginx-single-process-environment
   Memcheck:Leak
   fun:malloc
   fun:ngx_alloc
   fun:ngx_set_environment
   fun:ngx_single_process_cycle
}
{
   nginx-single-process-event-init
   Memcheck:Leak
   fun:malloc
   fun:ngx_alloc
   obj:*/nginx
   fun:ngx_single_process_cycle
}
EOS

$ENV{TEST_NGINX_SERVROOT}    //= $ServRoot;
$ENV{TEST_NGINX_SERVER_ROOT} //= $ServRoot;
$ENV{TEST_NGINX_HTML_DIR}    //= $HtmlDir;

# Sections of the real Test::Nginx::Socket that this runner does not
# implement.  A block using one is refused rather than run without the
# check, which would pass here and maybe fail under the real one.
my %UnsupportedSections = map { $_ => 1 } qw(
    pipelined_requests raw_request_middle_delay ignore_response http09
    grep_error_log grep_error_log_out access_log no_access_log
    shutdown_error_log no_shutdown_error_log must_die reload_fails
    raw_response_headers_like raw_response_headers_unlike
    response_body_filters response_body_json_sort write_resp_body_file
    tcp_listen tcp_reply tcp_query tcp_query_len tcp_shutdown tcp_no_close
    udp_listen udp_reply udp_query stap stap_out stap_out_like stap_out_unlike
    skip_nginx skip_nginx2 skip_eval skip_openssl skip_slave todo todo_nginx
    http2 http3 charset server_name server_addr_for_client error_log_file
    post_setup_server_root
);

# ---------------------------------------------------------------------------
# Configuration API.

# A numeric plan is passed on to Test::More, adding the one "valgrind clean"
# (or "sanitizers clean") assertion per block that valgrind (ASan) mode makes.
sub plan {
    my @args = @_;
    if (($UseValgrind || $UseAsan) && @args == 2 && $args[0] eq 'tests') {
        $args[1] += blocks();
    }
    Test::More::plan(@args);
}

sub repeat_each {
    $RepeatEach = shift if @_;
    return $RepeatEach;
}

sub add_block_preprocessor {
    # Like Test::Nginx: the preprocessor added last runs first.
    unshift @BlockPreprocessors, shift;
}

sub bail_out {
    _stop_nginx();
    Test::More::BAIL_OUT(join '', @_);
}

# Blocks always run in file order, and response bodies are always compared
# with Test::More::is; these two exist so that test files written for the
# real Test::Nginx (which shuffles and uses Test::LongString) run unchanged.
sub no_shuffle     { }
sub no_long_string { }

sub no_root_location { $NoRootLocation = 1 }
sub config_preamble  { $ConfigPreamble = shift }
sub master_on        { $MasterProcessEnabled = 'on' }
sub master_off       { $MasterProcessEnabled = 'off' }

sub master_process_enabled {
    $MasterProcessEnabled = shift() ? 'on' : 'off' if @_;
    return $MasterProcessEnabled;
}

sub log_level {
    $LogLevel = shift if @_;
    return $LogLevel;
}

sub workers {
    $Workers = shift if @_;
    return $Workers;
}

sub worker_connections {
    $WorkerConnections = shift if @_;
    return $WorkerConnections;
}

sub timeout {
    $Timeout = shift if @_;
    return $Timeout;
}

sub server_port {
    $ServerPort = shift if @_;
    return $ServerPort;
}

sub env_to_nginx {
    for my $var (@_) {
        die "env_to_nginx: bad argument '$var'\n"
            if $var !~ /^[A-Za-z_]/ || $var =~ /\n/;
        push @EnvToNginx, $var;
    }
}

sub html_dir    { $HtmlDir }
sub server_root { $ServRoot }

# ---------------------------------------------------------------------------
# Test data, in Test::Base's format:
#
#   === block name
#   optional description
#   --- section filter filter...
#   value lines
#   --- section filter...: one-line value
#
# Every value goes through Test::Base's default filters "norm" (line ends
# to \n) and "trim" (drop leading and trailing blank lines, keep the final
# newline), then through the filters named on its section line.

my $Blocks;      # the blocks to run, after ONLY / SKIP / LAST
my $Filtered;    # whether the section filters have run

# In scalar context, the number of blocks; in list context the blocks, their
# sections filtered (as Test::Base does: "eval" sections are evaluated at
# that point, before any block runs).
sub blocks {
    $Blocks ||= _parse_spec(_read_spec());
    return scalar @$Blocks unless wantarray;
    if (!$Filtered) {
        _run_filters($_) for @$Blocks;
        $Filtered = 1;
    }
    return @$Blocks;
}

sub _read_spec {
    no warnings 'once';
    if (defined fileno(*main::DATA)) {
        local $/;
        return scalar(<main::DATA>) // '';
    }
    # main::DATA is gone (read or closed by the test file): take the text
    # after __DATA__ / __END__ from the script itself.
    open my $fh, '<', $0 or die "cannot read $0: $!\n";
    local $/;
    my $source = <$fh>;
    return $source =~ /^__(?:DATA|END)__\r?\n(.*)\z/ms ? $1 : '';
}

sub _parse_spec {
    my ($spec) = @_;
    my @blocks;
    for my $hunk ($spec =~ /^(===.*?(?=^===|\z))/msg) {
        my $block = _parse_block($hunk);
        return [$block] if exists $block->{ONLY};
        next if exists $block->{SKIP};
        push @blocks, $block;
        last if exists $block->{LAST};
    }
    return \@blocks;
}

sub _parse_block {
    my ($hunk) = @_;
    $hunk =~ s/\A===[ \t]*(.*)\s+//
        or die "malformed test block: $hunk\n";
    my $name = $1;
    my ($description, @parts) = split /^--- +\(?(\w+)\)? *(.*)?\n/m, $hunk;

    my $block = CartTest::Runner::Block->new;
    $description = $name if !defined $description || $description !~ /\S/;
    $description =~ s/\s*\z//;
    $block->set_value(description => $description);
    $block->set_value(name => $name);

    while (@parts) {
        my ($section, $filters, $value) = splice @parts, 0, 3;
        die "$name: '$section' is a reserved name, use another section name\n"
            if $section =~ /^(?:_|name$|description$)/
               || CartTest::Runner::Block->can($section);
        $filters //= '';
        $value   //= '';
        # one-line form: "--- section filters: value"
        if ($filters =~ /:(\s|\z)/) {
            die "$name: extra lines not allowed in one-line section '$section'\n"
                if $value =~ /\S/;
            ($filters, $value) = split /\s*:(?:\s+|\z)/, $filters, 2;
            $value //= '';
            $value =~ s/^\s*(.*?)\s*$/$1/;
        }
        $block->{_filters}{$section} = $filters;
        push @{ $block->{_sections} }, $section;
        $block->set_value($section, $value);
    }
    return $block;
}

sub _run_filters {
    my ($block) = @_;
    for my $section (@{ $block->{_sections} || [] }) {
        my @value = $block->$section;
        for my $filter (_filter_list($block->{_filters}{$section})) {
            @value = _apply_filter($block, $section, $filter, @value);
        }
        $block->set_value($section, @value);
    }
}

# The default filters plus those on the section line; "-name" removes a
# default one.
sub _filter_list {
    my ($spec) = @_;
    my @filters = qw(norm trim);
    for my $filter (split ' ', $spec) {
        if ($filter =~ s/^-//) {
            @filters = grep { $_ ne $filter } @filters;
        } else {
            push @filters, $filter;
        }
    }
    return @filters;
}

sub _apply_filter {
    my ($block, $section, $filter, @value) = @_;
    if ($filter eq 'norm') {
        my $text = $value[0] // '';
        $text =~ s/\015\012/\n/g;
        $text =~ s/\r/\n/g;
        return $text;
    }
    if ($filter eq 'trim') {
        return map { s/\A([ \t]*\n)+//; s/(?<=\n)\s*\z//g; $_ } @value;
    }
    if ($filter eq 'chomp') {
        return map { chomp; $_ } @value;
    }
    if ($filter eq 'chop') {
        return map { chop; $_ } @value;
    }
    if ($filter eq 'eval') {
        # Test::Base evaluates in list context: "a", "b" gives two values,
        # of which the section accessor returns the first.
        my @result = _eval_in_main($value[0]);
        # (Test::Base would use the error message as the value instead.)
        bail_out($block->name . " - error in '--- $section eval': $@") if $@;
        return @result;
    }
    bail_out($block->name . " - unknown filter '$filter' in '--- $section'"
             . " (supported: eval, chomp, chop, -trim, -norm)");
}

# Test code from the blocks ("eval" sections, "--- init") runs in package
# main, where CartTest exported its helpers.
sub _eval_in_main {
    my ($code) = @_;
    return eval "package main;\n#line 1 \"test block code\"\n$code";
}

# ---------------------------------------------------------------------------
# Running the blocks.

my $NginxPid;          # the running nginx (master) process
my $ChildPid;          # the same, when it is our own child (valgrind mode)
my $ErrLogPos = 0;     # error.log offset up to which checks have read
my $ParentPid = $$;

sub run_tests {
    $ENV{TEST_NGINX_SERVER_PORT} //= $ServerPort;
    $ENV{TEST_NGINX_PORT}        //= $ServerPort;

    # Stop nginx (in END) on ^C or kill too.
    local $SIG{INT}  = sub { exit 130 };
    local $SIG{TERM} = sub { exit 143 };
    # A server closing early must show up as a test failure, not kill us.
    local $SIG{PIPE} = 'IGNORE';

    for my $block (blocks()) {
        $_->($block) for @BlockPreprocessors;
        # Test::Nginx names every check "<script> <block name> - <check>".
        $block->set_value(name => "$0 " . $block->name);
        _run_block($block);
    }
    _stop_nginx();    # HUP mode keeps nginx across blocks
}

my $CurrentBlock;    # the block running now, for capture_exchange

sub _run_block {
    my ($block) = @_;
    my $name = $block->name;
    $CurrentBlock = $block;

    for my $section (@{ $block->{_sections} || [] }) {
        bail_out("$name - '--- $section' is not supported by CartTest::Runner"
                 . " (see t/README.md)")
            if $UnsupportedSections{$section};
    }
    # The real Test::Nginx keeps the previous block's nginx running for a
    # block without config; we restart nginx for every block, so require it.
    bail_out("$name - no '--- config' section") unless defined $block->config;
    my $requests = _build_requests($block);

    my $error = $UseHup && _nginx_running() ? _reload_nginx($block)
                                            : _start_nginx($block);
    my $log_start = $ErrLogPos;    # where this block's lines begin
    if ($error) {
        fail("$name - nginx is up");
        diag($error);
        _stop_nginx();
        _check_sanitizers($block, $log_start) if $UseAsan;
        return;
    }

    if (defined(my $init = $block->init)) {
        _eval_in_main("$init;\n1") or bail_out("$name - init failed: $@");
    }

    for my $repeat (0 .. $RepeatEach - 1) {
        # Like Test::Nginx: tests may change their files, restore them.
        _write_user_files($block) if $repeat > 0;
        _run_requests($block, $requests, $repeat);
    }

    if ($UseHup) {
        _check_sanitizers($block, $log_start) if $UseAsan;
        return;
    }
    _stop_nginx();
    _check_valgrind($block) if $UseValgrind;
    _check_sanitizers($block, $log_start) if $UseAsan;
}

sub _run_requests {
    my ($block, $requests, $repeat) = @_;
    my $name = $block->name;
    my $timeout = _parse_time($block->timeout) // $Timeout;
    my $need_array = @$requests > 1;

    for my $i (0 .. $#$requests) {
        my $res = _do_request($name, $requests->[$i], $timeout, $i);
        _capture($block, $requests->[$i], $res, $i, $repeat) if $CaptureFile;
        _check_error_code($block, $res, $i, $need_array);
        _check_response_headers($block, $res, $i, $need_array);
        _check_response_body($block, $res, $i, $repeat, $need_array);

        # Like Test::Nginx, check the error log after every request; each
        # check sees the lines logged since the previous one.
        if ($i < $#$requests) {
            _wait($block);
            _check_error_log($block, $repeat);
        }
    }
    _wait($block);
    _check_error_log($block, $repeat);
}

# "--- wait": seconds, a plain number as in Test::Nginx (which has no "ms").
sub _wait {
    my ($block) = @_;
    my $wait = $block->wait;
    return unless $wait;
    bail_out($block->name . " - bad '--- wait' value '$wait' (seconds expected)")
        unless $wait =~ /^\s*\d*\.?\d+\s*$/;
    sleep $wait;
}

# "5", "5s" or "500ms", in seconds.
sub _parse_time {
    my ($time) = @_;
    return undef unless defined $time;
    return $1 / 1000 if $time =~ /^\s*([\d.]+)\s*ms\s*$/;
    return $1        if $time =~ /^\s*([\d.]+)\s*s?\s*$/;
    bail_out("bad time value '$time' (expected seconds, 5s or 500ms)");
}

# Replaces $TEST_NGINX_FOO with the environment variable's value; an
# undefined one is an error, as in Test::Nginx (nginx variables never start
# with TEST_NGINX_).
sub _expand_env {
    my ($text, $name) = @_;
    return $text if !defined $text || ref $text;
    $text =~ s{\$(TEST_NGINX_[_A-Z0-9]+)}{
        $ENV{$1} // bail_out("$name - no environment variable $1 defined")
    }ge;
    return $text;
}

# Picks the value for request $i from a check section, which is an array
# with one element per request when the block sends several requests.
sub _indexed {
    my ($name, $value, $i, $need_array) = @_;
    if (ref $value eq 'ARRAY') {
        return $value->[$i];
    }
    bail_out("$name - You asked for many requests, the expected results"
             . " should be arrays as well.")
        if $need_array;
    return $value;
}

# ---------------------------------------------------------------------------
# The server root and nginx.conf.

sub _setup_servroot {
    my ($keep_logs) = @_;
    remove_tree($ConfDir, $HtmlDir);
    # A running nginx (HUP mode) keeps its logs and temp directories.
    remove_tree($LogDir, glob("$ServRoot/*_temp")) unless $keep_logs;
    make_path($ConfDir, $HtmlDir, $LogDir);
    _write_file("$HtmlDir/index.html",
                '<html><head><title>It works!</title></head>'
                . '<body>It works!</body></html>');
}

sub _write_file {
    my ($path, $content) = @_;
    make_path(dirname($path));
    open my $fh, '>', $path or bail_out("cannot write $path: $!");
    binmode $fh;
    print {$fh} $content;
    close $fh or bail_out("cannot write $path: $!");
}

# "--- user_files": files in the html directory (or absolute paths), each
# introduced by a ">>> path" line; or, from "eval", [[path, content], ...].
sub _write_user_files {
    my ($block) = @_;
    my $files = $block->user_files;
    return unless defined $files;
    my $name = $block->name;

    my @files;
    if (ref $files eq 'ARRAY') {
        @files = @$files;
    } elsif (!ref $files) {
        for my $line (split /^/, $files) {
            if ($line =~ /^>>> (\S+)(?:[ \t]+(\S.*?))?\s*$/) {
                bail_out("$name - user_files: file dates ('$2') are not"
                         . " supported by CartTest::Runner")
                    if defined $2;
                push @files, [$1, ''];
            } elsif (@files) {
                $files[-1][1] .= $line;
            }
        }
    } else {
        bail_out("$name - user_files must be text or an array of [path, content]");
    }

    for my $file (@files) {
        my ($path, $content) = @$file;
        $path = "$HtmlDir/$path" unless $path =~ m{^/};
        _write_file($path, _expand_env($content // '', $name));
    }
}

sub _master_process {
    return 'on'  if $UseHup;         # reloading needs a master
    return 'off' if $UseValgrind;    # we run nginx itself under valgrind
    return $MasterProcessEnabled;
}

sub _write_config {
    my ($block) = @_;
    my $name        = $block->name;
    my $config      = _expand_env($block->config, $name);
    my $http_config = _expand_env($block->http_config // '', $name);
    my $main_config = _expand_env($block->main_config // '', $name);
    my $post_main_config = _expand_env($block->post_main_config // '', $name);
    my $log_level   = $block->log_level // $LogLevel;
    my $master      = _master_process();
    # In valgrind mode nginx stays in the foreground as our child process.
    my $daemon      = $UseValgrind ? 'off' : 'on';

    # (ASan mode: the runtime has read its options when nginx started, but
    # they stay in the workers' environment, as they would under a master
    # that re-executes itself)
    my @env = (@EnvToNginx, $UseAsan ? qw(LD_PRELOAD ASAN_OPTIONS UBSAN_OPTIONS) : ());
    my $env = join '', map { my $v = /\s/ ? "'$_'" : $_; "env $v;\n" } @env;
    # With a master process running as root, workers would otherwise switch
    # to "nobody", who may not read our files; without one, "user" only
    # earns a warning in the log.
    my $user = $> == 0 && $master eq 'on' ? "user root root;\n" : '';

    # Temp paths inside the server root, unless the test sets its own.
    my $temp_paths = '';
    for my $kind (qw(client_body proxy fastcgi uwsgi scgi)) {
        next if $http_config =~ /\b${kind}_temp_path\b/;
        $temp_paths .= "    ${kind}_temp_path $ServRoot/${kind}_temp;\n";
    }

    my $root_location = $NoRootLocation ? '' : <<"EOC";
        location / {
            root $HtmlDir;
            index index.html index.htm;
        }
EOC

    _write_file("$ConfDir/nginx.conf", <<"EOC");
# written by CartTest::Runner for: $name
worker_processes  $Workers;
daemon $daemon;
master_process $master;
error_log $ErrLogFile $log_level;
pid       $PidFile;
$user$env
$main_config

events {
    accept_mutex off;
    worker_connections  $WorkerConnections;
}

http {
    access_log $LogDir/access.log;
    default_type text/plain;
    keepalive_timeout  68;
$temp_paths
$http_config

    server {
        listen          127.0.0.1:$ServerPort;
        server_name     localhost;
        client_max_body_size 30M;

$ConfigPreamble
$config

$root_location    }
}

$post_main_config
EOC
}

# ---------------------------------------------------------------------------
# Starting, reloading and stopping nginx.

# Starts nginx for the block; returns an error message on failure.
sub _start_nginx {
    my ($block) = @_;
    _stop_nginx();    # also one left behind by an earlier, aborted run
    return "port $ServerPort is already in use by another process"
        if _port_listening($ServerPort);

    _setup_servroot();
    _write_user_files($block);
    _write_config($block);
    $ErrLogPos = 0;

    # -e: errors found before nginx reads its config go to our log too.
    my @cmd = ($NginxBinary, '-p', "$ServRoot/", '-c', 'conf/nginx.conf',
               '-e', $ErrLogFile);
    if ($UseValgrind) {
        _write_file("$ConfDir/nginx.supp", $NginxSuppressions);
        # --keep-debuginfo: leaks of libraries unloaded with the module at
        # exit keep their function names, so suppressions can match them
        unshift @cmd, 'valgrind', '-q', '--tool=memcheck', '--leak-check=full',
            '--show-possibly-lost=no', '--num-callers=30', '--keep-debuginfo=yes',
            "--suppressions=$ConfDir/nginx.supp",
            (-f $ValgrindSuppressions ? "--suppressions=$ValgrindSuppressions" : ()),
            "--log-file=$LogDir/valgrind.%p.log";
    }

    # a new logs directory: its sanitizer reports are all new
    delete @SanitizerSeen{ grep { index($_, "$LogDir/") == 0 } keys %SanitizerSeen };

    my $pid = fork // return "cannot fork: $!";
    if ($pid == 0) {
        setpgrp;    # ^C is for the runner, which stops nginx cleanly
        _asan_env() if $UseAsan;
        open STDOUT, '>>', $OutFile and open STDERR, '>&', \*STDOUT
            and exec @cmd;
        print STDERR "cannot run @cmd: $!\n";
        POSIX::_exit(127);
    }

    my $deadline = time + $StartupWait;
    if ($UseValgrind) {
        # nginx itself is our child: it is up once it listens.
        $NginxPid = $ChildPid = $pid;
        until (_port_listening($ServerPort)) {
            return _startup_failure('nginx exited') unless _is_running($pid);
            return _startup_failure("nginx did not listen within ${StartupWait}s")
                if time > $deadline;
            sleep 0.05;
        }
        return undef;
    }

    # The child daemonizes once its sockets listen, then exits.
    while (waitpid($pid, WNOHANG) == 0) {
        if (time > $deadline) {
            kill 'KILL', $pid;
            waitpid($pid, 0);
            return _startup_failure("nginx did not start within ${StartupWait}s");
        }
        sleep 0.02;
    }
    return _startup_failure("nginx exited with status " . ($? >> 8)) if $?;

    # The daemon writes its pid file right after detaching.
    until ($NginxPid = _pid_from_file()) {
        return _startup_failure("no nginx pid file after ${StartupWait}s")
            if time > $deadline;
        sleep 0.02;
    }
    return undef;
}

sub _startup_failure {
    my ($what) = @_;
    my $report = "$what; tail of $ErrLogFile:\n" . _tail($ErrLogFile, 20);
    my $out = _slurp($OutFile);
    $report .= "nginx output:\n$out" if length $out;
    return $report;
}

# HUP mode: reconfigures the running nginx for the block and waits until the
# new configuration serves; returns an error message on failure.
sub _reload_nginx {
    my ($block) = @_;
    _setup_servroot('keep logs');
    _write_user_files($block);
    _write_config($block);

    # The block's checks see the log lines from the reload on, as they see
    # those from the start in the normal mode.
    $ErrLogPos = -s $ErrLogFile // 0;
    my %old = map { $_ => 1 } _worker_pids($NginxPid);
    kill 'HUP', $NginxPid or return "cannot send HUP to nginx $NginxPid: $!";

    # The new configuration is in force once new workers run and every old
    # one has stopped accepting ("is shutting down") or exited.
    my $deadline = time + $StartupWait;
    while (time < $deadline) {
        my @new = grep { !$old{$_} } _worker_pids($NginxPid);
        my @accepting = grep { _is_running($_) && _cmdline($_) !~ /shutting down/ }
                        keys %old;
        if (@new >= $Workers && !@accepting) {
            sleep 0.015;    # (the title changes just before sockets close)
            return undef;
        }
        my @emerg = grep { /\[emerg\]/ } _log_lines_from($ErrLogPos);
        return "nginx rejected the new configuration:\n" . join '', @emerg
            if @emerg;
        sleep 0.02;
    }
    return _startup_failure("nginx did not reload within ${StartupWait}s");
}

sub _nginx_running {
    return $NginxPid && _is_running($NginxPid);
}

# Stops our nginx, if any: gracefully (QUIT), then TERM, then KILL, so that
# no nginx is ever left behind.
sub _stop_nginx {
    my $pid = $NginxPid // _pid_from_file();
    undef $NginxPid;
    if ($pid && _is_running($pid)) {
        # Workers of a master that has to be killed would be orphaned.
        my @children = map { $_->[0] } _children($pid);
        kill 'QUIT', $pid;
        unless (_wait_exit($pid, $ShutdownWait)) {
            diag("nginx $pid did not quit within ${ShutdownWait}s, terminating it");
            kill 'TERM', $pid;
            unless (_wait_exit($pid, 2)) {
                kill 'KILL', $pid;
                _wait_exit($pid, 2);
            }
        }
        kill 'KILL', grep { _is_running($_) } @children;
    }
    # A master that crashed (an ASan report on reload) leaves its workers
    # behind, holding the port: they are in its process group (nginx's
    # daemon() or our setpgrp made it the leader).
    kill 'KILL', -$pid if $pid && !_is_running($pid) && _group_members($pid);
    waitpid($ChildPid, 0) if $ChildPid;
    undef $ChildPid;
    unlink $PidFile;
}

sub _wait_exit {
    my ($pid, $seconds) = @_;
    my $deadline = time + $seconds;
    while (_is_running($pid)) {
        return 0 if time > $deadline;
        sleep 0.02;
    }
    return 1;
}

# The pid in the pid file, if it is an nginx process (never trust a stale
# pid file to name a process of ours).
sub _pid_from_file {
    my $pid = _slurp($PidFile);
    return undef unless $pid =~ /^\s*(\d+)\s*$/;
    $pid = $1;
    return _is_running($pid) && _cmdline($pid) =~ /nginx/ ? $pid : undef;
}

sub _is_running {
    my ($pid) = @_;
    # Our own child lingers as a zombie until reaped.
    waitpid($pid, WNOHANG) if $ChildPid && $pid == $ChildPid;
    my ($state) = _slurp("/proc/$pid/stat") =~ /.*\)\s+(\S)/s;
    return defined $state && $state ne 'Z';
}

sub _cmdline {
    my ($pid) = @_;
    (my $cmdline = _slurp("/proc/$pid/cmdline")) =~ tr/\0/ /;
    return $cmdline;
}

# [pid, command line] of each process whose parent is $ppid.
sub _children {
    my ($ppid) = @_;
    my @children;
    opendir my $dh, '/proc' or return;
    for my $pid (grep { /^\d+$/ } readdir $dh) {
        my ($parent) = _slurp("/proc/$pid/stat") =~ /.*\)\s+\S+\s+(\d+)/s;
        push @children, [$pid, _cmdline($pid)] if defined $parent && $parent == $ppid;
    }
    return @children;
}

# Whether any process is in the process group $pgid.
sub _group_members {
    my ($pgid) = @_;
    opendir my $dh, '/proc' or return 0;
    for my $pid (grep { /^\d+$/ } readdir $dh) {
        my ($pgrp) = _slurp("/proc/$pid/stat") =~ /.*\)\s+\S+\s+\d+\s+(\d+)/s;
        return 1 if defined $pgrp && $pgrp == $pgid;
    }
    return 0;
}

sub _worker_pids {
    my ($master) = @_;
    return map { $_->[0] } grep { $_->[1] =~ /worker process/ } _children($master);
}

# Whether a socket listens on the TCP port (read from /proc, as connecting
# would add a line to nginx's error log).
sub _port_listening {
    my ($port) = @_;
    my $hex = sprintf '%04X', $port;
    for my $table ('/proc/net/tcp', '/proc/net/tcp6') {
        for my $line (split /\n/, _slurp($table)) {
            my @field = split ' ', $line;
            return 1 if @field > 3 && $field[1] =~ /:$hex$/ && $field[3] eq '0A';
        }
    }
    return 0;
}

sub _slurp {
    my ($path) = @_;
    open my $fh, '<', $path or return '';
    local $/;
    return scalar(<$fh>) // '';
}

sub _tail {
    my ($path, $count) = @_;
    my @lines = split /^/, _slurp($path);
    splice @lines, 0, -$count if @lines > $count;
    return join '', @lines;
}

sub _log_lines_from {
    my ($pos) = @_;
    open my $fh, '<', $ErrLogFile or return;
    seek $fh, $pos, 0;
    return <$fh>;
}

END {
    # Only the runner itself, not a child that failed to exec.
    if ($$ == $ParentPid) {
        local $?;    # keep the test's exit status
        _stop_nginx();
    }
}

# ---------------------------------------------------------------------------
# Requests.

# The raw requests of a block: "--- raw_request" as is, or each of the
# "--- request" values ("METHOD URI [VERSION]" then the body) with
# Host, Connection, "--- more_headers" and Content-Length headers.
sub _build_requests {
    my ($block) = @_;
    my $name = $block->name;

    if (defined(my $raw = $block->raw_request)) {
        return [ref $raw eq 'ARRAY' ? join('', @$raw) : $raw];
    }

    my $request = $block->request;
    bail_out("$name - request empty") unless defined $request;
    my @requests = ref $request eq 'ARRAY' ? @$request : ($request);
    my $more_headers = $block->more_headers // '';

    my @raw;
    for my $i (0 .. $#requests) {
        bail_out("$name - request $i: requests sent in several packets are not"
                 . " supported by CartTest::Runner")
            if ref $requests[$i];
        my $headers = ref $more_headers eq 'ARRAY' ? $more_headers->[$i]
                                                   : $more_headers;
        bail_out("$name - more_headers lacks data for request $i")
            unless defined $headers;
        push @raw, _format_request($name, $requests[$i], $headers);
    }
    return \@raw;
}

sub _format_request {
    my ($name, $request, $more_headers) = @_;

    # Leading blank and comment lines are not part of the request.
    1 while $request =~ s/^\s*#[^\n]*\n|^\s+//;
    my ($line, $body) = split /\n/, $request, 2;
    $body //= '';
    my ($method, $uri, $version) =
        $line =~ m{^(\S+)(?:[ \t]+(\S+))?(?:[ \t]+(\S+))?\s*$}
        or bail_out("$name - bad request line '$line'"
                    . " (expected 'METHOD [URI [VERSION]]')");
    $uri     //= '/';
    $version //= 'HTTP/1.1';

    my ($headers, $chunked) = ('', 0);
    for my $header (split /\n+/, $more_headers) {
        next if $header =~ /^\s*#/;
        my ($key, $value) = split /:\s*/, $header, 2;
        $value //= '';
        $chunked = 1 if lc $key eq 'transfer-encoding' && $value eq 'chunked';
        $headers .= "$key: $value\r\n";
    }

    my $defaults = '';
    $defaults .= "Host: localhost\r\n"   if $headers !~ /^Host\s*:/mi;
    $defaults .= "Connection: close\r\n" if $headers !~ /^Connection\s*:/mi;
    # Like Test::Nginx, the body is sent without its surrounding white
    # space, unless the test frames it itself.
    if ($body ne '' && !$chunked && $headers !~ /^Content-Length\s*:/mi) {
        $body =~ s/^\s+|\s+$//g;
        $headers .= 'Content-Length: ' . length($body) . "\r\n";
    }
    return "$method $uri $version\r\n$defaults$headers\r\n$body";
}

# Sends one request; returns the parsed response (see _parse_response) or,
# after failing a test, what could be read of it.
sub _do_request {
    my ($name, $request, $timeout, $i) = @_;
    my $is_head = $request =~ /^HEAD\s/;
    my ($raw, $error) = _http_exchange($ServerPort, $request, $timeout, $is_head);
    my $res = _parse_response($raw, $is_head);
    if ($error) {
        fail("$name - $error (req $i)");
    } elsif ($res->{error}) {
        fail("$name - invalid response: $res->{error} (req $i)");
    } elsif (!$res->{complete} && !$res->{until_close}) {
        # (a crashed nginx worker closes the connection like this)
        diag("WARNING: $name - " . (defined $res->{code}
            ? 'response truncated' : 'connection closed without a response')
            . " (req $i)");
    }
    return $res;
}

# Sends $request to 127.0.0.1:$port and reads the response until it is
# complete or the server closes the connection; returns the bytes read and
# an error message, if any.
sub _http_exchange {
    my ($port, $request, $timeout, $is_head) = @_;
    my $deadline = time + $timeout;

    my $sock = IO::Socket::INET->new(
        PeerAddr => '127.0.0.1',
        PeerPort => $port,
        Proto    => 'tcp',
        Timeout  => $timeout,
    ) or return ('', "cannot connect to 127.0.0.1:$port: $@");
    $sock->blocking(0);
    my $select = IO::Select->new($sock);

    while (length $request) {
        return ('', "request timed out after ${timeout}s while sending")
            if time >= $deadline;
        next unless $select->can_write($deadline - time);
        my $sent = syswrite $sock, $request;
        if (!defined $sent) {
            next if $!{EAGAIN} || $!{EINTR};
            last;    # the server may have answered early and closed
        }
        substr $request, 0, $sent, '';
    }

    my $response = '';
    until (_parse_response($response, $is_head)->{complete}) {
        return ($response, "request timed out after ${timeout}s")
            if time >= $deadline;
        next unless $select->can_read($deadline - time);
        my $got = sysread $sock, my $buf, 65536;
        if (!defined $got) {
            next if $!{EAGAIN} || $!{EINTR};
            last if $!{ECONNRESET};
            return ($response, "cannot read the response: $!");
        }
        last if $got == 0;
        $response .= $buf;
    }
    return ($response, undef);
}

# Parses a (possibly partial) HTTP response into
#   { complete => whether it is all there,
#     until_close => whether only the closing of the connection tells,
#     code => status code, headers => { lower-case name => [values] },
#     body => body, decoded if chunked,
#     error => message, when it is malformed }
sub _parse_response {
    my ($raw, $is_head) = @_;
    my $end = index $raw, "\r\n\r\n";
    return { complete => 0, headers => {} } if $end < 0;

    my ($status_line, @lines) = split /\r\n/, substr($raw, 0, $end);
    my %res = (headers => {}, body => substr($raw, $end + 4));
    return { %res, complete => 1, error => "bad status line '$status_line'" }
        unless $status_line =~ m{^HTTP/\d\.\d\s+(\d\d\d)\b};
    $res{code} = $1;
    for my $line (@lines) {
        my ($key, $value) = $line =~ /^([^:]+?)\s*:\s*(.*?)\s*$/ or next;
        push @{ $res{headers}{lc $key} }, $value;
    }

    my $te = lc join ',', @{ $res{headers}{'transfer-encoding'} || [] };
    my ($length) = @{ $res{headers}{'content-length'} || [] };
    if ($is_head || $res{code} =~ /^(?:1|204|304)/) {
        $res{body} = '';
        $res{complete} = 1;
    } elsif ($te =~ /chunked/) {
        @res{qw(body complete error)} = _dechunk($res{body});
    } elsif (defined $length) {
        $res{complete} = length $res{body} >= $length;
        substr($res{body}, $length) = '' if $res{complete};
    } else {
        $res{complete} = 0;
        $res{until_close} = 1;    # the body ends when the connection closes
    }
    return \%res;
}

# Decodes a chunked body; returns (data, whether complete, error message).
sub _dechunk {
    my ($data) = @_;
    my ($body, $pos) = ('', 0);
    while (1) {
        my $eol = index $data, "\r\n", $pos;
        return ($body, 0) if $eol < 0;
        my $size_line = substr $data, $pos, $eol - $pos;
        return ($body, 1, "bad chunk size line '$size_line'")
            unless $size_line =~ /^\s*([0-9A-Fa-f]+)\s*(?:;.*)?$/;
        my $size = hex $1;
        $pos = $eol + 2;

        if ($size == 0) {
            # optional trailer fields, then an empty line
            while (1) {
                $eol = index $data, "\r\n", $pos;
                return ($body, 0) if $eol < 0;
                my $empty = $eol == $pos;
                $pos = $eol + 2;
                return ($body, 1) if $empty;
            }
        }

        return ($body, 0) if length $data < $pos + $size + 2;
        $body .= substr $data, $pos, $size;
        return ($body, 1, 'chunk data not followed by CRLF')
            if substr($data, $pos + $size, 2) ne "\r\n";
        $pos += $size + 2;
    }
}

# ---------------------------------------------------------------------------
# Checks, named as by Test::Nginx::Socket.

sub _check_error_code {
    my ($block, $res, $i, $need_array) = @_;
    my $name = $block->name;
    my $code = $res->{code} // '';
    if (defined $block->error_code_like) {
        my $pattern = _indexed($name, $block->error_code_like, $i, $need_array);
        like($code, qr/$pattern/sm, "$name - status code ok");
    } elsif (defined $block->error_code) {
        is($code, _indexed($name, $block->error_code, $i, $need_array),
           "$name - status code ok");
    } else {
        is($code, 200, "$name - status code ok");
    }
}

sub _header_value {
    my ($res, $key) = @_;
    my $values = $res->{headers}{lc $key};
    return $values ? join(', ', @$values) : undef;
}

# "Name: value" lines, in order; "!Name" gives an undefined value.
sub _parse_header_spec {
    my ($spec) = @_;
    my @headers;
    for my $line (split /\n/, $spec // '') {
        $line =~ s/^\s+|\s+$//g;
        next if $line eq '';
        if ($line =~ s/^!\s*//) {
            push @headers, [$line, undef];
        } else {
            my ($key, $value) = split /\s*:\s*/, $line, 2;
            push @headers, [$key, $value // ''];
        }
    }
    return @headers;
}

sub _check_response_headers {
    my ($block, $res, $i, $need_array) = @_;
    my $name = $block->name;

    if (defined $block->response_headers) {
        my $spec = _indexed($name, $block->response_headers, $i, $need_array);
        for my $header (_parse_header_spec($spec)) {
            my ($key, $expected) = @$header;
            my $actual = _header_value($res, $key);
            if (!defined $expected) {
                ok(!defined $actual, "$name - header $key not present in the raw headers")
                    or diag("got '$key: $actual'");
                next;
            }
            $expected =~ s/\$ServerPort\b/$ServerPort/g;
            is($actual // '', $expected, "$name - header $key ok");
        }
    }

    if (defined $block->response_headers_like) {
        my $spec = _indexed($name, $block->response_headers_like, $i, $need_array);
        for my $header (_parse_header_spec($spec)) {
            my ($key, $pattern) = @$header;
            like(_header_value($res, $key) // '', qr/^$pattern$/,
                 "$name - header $key like ok");
        }
    }
}

sub _check_response_body {
    my ($block, $res, $i, $repeat, $need_array) = @_;
    my $name = $block->name;
    my $body = $res->{body};

    if (defined $block->response_body) {
        my $expected = _indexed($name, $block->response_body, $i, $need_array);
        if (ref $expected) {
            like($body, $expected,
                 "$name - response_body - like (repeated req $repeat, req $i)");
        } else {
            if (defined $expected) {
                $expected =~ s/\$ServerPort\b/$ServerPort/g;
                $expected = _expand_env($expected, $name);
            }
            is($body, $expected, "$name - response_body - response is expected"
                                 . " (repeated req $repeat, req $i)");
        }
        return;
    }

    for my $type (qw(like unlike)) {
        my $section = "response_body_$type";
        my $patterns = $block->$section;
        next unless defined $patterns;
        my $pattern = _indexed($name, $patterns, $i, $need_array);
        $pattern =~ s/\$ServerPort\b/$ServerPort/g;
        # the body on one line, as Test::Nginx shows it
        (my $summary = $body // '') =~ s/^\s+|\s+$//g;
        $summary =~ s/\s+/ /g;
        my $check = $type eq 'like' ? \&like : \&unlike;
        $check->($body, qr/$pattern/s,
                 "$name - response_body_$type - response is expected ($summary)");
        return;
    }
}

# Error log lines logged since the previous check.
sub _new_error_log_lines {
    sleep $LogSettle;
    $ErrLogPos = 0 if (-s $ErrLogFile // 0) < $ErrLogPos;
    open my $fh, '<', $ErrLogFile or return [];
    seek $fh, $ErrLogPos, 0;
    my @lines = <$fh>;
    $ErrLogPos = tell $fh;
    return \@lines;
}

# A pattern section's value as a list: lines of text, a qr// or an array
# of strings and qr//s.
sub _patterns {
    my ($value) = @_;
    return () unless defined $value;
    return grep { defined } @$value if ref $value eq 'ARRAY';
    return $value if ref $value;
    chomp $value;
    return split /\n+/, $value;
}

sub _matches {
    my ($line, $pattern) = @_;
    return ref $pattern ? $line =~ $pattern : index($line, $pattern) >= 0;
}

sub _check_error_log {
    my ($block, $repeat) = @_;
    my $name = $block->name;
    my $lines = _new_error_log_lines();

    for my $pattern (_patterns($block->error_log)) {
        if (grep { _matches($_, $pattern) } @$lines) {
            pass("$name - pattern \"$pattern\" matches a line in error.log (req $repeat)");
        } else {
            fail("$name - pattern \"$pattern\" should match a line in error.log (req $repeat)");
        }
    }

    for my $pattern (_patterns($block->no_error_log)) {
        my @found = grep { _matches($_, $pattern) } @$lines;
        if (@found) {
            fail("$name - pattern \"$pattern\" should not match any line in"
                 . " error.log but matches line \"" . _chomped($found[0])
                 . "\" (req $repeat)");
            diag(scalar(@found) . " matching line(s):\n" . join '', @found);
        } else {
            pass("$name - pattern \"$pattern\" does not match a line in error.log (req $repeat)");
        }
    }

    # Like Test::Nginx, point out serious log lines that no check expects.
    my @checked = (_patterns($block->error_log), _patterns($block->no_error_log));
    for my $level (qw(alert crit emerg)) {
        next if grep { !ref && index($_, "[$level") >= 0 } @checked;
        diag("WARNING: $name - " . _chomped($_))
            for grep { /\[$level\]/ } @$lines;
    }
}

sub _chomped {
    my ($text) = @_;
    chomp $text;
    return $text;
}

# Valgrind mode: the report of the nginx that served the block, which has
# exited by now, must have no error record.
sub _check_valgrind {
    my ($block) = @_;
    my $error_record = qr/
        ==\d+==\s+(?:Invalid|Mismatched\ free|Syscall\ param|Source\ and\ destination\ overlap)
        | uninitialised
        | are\ (?:definitely|indirectly)\ lost
        | (?:definitely|indirectly)\ lost:\ [1-9]
        | ERROR\ SUMMARY:\ [1-9]
    /x;
    my $report = join '', grep { /$error_record/ }
                          map { _slurp($_) } sort glob "$LogDir/valgrind.*.log";
    ok($report eq '', $block->name . ' - valgrind clean') or diag($report);
}

# ASan mode, in the child that becomes nginx: the runtime preloaded (the
# module needs it first in the process, and Debian's nginx is not linked
# with it) and both sanitizers reporting to files in the logs directory.
sub _asan_env {
    $ENV{LD_PRELOAD} = join ' ', grep { length } $AsanPreload, $ENV{LD_PRELOAD};
    for my $var (qw(ASAN_OPTIONS UBSAN_OPTIONS)) {
        $ENV{$var} = join ':', grep { length } $ENV{$var} // '',
                                                "log_path=$LogDir/sanitizer";
    }
}

# ASan mode: what the sanitizers reported while the block ran, in its
# nginx's report files and in those of other sanitized programs.
sub _check_sanitizers {
    my ($block, $log_start) = @_;
    my @files = glob "$LogDir/sanitizer.*";
    push @files, glob "$SanitizerLog.*" if $SanitizerLog;

    my $report = '';
    for my $file (sort grep { !/\.seen$/ } @files) {
        my $text = _slurp($file);
        my $seen = $SanitizerSeen{$file} // 0;
        $seen = 0 if $seen > length $text;
        next if length $text == $seen;
        $report .= "$file:\n" . substr($text, $seen);
        $SanitizerSeen{$file} = length $text;
        # the other programs' reports outlive this test file: set aside,
        # they fail no later block (a report ends its program)
        rename $file, "$file.seen" if index($file, "$LogDir/") != 0;
    }

    # and what reached nginx's stderr or error log all the same
    my $out = _slurp($OutFile);
    my $out_seen = $SanitizerSeen{$OutFile} // 0;
    $out_seen = 0 if $out_seen > length $out;
    $SanitizerSeen{$OutFile} = length $out;
    for my $lines ([_log_lines_from($log_start)], [split /^/m, substr($out, $out_seen)]) {
        my $in_report;
        for my $line (@$lines) {
            # a report, up to the next line that nginx logged
            $in_report = 1 if $line =~ /ERROR: (?:Address|Leak)Sanitizer|runtime error: /;
            $in_report = 0 if $line =~ m{^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[};
            $report .= $line if $in_report;
        }
    }

    ok($report eq '', $block->name . ' - sanitizers clean') or diag($report);
}

# ---------------------------------------------------------------------------
# Capture (TEST_NGINX_CAPTURE): one JSON line per request and answer,
#
#   {"file","block","req","repeat","method","uri","location","kind","path",
#    "status","complete","content_type","headers","body"}
#
# "location" is the prefix of the block's location that serves the URI, as
# nginx picks it, "kind" its cart handler ("cart_api", "cart_admin", or
# null for any other location) and "path" the URI below the prefix, as the
# module routes it ("/" for the prefix itself).  "body" is text; a body
# that is not UTF-8 comes as "body_base64" instead.  "status" is null when
# no answer came.

sub _capture {
    my ($block, $request, $res, $i, $repeat) = @_;
    require JSON::PP;

    my ($method, $uri) = $request =~ /\A(\S+)[ \t]+(\S+)/;
    my $path = defined $uri ? _normalized_path($uri) : undef;
    my ($location, $kind);
    if (defined $path) {
        $block->{_capture_locations} //=
            _config_locations($ConfigPreamble . "\n"
                              . _expand_env($block->config // '', $block->name));
        my $loc = _match_location($block->{_capture_locations}, $path);
        if ($loc) {
            ($location, $kind) = @$loc{qw(path kind)};
            if ($kind && $loc->{modifier} !~ /^~/) {
                $path = substr $path, length $location;
                $path = '/' if $path eq '';
            }
        }
    }

    my %headers = map { $_ => join(', ', @{ $res->{headers}{$_} }) }
                  keys %{ $res->{headers} || {} };
    (my $file = $0) =~ s{.*/}{};
    (my $name = $block->name) =~ s/^\Q$0\E //;
    my %record = (
        file => $file, block => $name, req => $i, repeat => $repeat,
        method => $method, uri => $uri, location => $location, kind => $kind,
        path => $kind ? $path : undef,
        status => defined $res->{code} ? $res->{code} + 0 : undef,
        complete => $res->{complete} || ($res->{until_close} && !$res->{error})
                    ? JSON::PP::true() : JSON::PP::false(),
        content_type => $headers{'content-type'}, headers => \%headers,
    );
    my $body = $res->{body} // '';
    if (utf8::decode(my $text = $body)) {
        $record{body} = $text;
    } else {
        require MIME::Base64;
        $record{body_base64} = MIME::Base64::encode_base64($body, '');
    }

    my $line = JSON::PP->new->canonical->ascii->encode(\%record) . "\n";
    # one write in append mode: lines of concurrent writers never mix
    open my $fh, '>>', $CaptureFile or bail_out("cannot append to $CaptureFile: $!");
    binmode $fh;
    syswrite $fh, $line;
    close $fh;
}

# An exchange that a test made with its own client (from "--- init" code,
# e.g. an endless GET /stream read in part), captured like the runner's
# own: $headers is {lower-case name => value}, $body what was read.
sub capture_exchange {
    my ($method, $uri, $status, $headers, $body) = @_;
    return unless $CaptureFile && $CurrentBlock;
    my %res = (code => $status, complete => 1, body => $body // '',
               headers => { map { lc($_) => [$headers->{$_}] } keys %{ $headers || {} } });
    _capture($CurrentBlock, "$method $uri HTTP/1.1\r\n", \%res, 'client', 0);
}

# The URI's path as nginx routes it: without the query, %XX decoded, "//"
# merged, "." and ".." segments resolved (undef when ".." leaves the root:
# nginx refuses such a request itself).
sub _normalized_path {
    my ($uri) = @_;
    (my $path = $uri) =~ s/[?#].*//s;
    $path =~ s/%([0-9A-Fa-f]{2})/chr hex $1/ge;
    return undef unless $path =~ m{^/};
    my @out;
    my @segments = split m{/+}, $path, -1;
    shift @segments;
    for my $i (0 .. $#segments) {
        my $segment = $segments[$i];
        my $last = $i == $#segments;
        if ($segment eq '.') {
            push @out, '' if $last;
        } elsif ($segment eq '..') {
            return undef unless @out;
            pop @out;
            push @out, '' if $last;
        } else {
            push @out, $segment;
        }
    }
    return '/' . join '/', @out;
}

# The locations of a server's configuration text, nested ones included:
# [{modifier => '', '=', '^~', '~' or '~*', path, kind => 'cart_api',
# 'cart_admin' or undef}].
sub _config_locations {
    my ($text) = @_;
    my @tokens;
    while (1) {
        $text =~ /\G\s+/gc;
        last if (pos($text) // 0) >= length $text;
        if ($text =~ /\G#[^\n]*/gc) {
            next;
        } elsif ($text =~ /\G([{};])/gc) {
            push @tokens, $1;
        } elsif ($text =~ /\G"((?:[^"\\]|\\.)*)"/gcs
                 || $text =~ /\G'((?:[^'\\]|\\.)*)'/gcs) {
            push @tokens, [$1];    # quoted: a word, never a brace
        } elsif ($text =~ /\G((?:\$\{[^}]*\}|[^\s{};"'])+)/gc) {
            push @tokens, [$1];
        } else {
            $text =~ /\G./gcs;     # an unbalanced quote: skip it
        }
    }

    my (@locations, @stack, @statement);
    for my $token (@tokens) {
        if (ref $token) {
            push @statement, $token->[0];
        } elsif ($token eq '{') {
            my $location;
            if (@statement >= 2 && $statement[0] eq 'location') {
                my ($modifier, $path) = @statement == 2
                    ? ('', $statement[1]) : @statement[1, 2];
                $location = { modifier => $modifier, path => $path };
                push @locations, $location;
            }
            push @stack, $location;
            @statement = ();
        } elsif ($token eq ';') {
            if (@statement && @stack && $stack[-1]
                && $statement[0] =~ /^cart_(?:api|admin)$/) {
                $stack[-1]{kind} = $statement[0];
            }
            @statement = ();
        } else {    # '}'
            pop @stack;
            @statement = ();
        }
    }
    return \@locations;
}

# The location nginx picks for a path: an exact one, else a regular
# expression unless the longest prefix has "^~", else the longest prefix.
sub _match_location {
    my ($locations, $path) = @_;
    my ($prefix, $length) = (undef, -1);
    for my $loc (@$locations) {
        return $loc if $loc->{modifier} eq '=' && $loc->{path} eq $path;
        next if $loc->{modifier} =~ /^(?:=|~\*?)$/;
        if (index($path, $loc->{path}) == 0 && length $loc->{path} > $length) {
            ($prefix, $length) = ($loc, length $loc->{path});
        }
    }
    unless ($prefix && $prefix->{modifier} eq '^~') {
        for my $loc (@$locations) {
            next unless $loc->{modifier} =~ /^~(\*?)$/;
            my $re = $1 ? qr/$loc->{path}/i : qr/$loc->{path}/;
            return $loc if eval { $path =~ $re };
        }
    }
    return $prefix;
}

# ---------------------------------------------------------------------------

package CartTest::Runner::Block;

# A test block, like a Test::Base::Block: one accessor per section (undef
# for a missing one); in list context the accessor returns all the values
# an "eval" produced, in scalar context the first one.

our $AUTOLOAD;

sub new { bless {}, shift }

sub set_value {
    my ($self, $section, @values) = @_;
    $self->{$section} = [@values];
}

sub AUTOLOAD {
    my $self = shift;
    (my $section = $AUTOLOAD) =~ s/.*:://;
    my @values = @{ $self->{$section} || [] };
    return wantarray ? @values : $values[0];
}

sub DESTROY { }

1;
