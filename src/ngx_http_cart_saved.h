/*
 * Saved for later: POST /items/{sku_id}/save, GET /saved,
 * POST /saved/{sku_id}/move, DELETE /saved/{sku_id}. Signed-in users
 * only; the list is saved:{user-<id>}, in the cart's hash tag, so that a
 * move between cart and list is one script.
 */

#ifndef _NGX_HTTP_CART_SAVED_H_INCLUDED_
#define _NGX_HTTP_CART_SAVED_H_INCLUDED_


#include "ngx_http_cart.h"


ngx_int_t ngx_http_cart_saved_save(ngx_http_request_t *r);
ngx_int_t ngx_http_cart_saved_list(ngx_http_request_t *r);
ngx_int_t ngx_http_cart_saved_move(ngx_http_request_t *r);
ngx_int_t ngx_http_cart_saved_drop(ngx_http_request_t *r);


#endif /* _NGX_HTTP_CART_SAVED_H_INCLUDED_ */
