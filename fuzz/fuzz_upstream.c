/*
 * The upstream documents (src/ngx_http_cart_snapshot.c: the catalog's,
 * the inventory's and the shipping service's, per SKU or in batch answers,
 * read by src/ngx_http_cart_subrequest.c's ngx_http_cart_fetch_doc()),
 * through ngx_http_cart_snapshot_facts() as a priced view reads them once
 * the wave of subrequests is done. The file of the subrequest layer is
 * included for its private batch type.
 *
 * Input: an optional first line "@<lines> [batch] [<status>]", then the
 * documents: per SKU, separated by lines "--", the i-th line's fetch gets
 * the document i modulo their number; with "batch", the whole rest is
 * the one answer of a batch upstream (fetches in batches of 50, as
 * ngx_http_cart_fetch_batch() makes them). The SKUs are SKU-1 .. SKU-<n>
 * (1 to 120, default 1), their lines 1 or 2 of a price at add of 19.99
 * or none; <status> is the upstream's (default 200).
 * Each document is read as a catalog, an inventory and a shipping one.
 *
 * The facts are then priced (ngx_http_cart_price(), the engine), as the
 * priced view does with them.
 *
 * Checks: what a document gives is within what the engine is promised: a
 * price and a shipping cost of 0 .. NGX_HTTP_CART_MAX_AMOUNT, a seller id
 * that is a valid id, available >= 0, 0 <= min_days <= max_days <= 366;
 * the priced cart's sellers add up to its totals.
 */

#include "fuzz.h"
#include "../src/ngx_http_cart_subrequest.c"
#include "ngx_http_cart_snapshot.h"
#include "ngx_http_cart_reply.h"
#include "ngx_http_cart_pricing.h"


#define FUZZ_MAX_LINES  120


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char                    *p, *last, *nl, *start;
    size_t                     ndocs;
    ngx_int_t                  status;
    ngx_str_t                  docs[FUZZ_MAX_LINES], body, line;
    ngx_uint_t                 i, n, batch, k;
    ngx_pool_t                *pool;
    ngx_http_request_t        *r;
    ngx_http_cart_line_t      *lines;
    ngx_http_cart_facts_t     *facts, *f;
    ngx_http_cart_lookup_t    *lookups;
    ngx_http_cart_fetch_t     *fetches;
    ngx_http_cart_batch_t     *b;
    ngx_http_cart_group_t      sum;
    ngx_http_cart_priced_t    *priced;
    ngx_http_cart_snapshot_t  *snap;

    fuzz_init();

    pool = fuzz_pool();
    r = fuzz_request(pool);

    p = fuzz_copy(pool, data, size);
    last = p + size;

    n = 1;
    batch = 0;
    status = NGX_HTTP_OK;

    if (p < last && *p == '@') {
        nl = ngx_strlchr(p, last, '\n');
        if (nl == NULL) {
            nl = last;
        }

        start = ++p;
        while (p < nl && *p >= '0' && *p <= '9') {
            p++;
        }

        if (p > start && p - start <= 3) {
            n = ngx_atoi(start, p - start);
            n = ngx_max(n, 1);
            n = ngx_min(n, FUZZ_MAX_LINES);
        }

        batch = ngx_strlcasestrn(start, nl, (u_char *) "batch", 4) != NULL;

        for ( /* void */ ; p + 3 <= nl; p++) {
            if (p[0] >= '0' && p[0] <= '9' && p[1] >= '0' && p[1] <= '9'
                && p[2] >= '0' && p[2] <= '9'
                && (p + 3 == nl || p[3] == ' ') && p[-1] == ' ')
            {
                status = ngx_atoi(p, 3);
                break;
            }
        }

        p = nl < last ? nl + 1 : last;
    }

    /* the documents, each in an allocation of its own */

    ndocs = 0;

    if (batch) {
        docs[ndocs].len = last - p;
        docs[ndocs].data = fuzz_copy(pool, p, last - p);
        ndocs++;

    } else {
        for (start = p; ndocs < FUZZ_MAX_LINES; start = nl + 4) {
            nl = start;

            for ( ;; ) {
                nl = ngx_strlchr(nl, last, '\n');

                if (nl == NULL || (last - nl >= 4 && nl[1] == '-'
                                   && nl[2] == '-' && nl[3] == '\n'))
                {
                    break;
                }

                nl++;
            }

            if (nl == NULL) {
                nl = last;
            }

            docs[ndocs].len = nl - start;
            docs[ndocs].data = fuzz_copy(pool, start, nl - start);
            ndocs++;

            if (nl == last || last - nl < 4) {
                break;
            }
        }
    }

    /* a snapshot of n lines whose wave got those documents */

    snap = ngx_pcalloc(pool, sizeof(ngx_http_cart_snapshot_t));
    lines = ngx_pcalloc(pool, n * sizeof(ngx_http_cart_line_t));
    fetches = ngx_pcalloc(pool, n * sizeof(ngx_http_cart_fetch_t));
    fuzz_assert(snap != NULL && lines != NULL && fetches != NULL);

    for (i = 0; i < n; i++) {
        lines[i].sku.data = ngx_pnalloc(pool, sizeof("SKU-120") - 1);
        fuzz_assert(lines[i].sku.data != NULL);
        lines[i].sku.len = ngx_sprintf(lines[i].sku.data, "SKU-%ui", i + 1)
                           - lines[i].sku.data;

        /* a line as Redis has it: one of each 3 unpriced, sellers s-0..2
         * or none (the seller the client gave, if any) */
        line.data = ngx_pnalloc(pool, sizeof("2|1999|s-0|t5k2q1"));
        fuzz_assert(line.data != NULL);
        line.len = ngx_sprintf(line.data, i % 4 ? "%ui|%s|s-%ui|t5k2q1"
                                                : "%ui|%s||t5k2q1",
                               i % 2 + 1, i % 3 ? "1999" : "", i % 3)
                   - line.data;

        fuzz_assert(ngx_http_cart_line_parse(&line, &lines[i]) == NGX_OK);

        fetches[i].sku = lines[i].sku;
        fetches[i].status = status;
        fetches[i].done = 1;
        fetches[i].body = docs[batch ? 0 : i % ndocs];
    }

    if (batch) {
        for (i = 0; i < n; i += k) {
            k = ngx_min(n - i, NGX_HTTP_CART_BATCH_MAX);

            b = ngx_pcalloc(pool, sizeof(ngx_http_cart_batch_t));
            fuzz_assert(b != NULL);

            b->fetches = &fetches[i];
            b->n = k;
            b->done = 1;

            while (k--) {
                fetches[i + k].batch = b;
            }

            k = b->n;
        }
    }

    snap->lines = lines;
    snap->nlines = n;
    snap->promos.rc = NGX_DONE;

    /* one wave's answers read as each kind of document */
    lookups = ngx_pcalloc(r->pool, (n + 1) * sizeof(ngx_http_cart_lookup_t));
    fuzz_assert(lookups != NULL);

    for (i = 0; i < n; i++) {
        lookups[i].fetch = &fetches[i];
    }

    snap->catalog = lookups;
    snap->inventory = lookups;
    snap->shipping = lookups;

    fuzz_assert(ngx_http_cart_snapshot_facts(r, snap) == NGX_OK);
    facts = snap->facts;

    for (i = 0; i < n; i++) {
        f = &facts[i];

        fuzz_assert(f->catalog == NGX_OK || f->catalog == NGX_DECLINED
                    || f->catalog == NGX_ERROR);
        fuzz_assert(f->stock == NGX_OK || f->stock == NGX_ERROR);
        fuzz_assert(f->ship == NGX_OK || f->ship == NGX_DECLINED
                    || f->ship == NGX_ERROR);

        if (f->catalog == NGX_OK) {
            fuzz_assert(f->product.price >= 0
                        && f->product.price <= NGX_HTTP_CART_MAX_AMOUNT);
            fuzz_touch(f->product.name.data, f->product.name.len);
            fuzz_touch(f->product.image.data, f->product.image.len);

            body = f->product.seller;
            fuzz_assert(body.len == 0
                        || ngx_http_cart_valid_id(&body,
                                                  NGX_HTTP_CART_MAX_SKU_LEN)
                           == NGX_OK);
        }

        if (f->stock == NGX_OK) {
            fuzz_assert(f->available >= 0);
        }

        if (f->ship == NGX_OK) {
            fuzz_assert(f->ship_cost >= 0
                        && f->ship_cost <= NGX_HTTP_CART_MAX_AMOUNT);
            fuzz_assert(f->min_days >= 0 && f->min_days <= f->max_days
                        && f->max_days <= 366);
        }

        if (status == NGX_HTTP_NOT_FOUND) {
            fuzz_assert(f->catalog == NGX_DECLINED && f->available == 0);
        }
    }

    ngx_str_null(&body);

    priced = ngx_http_cart_price(r, snap, &body);
    fuzz_assert(priced != NULL && priced->nlines == n);

    ngx_memzero(&sum, sizeof(ngx_http_cart_group_t));

    for (i = 0; i < priced->ngroups; i++) {
        fuzz_touch(priced->groups[i].seller.data, priced->groups[i].seller.len);
        sum.items += priced->groups[i].items;
        sum.amount += priced->groups[i].amount;
        sum.shipping += priced->groups[i].shipping;
    }

    fuzz_assert(sum.items == priced->item_count);
    fuzz_assert(sum.amount == priced->amount);
    fuzz_assert(sum.shipping == priced->shipping);

    ngx_destroy_pool(pool);

    return 0;
}
