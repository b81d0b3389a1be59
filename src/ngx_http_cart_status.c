/*
 * cart_status: the module's counters in Prometheus text format.
 */

#include "ngx_http_cart_status.h"


static ngx_int_t ngx_http_cart_status_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static ngx_int_t ngx_http_cart_status_log(ngx_http_request_t *r);
static u_char *ngx_http_cart_status_requests(u_char *p,
    ngx_http_cart_metrics_t *metrics);


static ngx_str_t  ngx_http_cart_op_names[] = {
    ngx_string("other"),
    ngx_string("view"),
    ngx_string("count"),
    ngx_string("stream"),
    ngx_string("add"),
    ngx_string("update"),
    ngx_string("remove"),
    ngx_string("save"),
    ngx_string("saved"),
    ngx_string("saved_move"),
    ngx_string("saved_drop"),
    ngx_string("merge"),
    ngx_string("share"),
    ngx_string("shared_view"),
    ngx_string("shared_copy"),
    ngx_string("coupon_apply"),
    ngx_string("coupon_remove"),
    ngx_string("address"),
    ngx_string("checkout"),
    ngx_string("admin")
};


/* the statuses the API answers; anything else counts as "other" (0) */
static ngx_uint_t  ngx_http_cart_statuses[NGX_HTTP_CART_STATUSES - 1] = {
    200, 201, 304, 400, 401, 403, 404, 405, 409, 412, 413, 415, 422, 429,
    499, 500, 502, 503, 504
};


/* upper bounds in milliseconds; the last bucket is +Inf */
static ngx_msec_t  ngx_http_cart_bounds[NGX_HTTP_CART_BUCKETS - 1] = {
    1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000
};


static ngx_str_t  ngx_http_cart_status_zone_name =
    ngx_string("ngx_http_cart_status");


/* the zone belongs to the configuration (cycle) that declared it: a
 * failed reload never leaves a worker with another cycle's zone */

ngx_int_t
ngx_http_cart_status_zone(ngx_conf_t *cf, ngx_http_cart_main_conf_t *cmcf)
{
    cmcf->status_zone = ngx_shared_memory_add(cf,
                                            &ngx_http_cart_status_zone_name,
                                            16 * ngx_pagesize,
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
ngx_http_cart_status_init(ngx_conf_t *cf)
{
    ngx_http_handler_pt        *h;
    ngx_http_core_main_conf_t  *cmcf;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_LOG_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_cart_status_log;

    return NGX_OK;
}


static ngx_int_t
ngx_http_cart_status_log(ngx_http_request_t *r)
{
    ngx_uint_t                   i, op, status;
    ngx_msec_int_t               ms;
    ngx_time_t                  *tp;
    ngx_http_cart_ctx_t         *ctx;
    ngx_http_cart_loc_conf_t    *lcf;
    ngx_http_cart_metrics_t     *metrics;
    ngx_http_cart_op_metrics_t  *m;

    if (r != r->main) {
        return NGX_OK;
    }

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_cart_module);

    if (lcf == NULL || (!lcf->api && !lcf->admin)) {
        return NGX_OK;
    }

    metrics = ngx_http_cart_metrics(
                  ngx_http_get_module_main_conf(r, ngx_http_cart_module));
    if (metrics == NULL) {
        return NGX_OK;
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_cart_module);
    op = ctx ? ctx->op : NGX_HTTP_CART_OP_OTHER;

    if (op >= NGX_HTTP_CART_OPS) {
        op = NGX_HTTP_CART_OP_OTHER;
    }

    m = &metrics->ops[op];

    status = r->headers_out.status;

    if (r->connection->error && status == 0) {
        status = 499;
    }

    for (i = 0; i < NGX_HTTP_CART_STATUSES - 1; i++) {
        if (ngx_http_cart_statuses[i] == status) {
            break;
        }
    }

    /* index 0 is "other", the known statuses follow */
    (void) ngx_atomic_fetch_add(&m->requests[i < NGX_HTTP_CART_STATUSES - 1
                                             ? i + 1 : 0], 1);

    tp = ngx_timeofday();
    ms = (ngx_msec_int_t) ((tp->sec - r->start_sec) * 1000
                           + (tp->msec - r->start_msec));
    ms = ngx_max(ms, 0);

    for (i = 0; i < NGX_HTTP_CART_BUCKETS - 1; i++) {
        if ((ngx_msec_t) ms <= ngx_http_cart_bounds[i]) {
            break;
        }
    }

    (void) ngx_atomic_fetch_add(&m->buckets[i], 1);
    (void) ngx_atomic_fetch_add(&m->msec, ms);

    return NGX_OK;
}


/* cart_requests_total and cart_request_duration_seconds, nonzero only */

static u_char *
ngx_http_cart_status_requests(u_char *p, ngx_http_cart_metrics_t *metrics)
{
    ngx_uint_t                   op, i, status;
    ngx_atomic_uint_t            n, total;
    ngx_http_cart_op_metrics_t  *m;

    p = ngx_cpymem(p, "# HELP cart_requests_total Cart API requests by "
                   "operation and status.\n"
                   "# TYPE cart_requests_total counter\n",
                   sizeof("# HELP cart_requests_total Cart API requests by "
                          "operation and status.\n"
                          "# TYPE cart_requests_total counter\n") - 1);

    for (op = 0; op < NGX_HTTP_CART_OPS; op++) {
        m = &metrics->ops[op];

        for (i = 0; i < NGX_HTTP_CART_STATUSES; i++) {
            n = m->requests[i];
            if (n == 0) {
                continue;
            }

            status = i ? ngx_http_cart_statuses[i - 1] : 0;

            if (status) {
                p = ngx_sprintf(p, "cart_requests_total{op=\"%V\","
                                "status=\"%ui\"} %uA\n",
                                &ngx_http_cart_op_names[op], status, n);
            } else {
                p = ngx_sprintf(p, "cart_requests_total{op=\"%V\","
                                "status=\"other\"} %uA\n",
                                &ngx_http_cart_op_names[op], n);
            }
        }
    }

    p = ngx_cpymem(p, "# HELP cart_request_duration_seconds Cart API "
                   "request latency by operation.\n"
                   "# TYPE cart_request_duration_seconds histogram\n",
                   sizeof("# HELP cart_request_duration_seconds Cart API "
                          "request latency by operation.\n"
                          "# TYPE cart_request_duration_seconds histogram\n")
                   - 1);

    for (op = 0; op < NGX_HTTP_CART_OPS; op++) {
        m = &metrics->ops[op];

        total = 0;
        for (i = 0; i < NGX_HTTP_CART_BUCKETS; i++) {
            total += m->buckets[i];
        }

        if (total == 0) {
            continue;
        }

        n = 0;

        for (i = 0; i < NGX_HTTP_CART_BUCKETS; i++) {
            n += m->buckets[i];

            if (i < NGX_HTTP_CART_BUCKETS - 1) {
                p = ngx_sprintf(p, "cart_request_duration_seconds_bucket"
                                "{op=\"%V\",le=\"%ui.%03ui\"} %uA\n",
                                &ngx_http_cart_op_names[op],
                                ngx_http_cart_bounds[i] / 1000,
                                ngx_http_cart_bounds[i] % 1000, n);
            } else {
                p = ngx_sprintf(p, "cart_request_duration_seconds_bucket"
                                "{op=\"%V\",le=\"+Inf\"} %uA\n",
                                &ngx_http_cart_op_names[op], n);
            }
        }

        p = ngx_sprintf(p, "cart_request_duration_seconds_sum{op=\"%V\"} "
                        "%uA.%03uA\n"
                        "cart_request_duration_seconds_count{op=\"%V\"} "
                        "%uA\n",
                        &ngx_http_cart_op_names[op], m->msec / 1000,
                        m->msec % 1000, &ngx_http_cart_op_names[op], total);
    }

    p = ngx_sprintf(p, "# HELP cart_idempotent_replays_total Writes answered "
                    "again from their Idempotency-Key.\n"
                    "# TYPE cart_idempotent_replays_total counter\n"
                    "cart_idempotent_replays_total %uA\n"
                    "# HELP cart_idempotency_conflicts_total Keys still in "
                    "flight or used for another request.\n"
                    "# TYPE cart_idempotency_conflicts_total counter\n"
                    "cart_idempotency_conflicts_total %uA\n",
                    metrics->replays, metrics->conflicts);

    return p;
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

    len = sizeof(fmt) + 4 * NGX_ATOMIC_T_LEN + 1024
          + NGX_HTTP_CART_OPS * (NGX_HTTP_CART_STATUSES * 96
                                 + (NGX_HTTP_CART_BUCKETS + 2) * 128);

    b = ngx_create_temp_buf(r->pool, len);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->last = ngx_sprintf(b->pos, fmt, ev->enqueued, ev->delivered,
                          ev->failed, ev->dropped);
    b->last = ngx_http_cart_status_requests(b->last, metrics);
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
