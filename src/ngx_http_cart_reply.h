/*
 * The response toolkit below the resources: JSON answers and errors,
 * Redis failures and write-script words turned into answers, request
 * headers, Redis key names and id validation.
 */

#ifndef _NGX_HTTP_CART_REPLY_H_INCLUDED_
#define _NGX_HTTP_CART_REPLY_H_INCLUDED_


#include "ngx_http_cart.h"
#include "ngx_http_cart_json.h"
#include "ngx_http_cart_redis.h"


/* an error answer: checks return one, or NULL when all is well */
typedef struct {
    ngx_uint_t                status;
    const char               *code;
    const char               *message;
} ngx_http_cart_answer_t;


extern const ngx_http_cart_answer_t  ngx_http_cart_internal;


/* version >= 0 adds the cart's ETag; both return the rc to finalize with */
ngx_int_t ngx_http_cart_send(ngx_http_request_t *r, ngx_uint_t status,
    ngx_http_cart_json_gen_t *json, int64_t version);
ngx_int_t ngx_http_cart_send_body(ngx_http_request_t *r, ngx_uint_t status,
    u_char *buf, size_t len, int64_t version);

/* {"error":{"code","message"}} */
ngx_int_t ngx_http_cart_error(ngx_http_request_t *r, ngx_uint_t status,
    const char *code, const char *message);
ngx_int_t ngx_http_cart_fail(ngx_http_request_t *r,
    const ngx_http_cart_answer_t *answer);

/*
 * Redis failed (rc != NGX_OK or an error reply): 503 with Retry-After,
 * store_unavailable, store_timeout (reads) or store_outcome_unknown
 * (writes that may have run). "write": the command can change what the
 * client asked to change; a read, or the reservation of an
 * Idempotency-Key, cannot.
 */
const ngx_http_cart_answer_t *ngx_http_cart_store_answer(
    ngx_http_request_t *r, redisReply *reply, ngx_int_t rc, ngx_uint_t write);
ngx_int_t ngx_http_cart_store_error(ngx_http_request_t *r, redisReply *reply,
    ngx_int_t rc);
ngx_int_t ngx_http_cart_store_write_error(ngx_http_request_t *r,
    redisReply *reply, ngx_int_t rc);

/*
 * The first word of a write script's answer, in "word". NULL when it is
 * not an error ("ok", a word of the resource's own, or "replay", which
 * sets Idempotent-Replayed); else the answer to fail with, from "answers"
 * (may be NULL), the shared ones of _lib.lua, or the 503 of a write when
 * Redis failed.
 */
const ngx_http_cart_answer_t *ngx_http_cart_script_answer(
    ngx_http_request_t *r, redisReply *reply, ngx_int_t rc,
    const ngx_http_cart_answer_t *answers, ngx_str_t *word);

/* the answer of a script's word: "answers" (may be NULL), then the
 * shared ones of _lib.lua; NULL when none */
const ngx_http_cart_answer_t *ngx_http_cart_answer_find(ngx_http_request_t *r,
    const ngx_http_cart_answer_t *answers, ngx_str_t *word);

/* Idempotent-Replayed: true, and the replay counted */
ngx_int_t ngx_http_cart_replayed(ngx_http_request_t *r);

#define ngx_http_cart_word_is(w, s)                                          \
    ((w)->len == sizeof(s) - 1                                                \
     && ngx_strncmp((w)->data, s, sizeof(s) - 1) == 0)

/* adds a response header; key and value must outlive the request */
ngx_table_elt_t *ngx_http_cart_header_out(ngx_http_request_t *r,
    const char *key, size_t klen, const char *value, size_t vlen);

#define ngx_http_cart_set_header(r, k, v)                                    \
    ngx_http_cart_header_out(r, k, sizeof(k) - 1, v, sizeof(v) - 1)

/* the value of request header "name" (lower case, len bytes), or NULL */
ngx_str_t *ngx_http_cart_header(ngx_http_request_t *r, const char *name,
    size_t len);

/* "prefix{owner}" or "prefix{owner}:suffix" in pool memory, or NULL */
ngx_str_t *ngx_http_cart_key(ngx_pool_t *pool, ngx_str_t *dst,
    const char *prefix, ngx_str_t *owner, ngx_str_t *suffix);

/* ids that become parts of Redis keys and lines: [A-Za-z0-9._:-]{1,max} */
ngx_int_t ngx_http_cart_valid_id(ngx_str_t *s, size_t max);


#endif /* _NGX_HTTP_CART_REPLY_H_INCLUDED_ */
