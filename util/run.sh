#!/usr/bin/env bash
# Runs the cart demo: Redis on 127.0.0.1:6380 (conf/redis.conf, data kept in
# build/run/redis) and nginx with the module on http://127.0.0.1:8080.
#
#   util/run.sh start       (make run)  build, (re)start both in the background
#   util/run.sh stop        (make stop) stop both
#   util/run.sh render      only write build/run/conf/ (t/600-browser.t)
#   util/run.sh foreground  as start, but stays attached to nginx and stops
#                           both on SIGTERM/SIGINT (the Dockerfile's CMD)
#
# start on a running demo restarts it; carts survive (Redis keeps an AOF).
set -eu

cd "$(dirname "$0")/.."
TOP=$(pwd)
# t/600-browser.t renders the same configuration for its own nginx:
# CART_RUN_DIR, CART_PORT, CART_REDIS_PORT, CART_MODULE_SO override these.
RUN=${CART_RUN_DIR:-$TOP/build/run}
NGINX=/usr/sbin/nginx
MODULE_SO=${CART_MODULE_SO:-$TOP/build/nginx/ngx_http_cart_module.so}
NGINX_PID=$RUN/logs/nginx.pid
PORT=${CART_PORT:-8080}
REDIS_PORT=${CART_REDIS_PORT:-6380}
REDIS_DIR=$RUN/redis
URL=http://127.0.0.1:$PORT

nginx_cmd=("$NGINX" -p "$RUN/" -c conf/nginx.conf)

# A process that still exists and is not a zombie (in foreground mode nginx
# is our child and lingers as one until reaped).
alive() {
    local stat
    stat=$(ps -o stat= -p "$1" 2>/dev/null) && [ "${stat#Z}" = "$stat" ]
}

# Waits up to $2 seconds for process $1 to end.
wait_gone() {
    local i
    for ((i = 0; i < $2 * 10; i++)); do
        alive "$1" || return 0
        sleep 0.1
    done
    return 1
}

# The master's pid from the pidfile, if that process is alive and is nginx
# (not a stale pidfile whose pid was reused).
nginx_pid() {
    local pid
    [ -s "$NGINX_PID" ] && read -r pid <"$NGINX_PID" || return 1
    alive "$pid" && [ "$(ps -o comm= -p "$pid")" = nginx ] || return 1
    echo "$pid"
}

# Stops the master by signal rather than `nginx -s`, which would need a
# config that still parses and a module that still loads.
stop_nginx() {
    local pid
    if ! pid=$(nginx_pid); then
        rm -f "$NGINX_PID"
        return 0
    fi
    kill -QUIT "$pid"       # graceful: finish requests in flight
    if ! wait_gone "$pid" 10; then
        echo "run: nginx (pid $pid) still shutting down after 10s, sending SIGTERM" >&2
        kill -TERM "$pid" 2>/dev/null || true
        wait_gone "$pid" 5 || kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$NGINX_PID"
    echo "run: nginx stopped"
}

stop_all() {
    stop_nginx
    util/redis.sh stop "$REDIS_PORT" "$REDIS_DIR"
}

# sed replacement text: escape the delimiter, & and backslashes.
sed_escape() { printf '%s' "$1" | sed 's/[|&\\]/\\&/g'; }

render_conf() {
    mkdir -p "$RUN/conf" "$RUN/logs" "$RUN/tmp"
    # the guest cookie's HMAC secret, made once: guests keep their carts
    # across restarts
    if [ ! -s "$RUN/conf/cart-guest.key" ]; then
        (umask 077 && head -c 32 /dev/urandom | base64 >"$RUN/conf/cart-guest.key")
    fi
    sed -e "s|@MODULE_SO@|$(sed_escape "$MODULE_SO")|g" \
        -e "s|@DEMO_DIR@|$(sed_escape "$TOP/demo")|g" \
        -e "s|@CLIENT_DIR@|$(sed_escape "$TOP/clients/js")|g" \
        -e "s|@PORT@|$PORT|g" \
        -e "s|@PREFIX@|$(sed_escape "$RUN")|g" \
        -e "s|@REDIS_URL@|redis://127.0.0.1:$REDIS_PORT|g" \
        conf/nginx.conf >"$RUN/conf/nginx.conf"
}

# Everything up to, not including, starting nginx.
prepare() {
    util/deps.sh
    make build      # a failed build leaves a running demo untouched
    # From the restart on, a failure leaves nothing half-running; the caller
    # clears this trap once nginx answers.
    trap stop_all EXIT
    stop_all
    util/redis.sh start "$REDIS_PORT" "$REDIS_DIR" conf/redis.conf
    render_conf
    # Workers run as 'nobody' when the master is root: say so now rather
    # than let every catalog subrequest fail with 403.
    if [ "$(id -u)" -eq 0 ] && ! runuser -u nobody -- test -r "$TOP/demo/catalog/SKU-1.json"; then
        echo "run: warning: user 'nobody' (nginx workers) cannot read $TOP/demo/catalog" >&2
    fi
    "${nginx_cmd[@]}" -t -q
}

wait_ready() {
    local i
    for ((i = 0; i < 100; i++)); do
        curl -fsS -o /dev/null --max-time 1 "$URL/" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "run: nginx does not answer on $URL/ after 10s; end of $RUN/logs/error.log:" >&2
    tail -n 20 "$RUN/logs/error.log" >&2 2>/dev/null || true
    return 1
}

# $1: how to stop it, which differs between start and foreground.
walkthrough() {
    cat <<EOF

The cart is running: nginx on $URL, Redis on 127.0.0.1:$REDIS_PORT.
The demo storefront: open $URL/ in a browser.
Logs: build/run/logs/{error,access}.log, build/run/redis/redis.log
Products: SKU-1 .. SKU-8 (demo/catalog). Identity: the X-User-Id header
(the storefront's demo sign-in: the cookie cart_demo_user), else a guest.

  H='X-User-Id: demo-user'; J='Content-Type: application/json'; API=$URL/api/v1/cart

  # add two of SKU-1 (the price comes from the catalog, not from you)
  curl -s -H "\$H" -H "\$J" -d '{"sku_id":"SKU-1","quantity":2}' \$API/items
  # the whole cart, priced, with its version and ETag
  curl -si -H "\$H" \$API/
  # the badge count: one Redis read
  curl -s -H "\$H" \$API/count
  # set the quantity to 5
  curl -s -H "\$H" -H "\$J" -X PUT -d '{"quantity":5}' \$API/items/SKU-1
  # a destination: the cart now shows shipping estimates per line and seller
  curl -s -H "\$H" -H "\$J" -X PUT -d '{"country":"US","postal_code":"94107"}' \$API/shipping-address
  # a 10% coupon (admin API, local only), applied to the cart
  curl -s -H "\$J" -d '{"code":"SAVE10","type":"percent","value":10}' $URL/admin/cart/promotions
  curl -s -H "\$H" -H "\$J" -d '{"code":"SAVE10"}' \$API/coupons
  # check out: prices and stock checked again, one group per seller
  curl -s -H "\$H" -H 'Idempotency-Key: order-1' -X POST \$API/checkout
  # (DELETE \$API/items/SKU-1 removes a line)

Stop with: $1
EOF
}

start() {
    prepare
    "${nginx_cmd[@]}"
    wait_ready
    trap - EXIT
    walkthrough "make stop"
}

foreground() {
    local pid
    prepare
    "${nginx_cmd[@]}" -g 'daemon off;' &
    pid=$!
    # Stop both on the way out, however it ends (docker stop = SIGTERM).
    trap 'exit 0' TERM INT
    wait_ready
    walkthrough "Ctrl-C (docker stop)"
    wait "$pid"
}

case ${1:-} in
    start | foreground) "$1" ;;
    render) render_conf ;;
    stop) stop_all ;;
    *) echo "usage: $0 start|stop|foreground|render" >&2; exit 2 ;;
esac
