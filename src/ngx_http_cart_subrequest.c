/*
 * Subrequests, the way ngx_http_auth_request_module does it, made
 * parallel: each subrequest is in memory and "waited"; its post handler
 * records status and body and counts down; the parent's write event
 * handler, which nginx posts whenever a subrequest finishes, resumes the
 * parent once the count is zero. Other asynchronous work (a Redis read
 * running alongside) joins the count with hold/release.
 */

#include "ngx_http_cart.h"
#include "ngx_http_cart_json.h"
#include "ngx_http_cart_status.h"


/* one subrequest answering several SKUs ($cart_skus) */
typedef struct {
    ngx_http_cart_fetch_t  *fetches;
    ngx_uint_t              n;
    ngx_uint_t              done;
    ngx_int_t               parsed;     /* 0: not yet; NGX_OK; NGX_ERROR */
    yajl_val                doc;
} ngx_http_cart_batch_t;


/* a subrequest to make: queued, started, done */
struct ngx_http_cart_job_s {
    ngx_str_t                      path;
    ngx_str_t                      args;
    ngx_http_post_subrequest_t     ps;
    ngx_http_cart_vars_t          *vars;
    ngx_http_request_t            *sr;
    ngx_http_cart_job_t           *next;
    ngx_uint_t                     method;     /* 0: a GET lookup */
    ngx_str_t                      payload;    /* a write's body */
    ngx_uint_t                     kind;       /* for the metrics */
    ngx_msec_t                     start;
    unsigned                       done:1;
};


static ngx_str_t  ngx_http_cart_post_method = ngx_string("POST");
static ngx_str_t  ngx_http_cart_delete_method = ngx_string("DELETE");


static void ngx_http_cart_fetch_reset(ngx_http_cart_fetch_t *fetches,
    ngx_uint_t n);
static ngx_int_t ngx_http_cart_fetch_run(ngx_http_request_t *r,
    ngx_http_cart_wave_t *wave);
static void ngx_http_cart_fetch_finished(ngx_http_request_t *r, void *data,
    ngx_int_t rc, ngx_int_t status);
static ngx_uint_t ngx_http_cart_fetch_kind(ngx_http_request_t *r,
    ngx_http_complex_value_t *uri, ngx_uint_t method);
static void ngx_http_cart_fetch_deadline(ngx_event_t *ev);
static void ngx_http_cart_fetch_deadline_cleanup(void *data);
static ngx_int_t ngx_http_cart_fetch_one(ngx_http_request_t *r,
    ngx_http_complex_value_t *uri, ngx_http_post_subrequest_pt handler,
    void *data, ngx_str_t *sku, ngx_str_t *skus, ngx_uint_t method);
static ngx_int_t ngx_http_cart_fetch_batch(ngx_http_request_t *r,
    ngx_http_complex_value_t *uri, ngx_http_cart_fetch_t *fetches,
    ngx_uint_t n);
static ngx_int_t ngx_http_cart_fetch_done(ngx_http_request_t *r, void *data,
    ngx_int_t rc);
static ngx_int_t ngx_http_cart_batch_done(ngx_http_request_t *r, void *data,
    ngx_int_t rc);
static ngx_int_t ngx_http_cart_fetch_result(ngx_http_request_t *r,
    ngx_int_t rc, ngx_int_t *status, ngx_str_t *body);
static ngx_int_t ngx_http_cart_fetch_headers(ngx_http_request_t *r,
    ngx_http_request_t *sr);
static ngx_int_t ngx_http_cart_fetch_body(ngx_http_request_t *r,
    ngx_http_request_t *sr, ngx_http_cart_job_t *job);
static void ngx_http_cart_fetch_wake(ngx_http_request_t *r);
static ngx_int_t ngx_http_cart_capture_filter(ngx_http_request_t *r,
    ngx_chain_t *in);
static ngx_uint_t ngx_http_cart_fetch_is_batch(ngx_http_complex_value_t *uri);
static ngx_int_t ngx_http_cart_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);


static ngx_http_output_body_filter_pt  ngx_http_next_body_filter;


static ngx_http_variable_t  ngx_http_cart_variables[] = {

    { ngx_string("cart_sku"), NULL, ngx_http_cart_variable,
      offsetof(ngx_http_cart_vars_t, sku), NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("cart_skus"), NULL, ngx_http_cart_variable,
      offsetof(ngx_http_cart_vars_t, skus), NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("cart_country"), NULL, ngx_http_cart_variable,
      offsetof(ngx_http_cart_vars_t, country), NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("cart_postal_code"), NULL, ngx_http_cart_variable,
      offsetof(ngx_http_cart_vars_t, postal_code),
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("cart_hold_id"), NULL, ngx_http_cart_variable,
      offsetof(ngx_http_cart_vars_t, hold_id), NGX_HTTP_VAR_NOCACHEABLE, 0 },

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


/* $cart_sku and the others: the parent's while the URI is evaluated, the
 * subrequest's own inside the upstream location */

static ngx_int_t
ngx_http_cart_variable(ngx_http_request_t *r, ngx_http_variable_value_t *v,
    uintptr_t data)
{
    ngx_str_t             *s;
    ngx_http_cart_vars_t  *vars;

    vars = ngx_http_get_module_ctx(r, ngx_http_cart_module);

    if (vars == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    s = (ngx_str_t *) ((u_char *) vars + data);

    v->data = s->data;
    v->len = s->len;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    return NGX_OK;
}


/* the fetches of a group, before it starts: nothing answered yet */

static void
ngx_http_cart_fetch_reset(ngx_http_cart_fetch_t *fetches, ngx_uint_t n)
{
    ngx_uint_t  i;

    for (i = 0; i < n; i++) {
        fetches[i].status = 0;
        fetches[i].done = 0;
        fetches[i].batch = NULL;
        ngx_str_null(&fetches[i].body);
    }
}


ngx_int_t
ngx_http_cart_fetch_start(ngx_http_request_t *r,
    ngx_http_complex_value_t *uri, ngx_http_cart_fetch_t *fetches,
    ngx_uint_t n)
{
    ngx_uint_t  i;

    ngx_http_cart_fetch_reset(fetches, n);

    if (ngx_http_cart_fetch_is_batch(uri)) {
        return ngx_http_cart_fetch_batch(r, uri, fetches, n);
    }

    for (i = 0; i < n; i++) {
        if (ngx_http_cart_fetch_one(r, uri, ngx_http_cart_fetch_done,
                                    &fetches[i], &fetches[i].sku, NULL, 0)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_cart_send_start(ngx_http_request_t *r,
    ngx_http_complex_value_t *uri, ngx_uint_t method,
    ngx_http_cart_fetch_t *fetches, ngx_uint_t n)
{
    ngx_uint_t  i;

    if (method != NGX_HTTP_POST && method != NGX_HTTP_DELETE) {
        return NGX_ERROR;
    }

    ngx_http_cart_fetch_reset(fetches, n);

    for (i = 0; i < n; i++) {
        if (ngx_http_cart_fetch_one(r, uri, ngx_http_cart_fetch_done,
                                    &fetches[i], &fetches[i].sku, NULL,
                                    method)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/* batches of up to NGX_HTTP_CART_BATCH_MAX SKUs, one subrequest each */

static ngx_int_t
ngx_http_cart_fetch_batch(ngx_http_request_t *r,
    ngx_http_complex_value_t *uri, ngx_http_cart_fetch_t *fetches,
    ngx_uint_t n)
{
    u_char                 *p;
    size_t                  len;
    ngx_str_t               skus;
    ngx_uint_t              i, k, m;
    ngx_http_cart_batch_t  *batch;

    for (i = 0; i < n; i += m) {
        m = ngx_min(n - i, NGX_HTTP_CART_BATCH_MAX);

        batch = ngx_pcalloc(r->pool, sizeof(ngx_http_cart_batch_t));
        if (batch == NULL) {
            return NGX_ERROR;
        }

        batch->fetches = &fetches[i];
        batch->n = m;

        len = 0;
        for (k = 0; k < m; k++) {
            len += fetches[i + k].sku.len + 1;
            fetches[i + k].batch = batch;
        }

        skus.data = ngx_pnalloc(r->pool, len);
        if (skus.data == NULL) {
            return NGX_ERROR;
        }

        p = skus.data;
        for (k = 0; k < m; k++) {
            if (k) {
                *p++ = ',';
            }

            p = ngx_cpymem(p, fetches[i + k].sku.data, fetches[i + k].sku.len);
        }

        skus.len = p - skus.data;

        if (ngx_http_cart_fetch_one(r, uri, ngx_http_cart_batch_done, batch,
                                    NULL, &skus, 0)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/* a job: a lookup (method 0), or a write of the fetch "data" */

static ngx_int_t
ngx_http_cart_fetch_one(ngx_http_request_t *r, ngx_http_complex_value_t *uri,
    ngx_http_post_subrequest_pt handler, void *data, ngx_str_t *sku,
    ngx_str_t *skus, ngx_uint_t method)
{
    ngx_uint_t              flags;
    ngx_http_cart_job_t    *job;
    ngx_http_cart_vars_t   *vars;
    ngx_http_cart_wave_t   *wave;
    ngx_http_cart_fetch_t  *f;

    wave = ngx_http_get_module_ctx(r, ngx_http_cart_module);

    job = ngx_pcalloc(r->pool, sizeof(ngx_http_cart_job_t));
    vars = ngx_pcalloc(r->pool, sizeof(ngx_http_cart_vars_t));
    if (job == NULL || vars == NULL) {
        return NGX_ERROR;
    }

    if (sku) {
        wave->vars.sku = *sku;
        vars->sku = *sku;
    }

    if (skus) {
        wave->vars.skus = *skus;
        vars->skus = *skus;
    }

    if (method) {
        f = data;
        wave->vars.hold_id = f->hold_id;
        vars->hold_id = f->hold_id;
        job->method = method;
        job->payload = f->payload;
    }

    if (ngx_http_complex_value(r, uri, &job->path) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_str_null(&wave->vars.sku);
    ngx_str_null(&wave->vars.skus);
    ngx_str_null(&wave->vars.hold_id);

    flags = NGX_HTTP_LOG_UNSAFE;

    if (ngx_http_parse_unsafe_uri(r, &job->path, &job->args, &flags)
        != NGX_OK)
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "cart: unsafe upstream URI \"%V\"", &job->path);
        return NGX_ERROR;
    }

    vars->country = wave->vars.country;
    vars->postal_code = wave->vars.postal_code;
    vars->capture = 1;

    job->vars = vars;
    job->kind = ngx_http_cart_fetch_kind(r, uri, method);
    job->ps.handler = handler;
    job->ps.data = data;

    if (wave->last == NULL) {
        wave->last = &wave->jobs;
    }

    *wave->last = job;
    wave->last = &job->next;

    if (wave->next == NULL) {
        wave->next = job;
    }

    wave->pending++;

    return ngx_http_cart_fetch_run(r, wave);
}


/* starts queued subrequests while fewer than cart_subrequests run */

static ngx_int_t
ngx_http_cart_fetch_run(ngx_http_request_t *r, ngx_http_cart_wave_t *wave)
{
    ngx_http_request_t        *sr;
    ngx_http_cart_job_t       *job;
    ngx_http_cart_loc_conf_t  *lcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_cart_module);

    while (wave->next && wave->running < lcf->subrequests) {
        job = wave->next;
        wave->next = job->next;

        if (ngx_http_subrequest(r, &job->path, &job->args, &sr, &job->ps,
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

        if (ngx_http_cart_fetch_headers(r, sr) != NGX_OK) {
            return NGX_ERROR;
        }

        /* a write: its own method and body, asked for explicitly */
        if (job->method && ngx_http_cart_fetch_body(r, sr, job) != NGX_OK) {
            return NGX_ERROR;
        }

        ngx_http_set_ctx(sr, job->vars, ngx_http_cart_module);

        job->sr = sr;
        job->start = ngx_current_msec;
        wave->running++;

        ngx_http_cart_metrics_inc(r, upstreams[job->kind].sent);
    }

    return NGX_OK;
}


/* the upstream a job asks, by the directive its URI comes from */

static ngx_uint_t
ngx_http_cart_fetch_kind(ngx_http_request_t *r, ngx_http_complex_value_t *uri,
    ngx_uint_t method)
{
    ngx_http_cart_loc_conf_t  *lcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_cart_module);

    if (uri == lcf->catalog) {
        return NGX_HTTP_CART_UP_CATALOG;
    }

    if (uri == lcf->inventory) {
        return NGX_HTTP_CART_UP_INVENTORY;
    }

    if (uri == lcf->shipping) {
        return NGX_HTTP_CART_UP_SHIPPING;
    }

    if (uri == lcf->reserve) {
        return method == NGX_HTTP_DELETE ? NGX_HTTP_CART_UP_RELEASE
                                         : NGX_HTTP_CART_UP_RESERVE;
    }

    return NGX_HTTP_CART_UP_OTHER;
}


/* request headers that describe the client's body, its credentials or
 * its preconditions: none of them is the lookup's */

static ngx_str_t  ngx_http_cart_fetch_hidden[] = {
    ngx_string("content-length"),
    ngx_string("transfer-encoding"),
    ngx_string("content-type"),
    ngx_string("expect"),
    ngx_string("cookie"),
    ngx_string("authorization"),
    ngx_string("proxy-authorization"),
    ngx_string("idempotency-key"),
    ngx_string("if-match"),
    ngx_string("if-none-match"),
    ngx_string("if-modified-since"),
    ngx_string("if-unmodified-since"),
    ngx_string("if-range"),
    ngx_string("range"),
    ngx_null_string
};


static ngx_int_t
ngx_http_cart_fetch_headers(ngx_http_request_t *r, ngx_http_request_t *sr)
{
    ngx_str_t               *name;
    ngx_uint_t               i, n;
    ngx_list_part_t         *part;
    ngx_table_elt_t         *h, *copy;
    ngx_http_headers_in_t   *in;

    in = &sr->headers_in;

    n = 0;
    for (part = &r->headers_in.headers.part; part; part = part->next) {
        n += part->nelts;
    }

    if (ngx_list_init(&in->headers, r->pool, n ? n : 1,
                      sizeof(ngx_table_elt_t))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    for (part = &r->headers_in.headers.part; part; part = part->next) {
        h = part->elts;

        for (i = 0; i < part->nelts; i++) {

            for (name = ngx_http_cart_fetch_hidden; name->len; name++) {
                if (h[i].key.len == name->len
                    && ngx_strncmp(h[i].lowcase_key, name->data, name->len)
                       == 0)
                {
                    break;
                }
            }

            if (name->len) {
                continue;
            }

            copy = ngx_list_push(&in->headers);
            if (copy == NULL) {
                return NGX_ERROR;
            }

            *copy = h[i];
        }
    }

    in->content_length = NULL;
    in->content_type = NULL;
    in->transfer_encoding = NULL;
    in->expect = NULL;
    in->authorization = NULL;
    in->if_match = NULL;
    in->if_none_match = NULL;
    in->if_modified_since = NULL;
    in->if_unmodified_since = NULL;
    in->if_range = NULL;
    in->range = NULL;
    in->cookies.nelts = 0;
    ngx_str_null(&in->user);
    ngx_str_null(&in->passwd);

    in->content_length_n = -1;
    in->chunked = 0;

    return NGX_OK;
}


/*
 * A write's method and body: the JSON payload in one memory buffer as the
 * subrequest's own request body (the proxy module sends it with its
 * Content-Length from content_length_n), and our Content-Type in place of
 * the client's, which ngx_http_cart_fetch_headers() left out.
 */

static ngx_int_t
ngx_http_cart_fetch_body(ngx_http_request_t *r, ngx_http_request_t *sr,
    ngx_http_cart_job_t *job)
{
    ngx_buf_t                *b;
    ngx_chain_t              *cl;
    ngx_table_elt_t          *h;
    ngx_http_request_body_t  *rb;

    if (job->method == NGX_HTTP_POST) {
        sr->method = NGX_HTTP_POST;
        sr->method_name = ngx_http_cart_post_method;

    } else {
        sr->method = NGX_HTTP_DELETE;
        sr->method_name = ngx_http_cart_delete_method;
    }

    if (job->payload.len == 0) {
        return NGX_OK;
    }

    rb = ngx_pcalloc(r->pool, sizeof(ngx_http_request_body_t));
    b = ngx_calloc_buf(r->pool);
    cl = ngx_alloc_chain_link(r->pool);
    if (rb == NULL || b == NULL || cl == NULL) {
        return NGX_ERROR;
    }

    /* read only, from its start: an upstream retry sends it again */
    b->start = job->payload.data;
    b->pos = b->start;
    b->last = b->start + job->payload.len;
    b->end = b->last;
    b->memory = 1;
    b->last_buf = 1;

    cl->buf = b;
    cl->next = NULL;

    rb->bufs = cl;
    rb->rest = 0;

    sr->request_body = rb;
    sr->headers_in.content_length_n = job->payload.len;

    h = ngx_list_push(&sr->headers_in.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    ngx_str_set(&h->key, "Content-Type");
    ngx_str_set(&h->value, "application/json");
    h->lowcase_key = (u_char *) "content-type";
    h->hash = ngx_hash_key(h->lowcase_key, h->key.len);

    sr->headers_in.content_type = h;

    return NGX_OK;
}


/*
 * nginx may finalize a subrequest more than once (an error status first,
 * then its error page; a non-active subrequest, then again when it becomes
 * active): the first call decides.
 */

static ngx_int_t
ngx_http_cart_fetch_done(ngx_http_request_t *r, void *data, ngx_int_t rc)
{
    ngx_http_cart_wave_t   *wave;
    ngx_http_cart_fetch_t  *f = data;

    if (f->done) {
        return rc;
    }

    f->done = 1;

    ngx_http_cart_fetch_result(r, rc, &f->status, &f->body);
    ngx_http_cart_fetch_finished(r, data, rc, f->status);

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "cart subrequest \"%V\" done: %i, %uz bytes",
                   &f->sku, f->status, f->body.len);

    wave = ngx_http_get_module_ctx(r->parent, ngx_http_cart_module);
    wave->pending--;

    return rc;
}


static ngx_int_t
ngx_http_cart_batch_done(ngx_http_request_t *r, void *data, ngx_int_t rc)
{
    ngx_str_t               body;
    ngx_int_t               status;
    ngx_uint_t              i;
    ngx_http_cart_wave_t   *wave;
    ngx_http_cart_batch_t  *batch = data;

    if (batch->done) {
        return rc;
    }

    batch->done = 1;

    ngx_http_cart_fetch_result(r, rc, &status, &body);
    ngx_http_cart_fetch_finished(r, data, rc, status);

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "cart batch subrequest of %ui done: %i, %uz bytes",
                   batch->n, status, body.len);

    for (i = 0; i < batch->n; i++) {
        batch->fetches[i].done = 1;
        batch->fetches[i].status = status;
        batch->fetches[i].body = body;
    }

    wave = ngx_http_get_module_ctx(r->parent, ngx_http_cart_module);
    wave->pending--;

    return rc;
}


static ngx_int_t
ngx_http_cart_fetch_result(ngx_http_request_t *r, ngx_int_t rc,
    ngx_int_t *status, ngx_str_t *body)
{
    ngx_http_cart_vars_t  *vars;

    vars = ngx_http_get_module_ctx(r, ngx_http_cart_module);

    ngx_str_null(body);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        *status = rc;

    } else if (rc == NGX_OK && !vars->too_big) {
        *status = r->headers_out.status;
        body->data = vars->body;
        body->len = vars->len;

    } else {
        /* the upstream failed: timeout, refused, body over the buffer */
        *status = 0;
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_cart_subrequest_init(ngx_conf_t *cf)
{
    ngx_http_next_body_filter = ngx_http_top_body_filter;
    ngx_http_top_body_filter = ngx_http_cart_capture_filter;

    return NGX_OK;
}


/*
 * Our lookups' answers are kept here, before nginx's in-memory postpone
 * filter: there a body over subrequest_output_buffer_size is an error that
 * closes the client's connection; here it is a failed lookup. Nothing is
 * passed on: the client never sees a lookup's bytes.
 */

static ngx_int_t
ngx_http_cart_capture_filter(ngx_http_request_t *r, ngx_chain_t *in)
{
    off_t                      size;
    ssize_t                    n;
    ngx_buf_t                 *b;
    ngx_chain_t               *cl;
    ngx_http_cart_vars_t      *vars;
    ngx_http_core_loc_conf_t  *clcf;

    if (r == r->main || !r->subrequest_in_memory) {
        return ngx_http_next_body_filter(r, in);
    }

    vars = ngx_http_get_module_ctx(r, ngx_http_cart_module);

    if (vars == NULL || !vars->capture) {
        return ngx_http_next_body_filter(r, in);
    }

    for (cl = in; cl; cl = cl->next) {
        b = cl->buf;
        size = ngx_buf_size(b);

        if (size == 0 || ngx_buf_special(b) || vars->too_big) {
            goto consumed;
        }

        if (vars->body == NULL) {
            clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

            vars->size = clcf->subrequest_output_buffer_size;

            if (r->headers_out.content_length_n >= 0
                && (size_t) r->headers_out.content_length_n < vars->size)
            {
                vars->size = r->headers_out.content_length_n;
            }

            vars->body = ngx_pnalloc(r->pool, vars->size + 1);
            if (vars->body == NULL) {
                return NGX_ERROR;
            }
        }

        if ((size_t) size > vars->size - vars->len) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "cart: the answer of \"%V\" is over "
                          "subrequest_output_buffer_size (%uz)",
                          &r->uri, vars->size);
            vars->too_big = 1;
            goto consumed;
        }

        if (ngx_buf_in_memory(b)) {
            vars->len += ngx_cpymem(vars->body + vars->len, b->pos, size)
                         - (vars->body + vars->len);

        } else {
            /* a static file: read as the copy filter would have */
            n = ngx_read_file(b->file, vars->body + vars->len, size,
                              b->file_pos);
            if (n != size) {
                return NGX_ERROR;
            }

            vars->len += n;
        }

    consumed:

        if (ngx_buf_in_memory(b)) {
            b->pos = b->last;
        }

        if (b->in_file) {
            b->file_pos = b->file_last;
        }
    }

    return NGX_OK;
}


void
ngx_http_cart_fetch_address(ngx_http_request_t *r, ngx_str_t *country,
    ngx_str_t *postal_code)
{
    ngx_http_cart_wave_t  *wave;

    wave = ngx_http_get_module_ctx(r, ngx_http_cart_module);

    wave->vars.country = *country;
    wave->vars.postal_code = *postal_code;
}


void
ngx_http_cart_fetch_hold(ngx_http_request_t *r)
{
    ngx_http_cart_wave_t  *wave;

    wave = ngx_http_get_module_ctx(r, ngx_http_cart_module);
    wave->pending++;
}


void
ngx_http_cart_fetch_release(ngx_http_request_t *r)
{
    ngx_http_cart_wave_t  *wave;

    wave = ngx_http_get_module_ctx(r, ngx_http_cart_module);

    if (--wave->pending == 0 && wave->resume) {
        ngx_http_cart_fetch_wake(r);
    }
}


void
ngx_http_cart_fetch_wait(ngx_http_request_t *r, ngx_http_cart_resume_pt resume)
{
    ngx_pool_cleanup_t        *cln;
    ngx_http_cart_wave_t      *wave;
    ngx_http_cart_loc_conf_t  *lcf;

    wave = ngx_http_get_module_ctx(r, ngx_http_cart_module);
    lcf = ngx_http_get_module_loc_conf(r, ngx_http_cart_module);

    wave->resume = resume;
    r->write_event_handler = ngx_http_cart_fetch_wake;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "cart wave: %ui pending", wave->pending);

    if (wave->pending == 0) {
        ngx_http_cart_fetch_wake(r);
        return;
    }

    if (wave->deadline == NULL) {
        wave->deadline = ngx_pcalloc(r->pool, sizeof(ngx_event_t));
        cln = ngx_pool_cleanup_add(r->pool, 0);
        if (wave->deadline == NULL || cln == NULL) {
            return;
        }

        wave->deadline->handler = ngx_http_cart_fetch_deadline;
        wave->deadline->data = r;
        wave->deadline->log = r->connection->log;

        cln->handler = ngx_http_cart_fetch_deadline_cleanup;
        cln->data = wave->deadline;
    }

    if (!wave->deadline->timer_set) {
        ngx_add_timer(wave->deadline, lcf->lookup_timeout);
    }
}


static void
ngx_http_cart_fetch_wake(ngx_http_request_t *r)
{
    ngx_http_cart_job_t      *job;
    ngx_http_cart_wave_t     *wave;
    ngx_http_cart_resume_pt   resume;

    wave = ngx_http_get_module_ctx(r, ngx_http_cart_module);

    if (wave->next && ngx_http_cart_fetch_run(r, wave) != NGX_OK) {
        /* what could not start fails as a lookup */
        for (job = wave->next; job; job = job->next) {
            ngx_http_cart_fetch_finished(NULL, job, 0, 0);
            wave->pending--;
        }

        wave->next = NULL;
    }

    if (wave->pending || wave->resume == NULL) {
        return;
    }

    if (wave->deadline && wave->deadline->timer_set) {
        ngx_del_timer(wave->deadline);
    }

    /* once per wave: the next wave sets its own */
    resume = wave->resume;
    wave->resume = NULL;
    r->write_event_handler = ngx_http_request_empty_handler;

    resume(r);
}


/*
 * A subrequest's job is done (sr: the subrequest), or a job that never
 * started is given up (sr NULL, data the job): its lookups fail.
 */

static void
ngx_http_cart_fetch_finished(ngx_http_request_t *sr, void *data,
    ngx_int_t rc, ngx_int_t status)
{
    ngx_uint_t              i;
    ngx_http_cart_job_t    *job;
    ngx_http_cart_wave_t   *wave;
    ngx_http_cart_fetch_t  *f;
    ngx_http_cart_batch_t  *batch;

    if (sr) {
        wave = ngx_http_get_module_ctx(sr->parent, ngx_http_cart_module);

        for (job = wave->jobs; job; job = job->next) {
            if (job->sr == sr) {
                job->done = 1;
                wave->running--;
                ngx_http_cart_metrics_upstream(sr, job->kind, rc, status,
                                               ngx_current_msec - job->start);
                break;
            }
        }

        return;
    }

    job = data;

    if (job->done) {
        return;
    }

    job->done = 1;

    if (job->ps.handler == ngx_http_cart_fetch_done) {
        f = job->ps.data;
        f->done = 1;
        f->status = 0;

    } else {
        batch = job->ps.data;
        batch->done = 1;

        for (i = 0; i < batch->n; i++) {
            batch->fetches[i].done = 1;
            batch->fetches[i].status = 0;
        }
    }
}


/*
 * cart_lookup_timeout: lookups not started are given up, and those waiting
 * for an upstream time out now, through the upstream's own timeout path,
 * as if its proxy timeout had passed; a view goes on without them.
 */

static void
ngx_http_cart_fetch_deadline(ngx_event_t *ev)
{
    ngx_uint_t              n;
    ngx_event_t            *uev;
    ngx_connection_t       *c;
    ngx_http_request_t     *r, *sr;
    ngx_http_upstream_t    *u;
    ngx_http_cart_job_t    *job;
    ngx_http_cart_wave_t   *wave;

    r = ev->data;
    c = r->connection;
    wave = ngx_http_get_module_ctx(r, ngx_http_cart_module);

    n = 0;

    for (job = wave->next; job; job = job->next) {
        ngx_http_cart_fetch_finished(NULL, job, 0, 0);
        wave->pending--;
        n++;
    }

    wave->next = NULL;

    for (job = wave->jobs; job; job = job->next) {
        sr = job->sr;

        if (sr == NULL || job->done) {
            continue;
        }

        n++;
        u = sr->upstream;

        if (u == NULL || u->peer.connection == NULL) {
            continue;
        }

        uev = u->peer.connection->read->timer_set
              ? u->peer.connection->read : u->peer.connection->write;

        if (uev->timer_set) {
            ngx_del_timer(uev);
        }

        /* no next upstream: this lookup is over */
        u->peer.tries = 1;

        uev->timedout = 1;
        ngx_post_event(uev, &ngx_posted_events);
    }

    ngx_log_error(NGX_LOG_WARN, c->log, 0,
                  "cart: %ui lookups not done within cart_lookup_timeout",
                  n);

    if (wave->pending == 0) {
        ngx_http_cart_fetch_wake(r);
        ngx_http_run_posted_requests(c);
    }
}


static void
ngx_http_cart_fetch_deadline_cleanup(void *data)
{
    ngx_event_t  *ev = data;

    if (ev->timer_set) {
        ngx_del_timer(ev);
    }
}


ngx_int_t
ngx_http_cart_fetch_doc(ngx_http_request_t *r, ngx_http_cart_fetch_t *f,
    yajl_val *doc)
{
    size_t                  i;
    yajl_val                v, obj;
    ngx_http_cart_batch_t  *batch;

    if (f->status == NGX_HTTP_NOT_FOUND) {
        return NGX_DECLINED;
    }

    if (f->status != NGX_HTTP_OK) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "cart: upstream answered %i for \"%V\"",
                      f->status, &f->sku);
        return NGX_ERROR;
    }

    batch = f->batch;

    if (batch == NULL) {
        v = ngx_http_cart_json_parse(r->pool, f->body.data, f->body.len);

        if (!YAJL_IS_OBJECT(v)) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "cart: upstream answer for \"%V\" is not a JSON "
                          "object", &f->sku);
            return NGX_ERROR;
        }

        *doc = v;
        return NGX_OK;
    }

    /* a batch answer is parsed once for all of its SKUs */

    if (batch->parsed == 0) {
        batch->doc = ngx_http_cart_json_parse(r->pool, f->body.data,
                                              f->body.len);
        batch->parsed = YAJL_IS_OBJECT(batch->doc) ? NGX_OK : NGX_ERROR;

        if (batch->parsed != NGX_OK) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "cart: batch upstream answer is not a JSON object");
        }
    }

    if (batch->parsed != NGX_OK) {
        return NGX_ERROR;
    }

    obj = batch->doc;

    for (i = 0; i < obj->u.object.len; i++) {
        if (ngx_strlen(obj->u.object.keys[i]) == f->sku.len
            && ngx_strncmp(obj->u.object.keys[i], f->sku.data, f->sku.len)
               == 0)
        {
            v = obj->u.object.values[i];

            if (YAJL_IS_NULL(v)) {
                return NGX_DECLINED;
            }

            if (!YAJL_IS_OBJECT(v)) {
                ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                              "cart: batch upstream answer for \"%V\" is "
                              "not a JSON object", &f->sku);
                return NGX_ERROR;
            }

            *doc = v;
            return NGX_OK;
        }
    }

    return NGX_DECLINED;
}


/* an upstream URI with $cart_skus is a batch upstream (contract §5) */

static ngx_uint_t
ngx_http_cart_fetch_is_batch(ngx_http_complex_value_t *uri)
{
    u_char  *p, *last;

    p = uri->value.data;
    last = p + uri->value.len;

    for ( /* void */ ; p < last; p++) {
        if (*p != '$') {
            continue;
        }

        if ((size_t) (last - p) >= sizeof("$cart_skus") - 1
            && ngx_strncmp(p, "$cart_skus", sizeof("$cart_skus") - 1) == 0)
        {
            return 1;
        }

        if ((size_t) (last - p) >= sizeof("${cart_skus}") - 1
            && ngx_strncmp(p, "${cart_skus}", sizeof("${cart_skus}") - 1)
               == 0)
        {
            return 1;
        }
    }

    return 0;
}
