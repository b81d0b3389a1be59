/*
 * Metrics: counters in a shared memory zone, so that every worker adds to
 * the same numbers and they survive reloads, and the cart_status handler
 * that prints them in Prometheus text format.
 */

#ifndef _NGX_HTTP_CART_STATUS_H_INCLUDED_
#define _NGX_HTTP_CART_STATUS_H_INCLUDED_


#include "ngx_http_cart.h"
#include "ngx_http_cart_kafka.h"


/* what a request was, for its metrics (the dispatcher's routes name one) */
typedef enum {
    NGX_HTTP_CART_OP_OTHER = 0,   /* refused before routing, unknown path */
    NGX_HTTP_CART_OP_VIEW,
    NGX_HTTP_CART_OP_COUNT,
    NGX_HTTP_CART_OP_STREAM,
    NGX_HTTP_CART_OP_ADD,
    NGX_HTTP_CART_OP_UPDATE,
    NGX_HTTP_CART_OP_REMOVE,
    NGX_HTTP_CART_OP_SAVE,
    NGX_HTTP_CART_OP_SAVED,
    NGX_HTTP_CART_OP_SAVED_MOVE,
    NGX_HTTP_CART_OP_SAVED_DROP,
    NGX_HTTP_CART_OP_MERGE,
    NGX_HTTP_CART_OP_SHARE,
    NGX_HTTP_CART_OP_SHARED_VIEW,
    NGX_HTTP_CART_OP_SHARED_COPY,
    NGX_HTTP_CART_OP_COUPON_APPLY,
    NGX_HTTP_CART_OP_COUPON_REMOVE,
    NGX_HTTP_CART_OP_ADDRESS,
    NGX_HTTP_CART_OP_CHECKOUT,
    NGX_HTTP_CART_OP_ADMIN,
    NGX_HTTP_CART_OPS
} ngx_http_cart_op_e;


#define NGX_HTTP_CART_STATUSES   20   /* the codes tracked, and "other" */
#define NGX_HTTP_CART_BUCKETS    13   /* latency buckets, +Inf last */


typedef struct {
    ngx_atomic_t                  requests[NGX_HTTP_CART_STATUSES];
    ngx_atomic_t                  buckets[NGX_HTTP_CART_BUCKETS];
    ngx_atomic_t                  msec;    /* the latencies' sum */
} ngx_http_cart_op_metrics_t;


typedef struct {
    ngx_http_cart_kafka_stats_t   events;
    ngx_http_cart_op_metrics_t    ops[NGX_HTTP_CART_OPS];
    ngx_atomic_t                  replays;    /* Idempotent-Replayed */
    ngx_atomic_t                  conflicts;  /* key in flight or reused */
} ngx_http_cart_metrics_t;


ngx_int_t ngx_http_cart_status_zone(ngx_conf_t *cf,
    ngx_http_cart_main_conf_t *cmcf);

/* the shared counters, NULL when no location uses the module */
ngx_http_cart_metrics_t *ngx_http_cart_metrics(
    ngx_http_cart_main_conf_t *cmcf);

ngx_int_t ngx_http_cart_status_handler(ngx_http_request_t *r);

/* the log phase handler that counts cart and admin requests */
ngx_int_t ngx_http_cart_status_init(ngx_conf_t *cf);

/* adds one to a counter of the metrics, when there are metrics */
#define ngx_http_cart_metrics_inc(r, field)                                   \
    do {                                                                      \
        ngx_http_cart_metrics_t  *m__;                                        \
        m__ = ngx_http_cart_metrics(                                          \
                  ngx_http_get_module_main_conf(r, ngx_http_cart_module));    \
        if (m__) {                                                            \
            (void) ngx_atomic_fetch_add(&m__->field, 1);                      \
        }                                                                     \
    } while (0)


#endif /* _NGX_HTTP_CART_STATUS_H_INCLUDED_ */
