#!/usr/bin/env bash
# Installs, from Debian's archive, everything that building the module, the
# demo (make run) and the tests (make test) need. Idempotent and fast: when
# every package is already installed it does not touch apt at all.
#
# The project never uses the system nginx or redis services: it runs its own
# instances on loopback ports (see util/redis.sh, util/run.sh, util/test.sh).
set -eu

PACKAGES=(
    # build: nginx-dev ships the exact source tree and configure flags of
    # Debian's nginx, so the module is binary-compatible with /usr/sbin/nginx
    # (nginx-dev pins nginx to its own version).
    nginx nginx-dev build-essential
    # what nginx's configure probes for with Debian's flags (conf_flags):
    # PCRE2 (--with-pcre-jit), OpenSSL (--with-http_ssl_module), zlib.
    libpcre2-dev libssl-dev zlib1g-dev
    # the module's own libraries (probed by ./config)
    libhiredis-dev libyajl-dev
    # events: librdkafka (producer in the module, consumer in the daemon,
    # mock cluster for tests), kcat to read topics; the daemon's PostgreSQL
    librdkafka-dev kcat postgresql libpq-dev
    # the store, and redis-cli for util/redis.sh
    redis-server redis-tools
    # tests (prove, Test::Nginx-style runner in t/lib), demo, benchmarks;
    # openssl signs the RS256/ES256 test tokens (t/lib/CartAuth.pm)
    perl curl wrk valgrind procps openssl
    # t/990-openapi.t validates the suite's answers against
    # docs/openapi.yaml with node (t/openapi/, its modules from npm)
    nodejs npm
    # t/600-browser.t drives Debian's chromium with playwright-core (t/browser/,
    # from npm; it downloads no browser of its own)
    chromium
    # make test-asan and make fuzz: clang 14 and its sanitizer runtimes
    # (ASan + UBSan, libFuzzer), a recommendation apt would skip here
    clang libclang-rt-14-dev
)

# Packages that a command on PATH stands for: a Node.js installed another
# way (one that bundles npm and conflicts with Debian's npm package) is
# kept, not replaced.
declare -A COMMAND_OF=([nodejs]=node [npm]=npm)

missing=()
for pkg in "${PACKAGES[@]}"; do
    if [ -n "${COMMAND_OF[$pkg]:-}" ] && command -v "${COMMAND_OF[$pkg]}" >/dev/null 2>&1; then
        continue
    fi
    status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
    [ "$status" = installed ] || missing+=("$pkg")
done

if [ ${#missing[@]} -eq 0 ]; then
    echo "deps: all ${#PACKAGES[@]} packages are installed"
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    SUDO=()
elif command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
else
    echo "deps: missing packages (${missing[*]}) and not root, and sudo is not installed" >&2
    exit 1
fi

# Debian's nginx and redis-server packages start their system services on
# install. Forbid that for the duration of the install (policy-rc.d exit 101 =
# "action forbidden", honoured by invoke-rc.d and deb-systemd-invoke), unless
# the machine already has a policy, which is then left exactly as it was.
POLICY=/usr/sbin/policy-rc.d
if [ ! -e "$POLICY" ]; then
    # shellcheck disable=SC2064  # expand now: the trap must remove this path
    trap "${SUDO[*]} rm -f $POLICY" EXIT
    printf '#!/bin/sh\n# temporary, from util/deps.sh: no service starts during install\nexit 101\n' \
        | "${SUDO[@]}" tee "$POLICY" >/dev/null
    "${SUDO[@]}" chmod 755 "$POLICY"
fi

echo "deps: installing ${missing[*]}"
"${SUDO[@]}" apt-get -o DPkg::Lock::Timeout=600 update
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends "${missing[@]}"

# The scripts use these exact paths, not just the package names.
for path in /usr/share/nginx/src/conf_flags /usr/sbin/nginx /usr/bin/redis-server \
            /usr/bin/redis-cli /usr/bin/prove /usr/bin/make /usr/bin/curl /usr/bin/chromium \
            "$(command -v node || echo node)" "$(command -v npm || echo npm)"; do
    [ -e "$path" ] || { echo "deps: $path is still missing after the install" >&2; exit 1; }
done
echo "deps: done"
