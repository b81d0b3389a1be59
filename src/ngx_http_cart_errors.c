/*
 * A header and body filter: an error status on a cart_api or cart_admin
 * location that the module did not answer itself (ctx->answered) gets the
 * API's {"error":{"code","message"}} instead of nginx's HTML page.
 */

#include "ngx_http_cart_errors.h"
#include "ngx_http_cart_reply.h"


typedef struct {
    ngx_uint_t                 status;
    ngx_str_t                  body;
} ngx_http_cart_error_page_t;


#define ngx_http_cart_error_page(status, code, message)                       \
    { status, ngx_string("{\"error\":{\"code\":\"" code                       \
                         "\",\"message\":\"" message "\"}}") }

static ngx_http_cart_error_page_t  ngx_http_cart_error_pages[] = {
    ngx_http_cart_error_page(400, "bad_request", "the request is malformed"),
    ngx_http_cart_error_page(401, "unauthorized", "sign in to use the cart"),
    ngx_http_cart_error_page(403, "forbidden", "access is denied"),
    ngx_http_cart_error_page(404, "not_found", "no such cart resource"),
    ngx_http_cart_error_page(405, "method_not_allowed",
                             "this method is not allowed here"),
    ngx_http_cart_error_page(408, "request_timeout",
                             "the request was not received in time"),
    ngx_http_cart_error_page(411, "length_required",
                             "the request needs a body length"),
    ngx_http_cart_error_page(413, "body_too_large",
                             "the request body is too large"),
    ngx_http_cart_error_page(414, "uri_too_long", "the URI is too long"),
    ngx_http_cart_error_page(415, "unsupported_media_type",
                             "the body must be application/json"),
    ngx_http_cart_error_page(429, "too_many_requests",
                             "too many requests, retry later"),
    ngx_http_cart_error_page(500, "internal_error", "internal error"),
    ngx_http_cart_error_page(502, "bad_gateway",
                             "an upstream answered badly, retry later"),
    ngx_http_cart_error_page(503, "service_unavailable",
                             "the service is unavailable, retry later"),
    ngx_http_cart_error_page(504, "gateway_timeout",
                             "an upstream did not answer in time, "
                             "retry later"),
    ngx_http_cart_error_page(0, "error", "the request failed")
};


static ngx_int_t ngx_http_cart_errors_header_filter(ngx_http_request_t *r);
static ngx_int_t ngx_http_cart_errors_body_filter(ngx_http_request_t *r,
    ngx_chain_t *in);


static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;
static ngx_http_output_body_filter_pt    ngx_http_next_body_filter;


ngx_int_t
ngx_http_cart_errors_init(ngx_conf_t *cf)
{
    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_cart_errors_header_filter;

    ngx_http_next_body_filter = ngx_http_top_body_filter;
    ngx_http_top_body_filter = ngx_http_cart_errors_body_filter;

    return NGX_OK;
}


static ngx_int_t
ngx_http_cart_errors_header_filter(ngx_http_request_t *r)
{
    ngx_http_cart_ctx_t         *ctx;
    ngx_http_cart_loc_conf_t    *lcf;
    ngx_http_cart_error_page_t  *page;

    if (r != r->main || r->headers_out.status < NGX_HTTP_BAD_REQUEST) {
        return ngx_http_next_header_filter(r);
    }

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_cart_module);

    if (lcf == NULL || (!lcf->api && !lcf->admin)) {
        return ngx_http_next_header_filter(r);
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_cart_module);

    if (ctx == NULL) {
        ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_cart_ctx_t));
        if (ctx == NULL) {
            return NGX_ERROR;
        }

        ngx_http_set_ctx(r, ctx, ngx_http_cart_module);

    } else if (ctx->answered) {
        return ngx_http_next_header_filter(r);
    }

    for (page = ngx_http_cart_error_pages; page->status; page++) {
        if (page->status == r->headers_out.status) {
            break;
        }
    }

    ctx->error_page = &page->body;

    ngx_str_set(&r->headers_out.content_type, "application/json");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;
    r->headers_out.charset.len = 0;
    r->headers_out.content_length_n = page->body.len;

    if (r->headers_out.content_length) {
        r->headers_out.content_length->hash = 0;
        r->headers_out.content_length = NULL;
    }

    ngx_http_clear_accept_ranges(r);
    ngx_http_clear_last_modified(r);
    ngx_http_clear_etag(r);

    if (ngx_http_cart_set_header(r, "Cache-Control", "no-store") == NULL) {
        return NGX_ERROR;
    }

    if (r->headers_out.status == NGX_HTTP_TOO_MANY_REQUESTS
        || r->headers_out.status == NGX_HTTP_BAD_GATEWAY
        || r->headers_out.status == NGX_HTTP_SERVICE_UNAVAILABLE
        || r->headers_out.status == NGX_HTTP_GATEWAY_TIME_OUT)
    {
        if (ngx_http_cart_set_header(r, "Retry-After", "1") == NULL) {
            return NGX_ERROR;
        }
    }

    return ngx_http_next_header_filter(r);
}


/* nginx's page is dropped, ours goes instead, once, with the last buffer */

static ngx_int_t
ngx_http_cart_errors_body_filter(ngx_http_request_t *r, ngx_chain_t *in)
{
    ngx_buf_t            *b;
    ngx_chain_t           out, *cl;
    ngx_http_cart_ctx_t  *ctx;

    if (r != r->main) {
        return ngx_http_next_body_filter(r, in);
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_cart_module);

    if (ctx == NULL || ctx->error_page == NULL) {
        return ngx_http_next_body_filter(r, in);
    }

    for (cl = in; cl; cl = cl->next) {
        if (cl->buf->last_buf) {
            break;
        }

        cl->buf->pos = cl->buf->last;
    }

    if (cl == NULL) {
        return NGX_OK;
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->pos = ctx->error_page->data;
    b->last = b->pos + ctx->error_page->len;
    b->memory = 1;
    b->last_buf = 1;
    b->last_in_chain = 1;

    ctx->error_page = NULL;

    out.buf = b;
    out.next = NULL;

    return ngx_http_next_body_filter(r, &out);
}
