/*
 * Request entry: route, identity, request headers that every write
 * honours (If-Match, Idempotency-Key), the JSON body, and the responses.
 */

#include "ngx_http_cart_handler.h"
#include "ngx_http_cart_reply.h"
#include "ngx_http_cart_status.h"
#include "ngx_http_cart_identity.h"
#include "ngx_http_cart_items.h"
#include "ngx_http_cart_merge.h"
#include "ngx_http_cart_saved.h"
#include "ngx_http_cart_scripts.h"
#include "ngx_http_cart_share.h"
#include "ngx_http_cart_coupons.h"
#include "ngx_http_cart_checkout.h"
#include "ngx_http_cart_admin.h"
#include "ngx_http_cart_stream.h"


#define NGX_HTTP_CART_BODY      1   /* the route takes a JSON body */
#define NGX_HTTP_CART_ACCOUNT   2   /* signed-in users only, not guests */
#define NGX_HTTP_CART_PUBLIC    4   /* no identity at all */
#define NGX_HTTP_CART_TOKEN     8   /* the "*" is a token, not a sku_id */
#define NGX_HTTP_CART_OPTIONAL  16  /* the JSON body may also be absent */


typedef struct {
    ngx_uint_t                method;
    ngx_str_t                 path;       /* one "*" is a path segment */
    ngx_uint_t                flags;
    ngx_http_cart_action_pt   action;
    ngx_uint_t                op;         /* for the metrics */
} ngx_http_cart_route_t;


static ngx_http_cart_route_t  ngx_http_cart_routes[] = {
    { NGX_HTTP_GET, ngx_string("/"), 0, ngx_http_cart_view,
      NGX_HTTP_CART_OP_VIEW },
    { NGX_HTTP_GET, ngx_string("/count"), 0, ngx_http_cart_count,
      NGX_HTTP_CART_OP_COUNT },
    { NGX_HTTP_GET, ngx_string("/stream"), 0, ngx_http_cart_stream,
      NGX_HTTP_CART_OP_STREAM },
    { NGX_HTTP_POST, ngx_string("/items"), NGX_HTTP_CART_BODY,
      ngx_http_cart_items_add,
      NGX_HTTP_CART_OP_ADD },
    { NGX_HTTP_PUT, ngx_string("/items/*"), NGX_HTTP_CART_BODY,
      ngx_http_cart_items_update,
      NGX_HTTP_CART_OP_UPDATE },
    { NGX_HTTP_DELETE, ngx_string("/items/*"), 0,
      ngx_http_cart_items_remove,
      NGX_HTTP_CART_OP_REMOVE },
    { NGX_HTTP_POST, ngx_string("/items/*/save"), NGX_HTTP_CART_ACCOUNT,
      ngx_http_cart_saved_save,
      NGX_HTTP_CART_OP_SAVE },
    { NGX_HTTP_GET, ngx_string("/saved"), NGX_HTTP_CART_ACCOUNT,
      ngx_http_cart_saved_list,
      NGX_HTTP_CART_OP_SAVED },
    { NGX_HTTP_POST, ngx_string("/saved/*/move"), NGX_HTTP_CART_ACCOUNT,
      ngx_http_cart_saved_move,
      NGX_HTTP_CART_OP_SAVED_MOVE },
    { NGX_HTTP_DELETE, ngx_string("/saved/*"), NGX_HTTP_CART_ACCOUNT,
      ngx_http_cart_saved_drop,
      NGX_HTTP_CART_OP_SAVED_DROP },
    { NGX_HTTP_POST, ngx_string("/merge"),
      NGX_HTTP_CART_BODY|NGX_HTTP_CART_ACCOUNT, ngx_http_cart_merge,
      NGX_HTTP_CART_OP_MERGE },
    { NGX_HTTP_POST, ngx_string("/share"), 0, ngx_http_cart_share_create,
      NGX_HTTP_CART_OP_SHARE },
    { NGX_HTTP_GET, ngx_string("/shared/*"),
      NGX_HTTP_CART_PUBLIC|NGX_HTTP_CART_TOKEN, ngx_http_cart_share_view,
      NGX_HTTP_CART_OP_SHARED_VIEW },
    { NGX_HTTP_POST, ngx_string("/shared/*/copy"), NGX_HTTP_CART_TOKEN,
      ngx_http_cart_share_copy,
      NGX_HTTP_CART_OP_SHARED_COPY },
    { NGX_HTTP_POST, ngx_string("/coupons"), NGX_HTTP_CART_BODY,
      ngx_http_cart_coupons_apply,
      NGX_HTTP_CART_OP_COUPON_APPLY },
    { NGX_HTTP_DELETE, ngx_string("/coupons/*"), 0,
      ngx_http_cart_coupons_remove,
      NGX_HTTP_CART_OP_COUPON_REMOVE },
    { NGX_HTTP_PUT, ngx_string("/shipping-address"), NGX_HTTP_CART_BODY,
      ngx_http_cart_address_set,
      NGX_HTTP_CART_OP_ADDRESS },
    { NGX_HTTP_POST, ngx_string("/checkout"),
      NGX_HTTP_CART_BODY|NGX_HTTP_CART_OPTIONAL, ngx_http_cart_checkout,
      NGX_HTTP_CART_OP_CHECKOUT },
    { 0, ngx_null_string, 0, NULL, 0 }
};


/* below a cart_admin location */
static ngx_http_cart_route_t  ngx_http_cart_admin_routes[] = {
    { NGX_HTTP_POST, ngx_string("/promotions"), NGX_HTTP_CART_BODY,
      ngx_http_cart_admin_create,
      NGX_HTTP_CART_OP_ADMIN },
    { NGX_HTTP_GET, ngx_string("/promotions"), 0, ngx_http_cart_admin_list,
      NGX_HTTP_CART_OP_ADMIN },
    { NGX_HTTP_GET, ngx_string("/promotions/*"), 0,
      ngx_http_cart_admin_read,
      NGX_HTTP_CART_OP_ADMIN },
    { NGX_HTTP_DELETE, ngx_string("/promotions/*"), 0,
      ngx_http_cart_admin_delete,
      NGX_HTTP_CART_OP_ADMIN },
    { 0, ngx_null_string, 0, NULL, 0 }
};


static const ngx_http_cart_answer_t  ngx_http_cart_not_found =
    { NGX_HTTP_NOT_FOUND, "not_found", "no such cart resource" };
static const ngx_http_cart_answer_t  ngx_http_cart_not_allowed =
    { NGX_HTTP_NOT_ALLOWED, "method_not_allowed",
      "this method is not allowed here" };
static const ngx_http_cart_answer_t  ngx_http_cart_invalid_sku =
    { NGX_HTTP_BAD_REQUEST, "invalid_sku",
      "sku_id must be 1-64 characters of A-Z a-z 0-9 . _ : -" };
static const ngx_http_cart_answer_t  ngx_http_cart_unauthorized =
    { NGX_HTTP_UNAUTHORIZED, "unauthorized", "sign in to use the cart" };
static const ngx_http_cart_answer_t  ngx_http_cart_invalid_identity =
    { NGX_HTTP_UNAUTHORIZED, "invalid_identity",
      "the user id is not acceptable" };
static const ngx_http_cart_answer_t  ngx_http_cart_invalid_token =
    { NGX_HTTP_UNAUTHORIZED, "invalid_token",
      "the bearer token is invalid or expired" };
static const ngx_http_cart_answer_t  ngx_http_cart_account =
    { NGX_HTTP_UNAUTHORIZED, "unauthorized",
      "sign in to use this: guests cannot" };
static const ngx_http_cart_answer_t  ngx_http_cart_precondition =
    { NGX_HTTP_PRECONDITION_FAILED, "precondition_failed",
      "If-Match does not match the cart's version" };
static const ngx_http_cart_answer_t  ngx_http_cart_invalid_idem =
    { NGX_HTTP_BAD_REQUEST, "invalid_idempotency_key",
      "Idempotency-Key must be 1-128 characters of A-Z a-z 0-9 . _ : -" };
static const ngx_http_cart_answer_t  ngx_http_cart_media_type =
    { NGX_HTTP_UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type",
      "the body must be application/json" };
static const ngx_http_cart_answer_t  ngx_http_cart_too_large =
    { NGX_HTTP_REQUEST_ENTITY_TOO_LARGE, "body_too_large",
      "the request body is too large" };
static const ngx_http_cart_answer_t  ngx_http_cart_invalid_json =
    { NGX_HTTP_BAD_REQUEST, "invalid_json",
      "the body must be a JSON object" };


static const ngx_http_cart_answer_t *ngx_http_cart_route(
    ngx_http_request_t *r, ngx_http_cart_ctx_t *ctx, ngx_uint_t *flags);
static const ngx_http_cart_answer_t *ngx_http_cart_allow(
    ngx_http_request_t *r, ngx_uint_t methods);
static const ngx_http_cart_answer_t *ngx_http_cart_identity(
    ngx_http_request_t *r, ngx_http_cart_ctx_t *ctx, ngx_uint_t flags);
static const ngx_http_cart_answer_t *ngx_http_cart_challenge(
    ngx_http_request_t *r, const ngx_http_cart_answer_t *answer);
static const ngx_http_cart_answer_t *ngx_http_cart_write_headers(
    ngx_http_request_t *r, ngx_http_cart_ctx_t *ctx);
static ngx_int_t ngx_http_cart_read_body(ngx_http_request_t *r);
static void ngx_http_cart_body_handler(ngx_http_request_t *r);


ngx_int_t
ngx_http_cart_handler(ngx_http_request_t *r)
{
    ngx_int_t                      rc;
    ngx_uint_t                     flags;
    ngx_http_cart_ctx_t           *ctx;
    ngx_http_cart_loc_conf_t      *lcf;
    const ngx_http_cart_answer_t  *answer;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_cart_module);

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_cart_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_http_set_ctx(r, ctx, ngx_http_cart_module);

    flags = 0;

    answer = ngx_http_cart_route(r, ctx, &flags);

    if (answer == NULL && !lcf->admin && !(flags & NGX_HTTP_CART_PUBLIC)) {
        answer = ngx_http_cart_identity(r, ctx, flags);
    }

    if (answer == NULL && r->method != NGX_HTTP_GET
        && r->method != NGX_HTTP_HEAD && !(flags & NGX_HTTP_CART_PUBLIC))
    {
        /* preconditions are checked atomically in the write script; keep
         * nginx's not_modified filter from judging the new ETag again */
        r->disable_not_modified = 1;

        if (!lcf->admin) {
            answer = ngx_http_cart_write_headers(r, ctx);
        }
    }

    if (answer) {
        rc = ngx_http_discard_request_body(r);
        if (rc != NGX_OK) {
            return rc;
        }

        return ngx_http_cart_fail(r, answer);
    }

    if ((flags & NGX_HTTP_CART_BODY)
        && !((flags & NGX_HTTP_CART_OPTIONAL)
             && r->headers_in.content_length_n <= 0
             && r->headers_in.chunked == 0))
    {
        return ngx_http_cart_read_body(r);
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    r->main->count++;

    rc = ctx->action(r);

    if (rc != NGX_DONE) {
        ngx_http_finalize_request(r, rc);
    }

    return NGX_DONE;
}


static const ngx_http_cart_answer_t *
ngx_http_cart_route(ngx_http_request_t *r, ngx_http_cart_ctx_t *ctx,
    ngx_uint_t *flags)
{
    u_char                    *star;
    size_t                     n, pre, post;
    ngx_str_t                  path;
    ngx_uint_t                 known, methods;
    ngx_http_cart_route_t     *route;
    ngx_http_cart_loc_conf_t  *lcf;
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);
    lcf = ngx_http_get_module_loc_conf(r, ngx_http_cart_module);

    /* the API lives below the location's prefix */

    path = r->uri;

    if (!clcf->regex && !clcf->named
        && path.len >= clcf->name.len
        && ngx_strncmp(path.data, clcf->name.data, clcf->name.len) == 0)
    {
        path.data += clcf->name.len;
        path.len -= clcf->name.len;
    }

    if (path.len == 0) {
        ngx_str_set(&path, "/");
    }

    known = 0;
    methods = 0;

    route = lcf->admin ? ngx_http_cart_admin_routes : ngx_http_cart_routes;

    for ( /* void */ ; route->action; route++) {
        n = route->path.len;
        star = ngx_strlchr(route->path.data, route->path.data + n, '*');

        if (star == NULL) {
            if (path.len != n
                || ngx_strncmp(path.data, route->path.data, n) != 0)
            {
                continue;
            }

        } else {
            /* prefix, one non-empty segment without "/", suffix */

            pre = star - route->path.data;
            post = n - pre - 1;

            if (path.len <= pre + post
                || ngx_strncmp(path.data, route->path.data, pre) != 0
                || ngx_strncmp(path.data + path.len - post, star + 1, post)
                   != 0
                || ngx_strlchr(path.data + pre, path.data + path.len - post,
                               '/')
                   != NULL)
            {
                continue;
            }

            ctx->path_sku.data = path.data + pre;
            ctx->path_sku.len = path.len - pre - post;
        }

        known = 1;
        methods |= route->method;

        if (r->method == route->method
            || (r->method == NGX_HTTP_HEAD && route->method == NGX_HTTP_GET))
        {
            ctx->action = route->action;
            ctx->op = route->op;
            *flags = route->flags;
            break;
        }
    }

    if (ctx->action == NULL) {
        return known ? ngx_http_cart_allow(r, methods)
                     : &ngx_http_cart_not_found;
    }

    if (ctx->path_sku.len && !(*flags & NGX_HTTP_CART_TOKEN)
        && ngx_http_cart_valid_id(&ctx->path_sku, NGX_HTTP_CART_MAX_SKU_LEN)
           != NGX_OK)
    {
        return &ngx_http_cart_invalid_sku;
    }

    return NULL;
}


/* a 405 says which methods the resource has (RFC 9110, 15.5.6) */

static const ngx_http_cart_answer_t *
ngx_http_cart_allow(ngx_http_request_t *r, ngx_uint_t methods)
{
    u_char            *p;
    ngx_uint_t         i;
    ngx_table_elt_t   *h;

    static struct {
        ngx_uint_t     method;
        ngx_str_t      name;
    }  names[] = {
        { NGX_HTTP_GET, ngx_string("GET, HEAD") },
        { NGX_HTTP_POST, ngx_string("POST") },
        { NGX_HTTP_PUT, ngx_string("PUT") },
        { NGX_HTTP_DELETE, ngx_string("DELETE") }
    };

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return &ngx_http_cart_internal;
    }

    p = ngx_pnalloc(r->pool, sizeof("GET, HEAD, POST, PUT, DELETE") - 1);
    if (p == NULL) {
        return &ngx_http_cart_internal;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Allow");
    h->value.data = p;

    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (methods & names[i].method) {
            if (p != h->value.data) {
                p = ngx_cpymem(p, ", ", 2);
            }

            p = ngx_cpymem(p, names[i].name.data, names[i].name.len);
        }
    }

    h->value.len = p - h->value.data;

    return &ngx_http_cart_not_allowed;
}


/*
 * A bearer JWT (one that does not verify is 401, never a guest), else
 * cart_user, else a guest, new without a valid cookie; writes set the cookie.
 */

static const ngx_http_cart_answer_t *
ngx_http_cart_identity(ngx_http_request_t *r, ngx_http_cart_ctx_t *ctx,
    ngx_uint_t flags)
{
    u_char                     *p;
    ngx_str_t                   user;
    const char                 *prefix;
    ngx_http_cart_loc_conf_t   *clcf;
    ngx_http_cart_main_conf_t  *cmcf;

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_cart_module);
    cmcf = ngx_http_get_module_main_conf(r, ngx_http_cart_module);

    ngx_str_null(&user);

    if (clcf->jwt
        && ngx_http_cart_jwt_verify(r, clcf->jwt, &user) == NGX_ERROR)
    {
        return ngx_http_cart_challenge(r, &ngx_http_cart_invalid_token);
    }

    if (user.len == 0 && clcf->user
        && ngx_http_complex_value(r, clcf->user, &user) != NGX_OK)
    {
        return &ngx_http_cart_internal;
    }

    if (clcf->guest_cookie
        && ngx_http_cart_cookie_session(r, clcf->guest_cookie, &ctx->guest)
           != NGX_OK)
    {
        ngx_str_null(&ctx->guest);
    }

    if (user.len) {
        if (ngx_http_cart_valid_id(&user, NGX_HTTP_CART_MAX_USER_LEN)
            != NGX_OK)
        {
            ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                          "cart: refusing user id \"%V\"", &user);
            return ngx_http_cart_challenge(r,
                                           &ngx_http_cart_invalid_identity);
        }

        prefix = "user-";
        ctx->ttl = cmcf->ttl;
        ctx->signed_in = 1;

    } else if (clcf->guest_cookie == NULL) {
        return ngx_http_cart_challenge(r, &ngx_http_cart_unauthorized);

    } else if (flags & NGX_HTTP_CART_ACCOUNT) {
        return ngx_http_cart_challenge(r, &ngx_http_cart_account);

    } else {
        user = ctx->guest;

        if (user.len == 0) {
            if (ngx_http_cart_random_hex(r->pool,
                                         NGX_HTTP_CART_SESSION_LEN / 2, &user)
                != NGX_OK)
            {
                return &ngx_http_cart_internal;
            }

            ctx->new_guest = 1;
        }

        /* every write refreshes the cookie's lifetime, as the cart's */

        if (r->method != NGX_HTTP_GET && r->method != NGX_HTTP_HEAD
            && ngx_http_cart_cookie_make(r, clcf->guest_cookie, &user,
                                         cmcf->guest_ttl, &ctx->set_cookie)
               != NGX_OK)
        {
            return &ngx_http_cart_internal;
        }

        prefix = "guest-";
        ctx->ttl = cmcf->guest_ttl;
    }

    p = ngx_pnalloc(r->pool, sizeof("guest-") - 1 + user.len);
    if (p == NULL) {
        return &ngx_http_cart_internal;
    }

    ctx->owner.data = p;
    ctx->owner.len = ngx_cpymem(ngx_cpymem(p, prefix, ngx_strlen(prefix)),
                                user.data, user.len)
                     - p;

    if (ngx_http_cart_key(r->pool, &ctx->cart_key, "cart:", &ctx->owner, NULL)
        == NULL
        || ngx_http_cart_key(r->pool, &ctx->count_key, "cart_count:",
                             &ctx->owner, NULL)
           == NULL)
    {
        return &ngx_http_cart_internal;
    }

    return NULL;
}


/* a 401 tells a client using JWTs what to do (RFC 6750 3) */

static const ngx_http_cart_answer_t *
ngx_http_cart_challenge(ngx_http_request_t *r,
    const ngx_http_cart_answer_t *answer)
{
    ngx_table_elt_t           *h;
    ngx_http_cart_loc_conf_t  *clcf;

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_cart_module);

    if (clcf->jwt == NULL) {
        return answer;
    }

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return &ngx_http_cart_internal;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "WWW-Authenticate");

    if (answer == &ngx_http_cart_invalid_token) {
        ngx_str_set(&h->value, "Bearer error=\"invalid_token\"");

    } else {
        ngx_str_set(&h->value, "Bearer");
    }

    return answer;
}


/* If-Match and Idempotency-Key of a write */

static const ngx_http_cart_answer_t *
ngx_http_cart_write_headers(ngx_http_request_t *r, ngx_http_cart_ctx_t *ctx)
{
    u_char     *p, *last;
    ngx_str_t  *key;

    if (r->headers_in.if_match) {
        p = r->headers_in.if_match->value.data;
        last = p + r->headers_in.if_match->value.len;

        if (!(last - p == 1 && *p == '*')) {
            if (last - p > 2 && p[0] == 'W' && p[1] == '/') {
                p += 2;
            }

            if (last - p < 3 || *p != '"' || last[-1] != '"'
                || ngx_atoi(p + 1, last - p - 2) == NGX_ERROR)
            {
                /* no ETag of ours looks like this: it cannot match */
                return &ngx_http_cart_precondition;
            }

            ctx->if_match.data = p + 1;
            ctx->if_match.len = last - p - 2;
        }
    }

    key = ngx_http_cart_header(r, "idempotency-key",
                               sizeof("idempotency-key") - 1);
    if (key == NULL) {
        return NULL;
    }

    if (ngx_http_cart_valid_id(key, NGX_HTTP_CART_MAX_IDEM_LEN) != NGX_OK) {
        return &ngx_http_cart_invalid_idem;
    }

    if (ngx_http_cart_key(r->pool, &ctx->idem_key, "idem:", &ctx->owner, key)
        == NULL)
    {
        return &ngx_http_cart_internal;
    }

    return NULL;
}


static ngx_int_t
ngx_http_cart_read_body(ngx_http_request_t *r)
{
    ngx_int_t                  rc;
    ngx_table_elt_t           *type;
    ngx_http_core_loc_conf_t  *clcf;

    type = r->headers_in.content_type;

    if (type == NULL
        || type->value.len < sizeof("application/json") - 1
        || ngx_strncasecmp(type->value.data, (u_char *) "application/json",
                           sizeof("application/json") - 1) != 0
        || (type->value.len > sizeof("application/json") - 1
            && type->value.data[sizeof("application/json") - 1] != ';'
            && type->value.data[sizeof("application/json") - 1] != ' '))
    {
        rc = ngx_http_discard_request_body(r);
        if (rc != NGX_OK) {
            return rc;
        }

        return ngx_http_cart_fail(r, &ngx_http_cart_media_type);
    }

    /* bodies are small: one buffer in memory, never a temporary file */

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    if (r->headers_in.content_length_n > (off_t) clcf->client_body_buffer_size)
    {
        rc = ngx_http_discard_request_body(r);
        if (rc != NGX_OK) {
            return rc;
        }

        return ngx_http_cart_fail(r, &ngx_http_cart_too_large);
    }

    r->request_body_in_single_buf = 1;

    rc = ngx_http_read_client_request_body(r, ngx_http_cart_body_handler);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        if (rc == NGX_HTTP_REQUEST_ENTITY_TOO_LARGE) {
            return ngx_http_cart_fail(r, &ngx_http_cart_too_large);
        }

        return rc;
    }

    return NGX_DONE;
}


static void
ngx_http_cart_body_handler(ngx_http_request_t *r)
{
    size_t                    len;
    u_char                   *data, *p;
    ngx_int_t                 rc;
    ngx_chain_t              *cl;
    ngx_http_cart_ctx_t      *ctx;
    ngx_http_request_body_t  *rb;

    ctx = ngx_http_get_module_ctx(r, ngx_http_cart_module);
    rb = r->request_body;

    len = 0;

    for (cl = rb ? rb->bufs : NULL; cl; cl = cl->next) {
        if (cl->buf->in_file) {
            /* over client_body_buffer_size: nginx spilled it to a file */
            ngx_http_finalize_request(r,
                             ngx_http_cart_fail(r, &ngx_http_cart_too_large));
            return;
        }

        /* a chunked body ends with an empty last_buf, not in memory */
        if (ngx_buf_in_memory(cl->buf)) {
            len += cl->buf->last - cl->buf->pos;
        }
    }

    /* the part read with the headers and the rest may be two buffers */

    if (rb && rb->bufs && rb->bufs->next == NULL
        && ngx_buf_in_memory(rb->bufs->buf))
    {
        data = rb->bufs->buf->pos;

    } else {
        data = ngx_pnalloc(r->pool, len + 1);
        if (data == NULL) {
            ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
            return;
        }

        p = data;
        for (cl = rb ? rb->bufs : NULL; cl; cl = cl->next) {
            if (ngx_buf_in_memory(cl->buf)) {
                p = ngx_cpymem(p, cl->buf->pos, cl->buf->last - cl->buf->pos);
            }
        }
    }

    ctx->body = ngx_http_cart_json_parse(r->pool, data, len);

    if (ctx->body == NULL || !YAJL_IS_OBJECT((yajl_val) ctx->body)) {
        ngx_http_finalize_request(r,
                            ngx_http_cart_fail(r, &ngx_http_cart_invalid_json));
        return;
    }

    rc = ctx->action(r);

    if (rc != NGX_DONE) {
        ngx_http_finalize_request(r, rc);
    }
}
