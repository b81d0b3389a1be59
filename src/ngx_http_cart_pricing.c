/*
 * Pricing glue: the wave of lookups a snapshot needs, and its prices from
 * the engine, with the documents decoded once and the clock read here.
 */

#include "ngx_http_cart_pricing.h"
#include "ngx_http_cart_subrequest.h"


static ngx_http_cart_fetch_t *ngx_http_cart_pricing_start(
    ngx_http_request_t *r, ngx_http_cart_snapshot_t *snap,
    ngx_http_complex_value_t *uri);


ngx_int_t
ngx_http_cart_pricing_fetch(ngx_http_request_t *r,
    ngx_http_cart_snapshot_t *snap, ngx_uint_t flags,
    ngx_http_cart_resume_pt resume)
{
    ngx_http_cart_loc_conf_t  *lcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_cart_module);

    if (snap->nlines && lcf->catalog) {
        snap->catalog = ngx_http_cart_pricing_start(r, snap, lcf->catalog);
        if (snap->catalog == NULL) {
            return NGX_ERROR;
        }
    }

    if (snap->nlines && lcf->inventory) {
        snap->inventory = ngx_http_cart_pricing_start(r, snap,
                                                      lcf->inventory);
        if (snap->inventory == NULL) {
            return NGX_ERROR;
        }
    }

    if (snap->nlines && lcf->shipping && snap->country.len) {
        ngx_http_cart_fetch_address(r, &snap->country, &snap->postal_code);

        snap->shipping = ngx_http_cart_pricing_start(r, snap, lcf->shipping);
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


static ngx_http_cart_fetch_t *
ngx_http_cart_pricing_start(ngx_http_request_t *r,
    ngx_http_cart_snapshot_t *snap, ngx_http_complex_value_t *uri)
{
    ngx_uint_t              i;
    ngx_http_cart_fetch_t  *f;

    f = ngx_pcalloc(r->pool, snap->nlines * sizeof(ngx_http_cart_fetch_t));
    if (f == NULL) {
        return NULL;
    }

    for (i = 0; i < snap->nlines; i++) {
        f[i].sku = snap->lines[i].sku;
    }

    if (ngx_http_cart_fetch_start(r, uri, f, snap->nlines) != NGX_OK) {
        return NULL;
    }

    return f;
}


ngx_http_cart_priced_t *
ngx_http_cart_price(ngx_http_request_t *r, ngx_http_cart_snapshot_t *snap,
    ngx_str_t *coupon)
{
    ngx_http_cart_promos_t  *set;
    ngx_http_cart_basket_t   basket;

    if (snap->facts == NULL) {
        snap->facts = ngx_http_cart_snapshot_facts(r, snap);
        if (snap->facts == NULL) {
            return NULL;
        }
    }

    set = snap->promos.set;

    basket.lines = snap->lines;
    basket.facts = snap->facts;
    basket.nlines = snap->nlines;
    basket.promos_rc = set ? NGX_OK
                           : (snap->promos.rc == NGX_DONE ? NGX_DONE
                                                          : NGX_ERROR);
    basket.promos = set ? set->promos : NULL;
    basket.npromos = set ? set->n : 0;
    basket.excluded = snap->excluded;
    basket.nexcluded = snap->nexcluded;

    return ngx_http_cart_engine_price(r->pool, &basket, coupon, ngx_time());
}
