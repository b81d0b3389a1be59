#!/usr/bin/env bash
# make fuzz: builds the libFuzzer harnesses of fuzz/ (clang, with ASan and
# UBSan) and runs each for FUZZ_SECONDS (default 60) on its corpus; fails
# when one finds a crash, a leak, a timeout or an out-of-memory.
#
#   util/fuzz.sh                 build, then run every harness
#   util/fuzz.sh json jwt        only these (fuzz/fuzz_<name>.c)
#   FUZZ_SECONDS=600 util/fuzz.sh
#   FUZZ_BUILD_ONLY=1 util/fuzz.sh
#
# The harnesses run the module's parsers on nginx's own pools and strings:
# nginx-dev ships headers only, so nginx's source, of the version nginx-dev
# has, comes from Debian's archive (apt-get source, the orig tarball), into
# build/fuzz/. Everything the runs produce stays in build/fuzz/: the corpus
# each run grew (build/fuzz/corpus/<name>/, next to the committed seeds of
# fuzz/corpus/<name>/), crash artifacts (build/fuzz/artifacts/<name>/) and
# the logs (build/fuzz/logs/<name>.log). A crash is replayed with
#   build/fuzz/bin/fuzz_<name> build/fuzz/artifacts/<name>/crash-...
set -eu

cd "$(dirname "$0")/.."
TOP=$(pwd)
OUT=$TOP/build/fuzz
SECONDS_EACH=${FUZZ_SECONDS:-60}

util/deps.sh

# --- nginx's source -------------------------------------------------------

version=$(dpkg-query -W -f='${Version}' nginx-dev)
upstream=${version%%-*}
src=$OUT/nginx-$upstream

if [ ! -f "$src/src/core/nginx.c" ]; then
    if [ "$(id -u)" -eq 0 ]; then SUDO=(); else SUDO=(sudo); fi

    # apt-get source needs deb-src entries: those of the deb entries
    if ! grep -rqs '^Types:.*deb-src\|^deb-src ' /etc/apt/sources.list /etc/apt/sources.list.d/; then
        if [ -f /etc/apt/sources.list.d/debian.sources ]; then
            echo "fuzz: adding /etc/apt/sources.list.d/debian-src.sources (deb-src)"
            sed 's/^Types:.*/Types: deb-src/' /etc/apt/sources.list.d/debian.sources \
                | "${SUDO[@]}" tee /etc/apt/sources.list.d/debian-src.sources >/dev/null
        else
            echo "fuzz: adding /etc/apt/sources.list.d/debian-src.list (deb-src)"
            sed -n 's/^deb /deb-src /p' /etc/apt/sources.list \
                | "${SUDO[@]}" tee /etc/apt/sources.list.d/debian-src.list >/dev/null
        fi
        "${SUDO[@]}" apt-get -o DPkg::Lock::Timeout=600 update
    fi

    mkdir -p "$OUT/apt"
    # --tar-only: the orig tarball (the Debian changes are not needed here)
    if ! (cd "$OUT/apt" && apt-get -o APT::Sandbox::User=root source --download-only --tar-only "nginx=$version"); then
        echo "fuzz: apt-get source nginx=$version failed; trying apt-get update" >&2
        "${SUDO[@]}" apt-get -o DPkg::Lock::Timeout=600 update
        (cd "$OUT/apt" && apt-get -o APT::Sandbox::User=root source --download-only --tar-only "nginx=$version")
    fi
    tar -xzf "$OUT/apt/nginx_$upstream.orig.tar.gz" -C "$OUT"
    test -f "$src/src/core/nginx.c"
fi

# nginx's configure, with Debian's flags (as the module is built): the
# generated ngx_auto_config.h the core files and the module compile with
if [ ! -f "$OUT/objs/ngx_auto_config.h" ]; then
    # shellcheck disable=SC1091
    (cd "$src" && . /usr/share/nginx/src/conf_flags \
        && ./configure "${NGX_CONF_FLAGS[@]}" --with-cc=clang \
                       --builddir="$OUT/objs" >"$OUT/configure.log" 2>&1) \
        || { tail -20 "$OUT/configure.log"; exit 1; }
fi

# --- build ----------------------------------------------------------------

make -s -f fuzz/Makefile TOP="$TOP" OUT="$OUT" NGX="$src"

[ "${FUZZ_BUILD_ONLY:-}" = 1 ] && exit 0

# --- run ------------------------------------------------------------------

if [ $# -gt 0 ]; then
    names=("$@")
else
    names=()
    for f in fuzz/fuzz_*.c; do
        n=${f#fuzz/fuzz_}
        names+=("${n%.c}")
    done
fi

failed=()
for name in "${names[@]}"; do
    bin=$OUT/bin/fuzz_$name
    [ -x "$bin" ] || { echo "fuzz: no harness $name" >&2; exit 2; }
    mkdir -p "$OUT/corpus/$name" "$OUT/artifacts/$name" "$OUT/logs"
    log=$OUT/logs/$name.log

    # new inputs go to the first directory; the seeds are only read
    rc=0
    "$bin" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$OUT/artifacts/$name/" \
        "$OUT/corpus/$name" "fuzz/corpus/$name" >"$log" 2>&1 || rc=$?

    stats=$(grep -E '^stat::(number_of_executed_units|average_exec_per_sec|new_units_added):' "$log" \
            | sed 's/^stat:://; s/: */=/' | tr '\n' ' ')
    cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -1)
    if [ "$rc" -eq 0 ]; then
        echo "fuzz: $name ok: ${SECONDS_EACH}s, $stats$cov"
    else
        echo "fuzz: $name FAILED (exit $rc): $stats$cov"
        grep -E 'ERROR: |runtime error: |==[0-9]+== ?ERROR|Test unit written to|^SUMMARY' "$log" | head -10 | sed 's/^/  /'
        echo "  log: $log"
        failed+=("$name")
    fi
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: FAILED: ${failed[*]}"
    exit 1
fi
echo "fuzz: ${#names[@]} harnesses, no crash"
