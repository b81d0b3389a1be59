/*
 * The cart resource: its lines (POST /items, PUT and DELETE /items/{sku}),
 * the cart view (GET /) and the badge counter (GET /count).
 */

#ifndef _NGX_HTTP_CART_ITEMS_H_INCLUDED_
#define _NGX_HTTP_CART_ITEMS_H_INCLUDED_


#include "ngx_http_cart.h"
#include "ngx_http_cart_json.h"


/* a stored line, "qty|price|seller|added_at" (saved lines: saved_at) */
typedef struct {
    ngx_str_t     sku;
    int64_t       qty;
    int64_t       price;        /* price_at_add, minor units; -1 unknown */
    ngx_str_t     seller;
    time_t        added;
} ngx_http_cart_line_t;


/* a catalog document of one SKU */
typedef struct {
    int64_t       price;
    ngx_str_t     name;
    ngx_str_t     seller;
    ngx_str_t     image;
} ngx_http_cart_product_t;


ngx_int_t ngx_http_cart_items_add(ngx_http_request_t *r);
ngx_int_t ngx_http_cart_items_update(ngx_http_request_t *r);
ngx_int_t ngx_http_cart_items_remove(ngx_http_request_t *r);
ngx_int_t ngx_http_cart_view(ngx_http_request_t *r);
ngx_int_t ngx_http_cart_count(ngx_http_request_t *r);

/* what other resources reuse of the cart's: the line encoding, catalog
 * documents (NGX_OK, NGX_DECLINED: no such SKU, NGX_ERROR: unusable),
 * prices (null when unknown) and "cart_id" */
ngx_int_t ngx_http_cart_line_parse(ngx_str_t *value,
    ngx_http_cart_line_t *line);
ngx_int_t ngx_http_cart_product(ngx_http_request_t *r,
    ngx_http_cart_fetch_t *f, ngx_http_cart_product_t *product);
void ngx_http_cart_json_price(yajl_gen g, int64_t price);
void ngx_http_cart_json_cart_id(yajl_gen g, ngx_http_cart_ctx_t *ctx);


#endif /* _NGX_HTTP_CART_ITEMS_H_INCLUDED_ */
