/*
 * The pricing engine: a cart's lines, what the upstreams said of each
 * line, the promotions, a coupon code and the time in; prices, stock,
 * shipping, discounts, per-seller groups, totals and the view's warnings
 * out. Plain C over a pool: no request, no I/O, no clock of its own, so
 * that t/unit/engine_test.c runs it on a table of cases.
 *
 * All amounts are int64 minor units. The rules are docs/pricing.md's.
 */

#ifndef _NGX_HTTP_CART_ENGINE_H_INCLUDED_
#define _NGX_HTTP_CART_ENGINE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


/* the promotion model; ngx_http_cart_promo.c reads and stores it */

typedef enum {
    NGX_HTTP_CART_PROMO_PERCENT = 0,
    NGX_HTTP_CART_PROMO_AMOUNT,
    NGX_HTTP_CART_PROMO_BUNDLE,
    NGX_HTTP_CART_PROMO_FREE_SHIPPING
} ngx_http_cart_promo_type_e;


typedef enum {
    NGX_HTTP_CART_BUNDLE_CHEAPEST_FREE = 0,
    NGX_HTTP_CART_BUNDLE_PERCENT,
    NGX_HTTP_CART_BUNDLE_AMOUNT
} ngx_http_cart_bundle_e;


typedef struct {
    ngx_str_t                      id;
    uint64_t                       seq;         /* id as a number: the order */
    ngx_str_t                      code;        /* upper case; "": automatic */
    ngx_http_cart_promo_type_e     type;
    ngx_http_cart_bundle_e         bundle;
    int64_t                        value;       /* basis points / minor units */
    int64_t                        min_subtotal;   /* minor units, 0: none */
    ngx_str_t                     *skus;
    ngx_uint_t                     nskus;
    ngx_str_t                      seller;      /* empty: any */
    int64_t                        bundle_quantity;
    time_t                         starts_at;   /* 0: none */
    time_t                         expires_at;  /* 0: none */
    int64_t                        max_redemptions;  /* 0: none */
    int64_t                        max_per_user;     /* 0: none */
    time_t                         created_at;
    ngx_str_t                      json;        /* the stored document */
} ngx_http_cart_promo_t;


/* one line of the cart hash: "qty|price_minor_units|seller_id|added_at" */
typedef struct {
    ngx_str_t                      sku;
    int64_t                        qty;
    int64_t                        price;      /* price_at_add; -1 unknown */
    ngx_str_t                      seller;
    time_t                         added;
} ngx_http_cart_line_t;


/* a catalog document */
typedef struct {
    int64_t                        price;
    ngx_str_t                      name;
    ngx_str_t                      seller;
    ngx_str_t                      image;
} ngx_http_cart_product_t;


/*
 * What the upstreams said of one line. Each status is NGX_OK; NGX_DECLINED
 * when the line is no longer sold (catalog 404) or not shipped there
 * (shipping 404); NGX_ERROR when the upstream failed; NGX_DONE when it was
 * not asked (not configured, or no address for shipping). An inventory 404
 * is NGX_OK with nothing available.
 */
typedef struct {
    ngx_int_t                      catalog;
    ngx_int_t                      stock;
    ngx_int_t                      ship;

    ngx_http_cart_product_t        product;
    int64_t                        available;
    int64_t                        ship_cost;  /* per unit */
    int64_t                        min_days;
    int64_t                        max_days;
} ngx_http_cart_facts_t;


/* what the engine prices */
typedef struct {
    ngx_http_cart_line_t          *lines;
    ngx_http_cart_facts_t         *facts;      /* one per line */
    ngx_uint_t                     nlines;

    /* NGX_OK: promos[] (by seq, maybe none); NGX_DONE: they were not
     * read; anything else: reading them failed */
    ngx_int_t                      promos_rc;
    ngx_http_cart_promo_t         *promos;
    ngx_uint_t                     npromos;

    /* promotions checkout found exhausted: priced as if they were gone */
    ngx_http_cart_promo_t        **excluded;
    ngx_uint_t                     nexcluded;
} ngx_http_cart_basket_t;


typedef struct {
    ngx_http_cart_line_t          *line;

    /* the line's facts, as given */
    ngx_int_t                      catalog;
    ngx_int_t                      stock;
    ngx_int_t                      ship;
    ngx_http_cart_product_t        product;
    int64_t                        available;
    int64_t                        ship_cost;
    int64_t                        min_days;
    int64_t                        max_days;

    ngx_str_t                      seller;     /* catalog's, or line's */
    int64_t                        unit;       /* charged; -1 unknown */
    int64_t                        amount;     /* unit x qty; 0: not sold */
    int64_t                        at_add;     /* price_at_add x qty, or 0 */
    int64_t                        discount;   /* by promotions, >= 0 */
    int64_t                        shipping;   /* ship_cost x qty */
    int64_t                        ship_discount;
    ngx_uint_t                     group;

    unsigned                       price_changed:1;
    unsigned                       in_stock:1;   /* when stock is NGX_OK */
} ngx_http_cart_priced_line_t;


/* the lines of one seller: a fulfillment group at checkout */
typedef struct {
    ngx_str_t                      seller;
    int64_t                        items;
    int64_t                        subtotal;   /* at price_at_add */
    int64_t                        amount;     /* at checkout prices */
    int64_t                        discount;   /* >= 0, with free shipping */
    int64_t                        shipping;
    int64_t                        min_days;   /* -1: no estimate */
    int64_t                        max_days;
    ngx_uint_t                     estimated;  /* lines with an estimate */
} ngx_http_cart_group_t;


typedef struct {
    ngx_http_cart_promo_t         *promo;
    int64_t                        discount;   /* >= 0 */
    ngx_uint_t                     coupon;
} ngx_http_cart_applied_t;


typedef enum {
    NGX_HTTP_CART_WARN_UNAVAILABLE = 0,
    NGX_HTTP_CART_WARN_PRICE_UNVERIFIED,
    NGX_HTTP_CART_WARN_PRICE_INCREASED,
    NGX_HTTP_CART_WARN_PRICE_DECREASED,
    NGX_HTTP_CART_WARN_OUT_OF_STOCK,
    NGX_HTTP_CART_WARN_INSUFFICIENT_STOCK
} ngx_http_cart_warning_e;


typedef struct {
    ngx_http_cart_warning_e        code;
    ngx_str_t                     *sku;
} ngx_http_cart_warning_t;


typedef struct {
    ngx_http_cart_priced_line_t   *lines;
    ngx_uint_t                     nlines;
    ngx_http_cart_group_t         *groups;
    ngx_uint_t                     ngroups;
    ngx_http_cart_applied_t       *applied;
    ngx_uint_t                     napplied;
    ngx_http_cart_warning_t       *warnings;   /* in the order of the lines */
    ngx_uint_t                     nwarnings;

    ngx_str_t                      coupon;       /* the code priced with */
    const char                    *coupon_error; /* why it does not apply */

    int64_t                        item_count;
    int64_t                        subtotal;     /* at price_at_add */
    int64_t                        amount;       /* at checkout prices */
    int64_t                        discount;     /* >= 0 */
    int64_t                        shipping;
    time_t                         today;        /* 00:00 UTC */
} ngx_http_cart_priced_t;


/*
 * Prices the basket with the coupon "coupon" (may be empty) at time
 * "now". NULL when out of memory.
 */
ngx_http_cart_priced_t *ngx_http_cart_engine_price(ngx_pool_t *pool,
    ngx_http_cart_basket_t *basket, ngx_str_t *coupon, time_t now);

/* the promotion of code "code" (upper case) among promos[n], or NULL */
ngx_http_cart_promo_t *ngx_http_cart_promo_find(ngx_http_cart_promo_t *promos,
    ngx_uint_t n, ngx_str_t *code);


#endif /* _NGX_HTTP_CART_ENGINE_H_INCLUDED_ */
