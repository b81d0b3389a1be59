/*
 * The consumer loop: at least once from cart-events, exactly once in
 * effect. Per batch, in one PostgreSQL transaction: each event id is
 * recorded in processed_events (a duplicate stops there), then the carts
 * the batch touched are re-read from Redis, the source of truth, and
 * their snapshots replaced. Offsets are committed to Kafka only after the
 * database commit: a crash in between replays the batch, and the replay
 * is deduplicated.
 *
 * A message that fails by its own fault (not JSON, fields missing, a row
 * PostgreSQL refuses) is tried max_tries times, then copied to the DLQ
 * with headers saying why and skipped. An unreachable Redis, PostgreSQL
 * or broker is waited out and never sends a message to the DLQ.
 */

#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <yajl/yajl_tree.h>
#include "cartd.h"


#define CARTD_MAX_FAILURES  64
#define CARTD_LAG_BUCKETS   10000     /* 1 ms each; the last one is "more" */


typedef struct {
    int32_t        partition;
    int64_t        offset;
    int            tries;
} cartd_failure_t;


typedef struct {
    rd_kafka_t        *consumer;
    rd_kafka_t        *producer;
    PGconn            *pg;
    cartd_redis_t     *redis;
    char             **owners;       /* carts the batch touched */
    int                nowners;
    cartd_failure_t    failures[CARTD_MAX_FAILURES];
    long               commits;      /* database commits, for the test hook */
    long               exit_after;   /* CARTD_TEST_EXIT_AFTER_COMMITS */
    long               applied, duplicates, dead;
    int64_t           *stamps;       /* event ts of the batch, ms */
    int                nstamps;
    long              *lag;          /* histogram of ts -> commit, ms */
    long               nlag;
} cartd_loop_t;


static int   cartd_dr_failed;


static int64_t
cartd_ms(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}


/* "2026-03-14T10:00:00.123Z" -> ms, or -1 */

static int64_t
cartd_ts_ms(const char *s)
{
    int         ms;
    char       *p;
    struct tm   tm;

    memset(&tm, 0, sizeof(tm));

    p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (p == NULL) {
        return -1;
    }

    ms = (*p == '.') ? atoi(p + 1) : 0;

    return (int64_t) timegm(&tm) * 1000 + ms;
}


/* the lag from the event's ts (taken by nginx when Redis answered the
 * write) to the snapshot's commit: p50, p99 and max for the log */

static void
cartd_lag_report(cartd_loop_t *lp)
{
    int   i;
    long  seen, p50, p99, max;

    if (lp->nlag == 0) {
        return;
    }

    seen = 0;
    p50 = p99 = max = -1;

    for (i = 0; i < CARTD_LAG_BUCKETS; i++) {
        seen += lp->lag[i];
        if (p50 < 0 && seen * 2 >= lp->nlag) {
            p50 = i;
        }
        if (p99 < 0 && seen * 100 >= lp->nlag * 99) {
            p99 = i;
        }
        if (lp->lag[i]) {
            max = i;
        }
    }

    cartd_log(CARTD_LOG_INFO, "lag from event ts to snapshot commit over %ld "
              "events: p50 %ld ms, p99 %ld ms, max %ld%s ms", lp->nlag, p50,
              p99, max, max == CARTD_LAG_BUCKETS - 1 ? "+" : "");
}


static void
cartd_dr(rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque)
{
    if (msg->err) {
        cartd_dr_failed++;
        cartd_log(CARTD_LOG_ERR, "kafka: %s message not delivered: %s",
                  rd_kafka_topic_name(msg->rkt), rd_kafka_err2str(msg->err));
    }
}


static void
cartd_kafka_log(const rd_kafka_t *rk, int level, const char *fac,
    const char *buf)
{
    cartd_log(level <= 3 ? CARTD_LOG_ERR : level == 4 ? CARTD_LOG_WARN
              : level <= 6 ? CARTD_LOG_INFO : CARTD_LOG_DEBUG,
              "librdkafka: %s: %s", fac, buf);
}


static rd_kafka_conf_t *
cartd_kafka_conf(const char **defaults)
{
    int               i;
    char              errstr[512];
    rd_kafka_conf_t  *conf;

    conf = rd_kafka_conf_new();

    if (rd_kafka_conf_set(conf, "bootstrap.servers", cartd_conf.brokers,
                          errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK)
    {
        goto failed;
    }

    for (i = 0; defaults[i]; i += 2) {
        if (rd_kafka_conf_set(conf, defaults[i], defaults[i + 1], errstr,
                              sizeof(errstr)) != RD_KAFKA_CONF_OK)
        {
            goto failed;
        }
    }

    for (i = 0; i < cartd_conf.nprops; i++) {
        if (rd_kafka_conf_set(conf, cartd_conf.props[i].name,
                              cartd_conf.props[i].value, errstr,
                              sizeof(errstr)) != RD_KAFKA_CONF_OK)
        {
            goto failed;
        }
    }

    rd_kafka_conf_set_log_cb(conf, cartd_kafka_log);

    return conf;

failed:

    cartd_log(CARTD_LOG_ERR, "kafka: %s", errstr);
    rd_kafka_conf_destroy(conf);
    return NULL;
}


static rd_kafka_t *
cartd_kafka_new(rd_kafka_type_t type, rd_kafka_conf_t *conf)
{
    char         errstr[512];
    rd_kafka_t  *rk;

    rk = rd_kafka_new(type, conf, errstr, sizeof(errstr));
    if (rk == NULL) {
        cartd_log(CARTD_LOG_ERR, "kafka: %s", errstr);
        rd_kafka_conf_destroy(conf);
    }

    return rk;
}


/* for the DLQ, cart_abandoned and reminders: idempotent, acks=all */

rd_kafka_t *
cartd_producer(void)
{
    rd_kafka_conf_t  *conf;

    static const char  *defaults[] = {
        "enable.idempotence", "true", "acks", "all", "linger.ms", "1",
        "client.id", "cartd", NULL
    };

    if (cartd_conf.brokers == NULL) {
        cartd_log(CARTD_LOG_ERR, "\"kafka_brokers\" is required");
        return NULL;
    }

    conf = cartd_kafka_conf(defaults);
    if (conf == NULL) {
        return NULL;
    }

    rd_kafka_conf_set_dr_msg_cb(conf, cartd_dr);

    return cartd_kafka_new(RD_KAFKA_PRODUCER, conf);
}


int
cartd_produce(rd_kafka_t *rk, const char *topic, const void *key,
    size_t key_len, const void *value, size_t len,
    rd_kafka_headers_t *headers)
{
    rd_kafka_resp_err_t  err;

    for ( ;; ) {
        err = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic),
                                RD_KAFKA_V_KEY(key, key_len),
                                RD_KAFKA_V_VALUE((void *) value, len),
                                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                RD_KAFKA_V_HEADERS(headers),
                                RD_KAFKA_V_END);

        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            break;
        }

        /* a daemon may wait for room, unlike an nginx worker */
        rd_kafka_poll(rk, 100);
    }

    if (err) {
        cartd_log(CARTD_LOG_ERR, "kafka: produce to %s: %s", topic,
                  rd_kafka_err2str(err));
        if (headers) {
            rd_kafka_headers_destroy(headers);
        }
        return CARTD_ERROR;
    }

    return CARTD_OK;
}


/* waits for every delivery report: CARTD_OK when all were delivered */

int
cartd_flush(rd_kafka_t *rk)
{
    int  failed;

    failed = cartd_dr_failed;

    if (rd_kafka_flush(rk, 30000) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        cartd_log(CARTD_LOG_ERR, "kafka: messages still undelivered after "
                  "30 s");
        return CARTD_ERROR;
    }

    return cartd_dr_failed == failed ? CARTD_OK : CARTD_ERROR;
}


int
cartd_refresh(PGconn *pg, cartd_redis_t *rc, const char *owner,
    time_t activity)
{
    int           rv;
    cartd_cart_t  cart;

    if (cartd_redis_cart(rc, owner, &cart) != CARTD_OK) {
        return CARTD_ERROR;
    }

    /* a missing key is an expired cart, or a Redis that lost its data:
     * the snapshot stays, it is what restore brings back */

    rv = CARTD_OK;

    if (cart.exists) {
        if (activity == 0) {
            activity = (time_t) cartd_redis_activity(rc, owner);
        }
        rv = cartd_pg_snapshot(pg, &cart, activity);
    }

    cartd_cart_free(&cart);
    return rv;
}


static int
cartd_valid_id(const char *s, size_t max)
{
    size_t  n;

    for (n = 0; s[n]; n++) {
        if (!((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= 'A' && s[n] <= 'Z')
              || (s[n] >= '0' && s[n] <= '9') || s[n] == '.' || s[n] == '_'
              || s[n] == ':' || s[n] == '-'))
        {
            return 0;
        }
    }

    return n > 0 && n <= max;
}


/* "user-<id>" or "guest-<session>": the cart key's owner */

static int
cartd_valid_owner(const char *s)
{
    return (strncmp(s, "user-", 5) == 0 || strncmp(s, "guest-", 6) == 0)
           && cartd_valid_id(s, CARTD_MAX_OWNER);
}


/*
 * The owner of an event: "owner". Events written before it existed carry
 * the owner in "user_id" (now the user's own id, or null for a guest):
 * such an event still in the topic is read by that, when it has the
 * owner's form.
 */

static yajl_val
cartd_event_owner(yajl_val doc)
{
    yajl_val  v;

    static const char  *path_owner[] = { "owner", NULL };
    static const char  *path_user[] = { "user_id", NULL };

    v = yajl_tree_get(doc, path_owner, yajl_t_string);

    if (v == NULL && yajl_tree_get(doc, path_owner, yajl_t_any) == NULL) {
        v = yajl_tree_get(doc, path_user, yajl_t_string);
    }

    return v && cartd_valid_owner(v->u.string) ? v : NULL;
}


/* one event inside the batch's transaction */

static int
cartd_apply(cartd_loop_t *lp, const rd_kafka_message_t *m, char *why,
    size_t size)
{
    int          i, rv;
    char        *text;
    yajl_val     doc, id, type, owner, version, ts;

    static const char  *path_id[] = { "event_id", NULL };
    static const char  *path_type[] = { "type", NULL };
    static const char  *path_version[] = { "version", NULL };
    static const char  *path_ts[] = { "ts", NULL };

    text = malloc(m->len + 1);
    if (text == NULL) {
        return CARTD_ERROR;
    }

    memcpy(text, m->payload, m->len);
    text[m->len] = '\0';

    doc = yajl_tree_parse(text, why, size);
    free(text);

    if (doc == NULL) {
        /* yajl's message spans lines: one line for the log and header */
        for (text = why; *text; text++) {
            if (*text == '\n') {
                *text = ' ';
            }
        }
        return CARTD_POISON;
    }

    id = yajl_tree_get(doc, path_id, yajl_t_string);
    type = yajl_tree_get(doc, path_type, yajl_t_string);
    owner = cartd_event_owner(doc);
    version = yajl_tree_get(doc, path_version, yajl_t_number);
    ts = yajl_tree_get(doc, path_ts, yajl_t_string);

    if (id == NULL || !cartd_valid_id(id->u.string, 128)
        || type == NULL || !cartd_valid_id(type->u.string, 64)
        || owner == NULL
        || version == NULL || !YAJL_IS_INTEGER(version)
        || ts == NULL)
    {
        snprintf(why, size, "not a cart event: event_id, type, owner, "
                 "version or ts missing or invalid");
        yajl_tree_free(doc);
        return CARTD_POISON;
    }

    rv = cartd_pg_event_new(lp->pg, id->u.string);

    if (rv == 0) {
        lp->duplicates++;
        cartd_log(CARTD_LOG_DEBUG, "duplicate event %s skipped",
                  id->u.string);
        yajl_tree_free(doc);
        return CARTD_OK;
    }

    if (rv < 0) {
        snprintf(why, size, "postgres: %s", PQerrorMessage(lp->pg));
        yajl_tree_free(doc);
        return cartd_pg_failed(lp->pg) ? CARTD_ERROR : CARTD_POISON;
    }

    rv = cartd_pg_event_applied(lp->pg, owner->u.string,
                                type->u.string, ts->u.string);
    if (rv != CARTD_OK) {
        snprintf(why, size, "postgres: %s", PQerrorMessage(lp->pg));
        yajl_tree_free(doc);
        return rv;
    }

    lp->applied++;

    /* the daemon's own cart_abandoned changes no line (and its ts is the
     * abandonment pass's clock, not a write's) */

    if (strcmp(type->u.string, "cart_abandoned") != 0) {
        lp->stamps[lp->nstamps++] = cartd_ts_ms(ts->u.string);

        for (i = 0; i < lp->nowners; i++) {
            if (strcmp(lp->owners[i], owner->u.string) == 0) {
                break;
            }
        }

        if (i == lp->nowners) {
            lp->owners[lp->nowners++] = strdup(owner->u.string);
        }
    }

    yajl_tree_free(doc);
    return CARTD_OK;
}


static cartd_failure_t *
cartd_failure(cartd_loop_t *lp, const rd_kafka_message_t *m)
{
    int               i;
    cartd_failure_t  *f, *free_slot;

    free_slot = &lp->failures[0];

    for (i = 0; i < CARTD_MAX_FAILURES; i++) {
        f = &lp->failures[i];

        if (f->tries && f->partition == m->partition
            && f->offset == m->offset)
        {
            return f;
        }

        if (f->tries == 0) {
            free_slot = f;
        }
    }

    free_slot->partition = m->partition;
    free_slot->offset = m->offset;
    free_slot->tries = 0;

    return free_slot;
}


static int
cartd_dead_letter(cartd_loop_t *lp, const rd_kafka_message_t *m,
    const char *why, int tries)
{
    char                 buf[32];
    rd_kafka_headers_t  *h;

    h = rd_kafka_headers_new(5);

    rd_kafka_header_add(h, "x-error", -1, why, -1);
    rd_kafka_header_add(h, "x-original-topic", -1,
                        rd_kafka_topic_name(m->rkt), -1);
    snprintf(buf, sizeof(buf), "%d", (int) m->partition);
    rd_kafka_header_add(h, "x-original-partition", -1, buf, -1);
    snprintf(buf, sizeof(buf), "%lld", (long long) m->offset);
    rd_kafka_header_add(h, "x-original-offset", -1, buf, -1);
    snprintf(buf, sizeof(buf), "%d", tries);
    rd_kafka_header_add(h, "x-tries", -1, buf, -1);

    if (cartd_produce(lp->producer, cartd_conf.dlq_topic, m->key, m->key_len,
                      m->payload, m->len, h) != CARTD_OK)
    {
        return CARTD_ERROR;
    }

    return cartd_flush(lp->producer);
}


/*
 * The partitions of msgs[from..n) with, per partition, the offset of its
 * first message (to rewind to it) or the one after its last (to commit).
 */

static rd_kafka_topic_partition_list_t *
cartd_partitions(rd_kafka_message_t **msgs, int from, int n, int after)
{
    int                                i;
    rd_kafka_topic_partition_t        *tp;
    rd_kafka_topic_partition_list_t   *list;

    list = rd_kafka_topic_partition_list_new(n - from);

    for (i = from; i < n; i++) {
        if (msgs[i]->err) {
            continue;
        }

        tp = rd_kafka_topic_partition_list_find(list,
                 rd_kafka_topic_name(msgs[i]->rkt), msgs[i]->partition);

        if (tp == NULL) {
            tp = rd_kafka_topic_partition_list_add(list,
                     rd_kafka_topic_name(msgs[i]->rkt), msgs[i]->partition);
            tp->offset = msgs[i]->offset;
        }

        if (after) {
            tp->offset = msgs[i]->offset + 1;
        }
    }

    return list;
}


static void
cartd_rewind(cartd_loop_t *lp, rd_kafka_message_t **msgs, int from, int n)
{
    rd_kafka_error_t                  *error;
    rd_kafka_topic_partition_list_t   *list;

    list = cartd_partitions(msgs, from, n, 0);

    if (list->cnt) {
        error = rd_kafka_seek_partitions(lp->consumer, list, 5000);
        if (error) {
            cartd_log(CARTD_LOG_ERR, "kafka: seek: %s",
                      rd_kafka_error_string(error));
            rd_kafka_error_destroy(error);
        }
    }

    rd_kafka_topic_partition_list_destroy(list);
}


static void
cartd_commit_offsets(cartd_loop_t *lp, rd_kafka_message_t **msgs, int n)
{
    rd_kafka_resp_err_t                err;
    rd_kafka_topic_partition_list_t   *list;

    list = cartd_partitions(msgs, 0, n, 1);

    err = list->cnt ? rd_kafka_commit(lp->consumer, list, 0)
                    : RD_KAFKA_RESP_ERR_NO_ERROR;
    rd_kafka_topic_partition_list_destroy(list);

    if (err) {
        /* the batch will come again after a rebalance: dedup absorbs it */
        cartd_log(CARTD_LOG_WARN, "kafka: offset commit: %s",
                  rd_kafka_err2str(err));
    }
}


static void
cartd_batch(cartd_loop_t *lp, rd_kafka_message_t **msgs, int n)
{
    int               i, done, rv;
    char              why[512];
    int64_t           now, lag;
    cartd_failure_t  *f;

    for (i = 0; i < lp->nowners; i++) {
        free(lp->owners[i]);
    }
    lp->nowners = 0;
    lp->nstamps = 0;

    for (i = 0; i < n && msgs[i]->err; i++) {
        /* not messages: errors the consumer reports (all brokers down...) */
        cartd_log(CARTD_LOG_WARN, "kafka: %s",
                  rd_kafka_message_errstr(msgs[i]));
    }

    if (i == n) {
        return;
    }

    if (cartd_pg_exec(lp->pg, "BEGIN") != CARTD_OK) {
        goto retry;
    }

    for (done = 0; done < n; done++) {
        if (msgs[done]->err) {
            continue;     /* partition EOF and the like */
        }

        if (cartd_pg_exec(lp->pg, "SAVEPOINT m") != CARTD_OK) {
            goto rollback;
        }

        why[0] = '\0';
        rv = cartd_apply(lp, msgs[done], why, sizeof(why));

        if (rv == CARTD_OK) {
            if (cartd_pg_exec(lp->pg, "RELEASE SAVEPOINT m") != CARTD_OK) {
                goto rollback;
            }
            continue;
        }

        if (rv == CARTD_ERROR
            || cartd_pg_exec(lp->pg, "ROLLBACK TO SAVEPOINT m") != CARTD_OK)
        {
            goto rollback;
        }

        f = cartd_failure(lp, msgs[done]);
        f->tries++;

        cartd_log(CARTD_LOG_WARN, "message %d:%lld failed (try %d of %d): %s",
                  (int) msgs[done]->partition, (long long) msgs[done]->offset,
                  f->tries, cartd_conf.max_tries, why);

        if (f->tries < cartd_conf.max_tries) {
            break;        /* commit what came before, then try it again */
        }

        if (cartd_dead_letter(lp, msgs[done], why, f->tries) != CARTD_OK) {
            goto rollback;
        }

        cartd_log(CARTD_LOG_ERR, "message %d:%lld sent to %s after %d tries",
                  (int) msgs[done]->partition, (long long) msgs[done]->offset,
                  cartd_conf.dlq_topic, f->tries);
        f->tries = 0;
        lp->dead++;
    }

    for (i = 0; i < lp->nowners; i++) {
        if (cartd_refresh(lp->pg, lp->redis, lp->owners[i], 0) != CARTD_OK) {
            goto rollback;
        }
    }

    if (cartd_pg_exec(lp->pg, "COMMIT") != CARTD_OK) {
        goto retry;
    }

    now = cartd_ms();

    for (i = 0; i < lp->nstamps; i++) {
        if (lp->stamps[i] >= 0) {
            lag = now - lp->stamps[i];
            lp->lag[lag < 0 ? 0 : lag < CARTD_LAG_BUCKETS ? lag
                                 : CARTD_LAG_BUCKETS - 1]++;
            lp->nlag++;
        }
    }

    if (lp->exit_after && ++lp->commits >= lp->exit_after) {
        /* the test hook: die between the database and the offset commit */
        cartd_log(CARTD_LOG_WARN, "exiting after %ld commits, offsets not "
                  "committed (CARTD_TEST_EXIT_AFTER_COMMITS)", lp->commits);
        _exit(137);
    }

    cartd_commit_offsets(lp, msgs, done);

    if (done < n) {
        cartd_rewind(lp, msgs, done, n);
        usleep(100000);
    }

    return;

rollback:

    cartd_pg_exec(lp->pg, "ROLLBACK");

retry:

    /* an outage: nothing of this batch counts, all of it comes again */
    cartd_rewind(lp, msgs, 0, n);
    sleep(1);

    if (cartd_pg_failed(lp->pg)) {
        PQreset(lp->pg);
    }

    if (lp->redis->err) {
        cartd_redis_free(lp->redis);
        lp->redis = NULL;
        while (lp->redis == NULL && !cartd_stop) {
            lp->redis = cartd_redis_connect();
            if (lp->redis == NULL) {
                sleep(1);
            }
        }
    }
}


/* the periodic reconciliation: every cart Redis has, by SCAN */

typedef struct {
    PGconn             *pg;
    cartd_reconcile_t  *rec;
} cartd_reconcile_ctx_t;


static int
cartd_reconcile_one(cartd_redis_t *rc, const char *owner, void *data)
{
    int64_t                 v;
    cartd_cart_t            cart;
    cartd_reconcile_ctx_t  *ctx = data;

    if (cartd_redis_cart(rc, owner, &cart) != CARTD_OK) {
        return CARTD_ERROR;
    }

    ctx->rec->carts++;

    v = cartd_pg_version(ctx->pg, owner);

    if (v == -2) {
        cartd_cart_free(&cart);
        return CARTD_ERROR;
    }

    if (cart.exists && v != cart.version) {
        if (cartd_pg_exec(ctx->pg, "BEGIN") != CARTD_OK
            || cartd_pg_snapshot(ctx->pg, &cart,
                                 (time_t) cartd_redis_activity(rc, owner))
               != CARTD_OK
            || cartd_pg_exec(ctx->pg, "COMMIT") != CARTD_OK)
        {
            cartd_pg_exec(ctx->pg, "ROLLBACK");
            cartd_cart_free(&cart);
            return CARTD_ERROR;
        }

        ctx->rec->changed++;
    }

    cartd_cart_free(&cart);
    return CARTD_OK;
}


void
cartd_reconcile_start(cartd_reconcile_t *rec)
{
    memset(rec, 0, sizeof(cartd_reconcile_t));
    strcpy(rec->cursor, "0");
    rec->active = 1;
}


/* one SCAN step; the pass ends (logged) when the cursor is back at 0 or
 * on an error */

int
cartd_reconcile_step(cartd_reconcile_t *rec, PGconn *pg, cartd_redis_t *rc)
{
    int                    rv;
    cartd_reconcile_ctx_t  ctx = { pg, rec };

    rv = cartd_redis_scan_step(rc, rec->cursor, cartd_reconcile_one, &ctx);

    if (rv == CARTD_OK && strcmp(rec->cursor, "0") != 0) {
        return CARTD_OK;
    }

    rec->active = 0;

    cartd_log(rv == CARTD_OK ? CARTD_LOG_INFO : CARTD_LOG_ERR,
              "reconcile: %ld carts in Redis, %ld snapshots updated%s",
              rec->carts, rec->changed, rv == CARTD_OK ? "" : ", interrupted");

    return rv;
}


int
cartd_reconcile(PGconn *pg, cartd_redis_t *rc)
{
    int                rv;
    cartd_reconcile_t  rec;

    cartd_reconcile_start(&rec);

    do {
        rv = cartd_reconcile_step(&rec, pg, rc);
    } while (rec.active);

    return rv;
}


/* eager rebalancing, logged: an operator (and a test) sees when this
 * daemon has partitions to work on */

static void
cartd_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
    rd_kafka_topic_partition_list_t *partitions, void *opaque)
{
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        cartd_log(CARTD_LOG_INFO, "kafka: assigned %d partitions of %s",
                  partitions->cnt, cartd_conf.topic);
        rd_kafka_assign(rk, partitions);
        return;
    }

    cartd_log(CARTD_LOG_INFO, "kafka: %d partitions revoked", partitions->cnt);
    rd_kafka_assign(rk, NULL);
}


static rd_kafka_t *
cartd_consumer(void)
{
    rd_kafka_t                       *rk;
    rd_kafka_conf_t                  *conf;
    rd_kafka_resp_err_t               err;
    rd_kafka_topic_partition_list_t  *topics;

    const char  *defaults[] = {
        "group.id", cartd_conf.group,
        "enable.auto.commit", "false",
        "enable.auto.offset.store", "false",
        "auto.offset.reset", "earliest",
        "fetch.wait.max.ms", "100",
        "client.id", "cartd",
        NULL
    };

    conf = cartd_kafka_conf(defaults);
    if (conf == NULL) {
        return NULL;
    }

    rd_kafka_conf_set_rebalance_cb(conf, cartd_rebalance);

    rk = cartd_kafka_new(RD_KAFKA_CONSUMER, conf);
    if (rk == NULL) {
        return NULL;
    }

    rd_kafka_poll_set_consumer(rk);

    topics = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(topics, cartd_conf.topic,
                                      RD_KAFKA_PARTITION_UA);
    err = rd_kafka_subscribe(rk, topics);
    rd_kafka_topic_partition_list_destroy(topics);

    if (err) {
        cartd_log(CARTD_LOG_ERR, "kafka: subscribe to %s: %s",
                  cartd_conf.topic, rd_kafka_err2str(err));
        rd_kafka_destroy(rk);
        return NULL;
    }

    return rk;
}


int
cartd_run(void)
{
    int                  i, n;
    char                *exit_after;
    time_t               now, next_reconcile, next_abandon, next_purge;
    cartd_loop_t         loop, *lp = &loop;
    cartd_abandon_t      ab;
    cartd_reconcile_t    rec;
    rd_kafka_message_t **msgs, *m;

    memset(lp, 0, sizeof(cartd_loop_t));
    memset(&ab, 0, sizeof(cartd_abandon_t));
    memset(&rec, 0, sizeof(cartd_reconcile_t));

    exit_after = getenv("CARTD_TEST_EXIT_AFTER_COMMITS");
    lp->exit_after = exit_after ? atol(exit_after) : 0;

    msgs = calloc(cartd_conf.batch_size, sizeof(rd_kafka_message_t *));
    lp->owners = calloc(cartd_conf.batch_size, sizeof(char *));
    lp->stamps = calloc(cartd_conf.batch_size, sizeof(int64_t));
    lp->lag = calloc(CARTD_LAG_BUCKETS, sizeof(long));

    while (!cartd_stop) {
        lp->pg = cartd_pg_connect();
        if (lp->pg && cartd_pg_migrate(lp->pg) == CARTD_OK) {
            break;
        }
        if (lp->pg) {
            PQfinish(lp->pg);
            lp->pg = NULL;
        }
        sleep(1);
    }

    while (!cartd_stop && lp->redis == NULL) {
        lp->redis = cartd_redis_connect();
        if (lp->redis == NULL) {
            sleep(1);
        }
    }

    if (cartd_stop || msgs == NULL || lp->owners == NULL
        || lp->stamps == NULL || lp->lag == NULL)
    {
        return 0;
    }

    lp->producer = cartd_producer();
    lp->consumer = lp->producer ? cartd_consumer() : NULL;

    if (lp->consumer == NULL) {
        return -1;
    }

    cartd_log(CARTD_LOG_INFO, "consuming %s as %s", cartd_conf.topic,
              cartd_conf.group);

    now = cartd_now();
    next_reconcile = now + cartd_conf.reconcile_interval;
    next_abandon = now + cartd_conf.abandon_interval;
    next_purge = now;

    while (!cartd_stop) {
        n = 0;
        m = rd_kafka_consumer_poll(lp->consumer, 100);

        while (m) {
            msgs[n++] = m;
            if (n == cartd_conf.batch_size) {
                break;
            }
            m = rd_kafka_consumer_poll(lp->consumer, 0);
        }

        if (n) {
            cartd_batch(lp, msgs, n);

            for (i = 0; i < n; i++) {
                rd_kafka_message_destroy(msgs[i]);
            }
        }

        rd_kafka_poll(lp->producer, 0);

        now = cartd_now();

        /* the passes advance a step between batches */

        if (!rec.active && cartd_conf.reconcile_interval
            && now >= next_reconcile)
        {
            cartd_reconcile_start(&rec);
        }

        if (rec.active) {
            cartd_reconcile_step(&rec, lp->pg, lp->redis);
            if (!rec.active) {
                next_reconcile = now + cartd_conf.reconcile_interval;
            }
        }

        if (!ab.active && cartd_conf.abandon_interval && now >= next_abandon) {
            cartd_abandon_start(&ab, now);
        }

        if (ab.active) {
            cartd_abandon_step(&ab, lp->pg, lp->redis, lp->producer, 1024);
            if (!ab.active) {
                next_abandon = now + cartd_conf.abandon_interval;
            }
        }

        if (now >= next_purge) {
            cartd_pg_purge(lp->pg);
            next_purge = now + 3600;
        }
    }

    cartd_log(CARTD_LOG_INFO, "stopping: %ld events applied, %ld duplicates "
              "skipped, %ld sent to the DLQ", lp->applied, lp->duplicates,
              lp->dead);
    cartd_lag_report(lp);

    rd_kafka_consumer_close(lp->consumer);
    rd_kafka_destroy(lp->consumer);
    cartd_flush(lp->producer);
    rd_kafka_destroy(lp->producer);
    cartd_redis_free(lp->redis);
    PQfinish(lp->pg);

    for (i = 0; i < lp->nowners; i++) {
        free(lp->owners[i]);
    }
    free(lp->owners);
    free(lp->stamps);
    free(lp->lag);
    free(msgs);

    return 0;
}
