/*
 * nginx's own error answers on cart locations (client_max_body_size,
 * limit_req, limit_conn, internal failures) in the API's JSON error shape.
 */

#ifndef _NGX_HTTP_CART_ERRORS_H_INCLUDED_
#define _NGX_HTTP_CART_ERRORS_H_INCLUDED_


#include "ngx_http_cart.h"


ngx_int_t ngx_http_cart_errors_init(ngx_conf_t *cf);


#endif /* _NGX_HTTP_CART_ERRORS_H_INCLUDED_ */
