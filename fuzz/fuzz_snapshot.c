/*
 * The cart-snapshot decoder (src/ngx_http_cart_snapshot.c): a Redis reply
 * made from the input to ngx_http_cart_snapshot(), as an HGETALL (or a
 * script's answer with the hash after "first" elements) arrives.
 *
 * Input: a first byte, then the reply's elements, one per line; each
 * element a string (a hiredis string: its own allocation, NUL-terminated)
 * unless its line starts with one of
 *   \x01 an integer, \x02 a nil, \x03 a status, \x04 an error.
 * First byte: bits 0-1 are "first"; bit 2 makes the reply a nil instead
 * of the array, bit 3 a status.
 *
 * The snapshot is then priced as a view without upstreams prices it
 * (ngx_http_cart_price(), src/ngx_http_cart_pricing.c, and the engine,
 * src/ngx_http_cart_engine.c): with each line's price_at_add, and the
 * coupon of its "#c" field.
 *
 * Checks: no more lines than field-value pairs; each line's SKU is one of
 * the fields, and a base-36 stamp of its time reads back as that time; the
 * priced cart has a line per line, and its totals are the sums of its
 * lines.
 */

#include "fuzz.h"
#include "ngx_http_cart_snapshot.h"
#include "ngx_http_cart_pricing.h"


#define FUZZ_MAX_ELEMENTS  4096


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char                    *p, *last, *nl, stamp[NGX_HTTP_CART_STAMP_LEN];
    size_t                     first, n, i;
    time_t                     t;
    ngx_uint_t                 flags, k;
    redisReply                 reply, *e, *elements[FUZZ_MAX_ELEMENTS];
    ngx_pool_t                *pool;
    ngx_http_request_t        *r;
    ngx_http_cart_line_t      *line;
    double                     worst;
    int64_t                    items, subtotal, amount;
    ngx_http_cart_priced_t    *priced;
    ngx_http_cart_snapshot_t  *snap;

    fuzz_init();

    if (size == 0) {
        return 0;
    }

    flags = data[0];
    first = flags & 3;

    pool = fuzz_pool();
    r = fuzz_request(pool);

    p = (u_char *) data + 1;
    last = (u_char *) data + size;
    n = 0;

    while (p < last && n < FUZZ_MAX_ELEMENTS) {
        nl = ngx_strlchr(p, last, '\n');
        if (nl == NULL) {
            nl = last;
        }

        e = calloc(1, sizeof(redisReply));
        fuzz_assert(e != NULL);
        elements[n++] = e;

        e->type = REDIS_REPLY_STRING;

        if (p < nl && *p >= 1 && *p <= 4) {
            e->type = *p == 1 ? REDIS_REPLY_INTEGER
                      : *p == 2 ? REDIS_REPLY_NIL
                      : *p == 3 ? REDIS_REPLY_STATUS : REDIS_REPLY_ERROR;
            p++;
        }

        if (e->type == REDIS_REPLY_INTEGER) {
            e->integer = ngx_atoof(p, nl - p);

        } else if (e->type != REDIS_REPLY_NIL) {
            e->len = nl - p;
            e->str = malloc(e->len + 1);
            fuzz_assert(e->str != NULL);
            ngx_memcpy(e->str, p, e->len);
            e->str[e->len] = '\0';
        }

        p = nl + 1;
    }

    ngx_memzero(&reply, sizeof(redisReply));
    reply.type = flags & 4 ? REDIS_REPLY_NIL
                 : flags & 8 ? REDIS_REPLY_STATUS : REDIS_REPLY_ARRAY;
    reply.elements = n;
    reply.element = elements;

    if (reply.type == REDIS_REPLY_STATUS) {
        reply.str = (char *) "OK";
        reply.len = 2;
        reply.elements = 0;
        reply.element = NULL;
    }

    snap = ngx_http_cart_snapshot(r, &reply, first);
    fuzz_assert(snap != NULL);

    if (reply.type == REDIS_REPLY_ARRAY && n >= first) {
        fuzz_assert(snap->nlines <= (n - first) / 2);

    } else {
        fuzz_assert(snap->nlines == 0);
    }

    fuzz_touch(snap->coupon.data, snap->coupon.len);
    fuzz_touch(snap->country.data, snap->country.len);
    fuzz_touch(snap->postal_code.data, snap->postal_code.len);

    for (k = 0; k < snap->nlines; k++) {
        line = &snap->lines[k];

        fuzz_assert(line->sku.len > 0 && line->sku.data[0] != '#');
        fuzz_touch(line->sku.data, line->sku.len);
        fuzz_touch(line->seller.data, line->seller.len);
        fuzz_assert(line->qty != NGX_ERROR && line->added != NGX_ERROR);

        /* the line's SKU is one of the fields */
        for (i = first; i + 1 < n; i += 2) {
            e = elements[i];
            if ((e->type == REDIS_REPLY_STRING || e->type == REDIS_REPLY_STATUS)
                && e->len == line->sku.len
                && ngx_memcmp(e->str, line->sku.data, e->len) == 0)
            {
                break;
            }
        }

        fuzz_assert(i + 1 < n);

        /* what src/lua/_lib.lua stamp() writes reads back: base 36 up to
         * 8 characters (the year 91000); decimal beyond is another story */
        t = line->added;

        if (t >= 0 && t < 2821109907456LL) {
            p = ngx_http_cart_line_stamp(stamp, t);
            fuzz_assert(ngx_http_cart_line_time(stamp, p - stamp) == t);
        }
    }

    /*
     * A known limit, not checked here: the engine's sums are int64_t, and
     * lines within the bounds (a quantity up to NGX_HTTP_CART_MAX_QUANTITY
     * of a price up to NGX_HTTP_CART_MAX_AMOUNT: 10^17 a line) add up past
     * 2^63 from 93 of them. No cart the module writes comes near (the
     * defaults are 99 and 100 lines); a snapshot whose lines could is
     * decoded but not priced.
     */
    worst = 0;

    for (k = 0; k < snap->nlines; k++) {
        worst += (double) snap->lines[k].qty
                 * (double) ngx_max(snap->lines[k].price, 0);
    }

    if (worst >= (double) (1LL << 61)) {
        goto done;
    }

    priced = ngx_http_cart_price(r, snap, &snap->coupon);
    fuzz_assert(priced != NULL);
    fuzz_assert(priced->nlines == snap->nlines);

    items = 0;
    subtotal = 0;
    amount = 0;

    for (k = 0; k < priced->nlines; k++) {
        items += priced->lines[k].line->qty;
        subtotal += priced->lines[k].at_add;
        amount += priced->lines[k].amount;
    }

    fuzz_assert(items == priced->item_count);
    fuzz_assert(subtotal == priced->subtotal);
    fuzz_assert(amount == priced->amount);

done:

    for (i = 0; i < n; i++) {
        free(elements[i]->str);
        free(elements[i]);
    }

    ngx_destroy_pool(pool);

    return 0;
}
