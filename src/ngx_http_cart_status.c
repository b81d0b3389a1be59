/*
 * cart_status: the module's counters in Prometheus text format.
 */

#include "ngx_http_cart_status.h"


static ngx_int_t ngx_http_cart_status_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);


static ngx_str_t  ngx_http_cart_status_zone_name =
    ngx_string("ngx_http_cart_status");


/* the zone belongs to the configuration (cycle) that declared it: a
 * failed reload never leaves a worker with another cycle's zone */

ngx_int_t
ngx_http_cart_status_zone(ngx_conf_t *cf, ngx_http_cart_main_conf_t *cmcf)
{
    cmcf->status_zone = ngx_shared_memory_add(cf,
                                            &ngx_http_cart_status_zone_name,
                                            8 * ngx_pagesize,
                                            &ngx_http_cart_module);
    if (cmcf->status_zone == NULL) {
        return NGX_ERROR;
    }

    cmcf->status_zone->init = ngx_http_cart_status_init_zone;

    return NGX_OK;
}


static ngx_int_t
ngx_http_cart_status_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_slab_pool_t          *shpool;
    ngx_http_cart_metrics_t  *metrics;

    /* a reload keeps the counters: they are counters since start */

    if (data) {
        shm_zone->data = data;
        return NGX_OK;
    }

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        shm_zone->data = shpool->data;
        return NGX_OK;
    }

    metrics = ngx_slab_calloc(shpool, sizeof(ngx_http_cart_metrics_t));
    if (metrics == NULL) {
        return NGX_ERROR;
    }

    shpool->data = metrics;
    shm_zone->data = metrics;

    return NGX_OK;
}


ngx_http_cart_metrics_t *
ngx_http_cart_metrics(ngx_http_cart_main_conf_t *cmcf)
{
    return cmcf->status_zone ? cmcf->status_zone->data : NULL;
}


ngx_int_t
ngx_http_cart_status_handler(ngx_http_request_t *r)
{
    size_t                        len;
    ngx_int_t                     rc;
    ngx_buf_t                    *b;
    ngx_chain_t                   out;
    ngx_http_cart_metrics_t      *metrics;
    ngx_http_cart_kafka_stats_t  *ev;

    static const char  fmt[] =
        "# HELP cart_events_total Cart events by outcome since nginx "
        "started.\n"
        "# TYPE cart_events_total counter\n"
        "cart_events_total{outcome=\"enqueued\"} %uA\n"
        "cart_events_total{outcome=\"delivered\"} %uA\n"
        "cart_events_total{outcome=\"failed\"} %uA\n"
        "cart_events_total{outcome=\"dropped\"} %uA\n";

    if (r->method != NGX_HTTP_GET && r->method != NGX_HTTP_HEAD) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    metrics = ngx_http_cart_metrics(
                  ngx_http_get_module_main_conf(r, ngx_http_cart_module));
    if (metrics == NULL) {
        return NGX_HTTP_SERVICE_UNAVAILABLE;
    }

    ev = &metrics->events;

    len = sizeof(fmt) + 4 * NGX_ATOMIC_T_LEN;

    b = ngx_create_temp_buf(r->pool, len);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->last = ngx_sprintf(b->pos, fmt, ev->enqueued, ev->delivered,
                          ev->failed, ev->dropped);
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = b->last - b->pos;
    ngx_str_set(&r->headers_out.content_type, "text/plain; version=0.0.4");
    r->headers_out.content_type_len = r->headers_out.content_type.len;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}
