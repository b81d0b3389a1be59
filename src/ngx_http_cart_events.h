/*
 * Cart change events (contract section 6), off without cart_kafka_brokers.
 * A write calls ngx_http_cart_event() once per change, after Redis answered
 * and before the response; it never blocks and never fails the request.
 */

#ifndef _NGX_HTTP_CART_EVENTS_H_INCLUDED_
#define _NGX_HTTP_CART_EVENTS_H_INCLUDED_


#include "ngx_http_cart.h"


typedef struct {
    const char   *type;       /* "item_added", "quantity_updated", ... */
    ngx_str_t     sku;        /* empty when the event has none */
    int64_t       quantity;   /* -1 when the event has none */
    int64_t       price;      /* minor units, -1 when none */
    ngx_str_t     seller;     /* empty when none */
    int64_t       version;    /* the cart version after the change */
    ngx_str_t     checkout_id; /* a checkout's: names the order and its
                                  holds; empty for the others */
} ngx_http_cart_event_t;


void ngx_http_cart_event(ngx_http_request_t *r, ngx_http_cart_event_t *ev);

/* the worker's producer, when cart_kafka_brokers is set */
ngx_int_t ngx_http_cart_events_init_worker(ngx_cycle_t *cycle,
    ngx_http_cart_main_conf_t *cmcf);
void ngx_http_cart_events_exit_worker(ngx_http_cart_main_conf_t *cmcf);


#endif /* _NGX_HTTP_CART_EVENTS_H_INCLUDED_ */
