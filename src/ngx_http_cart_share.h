/*
 * Sharing: POST /share makes an unguessable read-only link to the
 * caller's cart, GET /shared/{token} shows that cart live to anyone with
 * the link, POST /shared/{token}/copy adds its lines to the caller's cart.
 */

#ifndef _NGX_HTTP_CART_SHARE_H_INCLUDED_
#define _NGX_HTTP_CART_SHARE_H_INCLUDED_


#include "ngx_http_cart.h"


ngx_int_t ngx_http_cart_share_create(ngx_http_request_t *r);
ngx_int_t ngx_http_cart_share_view(ngx_http_request_t *r);
ngx_int_t ngx_http_cart_share_copy(ngx_http_request_t *r);


#endif /* _NGX_HTTP_CART_SHARE_H_INCLUDED_ */
