/*
 * Checkout, in steps that each keep "a failed request changes nothing":
 *
 *  1. snapshot.lua: Idempotency-Key (a replay answers at once), If-Match,
 *     the cart as it is; the key is reserved while the checkout runs.
 *  2. one wave: catalog, inventory, shipping, fresh promotions.
 *  3. the checks, in this order: an upstream that failed (503), lines not
 *     sold or not in stock (409 out_of_stock), lines not shipped to the
 *     address (409 not_shippable), prices that rose unless accepted (409
 *     price_increased), the coupon (422).
 *  4. with cart_inventory_reserve, a hold per line at the inventory
 *     service, all at once: POST {"sku_id","quantity","hold_id"}, the hold
 *     id derived from the checkout id, so a retry asks for the same holds.
 *     A 409 is 409 out_of_stock naming the lines refused, anything else
 *     503 inventory_unavailable.
 *  5. redeem.lua on each limited promotion's own slot, all at once,
 *     counted once per checkout id (derived from the Idempotency-Key, so a
 *     retry never counts twice). An exhausted automatic promotion is
 *     dropped and the cart priced again; an exhausted coupon is 422.
 *  6. checkout.lua: the cart must still be at the version priced (else
 *     409 cart_changed); its lines and coupon go, the summary is stored
 *     for replays. Any failure after 5 gives the redemptions back.
 *
 * A checkout that fails once it asked for holds releases them (a DELETE
 * per line with the same hold id, waited for, best effort) before it
 * answers and gives the Idempotency-Key back; a successful one leaves
 * them to the order. When the order's write has an unknown outcome (Redis
 * timed out or broke), the holds stay, as the redemptions do: the order
 * may exist, and a retry with the key asks for the same holds again.
 */

#include "ngx_http_cart_checkout.h"
#include "ngx_http_cart_events.h"
#include "ngx_http_cart_pricing.h"
#include "ngx_http_cart_reply.h"
#include "ngx_http_cart_scripts.h"
#include "ngx_http_cart_stored.h"
#include "ngx_http_cart_subrequest.h"
#include <ngx_sha1.h>


typedef struct {
    ngx_http_cart_promo_t         *promo;
    ngx_str_t                      keys[2];
    ngx_str_t                      word;      /* redeem.lua's answer */
    ngx_uint_t                     coupon;
    ngx_uint_t                     taken;     /* counted: give back if failed */
} ngx_http_cart_redemption_t;


typedef struct {
    ngx_http_cart_snapshot_t      *snap;
    ngx_http_cart_priced_t        *priced;
    ngx_uint_t                     accept;
    ngx_str_t                      id;
    ngx_http_cart_redemption_t    *redemptions;
    ngx_uint_t                     nredemptions;

    /* cart_inventory_reserve: one hold per priced line, in their order */
    ngx_http_cart_fetch_t         *holds;
    int64_t                       *short_of;  /* a refusal's "available",
                                                 -1 when it did not say */
    ngx_uint_t                     nholds;
    ngx_http_cart_fetch_t         *releases;
    ngx_uint_t                     held;      /* holds may exist */
    const ngx_http_cart_answer_t  *failure;   /* answered once released */
} ngx_http_cart_checkout_t;


static const ngx_http_cart_answer_t  ngx_http_cart_checkout_invalid =
    { NGX_HTTP_BAD_REQUEST, "invalid_field",
      "accept_price_increase must be true or false" };
static const ngx_http_cart_answer_t  ngx_http_cart_checkout_empty =
    { 422, "cart_empty", "the cart is empty" };
static const ngx_http_cart_answer_t  ngx_http_cart_checkout_address =
    { 422, "shipping_address_required",
      "set a shipping address before checking out" };
static const ngx_http_cart_answer_t  ngx_http_cart_checkout_store =
    { NGX_HTTP_SERVICE_UNAVAILABLE, "store_unavailable",
      "the cart store is unavailable, retry later" };
static const ngx_http_cart_answer_t  ngx_http_cart_checkout_timeout =
    { NGX_HTTP_SERVICE_UNAVAILABLE, "store_timeout",
      "the cart store is unavailable, retry later" };
static const ngx_http_cart_answer_t  ngx_http_cart_checkout_internal =
    { NGX_HTTP_INTERNAL_SERVER_ERROR, "internal_error", "internal error" };
static const ngx_http_cart_answer_t  ngx_http_cart_checkout_catalog =
    { NGX_HTTP_SERVICE_UNAVAILABLE, "catalog_unavailable",
      "prices could not be verified, retry later" };
static const ngx_http_cart_answer_t  ngx_http_cart_checkout_inventory =
    { NGX_HTTP_SERVICE_UNAVAILABLE, "inventory_unavailable",
      "stock could not be verified, retry later" };
static const ngx_http_cart_answer_t  ngx_http_cart_checkout_shipping =
    { NGX_HTTP_SERVICE_UNAVAILABLE, "shipping_unavailable",
      "shipping could not be estimated, retry later" };

/* the refusals that name the lines standing in the way */
static const ngx_http_cart_answer_t  ngx_http_cart_checkout_stock =
    { NGX_HTTP_CONFLICT, "out_of_stock",
      "some items are not available in the quantity asked for" };
static const ngx_http_cart_answer_t  ngx_http_cart_checkout_unshippable =
    { NGX_HTTP_CONFLICT, "not_shippable",
      "some items are not shipped to this address" };
static const ngx_http_cart_answer_t  ngx_http_cart_checkout_price =
    { NGX_HTTP_CONFLICT, "price_increased",
      "prices went up since the items were added; check out with "
      "accept_price_increase to pay them" };
/* the inventory service refused holds: today's stock refusal, its lines
 * from the holds' answers */
static const ngx_http_cart_answer_t  ngx_http_cart_checkout_not_held =
    { NGX_HTTP_CONFLICT, "out_of_stock",
      "some items are not available in the quantity asked for" };


static ngx_int_t ngx_http_cart_checkout_id(ngx_http_request_t *r,
    ngx_http_cart_checkout_t *st);
static void ngx_http_cart_checkout_snapshot(ngx_http_request_t *r,
    ngx_http_cart_snapshot_t *snap);
static void ngx_http_cart_checkout_priced(ngx_http_request_t *r);
static const ngx_http_cart_answer_t *ngx_http_cart_checkout_check(
    ngx_http_request_t *r, ngx_http_cart_checkout_t *st);
static ngx_int_t ngx_http_cart_checkout_refuse(ngx_http_request_t *r,
    const ngx_http_cart_answer_t *answer);
static ngx_uint_t ngx_http_cart_checkout_blocks(ngx_http_cart_checkout_t *st,
    const ngx_http_cart_answer_t *answer, ngx_uint_t i);
static ngx_int_t ngx_http_cart_checkout_hold(ngx_http_request_t *r,
    ngx_http_cart_checkout_t *st);
static void ngx_http_cart_checkout_held(ngx_http_request_t *r);
static int64_t ngx_http_cart_checkout_available(ngx_http_request_t *r,
    ngx_http_cart_fetch_t *h);
static ngx_int_t ngx_http_cart_checkout_fail(ngx_http_request_t *r,
    ngx_http_cart_checkout_t *st, const ngx_http_cart_answer_t *answer);
static void ngx_http_cart_checkout_released(ngx_http_request_t *r);
static ngx_int_t ngx_http_cart_checkout_redeem(ngx_http_request_t *r,
    ngx_http_cart_checkout_t *st);
static void ngx_http_cart_checkout_counted(ngx_http_request_t *r, void *data,
    redisReply *reply, ngx_int_t rc);
static void ngx_http_cart_checkout_redeemed(ngx_http_request_t *r);
static void ngx_http_cart_checkout_give_back(ngx_http_request_t *r,
    ngx_http_cart_checkout_t *st);
static ngx_int_t ngx_http_cart_checkout_commit(ngx_http_request_t *r);
static void ngx_http_cart_checkout_done(ngx_http_request_t *r, void *data,
    redisReply *reply, ngx_int_t rc);
static void ngx_http_cart_checkout_render(ngx_http_request_t *r, yajl_gen g,
    ngx_http_cart_checkout_t *st);
static void ngx_http_cart_checkout_group(yajl_gen g,
    ngx_http_cart_priced_t *priced, ngx_uint_t i);
static void ngx_http_cart_checkout_ignore(ngx_http_request_t *r, void *data,
    redisReply *reply, ngx_int_t rc);


/* POST /checkout {"accept_price_increase"?}, the body may be left out */

ngx_int_t
ngx_http_cart_checkout(ngx_http_request_t *r)
{
    u_char                    *p;
    yajl_val                   v;
    ngx_http_cart_ctx_t       *ctx;
    ngx_http_cart_checkout_t  *st;

    ctx = ngx_http_get_module_ctx(r, ngx_http_cart_module);

    st = ngx_pcalloc(r->pool, sizeof(ngx_http_cart_checkout_t));
    if (st == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->data = st;

    v = ngx_http_cart_json_field(ctx->body, "accept_price_increase");

    if (v && !YAJL_IS_NULL(v)) {
        if (!YAJL_IS_TRUE(v) && !YAJL_IS_FALSE(v)) {
            return ngx_http_cart_fail(r, &ngx_http_cart_checkout_invalid);
        }

        st->accept = YAJL_IS_TRUE(v);
    }

    if (ngx_http_cart_checkout_id(r, st) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ctx->idem_key.len) {
        p = ngx_pnalloc(r->pool, sizeof("POST /checkout accept=0") - 1);
        if (p == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ctx->fingerprint.data = p;
        ctx->fingerprint.len = ngx_sprintf(p, "POST /checkout accept=%ui",
                                           st->accept)
                               - p;
    }

    return ngx_http_cart_stored_start(r, ngx_http_cart_checkout_snapshot);
}


/*
 * The checkout id names the order and counts promotion redemptions once:
 * derived from the owner's Idempotency-Key, so every retry of one checkout
 * has the same id; random without a key.
 */

static ngx_int_t
ngx_http_cart_checkout_id(ngx_http_request_t *r, ngx_http_cart_checkout_t *st)
{
    u_char               digest[20], *p;
    ngx_uint_t           i;
    ngx_sha1_t           sha1;
    ngx_http_cart_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_cart_module);

    p = ngx_pnalloc(r->pool, 32);
    if (p == NULL) {
        return NGX_ERROR;
    }

    st->id.data = p;
    st->id.len = 32;

    if (ctx->idem_key.len) {
        ngx_sha1_init(&sha1);
        ngx_sha1_update(&sha1, ctx->idem_key.data, ctx->idem_key.len);
        ngx_sha1_final(digest, &sha1);
        ngx_hex_dump(p, digest, 16);
        return NGX_OK;
    }

    for (i = 0; i < 4; i++) {
        p = ngx_sprintf(p, "%08xD", (uint32_t) ngx_random());
    }

    return NGX_OK;
}


static void
ngx_http_cart_checkout_snapshot(ngx_http_request_t *r,
    ngx_http_cart_snapshot_t *snap)
{
    ngx_http_cart_ctx_t       *ctx;
    ngx_http_cart_loc_conf_t  *lcf;
    ngx_http_cart_checkout_t  *st;

    ctx = ngx_http_get_module_ctx(r, ngx_http_cart_module);
    lcf = ngx_http_get_module_loc_conf(r, ngx_http_cart_module);
    st = ctx->data;
    st->snap = snap;

    if (st->snap->nlines == 0) {
        ngx_http_finalize_request(r,
            ngx_http_cart_stored_fail(r, &ngx_http_cart_checkout_empty));
        return;
    }

    if (lcf->shipping && st->snap->country.len == 0) {
        ngx_http_finalize_request(r,
            ngx_http_cart_stored_fail(r, &ngx_http_cart_checkout_address));
        return;
    }

    /* exact: prices, stock and shipping as the upstreams say now */

    if (ngx_http_cart_pricing_fetch(r, st->snap,
                                    NGX_HTTP_CART_PRICE_FRESH
                                    |NGX_HTTP_CART_PRICE_EXACT,
                                    ngx_http_cart_checkout_priced)
        != NGX_OK)
    {
        ngx_http_finalize_request(r,
            ngx_http_cart_stored_fail(r, &ngx_http_cart_checkout_internal));
    }
}


static void
ngx_http_cart_checkout_priced(ngx_http_request_t *r)
{
    ngx_int_t                      rc;
    const ngx_http_cart_answer_t  *answer;
    ngx_http_cart_ctx_t           *ctx;
    ngx_http_cart_checkout_t      *st;
    ngx_http_cart_loc_conf_t      *lcf;

    ctx = ngx_http_get_module_ctx(r, ngx_http_cart_module);
    st = ctx->data;

    st->priced = ngx_http_cart_price(r, st->snap, &st->snap->coupon);

    if (st->priced == NULL) {
        ngx_http_finalize_request(r,
            ngx_http_cart_stored_fail(r, &ngx_http_cart_checkout_internal));
        return;
    }

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_cart_module);

    answer = ngx_http_cart_checkout_check(r, st);

    rc = answer ? ngx_http_cart_checkout_refuse(r, answer)
         : lcf->reserve ? ngx_http_cart_checkout_hold(r, st)
         : ngx_http_cart_checkout_redeem(r, st);

    if (rc != NGX_DONE) {
        ngx_http_finalize_request(r, rc);
    }
}


/* NULL when the cart can be checked out as priced, else why not */

static const ngx_http_cart_answer_t *
ngx_http_cart_checkout_check(ngx_http_request_t *r,
    ngx_http_cart_checkout_t *st)
{
    ngx_str_t                     word;
    ngx_uint_t                    i, stock, ship, price;
    ngx_http_cart_priced_t       *priced;
    ngx_http_cart_priced_line_t  *pl;

    priced = st->priced;

    if (st->snap->promos.rc != NGX_OK) {
        return st->snap->promos.rc == NGX_AGAIN
               ? &ngx_http_cart_checkout_timeout
               : &ngx_http_cart_checkout_store;
    }

    stock = 0;
    ship = 0;
    price = 0;

    for (i = 0; i < priced->nlines; i++) {
        pl = &priced->lines[i];

        if (pl->catalog == NGX_ERROR
            || (pl->catalog != NGX_DECLINED && pl->unit < 0))
        {
            return &ngx_http_cart_checkout_catalog;
        }

        if (pl->stock == NGX_ERROR) {
            return &ngx_http_cart_checkout_inventory;
        }

        if (pl->ship == NGX_ERROR) {
            return &ngx_http_cart_checkout_shipping;
        }

        stock += ngx_http_cart_checkout_blocks(st,
                                         &ngx_http_cart_checkout_stock, i);
        ship += ngx_http_cart_checkout_blocks(st,
                                   &ngx_http_cart_checkout_unshippable, i);
        price += ngx_http_cart_checkout_blocks(st,
                                         &ngx_http_cart_checkout_price, i);
    }

    if (stock) {
        return &ngx_http_cart_checkout_stock;
    }

    if (ship) {
        return &ngx_http_cart_checkout_unshippable;
    }

    if (price && !st->accept) {
        return &ngx_http_cart_checkout_price;
    }

    if (priced->coupon_error) {
        word.data = (u_char *) priced->coupon_error;
        word.len = ngx_strlen(priced->coupon_error);

        return ngx_http_cart_stored_error(r, &word);
    }

    return NULL;
}


/* whether priced line i is one of those the refusal "answer" names */

static ngx_uint_t
ngx_http_cart_checkout_blocks(ngx_http_cart_checkout_t *st,
    const ngx_http_cart_answer_t *answer, ngx_uint_t i)
{
    ngx_http_cart_priced_line_t  *pl;

    pl = &st->priced->lines[i];

    if (answer == &ngx_http_cart_checkout_not_held) {
        return i < st->nholds && st->holds[i].status == NGX_HTTP_CONFLICT;
    }

    if (answer == &ngx_http_cart_checkout_stock) {
        return pl->catalog == NGX_DECLINED
               || (pl->stock == NGX_OK && pl->available < pl->line->qty);
    }

    if (answer == &ngx_http_cart_checkout_unshippable) {
        return pl->catalog != NGX_DECLINED && pl->ship == NGX_DECLINED;
    }

    if (answer == &ngx_http_cart_checkout_price) {
        return pl->catalog == NGX_OK && pl->line->price >= 0
               && pl->product.price > pl->line->price;
    }

    return 0;
}


/*
 * The refusal, with the Idempotency-Key given back; the 409s name their
 * lines: {"error":{"code","message","lines":[...]}}
 */

static ngx_int_t
ngx_http_cart_checkout_refuse(ngx_http_request_t *r,
    const ngx_http_cart_answer_t *answer)
{
    int64_t                       available;
    yajl_gen                      g;
    ngx_uint_t                    i;
    const char                   *reason;
    ngx_http_cart_ctx_t          *ctx;
    ngx_http_cart_priced_t       *priced;
    ngx_http_cart_checkout_t     *st;
    ngx_http_cart_json_gen_t     *json;
    ngx_http_cart_priced_line_t  *pl;

    if (answer != &ngx_http_cart_checkout_stock
        && answer != &ngx_http_cart_checkout_not_held
        && answer != &ngx_http_cart_checkout_unshippable
        && answer != &ngx_http_cart_checkout_price)
    {
        return ngx_http_cart_stored_fail(r, answer);
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_cart_module);
    st = ctx->data;
    priced = st->priced;

    ngx_http_cart_stored_release(r);

    json = ngx_http_cart_json_gen(r->pool);
    if (json == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    g = json->g;

    yajl_gen_map_open(g);
    ngx_http_cart_json_key(g, "error");
    yajl_gen_map_open(g);
    ngx_http_cart_json_key(g, "code");
    yajl_gen_string(g, (const unsigned char *) answer->code,
                    ngx_strlen(answer->code));
    ngx_http_cart_json_key(g, "message");
    yajl_gen_string(g, (const unsigned char *) answer->message,
                    ngx_strlen(answer->message));

    ngx_http_cart_json_key(g, "lines");
    yajl_gen_array_open(g);

    for (i = 0; i < priced->nlines; i++) {
        pl = &priced->lines[i];

        if (!ngx_http_cart_checkout_blocks(st, answer, i)) {
            continue;
        }

        yajl_gen_map_open(g);
        ngx_http_cart_json_key(g, "sku_id");
        ngx_http_cart_json_str(g, &pl->line->sku);

        if (answer == &ngx_http_cart_checkout_stock) {
            reason = (pl->catalog == NGX_DECLINED) ? "unavailable"
                     : pl->available ? "insufficient_stock" : "out_of_stock";

            ngx_http_cart_json_key(g, "reason");
            yajl_gen_string(g, (const unsigned char *) reason,
                            ngx_strlen(reason));
            ngx_http_cart_json_key(g, "quantity");
            ngx_http_cart_json_int(g, pl->line->qty);

            if (pl->catalog != NGX_DECLINED) {
                ngx_http_cart_json_key(g, "available");
                ngx_http_cart_json_int(g, pl->available);
            }

        } else if (answer == &ngx_http_cart_checkout_not_held) {
            available = st->short_of[i];
            reason = available == 0 ? "out_of_stock" : "insufficient_stock";

            ngx_http_cart_json_key(g, "reason");
            yajl_gen_string(g, (const unsigned char *) reason,
                            ngx_strlen(reason));
            ngx_http_cart_json_key(g, "quantity");
            ngx_http_cart_json_int(g, pl->line->qty);

            if (available >= 0) {
                ngx_http_cart_json_key(g, "available");
                ngx_http_cart_json_int(g, available);
            }

        } else if (answer == &ngx_http_cart_checkout_price) {
            ngx_http_cart_json_key(g, "price_at_add");
            ngx_http_cart_json_amount(g, pl->line->price);
            ngx_http_cart_json_key(g, "current_price");
            ngx_http_cart_json_amount(g, pl->product.price);
        }

        yajl_gen_map_close(g);
    }

    yajl_gen_array_close(g);
    yajl_gen_map_close(g);
    yajl_gen_map_close(g);

    return ngx_http_cart_send(r, answer->status, json, -1);
}


/*
 * step 4: a hold per line, all at once. The hold id is the checkout id
 * and the SKU: every retry of one checkout (one Idempotency-Key) asks for
 * the same holds, which the inventory service keeps idempotently.
 */

static ngx_int_t
ngx_http_cart_checkout_hold(ngx_http_request_t *r,
    ngx_http_cart_checkout_t *st)
{
    u_char                       *p;
    size_t                        esc;
    ngx_uint_t                    i;
    ngx_http_cart_fetch_t        *h;
    ngx_http_cart_loc_conf_t     *lcf;
    ngx_http_cart_priced_line_t  *pl;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_cart_module);

    st->nholds = st->priced->nlines;
    st->holds = ngx_pcalloc(r->pool,
                            st->nholds * sizeof(ngx_http_cart_fetch_t));
    st->short_of = ngx_palloc(r->pool, st->nholds * sizeof(int64_t));
    if (st->holds == NULL || st->short_of == NULL) {
        return ngx_http_cart_stored_fail(r, &ngx_http_cart_checkout_internal);
    }

    for (i = 0; i < st->nholds; i++) {
        pl = &st->priced->lines[i];
        h = &st->holds[i];

        h->sku = pl->line->sku;
        st->short_of[i] = -1;

        /* the SKU as a JSON string: escaped, whatever the hash holds */
        esc = ngx_escape_json(NULL, h->sku.data, h->sku.len);

        p = ngx_pnalloc(r->pool, 3 * (st->id.len + 1 + h->sku.len + esc)
                                 + NGX_INT64_LEN
                                 + sizeof("{\"sku_id\":\"\",\"quantity\":,"
                                          "\"hold_id\":\"\"}"));
        if (p == NULL) {
            return ngx_http_cart_stored_fail(r,
                                           &ngx_http_cart_checkout_internal);
        }

        h->hold_id.data = p;
        p = ngx_sprintf(p, "%V-%V", &st->id, &h->sku);
        h->hold_id.len = p - h->hold_id.data;

        h->payload.data = p;
        p = ngx_cpymem(p, "{\"sku_id\":\"", sizeof("{\"sku_id\":\"") - 1);
        p = (u_char *) ngx_escape_json(p, h->sku.data, h->sku.len);
        p = ngx_sprintf(p, "\",\"quantity\":%L,\"hold_id\":\"",
                        pl->line->qty);
        p = (u_char *) ngx_escape_json(p, h->hold_id.data, h->hold_id.len);
        *p++ = '"';
        *p++ = '}';
        h->payload.len = p - h->payload.data;
    }

    /* from here on, a failure releases what may be held */
    st->held = 1;

    if (ngx_http_cart_send_start(r, lcf->reserve, NGX_HTTP_POST, st->holds,
                                 st->nholds)
        != NGX_OK)
    {
        /* those started are waited for; the others count as failed */
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "cart: the holds of checkout %V could not all be "
                      "asked for", &st->id);
    }

    ngx_http_cart_fetch_wait(r, ngx_http_cart_checkout_held);

    return NGX_DONE;
}


/* 200 or 201: held; 409: not enough stock; anything else: failed */

static void
ngx_http_cart_checkout_held(ngx_http_request_t *r)
{
    ngx_int_t                  rc;
    ngx_uint_t                 i, refused, failed;
    ngx_http_cart_ctx_t       *ctx;
    ngx_http_cart_fetch_t     *h;
    ngx_http_cart_checkout_t  *st;

    ctx = ngx_http_get_module_ctx(r, ngx_http_cart_module);
    st = ctx->data;

    refused = 0;
    failed = 0;

    for (i = 0; i < st->nholds; i++) {
        h = &st->holds[i];

        if (h->status == NGX_HTTP_OK || h->status == NGX_HTTP_CREATED) {
            continue;
        }

        if (h->status == NGX_HTTP_CONFLICT) {
            st->short_of[i] = ngx_http_cart_checkout_available(r, h);
            refused++;
            continue;
        }

        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "cart: hold \"%V\" of \"%V\" failed: the inventory "
                      "answered %i", &h->hold_id, &h->sku, h->status);
        failed++;
    }

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "cart holds of checkout %V: %ui refused, %ui failed",
                   &st->id, refused, failed);

    if (failed || refused) {
        rc = ngx_http_cart_checkout_fail(r, st,
                                         failed
                                         ? &ngx_http_cart_checkout_inventory
                                         : &ngx_http_cart_checkout_not_held);
    } else {
        rc = ngx_http_cart_checkout_redeem(r, st);
    }

    if (rc != NGX_DONE) {
        ngx_http_finalize_request(r, rc);
    }
}


/* what a 409 says is left: {"available": N}, or -1 */

static int64_t
ngx_http_cart_checkout_available(ngx_http_request_t *r,
    ngx_http_cart_fetch_t *h)
{
    int64_t   n;
    yajl_val  doc;

    if (h->body.len == 0) {
        return -1;
    }

    doc = ngx_http_cart_json_parse(r->pool, h->body.data, h->body.len);

    if (!YAJL_IS_OBJECT(doc)
        || ngx_http_cart_json_integer(ngx_http_cart_json_field(doc,
                                                               "available"),
                                      &n)
           != NGX_OK)
    {
        return -1;
    }

    return n < 0 ? 0 : n;
}


/*
 * A checkout that fails: holds that may exist are released first (a
 * DELETE per line, same hold id and body, waited for, best effort), and
 * only then is the refusal answered and the Idempotency-Key given back,
 * so a retry under the key never races the releases. Lines refused or
 * never held are released too: a release of a hold the service does not
 * have changes nothing. NGX_DONE, or the rc to finalize with.
 */

static ngx_int_t
ngx_http_cart_checkout_fail(ngx_http_request_t *r,
    ngx_http_cart_checkout_t *st, const ngx_http_cart_answer_t *answer)
{
    ngx_uint_t                 i;
    ngx_http_cart_loc_conf_t  *lcf;

    if (!st->held) {
        return ngx_http_cart_checkout_refuse(r, answer);
    }

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_cart_module);

    st->held = 0;
    st->failure = answer;

    /* their own copies: the holds' answers name the lines refused */
    st->releases = ngx_palloc(r->pool,
                              st->nholds * sizeof(ngx_http_cart_fetch_t));
    if (st->releases == NULL) {
        return ngx_http_cart_checkout_refuse(r, answer);
    }

    for (i = 0; i < st->nholds; i++) {
        st->releases[i] = st->holds[i];
    }

    if (ngx_http_cart_send_start(r, lcf->reserve, NGX_HTTP_DELETE,
                                 st->releases, st->nholds)
        != NGX_OK)
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "cart: the holds of checkout %V could not all be "
                      "released", &st->id);
    }

    ngx_http_cart_fetch_wait(r, ngx_http_cart_checkout_released);

    return NGX_DONE;
}


static void
ngx_http_cart_checkout_released(ngx_http_request_t *r)
{
    ngx_uint_t                 i;
    ngx_http_cart_ctx_t       *ctx;
    ngx_http_cart_fetch_t     *f;
    ngx_http_cart_checkout_t  *st;

    ctx = ngx_http_get_module_ctx(r, ngx_http_cart_module);
    st = ctx->data;

    for (i = 0; i < st->nholds; i++) {
        f = &st->releases[i];

        /* 2xx: released; 404: nothing was held under the id */
        if ((f->status >= 200 && f->status < 300)
            || f->status == NGX_HTTP_NOT_FOUND)
        {
            continue;
        }

        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "cart: hold \"%V\" of \"%V\" not released: the "
                      "inventory answered %i; it stays held until the "
                      "service lets it expire", &f->hold_id, &f->sku,
                      f->status);
    }

    ngx_http_finalize_request(r,
                        ngx_http_cart_checkout_refuse(r, st->failure));
}


/* step 5: every applied promotion with a limit, on its own slot, at once */

static ngx_int_t
ngx_http_cart_checkout_redeem(ngx_http_request_t *r,
    ngx_http_cart_checkout_t *st)
{
    u_char                      *p;
    ngx_str_t                   *args;
    ngx_uint_t                   i;
    ngx_http_cart_ctx_t         *ctx;
    ngx_http_cart_promo_t       *promo;
    ngx_http_cart_applied_t     *a;
    ngx_http_cart_main_conf_t   *cmcf;
    ngx_http_cart_redemption_t  *red;

    ctx = ngx_http_get_module_ctx(r, ngx_http_cart_module);
    cmcf = ngx_http_get_module_main_conf(r, ngx_http_cart_module);

    st->redemptions = ngx_pcalloc(r->pool, (st->priced->napplied + 1)
                                         * sizeof(ngx_http_cart_redemption_t));
    if (st->redemptions == NULL) {
        return ngx_http_cart_checkout_fail(r, st,
                                           &ngx_http_cart_checkout_internal);
    }

    for (i = 0; i < st->priced->napplied; i++) {
        a = &st->priced->applied[i];
        promo = a->promo;

        if (promo->max_redemptions == 0 && promo->max_per_user == 0) {
            continue;
        }

        red = &st->redemptions[st->nredemptions++];
        red->promo = promo;
        red->coupon = a->coupon;

        args = ngx_palloc(r->pool, 5 * sizeof(ngx_str_t));
        p = ngx_pnalloc(r->pool, 2 * promo->id.len + st->id.len
                                 + 3 * NGX_INT64_LEN
                                 + sizeof("promo_use:{promo-}")
                                 + sizeof("promo_ck:{promo-}:"));
        if (args == NULL || p == NULL) {
            return ngx_http_cart_checkout_fail(r, st,
                                           &ngx_http_cart_checkout_internal);
        }

        red->keys[0].data = p;
        p = ngx_sprintf(p, "promo_use:{promo-%V}", &promo->id);
        red->keys[0].len = p - red->keys[0].data;

        red->keys[1].data = p;
        p = ngx_sprintf(p, "promo_ck:{promo-%V}:%V", &promo->id, &st->id);
        red->keys[1].len = p - red->keys[1].data;

        ngx_str_set(&args[0], "redeem");
        args[1] = ctx->owner;

        args[2].data = p;
        p = ngx_sprintf(p, "%L", promo->max_redemptions);
        args[2].len = p - args[2].data;

        args[3].data = p;
        p = ngx_sprintf(p, "%L", promo->max_per_user);
        args[3].len = p - args[3].data;

        args[4].data = p;
        p = ngx_sprintf(p, "%T", cmcf->idempotency_ttl);
        args[4].len = p - args[4].data;

        if (ngx_http_cart_script_run(r, NGX_HTTP_CART_SCRIPT_REDEEM,
                                     red->keys, 2, args, 5,
                                     ngx_http_cart_checkout_counted, red)
            != NGX_OK)
        {
            ngx_str_null(&red->word);
            continue;
        }

        ngx_http_cart_fetch_hold(r);
    }

    ngx_http_cart_fetch_wait(r, ngx_http_cart_checkout_redeemed);

    return NGX_DONE;
}


static void
ngx_http_cart_checkout_counted(ngx_http_request_t *r, void *data,
    redisReply *reply, ngx_int_t rc)
{
    ngx_str_t                    word;
    ngx_http_cart_redemption_t  *red = data;

    if (rc == NGX_OK && ngx_http_cart_reply_str(reply, 0, &word) == NGX_OK) {
        red->word.data = ngx_pstrdup(r->pool, &word);
        red->word.len = red->word.data ? word.len : 0;
        red->taken = (word.len == 2 && ngx_strncmp(word.data, "ok", 2) == 0);
    }

    ngx_http_cart_fetch_release(r);
}


static void
ngx_http_cart_checkout_redeemed(ngx_http_request_t *r)
{
    ngx_int_t                      rc;
    ngx_str_t                     *refused;
    ngx_uint_t                     i, failed;
    ngx_http_cart_ctx_t           *ctx;
    ngx_http_cart_snapshot_t      *snap;
    ngx_http_cart_checkout_t      *st;
    ngx_http_cart_redemption_t    *red;
    const ngx_http_cart_answer_t  *answer;

    ctx = ngx_http_get_module_ctx(r, ngx_http_cart_module);
    st = ctx->data;
    snap = st->snap;

    failed = 0;
    refused = NULL;

    snap->excluded = ngx_palloc(r->pool, (st->nredemptions + 1)
                                         * sizeof(ngx_http_cart_promo_t *));
    if (snap->excluded == NULL) {
        failed = 1;
    }

    for (i = 0; i < st->nredemptions && !failed; i++) {
        red = &st->redemptions[i];

        if (red->taken) {
            continue;
        }

        if (red->word.len == 0
            || red->word.len < sizeof("coupon_") - 1
            || ngx_strncmp(red->word.data, "coupon_", 7) != 0)
        {
            failed = 1;

        } else if (red->coupon) {
            refused = &red->word;

        } else {
            /* an automatic promotion ran out: the cart goes without it */
            snap->excluded[snap->nexcluded++] = red->promo;
        }
    }

    answer = NULL;

    if (failed || refused) {
        answer = failed ? &ngx_http_cart_checkout_store
                        : ngx_http_cart_stored_error(r, refused);

    } else if (snap->nexcluded) {
        st->priced = ngx_http_cart_price(r, snap, &snap->coupon);

        if (st->priced == NULL) {
            answer = &ngx_http_cart_checkout_internal;
        }
    }

    if (answer == NULL && ngx_http_cart_checkout_commit(r) != NGX_DONE) {
        answer = &ngx_http_cart_checkout_store;
    }

    if (answer == NULL) {
        return;
    }

    ngx_http_cart_checkout_give_back(r, st);

    rc = ngx_http_cart_checkout_fail(r, st, answer);

    if (rc != NGX_DONE) {
        ngx_http_finalize_request(r, rc);
    }
}


/* redemptions of a checkout that did not happen: fire and forget */

static void
ngx_http_cart_checkout_give_back(ngx_http_request_t *r,
    ngx_http_cart_checkout_t *st)
{
    ngx_str_t                    args[5];
    ngx_uint_t                   i;
    ngx_http_cart_ctx_t         *ctx;
    ngx_http_cart_redemption_t  *red;

    ctx = ngx_http_get_module_ctx(r, ngx_http_cart_module);

    ngx_str_set(&args[0], "release");
    args[1] = ctx->owner;
    ngx_str_set(&args[2], "0");
    ngx_str_set(&args[3], "0");
    ngx_str_set(&args[4], "0");

    for (i = 0; i < st->nredemptions; i++) {
        red = &st->redemptions[i];

        if (!red->taken) {
            continue;
        }

        red->taken = 0;

        (void) ngx_http_cart_script_run(r, NGX_HTTP_CART_SCRIPT_REDEEM,
                                        red->keys, 2, args, 5,
                                        ngx_http_cart_checkout_ignore, NULL);
    }
}


static void
ngx_http_cart_checkout_ignore(ngx_http_request_t *r, void *data,
    redisReply *reply, ngx_int_t rc)
{
}


/* step 5: the summary is rendered for the version the commit will give
 * the cart (it commits only at the version priced) and stored with it */

static ngx_int_t
ngx_http_cart_checkout_commit(ngx_http_request_t *r)
{
    u_char                    *p;
    yajl_gen                   g;
    ngx_str_t                  args[2];
    ngx_http_cart_ctx_t       *ctx;
    ngx_http_cart_checkout_t  *st;
    ngx_http_cart_json_gen_t  *json;

    ctx = ngx_http_get_module_ctx(r, ngx_http_cart_module);
    st = ctx->data;

    json = ngx_http_cart_json_gen(r->pool);
    p = ngx_pnalloc(r->pool, NGX_INT64_LEN);
    if (json == NULL || p == NULL) {
        return NGX_ERROR;
    }

    g = json->g;

    ngx_http_cart_checkout_render(r, g, st);

    if (ngx_http_cart_json_text(json, &args[1]) != NGX_OK) {
        return NGX_ERROR;
    }

    args[0].data = p;
    args[0].len = ngx_sprintf(p, "%L", st->snap->version) - p;

    if (ngx_http_cart_script_write(r, NGX_HTTP_CART_SCRIPT_CHECKOUT, args, 2,
                                   ngx_http_cart_checkout_done)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    return NGX_DONE;
}


static void
ngx_http_cart_checkout_done(ngx_http_request_t *r, void *data,
    redisReply *reply, ngx_int_t rc)
{
    int64_t                    version;
    ngx_str_t                  word;
    ngx_http_cart_ctx_t       *ctx;
    ngx_http_cart_event_t      event;
    ngx_http_cart_priced_t    *priced;
    ngx_http_cart_checkout_t  *st;

    ctx = ngx_http_get_module_ctx(r, ngx_http_cart_module);
    st = ctx->data;

    if (rc != NGX_OK) {
        /* the order may exist or not: the redemptions stay counted and
         * the holds held (a retry with the same key reuses them), the key
         * is given back unless the checkout stored its answer under it */
        ngx_http_finalize_request(r, ngx_http_cart_stored_fail(r,
                                  ngx_http_cart_store_answer(r, reply, rc, 1)));
        return;
    }

    if (ngx_http_cart_stored_word(r, reply, rc, &word, &rc) != NGX_OK) {
        ngx_http_finalize_request(r, rc);
        return;
    }

    if (word.len != 2 || ngx_strncmp(word.data, "ok", 2) != 0) {
        /* not written (cart_changed): redemptions and holds go back */
        ngx_http_cart_checkout_give_back(r, st);

        rc = ngx_http_cart_checkout_fail(r, st,
                                         ngx_http_cart_stored_error(r, &word));
        if (rc != NGX_DONE) {
            ngx_http_finalize_request(r, rc);
        }

        return;
    }

    if (ngx_http_cart_reply_int(reply, 1, &version) != NGX_OK) {
        version = -1;
    }

    priced = st->priced;

    ngx_memzero(&event, sizeof(ngx_http_cart_event_t));
    event.type = "checkout";
    event.quantity = priced->item_count;
    event.price = priced->amount - priced->discount + priced->shipping;
    event.version = version;
    event.checkout_id = st->id;

    ngx_http_cart_event(r, &event);

    ngx_http_finalize_request(r, ngx_http_cart_stored_send(r, reply,
                                                           NGX_HTTP_OK, 0));
}


/* the priced summary: one fulfillment group per seller */

static void
ngx_http_cart_checkout_render(ngx_http_request_t *r, yajl_gen g,
    ngx_http_cart_checkout_t *st)
{
    ngx_uint_t                  i;
    ngx_http_cart_ctx_t        *ctx;
    ngx_http_cart_priced_t     *priced;
    ngx_http_cart_main_conf_t  *cmcf;

    ctx = ngx_http_get_module_ctx(r, ngx_http_cart_module);
    cmcf = ngx_http_get_module_main_conf(r, ngx_http_cart_module);
    priced = st->priced;

    yajl_gen_map_open(g);
    ngx_http_cart_json_key(g, "checkout_id");
    ngx_http_cart_json_str(g, &st->id);
    ngx_http_cart_json_cart_id(g, ctx);
    ngx_http_cart_json_key(g, "currency");
    ngx_http_cart_json_str(g, &cmcf->currency);

    ngx_http_cart_json_key(g, "fulfillment_groups");
    yajl_gen_array_open(g);

    for (i = 0; i < priced->ngroups; i++) {
        ngx_http_cart_checkout_group(g, priced, i);
    }

    yajl_gen_array_close(g);

    ngx_http_cart_json_key(g, "promotions_applied");
    ngx_http_cart_json_applied(g, priced);
    ngx_http_cart_json_key(g, "shipping_address");
    ngx_http_cart_json_address(g, st->snap);

    ngx_http_cart_json_key(g, "item_count");
    ngx_http_cart_json_int(g, priced->item_count);
    ngx_http_cart_json_key(g, "subtotal");
    ngx_http_cart_json_amount(g, priced->amount);
    ngx_http_cart_json_key(g, "discount");
    ngx_http_cart_json_amount(g, -priced->discount);
    ngx_http_cart_json_key(g, "shipping_total");
    ngx_http_cart_json_amount(g, priced->shipping);
    ngx_http_cart_json_key(g, "total");
    ngx_http_cart_json_amount(g, priced->amount - priced->discount
                                 + priced->shipping);
    ngx_http_cart_json_key(g, "version");
    ngx_http_cart_json_int(g, st->snap->version + 1);
    yajl_gen_map_close(g);
}


static void
ngx_http_cart_checkout_group(yajl_gen g, ngx_http_cart_priced_t *priced,
    ngx_uint_t i)
{
    ngx_uint_t                    k;
    ngx_http_cart_group_t        *gr;
    ngx_http_cart_priced_line_t  *pl;

    gr = &priced->groups[i];

    yajl_gen_map_open(g);
    ngx_http_cart_json_key(g, "seller_id");
    ngx_http_cart_json_str(g, &gr->seller);

    ngx_http_cart_json_key(g, "items");
    yajl_gen_array_open(g);

    for (k = 0; k < priced->nlines; k++) {
        pl = &priced->lines[k];

        if (pl->group != i) {
            continue;
        }

        yajl_gen_map_open(g);
        ngx_http_cart_json_key(g, "sku_id");
        ngx_http_cart_json_str(g, &pl->line->sku);
        ngx_http_cart_json_key(g, "name");
        ngx_http_cart_json_str(g, &pl->product.name);
        ngx_http_cart_json_key(g, "quantity");
        ngx_http_cart_json_int(g, pl->line->qty);
        ngx_http_cart_json_key(g, "unit_price");
        ngx_http_cart_json_amount(g, pl->unit);
        ngx_http_cart_json_key(g, "price_at_add");
        ngx_http_cart_json_price(g, pl->line->price);
        ngx_http_cart_json_key(g, "line_total");
        ngx_http_cart_json_amount(g, pl->amount);
        ngx_http_cart_json_key(g, "discount");
        ngx_http_cart_json_amount(g, -pl->discount);
        ngx_http_cart_json_key(g, "shipping");
        ngx_http_cart_json_amount(g, pl->shipping);
        yajl_gen_map_close(g);
    }

    yajl_gen_array_close(g);

    ngx_http_cart_json_key(g, "subtotal");
    ngx_http_cart_json_amount(g, gr->amount);
    ngx_http_cart_json_key(g, "discount");
    ngx_http_cart_json_amount(g, -gr->discount);
    ngx_http_cart_json_key(g, "shipping");
    ngx_http_cart_json_amount(g, gr->shipping);
    ngx_http_cart_json_key(g, "total");
    ngx_http_cart_json_amount(g, gr->amount - gr->discount + gr->shipping);

    ngx_http_cart_json_key(g, "delivery");

    if (gr->estimated == 0) {
        yajl_gen_null(g);

    } else {
        yajl_gen_map_open(g);
        ngx_http_cart_json_key(g, "min_days");
        ngx_http_cart_json_int(g, gr->min_days);
        ngx_http_cart_json_key(g, "max_days");
        ngx_http_cart_json_int(g, gr->max_days);
        ngx_http_cart_json_key(g, "from");
        ngx_http_cart_json_date(g, priced->today, gr->min_days);
        ngx_http_cart_json_key(g, "to");
        ngx_http_cart_json_date(g, priced->today, gr->max_days);
        yajl_gen_map_close(g);
    }

    yajl_gen_map_close(g);
}
