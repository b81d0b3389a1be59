#!/usr/bin/env bash
# The project's test command (make test): installs what is missing, builds
# the module and the daemon, starts a throw-away Redis, a 3-master Redis
# Cluster, Kafka (the mock cluster of tools/kafka-mock) and PostgreSQL, and
# runs the Test::Nginx-style suite in t/ with prove. Exits with prove's status;
# always stops what it started.
#
#   util/test.sh                     the whole suite
#   util/test.sh t/010-items.t ...   only these files
#   VALGRIND=1 util/test.sh          every nginx under valgrind (make test-valgrind)
#   ASAN=1 util/test.sh              the module, the engine's unit test and
#                                    cartd built with ASan + UBSan
#                                    (build/asan/), every nginx with the
#                                    ASan runtime preloaded (make test-asan)
#   HUP=1 util/test.sh               reload with SIGHUP between tests (make test-hup)
#   TEST_NGINX_REDIS_PORT=N          Redis port (default 16379)
#   TEST_NGINX_REDIS_CLUSTER_PORT=N  first of the 3 Redis Cluster masters'
#                                    ports (default 17379; t/400-cluster.t);
#                                    t/410 and t/420 make clusters of their
#                                    own on N+20..N+23 and N+30..N+35 (and
#                                    each port + 10000 for the cluster bus)
#   TEST_NGINX_KAFKA_PORT=N          first of the 3 mock brokers' ports (default 19092)
#   TEST_NGINX_PG_PORT=N             PostgreSQL port (default 15432)
#   TEST_DIR=DIR                     where the servers keep their data
#                                    (default build/test); a second run at
#                                    the same time needs its own, its own
#                                    ports and its own TEST_NGINX_SERVROOT
#
# Every answer the runner receives is captured (TEST_NGINX_CAPTURE, one
# JSON line each, $TEST_DIR/capture.jsonl); t/990-openapi.t, last in
# prove's order, validates those of the cart locations against
# docs/openapi.yaml with the node modules of t/openapi (installed here).
# t/600-browser.t's screenshots: build/browser/.
set -eu

cd "$(dirname "$0")/.."
TOP=$(pwd)

util/deps.sh
if [ "${ASAN:-}" = 1 ]; then make build-asan; else make build; fi

# The tests' node modules, as locked: t/990-openapi.t's validator (ajv,
# yaml in t/openapi) and t/600-browser.t's playwright-core (t/browser; it
# drives Debian's chromium and downloads no browser). Nothing to do when
# they are installed at the locked versions already. A failed install (no
# registry) is no reason to stop here: the test that needs them fails and
# says so.
for dir in t/openapi t/browser; do
    if ! node util/npm-installed.js "$dir" 2>/dev/null; then
        npm ci --prefix "$dir" --prefer-offline --no-audit --no-fund --loglevel=error \
            || echo "test: npm ci in $dir failed; its tests need those modules" >&2
    fi
done

export TEST_NGINX_REDIS_PORT=${TEST_NGINX_REDIS_PORT:-16379}
TEST_DIR=${TEST_DIR:-$TOP/build/test}
export TEST_NGINX_REDIS_DIR=$TEST_DIR/redis
export TEST_NGINX_REDIS_CTL=$TOP/util/redis.sh
export TEST_NGINX_REDIS_CLUSTER_PORT=${TEST_NGINX_REDIS_CLUSTER_PORT:-17379}
export TEST_NGINX_REDIS_CLUSTER_DIR=$TEST_DIR/redis-cluster
export TEST_NGINX_CART_SO=$TOP/build/nginx/ngx_http_cart_module.so
export TEST_NGINX_BINARY=/usr/sbin/nginx
export TEST_NGINX_KAFKA_PORT=${TEST_NGINX_KAFKA_PORT:-19092}
export TEST_NGINX_KAFKA_DIR=$TEST_DIR/kafka
export TEST_NGINX_KAFKA_CTL=$TOP/util/kafka.sh
p=$TEST_NGINX_KAFKA_PORT
export TEST_NGINX_KAFKA_BROKERS=127.0.0.1:$p,127.0.0.1:$((p + 1)),127.0.0.1:$((p + 2))
export TEST_NGINX_PG_PORT=${TEST_NGINX_PG_PORT:-15432}
export TEST_NGINX_PG_DIR=$TEST_DIR/pg
export TEST_NGINX_PG_DSN="postgresql://postgres@127.0.0.1:$TEST_NGINX_PG_PORT/cart"
export TEST_NGINX_CARTD=$TOP/build/daemon/cartd
if [ "${VALGRIND:-}" = 1 ]; then export TEST_NGINX_USE_VALGRIND=1; fi
if [ "${ASAN:-}" = 1 ]; then
    # The runner preloads the ASan runtime into every nginx it starts (the
    # module needs it, Debian's nginx is not linked with it) and fails a
    # block on any report (t/README.md); only the project's runner does.
    export TEST_NGINX_USE_ASAN=1 TEST_NGINX_OWN_RUNNER=1
    export TEST_NGINX_CART_SO=$TOP/build/asan/nginx/ngx_http_cart_module.so
    export TEST_NGINX_CARTD=$TOP/build/asan/daemon/cartd
    # clang's shared runtime, the one the module is linked with (Makefile)
    TEST_NGINX_ASAN_PRELOAD=$(clang -print-file-name=libclang_rt.asan-x86_64.so)
    export TEST_NGINX_ASAN_PRELOAD
    # reports of the other sanitized programs (cartd, a test's nginx -t):
    # the runner reads them too, after each block
    export TEST_NGINX_SANITIZER_LOG=$TOP/build/test/sanitizer/report
    rm -rf "$TOP/build/test/sanitizer"
    mkdir -p "$TOP/build/test/sanitizer"
    # No leak checking (LeakSanitizer): nginx's own exit-time allocations
    # are reported (a stock nginx's event arrays at every exit; the cycle
    # of nginx -t and -s), and no suppression can tell them from the
    # module's: Debian's nginx has neither frame pointers nor static
    # symbols, so its frames stop at ngx_alloc(), and the module is
    # unloaded before exit, so its frames would have no names either.
    # make test-valgrind checks leaks. Options given in the environment
    # come after these, and win (ASAN_OPTIONS=detect_leaks=1 to look).
    export ASAN_OPTIONS=detect_leaks=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}:log_path=$TEST_NGINX_SANITIZER_LOG
    export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}:log_path=$TEST_NGINX_SANITIZER_LOG
fi
if [ "${HUP:-}" = 1 ]; then export TEST_NGINX_USE_HUP=1; fi

redis() { "$TEST_NGINX_REDIS_CTL" "$1" "$TEST_NGINX_REDIS_PORT" "$TEST_NGINX_REDIS_DIR"; }
kafka() { "$TEST_NGINX_KAFKA_CTL" "$1" "$TEST_NGINX_KAFKA_PORT" "$TEST_NGINX_KAFKA_DIR"; }
pg() { util/pg.sh "$1" "$TEST_NGINX_PG_PORT" "$TEST_NGINX_PG_DIR"; }
cluster() { util/redis-cluster.sh "$1" "$TEST_NGINX_REDIS_CLUSTER_PORT" "$TEST_NGINX_REDIS_CLUSTER_DIR"; }

# EXIT runs on every way out; INT/TERM turn into an exit so that it does.
trap 'redis stop; cluster stop; kafka stop; pg stop' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A Redis left behind by an interrupted run would carry its data into this
# one: start from an empty store every time.
redis stop
rm -rf "$TEST_NGINX_REDIS_DIR"
redis start
cluster stop
rm -rf "$TEST_NGINX_REDIS_CLUSTER_DIR"
cluster start
kafka stop
kafka start
pg stop
rm -rf "$TEST_NGINX_PG_DIR"
pg start

# The answers, for t/990-openapi.t; it also checks that every operation was
# exercised when the whole suite runs.
export TEST_NGINX_CAPTURE=$TEST_DIR/capture.jsonl
mkdir -p "$TOP/build/test"
rm -f "$TEST_NGINX_CAPTURE"
if [ $# -eq 0 ]; then export TEST_NGINX_CAPTURE_ALL=1; else unset TEST_NGINX_CAPTURE_ALL; fi

rc=0
prove -r -I t/lib "${@:-t/}" || rc=$?
exit "$rc"
