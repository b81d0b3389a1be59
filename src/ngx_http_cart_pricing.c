/*
 * Pricing glue: the wave of lookups a snapshot needs, and its prices from
 * the engine, with the documents decoded once and the clock read here.
 * A lookup the location's cache answers (ngx_http_cart_cache.c) is no
 * subrequest; checkout asks the upstreams whatever is cached.
 */

#include "ngx_http_cart_pricing.h"
#include "ngx_http_cart_cache.h"
#include "ngx_http_cart_subrequest.h"


static ngx_http_cart_lookup_t *ngx_http_cart_pricing_start(
    ngx_http_request_t *r, ngx_http_cart_snapshot_t *snap, ngx_uint_t kind,
    ngx_http_complex_value_t *uri, ngx_uint_t flags);
static void ngx_http_cart_price_cached(ngx_http_request_t *r,
    ngx_pool_t *pool, ngx_http_cart_snapshot_t *snap, ngx_uint_t i,
    ngx_int_t *status, ngx_uint_t kind, ngx_uint_t asked);
static ngx_http_cart_priced_t *ngx_http_cart_price_with(ngx_pool_t *pool,
    ngx_http_cart_snapshot_t *snap, ngx_http_cart_promos_t *set,
    ngx_int_t promos_rc, ngx_str_t *coupon);


ngx_int_t
ngx_http_cart_pricing_fetch(ngx_http_request_t *r,
    ngx_http_cart_snapshot_t *snap, ngx_uint_t flags,
    ngx_http_cart_resume_pt resume)
{
    ngx_http_cart_loc_conf_t  *lcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_cart_module);

    if (snap->nlines
        && (lcf->catalog || lcf->inventory || lcf->shipping))
    {
        /* the cache's answers land here as the wave starts */
        snap->facts = ngx_pcalloc(r->pool, (snap->nlines + 1)
                                           * sizeof(ngx_http_cart_facts_t));
        if (snap->facts == NULL) {
            return NGX_ERROR;
        }
    }

    if (snap->nlines && lcf->catalog) {
        snap->catalog = ngx_http_cart_pricing_start(r, snap,
                                                  NGX_HTTP_CART_CACHE_CATALOG,
                                                  lcf->catalog, flags);
        if (snap->catalog == NULL) {
            return NGX_ERROR;
        }
    }

    if (flags & NGX_HTTP_CART_PRICE_CATALOG) {
        ngx_http_cart_fetch_wait(r, resume);
        return NGX_OK;
    }

    if (snap->nlines && lcf->inventory) {
        snap->inventory = ngx_http_cart_pricing_start(r, snap,
                                                NGX_HTTP_CART_CACHE_INVENTORY,
                                                lcf->inventory, flags);
        if (snap->inventory == NULL) {
            return NGX_ERROR;
        }
    }

    if (snap->nlines && lcf->shipping && snap->country.len) {
        ngx_http_cart_fetch_address(r, &snap->country, &snap->postal_code);

        snap->shipping = ngx_http_cart_pricing_start(r, snap,
                                                 NGX_HTTP_CART_CACHE_SHIPPING,
                                                 lcf->shipping, flags);
        if (snap->shipping == NULL) {
            return NGX_ERROR;
        }
    }

    if (snap->nlines || (flags & NGX_HTTP_CART_PRICE_FRESH)) {
        ngx_http_cart_promos_load(r, flags & NGX_HTTP_CART_PRICE_FRESH,
                                  &snap->promos);
    }

    ngx_http_cart_fetch_wait(r, resume);

    return NGX_OK;
}


/*
 * One upstream's lookups for every line: what the cache holds (unless
 * the answers must be exact) is in snap->facts at once, the rest is
 * asked, in one group (batched when the URI uses $cart_skus).
 */

static ngx_http_cart_lookup_t *
ngx_http_cart_pricing_start(ngx_http_request_t *r,
    ngx_http_cart_snapshot_t *snap, ngx_uint_t kind,
    ngx_http_complex_value_t *uri, ngx_uint_t flags)
{
    ngx_int_t                rc;
    ngx_uint_t               i, n;
    ngx_http_cart_fetch_t   *f;
    ngx_http_cart_lookup_t  *lk;

    lk = ngx_pcalloc(r->pool, snap->nlines * sizeof(ngx_http_cart_lookup_t));
    f = ngx_pcalloc(r->pool, snap->nlines * sizeof(ngx_http_cart_fetch_t));

    if (lk == NULL || f == NULL) {
        return NULL;
    }

    n = 0;

    for (i = 0; i < snap->nlines; i++) {

        if (!(flags & NGX_HTTP_CART_PRICE_EXACT)) {
            rc = ngx_http_cart_cache_get(r, r->pool, kind,
                                         &snap->lines[i].sku,
                                         &snap->country, &snap->postal_code,
                                         &snap->facts[i], &lk[i].hold);
            if (rc == NGX_OK) {
                continue;
            }
        }

        f[n].sku = snap->lines[i].sku;
        lk[i].fetch = &f[n++];
    }

    if (n && ngx_http_cart_fetch_start(r, uri, f, n) != NGX_OK) {
        return NULL;
    }

    return lk;
}


ngx_http_cart_facts_t *
ngx_http_cart_pricing_facts(ngx_http_request_t *r,
    ngx_http_cart_snapshot_t *snap)
{
    if (!snap->decoded && ngx_http_cart_snapshot_facts(r, snap) != NGX_OK) {
        return NULL;
    }

    return snap->facts;
}


ngx_http_cart_priced_t *
ngx_http_cart_price(ngx_http_request_t *r, ngx_http_cart_snapshot_t *snap,
    ngx_str_t *coupon)
{
    if (ngx_http_cart_pricing_facts(r, snap) == NULL) {
        return NULL;
    }

    return ngx_http_cart_price_with(r->pool, snap, snap->promos.set,
                                    snap->promos.rc, coupon);
}


/*
 * What Redis and the lookup caches hold: no upstream is asked. An answer
 * the location's cache has (fresh or stale, never refreshed from here) is
 * used as a view would; any other upstream the location has says "could
 * not be checked" (price_verified: false and its warning, stock_verified:
 * false, shipping_verified: false), with price_at_add as the price. The
 * promotions are the worker's copy.
 */

ngx_http_cart_priced_t *
ngx_http_cart_price_stored(ngx_http_request_t *r, ngx_pool_t *pool,
    ngx_http_cart_snapshot_t *snap)
{
    ngx_uint_t                 i;
    ngx_http_cart_facts_t     *f;
    ngx_http_cart_promos_t    *set;
    ngx_http_cart_loc_conf_t  *lcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_cart_module);

    snap->facts = ngx_pcalloc(pool, (snap->nlines + 1)
                                    * sizeof(ngx_http_cart_facts_t));
    if (snap->facts == NULL) {
        return NULL;
    }

    for (i = 0; i < snap->nlines; i++) {
        f = &snap->facts[i];

        ngx_http_cart_price_cached(r, pool, snap, i, &f->catalog,
                                   NGX_HTTP_CART_CACHE_CATALOG,
                                   lcf->catalog != NULL);
        ngx_http_cart_price_cached(r, pool, snap, i, &f->stock,
                                   NGX_HTTP_CART_CACHE_INVENTORY,
                                   lcf->inventory != NULL);
        ngx_http_cart_price_cached(r, pool, snap, i, &f->ship,
                                   NGX_HTTP_CART_CACHE_SHIPPING,
                                   lcf->shipping && snap->country.len);
    }

    snap->decoded = 1;

    set = ngx_http_cart_promos_worker();

    return ngx_http_cart_price_with(pool, snap, set,
                                    set ? NGX_OK : NGX_ERROR, &snap->coupon);
}


/* one line's answer of one upstream from the cache alone, into *status */

static void
ngx_http_cart_price_cached(ngx_http_request_t *r, ngx_pool_t *pool,
    ngx_http_cart_snapshot_t *snap, ngx_uint_t i, ngx_int_t *status,
    ngx_uint_t kind, ngx_uint_t asked)
{
    if (!asked) {
        *status = NGX_DONE;
        return;
    }

    if (ngx_http_cart_cache_get(r, pool, kind, &snap->lines[i].sku,
                                &snap->country, &snap->postal_code,
                                &snap->facts[i], NULL)
        != NGX_OK)
    {
        *status = NGX_ERROR;
    }
}


static ngx_http_cart_priced_t *
ngx_http_cart_price_with(ngx_pool_t *pool, ngx_http_cart_snapshot_t *snap,
    ngx_http_cart_promos_t *set, ngx_int_t promos_rc, ngx_str_t *coupon)
{
    ngx_http_cart_basket_t  basket;

    basket.lines = snap->lines;
    basket.facts = snap->facts;
    basket.nlines = snap->nlines;
    basket.promos_rc = set ? NGX_OK
                           : (promos_rc == NGX_DONE ? NGX_DONE : NGX_ERROR);
    basket.promos = set ? set->promos : NULL;
    basket.npromos = set ? set->n : 0;
    basket.excluded = snap->excluded;
    basket.nexcluded = snap->nexcluded;

    return ngx_http_cart_engine_price(pool, &basket, coupon, ngx_time());
}
