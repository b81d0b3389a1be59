/*
 * A librdkafka producer on nginx's event loop, one per worker; it knows
 * Kafka, not carts. Create it in init_process: librdkafka's threads do not
 * survive fork. Reports and log lines are handled in the worker's thread.
 */

#ifndef _NGX_HTTP_CART_KAFKA_H_INCLUDED_
#define _NGX_HTTP_CART_KAFKA_H_INCLUDED_


#include "ngx_http_cart.h"


typedef struct ngx_http_cart_kafka_s  ngx_http_cart_kafka_t;


/* updated atomically: may be shared between workers */
typedef struct {
    ngx_atomic_t        enqueued;    /* accepted by librdkafka */
    ngx_atomic_t        delivered;   /* acknowledged by the brokers */
    ngx_atomic_t        failed;      /* delivery failed (timeout, fatal) */
    ngx_atomic_t        dropped;     /* refused at enqueue (queue full) */
} ngx_http_cart_kafka_stats_t;


/* cart_kafka_property NAME VALUE: refused at configuration time when
 * librdkafka does not know the property or the value */
char *ngx_http_cart_kafka_check_property(ngx_conf_t *cf, ngx_str_t *name,
    ngx_str_t *value);

/* brokers and topic as configured; properties: ngx_keyval_t, may be NULL;
 * stats: where to count, must outlive the producer; depth (may be NULL):
 * where the poll timer writes the producer's queue length */
ngx_http_cart_kafka_t *ngx_http_cart_kafka_create(ngx_cycle_t *cycle,
    ngx_str_t *brokers, ngx_str_t *topic, ngx_array_t *properties,
    ngx_http_cart_kafka_stats_t *stats, ngx_atomic_t *depth);
void ngx_http_cart_kafka_destroy(ngx_http_cart_kafka_t *kafka);

/* never blocks: NGX_OK when enqueued, NGX_DECLINED when dropped (queue
 * full; logged and counted) */
ngx_int_t ngx_http_cart_kafka_produce(ngx_http_cart_kafka_t *kafka,
    ngx_str_t *key, u_char *value, size_t len, ngx_log_t *log);


#endif /* _NGX_HTTP_CART_KAFKA_H_INCLUDED_ */
