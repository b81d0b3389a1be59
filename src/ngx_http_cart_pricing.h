/*
 * Pricing, as the cart view, coupons and checkout use it: a snapshot of
 * the cart (ngx_http_cart_snapshot.h), one parallel wave of upstream
 * lookups for it, the engine's prices (ngx_http_cart_engine.h) and the
 * view's JSON (ngx_http_cart_view.h).
 */

#ifndef _NGX_HTTP_CART_PRICING_H_INCLUDED_
#define _NGX_HTTP_CART_PRICING_H_INCLUDED_


#include "ngx_http_cart.h"
#include "ngx_http_cart_json.h"
#include "ngx_http_cart_redis.h"
#include "ngx_http_cart_promo.h"
#include "ngx_http_cart_engine.h"
#include "ngx_http_cart_snapshot.h"
#include "ngx_http_cart_view.h"


/* how a wave looks up */
#define NGX_HTTP_CART_PRICE_FRESH      1   /* promotions read from Redis */
#define NGX_HTTP_CART_PRICE_EXACT      2   /* the upstreams, never the cache
                                              (checkout); what they answer
                                              refreshes the cache */
#define NGX_HTTP_CART_PRICE_CATALOG    4   /* the catalog alone: no stock,
                                              shipping or promotions (an
                                              add, a shared cart) */


/*
 * One parallel wave: catalog, inventory and (with an address) shipping
 * subrequests for every line, and the promotions, all at once; a lookup
 * the location's cache answers is no subrequest. "resume" runs when all
 * are done (possibly before this returns).
 */
ngx_int_t ngx_http_cart_pricing_fetch(ngx_http_request_t *r,
    ngx_http_cart_snapshot_t *snap, ngx_uint_t flags,
    ngx_http_cart_resume_pt resume);

/* the facts of every line once the wave is done (decoded once), or NULL */
ngx_http_cart_facts_t *ngx_http_cart_pricing_facts(ngx_http_request_t *r,
    ngx_http_cart_snapshot_t *snap);

/* prices the snapshot with the coupon "coupon" (may be empty), now */
ngx_http_cart_priced_t *ngx_http_cart_price(ngx_http_request_t *r,
    ngx_http_cart_snapshot_t *snap, ngx_str_t *coupon);

/*
 * Prices the snapshot with its own coupon from what Redis holds alone, in
 * "pool", no upstream asked (a stream's event): every line's facts are
 * "could not be checked" for each upstream the location has, the
 * promotions are the worker's copy (none yet: "promotions_unavailable").
 */
ngx_http_cart_priced_t *ngx_http_cart_price_stored(ngx_http_request_t *r,
    ngx_pool_t *pool, ngx_http_cart_snapshot_t *snap);


#endif /* _NGX_HTTP_CART_PRICING_H_INCLUDED_ */
