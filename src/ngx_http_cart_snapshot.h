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
#include "ngx_http_cart_cache.h"


/* one line's lookup of one upstream in a wave */
typedef struct {
    ngx_http_cart_fetch_t         *fetch;      /* NULL: the cache answered */
    ngx_http_cart_cache_hold_t    *hold;       /* this request refreshes
                                                  the cached answer */
} ngx_http_cart_lookup_t;


/* a cart as read, and what its wave of lookups brought */
typedef struct {
    ngx_http_cart_line_t          *lines;
    ngx_uint_t                     nlines;
    int64_t                        version;
    ngx_str_t                      coupon;     /* "#c": the coupon code */
    ngx_str_t                      country;    /* "#a": "<country>|<postal>" */
    ngx_str_t                      postal_code;

    /* one per line; NULL: not asked */
    ngx_http_cart_lookup_t        *catalog;
    ngx_http_cart_lookup_t        *inventory;
    ngx_http_cart_lookup_t        *shipping;
    ngx_http_cart_promos_ref_t     promos;

    /* one per line: the cache's answers when the wave starts, the
     * upstreams' documents decoded once it is done */
    ngx_http_cart_facts_t         *facts;
    unsigned                       decoded:1;

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

/* the same in another pool than the request's (a stream's event) */
ngx_http_cart_snapshot_t *ngx_http_cart_snapshot_in(ngx_http_request_t *r,
    ngx_pool_t *pool, redisReply *reply, size_t first);

/* a snapshot of these lines alone (an add, a shared cart), or NULL */
ngx_http_cart_snapshot_t *ngx_http_cart_snapshot_lines(ngx_http_request_t *r,
    ngx_http_cart_line_t *lines, ngx_uint_t n);

/*
 * The facts of every line from the documents of the snapshot's wave (a
 * document that cannot be used is logged), or from the cache; what the
 * upstreams answered goes into the location's caches. NGX_ERROR when out
 * of memory.
 */
ngx_int_t ngx_http_cart_snapshot_facts(ngx_http_request_t *r,
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


#endif /* _NGX_HTTP_CART_SNAPSHOT_H_INCLUDED_ */
