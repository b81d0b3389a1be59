/*
 * Metrics: counters in a shared memory zone, so that every worker adds to
 * the same numbers and they survive reloads, and the cart_status handler
 * that prints them in Prometheus text format.
 */

#ifndef _NGX_HTTP_CART_STATUS_H_INCLUDED_
#define _NGX_HTTP_CART_STATUS_H_INCLUDED_


#include "ngx_http_cart.h"
#include "ngx_http_cart_kafka.h"


typedef struct {
    ngx_http_cart_kafka_stats_t   events;
} ngx_http_cart_metrics_t;


ngx_int_t ngx_http_cart_status_zone(ngx_conf_t *cf,
    ngx_http_cart_main_conf_t *cmcf);

/* the shared counters, NULL when no location uses the module */
ngx_http_cart_metrics_t *ngx_http_cart_metrics(
    ngx_http_cart_main_conf_t *cmcf);

ngx_int_t ngx_http_cart_status_handler(ngx_http_request_t *r);


#endif /* _NGX_HTTP_CART_STATUS_H_INCLUDED_ */
