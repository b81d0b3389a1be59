#!/bin/sh
# Turns every src/lua/NAME.lua (but _lib.lua) into
#   static const char ngx_http_cart_lua_NAME[] = "...";
# with _lib.lua, the shared prologue, in front of each. The scripts stay
# real .lua files and ship inside the module.
#
# Of the prologue's "local function NAME" a script gets only those it
# calls, directly or through another one: Redis creates every local
# function of a script again on each call, and the unused ones cost an
# add ~800 instructions each (docs/performance.md). A function runs from
# its "local function" line (with the comment lines just above it) to the
# first line that is "end" alone; the rest of the prologue is always kept.
#
#   embed.sh DIR             the C header, every script
#   embed.sh --lua DIR NAME  the Lua text of script NAME (what Redis runs)
set -e

# script DIR NAME: the prologue's parts that NAME needs, then NAME itself
script() {
    awk '
    function words(line, into,   n, i, w) {
        sub(/--.*/, "", line)
        gsub(/[^A-Za-z0-9_]/, " ", line)
        n = split(line, w, " ")
        for (i = 1; i <= n; i++) into[w[i]] = 1
    }
    FNR == 1 { file++ }
    file == 1 {
        if (fn == "" && $0 ~ /^local function [A-Za-z_][A-Za-z0-9_]*\(/) {
            fn = $3
            sub(/\(.*/, "", fn)
            chunks++
            name[chunks] = fn
            text[chunks] = pending $0 "\n"
            pending = ""
            next
        }
        if (fn != "") {
            text[chunks] = text[chunks] $0 "\n"
            words($0, uses)
            for (w in uses) dep[fn, w] = 1
            delete uses
            if ($0 == "end") fn = ""
            next
        }
        if ($0 ~ /^--/) {
            pending = pending $0 "\n"
            next
        }
        chunks++
        text[chunks] = pending $0 "\n"
        pending = ""
        next
    }
    { words($0, need); body = body $0 "\n" }
    END {
        do {
            grew = 0
            for (i = 1; i <= chunks; i++) {
                if (name[i] == "" || !(name[i] in need)) continue
                for (j = 1; j <= chunks; j++) {
                    if (name[j] != "" && !(name[j] in need) \
                        && (name[i], name[j]) in dep)
                    {
                        need[name[j]] = 1
                        grew = 1
                    }
                }
            }
        } while (grew)
        for (i = 1; i <= chunks; i++) {
            if (name[i] == "" || name[i] in need) printf "%s", text[i]
        }
        printf "%s%s", pending, body
    }' "$1/_lib.lua" "$1/$2.lua"
}

if [ "$1" = --lua ]; then
    script "$2" "$3"
    exit
fi

dir=$1
echo "/* generated from the .lua files of $dir by embed.sh: do not edit */"
for f in "$dir"/*.lua; do
    name=$(basename "$f" .lua)
    case $name in _*) continue ;; esac
    printf 'static const char ngx_http_cart_lua_%s[] =\n' "$name"
    script "$dir" "$name" \
        | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/    "/' -e 's/$/\\n"/'
    printf '    ;\n\n'
done
