/*
 * Redis on nginx's event loop: per-worker nodes, each with a pool of
 * pipelined hiredis connections wrapped in ngx_connection_t; one node, or
 * with cart_redis_cluster the masters of a Redis Cluster, routed by slot.
 *
 * Callers hand in a command and get exactly one call of their handler,
 * never once the request it belongs to has been freed. Its rc says what
 * became of the command:
 *
 *   NGX_OK        the reply (an error reply too)
 *   NGX_ERROR     it did not run and will not: never written (no ready
 *                 connection, cart_redis_max_pending, the connection broke
 *                 first) or refused before running (TRYAGAIN, CLUSTERDOWN,
 *                 a redirection that could not be followed)
 *   NGX_AGAIN     sent, no reply within cart_redis_timeout: it may run
 *   NGX_DECLINED  written, then the connection broke: it may have run
 *
 * Only the reply type of hiredis (redisReply) crosses this header; the
 * async API stays inside the Redis layer (ngx_http_cart_redis_int.h).
 */

#ifndef _NGX_HTTP_CART_REDIS_H_INCLUDED_
#define _NGX_HTTP_CART_REDIS_H_INCLUDED_


#include "ngx_http_cart.h"
#include <hiredis/hiredis.h>


typedef void (*ngx_http_cart_redis_handler_pt)(ngx_http_request_t *r,
    void *data, redisReply *reply, ngx_int_t rc);


typedef struct {
    const char       *data;
    size_t            len;
} ngx_http_cart_redis_script_t;


ngx_int_t ngx_http_cart_redis_parse_url(ngx_conf_t *cf, ngx_str_t *url,
    ngx_http_cart_redis_node_conf_t *node);

ngx_int_t ngx_http_cart_redis_init_worker(ngx_cycle_t *cycle,
    ngx_http_cart_main_conf_t *cmcf, ngx_http_cart_redis_script_t *scripts,
    ngx_uint_t nscripts);
void ngx_http_cart_redis_exit_worker(ngx_http_cart_main_conf_t *cmcf);

/*
 * Sends one command. "key" is the key the command works on: in a cluster
 * its slot decides the node, and all keys of the command must share it.
 * The command is written out in RESP into the request's pool before this
 * returns (a MOVED or ASK resends those bytes), so stack arrays are fine;
 * a caller that may resend with other arguments (the scripts layer, on
 * NOSCRIPT) keeps its own.
 */
ngx_int_t ngx_http_cart_redis_command(ngx_http_request_t *r, ngx_str_t *key,
    int argc, const char **argv, const size_t *argvlen,
    ngx_http_cart_redis_handler_pt handler, void *data);

/*
 * The same for a request that lives long and sends a command now and then
 * (a stream): the command is written into "pool", which must live until
 * the handler is called, and "cln", a cleanup of the request made once
 * (its handler NULL while none of its commands is in flight), is used
 * instead of a new one: the request's pool does not grow by a command.
 */
ngx_int_t ngx_http_cart_redis_command_in(ngx_http_request_t *r,
    ngx_pool_t *pool, ngx_http_cleanup_t *cln, ngx_str_t *key, int argc,
    const char **argv, const size_t *argvlen,
    ngx_http_cart_redis_handler_pt handler, void *data);

/* a one-key read such as "GET key" or "HGETALL key", routed by the key */
ngx_int_t ngx_http_cart_redis_read(ngx_http_request_t *r, const char *cmd,
    ngx_str_t *key, ngx_http_cart_redis_handler_pt handler, void *data);


/*
 * Pub/sub: one subscriber connection per worker, started by the first
 * call of ngx_http_cart_redis_subscriber() (NGX_OK: connected now,
 * NGX_AGAIN: connecting). Its handler hears, with the worker's data:
 *
 *   SUB_UP            connected (again): subscribe to what you follow
 *   SUB_DOWN          the connection is gone, and every subscription with
 *                     it; it reconnects with backoff (no command here)
 *   SUB_SUBSCRIBED    "channel": SUBSCRIBE is confirmed, messages flow
 *   SUB_UNSUBSCRIBED  "channel": UNSUBSCRIBE is confirmed
 *   SUB_MESSAGE       "message" was published on "channel"
 *
 * ngx_http_cart_redis_subscribe() sends SUBSCRIBE (on) or UNSUBSCRIBE:
 * NGX_OK, NGX_DECLINED when the subscriber is not connected (SUB_UP will
 * come), NGX_ERROR.
 */

typedef enum {
    NGX_HTTP_CART_REDIS_SUB_UP = 0,
    NGX_HTTP_CART_REDIS_SUB_DOWN,
    NGX_HTTP_CART_REDIS_SUB_SUBSCRIBED,
    NGX_HTTP_CART_REDIS_SUB_UNSUBSCRIBED,
    NGX_HTTP_CART_REDIS_SUB_MESSAGE
} ngx_http_cart_redis_sub_event_e;

typedef void (*ngx_http_cart_redis_sub_pt)(void *data, ngx_uint_t event,
    ngx_str_t *channel, ngx_str_t *message);

ngx_int_t ngx_http_cart_redis_subscriber(ngx_http_cart_redis_t *redis,
    ngx_http_cart_redis_sub_pt handler, void *data);
ngx_int_t ngx_http_cart_redis_subscribe(ngx_http_cart_redis_t *redis,
    ngx_str_t *channel, ngx_uint_t on);


#endif /* _NGX_HTTP_CART_REDIS_H_INCLUDED_ */
