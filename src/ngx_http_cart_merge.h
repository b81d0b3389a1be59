/*
 * POST /merge: a signed-in user takes over their own guest cart, exactly
 * once, in three steps across two Redis slots (see ngx_http_cart_merge.c).
 * Also the caller side of src/lua/apply.lua, which POST /shared/{t}/copy
 * uses too.
 */

#ifndef _NGX_HTTP_CART_MERGE_H_INCLUDED_
#define _NGX_HTTP_CART_MERGE_H_INCLUDED_


#include "ngx_http_cart.h"
#include "ngx_http_cart_json.h"
#include "ngx_http_cart_redis.h"


/* a line capped by cart_max_quantity or left out (quantity 0) */
typedef struct {
    ngx_str_t         sku;
    int64_t           requested;
    int64_t           quantity;
    ngx_str_t         reason;     /* quantity_capped, line_limit, ... */
} ngx_http_cart_adjusted_t;


/* a line as apply.lua left it */
typedef struct {
    ngx_str_t         sku;
    int64_t           qty;
    int64_t           price;      /* -1 unknown */
    ngx_str_t         seller;
} ngx_http_cart_applied_line_t;


/* apply.lua's answer, copied into the pool */
typedef struct {
    ngx_str_t         word;       /* ok, replay, done */
    int64_t           version;
    int64_t           count;
    int64_t           applied;
    int64_t           conflicts;
    ngx_array_t      *adjusted;   /* of ngx_http_cart_adjusted_t */
    ngx_array_t      *lines;      /* of ngx_http_cart_applied_line_t */
} ngx_http_cart_apply_answer_t;


ngx_int_t ngx_http_cart_merge(ngx_http_request_t *r);

/*
 * Runs apply.lua on the cart in ctx: "lines" holds n pairs of sku and
 * "qty|price|seller|added_at"; "marker" (merges only) may be NULL; "check"
 * only checks Idempotency-Key and If-Match.
 */
ngx_int_t ngx_http_cart_apply(ngx_http_request_t *r, ngx_uint_t check,
    const char *strategy, ngx_str_t *marker, ngx_str_t *lines, ngx_uint_t n,
    ngx_http_cart_redis_handler_pt handler);

/* adds apply.lua's answer to "a" (its arrays created when NULL) */
ngx_int_t ngx_http_cart_applied(ngx_http_request_t *r, redisReply *reply,
    ngx_http_cart_apply_answer_t *a);

/* sends the answer of a merge (merge: 1) or of a copy */
ngx_int_t ngx_http_cart_applied_send(ngx_http_request_t *r,
    ngx_http_cart_apply_answer_t *a, ngx_uint_t merge);


#endif /* _NGX_HTTP_CART_MERGE_H_INCLUDED_ */
