/*
 * Carts for the growth section of bench/run.sh, as RESP for
 * "redis-cli --pipe" (writes stdout):
 *
 *   carts layout PREFIX FROM TO LINES NOW TTL
 *   carts script PREFIX FROM TO LINES NOW TTL SHA
 *
 * Owners are "user-" PREFIX "%012d" for FROM <= i < TO; line k (1..LINES)
 * is SKU-<10000 + k>, quantity 1, price 999 + 137 k, seller-<k % 7 + 1>,
 * added at NOW.
 *
 * "script" sends one EVALSHA of the add script per line, as the module
 * does (the activity set of the cart's slot included). "layout" writes
 * what those adds leave in Redis directly, five commands per cart: a
 * million carts load in seconds instead of minutes of Lua. run.sh checks
 * on a sample that both give the same keys, values and sizes.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ngx_http_cart_slot.h"


#define ARGS_MAX  24


static const char  *args[ARGS_MAX];
static int          nargs;


static void
arg(const char *s)
{
    args[nargs++] = s;
}


static void
out(void)
{
    int  i;

    printf("*%d\r\n", nargs);

    for (i = 0; i < nargs; i++) {
        printf("$%zu\r\n%s\r\n", strlen(args[i]), args[i]);
    }

    nargs = 0;
}


/* unix seconds in base 36, as stamp() of _lib.lua writes added_at */
static void
stamp(long t, char *buf)
{
    char  tmp[16];
    int   n, i;

    n = 0;

    do {
        tmp[n++] = "0123456789abcdefghijklmnopqrstuvwxyz"[t % 36];
        t /= 36;
    } while (t);

    for (i = 0; i < n; i++) {
        buf[i] = tmp[n - 1 - i];
    }

    buf[n] = '\0';
}


int
main(int argc, char **argv)
{
    int          script, lines, k;
    long         from, to, i, now;
    char         owner[128], cart[160], count[160], activity[64];
    char         sku[ARGS_MAX][16], line[ARGS_MAX][64], price[ARGS_MAX][16];
    char         seller[ARGS_MAX][16], ver[16], added[16];
    const char  *prefix, *ttl, *sha, *nows;

    if (argc < 8 || (strcmp(argv[1], "script") == 0 && argc < 9)) {
        fprintf(stderr, "usage: carts layout|script PREFIX FROM TO LINES "
                        "NOW TTL [SHA]\n");
        return 2;
    }

    script = strcmp(argv[1], "script") == 0;
    prefix = argv[2];
    from = atol(argv[3]);
    to = atol(argv[4]);
    lines = atoi(argv[5]);
    nows = argv[6];
    now = atol(nows);
    ttl = argv[7];
    sha = script ? argv[8] : NULL;

    /* an HSET of every line and "#v" must fit in args[] */
    if (lines < 1 || 2 * lines + 4 > ARGS_MAX || strlen(prefix) > 64
        || ngx_http_cart_slot_init() != 0)
    {
        fprintf(stderr, "carts: bad arguments\n");
        return 2;
    }

    stamp(now, added);

    for (k = 1; k <= lines; k++) {
        snprintf(sku[k], sizeof(sku[k]), "SKU-%d", 10000 + k);
        snprintf(price[k], sizeof(price[k]), "%d", 999 + 137 * k);
        snprintf(seller[k], sizeof(seller[k]), "seller-%d", k % 7 + 1);
        snprintf(line[k], sizeof(line[k]), "1|%s|%s|%s",
                 price[k], seller[k], added);
    }

    snprintf(ver, sizeof(ver), "%d", lines);

    for (i = from; i < to; i++) {
        snprintf(owner, sizeof(owner), "user-%s%012ld", prefix, i);
        snprintf(cart, sizeof(cart), "cart:{%s}", owner);
        snprintf(count, sizeof(count), "cart_count:{%s}", owner);
        snprintf(activity, sizeof(activity), "%s{%s}",
                 NGX_HTTP_CART_ACTIVITY_KEY,
                 ngx_http_cart_slot_tag(
                     ngx_http_cart_slot((unsigned char *) cart,
                                        strlen(cart))));

        if (script) {
            for (k = 1; k <= lines; k++) {
                arg("EVALSHA"); arg(sha); arg("3");
                arg(cart); arg(count); arg(activity);
                arg(nows); arg(ttl); arg(""); arg(""); arg("86400");
                arg("0"); arg(sku[k]); arg("1"); arg(price[k]);
                arg(seller[k]); arg("10000"); arg("1000000");
                out();
            }

            continue;
        }

        /* the field order the adds leave: line 1 and "#v", then the rest */
        arg("HSET"); arg(cart); arg(sku[1]); arg(line[1]);
        arg("#v"); arg(ver);

        for (k = 2; k <= lines; k++) {
            arg(sku[k]); arg(line[k]);
        }

        out();

        arg("SET"); arg(count); arg(ver);
        out();
        arg("EXPIRE"); arg(cart); arg(ttl);
        out();
        arg("EXPIRE"); arg(count); arg(ttl);
        out();
        arg("ZADD"); arg(activity); arg(nows); arg(owner);
        out();
    }

    return fflush(stdout) == 0 ? 0 : 1;
}
