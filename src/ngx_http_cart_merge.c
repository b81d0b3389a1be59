/*
 * POST /merge {"guest_session_id"}: a signed-in user takes over the guest
 * cart of this very client (the id must be the session of its own valid
 * guest cookie).
 *
 * The guest cart and the user's cart live on two Redis Cluster slots, so
 * no one script can touch both. Three steps make it exactly-once:
 *
 *   1. claim (merge_claim.lua, guest slot): the guest cart becomes the
 *      claim merge:{guest-<s>} with the merge id and the user, atomically.
 *      A claim that exists already is answered instead, so a concurrent or
 *      retried merge works on the same lines under the same id.
 *   2. apply (apply.lua, user slot): the lines are merged with the
 *      configured strategy and the answer is kept in merged:{user}:<id>;
 *      a second apply of that id answers it again and changes nothing.
 *   3. done (merge_claim.lua, guest slot): the claim is deleted if it still
 *      is that merge.
 *
 * A crash or a Redis failure between the steps leaves a claim (its lines
 * are never lost) that the next merge of the session finishes: step 1
 * returns it, step 2 applies it or finds it applied, step 3 deletes it.
 * A request that finished someone else's claim goes round once more, for
 * lines the guest added meanwhile.
 */

#include "ngx_http_cart_merge.h"
#include "ngx_http_cart_events.h"
#include "ngx_http_cart_reply.h"
#include "ngx_http_cart_identity.h"
#include "ngx_http_cart_items.h"
#include "ngx_http_cart_scripts.h"


typedef struct {
    ngx_str_t                  keys[3];   /* guest cart, counter, claim */
    ngx_str_t                  mine;      /* the id this request proposes */
    ngx_str_t                  id;        /* the claim's */
    ngx_str_t                  marker;    /* merged:{user}:<id> */
    ngx_uint_t                 round;
    ngx_http_cart_apply_answer_t    result;
    unsigned                   changed:1; /* this request merged lines */
} ngx_http_cart_merge_t;


static const ngx_http_cart_answer_t  ngx_http_cart_merge_answers[] = {
    { NGX_HTTP_CONFLICT, "merge_conflict",
      "this guest cart is being merged into another account" },
    { 0, NULL, NULL }
};

static const ngx_http_cart_answer_t  ngx_http_cart_merge_field =
    { NGX_HTTP_BAD_REQUEST, "invalid_field",
      "guest_session_id is required and must be a string" };
static const ngx_http_cart_answer_t  ngx_http_cart_merge_forbidden =
    { NGX_HTTP_FORBIDDEN, "forbidden",
      "guest_session_id is not the session of this client's guest cookie" };


static const char  *ngx_http_cart_strategies[] = { "max", "sum", "guest" };


static ngx_int_t ngx_http_cart_merge_claim(ngx_http_request_t *r,
    const char *mode);
static void ngx_http_cart_merge_checked(ngx_http_request_t *r, void *data,
    redisReply *reply, ngx_int_t rc);
static void ngx_http_cart_merge_claimed(ngx_http_request_t *r, void *data,
    redisReply *reply, ngx_int_t rc);
static void ngx_http_cart_merge_applied(ngx_http_request_t *r, void *data,
    redisReply *reply, ngx_int_t rc);
static void ngx_http_cart_merge_finished(ngx_http_request_t *r, void *data,
    redisReply *reply, ngx_int_t rc);
static void ngx_http_cart_merge_answer(ngx_http_request_t *r);
static ngx_int_t ngx_http_cart_reply_copy(ngx_pool_t *pool,
    redisReply *reply, size_t i, ngx_str_t *s);


ngx_int_t
ngx_http_cart_merge(ngx_http_request_t *r)
{
    u_char                     *p;
    yajl_val                    v;
    ngx_int_t                   rc;
    ngx_str_t                   given, owner;
    ngx_http_cart_ctx_t        *ctx;
    ngx_http_cart_merge_t      *m;
    ngx_http_cart_main_conf_t  *cmcf;

    ctx = ngx_http_get_module_ctx(r, ngx_http_cart_module);
    cmcf = ngx_http_get_module_main_conf(r, ngx_http_cart_module);

    v = ngx_http_cart_json_field(ctx->body, "guest_session_id");

    if (!YAJL_IS_STRING(v)) {
        return ngx_http_cart_fail(r, &ngx_http_cart_merge_field);
    }

    given.data = (u_char *) YAJL_GET_STRING(v);
    given.len = ngx_strlen(given.data);

    /* only the session this client holds a valid cookie for */

    if (ctx->guest.len == 0 || ngx_http_cart_equal(&given, &ctx->guest)
                               != NGX_OK)
    {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "cart: merge of a guest session that is not the "
                      "caller's refused");
        return ngx_http_cart_fail(r, &ngx_http_cart_merge_forbidden);
    }

    m = ngx_pcalloc(r->pool, sizeof(ngx_http_cart_merge_t));
    p = ngx_pnalloc(r->pool, sizeof("guest-") - 1 + ctx->guest.len
                             + sizeof("merge ") - 1 + ctx->guest.len);
    if (m == NULL || p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->data = m;

    owner.data = p;
    owner.len = ngx_sprintf(p, "guest-%V", &ctx->guest) - p;
    p += owner.len;

    /* an Idempotency-Key is bound to the session merged */
    ctx->fingerprint.data = p;
    ctx->fingerprint.len = ngx_sprintf(p, "merge %V", &ctx->guest) - p;

    if (ngx_http_cart_key(r->pool, &m->keys[0], "cart:", &owner, NULL)
        == NULL
        || ngx_http_cart_key(r->pool, &m->keys[1], "cart_count:", &owner,
                             NULL) == NULL
        || ngx_http_cart_key(r->pool, &m->keys[2], "merge:", &owner, NULL)
           == NULL
        || ngx_http_cart_random_hex(r->pool, 16, &m->mine) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ctx->idem_key.len || ctx->if_match.len) {
        /* a replay or a failed If-Match must not claim the guest cart */
        rc = ngx_http_cart_apply(r, 1,
                                 ngx_http_cart_strategies[cmcf->merge_strategy],
                                 NULL, NULL, 0, ngx_http_cart_merge_checked);

    } else {
        rc = ngx_http_cart_merge_claim(r, "claim");
    }

    if (rc != NGX_OK) {
        return ngx_http_cart_store_error(r, NULL, NGX_ERROR);
    }

    return NGX_DONE;
}


static void
ngx_http_cart_merge_checked(ngx_http_request_t *r, void *data,
    redisReply *reply, ngx_int_t rc)
{
    ngx_str_t                      word;
    ngx_http_cart_ctx_t           *ctx;
    ngx_http_cart_merge_t         *m;
    const ngx_http_cart_answer_t  *a;

    ctx = ngx_http_get_module_ctx(r, ngx_http_cart_module);
    m = ctx->data;

    if (rc != NGX_OK) {
        /* apply.lua's check writes nothing: the merge was not sent */
        ngx_http_finalize_request(r, ngx_http_cart_store_error(r, reply, rc));
        return;
    }

    a = ngx_http_cart_script_answer(r, reply, rc, NULL, &word);
    if (a) {
        ngx_http_finalize_request(r, ngx_http_cart_fail(r, a));
        return;
    }

    if (ngx_http_cart_word_is(&word, "replay")) {
        if (ngx_http_cart_applied(r, reply, &m->result) != NGX_OK) {
            ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
            return;
        }

        ngx_http_cart_merge_answer(r);
        return;
    }

    if (ngx_http_cart_merge_claim(r, "claim") != NGX_OK) {
        ngx_http_finalize_request(r,
                                 ngx_http_cart_store_error(r, NULL, NGX_ERROR));
    }
}


/* merge_claim.lua: "claim" (step 1) or "done" (step 3) */

static ngx_int_t
ngx_http_cart_merge_claim(ngx_http_request_t *r, const char *mode)
{
    u_char                     *p;
    ngx_str_t                   args[9];
    ngx_http_cart_ctx_t        *ctx;
    ngx_http_cart_merge_t      *m;
    ngx_http_cart_main_conf_t  *cmcf;

    ctx = ngx_http_get_module_ctx(r, ngx_http_cart_module);
    cmcf = ngx_http_get_module_main_conf(r, ngx_http_cart_module);
    m = ctx->data;

    p = ngx_pnalloc(r->pool, 2 * NGX_TIME_T_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    /* the ARGV prefix of _lib.lua, with no If-Match and no idempotency */

    args[0].data = p;
    args[0].len = ngx_sprintf(p, "%T", ngx_time()) - p;
    p += args[0].len;

    args[1].data = p;
    args[1].len = ngx_sprintf(p, "%T", cmcf->guest_ttl) - p;

    ngx_str_null(&args[2]);
    ngx_str_null(&args[3]);
    ngx_str_set(&args[4], "0");
    ngx_str_set(&args[5], "0");

    args[6].data = (u_char *) mode;
    args[6].len = ngx_strlen(mode);
    args[7] = ctx->owner;
    args[8] = m->id.len ? m->id : m->mine;

    return ngx_http_cart_script_run(r, NGX_HTTP_CART_SCRIPT_MERGE_CLAIM,
                                    m->keys, 3, args, 9,
                                    mode[0] == 'c'
                                    ? ngx_http_cart_merge_claimed
                                    : ngx_http_cart_merge_finished, NULL);
}


/* step 1 answered: {'claimed', id, sku, line, ...} or {'empty'} */

static void
ngx_http_cart_merge_claimed(ngx_http_request_t *r, void *data,
    redisReply *reply, ngx_int_t rc)
{
    size_t                         i, n;
    ngx_str_t                      word, *lines;
    ngx_http_cart_ctx_t           *ctx;
    ngx_http_cart_merge_t         *m;
    ngx_http_cart_main_conf_t     *cmcf;
    const ngx_http_cart_answer_t  *a;

    ctx = ngx_http_get_module_ctx(r, ngx_http_cart_module);
    cmcf = ngx_http_get_module_main_conf(r, ngx_http_cart_module);
    m = ctx->data;

    a = ngx_http_cart_script_answer(r, reply, rc, ngx_http_cart_merge_answers,
                                    &word);
    if (a) {
        ngx_http_finalize_request(r, ngx_http_cart_fail(r, a));
        return;
    }

    n = 0;
    lines = NULL;

    if (ngx_http_cart_word_is(&word, "empty")) {
        if (m->round > 0) {
            ngx_http_cart_merge_answer(r);
            return;
        }

        /* nothing to merge: the user's cart answers as it is */

    } else if (ngx_http_cart_word_is(&word, "claimed")
               && reply->elements >= 2 && reply->elements % 2 == 0)
    {
        n = reply->elements / 2 - 1;

        lines = ngx_palloc(r->pool, (2 * n + 1) * sizeof(ngx_str_t));
        if (lines == NULL
            || ngx_http_cart_reply_copy(r->pool, reply, 1, &m->id) != NGX_OK
            || ngx_http_cart_key(r->pool, &m->marker, "merged:", &ctx->owner,
                                 &m->id) == NULL)
        {
            ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
            return;
        }

        for (i = 0; i < 2 * n; i++) {
            if (ngx_http_cart_reply_copy(r->pool, reply, i + 2, &lines[i])
                != NGX_OK)
            {
                ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
                return;
            }
        }

    } else {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "cart: unexpected merge claim answer \"%V\"", &word);
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    if (ngx_http_cart_apply(r, 0,
                            ngx_http_cart_strategies[cmcf->merge_strategy],
                            m->id.len ? &m->marker : NULL, lines, n,
                            ngx_http_cart_merge_applied)
        != NGX_OK)
    {
        ngx_http_finalize_request(r,
                                 ngx_http_cart_store_error(r, NULL, NGX_ERROR));
    }
}


/* step 2 answered */

static void
ngx_http_cart_merge_applied(ngx_http_request_t *r, void *data,
    redisReply *reply, ngx_int_t rc)
{
    int64_t                        before;
    ngx_str_t                      word;
    ngx_http_cart_ctx_t           *ctx;
    ngx_http_cart_merge_t         *m;
    const ngx_http_cart_answer_t  *a;

    ctx = ngx_http_get_module_ctx(r, ngx_http_cart_module);
    m = ctx->data;

    a = ngx_http_cart_script_answer(r, reply, rc, NULL, &word);
    if (a) {
        /* the claim stays: the next merge of this session finishes it */
        ngx_http_finalize_request(r, ngx_http_cart_fail(r, a));
        return;
    }

    before = m->result.applied;

    if (ngx_http_cart_applied(r, reply, &m->result) != NGX_OK) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    if (ngx_http_cart_word_is(&word, "ok") && m->result.applied > before) {
        m->changed = 1;
    }

    if (!ngx_http_cart_word_is(&word, "replay")) {
        /* If-Match and the key were honoured: a second round, for lines
         * the guest added meanwhile, runs unconditioned */
        ngx_str_null(&ctx->if_match);
        ngx_str_null(&ctx->idem_key);
    }

    if (m->id.len == 0 || ngx_http_cart_word_is(&word, "replay")) {
        /* no claim, or an earlier answer replayed: the claim is not ours
         * to delete */
        ngx_http_cart_merge_answer(r);
        return;
    }

    if (ngx_http_cart_merge_claim(r, "done") != NGX_OK) {
        ngx_http_cart_merge_finished(r, NULL, NULL, NGX_ERROR);
    }
}


/* step 3 answered */

static void
ngx_http_cart_merge_finished(ngx_http_request_t *r, void *data,
    redisReply *reply, ngx_int_t rc)
{
    ngx_http_cart_ctx_t    *ctx;
    ngx_http_cart_merge_t  *m;

    ctx = ngx_http_get_module_ctx(r, ngx_http_cart_module);
    m = ctx->data;

    if (rc != NGX_OK) {
        /* merged all the same; the next merge deletes the claim */
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "cart: merge applied but its claim is left for the "
                      "next merge to delete");
    }

    if (m->round == 0
        && ngx_http_cart_equal(&m->id, &m->mine) != NGX_OK)
    {
        /* that was another request's claim: now take what the guest
         * cart holds */
        m->round++;
        ngx_str_null(&m->id);

        if (ngx_http_cart_merge_claim(r, "claim") == NGX_OK) {
            return;
        }
    }

    ngx_http_cart_merge_answer(r);
}


static void
ngx_http_cart_merge_answer(ngx_http_request_t *r)
{
    ngx_str_t                   none;
    ngx_http_cart_ctx_t        *ctx;
    ngx_http_cart_merge_t      *m;
    ngx_http_cart_event_t       event;
    ngx_http_cart_loc_conf_t   *lcf;
    ngx_http_cart_main_conf_t  *cmcf;

    ctx = ngx_http_get_module_ctx(r, ngx_http_cart_module);
    lcf = ngx_http_get_module_loc_conf(r, ngx_http_cart_module);
    cmcf = ngx_http_get_module_main_conf(r, ngx_http_cart_module);
    m = ctx->data;

    if (m->changed) {
        ngx_memzero(&event, sizeof(ngx_http_cart_event_t));
        event.type = "cart_merged";
        event.quantity = -1;
        event.price = -1;
        event.version = m->result.version;

        ngx_http_cart_event(r, &event);
    }

    /* the guest session is used up: the browser may forget its cookie */

    ngx_str_null(&none);

    if (ngx_http_cart_cookie_make(r, lcf->guest_cookie, &none,
                                  cmcf->guest_ttl, &ctx->set_cookie)
        != NGX_OK)
    {
        ngx_str_null(&ctx->set_cookie);
    }

    ngx_http_finalize_request(r, ngx_http_cart_applied_send(r, &m->result, 1));
}


ngx_int_t
ngx_http_cart_apply(ngx_http_request_t *r, ngx_uint_t check,
    const char *strategy, ngx_str_t *marker, ngx_str_t *lines, ngx_uint_t n,
    ngx_http_cart_redis_handler_pt handler)
{
    u_char                     *p;
    ngx_str_t                  *args;
    ngx_uint_t                  i;
    ngx_http_cart_main_conf_t  *cmcf;

    cmcf = ngx_http_get_module_main_conf(r, ngx_http_cart_module);

    args = ngx_palloc(r->pool, (5 + 2 * n) * sizeof(ngx_str_t));
    p = ngx_pnalloc(r->pool, NGX_TIME_T_LEN);
    if (args == NULL || p == NULL) {
        return NGX_ERROR;
    }

    if (check) {
        ngx_str_set(&args[0], "check");

    } else {
        ngx_str_set(&args[0], "apply");
    }

    args[1].data = (u_char *) strategy;
    args[1].len = ngx_strlen(strategy);

    args[2] = cmcf->max_lines_arg;
    args[3] = cmcf->max_quantity_arg;

    /* the marker outlives any claim it could be asked about */
    args[4].data = p;
    args[4].len = ngx_sprintf(p, "%T", cmcf->guest_ttl) - p;

    for (i = 0; i < 2 * n; i++) {
        args[5 + i] = lines[i];
    }

    return ngx_http_cart_script_write_keys(r, NGX_HTTP_CART_SCRIPT_APPLY,
                                           marker, marker ? 1 : 0, args,
                                           5 + 2 * n, handler);
}


/* {word, version, count, applied, conflicts, adjusted, lines} */

ngx_int_t
ngx_http_cart_applied(ngx_http_request_t *r, redisReply *reply,
    ngx_http_cart_apply_answer_t *a)
{
    size_t                         i;
    int64_t                        applied, conflicts;
    redisReply                    *e;
    ngx_http_cart_adjusted_t      *adj;
    ngx_http_cart_applied_line_t  *line;

    if (a->adjusted == NULL) {
        a->adjusted = ngx_array_create(r->pool, 4,
                                       sizeof(ngx_http_cart_adjusted_t));
        a->lines = ngx_array_create(r->pool, 4,
                                    sizeof(ngx_http_cart_applied_line_t));
        if (a->adjusted == NULL || a->lines == NULL) {
            return NGX_ERROR;
        }
    }

    if (ngx_http_cart_reply_copy(r->pool, reply, 0, &a->word) != NGX_OK
        || ngx_http_cart_reply_int(reply, 1, &a->version) != NGX_OK
        || ngx_http_cart_reply_int(reply, 2, &a->count) != NGX_OK
        || ngx_http_cart_reply_int(reply, 3, &applied) != NGX_OK
        || ngx_http_cart_reply_int(reply, 4, &conflicts) != NGX_OK
        || reply->elements < 7
        || reply->element[5]->type != REDIS_REPLY_ARRAY
        || reply->element[6]->type != REDIS_REPLY_ARRAY)
    {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "cart: malformed apply answer");
        return NGX_ERROR;
    }

    a->applied += applied;
    a->conflicts += conflicts;

    for (i = 0; i < reply->element[5]->elements; i++) {
        e = reply->element[5]->element[i];
        adj = ngx_array_push(a->adjusted);

        if (adj == NULL
            || ngx_http_cart_reply_copy(r->pool, e, 0, &adj->sku) != NGX_OK
            || ngx_http_cart_reply_int(e, 1, &adj->requested) != NGX_OK
            || ngx_http_cart_reply_int(e, 2, &adj->quantity) != NGX_OK
            || ngx_http_cart_reply_copy(r->pool, e, 3, &adj->reason)
               != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    for (i = 0; i < reply->element[6]->elements; i++) {
        e = reply->element[6]->element[i];
        line = ngx_array_push(a->lines);

        if (line == NULL
            || ngx_http_cart_reply_copy(r->pool, e, 0, &line->sku) != NGX_OK
            || ngx_http_cart_reply_int(e, 1, &line->qty) != NGX_OK
            || ngx_http_cart_reply_copy(r->pool, e, 3, &line->seller)
               != NGX_OK)
        {
            return NGX_ERROR;
        }

        if (ngx_http_cart_reply_int(e, 2, &line->price) != NGX_OK) {
            line->price = -1;
        }
    }

    return NGX_OK;
}


/* {"cart_id", "merged_items" and "conflicts_resolved" | "copied_items",
 * "adjusted", "item_count", "version"} */

ngx_int_t
ngx_http_cart_applied_send(ngx_http_request_t *r,
    ngx_http_cart_apply_answer_t *a, ngx_uint_t merge)
{
    yajl_gen                   g;
    ngx_uint_t                 i;
    ngx_http_cart_ctx_t       *ctx;
    ngx_http_cart_adjusted_t  *adj;
    ngx_http_cart_json_gen_t  *json;

    ctx = ngx_http_get_module_ctx(r, ngx_http_cart_module);

    json = ngx_http_cart_json_gen(r->pool);
    if (json == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    g = json->g;

    yajl_gen_map_open(g);
    ngx_http_cart_json_cart_id(g, ctx);

    if (merge) {
        ngx_http_cart_json_key(g, "merged_items");
        ngx_http_cart_json_int(g, a->applied);
        ngx_http_cart_json_key(g, "conflicts_resolved");
        ngx_http_cart_json_int(g, a->conflicts);

    } else {
        ngx_http_cart_json_key(g, "copied_items");
        ngx_http_cart_json_int(g, a->applied);
    }

    ngx_http_cart_json_key(g, "adjusted");
    yajl_gen_array_open(g);

    adj = a->adjusted ? a->adjusted->elts : NULL;

    for (i = 0; a->adjusted && i < a->adjusted->nelts; i++) {
        yajl_gen_map_open(g);
        ngx_http_cart_json_key(g, "sku_id");
        ngx_http_cart_json_str(g, &adj[i].sku);
        ngx_http_cart_json_key(g, "requested");
        ngx_http_cart_json_int(g, adj[i].requested);
        ngx_http_cart_json_key(g, "quantity");
        ngx_http_cart_json_int(g, adj[i].quantity);
        ngx_http_cart_json_key(g, "reason");
        ngx_http_cart_json_str(g, &adj[i].reason);
        yajl_gen_map_close(g);
    }

    yajl_gen_array_close(g);

    ngx_http_cart_json_key(g, "item_count");
    ngx_http_cart_json_int(g, a->count);
    ngx_http_cart_json_key(g, "version");
    ngx_http_cart_json_int(g, a->version);
    yajl_gen_map_close(g);

    return ngx_http_cart_send(r, NGX_HTTP_OK, json, a->version);
}


/* element i of an array reply, copied: the reply dies with its callback */

static ngx_int_t
ngx_http_cart_reply_copy(ngx_pool_t *pool, redisReply *reply, size_t i,
    ngx_str_t *s)
{
    ngx_str_t  v;

    if (ngx_http_cart_reply_str(reply, i, &v) != NGX_OK) {
        return NGX_ERROR;
    }

    s->len = v.len;
    s->data = ngx_pnalloc(pool, v.len + 1);
    if (s->data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(s->data, v.data, v.len);
    s->data[v.len] = '\0';

    return NGX_OK;
}
