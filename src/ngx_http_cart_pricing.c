/*
 * Pricing: the cart snapshot, its wave of upstream lookups, and the
 * computation of prices, stock, shipping, promotions and totals.
 *
 * Prices. A line is charged its current catalog price: lower than
 * price_at_add, the customer wins; higher, checkout refuses unless the
 * customer accepts it. Without a current price (catalog failed or not
 * configured) price_at_add stands in. "subtotal" stays at price_at_add,
 * as the seed shows it; "price_adjustment" is the difference to current
 * prices, so subtotal + price_adjustment + discount + shipping_total =
 * estimated_total, which is what checkout would charge right now.
 *
 * Promotions, in this order, each on what the previous ones left:
 * automatic bundles, automatic percent and amount promotions, the one
 * coupon, then free shipping. Eligibility (window, scope, min_subtotal,
 * bundle_quantity) looks at the lines before any discount, so whether
 * one promotion applies never depends on another.
 *
 * Rounding. Percent discounts are computed once per promotion on the
 * sum of its eligible amounts and rounded half up to the minor unit
 * (12.5% of 0.99 = 0.12375 -> 0.12; 10% of 0.05 = 0.005 -> 0.01). A
 * discount is spread over its lines in proportion to their amounts by
 * the largest-remainder method (ties to the earlier line), so per-line
 * and per-seller figures add up exactly to the promotion's discount.
 */

#include "ngx_http_cart_pricing.h"
#include "ngx_http_cart_handler.h"
#include "ngx_http_cart_scripts.h"
#include "ngx_http_cart_subrequest.h"


typedef struct {
    int64_t                        unit;
    ngx_uint_t                     index;
} ngx_http_cart_unit_t;


static ngx_http_cart_fetch_t *ngx_http_cart_pricing_start(
    ngx_http_request_t *r, ngx_http_cart_snapshot_t *snap,
    ngx_http_complex_value_t *uri);
static void ngx_http_cart_price_line(ngx_http_request_t *r,
    ngx_http_cart_snapshot_t *snap, ngx_uint_t i,
    ngx_http_cart_priced_line_t *pl);
static ngx_int_t ngx_http_cart_stock(ngx_http_request_t *r,
    ngx_http_cart_fetch_t *f, int64_t *available);
static ngx_int_t ngx_http_cart_quote(ngx_http_request_t *r,
    ngx_http_cart_fetch_t *f, ngx_http_cart_priced_line_t *pl);
static void ngx_http_cart_group(ngx_http_cart_priced_t *priced,
    ngx_http_cart_priced_line_t *pl);
static ngx_int_t ngx_http_cart_promote(ngx_http_request_t *r,
    ngx_http_cart_snapshot_t *snap, ngx_http_cart_priced_t *priced,
    ngx_str_t *coupon);
static ngx_uint_t ngx_http_cart_promo_pass(ngx_http_cart_promo_t *p,
    ngx_http_cart_promo_t *coupon, ngx_uint_t pass);
static const char *ngx_http_cart_promo_eligible(ngx_http_cart_promo_t *p,
    ngx_http_cart_priced_t *priced, ngx_uint_t *scope, ngx_uint_t *n);
static ngx_uint_t ngx_http_cart_in_scope(ngx_http_cart_promo_t *p,
    ngx_http_cart_priced_line_t *pl);
static int64_t ngx_http_cart_promo_apply(ngx_http_request_t *r,
    ngx_http_cart_promo_t *p, ngx_http_cart_priced_t *priced,
    ngx_uint_t *scope, ngx_uint_t n);
static int64_t ngx_http_cart_bundle(ngx_http_request_t *r,
    ngx_http_cart_promo_t *p, ngx_http_cart_priced_t *priced,
    ngx_uint_t *scope, ngx_uint_t n, int64_t *weight);
static int64_t ngx_http_cart_spread(ngx_http_cart_priced_t *priced,
    ngx_uint_t *scope, ngx_uint_t n, int64_t *weight, int64_t discount,
    int64_t *share);
static int64_t ngx_http_cart_percent(int64_t amount, int64_t bp);
static int ngx_libc_cdecl ngx_http_cart_unit_cmp(const void *a,
    const void *b);
static void ngx_http_cart_json_line(yajl_gen g,
    ngx_http_cart_priced_line_t *pl);
static void ngx_http_cart_json_warnings(yajl_gen g,
    ngx_http_cart_priced_t *priced);
static void ngx_http_cart_json_warning(yajl_gen g, const char *code,
    ngx_str_t *sku, const char *message);
static void ngx_http_cart_json_sellers(yajl_gen g,
    ngx_http_cart_priced_t *priced);
static void ngx_http_cart_json_coupon(yajl_gen g,
    ngx_http_cart_priced_t *priced);
static void ngx_http_cart_json_shipping(yajl_gen g,
    ngx_http_cart_priced_t *priced);


/* the snapshot */

ngx_http_cart_snapshot_t *
ngx_http_cart_snapshot(ngx_http_request_t *r, redisReply *reply, size_t first)
{
    u_char                    *bar;
    size_t                     i;
    ngx_str_t                  field, value;
    ngx_http_cart_ctx_t       *ctx;
    ngx_http_cart_line_t      *line;
    ngx_http_cart_snapshot_t  *snap;

    ctx = ngx_http_get_module_ctx(r, ngx_http_cart_module);

    snap = ngx_pcalloc(r->pool, sizeof(ngx_http_cart_snapshot_t));
    if (snap == NULL) {
        return NULL;
    }

    snap->promos.rc = NGX_DONE;

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < first) {
        return snap;
    }

    snap->lines = ngx_palloc(r->pool, ((reply->elements - first) / 2 + 1)
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

            value.data = ngx_pstrdup(r->pool, &value);
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

        line->sku.data = ngx_pstrdup(r->pool, &field);
        value.data = ngx_pstrdup(r->pool, &value);

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


/* the wave */

ngx_int_t
ngx_http_cart_pricing_fetch(ngx_http_request_t *r,
    ngx_http_cart_snapshot_t *snap, ngx_uint_t flags,
    ngx_http_cart_resume_pt resume)
{
    ngx_http_cart_loc_conf_t  *lcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_cart_module);

    if (snap->nlines && lcf->catalog) {
        snap->catalog = ngx_http_cart_pricing_start(r, snap, lcf->catalog);
        if (snap->catalog == NULL) {
            return NGX_ERROR;
        }
    }

    if (snap->nlines && lcf->inventory) {
        snap->inventory = ngx_http_cart_pricing_start(r, snap,
                                                      lcf->inventory);
        if (snap->inventory == NULL) {
            return NGX_ERROR;
        }
    }

    if (snap->nlines && lcf->shipping && snap->country.len) {
        ngx_http_cart_fetch_address(r, &snap->country, &snap->postal_code);

        snap->shipping = ngx_http_cart_pricing_start(r, snap, lcf->shipping);
        if (snap->shipping == NULL) {
            return NGX_ERROR;
        }
    }

    if (snap->nlines || (flags & NGX_HTTP_CART_PRICE_FRESH)) {
        ngx_http_cart_promos_load(r, flags & NGX_HTTP_CART_PRICE_FRESH,
                                  &snap->promos);
    }

    ngx_http_cart_fetch_wait(r, resume);

    return NGX_OK;
}


static ngx_http_cart_fetch_t *
ngx_http_cart_pricing_start(ngx_http_request_t *r,
    ngx_http_cart_snapshot_t *snap, ngx_http_complex_value_t *uri)
{
    ngx_uint_t              i;
    ngx_http_cart_fetch_t  *f;

    f = ngx_pcalloc(r->pool, snap->nlines * sizeof(ngx_http_cart_fetch_t));
    if (f == NULL) {
        return NULL;
    }

    for (i = 0; i < snap->nlines; i++) {
        f[i].sku = snap->lines[i].sku;
    }

    if (ngx_http_cart_fetch_start(r, uri, f, snap->nlines) != NGX_OK) {
        return NULL;
    }

    return f;
}


/* upstream documents */

ngx_int_t
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
    ngx_http_cart_priced_line_t *pl)
{
    yajl_val   doc;
    ngx_int_t  rc;

    rc = ngx_http_cart_fetch_doc(r, f, &doc);
    if (rc != NGX_OK) {
        return rc;
    }

    if (ngx_http_cart_json_money(ngx_http_cart_json_field(doc, "cost"),
                                 &pl->ship_cost) != NGX_OK
        || pl->ship_cost < 0
        || ngx_http_cart_json_integer(ngx_http_cart_json_field(doc,
                                                               "min_days"),
                                      &pl->min_days) != NGX_OK
        || ngx_http_cart_json_integer(ngx_http_cart_json_field(doc,
                                                               "max_days"),
                                      &pl->max_days) != NGX_OK
        || pl->min_days < 0 || pl->max_days < pl->min_days
        || pl->max_days > 366)
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "cart: shipping document for \"%V\" is not valid",
                      &f->sku);
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* the computation */

ngx_http_cart_priced_t *
ngx_http_cart_price(ngx_http_request_t *r, ngx_http_cart_snapshot_t *snap,
    ngx_str_t *coupon)
{
    time_t                        now;
    ngx_uint_t                    i;
    ngx_http_cart_group_t        *g;
    ngx_http_cart_priced_t       *priced;
    ngx_http_cart_priced_line_t  *pl;

    priced = ngx_pcalloc(r->pool, sizeof(ngx_http_cart_priced_t));
    if (priced == NULL) {
        return NULL;
    }

    priced->lines = ngx_pcalloc(r->pool, (snap->nlines + 1)
                                      * sizeof(ngx_http_cart_priced_line_t));
    priced->groups = ngx_pcalloc(r->pool, (snap->nlines + 1)
                                          * sizeof(ngx_http_cart_group_t));
    if (priced->lines == NULL || priced->groups == NULL) {
        return NULL;
    }

    now = ngx_time();
    priced->today = now - now % 86400;
    priced->nlines = snap->nlines;

    for (i = 0; i < snap->nlines; i++) {
        pl = &priced->lines[i];
        ngx_http_cart_price_line(r, snap, i, pl);
        ngx_http_cart_group(priced, pl);
    }

    if (ngx_http_cart_promote(r, snap, priced, coupon) != NGX_OK) {
        return NULL;
    }

    for (i = 0; i < priced->nlines; i++) {
        pl = &priced->lines[i];
        g = &priced->groups[pl->group];

        g->items += pl->line->qty;
        g->subtotal += pl->at_add;
        g->amount += pl->amount;
        g->discount += pl->discount + pl->ship_discount;
        g->shipping += pl->shipping;

        if (pl->ship == NGX_OK && pl->catalog != NGX_DECLINED) {
            g->estimated++;
            g->min_days = ngx_max(g->min_days, pl->min_days);
            g->max_days = ngx_max(g->max_days, pl->max_days);
        }

        priced->item_count += pl->line->qty;
        priced->subtotal += pl->at_add;
        priced->amount += pl->amount;
        priced->discount += pl->discount + pl->ship_discount;
        priced->shipping += pl->shipping;
    }

    return priced;
}


static void
ngx_http_cart_price_line(ngx_http_request_t *r, ngx_http_cart_snapshot_t *snap,
    ngx_uint_t i, ngx_http_cart_priced_line_t *pl)
{
    ngx_http_cart_line_t  *line;

    line = &snap->lines[i];
    pl->line = line;

    pl->catalog = snap->catalog
                  ? ngx_http_cart_product(r, &snap->catalog[i], &pl->product)
                  : NGX_DONE;

    pl->stock = snap->inventory
                ? ngx_http_cart_stock(r, &snap->inventory[i], &pl->available)
                : NGX_DONE;

    pl->ship = snap->shipping
               ? ngx_http_cart_quote(r, &snap->shipping[i], pl)
               : NGX_DONE;

    pl->seller = (pl->catalog == NGX_OK && pl->product.seller.len)
                 ? pl->product.seller : line->seller;

    pl->at_add = line->price >= 0 ? line->price * line->qty : 0;

    if (pl->catalog == NGX_OK) {
        pl->unit = pl->product.price;

    } else if (pl->catalog == NGX_DECLINED) {
        pl->unit = -1;

    } else {
        /* not verified: the price the customer saw is the best we know */
        pl->unit = line->price;
    }

    pl->amount = pl->unit >= 0 ? pl->unit * line->qty : 0;

    if (pl->ship == NGX_OK && pl->catalog != NGX_DECLINED) {
        pl->shipping = pl->ship_cost * line->qty;
    }
}


/* lines group by seller, in the order sellers first appear */

static void
ngx_http_cart_group(ngx_http_cart_priced_t *priced,
    ngx_http_cart_priced_line_t *pl)
{
    ngx_uint_t              i;
    ngx_http_cart_group_t  *g;

    for (i = 0; i < priced->ngroups; i++) {
        g = &priced->groups[i];

        if (g->seller.len == pl->seller.len
            && ngx_strncmp(g->seller.data, pl->seller.data, pl->seller.len)
               == 0)
        {
            pl->group = i;
            return;
        }
    }

    g = &priced->groups[priced->ngroups];
    g->seller = pl->seller;
    g->min_days = -1;
    g->max_days = -1;

    pl->group = priced->ngroups++;
}


/* promotions */

static ngx_int_t
ngx_http_cart_promote(ngx_http_request_t *r, ngx_http_cart_snapshot_t *snap,
    ngx_http_cart_priced_t *priced, ngx_str_t *coupon)
{
    int64_t                   d;
    ngx_uint_t                i, k, n, pass, *scope;
    const char               *err;
    ngx_http_cart_promo_t    *p, *cp;
    ngx_http_cart_promos_t   *set;
    ngx_http_cart_applied_t  *a;

    set = snap->promos.set;
    cp = NULL;

    priced->coupon = *coupon;

    if (coupon->len) {
        if (set) {
            cp = ngx_http_cart_promo_by_code(set, coupon);

            if (cp == NULL) {
                priced->coupon_error = "coupon_unknown";
            }

        } else {
            priced->coupon_error = snap->promos.rc == NGX_DONE
                                   ? "coupon_conditions_unmet"
                                   : "promotions_unavailable";
        }
    }

    priced->applied = ngx_palloc(r->pool, ((set ? set->n : 0) + 1)
                                          * sizeof(ngx_http_cart_applied_t));
    scope = ngx_palloc(r->pool, (priced->nlines + 1) * sizeof(ngx_uint_t));

    if (priced->applied == NULL || scope == NULL) {
        return NGX_ERROR;
    }

    if (set == NULL) {
        return NGX_OK;
    }

    for (pass = 0; pass < 4; pass++) {
        for (i = 0; i < set->n; i++) {
            p = &set->promos[i];

            if (!ngx_http_cart_promo_pass(p, cp, pass)) {
                continue;
            }

            for (k = 0; k < snap->nexcluded; k++) {
                if (snap->excluded[k] == p) {
                    break;
                }
            }

            if (k < snap->nexcluded) {
                continue;
            }

            err = ngx_http_cart_promo_eligible(p, priced, scope, &n);

            if (err) {
                if (p == cp) {
                    priced->coupon_error = err;
                }

                continue;
            }

            d = ngx_http_cart_promo_apply(r, p, priced, scope, n);

            if (d < 0) {
                return NGX_ERROR;
            }

            a = &priced->applied[priced->napplied++];
            a->promo = p;
            a->discount = d;
            a->coupon = (p == cp);
        }
    }

    return NGX_OK;
}


/* pass 0: automatic bundles; 1: automatic percent / amount; 2: the coupon;
 * 3: free shipping, automatic or the coupon */

static ngx_uint_t
ngx_http_cart_promo_pass(ngx_http_cart_promo_t *p,
    ngx_http_cart_promo_t *coupon, ngx_uint_t pass)
{
    ngx_uint_t  automatic, shipping;

    automatic = (p->code.len == 0);
    shipping = (p->type == NGX_HTTP_CART_PROMO_FREE_SHIPPING);

    switch (pass) {

    case 0:
        return automatic && p->type == NGX_HTTP_CART_PROMO_BUNDLE;

    case 1:
        return automatic && (p->type == NGX_HTTP_CART_PROMO_PERCENT
                             || p->type == NGX_HTTP_CART_PROMO_AMOUNT);

    case 2:
        return p == coupon && !shipping;

    default:
        return shipping && (automatic || p == coupon);
    }
}


/* NULL when p applies to the cart (scope: its lines), else why not */

static const char *
ngx_http_cart_promo_eligible(ngx_http_cart_promo_t *p,
    ngx_http_cart_priced_t *priced, ngx_uint_t *scope, ngx_uint_t *n)
{
    time_t                        now;
    int64_t                       gross, units;
    ngx_uint_t                    i;
    ngx_http_cart_priced_line_t  *pl;

    now = ngx_time();

    if (p->starts_at && now < p->starts_at) {
        return "coupon_not_yet_valid";
    }

    if (p->expires_at && now >= p->expires_at) {
        return "coupon_expired";
    }

    gross = 0;
    units = 0;
    *n = 0;

    for (i = 0; i < priced->nlines; i++) {
        pl = &priced->lines[i];

        if (!ngx_http_cart_in_scope(p, pl)) {
            continue;
        }

        scope[(*n)++] = i;
        gross += pl->amount;
        units += pl->line->qty;
    }

    if (*n == 0 || gross < p->min_subtotal
        || (p->type == NGX_HTTP_CART_PROMO_BUNDLE
            && units < p->bundle_quantity))
    {
        return "coupon_conditions_unmet";
    }

    return NULL;
}


static ngx_uint_t
ngx_http_cart_in_scope(ngx_http_cart_promo_t *p,
    ngx_http_cart_priced_line_t *pl)
{
    ngx_uint_t  k;

    if (pl->unit < 0) {
        /* not sold, or no price known at all */
        return 0;
    }

    if (p->seller.len
        && (p->seller.len != pl->seller.len
            || ngx_strncmp(p->seller.data, pl->seller.data, pl->seller.len)
               != 0))
    {
        return 0;
    }

    if (p->nskus == 0) {
        return 1;
    }

    for (k = 0; k < p->nskus; k++) {
        if (p->skus[k].len == pl->line->sku.len
            && ngx_strncmp(p->skus[k].data, pl->line->sku.data,
                           pl->line->sku.len) == 0)
        {
            return 1;
        }
    }

    return 0;
}


/* the discount p gives (>= 0), booked on its lines; -1: no memory */

static int64_t
ngx_http_cart_promo_apply(ngx_http_request_t *r, ngx_http_cart_promo_t *p,
    ngx_http_cart_priced_t *priced, ngx_uint_t *scope, ngx_uint_t n)
{
    int64_t                       net, d, *weight, *share;
    ngx_uint_t                    i;
    ngx_http_cart_priced_line_t  *pl;

    weight = ngx_palloc(r->pool, 2 * n * sizeof(int64_t));
    if (weight == NULL) {
        return -1;
    }

    share = weight + n;

    if (p->type == NGX_HTTP_CART_PROMO_FREE_SHIPPING) {
        d = 0;

        for (i = 0; i < n; i++) {
            pl = &priced->lines[scope[i]];
            d += pl->shipping - pl->ship_discount;
            pl->ship_discount = pl->shipping;
        }

        return d;
    }

    if (p->type == NGX_HTTP_CART_PROMO_BUNDLE) {
        d = ngx_http_cart_bundle(r, p, priced, scope, n, weight);
        if (d < 0) {
            return -1;
        }

    } else {
        net = 0;

        for (i = 0; i < n; i++) {
            pl = &priced->lines[scope[i]];
            weight[i] = pl->amount - pl->discount;
            net += weight[i];
        }

        d = (p->type == NGX_HTTP_CART_PROMO_PERCENT)
            ? ngx_http_cart_percent(net, p->value)
            : ngx_min(p->value, net);
    }

    return ngx_http_cart_spread(priced, scope, n, weight, d, share);
}


/*
 * Bundles: the in-scope units in order of price, dearest first (ties: the
 * earlier line), form groups of bundle_quantity; complete groups count.
 * cheapest_free: the last unit of each complete group is free. percent /
 * amount: off the units of the complete groups (amount: value per group).
 * weight[] receives what each line's share is in proportion to; for
 * cheapest_free it is the exact discount. Returns the discount.
 */

static int64_t
ngx_http_cart_bundle(ngx_http_request_t *r, ngx_http_cart_promo_t *p,
    ngx_http_cart_priced_t *priced, ngx_uint_t *scope, ngx_uint_t n,
    int64_t *weight)
{
    int64_t                       s, q, units, groups, free, in, total;
    ngx_uint_t                    i, k;
    ngx_http_cart_unit_t         *order;
    ngx_http_cart_priced_line_t  *pl;

    order = ngx_palloc(r->pool, n * sizeof(ngx_http_cart_unit_t));
    if (order == NULL) {
        return -1;
    }

    units = 0;

    for (i = 0; i < n; i++) {
        pl = &priced->lines[scope[i]];
        order[i].unit = pl->unit;
        order[i].index = i;
        units += pl->line->qty;
        weight[i] = 0;
    }

    ngx_qsort(order, n, sizeof(ngx_http_cart_unit_t), ngx_http_cart_unit_cmp);

    groups = units / p->bundle_quantity;
    s = 0;
    total = 0;

    for (i = 0; i < n; i++) {
        k = order[i].index;
        q = priced->lines[scope[k]].line->qty;

        if (p->bundle == NGX_HTTP_CART_BUNDLE_CHEAPEST_FREE) {
            free = (s + q) / p->bundle_quantity - s / p->bundle_quantity;
            weight[k] = free * order[i].unit;

        } else {
            in = ngx_min(s + q, groups * p->bundle_quantity) - s;
            weight[k] = in > 0 ? in * order[i].unit : 0;
        }

        total += weight[k];
        s += q;
    }

    switch (p->bundle) {

    case NGX_HTTP_CART_BUNDLE_CHEAPEST_FREE:
        return total;

    case NGX_HTTP_CART_BUNDLE_PERCENT:
        return ngx_http_cart_percent(total, p->value);

    default: /* NGX_HTTP_CART_BUNDLE_AMOUNT */
        /* min(value x groups, total) without overflowing */
        return (groups > total / p->value) ? total : p->value * groups;
    }
}


static int ngx_libc_cdecl
ngx_http_cart_unit_cmp(const void *a, const void *b)
{
    const ngx_http_cart_unit_t  *ua = a, *ub = b;

    if (ua->unit != ub->unit) {
        return ua->unit > ub->unit ? -1 : 1;
    }

    return ua->index < ub->index ? -1 : (ua->index > ub->index);
}


/*
 * Books "discount" (at most the sum of the weights) on the scope's lines
 * in proportion to weight[], largest remainder first, each line capped at
 * what it has left. Returns what was booked.
 */

static int64_t
ngx_http_cart_spread(ngx_http_cart_priced_t *priced, ngx_uint_t *scope,
    ngx_uint_t n, int64_t *weight, int64_t discount, int64_t *share)
{
    int64_t                       left, booked, cap;
    __int128                      total, product;
    ngx_uint_t                    i, best;
    ngx_http_cart_priced_line_t  *pl;

    total = 0;

    for (i = 0; i < n; i++) {
        total += weight[i];
    }

    if (total == 0 || discount <= 0) {
        return 0;
    }

    left = discount;

    for (i = 0; i < n; i++) {
        product = (__int128) discount * weight[i];
        share[i] = (int64_t) (product / total);
        left -= share[i];

        /* the remainder, kept in weight[] from here on */
        weight[i] = (int64_t) (product % total);
    }

    while (left > 0) {
        best = n;

        for (i = 0; i < n; i++) {
            if (weight[i] > 0 && (best == n || weight[i] > weight[best])) {
                best = i;
            }
        }

        if (best == n) {
            break;
        }

        share[best]++;
        weight[best] = 0;
        left--;
    }

    booked = 0;

    for (i = 0; i < n; i++) {
        pl = &priced->lines[scope[i]];
        cap = pl->amount - pl->discount;

        if (share[i] > cap) {
            share[i] = cap;
        }

        pl->discount += share[i];
        booked += share[i];
    }

    return booked;
}


/* bp basis points of amount, rounded half up to the minor unit */

static int64_t
ngx_http_cart_percent(int64_t amount, int64_t bp)
{
    return (int64_t) (((__int128) amount * bp + 5000) / 10000);
}


/* the view */

void
ngx_http_cart_render_view(ngx_http_request_t *r, yajl_gen g,
    ngx_http_cart_snapshot_t *snap, ngx_http_cart_priced_t *priced,
    int64_t version)
{
    ngx_uint_t                  i;
    ngx_http_cart_ctx_t        *ctx;
    ngx_http_cart_main_conf_t  *cmcf;

    ctx = ngx_http_get_module_ctx(r, ngx_http_cart_module);
    cmcf = ngx_http_get_module_main_conf(r, ngx_http_cart_module);

    yajl_gen_map_open(g);
    ngx_http_cart_json_cart_id(g, ctx);
    ngx_http_cart_json_key(g, "items");
    yajl_gen_array_open(g);

    for (i = 0; i < priced->nlines; i++) {
        ngx_http_cart_json_line(g, &priced->lines[i]);
    }

    yajl_gen_array_close(g);

    ngx_http_cart_json_key(g, "item_count");
    ngx_http_cart_json_int(g, priced->item_count);
    ngx_http_cart_json_key(g, "subtotal");
    ngx_http_cart_json_amount(g, priced->subtotal);
    ngx_http_cart_json_key(g, "currency");
    ngx_http_cart_json_str(g, &cmcf->currency);
    ngx_http_cart_json_key(g, "version");
    ngx_http_cart_json_int(g, version);

    ngx_http_cart_json_warnings(g, priced);
    ngx_http_cart_json_sellers(g, priced);

    ngx_http_cart_json_key(g, "promotions_applied");
    ngx_http_cart_json_applied(g, priced);
    ngx_http_cart_json_coupon(g, priced);

    ngx_http_cart_json_key(g, "shipping_address");
    ngx_http_cart_json_address(g, snap);
    ngx_http_cart_json_shipping(g, priced);

    ngx_http_cart_json_key(g, "price_adjustment");
    ngx_http_cart_json_amount(g, priced->amount - priced->subtotal);
    ngx_http_cart_json_key(g, "discount");
    ngx_http_cart_json_amount(g, -priced->discount);
    ngx_http_cart_json_key(g, "shipping_total");
    ngx_http_cart_json_amount(g, priced->shipping);
    ngx_http_cart_json_key(g, "estimated_total");
    ngx_http_cart_json_amount(g, priced->amount - priced->discount
                                 + priced->shipping);

    yajl_gen_map_close(g);
}


static void
ngx_http_cart_json_line(yajl_gen g, ngx_http_cart_priced_line_t *pl)
{
    ngx_http_cart_line_t  *line;

    line = pl->line;

    yajl_gen_map_open(g);
    ngx_http_cart_json_key(g, "sku_id");
    ngx_http_cart_json_str(g, &line->sku);
    ngx_http_cart_json_key(g, "quantity");
    ngx_http_cart_json_int(g, line->qty);
    ngx_http_cart_json_key(g, "price_at_add");
    ngx_http_cart_json_price(g, line->price);
    ngx_http_cart_json_key(g, "seller_id");
    ngx_http_cart_json_str(g, &line->seller);

    ngx_http_cart_json_key(g, "added_at");
    ngx_http_cart_json_time(g, line->added);

    if (pl->catalog == NGX_OK) {
        ngx_http_cart_json_key(g, "current_price");
        ngx_http_cart_json_amount(g, pl->product.price);
        ngx_http_cart_json_key(g, "price_changed");
        yajl_gen_bool(g, line->price >= 0 && line->price != pl->product.price);
        ngx_http_cart_json_key(g, "name");
        ngx_http_cart_json_str(g, &pl->product.name);
        ngx_http_cart_json_key(g, "seller");
        ngx_http_cart_json_str(g, &pl->seller);
        ngx_http_cart_json_key(g, "image");
        ngx_http_cart_json_str(g, &pl->product.image);

    } else if (pl->catalog == NGX_DECLINED) {
        ngx_http_cart_json_key(g, "available");
        yajl_gen_bool(g, 0);

    } else if (pl->catalog == NGX_ERROR) {
        ngx_http_cart_json_key(g, "price_verified");
        yajl_gen_bool(g, 0);
    }

    if (pl->stock == NGX_OK) {
        ngx_http_cart_json_key(g, "in_stock");
        yajl_gen_bool(g, pl->catalog != NGX_DECLINED
                         && pl->available >= line->qty);

    } else if (pl->stock == NGX_ERROR) {
        ngx_http_cart_json_key(g, "stock_verified");
        yajl_gen_bool(g, 0);
    }

    yajl_gen_map_close(g);
}


static void
ngx_http_cart_json_warnings(yajl_gen g, ngx_http_cart_priced_t *priced)
{
    ngx_uint_t                    i;
    ngx_http_cart_line_t         *line;
    ngx_http_cart_priced_line_t  *pl;

    ngx_http_cart_json_key(g, "warnings");
    yajl_gen_array_open(g);

    for (i = 0; i < priced->nlines; i++) {
        pl = &priced->lines[i];
        line = pl->line;

        if (pl->catalog == NGX_DECLINED) {
            ngx_http_cart_json_warning(g, "unavailable", &line->sku,
                                       "this item is no longer sold");
            continue;
        }

        if (pl->catalog == NGX_ERROR) {
            ngx_http_cart_json_warning(g, "price_unverified", &line->sku,
                                       "the current price could not be "
                                       "checked");

        } else if (pl->catalog == NGX_OK && line->price >= 0
                   && pl->product.price > line->price)
        {
            ngx_http_cart_json_warning(g, "price_increased", &line->sku,
                                       "the price went up since the item "
                                       "was added");

        } else if (pl->catalog == NGX_OK && line->price >= 0
                   && pl->product.price < line->price)
        {
            ngx_http_cart_json_warning(g, "price_decreased", &line->sku,
                                       "the price went down since the item "
                                       "was added");
        }

        if (pl->stock == NGX_OK && pl->available == 0) {
            ngx_http_cart_json_warning(g, "out_of_stock", &line->sku,
                                       "this item is out of stock");

        } else if (pl->stock == NGX_OK && pl->available < line->qty) {
            ngx_http_cart_json_warning(g, "insufficient_stock", &line->sku,
                                       "fewer items are in stock than the "
                                       "quantity in the cart");
        }
    }

    yajl_gen_array_close(g);
}


static void
ngx_http_cart_json_warning(yajl_gen g, const char *code, ngx_str_t *sku,
    const char *message)
{
    yajl_gen_map_open(g);
    ngx_http_cart_json_key(g, "code");
    yajl_gen_string(g, (const unsigned char *) code, ngx_strlen(code));
    ngx_http_cart_json_key(g, "sku_id");
    ngx_http_cart_json_str(g, sku);
    ngx_http_cart_json_key(g, "message");
    yajl_gen_string(g, (const unsigned char *) message, ngx_strlen(message));
    yajl_gen_map_close(g);
}


static void
ngx_http_cart_json_sellers(yajl_gen g, ngx_http_cart_priced_t *priced)
{
    ngx_uint_t              i;
    ngx_http_cart_group_t  *gr;

    ngx_http_cart_json_key(g, "sellers");
    yajl_gen_array_open(g);

    for (i = 0; i < priced->ngroups; i++) {
        gr = &priced->groups[i];

        yajl_gen_map_open(g);
        ngx_http_cart_json_key(g, "seller_id");
        ngx_http_cart_json_str(g, &gr->seller);
        ngx_http_cart_json_key(g, "item_count");
        ngx_http_cart_json_int(g, gr->items);
        ngx_http_cart_json_key(g, "subtotal");
        ngx_http_cart_json_amount(g, gr->subtotal);
        ngx_http_cart_json_key(g, "price_adjustment");
        ngx_http_cart_json_amount(g, gr->amount - gr->subtotal);
        ngx_http_cart_json_key(g, "discount");
        ngx_http_cart_json_amount(g, -gr->discount);
        ngx_http_cart_json_key(g, "shipping");
        ngx_http_cart_json_amount(g, gr->shipping);
        ngx_http_cart_json_key(g, "estimated_total");
        ngx_http_cart_json_amount(g, gr->amount - gr->discount
                                     + gr->shipping);
        yajl_gen_map_close(g);
    }

    yajl_gen_array_close(g);
}


void
ngx_http_cart_json_applied(yajl_gen g, ngx_http_cart_priced_t *priced)
{
    ngx_str_t                 type;
    ngx_uint_t                i;
    ngx_http_cart_applied_t  *a;

    static ngx_str_t  types[] = {
        ngx_string("percent"), ngx_string("amount"), ngx_string("bundle"),
        ngx_string("free_shipping")
    };

    yajl_gen_array_open(g);

    for (i = 0; i < priced->napplied; i++) {
        a = &priced->applied[i];
        type = types[a->promo->type];

        yajl_gen_map_open(g);
        ngx_http_cart_json_key(g, "id");
        ngx_http_cart_json_str(g, &a->promo->id);

        if (a->coupon) {
            ngx_http_cart_json_key(g, "code");
            ngx_http_cart_json_str(g, &a->promo->code);
        }

        ngx_http_cart_json_key(g, "type");
        ngx_http_cart_json_str(g, &type);
        ngx_http_cart_json_key(g, "discount");
        ngx_http_cart_json_amount(g, -a->discount);
        yajl_gen_map_close(g);
    }

    yajl_gen_array_close(g);
}


static void
ngx_http_cart_json_coupon(yajl_gen g, ngx_http_cart_priced_t *priced)
{
    ngx_http_cart_json_key(g, "coupon");

    if (priced->coupon.len == 0) {
        yajl_gen_null(g);
        return;
    }

    yajl_gen_map_open(g);
    ngx_http_cart_json_key(g, "code");
    ngx_http_cart_json_str(g, &priced->coupon);
    ngx_http_cart_json_key(g, "applied");
    yajl_gen_bool(g, priced->coupon_error == NULL);

    if (priced->coupon_error) {
        ngx_http_cart_json_key(g, "reason");
        yajl_gen_string(g, (const unsigned char *) priced->coupon_error,
                        ngx_strlen(priced->coupon_error));
    }

    yajl_gen_map_close(g);
}


void
ngx_http_cart_json_address(yajl_gen g, ngx_http_cart_snapshot_t *snap)
{
    if (snap->country.len == 0) {
        yajl_gen_null(g);
        return;
    }

    yajl_gen_map_open(g);
    ngx_http_cart_json_key(g, "country");
    ngx_http_cart_json_str(g, &snap->country);
    ngx_http_cart_json_key(g, "postal_code");
    ngx_http_cart_json_str(g, &snap->postal_code);
    yajl_gen_map_close(g);
}


/* per seller: the cost of its lines and when all of them arrive; per line:
 * its estimate, or why there is none */

static void
ngx_http_cart_json_shipping(yajl_gen g, ngx_http_cart_priced_t *priced)
{
    ngx_uint_t                    i, k;
    ngx_http_cart_group_t        *gr;
    ngx_http_cart_priced_line_t  *pl;

    ngx_http_cart_json_key(g, "shipping");
    yajl_gen_array_open(g);

    for (i = 0; i < priced->ngroups; i++) {
        gr = &priced->groups[i];

        for (k = 0; k < priced->nlines; k++) {
            pl = &priced->lines[k];

            if (pl->group == i && pl->ship != NGX_DONE
                && pl->catalog != NGX_DECLINED)
            {
                break;
            }
        }

        if (k == priced->nlines) {
            /* nothing of this seller was asked about */
            continue;
        }

        yajl_gen_map_open(g);
        ngx_http_cart_json_key(g, "seller_id");
        ngx_http_cart_json_str(g, &gr->seller);
        ngx_http_cart_json_key(g, "cost");
        ngx_http_cart_json_amount(g, gr->shipping);

        ngx_http_cart_json_key(g, "delivery_from");
        ngx_http_cart_json_date(g, priced->today, gr->min_days);
        ngx_http_cart_json_key(g, "delivery_to");
        ngx_http_cart_json_date(g, priced->today, gr->max_days);

        ngx_http_cart_json_key(g, "items");
        yajl_gen_array_open(g);

        for ( /* void */ ; k < priced->nlines; k++) {
            pl = &priced->lines[k];

            if (pl->group != i || pl->ship == NGX_DONE
                || pl->catalog == NGX_DECLINED)
            {
                continue;
            }

            yajl_gen_map_open(g);
            ngx_http_cart_json_key(g, "sku_id");
            ngx_http_cart_json_str(g, &pl->line->sku);
            ngx_http_cart_json_key(g, "quantity");
            ngx_http_cart_json_int(g, pl->line->qty);

            if (pl->ship == NGX_OK) {
                ngx_http_cart_json_key(g, "cost");
                ngx_http_cart_json_amount(g, pl->shipping);
                ngx_http_cart_json_key(g, "min_days");
                ngx_http_cart_json_int(g, pl->min_days);
                ngx_http_cart_json_key(g, "max_days");
                ngx_http_cart_json_int(g, pl->max_days);
                ngx_http_cart_json_key(g, "delivery_from");
                ngx_http_cart_json_date(g, priced->today, pl->min_days);
                ngx_http_cart_json_key(g, "delivery_to");
                ngx_http_cart_json_date(g, priced->today, pl->max_days);

            } else if (pl->ship == NGX_DECLINED) {
                ngx_http_cart_json_key(g, "shippable");
                yajl_gen_bool(g, 0);

            } else {
                ngx_http_cart_json_key(g, "shipping_verified");
                yajl_gen_bool(g, 0);
            }

            yajl_gen_map_close(g);
        }

        yajl_gen_array_close(g);
        yajl_gen_map_close(g);
    }

    yajl_gen_array_close(g);
}


/* "YYYY-MM-DD", days after "day"; null when there is no estimate */

void
ngx_http_cart_json_date(yajl_gen g, time_t day, int64_t days)
{
    if (days < 0) {
        yajl_gen_null(g);
        return;
    }

    ngx_http_cart_json_day(g, day + (time_t) days * 86400);
}


void
ngx_http_cart_json_price(yajl_gen g, int64_t price)
{
    if (price < 0) {
        yajl_gen_null(g);
        return;
    }

    ngx_http_cart_json_amount(g, price);
}


/* "cart:user-123", the seed's cart id: the key without its hash tag */

void
ngx_http_cart_json_cart_id(yajl_gen g, ngx_http_cart_ctx_t *ctx)
{
    u_char  buf[sizeof("cart:") - 1 + sizeof("user-")
                + NGX_HTTP_CART_MAX_USER_LEN];
    u_char *p;

    p = ngx_sprintf(buf, "cart:%V", &ctx->owner);

    ngx_http_cart_json_key(g, "cart_id");
    yajl_gen_string(g, buf, p - buf);
}
