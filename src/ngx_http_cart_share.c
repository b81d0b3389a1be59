/*
 * Share links. A token is 192 random bits (base64url, 32 characters); the
 * key share:{<token>} holds "<expires_at>|<owner>" for cart_share_ttl.
 * The token is the only secret: owners are never shown, a wrong or expired
 * token is 404 like one that never existed.
 *
 * The view is live, not a snapshot: the link is for a gift list or a
 * wishlist that its owner keeps editing, prices are the catalog's of now,
 * and nothing is stored twice. GET /shared/{token} reads the owner's cart
 * on the owner's slot; a copy then applies the lines (at current catalog
 * prices) to the caller's cart with apply.lua, strategy "sum".
 */

#include "ngx_http_cart_share.h"
#include "ngx_http_cart_events.h"
#include "ngx_http_cart_reply.h"
#include "ngx_http_cart_identity.h"
#include "ngx_http_cart_items.h"
#include "ngx_http_cart_merge.h"
#include "ngx_http_cart_pricing.h"
#include "ngx_http_cart_scripts.h"
#include "ngx_http_cart_stored.h"
#include "ngx_http_cart_subrequest.h"


#define NGX_HTTP_CART_TOKEN_BYTES  24
#define NGX_HTTP_CART_TOKEN_LEN    32


typedef struct {
    ngx_str_t                  token;
    ngx_str_t                  key;        /* share:{token} */
    ngx_str_t                  owner;
    ngx_str_t                  cart_key;
    time_t                     expires;
    ngx_http_cart_line_t      *lines;
    ngx_uint_t                 nlines;
    ngx_http_cart_snapshot_t  *snap;       /* the lines' catalog answers */
    ngx_http_cart_resume_pt    next;
    ngx_http_cart_apply_answer_t    result;
    ngx_str_t                  answer;     /* POST /share's, to be kept */
} ngx_http_cart_share_t;


static const ngx_http_cart_answer_t  ngx_http_cart_share_unknown =
    { NGX_HTTP_NOT_FOUND, "share_not_found",
      "no such share link, or it has expired" };
static const ngx_http_cart_answer_t  ngx_http_cart_share_own =
    { 422, "own_cart", "this share link is of your own cart" };
static const ngx_http_cart_answer_t  ngx_http_cart_share_catalog =
    { NGX_HTTP_SERVICE_UNAVAILABLE, "catalog_unavailable",
      "the prices could not be verified, retry later" };
static const ngx_http_cart_answer_t  ngx_http_cart_share_internal =
    { NGX_HTTP_INTERNAL_SERVER_ERROR, "internal_error", "internal error" };


static ngx_int_t ngx_http_cart_share_load(ngx_http_request_t *r,
    ngx_http_cart_resume_pt next);
static void ngx_http_cart_share_got(ngx_http_request_t *r, void *data,
    redisReply *reply, ngx_int_t rc);
static void ngx_http_cart_share_lines(ngx_http_request_t *r, void *data,
    redisReply *reply, ngx_int_t rc);
static void ngx_http_cart_share_render(ngx_http_request_t *r);
static ngx_int_t ngx_http_cart_share_insert(ngx_http_request_t *r);
static void ngx_http_cart_share_create_reserved(ngx_http_request_t *r,
    void *data, redisReply *reply, ngx_int_t rc);
static void ngx_http_cart_share_created(ngx_http_request_t *r, void *data,
    redisReply *reply, ngx_int_t rc);
static void ngx_http_cart_share_kept(ngx_http_request_t *r, void *data,
    redisReply *reply, ngx_int_t rc);
static void ngx_http_cart_share_reserved(ngx_http_request_t *r, void *data,
    redisReply *reply, ngx_int_t rc);
static void ngx_http_cart_share_priced(ngx_http_request_t *r);
static void ngx_http_cart_share_copied(ngx_http_request_t *r, void *data,
    redisReply *reply, ngx_int_t rc);
static void ngx_http_cart_share_fail(ngx_http_request_t *r,
    const ngx_http_cart_answer_t *answer);
static ngx_http_cart_share_t *ngx_http_cart_share_state(
    ngx_http_request_t *r, ngx_str_t *token);


/*
 * POST /share -> 201 {"token","url","expires_at"}
 *
 * The link lives on its token's slot, the Idempotency-Key on the owner's:
 * with a key, the key is reserved first (a replay answers the stored
 * answer), the link is made, and its answer is kept under the key last.
 */

ngx_int_t
ngx_http_cart_share_create(ngx_http_request_t *r)
{
    ngx_http_cart_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_cart_module);

    if (ctx->idem_key.len == 0) {
        return ngx_http_cart_share_insert(r);
    }

    if (ngx_http_cart_stored_reserve(r, ngx_http_cart_share_create_reserved) != NGX_OK)
    {
        return ngx_http_cart_store_error(r, NULL, NGX_ERROR);
    }

    return NGX_DONE;
}


static void
ngx_http_cart_share_create_reserved(ngx_http_request_t *r, void *data,
    redisReply *reply, ngx_int_t rc)
{
    ngx_int_t                      n;
    ngx_str_t                      word;
    ngx_http_cart_ctx_t           *ctx;
    const ngx_http_cart_answer_t  *a;

    ctx = ngx_http_get_module_ctx(r, ngx_http_cart_module);

    if (rc != NGX_OK) {
        /* at most the key was reserved: no link was made */
        ngx_http_finalize_request(r,
                                  ngx_http_cart_stored_reserve_error(r, reply,
                                                                     rc));
        return;
    }

    a = ngx_http_cart_script_answer(r, reply, rc, NULL, &word);
    if (a) {
        ngx_http_finalize_request(r, ngx_http_cart_fail(r, a));
        return;
    }

    if (ngx_http_cart_word_is(&word, "reserved")) {
        ctx->reserved = 1;

        n = ngx_http_cart_share_insert(r);
        if (n != NGX_DONE) {
            ngx_http_cart_stored_release(r);
            ngx_http_finalize_request(r, n);
        }

        return;
    }

    /* "replay" (its header is set): the first answer, as share_kept kept
     * it, without a version */

    ngx_http_finalize_request(r, ngx_http_cart_stored_send(r, reply,
                                                           NGX_HTTP_CREATED,
                                                           0));
}


static ngx_int_t
ngx_http_cart_share_insert(ngx_http_request_t *r)
{
    u_char                     *p;
    ngx_str_t                   token, value;
    const char                 *argv[7];
    size_t                      argvlen[7];
    ngx_http_cart_ctx_t        *ctx;
    ngx_http_cart_share_t      *s;
    ngx_http_cart_main_conf_t  *cmcf;

    ctx = ngx_http_get_module_ctx(r, ngx_http_cart_module);
    cmcf = ngx_http_get_module_main_conf(r, ngx_http_cart_module);

    if (ngx_http_cart_random_base64url(r->pool, NGX_HTTP_CART_TOKEN_BYTES,
                                       &token)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    s = ngx_http_cart_share_state(r, &token);
    p = ngx_pnalloc(r->pool, 2 * NGX_TIME_T_LEN + 1 + ctx->owner.len);

    if (s == NULL || p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    s->expires = ngx_time() + cmcf->share_ttl;

    value.data = p;
    value.len = ngx_sprintf(p, "%T|%V", s->expires, &ctx->owner) - p;
    p += value.len;

    argv[0] = "SET";
    argv[1] = (const char *) s->key.data;
    argv[2] = (const char *) value.data;
    argv[3] = "EX";
    argv[4] = (const char *) p;
    argv[5] = "NX";

    argvlen[0] = 3;
    argvlen[1] = s->key.len;
    argvlen[2] = value.len;
    argvlen[3] = 2;
    argvlen[4] = ngx_sprintf(p, "%T", cmcf->share_ttl) - p;
    argvlen[5] = 2;

    if (ngx_http_cart_redis_command(r, &s->key, 6, argv, argvlen,
                                    ngx_http_cart_share_created, NULL)
        != NGX_OK)
    {
        return ngx_http_cart_store_error(r, NULL, NGX_ERROR);
    }

    return NGX_DONE;
}


static void
ngx_http_cart_share_created(ngx_http_request_t *r, void *data,
    redisReply *reply, ngx_int_t rc)
{
    u_char                    *p;
    size_t                     len;
    yajl_gen                   g;
    ngx_str_t                  url, base, args[2];
    ngx_http_cart_ctx_t       *ctx;
    ngx_http_cart_share_t     *s;
    ngx_http_cart_loc_conf_t  *lcf;
    ngx_http_cart_json_gen_t  *json;

    ctx = ngx_http_get_module_ctx(r, ngx_http_cart_module);
    s = ctx->data;

    if (rc != NGX_OK || reply->type != REDIS_REPLY_STATUS) {
        /* a nil reply would be a token drawn twice: never, but not OK */
        ngx_http_cart_stored_release(r);
        ngx_http_finalize_request(r,
                              ngx_http_cart_store_write_error(r, reply, rc));
        return;
    }

    /*
     * cart_share_url and the token; without it a path only, this request's
     * with "/share" made "/shared/": never a host the client named
     */

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_cart_module);

    if (lcf->share_url) {
        if (ngx_http_complex_value(r, lcf->share_url, &base) != NGX_OK) {
            base.data = NULL;
        }

    } else {
        base = r->uri;
    }

    len = base.len + sizeof("d/") - 1 + s->token.len;

    p = base.data ? ngx_pnalloc(r->pool, len) : NULL;
    json = ngx_http_cart_json_gen(r->pool);

    if (p == NULL || json == NULL) {
        ngx_http_cart_stored_release(r);
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    g = json->g;

    url.data = p;
    url.len = ngx_sprintf(p, lcf->share_url ? "%V%V" : "%Vd/%V", &base,
                          &s->token)
              - url.data;

    yajl_gen_map_open(g);
    ngx_http_cart_json_key(g, "token");
    ngx_http_cart_json_str(g, &s->token);
    ngx_http_cart_json_key(g, "url");
    ngx_http_cart_json_str(g, &url);
    ngx_http_cart_json_key(g, "expires_at");
    ngx_http_cart_json_time(g, s->expires);
    yajl_gen_map_close(g);

    if (!ctx->reserved) {
        ngx_http_finalize_request(r, ngx_http_cart_send(r, NGX_HTTP_CREATED,
                                                        json, -1));
        return;
    }

    /* the link exists: its answer is kept under the Idempotency-Key */

    if (ngx_http_cart_json_text(json, &s->answer) != NGX_OK) {
        ngx_http_cart_stored_release(r);
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    args[0] = (ngx_str_t) ngx_string("store");
    args[1] = s->answer;

    if (ngx_http_cart_script_write(r, NGX_HTTP_CART_SCRIPT_IDEM, args, 2,
                                   ngx_http_cart_share_kept)
        != NGX_OK)
    {
        ngx_http_cart_share_kept(r, NULL, NULL, NGX_ERROR);
    }
}


/*
 * Answers the link once its answer is kept. If that failed, the link is
 * still made: it is answered all the same, and the key's reservation runs
 * out (a retry meanwhile is 409, later it makes a second link).
 */

static void
ngx_http_cart_share_kept(ngx_http_request_t *r, void *data,
    redisReply *reply, ngx_int_t rc)
{
    ngx_http_cart_ctx_t    *ctx;
    ngx_http_cart_share_t  *s;

    ctx = ngx_http_get_module_ctx(r, ngx_http_cart_module);
    s = ctx->data;

    if (rc != NGX_OK || reply->type != REDIS_REPLY_ARRAY) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "cart: the share link's answer was not kept under "
                      "its Idempotency-Key");
    }

    ngx_http_finalize_request(r, ngx_http_cart_send_body(r, NGX_HTTP_CREATED,
                                                         s->answer.data,
                                                         s->answer.len, -1));
}


/* GET /shared/{token}: no identity */

ngx_int_t
ngx_http_cart_share_view(ngx_http_request_t *r)
{
    return ngx_http_cart_share_load(r, ngx_http_cart_share_render);
}


/* POST /shared/{token}/copy */

ngx_int_t
ngx_http_cart_share_copy(ngx_http_request_t *r)
{
    ngx_http_cart_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_cart_module);

    if (ctx->idem_key.len == 0) {
        return ngx_http_cart_share_load(r, ngx_http_cart_share_priced);
    }

    /* the catalog is asked before the cart is written: a retry meanwhile
     * must see the key in flight, as with POST /items */

    if (ngx_http_cart_stored_reserve(r, ngx_http_cart_share_reserved) != NGX_OK)
    {
        return ngx_http_cart_store_error(r, NULL, NGX_ERROR);
    }

    return NGX_DONE;
}


static void
ngx_http_cart_share_reserved(ngx_http_request_t *r, void *data,
    redisReply *reply, ngx_int_t rc)
{
    ngx_int_t             n;
    ngx_str_t             word;
    ngx_http_cart_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_cart_module);

    if (rc != NGX_OK) {
        /* at most the key was reserved: nothing was copied */
        ngx_http_finalize_request(r,
                                  ngx_http_cart_stored_reserve_error(r, reply,
                                                                     rc));
        return;
    }

    if (ngx_http_cart_reply_str(reply, 0, &word) == NGX_OK
        && ngx_http_cart_word_is(&word, "reserved"))
    {
        ctx->reserved = 1;

        n = ngx_http_cart_share_load(r, ngx_http_cart_share_priced);
        if (n != NGX_DONE) {
            ngx_http_finalize_request(r, n);
        }

        return;
    }

    /* a replay of the first answer, or a conflict: as apply.lua's */
    ngx_http_cart_share_copied(r, data, reply, rc);
}


/* checks the token, reads share:{token}, then the owner's cart */

static ngx_int_t
ngx_http_cart_share_load(ngx_http_request_t *r, ngx_http_cart_resume_pt next)
{
    u_char                 *p, *last;
    ngx_http_cart_ctx_t    *ctx;
    ngx_http_cart_share_t  *s;

    ctx = ngx_http_get_module_ctx(r, ngx_http_cart_module);

    if (ctx->path_sku.len != NGX_HTTP_CART_TOKEN_LEN) {
        ngx_http_cart_share_fail(r, &ngx_http_cart_share_unknown);
        return NGX_DONE;
    }

    for (p = ctx->path_sku.data, last = p + ctx->path_sku.len; p < last; p++)
    {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')
              || (*p >= '0' && *p <= '9') || *p == '-' || *p == '_'))
        {
            ngx_http_cart_share_fail(r, &ngx_http_cart_share_unknown);
            return NGX_DONE;
        }
    }

    s = ngx_http_cart_share_state(r, &ctx->path_sku);
    if (s == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    s->next = next;

    if (ngx_http_cart_redis_read(r, "GET", &s->key, ngx_http_cart_share_got,
                                 NULL)
        != NGX_OK)
    {
        return ngx_http_cart_store_error(r, NULL, NGX_ERROR);
    }

    return NGX_DONE;
}


static void
ngx_http_cart_share_got(ngx_http_request_t *r, void *data,
    redisReply *reply, ngx_int_t rc)
{
    u_char                 *bar;
    ngx_str_t               value;
    ngx_http_cart_ctx_t    *ctx;
    ngx_http_cart_share_t  *s;

    ctx = ngx_http_get_module_ctx(r, ngx_http_cart_module);
    s = ctx->data;

    if (rc != NGX_OK
        || (reply->type != REDIS_REPLY_STRING
            && reply->type != REDIS_REPLY_NIL))
    {
        ngx_http_cart_share_fail(r, NULL);
        return;
    }

    if (reply->type == REDIS_REPLY_NIL) {
        ngx_http_cart_share_fail(r, &ngx_http_cart_share_unknown);
        return;
    }

    value.data = (u_char *) reply->str;
    value.len = reply->len;

    bar = ngx_strlchr(value.data, value.data + value.len, '|');
    if (bar == NULL) {
        ngx_http_cart_share_fail(r, &ngx_http_cart_share_unknown);
        return;
    }

    s->expires = ngx_atotm(value.data, bar - value.data);

    /* the key's TTL may outlive the link (a changed cart_share_ttl) */
    if (s->expires == NGX_ERROR || s->expires <= ngx_time()) {
        ngx_http_cart_share_fail(r, &ngx_http_cart_share_unknown);
        return;
    }
    s->owner.len = value.data + value.len - (bar + 1);
    s->owner.data = ngx_pnalloc(r->pool, s->owner.len);

    if (s->owner.data == NULL) {
        ngx_http_cart_share_fail(r, &ngx_http_cart_share_internal);
        return;
    }

    ngx_memcpy(s->owner.data, bar + 1, s->owner.len);

    if (ngx_http_cart_key(r->pool, &s->cart_key, "cart:", &s->owner, NULL)
        == NULL)
    {
        ngx_http_cart_share_fail(r, &ngx_http_cart_share_internal);
        return;
    }

    if (ngx_http_cart_redis_read(r, "HGETALL", &s->cart_key,
                                 ngx_http_cart_share_lines, NULL)
        != NGX_OK)
    {
        ngx_http_cart_share_fail(r, NULL);
    }
}


static void
ngx_http_cart_share_lines(ngx_http_request_t *r, void *data,
    redisReply *reply, ngx_int_t rc)
{
    size_t                     i;
    ngx_str_t                  field, value;
    ngx_http_cart_ctx_t       *ctx;
    ngx_http_cart_line_t      *line;
    ngx_http_cart_share_t     *s;

    ctx = ngx_http_get_module_ctx(r, ngx_http_cart_module);
    s = ctx->data;

    if (rc != NGX_OK || reply->type != REDIS_REPLY_ARRAY) {
        ngx_http_cart_share_fail(r, NULL);
        return;
    }

    s->lines = ngx_palloc(r->pool, (reply->elements / 2 + 1)
                                   * sizeof(ngx_http_cart_line_t));
    if (s->lines == NULL) {
        ngx_http_cart_share_fail(r, &ngx_http_cart_share_internal);
        return;
    }

    for (i = 0; i + 1 < reply->elements; i += 2) {
        if (ngx_http_cart_reply_str(reply, i, &field) != NGX_OK
            || ngx_http_cart_reply_str(reply, i + 1, &value) != NGX_OK
            || field.len == 0 || field.data[0] == '#')
        {
            continue;
        }

        line = &s->lines[s->nlines];

        /* the reply dies with this callback */
        line->sku.data = ngx_pstrdup(r->pool, &field);
        value.data = ngx_pstrdup(r->pool, &value);

        if (line->sku.data == NULL || value.data == NULL) {
            ngx_http_cart_share_fail(r, &ngx_http_cart_share_internal);
            return;
        }

        line->sku.len = field.len;

        if (ngx_http_cart_line_parse(&value, line) == NGX_OK) {
            s->nlines++;
        }
    }

    /* the catalog's answers, maybe cached (none without a catalog) */

    s->snap = ngx_http_cart_snapshot_lines(r, s->lines, s->nlines);

    if (s->snap == NULL
        || ngx_http_cart_pricing_fetch(r, s->snap,
                                       NGX_HTTP_CART_PRICE_CATALOG, s->next)
           != NGX_OK)
    {
        ngx_http_cart_share_fail(r, &ngx_http_cart_share_internal);
    }
}


/*
 * The shared view: what a recipient needs, nothing about the owner (no
 * cart_id, version, added_at, price_at_add). "price" is the catalog's
 * current one when it answered, else the price at add.
 */

static void
ngx_http_cart_share_render(ngx_http_request_t *r)
{
    int64_t                     count, subtotal, price;
    yajl_gen                    g;
    ngx_int_t                   found;
    ngx_uint_t                  i;
    ngx_http_cart_ctx_t        *ctx;
    ngx_http_cart_line_t       *line;
    ngx_http_cart_share_t      *s;
    ngx_http_cart_facts_t      *facts;
    ngx_http_cart_product_t    *product;
    ngx_http_cart_json_gen_t   *json;
    ngx_http_cart_main_conf_t  *cmcf;

    ctx = ngx_http_get_module_ctx(r, ngx_http_cart_module);
    cmcf = ngx_http_get_module_main_conf(r, ngx_http_cart_module);
    s = ctx->data;

    json = ngx_http_cart_json_gen(r->pool);
    facts = ngx_http_cart_pricing_facts(r, s->snap);

    if (json == NULL || facts == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    g = json->g;

    count = 0;
    subtotal = 0;

    yajl_gen_map_open(g);
    ngx_http_cart_json_key(g, "items");
    yajl_gen_array_open(g);

    for (i = 0; i < s->nlines; i++) {
        line = &s->lines[i];

        found = facts[i].catalog;
        product = &facts[i].product;

        price = found == NGX_OK ? product->price : line->price;

        count += line->qty;
        if (price >= 0 && found != NGX_DECLINED) {
            subtotal += line->qty * price;
        }

        yajl_gen_map_open(g);
        ngx_http_cart_json_key(g, "sku_id");
        ngx_http_cart_json_str(g, &line->sku);
        ngx_http_cart_json_key(g, "quantity");
        ngx_http_cart_json_int(g, line->qty);
        ngx_http_cart_json_key(g, "price");
        ngx_http_cart_json_price(g, price);
        ngx_http_cart_json_key(g, "seller_id");
        ngx_http_cart_json_str(g, &line->seller);

        if (found == NGX_OK) {
            ngx_http_cart_json_key(g, "name");
            ngx_http_cart_json_str(g, &product->name);
            ngx_http_cart_json_key(g, "image");
            ngx_http_cart_json_str(g, &product->image);

        } else if (found == NGX_DECLINED) {
            ngx_http_cart_json_key(g, "available");
            yajl_gen_bool(g, 0);

        } else if (found == NGX_ERROR) {
            ngx_http_cart_json_key(g, "price_verified");
            yajl_gen_bool(g, 0);
        }

        yajl_gen_map_close(g);
    }

    yajl_gen_array_close(g);
    ngx_http_cart_json_key(g, "item_count");
    ngx_http_cart_json_int(g, count);
    ngx_http_cart_json_key(g, "subtotal");
    ngx_http_cart_json_amount(g, subtotal);
    ngx_http_cart_json_key(g, "currency");
    ngx_http_cart_json_str(g, &cmcf->currency);
    ngx_http_cart_json_key(g, "expires_at");
    ngx_http_cart_json_time(g, s->expires);
    yajl_gen_map_close(g);

    ngx_http_finalize_request(r, ngx_http_cart_send(r, NGX_HTTP_OK, json, -1));
}


/* the shared lines, priced by the catalog now, onto the caller's cart */

static void
ngx_http_cart_share_priced(ngx_http_request_t *r)
{
    u_char                   *p;
    int64_t                   price;
    ngx_int_t                 found;
    ngx_str_t                *lines, *seller;
    ngx_uint_t                i, n;
    ngx_http_cart_ctx_t      *ctx;
    ngx_http_cart_line_t     *line;
    ngx_http_cart_share_t    *s;
    ngx_http_cart_facts_t    *facts;
    ngx_http_cart_product_t  *product;

    ctx = ngx_http_get_module_ctx(r, ngx_http_cart_module);
    s = ctx->data;

    if (s->owner.len == ctx->owner.len
        && ngx_strncmp(s->owner.data, ctx->owner.data, s->owner.len) == 0)
    {
        ngx_http_cart_share_fail(r, &ngx_http_cart_share_own);
        return;
    }

    lines = ngx_palloc(r->pool, (2 * s->nlines + 1) * sizeof(ngx_str_t));
    facts = ngx_http_cart_pricing_facts(r, s->snap);

    if (lines == NULL || facts == NULL) {
        ngx_http_cart_share_fail(r, &ngx_http_cart_share_internal);
        return;
    }

    n = 0;

    for (i = 0; i < s->nlines; i++) {
        line = &s->lines[i];
        price = line->price;
        seller = &line->seller;
        product = &facts[i].product;
        found = facts[i].catalog;

        if (found == NGX_ERROR) {
            ngx_http_cart_share_fail(r, &ngx_http_cart_share_catalog);
            return;
        }

        p = ngx_pnalloc(r->pool, 3 * NGX_INT64_LEN + line->seller.len
                                 + product->seller.len + 16);
        if (p == NULL) {
            ngx_http_cart_share_fail(r, &ngx_http_cart_share_internal);
            return;
        }

        lines[2 * n] = line->sku;
        lines[2 * n + 1].data = p;

        if (found == NGX_DECLINED) {
            /* no longer sold: reported in "adjusted", not copied */
            lines[2 * n + 1].len = ngx_sprintf(p, "!unavailable|%L",
                                               line->qty) - p;
            n++;
            continue;
        }

        if (found == NGX_OK) {
            price = product->price;
            if (product->seller.len) {
                seller = &product->seller;
            }
        }

        if (price >= 0) {
            p = ngx_sprintf(p, "%L|%L|%V|", line->qty, price, seller);

        } else {
            p = ngx_sprintf(p, "%L||%V|", line->qty, seller);
        }

        p = ngx_http_cart_line_stamp(p, ngx_time());

        lines[2 * n + 1].len = p - lines[2 * n + 1].data;
        n++;
    }

    if (ngx_http_cart_apply(r, 0, "sum", NULL, lines, n,
                            ngx_http_cart_share_copied)
        != NGX_OK)
    {
        ngx_http_cart_share_fail(r, NULL);
    }
}


static void
ngx_http_cart_share_copied(ngx_http_request_t *r, void *data,
    redisReply *reply, ngx_int_t rc)
{
    ngx_str_t                      word;
    ngx_uint_t                     i;
    ngx_http_cart_ctx_t           *ctx;
    ngx_http_cart_share_t         *s;
    ngx_http_cart_event_t          event;
    ngx_http_cart_applied_line_t  *line;
    const ngx_http_cart_answer_t  *a;

    ctx = ngx_http_get_module_ctx(r, ngx_http_cart_module);
    s = ctx->data;

    if (s == NULL) {
        /* answered by the reservation, before any share state */
        s = ngx_http_cart_share_state(r, &ctx->path_sku);
        if (s == NULL) {
            ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
            return;
        }
    }

    a = ngx_http_cart_script_answer(r, reply, rc, NULL, &word);
    if (a) {
        ngx_http_cart_share_fail(r, a);
        return;
    }

    if (ngx_http_cart_applied(r, reply, &s->result) != NGX_OK) {
        ngx_http_cart_share_fail(r, &ngx_http_cart_share_internal);
        return;
    }

    if (ngx_http_cart_word_is(&word, "ok")) {
        line = s->result.lines->elts;

        for (i = 0; i < s->result.lines->nelts; i++) {
            ngx_memzero(&event, sizeof(ngx_http_cart_event_t));
            event.type = "item_added";
            event.sku = line[i].sku;
            event.quantity = line[i].qty;
            event.price = line[i].price;
            event.seller = line[i].seller;
            event.version = s->result.version;

            ngx_http_cart_event(r, &event);
        }
    }

    ngx_http_finalize_request(r, ngx_http_cart_applied_send(r, &s->result, 0));
}


/*
 * Finalizes with the answer (NULL: the store failed); a copy that holds
 * an in-flight Idempotency-Key gives it back first.
 */

static void
ngx_http_cart_share_fail(ngx_http_request_t *r,
    const ngx_http_cart_answer_t *answer)
{
    ngx_http_cart_stored_release(r);

    if (answer == NULL) {
        ngx_http_finalize_request(r,
                                 ngx_http_cart_store_error(r, NULL, NGX_ERROR));
        return;
    }

    ngx_http_finalize_request(r, ngx_http_cart_fail(r, answer));
}


static ngx_http_cart_share_t *
ngx_http_cart_share_state(ngx_http_request_t *r, ngx_str_t *token)
{
    ngx_str_t               owner;
    ngx_http_cart_ctx_t    *ctx;
    ngx_http_cart_share_t  *s;

    ctx = ngx_http_get_module_ctx(r, ngx_http_cart_module);

    s = ngx_pcalloc(r->pool, sizeof(ngx_http_cart_share_t));
    if (s == NULL) {
        return NULL;
    }

    s->token = *token;
    owner = *token;

    if (ngx_http_cart_key(r->pool, &s->key, "share:", &owner, NULL) == NULL) {
        return NULL;
    }

    ctx->data = s;

    return s;
}
