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
    int                              argc;
    const char                     **argv;
    size_t                          *argvlen;
    ngx_http_cart_redis_handler_pt   handler;
    unsigned                         retried:1;
} ngx_http_cart_script_call_t;


static void ngx_http_cart_script_reply(ngx_http_request_t *r, void *data,
    redisReply *reply, ngx_int_t rc);


static ngx_http_cart_redis_script_t  ngx_http_cart_script_text[] = {
    { ngx_http_cart_lua_add, sizeof(ngx_http_cart_lua_add) - 1 },
    { ngx_http_cart_lua_set, sizeof(ngx_http_cart_lua_set) - 1 },
    { ngx_http_cart_lua_idem, sizeof(ngx_http_cart_lua_idem) - 1 },
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
    u_char                       *p, *activity;
    ngx_str_t                     prefix[NGX_HTTP_CART_SCRIPT_ARGV_PREFIX];
    ngx_uint_t                    i, nkeys;
    ngx_http_cart_ctx_t          *ctx;
    ngx_http_cart_main_conf_t    *cmcf;
    ngx_http_cart_script_call_t  *call;

    ctx = ngx_http_get_module_ctx(r, ngx_http_cart_module);
    cmcf = ngx_http_get_module_main_conf(r, ngx_http_cart_module);

    nkeys = ctx->idem_key.len ? 4 : 3;

    call = ngx_palloc(r->pool, sizeof(ngx_http_cart_script_call_t));
    if (call == NULL) {
        return NGX_ERROR;
    }

    call->script = script;
    call->handler = handler;
    call->retried = 0;
    call->argc = 3 + nkeys + NGX_HTTP_CART_SCRIPT_ARGV_PREFIX + nargs;
    call->argv = ngx_palloc(r->pool, call->argc * sizeof(char *));
    call->argvlen = ngx_palloc(r->pool, call->argc * sizeof(size_t));
    p = ngx_pnalloc(r->pool, 2 * NGX_TIME_T_LEN + NGX_INT_T_LEN + 1);
    activity = ngx_pnalloc(r->pool, sizeof(NGX_HTTP_CART_ACTIVITY_KEY) + 2
                                    + NGX_HTTP_CART_SLOT_TAG_LEN);

    if (call->argv == NULL || call->argvlen == NULL || p == NULL
        || activity == NULL)
    {
        return NGX_ERROR;
    }

    call->argv[0] = "EVALSHA";
    call->argvlen[0] = sizeof("EVALSHA") - 1;
    call->argv[1] = (char *) ngx_http_cart_script_sha[script];
    call->argvlen[1] = 40;
    call->argv[2] = nkeys == 4 ? "4" : "3";
    call->argvlen[2] = 1;

    call->argv[3] = (char *) ctx->cart_key.data;
    call->argvlen[3] = ctx->cart_key.len;
    call->argv[4] = (char *) ctx->count_key.data;
    call->argvlen[4] = ctx->count_key.len;

    /* the activity index set of the cart's own slot */
    call->argv[5] = (char *) activity;
    call->argvlen[5] = ngx_sprintf(activity, NGX_HTTP_CART_ACTIVITY_KEY "{%s}",
                          ngx_http_cart_slot_tag(
                              ngx_http_cart_slot(ctx->cart_key.data,
                                                 ctx->cart_key.len)))
                       - activity;

    if (nkeys == 4) {
        call->argv[6] = (char *) ctx->idem_key.data;
        call->argvlen[6] = ctx->idem_key.len;
    }

    prefix[0].data = p;
    prefix[0].len = ngx_sprintf(p, "%T", ngx_time()) - p;
    p += prefix[0].len;

    prefix[1].data = p;
    prefix[1].len = ngx_sprintf(p, "%T", ctx->ttl) - p;
    p += prefix[1].len;

    prefix[2] = ctx->if_match;
    prefix[3] = ctx->fingerprint;

    prefix[4].data = p;
    prefix[4].len = ngx_sprintf(p, "%T", cmcf->idempotency_ttl) - p;

    ngx_str_set(&prefix[5], "0");
    if (ctx->reserved) {
        ngx_str_set(&prefix[5], "1");
    }

    i = 3 + nkeys;

    for (nkeys = 0; nkeys < NGX_HTTP_CART_SCRIPT_ARGV_PREFIX; nkeys++, i++) {
        call->argv[i] = (char *) prefix[nkeys].data;
        call->argvlen[i] = prefix[nkeys].len;
    }

    for (nkeys = 0; nkeys < nargs; nkeys++, i++) {
        call->argv[i] = (char *) args[nkeys].data;
        call->argvlen[i] = args[nkeys].len;
    }

    return ngx_http_cart_redis_command(r, &ctx->cart_key, call->argc,
                                       call->argv, call->argvlen,
                                       ngx_http_cart_script_reply, call);
}


static void
ngx_http_cart_script_reply(ngx_http_request_t *r, void *data,
    redisReply *reply, ngx_int_t rc)
{
    ngx_http_cart_ctx_t          *ctx;
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

        ctx = ngx_http_get_module_ctx(r, ngx_http_cart_module);

        if (ngx_http_cart_redis_command(r, &ctx->cart_key, call->argc,
                                        call->argv, call->argvlen,
                                        ngx_http_cart_script_reply, call)
            == NGX_OK)
        {
            return;
        }

        reply = NULL;
        rc = NGX_ERROR;
    }

    call->handler(r, NULL, reply, rc);
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
