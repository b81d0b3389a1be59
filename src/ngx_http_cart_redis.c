/*
 * hiredis 0.14 driven by nginx events.
 *
 * Structure: redis -> nodes -> connections -> operations.
 *
 * - A node is one Redis server (cart_redis URL). Each node owns
 *   cart_redis_connections connections per worker; commands are pipelined
 *   on them round-robin. A later cluster layer adds nodes and routing
 *   without changing what a connection or an operation is.
 * - A connection wraps the hiredis fd in an ngx_connection_t. hiredis owns
 *   the fd: our cleanup hook detaches it (c->fd = -1) before hiredis closes
 *   it, so a reused descriptor number is never closed under someone else.
 *   Events are level-triggered: hiredis reads at most 16 KB per call, and a
 *   bigger reply must keep the read event firing until it is drained.
 * - An operation is the callback data hiredis holds. It is allocated from a
 *   worker free list, not from the request pool, because hiredis may call
 *   back after the request is gone (a timed-out command, a disconnect).
 *   A request cleanup handler detaches the request from the operation.
 */

#include "ngx_http_cart_redis.h"
#include <hiredis/async.h>


#define NGX_HTTP_CART_REDIS_BACKOFF_MIN   50
#define NGX_HTTP_CART_REDIS_BACKOFF_MAX   3000
#define NGX_HTTP_CART_REDIS_MAX_TIMEOUTS  3


typedef struct ngx_http_cart_redis_node_s  ngx_http_cart_redis_node_t;
typedef struct ngx_http_cart_redis_sub_s   ngx_http_cart_redis_sub_t;


typedef enum {
    NGX_HTTP_CART_REDIS_DISCONNECTED = 0,
    NGX_HTTP_CART_REDIS_CONNECTING,
    NGX_HTTP_CART_REDIS_READY
} ngx_http_cart_redis_state_e;


typedef struct {
    ngx_http_cart_redis_node_t    *node;
    redisAsyncContext             *ac;
    ngx_connection_t              *c;
    ngx_http_cart_redis_state_e    state;
    ngx_event_t                    reconnect;    /* backoff, cancelable */
    ngx_event_t                    connect;      /* connect timeout, cancelable */
    ngx_msec_t                     backoff;
    ngx_uint_t                     timeouts;     /* in a row, without a reply */
    ngx_uint_t                     index;
    ngx_http_cart_redis_sub_t     *sub;          /* the subscriber, or NULL */
} ngx_http_cart_redis_conn_t;


/* the worker's pub/sub connection: a connection of node 0 outside its pool */
struct ngx_http_cart_redis_sub_s {
    ngx_http_cart_redis_conn_t         conn;
    ngx_http_cart_redis_sub_pt         handler;
    void                              *data;
};


struct ngx_http_cart_redis_node_s {
    ngx_http_cart_redis_t             *redis;
    ngx_http_cart_redis_node_conf_t   *conf;
    ngx_http_cart_redis_conn_t        *conns;
    ngx_uint_t                         nconns;
    ngx_uint_t                         next;
};


typedef struct {
    ngx_queue_t                        queue;     /* in the free list */
    ngx_http_cart_redis_t             *redis;
    ngx_http_cart_redis_conn_t        *conn;
    ngx_http_request_t                *request;   /* NULL once detached */
    ngx_http_cart_redis_handler_pt     handler;
    void                              *data;
    ngx_http_cleanup_t                *cleanup;
    ngx_event_t                        timer;
} ngx_http_cart_redis_op_t;


struct ngx_http_cart_redis_s {
    ngx_http_cart_main_conf_t         *cmcf;
    ngx_http_cart_redis_node_t        *nodes;
    ngx_uint_t                         nnodes;
    ngx_http_cart_redis_script_t      *scripts;
    ngx_uint_t                         nscripts;
    ngx_queue_t                        free_ops;
    ngx_http_cart_redis_sub_t         *sub;       /* started by the first
                                                     subscriber */
    ngx_log_t                         *log;
    unsigned                           exiting:1;
};


static void ngx_http_cart_redis_conn_init(ngx_http_cart_redis_conn_t *rc,
    ngx_http_cart_redis_node_t *node, ngx_uint_t index);
static void ngx_http_cart_redis_conn_close(ngx_http_cart_redis_conn_t *rc);
static void ngx_http_cart_redis_connect(ngx_http_cart_redis_conn_t *rc);
static void ngx_http_cart_redis_schedule(ngx_http_cart_redis_conn_t *rc);
static void ngx_http_cart_redis_reconnect_handler(ngx_event_t *ev);
static void ngx_http_cart_redis_connect_timeout(ngx_event_t *ev);
static void ngx_http_cart_redis_on_connect(const redisAsyncContext *ac,
    int status);
static void ngx_http_cart_redis_on_disconnect(const redisAsyncContext *ac,
    int status);
static void ngx_http_cart_redis_handshake_reply(redisAsyncContext *ac,
    void *reply, void *privdata);
static void ngx_http_cart_redis_read_handler(ngx_event_t *ev);
static void ngx_http_cart_redis_write_handler(ngx_event_t *ev);
static void ngx_http_cart_redis_add_read(void *privdata);
static void ngx_http_cart_redis_del_read(void *privdata);
static void ngx_http_cart_redis_add_write(void *privdata);
static void ngx_http_cart_redis_del_write(void *privdata);
static void ngx_http_cart_redis_cleanup(void *privdata);
static void ngx_http_cart_redis_reply(redisAsyncContext *ac, void *reply,
    void *privdata);
static void ngx_http_cart_redis_sub_reply(redisAsyncContext *ac, void *reply,
    void *privdata);
static void ngx_http_cart_redis_op_timeout(ngx_event_t *ev);
static void ngx_http_cart_redis_op_cleanup(void *data);
static void ngx_http_cart_redis_op_finish(ngx_http_cart_redis_op_t *op,
    redisReply *reply, ngx_int_t rc);
static ngx_http_cart_redis_op_t *ngx_http_cart_redis_op_get(
    ngx_http_cart_redis_t *redis);
static void ngx_http_cart_redis_op_free(ngx_http_cart_redis_op_t *op);


/* configuration: redis://[[user]:password@]host[:port][/db] */

ngx_int_t
ngx_http_cart_redis_parse_url(ngx_conf_t *cf, ngx_str_t *value,
    ngx_http_cart_redis_node_conf_t *node)
{
    u_char     *p, *last, *at, *colon, *slash;
    ngx_int_t   db;
    ngx_url_t   u;

    ngx_memzero(node, sizeof(ngx_http_cart_redis_node_conf_t));
    node->url = *value;

    if (value->len < sizeof("redis://") - 1
        || ngx_strncasecmp(value->data, (u_char *) "redis://",
                           sizeof("redis://") - 1) != 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid Redis URL \"%V\": must start with "
                           "\"redis://\"", value);
        return NGX_ERROR;
    }

    p = value->data + sizeof("redis://") - 1;
    last = value->data + value->len;

    at = ngx_strlchr(p, last, '@');
    if (at) {
        colon = ngx_strlchr(p, at, ':');
        if (colon == NULL) {
            node->password.data = p;
            node->password.len = at - p;

        } else {
            node->user.data = p;
            node->user.len = colon - p;
            node->password.data = colon + 1;
            node->password.len = at - colon - 1;
        }

        p = at + 1;
    }

    slash = ngx_strlchr(p, last, '/');
    if (slash) {
        if (slash + 1 < last) {
            db = ngx_atoi(slash + 1, last - slash - 1);
            if (db == NGX_ERROR) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid database number in Redis URL "
                                   "\"%V\"", value);
                return NGX_ERROR;
            }
            node->db = db;
        }
        last = slash;
    }

    ngx_memzero(&u, sizeof(ngx_url_t));
    u.url.data = p;
    u.url.len = last - p;
    u.default_port = 6379;
    u.no_resolve = 0;

    /* resolved once here: getaddrinfo() must never run in a worker */

    if (ngx_parse_url(cf->pool, &u) != NGX_OK || u.naddrs == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "%s in Redis URL \"%V\"",
                           u.err ? u.err : "host not found", value);
        return NGX_ERROR;
    }

    node->port = u.port;
    node->host.data = ngx_pnalloc(cf->pool, NGX_SOCKADDR_STRLEN + 1);
    if (node->host.data == NULL) {
        return NGX_ERROR;
    }

    node->host.len = ngx_sock_ntop(u.addrs[0].sockaddr, u.addrs[0].socklen,
                                   node->host.data, NGX_SOCKADDR_STRLEN, 0);
    node->host.data[node->host.len] = '\0';

    return NGX_OK;
}


/* worker life cycle */

ngx_int_t
ngx_http_cart_redis_init_worker(ngx_cycle_t *cycle,
    ngx_http_cart_main_conf_t *cmcf, ngx_http_cart_redis_script_t *scripts,
    ngx_uint_t nscripts)
{
    ngx_uint_t                        i, j;
    ngx_http_cart_redis_t            *redis;
    ngx_http_cart_redis_node_t       *node;
    ngx_http_cart_redis_conn_t       *rc;
    ngx_http_cart_redis_node_conf_t  *ncf;

    redis = ngx_pcalloc(cycle->pool, sizeof(ngx_http_cart_redis_t));
    if (redis == NULL) {
        return NGX_ERROR;
    }

    redis->cmcf = cmcf;
    redis->log = cycle->log;
    redis->scripts = scripts;
    redis->nscripts = nscripts;
    ngx_queue_init(&redis->free_ops);

    ncf = cmcf->redis_nodes->elts;
    redis->nnodes = cmcf->redis_nodes->nelts;
    redis->nodes = ngx_pcalloc(cycle->pool,
                           redis->nnodes * sizeof(ngx_http_cart_redis_node_t));
    if (redis->nodes == NULL) {
        return NGX_ERROR;
    }

    cmcf->redis = redis;

    for (i = 0; i < redis->nnodes; i++) {
        node = &redis->nodes[i];
        node->redis = redis;
        node->conf = &ncf[i];
        node->nconns = cmcf->redis_connections;
        node->conns = ngx_pcalloc(cycle->pool,
                            node->nconns * sizeof(ngx_http_cart_redis_conn_t));
        if (node->conns == NULL) {
            return NGX_ERROR;
        }

        for (j = 0; j < node->nconns; j++) {
            rc = &node->conns[j];
            ngx_http_cart_redis_conn_init(rc, node, j);
            ngx_http_cart_redis_connect(rc);
        }
    }

    return NGX_OK;
}


void
ngx_http_cart_redis_exit_worker(ngx_http_cart_main_conf_t *cmcf)
{
    ngx_uint_t                   i, j;
    ngx_queue_t                 *q;
    ngx_http_cart_redis_t       *redis;
    ngx_http_cart_redis_op_t    *op;
    ngx_http_cart_redis_conn_t  *rc;

    redis = cmcf->redis;
    if (redis == NULL) {
        return;
    }

    /* pending callbacks still run (with NULL) but no longer reach requests */
    redis->exiting = 1;

    for (i = 0; i < redis->nnodes; i++) {
        for (j = 0; j < redis->nodes[i].nconns; j++) {
            rc = &redis->nodes[i].conns[j];
            ngx_http_cart_redis_conn_close(rc);
        }
    }

    if (redis->sub) {
        ngx_http_cart_redis_conn_close(&redis->sub->conn);
        ngx_free(redis->sub);
        redis->sub = NULL;
    }

    while (!ngx_queue_empty(&redis->free_ops)) {
        q = ngx_queue_head(&redis->free_ops);
        ngx_queue_remove(q);
        op = ngx_queue_data(q, ngx_http_cart_redis_op_t, queue);
        ngx_free(op);
    }

    cmcf->redis = NULL;
}


/* connections */

static void
ngx_http_cart_redis_conn_init(ngx_http_cart_redis_conn_t *rc,
    ngx_http_cart_redis_node_t *node, ngx_uint_t index)
{
    ngx_log_t  *log;

    log = node->redis->log;

    rc->node = node;
    rc->index = index;

    rc->reconnect.handler = ngx_http_cart_redis_reconnect_handler;
    rc->reconnect.data = rc;
    rc->reconnect.log = log;
    rc->reconnect.cancelable = 1;

    rc->connect.handler = ngx_http_cart_redis_connect_timeout;
    rc->connect.data = rc;
    rc->connect.log = log;
    rc->connect.cancelable = 1;
}


/* at worker exit: pending callbacks run now, with NULL replies */

static void
ngx_http_cart_redis_conn_close(ngx_http_cart_redis_conn_t *rc)
{
    if (rc->reconnect.timer_set) {
        ngx_del_timer(&rc->reconnect);
    }

    if (rc->connect.timer_set) {
        ngx_del_timer(&rc->connect);
    }

    if (rc->ac) {
        redisAsyncFree(rc->ac);
    }
}


static void
ngx_http_cart_redis_connect(ngx_http_cart_redis_conn_t *rc)
{
    ngx_uint_t                        i;
    ngx_connection_t                 *c;
    redisAsyncContext                *ac;
    ngx_http_cart_redis_t            *redis;
    ngx_http_cart_redis_node_conf_t  *ncf;

    redis = rc->node->redis;
    ncf = rc->node->conf;

    ac = redisAsyncConnect((char *) ncf->host.data, ncf->port);
    if (ac == NULL) {
        ngx_log_error(NGX_LOG_ERR, redis->log, 0,
                      "cart redis: cannot allocate a context for \"%V\"",
                      &ncf->url);
        ngx_http_cart_redis_schedule(rc);
        return;
    }

    if (ac->err) {
        ngx_log_error(NGX_LOG_ERR, redis->log, 0,
                      "cart redis: connect to \"%V\" failed: %s",
                      &ncf->url, ac->errstr);
        redisAsyncFree(ac);
        ngx_http_cart_redis_schedule(rc);
        return;
    }

    c = ngx_get_connection(ac->c.fd, redis->log);
    if (c == NULL) {
        redisAsyncFree(ac);
        ngx_http_cart_redis_schedule(rc);
        return;
    }

    c->data = rc;
    c->read->handler = ngx_http_cart_redis_read_handler;
    c->write->handler = ngx_http_cart_redis_write_handler;
    c->read->log = redis->log;
    c->write->log = redis->log;

    rc->ac = ac;
    rc->c = c;
    rc->state = NGX_HTTP_CART_REDIS_CONNECTING;
    rc->timeouts = 0;

    ac->data = rc;
    ac->ev.data = rc;
    ac->ev.addRead = ngx_http_cart_redis_add_read;
    ac->ev.delRead = ngx_http_cart_redis_del_read;
    ac->ev.addWrite = ngx_http_cart_redis_add_write;
    ac->ev.delWrite = ngx_http_cart_redis_del_write;
    ac->ev.cleanup = ngx_http_cart_redis_cleanup;

    redisAsyncSetConnectCallback(ac, ngx_http_cart_redis_on_connect);
    redisAsyncSetDisconnectCallback(ac, ngx_http_cart_redis_on_disconnect);

    /*
     * The handshake is queued ahead of everything else: commands pipelined
     * behind it run authenticated, in the right database, with the scripts
     * loaded.
     */

    if (ncf->password.len) {
        if (ncf->user.len) {
            redisAsyncCommand(ac, ngx_http_cart_redis_handshake_reply,
                              (void *) "AUTH",
                              "AUTH %b %b", ncf->user.data, ncf->user.len,
                              ncf->password.data, ncf->password.len);
        } else {
            redisAsyncCommand(ac, ngx_http_cart_redis_handshake_reply,
                              (void *) "AUTH",
                              "AUTH %b", ncf->password.data,
                              ncf->password.len);
        }
    }

    if (ncf->db) {
        redisAsyncCommand(ac, ngx_http_cart_redis_handshake_reply,
                              (void *) "SELECT",
                          "SELECT %u", (unsigned) ncf->db);
    }

    /* a subscriber runs no scripts (and, subscribed, could not load them) */

    for (i = 0; rc->sub == NULL && i < redis->nscripts; i++) {
        redisAsyncCommand(ac, ngx_http_cart_redis_handshake_reply,
                          "SCRIPT LOAD", "SCRIPT LOAD %b",
                          redis->scripts[i].data, redis->scripts[i].len);
    }

    /* the first write event tells hiredis that the connect completed */
    ngx_http_cart_redis_add_write(rc);

    ngx_add_timer(&rc->connect, redis->cmcf->redis_timeout * 10);
}


static void
ngx_http_cart_redis_schedule(ngx_http_cart_redis_conn_t *rc)
{
    ngx_msec_t              delay;
    ngx_http_cart_redis_t  *redis;

    redis = rc->node->redis;

    rc->state = NGX_HTTP_CART_REDIS_DISCONNECTED;

    if (redis->exiting || ngx_exiting || ngx_quit || ngx_terminate) {
        return;
    }

    /* exponential backoff with jitter: workers must not reconnect in step */

    rc->backoff = rc->backoff ? ngx_min(rc->backoff * 2,
                                        NGX_HTTP_CART_REDIS_BACKOFF_MAX)
                              : NGX_HTTP_CART_REDIS_BACKOFF_MIN;

    delay = rc->backoff / 2 + (ngx_msec_t) ngx_random() % (rc->backoff / 2 + 1);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, redis->log, 0,
                   "cart redis: reconnect #%ui in %Mms", rc->index, delay);

    ngx_add_timer(&rc->reconnect, delay);
}


static void
ngx_http_cart_redis_reconnect_handler(ngx_event_t *ev)
{
    ngx_http_cart_redis_conn_t  *rc = ev->data;

    ngx_http_cart_redis_connect(rc);
}


static void
ngx_http_cart_redis_connect_timeout(ngx_event_t *ev)
{
    ngx_http_cart_redis_conn_t  *rc = ev->data;

    ngx_log_error(NGX_LOG_ERR, ev->log, 0,
                  "cart redis: connect to \"%V\" timed out",
                  &rc->node->conf->url);

    /* not connected yet: hiredis calls no disconnect callback here */
    redisAsyncFree(rc->ac);

    if (!rc->reconnect.timer_set) {
        ngx_http_cart_redis_schedule(rc);
    }
}


static void
ngx_http_cart_redis_on_connect(const redisAsyncContext *ac, int status)
{
    ngx_uint_t                   level;
    ngx_http_cart_redis_conn_t  *rc = ac->data;

    if (rc->connect.timer_set) {
        ngx_del_timer(&rc->connect);
    }

    if (status != REDIS_OK) {
        /* the first failure of an outage is an error, the retries are not */
        level = rc->backoff ? NGX_LOG_INFO : NGX_LOG_ERR;

        ngx_log_error(level, rc->node->redis->log, 0,
                      "cart redis: connect to \"%V\" failed: %s",
                      &rc->node->conf->url, ac->errstr);

        /* hiredis frees the context after we return */
        ngx_http_cart_redis_schedule(rc);
        return;
    }

    ngx_log_error(NGX_LOG_INFO, rc->node->redis->log, 0,
                  "cart redis: connected to \"%V\" (#%ui)",
                  &rc->node->conf->url, rc->index);

    rc->state = NGX_HTTP_CART_REDIS_READY;
    rc->backoff = 0;

    if (rc->sub) {
        /* the subscriber subscribes again to what it follows */
        rc->sub->handler(rc->sub->data, NGX_HTTP_CART_REDIS_SUB_UP, NULL,
                         NULL);
    }
}


static void
ngx_http_cart_redis_on_disconnect(const redisAsyncContext *ac, int status)
{
    ngx_http_cart_redis_conn_t  *rc = ac->data;

    if (status != REDIS_OK && !rc->node->redis->exiting) {
        ngx_log_error(NGX_LOG_ERR, rc->node->redis->log, 0,
                      "cart redis: connection to \"%V\" lost: %s",
                      &rc->node->conf->url,
                      ac->errstr ? ac->errstr : "closed");
    }

    ngx_http_cart_redis_schedule(rc);
}


static void
ngx_http_cart_redis_handshake_reply(redisAsyncContext *ac, void *reply,
    void *privdata)
{
    redisReply                  *r = reply;
    ngx_http_cart_redis_conn_t  *rc = ac->data;

    if (r == NULL || r->type != REDIS_REPLY_ERROR) {
        return;
    }

    ngx_log_error(NGX_LOG_ERR, rc->node->redis->log, 0,
                  "cart redis: %s on \"%V\" failed: %*s",
                  (char *) privdata, &rc->node->conf->url,
                  (size_t) r->len, r->str);

    /* a wrong password or database makes every later command fail */
    redisAsyncDisconnect(ac);
}


/* nginx event glue */

static void
ngx_http_cart_redis_read_handler(ngx_event_t *ev)
{
    ngx_connection_t            *c = ev->data;
    ngx_http_cart_redis_conn_t  *rc = c->data;

    if (rc->ac) {
        redisAsyncHandleRead(rc->ac);
    }
}


static void
ngx_http_cart_redis_write_handler(ngx_event_t *ev)
{
    ngx_connection_t            *c = ev->data;
    ngx_http_cart_redis_conn_t  *rc = c->data;

    if (rc->ac) {
        redisAsyncHandleWrite(rc->ac);
    }
}


static void
ngx_http_cart_redis_add_read(void *privdata)
{
    ngx_http_cart_redis_conn_t  *rc = privdata;

    if (rc->c && !rc->c->read->active) {
        /* level-triggered: replies larger than one hiredis read keep firing */
        if (ngx_add_event(rc->c->read, NGX_READ_EVENT, NGX_LEVEL_EVENT)
            != NGX_OK)
        {
            ngx_log_error(NGX_LOG_ALERT, rc->c->log, 0,
                          "cart redis: cannot add read event");
        }
    }
}


static void
ngx_http_cart_redis_del_read(void *privdata)
{
    ngx_http_cart_redis_conn_t  *rc = privdata;

    if (rc->c && rc->c->read->active) {
        ngx_del_event(rc->c->read, NGX_READ_EVENT, 0);
    }
}


static void
ngx_http_cart_redis_add_write(void *privdata)
{
    ngx_http_cart_redis_conn_t  *rc = privdata;

    if (rc->c && !rc->c->write->active) {
        if (ngx_add_event(rc->c->write, NGX_WRITE_EVENT, NGX_LEVEL_EVENT)
            != NGX_OK)
        {
            ngx_log_error(NGX_LOG_ALERT, rc->c->log, 0,
                          "cart redis: cannot add write event");
        }
    }
}


static void
ngx_http_cart_redis_del_write(void *privdata)
{
    ngx_http_cart_redis_conn_t  *rc = privdata;

    if (rc->c && rc->c->write->active) {
        ngx_del_event(rc->c->write, NGX_WRITE_EVENT, 0);
    }
}


/* called by hiredis just before it frees the context and closes the fd */

static void
ngx_http_cart_redis_cleanup(void *privdata)
{
    ngx_connection_t            *c;
    ngx_http_cart_redis_conn_t  *rc = privdata;

    c = rc->c;

    if (rc->connect.timer_set) {
        ngx_del_timer(&rc->connect);
    }

    rc->ac = NULL;
    rc->c = NULL;

    if (rc->sub && rc->state == NGX_HTTP_CART_REDIS_READY
        && !rc->node->redis->exiting)
    {
        /* every subscription went with the connection; no command now */
        rc->sub->handler(rc->sub->data, NGX_HTTP_CART_REDIS_SUB_DOWN, NULL,
                         NULL);
    }

    rc->state = NGX_HTTP_CART_REDIS_DISCONNECTED;

    if (c == NULL) {
        return;
    }

    if (c->read->active) {
        ngx_del_event(c->read, NGX_READ_EVENT, 0);
    }

    if (c->write->active) {
        ngx_del_event(c->write, NGX_WRITE_EVENT, 0);
    }

    if (c->read->posted) {
        ngx_delete_posted_event(c->read);
    }

    if (c->write->posted) {
        ngx_delete_posted_event(c->write);
    }

    /* hiredis closes the descriptor itself */
    c->fd = (ngx_socket_t) -1;
    ngx_free_connection(c);
}


/*
 * Pub/sub. hiredis keeps one callback per channel and calls it for the
 * confirmation of SUBSCRIBE, for each message and for the confirmation of
 * UNSUBSCRIBE (then it forgets the channel). All channels share one
 * callback here, with the subscriber as its data, which lives as long as
 * the worker: the handler finds its listeners by the channel's name, so a
 * late reply for a channel nobody follows any more is simply dropped.
 */

ngx_int_t
ngx_http_cart_redis_subscriber(ngx_http_cart_redis_t *redis,
    ngx_http_cart_redis_sub_pt handler, void *data)
{
    ngx_http_cart_redis_sub_t  *sub;

    if (redis == NULL || redis->exiting) {
        return NGX_ERROR;
    }

    sub = redis->sub;

    if (sub) {
        return sub->conn.state == NGX_HTTP_CART_REDIS_READY ? NGX_OK
                                                             : NGX_AGAIN;
    }

    sub = ngx_calloc(sizeof(ngx_http_cart_redis_sub_t), redis->log);
    if (sub == NULL) {
        return NGX_ERROR;
    }

    sub->handler = handler;
    sub->data = data;
    sub->conn.sub = sub;

    ngx_http_cart_redis_conn_init(&sub->conn, &redis->nodes[0],
                                  redis->nodes[0].nconns);

    redis->sub = sub;

    ngx_http_cart_redis_connect(&sub->conn);

    return NGX_AGAIN;
}


ngx_int_t
ngx_http_cart_redis_subscribe(ngx_http_cart_redis_t *redis,
    ngx_str_t *channel, ngx_uint_t on)
{
    const char                 *argv[2];
    size_t                      argvlen[2];
    ngx_http_cart_redis_sub_t  *sub;

    sub = redis ? redis->sub : NULL;

    if (sub == NULL || redis->exiting
        || sub->conn.state != NGX_HTTP_CART_REDIS_READY)
    {
        return NGX_DECLINED;
    }

    argv[0] = on ? "SUBSCRIBE" : "UNSUBSCRIBE";
    argvlen[0] = on ? sizeof("SUBSCRIBE") - 1 : sizeof("UNSUBSCRIBE") - 1;
    argv[1] = (const char *) channel->data;
    argvlen[1] = channel->len;

    if (redisAsyncCommandArgv(sub->conn.ac, ngx_http_cart_redis_sub_reply,
                              sub, 2, argv, argvlen)
        != REDIS_OK)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static void
ngx_http_cart_redis_sub_reply(redisAsyncContext *ac, void *reply,
    void *privdata)
{
    redisReply                 *r = reply;
    ngx_str_t                   kind, channel, message;
    ngx_uint_t                  event;
    ngx_http_cart_redis_sub_t  *sub = privdata;

    /* NULL: the connection is going, SUB_DOWN tells the handler */

    if (r == NULL || sub->conn.node->redis->exiting) {
        return;
    }

    if (r->type != REDIS_REPLY_ARRAY || r->elements != 3
        || r->element[0]->type != REDIS_REPLY_STRING
        || r->element[1]->type != REDIS_REPLY_STRING)
    {
        if (r->type == REDIS_REPLY_ERROR) {
            ngx_log_error(NGX_LOG_ERR, sub->conn.node->redis->log, 0,
                          "cart redis: subscriber error reply: %*s",
                          (size_t) r->len, r->str);
        }

        return;
    }

    kind.data = (u_char *) r->element[0]->str;
    kind.len = r->element[0]->len;
    channel.data = (u_char *) r->element[1]->str;
    channel.len = r->element[1]->len;
    ngx_str_null(&message);

    if (kind.len == 7 && ngx_strncmp(kind.data, "message", 7) == 0) {
        if (r->element[2]->type != REDIS_REPLY_STRING) {
            return;
        }

        event = NGX_HTTP_CART_REDIS_SUB_MESSAGE;
        message.data = (u_char *) r->element[2]->str;
        message.len = r->element[2]->len;

    } else if (kind.len == 9 && ngx_strncmp(kind.data, "subscribe", 9) == 0) {
        event = NGX_HTTP_CART_REDIS_SUB_SUBSCRIBED;

    } else if (kind.len == 11
               && ngx_strncmp(kind.data, "unsubscribe", 11) == 0)
    {
        event = NGX_HTTP_CART_REDIS_SUB_UNSUBSCRIBED;

    } else {
        return;
    }

    sub->handler(sub->data, event, &channel, &message);
}


/* commands */

ngx_int_t
ngx_http_cart_redis_command(ngx_http_request_t *r, ngx_str_t *key, int argc,
    const char **argv, const size_t *argvlen,
    ngx_http_cart_redis_handler_pt handler, void *data)
{
    ngx_uint_t                   i, n;
    ngx_http_cleanup_t          *cln;
    ngx_http_cart_redis_t       *redis;
    ngx_http_cart_redis_op_t    *op;
    ngx_http_cart_redis_node_t  *node;
    ngx_http_cart_redis_conn_t  *rc, *pick;
    ngx_http_cart_main_conf_t   *cmcf;

    cmcf = ngx_http_get_module_main_conf(r, ngx_http_cart_module);
    redis = cmcf->redis;

    if (redis == NULL) {
        return NGX_ERROR;
    }

    /* a single node until cluster routing picks one by the key's slot */
    (void) key;
    node = &redis->nodes[0];

    /*
     * Round-robin over ready connections; a connection still connecting
     * will do (hiredis buffers the command behind the handshake).
     */

    pick = NULL;

    for (i = 0; i < node->nconns; i++) {
        n = (node->next + i) % node->nconns;
        rc = &node->conns[n];

        if (rc->state == NGX_HTTP_CART_REDIS_READY) {
            pick = rc;
            node->next = n + 1;
            break;
        }

        if (rc->state == NGX_HTTP_CART_REDIS_CONNECTING && pick == NULL) {
            pick = rc;
        }
    }

    if (pick == NULL) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "cart redis: no connection to \"%V\"",
                      &node->conf->url);
        return NGX_ERROR;
    }

    cln = ngx_http_cleanup_add(r, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    op = ngx_http_cart_redis_op_get(redis);
    if (op == NULL) {
        return NGX_ERROR;
    }

    if (redisAsyncCommandArgv(pick->ac, ngx_http_cart_redis_reply, op, argc,
                              argv, argvlen)
        != REDIS_OK)
    {
        /* disconnecting: hiredis will not call us back for this one */
        ngx_http_cart_redis_op_free(op);
        return NGX_ERROR;
    }

    op->conn = pick;
    op->request = r;
    op->handler = handler;
    op->data = data;
    op->cleanup = cln;

    cln->handler = ngx_http_cart_redis_op_cleanup;
    cln->data = op;

    op->timer.log = r->connection->log;
    ngx_add_timer(&op->timer, cmcf->redis_timeout);

    return NGX_OK;
}


ngx_int_t
ngx_http_cart_redis_read(ngx_http_request_t *r, const char *cmd,
    ngx_str_t *key, ngx_http_cart_redis_handler_pt handler, void *data)
{
    const char  *argv[2];
    size_t       argvlen[2];

    /* hiredis copies the command into its buffer at once */

    argv[0] = cmd;
    argvlen[0] = ngx_strlen(cmd);
    argv[1] = (const char *) key->data;
    argvlen[1] = key->len;

    return ngx_http_cart_redis_command(r, key, 2, argv, argvlen, handler,
                                       data);
}


static void
ngx_http_cart_redis_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    ngx_http_cart_redis_op_t    *op = privdata;
    ngx_http_cart_redis_conn_t  *rc;

    rc = op->conn;

    if (reply && rc) {
        rc->timeouts = 0;
    }

    if (op->request && !op->redis->exiting) {
        ngx_http_cart_redis_op_finish(op, reply, reply ? NGX_OK : NGX_ERROR);
    }

    ngx_http_cart_redis_op_free(op);
}


static void
ngx_http_cart_redis_op_timeout(ngx_event_t *ev)
{
    ngx_http_cart_redis_op_t    *op = ev->data;
    ngx_http_cart_redis_conn_t  *rc;

    rc = op->conn;

    ngx_log_error(NGX_LOG_ERR, ev->log, 0,
                  "cart redis: command timed out on \"%V\"",
                  &rc->node->conf->url);

    /* the operation stays with hiredis until its reply or the disconnect */
    ngx_http_cart_redis_op_finish(op, NULL, NGX_AGAIN);

    /*
     * Several timeouts in a row with no reply at all: the peer is gone
     * without telling us (a black hole). Drop the connection to reconnect.
     */

    if (++rc->timeouts >= NGX_HTTP_CART_REDIS_MAX_TIMEOUTS && rc->ac) {
        ngx_log_error(NGX_LOG_ERR, ev->log, 0,
                      "cart redis: \"%V\" is not answering, reconnecting",
                      &rc->node->conf->url);
        rc->timeouts = 0;
        redisAsyncFree(rc->ac);

        if (!rc->reconnect.timer_set) {
            ngx_http_cart_redis_schedule(rc);
        }
    }
}


/* the request is being freed: detach it so the reply goes nowhere */

static void
ngx_http_cart_redis_op_cleanup(void *data)
{
    ngx_http_cart_redis_op_t  *op = data;

    if (op->timer.timer_set) {
        ngx_del_timer(&op->timer);
    }

    op->request = NULL;
    op->handler = NULL;
    op->cleanup = NULL;
}


static void
ngx_http_cart_redis_op_finish(ngx_http_cart_redis_op_t *op,
    redisReply *reply, ngx_int_t rc)
{
    void                            *data;
    ngx_connection_t                *c;
    ngx_http_request_t              *r;
    ngx_http_cart_redis_handler_pt   handler;

    r = op->request;
    handler = op->handler;
    data = op->data;

    if (op->timer.timer_set) {
        ngx_del_timer(&op->timer);
    }

    if (op->cleanup) {
        op->cleanup->handler = NULL;
        op->cleanup = NULL;
    }

    op->request = NULL;
    op->handler = NULL;

    if (handler) {
        c = r->connection;

        handler(r, data, reply, rc);

        /* we are outside nginx's request handlers: run what was posted
         * (subrequests just created, parents to wake) ourselves */
        ngx_http_run_posted_requests(c);
    }
}


static ngx_http_cart_redis_op_t *
ngx_http_cart_redis_op_get(ngx_http_cart_redis_t *redis)
{
    ngx_queue_t               *q;
    ngx_http_cart_redis_op_t  *op;

    if (!ngx_queue_empty(&redis->free_ops)) {
        q = ngx_queue_head(&redis->free_ops);
        ngx_queue_remove(q);
        op = ngx_queue_data(q, ngx_http_cart_redis_op_t, queue);

    } else {
        op = ngx_alloc(sizeof(ngx_http_cart_redis_op_t), redis->log);
        if (op == NULL) {
            return NULL;
        }
    }

    ngx_memzero(op, sizeof(ngx_http_cart_redis_op_t));

    op->redis = redis;
    op->timer.handler = ngx_http_cart_redis_op_timeout;
    op->timer.data = op;
    op->timer.log = redis->log;

    return op;
}


static void
ngx_http_cart_redis_op_free(ngx_http_cart_redis_op_t *op)
{
    if (op->timer.timer_set) {
        ngx_del_timer(&op->timer);
    }

    if (op->redis->exiting) {
        ngx_free(op);
        return;
    }

    ngx_queue_insert_head(&op->redis->free_ops, &op->queue);
}
