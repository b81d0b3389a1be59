/*
 * A cart's coupon (POST /coupons, DELETE /coupons/{code}) and shipping
 * destination (PUT /shipping-address): meta fields of the cart hash.
 */

#ifndef _NGX_HTTP_CART_COUPONS_H_INCLUDED_
#define _NGX_HTTP_CART_COUPONS_H_INCLUDED_


#include "ngx_http_cart.h"


ngx_int_t ngx_http_cart_coupons_apply(ngx_http_request_t *r);
ngx_int_t ngx_http_cart_coupons_remove(ngx_http_request_t *r);
ngx_int_t ngx_http_cart_address_set(ngx_http_request_t *r);


#endif /* _NGX_HTTP_CART_COUPONS_H_INCLUDED_ */
