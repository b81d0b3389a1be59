/*
 * Promotions: what an admin may create, validated (the model's types are
 * the engine's, ngx_http_cart_engine.h), how they are stored in Redis,
 * and the per-worker copy the cart views price with.
 *
 * Redis (all definitions share the hash tag {promo}, so the admin scripts
 * touch one slot; redemption counters have one tag per promotion):
 *
 *   promos:{promo}            hash  id -> the promotion's JSON document
 *   promo_codes:{promo}       hash  CODE -> id (codes are unique)
 *   promo_seq:{promo}         int   last id given
 *   promo_use:{promo-<id>}    hash  "n" -> redemptions, "u:<owner>" -> the
 *                                   owner's redemptions
 *   promo_ck:{promo-<id>}:<checkout_id>
 *                             string the owner; marks a checkout as counted
 *                             (cart_idempotency_ttl)
 */

#ifndef _NGX_HTTP_CART_PROMO_H_INCLUDED_
#define _NGX_HTTP_CART_PROMO_H_INCLUDED_


#include "ngx_http_cart.h"
#include "ngx_http_cart_json.h"
#include "ngx_http_cart_engine.h"   /* the model's types */


#define NGX_HTTP_CART_PROMOS_KEY       "promos:{promo}"
#define NGX_HTTP_CART_PROMO_CODES_KEY  "promo_codes:{promo}"
#define NGX_HTTP_CART_PROMO_SEQ_KEY    "promo_seq:{promo}"

#define NGX_HTTP_CART_MAX_CODE_LEN     32
#define NGX_HTTP_CART_MAX_PROMO_SKUS   100

/* how long a worker prices cart views with its copy of the promotions */
#define NGX_HTTP_CART_PROMOS_MAX_AGE   1000


/* one loaded copy of all promotions, shared by the requests pricing with it */
typedef struct {
    ngx_pool_t                    *pool;
    ngx_uint_t                     refs;
    ngx_msec_t                     loaded;
    ngx_http_cart_promo_t         *promos;      /* by seq */
    ngx_uint_t                     n;
} ngx_http_cart_promos_t;


/* a request's hold on a copy: rc NGX_OK with set, or the Redis failure */
typedef struct {
    ngx_http_cart_promos_t        *set;
    ngx_int_t                      rc;
} ngx_http_cart_promos_ref_t;


/*
 * A promotion from JSON: from an admin's body (stored = 0: no "id" or
 * "created_at" allowed) or from Redis (stored = 1). NGX_OK; NGX_DECLINED
 * for a missing, mistyped or unknown field (400); NGX_ERROR for a value
 * out of range or inconsistent (422); *msg says which.
 */
ngx_int_t ngx_http_cart_promo_parse(ngx_pool_t *pool, yajl_val v,
    ngx_uint_t stored, ngx_http_cart_promo_t *p, const char **msg);

/* the document as stored and shown, without "id" when it has none yet;
 * with "redemptions" unless that is -1 */
void ngx_http_cart_promo_render(yajl_gen g, ngx_http_cart_promo_t *p,
    int64_t redemptions);

/* CODE in upper case into dst (NGX_HTTP_CART_MAX_CODE_LEN bytes);
 * NGX_ERROR when it is not 1-32 of A-Z a-z 0-9 _ - */
ngx_int_t ngx_http_cart_promo_code(ngx_str_t *code, u_char *dst);

ngx_http_cart_promo_t *ngx_http_cart_promo_by_code(
    ngx_http_cart_promos_t *set, ngx_str_t *code);

/*
 * Takes a copy of the promotions for this request: the worker's copy
 * when it is younger than NGX_HTTP_CART_PROMOS_MAX_AGE and fresh is 0,
 * else a new one read from Redis; that read joins the request's wave
 * (ngx_http_cart_fetch_hold) and ref is filled when it is done. The copy
 * is released with the request.
 */
void ngx_http_cart_promos_load(ngx_http_request_t *r, ngx_uint_t fresh,
    ngx_http_cart_promos_ref_t *ref);

/*
 * The worker's copy as it is, however old, or NULL when it has none: for
 * a price computed at once, with no Redis read (a stream's event). Valid
 * until the worker's event loop runs again.
 */
ngx_http_cart_promos_t *ngx_http_cart_promos_worker(void);

/* the worker's copy is out of date (an admin changed promotions) */
void ngx_http_cart_promos_invalidate(void);

void ngx_http_cart_promos_exit(void);

/* "2026-03-14T10:00:00Z" -> time_t, NGX_ERROR for any other form (the
 * other way is ngx_http_cart_json_time) */
time_t ngx_http_cart_parse_time(u_char *p, size_t len);


#endif /* _NGX_HTTP_CART_PROMO_H_INCLUDED_ */
