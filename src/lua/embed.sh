#!/bin/sh
# Turns every src/lua/NAME.lua (but _lib.lua) into
#   static const char ngx_http_cart_lua_NAME[] = "...";
# with _lib.lua, the shared prologue, in front of each. The scripts stay
# real .lua files and ship inside the module.
set -e
dir=$1
echo "/* generated from the .lua files of $dir by embed.sh: do not edit */"
for f in "$dir"/*.lua; do
    name=$(basename "$f" .lua)
    case $name in _*) continue ;; esac
    printf 'static const char ngx_http_cart_lua_%s[] =\n' "$name"
    cat "$dir/_lib.lua" "$f" \
        | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/    "/' -e 's/$/\\n"/'
    printf '    ;\n\n'
done
