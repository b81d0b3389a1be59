/*
 * The snapshot decoder: a cart as read from Redis (the lines and meta
 * fields of its hash) and, once its wave is done, what the upstreams
 * answered for each line, as the engine's facts.
 */

#ifndef _NGX_HTTP_CART_SNAPSHOT_H_INCLUDED_
#define _NGX_HTTP_CART_SNAPSHOT_H_INCLUDED_


#include "ngx_http_cart.h"
#include "ngx_http_cart_redis.h"
#include "ngx_http_cart_promo.h"
#include "ngx_http_cart_engine.h"


/* a cart as read, and what its wave of lookups brought */
typedef struct {
    ngx_http_cart_line_t          *lines;
    ngx_uint_t                     nlines;
    int64_t                        version;
    ngx_str_t                      coupon;     /* "#c": the coupon code */
    ngx_str_t                      country;    /* "#a": "<country>|<postal>" */
    ngx_str_t                      postal_code;

    ngx_http_cart_fetch_t         *catalog;    /* NULL: not asked */
    ngx_http_cart_fetch_t         *inventory;
    ngx_http_cart_fetch_t         *shipping;
    ngx_http_cart_promos_ref_t     promos;

    ngx_http_cart_facts_t         *facts;      /* decoded once, or NULL */

    /* promotions checkout found exhausted: priced as if they were gone */
    ngx_http_cart_promo_t        **excluded;
    ngx_uint_t                     nexcluded;
} ngx_http_cart_snapshot_t;


/*
 * The cart from an HGETALL-shaped reply (field, value, ...) starting at
 * element "first". Meta fields ('#v', '#c', '#a') are read, unknown '#'
 * fields skipped, malformed lines logged and skipped.
 */
ngx_http_cart_snapshot_t *ngx_http_cart_snapshot(ngx_http_request_t *r,
    redisReply *reply, size_t first);

/*
 * The facts of every line from the documents of the snapshot's wave; a
 * document that cannot be used is logged. NULL when out of memory.
 */
ngx_http_cart_facts_t *ngx_http_cart_snapshot_facts(ngx_http_request_t *r,
    ngx_http_cart_snapshot_t *snap);

/* "qty|price|seller|added_at" (saved lines reuse it: price, saved_at) */
ngx_int_t ngx_http_cart_line_parse(ngx_str_t *value,
    ngx_http_cart_line_t *line);

/*
 * added_at in a line: unix seconds in base 36 ([0-9a-z], 6 characters
 * until 2038), as src/lua/_lib.lua stamp() writes it. Lines written before
 * hold decimal seconds: 9 characters or more are read as such. NGX_ERROR
 * if neither.
 */
time_t ngx_http_cart_line_time(u_char *p, size_t len);

/* writes t in base 36; at most NGX_HTTP_CART_STAMP_LEN characters */
u_char *ngx_http_cart_line_stamp(u_char *p, time_t t);

#define NGX_HTTP_CART_STAMP_LEN  13

/*
 * The catalog document of one fetch: NGX_OK with the product,
 * NGX_DECLINED when the catalog does not know the SKU (404),
 * NGX_ERROR when the catalog failed or answered something unusable.
 */
ngx_int_t ngx_http_cart_product(ngx_http_request_t *r,
    ngx_http_cart_fetch_t *f, ngx_http_cart_product_t *product);


#endif /* _NGX_HTTP_CART_SNAPSHOT_H_INCLUDED_ */
