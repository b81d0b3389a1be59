/*
 * POST /checkout: the cart re-validated against catalog and inventory,
 * priced with its promotions, split per seller, and turned into an order.
 */

#ifndef _NGX_HTTP_CART_CHECKOUT_H_INCLUDED_
#define _NGX_HTTP_CART_CHECKOUT_H_INCLUDED_


#include "ngx_http_cart.h"


ngx_int_t ngx_http_cart_checkout(ngx_http_request_t *r);


#endif /* _NGX_HTTP_CART_CHECKOUT_H_INCLUDED_ */
