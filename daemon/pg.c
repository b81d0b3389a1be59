/*
 * PostgreSQL: migrations, dedup, snapshots. Every function returns
 * CARTD_OK, or CARTD_ERROR after logging; callers own the transaction.
 */

#include <stdlib.h>
#include <string.h>
#include "cartd.h"
#include "migrations.h"


/* the server's NOTICEs ("already exists, skipping") are debug lines */

static void
cartd_pg_notice(void *arg, const char *message)
{
    cartd_log(CARTD_LOG_DEBUG, "postgres: %.*s", (int) strcspn(message, "\n"),
              message);
}


PGconn *
cartd_pg_connect(void)
{
    PGconn  *pg;

    pg = PQconnectdb(cartd_conf.postgres);
    PQsetNoticeProcessor(pg, cartd_pg_notice, NULL);

    if (PQstatus(pg) != CONNECTION_OK) {
        cartd_log(CARTD_LOG_ERR, "postgres: %s", PQerrorMessage(pg));
        PQfinish(pg);
        return NULL;
    }

    return pg;
}


/* a lost connection is an outage to wait out, not a bad message */

int
cartd_pg_failed(PGconn *pg)
{
    return PQstatus(pg) != CONNECTION_OK;
}


int
cartd_pg_exec(PGconn *pg, const char *sql)
{
    PGresult  *res;

    res = PQexec(pg, sql);

    if (PQresultStatus(res) != PGRES_COMMAND_OK
        && PQresultStatus(res) != PGRES_TUPLES_OK)
    {
        cartd_log(CARTD_LOG_ERR, "postgres: %.60s...: %s", sql,
                  PQerrorMessage(pg));
        PQclear(res);
        return CARTD_ERROR;
    }

    PQclear(res);
    return CARTD_OK;
}


PGresult *
cartd_pg_query(PGconn *pg, const char *sql, int n, const char **params)
{
    PGresult  *res;

    res = PQexecParams(pg, sql, n, NULL, params, NULL, NULL, 0);

    if (PQresultStatus(res) != PGRES_COMMAND_OK
        && PQresultStatus(res) != PGRES_TUPLES_OK)
    {
        cartd_log(CARTD_LOG_ERR, "postgres: %.60s...: %s", sql,
                  PQerrorMessage(pg));
        PQclear(res);
        return NULL;
    }

    return res;
}


/* several daemons may start at once: an advisory lock serializes them */

int
cartd_pg_migrate(PGconn *pg)
{
    char                      version[16];
    const char               *params[1];
    PGresult                 *res;
    const cartd_migration_t  *m;

    if (cartd_pg_exec(pg, "BEGIN") != CARTD_OK
        || cartd_pg_exec(pg, "SELECT pg_advisory_xact_lock(4242001)")
           != CARTD_OK
        || cartd_pg_exec(pg, "CREATE TABLE IF NOT EXISTS schema_migrations ("
                             " version INT PRIMARY KEY,"
                             " applied_at TIMESTAMPTZ NOT NULL DEFAULT NOW())")
           != CARTD_OK)
    {
        goto failed;
    }

    for (m = cartd_migrations; m->sql; m++) {
        snprintf(version, sizeof(version), "%d", m->version);
        params[0] = version;

        res = cartd_pg_query(pg, "SELECT 1 FROM schema_migrations "
                                 "WHERE version = $1", 1, params);
        if (res == NULL) {
            goto failed;
        }

        if (PQntuples(res) == 1) {
            PQclear(res);
            continue;
        }

        PQclear(res);

        if (cartd_pg_exec(pg, m->sql) != CARTD_OK) {
            goto failed;
        }

        res = cartd_pg_query(pg, "INSERT INTO schema_migrations (version) "
                                 "VALUES ($1)", 1, params);
        if (res == NULL) {
            goto failed;
        }

        PQclear(res);
        cartd_log(CARTD_LOG_INFO, "schema migration %d applied", m->version);
    }

    return cartd_pg_exec(pg, "COMMIT");

failed:

    cartd_pg_exec(pg, "ROLLBACK");
    return CARTD_ERROR;
}


/* 1: a new event id (now remembered), 0: seen before, CARTD_ERROR */

int
cartd_pg_event_new(PGconn *pg, const char *event_id)
{
    int          n;
    const char  *params[1];
    PGresult    *res;

    params[0] = event_id;

    res = cartd_pg_query(pg, "INSERT INTO processed_events (event_id) "
                             "VALUES ($1) ON CONFLICT DO NOTHING", 1, params);
    if (res == NULL) {
        return CARTD_ERROR;
    }

    n = atoi(PQcmdTuples(res));
    PQclear(res);

    return n == 1;
}


/* what an event says besides the lines: it happened, and when a checkout
 * happened (reminders stop for users who bought since) */

int
cartd_pg_event_applied(PGconn *pg, const char *owner, const char *type,
    const char *ts)
{
    const char  *params[3];
    PGresult    *res;

    params[0] = owner;
    params[1] = ts;
    params[2] = strcmp(type, "checkout") == 0 ? "1" : "0";

    res = cartd_pg_query(pg,
        "INSERT INTO carts AS c (user_id, events_applied, last_checkout_at)"
        " VALUES ($1, 1, CASE WHEN $3 = '1' THEN $2::timestamptz END)"
        " ON CONFLICT (user_id) DO UPDATE SET"
        "  events_applied = c.events_applied + 1,"
        "  last_checkout_at = CASE WHEN $3 = '1'"
        "   THEN GREATEST(c.last_checkout_at, $2::timestamptz)"
        "   ELSE c.last_checkout_at END",
        3, params);

    if (res == NULL) {
        return cartd_pg_failed(pg) ? CARTD_ERROR : CARTD_POISON;
    }

    PQclear(res);
    return CARTD_OK;
}


/* the cart's lines as Redis has them now replace the snapshot's */

int
cartd_pg_snapshot(PGconn *pg, cartd_cart_t *cart, time_t activity)
{
    int          i;
    char         version[24], items[24], value[32], act[24];
    char         qty[24], price[32], added[24];
    const char  *params[7];
    PGresult    *res;
    cartd_line_t  *l;

    params[0] = cart->owner;

    res = cartd_pg_query(pg, "DELETE FROM cart_snapshots WHERE user_id = $1",
                         1, params);
    if (res == NULL) {
        return CARTD_ERROR;
    }

    PQclear(res);

    for (i = 0; i < cart->nlines; i++) {
        l = &cart->lines[i];

        snprintf(qty, sizeof(qty), "%lld", (long long) l->qty);
        snprintf(price, sizeof(price), "%lld.%02lld",
                 (long long) l->price / 100, (long long) l->price % 100);
        snprintf(added, sizeof(added), "%lld", (long long) l->added);

        params[1] = l->sku;
        params[2] = qty;
        params[3] = l->price >= 0 ? price : NULL;
        params[4] = l->seller[0] ? l->seller : NULL;
        params[5] = added;

        res = cartd_pg_query(pg,
            "INSERT INTO cart_snapshots (user_id, sku_id, quantity,"
            " price_at_add, seller_id, added_at)"
            " VALUES ($1, $2, $3, $4, $5, to_timestamp($6))", 6, params);
        if (res == NULL) {
            return CARTD_ERROR;
        }

        PQclear(res);
    }

    snprintf(version, sizeof(version), "%lld", (long long) cart->version);
    snprintf(items, sizeof(items), "%lld", (long long) cart->items);
    snprintf(value, sizeof(value), "%lld.%02lld",
             (long long) cart->value / 100, (long long) cart->value % 100);
    snprintf(act, sizeof(act), "%lld", (long long) activity);

    params[1] = version;
    params[2] = items;
    params[3] = value;
    params[4] = activity > 0 ? act : NULL;

    res = cartd_pg_query(pg,
        "INSERT INTO carts AS c (user_id, version, item_count, total_value,"
        " last_activity_at)"
        " VALUES ($1, $2, $3, $4, to_timestamp($5::bigint))"
        " ON CONFLICT (user_id) DO UPDATE SET version = $2, item_count = $3,"
        "  total_value = $4,"
        "  last_activity_at = GREATEST(c.last_activity_at,"
        "                              to_timestamp($5::bigint)),"
        "  updated_at = NOW()",
        5, params);
    if (res == NULL) {
        return CARTD_ERROR;
    }

    PQclear(res);
    return CARTD_OK;
}


/* the version of the snapshot, -1 when there is none */

int64_t
cartd_pg_version(PGconn *pg, const char *owner)
{
    int64_t      v;
    const char  *params[1];
    PGresult    *res;

    params[0] = owner;

    res = cartd_pg_query(pg, "SELECT version FROM carts WHERE user_id = $1",
                         1, params);
    if (res == NULL) {
        return -2;
    }

    v = PQntuples(res) ? strtoll(PQgetvalue(res, 0, 0), NULL, 10) : -1;
    PQclear(res);

    return v;
}


int
cartd_pg_purge(PGconn *pg)
{
    char         seconds[24];
    const char  *params[1];
    PGresult    *res;

    snprintf(seconds, sizeof(seconds), "%ld", cartd_conf.retention);
    params[0] = seconds;

    res = cartd_pg_query(pg, "DELETE FROM processed_events WHERE processed_at"
                             " < NOW() - make_interval(secs => $1::bigint)",
                         1, params);
    if (res == NULL) {
        return CARTD_ERROR;
    }

    if (atoi(PQcmdTuples(res))) {
        cartd_log(CARTD_LOG_INFO, "forgot %s processed event ids",
                  PQcmdTuples(res));
    }

    PQclear(res);
    return CARTD_OK;
}
