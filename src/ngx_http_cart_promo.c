/*
 * Promotions: parsing and validation, the canonical document, and the
 * worker's copy of all promotions.
 *
 * Cart views are priced with a per-worker copy read from Redis at most
 * NGX_HTTP_CART_PROMOS_MAX_AGE ago: every cart view in the system would
 * otherwise read the same hash (one Redis Cluster slot) on every request.
 * When the copy is too old, one request reads a new one (in parallel with
 * its subrequests) while the others keep using the old one.
 * Coupons and checkout take a fresh copy; an admin change made through
 * this worker invalidates its copy at once.
 */

#include "ngx_http_cart_promo.h"
#include "ngx_http_cart_reply.h"
#include "ngx_http_cart_scripts.h"
#include "ngx_http_cart_subrequest.h"


static ngx_int_t ngx_http_cart_promo_field(ngx_pool_t *pool, const char *name,
    yajl_val v, ngx_uint_t stored, ngx_http_cart_promo_t *p,
    ngx_str_t *bundle, const char **msg);
static ngx_int_t ngx_http_cart_promo_check(ngx_http_cart_promo_t *p,
    ngx_str_t *type, ngx_str_t *bundle, ngx_uint_t has_value,
    const char **msg);
static ngx_int_t ngx_http_cart_promo_skus(ngx_pool_t *pool, yajl_val v,
    ngx_http_cart_promo_t *p, const char **msg);
static ngx_int_t ngx_http_cart_promo_count(yajl_val v, int64_t *n,
    const char *name, const char **msg);
static ngx_int_t ngx_http_cart_promo_string(yajl_val v, ngx_str_t *s);
static void ngx_http_cart_promos_reply(ngx_http_request_t *r, void *data,
    redisReply *reply, ngx_int_t rc);
static ngx_http_cart_promos_t *ngx_http_cart_promos_build(
    ngx_http_request_t *r, redisReply *reply);
static int ngx_libc_cdecl ngx_http_cart_promo_cmp(const void *a,
    const void *b);
static void ngx_http_cart_promos_acquire(ngx_http_request_t *r,
    ngx_http_cart_promos_t *set, ngx_http_cart_promos_ref_t *ref);
static void ngx_http_cart_promos_release(void *data);


static ngx_http_cart_promos_t  *ngx_http_cart_promos_current;
static ngx_uint_t               ngx_http_cart_promos_stale;


static ngx_str_t  ngx_http_cart_promo_types[] = {
    ngx_string("percent"),
    ngx_string("amount"),
    ngx_string("bundle"),
    ngx_string("free_shipping"),
    ngx_null_string
};

static ngx_str_t  ngx_http_cart_bundle_kinds[] = {
    ngx_string("cheapest_free"),
    ngx_string("percent"),
    ngx_string("amount"),
    ngx_null_string
};


ngx_int_t
ngx_http_cart_promo_parse(ngx_pool_t *pool, yajl_val v, ngx_uint_t stored,
    ngx_http_cart_promo_t *p, const char **msg)
{
    size_t      i;
    ngx_int_t   rc;
    ngx_str_t   type, bundle;
    ngx_uint_t  has_value;
    yajl_val    field;

    ngx_memzero(p, sizeof(ngx_http_cart_promo_t));
    ngx_str_null(&type);
    ngx_str_null(&bundle);
    has_value = 0;

    if (!YAJL_IS_OBJECT(v)) {
        *msg = "the promotion must be a JSON object";
        return NGX_DECLINED;
    }

    for (i = 0; i < v->u.object.len; i++) {
        field = v->u.object.values[i];

        if (YAJL_IS_NULL(field)) {
            /* an optional field given as null is absent */
            continue;
        }

        if (ngx_strcmp(v->u.object.keys[i], "type") == 0) {
            if (ngx_http_cart_promo_string(field, &type) != NGX_OK) {
                *msg = "type must be a string";
                return NGX_DECLINED;
            }

            continue;
        }

        if (ngx_strcmp(v->u.object.keys[i], "value") == 0) {
            rc = ngx_http_cart_json_money(field, &p->value);

            if (rc == NGX_DECLINED) {
                *msg = "value must be a number with at most two decimals";
                return NGX_DECLINED;
            }

            if (rc != NGX_OK || p->value <= 0) {
                *msg = "value must be positive and not too large";
                return NGX_ERROR;
            }

            has_value = 1;
            continue;
        }

        rc = ngx_http_cart_promo_field(pool, v->u.object.keys[i], field,
                                       stored, p, &bundle, msg);
        if (rc != NGX_OK) {
            return rc;
        }
    }

    return ngx_http_cart_promo_check(p, &type, &bundle, has_value, msg);
}


static ngx_int_t
ngx_http_cart_promo_field(ngx_pool_t *pool, const char *name, yajl_val v,
    ngx_uint_t stored, ngx_http_cart_promo_t *p, ngx_str_t *bundle,
    const char **msg)
{
    u_char     *code, *buf;
    size_t      len, i;
    time_t      t;
    ngx_int_t   rc;
    ngx_str_t   s;

    if (ngx_strcmp(name, "code") == 0) {
        if (ngx_http_cart_promo_string(v, &s) != NGX_OK) {
            *msg = "code must be a string";
            return NGX_DECLINED;
        }

        code = ngx_pnalloc(pool, NGX_HTTP_CART_MAX_CODE_LEN);
        if (code == NULL) {
            *msg = "out of memory";
            return NGX_ERROR;
        }

        if (ngx_http_cart_promo_code(&s, code) != NGX_OK) {
            *msg = "code must be 1-32 characters of A-Z a-z 0-9 _ -";
            return NGX_ERROR;
        }

        p->code.data = code;
        p->code.len = s.len;
        return NGX_OK;
    }

    if (ngx_strcmp(name, "min_subtotal") == 0) {
        rc = ngx_http_cart_json_money(v, &p->min_subtotal);

        if (rc == NGX_DECLINED) {
            *msg = "min_subtotal must be a number with at most two decimals";
            return NGX_DECLINED;
        }

        if (rc != NGX_OK || p->min_subtotal < 0) {
            *msg = "min_subtotal must not be negative or too large";
            return NGX_ERROR;
        }

        return NGX_OK;
    }

    if (ngx_strcmp(name, "skus") == 0) {
        return ngx_http_cart_promo_skus(pool, v, p, msg);
    }

    if (ngx_strcmp(name, "seller_id") == 0) {
        if (ngx_http_cart_promo_string(v, &p->seller) != NGX_OK) {
            *msg = "seller_id must be a string";
            return NGX_DECLINED;
        }

        if (ngx_http_cart_valid_id(&p->seller, NGX_HTTP_CART_MAX_SKU_LEN)
            != NGX_OK)
        {
            *msg = "seller_id must be 1-64 characters of A-Z a-z 0-9 . _ : -";
            return NGX_ERROR;
        }

        return NGX_OK;
    }

    if (ngx_strcmp(name, "bundle_quantity") == 0) {
        return ngx_http_cart_promo_count(v, &p->bundle_quantity,
                                         "bundle_quantity", msg);
    }

    if (ngx_strcmp(name, "bundle_discount") == 0) {
        if (ngx_http_cart_promo_string(v, bundle) != NGX_OK) {
            *msg = "bundle_discount must be a string";
            return NGX_DECLINED;
        }

        return NGX_OK;
    }

    if (ngx_strcmp(name, "max_redemptions") == 0) {
        return ngx_http_cart_promo_count(v, &p->max_redemptions,
                                         "max_redemptions", msg);
    }

    if (ngx_strcmp(name, "max_per_user") == 0) {
        return ngx_http_cart_promo_count(v, &p->max_per_user,
                                         "max_per_user", msg);
    }

    if (ngx_strcmp(name, "starts_at") == 0
        || ngx_strcmp(name, "expires_at") == 0
        || (stored && ngx_strcmp(name, "created_at") == 0))
    {
        if (ngx_http_cart_promo_string(v, &s) != NGX_OK) {
            *msg = "starts_at and expires_at must be strings";
            return NGX_DECLINED;
        }

        t = ngx_http_cart_parse_time(s.data, s.len);

        if (t == NGX_ERROR) {
            *msg = "times must be written as 2026-03-14T10:00:00Z (UTC)";
            return NGX_ERROR;
        }

        if (name[0] == 's') {
            p->starts_at = t;

        } else if (name[0] == 'e') {
            p->expires_at = t;

        } else {
            p->created_at = t;
        }

        return NGX_OK;
    }

    if (stored && ngx_strcmp(name, "id") == 0) {
        if (ngx_http_cart_promo_string(v, &p->id) != NGX_OK
            || p->id.len == 0 || p->id.len > 19)
        {
            *msg = "bad id";
            return NGX_DECLINED;
        }

        rc = ngx_atoi(p->id.data, p->id.len);
        if (rc == NGX_ERROR) {
            *msg = "bad id";
            return NGX_DECLINED;
        }

        p->seq = rc;
        return NGX_OK;
    }

    /* name the field when it is short plain text */

    *msg = "the promotion has a field this API does not know";

    len = ngx_strlen(name);
    if (len > 64) {
        return NGX_DECLINED;
    }

    for (i = 0; i < len; i++) {
        if (name[i] < 0x20 || name[i] >= 0x7f || name[i] == '"'
            || name[i] == '\\')
        {
            return NGX_DECLINED;
        }
    }

    buf = ngx_pnalloc(pool, sizeof("unknown field \"\"") + len);
    if (buf) {
        (void) ngx_sprintf(buf, "unknown field \"%s\"%Z", name);
        *msg = (const char *) buf;
    }

    return NGX_DECLINED;
}


/* the rules that tie fields together */

static ngx_int_t
ngx_http_cart_promo_check(ngx_http_cart_promo_t *p, ngx_str_t *type,
    ngx_str_t *bundle, ngx_uint_t has_value, const char **msg)
{
    ngx_uint_t  i;

    if (type->data == NULL) {
        *msg = "type is required";
        return NGX_DECLINED;
    }

    for (i = 0; ngx_http_cart_promo_types[i].len; i++) {
        if (type->len == ngx_http_cart_promo_types[i].len
            && ngx_strncmp(type->data, ngx_http_cart_promo_types[i].data,
                           type->len) == 0)
        {
            break;
        }
    }

    if (ngx_http_cart_promo_types[i].len == 0) {
        *msg = "type must be percent, amount, bundle or free_shipping";
        return NGX_ERROR;
    }

    p->type = i;

    if (p->type != NGX_HTTP_CART_PROMO_BUNDLE
        && (bundle->data || p->bundle_quantity))
    {
        *msg = "bundle_quantity and bundle_discount are for bundles only";
        return NGX_ERROR;
    }

    switch (p->type) {

    case NGX_HTTP_CART_PROMO_PERCENT:
        if (!has_value || p->value > 10000) {
            *msg = "a percent promotion needs a value above 0 and at most "
                   "100";
            return NGX_ERROR;
        }

        break;

    case NGX_HTTP_CART_PROMO_AMOUNT:
        if (!has_value) {
            *msg = "an amount promotion needs a value above 0";
            return NGX_ERROR;
        }

        break;

    case NGX_HTTP_CART_PROMO_FREE_SHIPPING:
        if (has_value) {
            *msg = "free_shipping takes no value (min_subtotal is its "
                   "threshold)";
            return NGX_ERROR;
        }

        break;

    default: /* NGX_HTTP_CART_PROMO_BUNDLE */

        if (bundle->data == NULL) {
            p->bundle = has_value ? NGX_HTTP_CART_BUNDLE_PERCENT
                                  : NGX_HTTP_CART_BUNDLE_CHEAPEST_FREE;

        } else {
            for (i = 0; ngx_http_cart_bundle_kinds[i].len; i++) {
                if (bundle->len == ngx_http_cart_bundle_kinds[i].len
                    && ngx_strncmp(bundle->data,
                                   ngx_http_cart_bundle_kinds[i].data,
                                   bundle->len) == 0)
                {
                    break;
                }
            }

            if (ngx_http_cart_bundle_kinds[i].len == 0) {
                *msg = "bundle_discount must be cheapest_free, percent or "
                       "amount";
                return NGX_ERROR;
            }

            p->bundle = i;
        }

        if (p->bundle_quantity < 2) {
            *msg = "a bundle needs a bundle_quantity of at least 2";
            return NGX_ERROR;
        }

        if (p->bundle == NGX_HTTP_CART_BUNDLE_CHEAPEST_FREE && has_value) {
            *msg = "a cheapest_free bundle takes no value";
            return NGX_ERROR;
        }

        if (p->bundle != NGX_HTTP_CART_BUNDLE_CHEAPEST_FREE && !has_value) {
            *msg = "a percent or amount bundle needs a value";
            return NGX_ERROR;
        }

        if (p->bundle == NGX_HTTP_CART_BUNDLE_PERCENT && p->value > 10000) {
            *msg = "a percent bundle's value is at most 100";
            return NGX_ERROR;
        }

        break;
    }

    if (p->starts_at && p->expires_at && p->expires_at <= p->starts_at) {
        *msg = "expires_at must be after starts_at";
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_cart_promo_skus(ngx_pool_t *pool, yajl_val v,
    ngx_http_cart_promo_t *p, const char **msg)
{
    size_t  i;

    if (!YAJL_IS_ARRAY(v)) {
        *msg = "skus must be an array of SKU strings";
        return NGX_DECLINED;
    }

    if (v->u.array.len == 0 || v->u.array.len > NGX_HTTP_CART_MAX_PROMO_SKUS)
    {
        *msg = "skus must list 1 to 100 SKUs";
        return NGX_ERROR;
    }

    p->skus = ngx_palloc(pool, v->u.array.len * sizeof(ngx_str_t));
    if (p->skus == NULL) {
        *msg = "out of memory";
        return NGX_ERROR;
    }

    for (i = 0; i < v->u.array.len; i++) {
        if (ngx_http_cart_promo_string(v->u.array.values[i], &p->skus[i])
            != NGX_OK)
        {
            *msg = "skus must be an array of SKU strings";
            return NGX_DECLINED;
        }

        if (ngx_http_cart_valid_id(&p->skus[i], NGX_HTTP_CART_MAX_SKU_LEN)
            != NGX_OK)
        {
            *msg = "each SKU must be 1-64 characters of A-Z a-z 0-9 . _ : -";
            return NGX_ERROR;
        }
    }

    p->nskus = v->u.array.len;

    return NGX_OK;
}


/* a positive integer field (counts and limits); msg names the field */

static ngx_int_t
ngx_http_cart_promo_count(yajl_val v, int64_t *n, const char *name,
    const char **msg)
{
    ngx_int_t  rc;

    rc = ngx_http_cart_json_integer(v, n);

    if (rc == NGX_DECLINED) {
        *msg = name[0] == 'b' ? "bundle_quantity must be an integer"
               : "max_redemptions and max_per_user must be integers";
        return NGX_DECLINED;
    }

    if (rc != NGX_OK || *n < 1 || *n > 1000000000) {
        *msg = name[0] == 'b' ? "bundle_quantity is out of range"
               : "max_redemptions and max_per_user must be 1 or more";
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_cart_promo_string(yajl_val v, ngx_str_t *s)
{
    if (!YAJL_IS_STRING(v)) {
        return NGX_ERROR;
    }

    s->data = (u_char *) YAJL_GET_STRING(v);
    s->len = ngx_strlen(s->data);

    return NGX_OK;
}


ngx_int_t
ngx_http_cart_promo_code(ngx_str_t *code, u_char *dst)
{
    u_char      c;
    ngx_uint_t  i;

    if (code->len == 0 || code->len > NGX_HTTP_CART_MAX_CODE_LEN) {
        return NGX_ERROR;
    }

    for (i = 0; i < code->len; i++) {
        c = code->data[i];

        if (c >= 'a' && c <= 'z') {
            c -= 'a' - 'A';

        } else if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
                     || c == '_' || c == '-'))
        {
            return NGX_ERROR;
        }

        dst[i] = c;
    }

    return NGX_OK;
}


void
ngx_http_cart_promo_render(yajl_gen g, ngx_http_cart_promo_t *p,
    int64_t redemptions)
{
    ngx_uint_t  i;

    yajl_gen_map_open(g);

    if (p->id.len) {
        ngx_http_cart_json_key(g, "id");
        ngx_http_cart_json_str(g, &p->id);
    }

    if (p->code.len) {
        ngx_http_cart_json_key(g, "code");
        ngx_http_cart_json_str(g, &p->code);
    }

    ngx_http_cart_json_key(g, "type");
    ngx_http_cart_json_str(g, &ngx_http_cart_promo_types[p->type]);

    if (p->value) {
        ngx_http_cart_json_key(g, "value");
        ngx_http_cart_json_amount(g, p->value);
    }

    if (p->type == NGX_HTTP_CART_PROMO_BUNDLE) {
        ngx_http_cart_json_key(g, "bundle_quantity");
        ngx_http_cart_json_int(g, p->bundle_quantity);
        ngx_http_cart_json_key(g, "bundle_discount");
        ngx_http_cart_json_str(g, &ngx_http_cart_bundle_kinds[p->bundle]);
    }

    if (p->min_subtotal) {
        ngx_http_cart_json_key(g, "min_subtotal");
        ngx_http_cart_json_amount(g, p->min_subtotal);
    }

    if (p->nskus) {
        ngx_http_cart_json_key(g, "skus");
        yajl_gen_array_open(g);

        for (i = 0; i < p->nskus; i++) {
            ngx_http_cart_json_str(g, &p->skus[i]);
        }

        yajl_gen_array_close(g);
    }

    if (p->seller.len) {
        ngx_http_cart_json_key(g, "seller_id");
        ngx_http_cart_json_str(g, &p->seller);
    }

    if (p->starts_at) {
        ngx_http_cart_json_key(g, "starts_at");
        ngx_http_cart_json_time(g, p->starts_at);
    }

    if (p->expires_at) {
        ngx_http_cart_json_key(g, "expires_at");
        ngx_http_cart_json_time(g, p->expires_at);
    }

    if (p->max_redemptions) {
        ngx_http_cart_json_key(g, "max_redemptions");
        ngx_http_cart_json_int(g, p->max_redemptions);
    }

    if (p->max_per_user) {
        ngx_http_cart_json_key(g, "max_per_user");
        ngx_http_cart_json_int(g, p->max_per_user);
    }

    if (p->created_at) {
        ngx_http_cart_json_key(g, "created_at");
        ngx_http_cart_json_time(g, p->created_at);
    }

    if (redemptions >= 0) {
        ngx_http_cart_json_key(g, "redemptions");
        ngx_http_cart_json_int(g, redemptions);
    }

    yajl_gen_map_close(g);
}


ngx_http_cart_promo_t *
ngx_http_cart_promo_by_code(ngx_http_cart_promos_t *set, ngx_str_t *code)
{
    return ngx_http_cart_promo_find(set->promos, set->n, code);
}


/* the worker's copy */

void
ngx_http_cart_promos_load(ngx_http_request_t *r, ngx_uint_t fresh,
    ngx_http_cart_promos_ref_t *ref)
{
    ngx_str_t                key;
    ngx_http_cart_promos_t  *set;

    set = ngx_http_cart_promos_current;

    if (!fresh && set && !ngx_http_cart_promos_stale) {

        if (ngx_current_msec - set->loaded < NGX_HTTP_CART_PROMOS_MAX_AGE) {
            ngx_http_cart_promos_acquire(r, set, ref);
            return;
        }

        /* too old: this request reads a new copy, the others go on with
         * this one meanwhile, so that one read refreshes it, not many */
        set->loaded = ngx_current_msec;
    }

    ngx_str_set(&key, NGX_HTTP_CART_PROMOS_KEY);

    ref->set = NULL;

    if (ngx_http_cart_redis_read(r, "HGETALL", &key,
                                 ngx_http_cart_promos_reply, ref)
        != NGX_OK)
    {
        ref->rc = NGX_ERROR;
        return;
    }

    ngx_http_cart_fetch_hold(r);
}


static void
ngx_http_cart_promos_reply(ngx_http_request_t *r, void *data,
    redisReply *reply, ngx_int_t rc)
{
    ngx_http_cart_promos_t      *set, *old;
    ngx_http_cart_promos_ref_t  *ref = data;

    if (rc != NGX_OK || reply->type != REDIS_REPLY_ARRAY) {
        if (rc == NGX_OK) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "cart: promotions could not be read (reply type %d)",
                          reply->type);
        }

        ref->rc = (rc == NGX_AGAIN) ? NGX_AGAIN : NGX_ERROR;
        ngx_http_cart_fetch_release(r);
        return;
    }

    set = ngx_http_cart_promos_build(r, reply);

    if (set == NULL) {
        ref->rc = NGX_ERROR;
        ngx_http_cart_fetch_release(r);
        return;
    }

    old = ngx_http_cart_promos_current;
    ngx_http_cart_promos_current = set;
    ngx_http_cart_promos_stale = 0;

    if (old && old->refs == 0) {
        ngx_destroy_pool(old->pool);
    }

    ngx_http_cart_promos_acquire(r, set, ref);

    ngx_http_cart_fetch_release(r);
}


static ngx_http_cart_promos_t *
ngx_http_cart_promos_build(ngx_http_request_t *r, redisReply *reply)
{
    size_t                   i;
    yajl_val                 doc;
    ngx_str_t                id, json;
    ngx_pool_t              *pool;
    const char              *msg;
    ngx_http_cart_promo_t   *p;
    ngx_http_cart_promos_t  *set;

    pool = ngx_create_pool(4096, ngx_cycle->log);
    if (pool == NULL) {
        return NULL;
    }

    set = ngx_pcalloc(pool, sizeof(ngx_http_cart_promos_t));
    if (set == NULL) {
        goto failed;
    }

    set->pool = pool;
    set->loaded = ngx_current_msec;
    set->promos = ngx_palloc(pool, (reply->elements / 2 + 1)
                                   * sizeof(ngx_http_cart_promo_t));
    if (set->promos == NULL) {
        goto failed;
    }

    for (i = 0; i + 1 < reply->elements; i += 2) {
        if (ngx_http_cart_reply_str(reply, i, &id) != NGX_OK
            || ngx_http_cart_reply_str(reply, i + 1, &json) != NGX_OK)
        {
            continue;
        }

        p = &set->promos[set->n];

        doc = ngx_http_cart_json_parse(pool, json.data, json.len);

        if (doc == NULL
            || ngx_http_cart_promo_parse(pool, doc, 1, p, &msg) != NGX_OK)
        {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "cart: skipping promotion \"%V\" that cannot be "
                          "read", &id);
            continue;
        }

        p->json.len = json.len;
        p->json.data = ngx_pstrdup(pool, &json);
        if (p->json.data == NULL) {
            goto failed;
        }

        set->n++;
    }

    ngx_qsort(set->promos, set->n, sizeof(ngx_http_cart_promo_t),
              ngx_http_cart_promo_cmp);

    return set;

failed:

    ngx_destroy_pool(pool);
    return NULL;
}


static int ngx_libc_cdecl
ngx_http_cart_promo_cmp(const void *a, const void *b)
{
    const ngx_http_cart_promo_t  *pa = a, *pb = b;

    return pa->seq < pb->seq ? -1 : pa->seq > pb->seq;
}


static void
ngx_http_cart_promos_acquire(ngx_http_request_t *r,
    ngx_http_cart_promos_t *set, ngx_http_cart_promos_ref_t *ref)
{
    ngx_pool_cleanup_t  *cln;

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        ref->set = NULL;
        ref->rc = NGX_ERROR;
        return;
    }

    set->refs++;
    cln->handler = ngx_http_cart_promos_release;
    cln->data = set;

    ref->set = set;
    ref->rc = NGX_OK;
}


static void
ngx_http_cart_promos_release(void *data)
{
    ngx_http_cart_promos_t  *set = data;

    if (--set->refs == 0 && set != ngx_http_cart_promos_current) {
        ngx_destroy_pool(set->pool);
    }
}


ngx_http_cart_promos_t *
ngx_http_cart_promos_worker(void)
{
    return ngx_http_cart_promos_current;
}


void
ngx_http_cart_promos_invalidate(void)
{
    ngx_http_cart_promos_stale = 1;
}


void
ngx_http_cart_promos_exit(void)
{
    ngx_http_cart_promos_t  *set;

    set = ngx_http_cart_promos_current;
    ngx_http_cart_promos_current = NULL;

    if (set && set->refs == 0) {
        ngx_destroy_pool(set->pool);
    }
}


/* times: "YYYY-MM-DDTHH:MM:SSZ", UTC, 1970-9999 */

time_t
ngx_http_cart_parse_time(u_char *p, size_t len)
{
    ngx_int_t   year, month, day, hour, min, sec, y, era, yoe, doy;
    ngx_uint_t  i;

    static const char  *form = "dddd-dd-ddTdd:dd:ddZ";
    static ngx_int_t    mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31,
                                    30, 31 };

    if (len != 20) {
        return NGX_ERROR;
    }

    for (i = 0; i < len; i++) {
        if (form[i] == 'd' ? (p[i] < '0' || p[i] > '9') : p[i] != form[i]) {
            return NGX_ERROR;
        }
    }

    year = ngx_atoi(p, 4);
    month = ngx_atoi(p + 5, 2);
    day = ngx_atoi(p + 8, 2);
    hour = ngx_atoi(p + 11, 2);
    min = ngx_atoi(p + 14, 2);
    sec = ngx_atoi(p + 17, 2);

    if (year < 1970 || month < 1 || month > 12 || day < 1
        || day > mdays[month - 1] || hour > 23 || min > 59 || sec > 59
        || (month == 2 && day == 29
            && !(year % 4 == 0 && (year % 100 != 0 || year % 400 == 0))))
    {
        return NGX_ERROR;
    }

    /* days from the civil date (H. Hinnant's algorithm) */

    y = year - (month <= 2);
    era = y / 400;
    yoe = y - era * 400;
    doy = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1;

    return (time_t) ((era * 146097 + yoe * 365 + yoe / 4 - yoe / 100 + doy
                      - 719468) * 86400 + hour * 3600 + min * 60 + sec);
}

