/*
 * The snapshot decoder: Redis's reply into lines, and the upstreams'
 * documents into the facts the engine prices with.
 */

#include "ngx_http_cart_snapshot.h"
#include "ngx_http_cart_reply.h"
#include "ngx_http_cart_json.h"
#include "ngx_http_cart_scripts.h"
#include "ngx_http_cart_subrequest.h"


static ngx_int_t ngx_http_cart_product(ngx_http_request_t *r,
    ngx_http_cart_fetch_t *f, ngx_http_cart_product_t *product);
static ngx_int_t ngx_http_cart_stock(ngx_http_request_t *r,
    ngx_http_cart_fetch_t *f, int64_t *available);
static ngx_int_t ngx_http_cart_quote(ngx_http_request_t *r,
    ngx_http_cart_fetch_t *f, ngx_http_cart_facts_t *facts);


ngx_http_cart_snapshot_t *
ngx_http_cart_snapshot(ngx_http_request_t *r, redisReply *reply, size_t first)
{
    return ngx_http_cart_snapshot_in(r, r->pool, reply, first);
}


ngx_http_cart_snapshot_t *
ngx_http_cart_snapshot_in(ngx_http_request_t *r, ngx_pool_t *pool,
    redisReply *reply, size_t first)
{
    u_char                    *bar;
    size_t                     i;
    ngx_str_t                  field, value;
    ngx_http_cart_ctx_t       *ctx;
    ngx_http_cart_line_t      *line;
    ngx_http_cart_snapshot_t  *snap;

    ctx = ngx_http_get_module_ctx(r, ngx_http_cart_module);

    snap = ngx_pcalloc(pool, sizeof(ngx_http_cart_snapshot_t));
    if (snap == NULL) {
        return NULL;
    }

    snap->promos.rc = NGX_DONE;

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < first) {
        return snap;
    }

    snap->lines = ngx_palloc(pool, ((reply->elements - first) / 2 + 1)
                                   * sizeof(ngx_http_cart_line_t));
    if (snap->lines == NULL) {
        return NULL;
    }

    /* the reply dies with its callback: keep copies in the pool */

    for (i = first; i + 1 < reply->elements; i += 2) {
        if (ngx_http_cart_reply_str(reply, i, &field) != NGX_OK
            || ngx_http_cart_reply_str(reply, i + 1, &value) != NGX_OK
            || field.len == 0)
        {
            continue;
        }

        if (field.data[0] == '#') {
            if (field.len != 2) {
                continue;
            }

            if (field.data[1] == 'v') {
                snap->version = ngx_atoof(value.data, value.len);
                continue;
            }

            value.data = ngx_pstrdup(pool, &value);
            if (value.data == NULL) {
                return NULL;
            }

            if (field.data[1] == 'c') {
                snap->coupon = value;

            } else if (field.data[1] == 'a') {
                bar = ngx_strlchr(value.data, value.data + value.len, '|');

                if (bar) {
                    snap->country.data = value.data;
                    snap->country.len = bar - value.data;
                    snap->postal_code.data = bar + 1;
                    snap->postal_code.len = value.data + value.len - bar - 1;
                }
            }

            continue;
        }

        line = &snap->lines[snap->nlines];

        line->sku.data = ngx_pstrdup(pool, &field);
        value.data = ngx_pstrdup(pool, &value);

        if (line->sku.data == NULL || value.data == NULL) {
            return NULL;
        }

        line->sku.len = field.len;

        if (ngx_http_cart_line_parse(&value, line) != NGX_OK) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "cart: skipping malformed line \"%V\" in \"%V\"",
                          &field, &ctx->cart_key);
            continue;
        }

        snap->nlines++;
    }

    return snap;
}


/* "qty|price|seller|added_at" as written by src/lua/_lib.lua make_line() */

ngx_int_t
ngx_http_cart_line_parse(ngx_str_t *value, ngx_http_cart_line_t *line)
{
    u_char      *p, *last, *sep[3];
    ngx_uint_t   n;

    p = value->data;
    last = p + value->len;

    for (n = 0; n < 3; n++) {
        sep[n] = ngx_strlchr(p, last, '|');
        if (sep[n] == NULL) {
            return NGX_ERROR;
        }

        p = sep[n] + 1;
    }

    line->qty = ngx_atoof(value->data, sep[0] - value->data);
    line->price = sep[1] - sep[0] > 1
                  ? ngx_atoof(sep[0] + 1, sep[1] - sep[0] - 1) : -1;
    line->seller.data = sep[1] + 1;
    line->seller.len = sep[2] - sep[1] - 1;
    line->added = ngx_http_cart_line_time(sep[2] + 1, last - sep[2] - 1);

    if (line->qty == NGX_ERROR || line->added == NGX_ERROR) {
        return NGX_ERROR;
    }

    /*
     * Nothing the module writes is beyond these (cart_max_quantity, a
     * catalog's price); the engine multiplies them, which must not
     * overflow. An unreadable price ("x", or one past 2^63) stays -1,
     * unknown, as before.
     */
    if (line->qty > NGX_HTTP_CART_MAX_QUANTITY
        || line->price > NGX_HTTP_CART_MAX_AMOUNT)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


time_t
ngx_http_cart_line_time(u_char *p, size_t len)
{
    time_t   t;
    u_char  *last;

    if (len >= 9) {
        return ngx_atotm(p, len);
    }

    if (len == 0) {
        return NGX_ERROR;
    }

    t = 0;

    for (last = p + len; p < last; p++) {
        if (*p >= '0' && *p <= '9') {
            t = t * 36 + (*p - '0');

        } else if (*p >= 'a' && *p <= 'z') {
            t = t * 36 + (*p - 'a' + 10);

        } else {
            return NGX_ERROR;
        }
    }

    return t;
}


u_char *
ngx_http_cart_line_stamp(u_char *p, time_t t)
{
    u_char  *d, digits[NGX_HTTP_CART_STAMP_LEN];

    d = digits + NGX_HTTP_CART_STAMP_LEN;

    do {
        *--d = "0123456789abcdefghijklmnopqrstuvwxyz"[t % 36];
        t /= 36;
    } while (t);

    return ngx_cpymem(p, d, digits + NGX_HTTP_CART_STAMP_LEN - d);
}


/* upstream documents */

ngx_http_cart_snapshot_t *
ngx_http_cart_snapshot_lines(ngx_http_request_t *r,
    ngx_http_cart_line_t *lines, ngx_uint_t n)
{
    ngx_http_cart_snapshot_t  *snap;

    snap = ngx_pcalloc(r->pool, sizeof(ngx_http_cart_snapshot_t));
    if (snap == NULL) {
        return NULL;
    }

    snap->lines = lines;
    snap->nlines = n;
    snap->promos.rc = NGX_DONE;

    return snap;
}


ngx_int_t
ngx_http_cart_snapshot_facts(ngx_http_request_t *r,
    ngx_http_cart_snapshot_t *snap)
{
    ngx_str_t               *sku;
    ngx_uint_t               i;
    ngx_http_cart_facts_t   *f;
    ngx_http_cart_lookup_t  *lk;

    if (snap->facts == NULL) {
        snap->facts = ngx_pcalloc(r->pool, (snap->nlines + 1)
                                           * sizeof(ngx_http_cart_facts_t));
        if (snap->facts == NULL) {
            return NGX_ERROR;
        }
    }

    /* a line the cache answered has its facts of that kind already */

    for (i = 0; i < snap->nlines; i++) {
        f = &snap->facts[i];
        sku = &snap->lines[i].sku;

        if (snap->catalog == NULL) {
            f->catalog = NGX_DONE;

        } else if (snap->catalog[i].fetch) {
            lk = &snap->catalog[i];
            f->catalog = ngx_http_cart_product(r, lk->fetch, &f->product);
            ngx_http_cart_cache_put(r, NGX_HTTP_CART_CACHE_CATALOG, sku,
                                    NULL, NULL, f, lk->hold);
        }

        if (snap->inventory == NULL) {
            f->stock = NGX_DONE;

        } else if (snap->inventory[i].fetch) {
            lk = &snap->inventory[i];
            f->stock = ngx_http_cart_stock(r, lk->fetch, &f->available);
            ngx_http_cart_cache_put(r, NGX_HTTP_CART_CACHE_INVENTORY, sku,
                                    NULL, NULL, f, lk->hold);
        }

        if (snap->shipping == NULL) {
            f->ship = NGX_DONE;

        } else if (snap->shipping[i].fetch) {
            lk = &snap->shipping[i];
            f->ship = ngx_http_cart_quote(r, lk->fetch, f);
            ngx_http_cart_cache_put(r, NGX_HTTP_CART_CACHE_SHIPPING, sku,
                                    &snap->country, &snap->postal_code, f,
                                    lk->hold);
        }
    }

    snap->decoded = 1;

    return NGX_OK;
}


static ngx_int_t
ngx_http_cart_product(ngx_http_request_t *r, ngx_http_cart_fetch_t *f,
    ngx_http_cart_product_t *product)
{
    yajl_val     doc, v;
    ngx_int_t    rc;
    ngx_str_t   *s;
    ngx_uint_t   i;

    static const char  *names[] = { "name", "seller_id", "image" };

    rc = ngx_http_cart_fetch_doc(r, f, &doc);
    if (rc != NGX_OK) {
        return rc;
    }

    if (ngx_http_cart_json_money(ngx_http_cart_json_field(doc, "price"),
                                 &product->price)
        != NGX_OK
        || product->price < 0)
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "cart: catalog document for \"%V\" has no valid price",
                      &f->sku);
        return NGX_ERROR;
    }

    for (i = 0; i < 3; i++) {
        s = i == 0 ? &product->name : i == 1 ? &product->seller
                                             : &product->image;
        ngx_str_null(s);

        v = ngx_http_cart_json_field(doc, names[i]);

        if (YAJL_IS_STRING(v)) {
            s->data = (u_char *) YAJL_GET_STRING(v);
            s->len = ngx_strlen(s->data);
        }
    }

    if (product->seller.len
        && ngx_http_cart_valid_id(&product->seller, NGX_HTTP_CART_MAX_SKU_LEN)
           != NGX_OK)
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "cart: catalog document for \"%V\" has an invalid "
                      "seller_id", &f->sku);
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* inventory: {"sku_id","available": N}; a 404 is nothing in stock */

static ngx_int_t
ngx_http_cart_stock(ngx_http_request_t *r, ngx_http_cart_fetch_t *f,
    int64_t *available)
{
    yajl_val   doc;
    ngx_int_t  rc;

    rc = ngx_http_cart_fetch_doc(r, f, &doc);

    if (rc == NGX_DECLINED) {
        *available = 0;
        return NGX_OK;
    }

    if (rc != NGX_OK) {
        return rc;
    }

    if (ngx_http_cart_json_integer(ngx_http_cart_json_field(doc, "available"),
                                   available)
        != NGX_OK)
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "cart: inventory document for \"%V\" has no valid "
                      "\"available\"", &f->sku);
        return NGX_ERROR;
    }

    if (*available < 0) {
        *available = 0;
    }

    return NGX_OK;
}


/* shipping: {"sku_id","cost","min_days","max_days"}, cost per unit */

static ngx_int_t
ngx_http_cart_quote(ngx_http_request_t *r, ngx_http_cart_fetch_t *f,
    ngx_http_cart_facts_t *facts)
{
    yajl_val   doc;
    ngx_int_t  rc;

    rc = ngx_http_cart_fetch_doc(r, f, &doc);
    if (rc != NGX_OK) {
        return rc;
    }

    if (ngx_http_cart_json_money(ngx_http_cart_json_field(doc, "cost"),
                                 &facts->ship_cost) != NGX_OK
        || facts->ship_cost < 0
        || ngx_http_cart_json_integer(ngx_http_cart_json_field(doc,
                                                               "min_days"),
                                      &facts->min_days) != NGX_OK
        || ngx_http_cart_json_integer(ngx_http_cart_json_field(doc,
                                                               "max_days"),
                                      &facts->max_days) != NGX_OK
        || facts->min_days < 0 || facts->max_days < facts->min_days
        || facts->max_days > 366)
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "cart: shipping document for \"%V\" is not valid",
                      &f->sku);
        return NGX_ERROR;
    }

    return NGX_OK;
}
