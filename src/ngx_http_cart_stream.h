/*
 * GET /stream: Server-Sent Events, one per change of the caller's cart,
 * fanned out to every worker of every node through Redis pub/sub.
 */

#ifndef _NGX_HTTP_CART_STREAM_H_INCLUDED_
#define _NGX_HTTP_CART_STREAM_H_INCLUDED_


#include "ngx_http_cart.h"


ngx_int_t ngx_http_cart_stream(ngx_http_request_t *r);

ngx_int_t ngx_http_cart_stream_init_worker(ngx_cycle_t *cycle,
    ngx_http_cart_main_conf_t *cmcf);
void ngx_http_cart_stream_exit_worker(ngx_http_cart_main_conf_t *cmcf);


#endif /* _NGX_HTTP_CART_STREAM_H_INCLUDED_ */
