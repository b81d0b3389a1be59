#!/usr/bin/env bash
# A first look at speed: one nginx worker, its own Redis, wrk on loopback.
# Prints requests/s and latency for add (POST /items) and get (GET of a
# 5-line cart), with and without the catalog subrequests.
#
#   bench/quick.sh [duration, default 10s] [connections, default 50]
set -eu
cd "$(dirname "$0")/.."
TOP=$(pwd)
DURATION=${1:-10s}
CONNS=${2:-50}
PORT=18480
REDIS_PORT=16480
DIR=$TOP/build/bench

make -s build >/dev/null
mkdir -p "$DIR/logs" "$DIR/conf"

util/redis.sh start $REDIS_PORT "$DIR/redis" >/dev/null
trap 'nginx -p "$DIR/" -c conf/nginx.conf -s stop 2>/dev/null || true;
      util/redis.sh stop $REDIS_PORT "$DIR/redis" >/dev/null' EXIT
redis-cli -p $REDIS_PORT flushall >/dev/null

cat > "$DIR/conf/nginx.conf" <<CONF
load_module $TOP/build/nginx/ngx_http_cart_module.so;
worker_processes 1;
error_log logs/error.log warn;
pid logs/nginx.pid;
events { worker_connections 4096; multi_accept on; }
http {
    access_log off;
    cart_redis redis://127.0.0.1:$REDIS_PORT;
    cart_max_quantity 1000000;
    server {
        listen 127.0.0.1:$PORT backlog=4096;
        location /api/v1/cart { cart_api; cart_user \$http_x_user_id;
                                cart_catalog /_catalog/\$cart_sku; }
        location /nocatalog   { cart_api; cart_user \$http_x_user_id; }
        location ~ ^/_catalog/(?<sku>[A-Za-z0-9._:-]+)\$ {
            internal; default_type application/json;
            alias $TOP/demo/catalog/\$sku.json;
        }
        location = /ceiling { default_type application/json;
                              return 200 '{"item_count":5}'; }
    }
}
CONF

nginx -p "$DIR/" -c conf/nginx.conf
sleep 0.5

# run NAME PATH [wrk script]
run() {
    local name=$1 path=$2 script=${3:-}
    printf '%-34s ' "$name"
    wrk -t2 -c"$CONNS" -d"$DURATION" --latency ${script:+-s "$script"} \
        "http://127.0.0.1:$PORT$path" 2>&1 \
        | awk '/Requests\/sec/ {rps=$2} /^ +50%/ {p50=$2} /^ +99%/ {p99=$2}
               /Non-2xx/ {bad=$5}
               END {printf "%10s req/s  p50 %8s  p99 %8s  non-2xx %d\n",
                           rps, p50, p99, bad}'
}

echo "wrk -t2 -c$CONNS -d$DURATION, 1 nginx worker, Redis on loopback"
run "ceiling: return 200" /ceiling
CART_PATH=/nocatalog run "add, no catalog" / bench/add.lua
CART_PATH=/nocatalog run "get 5 lines, no catalog" / bench/get.lua
CART_PATH=/api/v1/cart run "add, catalog subrequest" / bench/add.lua
CART_PATH=/api/v1/cart run "get 5 lines, 5 catalog subrequests" / bench/get.lua
CART_PATH=/nocatalog/count run "count" / bench/get.lua
