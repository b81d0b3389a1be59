/*
 * GET /stream: Server-Sent Events, one per change of the caller's cart.
 *
 * Write scripts publish "<version> <count>" on cart_events:{owner}; a worker
 * is subscribed to a channel while it serves a stream of that owner. The
 * state is read only once the channel is subscribed, so no change is missed:
 * a stream that joins while a read is in flight takes that read's state, as
 * it was sent after the SUBSCRIBE was acknowledged and any later change
 * publishes a message that reads again. An older version than the one sent
 * is dropped, except on the first read (and the first after Redis was
 * away), as a lost cart restarts at 0.
 *
 * The read belongs to the channel: one read and one render per change for
 * all the worker's streams of the owner, the event's text shared (counted)
 * by the streams that send it. A Redis command belongs to a request, so the
 * channel's oldest stream carries it (the command in a pool of the read's
 * own); when that stream goes, its cleanup detaches the command and the
 * channel reads again with the next one. A stream keeps what is its own
 * client's: the version it sent, the newest state waiting for its socket.
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


typedef struct ngx_http_cart_stream_s  ngx_http_cart_stream_t;


typedef struct {
    ngx_str_node_t                 sn;       /* key: cart_events:{owner} */
    ngx_queue_t                    queue;    /* in the worker's channels */
    ngx_queue_t                    streams;
    ngx_http_cart_streams_t       *worker;
    ngx_http_cart_channel_state_e  state;

    /* the state read, one for all the streams */
    ngx_pool_t                    *pool;     /* of the read in flight */
    ngx_http_cart_stream_t        *carrier;  /* whose request sent it */
    ngx_uint_t                     lines;    /* its ARGV[1]: the most any
                                                stream carries */
    unsigned                       reading:1;
    unsigned                       reread:1;   /* read again after it */
    unsigned                       stale:1;    /* the read failed */
    unsigned                       heard:1;    /* a message came meanwhile */
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


/* an event with the cart: allocated once per state and location, freed
 * when the last stream that holds it wrote it or took a newer one */
typedef struct {
    ngx_uint_t                     refs;
    size_t                         len;
    u_char                         data[1];
} ngx_http_cart_stream_text_t;


/* a state's text for the streams of one location: its configuration
 * (upstreams, cart_stream_lines) shapes the view */
typedef struct {
    ngx_http_cart_loc_conf_t      *lcf;
    ngx_http_cart_stream_text_t   *text;
} ngx_http_cart_stream_view_t;


struct ngx_http_cart_stream_s {
    ngx_queue_t                    link;     /* in its channel */
    ngx_queue_t                    queue;    /* in the worker's streams */
    ngx_http_request_t            *request;
    ngx_http_cart_channel_t       *channel;  /* NULL: nothing to follow */
    ngx_http_cart_streams_t       *streams;
    ngx_http_cart_loc_conf_t      *lcf;

    int64_t                        version;  /* sent or waiting; -1: none */
    int64_t                        count;

    ngx_http_cleanup_t            *cln;      /* of the reads it carries */
    ngx_uint_t                     lines;    /* cart_stream_lines */

    ngx_http_cart_json_gen_t      *json;
    ngx_buf_t                      buf;
    ngx_chain_t                    out;
    u_char                         text[NGX_HTTP_CART_STREAM_TEXT_LEN];

    /* an event with the cart is a shared text, not in the request pool:
     * the pool never grows */
    ngx_http_cart_stream_text_t   *next;     /* the state waiting */
    ngx_http_cart_stream_text_t   *sent;     /* in the socket */

    unsigned                       linked:1;
    unsigned                       busy:1;     /* buf has not left yet */
    unsigned                       pending:1;  /* version waits for buf */
    unsigned                       exact:1;    /* send the next read's state
                                                  if it differs at all */
};


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
static void ngx_http_cart_stream_message(ngx_http_cart_channel_t *ch,
    int64_t version, int64_t count);
static void ngx_http_cart_stream_read(ngx_http_cart_channel_t *ch);
static void ngx_http_cart_stream_read_reply(ngx_http_request_t *r,
    void *data, redisReply *reply, ngx_int_t rc);
static void ngx_http_cart_stream_read_failed(ngx_http_cart_channel_t *ch);
static void ngx_http_cart_stream_read_end(ngx_http_cart_channel_t *ch);
static ngx_int_t ngx_http_cart_stream_fan_out(ngx_http_cart_channel_t *ch,
    redisReply *reply, int64_t version, int64_t count);
static void ngx_http_cart_stream_state(ngx_http_cart_stream_t *s,
    ngx_array_t *views, redisReply *reply, int64_t version, int64_t count,
    ngx_uint_t exact);
static ngx_http_cart_stream_text_t *ngx_http_cart_stream_view(
    ngx_http_cart_stream_t *s, ngx_array_t *views, redisReply *reply,
    int64_t version, int64_t count);
static void ngx_http_cart_stream_views_free(ngx_array_t *views);
static ngx_int_t ngx_http_cart_stream_render(ngx_http_cart_stream_t *s,
    ngx_pool_t *pool, redisReply *reply, int64_t version, int64_t count,
    ngx_str_t *data);
static void ngx_http_cart_stream_head(yajl_gen g, int64_t version,
    int64_t count);
static void ngx_http_cart_stream_release(ngx_http_cart_stream_text_t **text);
static ngx_uint_t ngx_http_cart_stream_newer(ngx_http_cart_stream_t *s,
    int64_t version, ngx_uint_t exact);
static void ngx_http_cart_stream_update(ngx_http_cart_stream_t *s,
    int64_t version, int64_t count, ngx_uint_t exact,
    ngx_http_cart_stream_text_t *text);
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
    ngx_pool_t                 *pool;
    ngx_array_t                *views;
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

    /* made once: a stream carries its channel's reads again and again, for
     * hours maybe, and a cleanup per read would grow its pool (run first:
     * it detaches a read in flight before the stream's cleanup frees the
     * read's pool) */

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
    s->lcf = lcf;
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

        pool = ngx_create_pool(NGX_HTTP_CART_STREAM_POOL_SIZE,
                               r->connection->log);
        if (pool == NULL) {
            return NGX_ERROR;
        }

        views = ngx_array_create(pool, 1,
                                 sizeof(ngx_http_cart_stream_view_t));
        if (views == NULL) {
            ngx_destroy_pool(pool);
            return NGX_ERROR;
        }

        ngx_http_cart_stream_state(s, views, &ngx_http_cart_stream_no_cart,
                                   0, 0, 1);

        ngx_http_cart_stream_views_free(views);
        ngx_destroy_pool(pool);

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

        ch->worker = streams;
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
        if (ch->reading && s->lines <= ch->lines) {
            /* the read in flight was sent once subscribed: its state is
             * this stream's first (one that carries more lines than it
             * reads waits for the read after it) */
            break;
        }

        ngx_http_cart_stream_read(ch);
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

    /* the connection goes with the request: nothing writes "sent" again */

    ngx_http_cart_stream_release(&s->next);
    ngx_http_cart_stream_release(&s->sent);

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

    if (ch->carrier == s) {
        /* the request took the read's command with it (s->cln ran first,
         * so it frees nothing): the next stream carries a new read */

        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, streams->heartbeat.log, 0,
                       "cart stream: the stream carrying the state read "
                       "closed, reading again");

        ngx_http_cart_stream_read_end(ch);

        if (!ngx_queue_empty(&ch->streams) && !streams->exiting
            && ch->state == NGX_HTTP_CART_CHANNEL_SUBSCRIBED)
        {
            ngx_http_cart_stream_read(ch);
        }
    }

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

        /* a read in flight was sent before: it reads again after it */
        ngx_http_cart_stream_read(ch);

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

        ngx_http_cart_stream_message(ch, version, count);
        return;
    }
}


/* a change: short events at once, a read for the streams with the cart */

static void
ngx_http_cart_stream_message(ngx_http_cart_channel_t *ch, int64_t version,
    int64_t count)
{
    ngx_uint_t               read;
    ngx_queue_t             *q;
    ngx_http_cart_stream_t  *s;

    ch->heard = 1;
    read = 0;

    for (q = ngx_queue_head(&ch->streams);
         q != ngx_queue_sentinel(&ch->streams);
         q = ngx_queue_next(q))
    {
        s = ngx_queue_data(q, ngx_http_cart_stream_t, link);

        if (s->lines == 0) {
            /* version 0: the cart is gone (a merge claimed a guest cart) */
            ngx_http_cart_stream_update(s, version, count, version == 0,
                                        NULL);
            continue;
        }

        /* the event carries the cart: read it, unless every stream sent
         * it already; a read in flight reads again once it ends */

        if (version == 0) {
            s->exact = 1;
            read = 1;

        } else if (version > s->version) {
            read = 1;
        }
    }

    if (read) {
        ngx_http_cart_stream_read(ch);
    }
}


/* the state of the cart, from Redis, once for all the channel's streams */

static void
ngx_http_cart_stream_read(ngx_http_cart_channel_t *ch)
{
    ngx_str_t                 keys[2], arg;
    ngx_queue_t              *q;
    ngx_http_cart_ctx_t      *ctx;
    ngx_http_cart_stream_t   *s;

    if (ch->reading) {
        ch->reread = 1;
        return;
    }

    if (ngx_queue_empty(&ch->streams)) {
        return;
    }

    ch->heard = 0;
    ch->stale = 0;
    ch->lines = 0;

    for (q = ngx_queue_head(&ch->streams);
         q != ngx_queue_sentinel(&ch->streams);
         q = ngx_queue_next(q))
    {
        s = ngx_queue_data(q, ngx_http_cart_stream_t, link);
        ch->lines = ngx_max(ch->lines, s->lines);
    }

    /* the oldest stream carries it: a Redis command belongs to a request */

    s = ngx_queue_data(ngx_queue_head(&ch->streams), ngx_http_cart_stream_t,
                       link);
    ctx = ngx_http_get_module_ctx(s->request, ngx_http_cart_module);

    keys[0] = ctx->cart_key;
    keys[1] = ctx->count_key;

    /* a pool per read, freed when it ends: through an outage a channel
     * reads every NGX_HTTP_CART_STREAM_RETRY, a long-lived pool would grow
     * by each */

    ch->pool = ngx_create_pool(NGX_HTTP_CART_STREAM_POOL_SIZE,
                               ch->worker->heartbeat.log);

    /* the script's ARGV[1]: the most lines an event carries */

    arg.data = ch->pool ? ngx_pnalloc(ch->pool, NGX_INT_T_LEN) : NULL;
    arg.len = arg.data ? ngx_sprintf(arg.data, "%ui", ch->lines) - arg.data
                       : 0;

    if (arg.len
        && ngx_http_cart_script_run_in(s->request, ch->pool, s->cln,
                                       NGX_HTTP_CART_SCRIPT_STREAM, keys, 2,
                                       &arg, 1,
                                       ngx_http_cart_stream_read_reply, ch)
           == NGX_OK)
    {
        ch->reading = 1;
        ch->carrier = s;
        return;
    }

    /* no connection to Redis right now: again soon */

    ngx_http_cart_stream_read_failed(ch);
}


static void
ngx_http_cart_stream_read_reply(ngx_http_request_t *r, void *data,
    redisReply *reply, ngx_int_t rc)
{
    ngx_http_cart_channel_t  *ch = data;

    int64_t     version, count;
    ngx_uint_t  reread;

    if (rc != NGX_OK
        || ngx_http_cart_reply_int(reply, 0, &version) != NGX_OK
        || ngx_http_cart_reply_int(reply, 1, &count) != NGX_OK
        || ngx_http_cart_stream_fan_out(ch, reply, version, count) != NGX_OK)
    {
        ngx_http_cart_stream_read_failed(ch);
        return;
    }

    reread = ch->reread;

    ngx_http_cart_stream_read_end(ch);

    if (reread) {
        ngx_http_cart_stream_read(ch);
    }
}


static void
ngx_http_cart_stream_read_failed(ngx_http_cart_channel_t *ch)
{
    ngx_http_cart_streams_t  *streams;

    /* the retry reads anyway, after everything heard meanwhile */
    ngx_http_cart_stream_read_end(ch);

    ch->stale = 1;
    streams = ch->worker;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, streams->heartbeat.log, 0,
                   "cart stream: state read failed, again in %Mms "
                   "(\"%V\")", (ngx_msec_t) NGX_HTTP_CART_STREAM_RETRY,
                   &ch->sn.str);

    if (!streams->retry.timer_set && !streams->exiting) {
        ngx_add_timer(&streams->retry, NGX_HTTP_CART_STREAM_RETRY);
    }
}


/* the read is over, or given up: a read after it starts afresh */

static void
ngx_http_cart_stream_read_end(ngx_http_cart_channel_t *ch)
{
    if (ch->pool) {
        ngx_destroy_pool(ch->pool);
        ch->pool = NULL;
    }

    ch->reading = 0;
    ch->reread = 0;
    ch->carrier = NULL;
}


/* one state for every stream of the channel, each rendered once per
 * location and shared */

static ngx_int_t
ngx_http_cart_stream_fan_out(ngx_http_cart_channel_t *ch, redisReply *reply,
    int64_t version, int64_t count)
{
    ngx_uint_t               exact;
    ngx_queue_t             *q;
    ngx_array_t             *views;
    ngx_http_cart_stream_t  *s;

    views = ngx_array_create(ch->pool, 1,
                             sizeof(ngx_http_cart_stream_view_t));
    if (views == NULL) {
        return NGX_ERROR;
    }

    for (q = ngx_queue_head(&ch->streams);
         q != ngx_queue_sentinel(&ch->streams);
         q = ngx_queue_next(q))
    {
        s = ngx_queue_data(q, ngx_http_cart_stream_t, link);

        if (s->lines > ch->lines) {
            /* it came after the read was sent and carries more lines than
             * it read: the read it asked for is its first */
            continue;
        }

        /* a message that came meanwhile may be newer than what was read;
         * when it made a read of its own (reread), that one may be exact
         * instead */

        exact = s->exact && !ch->heard;

        if (exact || !ch->reread) {
            s->exact = 0;
        }

        ngx_http_cart_stream_state(s, views, reply, version, count, exact);
    }

    ngx_http_cart_stream_views_free(views);

    return NGX_OK;
}


/* a state read: its event, with the cart when the stream carries it */

static void
ngx_http_cart_stream_state(ngx_http_cart_stream_t *s, ngx_array_t *views,
    redisReply *reply, int64_t version, int64_t count, ngx_uint_t exact)
{
    ngx_http_cart_stream_text_t  *text;

    if (!ngx_http_cart_stream_newer(s, version, exact)) {
        return;
    }

    text = NULL;

    if (s->lines) {
        text = ngx_http_cart_stream_view(s, views, reply, version, count);
        if (text == NULL) {
            ngx_http_cart_stream_fail(s);
            return;
        }
    }

    ngx_http_cart_stream_update(s, version, count, exact, text);
}


/* the event's text for the stream's location, rendered by its first stream
 * that needs it; "views" hold one reference to each until the fan-out ends */

static ngx_http_cart_stream_text_t *
ngx_http_cart_stream_view(ngx_http_cart_stream_t *s, ngx_array_t *views,
    redisReply *reply, int64_t version, int64_t count)
{
    ngx_str_t                     data;
    ngx_uint_t                    i;
    ngx_http_cart_stream_text_t  *text;
    ngx_http_cart_stream_view_t  *v;

    v = views->elts;

    for (i = 0; i < views->nelts; i++) {
        if (v[i].lcf == s->lcf) {
            return v[i].text;
        }
    }

    if (ngx_http_cart_stream_render(s, views->pool, reply, version, count,
                                    &data)
        != NGX_OK)
    {
        return NULL;
    }

    v = ngx_array_push(views);
    if (v == NULL) {
        return NULL;
    }

    text = ngx_alloc(offsetof(ngx_http_cart_stream_text_t, data)
                     + NGX_HTTP_CART_STREAM_FRAME_LEN + data.len,
                     s->request->connection->log);
    if (text == NULL) {
        views->nelts--;
        return NULL;
    }

    text->refs = 1;
    text->len = ngx_sprintf(text->data, NGX_HTTP_CART_STREAM_FRAME, version,
                            &data)
                - text->data;

    v->lcf = s->lcf;
    v->text = text;

    return text;
}


static void
ngx_http_cart_stream_views_free(ngx_array_t *views)
{
    ngx_uint_t                    i;
    ngx_http_cart_stream_view_t  *v;

    v = views->elts;

    for (i = 0; i < views->nelts; i++) {
        ngx_http_cart_stream_release(&v[i].text);
    }
}


/*
 * {"version":N,"item_count":M,"cart":<the cart view>} in the read's pool:
 * the view GET / renders, priced from what Redis holds (no upstream from a
 * request that lives for hours); {"version","item_count","items_omitted"}
 * when the cart has more lines than the stream carries (the read may have
 * been for another location's more).
 */

static ngx_int_t
ngx_http_cart_stream_render(ngx_http_cart_stream_t *s, ngx_pool_t *pool,
    redisReply *reply, int64_t version, int64_t count, ngx_str_t *data)
{
    yajl_gen                   g;
    ngx_str_t                  word;
    ngx_http_cart_priced_t    *priced;
    ngx_http_cart_snapshot_t  *snap;
    ngx_http_cart_json_gen_t  *json;

    json = ngx_http_cart_json_gen(pool);
    if (json == NULL) {
        return NGX_ERROR;
    }

    g = json->g;

    ngx_http_cart_stream_head(g, version, count);

    snap = NULL;

    if (ngx_http_cart_reply_str(reply, 2, &word) != NGX_OK
        || word.len != sizeof("omitted") - 1
        || ngx_strncmp(word.data, "omitted", word.len) != 0)
    {
        snap = ngx_http_cart_snapshot_in(s->request, pool, reply, 3);
        if (snap == NULL) {
            return NGX_ERROR;
        }
    }

    if (snap == NULL || snap->nlines > s->lines) {
        ngx_http_cart_json_key(g, "items_omitted");
        yajl_gen_bool(g, 1);

    } else {
        priced = ngx_http_cart_price_stored(s->request, pool, snap);
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


/* drops one reference to a shared text */

static void
ngx_http_cart_stream_release(ngx_http_cart_stream_text_t **text)
{
    if (*text == NULL) {
        return;
    }

    if (--(*text)->refs == 0) {
        ngx_free(*text);
    }

    *text = NULL;
}


/* only a newer state, or any other one when "exact" */

static ngx_uint_t
ngx_http_cart_stream_newer(ngx_http_cart_stream_t *s, int64_t version,
    ngx_uint_t exact)
{
    return version != s->version && (version > s->version || exact);
}


/* a state to send; "text" (the event with the cart) NULL: version and
 * count */

static void
ngx_http_cart_stream_update(ngx_http_cart_stream_t *s, int64_t version,
    int64_t count, ngx_uint_t exact, ngx_http_cart_stream_text_t *text)
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

    ngx_http_cart_stream_release(&s->next);

    if (text) {
        text->refs++;
        s->next = text;
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
        /* leaves from the shared text, released once it is in the socket */
        s->sent = s->next;
        s->next = NULL;

        return ngx_http_cart_stream_send(s, s->sent->data, s->sent->len);
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


/* writes text (s->text, or s->sent's); len 0 only flushes (the headers) */

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

    ngx_http_cart_stream_release(&s->sent);
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
    ngx_http_cart_channel_t  *ch;
    ngx_http_cart_streams_t  *streams = ev->data;

    for (q = ngx_queue_head(&streams->channels);
         q != ngx_queue_sentinel(&streams->channels);
         q = ngx_queue_next(q))
    {
        ch = ngx_queue_data(q, ngx_http_cart_channel_t, queue);

        if (ch->stale && ch->state == NGX_HTTP_CART_CHANNEL_SUBSCRIBED) {
            ngx_http_cart_stream_read(ch);
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
