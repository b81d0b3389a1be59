#!/usr/bin/env bash
# Packages only the benchmark needs, from Debian's archive: the
# OpenResty-style peer (Lua in nginx, lua-resty-redis, cjson) and gnuplot
# for the growth section's plots. Kept out of util/deps.sh: building and
# testing the module never needs them.
set -eu

PACKAGES=(libnginx-mod-http-lua lua-nginx-redis lua-cjson gnuplot-nox)

missing=()
for pkg in "${PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
    [ "$status" = installed ] || missing+=("$pkg")
done

if [ ${#missing[@]} -eq 0 ]; then
    echo "bench deps: all ${#PACKAGES[@]} packages are installed"
    exit 0
fi

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "bench deps: need root or sudo for ${missing[*]}" >&2; exit 1; }
    SUDO=(sudo)
fi

# as in util/deps.sh: installing nginx modules must not start the system nginx
POLICY=/usr/sbin/policy-rc.d
if [ ! -e "$POLICY" ]; then
    # shellcheck disable=SC2064
    trap "${SUDO[*]} rm -f $POLICY" EXIT
    printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee "$POLICY" >/dev/null
    "${SUDO[@]}" chmod 755 "$POLICY"
fi

echo "bench deps: installing ${missing[*]}"
"${SUDO[@]}" apt-get update
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y --no-install-recommends "${missing[@]}"

for path in /usr/lib/nginx/modules/ngx_http_lua_module.so \
            /usr/lib/nginx/modules/ndk_http_module.so \
            /usr/share/lua/5.1/nginx/redis.lua /usr/bin/gnuplot; do
    [ -e "$path" ] || { echo "bench deps: $path is missing after the install" >&2; exit 1; }
done
echo "bench deps: done"
