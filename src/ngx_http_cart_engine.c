/*
 * The pricing engine (docs/pricing.md).
 *
 * A line is charged its current catalog price; without one, price_at_add
 * stands in. Promotions apply in a fixed order, each to what the previous
 * ones left; whether one applies is decided on the lines before any
 * discount, so it never depends on another. Percent discounts are rounded
 * half up once per promotion; a discount is spread over its lines by the
 * largest remainder, so every figure adds up exactly.
 */

#include "ngx_http_cart_engine.h"


typedef struct {
    int64_t                        unit;
    ngx_uint_t                     index;
} ngx_http_cart_unit_t;


static void ngx_http_cart_price_line(ngx_http_cart_basket_t *basket,
    ngx_uint_t i, ngx_http_cart_priced_line_t *pl);
static void ngx_http_cart_group(ngx_http_cart_priced_t *priced,
    ngx_http_cart_priced_line_t *pl);
static void ngx_http_cart_warn(ngx_http_cart_priced_t *priced,
    ngx_http_cart_priced_line_t *pl);
static ngx_int_t ngx_http_cart_promote(ngx_pool_t *pool,
    ngx_http_cart_basket_t *basket, ngx_http_cart_priced_t *priced,
    time_t now);
static ngx_uint_t ngx_http_cart_promo_pass(ngx_http_cart_promo_t *p,
    ngx_http_cart_promo_t *coupon, ngx_uint_t pass);
static ngx_uint_t ngx_http_cart_excluded(ngx_http_cart_basket_t *basket,
    ngx_http_cart_promo_t *p);
static const char *ngx_http_cart_promo_eligible(ngx_http_cart_promo_t *p,
    ngx_http_cart_priced_t *priced, time_t now, ngx_uint_t *scope,
    ngx_uint_t *n);
static ngx_uint_t ngx_http_cart_in_scope(ngx_http_cart_promo_t *p,
    ngx_http_cart_priced_line_t *pl);
static int64_t ngx_http_cart_promo_apply(ngx_pool_t *pool,
    ngx_http_cart_promo_t *p, ngx_http_cart_priced_t *priced,
    ngx_uint_t *scope, ngx_uint_t n);
static int64_t ngx_http_cart_bundle(ngx_pool_t *pool,
    ngx_http_cart_promo_t *p, ngx_http_cart_priced_t *priced,
    ngx_uint_t *scope, ngx_uint_t n, int64_t *weight);
static int64_t ngx_http_cart_spread(ngx_http_cart_priced_t *priced,
    ngx_uint_t *scope, ngx_uint_t n, int64_t *weight, int64_t discount,
    int64_t *share);
static int64_t ngx_http_cart_percent(int64_t amount, int64_t bp);
static int ngx_libc_cdecl ngx_http_cart_unit_cmp(const void *a,
    const void *b);


ngx_http_cart_priced_t *
ngx_http_cart_engine_price(ngx_pool_t *pool, ngx_http_cart_basket_t *basket,
    ngx_str_t *coupon, time_t now)
{
    ngx_uint_t                    i;
    ngx_http_cart_group_t        *g;
    ngx_http_cart_priced_t       *priced;
    ngx_http_cart_priced_line_t  *pl;

    priced = ngx_pcalloc(pool, sizeof(ngx_http_cart_priced_t));
    if (priced == NULL) {
        return NULL;
    }

    priced->lines = ngx_pcalloc(pool, (basket->nlines + 1)
                                      * sizeof(ngx_http_cart_priced_line_t));
    priced->groups = ngx_pcalloc(pool, (basket->nlines + 1)
                                       * sizeof(ngx_http_cart_group_t));
    priced->warnings = ngx_palloc(pool, (2 * basket->nlines + 1)
                                        * sizeof(ngx_http_cart_warning_t));

    if (priced->lines == NULL || priced->groups == NULL
        || priced->warnings == NULL)
    {
        return NULL;
    }

    priced->today = now - now % 86400;
    priced->nlines = basket->nlines;
    priced->coupon = *coupon;

    for (i = 0; i < basket->nlines; i++) {
        pl = &priced->lines[i];
        ngx_http_cart_price_line(basket, i, pl);
        ngx_http_cart_group(priced, pl);
        ngx_http_cart_warn(priced, pl);
    }

    if (ngx_http_cart_promote(pool, basket, priced, now) != NGX_OK) {
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


ngx_http_cart_promo_t *
ngx_http_cart_promo_find(ngx_http_cart_promo_t *promos, ngx_uint_t n,
    ngx_str_t *code)
{
    ngx_uint_t  i;

    for (i = 0; i < n; i++) {
        if (promos[i].code.len == code->len
            && ngx_strncmp(promos[i].code.data, code->data, code->len) == 0)
        {
            return &promos[i];
        }
    }

    return NULL;
}


static void
ngx_http_cart_price_line(ngx_http_cart_basket_t *basket, ngx_uint_t i,
    ngx_http_cart_priced_line_t *pl)
{
    ngx_http_cart_line_t   *line;
    ngx_http_cart_facts_t  *f;

    line = &basket->lines[i];
    f = &basket->facts[i];

    pl->line = line;
    pl->catalog = f->catalog;
    pl->stock = f->stock;
    pl->ship = f->ship;
    pl->product = f->product;
    pl->available = f->available;
    pl->ship_cost = f->ship_cost;
    pl->min_days = f->min_days;
    pl->max_days = f->max_days;

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

    pl->price_changed = (pl->catalog == NGX_OK && line->price >= 0
                         && line->price != pl->product.price);

    pl->in_stock = (pl->stock == NGX_OK && pl->catalog != NGX_DECLINED
                    && pl->available >= line->qty);
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


/* at most one price and one stock warning per line; a line no longer
 * sold has only "unavailable" */

static void
ngx_http_cart_warn(ngx_http_cart_priced_t *priced,
    ngx_http_cart_priced_line_t *pl)
{
    int64_t                   price, qty;
    ngx_uint_t                i, n;
    ngx_http_cart_warning_e   code[2];

    price = pl->line->price;
    qty = pl->line->qty;
    n = 0;

    if (pl->catalog == NGX_DECLINED) {
        code[n++] = NGX_HTTP_CART_WARN_UNAVAILABLE;

    } else {
        if (pl->catalog == NGX_ERROR) {
            code[n++] = NGX_HTTP_CART_WARN_PRICE_UNVERIFIED;

        } else if (pl->catalog == NGX_OK && price >= 0
                   && pl->product.price > price)
        {
            code[n++] = NGX_HTTP_CART_WARN_PRICE_INCREASED;

        } else if (pl->catalog == NGX_OK && price >= 0
                   && pl->product.price < price)
        {
            code[n++] = NGX_HTTP_CART_WARN_PRICE_DECREASED;
        }

        if (pl->stock == NGX_OK && pl->available == 0) {
            code[n++] = NGX_HTTP_CART_WARN_OUT_OF_STOCK;

        } else if (pl->stock == NGX_OK && pl->available < qty) {
            code[n++] = NGX_HTTP_CART_WARN_INSUFFICIENT_STOCK;
        }
    }

    for (i = 0; i < n; i++) {
        priced->warnings[priced->nwarnings].code = code[i];
        priced->warnings[priced->nwarnings].sku = &pl->line->sku;
        priced->nwarnings++;
    }
}


/* promotions */

static ngx_int_t
ngx_http_cart_promote(ngx_pool_t *pool, ngx_http_cart_basket_t *basket,
    ngx_http_cart_priced_t *priced, time_t now)
{
    int64_t                   d;
    ngx_uint_t                i, n, pass, npromos, *scope;
    const char               *err;
    ngx_http_cart_promo_t    *p, *cp;
    ngx_http_cart_applied_t  *a;

    cp = NULL;
    npromos = (basket->promos_rc == NGX_OK) ? basket->npromos : 0;

    if (priced->coupon.len) {
        if (basket->promos_rc == NGX_OK) {
            cp = ngx_http_cart_promo_find(basket->promos, npromos,
                                          &priced->coupon);

            if (cp == NULL) {
                priced->coupon_error = "coupon_unknown";
            }

        } else {
            priced->coupon_error = basket->promos_rc == NGX_DONE
                                   ? "coupon_conditions_unmet"
                                   : "promotions_unavailable";
        }
    }

    priced->applied = ngx_palloc(pool, (npromos + 1)
                                       * sizeof(ngx_http_cart_applied_t));
    scope = ngx_palloc(pool, (priced->nlines + 1) * sizeof(ngx_uint_t));

    if (priced->applied == NULL || scope == NULL) {
        return NGX_ERROR;
    }

    for (pass = 0; pass < 4; pass++) {
        for (i = 0; i < npromos; i++) {
            p = &basket->promos[i];

            if (!ngx_http_cart_promo_pass(p, cp, pass)
                || ngx_http_cart_excluded(basket, p))
            {
                continue;
            }

            err = ngx_http_cart_promo_eligible(p, priced, now, scope, &n);

            if (err) {
                if (p == cp) {
                    priced->coupon_error = err;
                }

                continue;
            }

            d = ngx_http_cart_promo_apply(pool, p, priced, scope, n);

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


static ngx_uint_t
ngx_http_cart_excluded(ngx_http_cart_basket_t *basket,
    ngx_http_cart_promo_t *p)
{
    ngx_uint_t  k;

    for (k = 0; k < basket->nexcluded; k++) {
        if (basket->excluded[k] == p) {
            return 1;
        }
    }

    return 0;
}


/* NULL when p applies to the cart (scope: its lines), else why not */

static const char *
ngx_http_cart_promo_eligible(ngx_http_cart_promo_t *p,
    ngx_http_cart_priced_t *priced, time_t now, ngx_uint_t *scope,
    ngx_uint_t *n)
{
    int64_t                       gross, units;
    ngx_uint_t                    i;
    ngx_http_cart_priced_line_t  *pl;

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
ngx_http_cart_promo_apply(ngx_pool_t *pool, ngx_http_cart_promo_t *p,
    ngx_http_cart_priced_t *priced, ngx_uint_t *scope, ngx_uint_t n)
{
    int64_t                       net, d, *weight, *share;
    ngx_uint_t                    i;
    ngx_http_cart_priced_line_t  *pl;

    weight = ngx_palloc(pool, 2 * n * sizeof(int64_t));
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
        d = ngx_http_cart_bundle(pool, p, priced, scope, n, weight);
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
 * The in-scope units, dearest first (ties: the earlier line), in groups
 * of bundle_quantity; only complete groups count. weight[] gets what each
 * line's share is in proportion to: for cheapest_free, its exact discount.
 */

static int64_t
ngx_http_cart_bundle(ngx_pool_t *pool, ngx_http_cart_promo_t *p,
    ngx_http_cart_priced_t *priced, ngx_uint_t *scope, ngx_uint_t n,
    int64_t *weight)
{
    int64_t                       s, q, units, groups, free, in, total;
    ngx_uint_t                    i, k;
    ngx_http_cart_unit_t         *order;
    ngx_http_cart_priced_line_t  *pl;

    order = ngx_palloc(pool, n * sizeof(ngx_http_cart_unit_t));
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
