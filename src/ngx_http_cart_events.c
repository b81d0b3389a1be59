/*
 * Cart change events. The Kafka producer (cart_kafka_brokers) is not built
 * yet, so events are off: the call sites are final, the transport is not.
 */

#include "ngx_http_cart_events.h"


void
ngx_http_cart_event(ngx_http_request_t *r, ngx_http_cart_event_t *ev)
{
    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "cart event %s \"%V\" v%L (events off)",
                   ev->type, &ev->sku, ev->version);
}
