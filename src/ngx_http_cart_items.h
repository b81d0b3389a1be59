/*
 * The cart resource: its lines (POST /items, PUT and DELETE /items/{sku}),
 * the cart view (GET /) and the badge counter (GET /count).
 */

#ifndef _NGX_HTTP_CART_ITEMS_H_INCLUDED_
#define _NGX_HTTP_CART_ITEMS_H_INCLUDED_


#include "ngx_http_cart.h"
#include "ngx_http_cart_pricing.h"   /* lines, products, shared JSON */


ngx_int_t ngx_http_cart_items_add(ngx_http_request_t *r);
ngx_int_t ngx_http_cart_items_update(ngx_http_request_t *r);
ngx_int_t ngx_http_cart_items_remove(ngx_http_request_t *r);
ngx_int_t ngx_http_cart_view(ngx_http_request_t *r);
ngx_int_t ngx_http_cart_count(ngx_http_request_t *r);

#endif /* _NGX_HTTP_CART_ITEMS_H_INCLUDED_ */
