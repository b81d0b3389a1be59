/*
 * The dispatcher of the cart API: routes, identity, preconditions
 * (If-Match, Idempotency-Key) and the JSON request body.
 */

#ifndef _NGX_HTTP_CART_HANDLER_H_INCLUDED_
#define _NGX_HTTP_CART_HANDLER_H_INCLUDED_


#include "ngx_http_cart.h"


ngx_int_t ngx_http_cart_handler(ngx_http_request_t *r);


#endif /* _NGX_HTTP_CART_HANDLER_H_INCLUDED_ */
