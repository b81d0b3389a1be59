/*
 * The worker's pub/sub subscriber. All channels share one hiredis callback
 * whose data, the subscriber, lives as long as the worker; the handler
 * finds listeners by channel name, so a late reply for a dropped channel
 * is harmless.
 */

#include "ngx_http_cart_redis_int.h"


static void ngx_http_cart_redis_sub_reply(redisAsyncContext *ac, void *reply,
    void *privdata);


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

    sub->handler = handler;
    sub->data = data;
    sub->conn.sub = sub;

    /* in a cluster, PUBLISH reaches the subscribers of every node: the
     * first seed will do */
    node = ((ngx_http_cart_redis_node_t **) redis->nodes.elts)[0];

    ngx_http_cart_redis_conn_init(&sub->conn, node, node->nconns);

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
