/*
 * GET /stream: Server-Sent Events, one per change of the caller's cart.
 *
 * Write scripts publish "<version> <count>" on cart_events:{owner}; a worker
 * is subscribed to a channel while it serves a stream of that owner. The
 * state is read only once the channel is subscribed, so no change is missed;
 * an older version than the one sent is dropped, except on the first read
 * (and the first after Redis was away), as a lost cart restarts at 0.
 *
 * With cart_stream_lines, an event carries the whole cart when it is small
 * (its lines read in the same script as version and count, priced from
 * stored data): each event is the newest state, so skipping events while a
 * client lags loses nothing. A message then only starts that read.
 */

#include "ngx_http_cart_stream.h"
#include "ngx_http_cart_reply.h"
#include "ngx_http_cart_scripts.h"
#include "ngx_http_cart_pricing.h"
#include "ngx_http_cart_status.h"


/* "event: cart\nid: <v>\ndata: {"version":<v>,"item_count":<n>}\n\n" */
#define NGX_HTTP_CART_STREAM_TEXT_LEN   (3 * NGX_INT64_LEN + 64)

/* an event's text around its data */
#define NGX_HTTP_CART_STREAM_FRAME      "event: cart\nid: %L\ndata: %V\n\n"
#define NGX_HTTP_CART_STREAM_FRAME_LEN                                        \
    (sizeof("event: cart\nid: \ndata: \n\n") - 1 + NGX_INT64_LEN)

#define NGX_HTTP_CART_STREAM_RETRY      500   /* a failed read, again in ms */
#define NGX_HTTP_CART_STREAM_POOL_SIZE  1024  /* a read's command and call */


typedef enum {
    NGX_HTTP_CART_CHANNEL_IDLE = 0,          /* not subscribed */
    NGX_HTTP_CART_CHANNEL_SUBSCRIBING,
    NGX_HTTP_CART_CHANNEL_SUBSCRIBED,
    NGX_HTTP_CART_CHANNEL_UNSUBSCRIBING
} ngx_http_cart_channel_state_e;


typedef struct {
    ngx_str_node_t                 sn;       /* key: cart_events:{owner} */
    ngx_queue_t                    queue;    /* in the worker's channels */
    ngx_queue_t                    streams;
    ngx_http_cart_channel_state_e  state;
} ngx_http_cart_channel_t;


struct ngx_http_cart_streams_s {
    ngx_rbtree_t                   tree;     /* of ngx_http_cart_channel_t */
    ngx_rbtree_node_t              sentinel;
    ngx_queue_t                    channels;
    ngx_queue_t                    all;      /* every stream */
    ngx_uint_t                     n;
    ngx_event_t                    heartbeat;
    ngx_event_t                    retry;    /* reads that failed */
    ngx_http_cart_main_conf_t     *cmcf;
    unsigned                       up:1;     /* the subscriber is connected */
    unsigned                       exiting:1;
};


typedef struct {
    ngx_queue_t                    link;     /* in its channel */
    ngx_queue_t                    queue;    /* in the worker's streams */
    ngx_http_request_t            *request;
    ngx_http_cart_channel_t       *channel;  /* NULL: nothing to follow */
    ngx_http_cart_streams_t       *streams;

    int64_t                        version;  /* sent or waiting; -1: none */
    int64_t                        count;

    ngx_pool_t                    *pool;     /* of the read in flight */
    ngx_http_cleanup_t            *cln;      /* of every read's command */
    ngx_uint_t                     lines;    /* cart_stream_lines */

    ngx_http_cart_json_gen_t      *json;
    ngx_buf_t                      buf;
    ngx_chain_t                    out;
    u_char                         text[NGX_HTTP_CART_STREAM_TEXT_LEN];

    /* an event with the cart has a text of its own, allocated when its
     * state comes and freed once it left: the request pool never grows */
    u_char                        *next;     /* the state waiting */
    size_t                         next_len;
    u_char                        *sent;     /* in the socket */

    unsigned                       linked:1;
    unsigned                       busy:1;     /* buf has not left yet */
    unsigned                       pending:1;  /* version waits for buf */
    unsigned                       reading:1;  /* a state read in flight */
    unsigned                       reread:1;   /* read again after it */
    unsigned                       stale:1;    /* the read failed */
    unsigned                       exact:1;    /* send the next read's state
                                                  if it differs at all */
    unsigned                       heard:1;    /* a message came meanwhile */
} ngx_http_cart_stream_t;


static ngx_int_t ngx_http_cart_stream_headers(ngx_http_request_t *r);
static ngx_int_t ngx_http_cart_stream_follow(ngx_http_cart_stream_t *s,
    ngx_str_t *name);
static void ngx_http_cart_stream_cleanup(void *data);
static void ngx_http_cart_stream_subscribe(ngx_http_cart_streams_t *streams,
    ngx_http_cart_channel_t *ch);
static void ngx_http_cart_stream_channel_free(
    ngx_http_cart_streams_t *streams, ngx_http_cart_channel_t *ch);
static ngx_http_cart_channel_t *ngx_http_cart_stream_lookup(
    ngx_http_cart_streams_t *streams, ngx_str_t *name);
static void ngx_http_cart_stream_sub_handler(void *data, ngx_uint_t event,
    ngx_str_t *channel, ngx_str_t *message);
static void ngx_http_cart_stream_read(ngx_http_cart_stream_t *s);
static void ngx_http_cart_stream_read_reply(ngx_http_request_t *r,
    void *data, redisReply *reply, ngx_int_t rc);
static void ngx_http_cart_stream_read_failed(ngx_http_cart_stream_t *s);
static void ngx_http_cart_stream_state(ngx_http_cart_stream_t *s,
    redisReply *reply, int64_t version, int64_t count, ngx_uint_t exact);
static ngx_int_t ngx_http_cart_stream_render(ngx_http_cart_stream_t *s,
    redisReply *reply, int64_t version, int64_t count, ngx_str_t *data);
static void ngx_http_cart_stream_head(yajl_gen g, int64_t version,
    int64_t count);
static ngx_uint_t ngx_http_cart_stream_newer(ngx_http_cart_stream_t *s,
    int64_t version, ngx_uint_t exact);
static void ngx_http_cart_stream_update(ngx_http_cart_stream_t *s,
    int64_t version, int64_t count, ngx_uint_t exact, ngx_str_t *data);
static ngx_int_t ngx_http_cart_stream_event(ngx_http_cart_stream_t *s);
static ngx_int_t ngx_http_cart_stream_send(ngx_http_cart_stream_t *s,
    u_char *text, size_t len);
static void ngx_http_cart_stream_left(ngx_http_cart_stream_t *s);
static void ngx_http_cart_stream_fail(ngx_http_cart_stream_t *s);
static void ngx_http_cart_stream_writer(ngx_http_request_t *r);
static void ngx_http_cart_stream_heartbeat(ngx_event_t *ev);
static void ngx_http_cart_stream_retry(ngx_event_t *ev);


/* the state of a cart nobody wrote yet (a new guest's) */
static redisReply  ngx_http_cart_stream_no_cart = {
    .type = REDIS_REPLY_ARRAY
};


/* GET /stream */

ngx_int_t
ngx_http_cart_stream(ngx_http_request_t *r)
{
    int64_t                     id;
    ngx_int_t                   rc;
    ngx_str_t                   name, *last;
    ngx_http_cleanup_t         *cln;
    ngx_http_cart_ctx_t        *ctx;
    ngx_http_cart_stream_t     *s;
    ngx_http_cart_streams_t    *streams;
    ngx_http_cart_loc_conf_t   *lcf;
    ngx_http_cart_main_conf_t  *cmcf;

    ctx = ngx_http_get_module_ctx(r, ngx_http_cart_module);
    cmcf = ngx_http_get_module_main_conf(r, ngx_http_cart_module);
    lcf = ngx_http_get_module_loc_conf(r, ngx_http_cart_module);

    streams = cmcf->streams;

    if (streams == NULL || streams->exiting || r != r->main) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (streams->n >= cmcf->stream_max) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "cart stream: %ui streams open, cart_stream_max "
                      "reached", streams->n);

        return ngx_http_cart_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                   "too_many_streams",
                                   "too many open streams, retry later");
    }

    s = ngx_pcalloc(r->pool, sizeof(ngx_http_cart_stream_t));
    if (s == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln = ngx_http_cleanup_add(r, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_http_cart_stream_cleanup;
    cln->data = s;

    /* made once: a stream reads again and again, for hours maybe, and a
     * cleanup per read would grow its pool (run first: it detaches a read
     * in flight before the stream's cleanup frees the read's pool) */

    s->cln = ngx_http_cleanup_add(r, 0);
    if (s->cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    s->json = ngx_http_cart_json_gen(r->pool);
    if (s->json == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    s->request = r;
    s->streams = streams;
    s->lines = lcf->stream_lines;
    s->version = -1;
    s->exact = 1;
    ctx->data = s;

    /* a client that has the current version already is not sent it again */

    last = ngx_http_cart_header(r, "last-event-id",
                                sizeof("last-event-id") - 1);
    if (last) {
        id = ngx_atoof(last->data, last->len);
        if (id != NGX_ERROR) {
            s->version = id;
        }
    }

    rc = ngx_http_cart_stream_headers(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    ngx_queue_insert_tail(&streams->all, &s->queue);
    streams->n++;
    ngx_http_cart_metrics_gauge(streams, 1);
    s->linked = 1;

    r->read_event_handler = ngx_http_test_reading;
    r->write_event_handler = ngx_http_cart_stream_writer;

    if (!streams->heartbeat.timer_set) {
        ngx_add_timer(&streams->heartbeat, cmcf->stream_heartbeat);
    }

    /* the headers leave now: the client knows at once it is connected */

    if (ngx_http_cart_stream_send(s, s->text, 0) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ctx->new_guest) {
        /* a session made for this request: nobody can write to its cart */

        s->pool = ngx_create_pool(NGX_HTTP_CART_STREAM_POOL_SIZE,
                                  r->connection->log);
        if (s->pool == NULL) {
            return NGX_ERROR;
        }

        ngx_http_cart_stream_state(s, &ngx_http_cart_stream_no_cart, 0, 0, 1);

        ngx_destroy_pool(s->pool);
        s->pool = NULL;

        return NGX_DONE;
    }

    if (ngx_http_cart_key(r->pool, &name, "cart_events:", &ctx->owner, NULL)
        == NULL
        || ngx_http_cart_stream_follow(s, &name) != NGX_OK)
    {
        return NGX_ERROR;
    }

    return NGX_DONE;
}


static ngx_int_t
ngx_http_cart_stream_headers(ngx_http_request_t *r)
{
    r->headers_out.status = NGX_HTTP_OK;
    ngx_str_set(&r->headers_out.content_type, "text/event-stream");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;
    ngx_http_clear_content_length(r);
    ngx_http_clear_accept_ranges(r);

    if (ngx_http_cart_set_header(r, "Cache-Control", "no-store") == NULL) {
        return NGX_ERROR;
    }

    /* a proxy in front (nginx itself, too) must pass each event at once */

    if (ngx_http_cart_set_header(r, "X-Accel-Buffering", "no") == NULL) {
        return NGX_ERROR;
    }

    return ngx_http_send_header(r);
}


/* joins the channel of the stream's cart, subscribing on the first join */

static ngx_int_t
ngx_http_cart_stream_follow(ngx_http_cart_stream_t *s, ngx_str_t *name)
{
    ngx_int_t                 rc;
    ngx_http_cart_channel_t  *ch;
    ngx_http_cart_streams_t  *streams;

    streams = s->streams;

    rc = ngx_http_cart_redis_subscriber(streams->cmcf->redis,
                                        ngx_http_cart_stream_sub_handler,
                                        streams);
    if (rc == NGX_ERROR) {
        return NGX_ERROR;
    }

    ch = ngx_http_cart_stream_lookup(streams, name);

    if (ch == NULL) {
        ch = ngx_alloc(sizeof(ngx_http_cart_channel_t) + name->len,
                       streams->heartbeat.log);
        if (ch == NULL) {
            return NGX_ERROR;
        }

        ngx_memzero(ch, sizeof(ngx_http_cart_channel_t));

        ch->sn.str.data = (u_char *) ch + sizeof(ngx_http_cart_channel_t);
        ch->sn.str.len = name->len;
        ngx_memcpy(ch->sn.str.data, name->data, name->len);
        ch->sn.node.key = ngx_crc32_long(name->data, name->len);

        ngx_rbtree_insert(&streams->tree, &ch->sn.node);
        ngx_queue_insert_tail(&streams->channels, &ch->queue);
        ngx_queue_init(&ch->streams);
    }

    ngx_queue_insert_tail(&ch->streams, &s->link);
    s->channel = ch;

    switch (ch->state) {

    case NGX_HTTP_CART_CHANNEL_IDLE:
        ngx_http_cart_stream_subscribe(streams, ch);
        break;

    case NGX_HTTP_CART_CHANNEL_SUBSCRIBED:
        ngx_http_cart_stream_read(s);
        break;

    default:
        /* the confirmation to come starts the read */
        break;
    }

    return NGX_OK;
}


static void
ngx_http_cart_stream_cleanup(void *data)
{
    ngx_http_cart_stream_t  *s = data;

    ngx_http_cart_channel_t  *ch;
    ngx_http_cart_streams_t  *streams;

    if (s->pool) {
        /* a read in flight: its operation was detached, it frees nothing */
        ngx_destroy_pool(s->pool);
        s->pool = NULL;
    }

    if (s->next) {
        ngx_free(s->next);
        s->next = NULL;
    }

    if (s->sent) {
        /* the connection goes with the request: nothing writes it again */
        ngx_free(s->sent);
        s->sent = NULL;
    }

    if (!s->linked) {
        return;
    }

    streams = s->streams;

    s->linked = 0;
    ngx_queue_remove(&s->queue);
    streams->n--;
    ngx_http_cart_metrics_gauge(streams, -1);
    ngx_http_cart_metrics_add(streams->cmcf, stream_closed[
        streams->exiting ? NGX_HTTP_CART_STREAM_SHUTDOWN
        : s->request->connection->timedout ? NGX_HTTP_CART_STREAM_SLOW
        : NGX_HTTP_CART_STREAM_CLIENT]);

    ch = s->channel;
    if (ch == NULL) {
        return;
    }

    s->channel = NULL;
    ngx_queue_remove(&s->link);

    if (!ngx_queue_empty(&ch->streams)) {
        return;
    }

    /* the worker's last stream of this cart: unsubscribe */

    switch (ch->state) {

    case NGX_HTTP_CART_CHANNEL_SUBSCRIBING:
    case NGX_HTTP_CART_CHANNEL_SUBSCRIBED:
        if (!streams->exiting
            && ngx_http_cart_redis_subscribe(streams->cmcf->redis,
                                             &ch->sn.str, 0)
               == NGX_OK)
        {
            ch->state = NGX_HTTP_CART_CHANNEL_UNSUBSCRIBING;
            return;
        }

        ngx_http_cart_stream_channel_free(streams, ch);
        return;

    case NGX_HTTP_CART_CHANNEL_IDLE:
        ngx_http_cart_stream_channel_free(streams, ch);
        return;

    default:
        /* the confirmation to come frees it */
        return;
    }
}


static void
ngx_http_cart_stream_subscribe(ngx_http_cart_streams_t *streams,
    ngx_http_cart_channel_t *ch)
{
    if (streams->up
        && ngx_http_cart_redis_subscribe(streams->cmcf->redis, &ch->sn.str, 1)
           == NGX_OK)
    {
        ch->state = NGX_HTTP_CART_CHANNEL_SUBSCRIBING;
        return;
    }

    /* SUB_UP subscribes it */
    ch->state = NGX_HTTP_CART_CHANNEL_IDLE;
}


static void
ngx_http_cart_stream_channel_free(ngx_http_cart_streams_t *streams,
    ngx_http_cart_channel_t *ch)
{
    ngx_rbtree_delete(&streams->tree, &ch->sn.node);
    ngx_queue_remove(&ch->queue);
    ngx_free(ch);
}


static ngx_http_cart_channel_t *
ngx_http_cart_stream_lookup(ngx_http_cart_streams_t *streams, ngx_str_t *name)
{
    ngx_str_node_t  *sn;

    sn = ngx_str_rbtree_lookup(&streams->tree, name,
                               ngx_crc32_long(name->data, name->len));

    return sn ? (ngx_http_cart_channel_t *) sn : NULL;
}


/* what the subscriber connection hears */

static void
ngx_http_cart_stream_sub_handler(void *data, ngx_uint_t event,
    ngx_str_t *channel, ngx_str_t *message)
{
    ngx_http_cart_streams_t  *streams = data;

    u_char                   *sp;
    int64_t                   version, count;
    ngx_queue_t              *q, *sq, *next;
    ngx_http_cart_stream_t   *s;
    ngx_http_cart_channel_t  *ch;

    switch (event) {

    case NGX_HTTP_CART_REDIS_SUB_UP:
        streams->up = 1;

        for (q = ngx_queue_head(&streams->channels);
             q != ngx_queue_sentinel(&streams->channels);
             q = next)
        {
            next = ngx_queue_next(q);
            ch = ngx_queue_data(q, ngx_http_cart_channel_t, queue);

            if (ngx_queue_empty(&ch->streams)) {
                ngx_http_cart_stream_channel_free(streams, ch);
                continue;
            }

            ngx_http_cart_stream_subscribe(streams, ch);
        }

        return;

    case NGX_HTTP_CART_REDIS_SUB_DOWN:
        ngx_log_error(NGX_LOG_WARN, streams->heartbeat.log, 0,
                      "cart stream: subscriber connection lost, %ui "
                      "streams wait for it", streams->n);

        streams->up = 0;

        for (q = ngx_queue_head(&streams->channels);
             q != ngx_queue_sentinel(&streams->channels);
             q = next)
        {
            next = ngx_queue_next(q);
            ch = ngx_queue_data(q, ngx_http_cart_channel_t, queue);

            if (ngx_queue_empty(&ch->streams)) {
                ngx_http_cart_stream_channel_free(streams, ch);
                continue;
            }

            ch->state = NGX_HTTP_CART_CHANNEL_IDLE;

            /* Redis may come back without the cart: trust the next read */

            for (sq = ngx_queue_head(&ch->streams);
                 sq != ngx_queue_sentinel(&ch->streams);
                 sq = ngx_queue_next(sq))
            {
                s = ngx_queue_data(sq, ngx_http_cart_stream_t, link);
                s->exact = 1;
            }
        }

        return;
    }

    ch = ngx_http_cart_stream_lookup(streams, channel);
    if (ch == NULL) {
        return;
    }

    switch (event) {

    case NGX_HTTP_CART_REDIS_SUB_SUBSCRIBED:
        if (ch->state != NGX_HTTP_CART_CHANNEL_SUBSCRIBING) {
            return;
        }

        ch->state = NGX_HTTP_CART_CHANNEL_SUBSCRIBED;

        for (q = ngx_queue_head(&ch->streams);
             q != ngx_queue_sentinel(&ch->streams);
             q = ngx_queue_next(q))
        {
            s = ngx_queue_data(q, ngx_http_cart_stream_t, link);
            ngx_http_cart_stream_read(s);
        }

        return;

    case NGX_HTTP_CART_REDIS_SUB_UNSUBSCRIBED:
        if (ch->state != NGX_HTTP_CART_CHANNEL_UNSUBSCRIBING) {
            return;
        }

        if (ngx_queue_empty(&ch->streams)) {
            ngx_http_cart_stream_channel_free(streams, ch);
            return;
        }

        /* a stream came while it was leaving */
        ngx_http_cart_stream_subscribe(streams, ch);
        return;

    default: /* NGX_HTTP_CART_REDIS_SUB_MESSAGE: "<version> <count>" */
        sp = ngx_strlchr(message->data, message->data + message->len, ' ');
        if (sp == NULL) {
            return;
        }

        version = ngx_atoof(message->data, sp - message->data);
        count = ngx_atoof(sp + 1, message->data + message->len - sp - 1);

        if (version == NGX_ERROR || count == NGX_ERROR) {
            ngx_log_error(NGX_LOG_WARN, streams->heartbeat.log, 0,
                          "cart stream: malformed message \"%V\" on "
                          "\"%V\"", message, channel);
            return;
        }

        for (q = ngx_queue_head(&ch->streams);
             q != ngx_queue_sentinel(&ch->streams);
             q = ngx_queue_next(q))
        {
            s = ngx_queue_data(q, ngx_http_cart_stream_t, link);

            s->heard = 1;

            if (s->lines == 0) {
                /* version 0: the cart is gone (a merge claimed a guest
                 * cart) */
                ngx_http_cart_stream_update(s, version, count,
                                            version == 0, NULL);
                continue;
            }

            /* the event carries the cart: read it, unless it was sent
             * already; a read in flight reads again once it ends */

            if (version == 0) {
                s->exact = 1;

            } else if (version <= s->version) {
                continue;
            }

            ngx_http_cart_stream_read(s);
        }

        return;
    }
}


/* the state of the cart, from Redis */

static void
ngx_http_cart_stream_read(ngx_http_cart_stream_t *s)
{
    ngx_str_t                   keys[2], arg;
    ngx_http_request_t         *r;
    ngx_http_cart_ctx_t        *ctx;

    if (s->reading) {
        s->reread = 1;
        return;
    }

    r = s->request;
    ctx = ngx_http_get_module_ctx(r, ngx_http_cart_module);

    keys[0] = ctx->cart_key;
    keys[1] = ctx->count_key;

    s->heard = 0;
    s->stale = 0;

    /* a pool per read, freed when it ends: through an outage a stream
     * reads every NGX_HTTP_CART_STREAM_RETRY, its request's pool would
     * grow by each */

    s->pool = ngx_create_pool(NGX_HTTP_CART_STREAM_POOL_SIZE,
                              r->connection->log);

    /* the script's ARGV[1]: the most lines an event carries */

    arg.data = s->pool ? ngx_pnalloc(s->pool, NGX_INT_T_LEN) : NULL;
    arg.len = arg.data ? ngx_sprintf(arg.data, "%ui", s->lines) - arg.data
                       : 0;

    if (arg.len
        && ngx_http_cart_script_run_in(r, s->pool, s->cln,
                                       NGX_HTTP_CART_SCRIPT_STREAM, keys, 2,
                                       &arg, 1,
                                       ngx_http_cart_stream_read_reply, s)
           == NGX_OK)
    {
        s->reading = 1;
        return;
    }

    /* no connection to Redis right now: again soon */

    ngx_http_cart_stream_read_failed(s);
}


static void
ngx_http_cart_stream_read_reply(ngx_http_request_t *r, void *data,
    redisReply *reply, ngx_int_t rc)
{
    ngx_http_cart_stream_t  *s = data;

    int64_t     version, count;
    ngx_uint_t  exact;

    s->reading = 0;

    if (rc != NGX_OK
        || ngx_http_cart_reply_int(reply, 0, &version) != NGX_OK
        || ngx_http_cart_reply_int(reply, 1, &count) != NGX_OK)
    {
        ngx_http_cart_stream_read_failed(s);
        return;
    }

    /* a message that came meanwhile may be newer than what was read; when
     * it made a read of its own (reread), that one may be exact instead */

    exact = s->exact && !s->heard;

    if (exact || !s->reread) {
        s->exact = 0;
    }

    ngx_http_cart_stream_state(s, reply, version, count, exact);

    ngx_destroy_pool(s->pool);
    s->pool = NULL;

    if (s->reread) {
        s->reread = 0;
        ngx_http_cart_stream_read(s);
    }
}


static void
ngx_http_cart_stream_read_failed(ngx_http_cart_stream_t *s)
{
    ngx_http_cart_streams_t  *streams;

    if (s->pool) {
        ngx_destroy_pool(s->pool);
        s->pool = NULL;
    }

    s->stale = 1;
    streams = s->streams;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, s->request->connection->log, 0,
                   "cart stream: state read failed, again in %Mms",
                   (ngx_msec_t) NGX_HTTP_CART_STREAM_RETRY);

    if (!streams->retry.timer_set && !streams->exiting) {
        ngx_add_timer(&streams->retry, NGX_HTTP_CART_STREAM_RETRY);
    }
}


/* a state read: its event, with the cart when the stream carries it */

static void
ngx_http_cart_stream_state(ngx_http_cart_stream_t *s, redisReply *reply,
    int64_t version, int64_t count, ngx_uint_t exact)
{
    ngx_str_t  data;

    if (!ngx_http_cart_stream_newer(s, version, exact)) {
        return;
    }

    if (s->lines == 0) {
        ngx_http_cart_stream_update(s, version, count, exact, NULL);
        return;
    }

    if (ngx_http_cart_stream_render(s, reply, version, count, &data)
        != NGX_OK)
    {
        ngx_http_cart_stream_fail(s);
        return;
    }

    ngx_http_cart_stream_update(s, version, count, exact, &data);
}


/*
 * {"version":N,"item_count":M,"cart":<the cart view>} in the read's pool:
 * the view GET / renders, priced from what Redis holds (no upstream from a
 * request that lives for hours); {"version","item_count","items_omitted"}
 * when the cart has more lines than the stream carries.
 */

static ngx_int_t
ngx_http_cart_stream_render(ngx_http_cart_stream_t *s, redisReply *reply,
    int64_t version, int64_t count, ngx_str_t *data)
{
    yajl_gen                   g;
    ngx_str_t                  word;
    ngx_http_cart_priced_t    *priced;
    ngx_http_cart_snapshot_t  *snap;
    ngx_http_cart_json_gen_t  *json;

    json = ngx_http_cart_json_gen(s->pool);
    if (json == NULL) {
        return NGX_ERROR;
    }

    g = json->g;

    ngx_http_cart_stream_head(g, version, count);

    if (ngx_http_cart_reply_str(reply, 2, &word) == NGX_OK
        && word.len == sizeof("omitted") - 1
        && ngx_strncmp(word.data, "omitted", word.len) == 0)
    {
        ngx_http_cart_json_key(g, "items_omitted");
        yajl_gen_bool(g, 1);

    } else {
        snap = ngx_http_cart_snapshot_in(s->request, s->pool, reply, 3);
        if (snap == NULL) {
            return NGX_ERROR;
        }

        priced = ngx_http_cart_price_stored(s->request, s->pool, snap);
        if (priced == NULL) {
            return NGX_ERROR;
        }

        ngx_http_cart_json_key(g, "cart");
        ngx_http_cart_render_view(s->request, g, snap, priced, snap->version);
    }

    yajl_gen_map_close(g);

    return ngx_http_cart_json_text(json, data);
}


/* what every event's data starts with */

static void
ngx_http_cart_stream_head(yajl_gen g, int64_t version, int64_t count)
{
    yajl_gen_map_open(g);
    ngx_http_cart_json_key(g, "version");
    ngx_http_cart_json_int(g, version);
    ngx_http_cart_json_key(g, "item_count");
    ngx_http_cart_json_int(g, count);
}


/* only a newer state, or any other one when "exact" */

static ngx_uint_t
ngx_http_cart_stream_newer(ngx_http_cart_stream_t *s, int64_t version,
    ngx_uint_t exact)
{
    return version != s->version && (version > s->version || exact);
}


/* a state to send; "data" (the event's JSON) NULL: version and count */

static void
ngx_http_cart_stream_update(ngx_http_cart_stream_t *s, int64_t version,
    int64_t count, ngx_uint_t exact, ngx_str_t *data)
{
    if (!ngx_http_cart_stream_newer(s, version, exact)) {
        return;
    }

    if (s->pending) {
        /* a lagging client: the state waiting for the socket is skipped */
        ngx_http_cart_metrics_add(s->streams->cmcf, stream_coalesced);
    }

    s->version = version;
    s->count = count;
    s->pending = 1;

    /* the newest state replaces the one that waited for the socket */

    if (s->next) {
        ngx_free(s->next);
        s->next = NULL;
    }

    if (data) {
        s->next = ngx_alloc(NGX_HTTP_CART_STREAM_FRAME_LEN + data->len,
                            s->request->connection->log);
        if (s->next == NULL) {
            ngx_http_cart_stream_fail(s);
            return;
        }

        s->next_len = ngx_sprintf(s->next, NGX_HTTP_CART_STREAM_FRAME,
                                  version, data)
                      - s->next;
    }

    if (!s->busy && ngx_http_cart_stream_event(s) != NGX_OK) {
        ngx_http_cart_stream_fail(s);
    }
}


static ngx_int_t
ngx_http_cart_stream_event(ngx_http_cart_stream_t *s)
{
    u_char     *p;
    yajl_gen    g;
    ngx_str_t   json;

    s->pending = 0;

    ngx_http_cart_metrics_add(s->streams->cmcf, stream_events);

    if (s->next) {
        /* leaves from its own text, freed once it is in the socket */
        s->sent = s->next;
        s->next = NULL;

        return ngx_http_cart_stream_send(s, s->sent, s->next_len);
    }

    ngx_http_cart_json_reset(s->json);
    g = s->json->g;

    ngx_http_cart_stream_head(g, s->version, s->count);
    yajl_gen_map_close(g);

    if (ngx_http_cart_json_text(s->json, &json) != NGX_OK
        || json.len > NGX_HTTP_CART_STREAM_TEXT_LEN
                      - NGX_HTTP_CART_STREAM_FRAME_LEN)
    {
        return NGX_ERROR;
    }

    p = ngx_sprintf(s->text, NGX_HTTP_CART_STREAM_FRAME, s->version, &json);

    return ngx_http_cart_stream_send(s, s->text, p - s->text);
}


/* writes text (s->text, or s->sent); len 0 only flushes (the headers) */

static ngx_int_t
ngx_http_cart_stream_send(ngx_http_cart_stream_t *s, u_char *text,
    size_t len)
{
    ngx_int_t                  rc;
    ngx_buf_t                 *b;
    ngx_connection_t          *c;
    ngx_http_request_t        *r;
    ngx_http_core_loc_conf_t  *clcf;

    r = s->request;
    c = r->connection;

    if (c->error) {
        return NGX_ERROR;
    }

    b = &s->buf;
    ngx_memzero(b, sizeof(ngx_buf_t));

    b->start = text;
    b->pos = text;
    b->last = text + len;
    b->end = text + len;
    b->memory = len ? 1 : 0;
    b->flush = 1;

    s->out.buf = b;
    s->out.next = NULL;

    rc = ngx_http_output_filter(r, &s->out);

    if (rc == NGX_ERROR) {
        return NGX_ERROR;
    }

    if (!c->buffered) {
        ngx_http_cart_stream_left(s);
        return NGX_OK;
    }

    /* the client does not keep up: wait for the socket, send_timeout long */

    s->busy = 1;

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    if (!c->write->timer_set && !c->write->delayed) {
        ngx_add_timer(c->write, clcf->send_timeout);
    }

    if (ngx_handle_write_event(c->write, clcf->send_lowat) != NGX_OK) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* what was written is in the socket: its text is not needed any more */

static void
ngx_http_cart_stream_left(ngx_http_cart_stream_t *s)
{
    s->busy = 0;

    if (s->sent) {
        ngx_free(s->sent);
        s->sent = NULL;
    }
}


/*
 * Called from a message or a timer: the request is finalized from its write
 * event, as nginx expects, and the lists being walked stay intact.
 */

static void
ngx_http_cart_stream_fail(ngx_http_cart_stream_t *s)
{
    ngx_connection_t  *c;

    c = s->request->connection;
    c->error = 1;

    ngx_post_event(c->write, &ngx_posted_events);
}


static void
ngx_http_cart_stream_writer(ngx_http_request_t *r)
{
    ngx_int_t                  rc;
    ngx_event_t               *wev;
    ngx_connection_t          *c;
    ngx_http_cart_ctx_t       *ctx;
    ngx_http_cart_stream_t    *s;
    ngx_http_core_loc_conf_t  *clcf;

    c = r->connection;
    wev = c->write;

    if (c->error) {
        ngx_http_finalize_request(r, NGX_ERROR);
        return;
    }

    if (wev->timedout) {
        ngx_log_error(NGX_LOG_INFO, c->log, NGX_ETIMEDOUT,
                      "cart stream: client too slow, closing");
        c->timedout = 1;
        ngx_http_finalize_request(r, NGX_HTTP_REQUEST_TIME_OUT);
        return;
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_cart_module);
    s = ctx->data;

    if (!s->busy) {
        return;
    }

    rc = ngx_http_output_filter(r, NULL);

    if (rc == NGX_ERROR) {
        ngx_http_finalize_request(r, NGX_ERROR);
        return;
    }

    if (c->buffered) {
        /* send_timeout counts from the last progress, as in ngx_http_writer;
         * a write delayed by limit_rate has its own timer */

        clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

        if (!wev->delayed) {
            ngx_add_timer(wev, clcf->send_timeout);
        }

        if (ngx_handle_write_event(wev, clcf->send_lowat) != NGX_OK) {
            ngx_http_finalize_request(r, NGX_ERROR);
        }

        return;
    }

    if (wev->timer_set && !wev->delayed) {
        ngx_del_timer(wev);
    }

    ngx_http_cart_stream_left(s);

    /* the newest state that waited for the socket */

    if (s->pending && ngx_http_cart_stream_event(s) != NGX_OK) {
        ngx_http_finalize_request(r, NGX_ERROR);
    }
}


/* ": ping" keeps proxies and load balancers from closing idle streams */

static void
ngx_http_cart_stream_heartbeat(ngx_event_t *ev)
{
    ngx_queue_t              *q;
    ngx_http_cart_stream_t   *s;
    ngx_http_cart_streams_t  *streams = ev->data;

    for (q = ngx_queue_head(&streams->all);
         q != ngx_queue_sentinel(&streams->all);
         q = ngx_queue_next(q))
    {
        s = ngx_queue_data(q, ngx_http_cart_stream_t, queue);

        if (s->busy) {
            continue;
        }

        ngx_memcpy(s->text, ": ping\n\n", sizeof(": ping\n\n") - 1);

        if (ngx_http_cart_stream_send(s, s->text, sizeof(": ping\n\n") - 1)
            != NGX_OK)
        {
            ngx_http_cart_stream_fail(s);
        }
    }

    if (streams->n) {
        ngx_add_timer(ev, streams->cmcf->stream_heartbeat);
    }
}


static void
ngx_http_cart_stream_retry(ngx_event_t *ev)
{
    ngx_queue_t              *q;
    ngx_http_cart_stream_t   *s;
    ngx_http_cart_streams_t  *streams = ev->data;

    for (q = ngx_queue_head(&streams->all);
         q != ngx_queue_sentinel(&streams->all);
         q = ngx_queue_next(q))
    {
        s = ngx_queue_data(q, ngx_http_cart_stream_t, queue);

        if (s->stale && s->channel
            && s->channel->state == NGX_HTTP_CART_CHANNEL_SUBSCRIBED)
        {
            ngx_http_cart_stream_read(s);
        }
    }
}


/* worker life cycle */

ngx_int_t
ngx_http_cart_stream_init_worker(ngx_cycle_t *cycle,
    ngx_http_cart_main_conf_t *cmcf)
{
    ngx_http_cart_streams_t  *streams;

    streams = ngx_pcalloc(cycle->pool, sizeof(ngx_http_cart_streams_t));
    if (streams == NULL) {
        return NGX_ERROR;
    }

    ngx_rbtree_init(&streams->tree, &streams->sentinel,
                    ngx_str_rbtree_insert_value);
    ngx_queue_init(&streams->channels);
    ngx_queue_init(&streams->all);

    streams->cmcf = cmcf;

    /* cancelable: an idle stream does not hold a worker that shuts down */

    streams->heartbeat.handler = ngx_http_cart_stream_heartbeat;
    streams->heartbeat.data = streams;
    streams->heartbeat.log = cycle->log;
    streams->heartbeat.cancelable = 1;

    streams->retry.handler = ngx_http_cart_stream_retry;
    streams->retry.data = streams;
    streams->retry.log = cycle->log;
    streams->retry.cancelable = 1;

    cmcf->streams = streams;

    return NGX_OK;
}


void
ngx_http_cart_stream_exit_worker(ngx_http_cart_main_conf_t *cmcf)
{
    ngx_queue_t              *q;
    ngx_connection_t         *c;
    ngx_http_request_t       *r;
    ngx_http_cart_stream_t   *s;
    ngx_http_cart_channel_t  *ch;
    ngx_http_cart_streams_t  *streams;

    streams = cmcf->streams;
    if (streams == NULL) {
        return;
    }

    streams->exiting = 1;

    if (streams->heartbeat.timer_set) {
        ngx_del_timer(&streams->heartbeat);
    }

    if (streams->retry.timer_set) {
        ngx_del_timer(&streams->retry);
    }

    /* the last chunk ends each stream cleanly: EventSource reconnects */

    while (!ngx_queue_empty(&streams->all)) {
        q = ngx_queue_head(&streams->all);
        s = ngx_queue_data(q, ngx_http_cart_stream_t, queue);
        r = s->request;
        c = r->connection;

        if (!s->busy && !c->error) {
            (void) ngx_http_send_special(r, NGX_HTTP_LAST);
        }

        ngx_http_finalize_request(r, NGX_HTTP_CLOSE);
        ngx_http_run_posted_requests(c);
    }

    while (!ngx_queue_empty(&streams->channels)) {
        q = ngx_queue_head(&streams->channels);
        ch = ngx_queue_data(q, ngx_http_cart_channel_t, queue);
        ngx_http_cart_stream_channel_free(streams, ch);
    }

    cmcf->streams = NULL;
}
