/*
 * Script answers of the pricing writes, their replays and their errors.
 */

#include "ngx_http_cart_stored.h"
#include "ngx_http_cart_scripts.h"


/* besides the shared answers of _lib.lua */
static const ngx_http_cart_answer_t  ngx_http_cart_stored_answers[] = {
    { NGX_HTTP_CONFLICT, "cart_changed",
      "the cart changed while it was being priced, retry" },
    { 422, "coupon_unknown", "there is no such coupon" },
    { 422, "coupon_expired", "this coupon has expired" },
    { 422, "coupon_not_yet_valid", "this coupon is not valid yet" },
    { 422, "coupon_conditions_unmet",
      "the cart does not meet this coupon's conditions" },
    { 422, "coupon_exhausted", "this coupon has been used up" },
    { 422, "coupon_limit_reached",
      "you have used this coupon as often as it allows" },
    { NGX_HTTP_SERVICE_UNAVAILABLE, "promotions_unavailable",
      "promotions could not be read, retry later" },
    { 0, NULL, NULL }
};

static const ngx_http_cart_answer_t  ngx_http_cart_stored_internal =
    { NGX_HTTP_INTERNAL_SERVER_ERROR, "internal_error", "internal error" };


static void ngx_http_cart_stored_snapshot(ngx_http_request_t *r,
    void *data, redisReply *reply, ngx_int_t rc);
static void ngx_http_cart_stored_ignore(ngx_http_request_t *r, void *data,
    redisReply *reply, ngx_int_t rc);


ngx_int_t
ngx_http_cart_stored_start(ngx_http_request_t *r, ngx_http_cart_stored_pt next)
{
    if (ngx_http_cart_script_write_data(r, NGX_HTTP_CART_SCRIPT_SNAPSHOT,
                                        NULL, 0, ngx_http_cart_stored_snapshot,
                                        (void *) next)
        != NGX_OK)
    {
        return ngx_http_cart_store_error(r, NULL, NGX_ERROR);
    }

    return NGX_DONE;
}


static void
ngx_http_cart_stored_snapshot(ngx_http_request_t *r, void *data,
    redisReply *reply, ngx_int_t rc)
{
    ngx_str_t                  word;
    ngx_http_cart_ctx_t       *ctx;
    ngx_http_cart_stored_pt    next = (ngx_http_cart_stored_pt) data;
    ngx_http_cart_snapshot_t  *snap;

    if (rc != NGX_OK) {
        /* a read that at most reserved the key: the write was not sent */
        ngx_http_finalize_request(r,
                                  ngx_http_cart_stored_reserve_error(r, reply,
                                                                     rc));
        return;
    }

    if (ngx_http_cart_stored_word(r, reply, rc, &word, &rc) != NGX_OK) {
        ngx_http_finalize_request(r, rc);
        return;
    }

    if (word.len != 4 || ngx_strncmp(word.data, "cart", 4) != 0) {
        ngx_http_finalize_request(r,
                 ngx_http_cart_fail(r, ngx_http_cart_stored_error(r, &word)));
        return;
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_cart_module);
    ctx->reserved = ctx->idem_key.len ? 1 : 0;

    snap = ngx_http_cart_snapshot(r, reply, 1);

    if (snap == NULL) {
        ngx_http_finalize_request(r,
                 ngx_http_cart_stored_fail(r, &ngx_http_cart_stored_internal));
        return;
    }

    next(r, snap);
}


ngx_int_t
ngx_http_cart_stored_word(ngx_http_request_t *r, redisReply *reply,
    ngx_int_t status, ngx_str_t *word, ngx_int_t *rc)
{
    ngx_str_t  body;

    if (status != NGX_OK || ngx_http_cart_reply_str(reply, 0, word) != NGX_OK)
    {
        /* the release leaves an answer the write stored: a retry with the
         * key replays it if the write ran, and makes it if not */
        ngx_http_cart_stored_release(r);
        *rc = ngx_http_cart_store_write_error(r, reply, status);
        return NGX_DONE;
    }

    if (word->len == 6 && ngx_strncmp(word->data, "replay", 6) == 0
        && ngx_http_cart_reply_str(reply, 3, &body) == NGX_OK
        && body.len)
    {
        *rc = ngx_http_cart_stored_send(r, reply, NGX_HTTP_OK, 1);
        return NGX_DONE;
    }

    return NGX_OK;
}


const ngx_http_cart_answer_t *
ngx_http_cart_stored_error(ngx_http_request_t *r, ngx_str_t *word)
{
    const ngx_http_cart_answer_t  *a;

    a = ngx_http_cart_answer_find(r, ngx_http_cart_stored_answers, word);
    if (a) {
        return a;
    }

    ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                  "cart: unexpected script answer \"%V\"", word);

    return &ngx_http_cart_stored_internal;
}


ngx_int_t
ngx_http_cart_stored_fail(ngx_http_request_t *r,
    const ngx_http_cart_answer_t *answer)
{
    ngx_http_cart_stored_release(r);

    return ngx_http_cart_fail(r, answer);
}


/*
 * The hold only keeps a concurrent retry off (409) while this request may
 * still write: once it runs out a retry goes on, and still cannot apply
 * twice, as every write script stores its answer under the key in the
 * same call, so the later of two writes replays the earlier.
 */

ngx_int_t
ngx_http_cart_stored_reserve(ngx_http_request_t *r,
    ngx_http_cart_redis_handler_pt handler)
{
    u_char                     *p;
    ngx_str_t                   args[2];
    ngx_msec_t                  hold;
    ngx_http_cart_loc_conf_t   *lcf;
    ngx_http_cart_main_conf_t  *cmcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_cart_module);
    cmcf = ngx_http_get_module_main_conf(r, ngx_http_cart_module);

    hold = lcf->lookup_timeout
           + NGX_HTTP_CART_RESERVE_TRIPS * cmcf->redis_timeout;
    hold = ngx_max(hold, 1000);

    p = ngx_pnalloc(r->pool, NGX_INT_T_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    ngx_str_set(&args[0], "reserve");
    args[1].data = p;
    args[1].len = ngx_sprintf(p, "%M", hold) - p;

    return ngx_http_cart_script_write(r, NGX_HTTP_CART_SCRIPT_IDEM, args, 2,
                                      handler);
}


ngx_int_t
ngx_http_cart_stored_reserve_error(ngx_http_request_t *r, redisReply *reply,
    ngx_int_t rc)
{
    ngx_http_cart_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_cart_module);

    /* sent, unanswered: it may run later (Redis stalled); the release is
     * queued after it on a live connection, and the hold bounds it if the
     * release runs first (on another connection) */

    if (ctx->idem_key.len && (rc == NGX_AGAIN || rc == NGX_DECLINED)) {
        ctx->reserved = 1;
        ngx_http_cart_stored_release(r);
    }

    return ngx_http_cart_store_error(r, reply, rc);
}


void
ngx_http_cart_stored_release(ngx_http_request_t *r)
{
    ngx_str_t             arg;
    ngx_http_cart_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_cart_module);

    if (!ctx->reserved) {
        return;
    }

    ctx->reserved = 0;
    ngx_str_set(&arg, "release");

    /* fire and forget: the answer does not change the response */
    (void) ngx_http_cart_script_write(r, NGX_HTTP_CART_SCRIPT_IDEM, &arg, 1,
                                      ngx_http_cart_stored_ignore);
}


static void
ngx_http_cart_stored_ignore(ngx_http_request_t *r, void *data,
    redisReply *reply, ngx_int_t rc)
{
}


ngx_int_t
ngx_http_cart_stored_send(ngx_http_request_t *r, redisReply *reply,
    ngx_uint_t status, ngx_uint_t replay)
{
    int64_t    version;
    ngx_str_t  body;

    if (ngx_http_cart_reply_int(reply, 1, &version) != NGX_OK
        || ngx_http_cart_reply_str(reply, 3, &body) != NGX_OK
        || body.len == 0)
    {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "cart: malformed script reply");
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* the reply dies with its callback */
    body.data = ngx_pstrdup(r->pool, &body);
    if (body.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (replay && ngx_http_cart_replayed(r) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_cart_send_body(r, status, body.data, body.len, version);
}
