/*
 * Abandoned carts. The write scripts keep an activity index in Redis: one
 * sorted set per cluster slot, owner -> time of the last write. A pass
 * asks each set for the carts idle since before now - abandon_after; a
 * cart with items becomes one idle episode in cart_abandonments, announced
 * once with cart_abandoned on the cart-events topic, then reminded on
 * cart-reminders at 1 h (email), 4 h (push), 24 h (email with the
 * discount code) and 72 h (email) after its last activity. A reminder is
 * suppressed for a user who opted out, a cart worth less than
 * min_reminder_value, or a user who checked out since; only the latest
 * due step is sent (a daemon down for a day does not send three at once).
 * New activity moves the cart's score and starts a new episode.
 *
 * Event ids are derived from the owner, the episode and the step, so a
 * message sent again after a crash is recognisably the same one.
 */

#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_gen.h>
#include "cartd.h"
#include "ngx_http_cart_slot.h"


#define CARTD_STEPS  4


typedef struct {
    const char    *name;
    long           delay;        /* after the last activity */
    const char    *channel;
    int            discount;
} cartd_step_t;


static cartd_step_t  cartd_steps[CARTD_STEPS] = {
    { "1h",  3600,      "email", 0 },   /* delay: abandon_after */
    { "4h",  4 * 3600,  "push",  0 },
    { "24h", 86400,     "email", 1 },
    { "72h", 3 * 86400, "email", 0 },
};


static void
cartd_iso(time_t t, char *buf, size_t size)
{
    struct tm  tm;

    gmtime_r(&t, &tm);
    strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}


static void
cartd_event_id(const char *owner, time_t activity, const char *what,
    char *buf)
{
    char      text[256];
    size_t    i, len;
    uint64_t  h1, h2;

    len = snprintf(text, sizeof(text), "%s|%lld|%s", owner,
                   (long long) activity, what);

    /* two FNV-1a hashes with different bases: 128 bits, stable */
    h1 = 0xcbf29ce484222325ULL;
    h2 = 0x84222325cbf29ce4ULL;

    for (i = 0; i < len && i < sizeof(text); i++) {
        h1 = (h1 ^ (unsigned char) text[i]) * 0x100000001b3ULL;
        h2 = (h2 ^ (unsigned char) text[i]) * 0x100000001b3ULL;
    }

    sprintf(buf, "%016llx%016llx", (unsigned long long) h1,
            (unsigned long long) h2);
}


#define gen_key(g, k)   yajl_gen_string(g, (const unsigned char *) (k), strlen(k))
#define gen_str(g, s)   yajl_gen_string(g, (const unsigned char *) (s), strlen(s))


static void
gen_amount(yajl_gen g, int64_t minor)
{
    char  buf[32];

    yajl_gen_number(g, buf, sprintf(buf, "%lld.%02lld",
                                    (long long) minor / 100,
                                    (long long) minor % 100));
}


/* cart_abandoned (step NULL) or a reminder: the seed's
 * {user_id, cart_items, total_value, abandoned_at} and the contract's
 * event fields */

static int
cartd_announce(cartd_abandon_t *ps, cartd_cart_t *cart, time_t activity,
    cartd_step_t *step)
{
    int            i;
    char           id[40], ts[32], at[32], cart_id[CARTD_MAX_OWNER + 8];
    size_t         len;
    yajl_gen       g;
    cartd_line_t  *l;
    const unsigned char  *buf;

    g = yajl_gen_alloc(NULL);
    if (g == NULL) {
        return CARTD_ERROR;
    }

    cartd_event_id(cart->owner, activity, step ? step->name : "abandoned", id);
    cartd_iso(ps->now, ts, sizeof(ts));
    cartd_iso(activity + cartd_conf.abandon_after, at, sizeof(at));
    snprintf(cart_id, sizeof(cart_id), "cart:%s", cart->owner);

    yajl_gen_map_open(g);
    gen_key(g, "event_id");
    gen_str(g, id);
    gen_key(g, "type");
    gen_str(g, step ? "cart_reminder" : "cart_abandoned");

    if (step) {
        gen_key(g, "step");
        gen_str(g, step->name);
        gen_key(g, "channel");
        gen_str(g, step->channel);
    }

    gen_key(g, "cart_id");
    gen_str(g, cart_id);
    /* as the module's events: the user's own id (null for a guest), the
     * owner as the cart key names it, and its kind */
    gen_key(g, "user_id");

    if (strncmp(cart->owner, "user-", 5) == 0) {
        gen_str(g, cart->owner + 5);
    } else {
        yajl_gen_null(g);
    }

    gen_key(g, "owner");
    gen_str(g, cart->owner);
    gen_key(g, "owner_kind");
    gen_str(g, strncmp(cart->owner, "user-", 5) == 0 ? "user" : "guest");
    gen_key(g, "version");
    yajl_gen_integer(g, cart->version);
    gen_key(g, "cart_items");
    yajl_gen_array_open(g);

    for (i = 0; i < cart->nlines; i++) {
        l = &cart->lines[i];
        yajl_gen_map_open(g);
        gen_key(g, "sku_id");
        gen_str(g, l->sku);
        gen_key(g, "quantity");
        yajl_gen_integer(g, l->qty);
        if (l->price >= 0) {
            gen_key(g, "price");
            gen_amount(g, l->price);
        }
        yajl_gen_map_close(g);
    }

    yajl_gen_array_close(g);
    gen_key(g, "total_value");
    gen_amount(g, cart->value);
    gen_key(g, "abandoned_at");
    gen_str(g, at);

    if (step && step->discount) {
        gen_key(g, "discount_code");
        gen_str(g, cartd_conf.discount_code);
    }

    gen_key(g, "ts");
    gen_str(g, ts);
    yajl_gen_map_close(g);

    yajl_gen_get_buf(g, &buf, &len);

    i = cartd_produce(ps->rk, step ? cartd_conf.reminders_topic
                                   : cartd_conf.topic,
                      cart->owner, strlen(cart->owner), buf, len, NULL);
    yajl_gen_free(g);

    return i == CARTD_OK ? cartd_flush(ps->rk) : CARTD_ERROR;
}


/* why the reminder is not sent, or NULL */

static const char *
cartd_suppressed(cartd_abandon_t *ps, cartd_cart_t *cart, char *activity)
{
    int          n;
    const char  *params[2];
    PGresult    *res;

    params[0] = cart->owner;
    params[1] = activity;

    res = cartd_pg_query(ps->pg, "SELECT 1 FROM marketing_opt_outs"
                              " WHERE user_id = $1", 1, params);
    if (res == NULL) {
        return "error";
    }

    n = PQntuples(res);
    PQclear(res);

    if (n) {
        return "opted_out";
    }

    if (cart->value < cartd_conf.min_reminder_value) {
        return "low_value";
    }

    res = cartd_pg_query(ps->pg, "SELECT 1 FROM carts WHERE user_id = $1"
                              " AND last_checkout_at >= to_timestamp($2)",
                      2, params);
    if (res == NULL) {
        return "error";
    }

    n = PQntuples(res);
    PQclear(res);

    return n ? "checked_out" : NULL;
}


static int
cartd_idle(const char *owner, time_t activity, void *data)
{
    int            k, due, done, rv;
    char           act[24], value[32], steps[8];
    const char    *params[5], *reason;
    PGresult      *res;
    cartd_abandon_t  *ps = data;
    cartd_cart_t   cart;

    if (cartd_redis_cart(ps->rc, owner, &cart) != CARTD_OK) {
        return CARTD_ERROR;
    }

    /* expired, or emptied: not an abandoned cart, and no longer indexed */

    if (!cart.exists || cart.nlines == 0) {
        cartd_cart_free(&cart);
        return cartd_redis_unindex(ps->rc, owner, activity);
    }

    snprintf(act, sizeof(act), "%lld", (long long) activity);
    snprintf(value, sizeof(value), "%lld.%02lld", (long long) cart.value / 100,
             (long long) cart.value % 100);
    params[0] = owner;
    params[1] = act;

    res = cartd_pg_query(ps->pg, "SELECT steps_done FROM cart_abandonments"
                              " WHERE user_id = $1"
                              " AND last_activity_at = to_timestamp($2)",
                      2, params);
    if (res == NULL) {
        goto failed;
    }

    done = PQntuples(res) ? atoi(PQgetvalue(res, 0, 0)) : -1;
    PQclear(res);

    rv = CARTD_OK;

    if (done < 0) {
        /* a new idle episode */

        if (cartd_announce(ps, &cart, activity, NULL) != CARTD_OK) {
            goto failed;
        }

        snprintf(steps, sizeof(steps), "%ld", cartd_conf.abandon_after);
        params[2] = value;
        params[3] = steps;

        res = cartd_pg_query(ps->pg,
            "INSERT INTO cart_abandonments AS a (user_id, last_activity_at,"
            " abandoned_at, total_value, steps_done)"
            " VALUES ($1, to_timestamp($2), to_timestamp($2 + $4::bigint),"
            "  $3, 0)"
            " ON CONFLICT (user_id) DO UPDATE SET"
            "  last_activity_at = EXCLUDED.last_activity_at,"
            "  abandoned_at = EXCLUDED.abandoned_at,"
            "  total_value = EXCLUDED.total_value,"
            "  steps_done = 0, last_step = NULL, suppressed = NULL",
            4, params);
        if (res == NULL) {
            goto failed;
        }

        PQclear(res);
        ps->abandoned++;
        done = 0;

        cartd_log(CARTD_LOG_INFO, "cart of %s abandoned (idle since %lld, "
                  "%s)", owner, (long long) activity, value);
    }

    due = -1;

    for (k = 0; k < CARTD_STEPS; k++) {
        if (ps->now >= activity + (k ? cartd_steps[k].delay
                                     : cartd_conf.abandon_after))
        {
            due = k;
        }
    }

    if (due >= done) {
        reason = cartd_suppressed(ps, &cart, act);

        if (reason && strcmp(reason, "error") == 0) {
            goto failed;
        }

        if (reason == NULL) {
            if (cartd_announce(ps, &cart, activity, &cartd_steps[due])
                != CARTD_OK)
            {
                goto failed;
            }
            ps->sent++;

        } else {
            ps->suppressed++;
        }

        cartd_log(CARTD_LOG_INFO, "reminder %s for %s %s%s",
                  cartd_steps[due].name, owner,
                  reason ? "suppressed: " : "sent", reason ? reason : "");

        snprintf(steps, sizeof(steps), "%d", due + 1);
        params[1] = steps;
        params[2] = cartd_steps[due].name;
        params[3] = reason;

        res = cartd_pg_query(ps->pg, "UPDATE cart_abandonments SET"
                                  " steps_done = $2, last_step = $3,"
                                  " suppressed = $4 WHERE user_id = $1",
                          4, params);
        if (res == NULL) {
            goto failed;
        }

        PQclear(res);
        done = due + 1;
    }

    if (done == CARTD_STEPS) {
        rv = cartd_redis_unindex(ps->rc, owner, activity);
    }

    cartd_cart_free(&cart);
    return rv;

failed:

    cartd_cart_free(&cart);
    return CARTD_ERROR;
}


void
cartd_abandon_start(cartd_abandon_t *ab, time_t now)
{
    memset(ab, 0, sizeof(cartd_abandon_t));
    ab->now = now;
    ab->active = 1;
}


/* the next "nslots" sets of the index; the pass ends (logged) after the
 * last slot or on an error */

int
cartd_abandon_step(cartd_abandon_t *ab, PGconn *pg, cartd_redis_t *rc,
    rd_kafka_t *rk, unsigned nslots)
{
    int  rv;

    if (ngx_http_cart_slot_init() != 0) {
        ab->active = 0;
        return CARTD_ERROR;
    }

    ab->pg = pg;
    ab->rc = rc;
    ab->rk = rk;

    if (nslots > NGX_HTTP_CART_SLOTS - ab->next) {
        nslots = NGX_HTTP_CART_SLOTS - ab->next;
    }

    rv = cartd_redis_idle(rc, ab->next, nslots,
                          ab->now - cartd_conf.abandon_after, cartd_idle, ab);
    ab->next += nslots;

    if (rv == CARTD_OK && ab->next < NGX_HTTP_CART_SLOTS) {
        return CARTD_OK;
    }

    ab->active = 0;

    cartd_log(rv == CARTD_OK ? CARTD_LOG_INFO : CARTD_LOG_ERR,
              "abandonment pass: %ld carts abandoned, %ld reminders sent, "
              "%ld suppressed%s", ab->abandoned, ab->sent, ab->suppressed,
              rv == CARTD_OK ? "" : ", interrupted");

    return rv;
}


int
cartd_abandon(PGconn *pg, cartd_redis_t *rc, rd_kafka_t *rk, time_t now)
{
    int              rv;
    cartd_abandon_t  ab;

    cartd_abandon_start(&ab, now);

    do {
        rv = cartd_abandon_step(&ab, pg, rc, rk, 1024);
    } while (ab.active);

    return rv;
}
