/*
 * hiredis 0.14 on nginx events. A node is one Redis server with
 * cart_redis_connections connections per worker, pipelined round-robin;
 * without cart_redis_cluster the first cart_redis URL is the only node.
 */

#include "ngx_http_cart_redis_int.h"


#define NGX_HTTP_CART_REDIS_BACKOFF_MIN   50
#define NGX_HTTP_CART_REDIS_BACKOFF_MAX   3000
#define NGX_HTTP_CART_REDIS_MAX_TIMEOUTS  3
#define NGX_HTTP_CART_REDIS_LOG_EVERY     1000


static void ngx_http_cart_redis_conn_close(ngx_http_cart_redis_conn_t *rc);
static void ngx_http_cart_redis_on_connect(const redisAsyncContext *ac,
    int status);
static void ngx_http_cart_redis_on_disconnect(const redisAsyncContext *ac,
    int status);
static void ngx_http_cart_redis_connect_timeout(ngx_event_t *ev);
static void ngx_http_cart_redis_schedule(ngx_http_cart_redis_conn_t *rc);
static void ngx_http_cart_redis_reconnect_handler(ngx_event_t *ev);
static ngx_uint_t ngx_http_cart_redis_has(ngx_http_cart_redis_node_t *node,
    ngx_uint_t state);
static void ngx_http_cart_redis_ready(ngx_http_cart_redis_conn_t *rc);
static void ngx_http_cart_redis_flush(ngx_http_cart_redis_node_t *node,
    ngx_int_t fail);
static ngx_int_t ngx_http_cart_redis_handshake(ngx_http_cart_redis_conn_t *rc);
static ngx_int_t ngx_http_cart_redis_queue(ngx_http_cart_redis_conn_t *rc,
    ngx_pool_t *pool, char *name, int argc, const char **argv,
    const size_t *argvlen);
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
static ngx_http_cart_redis_op_t *ngx_http_cart_redis_op_get(
    ngx_http_cart_redis_t *redis);
static void ngx_http_cart_redis_op_free(ngx_http_cart_redis_op_t *op);
static void ngx_http_cart_redis_op_timeout(ngx_event_t *ev);
static void ngx_http_cart_redis_op_cleanup(void *data);
static void ngx_http_cart_redis_op_finish(ngx_http_cart_redis_op_t *op,
    redisReply *reply, ngx_int_t rc);
static ngx_int_t ngx_http_cart_redis_write(ngx_http_cart_redis_op_t *op,
    ngx_http_cart_redis_conn_t *rc, ngx_uint_t asking);
static ngx_int_t ngx_http_cart_redis_format(ngx_pool_t *pool, int argc,
    const char **argv, const size_t *argvlen, ngx_str_t *cmd);
static ngx_int_t ngx_http_cart_redis_mask_url(ngx_pool_t *pool,
    ngx_str_t *value, ngx_str_t *url);
static u_char *ngx_http_cart_redis_head(u_char *p, u_char type, size_t n);
static size_t ngx_http_cart_redis_digits(size_t n);


/* configuration: redis://[[user]:password@]host[:port][/db] */

ngx_int_t
ngx_http_cart_redis_parse_url(ngx_conf_t *cf, ngx_str_t *value,
    ngx_http_cart_redis_node_conf_t *node)
{
    u_char     *p, *last, *at, *colon, *slash;
    ngx_int_t   db;
    ngx_url_t   u;

    ngx_memzero(node, sizeof(ngx_http_cart_redis_node_conf_t));

    /* every log line names the node by this: never with its password */
    if (ngx_http_cart_redis_mask_url(cf->pool, value, &node->url) != NGX_OK) {
        return NGX_ERROR;
    }

    if (value->len < sizeof("redis://") - 1
        || ngx_strncasecmp(value->data, (u_char *) "redis://",
                           sizeof("redis://") - 1) != 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid Redis URL \"%V\": must start with "
                           "\"redis://\"", &node->url);
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
                                   "\"%V\"", &node->url);
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
                           u.err ? u.err : "host not found", &node->url);
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


/*
 * The URL with its password replaced by three stars: "user:***@host",
 * or "***@host" without a user (the userinfo before the first '@', as
 * parsed).
 */

static ngx_int_t
ngx_http_cart_redis_mask_url(ngx_pool_t *pool, ngx_str_t *value,
    ngx_str_t *url)
{
    u_char  *p, *at, *colon, *last, *start;

    last = value->data + value->len;
    start = ngx_strlcasestrn(value->data, last, (u_char *) "://", 3 - 1);
    start = start ? start + 3 : value->data;

    at = ngx_strlchr(start, last, '@');
    if (at == NULL) {
        *url = *value;
        return NGX_OK;
    }

    colon = ngx_strlchr(start, at, ':');
    p = colon ? colon + 1 : start;

    url->data = ngx_pnalloc(pool, value->len + 3);
    if (url->data == NULL) {
        return NGX_ERROR;
    }

    url->len = ngx_sprintf(url->data, "%*s***%*s", p - value->data,
                           value->data, last - at, at)
               - url->data;

    return NGX_OK;
}


/* worker life cycle */

ngx_int_t
ngx_http_cart_redis_init_worker(ngx_cycle_t *cycle,
    ngx_http_cart_main_conf_t *cmcf, ngx_http_cart_redis_script_t *scripts,
    ngx_uint_t nscripts)
{
    ngx_uint_t                        i;
    ngx_http_cart_redis_t            *redis;
    ngx_http_cart_redis_node_conf_t  *ncf;

    redis = ngx_pcalloc(cycle->pool, sizeof(ngx_http_cart_redis_t));
    if (redis == NULL) {
        return NGX_ERROR;
    }

    redis->cmcf = cmcf;
    redis->pool = cycle->pool;
    redis->log = cycle->log;
    redis->scripts = scripts;
    redis->nscripts = nscripts;
    ngx_queue_init(&redis->free_ops);

    if (ngx_array_init(&redis->nodes, cycle->pool, cmcf->redis_nodes->nelts,
                       sizeof(ngx_http_cart_redis_node_t *))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    cmcf->redis = redis;

    ncf = cmcf->redis_nodes->elts;

    for (i = 0; i < cmcf->redis_nodes->nelts; i++) {
        if (ngx_http_cart_redis_node_add(redis, &ncf[i]) == NULL) {
            return NGX_ERROR;
        }

        if (!cmcf->redis_cluster) {
            /* one node: the other URLs are for a cluster only */
            break;
        }
    }

    if (!cmcf->redis_cluster) {
        return NGX_OK;
    }

    return ngx_http_cart_redis_cluster_init(redis);
}


void
ngx_http_cart_redis_exit_worker(ngx_http_cart_main_conf_t *cmcf)
{
    ngx_uint_t                    i, j;
    ngx_queue_t                  *q;
    ngx_http_cart_redis_t        *redis;
    ngx_http_cart_redis_op_t     *op;
    ngx_http_cart_redis_node_t  **nodes;

    redis = cmcf->redis;
    if (redis == NULL) {
        return;
    }

    /* pending callbacks still run (with NULL) but no longer reach requests */
    redis->exiting = 1;

    if (redis->refresh.timer_set) {
        ngx_del_timer(&redis->refresh);
    }

    nodes = redis->nodes.elts;

    for (i = 0; i < redis->nodes.nelts; i++) {

        /* never sent: freed here, their requests are not served any more */

        while (!ngx_queue_empty(&nodes[i]->waiting)) {
            q = ngx_queue_head(&nodes[i]->waiting);
            ngx_queue_remove(q);
            op = ngx_queue_data(q, ngx_http_cart_redis_op_t, queue);

            if (op->cleanup) {
                op->cleanup->handler = NULL;
            }

            ngx_free(op);
        }

        nodes[i]->nwaiting = 0;

        for (j = 0; j < nodes[i]->nconns; j++) {
            ngx_http_cart_redis_conn_close(&nodes[i]->conns[j]);
        }
    }

    if (redis->sub) {
        ngx_http_cart_redis_sub_stop(redis->sub);
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


/* nodes */

ngx_http_cart_redis_node_t *
ngx_http_cart_redis_node_add(ngx_http_cart_redis_t *redis,
    ngx_http_cart_redis_node_conf_t *conf)
{
    ngx_uint_t                    j;
    ngx_http_cart_redis_conn_t   *rc;
    ngx_http_cart_redis_node_t   *node, **slot;

    node = ngx_pcalloc(redis->pool, sizeof(ngx_http_cart_redis_node_t));
    slot = ngx_array_push(&redis->nodes);

    if (node == NULL || slot == NULL) {
        return NULL;
    }

    node->redis = redis;
    node->conf = conf;
    ngx_queue_init(&node->waiting);
    node->nconns = redis->cmcf->redis_connections;
    node->conns = ngx_pcalloc(redis->pool,
                            node->nconns * sizeof(ngx_http_cart_redis_conn_t));
    if (node->conns == NULL) {
        redis->nodes.nelts--;
        return NULL;
    }

    *slot = node;

    ngx_http_cart_redis_node_stat(node);

    for (j = 0; j < node->nconns; j++) {
        rc = &node->conns[j];
        ngx_http_cart_redis_conn_init(rc, node, j);
        ngx_http_cart_redis_connect(rc);
    }

    return node;
}


/* the node's label in the metrics, by its address */

void
ngx_http_cart_redis_node_stat(ngx_http_cart_redis_node_t *node)
{
    node->stat = ngx_http_cart_metrics_node(node->redis->cmcf,
                                            &node->conf->host,
                                            node->conf->port);
}


/* the pool's connections READY are a gauge: every change of state goes
 * through here (the subscriber's connection is not the pool's) */

void
ngx_http_cart_redis_set_state(ngx_http_cart_redis_conn_t *rc,
    ngx_http_cart_redis_state_e state)
{
    if (rc->sub == NULL && rc->state != state) {
        if (state == NGX_HTTP_CART_REDIS_READY) {
            ngx_http_cart_metrics_node_gauge(rc->node->stat, up, 1);

        } else if (rc->state == NGX_HTTP_CART_REDIS_READY) {
            ngx_http_cart_metrics_node_gauge(rc->node->stat, up, -1);
        }
    }

    rc->state = state;
}


/*
 * Round-robin over the ready connections with room under
 * cart_redis_max_pending: what a stalled Redis costs the worker stays
 * bounded. One that hiredis is closing (its callbacks run) takes nothing.
 */

ngx_http_cart_redis_conn_t *
ngx_http_cart_redis_pick(ngx_http_cart_redis_node_t *node)
{
    ngx_uint_t                   i, n, max;
    ngx_http_cart_redis_conn_t  *rc;

    max = node->redis->cmcf->redis_max_pending;

    for (i = 0; i < node->nconns; i++) {
        n = (node->next + i) % node->nconns;
        rc = &node->conns[n];

        if (rc->state == NGX_HTTP_CART_REDIS_READY
            && rc->pending < max
            && rc->ac
            && !(rc->ac->c.flags & (REDIS_DISCONNECTING|REDIS_FREEING)))
        {
            node->next = n + 1;
            return rc;
        }
    }

    return NULL;
}


/* a connection of the node is in that state */

static ngx_uint_t
ngx_http_cart_redis_has(ngx_http_cart_redis_node_t *node, ngx_uint_t state)
{
    ngx_uint_t  i;

    for (i = 0; i < node->nconns; i++) {
        if (node->conns[i].state == state) {
            return 1;
        }
    }

    return 0;
}


/* connections */

void
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


void
ngx_http_cart_redis_connect(ngx_http_cart_redis_conn_t *rc)
{
    int                               on;
    ngx_str_t                         note;
    ngx_connection_t                 *c;
    redisAsyncContext                *ac;
    ngx_http_cart_redis_t            *redis;
    ngx_http_cart_redis_node_conf_t  *ncf;

    redis = rc->node->redis;
    ncf = rc->node->conf;

    on = 1;

    ac = redisAsyncConnect((char *) ncf->host.data, ncf->port);
    if (ac == NULL) {
        ngx_log_error(NGX_LOG_ERR, redis->log, 0,
                      "cart redis: cannot allocate a context for \"%V\"",
                      &ncf->url);
        ngx_http_cart_redis_schedule(rc);
        return;
    }

    if (ac->err) {
        if (ngx_http_cart_redis_log_now(rc->node,
                                        NGX_HTTP_CART_REDIS_LOG_CONNECT, &note)
            == NGX_OK)
        {
            ngx_log_error(NGX_LOG_ERR, redis->log, 0,
                          "cart redis: connect to \"%V\" failed: %s%V",
                          &ncf->url, ac->errstr, &note);
        }

        redisAsyncFree(ac);
        ngx_http_cart_redis_schedule(rc);
        return;
    }

    /* an idle connection to a peer gone without a FIN (a host down, a
     * NAT entry dropped) is found by the kernel, not by a request */

    if (setsockopt(ac->c.fd, SOL_SOCKET, SO_KEEPALIVE, (const void *) &on,
                   sizeof(int))
        == -1)
    {
        ngx_log_error(NGX_LOG_ALERT, redis->log, ngx_socket_errno,
                      "cart redis: setsockopt(SO_KEEPALIVE) failed for "
                      "\"%V\"", &ncf->url);
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
    ngx_http_cart_redis_set_state(rc, NGX_HTTP_CART_REDIS_CONNECTING);
    rc->timeouts = 0;
    rc->handshake = 0;

    if (rc->sub == NULL) {
        ngx_http_cart_metrics_node_gauge(rc->node->stat, pending,
                                         -(ngx_int_t) rc->pending);
    }

    rc->pending = 0;
    rc->out = 0;

    ac->data = rc;
    ac->ev.data = rc;
    ac->ev.addRead = ngx_http_cart_redis_add_read;
    ac->ev.delRead = ngx_http_cart_redis_del_read;
    ac->ev.addWrite = ngx_http_cart_redis_add_write;
    ac->ev.delWrite = ngx_http_cart_redis_del_write;
    ac->ev.cleanup = ngx_http_cart_redis_cleanup;

    redisAsyncSetConnectCallback(ac, ngx_http_cart_redis_on_connect);
    redisAsyncSetDisconnectCallback(ac, ngx_http_cart_redis_on_disconnect);

    if (ngx_http_cart_redis_handshake(rc) != NGX_OK) {
        /* not connected yet: hiredis calls no disconnect callback here */
        redisAsyncFree(ac);
        ngx_http_cart_redis_schedule(rc);
        return;
    }

    /* the first write event tells hiredis that the connect completed */
    ngx_http_cart_redis_add_write(rc);

    /* until the handshake is answered too */
    ngx_add_timer(&rc->connect, redis->cmcf->redis_timeout * 10);
}


static void
ngx_http_cart_redis_on_connect(const redisAsyncContext *ac, int status)
{
    ngx_str_t                    note;
    ngx_http_cart_redis_conn_t  *rc = ac->data;

    if (status != REDIS_OK) {
        if (rc->connect.timer_set) {
            ngx_del_timer(&rc->connect);
        }

        /* the first failure of an outage is an error, the retries are not */

        if (rc->backoff) {
            ngx_log_error(NGX_LOG_INFO, rc->node->redis->log, 0,
                          "cart redis: connect to \"%V\" failed: %s",
                          &rc->node->conf->url, ac->errstr);

        } else if (ngx_http_cart_redis_log_now(rc->node,
                                               NGX_HTTP_CART_REDIS_LOG_CONNECT,
                                               &note)
                   == NGX_OK)
        {
            ngx_log_error(NGX_LOG_ERR, rc->node->redis->log, 0,
                          "cart redis: connect to \"%V\" failed: %s%V",
                          &rc->node->conf->url, ac->errstr, &note);
        }

        /* hiredis frees the context after we return */
        ngx_http_cart_redis_schedule(rc);

        /* a master gone for good is replaced: the map says by whom */
        ngx_http_cart_redis_refresh_soon(rc->node->redis);
        return;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, rc->node->redis->log, 0,
                   "cart redis: connected to \"%V\" (#%ui), handshake",
                   &rc->node->conf->url, rc->index);

    if (rc->handshake == 0) {
        ngx_http_cart_redis_ready(rc);
    }
}


/* every handshake reply was OK: commands may run here now */

static void
ngx_http_cart_redis_ready(ngx_http_cart_redis_conn_t *rc)
{
    if (rc->connect.timer_set) {
        ngx_del_timer(&rc->connect);
    }

    ngx_log_error(NGX_LOG_INFO, rc->node->redis->log, 0,
                  "cart redis: connected to \"%V\" (#%ui)",
                  &rc->node->conf->url, rc->index);

    ngx_http_cart_redis_set_state(rc, NGX_HTTP_CART_REDIS_READY);
    rc->backoff = 0;
    rc->replied = ngx_current_msec;

    if (rc->sub) {
        /* the subscriber subscribes again to what it follows */
        rc->sub->handler(rc->sub->data, NGX_HTTP_CART_REDIS_SUB_UP, NULL,
                         NULL);
        return;
    }

    ngx_http_cart_redis_flush(rc->node, 0);

    /* at start, the first node up is asked for the cluster's map */
    ngx_http_cart_redis_refresh_soon(rc->node->redis);
}


/*
 * The node's waiting operations: sent now that a connection is ready, or
 * failed when none is left that could become ready (fail), never sent.
 * A handler called here may queue new ones: the list is taken first.
 */

static void
ngx_http_cart_redis_flush(ngx_http_cart_redis_node_t *node, ngx_int_t fail)
{
    ngx_queue_t                waiting, *q;
    ngx_http_cart_redis_op_t  *op;

    if (ngx_queue_empty(&node->waiting)) {
        return;
    }

    ngx_queue_init(&waiting);
    ngx_queue_add(&waiting, &node->waiting);
    ngx_queue_init(&node->waiting);

    while (!ngx_queue_empty(&waiting)) {
        q = ngx_queue_head(&waiting);
        ngx_queue_remove(q);
        op = ngx_queue_data(q, ngx_http_cart_redis_op_t, queue);

        op->waiting = 0;
        node->nwaiting--;
        ngx_http_cart_metrics_node_gauge(node->stat, pending, -1);

        if (fail || ngx_http_cart_redis_send(op, node, op->asking) != NGX_OK)
        {
            ngx_http_cart_redis_op_finish(op, NULL, NGX_ERROR);
            ngx_http_cart_redis_op_free(op);
        }
    }
}


static void
ngx_http_cart_redis_on_disconnect(const redisAsyncContext *ac, int status)
{
    ngx_str_t                    note;
    ngx_http_cart_redis_conn_t  *rc = ac->data;

    if (status != REDIS_OK && !rc->node->redis->exiting
        && ngx_http_cart_redis_log_now(rc->node, NGX_HTTP_CART_REDIS_LOG_LOST,
                                       &note)
           == NGX_OK)
    {
        ngx_log_error(NGX_LOG_ERR, rc->node->redis->log, 0,
                      "cart redis: connection to \"%V\" lost: %s%V",
                      &rc->node->conf->url,
                      ac->errstr ? ac->errstr : "closed", &note);
    }

    ngx_http_cart_redis_schedule(rc);
    ngx_http_cart_redis_refresh_soon(rc->node->redis);
}


static void
ngx_http_cart_redis_connect_timeout(ngx_event_t *ev)
{
    ngx_str_t                    note;
    ngx_http_cart_redis_conn_t  *rc = ev->data;

    if (ngx_http_cart_redis_log_now(rc->node, NGX_HTTP_CART_REDIS_LOG_CONNECT,
                                    &note)
        == NGX_OK)
    {
        ngx_log_error(NGX_LOG_ERR, ev->log, 0,
                      "cart redis: %s \"%V\" timed out%V",
                      (rc->ac->c.flags & REDIS_CONNECTED) ? "handshake with"
                                                         : "connect to",
                      &rc->node->conf->url, &note);
    }

    /* connected: the disconnect callback reschedules; if not, we do */
    redisAsyncFree(rc->ac);

    if (!rc->reconnect.timer_set) {
        ngx_http_cart_redis_schedule(rc);
    }
}


/* reconnection */

static void
ngx_http_cart_redis_schedule(ngx_http_cart_redis_conn_t *rc)
{
    ngx_msec_t              delay;
    ngx_http_cart_redis_t  *redis;

    redis = rc->node->redis;

    ngx_http_cart_redis_set_state(rc, NGX_HTTP_CART_REDIS_DISCONNECTED);

    if (redis->exiting || ngx_exiting || ngx_quit || ngx_terminate) {
        return;
    }

    if (rc->sub == NULL
        && !ngx_http_cart_redis_has(rc->node, NGX_HTTP_CART_REDIS_CONNECTING))
    {
        /* no connection left that could take them soon */
        ngx_http_cart_redis_flush(rc->node, 1);
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

    if (rc->node->stat >= 0) {
        ngx_http_cart_metrics_add(rc->node->redis->cmcf,
                                  nodes[rc->node->stat].reconnects);
    }

    ngx_http_cart_redis_connect(rc);
}


/* queued before the connect completes; no other command is given the
 * connection before each reply is OK (ngx_http_cart_redis_ready) */

static ngx_int_t
ngx_http_cart_redis_handshake(ngx_http_cart_redis_conn_t *rc)
{
    int                               argc;
    u_char                            db[NGX_INT_T_LEN];
    size_t                            argvlen[3];
    ngx_int_t                         rv;
    ngx_uint_t                        i;
    ngx_pool_t                       *pool;
    const char                       *argv[3];
    ngx_http_cart_redis_t            *redis;
    ngx_http_cart_redis_node_conf_t  *ncf;

    redis = rc->node->redis;
    ncf = rc->node->conf;

    pool = ngx_create_pool(NGX_DEFAULT_POOL_SIZE, redis->log);
    if (pool == NULL) {
        return NGX_ERROR;
    }

    rv = NGX_OK;

    if (ncf->password.len) {
        argc = 0;
        argv[argc] = "AUTH";
        argvlen[argc++] = sizeof("AUTH") - 1;

        if (ncf->user.len) {
            argv[argc] = (const char *) ncf->user.data;
            argvlen[argc++] = ncf->user.len;
        }

        argv[argc] = (const char *) ncf->password.data;
        argvlen[argc++] = ncf->password.len;

        rv = ngx_http_cart_redis_queue(rc, pool, "AUTH", argc, argv, argvlen);
    }

    if (rv == NGX_OK && ncf->db) {
        argv[0] = "SELECT";
        argvlen[0] = sizeof("SELECT") - 1;
        argv[1] = (const char *) db;
        argvlen[1] = ngx_sprintf(db, "%ui", ncf->db) - db;

        rv = ngx_http_cart_redis_queue(rc, pool, "SELECT", 2, argv, argvlen);
    }

    argv[0] = "SCRIPT";
    argvlen[0] = sizeof("SCRIPT") - 1;
    argv[1] = "LOAD";
    argvlen[1] = sizeof("LOAD") - 1;

    /* a subscriber runs no scripts (and, subscribed, could not load them) */

    for (i = 0; rv == NGX_OK && rc->sub == NULL && i < redis->nscripts; i++)
    {
        argv[2] = redis->scripts[i].data;
        argvlen[2] = redis->scripts[i].len;

        rv = ngx_http_cart_redis_queue(rc, pool, "SCRIPT LOAD", 3, argv,
                                       argvlen);
    }

    ngx_destroy_pool(pool);

    if (rv != NGX_OK) {
        ngx_log_error(NGX_LOG_ERR, redis->log, 0,
                      "cart redis: cannot queue the handshake for \"%V\"",
                      &ncf->url);
    }

    return rv;
}


/* a handshake command; hiredis copies it into its output buffer at once */

static ngx_int_t
ngx_http_cart_redis_queue(ngx_http_cart_redis_conn_t *rc, ngx_pool_t *pool,
    char *name, int argc, const char **argv, const size_t *argvlen)
{
    ngx_int_t  rv;
    ngx_str_t  cmd;

    if (ngx_http_cart_redis_format(pool, argc, argv, argvlen, &cmd)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    rv = ngx_http_cart_redis_append(rc, ngx_http_cart_redis_handshake_reply,
                                    name, (char *) cmd.data, cmd.len);

    /* a script's text is a large allocation: it goes back at once */
    ngx_pfree(pool, cmd.data);

    if (rv == NGX_OK) {
        rc->handshake++;
    }

    return rv;
}


static void
ngx_http_cart_redis_handshake_reply(redisAsyncContext *ac, void *reply,
    void *privdata)
{
    ngx_str_t                    note;
    redisReply                  *r = reply;
    ngx_http_cart_redis_conn_t  *rc = ac->data;

    if (r == NULL) {
        /* the connection is going: ngx_http_cart_redis_schedule tells */
        return;
    }

    if (r->type == REDIS_REPLY_ERROR) {
        if (ngx_http_cart_redis_log_now(rc->node,
                                        NGX_HTTP_CART_REDIS_LOG_HANDSHAKE,
                                        &note)
            == NGX_OK)
        {
            ngx_log_error(NGX_LOG_ERR, rc->node->redis->log, 0,
                          "cart redis: %s on \"%V\" failed: %*s, closing "
                          "the connection%V", (char *) privdata,
                          &rc->node->conf->url, (size_t) r->len, r->str,
                          &note);
        }

        /* a wrong user, password or database: the connection never gets
         * a command; hiredis frees it when this callback returns */
        redisAsyncFree(ac);
        return;
    }

    if (--rc->handshake == 0) {
        ngx_http_cart_redis_ready(rc);
    }
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

    ngx_http_cart_redis_set_state(rc, NGX_HTTP_CART_REDIS_DISCONNECTED);

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

    /* hiredis closes the fd itself; closing it here too could close a
     * reused descriptor number under someone else */
    c->fd = (ngx_socket_t) -1;
    ngx_free_connection(c);
}


/* commands */

ngx_int_t
ngx_http_cart_redis_command(ngx_http_request_t *r, ngx_str_t *key, int argc,
    const char **argv, const size_t *argvlen,
    ngx_http_cart_redis_handler_pt handler, void *data)
{
    return ngx_http_cart_redis_command_in(r, r->pool, NULL, key, argc, argv,
                                          argvlen, handler, data);
}


ngx_int_t
ngx_http_cart_redis_command_in(ngx_http_request_t *r, ngx_pool_t *pool,
    ngx_http_cleanup_t *cln, ngx_str_t *key, int argc, const char **argv,
    const size_t *argvlen, ngx_http_cart_redis_handler_pt handler, void *data)
{
    ngx_http_cart_redis_t       *redis;
    ngx_http_cart_redis_op_t    *op;
    ngx_http_cart_main_conf_t   *cmcf;

    cmcf = ngx_http_get_module_main_conf(r, ngx_http_cart_module);
    redis = cmcf->redis;

    if (redis == NULL) {
        return NGX_ERROR;
    }

    if (cln == NULL) {
        cln = ngx_http_cleanup_add(r, 0);
        if (cln == NULL) {
            return NGX_ERROR;
        }
    }

    op = ngx_http_cart_redis_op_get(redis);
    if (op == NULL) {
        return NGX_ERROR;
    }

    if (ngx_http_cart_redis_format(pool, argc, argv, argvlen, &op->cmd)
        != NGX_OK
        || ngx_http_cart_redis_send(op, ngx_http_cart_redis_route(redis, key),
                                    0)
           != NGX_OK)
    {
        /* hiredis did not take it: it will not call us back */
        ngx_http_cart_redis_op_free(op);
        ngx_http_cart_redis_refresh_soon(redis);
        return NGX_ERROR;
    }

    op->request = r;
    op->handler = handler;
    op->data = data;
    op->cleanup = cln;

    cln->handler = ngx_http_cart_redis_op_cleanup;
    cln->data = op;

    ngx_add_timer(&op->timer, cmcf->redis_timeout);

    return NGX_OK;
}


ngx_int_t
ngx_http_cart_redis_read(ngx_http_request_t *r, const char *cmd,
    ngx_str_t *key, ngx_http_cart_redis_handler_pt handler, void *data)
{
    const char  *argv[2];
    size_t       argvlen[2];

    /* the command is written out before ngx_http_cart_redis_command returns */

    argv[0] = cmd;
    argvlen[0] = ngx_strlen(cmd);
    argv[1] = (const char *) key->data;
    argvlen[1] = key->len;

    return ngx_http_cart_redis_command(r, key, 2, argv, argvlen, handler,
                                       data);
}


/*
 * Sends the operation's command on a ready connection of the node. While
 * none is ready but one is connecting or in its handshake, the operation
 * waits in the node's queue (its timer runs). NGX_ERROR: not sent, and
 * it will not be.
 */

ngx_int_t
ngx_http_cart_redis_send(ngx_http_cart_redis_op_t *op,
    ngx_http_cart_redis_node_t *node, ngx_uint_t asking)
{
    ngx_str_t                    note;
    ngx_uint_t                   max;
    ngx_http_cart_redis_conn_t  *rc;

    rc = ngx_http_cart_redis_pick(node);

    if (rc) {
        return ngx_http_cart_redis_write(op, rc, asking);
    }

    max = node->redis->cmcf->redis_max_pending;

    if (ngx_http_cart_redis_has(node, NGX_HTTP_CART_REDIS_READY)) {
        /* a stall: failing fast keeps the worker's memory flat */

        if (ngx_http_cart_redis_log_now(node, NGX_HTTP_CART_REDIS_LOG_BUSY,
                                        &note)
            == NGX_OK)
        {
            ngx_log_error(NGX_LOG_ERR, op->redis->log, 0,
                          "cart redis: every connection to \"%V\" has %ui "
                          "commands in flight (cart_redis_max_pending)%V",
                          &node->conf->url, max, &note);
        }

        return NGX_ERROR;
    }

    if (!ngx_http_cart_redis_has(node, NGX_HTTP_CART_REDIS_CONNECTING)) {
        if (ngx_http_cart_redis_log_now(node, NGX_HTTP_CART_REDIS_LOG_NOCONN,
                                        &note)
            == NGX_OK)
        {
            ngx_log_error(NGX_LOG_ERR, op->redis->log, 0,
                          "cart redis: no connection to \"%V\"%V",
                          &node->conf->url, &note);
        }

        return NGX_ERROR;
    }

    if (node->nwaiting >= max) {
        if (ngx_http_cart_redis_log_now(node, NGX_HTTP_CART_REDIS_LOG_QUEUE,
                                        &note)
            == NGX_OK)
        {
            ngx_log_error(NGX_LOG_ERR, op->redis->log, 0,
                          "cart redis: %ui commands wait for a connection to "
                          "\"%V\" already%V", node->nwaiting,
                          &node->conf->url, &note);
        }

        return NGX_ERROR;
    }

    op->conn = NULL;
    op->node = node;
    op->asking = asking;
    op->waiting = 1;

    ngx_queue_insert_tail(&node->waiting, &op->queue);
    node->nwaiting++;
    ngx_http_cart_metrics_node_gauge(node->stat, pending, 1);

    return NGX_OK;
}


static ngx_int_t
ngx_http_cart_redis_write(ngx_http_cart_redis_op_t *op,
    ngx_http_cart_redis_conn_t *rc, ngx_uint_t asking)
{
    static const char  asking_cmd[] = "*1\r\n$6\r\nASKING\r\n";

    /* ASKING holds for the next command of this connection only */

    if (asking
        && ngx_http_cart_redis_append(rc, NULL, NULL, asking_cmd,
                                      sizeof(asking_cmd) - 1)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    op->start = rc->out;

    if (ngx_http_cart_redis_append(rc, ngx_http_cart_redis_reply, op,
                                   (char *) op->cmd.data, op->cmd.len)
        != NGX_OK)
    {
        /* disconnecting */
        return NGX_ERROR;
    }

    op->conn = rc;
    rc->pending++;
    ngx_http_cart_metrics_node_gauge(rc->node->stat, pending, 1);

    return NGX_OK;
}


/*
 * Every command reaches hiredis's output buffer through here (but the
 * subscriber's, which carries no operation): counting the bytes tells a
 * command written to the socket, which may run, from one still in the
 * buffer when the connection breaks, which never will.
 */

ngx_int_t
ngx_http_cart_redis_append(ngx_http_cart_redis_conn_t *rc,
    redisCallbackFn *fn, void *privdata, const char *cmd, size_t len)
{
    if (redisAsyncFormattedCommand(rc->ac, fn, privdata, cmd, len)
        != REDIS_OK)
    {
        return NGX_ERROR;
    }

    rc->out += len;

    return NGX_OK;
}


static void
ngx_http_cart_redis_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    uint64_t                     written;
    ngx_str_t                    note;
    ngx_int_t                    status;
    redisReply                  *rr = reply;
    ngx_http_cart_redis_op_t    *op = privdata;
    ngx_http_cart_redis_conn_t  *rc;

    rc = op->conn;

    /* a redirection sends it again, counted on its new connection */
    rc->pending--;
    ngx_http_cart_metrics_node_gauge(rc->node->stat, pending, -1);

    if (rr) {
        rc->timeouts = 0;
        rc->replied = ngx_current_msec;
    }

    if (op->request && !op->redis->exiting) {

        if (rr && rr->type == REDIS_REPLY_ERROR && op->redis->slots) {

            switch (ngx_http_cart_redis_redirect(op, rr)) {

            case NGX_OK:
                /* sent again: the operation now waits on another node */
                return;

            case NGX_ERROR:
                ngx_http_cart_redis_op_finish(op, NULL, NGX_ERROR);
                ngx_http_cart_redis_op_free(op);
                return;

            default: /* NGX_DECLINED: an error for the caller */
                break;
            }
        }

        status = NGX_OK;

        /* NOSCRIPT is the scripts layer's to recover from */

        if (rr && rr->type == REDIS_REPLY_ERROR
            && !(rr->len >= 8 && ngx_strncmp(rr->str, "NOSCRIPT", 8) == 0)
            && ngx_http_cart_redis_log_now(rc->node,
                                           NGX_HTTP_CART_REDIS_LOG_REPLY,
                                           &note)
               == NGX_OK)
        {
            ngx_log_error(NGX_LOG_ERR, op->redis->log, 0,
                          "cart redis: \"%V\" answered an error: %*s%V",
                          &rc->node->conf->url, (size_t) rr->len, rr->str,
                          &note);
        }

        if (rr == NULL) {
            /* the connection broke; hiredis still has its output buffer */
            written = rc->out - sdslen(ac->c.obuf);
            status = (written > op->start) ? NGX_DECLINED : NGX_ERROR;
        }

        ngx_http_cart_redis_op_finish(op, rr, status);
    }

    ngx_http_cart_redis_op_free(op);
}


/* operations */

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

    ngx_str_null(&op->cmd);

    if (op->redis->exiting) {
        ngx_free(op);
        return;
    }

    ngx_queue_insert_head(&op->redis->free_ops, &op->queue);
}



static void
ngx_http_cart_redis_op_timeout(ngx_event_t *ev)
{
    ngx_log_t                   *log;
    ngx_str_t                    note;
    ngx_http_cart_redis_op_t    *op = ev->data;
    ngx_http_cart_redis_conn_t  *rc;
    ngx_http_cart_redis_node_t  *node;

    log = op->redis->log;

    node = op->waiting ? op->node : op->conn->node;

    if (node->stat >= 0) {
        ngx_http_cart_metrics_add(op->redis->cmcf, nodes[node->stat].timeouts);
    }

    if (op->waiting) {
        ngx_queue_remove(&op->queue);
        node->nwaiting--;
        ngx_http_cart_metrics_node_gauge(node->stat, pending, -1);
        op->waiting = 0;

        if (ngx_http_cart_redis_log_now(node, NGX_HTTP_CART_REDIS_LOG_WAITED,
                                        &note)
            == NGX_OK)
        {
            ngx_log_error(NGX_LOG_ERR, log, 0,
                          "cart redis: no connection to \"%V\" was ready "
                          "in time%V", &node->conf->url, &note);
        }

        /* never sent */
        ngx_http_cart_redis_op_finish(op, NULL, NGX_ERROR);
        ngx_http_cart_redis_op_free(op);
        return;
    }

    rc = op->conn;

    if (ngx_http_cart_redis_log_now(node, NGX_HTTP_CART_REDIS_LOG_TIMEOUT,
                                    &note)
        == NGX_OK)
    {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "cart redis: command timed out on \"%V\"%V",
                      &node->conf->url, &note);
    }

    /* the operation stays with hiredis until its reply or the disconnect;
     * the request, and its connection's log, may be gone when this returns */
    ngx_http_cart_redis_op_finish(op, NULL, NGX_AGAIN);

    /*
     * Timeouts in a row and not one reply for a whole cart_redis_timeout:
     * a black hole, reconnect. A Redis that answers, only late (overload),
     * keeps its connection: reconnecting would fail every command in
     * flight and make the overload worse.
     */

    if (++rc->timeouts >= NGX_HTTP_CART_REDIS_MAX_TIMEOUTS
        && ngx_current_msec - rc->replied >= op->redis->cmcf->redis_timeout
        && rc->ac)
    {
        if (ngx_http_cart_redis_log_now(node,
                                        NGX_HTTP_CART_REDIS_LOG_UNANSWERED,
                                        &note)
            == NGX_OK)
        {
            ngx_log_error(NGX_LOG_ERR, log, 0,
                          "cart redis: \"%V\" is not answering, "
                          "reconnecting%V", &node->conf->url, &note);
        }

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

    if (op->waiting) {
        /* never sent: it goes with its request */
        ngx_queue_remove(&op->queue);
        op->node->nwaiting--;
        ngx_http_cart_metrics_node_gauge(op->node->stat, pending, -1);
        op->waiting = 0;
        op->cleanup = NULL;
        ngx_http_cart_redis_op_free(op);
        return;
    }

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

        /* outside nginx's request handlers: run the posted requests
         * (new subrequests, parents to wake) ourselves */
        ngx_http_run_posted_requests(c);
    }
}


/*
 * One error line per node, kind and second: an outage would write one per
 * request. NGX_DECLINED: hold this one back; else "note" ends the line,
 * with how many like it were held back since the last one, or is empty.
 */

ngx_int_t
ngx_http_cart_redis_log_now(ngx_http_cart_redis_node_t *node,
    ngx_uint_t kind, ngx_str_t *note)
{
    ngx_msec_t                    elapsed;
    ngx_http_cart_redis_quiet_t  *q;

    static u_char  buf[sizeof(" ( more in the last s)") + 2 * NGX_INT_T_LEN];

    q = &node->quiet[kind];
    elapsed = ngx_current_msec - q->last;

    if (q->last && elapsed < NGX_HTTP_CART_REDIS_LOG_EVERY) {
        q->held++;
        return NGX_DECLINED;
    }

    note->data = buf;
    note->len = 0;

    if (q->held) {
        note->len = ngx_sprintf(buf, " (%ui more in the last %Ms)", q->held,
                                (elapsed + 999) / 1000)
                    - buf;
    }

    q->last = ngx_current_msec;
    q->held = 0;

    return NGX_OK;
}


/*
 * The RESP writer: one pool buffer, sized up front. hiredis's argv
 * formatting (an sdscatfmt per argument) was a fifth of an add's work.
 */

static ngx_int_t
ngx_http_cart_redis_format(ngx_pool_t *pool, int argc, const char **argv,
    const size_t *argvlen, ngx_str_t *cmd)
{
    int      i;
    size_t   len;
    u_char  *p;

    len = sizeof("*" CRLF) - 1 + ngx_http_cart_redis_digits(argc);

    for (i = 0; i < argc; i++) {
        len += sizeof("$" CRLF CRLF) - 1
               + ngx_http_cart_redis_digits(argvlen[i]) + argvlen[i];
    }

    cmd->data = ngx_pnalloc(pool, len);
    if (cmd->data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_http_cart_redis_head(cmd->data, '*', argc);

    for (i = 0; i < argc; i++) {
        p = ngx_http_cart_redis_head(p, '$', argvlen[i]);

        /* an empty argument may be a NULL one (ngx_str_null()): memcpy()
         * of NULL is undefined even for 0 bytes */
        if (argvlen[i]) {
            p = ngx_cpymem(p, argv[i], argvlen[i]);
        }

        *p++ = CR; *p++ = LF;
    }

    cmd->len = len;

    return NGX_OK;
}


/* "*3\r\n", "$40\r\n": a type byte, the number in decimal, CRLF */

static u_char *
ngx_http_cart_redis_head(u_char *p, u_char type, size_t n)
{
    u_char  *end;

    *p++ = type;

    end = p + ngx_http_cart_redis_digits(n);
    p = end;

    do {
        *--p = (u_char) ('0' + n % 10);
        n /= 10;
    } while (n);

    *end++ = CR; *end++ = LF;

    return end;
}


static size_t
ngx_http_cart_redis_digits(size_t n)
{
    size_t  d;

    for (d = 1; n >= 10; d++) {
        n /= 10;
    }

    return d;
}
