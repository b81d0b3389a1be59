/*
 * Writes that price the cart before they change it (POST /coupons, POST
 * /checkout) and the meta writes (coupon removal, shipping address): their
 * scripts answer with a status word and, for a success, the response body
 * that an Idempotency-Key replays byte for byte.
 */

#ifndef _NGX_HTTP_CART_STORED_H_INCLUDED_
#define _NGX_HTTP_CART_STORED_H_INCLUDED_


#include "ngx_http_cart_reply.h"
#include "ngx_http_cart_pricing.h"


/* gets the cart (not called when the request was answered instead) */
typedef void (*ngx_http_cart_stored_pt)(ngx_http_request_t *r,
    ngx_http_cart_snapshot_t *snap);


/*
 * The first step of a write that prices the cart first: snapshot.lua,
 * which answers a replay or a conflict of the Idempotency-Key at once,
 * checks If-Match, reserves the key and reads the cart for "next".
 * ctx->fingerprint must be set. Returns NGX_DONE or the rc to finalize
 * with.
 */
ngx_int_t ngx_http_cart_stored_start(ngx_http_request_t *r,
    ngx_http_cart_stored_pt next);

/*
 * The first word of a write script's reply: NGX_OK with *word, or
 * NGX_DONE when the reply was a replay or a failure and has been answered
 * (the caller finalizes with *rc; a failure gives the key back). A replay
 * is answered with its stored body (element 4), or with "replay" when the
 * caller renders it itself.
 */
ngx_int_t ngx_http_cart_stored_word(ngx_http_request_t *r, redisReply *reply,
    ngx_int_t status, ngx_str_t *word, ngx_int_t *rc);

/* the answer a script's error word maps to */
const ngx_http_cart_answer_t *ngx_http_cart_stored_error(ngx_http_request_t *r,
    ngx_str_t *word);

/*
 * Reserves the Idempotency-Key (idem.lua reserve) before a write that asks
 * an upstream first, for cart_lookup_timeout plus
 * NGX_HTTP_CART_RESERVE_TRIPS times cart_redis_timeout (1 s at least);
 * "handler" gets the reply. Returns NGX_OK or NGX_ERROR.
 */
#define NGX_HTTP_CART_RESERVE_TRIPS  4

ngx_int_t ngx_http_cart_stored_reserve(ngx_http_request_t *r,
    ngx_http_cart_redis_handler_pt handler);

/*
 * A reservation (idem.lua reserve, snapshot.lua) that got no reply: the
 * write behind it was not sent, so a reservation that may have gone
 * through is given back. Returns the rc to finalize with.
 */
ngx_int_t ngx_http_cart_stored_reserve_error(ngx_http_request_t *r,
    redisReply *reply, ngx_int_t rc);

/* an error after the Idempotency-Key was reserved: the key is given back */
ngx_int_t ngx_http_cart_stored_fail(ngx_http_request_t *r,
    const ngx_http_cart_answer_t *answer);
void ngx_http_cart_stored_release(ngx_http_request_t *r);

/* the body a script stored (element 4) with "status", version element 2
 * (-1: no ETag) */
ngx_int_t ngx_http_cart_stored_send(ngx_http_request_t *r, redisReply *reply,
    ngx_uint_t status, ngx_uint_t replay);


#endif /* _NGX_HTTP_CART_STORED_H_INCLUDED_ */
