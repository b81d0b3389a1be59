/*
 * Promotions admin. Writes are promo.lua on the {promo} slot; reads take a
 * fresh copy of all promotions (ngx_http_cart_promos_load). A write
 * invalidates this worker's copy at once; other workers see it within
 * NGX_HTTP_CART_PROMOS_MAX_AGE. The operator protects the location.
 */

#include "ngx_http_cart_admin.h"
#include "ngx_http_cart_reply.h"
#include "ngx_http_cart_promo.h"
#include "ngx_http_cart_scripts.h"
#include "ngx_http_cart_subrequest.h"


typedef struct {
    ngx_http_cart_promos_ref_t     ref;
    ngx_http_cart_promo_t         *promo;
} ngx_http_cart_admin_t;


static ngx_int_t ngx_http_cart_admin_load(ngx_http_request_t *r,
    ngx_http_cart_resume_pt resume);
static void ngx_http_cart_admin_listed(ngx_http_request_t *r);
static void ngx_http_cart_admin_found(ngx_http_request_t *r);
static void ngx_http_cart_admin_counted(ngx_http_request_t *r, void *data,
    redisReply *reply, ngx_int_t rc);
static void ngx_http_cart_admin_written(ngx_http_request_t *r, void *data,
    redisReply *reply, ngx_int_t rc);
static ngx_int_t ngx_http_cart_admin_script(ngx_http_request_t *r,
    ngx_str_t *args, ngx_uint_t nargs);
static ngx_int_t ngx_http_cart_admin_not_found(ngx_http_request_t *r);


/* POST /promotions */

ngx_int_t
ngx_http_cart_admin_create(ngx_http_request_t *r)
{
    yajl_gen                   g;
    ngx_int_t                  rc;
    ngx_str_t                  args[3];
    ngx_str_t                  text;
    const char                *msg;
    ngx_http_cart_ctx_t       *ctx;
    ngx_http_cart_promo_t      promo;
    ngx_http_cart_json_gen_t  *json;

    ctx = ngx_http_get_module_ctx(r, ngx_http_cart_module);

    rc = ngx_http_cart_promo_parse(r->pool, ctx->body, 0, &promo, &msg);

    if (rc == NGX_DECLINED) {
        return ngx_http_cart_error(r, NGX_HTTP_BAD_REQUEST, "invalid_field",
                                   msg);
    }

    if (rc != NGX_OK) {
        return ngx_http_cart_error(r, 422, "invalid_promotion", msg);
    }

    promo.created_at = ngx_time();

    json = ngx_http_cart_json_gen(r->pool);
    if (json == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    g = json->g;

    ngx_http_cart_promo_render(g, &promo, -1);

    if (ngx_http_cart_json_text(json, &text) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* promo.lua puts the id it gives in front of the rest */

    ngx_str_set(&args[0], "create");
    args[1] = promo.code;
    args[2].data = text.data + 1;
    args[2].len = text.len - 1;

    return ngx_http_cart_admin_script(r, args, 3);
}


/* DELETE /promotions/{id} */

ngx_int_t
ngx_http_cart_admin_delete(ngx_http_request_t *r)
{
    ngx_str_t             args[2];
    ngx_http_cart_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_cart_module);

    ngx_str_set(&args[0], "delete");
    args[1] = ctx->path_sku;

    return ngx_http_cart_admin_script(r, args, 2);
}


static ngx_int_t
ngx_http_cart_admin_script(ngx_http_request_t *r, ngx_str_t *args,
    ngx_uint_t nargs)
{
    ngx_str_t  *keys;

    keys = ngx_palloc(r->pool, 3 * sizeof(ngx_str_t));
    if (keys == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_str_set(&keys[0], NGX_HTTP_CART_PROMOS_KEY);
    ngx_str_set(&keys[1], NGX_HTTP_CART_PROMO_CODES_KEY);
    ngx_str_set(&keys[2], NGX_HTTP_CART_PROMO_SEQ_KEY);

    if (ngx_http_cart_script_run(r, NGX_HTTP_CART_SCRIPT_PROMO, keys, 3, args,
                                 nargs, ngx_http_cart_admin_written, NULL)
        != NGX_OK)
    {
        return ngx_http_cart_store_error(r, NULL, NGX_ERROR);
    }

    return NGX_DONE;
}


static void
ngx_http_cart_admin_written(ngx_http_request_t *r, void *data,
    redisReply *reply, ngx_int_t rc)
{
    ngx_str_t  word, doc;

    if (rc != NGX_OK || ngx_http_cart_reply_str(reply, 0, &word) != NGX_OK) {
        ngx_http_finalize_request(r,
                              ngx_http_cart_store_write_error(r, reply, rc));
        return;
    }

    if (word.len == sizeof("code_exists") - 1
        && ngx_strncmp(word.data, "code_exists", word.len) == 0)
    {
        ngx_http_finalize_request(r,
            ngx_http_cart_error(r, NGX_HTTP_CONFLICT, "code_exists",
                                "another promotion has this code"));
        return;
    }

    if (word.len != 2 || ngx_strncmp(word.data, "ok", 2) != 0
        || ngx_http_cart_reply_str(reply, 2, &doc) != NGX_OK)
    {
        ngx_http_finalize_request(r, ngx_http_cart_admin_not_found(r));
        return;
    }

    ngx_http_cart_promos_invalidate();

    doc.data = ngx_pstrdup(r->pool, &doc);
    if (doc.data == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    ngx_http_finalize_request(r,
        ngx_http_cart_send_body(r, r->method == NGX_HTTP_POST
                                   ? NGX_HTTP_CREATED : NGX_HTTP_OK,
                                doc.data, doc.len, -1));
}


/* GET /promotions */

ngx_int_t
ngx_http_cart_admin_list(ngx_http_request_t *r)
{
    return ngx_http_cart_admin_load(r, ngx_http_cart_admin_listed);
}


static ngx_int_t
ngx_http_cart_admin_load(ngx_http_request_t *r, ngx_http_cart_resume_pt resume)
{
    ngx_http_cart_ctx_t    *ctx;
    ngx_http_cart_admin_t  *st;

    ctx = ngx_http_get_module_ctx(r, ngx_http_cart_module);

    st = ngx_pcalloc(r->pool, sizeof(ngx_http_cart_admin_t));
    if (st == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->data = st;

    ngx_http_cart_promos_load(r, 1, &st->ref);

    if (st->ref.rc == NGX_ERROR) {
        return ngx_http_cart_store_error(r, NULL, NGX_ERROR);
    }

    ngx_http_cart_fetch_wait(r, resume);

    return NGX_DONE;
}


static void
ngx_http_cart_admin_listed(ngx_http_request_t *r)
{
    yajl_gen                   g;
    ngx_uint_t                 i;
    ngx_http_cart_ctx_t       *ctx;
    ngx_http_cart_admin_t     *st;
    ngx_http_cart_promos_t    *set;
    ngx_http_cart_json_gen_t  *json;

    ctx = ngx_http_get_module_ctx(r, ngx_http_cart_module);
    st = ctx->data;
    set = st->ref.set;

    if (st->ref.rc != NGX_OK) {
        ngx_http_finalize_request(r,
                        ngx_http_cart_store_error(r, NULL, st->ref.rc));
        return;
    }

    json = ngx_http_cart_json_gen(r->pool);
    if (json == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    g = json->g;

    yajl_gen_map_open(g);
    ngx_http_cart_json_key(g, "promotions");
    yajl_gen_array_open(g);

    for (i = 0; i < set->n; i++) {
        ngx_http_cart_promo_render(g, &set->promos[i], -1);
    }

    yajl_gen_array_close(g);
    yajl_gen_map_close(g);

    ngx_http_finalize_request(r, ngx_http_cart_send(r, NGX_HTTP_OK, json, -1));
}


/* GET /promotions/{id}: the promotion and how often it was redeemed */

ngx_int_t
ngx_http_cart_admin_read(ngx_http_request_t *r)
{
    return ngx_http_cart_admin_load(r, ngx_http_cart_admin_found);
}


static void
ngx_http_cart_admin_found(ngx_http_request_t *r)
{
    ngx_str_t                key;
    ngx_uint_t               i;
    const char              *argv[3];
    size_t                   argvlen[3];
    ngx_http_cart_ctx_t     *ctx;
    ngx_http_cart_admin_t   *st;
    ngx_http_cart_promos_t  *set;

    ctx = ngx_http_get_module_ctx(r, ngx_http_cart_module);
    st = ctx->data;
    set = st->ref.set;

    if (st->ref.rc != NGX_OK) {
        ngx_http_finalize_request(r,
                        ngx_http_cart_store_error(r, NULL, st->ref.rc));
        return;
    }

    for (i = 0; i < set->n; i++) {
        if (set->promos[i].id.len == ctx->path_sku.len
            && ngx_strncmp(set->promos[i].id.data, ctx->path_sku.data,
                           ctx->path_sku.len) == 0)
        {
            st->promo = &set->promos[i];
            break;
        }
    }

    if (st->promo == NULL) {
        ngx_http_finalize_request(r, ngx_http_cart_admin_not_found(r));
        return;
    }

    key.data = ngx_pnalloc(r->pool, sizeof("promo_use:{promo-}") - 1
                                    + st->promo->id.len);
    if (key.data == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    key.len = ngx_sprintf(key.data, "promo_use:{promo-%V}", &st->promo->id)
              - key.data;

    argv[0] = "HGET";
    argvlen[0] = sizeof("HGET") - 1;
    argv[1] = (const char *) key.data;
    argvlen[1] = key.len;
    argv[2] = "n";
    argvlen[2] = 1;

    if (ngx_http_cart_redis_command(r, &key, 3, argv, argvlen,
                                    ngx_http_cart_admin_counted, NULL)
        != NGX_OK)
    {
        ngx_http_finalize_request(r,
                              ngx_http_cart_store_error(r, NULL, NGX_ERROR));
    }
}


static void
ngx_http_cart_admin_counted(ngx_http_request_t *r, void *data,
    redisReply *reply, ngx_int_t rc)
{
    off_t                      n;
    yajl_gen                   g;
    ngx_http_cart_ctx_t       *ctx;
    ngx_http_cart_admin_t     *st;
    ngx_http_cart_json_gen_t  *json;

    if (rc != NGX_OK
        || (reply->type != REDIS_REPLY_STRING
            && reply->type != REDIS_REPLY_NIL))
    {
        ngx_http_finalize_request(r,
                                  ngx_http_cart_store_error(r, reply, rc));
        return;
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_cart_module);
    st = ctx->data;

    n = 0;

    if (reply->type == REDIS_REPLY_STRING) {
        n = ngx_atoof((u_char *) reply->str, reply->len);
        if (n == NGX_ERROR) {
            n = 0;
        }
    }

    json = ngx_http_cart_json_gen(r->pool);
    if (json == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    g = json->g;

    ngx_http_cart_promo_render(g, st->promo, n);

    ngx_http_finalize_request(r, ngx_http_cart_send(r, NGX_HTTP_OK, json, -1));
}


static ngx_int_t
ngx_http_cart_admin_not_found(ngx_http_request_t *r)
{
    return ngx_http_cart_error(r, NGX_HTTP_NOT_FOUND, "promotion_not_found",
                               "there is no promotion with this id");
}
