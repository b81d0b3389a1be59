/*
 * Cart lines and the cart view.
 *
 * A write is one EVALSHA (add.lua or set.lua) that updates the hash, the
 * counter and the version and refreshes the TTLs. An add first asks the
 * catalog for the price; with an Idempotency-Key it reserves the key
 * before that, so a retry arriving meanwhile sees "in flight".
 * A read is one HGETALL, then the pricing layer (ngx_http_cart_pricing.c):
 * one wave of catalog, inventory and shipping lookups, and the prices.
 */

#include "ngx_http_cart_items.h"
#include "ngx_http_cart_events.h"
#include "ngx_http_cart_reply.h"
#include "ngx_http_cart_pricing.h"
#include "ngx_http_cart_scripts.h"
#include "ngx_http_cart_stored.h"
#include "ngx_http_cart_subrequest.h"


/* what the write scripts may answer besides the shared answers and 'ok' */
static const ngx_http_cart_answer_t  ngx_http_cart_answers[] = {
    { 422, "line_limit", "the cart has reached its maximum number of lines" },
    { 422, "quantity_limit",
      "the line would exceed the maximum quantity per line" },
    { NGX_HTTP_NOT_FOUND, "line_not_found", "this SKU is not in the cart" },
    { 0, NULL, NULL }
};

static const ngx_http_cart_answer_t  ngx_http_cart_quantity_invalid =
    { NGX_HTTP_BAD_REQUEST, "invalid_field",
      "quantity is required and must be an integer" };
static const ngx_http_cart_answer_t  ngx_http_cart_quantity_range =
    { 422, "quantity_out_of_range",
      "quantity must be between 1 and cart_max_quantity" };
static const ngx_http_cart_answer_t  ngx_http_cart_quantity_range0 =
    { 422, "quantity_out_of_range",
      "quantity must be between 0 and cart_max_quantity" };


static const ngx_http_cart_answer_t *ngx_http_cart_quantity(
    ngx_http_request_t *r, ngx_int_t min);
static ngx_int_t ngx_http_cart_fingerprint(ngx_http_request_t *r,
    ngx_str_t *seller);
static ngx_int_t ngx_http_cart_add_lookup(ngx_http_request_t *r);
static void ngx_http_cart_add_reserved(ngx_http_request_t *r, void *data,
    redisReply *reply, ngx_int_t rc);
static void ngx_http_cart_add_priced(ngx_http_request_t *r);
static ngx_int_t ngx_http_cart_add_run(ngx_http_request_t *r);
static ngx_int_t ngx_http_cart_add_fail(ngx_http_request_t *r,
    ngx_uint_t status, const char *code, const char *message);
static ngx_int_t ngx_http_cart_set_run(ngx_http_request_t *r);
static void ngx_http_cart_write_done(ngx_http_request_t *r, void *data,
    redisReply *reply, ngx_int_t rc);
static void ngx_http_cart_view_reply(ngx_http_request_t *r, void *data,
    redisReply *reply, ngx_int_t rc);
static void ngx_http_cart_view_priced(ngx_http_request_t *r);
static void ngx_http_cart_count_reply(ngx_http_request_t *r, void *data,
    redisReply *reply, ngx_int_t rc);


/* POST /items {"sku_id", "quantity", "seller_id"?} */

ngx_int_t
ngx_http_cart_items_add(ngx_http_request_t *r)
{
    yajl_val                       sku, seller;
    ngx_http_cart_ctx_t           *ctx;
    ngx_http_cart_loc_conf_t      *lcf;
    const ngx_http_cart_answer_t  *answer;

    ctx = ngx_http_get_module_ctx(r, ngx_http_cart_module);
    lcf = ngx_http_get_module_loc_conf(r, ngx_http_cart_module);

    sku = ngx_http_cart_json_field(ctx->body, "sku_id");

    if (!YAJL_IS_STRING(sku)) {
        return ngx_http_cart_error(r, NGX_HTTP_BAD_REQUEST, "invalid_field",
                                   "sku_id is required and must be a string");
    }

    ctx->path_sku.data = (u_char *) YAJL_GET_STRING(sku);
    ctx->path_sku.len = ngx_strlen(ctx->path_sku.data);

    if (ngx_http_cart_valid_id(&ctx->path_sku, NGX_HTTP_CART_MAX_SKU_LEN)
        != NGX_OK)
    {
        return ngx_http_cart_error(r, NGX_HTTP_BAD_REQUEST, "invalid_sku",
                                   "sku_id must be 1-64 characters of "
                                   "A-Z a-z 0-9 . _ : -");
    }

    answer = ngx_http_cart_quantity(r, 1);
    if (answer) {
        return ngx_http_cart_fail(r, answer);
    }

    seller = ngx_http_cart_json_field(ctx->body, "seller_id");

    if (seller && !YAJL_IS_NULL(seller)) {
        if (!YAJL_IS_STRING(seller)) {
            return ngx_http_cart_error(r, NGX_HTTP_BAD_REQUEST,
                                       "invalid_field",
                                       "seller_id must be a string");
        }

        ctx->seller.data = (u_char *) YAJL_GET_STRING(seller);
        ctx->seller.len = ngx_strlen(ctx->seller.data);

        if (ngx_http_cart_valid_id(&ctx->seller, NGX_HTTP_CART_MAX_SKU_LEN)
            != NGX_OK)
        {
            return ngx_http_cart_error(r, NGX_HTTP_BAD_REQUEST,
                                       "invalid_field",
                                       "seller_id must be 1-64 characters "
                                       "of A-Z a-z 0-9 . _ : -");
        }
    }

    if (ngx_http_cart_fingerprint(r, &ctx->seller) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->price = -1;

    if (lcf->catalog == NULL) {
        return ngx_http_cart_add_run(r);
    }

    if (ctx->idem_key.len) {
        if (ngx_http_cart_stored_reserve(r, ngx_http_cart_add_reserved)
            != NGX_OK)
        {
            return ngx_http_cart_store_error(r, NULL, NGX_ERROR);
        }

        return NGX_DONE;
    }

    if (ngx_http_cart_add_lookup(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return NGX_DONE;
}


/* the catalog's answer for the SKU to add (maybe cached);
 * ngx_http_cart_add_priced() next */

static ngx_int_t
ngx_http_cart_add_lookup(ngx_http_request_t *r)
{
    ngx_http_cart_ctx_t       *ctx;
    ngx_http_cart_line_t      *line;
    ngx_http_cart_snapshot_t  *snap;

    ctx = ngx_http_get_module_ctx(r, ngx_http_cart_module);

    line = ngx_pcalloc(r->pool, sizeof(ngx_http_cart_line_t));
    if (line == NULL) {
        return NGX_ERROR;
    }

    line->sku = ctx->path_sku;

    snap = ngx_http_cart_snapshot_lines(r, line, 1);
    if (snap == NULL) {
        return NGX_ERROR;
    }

    ctx->data = snap;

    return ngx_http_cart_pricing_fetch(r, snap, NGX_HTTP_CART_PRICE_CATALOG,
                                       ngx_http_cart_add_priced);
}


static void
ngx_http_cart_add_reserved(ngx_http_request_t *r, void *data,
    redisReply *reply, ngx_int_t rc)
{
    ngx_str_t             answer;
    ngx_http_cart_ctx_t  *ctx;

    if (rc != NGX_OK) {
        /* at most the key was reserved: the add itself was not sent */
        ngx_http_finalize_request(r,
                                  ngx_http_cart_stored_reserve_error(r, reply,
                                                                     rc));
        return;
    }

    if (ngx_http_cart_reply_str(reply, 0, &answer) != NGX_OK
        || answer.len != sizeof("reserved") - 1
        || ngx_strncmp(answer.data, "reserved", answer.len) != 0)
    {
        /* a replay, a conflict, or an error: answered like the write */
        ngx_http_cart_write_done(r, data, reply, rc);
        return;
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_cart_module);

    ctx->reserved = 1;

    if (ngx_http_cart_add_lookup(r) != NGX_OK) {
        ngx_http_finalize_request(r,
            ngx_http_cart_add_fail(r, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                   "internal_error", "internal error"));
    }
}


static void
ngx_http_cart_add_priced(ngx_http_request_t *r)
{
    ngx_int_t                 rc;
    ngx_http_cart_ctx_t      *ctx;
    ngx_http_cart_facts_t    *facts;
    ngx_http_cart_product_t  *product;

    ctx = ngx_http_get_module_ctx(r, ngx_http_cart_module);

    facts = ngx_http_cart_pricing_facts(r, ctx->data);

    rc = facts ? facts[0].catalog : NGX_ERROR;
    product = facts ? &facts[0].product : NULL;

    if (rc == NGX_DECLINED) {
        rc = ngx_http_cart_add_fail(r, 422, "unknown_sku",
                                    "the catalog has no such SKU");

    } else if (rc != NGX_OK) {
        rc = ngx_http_cart_add_fail(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                    "catalog_unavailable",
                                    "the price could not be verified, "
                                    "retry later");

    } else {
        ctx->price = product->price;

        /* the catalog knows who sells the SKU; the client's guess yields */
        if (product->seller.len) {
            ctx->seller = product->seller;
        }

        rc = ngx_http_cart_add_run(r);
    }

    if (rc != NGX_DONE) {
        ngx_http_finalize_request(r, rc);
    }
}


static ngx_int_t
ngx_http_cart_add_run(ngx_http_request_t *r)
{
    u_char                     *p;
    ngx_str_t                   args[6];
    ngx_http_cart_ctx_t        *ctx;
    ngx_http_cart_main_conf_t  *cmcf;

    ctx = ngx_http_get_module_ctx(r, ngx_http_cart_module);
    cmcf = ngx_http_get_module_main_conf(r, ngx_http_cart_module);

    p = ngx_pnalloc(r->pool, 2 * NGX_INT64_LEN);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    args[0] = ctx->path_sku;

    args[1].data = p;
    args[1].len = ngx_sprintf(p, "%i", ctx->quantity) - p;
    p += args[1].len;

    args[2].data = p;
    args[2].len = ctx->price < 0 ? 0 : ngx_sprintf(p, "%L", ctx->price) - p;
    p += args[2].len;

    args[3] = ctx->seller;
    args[4] = cmcf->max_lines_arg;
    args[5] = cmcf->max_quantity_arg;

    if (ngx_http_cart_script_write(r, NGX_HTTP_CART_SCRIPT_ADD, args, 6,
                                   ngx_http_cart_write_done)
        != NGX_OK)
    {
        return ngx_http_cart_add_fail(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                      "store_unavailable",
                                      "the cart store is unavailable, "
                                      "retry later");
    }

    return NGX_DONE;
}


/* an add that reserved its Idempotency-Key gives the key back on failure */

static ngx_int_t
ngx_http_cart_add_fail(ngx_http_request_t *r, ngx_uint_t status,
    const char *code, const char *message)
{
    ngx_http_cart_stored_release(r);

    return ngx_http_cart_error(r, status, code, message);
}


/* PUT /items/{sku_id} {"quantity"}: 0 removes the line */

ngx_int_t
ngx_http_cart_items_update(ngx_http_request_t *r)
{
    const ngx_http_cart_answer_t  *answer;

    answer = ngx_http_cart_quantity(r, 0);
    if (answer) {
        return ngx_http_cart_fail(r, answer);
    }

    return ngx_http_cart_set_run(r);
}


/* DELETE /items/{sku_id} */

ngx_int_t
ngx_http_cart_items_remove(ngx_http_request_t *r)
{
    ngx_http_cart_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_cart_module);
    ctx->quantity = 0;

    return ngx_http_cart_set_run(r);
}


static ngx_int_t
ngx_http_cart_set_run(ngx_http_request_t *r)
{
    u_char               *p;
    ngx_str_t             args[2];
    ngx_http_cart_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_cart_module);

    if (ngx_http_cart_fingerprint(r, NULL) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_pnalloc(r->pool, NGX_INT_T_LEN);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    args[0] = ctx->path_sku;
    args[1].data = p;
    args[1].len = ngx_sprintf(p, "%i", ctx->quantity) - p;

    if (ngx_http_cart_script_write(r, NGX_HTTP_CART_SCRIPT_SET, args, 2,
                                   ngx_http_cart_write_done)
        != NGX_OK)
    {
        return ngx_http_cart_store_error(r, NULL, NGX_ERROR);
    }

    return NGX_DONE;
}


/*
 * "quantity" of the body: an integer in [min, cart_max_quantity].
 * Not an integer -> 400; out of range (including beyond 64 bits) -> 422.
 */

static const ngx_http_cart_answer_t *
ngx_http_cart_quantity(ngx_http_request_t *r, ngx_int_t min)
{
    int64_t                     n;
    ngx_int_t                   rc;
    ngx_http_cart_ctx_t        *ctx;
    ngx_http_cart_main_conf_t  *cmcf;

    ctx = ngx_http_get_module_ctx(r, ngx_http_cart_module);
    cmcf = ngx_http_get_module_main_conf(r, ngx_http_cart_module);

    rc = ngx_http_cart_json_integer(
                        ngx_http_cart_json_field(ctx->body, "quantity"), &n);

    if (rc == NGX_DECLINED) {
        return &ngx_http_cart_quantity_invalid;
    }

    if (rc != NGX_OK || n < min || n > (int64_t) cmcf->max_quantity) {
        return min ? &ngx_http_cart_quantity_range
                   : &ngx_http_cart_quantity_range0;
    }

    ctx->quantity = (ngx_int_t) n;

    return NULL;
}


/*
 * What an Idempotency-Key is bound to: the request's meaning, not its
 * bytes, so the same add written with other spacing is still the same.
 */

static ngx_int_t
ngx_http_cart_fingerprint(ngx_http_request_t *r, ngx_str_t *seller)
{
    u_char               *p;
    size_t                len;
    ngx_http_cart_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_cart_module);

    if (ctx->idem_key.len == 0) {
        return NGX_OK;
    }

    len = r->method_name.len + ctx->path_sku.len + NGX_INT_T_LEN + 3
          + (seller ? seller->len : 0);

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    ctx->fingerprint.data = p;

    p = ngx_sprintf(p, "%V %V %i", &r->method_name, &ctx->path_sku,
                    ctx->quantity);

    if (seller) {
        p = ngx_sprintf(p, " %V", seller);
    }

    ctx->fingerprint.len = p - ctx->fingerprint.data;

    return NGX_OK;
}


/* the answer of add.lua / set.lua (or idem.lua when it replays) */

static void
ngx_http_cart_write_done(ngx_http_request_t *r, void *data,
    redisReply *reply, ngx_int_t rc)
{
    int64_t                        version, count, qty, price;
    yajl_gen                       g;
    ngx_str_t                      answer, sku, seller;
    ngx_uint_t                     replay;
    ngx_http_cart_ctx_t           *ctx;
    ngx_http_cart_event_t          event;
    ngx_http_cart_json_gen_t      *json;
    const ngx_http_cart_answer_t  *a;

    ctx = ngx_http_get_module_ctx(r, ngx_http_cart_module);

    if (rc != NGX_OK || ngx_http_cart_reply_str(reply, 0, &answer) != NGX_OK) {
        ngx_http_cart_stored_release(r);
        ngx_http_finalize_request(r,
                              ngx_http_cart_store_write_error(r, reply, rc));
        return;
    }

    replay = ngx_http_cart_word_is(&answer, "replay");

    if (!replay && !ngx_http_cart_word_is(&answer, "ok")) {
        a = ngx_http_cart_answer_find(r, ngx_http_cart_answers, &answer);

        if (a == NULL) {
            ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                          "cart: unexpected script answer \"%V\"", &answer);
            ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
            return;
        }

        ngx_http_finalize_request(r,
            ngx_http_cart_add_fail(r, a->status, a->code, a->message));
        return;
    }

    if (ngx_http_cart_reply_int(reply, 1, &version) != NGX_OK
        || ngx_http_cart_reply_int(reply, 2, &count) != NGX_OK
        || ngx_http_cart_reply_str(reply, 3, &sku) != NGX_OK
        || ngx_http_cart_reply_int(reply, 4, &qty) != NGX_OK
        || ngx_http_cart_reply_str(reply, 6, &seller) != NGX_OK)
    {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "cart: malformed script reply");
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    if (ngx_http_cart_reply_int(reply, 5, &price) != NGX_OK) {
        price = -1;
    }

    if (!replay) {
        ngx_memzero(&event, sizeof(ngx_http_cart_event_t));
        event.type = ctx->action == ngx_http_cart_items_add ? "item_added"
                     : qty ? "quantity_updated" : "item_removed";
        event.sku = sku;
        event.quantity = qty;
        event.price = price;
        event.seller = seller;
        event.version = version;

        ngx_http_cart_event(r, &event);
    }

    if (replay && ngx_http_cart_replayed(r) != NGX_OK) {
        ngx_http_finalize_request(r, NGX_ERROR);
        return;
    }

    json = ngx_http_cart_json_gen(r->pool);
    if (json == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    g = json->g;

    yajl_gen_map_open(g);
    ngx_http_cart_json_cart_id(g, ctx);
    ngx_http_cart_json_key(g, "item_count");
    ngx_http_cart_json_int(g, count);
    ngx_http_cart_json_key(g, "item");
    yajl_gen_map_open(g);
    ngx_http_cart_json_key(g, "sku_id");
    ngx_http_cart_json_str(g, &sku);
    ngx_http_cart_json_key(g, "quantity");
    ngx_http_cart_json_int(g, qty);
    ngx_http_cart_json_key(g, "price");
    ngx_http_cart_json_price(g, price);
    ngx_http_cart_json_key(g, "seller_id");
    ngx_http_cart_json_str(g, &seller);
    yajl_gen_map_close(g);
    ngx_http_cart_json_key(g, "version");
    ngx_http_cart_json_int(g, version);
    yajl_gen_map_close(g);

    ngx_http_finalize_request(r, ngx_http_cart_send(r, NGX_HTTP_OK, json,
                                                    version));
}


/*
 * What Redis would answer for a cart that cannot exist yet: the guest
 * session was made for this very request, so its reads need no store.
 */
static redisReply  ngx_http_cart_no_lines = { .type = REDIS_REPLY_ARRAY };
static redisReply  ngx_http_cart_no_count = { .type = REDIS_REPLY_NIL };


/* a read of one of the caller's keys, or "none" for a new guest */

static ngx_int_t
ngx_http_cart_own_read(ngx_http_request_t *r, const char *cmd,
    ngx_str_t *key, ngx_http_cart_redis_handler_pt handler, redisReply *none)
{
    ngx_http_cart_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_cart_module);

    if (ctx->new_guest) {
        handler(r, NULL, none, NGX_OK);
        return NGX_DONE;
    }

    if (ngx_http_cart_redis_read(r, cmd, key, handler, NULL) != NGX_OK) {
        return ngx_http_cart_store_error(r, NULL, NGX_ERROR);
    }

    return NGX_DONE;
}


/* GET / */

ngx_int_t
ngx_http_cart_view(ngx_http_request_t *r)
{
    ngx_http_cart_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_cart_module);

    return ngx_http_cart_own_read(r, "HGETALL", &ctx->cart_key,
                                  ngx_http_cart_view_reply,
                                  &ngx_http_cart_no_lines);
}


static void
ngx_http_cart_view_reply(ngx_http_request_t *r, void *data,
    redisReply *reply, ngx_int_t rc)
{
    ngx_http_cart_ctx_t       *ctx;
    ngx_http_cart_snapshot_t  *snap;

    if (rc != NGX_OK || reply->type != REDIS_REPLY_ARRAY) {
        ngx_http_finalize_request(r,
                                  ngx_http_cart_store_error(r, reply, rc));
        return;
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_cart_module);

    snap = ngx_http_cart_snapshot(r, reply, 0);
    if (snap == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    ctx->data = snap;

    if (ngx_http_cart_pricing_fetch(r, snap, 0, ngx_http_cart_view_priced)
        != NGX_OK)
    {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
    }
}


static void
ngx_http_cart_view_priced(ngx_http_request_t *r)
{
    yajl_gen                   g;
    ngx_http_cart_ctx_t       *ctx;
    ngx_http_cart_priced_t    *priced;
    ngx_http_cart_snapshot_t  *snap;
    ngx_http_cart_json_gen_t  *json;

    ctx = ngx_http_get_module_ctx(r, ngx_http_cart_module);
    snap = ctx->data;

    json = ngx_http_cart_json_gen(r->pool);
    priced = ngx_http_cart_price(r, snap, &snap->coupon);

    if (json == NULL || priced == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    g = json->g;

    ngx_http_cart_render_view(r, g, snap, priced, snap->version);

    ngx_http_finalize_request(r, ngx_http_cart_send(r, NGX_HTTP_OK, json,
                                                    snap->version));
}


/* GET /count: the counter key alone */

ngx_int_t
ngx_http_cart_count(ngx_http_request_t *r)
{
    ngx_http_cart_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_cart_module);

    return ngx_http_cart_own_read(r, "GET", &ctx->count_key,
                                  ngx_http_cart_count_reply,
                                  &ngx_http_cart_no_count);
}


static void
ngx_http_cart_count_reply(ngx_http_request_t *r, void *data,
    redisReply *reply, ngx_int_t rc)
{
    off_t                      count;
    yajl_gen                   g;
    ngx_http_cart_json_gen_t  *json;

    if (rc != NGX_OK
        || (reply->type != REDIS_REPLY_STRING
            && reply->type != REDIS_REPLY_NIL))
    {
        ngx_http_finalize_request(r,
                                  ngx_http_cart_store_error(r, reply, rc));
        return;
    }

    count = 0;

    if (reply->type == REDIS_REPLY_STRING) {
        count = ngx_atoof((u_char *) reply->str, reply->len);
        if (count == NGX_ERROR) {
            count = 0;
        }
    }

    json = ngx_http_cart_json_gen(r->pool);
    if (json == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    g = json->g;

    yajl_gen_map_open(g);
    ngx_http_cart_json_key(g, "item_count");
    ngx_http_cart_json_int(g, count);
    yajl_gen_map_close(g);

    ngx_http_finalize_request(r, ngx_http_cart_send(r, NGX_HTTP_OK, json, -1));
}
