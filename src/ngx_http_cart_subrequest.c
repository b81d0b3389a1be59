/*
 * Subrequests, the way ngx_http_auth_request_module does it, made
 * parallel: each subrequest is in memory and "waited"; its post handler
 * records status and body and counts down; the parent's write event
 * handler, which nginx posts whenever a subrequest finishes, resumes the
 * parent once the count is zero.
 */

#include "ngx_http_cart_subrequest.h"


static ngx_int_t ngx_http_cart_fetch_done(ngx_http_request_t *r, void *data,
    ngx_int_t rc);
static void ngx_http_cart_fetch_wake(ngx_http_request_t *r);
static ngx_int_t ngx_http_cart_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);


static ngx_http_variable_t  ngx_http_cart_variables[] = {

    { ngx_string("cart_sku"), NULL, ngx_http_cart_variable,
      offsetof(ngx_http_cart_ctx_t, sku), NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("cart_skus"), NULL, ngx_http_cart_variable,
      offsetof(ngx_http_cart_ctx_t, skus), NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


ngx_int_t
ngx_http_cart_subrequest_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_cart_variables; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


/* $cart_sku and $cart_skus: the parent's while the URI is evaluated, the
 * subrequest's own inside the upstream location */

static ngx_int_t
ngx_http_cart_variable(ngx_http_request_t *r, ngx_http_variable_value_t *v,
    uintptr_t data)
{
    ngx_str_t            *s;
    ngx_http_cart_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_cart_module);

    if (ctx == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    s = (ngx_str_t *) ((u_char *) ctx + data);

    v->data = s->data;
    v->len = s->len;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    return NGX_OK;
}


ngx_int_t
ngx_http_cart_fetch(ngx_http_request_t *r, ngx_http_complex_value_t *uri,
    ngx_http_cart_fetch_t *fetches, ngx_uint_t n,
    ngx_http_cart_resume_pt resume)
{
    ngx_str_t                    path, args;
    ngx_uint_t                   i, flags;
    ngx_http_request_t          *sr;
    ngx_http_cart_ctx_t         *ctx, *sctx;
    ngx_http_post_subrequest_t  *ps;

    ctx = ngx_http_get_module_ctx(r, ngx_http_cart_module);

    ctx->fetches = fetches;
    ctx->nfetches = n;
    ctx->pending = 0;
    ctx->resume = resume;

    for (i = 0; i < n; i++) {
        fetches[i].status = 0;
        fetches[i].done = 0;
        ngx_str_null(&fetches[i].body);

        ctx->sku = fetches[i].sku;

        if (ngx_http_complex_value(r, uri, &path) != NGX_OK) {
            return NGX_ERROR;
        }

        ngx_str_null(&args);
        flags = NGX_HTTP_LOG_UNSAFE;

        if (ngx_http_parse_unsafe_uri(r, &path, &args, &flags) != NGX_OK) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "cart: unsafe upstream URI \"%V\"", &path);
            return NGX_ERROR;
        }

        ps = ngx_palloc(r->pool, sizeof(ngx_http_post_subrequest_t));
        sctx = ngx_pcalloc(r->pool, sizeof(ngx_http_cart_ctx_t));
        if (ps == NULL || sctx == NULL) {
            return NGX_ERROR;
        }

        ps->handler = ngx_http_cart_fetch_done;
        ps->data = &fetches[i];

        if (ngx_http_subrequest(r, &path, &args, &sr, ps,
                                NGX_HTTP_SUBREQUEST_IN_MEMORY
                                |NGX_HTTP_SUBREQUEST_WAITED)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        /* a lookup, whatever the client's method and body were */
        sr->method = NGX_HTTP_GET;
        sr->method_name = ngx_http_core_get_method;
        sr->request_body = NULL;
        sr->header_only = 0;

        sctx->sku = fetches[i].sku;
        sctx->skus = ctx->skus;
        ngx_http_set_ctx(sr, sctx, ngx_http_cart_module);

        ctx->pending++;
    }

    ngx_str_null(&ctx->sku);

    r->write_event_handler = ngx_http_cart_fetch_wake;

    return NGX_OK;
}


static ngx_int_t
ngx_http_cart_fetch_done(ngx_http_request_t *r, void *data, ngx_int_t rc)
{
    ngx_buf_t              *b;
    ngx_http_cart_ctx_t    *pctx;
    ngx_http_cart_fetch_t  *f = data;

    /*
     * nginx may finalize a subrequest more than once (an error status
     * first, then its error page; a non-active subrequest, then again when
     * it becomes active): the first call decides.
     */

    if (f->done) {
        return rc;
    }

    f->done = 1;

    pctx = ngx_http_get_module_ctx(r->parent, ngx_http_cart_module);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        f->status = rc;

    } else if (rc == NGX_OK) {
        f->status = r->headers_out.status;

        if (r->out) {
            b = r->out->buf;
            f->body.data = b->pos;
            f->body.len = b->last - b->pos;
        }

    } else {
        /* the upstream failed: timeout, refused, body over the buffer */
        f->status = 0;
    }

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "cart subrequest \"%V\" done: %i, %uz bytes",
                   &f->sku, f->status, f->body.len);

    pctx->pending--;

    return rc;
}


static void
ngx_http_cart_fetch_wake(ngx_http_request_t *r)
{
    ngx_http_cart_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_cart_module);

    if (ctx->pending) {
        return;
    }

    r->write_event_handler = ngx_http_request_empty_handler;

    ctx->resume(r);
}
