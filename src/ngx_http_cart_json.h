/*
 * JSON with yajl: the tree parser for request and upstream bodies, the
 * generator (allocating from the request pool) for responses, and exact
 * money (integer minor units, printed with two decimals).
 */

#ifndef _NGX_HTTP_CART_JSON_H_INCLUDED_
#define _NGX_HTTP_CART_JSON_H_INCLUDED_


#include "ngx_http_cart.h"
#include <yajl/yajl_tree.h>
#include <yajl/yajl_gen.h>


/* largest amount accepted, in minor units: keeps every sum far from overflow */
#define NGX_HTTP_CART_MAX_AMOUNT  100000000000LL


/* a generator and the text it prints, in a pool buffer */
typedef struct {
    yajl_gen                     g;
    ngx_pool_t                  *pool;
    u_char                      *start;
    u_char                      *pos;
    u_char                      *end;
    ngx_uint_t                   failed;    /* out of memory: text cut */
} ngx_http_cart_json_gen_t;


yajl_val ngx_http_cart_json_parse(ngx_pool_t *pool, u_char *data, size_t len);
yajl_val ngx_http_cart_json_field(yajl_val object, const char *name);

/* NGX_OK; NGX_DECLINED when the type is wrong; NGX_ABORT when out of range */
ngx_int_t ngx_http_cart_json_integer(yajl_val v, int64_t *n);
ngx_int_t ngx_http_cart_json_money(yajl_val v, int64_t *minor);

ngx_http_cart_json_gen_t *ngx_http_cart_json_gen(ngx_pool_t *pool);
/* the text printed so far; NGX_ERROR when the pool ran out on the way */
ngx_int_t ngx_http_cart_json_text(ngx_http_cart_json_gen_t *json,
    ngx_str_t *text);
/* starts a new text in the same buffer */
void ngx_http_cart_json_reset(ngx_http_cart_json_gen_t *json);
void ngx_http_cart_json_str(yajl_gen g, ngx_str_t *s);
void ngx_http_cart_json_int(yajl_gen g, int64_t n);
void ngx_http_cart_json_amount(yajl_gen g, int64_t minor);
void ngx_http_cart_json_time(yajl_gen g, time_t t);
void ngx_http_cart_json_day(yajl_gen g, time_t t);

#define ngx_http_cart_json_key(g, k)                                          \
    yajl_gen_string(g, (const unsigned char *) k, sizeof(k) - 1)


#endif /* _NGX_HTTP_CART_JSON_H_INCLUDED_ */
