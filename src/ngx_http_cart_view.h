/*
 * The renderer: a priced cart as the cart view's JSON (GET / and the
 * writes that answer with it), and the pieces checkout prints too.
 */

#ifndef _NGX_HTTP_CART_VIEW_H_INCLUDED_
#define _NGX_HTTP_CART_VIEW_H_INCLUDED_


#include "ngx_http_cart.h"
#include "ngx_http_cart_json.h"
#include "ngx_http_cart_engine.h"
#include "ngx_http_cart_snapshot.h"


void ngx_http_cart_render_view(ngx_http_request_t *r, yajl_gen g,
    ngx_http_cart_snapshot_t *snap, ngx_http_cart_priced_t *priced,
    int64_t version);

void ngx_http_cart_json_cart_id(yajl_gen g, ngx_http_cart_ctx_t *ctx);
void ngx_http_cart_json_price(yajl_gen g, int64_t price);
void ngx_http_cart_json_applied(yajl_gen g, ngx_http_cart_priced_t *priced);
void ngx_http_cart_json_address(yajl_gen g, ngx_http_cart_snapshot_t *snap);
void ngx_http_cart_json_date(yajl_gen g, time_t day, int64_t days);


#endif /* _NGX_HTTP_CART_VIEW_H_INCLUDED_ */
