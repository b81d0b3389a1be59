/*
 * The worker's pub/sub subscriber. All channels share one hiredis callback
 * whose data, the subscriber, lives as long as the worker; the handler
 * finds listeners by channel name, so a late reply for a dropped channel
 * is harmless.
 *
 * Liveness: a connection that a NAT or a load balancer forgot stays open
 * and silent, so the subscriber PINGs every cart_subscriber_ping interval
 * and drops the connection when no answer comes within the deadline; it
 * is made again (SUB_DOWN, SUB_UP: the listener subscribes again and
 * reads what it missed). With cart_redis_cluster a subscriber that cannot
 * reach its node moves to another one: a cluster delivers PUBLISH to the
 * subscribers of every node.
 */

#include "ngx_http_cart_redis_int.h"


/*
 * In RESP2 subscribed mode PING answers ["pong", <argument>]. hiredis
 * 0.14 takes a reply whose kind starts with "p" for a pattern's and finds
 * its callback by the argument among the patterns: the subscriber
 * subscribes to this pattern (which no channel is named) and PINGs with
 * it as the argument, so the answer comes to ngx_http_cart_redis_sub_reply.
 */
#define NGX_HTTP_CART_REDIS_PING_TAG   "cart_subscriber_ping"

/* PING <tag> in RESP: 20 is the tag's length */
#define NGX_HTTP_CART_REDIS_PING_CMD                                         \
    "*2\r\n$4\r\nPING\r\n$20\r\n" NGX_HTTP_CART_REDIS_PING_TAG "\r\n"


static void ngx_http_cart_redis_sub_event(void *data, ngx_uint_t event,
    ngx_str_t *channel, ngx_str_t *message);
static void ngx_http_cart_redis_sub_reply(redisAsyncContext *ac, void *reply,
    void *privdata);
static void ngx_http_cart_redis_sub_answered(ngx_http_cart_redis_sub_t *sub);
static void ngx_http_cart_redis_sub_ping(ngx_event_t *ev);
static void ngx_http_cart_redis_sub_reconnect(ngx_event_t *ev);
static ngx_http_cart_redis_node_t *ngx_http_cart_redis_sub_node(
    ngx_http_cart_redis_sub_t *sub);
static ngx_uint_t ngx_http_cart_redis_node_ready(
    ngx_http_cart_redis_node_t *node);


ngx_int_t
ngx_http_cart_redis_subscriber(ngx_http_cart_redis_t *redis,
    ngx_http_cart_redis_sub_pt handler, void *data)
{
    ngx_http_cart_redis_sub_t   *sub;
    ngx_http_cart_redis_node_t  *node;

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

    sub->handler = ngx_http_cart_redis_sub_event;
    sub->data = sub;
    sub->listener = handler;
    sub->listener_data = data;
    sub->conn.sub = sub;

    sub->ping.handler = ngx_http_cart_redis_sub_ping;
    sub->ping.data = sub;
    sub->ping.log = redis->log;
    sub->ping.cancelable = 1;

    /* the first seed; in a cluster any node will do */
    node = ((ngx_http_cart_redis_node_t **) redis->nodes.elts)[0];

    ngx_http_cart_redis_conn_init(&sub->conn, node, node->nconns);

    /* each reconnection may choose another node */
    sub->conn.reconnect.handler = ngx_http_cart_redis_sub_reconnect;

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


/* at worker exit, before the connection is closed and sub freed */

void
ngx_http_cart_redis_sub_stop(ngx_http_cart_redis_sub_t *sub)
{
    if (sub->ping.timer_set) {
        ngx_del_timer(&sub->ping);
    }
}


/* the cluster retired the subscriber's node: off to another one */

void
ngx_http_cart_redis_sub_leave(ngx_http_cart_redis_sub_t *sub,
    ngx_http_cart_redis_node_t *node)
{
    if (sub->conn.node != node) {
        return;
    }

    sub->answered = 0;

    if (sub->conn.ac) {
        /* connected: SUB_DOWN, and the disconnect callback schedules the
         * reconnection; connecting: nothing does */
        redisAsyncFree(sub->conn.ac);
    }

    if (!sub->conn.reconnect.timer_set && !node->redis->exiting) {
        ngx_add_timer(&sub->conn.reconnect, 0);
    }
}


/* what the connection tells: the ping's state, then the listener */

static void
ngx_http_cart_redis_sub_event(void *data, ngx_uint_t event,
    ngx_str_t *channel, ngx_str_t *message)
{
    ngx_http_cart_redis_sub_t  *sub = data;

    ngx_http_cart_redis_t  *redis;

    redis = sub->conn.node->redis;

    switch (event) {

    case NGX_HTTP_CART_REDIS_SUB_UP:

        /* the ping pattern first: its confirmation is the first answer,
         * due within the deadline as any other */

        if (redisAsyncCommand(sub->conn.ac, ngx_http_cart_redis_sub_reply,
                              sub, "PSUBSCRIBE %s",
                              NGX_HTTP_CART_REDIS_PING_TAG)
            == REDIS_OK)
        {
            sub->waiting = 1;

            if (sub->ping.timer_set) {
                ngx_del_timer(&sub->ping);
            }

            ngx_add_timer(&sub->ping, redis->cmcf->subscriber_ping_timeout);
        }

        break;

    case NGX_HTTP_CART_REDIS_SUB_DOWN:
        sub->waiting = 0;

        if (sub->ping.timer_set) {
            ngx_del_timer(&sub->ping);
        }

        break;
    }

    sub->listener(sub->listener_data, event, channel, message);
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

    if (r->type == REDIS_REPLY_ARRAY && r->elements >= 2
        && r->element[0]->type == REDIS_REPLY_STRING
        && r->element[1]->type == REDIS_REPLY_STRING
        && r->element[1]->len == sizeof(NGX_HTTP_CART_REDIS_PING_TAG) - 1
        && ngx_strncmp(r->element[1]->str, NGX_HTTP_CART_REDIS_PING_TAG,
                       sizeof(NGX_HTTP_CART_REDIS_PING_TAG) - 1)
           == 0)
    {
        /* "pong" or "psubscribe" of the ping pattern: Redis hears us */
        ngx_http_cart_redis_sub_answered(sub);
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


static void
ngx_http_cart_redis_sub_answered(ngx_http_cart_redis_sub_t *sub)
{
    ngx_http_cart_redis_t  *redis;

    redis = sub->conn.node->redis;

    sub->answered = 1;

    if (!sub->waiting) {
        return;
    }

    sub->waiting = 0;

    if (sub->ping.timer_set) {
        ngx_del_timer(&sub->ping);
    }

    ngx_add_timer(&sub->ping, redis->cmcf->subscriber_ping);
}


/* every interval a PING; when it fires while waiting, the deadline passed */

static void
ngx_http_cart_redis_sub_ping(ngx_event_t *ev)
{
    ngx_http_cart_redis_sub_t  *sub = ev->data;

    redisAsyncContext      *ac;
    ngx_http_cart_redis_t  *redis;

    redis = sub->conn.node->redis;
    ac = sub->conn.ac;

    if (ac == NULL || sub->conn.state != NGX_HTTP_CART_REDIS_READY
        || redis->exiting)
    {
        return;
    }

    if (sub->waiting) {
        ngx_log_error(NGX_LOG_ERR, ev->log, 0,
                      "cart redis: the subscriber did not answer PING "
                      "within %Mms on \"%V\", reconnecting",
                      redis->cmcf->subscriber_ping_timeout,
                      &sub->conn.node->conf->url);

        /* SUB_DOWN now, then the disconnect callback schedules the
         * reconnection, which may choose another node */

        sub->waiting = 0;
        sub->answered = 0;
        redisAsyncFree(ac);

        return;
    }

    /*
     * Written past hiredis's callbacks: in subscribed mode hiredis 0.14
     * keeps a callback per other command in a list that only a non-array
     * reply shifts, which a PING never gets; the answer is found by the
     * ping pattern instead (see NGX_HTTP_CART_REDIS_PING_TAG).
     */

    if (redisAppendFormattedCommand(&ac->c, NGX_HTTP_CART_REDIS_PING_CMD,
                                    sizeof(NGX_HTTP_CART_REDIS_PING_CMD) - 1)
        != REDIS_OK)
    {
        return;
    }

    ac->ev.addWrite(ac->ev.data);

    sub->waiting = 1;
    ngx_add_timer(ev, redis->cmcf->subscriber_ping_timeout);
}


static void
ngx_http_cart_redis_sub_reconnect(ngx_event_t *ev)
{
    ngx_http_cart_redis_sub_t  *sub = ev->data;

    ngx_http_cart_redis_node_t  *node;

    node = ngx_http_cart_redis_sub_node(sub);

    if (node != sub->conn.node) {
        ngx_log_error(NGX_LOG_WARN, ev->log, 0,
                      "cart redis: the subscriber moves from \"%V\" to "
                      "\"%V\"", &sub->conn.node->conf->url,
                      &node->conf->url);

        sub->conn.node = node;
    }

    sub->answered = 0;

    ngx_http_cart_redis_connect(&sub->conn);
}


/*
 * The node to connect to. Without a cluster the configured one. In a
 * cluster the same node if it answered on the last connection (it was up:
 * a restart, a dropped flow), else the next one that has a connection of
 * the pool ready, else simply the next one.
 */

static ngx_http_cart_redis_node_t *
ngx_http_cart_redis_sub_node(ngx_http_cart_redis_sub_t *sub)
{
    ngx_uint_t                    i, n, cur;
    ngx_http_cart_redis_t        *redis;
    ngx_http_cart_redis_node_t  **nodes;

    redis = sub->conn.node->redis;
    nodes = redis->nodes.elts;
    n = redis->nodes.nelts;

    if (redis->slots == NULL) {
        return sub->conn.node;
    }

    for (cur = 0; cur < n; cur++) {
        if (nodes[cur] == sub->conn.node) {
            break;
        }
    }

    if (cur < n && sub->answered) {
        return sub->conn.node;
    }

    if (cur == n) {
        /* no longer a node of the cluster */
        cur = n - 1;
    }

    for (i = 1; i <= n; i++) {
        if (ngx_http_cart_redis_node_ready(nodes[(cur + i) % n])) {
            return nodes[(cur + i) % n];
        }
    }

    return nodes[(cur + 1) % n];
}


static ngx_uint_t
ngx_http_cart_redis_node_ready(ngx_http_cart_redis_node_t *node)
{
    ngx_uint_t  i;

    for (i = 0; i < node->nconns; i++) {
        if (node->conns[i].state == NGX_HTTP_CART_REDIS_READY) {
            return 1;
        }
    }

    return 0;
}
