/*
 * Redis, with hiredis's synchronous API (a separate process: blocking is
 * fine here). Reads carts in the module's format:
 *   cart:{owner}  sku -> "qty|price_minor|seller|added_at", "#v" -> version
 * added_at in base 36, or decimal seconds in lines written before base 36
 * (ngx_http_cart_line_time() in the module reads them alike).
 */

#include <stdlib.h>
#include <string.h>
#include "cartd.h"
#include "ngx_http_cart_slot.h"


/* redis://[[user]:password@]host[:port][/db] */

redisContext *
cartd_redis_connect(void)
{
    int             port, db;
    char            url[512], *host, *at, *p, *password, *user;
    redisReply     *reply;
    redisContext   *rc;
    struct timeval  tv = { 5, 0 };

    snprintf(url, sizeof(url), "%s", cartd_conf.redis);

    if (strncmp(url, "redis://", 8) != 0) {
        cartd_log(CARTD_LOG_ERR, "redis: \"%s\" is not a redis:// URL", url);
        return NULL;
    }

    host = url + 8;
    password = NULL;
    user = NULL;
    db = 0;
    port = 6379;

    if ((at = strrchr(host, '@'))) {
        *at = '\0';
        password = host;
        if ((p = strchr(password, ':'))) {
            *p = '\0';
            user = *password ? password : NULL;
            password = p + 1;
        }
        host = at + 1;
    }

    if ((p = strchr(host, '/'))) {
        *p = '\0';
        db = atoi(p + 1);
    }

    if ((p = strchr(host, ':'))) {
        *p = '\0';
        port = atoi(p + 1);
    }

    rc = redisConnectWithTimeout(host, port, tv);
    if (rc == NULL || rc->err) {
        cartd_log(CARTD_LOG_ERR, "redis: connect to %s:%d: %s", host, port,
                  rc ? rc->errstr : "no memory");
        if (rc) {
            redisFree(rc);
        }
        return NULL;
    }

    redisSetTimeout(rc, tv);

    reply = NULL;

    if (password && *password) {
        reply = user ? redisCommand(rc, "AUTH %s %s", user, password)
                     : redisCommand(rc, "AUTH %s", password);
        if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
            goto failed;
        }
        freeReplyObject(reply);
    }

    if (db) {
        reply = redisCommand(rc, "SELECT %d", db);
        if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
            goto failed;
        }
        freeReplyObject(reply);
    }

    return rc;

failed:

    cartd_log(CARTD_LOG_ERR, "redis: handshake: %s",
              reply ? reply->str : rc->errstr);
    if (reply) {
        freeReplyObject(reply);
    }
    redisFree(rc);
    return NULL;
}


static const char  cartd_base36[] = "0123456789abcdefghijklmnopqrstuvwxyz";


/* added_at: 9 characters or more are decimal seconds, fewer base 36 */

static int64_t
cartd_line_time(const char *s)
{
    int          base;
    size_t       len;
    const char  *digits;

    len = strlen(s);
    base = (len >= 9) ? 10 : 36;
    digits = (base == 10) ? "0123456789" : cartd_base36;

    if (len == 0 || strspn(s, digits) != len) {
        return -1;
    }

    return strtoll(s, NULL, base);
}


/* t in base 36 (0 before 1970), at the end of buf[16] */

static char *
cartd_line_stamp(int64_t t, char *buf)
{
    char  *p;

    if (t < 0) {
        t = 0;
    }

    p = buf + 15;
    *p = '\0';

    do {
        *--p = cartd_base36[t % 36];
        t /= 36;
    } while (t > 0);

    return p;
}


static int
cartd_line_parse(const char *sku, const char *value, cartd_line_t *line)
{
    char  *p, *q;

    if (strlen(sku) > CARTD_MAX_SKU) {
        return -1;
    }

    strcpy(line->sku, sku);

    line->qty = strtoll(value, &p, 10);
    if (*p++ != '|') {
        return -1;
    }

    line->price = (*p == '|') ? -1 : strtoll(p, &p, 10);
    if (*p++ != '|') {
        return -1;
    }

    q = strchr(p, '|');
    if (q == NULL || q - p > CARTD_MAX_SKU) {
        return -1;
    }

    memcpy(line->seller, p, q - p);
    line->seller[q - p] = '\0';

    line->added = cartd_line_time(q + 1);

    return line->added == -1 ? -1 : 0;
}


int
cartd_redis_cart(redisContext *rc, const char *owner, cartd_cart_t *cart)
{
    size_t        i;
    redisReply   *reply, *f, *v;
    cartd_line_t *line;

    memset(cart, 0, sizeof(cartd_cart_t));
    snprintf(cart->owner, sizeof(cart->owner), "%s", owner);

    reply = redisCommand(rc, "HGETALL cart:{%s}", owner);
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY) {
        cartd_log(CARTD_LOG_ERR, "redis: HGETALL cart:{%s}: %s", owner,
                  reply ? reply->str : rc->errstr);
        if (reply) {
            freeReplyObject(reply);
        }
        return CARTD_ERROR;
    }

    cart->exists = reply->elements > 0;
    cart->lines = calloc(reply->elements / 2 + 1, sizeof(cartd_line_t));
    if (cart->lines == NULL) {
        freeReplyObject(reply);
        return CARTD_ERROR;
    }

    for (i = 0; i + 1 < reply->elements; i += 2) {
        f = reply->element[i];
        v = reply->element[i + 1];

        if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING) {
            continue;
        }

        if (strcmp(f->str, "#v") == 0) {
            cart->version = strtoll(v->str, NULL, 10);
            continue;
        }

        if (f->str[0] == '#') {
            continue;    /* other meta fields: coupon, address, ... */
        }

        line = &cart->lines[cart->nlines];

        if (cartd_line_parse(f->str, v->str, line) != 0 || line->qty <= 0) {
            cartd_log(CARTD_LOG_WARN, "redis: skipping line \"%s\" of "
                      "cart:{%s}", f->str, owner);
            continue;
        }

        cart->items += line->qty;
        if (line->price > 0) {
            cart->value += line->qty * line->price;
        }

        cart->nlines++;
    }

    freeReplyObject(reply);
    return CARTD_OK;
}


void
cartd_cart_free(cartd_cart_t *cart)
{
    free(cart->lines);
    cart->lines = NULL;
}


/* one step of a SCAN over the cart keys (never KEYS: it would block
 * Redis); "cursor" goes from "0" back to "0" */

int
cartd_redis_scan_step(redisContext *rc, char *cursor,
    int (*handler)(redisContext *rc, const char *owner, void *data),
    void *data)
{
    char         owner[CARTD_MAX_OWNER + 1];
    size_t       i, len;
    redisReply  *reply, *keys;

    reply = redisCommand(rc, "SCAN %s MATCH cart:{* COUNT 500", cursor);
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY
        || reply->elements != 2)
    {
        cartd_log(CARTD_LOG_ERR, "redis: SCAN: %s",
                  reply ? reply->str : rc->errstr);
        if (reply) {
            freeReplyObject(reply);
        }
        return CARTD_ERROR;
    }

    snprintf(cursor, CARTD_CURSOR_LEN, "%s", reply->element[0]->str);
    keys = reply->element[1];

    for (i = 0; i < keys->elements; i++) {
        /* cart:{owner} */
        len = keys->element[i]->len;
        if (len < 8 || len - 7 > CARTD_MAX_OWNER
            || keys->element[i]->str[len - 1] != '}')
        {
            continue;
        }

        memcpy(owner, keys->element[i]->str + 6, len - 7);
        owner[len - 7] = '\0';

        if (handler(rc, owner, data) != CARTD_OK) {
            freeReplyObject(reply);
            return CARTD_ERROR;
        }
    }

    freeReplyObject(reply);
    return CARTD_OK;
}


void
cartd_activity_key(const char *owner, char *buf, size_t size)
{
    char      key[CARTD_MAX_OWNER + 16];
    unsigned  slot;

    snprintf(key, sizeof(key), "cart:{%s}", owner);
    slot = ngx_http_cart_slot((unsigned char *) key, strlen(key));
    snprintf(buf, size, NGX_HTTP_CART_ACTIVITY_KEY "{%s}",
             ngx_http_cart_slot_tag(slot));
}


/* the time of the cart's last write, from the activity index; 0 unknown */

double
cartd_redis_activity(redisContext *rc, const char *owner)
{
    char         key[64];
    double       t;
    redisReply  *reply;

    cartd_activity_key(owner, key, sizeof(key));

    reply = redisCommand(rc, "ZSCORE %s %s", key, owner);
    t = (reply && reply->type == REDIS_REPLY_STRING) ? atof(reply->str) : 0;

    if (reply) {
        freeReplyObject(reply);
    }

    return t;
}


/*
 * The owners whose last write is before "before", in the activity sets of
 * slots [first, first + n): one pipelined round trip for the n sets, then
 * the handler for each owner (it may talk to Redis itself).
 */

int
cartd_redis_idle(redisContext *rc, unsigned first, unsigned n,
    time_t before,
    int (*handler)(const char *owner, time_t activity, void *data),
    void *data)
{
    int          rv;
    size_t       i, j, count;
    unsigned     slot;
    time_t      *when;
    redisReply **replies;
    const char **owners;

    replies = calloc(n, sizeof(redisReply *));
    if (replies == NULL) {
        return CARTD_ERROR;
    }

    for (slot = first; slot < first + n; slot++) {
        redisAppendCommand(rc, "ZRANGEBYSCORE " NGX_HTTP_CART_ACTIVITY_KEY
                           "{%s} -inf %lld WITHSCORES",
                           ngx_http_cart_slot_tag(slot), (long long) before);
    }

    rv = CARTD_OK;
    count = 0;

    for (i = 0; i < n; i++) {
        if (redisGetReply(rc, (void **) &replies[i]) != REDIS_OK
            || replies[i]->type != REDIS_REPLY_ARRAY)
        {
            cartd_log(CARTD_LOG_ERR, "redis: ZRANGEBYSCORE: %s",
                      replies[i] ? replies[i]->str : rc->errstr);
            rv = CARTD_ERROR;
            break;
        }

        count += replies[i]->elements / 2;
    }

    owners = calloc(count + 1, sizeof(char *));
    when = calloc(count + 1, sizeof(time_t));

    if (rv == CARTD_OK && owners && when) {
        count = 0;

        for (i = 0; i < n; i++) {
            for (j = 0; j + 1 < replies[i]->elements; j += 2) {
                owners[count] = replies[i]->element[j]->str;
                when[count++] = (time_t) atof(replies[i]->element[j + 1]->str);
            }
        }

        for (i = 0; i < count && rv == CARTD_OK; i++) {
            rv = handler(owners[i], when[i], data);
        }

    } else {
        rv = CARTD_ERROR;
    }

    for (i = 0; i < n; i++) {
        if (replies[i]) {
            freeReplyObject(replies[i]);
        }
    }

    free(replies);
    free(owners);
    free(when);

    return rv;
}


/* out of the index, unless a write stamped it again meanwhile */

int
cartd_redis_unindex(redisContext *rc, const char *owner, time_t activity)
{
    char         key[64];
    redisReply  *reply;

    cartd_activity_key(owner, key, sizeof(key));

    reply = redisCommand(rc,
        "EVAL %s 1 %s %s %lld",
        "if tonumber(redis.call('ZSCORE', KEYS[1], ARGV[1]) or -1)"
        " == tonumber(ARGV[2]) then return redis.call('ZREM', KEYS[1],"
        " ARGV[1]) end return 0",
        key, owner, (long long) activity);

    if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
        cartd_log(CARTD_LOG_ERR, "redis: unindex %s: %s", owner,
                  reply ? reply->str : rc->errstr);
        if (reply) {
            freeReplyObject(reply);
        }
        return CARTD_ERROR;
    }

    freeReplyObject(reply);
    return CARTD_OK;
}


/*
 * One cart back into Redis, in one script on the cart's slot: never over
 * a cart Redis has (a write since the loss wins). 1 restored, 0 present.
 */

static const char  cartd_restore_lua[] =
    "if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end\n"
    "local total = 0\n"
    "for i = 5, #ARGV, 2 do\n"
    "    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])\n"
    "    total = total + tonumber(string.match(ARGV[i + 1], '^(%d+)'))\n"
    "end\n"
    "redis.call('HSET', KEYS[1], '#v', ARGV[1])\n"
    "redis.call('EXPIRE', KEYS[1], ARGV[2])\n"
    "redis.call('SET', KEYS[2], total, 'EX', ARGV[2])\n"
    "redis.call('ZADD', KEYS[3], ARGV[3], ARGV[4])\n"
    "redis.call('PUBLISH', 'cart_events:' .. string.sub(KEYS[1], 6),\n"
    "           ARGV[1] .. ' ' .. total)\n"
    "return 1\n";


int
cartd_redis_restore(redisContext *rc, cartd_cart_t *cart, long ttl,
    time_t activity)
{
    int            i, argc, rv;
    char         **argv, *buf, *p, stamp[16];
    size_t        *argvlen;
    redisReply    *reply;
    cartd_line_t  *l;

    argc = 3 + 3 + 4 + 2 * cart->nlines;
    argv = calloc(argc, sizeof(char *));
    argvlen = calloc(argc, sizeof(size_t));
    buf = malloc((10 + 2 * cart->nlines) * 300);

    if (argv == NULL || argvlen == NULL || buf == NULL) {
        free(argv);
        free(argvlen);
        free(buf);
        return CARTD_ERROR;
    }

    p = buf;

#define ARG(fmt, ...)                                                        \
    argv[i] = p; argvlen[i] = sprintf(p, fmt, __VA_ARGS__);                  \
    p += argvlen[i] + 1; i++

    i = 0;
    ARG("%s", "EVAL");
    argv[i] = (char *) cartd_restore_lua;
    argvlen[i++] = sizeof(cartd_restore_lua) - 1;
    ARG("%d", 3);
    ARG("cart:{%s}", cart->owner);
    ARG("cart_count:{%s}", cart->owner);
    argv[i] = p;
    cartd_activity_key(cart->owner, p, 64);
    argvlen[i] = strlen(p);
    p += argvlen[i++] + 1;
    ARG("%lld", (long long) cart->version);
    ARG("%ld", ttl);
    ARG("%lld", (long long) activity);
    ARG("%s", cart->owner);

    for (l = cart->lines; l < cart->lines + cart->nlines; l++) {
        ARG("%s", l->sku);
        if (l->price >= 0) {
            ARG("%lld|%lld|%s|%s", (long long) l->qty, (long long) l->price,
                l->seller, cartd_line_stamp(l->added, stamp));
        } else {
            ARG("%lld||%s|%s", (long long) l->qty, l->seller,
                cartd_line_stamp(l->added, stamp));
        }
    }

    reply = redisCommandArgv(rc, i, (const char **) argv, argvlen);

    free(argv);
    free(argvlen);
    free(buf);

    if (reply == NULL || reply->type != REDIS_REPLY_INTEGER) {
        cartd_log(CARTD_LOG_ERR, "redis: restore cart:{%s}: %s", cart->owner,
                  reply ? reply->str : rc->errstr);
        if (reply) {
            freeReplyObject(reply);
        }
        return CARTD_ERROR;
    }

    rv = (int) reply->integer;
    freeReplyObject(reply);

    return rv;
}
