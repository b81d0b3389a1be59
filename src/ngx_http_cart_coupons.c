/*
 * Coupons and the shipping address.
 *
 * POST /coupons prices the cart with the coupon before it stores it: the
 * coupon must exist, be within its window, meet its conditions on this
 * cart and have redemptions left (counted, not consumed: only checkout
 * consumes). The answer is the cart view priced with it. A cart holds one
 * coupon; applying another replaces it.
 */

#include "ngx_http_cart_coupons.h"
#include "ngx_http_cart_events.h"
#include "ngx_http_cart_pricing.h"
#include "ngx_http_cart_reply.h"
#include "ngx_http_cart_scripts.h"
#include "ngx_http_cart_stored.h"


#define NGX_HTTP_CART_MAX_POSTAL_LEN  10


typedef struct {
    ngx_str_t                  code;
    ngx_http_cart_snapshot_t  *snap;
    ngx_http_cart_priced_t    *priced;
    ngx_http_cart_promo_t     *promo;
} ngx_http_cart_coupon_t;


static const ngx_http_cart_answer_t  ngx_http_cart_code_invalid =
    { NGX_HTTP_BAD_REQUEST, "invalid_field",
      "code is required and must be a string" };
static const ngx_http_cart_answer_t  ngx_http_cart_coupon_not_found =
    { NGX_HTTP_NOT_FOUND, "coupon_not_found",
      "this coupon is not applied to the cart" };
static const ngx_http_cart_answer_t  ngx_http_cart_address_invalid =
    { NGX_HTTP_BAD_REQUEST, "invalid_field",
      "country and postal_code are required and must be strings" };
static const ngx_http_cart_answer_t  ngx_http_cart_address_bad =
    { 422, "invalid_address",
      "country must be an ISO 3166 two-letter code and postal_code 1-10 "
      "letters, digits or dashes" };
static const ngx_http_cart_answer_t  ngx_http_cart_coupon_store =
    { NGX_HTTP_SERVICE_UNAVAILABLE, "store_unavailable",
      "the cart store is unavailable, retry later" };
static const ngx_http_cart_answer_t  ngx_http_cart_coupon_internal =
    { NGX_HTTP_INTERNAL_SERVER_ERROR, "internal_error", "internal error" };


static ngx_int_t ngx_http_cart_coupon_fingerprint(ngx_http_request_t *r,
    ngx_str_t *what);
static void ngx_http_cart_coupon_snapshot(ngx_http_request_t *r,
    ngx_http_cart_snapshot_t *snap);
static void ngx_http_cart_coupon_priced(ngx_http_request_t *r);
static void ngx_http_cart_coupon_counted(ngx_http_request_t *r, void *data,
    redisReply *reply, ngx_int_t rc);
static ngx_int_t ngx_http_cart_coupon_write(ngx_http_request_t *r);
static void ngx_http_cart_coupon_done(ngx_http_request_t *r, void *data,
    redisReply *reply, ngx_int_t rc);
static ngx_int_t ngx_http_cart_meta_write(ngx_http_request_t *r,
    const char *field, ngx_str_t *value, ngx_str_t *current);
static void ngx_http_cart_meta_done(ngx_http_request_t *r, void *data,
    redisReply *reply, ngx_int_t rc);
static ngx_int_t ngx_http_cart_address_parse(ngx_http_request_t *r,
    ngx_str_t *value);
static const ngx_http_cart_answer_t *ngx_http_cart_coupon_answer(
    ngx_http_request_t *r, const char *code);


/* POST /coupons {"code"} */

ngx_int_t
ngx_http_cart_coupons_apply(ngx_http_request_t *r)
{
    yajl_val                 v;
    ngx_str_t                code;
    ngx_http_cart_ctx_t     *ctx;
    ngx_http_cart_coupon_t  *st;

    ctx = ngx_http_get_module_ctx(r, ngx_http_cart_module);

    v = ngx_http_cart_json_field(ctx->body, "code");

    if (!YAJL_IS_STRING(v)) {
        return ngx_http_cart_fail(r, &ngx_http_cart_code_invalid);
    }

    code.data = (u_char *) YAJL_GET_STRING(v);
    code.len = ngx_strlen(code.data);

    st = ngx_pcalloc(r->pool, sizeof(ngx_http_cart_coupon_t));
    if (st == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    st->code.data = ngx_pnalloc(r->pool, NGX_HTTP_CART_MAX_CODE_LEN);
    if (st->code.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* a code that cannot exist is unknown, like one that does not */
    if (ngx_http_cart_promo_code(&code, st->code.data) != NGX_OK) {
        return ngx_http_cart_fail(r,
                             ngx_http_cart_coupon_answer(r, "coupon_unknown"));
    }

    st->code.len = code.len;
    ctx->data = st;

    if (ngx_http_cart_coupon_fingerprint(r, &st->code) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_cart_stored_start(r, ngx_http_cart_coupon_snapshot);
}


static void
ngx_http_cart_coupon_snapshot(ngx_http_request_t *r,
    ngx_http_cart_snapshot_t *snap)
{
    ngx_http_cart_ctx_t     *ctx;
    ngx_http_cart_coupon_t  *st;

    ctx = ngx_http_get_module_ctx(r, ngx_http_cart_module);
    st = ctx->data;
    st->snap = snap;

    if (ngx_http_cart_pricing_fetch(r, snap, NGX_HTTP_CART_PRICE_FRESH,
                                    ngx_http_cart_coupon_priced)
        != NGX_OK)
    {
        ngx_http_finalize_request(r,
            ngx_http_cart_stored_fail(r, &ngx_http_cart_coupon_internal));
    }
}


static void
ngx_http_cart_coupon_priced(ngx_http_request_t *r)
{
    ngx_str_t                key, field;
    const char              *argv[4];
    size_t                   argvlen[4];
    ngx_http_cart_ctx_t     *ctx;
    ngx_http_cart_coupon_t  *st;

    ctx = ngx_http_get_module_ctx(r, ngx_http_cart_module);
    st = ctx->data;

    st->priced = ngx_http_cart_price(r, st->snap, &st->code);

    if (st->priced == NULL) {
        ngx_http_finalize_request(r,
            ngx_http_cart_stored_fail(r, &ngx_http_cart_coupon_internal));
        return;
    }

    if (st->priced->coupon_error) {
        ngx_http_finalize_request(r, ngx_http_cart_stored_fail(r,
                     ngx_http_cart_coupon_answer(r, st->priced->coupon_error)));
        return;
    }

    st->promo = ngx_http_cart_promo_by_code(st->snap->promos.set, &st->code);

    if (st->promo->max_redemptions == 0 && st->promo->max_per_user == 0) {
        if (ngx_http_cart_coupon_write(r) != NGX_DONE) {
            ngx_http_finalize_request(r,
                ngx_http_cart_stored_fail(r, &ngx_http_cart_coupon_store));
        }

        return;
    }

    /* redemptions left? (only checkout consumes one) */

    key.data = ngx_pnalloc(r->pool, sizeof("promo_use:{promo-}") - 1
                                    + st->promo->id.len);
    field.data = ngx_pnalloc(r->pool, sizeof("u:") - 1 + ctx->owner.len);

    if (key.data == NULL || field.data == NULL) {
        ngx_http_finalize_request(r,
            ngx_http_cart_stored_fail(r, &ngx_http_cart_coupon_internal));
        return;
    }

    key.len = ngx_sprintf(key.data, "promo_use:{promo-%V}", &st->promo->id)
              - key.data;
    field.len = ngx_sprintf(field.data, "u:%V", &ctx->owner) - field.data;

    argv[0] = "HMGET";
    argvlen[0] = sizeof("HMGET") - 1;
    argv[1] = (const char *) key.data;
    argvlen[1] = key.len;
    argv[2] = "n";
    argvlen[2] = 1;
    argv[3] = (const char *) field.data;
    argvlen[3] = field.len;

    if (ngx_http_cart_redis_command(r, &key, 4, argv, argvlen,
                                    ngx_http_cart_coupon_counted, NULL)
        != NGX_OK)
    {
        ngx_http_finalize_request(r,
                    ngx_http_cart_stored_fail(r, &ngx_http_cart_coupon_store));
    }
}


static void
ngx_http_cart_coupon_counted(ngx_http_request_t *r, void *data,
    redisReply *reply, ngx_int_t rc)
{
    int64_t                  used, mine;
    ngx_http_cart_ctx_t     *ctx;
    ngx_http_cart_coupon_t  *st;

    ctx = ngx_http_get_module_ctx(r, ngx_http_cart_module);
    st = ctx->data;

    if (rc != NGX_OK || reply->type != REDIS_REPLY_ARRAY) {
        ngx_http_finalize_request(r,
                    ngx_http_cart_stored_fail(r, &ngx_http_cart_coupon_store));
        return;
    }

    if (ngx_http_cart_reply_int(reply, 0, &used) != NGX_OK) {
        used = 0;
    }

    if (ngx_http_cart_reply_int(reply, 1, &mine) != NGX_OK) {
        mine = 0;
    }

    if (st->promo->max_redemptions && used >= st->promo->max_redemptions) {
        ngx_http_finalize_request(r, ngx_http_cart_stored_fail(r,
                           ngx_http_cart_coupon_answer(r, "coupon_exhausted")));
        return;
    }

    if (st->promo->max_per_user && mine >= st->promo->max_per_user) {
        ngx_http_finalize_request(r, ngx_http_cart_stored_fail(r,
                       ngx_http_cart_coupon_answer(r, "coupon_limit_reached")));
        return;
    }

    if (ngx_http_cart_coupon_write(r) != NGX_DONE) {
        ngx_http_finalize_request(r,
                    ngx_http_cart_stored_fail(r, &ngx_http_cart_coupon_store));
    }
}


/* the answer is rendered first (the version the write will give the cart
 * is known: the write happens only at the version priced) and stored with
 * the write for replays */

static ngx_int_t
ngx_http_cart_coupon_write(ngx_http_request_t *r)
{
    u_char                    *p;
    yajl_gen                   g;
    ngx_str_t                  args[5];
    ngx_http_cart_ctx_t       *ctx;
    ngx_http_cart_coupon_t    *st;
    ngx_http_cart_json_gen_t  *json;

    ctx = ngx_http_get_module_ctx(r, ngx_http_cart_module);
    st = ctx->data;

    json = ngx_http_cart_json_gen(r->pool);
    p = ngx_pnalloc(r->pool, NGX_INT64_LEN);
    if (json == NULL || p == NULL) {
        return NGX_ERROR;
    }

    g = json->g;

    ngx_http_cart_render_view(r, g, st->snap, st->priced,
                              st->snap->version + 1);

    if (ngx_http_cart_json_text(json, &args[4]) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_str_set(&args[0], "#c");
    args[1] = st->code;
    args[2].data = p;
    args[2].len = ngx_sprintf(p, "%L", st->snap->version) - p;
    ngx_str_null(&args[3]);

    if (ngx_http_cart_script_write(r, NGX_HTTP_CART_SCRIPT_META, args, 5,
                                   ngx_http_cart_coupon_done)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    return NGX_DONE;
}


static void
ngx_http_cart_coupon_done(ngx_http_request_t *r, void *data,
    redisReply *reply, ngx_int_t rc)
{
    int64_t                  version;
    ngx_str_t                word;
    ngx_uint_t               i;
    ngx_http_cart_ctx_t     *ctx;
    ngx_http_cart_event_t    event;
    ngx_http_cart_coupon_t  *st;

    ctx = ngx_http_get_module_ctx(r, ngx_http_cart_module);
    st = ctx->data;

    if (ngx_http_cart_stored_word(r, reply, rc, &word, &rc) != NGX_OK) {
        ngx_http_finalize_request(r, rc);
        return;
    }

    if (word.len != 2 || ngx_strncmp(word.data, "ok", 2) != 0) {
        ngx_http_finalize_request(r,
            ngx_http_cart_stored_fail(r, ngx_http_cart_stored_error(r, &word)));
        return;
    }

    if (ngx_http_cart_reply_int(reply, 1, &version) != NGX_OK) {
        version = -1;
    }

    ngx_memzero(&event, sizeof(ngx_http_cart_event_t));
    event.type = "coupon_applied";
    event.quantity = -1;
    event.price = 0;
    event.version = version;

    for (i = 0; i < st->priced->napplied; i++) {
        if (st->priced->applied[i].coupon) {
            event.price += st->priced->applied[i].discount;
        }
    }

    ngx_http_cart_event(r, &event);

    ngx_http_finalize_request(r, ngx_http_cart_stored_send(r, reply,
                                                           NGX_HTTP_OK, 0));
}


/* DELETE /coupons/{code} */

ngx_int_t
ngx_http_cart_coupons_remove(ngx_http_request_t *r)
{
    u_char               *code;
    ngx_str_t             value, current;
    ngx_http_cart_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_cart_module);

    code = ngx_pnalloc(r->pool, NGX_HTTP_CART_MAX_CODE_LEN);
    if (code == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_http_cart_promo_code(&ctx->path_sku, code) != NGX_OK) {
        return ngx_http_cart_fail(r, &ngx_http_cart_coupon_not_found);
    }

    current.data = code;
    current.len = ctx->path_sku.len;
    ctx->path_sku = current;

    if (ngx_http_cart_coupon_fingerprint(r, &current) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_str_null(&value);

    return ngx_http_cart_meta_write(r, "#c", &value, &current);
}


/*
 * The answer of a meta write: {"cart_id", "removed": CODE | "shipping_address":
 * {...}, "version"}, rendered from the request (kept in ctx->path_sku), so
 * that a replay renders the same.
 */

static void
ngx_http_cart_meta_done(ngx_http_request_t *r, void *data, redisReply *reply,
    ngx_int_t rc)
{
    int64_t                    version;
    yajl_gen                   g;
    ngx_str_t                  word;
    ngx_uint_t                 replay;
    ngx_http_cart_ctx_t       *ctx;
    ngx_http_cart_snapshot_t   snap;
    ngx_http_cart_json_gen_t  *json;

    ctx = ngx_http_get_module_ctx(r, ngx_http_cart_module);

    if (ngx_http_cart_stored_word(r, reply, rc, &word, &rc) != NGX_OK) {
        ngx_http_finalize_request(r, rc);
        return;
    }

    replay = (word.len == 6);

    if (word.len == 7 && ngx_strncmp(word.data, "not_set", 7) == 0) {
        ngx_http_finalize_request(r,
                    ngx_http_cart_fail(r, &ngx_http_cart_coupon_not_found));
        return;
    }

    if (!replay && (word.len != 2 || ngx_strncmp(word.data, "ok", 2) != 0)) {
        ngx_http_finalize_request(r,
                 ngx_http_cart_fail(r, ngx_http_cart_stored_error(r, &word)));
        return;
    }

    json = ngx_http_cart_json_gen(r->pool);

    if (json == NULL || ngx_http_cart_reply_int(reply, 1, &version) != NGX_OK
        || (replay && ngx_http_cart_replayed(r) != NGX_OK))
    {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    g = json->g;

    yajl_gen_map_open(g);
    ngx_http_cart_json_cart_id(g, ctx);

    if (ctx->action == ngx_http_cart_coupons_remove) {
        ngx_http_cart_json_key(g, "removed");
        ngx_http_cart_json_str(g, &ctx->path_sku);

    } else {
        ngx_memzero(&snap, sizeof(ngx_http_cart_snapshot_t));
        snap.country.data = ctx->path_sku.data;
        snap.country.len = 2;
        snap.postal_code.data = ctx->path_sku.data + 3;
        snap.postal_code.len = ctx->path_sku.len - 3;

        ngx_http_cart_json_key(g, "shipping_address");
        ngx_http_cart_json_address(g, &snap);
    }

    ngx_http_cart_json_key(g, "version");
    ngx_http_cart_json_int(g, version);
    yajl_gen_map_close(g);

    ngx_http_finalize_request(r, ngx_http_cart_send(r, NGX_HTTP_OK, json,
                                                    version));
}


/* PUT /shipping-address {"country","postal_code"} */

ngx_int_t
ngx_http_cart_address_set(ngx_http_request_t *r)
{
    ngx_int_t             rc;
    ngx_str_t             value;
    ngx_http_cart_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_cart_module);

    rc = ngx_http_cart_address_parse(r, &value);

    if (rc == NGX_DECLINED) {
        return ngx_http_cart_fail(r, &ngx_http_cart_address_invalid);
    }

    if (rc == NGX_ABORT) {
        return ngx_http_cart_fail(r, &ngx_http_cart_address_bad);
    }

    if (rc != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* kept for the answer, which a replay renders again */
    ctx->path_sku = value;

    if (ngx_http_cart_coupon_fingerprint(r, &value) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_cart_meta_write(r, "#a", &value, NULL);
}


/*
 * "<COUNTRY>|<POSTAL CODE>": the country in upper case, the postal code
 * in upper case without spaces ("sw1a 1aa" is "SW1A1AA"). NGX_DECLINED:
 * missing or not strings; NGX_ABORT: not acceptable values.
 */

static ngx_int_t
ngx_http_cart_address_parse(ngx_http_request_t *r, ngx_str_t *value)
{
    u_char                c, *p, *s;
    yajl_val              country, postal;
    ngx_uint_t            i, n;
    ngx_http_cart_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_cart_module);

    country = ngx_http_cart_json_field(ctx->body, "country");
    postal = ngx_http_cart_json_field(ctx->body, "postal_code");

    if (!YAJL_IS_STRING(country) || !YAJL_IS_STRING(postal)) {
        return NGX_DECLINED;
    }

    value->data = ngx_pnalloc(r->pool, 3 + NGX_HTTP_CART_MAX_POSTAL_LEN);
    if (value->data == NULL) {
        return NGX_ERROR;
    }

    p = value->data;
    s = (u_char *) YAJL_GET_STRING(country);

    for (i = 0; i < 2; i++) {
        c = ngx_toupper(s[i]);

        if (c < 'A' || c > 'Z') {
            return NGX_ABORT;
        }

        *p++ = c;
    }

    if (s[2] != '\0') {
        return NGX_ABORT;
    }

    *p++ = '|';
    s = (u_char *) YAJL_GET_STRING(postal);

    for (n = 0; *s; s++) {
        c = ngx_toupper(*s);

        if (c == ' ') {
            continue;
        }

        if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-')
            || ++n > NGX_HTTP_CART_MAX_POSTAL_LEN)
        {
            return NGX_ABORT;
        }

        *p++ = c;
    }

    if (n == 0) {
        return NGX_ABORT;
    }

    value->len = p - value->data;

    return NGX_OK;
}


/* meta.lua: set (value non-empty) or remove a meta field, the removal
 * only when the field holds "current" */

static ngx_int_t
ngx_http_cart_meta_write(ngx_http_request_t *r, const char *field,
    ngx_str_t *value, ngx_str_t *current)
{
    ngx_str_t  args[5];

    args[0].data = (u_char *) field;
    args[0].len = ngx_strlen(field);
    args[1] = *value;
    ngx_str_null(&args[2]);
    ngx_str_null(&args[3]);
    ngx_str_null(&args[4]);

    if (current) {
        args[3] = *current;
    }

    if (ngx_http_cart_script_write(r, NGX_HTTP_CART_SCRIPT_META, args, 5,
                                   ngx_http_cart_meta_done)
        != NGX_OK)
    {
        return ngx_http_cart_store_error(r, NULL, NGX_ERROR);
    }

    return NGX_DONE;
}


/* what an Idempotency-Key is bound to: method, path and the one value */

static ngx_int_t
ngx_http_cart_coupon_fingerprint(ngx_http_request_t *r, ngx_str_t *what)
{
    u_char               *p;
    ngx_http_cart_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_cart_module);

    if (ctx->idem_key.len == 0) {
        return NGX_OK;
    }

    p = ngx_pnalloc(r->pool, r->method_name.len + r->uri.len + what->len + 2);
    if (p == NULL) {
        return NGX_ERROR;
    }

    ctx->fingerprint.data = p;
    ctx->fingerprint.len = ngx_sprintf(p, "%V %V %V", &r->method_name,
                                       &r->uri, what)
                           - p;

    return NGX_OK;
}


static const ngx_http_cart_answer_t *
ngx_http_cart_coupon_answer(ngx_http_request_t *r, const char *code)
{
    ngx_str_t  word;

    word.data = (u_char *) code;
    word.len = ngx_strlen(code);

    return ngx_http_cart_stored_error(r, &word);
}
