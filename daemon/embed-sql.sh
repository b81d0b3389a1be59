#!/bin/sh
# schema/NNN_*.sql -> a C array of { version, sql } in the order of NNN.
set -e
echo "/* generated from the .sql files of $1 by embed-sql.sh: do not edit */"
echo "static const cartd_migration_t  cartd_migrations[] = {"
for f in "$1"/[0-9]*.sql; do
    n=$(basename "$f" | sed 's/_.*//; s/^0*//')
    printf '    { %s,\n' "$n"
    sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/      "/' -e 's/$/\\n"/' "$f"
    printf '    },\n'
done
echo "    { 0, NULL }"
echo "};"
