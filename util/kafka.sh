#!/usr/bin/env bash
# The test Kafka: tools/kafka-mock (librdkafka's mock cluster) with three
# brokers on 127.0.0.1:PORT..PORT+2, its pid and log in DIR. Used by
# util/test.sh and by tests that stop the brokers mid-test
# (via $TEST_NGINX_KAFKA_CTL).
#
#   util/kafka.sh start  PORT DIR   start, wait until the brokers listen
#   util/kafka.sh stop   PORT DIR   stop (messages are lost with it)
#   util/kafka.sh down   PORT DIR   every broker refuses connections; the
#                                   log is kept (an outage, not a loss)
#   util/kafka.sh up     PORT DIR   the brokers accept connections again
#   util/kafka.sh status PORT DIR   exit 0 running, 3 not running
set -eu

usage() { echo "usage: $0 start|stop|down|up|status PORT DIR" >&2; exit 2; }
if [ $# -ne 3 ]; then usage; fi
action=$1 port=$2
case $port in '' | *[!0-9]*) usage ;; esac
dir=$(realpath -m "$3")
pidfile=$dir/kafka-mock.pid
logfile=$dir/kafka-mock.log
bin=$(cd "$(dirname "$0")/.." && pwd)/build/tools/kafka-mock
where="kafka-mock 127.0.0.1:$port ($dir)"

alive_pid() {
    local pid
    [ -s "$pidfile" ] && read -r pid <"$pidfile" || return 1
    kill -0 "$pid" 2>/dev/null && [ "$(ps -o comm= -p "$pid")" = kafka-mock ] || return 1
    echo "$pid"
}

start() {
    local pid i try
    if pid=$(alive_pid); then echo "$where already running (pid $pid)"; return 0; fi
    [ -x "$bin" ] || { echo "$where: $bin is not built (make build)" >&2; return 1; }
    mkdir -p "$dir"
    # a broker's port may be some client's ephemeral port, or still in
    # TIME_WAIT from one, on a busy machine: try again for a minute
    for ((try = 1; try <= 30; try++)); do
        : >"$logfile"
        # the topics the module and the daemon use, with several partitions
        # so that per-key order is really tested
        # in a subshell: one that aborts is no job of this shell's to report
        (setsid "$bin" --port "$port" --brokers 3 --topic cart-events:8 \
            --topic cart-events-dlq:1 --topic cart-reminders:2 \
            >>"$logfile" 2>&1 </dev/null &
         echo $! >"$pidfile")
        for ((i = 0; i < 100; i++)); do
            if grep -q '^ready ' "$logfile"; then
                echo "$where started (pid $(cat "$pidfile"))"
                return 0
            fi
            # gone (not: not yet exec'd by setsid)
            kill -0 "$(cat "$pidfile")" 2>/dev/null || break
            sleep 0.1
        done
        grep -q 'Address already in use' "$logfile" || break
        sleep 2
    done
    echo "$where did not start; its log:" >&2
    cat "$logfile" >&2
    return 1
}

stop() {
    local pid i
    if ! pid=$(alive_pid); then rm -f "$pidfile"; echo "$where not running"; return 0; fi
    kill -TERM "$pid"
    for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" 2>/dev/null || { rm -f "$pidfile"; echo "$where stopped"; return 0; }
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$pidfile"
    echo "$where killed"
}

signal() {
    local pid
    pid=$(alive_pid) || { echo "$where not running" >&2; return 1; }
    kill "-$1" "$pid"
    # the mock applies the change on its own thread: wait until it says so
    for ((i = 0; i < 50; i++)); do
        [ "$(grep -c "brokers $2" "$logfile")" -gt "${3:-0}" ] && return 0
        sleep 0.05
    done
    echo "$where did not report brokers $2" >&2
    return 1
}

case $action in
    start | stop) "$action" ;;
    down) signal USR1 down "$(grep -c 'brokers down' "$logfile" || true)" ;;
    up) signal USR2 up "$(grep -c 'brokers up' "$logfile" || true)" ;;
    status) if pid=$(alive_pid); then echo "$where running (pid $pid)"; else echo "$where not running"; exit 3; fi ;;
    *) usage ;;
esac
