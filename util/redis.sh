#!/usr/bin/env bash
# A throw-away redis-server on 127.0.0.1:PORT whose data, pidfile and log live
# in DIR. Used by util/test.sh, util/run.sh and by tests that stop and start
# Redis mid-test (via $TEST_NGINX_REDIS_CTL).
#
#   util/redis.sh start  PORT DIR [CONF]   daemonize, wait until PING answers
#   util/redis.sh stop   PORT DIR          SHUTDOWN NOSAVE, wait for the exit
#   util/redis.sh status PORT DIR          exit 0 running, 1 alive but not
#                                          answering, 3 not running
#
# Without CONF the instance keeps nothing on disk (--save '' --appendonly no),
# which is what tests want. With CONF (e.g. conf/redis.conf) that file's
# persistence settings apply; port, bind, dir, pidfile and log always come
# from the command line so they cannot disagree with PORT and DIR.
# An instance with requirepass is reached with REDISCLI_AUTH set in the
# environment (redis-cli reads it).
set -eu

usage() { echo "usage: $0 start|stop|status PORT DIR [CONF]" >&2; exit 2; }
if [ $# -lt 3 ] || [ $# -gt 4 ]; then usage; fi
action=$1 port=$2 conf=${4:-}
case $port in '' | *[!0-9]*) usage ;; esac
dir=$(realpath -m "$3")
pidfile=$dir/redis.pid
logfile=$dir/redis.log
where="redis 127.0.0.1:$port ($dir)"

START_TIMEOUT=${REDIS_START_TIMEOUT:-20}   # seconds; loading a big AOF takes time
STOP_TIMEOUT=10                            # seconds before falling back to signals

# A hung or paused server must not hang the caller.
cli() { timeout 3 redis-cli -h 127.0.0.1 -p "$port" "$@" 2>/dev/null; }

# The pid in DIR's pidfile, if that process is alive and is a redis-server.
# Checking the name guards against a stale pidfile whose pid was reused.
alive_pid() {
    local pid
    [ -s "$pidfile" ] && read -r pid <"$pidfile" || return 1
    kill -0 "$pid" 2>/dev/null && [ "$(ps -o comm= -p "$pid")" = redis-server ] || return 1
    echo "$pid"
}

# True when the server answering on PORT is process $1 (not another Redis
# that happens to use the port).
answers_as() {
    cli INFO server | tr -d '\r' | grep -qx "process_id:$1"
}

# Waits up to $2 seconds for process $1 to exit.
wait_gone() {
    local i
    for ((i = 0; i < $2 * 10; i++)); do
        kill -0 "$1" 2>/dev/null || return 0
        sleep 0.1
    done
    return 1
}

start() {
    local pid i args try lines
    if pid=$(alive_pid); then
        if answers_as "$pid"; then
            echo "$where already running (pid $pid)"
            return 0
        fi
        echo "$where: pid $pid is alive but does not answer; run '$0 stop $port $dir' first" >&2
        return 1
    fi
    # bash's /dev/tcp connects: success means the port is already taken, and
    # redis-server would only say so in its log after daemonizing.
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        echo "$where: port $port is already in use by another process" >&2
        return 1
    fi

    mkdir -p "$dir"
    args=(--port "$port" --bind 127.0.0.1 --dir "$dir"
          --daemonize yes --pidfile "$pidfile" --logfile "$logfile")
    if [ -n "$conf" ]; then
        [ -r "$conf" ] || { echo "$where: cannot read config $conf" >&2; return 1; }
        args=("$(realpath "$conf")" "${args[@]}")
    else
        args+=(--save '' --appendonly no)
    fi

    # The port (or a cluster node's bus port, +10000) may be a client's
    # ephemeral port for a moment on a busy machine: bind fails, the
    # server exits at once; it is started again, 5 times at most.
    for ((try = 1; try <= 5; try++)); do
        rm -f "$pidfile"
        lines=0
        [ -f "$logfile" ] && lines=$(wc -l <"$logfile")
        redis-server "${args[@]}"

        for ((i = 0; i < START_TIMEOUT * 10; i++)); do
            if pid=$(alive_pid) && [ "$(cli PING)" = PONG ]; then
                echo "$where started (pid $pid)"
                return 0
            fi
            if tail -n +"$((lines + 1))" "$logfile" 2>/dev/null \
                    | grep -q 'Address already in use'; then
                echo "$where: a port is in use, starting again" >&2
                sleep 1
                continue 2
            fi
            sleep 0.1
        done
        break
    done
    echo "$where did not start (or answer PING within ${START_TIMEOUT}s); end of $logfile:" >&2
    tail -n 20 "$logfile" >&2 2>/dev/null || true
    return 1
}

stop() {
    local pid
    if ! pid=$(alive_pid); then
        rm -f "$pidfile"
        echo "$where not running"
        return 0
    fi
    kill -CONT "$pid" 2>/dev/null || true    # a test may have paused it (SIGSTOP)
    if answers_as "$pid"; then
        cli SHUTDOWN NOSAVE >/dev/null || true  # the connection drops: no reply
    fi
    if ! wait_gone "$pid" "$STOP_TIMEOUT"; then
        echo "$where: pid $pid ignored SHUTDOWN, sending SIGTERM" >&2
        kill -TERM "$pid" 2>/dev/null || true
        if ! wait_gone "$pid" 5; then
            echo "$where: pid $pid ignored SIGTERM, sending SIGKILL" >&2
            kill -KILL "$pid" 2>/dev/null || true
            wait_gone "$pid" 5 || { echo "$where: pid $pid does not die" >&2; return 1; }
        fi
    fi
    rm -f "$pidfile"
    echo "$where stopped"
}

status() {
    local pid
    if ! pid=$(alive_pid); then
        echo "$where not running"
        return 3
    fi
    if answers_as "$pid"; then
        echo "$where running (pid $pid)"
        return 0
    fi
    echo "$where: pid $pid is alive but does not answer"
    return 1
}

case $action in
    start | stop | status) "$action" ;;
    *) usage ;;
esac
