#!/usr/bin/env bash
# The project's test command (make test): installs what is missing, builds
# the module, starts a throw-away Redis, and runs the Test::Nginx-style suite
# in t/ with prove. Exits with prove's status; always stops its Redis.
#
#   util/test.sh                     the whole suite
#   util/test.sh t/010-items.t ...   only these files
#   VALGRIND=1 util/test.sh          every nginx under valgrind (make test-valgrind)
#   HUP=1 util/test.sh               reload with SIGHUP between tests (make test-hup)
#   TEST_NGINX_REDIS_PORT=N          Redis port (default 16379)
set -eu

cd "$(dirname "$0")/.."
TOP=$(pwd)

util/deps.sh
make build

export TEST_NGINX_REDIS_PORT=${TEST_NGINX_REDIS_PORT:-16379}
export TEST_NGINX_REDIS_DIR=$TOP/build/test/redis
export TEST_NGINX_REDIS_CTL=$TOP/util/redis.sh
export TEST_NGINX_CART_SO=$TOP/build/nginx/ngx_http_cart_module.so
export TEST_NGINX_BINARY=/usr/sbin/nginx
if [ "${VALGRIND:-}" = 1 ]; then export TEST_NGINX_USE_VALGRIND=1; fi
if [ "${HUP:-}" = 1 ]; then export TEST_NGINX_USE_HUP=1; fi

redis() { "$TEST_NGINX_REDIS_CTL" "$1" "$TEST_NGINX_REDIS_PORT" "$TEST_NGINX_REDIS_DIR"; }

# EXIT runs on every way out; INT/TERM turn into an exit so that it does.
trap 'redis stop' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A Redis left behind by an interrupted run would carry its data into this
# one: start from an empty store every time.
redis stop
rm -rf "$TEST_NGINX_REDIS_DIR"
redis start

rc=0
prove -r -I t/lib "${@:-t/}" || rc=$?
exit "$rc"
