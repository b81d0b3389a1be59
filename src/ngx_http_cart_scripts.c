/*
 * Script registry and EVALSHA with the NOSCRIPT fallback.
 */

#include "ngx_http_cart_scripts.h"
#include "ngx_http_cart_slot.h"
#include "ngx_http_cart_lua.h"
#include <ngx_sha1.h>


#define NGX_HTTP_CART_SCRIPT_ARGV_PREFIX  6


typedef struct {
    ngx_http_cart_script_e           script;
    ngx_str_t                        key;        /* routes the command */
    void                            *data;
    int                              argc;
    const char                     **argv;
    size_t                          *argvlen;
    ngx_http_cart_redis_handler_pt   handler;
    ngx_pool_t                      *pool;       /* see _run_in() */
    ngx_http_cleanup_t              *cln;
    unsigned                         retried:1;
} ngx_http_cart_script_call_t;


static ngx_int_t ngx_http_cart_script_write_full(ngx_http_request_t *r,
    ngx_http_cart_script_e script, ngx_str_t *own, ngx_uint_t nown,
    ngx_str_t *args, ngx_uint_t nargs, ngx_http_cart_redis_handler_pt handler,
    void *data);
static void ngx_http_cart_script_reply(ngx_http_request_t *r, void *data,
    redisReply *reply, ngx_int_t rc);


static ngx_http_cart_redis_script_t  ngx_http_cart_script_text[] = {
    { ngx_http_cart_lua_add, sizeof(ngx_http_cart_lua_add) - 1 },
    { ngx_http_cart_lua_set, sizeof(ngx_http_cart_lua_set) - 1 },
    { ngx_http_cart_lua_idem, sizeof(ngx_http_cart_lua_idem) - 1 },
    { ngx_http_cart_lua_merge_claim,
      sizeof(ngx_http_cart_lua_merge_claim) - 1 },
    { ngx_http_cart_lua_apply, sizeof(ngx_http_cart_lua_apply) - 1 },
    { ngx_http_cart_lua_save, sizeof(ngx_http_cart_lua_save) - 1 },
    { ngx_http_cart_lua_saved_move, sizeof(ngx_http_cart_lua_saved_move) - 1 },
    { ngx_http_cart_lua_saved_drop, sizeof(ngx_http_cart_lua_saved_drop) - 1 },
    { ngx_http_cart_lua_snapshot, sizeof(ngx_http_cart_lua_snapshot) - 1 },
    { ngx_http_cart_lua_meta, sizeof(ngx_http_cart_lua_meta) - 1 },
    { ngx_http_cart_lua_checkout, sizeof(ngx_http_cart_lua_checkout) - 1 },
    { ngx_http_cart_lua_redeem, sizeof(ngx_http_cart_lua_redeem) - 1 },
    { ngx_http_cart_lua_promo, sizeof(ngx_http_cart_lua_promo) - 1 },
    { ngx_http_cart_lua_stream, sizeof(ngx_http_cart_lua_stream) - 1 },
};

static u_char  ngx_http_cart_script_sha[NGX_HTTP_CART_SCRIPT_N][40];


ngx_int_t
ngx_http_cart_scripts_init(ngx_conf_t *cf)
{
    u_char       digest[20];
    ngx_uint_t   i;
    ngx_sha1_t   sha1;

    for (i = 0; i < NGX_HTTP_CART_SCRIPT_N; i++) {
        ngx_sha1_init(&sha1);
        ngx_sha1_update(&sha1, ngx_http_cart_script_text[i].data,
                        ngx_http_cart_script_text[i].len);
        ngx_sha1_final(digest, &sha1);
        ngx_hex_dump(ngx_http_cart_script_sha[i], digest, sizeof(digest));
    }

    /* the activity index key of each slot (see ngx_http_cart_slot.h) */
    if (ngx_http_cart_slot_init() != 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "cart: cannot build the slot tag table");
        return NGX_ERROR;
    }

    return NGX_OK;
}


ngx_http_cart_redis_script_t *
ngx_http_cart_scripts(ngx_uint_t *n)
{
    *n = NGX_HTTP_CART_SCRIPT_N;
    return ngx_http_cart_script_text;
}


ngx_int_t
ngx_http_cart_script_write(ngx_http_request_t *r,
    ngx_http_cart_script_e script, ngx_str_t *args, ngx_uint_t nargs,
    ngx_http_cart_redis_handler_pt handler)
{
    return ngx_http_cart_script_write_full(r, script, NULL, 0, args, nargs,
                                           handler, NULL);
}


ngx_int_t
ngx_http_cart_script_write_keys(ngx_http_request_t *r,
    ngx_http_cart_script_e script, ngx_str_t *own, ngx_uint_t nown,
    ngx_str_t *args, ngx_uint_t nargs, ngx_http_cart_redis_handler_pt handler)
{
    return ngx_http_cart_script_write_full(r, script, own, nown, args, nargs,
                                           handler, NULL);
}


ngx_int_t
ngx_http_cart_script_write_data(ngx_http_request_t *r,
    ngx_http_cart_script_e script, ngx_str_t *args, ngx_uint_t nargs,
    ngx_http_cart_redis_handler_pt handler, void *data)
{
    return ngx_http_cart_script_write_full(r, script, NULL, 0, args, nargs,
                                           handler, data);
}


/*
 * KEYS: cart, counter, the activity index of the cart's slot, the
 * idempotency key when there is one, then the script's own keys; ARGV: the
 * shared prefix of src/lua/_lib.lua, then args.
 */

static ngx_int_t
ngx_http_cart_script_write_full(ngx_http_request_t *r,
    ngx_http_cart_script_e script, ngx_str_t *own, ngx_uint_t nown,
    ngx_str_t *args, ngx_uint_t nargs, ngx_http_cart_redis_handler_pt handler,
    void *data)
{
    u_char                     *p;
    ngx_str_t                   keys[4 + NGX_HTTP_CART_SCRIPT_MAX_OWN];
    ngx_str_t                  *argv;
    ngx_uint_t                  i, nkeys;
    ngx_http_cart_ctx_t        *ctx;
    ngx_http_cart_main_conf_t  *cmcf;

    ctx = ngx_http_get_module_ctx(r, ngx_http_cart_module);
    cmcf = ngx_http_get_module_main_conf(r, ngx_http_cart_module);

    if (nown > NGX_HTTP_CART_SCRIPT_MAX_OWN) {
        return NGX_ERROR;
    }

    keys[0] = ctx->cart_key;
    keys[1] = ctx->count_key;

    /* the activity index set of the cart's own slot (cartd reads it) */

    p = ngx_pnalloc(r->pool, sizeof(NGX_HTTP_CART_ACTIVITY_KEY) + 2
                             + NGX_HTTP_CART_SLOT_TAG_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    keys[2].data = p;
    keys[2].len = ngx_sprintf(p, NGX_HTTP_CART_ACTIVITY_KEY "{%s}",
                              ngx_http_cart_slot_tag(
                                  ngx_http_cart_slot(ctx->cart_key.data,
                                                     ctx->cart_key.len)))
                  - p;
    nkeys = 3;

    if (ctx->idem_key.len) {
        keys[nkeys++] = ctx->idem_key;

        if (ctx->fingerprint.len == 0) {
            /* a write without a body means what its method and URI say */
            p = ngx_pnalloc(r->pool, r->method_name.len + 1 + r->uri.len);
            if (p == NULL) {
                return NGX_ERROR;
            }

            ctx->fingerprint.data = p;
            ctx->fingerprint.len = ngx_sprintf(p, "%V %V", &r->method_name,
                                               &r->uri)
                                   - p;
        }
    }

    for (i = 0; i < nown; i++) {
        keys[nkeys++] = own[i];
    }

    argv = ngx_palloc(r->pool, (NGX_HTTP_CART_SCRIPT_ARGV_PREFIX + nargs)
                               * sizeof(ngx_str_t));
    p = ngx_pnalloc(r->pool, 2 * NGX_TIME_T_LEN + NGX_INT_T_LEN + 1);

    if (argv == NULL || p == NULL) {
        return NGX_ERROR;
    }

    argv[0].data = p;
    argv[0].len = ngx_sprintf(p, "%T", ngx_time()) - p;
    p += argv[0].len;

    argv[1].data = p;
    argv[1].len = ngx_sprintf(p, "%T", ctx->ttl) - p;
    p += argv[1].len;

    argv[2] = ctx->if_match;

    /* _lib.lua takes a fingerprint as the sign that KEYS[4] is idem */
    ngx_str_null(&argv[3]);
    if (ctx->idem_key.len) {
        argv[3] = ctx->fingerprint;
    }

    argv[4].data = p;
    argv[4].len = ngx_sprintf(p, "%T", cmcf->idempotency_ttl) - p;

    ngx_str_set(&argv[5], "0");
    if (ctx->reserved) {
        ngx_str_set(&argv[5], "1");
    }

    for (i = 0; i < nargs; i++) {
        argv[NGX_HTTP_CART_SCRIPT_ARGV_PREFIX + i] = args[i];
    }

    return ngx_http_cart_script_run(r, script, keys, nkeys, argv,
                                    NGX_HTTP_CART_SCRIPT_ARGV_PREFIX + nargs,
                                    handler, data);
}


/* EVALSHA sha nkeys keys... args...; keys[0] routes it */

ngx_int_t
ngx_http_cart_script_run(ngx_http_request_t *r, ngx_http_cart_script_e script,
    ngx_str_t *keys, ngx_uint_t nkeys, ngx_str_t *args, ngx_uint_t nargs,
    ngx_http_cart_redis_handler_pt handler, void *data)
{
    return ngx_http_cart_script_run_in(r, r->pool, NULL, script, keys, nkeys,
                                       args, nargs, handler, data);
}


ngx_int_t
ngx_http_cart_script_run_in(ngx_http_request_t *r, ngx_pool_t *pool,
    ngx_http_cleanup_t *cln, ngx_http_cart_script_e script, ngx_str_t *keys,
    ngx_uint_t nkeys, ngx_str_t *args, ngx_uint_t nargs,
    ngx_http_cart_redis_handler_pt handler, void *data)
{
    u_char                       *p;
    ngx_uint_t                    i, k;
    ngx_http_cart_script_call_t  *call;

    call = ngx_palloc(pool, sizeof(ngx_http_cart_script_call_t));
    if (call == NULL) {
        return NGX_ERROR;
    }

    call->script = script;
    call->key = keys[0];
    call->data = data;
    call->handler = handler;
    call->pool = pool;
    call->cln = cln;
    call->retried = 0;
    call->argc = 3 + nkeys + nargs;
    call->argv = ngx_palloc(pool, call->argc * sizeof(char *));
    call->argvlen = ngx_palloc(pool, call->argc * sizeof(size_t));
    p = ngx_pnalloc(pool, NGX_INT_T_LEN);

    if (call->argv == NULL || call->argvlen == NULL || p == NULL) {
        return NGX_ERROR;
    }

    call->argv[0] = "EVALSHA";
    call->argvlen[0] = sizeof("EVALSHA") - 1;
    call->argv[1] = (char *) ngx_http_cart_script_sha[script];
    call->argvlen[1] = 40;
    call->argv[2] = (char *) p;
    call->argvlen[2] = ngx_sprintf(p, "%ui", nkeys) - p;

    i = 3;

    for (k = 0; k < nkeys; k++, i++) {
        call->argv[i] = (char *) keys[k].data;
        call->argvlen[i] = keys[k].len;
    }

    for (k = 0; k < nargs; k++, i++) {
        call->argv[i] = (char *) args[k].data;
        call->argvlen[i] = args[k].len;
    }

    return ngx_http_cart_redis_command_in(r, pool, cln, &call->key,
                                          call->argc, call->argv,
                                          call->argvlen,
                                          ngx_http_cart_script_reply, call);
}


static void
ngx_http_cart_script_reply(ngx_http_request_t *r, void *data,
    redisReply *reply, ngx_int_t rc)
{
    ngx_http_cart_script_call_t  *call = data;

    if (rc == NGX_OK
        && reply->type == REDIS_REPLY_ERROR
        && !call->retried
        && ngx_strncmp(reply->str, "NOSCRIPT", sizeof("NOSCRIPT") - 1) == 0)
    {
        /* Redis restarted or flushed its scripts: EVAL runs and reloads */

        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "cart redis: script cache lost, loading it again");

        call->retried = 1;
        call->argv[0] = "EVAL";
        call->argvlen[0] = sizeof("EVAL") - 1;
        call->argv[1] = ngx_http_cart_script_text[call->script].data;
        call->argvlen[1] = ngx_http_cart_script_text[call->script].len;

        if (ngx_http_cart_redis_command_in(r, call->pool, call->cln,
                                           &call->key, call->argc,
                                           call->argv, call->argvlen,
                                           ngx_http_cart_script_reply, call)
            == NGX_OK)
        {
            return;
        }

        reply = NULL;
        rc = NGX_ERROR;
    }

    /* the last use of call: the handler may free its pool */
    call->handler(r, call->data, reply, rc);
}


ngx_int_t
ngx_http_cart_reply_str(redisReply *reply, size_t i, ngx_str_t *s)
{
    redisReply  *e;

    if (reply->type != REDIS_REPLY_ARRAY || i >= reply->elements) {
        return NGX_ERROR;
    }

    e = reply->element[i];

    if (e->type != REDIS_REPLY_STRING && e->type != REDIS_REPLY_STATUS) {
        return NGX_ERROR;
    }

    s->data = (u_char *) e->str;
    s->len = e->len;

    return NGX_OK;
}


ngx_int_t
ngx_http_cart_reply_int(redisReply *reply, size_t i, int64_t *n)
{
    redisReply  *e;

    if (reply->type != REDIS_REPLY_ARRAY || i >= reply->elements) {
        return NGX_ERROR;
    }

    e = reply->element[i];

    if (e->type == REDIS_REPLY_INTEGER) {
        *n = e->integer;
        return NGX_OK;
    }

    if (e->type == REDIS_REPLY_STRING && e->len > 0 && e->len < 19) {
        *n = ngx_atoof((u_char *) e->str, e->len);
        return *n == NGX_ERROR ? NGX_ERROR : NGX_OK;
    }

    return NGX_ERROR;
}
