#!/usr/bin/env bash
# The benchmark (make bench): starts its own Redis and nginx instances on
# loopback, loads carts, runs wrk and redis-benchmark, prints tables.
#
#   bench/run.sh [SECTION...]     sections: main redis trips growth memory
#                                 (default: all, in that order)
#
# main    ceiling (return 200), the OpenResty-style peer (bench/peer/) and
#         the module: add, get, update, remove, count, mixed 3:1, with and
#         without catalog subrequests, and get with the catalog cached
#         (cart_catalog_cache), at each of BENCH_CONNS connections.
#         BENCH_ROUNDS rounds, workloads interleaved within a round, the
#         median of each figure over the rounds.
# redis   redis-benchmark: the add script by EVALSHA, HGETALL of a 5-line
#         cart, without and with pipelining (Redis's own limit).
# trips   Redis round trips per request, exact, from MONITOR.
# growth  GET of 1/5/20/100-line carts; 1 and 2 workers x 1/2/4 Redis
#         connections per worker.
# memory  10,000 carts of 5 lines on a fresh Redis with default settings:
#         MEMORY USAGE, used_memory per cart, idempotency keys, and the
#         seed's JSON-line layout for comparison.
#
# Environment (defaults in brackets):
#   BENCH_DURATION [5s]  BENCH_ROUNDS [3]  BENCH_CONNS ["50 400"]
#   BENCH_PORT [18480] (ours; +1 the peer)  BENCH_REDIS_PORT [16480]
#   BENCH_PIN [1]  1: nginx worker on CPU 0, Redis and wrk on CPU 1
#   BENCH_GROWTH_CONNS [200]
# Needs: util/deps.sh packages, and bench/deps.sh for the peer.
# Results: printed, and kept in build/bench/*.md and build/bench/raw.txt.
set -eu

cd "$(dirname "$0")/.."
TOP=$(pwd)
DIR=$TOP/build/bench
DURATION=${BENCH_DURATION:-5s}
ROUNDS=${BENCH_ROUNDS:-3}
CONNS=${BENCH_CONNS:-50 400}
PORT=${BENCH_PORT:-18480}
PEER_PORT=$((PORT + 1))
REDIS_PORT=${BENCH_REDIS_PORT:-16480}
PIN=${BENCH_PIN:-1}
GROWTH_CONNS=${BENCH_GROWTH_CONNS:-200}
SECTIONS=${*:-main redis trips growth memory}
USERS=1000                     # carts of the main workloads, 5 lines each
SO=$TOP/build/nginx/ngx_http_cart_module.so
RAW=$DIR/raw.txt

export BENCH_WRK=$TOP/bench/wrk

rcli() { redis-cli -h 127.0.0.1 -p "$REDIS_PORT" "$@"; }

if [ "$PIN" = 1 ]; then
    ON_REDIS_CPU=(taskset -c 1)
    ON_NGINX_CPU=(taskset -c 0)
else
    ON_REDIS_CPU=()
    ON_NGINX_CPU=()
fi

dur_s=${DURATION%s}


# --- processes ----------------------------------------------------------

redis_start() {
    util/redis.sh start "$REDIS_PORT" "$DIR/redis" >/dev/null
    if [ "$PIN" = 1 ]; then
        taskset -a -pc 1 "$(cat "$DIR/redis/redis.pid")" >/dev/null
    fi
}

redis_stop() {
    util/redis.sh stop "$REDIS_PORT" "$DIR/redis" >/dev/null || true
}

# nginx_start NAME PORT WORKERS REDIS_CONNS: writes NAME's configuration
# (ours or peer) and starts it; waits until it answers.
nginx_start() {
    local name=$1 port=$2 workers=$3 rconns=$4 prefix=$DIR/$1 affinity=""
    mkdir -p "$prefix/conf" "$prefix/logs"
    if [ "$PIN" = 1 ]; then
        affinity="worker_cpu_affinity $( [ "$workers" = 1 ] && echo 01 || echo 01 10);"
    fi
    "conf_$name" "$port" "$workers" "$rconns" "$affinity" >"$prefix/conf/nginx.conf"
    nginx -p "$prefix/" -c conf/nginx.conf
    for _ in $(seq 50); do
        curl -s -o /dev/null "http://127.0.0.1:$port/ping" && return 0
        sleep 0.1
    done
    echo "bench: nginx $name did not start; see $prefix/logs/error.log" >&2
    exit 1
}

nginx_stop() {
    local prefix=$DIR/$1 pid
    [ -s "$prefix/logs/nginx.pid" ] || return 0
    pid=$(cat "$prefix/logs/nginx.pid")
    nginx -p "$prefix/" -c conf/nginx.conf -s stop 2>/dev/null || true
    for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
}

cleanup() {
    nginx_stop ours
    nginx_stop peer
    redis_stop
}

workers_of() {
    pgrep -P "$(cat "$DIR/$1/logs/nginx.pid")" | tr '\n' ' '
}

# CPU time in ns of the given pids (scheduler statistics, not ticks)
cpu_ns() {
    local pid sum=0 t
    for pid in "$@"; do
        read -r t _ <"/proc/$pid/schedstat"
        sum=$((sum + t))
    done
    echo "$sum"
}

# Redis commands executed, scripts' own calls included (commandstats)
redis_calls() {
    rcli INFO commandstats | tr -d '\r' \
        | awk -F'[:=,]' '/^cmdstat_/ && $1 !~ /info|config/ { n += $3 } END { print n + 0 }'
}


# --- configurations -----------------------------------------------------

common_http() {
    if [ -n "${PROFILE:-}" ]; then
        echo "master_process off; daemon off;"
    fi
    cat <<CONF
worker_processes $2;
$4
error_log logs/error.log warn;
pid logs/nginx.pid;
events { worker_connections 8192; multi_accept on; }
CONF
}

common_server() {
    cat <<CONF
        listen 127.0.0.1:$1 backlog=4096;
        keepalive_requests 1000000;
        location = /ping { return 204; }
        location ~ ^/_catalog/(?<sku>[A-Za-z0-9._:-]+)\$ {
            internal;
            default_type application/json;
            alias $DIR/catalog/\$sku.json;
        }
CONF
}

conf_ours() {
    echo "load_module $SO;"
    common_http "$@"
    cat <<CONF
http {
    access_log off;
    open_file_cache max=1000;
    subrequest_output_buffer_size 16k;
    cart_redis redis://127.0.0.1:$REDIS_PORT;
    cart_redis_connections $3;
    cart_max_quantity 1000000;
    cart_max_lines 1000;
    server {
$(common_server "$1")
        location = /ceiling {
            default_type application/json;
            return 200 '{"item_count":5}';
        }
        location /n { cart_api; cart_user \$http_x_user_id; }
        location /c { cart_api; cart_user \$http_x_user_id;
                      cart_catalog /_catalog/\$cart_sku; }
        location /cc { cart_api; cart_user \$http_x_user_id;
                       cart_catalog /_catalog/\$cart_sku;
                       cart_catalog_cache zone=bench_catalog:4m valid=60s; }
    }
}
CONF
}

conf_peer() {
    echo "load_module /usr/lib/nginx/modules/ndk_http_module.so;"
    echo "load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;"
    common_http "$@"
    cat <<CONF
http {
    access_log off;
    open_file_cache max=1000;
    subrequest_output_buffer_size 16k;
    lua_package_path "$TOP/bench/peer/?.lua;;";
    init_by_lua_block {
        require("cart").init({ port = $REDIS_PORT, script = "$DIR/add.lua",
                               max_quantity = 1000000, max_lines = 1000 })
    }
    server {
$(common_server "$1")
        location = /n/items { content_by_lua_block { require("cart").add(false) } }
        location = /n       { content_by_lua_block { require("cart").view(false) } }
        location = /c/items { content_by_lua_block { require("cart").add(true) } }
        location = /c       { content_by_lua_block { require("cart").view(true) } }
    }
}
CONF
}


# --- data -----------------------------------------------------------------

# SKU-1 .. SKU-100: price 9.99 + 1.37 k, sellers seller-1 .. seller-7
price_of() { echo $((999 + 137 * $1)); }

make_catalog() {
    local k p
    mkdir -p "$DIR/catalog"
    for k in $(seq 100); do
        p=$(price_of "$k")
        printf '{"sku_id":"SKU-%d","price":%d.%02d,"name":"Bench product %d","seller_id":"seller-%d","image":"https://cdn.example.com/sku-%d.jpg"}\n' \
            "$k" $((p / 100)) $((p % 100)) "$k" $((k % 7 + 1)) "$k" \
            >"$DIR/catalog/SKU-$k.json"
    done
}

# The add script exactly as the module embeds it (embed.sh: _lib + add)
load_script() {
    sh src/lua/embed.sh --lua src/lua add >"$DIR/add.lua"
    ADD_SHA=$(rcli -x SCRIPT LOAD <"$DIR/add.lua")
    [ "$ADD_SHA" = "$(sha1sum <"$DIR/add.lua" | cut -c1-40)" ] || {
        echo "bench: SCRIPT LOAD gave $ADD_SHA" >&2; exit 1; }
}

# fill USER_FMT USERS LINES [SKU_FMT [SELLER_FMT [IDEM]]]: EVALSHA of the
# add script, as the module sends it, through redis-cli --pipe. USER_FMT
# and SKU_FMT are awk printf formats of the user index and line number.
fill() {
    awk -v fmt="$1" -v users="$2" -v lines="$3" -v skufmt="${4:-SKU-%d}" \
        -v sellerfmt="${5:-seller-%d}" -v idem="${6:-}" \
        -v sha="$ADD_SHA" -v now="$(date +%s)" '
    function out(n,   i) {
        printf "*%d\r\n", n
        for (i = 1; i <= n; i++) printf "$%d\r\n%s\r\n", length(a[i]), a[i]
    }
    BEGIN {
        srand(7)
        for (u = 0; u < users; u++) {
            id = sprintf(fmt, u)
            for (k = 1; k <= lines; k++) {
                sku = skufmt == "rand" ? sprintf("SKU-%05d", 10000 + int(rand() * 90000)) \
                                       : sprintf(skufmt, k)
                seller = sprintf(sellerfmt, k % 7 + 1)
                n = 0
                a[++n] = "EVALSHA"; a[++n] = sha
                a[++n] = idem ? 4 : 3
                a[++n] = "cart:{user-" id "}"; a[++n] = "cart_count:{user-" id "}"
                # the activity index: one set stands for the per-slot sets
                a[++n] = "cart_activity:{bench}"
                if (idem) a[++n] = "idem:{user-" id "}:" sprintf("%08x-%04x-4%03x-a%03x-%012x", u, k, u % 4096, k, u * 31 + k)
                a[++n] = now; a[++n] = 2592000; a[++n] = ""
                a[++n] = idem ? "POST " sku " 1 " seller : ""
                a[++n] = 86400; a[++n] = "0"
                a[++n] = sku; a[++n] = 1; a[++n] = 999 + 137 * k; a[++n] = seller
                a[++n] = 10000; a[++n] = 1000000
                out(n)
            }
        }
    }' | rcli --pipe >/dev/null
}

uuid_fmt='%08x-1d2a-4e8b-9c3f-5a6b7c8d9e0f'


# --- one wrk run ----------------------------------------------------------

# wrk_run ROUND LABEL PEER|OURS CONNS SCRIPT PATH [VAR=VALUE...]
# appends: label conns round rps p50 p99 p999 cpu_us/req redis_us/req
#          redis_calls/req requests non2xx errors wrk_us/req
wrk_run() {
    local round=$1 label=$2 who=$3 conns=$4 script=$5 path=$6 port pids
    shift 6
    local c0 c1 r0 r1 k0 k1 out res wrk_cpu
    if [ "$who" = peer ]; then port=$PEER_PORT; else port=$PORT; fi
    # shellcheck disable=SC2046
    pids=$(workers_of "$who")
    redis_pid=$(cat "$DIR/redis/redis.pid")
    k0=$(redis_calls)
    # shellcheck disable=SC2086
    c0=$(cpu_ns $pids)
    r0=$(cpu_ns "$redis_pid")
    # bash's time keyword: wrk's own CPU, on the CPU it shares with Redis
    out=$(TIMEFORMAT='WRKCPU %U %S'
          { time env BENCH_PATH="$path" BENCH_USERS=$USERS "$@" "${ON_REDIS_CPU[@]}" \
                wrk -t2 -c"$conns" -d"$DURATION" --timeout 5s \
                    -s "$BENCH_WRK/$script.lua" "http://127.0.0.1:$port"; } 2>&1)
    # shellcheck disable=SC2086
    c1=$(cpu_ns $pids)
    r1=$(cpu_ns "$redis_pid")
    k1=$(redis_calls)
    res=$(echo "$out" | grep '^RESULT' || true)
    wrk_cpu=$(echo "$out" | awk '/^WRKCPU/ { printf "%.0f", ($2 + $3) * 1e9 }')
    if [ -z "$res" ]; then
        echo "bench: wrk failed for $label:" >&2
        echo "$out" >&2
        exit 1
    fi
    echo "$res" | awk -v label="$label" -v conns="$conns" -v round="$round" \
        -v cpu=$((c1 - c0)) -v rcpu=$((r1 - r0)) -v calls=$((k1 - k0)) \
        -v wcpu="${wrk_cpu:-0}" '
    {
        for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
        n = v["requests"]
        printf "%s %d %d %.0f %.3f %.3f %.3f %.2f %.2f %.2f %d %d %d %.2f\n",
               label, conns, round, n / (v["duration_us"] / 1e6),
               v["p50"] / 1000, v["p99"] / 1000, v["p999"] / 1000,
               cpu / 1000 / n, rcpu / 1000 / n, calls / n,
               n, v["non2xx"], v["errors"], wcpu / 1000 / n
    }' | tee -a "$RAW"
}

# the median of each column over the rounds, one row per label and conns,
# with the ratios to the ceiling (CPU) and to the peer (req/s, CPU)
summarize() {
    awk '
    function median(list,   n, a, i, j, t) {
        n = split(list, a, " ")
        for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++)
            if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
        return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    {
        key = $1 " " $2
        for (c = 4; c <= 10; c++) col[key, c] = col[key, c] " " $c
        col[key, 14] = col[key, 14] " " $14
        bad[key] += $12 + $13
        if (!(key in seen)) { seen[key] = 1; keys[++nk] = key }
    }
    END {
        for (i = 1; i <= nk; i++) for (c = 4; c <= 14; c++)
            if (c <= 10 || c == 14) m[keys[i], c] = median(col[keys[i], c])
        printf "| workload | conns | req/s | p50 ms | p99 ms | p99.9 ms | worker µs/req | × ceiling CPU | Redis µs/req | wrk µs/req | Redis cmds/req | ours/peer req/s | ours/peer CPU | non-2xx+errors |\n"
        printf "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
        for (i = 1; i <= nk; i++) {
            split(keys[i], kc, " ")
            label = kc[1]; conns = kc[2]
            ceil = m["ceiling " conns, 8]
            xc = ceil > 0 ? sprintf("%.2f", m[keys[i], 8] / ceil) : "-"
            rp = "-"; rc = "-"
            if (label ~ /^(add|get)(-catalog)?$/ && (("peer-" label " " conns, 4) in m)) {
                rp = sprintf("%.2f", m[keys[i], 4] / m["peer-" label " " conns, 4])
                rc = sprintf("%.2f", m[keys[i], 8] / m["peer-" label " " conns, 8])
            }
            printf "| %s | %d | %.0f | %.2f | %.2f | %.2f | %.1f | %s | %.1f | %.1f | %.2f | %s | %s | %d |\n",
                   label, conns, m[keys[i], 4], m[keys[i], 5], m[keys[i], 6],
                   m[keys[i], 7], m[keys[i], 8], xc, m[keys[i], 9], m[keys[i], 14],
                   m[keys[i], 10], rp, rc, bad[keys[i]]
        }
    }'
}

header() {
    echo
    echo "## $1"
    echo
    echo "$(date -u +%FT%TZ), $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), nginx $(nginx -v 2>&1 | cut -d/ -f2), $(redis-server --version | awk '{print $3}'), pinning ${PIN}, wrk -t2 -d$DURATION"
    echo
}


# --- sections ---------------------------------------------------------------

refill_remove() {
    # users r0-* and r1-* (one set per wrk thread): enough lines that a run
    # never deletes a line twice
    local lines=$((2 * dur_s + 2))
    fill 'r0-%d' 10000 "$lines"
    fill 'r1-%d' 10000 "$lines"
}

section_main() {
    local round conns
    nginx_start ours "$PORT" 1 2
    nginx_start peer "$PEER_PORT" 1 2
    : >"$DIR/main.raw"
    for round in $(seq "$ROUNDS"); do
        for conns in $CONNS; do
            {
            wrk_run "$round" ceiling ours "$conns" get /ceiling
            wrk_run "$round" peer-add peer "$conns" add /n
            wrk_run "$round" add ours "$conns" add /n
            wrk_run "$round" peer-get peer "$conns" get /n
            wrk_run "$round" get ours "$conns" get /n
            wrk_run "$round" update ours "$conns" update /n
            refill_remove
            wrk_run "$round" remove ours "$conns" remove /n BENCH_USERS=10000 \
                BENCH_SKUS=$((2 * dur_s + 2))
            wrk_run "$round" count ours "$conns" get /n/count
            wrk_run "$round" mixed ours "$conns" mixed /n
            wrk_run "$round" peer-add-catalog peer "$conns" add /c
            wrk_run "$round" add-catalog ours "$conns" add /c
            wrk_run "$round" peer-get-catalog peer "$conns" get /c
            wrk_run "$round" get-catalog ours "$conns" get /c
            wrk_run "$round" get-catalog-cached ours "$conns" get /cc
            wrk_run "$round" mixed-catalog ours "$conns" mixed /c
            } >>"$DIR/main.raw"
        done
    done
    nginx_stop peer
    nginx_stop ours
    {
        header "Throughput, latency, cost per request (median of $ROUNDS rounds)"
        sort -s -k2,2n "$DIR/main.raw" | summarize
    } | tee "$DIR/main.md"
}

section_redis() {
    local p round
    : >"$DIR/redis.raw"
    for round in $(seq "$ROUNDS"); do
        for p in 1 16; do
            "${ON_NGINX_CPU[@]}" redis-benchmark -h 127.0.0.1 -p "$REDIS_PORT" \
                -c 50 -n 200000 -P "$p" -r "$USERS" --csv \
                EVALSHA "$ADD_SHA" 3 'cart:{user-__rand_int__}' \
                'cart_count:{user-__rand_int__}' 'cart_activity:{bench}' "$(date +%s)" 2592000 '' '' \
                86400 0 SKU-1 1 2999 seller-1 1000 1000000 \
                | awk -F'"' -v p="$p" 'NR == 2 { print "evalsha-add P" p, $4, $10 ", " $14 }' \
                >>"$DIR/redis.raw"
            "${ON_NGINX_CPU[@]}" redis-benchmark -h 127.0.0.1 -p "$REDIS_PORT" \
                -c 50 -n 200000 -P "$p" -r "$USERS" --csv \
                HGETALL 'cart:{user-__rand_int__}' \
                | awk -F'"' -v p="$p" 'NR == 2 { print "hgetall-5-lines P" p, $4, $10 ", " $14 }' \
                >>"$DIR/redis.raw"
        done
    done
    {
        header "Redis alone: redis-benchmark -c 50, median of $ROUNDS"
        echo "| command | pipeline | req/s | p50 ms | p99 ms |"
        echo "|---|---:|---:|---:|---:|"
        awk '{ k = $1 " " $2; v[k] = v[k] " " $3; l[k] = $4 " " $5; if (!(k in s)) { s[k] = 1; o[++n] = k } }
             END { for (i = 1; i <= n; i++) {
                       m = split(v[o[i]], a, " "); asort_(a, m)
                       split(o[i], kk, " "); split(l[o[i]], ll, ", ")
                       printf "| %s | %s | %.0f | %s | %s |\n", kk[1], substr(kk[2], 2), a[int((m + 1) / 2)], ll[1], ll[2] } }
             function asort_(a, m,   i, j, t) { for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t } }' \
            "$DIR/redis.raw"
        echo
        echo "(p50/p99 of the last round)"
    } | tee "$DIR/redis.md"
}

# trip_count LABEL N CURL-ARGS...: curl's URL globbing makes N requests on
# one connection while MONITOR listens; prints the commands clients sent
# and the calls scripts made, per request
trip_count() {
    local label=$1 n=$2 mon=$DIR/monitor.txt mpid
    shift 2
    redis-cli -h 127.0.0.1 -p "$REDIS_PORT" MONITOR >"$mon" 2>/dev/null &
    mpid=$!
    sleep 0.3
    curl -s -o /dev/null "$@"
    sleep 0.3
    kill "$mpid" 2>/dev/null || true
    wait "$mpid" 2>/dev/null || true
    awk -v label="$label" -v n="$n" '
        / \[[0-9]+ lua\] / { lua++; next }
        / \[[0-9]+ [0-9.:]+\] / { gsub(/"/, "", $4); cmd[$4]++; client++ }
        END { s = ""; for (c in cmd) s = s " " c " ×" cmd[c] / n
              printf "| %s | %.2f | %.2f |%s |\n", label, client / n, lua / n, s }' "$mon"
}

section_trips() {
    local u=000000000001 j='Content-Type: application/json' h
    h="X-User-Id: $u"
    nginx_start ours "$PORT" 1 1
    fill 'r9-%d' 1 40
    {
        header "Redis round trips per request (MONITOR, 20 requests each)"
        echo "| request | round trips/req | calls inside scripts/req | commands sent |"
        echo "|---|---:|---:|---|"
        local u="http://127.0.0.1:$PORT"
        trip_count "add" 20 -H "$h" -H "$j" -d '{"sku_id":"SKU-1","quantity":1}' "$u/n/items?[1-20]"
        trip_count "add, catalog" 20 -H "$h" -H "$j" -d '{"sku_id":"SKU-1","quantity":1}' "$u/c/items?[1-20]"
        trip_count "get (5 lines)" 20 -H "$h" "$u/n?[1-20]"
        trip_count "get (5 lines), catalog" 20 -H "$h" "$u/c?[1-20]"
        trip_count "update" 20 -H "$h" -H "$j" -X PUT -d '{"quantity":3}' "$u/n/items/SKU-2?[1-20]"
        trip_count "remove" 20 -H "X-User-Id: r9-0" -X DELETE "$u/n/items/SKU-[1-20]"
        trip_count "count" 20 -H "$h" "$u/n/count?[1-20]"
    } | tee "$DIR/trips.md"
    nginx_stop ours
}

section_growth() {
    local lines w rc round=1
    : >"$DIR/growth-lines.raw"
    : >"$DIR/growth-workers.raw"
    for lines in 1 5 20 100; do
        fill "g$lines-%012d" 100 "$lines"
    done
    nginx_start ours "$PORT" 1 2
    for lines in 1 5 20 100; do
        wrk_run "$round" "get-$lines" ours 50 get /n \
            BENCH_UPREFIX="g$lines-" BENCH_USERS=100 >>"$DIR/growth-lines.raw"
        wrk_run "$round" "get-$lines-catalog" ours 50 get /c \
            BENCH_UPREFIX="g$lines-" BENCH_USERS=100 >>"$DIR/growth-lines.raw"
    done
    nginx_stop ours
    for w in 1 2; do
        for rc in 1 2 4; do
            nginx_start ours "$PORT" "$w" "$rc"
            wrk_run "$round" "add-w$w-r$rc" ours "$GROWTH_CONNS" add /n >>"$DIR/growth-workers.raw"
            wrk_run "$round" "get-w$w-r$rc" ours "$GROWTH_CONNS" get /n >>"$DIR/growth-workers.raw"
            nginx_stop ours
        done
    done
    {
        header "How cost grows: GET by cart size (50 connections, one round)"
        echo "| cart lines | catalog | req/s | p50 ms | p99 ms | worker µs/req | Redis µs/req |"
        echo "|---:|---|---:|---:|---:|---:|---:|"
        awk '{ split($1, a, "-"); printf "| %s | %s | %.0f | %.2f | %.2f | %.1f | %.1f |\n",
               a[2], a[3] == "catalog" ? "yes" : "no", $4, $5, $6, $8, $9 }' "$DIR/growth-lines.raw"
        echo
        echo "Workers and Redis connections per worker ($GROWTH_CONNS connections, no catalog, one round):"
        echo
        echo "| workload | workers | Redis conns/worker | req/s | p99 ms | worker µs/req (all workers) |"
        echo "|---|---:|---:|---:|---:|---:|"
        awk '{ split($1, a, "-"); printf "| %s | %s | %s | %.0f | %.2f | %.1f |\n",
               a[1], substr(a[2], 2), substr(a[3], 2), $4, $6, $8 }' "$DIR/growth-workers.raw"
    } | tee "$DIR/growth.md"
}

section_memory() {
    local before after before2 after2 carts=10000 cart_mu count_mu idem_mu
    local idem_before idem_after enc seed seed_enc sample our_line seed_line i
    # a fresh Redis with its default settings (no tuning of listpack limits)
    redis_stop
    rm -rf "$DIR/redis"
    redis_start
    load_script
    rcli CONFIG GET hash-max-listpack-value | tr '\n' ' ' >"$DIR/memory.cfg"
    before=$(used_memory)
    fill "$uuid_fmt" "$carts" 5 rand
    after=$(used_memory)
    cart_mu=$(mem_avg "MEMORY USAGE cart:{user-$uuid_fmt}" "$carts")
    count_mu=$(mem_avg "MEMORY USAGE cart_count:{user-$uuid_fmt}" "$carts")
    enc=$(for i in $(seq 0 $((carts - 1))); do
              printf "OBJECT ENCODING cart:{user-$uuid_fmt}\n" "$i"; done \
          | rcli | sort | uniq -c | awk '{ printf "%s × %s ", $1, $2 }')
    sample=$(printf "cart:{user-$uuid_fmt}" 0)
    our_line=$(rcli HGETALL "$sample" | sed -n 2p)
    # idempotency keys: adds with an Idempotency-Key, then the keys alone
    # are deleted: the drop of used_memory is what the keys cost
    fill "i$uuid_fmt" 2000 1 rand seller-%d 1
    idem_mu=$(rcli --scan --pattern 'idem:*' | sed 's/^/MEMORY USAGE /' \
              | rcli | awk '{ s += $1 } END { printf "%.1f", s / NR }')
    idem_after=$(used_memory)
    rcli --scan --pattern 'idem:*' | sed 's/^/DEL /' | rcli >/dev/null
    idem_before=$(used_memory)
    # the seed's layout: JSON lines, same carts
    rcli FLUSHALL >/dev/null
    load_script
    before2=$(used_memory)
    awk -v fmt="$uuid_fmt" -v carts="$carts" '
    function out(n,   i) {
        printf "*%d\r\n", n
        for (i = 1; i <= n; i++) printf "$%d\r\n%s\r\n", length(a[i]), a[i]
    }
    BEGIN { srand(7)
        for (u = 0; u < carts; u++) { id = sprintf(fmt, u)
            for (k = 1; k <= 5; k++) {
                a[1] = "HSET"; a[2] = "cart:{user-" id "}"
                a[3] = sprintf("SKU-%05d", 10000 + int(rand() * 90000))
                a[4] = sprintf("{\"qty\":1,\"price_at_add\":%d.%02d,\"seller_id\":\"seller-%d\",\"added_at\":\"2026-12-01T10:00:00Z\"}",
                               (999 + 137 * k) / 100, (999 + 137 * k) % 100, k % 7 + 1)
                out(4)
            }
            a[1] = "SET"; a[2] = "cart_count:{user-" id "}"; a[3] = 5; a[4] = "EX"; a[5] = 2592000; out(5)
            a[1] = "EXPIRE"; a[2] = "cart:{user-" id "}"; a[3] = 2592000; out(3)
        } }' | rcli --pipe >/dev/null
    after2=$(used_memory)
    seed=$(mem_avg "MEMORY USAGE cart:{user-$uuid_fmt}" "$carts")
    seed_enc=$(rcli OBJECT ENCODING "$sample")
    seed_line=$(rcli HGETALL "$sample" | sed -n 2p)
    {
        header "Memory: $carts carts of 5 lines, fresh Redis, default settings"
        echo "User ids are UUIDs (\`cart:{user-<36 chars>}\`), SKUs \`SKU-NNNNN\`, sellers \`seller-N\`;"
        echo "each line written by the add script exactly as the module writes it."
        echo "Redis $(redis-server --version | awk '{print $3}'): $(cat "$DIR/memory.cfg")"
        echo
        echo "| layout | MEMORY USAGE cart hash | MEMORY USAGE counter | used_memory per cart (hash + counter + TTLs) | encoding |"
        echo "|---|---:|---:|---:|---|"
        echo "| ours: \`${our_line//|/\\|}\` | $cart_mu B | $count_mu B | $(per "$after" "$before" "$carts") B | $enc|"
        echo "| seed: \`$seed_line\` | $seed B | (same) | $(per "$after2" "$before2" "$carts") B | $seed_enc |"
        echo
        echo "Idempotency keys (\`idem:{user-<uuid>}:<uuid>\` → fingerprint + the add's stored answer,"
        echo "2,000 keys): MEMORY USAGE $idem_mu B per key; used_memory per key (with its TTL entry):"
        echo "$(per "$idem_after" "$idem_before" 2000) B."
    } | tee "$DIR/memory.md"
}

used_memory() {
    rcli INFO memory | tr -d '\r' | awk -F: '/^used_memory:/ { print $2 }'
}

# mem_avg COMMAND_FMT N: the average answer of COMMAND_FMT for users 0..N-1
mem_avg() {
    local i
    for i in $(seq 0 $(($2 - 1))); do
        # shellcheck disable=SC2059
        printf "$1\n" "$i"
    done | rcli | awk '{ s += $1 } END { printf "%.1f", s / NR }'
}

per() {
    awk -v a="$1" -v b="$2" -v n="$3" 'BEGIN { printf "%.1f", (a - b) / n }'
}


# --- profiles (not in the default run) ------------------------------------

# callgrind: instructions per request of each workload (stable on a noisy
# machine), and where they go. nginx runs as one process under valgrind.
PROFILE_LOADS=${BENCH_PROFILE:-ceiling add get update count get-catalog get-catalog-cached}

profile_path() {
    case $1 in
        ceiling) echo "get /ceiling" ;;
        count) echo "get /n/count" ;;
        *-catalog) echo "${1%-catalog} /c" ;;
        *-catalog-cached) echo "${1%-catalog-cached} /cc" ;;
        *) echo "$1 /n" ;;
    esac
}

section_callgrind() {
    local w out pid script path n ir
    mkdir -p "$DIR/callgrind" "$DIR/ours/conf" "$DIR/ours/logs"
    PROFILE=1 conf_ours "$PORT" 1 2 "" >"$DIR/ours/conf/nginx.conf"
    {
        header "callgrind: instructions per request (one worker, wrk -c10 -d${DURATION})"
        echo "| workload | requests | instructions/req | × ceiling |"
        echo "|---|---:|---:|---:|"
    } >"$DIR/callgrind.md"
    for w in $PROFILE_LOADS; do
        out=$DIR/callgrind/$w.out
        rm -f "$out"
        valgrind --tool=callgrind --callgrind-out-file="$out" \
            --dump-instr=no --collect-atstart=yes \
            nginx -p "$DIR/ours/" -c conf/nginx.conf \
            >"$DIR/callgrind/$w.log" 2>&1 &
        pid=$!
        for _ in $(seq 100); do
            curl -s -o /dev/null "http://127.0.0.1:$PORT/ping" && break
            sleep 0.2
        done
        read -r script path <<<"$(profile_path "$w")"
        # warm up (connections, scripts, pools), then count from zero
        BENCH_PATH=$path BENCH_USERS=$USERS wrk -t1 -c10 -d2s -s "$BENCH_WRK/$script.lua" \
            "http://127.0.0.1:$PORT" >/dev/null 2>&1
        callgrind_control -z "$pid" >/dev/null 2>&1
        n=$(BENCH_PATH=$path BENCH_USERS=$USERS wrk -t1 -c10 -d"$DURATION" \
                -s "$BENCH_WRK/$script.lua" "http://127.0.0.1:$PORT" 2>&1 \
            | awk '/^RESULT/ { split($2, a, "="); print a[2] }')
        callgrind_control -d "$pid" >/dev/null 2>&1
        kill -QUIT "$pid"
        wait "$pid" 2>/dev/null || true
        # the dump taken after the run (the final one at exit adds the quit)
        ir=$(callgrind_annotate "$(ls -t "$out".* 2>/dev/null | tail -1 || echo "$out")" 2>/dev/null \
             | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1; exit }')
        echo "$w $n $ir" >>"$DIR/callgrind.raw"
        awk -v w="$w" -v n="$n" -v ir="$ir" 'BEGIN { printf "| %s | %d | %.0f |", w, n, ir / n }' \
            >>"$DIR/callgrind.md"
        [ "$w" = ceiling ] && CEIL_IR=$((ir / n))
        awk -v ir="$ir" -v n="$n" -v c="${CEIL_IR:-0}" \
            'BEGIN { if (c) printf " %.2f |\n", ir / n / c; else print " - |" }' >>"$DIR/callgrind.md"
    done
    cat "$DIR/callgrind.md"
}

# Redis under callgrind: instructions per command it runs for us (the add
# script on 5-line carts, HGETALL of a 5-line cart, GET of a counter)
section_redisprof() {
    local port=$((REDIS_PORT + 1)) pid out=$DIR/redisprof sha n=20000 what
    mkdir -p "$out"
    rm -f "$out"/r.out*
    valgrind --tool=callgrind --callgrind-out-file="$out/r.out" \
        redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
        >"$out/log" 2>&1 &
    pid=$!
    for _ in $(seq 100); do
        [ "$(redis-cli -p "$port" PING 2>/dev/null)" = PONG ] && break
        sleep 0.2
    done
    sha=$(REDIS_PORT=$port rcli_at "$port" -x SCRIPT LOAD <"$DIR/add.lua")
    (REDIS_PORT=$port; ADD_SHA=$sha; fill '%012d' "$USERS" 5)
    {
        header "Redis instructions per command (callgrind, $n commands, redis-benchmark -P 16)"
        echo "| command | instructions |"
        echo "|---|---:|"
        for what in add hgetall get; do
            callgrind_control -z "$pid" >/dev/null 2>&1
            case $what in
                add) redis-benchmark -p "$port" -c 10 -n $n -P 16 -r "$USERS" -q \
                         EVALSHA "$sha" 3 'cart:{user-__rand_int__}' 'cart_count:{user-__rand_int__}' 'cart_activity:{bench}' \
                         "$(date +%s)" 2592000 '' '' 86400 0 SKU-1 1 2999 seller-1 1000 1000000 ;;
                hgetall) redis-benchmark -p "$port" -c 10 -n $n -P 16 -r "$USERS" -q \
                         HGETALL 'cart:{user-__rand_int__}' ;;
                get) redis-benchmark -p "$port" -c 10 -n $n -P 16 -r "$USERS" -q \
                         GET 'cart_count:{user-__rand_int__}' ;;
            esac >/dev/null 2>&1
            callgrind_control -d "$pid" >/dev/null 2>&1
            echo "| $what | $(callgrind_annotate "$(ls -t "$out"/r.out.* | head -1)" 2>/dev/null \
                 | awk -v n=$n '/PROGRAM TOTALS/ { gsub(",", "", $1); printf "%.0f", $1 / n }') |"
        done
    } | tee "$DIR/redisprof.md"
    redis-cli -p "$port" SHUTDOWN NOSAVE >/dev/null 2>&1 || true
    wait "$pid" 2>/dev/null || true
}

rcli_at() {
    local port=$1
    shift
    redis-cli -h 127.0.0.1 -p "$port" "$@"
}

# perf: where the worker's CPU time goes under load (cpu-clock sampling:
# this VM has no hardware counters)
section_perf() {
    local w script path pid
    mkdir -p "$DIR/perf"
    nginx_start ours "$PORT" 1 2
    pid=$(workers_of ours)
    for w in $PROFILE_LOADS; do
        read -r script path <<<"$(profile_path "$w")"
        perf record -q -e cpu-clock -F 4999 -g -p $pid -o "$DIR/perf/$w.data" -- sleep "${dur_s}" \
            >/dev/null 2>&1 &
        BENCH_PATH=$path BENCH_USERS=$USERS "${ON_REDIS_CPU[@]}" wrk -t2 -c50 -d"$DURATION" \
            -s "$BENCH_WRK/$script.lua" "http://127.0.0.1:$PORT" >/dev/null 2>&1
        wait
        {
            echo "== perf $w: worker CPU by binary"
            perf report -i "$DIR/perf/$w.data" --no-children --sort dso --stdio 2>/dev/null \
                | grep -E '^ +[0-9]' | head -8
            echo "== perf $w: top 25 symbols (self)"
            perf report -i "$DIR/perf/$w.data" --no-children --sort dso,symbol --stdio 2>/dev/null \
                | grep -E '^ +[0-9]' | head -25 | sed 's/ *- *- *$//'
        } >"$DIR/perf/$w.txt"
        cat "$DIR/perf/$w.txt"
    done
    nginx_stop ours
}


# --- main -------------------------------------------------------------------

util/deps.sh >/dev/null
make -s build >/dev/null
if [[ " $SECTIONS " == *" main "* ]]; then
    bench/deps.sh >/dev/null
fi

mkdir -p "$DIR"
cleanup
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

rm -rf "$DIR/redis"
redis_start
load_script
make_catalog
fill '%012d' "$USERS" 5
: >>"$RAW"

for s in $SECTIONS; do
    "section_$s"
done
