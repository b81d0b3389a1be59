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


/*
 * Redis nodes get a label slot each, shared by the workers that name the
 * node (found by address); a slot no live worker names is reused for the
 * next new address, so a cluster's turnover never grows the label set.
 * Past NGX_HTTP_CART_METRIC_NODES - 1 nodes at once, the rest share the
 * last slot, node="other".
 */
#define NGX_HTTP_CART_METRIC_NODES     64    /* a bit each in a uint64_t */
#define NGX_HTTP_CART_METRIC_ADDR_LEN  (NGX_INET6_ADDRSTRLEN + 8)

/* nginx process slots (ngx_process_slot) with gauges of their own */
#define NGX_HTTP_CART_METRIC_PROCS     128

#define NGX_HTTP_CART_OUTCOMES         24    /* per op with outcomes */


/* upstream kinds of the subrequests */
typedef enum {
    NGX_HTTP_CART_UP_CATALOG = 0,
    NGX_HTTP_CART_UP_INVENTORY,
    NGX_HTTP_CART_UP_SHIPPING,
    NGX_HTTP_CART_UP_RESERVE,        /* cart_inventory_reserve POST */
    NGX_HTTP_CART_UP_RELEASE,        /* its DELETE */
    NGX_HTTP_CART_UP_OTHER,
    NGX_HTTP_CART_UPS
} ngx_http_cart_upstream_e;


/* cache lookups, per cache kind (ngx_http_cart_cache_kind_e) */
typedef enum {
    NGX_HTTP_CART_CACHE_HIT = 0,
    NGX_HTTP_CART_CACHE_MISS,
    NGX_HTTP_CART_CACHE_STALE,
    NGX_HTTP_CART_CACHE_OUTCOMES
} ngx_http_cart_cache_outcome_e;

#define NGX_HTTP_CART_CACHE_KINDS      3


/* why a stream ended */
typedef enum {
    NGX_HTTP_CART_STREAM_CLIENT = 0, /* the client left, or an error */
    NGX_HTTP_CART_STREAM_SLOW,       /* read nothing for send_timeout */
    NGX_HTTP_CART_STREAM_SHUTDOWN,   /* the worker exited */
    NGX_HTTP_CART_STREAM_REASONS
} ngx_http_cart_stream_reason_e;


typedef struct {
    ngx_atomic_t                  sent;
    ngx_atomic_t                  failed;     /* no answer, or a 5xx */
    ngx_atomic_t                  timedout;   /* nginx's timeout (504) */
    ngx_atomic_t                  buckets[NGX_HTTP_CART_BUCKETS];
    ngx_atomic_t                  msec;
} ngx_http_cart_upstream_metrics_t;


/* a Redis node's counters, from every worker */
typedef struct {
    u_char                        addr[NGX_HTTP_CART_METRIC_ADDR_LEN];
    ngx_atomic_t                  len;        /* of addr; 0: never used */
    ngx_atomic_t                  reconnects;
    ngx_atomic_t                  timeouts;
    ngx_atomic_t                  moved;
    ngx_atomic_t                  asked;
} ngx_http_cart_node_metrics_t;


/*
 * One nginx process's gauges, written by that process alone: summed at
 * scrape time over the live processes, zeroed when a process takes its
 * slot (a crashed worker's respawn takes the dead one's slot) and when it
 * exits. A process with no slot here reports no gauges.
 */
typedef struct {
    ngx_atomic_t                  pid;        /* 0: free */
    uint64_t                      nodes;      /* the node slots it names */
    ngx_atomic_t                  streams;    /* open */
    ngx_atomic_t                  kafka_queue; /* rd_kafka_outq_len() */
    ngx_atomic_t                  up[NGX_HTTP_CART_METRIC_NODES];
    ngx_atomic_t                  pending[NGX_HTTP_CART_METRIC_NODES];
} ngx_http_cart_proc_metrics_t;


/* an outcome of an op: "ok", "replayed" or the error code answered */
typedef struct {
    u_char                        name[32];
    ngx_atomic_t                  len;        /* 0: a free slot */
    ngx_atomic_t                  n;
} ngx_http_cart_outcome_t;


typedef struct {
    ngx_http_cart_kafka_stats_t   events;
    ngx_http_cart_op_metrics_t    ops[NGX_HTTP_CART_OPS];
    ngx_atomic_t                  replays;    /* Idempotent-Replayed */
    ngx_atomic_t                  conflicts;  /* key in flight or reused */

    ngx_http_cart_upstream_metrics_t  upstreams[NGX_HTTP_CART_UPS];
    ngx_atomic_t                  cache[NGX_HTTP_CART_CACHE_KINDS]
                                       [NGX_HTTP_CART_CACHE_OUTCOMES];
    ngx_atomic_t                  stream_events;    /* written to clients */
    ngx_atomic_t                  stream_coalesced; /* states skipped */
    ngx_atomic_t                  stream_closed[NGX_HTTP_CART_STREAM_REASONS];
    ngx_http_cart_outcome_t       merges[NGX_HTTP_CART_OUTCOMES];
    ngx_http_cart_outcome_t       checkouts[NGX_HTTP_CART_OUTCOMES];

    ngx_http_cart_node_metrics_t  nodes[NGX_HTTP_CART_METRIC_NODES];
    ngx_http_cart_proc_metrics_t  procs[NGX_HTTP_CART_METRIC_PROCS];
} ngx_http_cart_metrics_t;


/* this process's gauges, NULL without metrics or a slot */
extern ngx_http_cart_proc_metrics_t  *ngx_http_cart_proc_metrics;


ngx_int_t ngx_http_cart_status_zone(ngx_conf_t *cf,
    ngx_http_cart_main_conf_t *cmcf);

/* the shared counters, NULL when no location uses the module */
ngx_http_cart_metrics_t *ngx_http_cart_metrics(
    ngx_http_cart_main_conf_t *cmcf);

ngx_int_t ngx_http_cart_status_handler(ngx_http_request_t *r);

/* the log phase handler that counts cart and admin requests */
ngx_int_t ngx_http_cart_status_init(ngx_conf_t *cf);

/* a worker takes its process slot's gauges / gives them back */
void ngx_http_cart_metrics_init_worker(ngx_http_cart_main_conf_t *cmcf);
void ngx_http_cart_metrics_exit_worker(ngx_http_cart_main_conf_t *cmcf);

/* the label slot of the Redis node at host:port for this worker, or
 * NGX_ERROR without metrics; given back when the worker drops the node */
ngx_int_t ngx_http_cart_metrics_node(ngx_http_cart_main_conf_t *cmcf,
    ngx_str_t *host, ngx_uint_t port);
void ngx_http_cart_metrics_node_free(ngx_http_cart_main_conf_t *cmcf,
    ngx_int_t slot);

/* a subrequest to "kind" answered rc (its post handler's) and status,
 * after msec */
void ngx_http_cart_metrics_upstream(ngx_http_request_t *r, ngx_uint_t kind,
    ngx_int_t rc, ngx_int_t status, ngx_msec_t msec);

/* adds one to a counter of the metrics, when there are metrics */
#define ngx_http_cart_metrics_inc(r, field)                                   \
    ngx_http_cart_metrics_add(                                                \
        ngx_http_get_module_main_conf(r, ngx_http_cart_module), field)


/* the same from anywhere the main configuration is at hand */
#define ngx_http_cart_metrics_add(cmcf, field)                               \
    do {                                                                      \
        ngx_http_cart_metrics_t  *m__;                                        \
        m__ = ngx_http_cart_metrics(cmcf);                                    \
        if (m__) {                                                            \
            (void) ngx_atomic_fetch_add(&m__->field, 1);                      \
        }                                                                     \
    } while (0)

/* moves a gauge of this process by delta (only this process writes it) */
#define ngx_http_cart_metrics_gauge(field, delta)                            \
    do {                                                                      \
        if (ngx_http_cart_proc_metrics) {                                     \
            ngx_http_cart_proc_metrics->field += (delta);                     \
        }                                                                     \
    } while (0)

/* the same for a Redis node's label slot, when it has one */
#define ngx_http_cart_metrics_node_gauge(slot, field, delta)                 \
    do {                                                                      \
        if (ngx_http_cart_proc_metrics && (slot) >= 0) {                      \
            ngx_http_cart_proc_metrics->field[slot] += (delta);               \
        }                                                                     \
    } while (0)


#endif /* _NGX_HTTP_CART_STATUS_H_INCLUDED_ */
