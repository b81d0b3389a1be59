/*
 * cartd, the companion daemon of ngx_http_cart_module: keeps PostgreSQL
 * snapshots of the carts from the cart-events topic, reconciles them with
 * Redis, detects abandoned carts and sends reminders, and rebuilds Redis
 * from PostgreSQL after a total loss.
 *
 * Single-threaded: one loop consumes, applies, commits; periodic work
 * (reconcile, abandonment, retention) runs between batches.
 */

#ifndef _CARTD_H_INCLUDED_
#define _CARTD_H_INCLUDED_


#include <stdint.h>
#include <stdio.h>
#include <time.h>
#include <libpq-fe.h>
#include <hiredis/hiredis.h>
#include <librdkafka/rdkafka.h>


#define CARTD_MAX_PROPS     32
#define CARTD_MAX_OWNER     160
#define CARTD_MAX_SKU       64
#define CARTD_CURSOR_LEN    32
#define CARTD_MAX_NODES     64     /* Redis Cluster nodes known at once */

#define CARTD_OK            0
#define CARTD_ERROR        -1     /* infrastructure: retry, never DLQ */
#define CARTD_POISON       -2     /* the message itself is at fault */


typedef struct {
    char          *name;
    char          *value;
} cartd_kv_t;


typedef struct {
    char          *brokers;
    char          *topic;              /* cart-events */
    char          *group;              /* shopping_cart_system-processors */
    char          *dlq_topic;          /* cart-events-dlq */
    char          *reminders_topic;    /* cart-reminders */
    cartd_kv_t     props[CARTD_MAX_PROPS];
    int            nprops;

    char          *postgres;           /* libpq conninfo or URI */
    char          *redis;              /* redis://[:password@]host[:port][/db] */
    int            redis_cluster;      /* redis is a seed of a cluster */

    long           reconcile_interval; /* seconds, 0 = never */
    long           abandon_interval;
    long           abandon_after;      /* first step: cart idle this long */
    long           cart_ttl;
    long           guest_ttl;
    long           retention;          /* processed_events */
    int            max_tries;
    int            batch_size;
    int64_t        min_reminder_value; /* minor units */
    char          *discount_code;
} cartd_conf_t;


typedef struct {
    char           sku[CARTD_MAX_SKU + 1];
    int64_t        qty;
    int64_t        price;              /* minor units, -1 unknown */
    char           seller[CARTD_MAX_SKU + 1];
    int64_t        added;              /* unix time */
} cartd_line_t;


typedef struct {
    char           owner[CARTD_MAX_OWNER + 1];
    int            exists;
    int64_t        version;
    cartd_line_t  *lines;
    int            nlines;
    int64_t        items;              /* total quantity */
    int64_t        value;              /* minor units, known prices only */
} cartd_cart_t;


typedef struct {
    int            version;
    const char    *sql;
} cartd_migration_t;


/* one Redis server: the configured one, or a node of the cluster */
typedef struct {
    char           host[64];
    int            port;
    redisContext  *c;                  /* NULL: not connected (yet) */
} cartd_node_t;


/*
 * Redis: one node, or with redis_cluster a cluster whose map (slot ->
 * node, from CLUSTER SLOTS) routes each command by its key's slot;
 * MOVED and ASK are followed. Nodes connect when first needed and again
 * after a failure.
 */
typedef struct {
    int            err;                /* the last command failed */
    char           errstr[128];
    int            cluster;
    int            nnodes;
    cartd_node_t   nodes[CARTD_MAX_NODES];   /* [0]: the configured one */
    unsigned char  slots[16384];       /* node index + 1, 0: not known */
} cartd_redis_t;


extern cartd_conf_t   cartd_conf;
extern volatile int   cartd_stop;


/* main.c */
time_t cartd_now(void);
void cartd_log(int level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
#define CARTD_LOG_ERR    3
#define CARTD_LOG_WARN   4
#define CARTD_LOG_INFO   6
#define CARTD_LOG_DEBUG  7

/* pg.c */
PGconn *cartd_pg_connect(void);
int cartd_pg_exec(PGconn *pg, const char *sql);
/* the result of a statement with parameters, NULL (logged) on failure */
PGresult *cartd_pg_query(PGconn *pg, const char *sql, int n,
    const char **params);
int cartd_pg_migrate(PGconn *pg);
int cartd_pg_event_new(PGconn *pg, const char *event_id);
int cartd_pg_event_applied(PGconn *pg, const char *owner, const char *type,
    const char *ts);
int cartd_pg_snapshot(PGconn *pg, cartd_cart_t *cart, time_t activity);
int64_t cartd_pg_version(PGconn *pg, const char *owner);
int cartd_pg_purge(PGconn *pg);
int cartd_pg_failed(PGconn *pg);

/* redis.c */
cartd_redis_t *cartd_redis_connect(void);
void cartd_redis_free(cartd_redis_t *rc);
int cartd_redis_cart(cartd_redis_t *rc, const char *owner,
    cartd_cart_t *cart);
void cartd_cart_free(cartd_cart_t *cart);
int cartd_redis_scan_step(cartd_redis_t *rc, char *cursor,
    int (*handler)(cartd_redis_t *rc, const char *owner, void *data),
    void *data);
double cartd_redis_activity(cartd_redis_t *rc, const char *owner);
int cartd_redis_idle(cartd_redis_t *rc, unsigned first, unsigned n,
    time_t before,
    int (*handler)(const char *owner, time_t activity, void *data),
    void *data);
int cartd_redis_unindex(cartd_redis_t *rc, const char *owner,
    time_t activity);
int cartd_redis_restore(cartd_redis_t *rc, cartd_cart_t *cart, long ttl,
    time_t activity);
void cartd_activity_key(const char *owner, char *buf, size_t size);

/*
 * The periodic passes run in steps between two batches of events, so
 * that a pass over millions of carts never holds up the consumer.
 */
typedef struct {
    int            active;
    char           cursor[CARTD_CURSOR_LEN];
    long           carts, changed;
} cartd_reconcile_t;

typedef struct {
    int            active;
    unsigned       next;            /* the next slot of the index */
    time_t         now;             /* the pass's clock */
    PGconn        *pg;
    cartd_redis_t *rc;
    rd_kafka_t    *rk;
    long           abandoned, sent, suppressed;
} cartd_abandon_t;


/* consume.c */
rd_kafka_t *cartd_producer(void);
int cartd_produce(rd_kafka_t *rk, const char *topic, const void *key,
    size_t key_len, const void *value, size_t len,
    rd_kafka_headers_t *headers);
int cartd_flush(rd_kafka_t *rk);
int cartd_run(void);
int cartd_reconcile(PGconn *pg, cartd_redis_t *rc);
void cartd_reconcile_start(cartd_reconcile_t *rec);
int cartd_reconcile_step(cartd_reconcile_t *rec, PGconn *pg,
    cartd_redis_t *rc);
int cartd_refresh(PGconn *pg, cartd_redis_t *rc, const char *owner,
    time_t activity);

/* abandon.c */
int cartd_abandon(PGconn *pg, cartd_redis_t *rc, rd_kafka_t *rk,
    time_t now);
void cartd_abandon_start(cartd_abandon_t *ab, time_t now);
int cartd_abandon_step(cartd_abandon_t *ab, PGconn *pg, cartd_redis_t *rc,
    rd_kafka_t *rk, unsigned nslots);

/* restore.c */
int cartd_restore(PGconn *pg, cartd_redis_t *rc);


#endif /* _CARTD_H_INCLUDED_ */
