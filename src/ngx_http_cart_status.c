/*
 * cart_status: the module's counters in Prometheus text format.
 */

#include "ngx_http_cart_status.h"


static ngx_int_t ngx_http_cart_status_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static ngx_int_t ngx_http_cart_status_log(ngx_http_request_t *r);
static u_char *ngx_http_cart_status_requests(u_char *p,
    ngx_http_cart_metrics_t *metrics);
static void ngx_http_cart_status_outcome(ngx_shm_zone_t *zone,
    ngx_http_cart_outcome_t *outcomes, ngx_http_cart_ctx_t *ctx,
    ngx_uint_t status);
static ngx_uint_t ngx_http_cart_status_bucket(ngx_msec_t ms);
static ngx_uint_t ngx_http_cart_status_alive(ngx_http_cart_proc_metrics_t *pm);
static u_char *ngx_http_cart_status_histogram(u_char *p, const char *name,
    const char *label, ngx_str_t *value, ngx_atomic_t *buckets,
    ngx_atomic_uint_t msec);
static u_char *ngx_http_cart_status_outcomes(u_char *p, const char *name,
    ngx_http_cart_outcome_t *outcomes);
static u_char *ngx_http_cart_status_redis(u_char *p,
    ngx_http_cart_metrics_t *metrics);
static u_char *ngx_http_cart_status_more(u_char *p,
    ngx_http_cart_metrics_t *metrics);


ngx_http_cart_proc_metrics_t  *ngx_http_cart_proc_metrics;


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


static ngx_str_t  ngx_http_cart_upstream_names[] = {
    ngx_string("catalog"),
    ngx_string("inventory"),
    ngx_string("shipping"),
    ngx_string("reserve"),
    ngx_string("release"),
    ngx_string("other")
};


static ngx_str_t  ngx_http_cart_cache_names[] = {
    ngx_string("catalog"),
    ngx_string("inventory"),
    ngx_string("shipping")
};


static ngx_str_t  ngx_http_cart_stream_reasons[] = {
    ngx_string("client"),
    ngx_string("slow"),
    ngx_string("shutdown")
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
                                            ngx_align(
                                                sizeof(ngx_http_cart_metrics_t),
                                                ngx_pagesize)
                                            + 8 * ngx_pagesize,
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


/*
 * Gauges summed from per-process values, not moved up and down in one
 * shared number: a worker that crashes takes its contributions with it
 * (its respawn takes its slot and zeroes it; the scrape skips a dead
 * pid), and during a reload the old and the new workers have slots of
 * their own (nginx reuses a process slot only once its process was
 * reaped).
 */

void
ngx_http_cart_metrics_init_worker(ngx_http_cart_main_conf_t *cmcf)
{
    ngx_http_cart_metrics_t       *metrics;
    ngx_http_cart_proc_metrics_t  *pm;

    metrics = ngx_http_cart_metrics(cmcf);

    if (metrics == NULL || ngx_process_slot < 0
        || ngx_process_slot >= NGX_HTTP_CART_METRIC_PROCS)
    {
        ngx_http_cart_proc_metrics = NULL;
        return;
    }

    pm = &metrics->procs[ngx_process_slot];

    ngx_memzero(pm, sizeof(ngx_http_cart_proc_metrics_t));
    pm->pid = ngx_pid;

    ngx_http_cart_proc_metrics = pm;
}


void
ngx_http_cart_metrics_exit_worker(ngx_http_cart_main_conf_t *cmcf)
{
    ngx_slab_pool_t               *shpool;
    ngx_http_cart_proc_metrics_t  *pm;

    pm = ngx_http_cart_proc_metrics;
    if (pm == NULL) {
        return;
    }

    shpool = (ngx_slab_pool_t *) cmcf->status_zone->shm.addr;

    ngx_shmtx_lock(&shpool->mutex);
    ngx_memzero(pm, sizeof(ngx_http_cart_proc_metrics_t));
    ngx_shmtx_unlock(&shpool->mutex);

    ngx_http_cart_proc_metrics = NULL;
}


static ngx_uint_t
ngx_http_cart_status_alive(ngx_http_cart_proc_metrics_t *pm)
{
    if (pm->pid == 0) {
        return 0;
    }

    return kill((ngx_pid_t) pm->pid, 0) == 0 || ngx_errno != NGX_ESRCH;
}


/*
 * A node's label slot: the one of its address if a worker named it, else
 * a slot no live process names (its counters start again: it is another
 * series), else the shared last one. Rare (nodes are added at start and
 * on cluster changes), so a lock and a scan.
 */

ngx_int_t
ngx_http_cart_metrics_node(ngx_http_cart_main_conf_t *cmcf, ngx_str_t *host,
    ngx_uint_t port)
{
    u_char                         addr[NGX_HTTP_CART_METRIC_ADDR_LEN];
    size_t                         len;
    uint64_t                       used;
    ngx_int_t                      slot, free, never;
    ngx_uint_t                     i;
    ngx_slab_pool_t               *shpool;
    ngx_http_cart_metrics_t       *metrics;
    ngx_http_cart_node_metrics_t  *nm;

    metrics = ngx_http_cart_metrics(cmcf);
    if (metrics == NULL || ngx_http_cart_proc_metrics == NULL) {
        return NGX_ERROR;
    }

    if (host->len > NGX_INET6_ADDRSTRLEN) {
        return NGX_ERROR;
    }

    len = ngx_sprintf(addr, "%V:%ui", host, port) - addr;

    shpool = (ngx_slab_pool_t *) cmcf->status_zone->shm.addr;

    ngx_shmtx_lock(&shpool->mutex);

    used = 0;

    for (i = 0; i < NGX_HTTP_CART_METRIC_PROCS; i++) {
        if (ngx_http_cart_status_alive(&metrics->procs[i])) {
            used |= metrics->procs[i].nodes;
        }
    }

    slot = NGX_HTTP_CART_METRIC_NODES - 1;
    free = -1;
    never = -1;

    for (i = 0; i < NGX_HTTP_CART_METRIC_NODES - 1; i++) {
        nm = &metrics->nodes[i];

        if (nm->len == len && ngx_strncmp(nm->addr, addr, len) == 0) {
            break;
        }

        if (nm->len == 0) {
            if (never == -1) {
                never = i;
            }

        } else if (free == -1 && !(used & ((uint64_t) 1 << i))) {
            free = i;
        }
    }

    if (i < NGX_HTTP_CART_METRIC_NODES - 1) {
        slot = i;

    } else if (never != -1 || free != -1) {
        slot = (never != -1) ? never : free;
        nm = &metrics->nodes[slot];

        ngx_memzero(nm, sizeof(ngx_http_cart_node_metrics_t));
        ngx_memcpy(nm->addr, addr, len);
        nm->len = len;

    } else {
        nm = &metrics->nodes[slot];

        if (nm->len == 0) {
            nm->len = ngx_cpymem(nm->addr, "other", 5) - nm->addr;
        }
    }

    ngx_http_cart_proc_metrics->nodes |= (uint64_t) 1 << slot;

    ngx_shmtx_unlock(&shpool->mutex);

    return slot;
}


void
ngx_http_cart_metrics_node_free(ngx_http_cart_main_conf_t *cmcf,
    ngx_int_t slot)
{
    ngx_slab_pool_t               *shpool;
    ngx_http_cart_proc_metrics_t  *pm;

    pm = ngx_http_cart_proc_metrics;

    if (pm == NULL || slot < 0 || slot == NGX_HTTP_CART_METRIC_NODES - 1) {
        return;
    }

    shpool = (ngx_slab_pool_t *) cmcf->status_zone->shm.addr;

    ngx_shmtx_lock(&shpool->mutex);

    pm->nodes &= ~((uint64_t) 1 << slot);
    pm->up[slot] = 0;
    pm->pending[slot] = 0;

    ngx_shmtx_unlock(&shpool->mutex);
}


void
ngx_http_cart_metrics_upstream(ngx_http_request_t *r, ngx_uint_t kind,
    ngx_int_t rc, ngx_int_t status, ngx_msec_t msec)
{
    ngx_http_cart_metrics_t           *metrics;
    ngx_http_cart_upstream_metrics_t  *um;

    metrics = ngx_http_cart_metrics(
                  ngx_http_get_module_main_conf(r, ngx_http_cart_module));
    if (metrics == NULL || kind >= NGX_HTTP_CART_UPS) {
        return;
    }

    um = &metrics->upstreams[kind];

    /* rc is nginx's own: 504 when its timeout or cart_lookup_timeout
     * ended the subrequest, whatever the upstream might have answered */

    if (rc == NGX_HTTP_GATEWAY_TIME_OUT) {
        (void) ngx_atomic_fetch_add(&um->timedout, 1);

    } else if (status == 0 || status >= NGX_HTTP_INTERNAL_SERVER_ERROR) {
        (void) ngx_atomic_fetch_add(&um->failed, 1);
    }

    (void) ngx_atomic_fetch_add(&um->buckets[ngx_http_cart_status_bucket(msec)],
                                1);
    (void) ngx_atomic_fetch_add(&um->msec, msec);
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
    ngx_http_cart_main_conf_t   *cmcf;
    ngx_http_cart_op_metrics_t  *m;

    if (r != r->main) {
        return NGX_OK;
    }

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_cart_module);

    if (lcf == NULL || (!lcf->api && !lcf->admin)) {
        return NGX_OK;
    }

    cmcf = ngx_http_get_module_main_conf(r, ngx_http_cart_module);

    metrics = ngx_http_cart_metrics(cmcf);
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

    (void) ngx_atomic_fetch_add(&m->buckets[ngx_http_cart_status_bucket(ms)],
                                1);
    (void) ngx_atomic_fetch_add(&m->msec, ms);

    if (op == NGX_HTTP_CART_OP_MERGE) {
        ngx_http_cart_status_outcome(cmcf->status_zone, metrics->merges, ctx,
                                     status);

    } else if (op == NGX_HTTP_CART_OP_CHECKOUT) {
        ngx_http_cart_status_outcome(cmcf->status_zone, metrics->checkouts,
                                     ctx, status);
    }

    return NGX_OK;
}


static ngx_uint_t
ngx_http_cart_status_bucket(ngx_msec_t ms)
{
    ngx_uint_t  i;

    for (i = 0; i < NGX_HTTP_CART_BUCKETS - 1; i++) {
        if (ms <= ngx_http_cart_bounds[i]) {
            break;
        }
    }

    return i;
}


/*
 * "ok", "replayed", the error code answered, or "error" (nginx's own
 * answer): the codes are the module's constants, so the set is bounded;
 * a name is written once, under the zone's lock, before its length
 * makes it visible to the lock-free readers.
 */

static void
ngx_http_cart_status_outcome(ngx_shm_zone_t *zone,
    ngx_http_cart_outcome_t *outcomes, ngx_http_cart_ctx_t *ctx,
    ngx_uint_t status)
{
    size_t                    len;
    ngx_uint_t                i;
    const char               *name;
    ngx_slab_pool_t          *shpool;
    ngx_http_cart_outcome_t  *o;

    if (ctx && ctx->replayed) {
        name = "replayed";

    } else if (status >= 200 && status < 300) {
        name = "ok";

    } else if (ctx && ctx->code) {
        name = ctx->code;

    } else {
        name = "error";
    }

    len = ngx_min(ngx_strlen(name), sizeof(outcomes->name));

    for (i = 0; i < NGX_HTTP_CART_OUTCOMES; i++) {
        o = &outcomes[i];

        if (o->len == 0) {
            break;
        }

        if (o->len == len && ngx_strncmp(o->name, name, len) == 0) {
            (void) ngx_atomic_fetch_add(&o->n, 1);
            return;
        }
    }

    shpool = (ngx_slab_pool_t *) zone->shm.addr;

    ngx_shmtx_lock(&shpool->mutex);

    for (i = 0; i < NGX_HTTP_CART_OUTCOMES; i++) {
        o = &outcomes[i];

        if (o->len == 0) {
            ngx_memcpy(o->name, name, len);
            ngx_memory_barrier();
            o->len = len;
        }

        if (o->len == len && ngx_strncmp(o->name, name, len) == 0) {
            (void) ngx_atomic_fetch_add(&o->n, 1);
            break;
        }
    }

    /* a full table: a code the module does not have, dropped */

    ngx_shmtx_unlock(&shpool->mutex);
}


/* cart_requests_total and cart_request_duration_seconds, nonzero only */

static u_char *
ngx_http_cart_status_requests(u_char *p, ngx_http_cart_metrics_t *metrics)
{
    ngx_uint_t                   op, i, status;
    ngx_atomic_uint_t            n;
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
        p = ngx_http_cart_status_histogram(p, "cart_request_duration_seconds",
                                           "op", &ngx_http_cart_op_names[op],
                                           m->buckets, m->msec);
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


/* the buckets, sum and count of one series; nothing when it is empty */

static u_char *
ngx_http_cart_status_histogram(u_char *p, const char *name,
    const char *label, ngx_str_t *value, ngx_atomic_t *buckets,
    ngx_atomic_uint_t msec)
{
    ngx_uint_t         i;
    ngx_atomic_uint_t  n, total;

    total = 0;
    for (i = 0; i < NGX_HTTP_CART_BUCKETS; i++) {
        total += buckets[i];
    }

    if (total == 0) {
        return p;
    }

    n = 0;

    for (i = 0; i < NGX_HTTP_CART_BUCKETS; i++) {
        n += buckets[i];

        if (i < NGX_HTTP_CART_BUCKETS - 1) {
            p = ngx_sprintf(p, "%s_bucket{%s=\"%V\",le=\"%ui.%03ui\"} %uA\n",
                            name, label, value,
                            ngx_http_cart_bounds[i] / 1000,
                            ngx_http_cart_bounds[i] % 1000, n);
        } else {
            p = ngx_sprintf(p, "%s_bucket{%s=\"%V\",le=\"+Inf\"} %uA\n",
                            name, label, value, n);
        }
    }

    return ngx_sprintf(p, "%s_sum{%s=\"%V\"} %uA.%03uA\n"
                       "%s_count{%s=\"%V\"} %uA\n",
                       name, label, value, msec / 1000, msec % 1000,
                       name, label, value, total);
}


static u_char *
ngx_http_cart_status_outcomes(u_char *p, const char *name,
    ngx_http_cart_outcome_t *outcomes)
{
    ngx_uint_t  i;

    for (i = 0; i < NGX_HTTP_CART_OUTCOMES && outcomes[i].len; i++) {
        p = ngx_sprintf(p, "%s{outcome=\"%*s\"} %uA\n", name,
                        (size_t) outcomes[i].len, outcomes[i].name,
                        outcomes[i].n);
    }

    return p;
}


/* per node: the counters, and the gauges summed over the live processes
 * that name it; each family's samples in one group */

static u_char *
ngx_http_cart_status_redis(u_char *p, ngx_http_cart_metrics_t *metrics)
{
    uint64_t                       used, bit;
    ngx_uint_t                     i, k, f;
    ngx_atomic_int_t               v;
    ngx_http_cart_node_metrics_t  *nm;
    ngx_http_cart_proc_metrics_t  *pm;
    ngx_uint_t                     alive[NGX_HTTP_CART_METRIC_PROCS];
    ngx_atomic_int_t               up[NGX_HTTP_CART_METRIC_NODES];
    ngx_atomic_int_t               pending[NGX_HTTP_CART_METRIC_NODES];

    static const char  *heads[] = {
        "# HELP cart_redis_connections Connections of the pools ready for "
        "commands, per Redis node.\n"
        "# TYPE cart_redis_connections gauge\n",
        "# HELP cart_redis_pending Commands sent and not answered yet, or "
        "waiting for a connection, per Redis node.\n"
        "# TYPE cart_redis_pending gauge\n",
        "# HELP cart_redis_reconnects_total Reconnection attempts after a "
        "connection failed or was lost.\n"
        "# TYPE cart_redis_reconnects_total counter\n",
        "# HELP cart_redis_timeouts_total Commands given up after "
        "cart_redis_timeout.\n"
        "# TYPE cart_redis_timeouts_total counter\n",
        "# HELP cart_redis_redirections_total MOVED and ASK answers "
        "followed, by the node that answered.\n"
        "# TYPE cart_redis_redirections_total counter\n"
    };

    used = 0;

    for (k = 0; k < NGX_HTTP_CART_METRIC_PROCS; k++) {
        alive[k] = ngx_http_cart_status_alive(&metrics->procs[k]);
        if (alive[k]) {
            used |= metrics->procs[k].nodes;
        }
    }

    for (i = 0; i < NGX_HTTP_CART_METRIC_NODES; i++) {
        bit = (uint64_t) 1 << i;
        up[i] = 0;
        pending[i] = 0;

        for (k = 0; k < NGX_HTTP_CART_METRIC_PROCS; k++) {
            pm = &metrics->procs[k];

            if (alive[k] && (pm->nodes & bit)) {
                up[i] += (ngx_atomic_int_t) pm->up[i];
                pending[i] += (ngx_atomic_int_t) pm->pending[i];
            }
        }
    }

    for (f = 0; f < 5; f++) {
        p = ngx_cpymem(p, heads[f], ngx_strlen(heads[f]));

        for (i = 0; i < NGX_HTTP_CART_METRIC_NODES; i++) {
            nm = &metrics->nodes[i];

            if (!(used & ((uint64_t) 1 << i)) || nm->len == 0) {
                continue;
            }

            switch (f) {

            case 0:
            case 1:
                v = (f == 0) ? up[i] : pending[i];
                p = ngx_sprintf(p, "%s{node=\"%*s\"} %A\n",
                                f == 0 ? "cart_redis_connections"
                                       : "cart_redis_pending",
                                (size_t) nm->len, nm->addr, ngx_max(v, 0));
                break;

            case 2:
            case 3:
                p = ngx_sprintf(p, "%s{node=\"%*s\"} %uA\n",
                                f == 2 ? "cart_redis_reconnects_total"
                                       : "cart_redis_timeouts_total",
                                (size_t) nm->len, nm->addr,
                                f == 2 ? nm->reconnects : nm->timeouts);
                break;

            default:
                p = ngx_sprintf(p, "cart_redis_redirections_total"
                                "{node=\"%*s\",type=\"moved\"} %uA\n"
                                "cart_redis_redirections_total"
                                "{node=\"%*s\",type=\"ask\"} %uA\n",
                                (size_t) nm->len, nm->addr, nm->moved,
                                (size_t) nm->len, nm->addr, nm->asked);
            }
        }
    }

    return p;
}


/* subrequests, caches, streams, merges, checkouts, the Kafka queue */

static u_char *
ngx_http_cart_status_more(u_char *p, ngx_http_cart_metrics_t *metrics)
{
    ngx_uint_t                         i, k;
    ngx_atomic_int_t                   streams, queue;
    ngx_http_cart_proc_metrics_t      *pm;
    ngx_http_cart_upstream_metrics_t  *um;

    static const char  *heads[] = {
        "# HELP cart_subrequests_total Subrequests started, per upstream "
        "kind.\n"
        "# TYPE cart_subrequests_total counter\n",
        "# HELP cart_subrequests_failed_total Subrequests with no answer or "
        "a 5xx one (timeouts apart).\n"
        "# TYPE cart_subrequests_failed_total counter\n",
        "# HELP cart_subrequests_timeouts_total Subrequests ended by a proxy "
        "timeout or cart_lookup_timeout.\n"
        "# TYPE cart_subrequests_timeouts_total counter\n"
    };

    static const char  *names[] = {
        "cart_subrequests_total",
        "cart_subrequests_failed_total",
        "cart_subrequests_timeouts_total"
    };

    for (k = 0; k < 3; k++) {
        p = ngx_cpymem(p, heads[k], ngx_strlen(heads[k]));

        for (i = 0; i < NGX_HTTP_CART_UPS; i++) {
            um = &metrics->upstreams[i];

            if (um->sent == 0) {
                continue;
            }

            p = ngx_sprintf(p, "%s{kind=\"%V\"} %uA\n", names[k],
                            &ngx_http_cart_upstream_names[i],
                            k == 0 ? um->sent
                                   : k == 1 ? um->failed : um->timedout);
        }
    }

    p = ngx_sprintf(p, "# HELP cart_subrequest_duration_seconds Subrequest "
                    "latency per upstream kind.\n"
                    "# TYPE cart_subrequest_duration_seconds histogram\n");

    for (i = 0; i < NGX_HTTP_CART_UPS; i++) {
        um = &metrics->upstreams[i];
        p = ngx_http_cart_status_histogram(p,
                                           "cart_subrequest_duration_seconds",
                                           "kind",
                                           &ngx_http_cart_upstream_names[i],
                                           um->buckets, um->msec);
    }

    p = ngx_sprintf(p, "# HELP cart_cache_lookups_total Lookup cache "
                    "answers per kind: fresh (hit), stale served, or asked "
                    "of the upstream (miss).\n"
                    "# TYPE cart_cache_lookups_total counter\n");

    for (i = 0; i < NGX_HTTP_CART_CACHE_KINDS; i++) {
        p = ngx_sprintf(p, "cart_cache_lookups_total{kind=\"%V\","
                        "outcome=\"hit\"} %uA\n"
                        "cart_cache_lookups_total{kind=\"%V\","
                        "outcome=\"miss\"} %uA\n"
                        "cart_cache_lookups_total{kind=\"%V\","
                        "outcome=\"stale\"} %uA\n",
                        &ngx_http_cart_cache_names[i],
                        metrics->cache[i][NGX_HTTP_CART_CACHE_HIT],
                        &ngx_http_cart_cache_names[i],
                        metrics->cache[i][NGX_HTTP_CART_CACHE_MISS],
                        &ngx_http_cart_cache_names[i],
                        metrics->cache[i][NGX_HTTP_CART_CACHE_STALE]);
    }

    streams = 0;
    queue = 0;

    for (k = 0; k < NGX_HTTP_CART_METRIC_PROCS; k++) {
        pm = &metrics->procs[k];

        if (ngx_http_cart_status_alive(pm)) {
            streams += (ngx_atomic_int_t) pm->streams;
            queue += (ngx_atomic_int_t) pm->kafka_queue;
        }
    }

    p = ngx_sprintf(p, "# HELP cart_streams_open GET /stream clients "
                    "connected.\n"
                    "# TYPE cart_streams_open gauge\n"
                    "cart_streams_open %A\n"
                    "# HELP cart_stream_events_total Events written to "
                    "stream clients.\n"
                    "# TYPE cart_stream_events_total counter\n"
                    "cart_stream_events_total %uA\n"
                    "# HELP cart_stream_coalesced_total States a lagging "
                    "client skipped (it got a newer one).\n"
                    "# TYPE cart_stream_coalesced_total counter\n"
                    "cart_stream_coalesced_total %uA\n"
                    "# HELP cart_streams_closed_total Streams ended, by "
                    "reason.\n"
                    "# TYPE cart_streams_closed_total counter\n",
                    ngx_max(streams, 0), metrics->stream_events,
                    metrics->stream_coalesced);

    for (i = 0; i < NGX_HTTP_CART_STREAM_REASONS; i++) {
        p = ngx_sprintf(p, "cart_streams_closed_total{reason=\"%V\"} %uA\n",
                        &ngx_http_cart_stream_reasons[i],
                        metrics->stream_closed[i]);
    }

    p = ngx_sprintf(p, "# HELP cart_merges_total POST /merge by outcome: ok, "
                    "replayed, or the error code answered.\n"
                    "# TYPE cart_merges_total counter\n");
    p = ngx_http_cart_status_outcomes(p, "cart_merges_total",
                                      metrics->merges);

    p = ngx_sprintf(p, "# HELP cart_checkouts_total POST /checkout by "
                    "outcome: ok, replayed, or the error code answered.\n"
                    "# TYPE cart_checkouts_total counter\n");
    p = ngx_http_cart_status_outcomes(p, "cart_checkouts_total",
                                      metrics->checkouts);

    return ngx_sprintf(p, "# HELP cart_kafka_queue Events in the producers' "
                       "queues, not yet acknowledged by the brokers.\n"
                       "# TYPE cart_kafka_queue gauge\n"
                       "cart_kafka_queue %A\n", ngx_max(queue, 0));
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

    len = sizeof(fmt) + 4 * NGX_ATOMIC_T_LEN + 8192
          + NGX_HTTP_CART_OPS * (NGX_HTTP_CART_STATUSES * 96
                                 + (NGX_HTTP_CART_BUCKETS + 2) * 128)
          + NGX_HTTP_CART_UPS * (NGX_HTTP_CART_BUCKETS + 5) * 128
          + NGX_HTTP_CART_METRIC_NODES * 6 * 128
          + 2 * NGX_HTTP_CART_OUTCOMES * 128;

    b = ngx_create_temp_buf(r->pool, len);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->last = ngx_sprintf(b->pos, fmt, ev->enqueued, ev->delivered,
                          ev->failed, ev->dropped);
    b->last = ngx_http_cart_status_requests(b->last, metrics);
    b->last = ngx_http_cart_status_redis(b->last, metrics);
    b->last = ngx_http_cart_status_more(b->last, metrics);
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
