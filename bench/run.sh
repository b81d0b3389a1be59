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
#         (cart_catalog_cache, ours only), at each of BENCH_CONNS
#         connections; each peer run just before ours. BENCH_ROUNDS rounds,
#         workloads interleaved within a round, the median of each figure
#         over the rounds. One cart_status scrape of ours, taken halfway
#         through the last get-catalog run: build/bench/status.txt.
# redis   redis-benchmark: the add script by EVALSHA, HGETALL of a 5-line
#         cart, without and with pipelining (Redis's own limit).
# trips   Redis round trips per request, exact, from MONITOR.
# growth  carts in Redis 10K -> 1M (memory per cart, GET and add); GET of
#         1..100-line carts without and with the catalog and its cache
#         (CPU, and instructions by callgrind); 1K -> 20K open GET /stream
#         on one worker (memory per stream, time for one change to reach
#         100 streams of one owner); 50 -> 10K client connections. Tables,
#         and plots in docs/growth-*.png (gnuplot).
# memory  10,000 carts of 5 lines on a fresh Redis with default settings:
#         MEMORY USAGE, used_memory per cart, idempotency keys, and the
#         seed's JSON-line layout for comparison.
#
# Environment (defaults in brackets):
#   BENCH_DURATION [5s]  BENCH_ROUNDS [3]  BENCH_CONNS ["50 400"]
#   BENCH_PORT [18480] (ours; +1 the peer)  BENCH_REDIS_PORT [16480]
#   BENCH_PIN [1]  1: nginx worker on CPU 0, Redis and wrk on CPU 1
#   BENCH_GROWTH_CONNS [200]  BENCH_GROWTH_PARTS ["carts lines streams clients"]
#   BENCH_GROWTH_MAX_CARTS [1000000]  BENCH_GROWTH_LINES  BENCH_GROWTH_STREAMS
#   BENCH_GROWTH_CLIENTS  BENCH_GROWTH_CALLGRIND [1]  (see the growth section)
# Needs: util/deps.sh packages, and bench/deps.sh for the peer and gnuplot.
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
# the module's and the peer's limits: within the module's bound of 10^7
# units a cart (cart_max_lines x cart_max_quantity); the quantity ample
# for every add of a whole run landing on the same 5,000 lines
MAX_LINES=100
MAX_QUANTITY=100000
WORKER_CONNS=8192              # the growth section raises both
STREAM_MAX=512
REDIS_EXTRA=""                 # directives of a growth run (clients)
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
REMOVE_LINES=$((4 * dur_s + 2))


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

# file descriptors for a worker: twice its connections (a subrequest's
# upstream, Redis), within what this shell may give
nofile() {
    local want=$((2 * WORKER_CONNS + 1024)) hard
    hard=$(ulimit -Hn)
    if [ "$hard" != unlimited ] && [ "$hard" -lt "$want" ]; then
        want=$hard
    fi
    echo "$want"
}

common_http() {
    if [ -n "${PROFILE:-}" ]; then
        echo "master_process off; daemon off;"
    fi
    cat <<CONF
worker_processes $2;
$4
error_log logs/error.log warn;
pid logs/nginx.pid;
worker_rlimit_nofile $(nofile);
events { worker_connections $WORKER_CONNS; multi_accept on; }
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
    cart_max_quantity $MAX_QUANTITY;
    cart_max_lines $MAX_LINES;
    cart_stream_max $STREAM_MAX;
    $REDIS_EXTRA
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
        # issue 14: the counters, scraped once during the main section
        location = /_status { cart_status; }
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
        require("cart").init({ port = $REDIS_PORT,
                               scripts = { add = "$DIR/add.lua", set = "$DIR/set.lua" },
                               max_quantity = $MAX_QUANTITY, max_lines = $MAX_LINES })
    }
    server {
$(common_server "$1")
        location = /n/items { content_by_lua_block { require("cart").add(false) } }
        location = /n       { content_by_lua_block { require("cart").view(false) } }
        location = /n/count { content_by_lua_block { require("cart").count() } }
        location = /c/items { content_by_lua_block { require("cart").add(true) } }
        location = /c       { content_by_lua_block { require("cart").view(true) } }
        location = /c/count { content_by_lua_block { require("cart").count() } }
        # PUT and DELETE of a line: no catalog lookup, in the module either
        location ~ ^/[nc]/items/(?<sku>[^/]+)\$ {
            content_by_lua_block { require("cart").line() }
        }
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

# The add and set scripts exactly as the module embeds them (embed.sh:
# _lib + the script): fill() runs the add, the peer both
load_script() {
    local name sha
    for name in add set; do
        sh src/lua/embed.sh --lua src/lua "$name" >"$DIR/$name.lua"
        sha=$(rcli -x SCRIPT LOAD <"$DIR/$name.lua")
        [ "$sha" = "$(sha1sum <"$DIR/$name.lua" | cut -c1-40)" ] || {
            echo "bench: SCRIPT LOAD of $name gave $sha" >&2; exit 1; }
    done
    ADD_SHA=$(sha1sum <"$DIR/add.lua" | cut -c1-40)
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
            if (("peer-" label " " conns, 4) in m) {
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
    # never deletes a line twice (REMOVE_LINES per cart: 40,000 lines per
    # second of the run and thread, about twice what a thread deletes; with
    # 2 per second, 8,710 of a 400-connection run's answers were 404s)
    fill 'r0-%d' 10000 "$REMOVE_LINES"
    fill 'r1-%d' 10000 "$REMOVE_LINES"
}

# scrape_in URL FILE: GET URL into FILE halfway through a wrk run
# that starts now, in the background (the caller waits for it)
scrape_in() {
    sleep "$(awk -v d="$dur_s" 'BEGIN { print d / 2 }')"
    curl -sf -o "$2" "$1" || echo "bench: no answer from $1" >&2
}

# what a cart_status scrape counted: every cart_requests_total sample, and
# the GET / answered 200 (the workload it was taken in)
check_status() {
    awk '/^cart_requests_total\{/ { all += $NF }
         /^cart_requests_total\{op="view",status="200"\}/ { view += $NF }
         END { printf "%d requests, %d GET / answered 200\n", all, view
               exit !(all > 0 && view > 0) }' "$1"
}

section_main() {
    local round conns last_conns spid status=$DIR/status.txt
    nginx_start ours "$PORT" 1 2
    nginx_start peer "$PEER_PORT" 1 2
    : >"$DIR/main.raw"
    rm -f "$status"
    last_conns=${CONNS##* }
    for round in $(seq "$ROUNDS"); do
        for conns in $CONNS; do
            {
            wrk_run "$round" ceiling ours "$conns" get /ceiling
            wrk_run "$round" peer-add peer "$conns" add /n
            wrk_run "$round" add ours "$conns" add /n
            wrk_run "$round" peer-get peer "$conns" get /n
            wrk_run "$round" get ours "$conns" get /n
            wrk_run "$round" peer-update peer "$conns" update /n
            wrk_run "$round" update ours "$conns" update /n
            refill_remove
            wrk_run "$round" peer-remove peer "$conns" remove /n BENCH_USERS=10000 \
                BENCH_SKUS=$REMOVE_LINES
            refill_remove
            wrk_run "$round" remove ours "$conns" remove /n BENCH_USERS=10000 \
                BENCH_SKUS=$REMOVE_LINES
            wrk_run "$round" peer-count peer "$conns" get /n/count
            wrk_run "$round" count ours "$conns" get /n/count
            wrk_run "$round" peer-mixed peer "$conns" mixed /n
            wrk_run "$round" mixed ours "$conns" mixed /n
            wrk_run "$round" peer-add-catalog peer "$conns" add /c
            wrk_run "$round" add-catalog ours "$conns" add /c
            wrk_run "$round" peer-get-catalog peer "$conns" get /c
            # issue 14: one cart_status scrape under load, in the last
            # round's last get-catalog run
            spid=""
            if [ "$round" = "$ROUNDS" ] && [ "$conns" = "$last_conns" ]; then
                scrape_in "http://127.0.0.1:$PORT/_status" "$status" &
                spid=$!
            fi
            wrk_run "$round" get-catalog ours "$conns" get /c
            [ -z "$spid" ] || wait "$spid"
            wrk_run "$round" get-catalog-cached ours "$conns" get /cc
            wrk_run "$round" peer-mixed-catalog peer "$conns" mixed /c
            wrk_run "$round" mixed-catalog ours "$conns" mixed /c
            } >>"$DIR/main.raw"
        done
    done
    nginx_stop peer
    nginx_stop ours
    {
        header "Throughput, latency, cost per request (median of $ROUNDS rounds)"
        sort -s -k2,2n "$DIR/main.raw" | summarize
        echo
        echo "cart_status scraped during get-catalog ($last_conns connections, round $ROUNDS): $status"
    } | tee "$DIR/main.md"
    if [ ! -s "$status" ] || ! check_status "$status"; then
        echo "bench: the cart_status scrape $status counted no requests" >&2
        exit 1
    fi
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

# --- growth -----------------------------------------------------------------
#
# Four questions, each a table in build/bench/growth.md and a plot in
# docs/growth-*.png (gnuplot):
#   carts    10K -> 1M carts of 5 lines in Redis: used_memory per cart,
#            GET and add latency and CPU per request at each size
#   lines    GET of 1..100-line carts without catalog, with per-SKU
#            catalog subrequests and with cart_catalog_cache: CPU and
#            (callgrind) instructions per request and per line
#   streams  1K -> 20K open GET /stream on one worker: memory per stream,
#            and how long one change takes to reach the 100 streams of
#            one owner
#   clients  50 -> 10K keep-alive client connections: throughput,
#            latency, worker memory per connection
#   workers  (not in the default run) 1 and 2 workers x 1/2/4 Redis
#            connections per worker

GROWTH_PARTS=${BENCH_GROWTH_PARTS-carts lines streams clients}
GROWTH_MAX_CARTS=${BENCH_GROWTH_MAX_CARTS:-1000000}
GROWTH_LINES=${BENCH_GROWTH_LINES:-1 5 10 20 50 100}
GROWTH_STREAMS=${BENCH_GROWTH_STREAMS:-1000 5000 10000 20000}
GROWTH_CLIENTS=${BENCH_GROWTH_CLIENTS:-50 500 2000 5000 10000}
GROWTH_CALLGRIND=${BENCH_GROWTH_CALLGRIND:-1}
GROWTH_CHANGES=20              # changes timed per stream count
GROWTH_HOT=100                 # streams of the one owner that changes
# the 12 digits of each user complete a UUID's shape: the same 36-character
# ids as the memory section, so that bytes per cart compare
GROWTH_PREFIX=00000000-1d2a-4e8b-9c3f-
GROWTH_STRIDE=104729           # a prime: requests spread over every cart
GROWTH_TTL=2592000

growth_helpers() {
    mkdir -p "$DIR/bin"
    cc -O2 -Wall -Isrc -o "$DIR/bin/carts" bench/growth/carts.c \
        src/ngx_http_cart_slot.c
    cc -O2 -Wall -o "$DIR/bin/sse" bench/growth/sse.c
}

# a worker's resident memory in KB (VmRSS, or VmHWM: its peak)
worker_kb() {
    awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"
}

# carts_of PREFIX FROM TO [script]: carts FROM..TO-1 of 5 lines, written as
# the add script leaves them (or by the script itself)
carts_of() {
    local mode=${4:-layout}
    "$DIR/bin/carts" "$mode" "$1" "$2" "$3" 5 "$GROWTH_NOW" "$GROWTH_TTL" \
        ${4:+"$ADD_SHA"} | rcli --pipe >/dev/null
}

# what a cart leaves in Redis, the owner id's prefix taken out
cart_dump() {
    local i u
    for i in $(seq 0 19); do
        u=$(printf "user-%s%012d" "$1" "$i")
        printf 'HGETALL cart:{%s}\nMEMORY USAGE cart:{%s}\nOBJECT ENCODING cart:{%s}\n' "$u" "$u" "$u"
        printf 'GET cart_count:{%s}\nMEMORY USAGE cart_count:{%s}\nOBJECT ENCODING cart_count:{%s}\n' "$u" "$u" "$u"
        printf 'TTL cart:{%s}\nTTL cart_count:{%s}\n' "$u" "$u"
    done | rcli | sed "s/$1//"
}

# The layout the generator writes must be what the add script writes:
# 20 carts each way, compared key by key (values, sizes, encodings, TTLs,
# and the activity index's score).
growth_check_layout() {
    local a=0000000a-1d2a-4e8b-9c3f- b=0000000b-1d2a-4e8b-9c3f-
    carts_of "$a" 0 20 script
    carts_of "$b" 0 20
    if ! diff <(cart_dump "$a") <(cart_dump "$b") >"$DIR/growth-layout.diff"; then
        echo "bench: the generated carts differ from the add script's:" >&2
        cat "$DIR/growth-layout.diff" >&2
        exit 1
    fi
    rcli --scan --pattern 'cart_activity:*' | while read -r k; do
        rcli ZRANGE "$k" 0 -1 WITHSCORES
    done | awk -v now="$GROWTH_NOW" 'NR % 2 == 0 && $1 != now { bad++ }
        END { if (NR != 80 || bad) { print "bench: activity index: " NR / 2 " members, " bad + 0 " wrong scores" > "/dev/stderr"; exit 1 } }'
}

growth_carts() {
    local n have=0 before after sample
    local sizes="" s
    for s in 10000 100000 1000000; do
        [ "$s" -lt "$GROWTH_MAX_CARTS" ] && sizes="$sizes $s"
    done
    sizes="$sizes $GROWTH_MAX_CARTS"
    # a fresh Redis with its default settings, as the memory section
    redis_stop
    rm -rf "$DIR/redis"
    redis_start
    load_script
    GROWTH_NOW=$(date +%s)
    growth_check_layout
    rcli FLUSHALL >/dev/null
    load_script
    before=$(used_memory)
    nginx_start ours "$PORT" 1 2
    : >"$DIR/growth-carts.raw"
    for n in $sizes; do
        carts_of "$GROWTH_PREFIX" "$have" "$n"
        have=$n
        after=$(used_memory)
        # MEMORY USAGE of 1,000 carts spread over all of them
        sample=$(for s in $(seq 0 999); do
                     printf "MEMORY USAGE cart:{user-%s%012d}\n" "$GROWTH_PREFIX" $((s * n / 1000))
                 done | rcli | awk '{ t += $1 } END { printf "%.1f", t / NR }')
        {
            printf "%d %s %s %d " "$n" "$(per "$after" "$before" "$n")" "$sample" \
                "$(rcli DBSIZE)"
            for w in get add; do
                wrk_run 1 "$w" ours 50 "$w" /n BENCH_UPREFIX="$GROWTH_PREFIX" \
                    BENCH_USERS="$n" BENCH_STRIDE=$GROWTH_STRIDE BENCH_SKU_BASE=10000 \
                    | awk '{ printf "%s %s %s %s %s ", $4, $5, $6, $8, $9 }'
            done
            echo
        } >>"$DIR/growth-carts.raw"
    done
    nginx_stop ours
    # the other sections' Redis again
    redis_stop
    rm -rf "$DIR/redis"
    redis_start
    load_script
    fill '%012d' "$USERS" 5
}

growth_lines() {
    local lines loc
    : >"$DIR/growth-lines.raw"
    for lines in $GROWTH_LINES; do
        fill "g$lines-%012d" 100 "$lines"
    done
    nginx_start ours "$PORT" 1 2
    for lines in $GROWTH_LINES; do
        for loc in n c cc; do
            # a first round fills the lookup cache of /cc
            [ "$loc" = cc ] && BENCH_PATH=/cc BENCH_UPREFIX="g$lines-" BENCH_USERS=100 \
                wrk -t1 -c10 -d1s -s "$BENCH_WRK/get.lua" "http://127.0.0.1:$PORT" >/dev/null
            wrk_run 1 "get-$lines-$loc" ours 50 get "/$loc" \
                BENCH_UPREFIX="g$lines-" BENCH_USERS=100 >>"$DIR/growth-lines.raw"
        done
    done
    nginx_stop ours
    [ "$GROWTH_CALLGRIND" = 1 ] && growth_lines_callgrind
    return 0
}

# instructions per GET by cart size: one nginx under callgrind, counters
# zeroed before and dumped after each workload
growth_lines_callgrind() {
    local out=$DIR/callgrind/growth.out pid lines loc n k=0 ir
    mkdir -p "$DIR/callgrind" "$DIR/ours/conf" "$DIR/ours/logs"
    rm -f "$out" "$out".*
    PROFILE=1 conf_ours "$PORT" 1 2 "" >"$DIR/ours/conf/nginx.conf"
    valgrind --tool=callgrind --callgrind-out-file="$out" --dump-instr=no \
        nginx -p "$DIR/ours/" -c conf/nginx.conf >"$DIR/callgrind/growth.log" 2>&1 &
    pid=$!
    for _ in $(seq 100); do
        curl -s -o /dev/null "http://127.0.0.1:$PORT/ping" && break
        sleep 0.2
    done
    : >"$DIR/growth-lines-ir.raw"
    for lines in $GROWTH_LINES; do
        for loc in n c cc; do
            BENCH_PATH=/$loc BENCH_UPREFIX="g$lines-" BENCH_USERS=100 wrk -t1 -c4 -d1s \
                -s "$BENCH_WRK/get.lua" "http://127.0.0.1:$PORT" >/dev/null 2>&1
            callgrind_control -z "$pid" >/dev/null 2>&1
            n=$(BENCH_PATH=/$loc BENCH_UPREFIX="g$lines-" BENCH_USERS=100 wrk -t1 -c4 -d3s \
                    -s "$BENCH_WRK/get.lua" "http://127.0.0.1:$PORT" 2>&1 \
                | awk '/^RESULT/ { split($2, a, "="); print a[2] }')
            callgrind_control -d "$pid" >/dev/null 2>&1
            k=$((k + 1))
            ir=$(awk '/^(totals|summary):/ { print $2; exit }' "$out.$k")
            echo "$lines $loc $n $ir" >>"$DIR/growth-lines-ir.raw"
        done
    done
    kill -QUIT "$pid"
    wait "$pid" 2>/dev/null || true
}

growth_streams() {
    local n pid spid rss0 rss red0 red chans line
    : >"$DIR/growth-streams.raw"
    for n in $GROWTH_STREAMS; do
        # the worker and the client each hold one descriptor per stream
        if [ $((n + 100)) -gt "$GROWTH_FDS" ]; then
            echo "bench: $((GROWTH_FDS - 100)) streams, not $n: the file limit here is $GROWTH_FDS" >&2
            n=$((GROWTH_FDS - 100))
        fi
        nginx_start ours "$PORT" 1 2
        pid=$(workers_of ours)
        pid=${pid%% *}
        # the worker's subscriber connection exists from its first stream
        curl -s -m 1 -o /dev/null -H 'X-User-Id: stream-warm' \
            "http://127.0.0.1:$PORT/n/stream" || true
        sleep 0.5
        rss0=$(worker_kb "$pid" VmRSS)
        red0=$(used_memory)
        # the client waits on a pipe until the memory is measured
        rm -f "$DIR/sse.in" "$DIR/sse.out"
        mkfifo "$DIR/sse.in" "$DIR/sse.out"
        "$DIR/bin/sse" "$PORT" /n/stream "$n" "$GROWTH_HOT" "$GROWTH_CHANGES" \
            stream- stream-hot <"$DIR/sse.in" >"$DIR/sse.out" &
        spid=$!
        exec 8>"$DIR/sse.in" 9<"$DIR/sse.out"
        read -r line <&9
        sleep 0.5
        rss=$(worker_kb "$pid" VmRSS)
        red=$(used_memory)
        chans=$(rcli INFO stats | tr -d '\r' | awk -F: '/^pubsub_channels:/ { print $2 }')
        echo go >&8
        awk -v n="$n" -v ready="$line" -v rss0="$rss0" -v rss="$rss" \
            -v red0="$red0" -v red="$red" -v chans="$chans" '
            function median(a, m,   i, j, t) {
                for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++)
                    if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
                return a[int((m + 1) / 2)]
            }
            /^CHANGE/ { m++; f[m] = $2 / 1000; l[m] = $3 / 1000
                        if ($3 < 0) lost++; if ($3 / 1000 > mx) mx = $3 / 1000 }
            END { split(ready, r, " ")
                  printf "%d %d %d %.0f %.0f %d %.2f %.2f %.2f %d\n", n, r[2], r[3],
                         (rss - rss0) * 1024 / n, (red - red0) / n, chans,
                         median(f, m), median(l, m), mx, lost }' \
            <&9 >>"$DIR/growth-streams.raw"
        exec 8>&- 9<&-
        wait "$spid" 2>/dev/null || true
        nginx_stop ours
    done
}

# every connection busy (wrk keeps one request in flight on each): with
# the defaults, and with Redis's timeout and in-flight limit raised so
# that what the connections cost shows past where the defaults shed load
growth_clients() {
    local c pid rss0 hwm row set
    : >"$DIR/growth-clients.raw"
    for set in default raised; do
        if [ "$set" = raised ]; then
            REDIS_EXTRA="cart_redis_timeout 2s; cart_redis_max_pending 16384;"
        fi
        for c in $GROWTH_CLIENTS; do
            nginx_start ours "$PORT" 1 2
            pid=$(workers_of ours)
            pid=${pid%% *}
            rss0=$(worker_kb "$pid" VmRSS)
            row=$(wrk_run 1 "get-$set" ours "$c" get /n)
            hwm=$(worker_kb "$pid" VmHWM)
            echo "$row $rss0 $hwm" >>"$DIR/growth-clients.raw"
            nginx_stop ours
        done
        REDIS_EXTRA=""
    done
}

growth_workers() {
    local w rc
    : >"$DIR/growth-workers.raw"
    for w in 1 2; do
        for rc in 1 2 4; do
            nginx_start ours "$PORT" "$w" "$rc"
            wrk_run 1 "add-w$w-r$rc" ours "$GROWTH_CONNS" add /n >>"$DIR/growth-workers.raw"
            wrk_run 1 "get-w$w-r$rc" ours "$GROWTH_CONNS" get /n >>"$DIR/growth-workers.raw"
            nginx_stop ours
        done
    done
}

growth_tables() {
    header "Growth (one worker, one round each; latencies on this machine's load)"
    if [ -s "$DIR/growth-carts.raw" ]; then
        echo "Carts in Redis (5 lines, UUID-shaped owners, fresh Redis, default settings);"
        echo "GET and add at 50 connections on carts spread over all of them:"
        echo
        echo "| carts | used_memory per cart | MEMORY USAGE cart hash | keys | GET req/s | GET p50 ms | GET p99 ms | GET worker µs | GET Redis µs | add req/s | add p50 ms | add p99 ms | add worker µs | add Redis µs |"
        echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        awk '{ printf "| %d | %.0f B | %.0f B | %d | %.0f | %.2f | %.2f | %.1f | %.1f | %.0f | %.2f | %.2f | %.1f | %.1f |\n",
               $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14 }' "$DIR/growth-carts.raw"
        echo
    fi
    if [ -s "$DIR/growth-lines.raw" ]; then
        echo "GET by lines per cart (50 connections; 100 carts of each size): none = no"
        echo "catalog, sub = a catalog subrequest per line, cache = cart_catalog_cache:"
        echo
        echo "| lines | none req/s | none worker µs | sub req/s | sub worker µs | cache req/s | cache worker µs | none instr | sub instr | cache instr |"
        echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        awk 'FILENAME ~ /ir/ { ir[$1 " " $2] = $3 > 0 ? $4 / $3 : 0; next }
             { split($1, a, "-"); k = a[2]; if (!(k in seen)) { seen[k] = 1; o[++n] = k }
               rps[k " " a[3]] = $4; us[k " " a[3]] = $8 }
             END { for (i = 1; i <= n; i++) { k = o[i]
                       printf "| %s | %.0f | %.1f | %.0f | %.1f | %.0f | %.1f | %s | %s | %s |\n", k,
                           rps[k " n"], us[k " n"], rps[k " c"], us[k " c"], rps[k " cc"], us[k " cc"],
                           f(ir[k " n"]), f(ir[k " c"]), f(ir[k " cc"]) } }
             function f(x) { return x ? sprintf("%.0f", x) : "-" }' \
            "$DIR/growth-lines-ir.raw" "$DIR/growth-lines.raw" 2>/dev/null
        echo
        growth_per_line
        echo
    fi
    if [ -s "$DIR/growth-streams.raw" ]; then
        echo "Open GET /stream on one worker ($GROWTH_HOT of them one owner's, the rest one owner each);"
        echo "a change is an add to that owner's cart, timed until the first and the last of its"
        echo "$GROWTH_HOT streams has the event (median and max of $GROWTH_CHANGES changes):"
        echo
        echo "| streams | open | failed | worker memory per stream | Redis memory per stream | channels | first ms | all $GROWTH_HOT ms (median) | all $GROWTH_HOT ms (max) | not reached |"
        echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        awk '{ printf "| %d | %d | %d | %d B | %d B | %d | %.2f | %.2f | %.2f | %d |\n", $1, $2, $3, $4, $5, $6, $7, $8, $9, $10 }' \
            "$DIR/growth-streams.raw"
        echo
    fi
    if [ -s "$DIR/growth-clients.raw" ]; then
        echo "Keep-alive client connections, each with a request in flight, GET of a 5-line"
        echo "cart (no catalog); default settings, then cart_redis_timeout 2s and"
        echo "cart_redis_max_pending 16384 (raised):"
        echo
        echo "| settings | connections | req/s | p50 ms | p99 ms | worker µs/req | non-2xx+errors | worker RSS peak | per connection |"
        echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
        awk '{ split($1, a, "-") }
             a[2] != set { set = a[2]; h1 = $16; c1 = $2; first = 1 }
             { printf "| %s | %d | %.0f | %.2f | %.2f | %.1f | %d | %.1f MB | %s |\n", a[2], $2, $4, $5, $6, $8,
                      $12 + $13, $16 / 1024, first ? "-" : sprintf("%.1f KB", ($16 - h1) / ($2 - c1)); first = 0 }' \
            "$DIR/growth-clients.raw"
        echo
    fi
    if [ -s "$DIR/growth-workers.raw" ]; then
        echo "Workers and Redis connections per worker ($GROWTH_CONNS connections, no catalog):"
        echo
        echo "| workload | workers | Redis conns/worker | req/s | p99 ms | worker µs/req (all workers) |"
        echo "|---|---:|---:|---:|---:|---:|"
        awk '{ split($1, a, "-"); printf "| %s | %s | %s | %.0f | %.2f | %.1f |\n",
               a[1], substr(a[2], 2), substr(a[3], 2), $4, $6, $8 }' "$DIR/growth-workers.raw"
        echo
    fi
}

# the cost of one more line: least squares over the sizes measured
growth_per_line() {
    awk 'FILENAME ~ /ir/ { if ($3 > 0) { k = $2; x[k] = x[k] " " $1; y[k] = y[k] " " $4 / $3 }; next }
         { split($1, a, "-"); k = "us-" a[3]; x[k] = x[k] " " a[2]; y[k] = y[k] " " $8 }
         END {
             split("us-n us-c us-cc n c cc", ks, " ")
             split("µs without catalog|µs with subrequests|µs with the cache|instructions without catalog|instructions with subrequests|instructions with the cache", nm, "|")
             s = "Per line (least squares over the sizes):"
             for (i = 1; i <= 6; i++) { k = ks[i]; if (!(k in x)) continue
                 m = split(x[k], xs, " "); split(y[k], ys, " ")
                 sx = sy = sxx = sxy = 0
                 for (j = 1; j <= m; j++) { sx += xs[j]; sy += ys[j]; sxx += xs[j] * xs[j]; sxy += xs[j] * ys[j] }
                 b = (m * sxy - sx * sy) / (m * sxx - sx * sx); a0 = (sy - b * sx) / m
                 s = s sprintf(" %s %s + %s/line;", nm[i], fmt(a0), fmt(b)) }
             print s }
         function fmt(v) { return v > 100 ? sprintf("%.0f", v) : sprintf("%.2f", v) }' \
        "$DIR/growth-lines-ir.raw" "$DIR/growth-lines.raw" 2>/dev/null
}

# growth_plot NAME TITLE XLABEL YLABEL Y2LABEL LOGSCALE KEY PLOT-COMMAND: one PNG,
# docs/growth-NAME.png; without Y2LABEL one axis, LOGSCALE "x", "xy" or ""
growth_plot() {
    {
        echo "set terminal pngcairo size 800,480 font \",10\" noenhanced"
        echo "set output \"$TOP/docs/growth-$1.png\""
        echo "set title \"$2\""
        echo "set xlabel \"$3\""
        echo "set ylabel \"$4\""
        [ -n "$6" ] && echo "set logscale $6"
        [ "$6" = xy ] || echo "set yrange [0:*]"
        if [ -n "$5" ]; then
            echo "set y2label \"$5\""
            echo "set y2range [0:*]"
            echo "set ytics nomirror"
            echo "set y2tics"
        fi
        echo "set key $7"
        # one command on one line: no continuation backslashes needed
        echo "$8" | tr '\n' ' '
        echo
    } | gnuplot
}

growth_plots() {
    command -v gnuplot >/dev/null || { echo "bench: no gnuplot (bench/deps.sh); no plots" >&2; return 0; }
    local lp="with linespoints" ir=""
    if [ -s "$DIR/growth-carts.raw" ]; then
        growth_plot carts "Carts in Redis: memory per cart and latency (one worker, 50 connections)" \
            "carts (5 lines)" "bytes per cart" "ms" x "bottom right" \
            "plot \"$DIR/growth-carts.raw\" using 1:2 $lp lw 2 title \"used_memory per cart\",
             \"\" using 1:3 $lp title \"MEMORY USAGE cart hash\",
             \"\" using 1:6 axes x1y2 $lp dt 2 title \"GET p50\",
             \"\" using 1:7 axes x1y2 $lp dt 3 title \"GET p99\",
             \"\" using 1:11 axes x1y2 $lp dt 2 title \"add p50\",
             \"\" using 1:12 axes x1y2 $lp dt 3 title \"add p99\""
    fi
    if [ -s "$DIR/growth-lines.raw" ]; then
        # one row per size: the three locations side by side
        awk '{ split($1, a, "-"); v[a[2]] = v[a[2]] " " $8; if (!(a[2] in s)) { s[a[2]] = 1; o[++n] = a[2] } }
             END { for (i = 1; i <= n; i++) print o[i] v[o[i]] }' "$DIR/growth-lines.raw" \
            >"$DIR/growth-lines.dat"
        if [ -s "$DIR/growth-lines-ir.raw" ]; then
            awk '$3 > 0 { v[$1] = v[$1] " " $4 / $3 / 1000; if (!($1 in s)) { s[$1] = 1; o[++n] = $1 } }
                 END { for (i = 1; i <= n; i++) print o[i] v[o[i]] }' "$DIR/growth-lines-ir.raw" \
                >"$DIR/growth-lines-ir.dat"
            ir=",
             \"$DIR/growth-lines-ir.dat\" using 1:2 $lp dt 2 title \"thousand instructions, no catalog\",
             \"\" using 1:3 $lp dt 2 title \"thousand instructions, subrequests\",
             \"\" using 1:4 $lp dt 2 title \"thousand instructions, cache\""
        fi
        growth_plot lines "GET by lines per cart (one worker)" "lines per cart" "per request" "" \
            xy "top left" \
            "plot \"$DIR/growth-lines.dat\" using 1:2 $lp lw 2 title \"worker µs, no catalog\",
             \"\" using 1:3 $lp lw 2 title \"worker µs, catalog subrequests\",
             \"\" using 1:4 $lp lw 2 title \"worker µs, catalog cache\"$ir"
    fi
    if [ -s "$DIR/growth-streams.raw" ]; then
        growth_plot streams "Open GET /stream on one worker" "open streams" "bytes per stream" \
            "ms for one change to reach all $GROWTH_HOT streams of its owner" "" "bottom right" \
            "plot \"$DIR/growth-streams.raw\" using 1:4 $lp lw 2 title \"worker memory per stream\",
             \"\" using 1:5 $lp lw 2 title \"Redis memory per stream\",
             \"\" using 1:8 axes x1y2 $lp dt 2 title \"fan-out, median\",
             \"\" using 1:9 axes x1y2 $lp dt 3 title \"fan-out, max\""
    fi
    if [ -s "$DIR/growth-clients.raw" ]; then
        growth_plot clients "Keep-alive client connections, GET of a 5-line cart (one worker)" \
            "client connections" "requests/s" "ms" x "top left" \
            "d(s, v) = strcol(1) eq s ? v : NaN;
             plot \"$DIR/growth-clients.raw\" using 2:(d(\"get-default\", \$4)) $lp lw 2 title \"req/s, defaults\",
             \"\" using 2:(d(\"get-raised\", \$4)) $lp lw 2 title \"req/s, raised\",
             \"\" using 2:(d(\"get-default\", \$12 + \$13) / $dur_s) $lp lw 2 title \"503/s, defaults\",
             \"\" using 2:(d(\"get-raised\", \$6)) axes x1y2 $lp dt 3 title \"p99 ms, raised\""
    fi
}

section_growth() {
    local part
    # 20K streams and 10K clients: file descriptors for them, in this
    # benchmark's processes only
    ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
    GROWTH_FDS=$(ulimit -n)
    # beyond the file limit nginx only warns: stay within it
    WORKER_CONNS=$((GROWTH_FDS < 32768 ? GROWTH_FDS : 32768))
    STREAM_MAX=25000
    growth_helpers
    # each part writes its own raw file: the tables and plots show the
    # latest run of every part
    for part in $GROWTH_PARTS; do
        "growth_$part"
    done
    growth_tables | tee "$DIR/growth.md"
    growth_plots
    WORKER_CONNS=8192
    STREAM_MAX=512
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
if [[ " $SECTIONS " == *" main "* || " $SECTIONS " == *" growth "* ]]; then
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
