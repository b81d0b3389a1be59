/*
 * The response toolkit: see ngx_http_cart_reply.h.
 */

#include "ngx_http_cart_reply.h"
#include "ngx_http_cart_scripts.h"
#include "ngx_http_cart_status.h"


const ngx_http_cart_answer_t  ngx_http_cart_internal =
    { NGX_HTTP_INTERNAL_SERVER_ERROR, "internal_error", "internal error" };

/* what a Redis failure answers: each says whether the write can have
 * happened (see ngx_http_cart_redis.h for what the layer tells) */
static const ngx_http_cart_answer_t  ngx_http_cart_store_unavailable =
    { NGX_HTTP_SERVICE_UNAVAILABLE, "store_unavailable",
      "the cart store is unavailable, nothing was changed: retry later" };
static const ngx_http_cart_answer_t  ngx_http_cart_store_timeout =
    { NGX_HTTP_SERVICE_UNAVAILABLE, "store_timeout",
      "the cart store did not answer in time, nothing was changed: "
      "retry later" };
static const ngx_http_cart_answer_t  ngx_http_cart_store_outcome_unknown =
    { NGX_HTTP_SERVICE_UNAVAILABLE, "store_outcome_unknown",
      "the cart store did not confirm the write, which may have been "
      "applied: retry with the same Idempotency-Key" };

/* what any write script may answer instead of success (src/lua/_lib.lua) */
static const ngx_http_cart_answer_t  ngx_http_cart_script_answers[] = {
    { NGX_HTTP_PRECONDITION_FAILED, "precondition_failed",
      "If-Match does not match the cart's version" },
    { 422, "idempotency_mismatch",
      "this Idempotency-Key was used for a different request" },
    { NGX_HTTP_CONFLICT, "idempotency_in_flight",
      "a request with this Idempotency-Key is still in progress" },
    { 0, NULL, NULL }
};


ngx_str_t *
ngx_http_cart_header(ngx_http_request_t *r, const char *name, size_t len)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                return NULL;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len == len
            && ngx_strncasecmp(h[i].lowcase_key, (u_char *) name, len) == 0)
        {
            return &h[i].value;
        }
    }
}


/* prefix{owner}[:suffix] — the braces are the Redis Cluster hash tag */

ngx_str_t *
ngx_http_cart_key(ngx_pool_t *pool, ngx_str_t *dst, const char *prefix,
    ngx_str_t *owner, ngx_str_t *suffix)
{
    u_char  *p;
    size_t   len;

    len = ngx_strlen(prefix) + owner->len + 2;
    if (suffix) {
        len += suffix->len + 1;
    }

    dst->data = ngx_pnalloc(pool, len);
    if (dst->data == NULL) {
        return NULL;
    }

    p = ngx_sprintf(dst->data, "%s{%V}", prefix, owner);
    if (suffix) {
        p = ngx_sprintf(p, ":%V", suffix);
    }

    dst->len = p - dst->data;

    return dst;
}


ngx_int_t
ngx_http_cart_valid_id(ngx_str_t *s, size_t max)
{
    u_char  *p, *last;

    if (s->len == 0 || s->len > max) {
        return NGX_ERROR;
    }

    /* "." and ".." would be path segments in an upstream URI */
    if (s->data[0] == '.'
        && (s->len == 1 || (s->len == 2 && s->data[1] == '.')))
    {
        return NGX_ERROR;
    }

    for (p = s->data, last = p + s->len; p < last; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')
            || (*p >= '0' && *p <= '9')
            || *p == '.' || *p == '_' || *p == ':' || *p == '-')
        {
            continue;
        }

        return NGX_ERROR;
    }

    return NGX_OK;
}


/* responses */

ngx_int_t
ngx_http_cart_send(ngx_http_request_t *r, ngx_uint_t status,
    ngx_http_cart_json_gen_t *json, int64_t version)
{
    ngx_str_t  text;

    if (ngx_http_cart_json_text(json, &text) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_cart_send_body(r, status, text.data, text.len, version);
}


ngx_int_t
ngx_http_cart_send_body(ngx_http_request_t *r, ngx_uint_t status, u_char *buf,
    size_t len, int64_t version)
{
    ngx_int_t             rc;
    ngx_buf_t            *b;
    ngx_chain_t           out;
    ngx_table_elt_t      *h;
    ngx_http_cart_ctx_t  *ctx;

    r->headers_out.status = status;
    r->headers_out.content_length_n = len;

    if (status == 422) {
        /* nginx has no reason phrase of its own for 422 */
        ngx_str_set(&r->headers_out.status_line, "422 Unprocessable Entity");
    }
    ngx_str_set(&r->headers_out.content_type, "application/json");

    /* an answer cached at an edge would be someone else's cart */
    if (ngx_http_cart_set_header(r, "Cache-Control", "no-store") == NULL) {
        return NGX_ERROR;
    }

    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;

    ctx = ngx_http_get_module_ctx(r, ngx_http_cart_module);

    if (ctx) {
        ctx->answered = 1;
    }

    if (ctx && ctx->set_cookie.len && status >= 200 && status < 300) {
        h = ngx_list_push(&r->headers_out.headers);
        if (h == NULL) {
            return NGX_ERROR;
        }

        h->hash = 1;
        ngx_str_set(&h->key, "Set-Cookie");
        h->value = ctx->set_cookie;
    }

    if (version >= 0) {
        h = ngx_list_push(&r->headers_out.headers);
        if (h == NULL) {
            return NGX_ERROR;
        }

        h->hash = 1;
        ngx_str_set(&h->key, "ETag");
        h->value.data = ngx_pnalloc(r->pool, NGX_INT64_LEN + 2);
        if (h->value.data == NULL) {
            return NGX_ERROR;
        }

        h->value.len = ngx_sprintf(h->value.data, "\"%L\"", version)
                       - h->value.data;
        r->headers_out.etag = h;
    }

    if (status == NGX_HTTP_SERVICE_UNAVAILABLE) {
        if (ngx_http_cart_set_header(r, "Retry-After", "1") == NULL) {
            return NGX_ERROR;
        }
    }

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->pos = buf;
    b->last = buf + len;
    b->memory = 1;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


ngx_int_t
ngx_http_cart_error(ngx_http_request_t *r, ngx_uint_t status,
    const char *code, const char *message)
{
    yajl_gen                   g;
    ngx_http_cart_ctx_t       *ctx;
    ngx_http_cart_json_gen_t  *json;

    /* the outcome of a merge or a checkout, for the metrics */
    ctx = ngx_http_get_module_ctx(r->main, ngx_http_cart_module);
    if (ctx) {
        ctx->code = code;
    }

    json = ngx_http_cart_json_gen(r->pool);
    if (json == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    g = json->g;

    yajl_gen_map_open(g);
    ngx_http_cart_json_key(g, "error");
    yajl_gen_map_open(g);
    ngx_http_cart_json_key(g, "code");
    yajl_gen_string(g, (const unsigned char *) code, ngx_strlen(code));
    ngx_http_cart_json_key(g, "message");
    yajl_gen_string(g, (const unsigned char *) message, ngx_strlen(message));
    yajl_gen_map_close(g);
    yajl_gen_map_close(g);

    return ngx_http_cart_send(r, status, json, -1);
}


ngx_int_t
ngx_http_cart_fail(ngx_http_request_t *r, const ngx_http_cart_answer_t *answer)
{
    return ngx_http_cart_error(r, answer->status, answer->code,
                               answer->message);
}


const ngx_http_cart_answer_t *
ngx_http_cart_script_answer(ngx_http_request_t *r, redisReply *reply,
    ngx_int_t rc, const ngx_http_cart_answer_t *answers, ngx_str_t *word)
{
    if (rc != NGX_OK || ngx_http_cart_reply_str(reply, 0, word) != NGX_OK) {
        return ngx_http_cart_store_answer(r, reply, rc, 1);
    }

    if (ngx_http_cart_word_is(word, "replay")) {
        return ngx_http_cart_replayed(r) == NGX_OK ? NULL
                                                   : &ngx_http_cart_internal;
    }

    return ngx_http_cart_answer_find(r, answers, word);
}


const ngx_http_cart_answer_t *
ngx_http_cart_answer_find(ngx_http_request_t *r,
    const ngx_http_cart_answer_t *answers, ngx_str_t *word)
{
    ngx_uint_t                     i;
    const ngx_http_cart_answer_t  *a;

    for (i = 0; i < 2; i++) {
        a = i ? ngx_http_cart_script_answers : answers;

        for ( /* void */ ; a && a->code; a++) {
            if (word->len != ngx_strlen(a->code)
                || ngx_strncmp(word->data, a->code, word->len) != 0)
            {
                continue;
            }

            if (ngx_strncmp(a->code, "idempotency_", 12) == 0) {
                ngx_http_cart_metrics_inc(r, conflicts);
            }

            return a;
        }
    }

    return NULL;
}


/*
 * A read changed nothing whatever became of it: store_timeout when Redis
 * did not answer in time, else store_unavailable. A write is
 * store_unavailable only when it certainly did not run (not sent, or
 * refused by Redis before running); sent and not answered, or a script
 * that failed while running, it may have: store_outcome_unknown.
 */

const ngx_http_cart_answer_t *
ngx_http_cart_store_answer(ngx_http_request_t *r, redisReply *reply,
    ngx_int_t rc, ngx_uint_t write)
{
    if (write && rc == NGX_OK && reply && reply->type == REDIS_REPLY_ERROR
        && ngx_strlcasestrn((u_char *) reply->str,
                            (u_char *) reply->str + reply->len,
                            (u_char *) "user_script",
                            sizeof("user_script") - 2)
           != NULL)
    {
        /* a script that failed half way keeps the writes it made */
        return &ngx_http_cart_store_outcome_unknown;
    }

    if (rc == NGX_AGAIN || rc == NGX_DECLINED) {
        if (write) {
            return &ngx_http_cart_store_outcome_unknown;
        }

        if (rc == NGX_AGAIN) {
            return &ngx_http_cart_store_timeout;
        }
    }

    return &ngx_http_cart_store_unavailable;
}


ngx_int_t
ngx_http_cart_replayed(ngx_http_request_t *r)
{
    ngx_http_cart_ctx_t  *ctx;

    if (ngx_http_cart_set_header(r, "Idempotent-Replayed", "true") == NULL) {
        return NGX_ERROR;
    }

    ngx_http_cart_metrics_inc(r, replays);

    ctx = ngx_http_get_module_ctx(r->main, ngx_http_cart_module);
    if (ctx) {
        ctx->replayed = 1;
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_cart_store_error(ngx_http_request_t *r, redisReply *reply,
    ngx_int_t rc)
{
    return ngx_http_cart_fail(r, ngx_http_cart_store_answer(r, reply, rc, 0));
}


ngx_int_t
ngx_http_cart_store_write_error(ngx_http_request_t *r, redisReply *reply,
    ngx_int_t rc)
{
    return ngx_http_cart_fail(r, ngx_http_cart_store_answer(r, reply, rc, 1));
}


ngx_table_elt_t *
ngx_http_cart_header_out(ngx_http_request_t *r, const char *key, size_t klen,
    const char *value, size_t vlen)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NULL;
    }

    h->hash = 1;
    h->key.data = (u_char *) key;
    h->key.len = klen;
    h->value.data = (u_char *) value;
    h->value.len = vlen;

    return h;
}
