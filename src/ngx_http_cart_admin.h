/*
 * The promotions admin API, below a cart_admin location: POST, GET
 * /promotions, GET and DELETE /promotions/{id}.
 */

#ifndef _NGX_HTTP_CART_ADMIN_H_INCLUDED_
#define _NGX_HTTP_CART_ADMIN_H_INCLUDED_


#include "ngx_http_cart.h"


ngx_int_t ngx_http_cart_admin_create(ngx_http_request_t *r);
ngx_int_t ngx_http_cart_admin_list(ngx_http_request_t *r);
ngx_int_t ngx_http_cart_admin_read(ngx_http_request_t *r);
ngx_int_t ngx_http_cart_admin_delete(ngx_http_request_t *r);


#endif /* _NGX_HTTP_CART_ADMIN_H_INCLUDED_ */
