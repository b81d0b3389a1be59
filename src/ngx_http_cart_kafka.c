/*
 * librdkafka producer driven by nginx's event loop: librdkafka writes to a
 * pipe, wrapped as a connection, when its main queue becomes non-empty; a
 * slow, cancelable timer polls too, in case a wake-up is lost.
 */

#include "ngx_http_cart_kafka.h"
#include <librdkafka/rdkafka.h>


#define NGX_HTTP_CART_KAFKA_SAFETY_POLL    1000   /* ms */
#define NGX_HTTP_CART_KAFKA_FLUSH_TIMEOUT  3000   /* ms, on worker exit */


struct ngx_http_cart_kafka_s {
    rd_kafka_t                    *rk;
    rd_kafka_topic_t              *rkt;
    rd_kafka_queue_t              *queue;       /* the main queue */
    ngx_connection_t              *c;           /* the pipe's read end */
    ngx_socket_t                   wakeup;      /* the pipe's write end */
    ngx_event_t                    timer;
    ngx_log_t                     *log;
    ngx_http_cart_kafka_stats_t   *stats;
    ngx_atomic_t                  *depth;       /* the queue, a gauge */
    time_t                         drop_logged; /* last "dropped" line */
    ngx_uint_t                     drops;       /* dropped since that line */
};


static rd_kafka_conf_t *ngx_http_cart_kafka_conf(ngx_log_t *log,
    ngx_str_t *brokers, ngx_array_t *properties);
static ngx_int_t ngx_http_cart_kafka_set(rd_kafka_conf_t *conf,
    ngx_log_t *log, const char *name, ngx_str_t *value);
static ngx_int_t ngx_http_cart_kafka_pipe(ngx_http_cart_kafka_t *kafka);
static void ngx_http_cart_kafka_read_handler(ngx_event_t *ev);
static void ngx_http_cart_kafka_timer_handler(ngx_event_t *ev);
static void ngx_http_cart_kafka_dr(rd_kafka_t *rk,
    const rd_kafka_message_t *msg, void *opaque);
static void ngx_http_cart_kafka_error(rd_kafka_t *rk, int err,
    const char *reason, void *opaque);
static void ngx_http_cart_kafka_logger(const rd_kafka_t *rk, int level,
    const char *fac, const char *buf);


char *
ngx_http_cart_kafka_check_property(ngx_conf_t *cf, ngx_str_t *name,
    ngx_str_t *value)
{
    char              errstr[512];
    u_char           *n, *v;
    rd_kafka_conf_t  *conf;
    rd_kafka_conf_res_t  res;

    /* a conf object starts no thread: safe in the master */

    n = ngx_pnalloc(cf->pool, name->len + 1);
    v = ngx_pnalloc(cf->pool, value->len + 1);
    conf = rd_kafka_conf_new();

    if (n == NULL || v == NULL || conf == NULL) {
        if (conf) {
            rd_kafka_conf_destroy(conf);
        }
        return NGX_CONF_ERROR;
    }

    (void) ngx_cpystrn(n, name->data, name->len + 1);
    (void) ngx_cpystrn(v, value->data, value->len + 1);

    res = rd_kafka_conf_set(conf, (char *) n, (char *) v, errstr,
                            sizeof(errstr));
    rd_kafka_conf_destroy(conf);

    if (res != RD_KAFKA_CONF_OK) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "librdkafka: %s", errstr);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


ngx_http_cart_kafka_t *
ngx_http_cart_kafka_create(ngx_cycle_t *cycle, ngx_str_t *brokers,
    ngx_str_t *topic, ngx_array_t *properties,
    ngx_http_cart_kafka_stats_t *stats, ngx_atomic_t *depth)
{
    char                    errstr[512];
    u_char                 *name;
    rd_kafka_conf_t        *conf;
    ngx_http_cart_kafka_t  *kafka;

    kafka = ngx_pcalloc(cycle->pool, sizeof(ngx_http_cart_kafka_t));
    name = ngx_pnalloc(cycle->pool, topic->len + 1);
    if (kafka == NULL || name == NULL) {
        return NULL;
    }

    (void) ngx_cpystrn(name, topic->data, topic->len + 1);

    kafka->log = cycle->log;
    kafka->stats = stats;
    kafka->depth = depth;
    kafka->wakeup = (ngx_socket_t) -1;

    conf = ngx_http_cart_kafka_conf(cycle->log, brokers, properties);
    if (conf == NULL) {
        return NULL;
    }

    rd_kafka_conf_set_opaque(conf, kafka);
    rd_kafka_conf_set_dr_msg_cb(conf, ngx_http_cart_kafka_dr);
    rd_kafka_conf_set_error_cb(conf, ngx_http_cart_kafka_error);
    rd_kafka_conf_set_log_cb(conf, ngx_http_cart_kafka_logger);

    kafka->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (kafka->rk == NULL) {
        rd_kafka_conf_destroy(conf);
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "cart kafka: cannot create the producer: %s", errstr);
        return NULL;
    }

    /* log lines of librdkafka's threads wait on the main queue for us */
    rd_kafka_set_log_queue(kafka->rk, NULL);

    kafka->rkt = rd_kafka_topic_new(kafka->rk, (char *) name, NULL);
    kafka->queue = rd_kafka_queue_get_main(kafka->rk);

    if (kafka->rkt == NULL || kafka->queue == NULL
        || ngx_http_cart_kafka_pipe(kafka) != NGX_OK)
    {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "cart kafka: cannot set up the producer of \"%V\"",
                      topic);
        ngx_http_cart_kafka_destroy(kafka);
        return NULL;
    }

    kafka->timer.handler = ngx_http_cart_kafka_timer_handler;
    kafka->timer.data = kafka;
    kafka->timer.log = cycle->log;
    kafka->timer.cancelable = 1;

    ngx_add_timer(&kafka->timer, NGX_HTTP_CART_KAFKA_SAFETY_POLL);

    ngx_log_error(NGX_LOG_INFO, cycle->log, 0,
                  "cart kafka: producer %s for topic \"%V\" at \"%V\"",
                  rd_kafka_name(kafka->rk), topic, brokers);

    return kafka;
}


/*
 * The producer's settings: the contract's (idempotent, acks=all), then the
 * operator's cart_kafka_property lines, which may override them.
 */

static rd_kafka_conf_t *
ngx_http_cart_kafka_conf(ngx_log_t *log, ngx_str_t *brokers,
    ngx_array_t *properties)
{
    u_char            *name;
    ngx_str_t          v;
    ngx_uint_t         i;
    ngx_keyval_t      *kv;
    rd_kafka_conf_t   *conf;

    conf = rd_kafka_conf_new();
    if (conf == NULL) {
        return NULL;
    }

    if (ngx_http_cart_kafka_set(conf, log, "bootstrap.servers", brokers)
        != NGX_OK)
    {
        goto failed;
    }

    ngx_str_set(&v, "true");
    if (ngx_http_cart_kafka_set(conf, log, "enable.idempotence", &v) != NGX_OK
        || ngx_http_cart_kafka_set(conf, log, "log.queue", &v) != NGX_OK)
    {
        goto failed;
    }

    ngx_str_set(&v, "all");
    if (ngx_http_cart_kafka_set(conf, log, "acks", &v) != NGX_OK) {
        goto failed;
    }

    ngx_str_set(&v, "ngx_http_cart_module");
    if (ngx_http_cart_kafka_set(conf, log, "client.id", &v) != NGX_OK) {
        goto failed;
    }

    if (properties == NULL) {
        return conf;
    }

    kv = properties->elts;

    for (i = 0; i < properties->nelts; i++) {
        name = ngx_alloc(kv[i].key.len + 1, log);
        if (name == NULL) {
            goto failed;
        }

        (void) ngx_cpystrn(name, kv[i].key.data, kv[i].key.len + 1);

        if (ngx_http_cart_kafka_set(conf, log, (char *) name, &kv[i].value)
            != NGX_OK)
        {
            ngx_free(name);
            goto failed;
        }

        ngx_free(name);
    }

    return conf;

failed:

    rd_kafka_conf_destroy(conf);
    return NULL;
}


static ngx_int_t
ngx_http_cart_kafka_set(rd_kafka_conf_t *conf, ngx_log_t *log,
    const char *name, ngx_str_t *value)
{
    char     errstr[512];
    u_char  *v;

    v = ngx_alloc(value->len + 1, log);
    if (v == NULL) {
        return NGX_ERROR;
    }

    (void) ngx_cpystrn(v, value->data, value->len + 1);

    if (rd_kafka_conf_set(conf, name, (char *) v, errstr, sizeof(errstr))
        != RD_KAFKA_CONF_OK)
    {
        ngx_log_error(NGX_LOG_EMERG, log, 0, "cart kafka: %s", errstr);
        ngx_free(v);
        return NGX_ERROR;
    }

    ngx_free(v);

    return NGX_OK;
}


static ngx_int_t
ngx_http_cart_kafka_pipe(ngx_http_cart_kafka_t *kafka)
{
    int                fd[2];
    ngx_connection_t  *c;

    if (pipe(fd) == -1) {
        ngx_log_error(NGX_LOG_EMERG, kafka->log, ngx_errno, "pipe() failed");
        return NGX_ERROR;
    }

    /* librdkafka must never block writing a wake-up, nor we reading one */

    if (ngx_nonblocking(fd[0]) == -1 || ngx_nonblocking(fd[1]) == -1) {
        ngx_log_error(NGX_LOG_EMERG, kafka->log, ngx_socket_errno,
                      ngx_nonblocking_n " failed");
        close(fd[0]);
        close(fd[1]);
        return NGX_ERROR;
    }

    c = ngx_get_connection(fd[0], kafka->log);
    if (c == NULL) {
        close(fd[0]);
        close(fd[1]);
        return NGX_ERROR;
    }

    kafka->c = c;
    kafka->wakeup = fd[1];

    c->data = kafka;
    c->read->handler = ngx_http_cart_kafka_read_handler;
    c->read->log = kafka->log;
    c->write->log = kafka->log;

    if (ngx_handle_read_event(c->read, 0) != NGX_OK) {
        return NGX_ERROR;
    }

    rd_kafka_queue_io_event_enable(kafka->queue, fd[1], "1", 1);

    return NGX_OK;
}


void
ngx_http_cart_kafka_destroy(ngx_http_cart_kafka_t *kafka)
{
    rd_kafka_resp_err_t  err;

    if (kafka->timer.timer_set) {
        ngx_del_timer(&kafka->timer);
    }

    if (kafka->rk) {
        /* events still in the local queue get a bounded chance to leave */

        err = rd_kafka_flush(kafka->rk, NGX_HTTP_CART_KAFKA_FLUSH_TIMEOUT);

        if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
            ngx_log_error(NGX_LOG_ERR, kafka->log, 0,
                          "cart kafka: %d events not delivered within "
                          "%d ms of the worker's exit, discarding them",
                          rd_kafka_outq_len(kafka->rk),
                          NGX_HTTP_CART_KAFKA_FLUSH_TIMEOUT);

            /* their delivery reports count them as failed */
            rd_kafka_purge(kafka->rk, RD_KAFKA_PURGE_F_QUEUE
                                      |RD_KAFKA_PURGE_F_INFLIGHT);
            rd_kafka_poll(kafka->rk, 0);
        }
    }

    if (kafka->queue) {
        rd_kafka_queue_io_event_enable(kafka->queue, -1, NULL, 0);
        rd_kafka_queue_destroy(kafka->queue);
        kafka->queue = NULL;
    }

    if (kafka->rkt) {
        rd_kafka_topic_destroy(kafka->rkt);
        kafka->rkt = NULL;
    }

    if (kafka->rk) {
        rd_kafka_destroy(kafka->rk);
        kafka->rk = NULL;

        ngx_log_error(NGX_LOG_INFO, kafka->log, 0,
                      "cart kafka: producer closed; events of all workers: "
                      "%uA enqueued, %uA delivered, %uA failed, %uA dropped",
                      kafka->stats->enqueued, kafka->stats->delivered,
                      kafka->stats->failed, kafka->stats->dropped);
    }

    if (kafka->c) {
        ngx_close_connection(kafka->c);
        kafka->c = NULL;
    }

    if (kafka->wakeup != (ngx_socket_t) -1) {
        close(kafka->wakeup);
        kafka->wakeup = (ngx_socket_t) -1;
    }
}


ngx_int_t
ngx_http_cart_kafka_produce(ngx_http_cart_kafka_t *kafka, ngx_str_t *key,
    u_char *value, size_t len, ngx_log_t *log)
{
    rd_kafka_resp_err_t  err;

    err = rd_kafka_producev(kafka->rk,
                            RD_KAFKA_V_RKT(kafka->rkt),
                            RD_KAFKA_V_KEY(key->data, key->len),
                            RD_KAFKA_V_VALUE(value, len),
                            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                            RD_KAFKA_V_END);

    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        (void) ngx_atomic_fetch_add(&kafka->stats->enqueued, 1);
        return NGX_OK;
    }

    (void) ngx_atomic_fetch_add(&kafka->stats->dropped, 1);
    kafka->drops++;

    /* one line per second, not one per event, while the queue is full */

    if (kafka->drop_logged != ngx_time()) {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "cart kafka: event for \"%V\" dropped: %s "
                      "(%ui dropped since the last report, %uA in all)",
                      key, rd_kafka_err2str(err), kafka->drops,
                      kafka->stats->dropped);
        kafka->drop_logged = ngx_time();
        kafka->drops = 0;
    }

    return NGX_DECLINED;
}


static void
ngx_http_cart_kafka_read_handler(ngx_event_t *ev)
{
    u_char                  buf[64];
    ssize_t                 n;
    ngx_connection_t       *c;
    ngx_http_cart_kafka_t  *kafka;

    c = ev->data;
    kafka = c->data;

    /* drain first: a byte written while we poll wakes us again */

    do {
        n = read(c->fd, buf, sizeof(buf));
    } while (n > 0);

    rd_kafka_poll(kafka->rk, 0);

    if (ngx_handle_read_event(ev, 0) != NGX_OK) {
        ngx_log_error(NGX_LOG_ALERT, kafka->log, 0,
                      "cart kafka: cannot re-arm the wake-up pipe");
    }
}


static void
ngx_http_cart_kafka_timer_handler(ngx_event_t *ev)
{
    ngx_http_cart_kafka_t  *kafka = ev->data;

    rd_kafka_poll(kafka->rk, 0);

    /* what waits for the brokers: grows while they are away */
    if (kafka->depth) {
        *kafka->depth = rd_kafka_outq_len(kafka->rk);
    }

    ngx_add_timer(ev, NGX_HTTP_CART_KAFKA_SAFETY_POLL);
}


/* the callbacks below run inside rd_kafka_poll(), in the worker's thread */

static void
ngx_http_cart_kafka_dr(rd_kafka_t *rk, const rd_kafka_message_t *msg,
    void *opaque)
{
    ngx_http_cart_kafka_t  *kafka = opaque;

    if (msg->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        (void) ngx_atomic_fetch_add(&kafka->stats->delivered, 1);
        return;
    }

    (void) ngx_atomic_fetch_add(&kafka->stats->failed, 1);

    ngx_log_error(NGX_LOG_ERR, kafka->log, 0,
                  "cart kafka: event for \"%*s\" not delivered: %s "
                  "(%uA failed in all): %*s",
                  msg->key_len, msg->key, rd_kafka_err2str(msg->err),
                  kafka->stats->failed, msg->len, msg->payload);
}


static void
ngx_http_cart_kafka_error(rd_kafka_t *rk, int err, const char *reason,
    void *opaque)
{
    ngx_http_cart_kafka_t  *kafka = opaque;

    ngx_uint_t  level;

    /* a fatal error ends idempotent production: say it loudly */

    level = (err == RD_KAFKA_RESP_ERR__FATAL) ? NGX_LOG_ALERT : NGX_LOG_ERR;

    ngx_log_error(level, kafka->log, 0, "cart kafka: %s: %s",
                  rd_kafka_err2name(err), reason);
}


static void
ngx_http_cart_kafka_logger(const rd_kafka_t *rk, int level, const char *fac,
    const char *buf)
{
    ngx_uint_t              ngx_level;
    ngx_http_cart_kafka_t  *kafka;

    kafka = rd_kafka_opaque(rk);

    /* syslog levels: 0..3 errors, 4 warning, 5..6 notice/info, 7 debug */

    ngx_level = level <= 3 ? NGX_LOG_ERR
                : level == 4 ? NGX_LOG_WARN
                : level <= 6 ? NGX_LOG_INFO
                : NGX_LOG_DEBUG;

    ngx_log_error(ngx_level, kafka->log, 0, "librdkafka: %s: %s", fac, buf);
}
