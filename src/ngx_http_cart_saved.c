/*
 * Saved for later. Each move between the cart and the list is one script
 * (save.lua, saved_move.lua) over both keys, which share the owner's hash
 * tag; the list keeps the line's quantity, price_at_add and seller, and
 * the time it was saved in place of added_at.
 */

#include "ngx_http_cart_saved.h"
#include "ngx_http_cart_events.h"
#include "ngx_http_cart_reply.h"
#include "ngx_http_cart_items.h"
#include "ngx_http_cart_scripts.h"


static const ngx_http_cart_answer_t  ngx_http_cart_saved_answers[] = {
    { NGX_HTTP_NOT_FOUND, "line_not_found", "this SKU is not in the cart" },
    { NGX_HTTP_NOT_FOUND, "saved_not_found",
      "this SKU is not in the saved list" },
    { 422, "saved_limit",
      "the saved list has reached its maximum number of lines" },
    { 422, "line_limit", "the cart has reached its maximum number of lines" },
    { 422, "quantity_limit",
      "the line would exceed the maximum quantity per line" },
    { 0, NULL, NULL }
};


static ngx_int_t ngx_http_cart_saved_run(ngx_http_request_t *r,
    ngx_http_cart_script_e script, ngx_str_t *args, ngx_uint_t nargs);
static ngx_str_t *ngx_http_cart_saved_key(ngx_http_request_t *r);
static void ngx_http_cart_saved_done(ngx_http_request_t *r, void *data,
    redisReply *reply, ngx_int_t rc);
static void ngx_http_cart_saved_reply(ngx_http_request_t *r, void *data,
    redisReply *reply, ngx_int_t rc);
static int ngx_libc_cdecl ngx_http_cart_saved_cmp(const void *one,
    const void *two);


/* POST /items/{sku_id}/save */

ngx_int_t
ngx_http_cart_saved_save(ngx_http_request_t *r)
{
    u_char                     *p;
    ngx_str_t                   args[4];
    ngx_http_cart_ctx_t        *ctx;
    ngx_http_cart_main_conf_t  *cmcf;

    ctx = ngx_http_get_module_ctx(r, ngx_http_cart_module);
    cmcf = ngx_http_get_module_main_conf(r, ngx_http_cart_module);

    p = ngx_pnalloc(r->pool, NGX_TIME_T_LEN);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    args[0] = ctx->path_sku;

    args[1].data = p;
    args[1].len = ngx_sprintf(p, "%T", cmcf->saved_ttl) - p;
    args[2] = cmcf->max_lines_arg;
    args[3] = cmcf->max_quantity_arg;

    return ngx_http_cart_saved_run(r, NGX_HTTP_CART_SCRIPT_SAVE, args, 4);
}


/* POST /saved/{sku_id}/move */

ngx_int_t
ngx_http_cart_saved_move(ngx_http_request_t *r)
{
    ngx_str_t                   args[3];
    ngx_http_cart_ctx_t        *ctx;
    ngx_http_cart_main_conf_t  *cmcf;

    ctx = ngx_http_get_module_ctx(r, ngx_http_cart_module);
    cmcf = ngx_http_get_module_main_conf(r, ngx_http_cart_module);

    args[0] = ctx->path_sku;
    args[1] = cmcf->max_lines_arg;
    args[2] = cmcf->max_quantity_arg;

    return ngx_http_cart_saved_run(r, NGX_HTTP_CART_SCRIPT_SAVED_MOVE, args,
                                   3);
}


/* DELETE /saved/{sku_id} */

ngx_int_t
ngx_http_cart_saved_drop(ngx_http_request_t *r)
{
    ngx_http_cart_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_cart_module);

    return ngx_http_cart_saved_run(r, NGX_HTTP_CART_SCRIPT_SAVED_DROP,
                                   &ctx->path_sku, 1);
}


static ngx_int_t
ngx_http_cart_saved_run(ngx_http_request_t *r, ngx_http_cart_script_e script,
    ngx_str_t *args, ngx_uint_t nargs)
{
    ngx_str_t  *key;

    key = ngx_http_cart_saved_key(r);
    if (key == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_http_cart_script_write_keys(r, script, key, 1, args, nargs,
                                        ngx_http_cart_saved_done)
        != NGX_OK)
    {
        return ngx_http_cart_store_error(r, NULL, NGX_ERROR);
    }

    return NGX_DONE;
}


static ngx_str_t *
ngx_http_cart_saved_key(ngx_http_request_t *r)
{
    ngx_str_t            *key;
    ngx_http_cart_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_cart_module);

    key = ngx_palloc(r->pool, sizeof(ngx_str_t));
    if (key == NULL) {
        return NULL;
    }

    return ngx_http_cart_key(r->pool, key, "saved:", &ctx->owner, NULL);
}


/*
 * The answer of save.lua, saved_move.lua, saved_drop.lua:
 * {'ok'|'replay', version, count, sku, qty, price, seller, time}
 */

static void
ngx_http_cart_saved_done(ngx_http_request_t *r, void *data,
    redisReply *reply, ngx_int_t rc)
{
    int64_t                        version, count, qty, price, at;
    yajl_gen                       g;
    ngx_str_t                      word, sku, seller;
    ngx_uint_t                     move, drop;
    ngx_http_cart_ctx_t           *ctx;
    ngx_http_cart_event_t          event;
    ngx_http_cart_json_gen_t      *json;
    const ngx_http_cart_answer_t  *a;

    ctx = ngx_http_get_module_ctx(r, ngx_http_cart_module);

    a = ngx_http_cart_script_answer(r, reply, rc, ngx_http_cart_saved_answers,
                                    &word);
    if (a) {
        ngx_http_finalize_request(r, ngx_http_cart_fail(r, a));
        return;
    }

    if (!(ngx_http_cart_word_is(&word, "ok")
          || ngx_http_cart_word_is(&word, "replay"))
        || ngx_http_cart_reply_int(reply, 1, &version) != NGX_OK
        || ngx_http_cart_reply_int(reply, 2, &count) != NGX_OK
        || ngx_http_cart_reply_str(reply, 3, &sku) != NGX_OK
        || ngx_http_cart_reply_int(reply, 4, &qty) != NGX_OK
        || ngx_http_cart_reply_str(reply, 6, &seller) != NGX_OK
        || ngx_http_cart_reply_int(reply, 7, &at) != NGX_OK)
    {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "cart: unexpected saved script answer");
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    if (ngx_http_cart_reply_int(reply, 5, &price) != NGX_OK) {
        price = -1;
    }

    move = (ctx->action == ngx_http_cart_saved_move);
    drop = (ctx->action == ngx_http_cart_saved_drop);

    /* dropping from the list is no change of the cart: no event */

    if (ngx_http_cart_word_is(&word, "ok") && !drop) {
        ngx_memzero(&event, sizeof(ngx_http_cart_event_t));
        event.type = move ? "item_moved_to_cart" : "item_saved";
        event.sku = sku;
        event.quantity = qty;
        event.price = price;
        event.seller = seller;
        event.version = version;

        ngx_http_cart_event(r, &event);
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

    if (move) {
        ngx_http_cart_json_key(g, "item");

    } else {
        ngx_http_cart_json_key(g, "saved");
    }

    yajl_gen_map_open(g);
    ngx_http_cart_json_key(g, "sku_id");
    ngx_http_cart_json_str(g, &sku);
    ngx_http_cart_json_key(g, "quantity");
    ngx_http_cart_json_int(g, drop ? 0 : qty);
    ngx_http_cart_json_key(g, "price");
    ngx_http_cart_json_price(g, price);
    ngx_http_cart_json_key(g, "seller_id");
    ngx_http_cart_json_str(g, &seller);

    if (!move) {
        ngx_http_cart_json_key(g, "saved_at");
        ngx_http_cart_json_time(g, (time_t) at);
    }

    yajl_gen_map_close(g);
    ngx_http_cart_json_key(g, "version");
    ngx_http_cart_json_int(g, version);
    yajl_gen_map_close(g);

    ngx_http_finalize_request(r, ngx_http_cart_send(r, NGX_HTTP_OK, json,
                                                    version));
}


/* GET /saved: newest first */

ngx_int_t
ngx_http_cart_saved_list(ngx_http_request_t *r)
{
    ngx_str_t  *key;

    key = ngx_http_cart_saved_key(r);
    if (key == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_http_cart_redis_read(r, "HGETALL", key,
                                 ngx_http_cart_saved_reply, NULL)
        != NGX_OK)
    {
        return ngx_http_cart_store_error(r, NULL, NGX_ERROR);
    }

    return NGX_DONE;
}


static void
ngx_http_cart_saved_reply(ngx_http_request_t *r, void *data,
    redisReply *reply, ngx_int_t rc)
{
    size_t                     i;
    int64_t                    count;
    yajl_gen                   g;
    ngx_str_t                  field, value;
    ngx_uint_t                 n, k;
    ngx_http_cart_line_t      *lines;
    ngx_http_cart_json_gen_t  *json;

    if (rc != NGX_OK || reply->type != REDIS_REPLY_ARRAY) {
        ngx_http_finalize_request(r,
                                  ngx_http_cart_store_error(r, reply, rc));
        return;
    }

    lines = ngx_palloc(r->pool, (reply->elements / 2 + 1)
                                * sizeof(ngx_http_cart_line_t));
    json = ngx_http_cart_json_gen(r->pool);

    if (lines == NULL || json == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    g = json->g;

    n = 0;

    for (i = 0; i + 1 < reply->elements; i += 2) {
        if (ngx_http_cart_reply_str(reply, i, &field) != NGX_OK
            || ngx_http_cart_reply_str(reply, i + 1, &value) != NGX_OK
            || ngx_http_cart_line_parse(&value, &lines[n]) != NGX_OK)
        {
            continue;
        }

        /* the reply dies with this callback; the JSON is built now */
        lines[n++].sku = field;
    }

    ngx_qsort(lines, n, sizeof(ngx_http_cart_line_t),
              ngx_http_cart_saved_cmp);

    count = 0;

    yajl_gen_map_open(g);
    ngx_http_cart_json_key(g, "items");
    yajl_gen_array_open(g);

    for (k = 0; k < n; k++) {
        count += lines[k].qty;

        yajl_gen_map_open(g);
        ngx_http_cart_json_key(g, "sku_id");
        ngx_http_cart_json_str(g, &lines[k].sku);
        ngx_http_cart_json_key(g, "quantity");
        ngx_http_cart_json_int(g, lines[k].qty);
        ngx_http_cart_json_key(g, "price");
        ngx_http_cart_json_price(g, lines[k].price);
        ngx_http_cart_json_key(g, "seller_id");
        ngx_http_cart_json_str(g, &lines[k].seller);
        ngx_http_cart_json_key(g, "saved_at");
        ngx_http_cart_json_time(g, lines[k].added);
        yajl_gen_map_close(g);
    }

    yajl_gen_array_close(g);
    ngx_http_cart_json_key(g, "item_count");
    ngx_http_cart_json_int(g, count);
    yajl_gen_map_close(g);

    ngx_http_finalize_request(r, ngx_http_cart_send(r, NGX_HTTP_OK, json, -1));
}


static int ngx_libc_cdecl
ngx_http_cart_saved_cmp(const void *one, const void *two)
{
    const ngx_http_cart_line_t  *a = one, *b = two;

    if (a->added != b->added) {
        return a->added > b->added ? -1 : 1;
    }

    return ngx_memn2cmp(a->sku.data, b->sku.data, a->sku.len, b->sku.len);
}
