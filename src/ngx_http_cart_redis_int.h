/*
 * Internal to the Redis layer (src/ngx_http_cart_redis*.c): its structures
 * and the functions its files share. Only these files include hiredis's
 * async API.
 *
 * redis -> nodes -> connections; an operation is the callback data
 * hiredis holds for one command.
 */

#ifndef _NGX_HTTP_CART_REDIS_INT_H_INCLUDED_
#define _NGX_HTTP_CART_REDIS_INT_H_INCLUDED_


#include "ngx_http_cart_redis.h"
#include "ngx_http_cart_status.h"
#include <hiredis/async.h>


typedef struct ngx_http_cart_redis_node_s  ngx_http_cart_redis_node_t;
typedef struct ngx_http_cart_redis_sub_s   ngx_http_cart_redis_sub_t;


/* CONNECTING lasts until every handshake reply (AUTH, SELECT, SCRIPT
 * LOAD) was OK: only a READY connection is given commands */
typedef enum {
    NGX_HTTP_CART_REDIS_DISCONNECTED = 0,
    NGX_HTTP_CART_REDIS_CONNECTING,
    NGX_HTTP_CART_REDIS_READY
} ngx_http_cart_redis_state_e;


/* the kinds of error line a node writes, each at most once a second */
typedef enum {
    NGX_HTTP_CART_REDIS_LOG_CONNECT = 0,   /* connect failed, timed out */
    NGX_HTTP_CART_REDIS_LOG_LOST,          /* a connection lost */
    NGX_HTTP_CART_REDIS_LOG_HANDSHAKE,     /* AUTH, SELECT... refused */
    NGX_HTTP_CART_REDIS_LOG_UNANSWERED,    /* dropped after timeouts */
    NGX_HTTP_CART_REDIS_LOG_NOCONN,        /* a command: no connection */
    NGX_HTTP_CART_REDIS_LOG_BUSY,          /* cart_redis_max_pending */
    NGX_HTTP_CART_REDIS_LOG_QUEUE,         /* the handshake queue is full */
    NGX_HTTP_CART_REDIS_LOG_WAITED,        /* no connection ready in time */
    NGX_HTTP_CART_REDIS_LOG_TIMEOUT,       /* a command timed out */
    NGX_HTTP_CART_REDIS_LOG_REPLY,         /* an error reply */
    NGX_HTTP_CART_REDIS_LOG_CLUSTER,       /* TRYAGAIN, CLUSTERDOWN */
    NGX_HTTP_CART_REDIS_LOG_REDIRECT,      /* a redirection not followed */
    NGX_HTTP_CART_REDIS_LOG_N
} ngx_http_cart_redis_log_e;


typedef struct {
    ngx_msec_t                     last;         /* the last line logged */
    ngx_uint_t                     held;         /* lines held back since */
} ngx_http_cart_redis_quiet_t;


typedef struct {
    ngx_http_cart_redis_node_t    *node;
    redisAsyncContext             *ac;
    ngx_connection_t              *c;
    ngx_http_cart_redis_state_e    state;
    ngx_event_t                    reconnect;    /* backoff, cancelable */
    ngx_event_t                    connect;      /* timeout of connect and
                                                    handshake, cancelable */
    ngx_msec_t                     backoff;
    ngx_uint_t                     timeouts;     /* in a row, without a reply */
    ngx_msec_t                     replied;      /* the last reply, or ready */
    ngx_uint_t                     handshake;    /* its replies to come */
    ngx_uint_t                     pending;      /* our commands hiredis
                                                    holds, timed out too */
    uint64_t                       out;          /* bytes given to hiredis:
                                                    less its output buffer,
                                                    the bytes written */
    ngx_uint_t                     index;
    ngx_http_cart_redis_sub_t     *sub;          /* the subscriber, or NULL */
} ngx_http_cart_redis_conn_t;


/* the worker's pub/sub connection: a connection of a node outside its
 * pool (ngx_http_cart_redis_pubsub.c); the connection calls "handler",
 * the pub/sub room's, which tells the listener */
struct ngx_http_cart_redis_sub_s {
    ngx_http_cart_redis_conn_t         conn;
    ngx_http_cart_redis_sub_pt         handler;
    void                              *data;
    ngx_http_cart_redis_sub_pt         listener;
    void                              *listener_data;
    ngx_event_t                        ping;      /* the next PING, or the
                                                     deadline of its answer */
    unsigned                           waiting:1; /* for that answer */
    unsigned                           answered:1; /* since it connected */
};


/* one Redis server; never freed while the worker lives, as slots and
 * operations point at nodes: one the cluster no longer names is retired
 * to a spare list and may come back as another address */
struct ngx_http_cart_redis_node_s {
    ngx_http_cart_redis_t             *redis;
    ngx_http_cart_redis_node_conf_t   *conf;
    ngx_http_cart_redis_conn_t        *conns;
    ngx_uint_t                         nconns;
    ngx_uint_t                         next;

    /* operations waiting for a connection to finish its handshake, at
     * most cart_redis_max_pending */
    ngx_queue_t                        waiting;
    ngx_uint_t                         nwaiting;

    ngx_http_cart_redis_quiet_t        quiet[NGX_HTTP_CART_REDIS_LOG_N];
    ngx_http_cart_redis_node_t        *spare;    /* next in the spare list */
    ngx_uint_t                         unnamed;  /* slot maps in a row */
    ngx_int_t                          stat;     /* its metrics' label
                                                    slot, or -1 */
    unsigned                           seed:1;
    unsigned                           named:1;  /* by the map applied */
};


/* from a worker free list, not the request pool: hiredis may call back
 * after the request is gone; a request cleanup detaches the request. It
 * logs to the cycle's log: a request's log goes with its connection */
typedef struct {
    ngx_queue_t                        queue;     /* in the free list, or
                                                     waiting in a node's */
    ngx_http_cart_redis_t             *redis;
    ngx_http_cart_redis_conn_t        *conn;      /* hiredis has it there */
    ngx_http_cart_redis_node_t        *node;      /* waiting there */
    ngx_http_request_t                *request;   /* NULL once detached */
    ngx_http_cart_redis_handler_pt     handler;
    void                              *data;
    ngx_http_cleanup_t                *cleanup;
    ngx_event_t                        timer;
    ngx_str_t                          cmd;       /* RESP, in the caller's
                                                     pool, for a resend */
    uint64_t                           start;     /* its first byte in the
                                                     connection's output */
    ngx_uint_t                         redirects;

    unsigned                           waiting:1;
    unsigned                           asking:1;  /* ASKING goes first */
} ngx_http_cart_redis_op_t;


struct ngx_http_cart_redis_s {
    ngx_http_cart_main_conf_t         *cmcf;
    ngx_array_t                        nodes;     /* of node *, seeds first */
    ngx_http_cart_redis_script_t      *scripts;
    ngx_uint_t                         nscripts;
    ngx_queue_t                        free_ops;
    ngx_pool_t                        *pool;      /* the cycle's: nodes */
    ngx_http_cart_redis_sub_t         *sub;       /* started by the first
                                                     subscriber */
    ngx_log_t                         *log;

    /* Redis Cluster; slots is NULL without cart_redis_cluster */
    ngx_http_cart_redis_node_t       **slots;
    ngx_event_t                        refresh;   /* next CLUSTER SLOTS */
    ngx_msec_t                         refreshed; /* when it was sent */
    ngx_uint_t                         refresh_id; /* tells a late answer */
    ngx_uint_t                         refresh_next;  /* node asked next */
    ngx_uint_t                         refresh_failed;
    ngx_http_cart_redis_node_t        *spare;     /* retired nodes */
    ngx_uint_t                         nspare;

    unsigned                           refreshing:1;
    unsigned                           exiting:1;
};


/* ngx_http_cart_redis.c */
ngx_http_cart_redis_node_t *ngx_http_cart_redis_node_add(
    ngx_http_cart_redis_t *redis, ngx_http_cart_redis_node_conf_t *conf);
void ngx_http_cart_redis_node_stat(ngx_http_cart_redis_node_t *node);
void ngx_http_cart_redis_set_state(ngx_http_cart_redis_conn_t *rc,
    ngx_http_cart_redis_state_e state);
ngx_http_cart_redis_conn_t *ngx_http_cart_redis_pick(
    ngx_http_cart_redis_node_t *node);
void ngx_http_cart_redis_conn_init(ngx_http_cart_redis_conn_t *rc,
    ngx_http_cart_redis_node_t *node, ngx_uint_t index);
void ngx_http_cart_redis_connect(ngx_http_cart_redis_conn_t *rc);
ngx_int_t ngx_http_cart_redis_send(ngx_http_cart_redis_op_t *op,
    ngx_http_cart_redis_node_t *node, ngx_uint_t asking);
ngx_int_t ngx_http_cart_redis_append(ngx_http_cart_redis_conn_t *rc,
    redisCallbackFn *fn, void *privdata, const char *cmd, size_t len);
ngx_int_t ngx_http_cart_redis_log_now(ngx_http_cart_redis_node_t *node,
    ngx_uint_t kind, ngx_str_t *note);

/* ngx_http_cart_redis_pubsub.c */
void ngx_http_cart_redis_sub_stop(ngx_http_cart_redis_sub_t *sub);
void ngx_http_cart_redis_sub_leave(ngx_http_cart_redis_sub_t *sub,
    ngx_http_cart_redis_node_t *node);

/* ngx_http_cart_redis_cluster.c */
ngx_int_t ngx_http_cart_redis_cluster_init(ngx_http_cart_redis_t *redis);
ngx_http_cart_redis_node_t *ngx_http_cart_redis_route(
    ngx_http_cart_redis_t *redis, ngx_str_t *key);
ngx_int_t ngx_http_cart_redis_redirect(ngx_http_cart_redis_op_t *op,
    redisReply *reply);
void ngx_http_cart_redis_refresh_soon(ngx_http_cart_redis_t *redis);


#endif /* _NGX_HTTP_CART_REDIS_INT_H_INCLUDED_ */
