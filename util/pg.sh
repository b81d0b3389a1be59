#!/usr/bin/env bash
# A throw-away PostgreSQL (Debian's postgresql-15 binaries) on
# 127.0.0.1:PORT with its data directory, socket and log in DIR, and a
# database "cart" owned by "postgres" (trust authentication on loopback).
# Used by util/test.sh; tests reach it with $TEST_NGINX_PG_DSN.
#
#   util/pg.sh start  PORT DIR   initdb when DIR is empty, start, wait
#   util/pg.sh stop   PORT DIR   fast shutdown
#   util/pg.sh status PORT DIR
#
# PostgreSQL refuses to run as root: as root, the server runs as the
# "postgres" user that Debian's package creates, and DIR belongs to it.
# When that user cannot reach DIR (a checkout below a private directory),
# the data directory moves to /var/tmp/ngx-cart-pg-PORT and DIR/data
# links to it.
set -eu

usage() { echo "usage: $0 start|stop|status PORT DIR" >&2; exit 2; }
if [ $# -ne 3 ]; then usage; fi
action=$1 port=$2
case $port in '' | *[!0-9]*) usage ;; esac
dir=$(realpath -m "$3")
data=$dir/data
run=$dir             # socket and server log
if [ -L "$data" ]; then
    data=$(readlink "$data")
    run=$(dirname "$data")
fi
bindir=${PG_BINDIR:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}
where="postgresql 127.0.0.1:$port ($dir)"

[ -x "$bindir/pg_ctl" ] || { echo "$where: no PostgreSQL binaries (apt-get install postgresql)" >&2; exit 1; }

as_owner() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

start() {
    mkdir -p "$dir"
    if [ "$(id -u)" -eq 0 ]; then
        chown postgres: "$dir"
        if [ ! -L "$dir/data" ] && ! runuser -u postgres -- test -w "$dir"; then
            run=/var/tmp/ngx-cart-pg-$port
            data=$run/data
            rm -rf "$run" "$dir/data"
            mkdir -p "$run"
            chown postgres: "$run"
            chmod 700 "$run"
            ln -s "$data" "$dir/data"
        fi
    fi
    if [ ! -s "$data/PG_VERSION" ]; then
        as_owner "$bindir/initdb" -D "$data" -U postgres -A trust \
            --no-sync -E UTF8 >"$dir/initdb.log" 2>&1 \
            || { cat "$dir/initdb.log" >&2; return 1; }
    fi
    if as_owner "$bindir/pg_ctl" -D "$data" status >/dev/null 2>&1; then
        echo "$where already running"
    else
        # durability is not what these tests are about: fsync off
        as_owner "$bindir/pg_ctl" -D "$data" -l "$run/postgresql.log" -w -t 30 \
            -o "-p $port -c listen_addresses=127.0.0.1 -k $run -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
            start >/dev/null || { tail -n 20 "$run/postgresql.log" >&2; return 1; }
        echo "$where started"
    fi
    if ! psql -h 127.0.0.1 -p "$port" -U postgres -Atqc \
            "SELECT 1 FROM pg_database WHERE datname = 'cart'" postgres | grep -q 1; then
        psql -h 127.0.0.1 -p "$port" -U postgres -qc 'CREATE DATABASE cart' postgres
    fi
}

stop() {
    if [ -s "$data/postmaster.pid" ]; then
        as_owner "$bindir/pg_ctl" -D "$data" -m fast -w -t 30 stop >/dev/null 2>&1 || true
    fi
    echo "$where stopped"
}

status() {
    as_owner "$bindir/pg_ctl" -D "$data" status >/dev/null 2>&1 && { echo "$where running"; return 0; }
    echo "$where not running"
    return 3
}

case $action in
    start | stop | status) "$action" ;;
    *) usage ;;
esac
