#!/usr/bin/env bash
# A throw-away Redis Cluster of N masters with R replicas each on
# 127.0.0.1, ports PORT .. PORT+N*(1+R)-1, node I in DIR/PORT+I: the
# masters first, then the replicas (redis-cli --cluster create chooses
# which replica follows which master). Used by util/test.sh and by tests
# that stop and start one node mid-test (util/redis.sh start|stop PORT+I
# DIR/PORT+I util/redis-cluster.conf).
#
#   util/redis-cluster.sh start  PORT DIR [N [R]]   start the nodes, create
#                                                   the cluster, wait for
#                                                   state ok and, with
#                                                   replicas, their sync
#   util/redis-cluster.sh stop   PORT DIR [N [R]]
#   util/redis-cluster.sh status PORT DIR [N [R]]   exit 0 when state is ok
#
# N defaults to 3, the fewest masters redis-cli --cluster create accepts;
# R to 0 (t/420-cluster-replicas.t uses 3 and 1). The cluster bus of a
# node listens on its port + 10000.
set -eu

usage() { echo "usage: $0 start|stop|status PORT DIR [N [R]]" >&2; exit 2; }
if [ $# -lt 3 ] || [ $# -gt 5 ]; then usage; fi
action=$1 port=$2 n=${4:-3} r=${5:-0}
case $port$n$r in '' | *[!0-9]*) usage ;; esac
total=$((n * (1 + r)))
dir=$(realpath -m "$3")
here=$(cd "$(dirname "$0")" && pwd)
conf=$here/redis-cluster.conf

cli() { timeout 3 redis-cli -h 127.0.0.1 -p "$1" "${@:2}" 2>/dev/null; }
node() { "$here/redis.sh" "$1" "$2" "$dir/$2" "$conf"; }
node_stop() { "$here/redis.sh" stop "$1" "$dir/$1"; }

# every node says state ok, and every replica has synced with its master
state_ok() {
    local i info
    for ((i = 0; i < total; i++)); do
        info=$(cli $((port + i)) CLUSTER INFO | tr -d '\r')
        grep -qx 'cluster_state:ok' <<<"$info" || return 1
        [ "$(sed -n 's/^cluster_known_nodes://p' <<<"$info")" = "$total" ] || return 1
        info=$(cli $((port + i)) INFO replication | tr -d '\r')
        if grep -qx 'role:slave' <<<"$info"; then
            grep -qx 'master_link_status:up' <<<"$info" || return 1
        fi
    done
}

start() {
    local i addrs=()
    for ((i = 0; i < total; i++)); do
        node start $((port + i))
        addrs+=("127.0.0.1:$((port + i))")
    done
    # nodes.conf survives a stop: a cluster already made is only started
    if [ "$(cli "$port" CLUSTER INFO | tr -d '\r' | sed -n 's/^cluster_known_nodes://p')" != "$total" ]; then
        redis-cli --cluster create "${addrs[@]}" --cluster-replicas "$r" \
            --cluster-yes >"$dir/create.log" 2>&1 \
            || { cat "$dir/create.log" >&2; return 1; }
    fi
    for ((i = 0; i < 300; i++)); do
        if state_ok; then
            echo "redis cluster 127.0.0.1:$port..$((port + total - 1)) ($dir) ready"
            return 0
        fi
        sleep 0.1
    done
    echo "redis cluster 127.0.0.1:$port..$((port + total - 1)) did not reach state ok" >&2
    return 1
}

stop() {
    local i
    for ((i = 0; i < total; i++)); do
        node_stop $((port + i))
    done
}

status() {
    if state_ok; then
        echo "redis cluster 127.0.0.1:$port..$((port + total - 1)) ok"
        return 0
    fi
    echo "redis cluster 127.0.0.1:$port..$((port + total - 1)) not ok"
    return 1
}

case $action in
    start | stop | status) "$action" ;;
    *) usage ;;
esac
