/*
 * The Redis Lua scripts: SHA1s computed once at configuration time,
 * EVALSHA on the hot path, EVAL once when Redis lost its script cache
 * (restart, SCRIPT FLUSH), which also loads the script again.
 */

#ifndef _NGX_HTTP_CART_SCRIPTS_H_INCLUDED_
#define _NGX_HTTP_CART_SCRIPTS_H_INCLUDED_


#include "ngx_http_cart_redis.h"


typedef enum {
    NGX_HTTP_CART_SCRIPT_ADD = 0,
    NGX_HTTP_CART_SCRIPT_SET,
    NGX_HTTP_CART_SCRIPT_IDEM,
    NGX_HTTP_CART_SCRIPT_MERGE_CLAIM,
    NGX_HTTP_CART_SCRIPT_APPLY,
    NGX_HTTP_CART_SCRIPT_SAVE,
    NGX_HTTP_CART_SCRIPT_SAVED_MOVE,
    NGX_HTTP_CART_SCRIPT_SAVED_DROP,
    NGX_HTTP_CART_SCRIPT_SNAPSHOT,
    NGX_HTTP_CART_SCRIPT_META,
    NGX_HTTP_CART_SCRIPT_CHECKOUT,
    NGX_HTTP_CART_SCRIPT_REDEEM,
    NGX_HTTP_CART_SCRIPT_PROMO,
    NGX_HTTP_CART_SCRIPT_STREAM,
    NGX_HTTP_CART_SCRIPT_N
} ngx_http_cart_script_e;


ngx_int_t ngx_http_cart_scripts_init(ngx_conf_t *cf);
ngx_http_cart_redis_script_t *ngx_http_cart_scripts(ngx_uint_t *n);

/*
 * Runs a write script on the cart in ctx: the KEYS and ARGV prefix of
 * src/lua/_lib.lua are filled from ctx, "args" follow.
 */
ngx_int_t ngx_http_cart_script_write(ngx_http_request_t *r,
    ngx_http_cart_script_e script, ngx_str_t *args, ngx_uint_t nargs,
    ngx_http_cart_redis_handler_pt handler);

/* the same with the script's own keys after those (at most
 * NGX_HTTP_CART_SCRIPT_MAX_OWN, all in the cart's hash tag); _lib.lua's
 * own_key(n) finds them */
#define NGX_HTTP_CART_SCRIPT_MAX_OWN  2

ngx_int_t ngx_http_cart_script_write_keys(ngx_http_request_t *r,
    ngx_http_cart_script_e script, ngx_str_t *own, ngx_uint_t nown,
    ngx_str_t *args, ngx_uint_t nargs, ngx_http_cart_redis_handler_pt handler);

/* the same, with data for the handler */
ngx_int_t ngx_http_cart_script_write_data(ngx_http_request_t *r,
    ngx_http_cart_script_e script, ngx_str_t *args, ngx_uint_t nargs,
    ngx_http_cart_redis_handler_pt handler, void *data);

/* any script with exactly these KEYS and ARGV; keys[0] routes the command */
ngx_int_t ngx_http_cart_script_run(ngx_http_request_t *r,
    ngx_http_cart_script_e script, ngx_str_t *keys, ngx_uint_t nkeys,
    ngx_str_t *args, ngx_uint_t nargs, ngx_http_cart_redis_handler_pt handler,
    void *data);

/* the same in the pool and with the request cleanup of a long-lived
 * request (ngx_http_cart_redis_command_in()): the pool may be freed
 * once the handler is called */
ngx_int_t ngx_http_cart_script_run_in(ngx_http_request_t *r,
    ngx_pool_t *pool, ngx_http_cleanup_t *cln, ngx_http_cart_script_e script,
    ngx_str_t *keys, ngx_uint_t nkeys, ngx_str_t *args, ngx_uint_t nargs,
    ngx_http_cart_redis_handler_pt handler, void *data);

/* element i of an array reply, as a string / an integer */
ngx_int_t ngx_http_cart_reply_str(redisReply *reply, size_t i, ngx_str_t *s);
ngx_int_t ngx_http_cart_reply_int(redisReply *reply, size_t i, int64_t *n);


#endif /* _NGX_HTTP_CART_SCRIPTS_H_INCLUDED_ */
