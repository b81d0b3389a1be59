#!/usr/bin/env bash
# The include rule of docs/design.md: a file includes only headers of its own
# layer or below. Every module file must have a layer here; prints each
# violation and exits 1 on any.
set -eu
cd "$(dirname "$0")/.."

# layer of a file by its name without ngx_http_cart_ and extension
layer() {
    case "$1" in
        module)                                   echo 7 ;;   # module map
        handler|errors)                           echo 6 ;;   # dispatcher
        items|merge|saved|share|coupons|checkout|admin|stream)
                                                  echo 5 ;;   # resources
        stored)                                   echo 4 ;;   # resource helpers
        pricing|snapshot|cache|engine|view|promo|events)
                                                  echo 3 ;;   # pricing, events
        reply)                                    echo 2 ;;   # toolkit
        scripts)                                  echo 1 ;;   # scripts
        ''|redis|redis_int|redis_cluster|redis_pubsub|kafka|slot|subrequest|\
        json|identity|status|lua)                 echo 0 ;;   # foundations
        *)                                        echo '' ;;
    esac
}

name() {
    local b
    b=$(basename "$1")
    b=${b%.*}
    b=${b#ngx_http_cart}
    echo "${b#_}"
}

bad=0
for f in ngx_http_cart_module.c src/*.c src/*.h; do
    me=$(name "$f")
    mine=$(layer "$me")
    if [ -z "$mine" ]; then
        echo "layers: $f has no layer in util/layers.sh"
        bad=1
        continue
    fi
    while read -r inc; do
        other=$(layer "$(name "$inc")")
        if [ -z "$other" ]; then
            echo "layers: $f includes $inc, which has no layer"
            bad=1
        elif [ "$other" -gt "$mine" ]; then
            echo "layers: $f (layer $mine) includes $inc (layer $other)"
            bad=1
        fi
    done < <(sed -n 's/^#include "\(ngx_http_cart[a-z_]*\.h\)".*/\1/p' "$f")
done

# the pricing engine is pure: nginx's core and its own header, nothing else
for f in src/ngx_http_cart_engine.[ch]; do
    if grep -E '^#include' "$f" \
        | grep -vqE '^#include (<ngx_(config|core)\.h>|"ngx_http_cart_engine\.h")$'
    then
        echo "layers: $f includes more than nginx's core (the engine is pure)"
        bad=1
    fi
done

[ "$bad" = 0 ] && echo "layers: every include is of the file's layer or below"
exit "$bad"
