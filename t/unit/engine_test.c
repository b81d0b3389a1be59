/*
 * Unit tests of the pricing engine (src/ngx_http_cart_engine.c): the cases
 * of docs/pricing.md as a table, each priced and checked against the
 * figures it expects and against the sums every priced cart must satisfy.
 *
 * nginx-dev ships nginx's headers but not its sources, so the test is a
 * core module that /usr/sbin/nginx runs while it reads t/unit/engine.conf
 * (nginx -t): the engine runs on nginx's own pools and string functions,
 * with no stubs. It prints TAP on stdout; a failure fails the directive,
 * so nginx exits non-zero. See t/005-engine.t and "make unit".
 */

#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_cart_engine.h"


#define T0                  1773482400  /* 2026-03-14T10:00:00Z */

#define NGX_CART_TEST_BUF   4096

/* what an upstream answered for a line */
#define T_NOT_ASKED         0
#define T_OK                1
#define T_GONE              2           /* 404 */
#define T_FAILED            3


typedef struct {
    char                          *sku;
    int64_t                        qty;
    int64_t                        at_add;      /* -1: unknown */
    char                          *seller;

    ngx_uint_t                     catalog;
    int64_t                        price;
    char                          *catalog_seller;
    ngx_uint_t                     stock;
    int64_t                        available;
    ngx_uint_t                     ship;
    int64_t                        cost;
    int64_t                        min_days;
    int64_t                        max_days;
} ngx_cart_test_line_t;


typedef struct {
    char                          *id;
    char                          *code;
    ngx_http_cart_promo_type_e     type;
    ngx_http_cart_bundle_e         bundle;
    int64_t                        value;
    int64_t                        min_subtotal;
    char                          *skus;        /* comma-separated */
    char                          *seller;
    int64_t                        bundle_quantity;
    time_t                         starts_at;
    time_t                         expires_at;
} ngx_cart_test_promo_t;


typedef struct {
    char                          *name;
    ngx_cart_test_line_t           lines[6];    /* up to a NULL sku */
    ngx_cart_test_promo_t          promos[6];   /* up to a NULL id */
    ngx_int_t                      promos_rc;   /* NGX_OK unless given */
    char                          *coupon;
    char                          *excluded;    /* ids, comma-separated */
    time_t                         now;         /* 0: T0 */
    char                          *expect;      /* tokens of the summary */
} ngx_cart_test_case_t;


#define LINE(s, q, a, sel)   .sku = s, .qty = q, .at_add = a, .seller = sel
#define SOLD(p)              .catalog = T_OK, .price = p
#define SOLD_BY(p, sel)      .catalog = T_OK, .price = p, .catalog_seller = sel
#define GONE                 .catalog = T_GONE
#define CATALOG_FAILED       .catalog = T_FAILED
#define STOCK(n)             .stock = T_OK, .available = n
#define STOCK_FAILED         .stock = T_FAILED
#define SHIP(c, lo, hi)                                                      \
    .ship = T_OK, .cost = c, .min_days = lo, .max_days = hi
#define NOT_SHIPPED          .ship = T_GONE
#define SHIP_FAILED          .ship = T_FAILED

#define PERCENT(i, v)                                                        \
    .id = i, .type = NGX_HTTP_CART_PROMO_PERCENT, .value = v
#define AMOUNT(i, v)                                                         \
    .id = i, .type = NGX_HTTP_CART_PROMO_AMOUNT, .value = v
#define FREE_SHIPPING(i)                                                     \
    .id = i, .type = NGX_HTTP_CART_PROMO_FREE_SHIPPING
#define CHEAPEST_FREE(i, q)                                                  \
    .id = i, .type = NGX_HTTP_CART_PROMO_BUNDLE,                             \
    .bundle = NGX_HTTP_CART_BUNDLE_CHEAPEST_FREE, .bundle_quantity = q
#define BUNDLE_PERCENT(i, q, v)                                              \
    .id = i, .type = NGX_HTTP_CART_PROMO_BUNDLE,                             \
    .bundle = NGX_HTTP_CART_BUNDLE_PERCENT, .bundle_quantity = q, .value = v
#define BUNDLE_AMOUNT(i, q, v)                                               \
    .id = i, .type = NGX_HTTP_CART_PROMO_BUNDLE,                             \
    .bundle = NGX_HTTP_CART_BUNDLE_AMOUNT, .bundle_quantity = q, .value = v


static char *ngx_cart_engine_test(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_cart_test_run(ngx_pool_t *pool,
    ngx_cart_test_case_t *tc, u_char *buf, const char **why);
static ngx_http_cart_basket_t *ngx_cart_test_basket(ngx_pool_t *pool,
    ngx_cart_test_case_t *tc);
static ngx_int_t ngx_cart_test_status(ngx_uint_t answer);
static ngx_str_t *ngx_cart_test_list(ngx_pool_t *pool, char *list,
    ngx_uint_t *n);
static void ngx_cart_test_summary(ngx_http_cart_priced_t *priced,
    u_char *buf);
static const char *ngx_cart_test_sums(ngx_http_cart_priced_t *priced);
static const char *ngx_cart_test_expect(u_char *buf, char *expect);


static ngx_command_t  ngx_cart_engine_test_commands[] = {

    { ngx_string("cart_engine_test"),
      NGX_MAIN_CONF|NGX_DIRECT_CONF|NGX_CONF_NOARGS,
      ngx_cart_engine_test,
      0,
      0,
      NULL },

      ngx_null_command
};


static ngx_core_module_t  ngx_cart_engine_test_module_ctx = {
    ngx_string("cart_engine_test"),
    NULL,
    NULL
};


ngx_module_t  ngx_cart_engine_test_module = {
    NGX_MODULE_V1,
    &ngx_cart_engine_test_module_ctx,      /* module context */
    ngx_cart_engine_test_commands,         /* module directives */
    NGX_CORE_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    NULL,                                  /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    NULL,                                  /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static char  *ngx_cart_test_warnings[] = {
    "unavailable", "price_unverified", "price_increased", "price_decreased",
    "out_of_stock", "insufficient_stock"
};


static ngx_cart_test_case_t  ngx_cart_test_cases[] = {

    /* prices and warnings */

    { .name = "a line is charged today's price; subtotal stays at the "
              "price at add",
      .lines = {
          { LINE("A", 2, 2999, "s1"), SOLD(2999) },
          { LINE("B", 2, 600, "s1"), SOLD(500) },
          { LINE("C", 1, 9000, "s2"), SOLD(10000) },
          { LINE("D", 1, -1, "s3"), SOLD(1250) } },
      .expect = "A.amount=5998 A.price_changed=0 B.amount=1000"
                " B.price_changed=1 C.amount=10000 C.price_changed=1"
                " D.amount=1250 D.price_changed=0 item_count=6"
                " subtotal=16198 amount=18248 discount=0"
                " warnings=price_decreased:B,price_increased:C" },

    { .name = "catalog failed: price_at_add stands in, price_unverified",
      .lines = {
          { LINE("A", 1, 100, "s1"), CATALOG_FAILED },
          { LINE("B", 2, -1, "s1"), CATALOG_FAILED } },
      .expect = "A.unit=100 A.amount=100 B.unit=-1 B.amount=0"
                " subtotal=100 amount=100"
                " warnings=price_unverified:A,price_unverified:B" },

    { .name = "no catalog configured: price_at_add, no warning",
      .lines = {
          { LINE("A", 3, 250, "s1") } },
      .expect = "A.unit=250 A.amount=750 amount=750 warnings=" },

    { .name = "no longer sold: only 'unavailable', costs nothing, never "
              "in scope",
      .lines = {
          { LINE("A", 3, 1000, "s1"), GONE, STOCK(0) },
          { LINE("B", 1, 500, "s1"), SOLD(500), STOCK(0) } },
      .promos = { { PERCENT("1", 1000) } },
      .expect = "A.unit=-1 A.amount=0 A.discount=0 A.in_stock=0"
                " B.discount=50 subtotal=3500 amount=500 applied=1:50"
                " warnings=unavailable:A,out_of_stock:B" },

    { .name = "stock: out_of_stock, insufficient_stock, enough, "
              "unverified",
      .lines = {
          { LINE("A", 2, 100, "s1"), SOLD(100), STOCK(0) },
          { LINE("B", 3, 100, "s1"), SOLD(100), STOCK(2) },
          { LINE("C", 1, 100, "s1"), SOLD(100), STOCK(1) },
          { LINE("D", 1, 100, "s1"), SOLD(100), STOCK_FAILED } },
      .expect = "A.in_stock=0 B.in_stock=0 C.in_stock=1 D.in_stock=0"
                " warnings=out_of_stock:A,insufficient_stock:B" },

    { .name = "a price and a stock warning on one line, in that order",
      .lines = {
          { LINE("A", 2, 1000, "s1"), SOLD(1200), STOCK(1) } },
      .expect = "warnings=price_increased:A,insufficient_stock:A" },

    /* shipping */

    { .name = "shipping: cost x quantity; a seller arrives with its "
              "slowest line; not shippable, unverified and unsold lines "
              "cost nothing",
      .lines = {
          { LINE("A", 2, 1000, "s1"), SOLD(1000), SHIP(499, 2, 4) },
          { LINE("B", 1, 1000, "s1"), SOLD(1000), SHIP(300, 3, 5) },
          { LINE("C", 1, 1000, "s2"), SOLD(1000), NOT_SHIPPED },
          { LINE("D", 1, 1000, "s2"), SOLD(1000), SHIP_FAILED },
          { LINE("E", 1, 1000, "s3"), GONE, SHIP(100, 1, 2) } },
      .expect = "A.shipping=998 B.shipping=300 C.shipping=0 D.shipping=0"
                " E.shipping=0 g.s1.shipping=1298 g.s1.days=3..5"
                " g.s1.estimated=2 g.s2.days=-1..-1 g.s2.estimated=0"
                " g.s3.estimated=0 shipping=1298 today=1773446400"
                " warnings=unavailable:E" },

    { .name = "free shipping: the lines in scope ship free once "
              "min_subtotal is met",
      .lines = {
          { LINE("A", 1, 3000, "s1"), SOLD(3000), SHIP(500, 1, 2) },
          { LINE("B", 1, 1000, "s2"), SOLD(1000), SHIP(400, 1, 2) } },
      .promos = {
          { FREE_SHIPPING("1"), .seller = "s1", .min_subtotal = 2500 },
          { FREE_SHIPPING("2"), .min_subtotal = 5000 } },
      .expect = "A.ship_discount=500 B.ship_discount=0 g.s1.discount=500"
                " g.s2.discount=0 applied=1:500 shipping=900 discount=500" },

    { .name = "a free-shipping coupon before a destination applies with "
              "0.00",
      .lines = {
          { LINE("A", 1, 1000, "s1"), SOLD(1000) } },
      .promos = { { FREE_SHIPPING("1"), .code = "SHIPFREE" } },
      .coupon = "SHIPFREE",
      .expect = "applied=1*:0 coupon_error=- discount=0" },

    /* rounding */

    { .name = "percent rounds half up: 50% of 2.97 is 1.49",
      .lines = { { LINE("A", 3, 99, "s1"), SOLD(99) } },
      .promos = { { PERCENT("1", 5000) } },
      .expect = "A.discount=149 applied=1:149 discount=149" },

    { .name = "percent rounds half up: 10% of 47.49 is 4.75",
      .lines = { { LINE("A", 1, 4749, "s1"), SOLD(4749) } },
      .promos = { { PERCENT("1", 1000) } },
      .expect = "A.discount=475 discount=475" },

    { .name = "percent rounds half up: 10% of 0.05 is 0.01",
      .lines = { { LINE("A", 1, 5, "s1"), SOLD(5) } },
      .promos = { { PERCENT("1", 1000) } },
      .expect = "A.discount=1 discount=1" },

    { .name = "percent below the half rounds down: 12.5% of 0.99 is 0.12",
      .lines = { { LINE("A", 1, 99, "s1"), SOLD(99) } },
      .promos = { { PERCENT("1", 1250) } },
      .expect = "A.discount=12 discount=12" },

    { .name = "percent is rounded once, on the sum: 10% of 3 x 0.05 is "
              "0.02, ties to the earlier line",
      .lines = {
          { LINE("A", 1, 5, "s1"), SOLD(5) },
          { LINE("B", 1, 5, "s1"), SOLD(5) },
          { LINE("C", 1, 5, "s1"), SOLD(5) } },
      .promos = { { PERCENT("1", 1000) } },
      .expect = "A.discount=1 B.discount=1 C.discount=0 discount=2" },

    { .name = "spread: 10.00 over 29.99 / 5.00 / 12.50 is 6.32 / 1.05 / "
              "2.63",
      .lines = {
          { LINE("A", 1, 2999, "s1"), SOLD(2999) },
          { LINE("B", 1, 500, "s1"), SOLD(500) },
          { LINE("C", 1, 1250, "s1"), SOLD(1250) } },
      .promos = { { AMOUNT("1", 1000) } },
      .expect = "A.discount=632 B.discount=105 C.discount=263"
                " discount=1000" },

    { .name = "spread: 1.00 over three equal lines, the remainder to the "
              "first",
      .lines = {
          { LINE("A", 1, 1000, "s1"), SOLD(1000) },
          { LINE("B", 1, 1000, "s1"), SOLD(1000) },
          { LINE("C", 1, 1000, "s1"), SOLD(1000) } },
      .promos = { { AMOUNT("1", 100) } },
      .expect = "A.discount=34 B.discount=33 C.discount=33 discount=100" },

    { .name = "amount: at most what the lines in scope cost",
      .lines = { { LINE("A", 1, 500, "s1"), SOLD(500) } },
      .promos = { { AMOUNT("1", 2000) } },
      .expect = "A.discount=500 applied=1:500 discount=500" },

    { .name = "no line below zero: 100% off, then an amount gives 0.00",
      .lines = { { LINE("A", 1, 300, "s1"), SOLD(300) } },
      .promos = { { PERCENT("1", 10000) }, { AMOUNT("2", 500) } },
      .expect = "A.discount=300 applied=1:300,2:0 discount=300" },

    /* bundles */

    { .name = "buy 3 cheapest free: 29.99 29.99 12.50 5.00 5.00, 12.50 "
              "free",
      .lines = {
          { LINE("A", 2, 2999, "s1"), SOLD(2999) },
          { LINE("B", 1, 1250, "s1"), SOLD(1250) },
          { LINE("C", 2, 500, "s1"), SOLD(500) } },
      .promos = { { CHEAPEST_FREE("1", 3) } },
      .expect = "A.discount=0 B.discount=1250 C.discount=0 applied=1:1250" },

    { .name = "buy 3 cheapest free, one more 5.00: 12.50 and 5.00 free",
      .lines = {
          { LINE("A", 2, 2999, "s1"), SOLD(2999) },
          { LINE("B", 1, 1250, "s1"), SOLD(1250) },
          { LINE("C", 3, 500, "s1"), SOLD(500) } },
      .promos = { { CHEAPEST_FREE("1", 3) } },
      .expect = "A.discount=0 B.discount=1250 C.discount=500"
                " applied=1:1750" },

    { .name = "bundle percent: off the units of complete groups only",
      .lines = {
          { LINE("A", 2, 1000, "s1"), SOLD(1000) },
          { LINE("B", 1, 400, "s1"), SOLD(400) } },
      .promos = { { BUNDLE_PERCENT("1", 2, 5000) } },
      .expect = "A.discount=1000 B.discount=0 applied=1:1000" },

    { .name = "bundle amount: the value per complete group",
      .lines = { { LINE("A", 5, 300, "s1"), SOLD(300) } },
      .promos = { { BUNDLE_AMOUNT("1", 2, 200) } },
      .expect = "A.discount=400 applied=1:400" },

    { .name = "bundle amount: at most what the grouped units cost",
      .lines = { { LINE("A", 4, 300, "s1"), SOLD(300) } },
      .promos = { { BUNDLE_AMOUNT("1", 2, 1000) } },
      .expect = "A.discount=1200 applied=1:1200" },

    { .name = "a bundle coupon on too few units: coupon_conditions_unmet",
      .lines = { { LINE("A", 2, 300, "s1"), SOLD(300) } },
      .promos = { { CHEAPEST_FREE("1", 3), .code = "THREE" } },
      .coupon = "THREE",
      .expect = "applied= coupon_error=coupon_conditions_unmet"
                " discount=0" },

    /* stacking and conditions */

    { .name = "stacking: bundles, automatic by id, the coupon, free "
              "shipping; each on what is left",
      .lines = {
          { LINE("A", 3, 1000, "s1"), SOLD(1000), SHIP(100, 1, 3) } },
      .promos = {
          { AMOUNT("1", 500) },
          { PERCENT("2", 1000) },
          { CHEAPEST_FREE("3", 3) },
          { AMOUNT("4", 300), .code = "SAVE3" },
          { FREE_SHIPPING("5") } },
      .coupon = "SAVE3",
      .expect = "A.discount=1950 A.ship_discount=300"
                " applied=3:1000,1:500,2:150,4*:300,5:300 coupon_error=-"
                " amount=3000 shipping=300 discount=2250" },

    { .name = "conditions are met on the lines before any discount",
      .lines = { { LINE("A", 1, 2000, "s1"), SOLD(2000) } },
      .promos = {
          { AMOUNT("1", 1500) },
          { AMOUNT("2", 100), .code = "MIN20", .min_subtotal = 2000 } },
      .coupon = "MIN20",
      .expect = "applied=1:1500,2*:100 coupon_error=- discount=1600" },

    { .name = "min_subtotal: the lines in scope, at today's prices",
      .lines = {
          { LINE("A", 1, 2000, "s1"), SOLD(1500) },
          { LINE("B", 1, 5000, "s2"), SOLD(5000) } },
      .promos = {
          { PERCENT("1", 1000), .code = "S1", .seller = "s1",
            .min_subtotal = 1600 } },
      .coupon = "S1",
      .expect = "applied= coupon_error=coupon_conditions_unmet" },

    { .name = "scope: skus and seller; unsold and unpriced lines never",
      .lines = {
          { LINE("A", 1, 1000, "s1"), SOLD(1000) },
          { LINE("B", 1, 2000, "s1"), SOLD(2000) },
          { LINE("C", 1, 3000, "s2"), SOLD(3000) },
          { LINE("D", 1, 500, "s1"), GONE },
          { LINE("E", 1, -1, "s1"), CATALOG_FAILED } },
      .promos = {
          { PERCENT("1", 1000), .skus = "A,C,D,E", .seller = "s1" },
          { AMOUNT("2", 100), .skus = "B" } },
      .expect = "A.discount=100 B.discount=100 C.discount=0 D.discount=0"
                " E.discount=0 applied=1:100,2:100" },

    { .name = "one coupon: another coupon's promotion does not apply",
      .lines = { { LINE("A", 1, 1000, "s1"), SOLD(1000) } },
      .promos = {
          { AMOUNT("1", 100), .code = "ONE" },
          { AMOUNT("2", 200), .code = "TWO" } },
      .coupon = "ONE",
      .expect = "applied=1*:100 coupon_error=- discount=100" },

    { .name = "no coupon: no coupon promotion applies",
      .lines = { { LINE("A", 1, 1000, "s1"), SOLD(1000) } },
      .promos = { { AMOUNT("1", 100), .code = "ONE" } },
      .expect = "applied= coupon_error=- discount=0" },

    { .name = "window: from starts_at included; an expired automatic one "
              "is left out",
      .lines = { { LINE("A", 1, 1000, "s1"), SOLD(1000) } },
      .promos = {
          { AMOUNT("1", 100), .code = "NOW", .starts_at = T0,
            .expires_at = T0 + 1 },
          { AMOUNT("2", 50), .expires_at = T0 } },
      .coupon = "NOW",
      .expect = "applied=1*:100 coupon_error=-" },

    { .name = "coupon_not_yet_valid",
      .lines = { { LINE("A", 1, 1000, "s1"), SOLD(1000) } },
      .promos = { { AMOUNT("1", 100), .code = "SOON", .starts_at = T0 + 1 } },
      .coupon = "SOON",
      .expect = "applied= coupon_error=coupon_not_yet_valid" },

    { .name = "coupon_expired: to expires_at excluded",
      .lines = { { LINE("A", 1, 1000, "s1"), SOLD(1000) } },
      .promos = { { AMOUNT("1", 100), .code = "GONE", .expires_at = T0 } },
      .coupon = "GONE",
      .expect = "applied= coupon_error=coupon_expired" },

    { .name = "coupon_unknown",
      .lines = { { LINE("A", 1, 1000, "s1"), SOLD(1000) } },
      .promos = { { AMOUNT("1", 100), .code = "ONE" } },
      .coupon = "NOPE",
      .expect = "applied= coupon_error=coupon_unknown" },

    { .name = "promotions that could not be read: promotions_unavailable",
      .lines = { { LINE("A", 1, 1000, "s1"), SOLD(1000) } },
      .promos_rc = NGX_ERROR,
      .coupon = "ONE",
      .expect = "applied= coupon_error=promotions_unavailable" },

    { .name = "promotions not read: coupon_conditions_unmet",
      .promos_rc = NGX_DONE,
      .coupon = "ONE",
      .expect = "applied= coupon_error=coupon_conditions_unmet"
                " item_count=0" },

    { .name = "an exhausted automatic promotion is priced as gone",
      .lines = { { LINE("A", 1, 1000, "s1"), SOLD(1000) } },
      .promos = { { PERCENT("1", 1000) }, { AMOUNT("2", 100) } },
      .excluded = "1",
      .expect = "A.discount=100 applied=2:100 discount=100" },

    /* sellers */

    { .name = "sellers: the catalog's seller wins, groups in order of "
              "appearance, figures add up",
      .lines = {
          { LINE("A", 1, 1000, "s1"), SOLD_BY(1000, "s2") },
          { LINE("B", 2, 500, "s1"), SOLD(450) },
          { LINE("C", 1, 2000, "s2"), SOLD(2000) },
          { LINE("D", 1, 800, "s3"), CATALOG_FAILED } },
      .promos = { { AMOUNT("1", 1000) } },
      .expect = "A.seller=s2 groups=s2,s1,s3 A.discount=213 B.discount=191"
                " C.discount=426 D.discount=170 g.s2.items=2"
                " g.s2.subtotal=3000 g.s2.amount=3000 g.s2.discount=639"
                " g.s1.items=2 g.s1.subtotal=1000 g.s1.amount=900"
                " g.s1.discount=191 g.s3.amount=800 g.s3.discount=170"
                " item_count=5 subtotal=4800 amount=4700 discount=1000" },

    /* the extremes the configuration allows (NGX_HTTP_CART_MAX_UNITS,
     * NGX_HTTP_CART_MAX_QUANTITY, NGX_HTTP_CART_MAX_AMOUNT) */

    { .name = "the largest amounts: 6 lines of 1000000 units at the highest "
              "price sum exactly in int64",
      .lines = {
          { LINE("A", 1000000, 100000000000LL, "s1"), SOLD(100000000000LL) },
          { LINE("B", 1000000, 100000000000LL, "s1"), SOLD(100000000000LL) },
          { LINE("C", 1000000, 100000000000LL, "s1"), SOLD(100000000000LL) },
          { LINE("D", 1000000, 100000000000LL, "s2"), SOLD(100000000000LL) },
          { LINE("E", 1000000, 100000000000LL, "s2"), SOLD(100000000000LL) },
          { LINE("F", 1000000, 100000000000LL, "s2"), SOLD(100000000000LL) } },
      .promos = { { PERCENT("1", 5000) } },
      .expect = "g.s1.subtotal=300000000000000000"
                " g.s2.subtotal=300000000000000000"
                " item_count=6000000 subtotal=600000000000000000"
                " amount=600000000000000000 discount=300000000000000000" },
};


static char *
ngx_cart_engine_test(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    u_char               *buf;
    ngx_int_t             rc;
    ngx_uint_t            i, n, failed;
    ngx_pool_t           *pool;
    const char           *why;
    ngx_cart_test_case_t *tc;

    n = sizeof(ngx_cart_test_cases) / sizeof(ngx_cart_test_case_t);
    failed = 0;

    buf = ngx_palloc(cf->pool, NGX_CART_TEST_BUF);
    if (buf == NULL) {
        return NGX_CONF_ERROR;
    }

    printf("1..%u\n", (unsigned) n);

    for (i = 0; i < n; i++) {
        tc = &ngx_cart_test_cases[i];

        /* a pool per case, as a request has one */
        pool = ngx_create_pool(1024, cf->log);
        if (pool == NULL) {
            return NGX_CONF_ERROR;
        }

        why = NULL;
        rc = ngx_cart_test_run(pool, tc, buf, &why);

        printf("%sok %u - %s\n", rc == NGX_OK ? "" : "not ",
               (unsigned) i + 1, tc->name);

        if (rc != NGX_OK) {
            failed++;
            printf("#   %s\n#   got: %s\n", why, buf);
        }

        ngx_destroy_pool(pool);
    }

    fflush(stdout);

    return failed ? "failed: the engine's unit tests" : NGX_CONF_OK;
}


static ngx_int_t
ngx_cart_test_run(ngx_pool_t *pool, ngx_cart_test_case_t *tc, u_char *buf,
    const char **why)
{
    ngx_str_t                coupon;
    ngx_http_cart_basket_t  *basket;
    ngx_http_cart_priced_t  *priced;

    *buf = '\0';

    basket = ngx_cart_test_basket(pool, tc);
    if (basket == NULL) {
        *why = "no memory for the basket";
        return NGX_ERROR;
    }

    coupon.data = (u_char *) (tc->coupon ? tc->coupon : "");
    coupon.len = ngx_strlen(coupon.data);

    priced = ngx_http_cart_engine_price(pool, basket, &coupon,
                                        tc->now ? tc->now : T0);
    if (priced == NULL) {
        *why = "the engine answered NULL";
        return NGX_ERROR;
    }

    ngx_cart_test_summary(priced, buf);

    *why = ngx_cart_test_sums(priced);
    if (*why) {
        return NGX_ERROR;
    }

    *why = ngx_cart_test_expect(buf, tc->expect);

    return *why ? NGX_ERROR : NGX_OK;
}


static ngx_http_cart_basket_t *
ngx_cart_test_basket(ngx_pool_t *pool, ngx_cart_test_case_t *tc)
{
    ngx_str_t               *ids;
    ngx_uint_t               i, k, n;
    ngx_http_cart_line_t    *line;
    ngx_http_cart_facts_t   *f;
    ngx_http_cart_promo_t   *p;
    ngx_cart_test_line_t    *tl;
    ngx_cart_test_promo_t   *tp;
    ngx_http_cart_basket_t  *b;

    b = ngx_pcalloc(pool, sizeof(ngx_http_cart_basket_t));
    if (b == NULL) {
        return NULL;
    }

    for (n = 0; n < 6 && tc->lines[n].sku; n++) { /* void */ }

    b->nlines = n;
    b->lines = ngx_pcalloc(pool, (n + 1) * sizeof(ngx_http_cart_line_t));
    b->facts = ngx_pcalloc(pool, (n + 1) * sizeof(ngx_http_cart_facts_t));
    if (b->lines == NULL || b->facts == NULL) {
        return NULL;
    }

    for (i = 0; i < n; i++) {
        tl = &tc->lines[i];
        line = &b->lines[i];
        f = &b->facts[i];

        line->sku.data = (u_char *) tl->sku;
        line->sku.len = ngx_strlen(tl->sku);
        line->qty = tl->qty;
        line->price = tl->at_add;
        line->seller.data = (u_char *) tl->seller;
        line->seller.len = ngx_strlen(tl->seller);
        line->added = T0 - 86400;

        f->catalog = ngx_cart_test_status(tl->catalog);
        f->product.price = tl->price;
        ngx_str_set(&f->product.name, "name");

        if (tl->catalog_seller) {
            f->product.seller.data = (u_char *) tl->catalog_seller;
            f->product.seller.len = ngx_strlen(tl->catalog_seller);
        }

        f->stock = ngx_cart_test_status(tl->stock);
        f->available = tl->available;
        f->ship = ngx_cart_test_status(tl->ship);
        f->ship_cost = tl->cost;
        f->min_days = tl->min_days;
        f->max_days = tl->max_days;
    }

    for (n = 0; n < 6 && tc->promos[n].id; n++) { /* void */ }

    b->promos_rc = tc->promos_rc;
    b->npromos = n;
    b->promos = ngx_pcalloc(pool, (n + 1) * sizeof(ngx_http_cart_promo_t));
    if (b->promos == NULL) {
        return NULL;
    }

    for (i = 0; i < n; i++) {
        tp = &tc->promos[i];
        p = &b->promos[i];

        p->id.data = (u_char *) tp->id;
        p->id.len = ngx_strlen(tp->id);
        p->seq = i + 1;
        p->code.data = (u_char *) (tp->code ? tp->code : "");
        p->code.len = ngx_strlen(p->code.data);
        p->type = tp->type;
        p->bundle = tp->bundle;
        p->value = tp->value;
        p->min_subtotal = tp->min_subtotal;
        p->seller.data = (u_char *) (tp->seller ? tp->seller : "");
        p->seller.len = ngx_strlen(p->seller.data);
        p->bundle_quantity = tp->bundle_quantity;
        p->starts_at = tp->starts_at;
        p->expires_at = tp->expires_at;

        p->skus = ngx_cart_test_list(pool, tp->skus, &p->nskus);
        if (p->skus == NULL) {
            return NULL;
        }
    }

    ids = ngx_cart_test_list(pool, tc->excluded, &n);
    b->excluded = ngx_palloc(pool, (n + 1) * sizeof(ngx_http_cart_promo_t *));
    if (ids == NULL || b->excluded == NULL) {
        return NULL;
    }

    for (k = 0; k < n; k++) {
        for (i = 0; i < b->npromos; i++) {
            p = &b->promos[i];

            if (p->id.len == ids[k].len
                && ngx_strncmp(p->id.data, ids[k].data, ids[k].len) == 0)
            {
                b->excluded[b->nexcluded++] = p;
            }
        }
    }

    return b;
}


static ngx_int_t
ngx_cart_test_status(ngx_uint_t answer)
{
    switch (answer) {

    case T_OK:
        return NGX_OK;

    case T_GONE:
        return NGX_DECLINED;

    case T_FAILED:
        return NGX_ERROR;

    default: /* T_NOT_ASKED */
        return NGX_DONE;
    }
}


/* "a,b,c" into strings; NULL only when out of memory */

static ngx_str_t *
ngx_cart_test_list(ngx_pool_t *pool, char *list, ngx_uint_t *n)
{
    u_char     *p, *last, *comma;
    ngx_str_t  *s;

    *n = 0;

    s = ngx_palloc(pool, 8 * sizeof(ngx_str_t));
    if (s == NULL || list == NULL) {
        return s;
    }

    p = (u_char *) list;
    last = p + ngx_strlen(list);

    while (p < last && *n < 8) {
        comma = ngx_strlchr(p, last, ',');
        if (comma == NULL) {
            comma = last;
        }

        s[*n].data = p;
        s[*n].len = comma - p;
        (*n)++;

        p = comma + 1;
    }

    return s;
}


/* " name=value ... ", NUL-terminated, so that expect() finds " token " */

static void
ngx_cart_test_summary(ngx_http_cart_priced_t *priced, u_char *buf)
{
    u_char                       *p, *last;
    ngx_uint_t                    i;
    ngx_str_t                    *sku;
    ngx_http_cart_group_t        *g;
    ngx_http_cart_applied_t      *a;
    ngx_http_cart_warning_t      *w;
    ngx_http_cart_priced_line_t  *pl;

    p = buf;
    last = buf + NGX_CART_TEST_BUF - 1;

    for (i = 0; i < priced->nlines; i++) {
        pl = &priced->lines[i];
        sku = &pl->line->sku;

        p = ngx_slprintf(p, last, " %V.unit=%L %V.amount=%L %V.discount=%L"
                         " %V.shipping=%L %V.ship_discount=%L %V.seller=%V"
                         " %V.in_stock=%d %V.price_changed=%d",
                         sku, pl->unit, sku, pl->amount, sku, pl->discount,
                         sku, pl->shipping, sku, pl->ship_discount,
                         sku, &pl->seller, sku, (int) pl->in_stock,
                         sku, (int) pl->price_changed);
    }

    p = ngx_slprintf(p, last, " groups=");

    for (i = 0; i < priced->ngroups; i++) {
        p = ngx_slprintf(p, last, "%s%V", i ? "," : "",
                         &priced->groups[i].seller);
    }

    for (i = 0; i < priced->ngroups; i++) {
        g = &priced->groups[i];

        p = ngx_slprintf(p, last, " g.%V.items=%L g.%V.subtotal=%L"
                         " g.%V.amount=%L g.%V.discount=%L g.%V.shipping=%L"
                         " g.%V.days=%L..%L g.%V.estimated=%ui",
                         &g->seller, g->items, &g->seller, g->subtotal,
                         &g->seller, g->amount, &g->seller, g->discount,
                         &g->seller, g->shipping, &g->seller, g->min_days,
                         g->max_days, &g->seller, g->estimated);
    }

    p = ngx_slprintf(p, last, " applied=");

    for (i = 0; i < priced->napplied; i++) {
        a = &priced->applied[i];
        p = ngx_slprintf(p, last, "%s%V%s:%L", i ? "," : "", &a->promo->id,
                         a->coupon ? "*" : "", a->discount);
    }

    p = ngx_slprintf(p, last, " warnings=");

    for (i = 0; i < priced->nwarnings; i++) {
        w = &priced->warnings[i];
        p = ngx_slprintf(p, last, "%s%s:%V", i ? "," : "",
                         ngx_cart_test_warnings[w->code], w->sku);
    }

    p = ngx_slprintf(p, last, " coupon_error=%s item_count=%L subtotal=%L"
                     " amount=%L discount=%L shipping=%L today=%T ",
                     priced->coupon_error ? priced->coupon_error : "-",
                     priced->item_count, priced->subtotal, priced->amount,
                     priced->discount, priced->shipping, priced->today);

    *p = '\0';
}


/* what every priced cart satisfies, whatever the case; NULL when it does */

static const char *
ngx_cart_test_sums(ngx_http_cart_priced_t *priced)
{
    int64_t                       lines, applied, items, subtotal, amount,
                                  discount, shipping;
    ngx_uint_t                    i;
    ngx_http_cart_group_t        *g;
    ngx_http_cart_priced_line_t  *pl;

    lines = 0;

    for (i = 0; i < priced->nlines; i++) {
        pl = &priced->lines[i];

        if (pl->discount < 0 || pl->discount > pl->amount
            || pl->ship_discount < 0 || pl->ship_discount > pl->shipping)
        {
            return "a line's discount is below zero or above its cost";
        }

        lines += pl->discount + pl->ship_discount;
    }

    applied = 0;

    for (i = 0; i < priced->napplied; i++) {
        applied += priced->applied[i].discount;
    }

    items = 0;
    subtotal = 0;
    amount = 0;
    discount = 0;
    shipping = 0;

    for (i = 0; i < priced->ngroups; i++) {
        g = &priced->groups[i];
        items += g->items;
        subtotal += g->subtotal;
        amount += g->amount;
        discount += g->discount;
        shipping += g->shipping;
    }

    if (lines != priced->discount || applied != priced->discount) {
        return "the lines' or the promotions' discounts do not add up";
    }

    if (items != priced->item_count || subtotal != priced->subtotal
        || amount != priced->amount || discount != priced->discount
        || shipping != priced->shipping)
    {
        return "the sellers' figures do not add up to the cart's";
    }

    return NULL;
}


/* NULL when every token of "expect" is in the summary */

static const char *
ngx_cart_test_expect(u_char *buf, char *expect)
{
    char        *p, *end;
    size_t       len;
    static char  why[256];
    u_char       token[128];

    for (p = expect; *p; p = end) {
        while (*p == ' ') {
            p++;
        }

        for (end = p; *end && *end != ' '; end++) { /* void */ }

        len = end - p;
        if (len == 0) {
            continue;
        }

        if (len + 3 > sizeof(token)) {
            return "a token of the case is too long";
        }

        token[0] = ' ';
        ngx_memcpy(token + 1, p, len);
        token[len + 1] = ' ';
        token[len + 2] = '\0';

        if (ngx_strstr(buf, token) == NULL) {
            ngx_snprintf((u_char *) why, sizeof(why) - 1,
                         "expected %*s%Z", len, p);
            return why;
        }
    }

    return NULL;
}
