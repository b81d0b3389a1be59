/*
 * The lookup caches: what the catalog, inventory and shipping upstreams
 * answered, as the engine's facts (parsed, checked, money in minor units),
 * in a shared memory zone of every worker (an rbtree by key and an LRU
 * queue, as ngx_http_limit_req_module keeps its states), so that a cart
 * view asks an upstream about a SKU once per "valid" instead of once per
 * view. Negative answers (404) are kept, failures never. An entry past
 * "valid" is still served for "stale" more while one request, in any
 * worker, refreshes it.
 */

#ifndef _NGX_HTTP_CART_CACHE_H_INCLUDED_
#define _NGX_HTTP_CART_CACHE_H_INCLUDED_


#include "ngx_http_cart.h"
#include "ngx_http_cart_engine.h"


/* what an entry holds: the answer of one upstream */
typedef enum {
    NGX_HTTP_CART_CACHE_CATALOG = 0,   /* product; NGX_DECLINED: not sold */
    NGX_HTTP_CART_CACHE_INVENTORY,     /* available (a 404 is 0) */
    NGX_HTTP_CART_CACHE_SHIPPING       /* cost, days; NGX_DECLINED: not
                                          shipped there */
} ngx_http_cart_cache_kind_e;


/* a refresh this request makes: given back when it stores its answer,
 * fails, or the request goes away */
typedef struct ngx_http_cart_cache_hold_s  ngx_http_cart_cache_hold_t;


/* cart_catalog_cache, cart_inventory_cache, cart_shipping_cache */
char *ngx_http_cart_cache_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);

/* the location's cache of "kind", or NULL */
ngx_http_cart_cache_conf_t *ngx_http_cart_cache_conf(ngx_http_request_t *r,
    ngx_uint_t kind);

/*
 * The answer of "kind" about sku (and, for shipping, the destination),
 * from the cache into facts (its status field and values of that kind;
 * strings in pool): NGX_OK when the entry is fresh, or stale while another
 * request refreshes it; NGX_AGAIN when it is stale and this request is to
 * refresh it (*hold is set: ngx_http_cart_cache_put() gives it back);
 * NGX_DECLINED when there is no entry, or too old a one: ask the upstream.
 * A NULL hold only reads: a stale entry is NGX_OK, never refreshed here.
 */
ngx_int_t ngx_http_cart_cache_get(ngx_http_request_t *r, ngx_pool_t *pool,
    ngx_uint_t kind, ngx_str_t *sku, ngx_str_t *country,
    ngx_str_t *postal_code, ngx_http_cart_facts_t *facts,
    ngx_http_cart_cache_hold_t **hold);

/*
 * What the upstream answered, decoded into facts: kept when its status
 * is NGX_OK or NGX_DECLINED, not when the lookup failed (NGX_ERROR), in
 * which case an entry there was stays as it is. hold (may be NULL) is
 * given back either way.
 */
void ngx_http_cart_cache_put(ngx_http_request_t *r, ngx_uint_t kind,
    ngx_str_t *sku, ngx_str_t *country, ngx_str_t *postal_code,
    ngx_http_cart_facts_t *facts, ngx_http_cart_cache_hold_t *hold);


#endif /* _NGX_HTTP_CART_CACHE_H_INCLUDED_ */
