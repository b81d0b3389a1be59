/*
 * Redis, with hiredis's synchronous API (a separate process: blocking is
 * fine here). Reads carts in the module's format:
 *   cart:{owner}  sku -> "qty|price_minor|seller|added_at", "#v" -> version
 * added_at in base 36, or decimal seconds in lines written before base 36
 * (ngx_http_cart_line_time() in the module reads them alike).
 */

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include "cartd.h"
#include "ngx_http_cart_slot.h"


/*
 * redis://[[user]:password@]host[:port][/db]: the configured node, and
 * with redis_cluster a seed of the cluster; the other nodes of a cluster
 * take the seed's credentials (a cluster has database 0 only).
 */

static struct {
    char   url[512];
    char  *host, *user, *password;
    int    port, db;
} cartd_redis_url;


static int cartd_redis_parse(void);
static redisContext *cartd_node_conn(cartd_redis_t *rc, int i);
static int cartd_node_get(cartd_redis_t *rc, const char *host, size_t len,
    int port);
static int cartd_redis_map(cartd_redis_t *rc);
static int cartd_redis_node(cartd_redis_t *rc, const char *key);
static redisReply *cartd_redis_run(cartd_redis_t *rc, const char *key,
    const char *cmd, size_t len);
static redisReply *cartd_redis_command(cartd_redis_t *rc, const char *key,
    const char *fmt, ...);
static redisReply *cartd_redis_argv(cartd_redis_t *rc, const char *key,
    int argc, const char **argv, const size_t *argvlen);
static redisReply *cartd_redis_formatted(cartd_redis_t *rc, const char *key,
    char *cmd, long long len);
static void cartd_redis_failed(cartd_redis_t *rc, redisContext *c);


static int
cartd_redis_parse(void)
{
    char  *host, *at, *p;

    snprintf(cartd_redis_url.url, sizeof(cartd_redis_url.url), "%s",
             cartd_conf.redis);

    if (strncmp(cartd_redis_url.url, "redis://", 8) != 0) {
        /* only what follows the userinfo: the log never shows a password */
        at = strrchr(cartd_redis_url.url, '@');
        cartd_log(CARTD_LOG_ERR, "redis: \"%s%s\" is not a redis:// URL",
                  at ? "***" : "", at ? at : cartd_redis_url.url);
        return CARTD_ERROR;
    }

    host = cartd_redis_url.url + 8;
    cartd_redis_url.password = NULL;
    cartd_redis_url.user = NULL;
    cartd_redis_url.db = 0;
    cartd_redis_url.port = 6379;

    if ((at = strrchr(host, '@'))) {
        *at = '\0';
        cartd_redis_url.password = host;
        if ((p = strchr(host, ':'))) {
            *p = '\0';
            cartd_redis_url.user = *host ? host : NULL;
            cartd_redis_url.password = p + 1;
        }
        host = at + 1;
    }

    if ((p = strchr(host, '/'))) {
        *p = '\0';
        cartd_redis_url.db = atoi(p + 1);
    }

    if ((p = strchr(host, ':'))) {
        *p = '\0';
        cartd_redis_url.port = atoi(p + 1);
    }

    cartd_redis_url.host = host;

    if (cartd_conf.redis_cluster && cartd_redis_url.db) {
        cartd_log(CARTD_LOG_ERR, "redis: a cluster has database 0 only");
        return CARTD_ERROR;
    }

    return CARTD_OK;
}


cartd_redis_t *
cartd_redis_connect(void)
{
    cartd_redis_t  *rc;

    if (cartd_redis_parse() != CARTD_OK) {
        return NULL;
    }

    rc = calloc(1, sizeof(cartd_redis_t));
    if (rc == NULL) {
        return NULL;
    }

    rc->cluster = cartd_conf.redis_cluster;
    rc->nnodes = 1;
    snprintf(rc->nodes[0].host, sizeof(rc->nodes[0].host), "%.63s",
             cartd_redis_url.host);
    rc->nodes[0].port = cartd_redis_url.port;

    if (cartd_node_conn(rc, 0) == NULL
        || (rc->cluster && cartd_redis_map(rc) != CARTD_OK))
    {
        cartd_redis_free(rc);
        return NULL;
    }

    return rc;
}


void
cartd_redis_free(cartd_redis_t *rc)
{
    int  i;

    if (rc == NULL) {
        return;
    }

    for (i = 0; i < rc->nnodes; i++) {
        if (rc->nodes[i].c) {
            redisFree(rc->nodes[i].c);
        }
    }

    free(rc);
}


/* node i's connection, made now if it has none or it broke */

static redisContext *
cartd_node_conn(cartd_redis_t *rc, int i)
{
    redisReply      *reply;
    redisContext    *c;
    cartd_node_t    *node;
    struct timeval   tv = { 5, 0 };

    node = &rc->nodes[i];

    if (node->c && node->c->err == 0) {
        return node->c;
    }

    if (node->c) {
        redisFree(node->c);
        node->c = NULL;
    }

    c = redisConnectWithTimeout(node->host, node->port, tv);
    if (c == NULL || c->err) {
        rc->err = 1;
        snprintf(rc->errstr, sizeof(rc->errstr), "connect to %s:%d: %.60s",
                 node->host, node->port, c ? c->errstr : "no memory");
        cartd_log(CARTD_LOG_ERR, "redis: %s", rc->errstr);
        if (c) {
            redisFree(c);
        }
        return NULL;
    }

    redisSetTimeout(c, tv);

    reply = NULL;

    if (cartd_redis_url.password && *cartd_redis_url.password) {
        reply = cartd_redis_url.user
                ? redisCommand(c, "AUTH %s %s", cartd_redis_url.user,
                               cartd_redis_url.password)
                : redisCommand(c, "AUTH %s", cartd_redis_url.password);
        if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
            goto failed;
        }
        freeReplyObject(reply);
    }

    if (cartd_redis_url.db) {
        reply = redisCommand(c, "SELECT %d", cartd_redis_url.db);
        if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
            goto failed;
        }
        freeReplyObject(reply);
    }

    node->c = c;
    return c;

failed:

    rc->err = 1;
    snprintf(rc->errstr, sizeof(rc->errstr), "handshake with %s:%d: %.60s",
             node->host, node->port, reply ? reply->str : c->errstr);
    cartd_log(CARTD_LOG_ERR, "redis: %s", rc->errstr);
    if (reply) {
        freeReplyObject(reply);
    }
    redisFree(c);
    return NULL;
}


/* the index of the node at host:port, added if new; -1 when full */

static int
cartd_node_get(cartd_redis_t *rc, const char *host, size_t len, int port)
{
    int  i;

    if (len == 0 || len >= sizeof(rc->nodes[0].host)) {
        return -1;
    }

    for (i = 0; i < rc->nnodes; i++) {
        if (rc->nodes[i].port == port && strlen(rc->nodes[i].host) == len
            && memcmp(rc->nodes[i].host, host, len) == 0)
        {
            return i;
        }
    }

    if (rc->nnodes == CARTD_MAX_NODES) {
        cartd_log(CARTD_LOG_ERR, "redis: more than %d cluster nodes",
                  CARTD_MAX_NODES);
        return -1;
    }

    i = rc->nnodes++;
    memcpy(rc->nodes[i].host, host, len);
    rc->nodes[i].host[len] = '\0';
    rc->nodes[i].port = port;
    rc->nodes[i].c = NULL;

    return i;
}


/* CLUSTER SLOTS, from any node that answers: {start, end, {ip, port}} */

static int
cartd_redis_map(cartd_redis_t *rc)
{
    int            i, n, node, port;
    long long      s, first, last;
    size_t         j;
    redisReply    *reply, *e, *m;
    redisContext  *c;

    reply = NULL;

    for (n = 0; n < rc->nnodes; n++) {
        c = cartd_node_conn(rc, n);
        if (c == NULL) {
            continue;
        }

        reply = redisCommand(c, "CLUSTER SLOTS");

        if (reply && reply->type == REDIS_REPLY_ARRAY && reply->elements) {
            break;
        }

        cartd_log(CARTD_LOG_ERR, "redis: CLUSTER SLOTS on %s:%d: %s",
                  rc->nodes[n].host, rc->nodes[n].port,
                  reply ? (reply->str ? reply->str : "unexpected answer")
                        : c->errstr);
        if (reply) {
            freeReplyObject(reply);
            reply = NULL;
        }
    }

    if (reply == NULL) {
        rc->err = 1;
        snprintf(rc->errstr, sizeof(rc->errstr), "no cluster map");
        return CARTD_ERROR;
    }

    memset(rc->slots, 0, sizeof(rc->slots));

    for (j = 0; j < reply->elements; j++) {
        e = reply->element[j];

        if (e->type != REDIS_REPLY_ARRAY || e->elements < 3
            || e->element[0]->type != REDIS_REPLY_INTEGER
            || e->element[1]->type != REDIS_REPLY_INTEGER
            || e->element[2]->type != REDIS_REPLY_ARRAY
            || e->element[2]->elements < 2
            || e->element[2]->element[0]->type != REDIS_REPLY_STRING
            || e->element[2]->element[1]->type != REDIS_REPLY_INTEGER)
        {
            continue;
        }

        first = e->element[0]->integer;
        last = e->element[1]->integer;
        m = e->element[2];
        port = (int) m->element[1]->integer;

        /* an empty address is the node that answered */
        node = m->element[0]->len && strcmp(m->element[0]->str, "?") != 0
               ? cartd_node_get(rc, m->element[0]->str, m->element[0]->len,
                                port)
               : n;

        if (node < 0 || first < 0 || last >= 16384) {
            continue;
        }

        for (s = first; s <= last; s++) {
            rc->slots[s] = (unsigned char) (node + 1);
        }
    }

    for (i = 0, s = 0; s < 16384; s++) {
        i += rc->slots[s] != 0;
    }

    cartd_log(CARTD_LOG_DEBUG, "redis: cluster map from %s:%d, %d slots, "
              "%d nodes", rc->nodes[n].host, rc->nodes[n].port, i,
              rc->nnodes);

    freeReplyObject(reply);
    return CARTD_OK;
}


/* the node of key's slot: the configured one without a cluster, or while
 * the slot's master is not known (it answers MOVED) */

static int
cartd_redis_node(cartd_redis_t *rc, const char *key)
{
    unsigned  slot;

    if (!rc->cluster || key == NULL) {
        return 0;
    }

    slot = ngx_http_cart_slot((unsigned char *) key, strlen(key));

    return rc->slots[slot] ? rc->slots[slot] - 1 : 0;
}


/*
 * One command, formatted, on the node of key; MOVED (the map is read
 * again) and ASK are followed, 5 times at most. NULL: no answer (logged
 * by the caller from rc->errstr).
 */

static redisReply *
cartd_redis_run(cartd_redis_t *rc, const char *key, const char *cmd,
    size_t len)
{
    int            node, tries, asking, port, slot;
    char          *p, *colon;
    redisReply    *reply, *ok;
    redisContext  *c;

    rc->err = 0;
    node = cartd_redis_node(rc, key);
    asking = 0;

    for (tries = 0; tries < 6; tries++) {
        c = cartd_node_conn(rc, node);
        if (c == NULL) {
            return NULL;
        }

        if (asking) {
            redisAppendCommand(c, "ASKING");
        }

        redisAppendFormattedCommand(c, cmd, len);

        reply = NULL;

        if (asking) {
            if (redisGetReply(c, (void **) &ok) != REDIS_OK) {
                cartd_redis_failed(rc, c);
                return NULL;
            }
            freeReplyObject(ok);
        }

        if (redisGetReply(c, (void **) &reply) != REDIS_OK) {
            cartd_redis_failed(rc, c);
            return NULL;
        }

        if (!rc->cluster || reply->type != REDIS_REPLY_ERROR) {
            return reply;
        }

        /* "MOVED <slot> <ip>:<port>", "ASK <slot> <ip>:<port>" */

        if (strncmp(reply->str, "MOVED ", 6) == 0) {
            asking = 0;
            p = reply->str + 6;

        } else if (strncmp(reply->str, "ASK ", 4) == 0) {
            asking = 1;
            p = reply->str + 4;

        } else {
            return reply;
        }

        slot = atoi(p);
        p = strchr(p, ' ');
        colon = p ? strrchr(p, ':') : NULL;

        if (colon == NULL || slot < 0 || slot >= 16384) {
            return reply;
        }

        port = atoi(colon + 1);
        node = colon == p + 1 ? node
                              : cartd_node_get(rc, p + 1, colon - p - 1, port);

        cartd_log(CARTD_LOG_DEBUG, "redis: following \"%s\"", reply->str);

        if (node < 0) {
            return reply;
        }

        if (!asking) {
            /* the slot moved for good: others may have too */
            rc->slots[slot] = (unsigned char) (node + 1);
            (void) cartd_redis_map(rc);
            rc->err = 0;
        }

        freeReplyObject(reply);
    }

    rc->err = 1;
    snprintf(rc->errstr, sizeof(rc->errstr), "too many redirections");
    return NULL;
}


static void
cartd_redis_failed(cartd_redis_t *rc, redisContext *c)
{
    rc->err = 1;
    snprintf(rc->errstr, sizeof(rc->errstr), "%s", c->errstr);
}


/* a command in hiredis's format on the node of key */

static redisReply *
cartd_redis_command(cartd_redis_t *rc, const char *key, const char *fmt, ...)
{
    int       len;
    char     *cmd;
    va_list   args;

    va_start(args, fmt);
    len = redisvFormatCommand(&cmd, fmt, args);
    va_end(args);

    return cartd_redis_formatted(rc, key, cmd, len);
}


static redisReply *
cartd_redis_argv(cartd_redis_t *rc, const char *key, int argc,
    const char **argv, const size_t *argvlen)
{
    long long   len;
    char       *cmd;

    len = redisFormatCommandArgv(&cmd, argc, argv, argvlen);

    return cartd_redis_formatted(rc, key, cmd, len);
}


/* a command hiredis formatted (len < 0: it could not) run on the node of
 * key, and freed */

static redisReply *
cartd_redis_formatted(cartd_redis_t *rc, const char *key, char *cmd,
    long long len)
{
    redisReply  *reply;

    if (len < 0) {
        rc->err = 1;
        snprintf(rc->errstr, sizeof(rc->errstr), "no memory");
        return NULL;
    }

    reply = cartd_redis_run(rc, key, cmd, len);
    free(cmd);

    return reply;
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
cartd_redis_cart(cartd_redis_t *rc, const char *owner, cartd_cart_t *cart)
{
    char          key[CARTD_MAX_OWNER + 8];
    size_t        i;
    redisReply   *reply, *f, *v;
    cartd_line_t *line;

    memset(cart, 0, sizeof(cartd_cart_t));
    snprintf(cart->owner, sizeof(cart->owner), "%s", owner);
    snprintf(key, sizeof(key), "cart:{%s}", owner);

    reply = cartd_redis_command(rc, key, "HGETALL %s", key);
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


/*
 * One step of a SCAN over the cart keys (never KEYS: it would block
 * Redis); "cursor" goes from "0" back to "0". In a cluster every master
 * is scanned in turn: the cursor is "<node>:<its cursor>".
 */

int
cartd_redis_scan_step(cartd_redis_t *rc, char *cursor,
    int (*handler)(cartd_redis_t *rc, const char *owner, void *data),
    void *data)
{
    int            node, next;
    char           owner[CARTD_MAX_OWNER + 1], *colon, *at;
    size_t         i, len;
    unsigned       s;
    redisReply    *reply, *keys;
    redisContext  *c;

    node = 0;
    at = cursor;
    colon = strchr(cursor, ':');

    if (rc->cluster) {
        if (colon) {
            node = atoi(cursor);
            at = colon + 1;

        } else {
            /* a new pass: the first master */
            for (s = 0; s < 16384 && rc->slots[s] == 0; s++) { /* void */ }
            node = s < 16384 ? rc->slots[s] - 1 : 0;
        }
    }

    /* a SCAN is no key's: it goes to the node itself, no redirection */

    c = node < rc->nnodes ? cartd_node_conn(rc, node) : NULL;
    reply = c ? redisCommand(c, "SCAN %s MATCH cart:{* COUNT 500", at)
              : NULL;

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY
        || reply->elements != 2)
    {
        cartd_log(CARTD_LOG_ERR, "redis: SCAN: %s",
                  reply ? reply->str : c ? c->errstr : rc->errstr);
        if (reply) {
            freeReplyObject(reply);
        }
        return CARTD_ERROR;
    }

    if (!rc->cluster) {
        snprintf(cursor, CARTD_CURSOR_LEN, "%s", reply->element[0]->str);

    } else if (strcmp(reply->element[0]->str, "0") != 0) {
        snprintf(cursor, CARTD_CURSOR_LEN, "%d:%s", node,
                 reply->element[0]->str);

    } else {
        /* this master is done: the next one the map names, or the end */
        next = CARTD_MAX_NODES;
        for (s = 0; s < 16384; s++) {
            if (rc->slots[s] && rc->slots[s] - 1 > node
                && rc->slots[s] - 1 < next)
            {
                next = rc->slots[s] - 1;
            }
        }

        if (next == CARTD_MAX_NODES) {
            snprintf(cursor, CARTD_CURSOR_LEN, "0");
        } else {
            snprintf(cursor, CARTD_CURSOR_LEN, "%d:0", next);
        }
    }

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
cartd_redis_activity(cartd_redis_t *rc, const char *owner)
{
    char         key[64];
    double       t;
    redisReply  *reply;

    cartd_activity_key(owner, key, sizeof(key));

    reply = cartd_redis_command(rc, key, "ZSCORE %s %s", key, owner);
    t = (reply && reply->type == REDIS_REPLY_STRING) ? atof(reply->str) : 0;

    if (reply) {
        freeReplyObject(reply);
    }

    return t;
}


/*
 * The owners whose last write is before "before", in the activity sets of
 * slots [first, first + n): one pipelined round trip for the n sets (in a
 * cluster one per master, each set on its slot's), then the handler for
 * each owner (it may talk to Redis itself).
 */

int
cartd_redis_idle(cartd_redis_t *rc, unsigned first, unsigned n,
    time_t before,
    int (*handler)(const char *owner, time_t activity, void *data),
    void *data)
{
    int            rv, *node, lost;
    char           key[64];
    size_t         i, j, count;
    unsigned       slot;
    time_t        *when;
    redisReply   **replies;
    const char   **owners;
    redisContext  *c;

    replies = calloc(n, sizeof(redisReply *));
    node = calloc(n, sizeof(int));

    if (replies == NULL || node == NULL) {
        free(replies);
        free(node);
        return CARTD_ERROR;
    }

    rv = CARTD_OK;
    lost = 0;

    for (i = 0; i < n; i++) {
        slot = first + i;
        node[i] = rc->cluster && rc->slots[slot] ? rc->slots[slot] - 1 : 0;
        c = cartd_node_conn(rc, node[i]);

        if (c == NULL) {
            node[i] = -1;
            lost = 1;
            continue;
        }

        redisAppendCommand(c, "ZRANGEBYSCORE " NGX_HTTP_CART_ACTIVITY_KEY
                           "{%s} -inf %lld WITHSCORES",
                           ngx_http_cart_slot_tag(slot), (long long) before);
    }

    /* each node answers in the order it was asked: read in slot order */

    count = 0;

    for (i = 0; i < n; i++) {
        if (node[i] < 0) {
            continue;
        }

        c = rc->nodes[node[i]].c;

        if (redisGetReply(c, (void **) &replies[i]) != REDIS_OK) {
            cartd_log(CARTD_LOG_ERR, "redis: ZRANGEBYSCORE: %s", c->errstr);
            lost = 1;
            continue;
        }

        if (replies[i]->type == REDIS_REPLY_ERROR && rc->cluster) {
            /* the slot moved (MOVED, ASK): asked again on its own once
             * every node's answers are read */
            freeReplyObject(replies[i]);
            replies[i] = NULL;
            node[i] = -2;
        }
    }

    for (i = 0; i < n && !lost; i++) {
        if (node[i] == -2) {
            snprintf(key, sizeof(key), NGX_HTTP_CART_ACTIVITY_KEY "{%s}",
                     ngx_http_cart_slot_tag(first + i));
            replies[i] = cartd_redis_command(rc, key,
                                             "ZRANGEBYSCORE %s -inf %lld "
                                             "WITHSCORES", key,
                                             (long long) before);
        }

        if (replies[i] == NULL || replies[i]->type != REDIS_REPLY_ARRAY) {
            cartd_log(CARTD_LOG_ERR, "redis: ZRANGEBYSCORE: %s",
                      replies[i] ? replies[i]->str : rc->errstr);
            rv = CARTD_ERROR;
            continue;
        }

        count += replies[i]->elements / 2;
    }

    if (lost) {
        rv = CARTD_ERROR;
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
    free(node);
    free(owners);
    free(when);

    return rv;
}


/* out of the index, unless a write stamped it again meanwhile */

int
cartd_redis_unindex(cartd_redis_t *rc, const char *owner, time_t activity)
{
    char         key[64];
    redisReply  *reply;

    cartd_activity_key(owner, key, sizeof(key));

    reply = cartd_redis_command(rc, key,
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
cartd_redis_restore(cartd_redis_t *rc, cartd_cart_t *cart, long ttl,
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

    /* argv[3] is the cart's key: the script runs on its slot */
    reply = cartd_redis_argv(rc, argv[3], i, (const char **) argv, argvlen);

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
