/*
 * Redis Cluster. The cart_redis URLs are seeds: a worker asks a node
 * CLUSTER SLOTS, keeps a slot -> node table and adds a node per master.
 * Until the table is known a command goes to any node and follows MOVED.
 * A node that two maps in a row do not name is retired: its connections
 * closed, its commands failed, the node kept for the next new address.
 */

#include "ngx_http_cart_redis_int.h"
#include "ngx_http_cart_slot.h"


#define NGX_HTTP_CART_REDIS_MAX_NODES      128
#define NGX_HTTP_CART_REDIS_MAX_REDIRECTS  5
/* CLUSTER SLOTS: at most one per MIN, RETRY after a failure, and EVERY */
#define NGX_HTTP_CART_REDIS_REFRESH_MIN    500
#define NGX_HTTP_CART_REDIS_REFRESH_RETRY  1000
#define NGX_HTTP_CART_REDIS_REFRESH_EVERY  30000
/* maps in a row that do not name a node before it is retired: one map
 * may be an old view, from a node that has not heard of a change yet */
#define NGX_HTTP_CART_REDIS_RETIRE_AFTER   2


/* the configuration of a node the cluster named, with room for any
 * address: it goes with the node when the node is reused */
typedef struct {
    ngx_http_cart_redis_node_conf_t    conf;
    u_char                             host[NGX_INET6_ADDRSTRLEN + 1];
    u_char                             url[sizeof("redis://:65535") - 1
                                           + NGX_INET6_ADDRSTRLEN];
} ngx_http_cart_redis_cluster_conf_t;


static ngx_http_cart_redis_node_t *ngx_http_cart_redis_node_get(
    ngx_http_cart_redis_t *redis, ngx_str_t *host, ngx_uint_t port);
static ngx_http_cart_redis_node_t *ngx_http_cart_redis_node_reuse(
    ngx_http_cart_redis_t *redis, ngx_str_t *host, ngx_uint_t port);
static void ngx_http_cart_redis_conf_set(
    ngx_http_cart_redis_cluster_conf_t *ccf, ngx_str_t *host,
    ngx_uint_t port);
static void ngx_http_cart_redis_retire(ngx_http_cart_redis_t *redis,
    ngx_http_cart_redis_node_t *answered);
static void ngx_http_cart_redis_node_retire(ngx_http_cart_redis_t *redis,
    ngx_uint_t i);
static void ngx_http_cart_redis_refresh_handler(ngx_event_t *ev);
static void ngx_http_cart_redis_slots_reply(redisAsyncContext *ac,
    void *reply, void *privdata);
static ngx_int_t ngx_http_cart_redis_slots_valid(redisReply *reply);


ngx_int_t
ngx_http_cart_redis_cluster_init(ngx_http_cart_redis_t *redis)
{
    ngx_uint_t                    i;
    ngx_http_cart_redis_node_t  **nodes;

    /* the nodes so far are the seeds: never retired */

    nodes = redis->nodes.elts;

    for (i = 0; i < redis->nodes.nelts; i++) {
        nodes[i]->seed = 1;
    }

    redis->slots = ngx_pcalloc(redis->pool, NGX_HTTP_CART_SLOTS
                                       * sizeof(ngx_http_cart_redis_node_t *));
    if (redis->slots == NULL) {
        return NGX_ERROR;
    }

    redis->refresh.handler = ngx_http_cart_redis_refresh_handler;
    redis->refresh.data = redis;
    redis->refresh.log = redis->log;
    redis->refresh.cancelable = 1;

    /* the first connection ready asks at once (ngx_http_cart_redis_ready);
     * this is the retry when none is */
    ngx_add_timer(&redis->refresh, NGX_HTTP_CART_REDIS_REFRESH_RETRY);

    return NGX_OK;
}


ngx_http_cart_redis_node_t *
ngx_http_cart_redis_route(ngx_http_cart_redis_t *redis, ngx_str_t *key)
{
    ngx_uint_t                    i;
    ngx_http_cart_redis_node_t  **nodes, *node;

    nodes = redis->nodes.elts;

    if (redis->slots == NULL) {
        return nodes[0];
    }

    node = redis->slots[ngx_http_cart_slot(key->data, key->len)];

    if (node) {
        return node;
    }

    /* the map is not known yet: a node that is up answers MOVED */

    for (i = 0; i < redis->nodes.nelts; i++) {
        if (ngx_http_cart_redis_pick(nodes[i])) {
            return nodes[i];
        }
    }

    return nodes[0];
}


/*
 * An error reply: MOVED and ASK are followed, the operation is sent again
 * (NGX_OK); TRYAGAIN, CLUSTERDOWN or a redirection that cannot be
 * followed end the command (NGX_ERROR); other errors are the caller's
 * (NGX_DECLINED).
 */

ngx_int_t
ngx_http_cart_redis_redirect(ngx_http_cart_redis_op_t *op, redisReply *reply)
{
    u_char                      *p, *last, *sp, *colon;
    ngx_int_t                    slot, port;
    ngx_str_t                    host, text, note;
    ngx_uint_t                   ask;
    ngx_http_cart_redis_t       *redis;
    ngx_http_cart_redis_node_t  *node;

    redis = op->redis;

    p = (u_char *) reply->str;
    last = p + reply->len;

    text.data = p;
    text.len = reply->len;

    if (reply->len > sizeof("MOVED ") - 1
        && ngx_strncmp(p, "MOVED ", sizeof("MOVED ") - 1) == 0)
    {
        ask = 0;
        p += sizeof("MOVED ") - 1;

    } else if (reply->len > sizeof("ASK ") - 1
               && ngx_strncmp(p, "ASK ", sizeof("ASK ") - 1) == 0)
    {
        ask = 1;
        p += sizeof("ASK ") - 1;

    } else if (ngx_strncmp(p, "TRYAGAIN", sizeof("TRYAGAIN") - 1) == 0
               || ngx_strncmp(p, "CLUSTERDOWN", sizeof("CLUSTERDOWN") - 1)
                  == 0)
    {
        if (ngx_http_cart_redis_log_now(op->conn->node,
                                        NGX_HTTP_CART_REDIS_LOG_CLUSTER,
                                        &note)
            == NGX_OK)
        {
            ngx_log_error(NGX_LOG_ERR, redis->log, 0,
                          "cart redis: \"%V\" answered \"%V\"%V",
                          &op->conn->node->conf->url, &text, &note);
        }

        ngx_http_cart_redis_refresh_soon(redis);
        return NGX_ERROR;

    } else {
        return NGX_DECLINED;
    }

    /* "<slot> <host>:<port>", host empty when it is the node that answered */

    sp = ngx_strlchr(p, last, ' ');
    if (sp == NULL) {
        goto invalid;
    }

    slot = ngx_atoi(p, sp - p);

    for (colon = last; colon > sp && colon[-1] != ':'; colon--) {
        /* void */
    }

    if (slot == NGX_ERROR || slot >= NGX_HTTP_CART_SLOTS || colon == sp + 1
        || colon == last)
    {
        goto invalid;
    }

    port = ngx_atoi(colon, last - colon);
    if (port < 1 || port > 65535) {
        goto invalid;
    }

    host.data = sp + 1;
    host.len = colon - 1 - host.data;

    if (host.len == 0) {
        host = op->conn->node->conf->host;
    }

    if (++op->redirects > NGX_HTTP_CART_REDIS_MAX_REDIRECTS) {
        if (ngx_http_cart_redis_log_now(op->conn->node,
                                        NGX_HTTP_CART_REDIS_LOG_REDIRECT,
                                        &note)
            == NGX_OK)
        {
            ngx_log_error(NGX_LOG_ERR, redis->log, 0,
                          "cart redis: too many redirections, the last "
                          "\"%V\"%V", &text, &note);
        }

        ngx_http_cart_redis_refresh_soon(redis);
        return NGX_ERROR;
    }

    node = ngx_http_cart_redis_node_get(redis, &host, port);
    if (node == NULL) {
        return NGX_ERROR;
    }

    if (op->conn->node->stat >= 0) {
        if (ask) {
            ngx_http_cart_metrics_add(redis->cmcf,
                                      nodes[op->conn->node->stat].asked);
        } else {
            ngx_http_cart_metrics_add(redis->cmcf,
                                      nodes[op->conn->node->stat].moved);
        }
    }

    ngx_log_error(NGX_LOG_INFO, redis->log, 0,
                  "cart redis: following \"%V\"", &text);

    if (!ask) {
        /* the slot has moved for good: the rest of the map may have too */
        redis->slots[slot] = node;
        ngx_http_cart_redis_refresh_soon(redis);
    }

    return ngx_http_cart_redis_send(op, node, ask);

invalid:

    if (ngx_http_cart_redis_log_now(op->conn->node,
                                    NGX_HTTP_CART_REDIS_LOG_REDIRECT, &note)
        == NGX_OK)
    {
        ngx_log_error(NGX_LOG_ERR, redis->log, 0,
                      "cart redis: invalid redirection \"%V\"%V", &text,
                      &note);
    }

    return NGX_ERROR;
}


/* the node at host:port, added if new; by IP address only: getaddrinfo()
 * must never run in a worker (a cluster announces IPs by default) */

static ngx_http_cart_redis_node_t *
ngx_http_cart_redis_node_get(ngx_http_cart_redis_t *redis, ngx_str_t *host,
    ngx_uint_t port)
{
    ngx_uint_t                           i;
    ngx_http_cart_redis_node_t         **nodes, *node;
    ngx_http_cart_redis_node_conf_t     *conf, *seed;
    ngx_http_cart_redis_cluster_conf_t  *ccf;
#if (NGX_HAVE_INET6)
    u_char                               addr6[16];
#endif

    nodes = redis->nodes.elts;

    for (i = 0; i < redis->nodes.nelts; i++) {
        conf = nodes[i]->conf;

        if (conf->port == port
            && conf->host.len == host->len
            && ngx_strncmp(conf->host.data, host->data, host->len) == 0)
        {
            return nodes[i];
        }
    }

    if (host->len > NGX_INET6_ADDRSTRLEN
        || (ngx_inet_addr(host->data, host->len) == INADDR_NONE
#if (NGX_HAVE_INET6)
            && ngx_inet6_addr(host->data, host->len, addr6) != NGX_OK
#endif
           ))
    {
        ngx_log_error(NGX_LOG_ERR, redis->log, 0,
                      "cart redis: cluster node \"%V\" is not an IP address",
                      host);
        return NULL;
    }

    if (redis->nodes.nelts >= NGX_HTTP_CART_REDIS_MAX_NODES) {
        ngx_log_error(NGX_LOG_ERR, redis->log, 0,
                      "cart redis: more than %d cluster nodes, "
                      "\"%V:%ui\" ignored",
                      NGX_HTTP_CART_REDIS_MAX_NODES, host, port);
        return NULL;
    }

    if (redis->spare) {
        return ngx_http_cart_redis_node_reuse(redis, host, port);
    }

    ccf = ngx_pcalloc(redis->pool, sizeof(ngx_http_cart_redis_cluster_conf_t));
    if (ccf == NULL) {
        return NULL;
    }

    /* the credentials of the seeds; a cluster has database 0 only */

    seed = redis->cmcf->redis_nodes->elts;
    ccf->conf.user = seed->user;
    ccf->conf.password = seed->password;

    ngx_http_cart_redis_conf_set(ccf, host, port);

    node = ngx_http_cart_redis_node_add(redis, &ccf->conf);

    if (node) {
        ngx_log_error(NGX_LOG_INFO, redis->log, 0,
                      "cart redis: cluster node \"%V\" added",
                      &ccf->conf.url);
    }

    return node;
}


/* a retired node for a new address: its memory, configuration and
 * connections made again */

static ngx_http_cart_redis_node_t *
ngx_http_cart_redis_node_reuse(ngx_http_cart_redis_t *redis, ngx_str_t *host,
    ngx_uint_t port)
{
    ngx_uint_t                   j;
    ngx_http_cart_redis_conn_t  *rc;
    ngx_http_cart_redis_node_t  *node, **slot;

    slot = ngx_array_push(&redis->nodes);
    if (slot == NULL) {
        return NULL;
    }

    node = redis->spare;
    redis->spare = node->spare;
    redis->nspare--;

    node->spare = NULL;
    node->next = 0;
    node->unnamed = 0;
    node->named = 0;

    ngx_http_cart_redis_conf_set(
        (ngx_http_cart_redis_cluster_conf_t *) node->conf, host, port);

    *slot = node;

    ngx_http_cart_redis_node_stat(node);

    ngx_log_error(NGX_LOG_INFO, redis->log, 0,
                  "cart redis: cluster node \"%V\" added (a spare reused)",
                  &node->conf->url);

    for (j = 0; j < node->nconns; j++) {
        rc = &node->conns[j];
        ngx_memzero(rc, sizeof(ngx_http_cart_redis_conn_t));
        ngx_http_cart_redis_conn_init(rc, node, j);
        ngx_http_cart_redis_connect(rc);
    }

    return node;
}


static void
ngx_http_cart_redis_conf_set(ngx_http_cart_redis_cluster_conf_t *ccf,
    ngx_str_t *host, ngx_uint_t port)
{
    ngx_http_cart_redis_node_conf_t  *conf;

    conf = &ccf->conf;

    conf->port = port;

    conf->host.data = ccf->host;
    conf->host.len = host->len;
    *ngx_cpymem(ccf->host, host->data, host->len) = '\0';

    conf->url.data = ccf->url;
    conf->url.len = ngx_sprintf(ccf->url, "redis://%V:%ui", host, port)
                    - ccf->url;
}


/*
 * After a map: a node that is no seed and that NGX_HTTP_CART_REDIS_RETIRE_AFTER
 * maps in a row did not name is retired, except the one that answered
 * (its connection is in a hiredis callback now; the next map, from
 * another node, retires it).
 */

static void
ngx_http_cart_redis_retire(ngx_http_cart_redis_t *redis,
    ngx_http_cart_redis_node_t *answered)
{
    ngx_uint_t                    i;
    ngx_http_cart_redis_node_t  **nodes, *node;

    i = 0;

    while (i < redis->nodes.nelts) {
        /* read again: retiring fails commands, whose handlers run now */
        nodes = redis->nodes.elts;
        node = nodes[i];

        if (node->named) {
            node->named = 0;
            node->unnamed = 0;
            i++;
            continue;
        }

        if (node->seed
            || ++node->unnamed < NGX_HTTP_CART_REDIS_RETIRE_AFTER
            || node == answered)
        {
            i++;
            continue;
        }

        ngx_http_cart_redis_node_retire(redis, i);
    }
}


static void
ngx_http_cart_redis_node_retire(ngx_http_cart_redis_t *redis, ngx_uint_t i)
{
    ngx_uint_t                    j;
    ngx_http_cart_redis_conn_t   *rc;
    ngx_http_cart_redis_node_t  **nodes, *node;

    nodes = redis->nodes.elts;
    node = nodes[i];

    /* out of the list first: no command is routed to it any more */

    ngx_memmove(&nodes[i], &nodes[i + 1],
                (redis->nodes.nelts - i - 1)
                * sizeof(ngx_http_cart_redis_node_t *));
    redis->nodes.nelts--;

    ngx_log_error(NGX_LOG_INFO, redis->log, 0,
                  "cart redis: cluster node \"%V\" retired, no slot map "
                  "names it", &node->conf->url);

    for (j = 0; j < node->nconns; j++) {
        rc = &node->conns[j];

        /* its commands get no reply: 503 store_unavailable */

        if (rc->ac) {
            redisAsyncFree(rc->ac);
        }

        /* the disconnect callback asked for a reconnection */

        if (rc->reconnect.timer_set) {
            ngx_del_timer(&rc->reconnect);
        }

        if (rc->connect.timer_set) {
            ngx_del_timer(&rc->connect);
        }

        ngx_http_cart_redis_set_state(rc, NGX_HTTP_CART_REDIS_DISCONNECTED);
    }

    if (redis->sub) {
        ngx_http_cart_redis_sub_leave(redis->sub, node);
    }

    /* its label may go to another node: the label set stays bounded */
    ngx_http_cart_metrics_node_free(redis->cmcf, node->stat);
    node->stat = -1;

    node->spare = redis->spare;
    redis->spare = node;
    redis->nspare++;
}


/* asks for a new slot map soon: at most one CLUSTER SLOTS in flight and
 * one every NGX_HTTP_CART_REDIS_REFRESH_MIN */

void
ngx_http_cart_redis_refresh_soon(ngx_http_cart_redis_t *redis)
{
    ngx_msec_t  since, delay;

    if (redis->slots == NULL || redis->refreshing || redis->exiting
        || ngx_exiting || ngx_quit || ngx_terminate)
    {
        return;
    }

    since = ngx_current_msec - redis->refreshed;
    delay = since < NGX_HTTP_CART_REDIS_REFRESH_MIN
            ? NGX_HTTP_CART_REDIS_REFRESH_MIN - since : 0;

    if (redis->refresh.timer_set
        && (ngx_msec_int_t) (redis->refresh.timer.key - ngx_current_msec)
           <= (ngx_msec_int_t) delay)
    {
        return;
    }

    ngx_add_timer(&redis->refresh, delay);
}


/* sends CLUSTER SLOTS to the next node with a connection; firing again
 * while it is in flight means no answer came: the next node is asked */

static void
ngx_http_cart_redis_refresh_handler(ngx_event_t *ev)
{
    ngx_uint_t                    i, n;
    ngx_http_cart_redis_t        *redis;
    ngx_http_cart_redis_conn_t   *rc;
    ngx_http_cart_redis_node_t  **nodes;

    static const char  slots[] = "*2\r\n$7\r\nCLUSTER\r\n$5\r\nSLOTS\r\n";

    redis = ev->data;

    if (redis->exiting || ngx_exiting || ngx_quit || ngx_terminate) {
        return;
    }

    if (redis->refreshing) {
        ngx_log_error(NGX_LOG_ERR, ev->log, 0,
                      "cart redis: CLUSTER SLOTS timed out");
        redis->refreshing = 0;
    }

    nodes = redis->nodes.elts;
    rc = NULL;

    for (i = 0; i < redis->nodes.nelts; i++) {
        n = (redis->refresh_next + i) % redis->nodes.nelts;
        rc = ngx_http_cart_redis_pick(nodes[n]);

        if (rc) {
            redis->refresh_next = n + 1;
            break;
        }
    }

    redis->refreshed = ngx_current_msec;
    redis->refresh_id++;

    if (rc == NULL
        || ngx_http_cart_redis_append(rc, ngx_http_cart_redis_slots_reply,
                                      (void *) (uintptr_t) redis->refresh_id,
                                      slots, sizeof(slots) - 1)
           != NGX_OK)
    {
        ngx_add_timer(ev, NGX_HTTP_CART_REDIS_REFRESH_RETRY);
        return;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ev->log, 0,
                   "cart redis: CLUSTER SLOTS to \"%V\"",
                   &rc->node->conf->url);

    redis->refreshing = 1;

    ngx_add_timer(ev, ngx_max(redis->cmcf->redis_timeout * 10,
                              NGX_HTTP_CART_REDIS_REFRESH_RETRY));
}


/* {{start, end, {host, port, id...}, replicas...}, ...}: masters only */

static void
ngx_http_cart_redis_slots_reply(redisAsyncContext *ac, void *reply,
    void *privdata)
{
    redisReply                  *r = reply, *e, *m;
    ngx_str_t                    host;
    ngx_uint_t                   i, s, last, level, nodes;
    ngx_http_cart_redis_t       *redis;
    ngx_http_cart_redis_conn_t  *rc = ac->data;
    ngx_http_cart_redis_node_t  *node;

    redis = rc->node->redis;

    if (redis->exiting
        || (uintptr_t) privdata != (uintptr_t) redis->refresh_id
        || !redis->refreshing)
    {
        /* an answer given up on */
        return;
    }

    redis->refreshing = 0;

    if (redis->refresh.timer_set) {
        ngx_del_timer(&redis->refresh);
    }

    if (ngx_exiting || ngx_quit || ngx_terminate) {
        return;
    }

    if (ngx_http_cart_redis_slots_valid(r) != NGX_OK) {
        /* the first failure of a series is an error, the retries are not */
        level = redis->refresh_failed++ ? NGX_LOG_INFO : NGX_LOG_ERR;

        ngx_log_error(level, redis->log, 0,
                      "cart redis: CLUSTER SLOTS on \"%V\" failed: %s",
                      &rc->node->conf->url,
                      r == NULL ? "no answer"
                      : r->type == REDIS_REPLY_ERROR ? r->str
                      : "unexpected answer");

        ngx_add_timer(&redis->refresh, NGX_HTTP_CART_REDIS_REFRESH_RETRY);
        return;
    }

    redis->refresh_failed = 0;

    ngx_memzero(redis->slots,
                NGX_HTTP_CART_SLOTS * sizeof(ngx_http_cart_redis_node_t *));

    nodes = 0;

    for (i = 0; i < r->elements; i++) {
        e = r->element[i];
        m = e->element[2];

        host.data = (u_char *) m->element[0]->str;
        host.len = m->element[0]->len;

        if (host.len == 0 || (host.len == 1 && host.data[0] == '?')) {
            /* the node asked */
            host = rc->node->conf->host;
        }

        node = ngx_http_cart_redis_node_get(redis, &host,
                                            m->element[1]->integer);
        if (node == NULL) {
            /* its slots go to any node, which answers MOVED */
            continue;
        }

        node->named = 1;
        nodes++;

        last = e->element[1]->integer;

        for (s = e->element[0]->integer; s <= last; s++) {
            redis->slots[s] = node;
        }
    }

    ngx_http_cart_redis_retire(redis, rc->node);

    ngx_log_debug5(NGX_LOG_DEBUG_HTTP, redis->log, 0,
                   "cart redis: cluster map from \"%V\": %ui ranges, "
                   "%ui mapped, %ui nodes, %ui spare", &rc->node->conf->url,
                   r->elements, nodes, redis->nodes.nelts, redis->nspare);

    ngx_add_timer(&redis->refresh, NGX_HTTP_CART_REDIS_REFRESH_EVERY);
}


static ngx_int_t
ngx_http_cart_redis_slots_valid(redisReply *reply)
{
    size_t       i;
    redisReply  *e, *m;

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY
        || reply->elements == 0)
    {
        return NGX_ERROR;
    }

    for (i = 0; i < reply->elements; i++) {
        e = reply->element[i];

        if (e->type != REDIS_REPLY_ARRAY || e->elements < 3
            || e->element[0]->type != REDIS_REPLY_INTEGER
            || e->element[1]->type != REDIS_REPLY_INTEGER
            || e->element[0]->integer < 0
            || e->element[0]->integer > e->element[1]->integer
            || e->element[1]->integer >= NGX_HTTP_CART_SLOTS)
        {
            return NGX_ERROR;
        }

        m = e->element[2];

        if (m->type != REDIS_REPLY_ARRAY || m->elements < 2
            || m->element[0]->type != REDIS_REPLY_STRING
            || m->element[1]->type != REDIS_REPLY_INTEGER
            || m->element[1]->integer < 1
            || m->element[1]->integer > 65535)
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}
