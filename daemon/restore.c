/*
 * restore: Redis carts rebuilt from the snapshots after a total loss.
 * Each cart comes back with its version, its counter, its place in the
 * activity index and the TTL it had left (a cart whose TTL ran out stays
 * gone). A cart Redis already has is left alone: a write since the loss
 * is newer than any snapshot.
 */

#include <stdlib.h>
#include <string.h>
#include "cartd.h"
#include "ngx_http_cart_slot.h"


int
cartd_restore(PGconn *pg, cartd_redis_t *rc)
{
    int            i, j, n, rv;
    long           ttl, restored, present, expired;
    time_t         now, activity;
    PGresult      *res;
    const char    *owner;
    cartd_cart_t   cart;
    cartd_line_t  *l;

    if (ngx_http_cart_slot_init() != 0) {
        return CARTD_ERROR;
    }

    /* lines in owner order: one pass builds each cart */

    res = PQexec(pg,
        "SELECT c.user_id, c.version,"
        "  COALESCE(EXTRACT(EPOCH FROM c.last_activity_at)::bigint, 0),"
        "  s.sku_id, s.quantity, COALESCE((s.price_at_add * 100)::bigint, -1),"
        "  COALESCE(s.seller_id, ''), EXTRACT(EPOCH FROM s.added_at)::bigint"
        " FROM carts c JOIN cart_snapshots s USING (user_id)"
        " ORDER BY c.user_id, s.sku_id");

    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        cartd_log(CARTD_LOG_ERR, "postgres: %s", PQerrorMessage(pg));
        PQclear(res);
        return CARTD_ERROR;
    }

    n = PQntuples(res);
    now = cartd_now();
    restored = present = expired = 0;
    rv = CARTD_OK;

    cart.lines = calloc(n + 1, sizeof(cartd_line_t));
    if (cart.lines == NULL) {
        PQclear(res);
        return CARTD_ERROR;
    }

    for (i = 0; i < n && rv == CARTD_OK; i = j) {
        owner = PQgetvalue(res, i, 0);
        snprintf(cart.owner, sizeof(cart.owner), "%s", owner);
        cart.version = strtoll(PQgetvalue(res, i, 1), NULL, 10);
        activity = strtoll(PQgetvalue(res, i, 2), NULL, 10);
        cart.nlines = 0;

        for (j = i; j < n && strcmp(PQgetvalue(res, j, 0), owner) == 0; j++) {
            l = &cart.lines[cart.nlines++];
            snprintf(l->sku, sizeof(l->sku), "%s", PQgetvalue(res, j, 3));
            l->qty = strtoll(PQgetvalue(res, j, 4), NULL, 10);
            l->price = strtoll(PQgetvalue(res, j, 5), NULL, 10);
            snprintf(l->seller, sizeof(l->seller), "%s",
                     PQgetvalue(res, j, 6));
            l->added = strtoll(PQgetvalue(res, j, 7), NULL, 10);
        }

        ttl = strncmp(owner, "guest-", 6) == 0 ? cartd_conf.guest_ttl
                                                : cartd_conf.cart_ttl;
        if (activity) {
            ttl -= now - activity;
        }

        if (ttl <= 0) {
            expired++;
            continue;
        }

        switch (cartd_redis_restore(rc, &cart, ttl, activity ? activity : now))
        {
        case 1:
            restored++;
            break;
        case 0:
            present++;
            break;
        default:
            rv = CARTD_ERROR;
        }
    }

    free(cart.lines);
    PQclear(res);

    cartd_log(rv == CARTD_OK ? CARTD_LOG_INFO : CARTD_LOG_ERR,
              "restore: %ld carts restored, %ld already in Redis, %ld "
              "expired%s", restored, present, expired,
              rv == CARTD_OK ? "" : ", interrupted");

    return rv;
}
