/*
 * The pricing layer, shared by the cart view, coupons and checkout: a
 * cart as read from Redis (a snapshot), one parallel wave of upstream
 * lookups for it (catalog, inventory, shipping, and the promotions), and
 * the pure computation that turns both into prices, stock, shipping
 * estimates, promotions, per-seller groups and totals.
 *
 * All amounts are int64 minor units. Rounding: see ngx_http_cart_pricing.c
 * and docs/pricing.md.
 */

#ifndef _NGX_HTTP_CART_PRICING_H_INCLUDED_
#define _NGX_HTTP_CART_PRICING_H_INCLUDED_


#include "ngx_http_cart.h"
#include "ngx_http_cart_json.h"
#include "ngx_http_cart_redis.h"
#include "ngx_http_cart_promo.h"


/* one line of the cart hash: "qty|price_minor_units|seller_id|added_at" */
typedef struct {
    ngx_str_t                      sku;
    int64_t                        qty;
    int64_t                        price;      /* price_at_add; -1 unknown */
    ngx_str_t                      seller;
    time_t                         added;
} ngx_http_cart_line_t;


/* a cart as read, and what its wave of lookups brought */
typedef struct {
    ngx_http_cart_line_t          *lines;
    ngx_uint_t                     nlines;
    int64_t                        version;
    ngx_str_t                      coupon;     /* "#c": the coupon code */
    ngx_str_t                      country;    /* "#a": "<country>|<postal>" */
    ngx_str_t                      postal_code;

    ngx_http_cart_fetch_t         *catalog;    /* NULL: not asked */
    ngx_http_cart_fetch_t         *inventory;
    ngx_http_cart_fetch_t         *shipping;
    ngx_http_cart_promos_ref_t     promos;

    /* promotions checkout found exhausted: priced as if they were gone */
    ngx_http_cart_promo_t        **excluded;
    ngx_uint_t                     nexcluded;
} ngx_http_cart_snapshot_t;


/* a catalog document */
typedef struct {
    int64_t                        price;
    ngx_str_t                      name;
    ngx_str_t                      seller;
    ngx_str_t                      image;
} ngx_http_cart_product_t;


typedef struct {
    ngx_http_cart_line_t          *line;

    /* NGX_OK; NGX_DECLINED: no longer sold (catalog 404) / not shipped
     * there (shipping 404); NGX_ERROR: the upstream failed; NGX_DONE: the
     * upstream is not configured (or, for shipping, no address) */
    ngx_int_t                      catalog;
    ngx_int_t                      stock;
    ngx_int_t                      ship;

    ngx_http_cart_product_t        product;
    int64_t                        available;
    int64_t                        ship_cost;  /* per unit */
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


typedef struct {
    ngx_http_cart_priced_line_t   *lines;
    ngx_uint_t                     nlines;
    ngx_http_cart_group_t         *groups;
    ngx_uint_t                     ngroups;
    ngx_http_cart_applied_t       *applied;
    ngx_uint_t                     napplied;

    ngx_str_t                      coupon;       /* the code priced with */
    const char                    *coupon_error; /* why it does not apply */

    int64_t                        item_count;
    int64_t                        subtotal;     /* at price_at_add */
    int64_t                        amount;       /* at checkout prices */
    int64_t                        discount;     /* >= 0 */
    int64_t                        shipping;
    time_t                         today;        /* 00:00 UTC */
} ngx_http_cart_priced_t;


/* what a wave looks up besides the catalog */
#define NGX_HTTP_CART_PRICE_FRESH      1   /* promotions read from Redis */


/*
 * The cart from an HGETALL-shaped reply (field, value, ...) starting at
 * element "first". Meta fields ('#v', '#c', '#a') are read, unknown '#'
 * fields skipped, malformed lines logged and skipped.
 */
ngx_http_cart_snapshot_t *ngx_http_cart_snapshot(ngx_http_request_t *r,
    redisReply *reply, size_t first);

/*
 * One parallel wave: catalog, inventory and (with an address) shipping
 * subrequests for every line, and the promotions, all at once. "resume"
 * runs when all are done (possibly before this returns).
 */
ngx_int_t ngx_http_cart_pricing_fetch(ngx_http_request_t *r,
    ngx_http_cart_snapshot_t *snap, ngx_uint_t flags,
    ngx_http_cart_resume_pt resume);

/* prices the snapshot with the coupon "coupon" (may be empty) */
ngx_http_cart_priced_t *ngx_http_cart_price(ngx_http_request_t *r,
    ngx_http_cart_snapshot_t *snap, ngx_str_t *coupon);

/* "qty|price|seller|added_at" (saved lines reuse it: price, saved_at) */
ngx_int_t ngx_http_cart_line_parse(ngx_str_t *value,
    ngx_http_cart_line_t *line);

/*
 * added_at in a line: unix seconds in base 36 ([0-9a-z], 6 characters
 * until 2038), as src/lua/_lib.lua stamp() writes it. Lines written before
 * hold decimal seconds: 9 characters or more are read as such. NGX_ERROR
 * if neither.
 */
time_t ngx_http_cart_line_time(u_char *p, size_t len);

/* writes t in base 36; at most NGX_HTTP_CART_STAMP_LEN characters */
u_char *ngx_http_cart_line_stamp(u_char *p, time_t t);

#define NGX_HTTP_CART_STAMP_LEN  13

/*
 * The catalog document of one fetch: NGX_OK with the product,
 * NGX_DECLINED when the catalog does not know the SKU (404),
 * NGX_ERROR when the catalog failed or answered something unusable.
 */
ngx_int_t ngx_http_cart_product(ngx_http_request_t *r,
    ngx_http_cart_fetch_t *f, ngx_http_cart_product_t *product);

/* the cart view (GET / and the writes that answer with it) */
void ngx_http_cart_render_view(ngx_http_request_t *r, yajl_gen g,
    ngx_http_cart_snapshot_t *snap, ngx_http_cart_priced_t *priced,
    int64_t version);

void ngx_http_cart_json_cart_id(yajl_gen g, ngx_http_cart_ctx_t *ctx);
void ngx_http_cart_json_price(yajl_gen g, int64_t price);
void ngx_http_cart_json_applied(yajl_gen g, ngx_http_cart_priced_t *priced);
void ngx_http_cart_json_address(yajl_gen g, ngx_http_cart_snapshot_t *snap);
void ngx_http_cart_json_date(yajl_gen g, time_t day, int64_t days);


#endif /* _NGX_HTTP_CART_PRICING_H_INCLUDED_ */
