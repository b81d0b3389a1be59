/*
 * Parallel in-memory GET subrequests to the operator's upstream locations
 * (cart_catalog, later inventory and shipping): one per SKU, with $cart_sku
 * set for each, all started at once; the parent resumes when the last one
 * is done.
 */

#ifndef _NGX_HTTP_CART_SUBREQUEST_H_INCLUDED_
#define _NGX_HTTP_CART_SUBREQUEST_H_INCLUDED_


#include "ngx_http_cart.h"


ngx_int_t ngx_http_cart_subrequest_add_variables(ngx_conf_t *cf);

/*
 * Starts one subrequest per element of fetches (their "sku" set), to the
 * URI "uri" evaluates to with $cart_sku = that sku. Results land in the
 * elements; "resume" runs once all are done. NGX_OK: started.
 */
ngx_int_t ngx_http_cart_fetch(ngx_http_request_t *r,
    ngx_http_complex_value_t *uri, ngx_http_cart_fetch_t *fetches,
    ngx_uint_t n, ngx_http_cart_resume_pt resume);


#endif /* _NGX_HTTP_CART_SUBREQUEST_H_INCLUDED_ */
