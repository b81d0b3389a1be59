/*
 * The harnesses' runtime (fuzz.h) and the stand-ins for the parts of nginx
 * and of the module that the files under test refer to but the harnesses
 * never reach: each aborts, so that reaching one is a crash to look at,
 * not a silent success.
 */

#include "fuzz.h"
#include "ngx_http_cart.h"
#include "ngx_http_cart_redis.h"
#include "ngx_http_cart_promo.h"
#include "ngx_http_cart_status.h"
#include "ngx_http_cart_cache.h"

#include <stdio.h>


ngx_log_t                   fuzz_log;

static ngx_cycle_t          fuzz_cycle;
static ngx_uint_t           fuzz_verbose;

/* nginx's globals that the compiled core files leave to others */
volatile ngx_cycle_t       *ngx_cycle = &fuzz_cycle;
ngx_str_t                   ngx_http_core_get_method = ngx_string("GET ");

/* the module as nginx would have registered it: context index 0 */
ngx_module_t                ngx_http_cart_module;


void
fuzz_init(void)
{
    char               *p;
    static ngx_uint_t   done;

    if (done) {
        return;
    }

    done = 1;

    p = getenv("FUZZ_LOG");
    fuzz_verbose = p == NULL ? 0 : ngx_strcmp(p, "debug") == 0 ? 2 : 1;

    fuzz_log.log_level = NGX_LOG_DEBUG | NGX_LOG_DEBUG_ALL;
    fuzz_cycle.log = &fuzz_log;

    ngx_pagesize = getpagesize();
    ngx_cacheline_size = NGX_CPU_CACHE_LINE;

    for (ngx_pagesize_shift = 0; (1U << ngx_pagesize_shift) < ngx_pagesize;
         ngx_pagesize_shift++)
    {
        /* void */
    }

    ngx_time_init();

    /* a fixed "now": what expires, and when, does not depend on the day */
    ((ngx_time_t *) ngx_cached_time)->sec = FUZZ_NOW;
    ((ngx_time_t *) ngx_cached_time)->msec = 0;
}


u_char *
fuzz_copy(ngx_pool_t *pool, const uint8_t *data, size_t size)
{
    u_char  *p;

    /* never 0 bytes: a pool returns NULL for nothing on some paths */
    p = ngx_pnalloc(pool, size ? size : 1);
    if (p == NULL) {
        abort();
    }

    if (size) {
        ngx_memcpy(p, data, size);
    }

    return p;
}


ngx_pool_t *
fuzz_pool(void)
{
    ngx_pool_t  *pool;

    pool = ngx_create_pool(1024, &fuzz_log);
    if (pool == NULL) {
        abort();
    }

    return pool;
}


ngx_http_request_t *
fuzz_request(ngx_pool_t *pool)
{
    ngx_connection_t     *c;
    ngx_http_request_t   *r;
    ngx_http_cart_ctx_t  *ctx;

    r = ngx_pcalloc(pool, sizeof(ngx_http_request_t));
    c = ngx_pcalloc(pool, sizeof(ngx_connection_t));
    ctx = ngx_pcalloc(pool, sizeof(ngx_http_cart_ctx_t));

    if (r == NULL || c == NULL || ctx == NULL) {
        abort();
    }

    c->log = &fuzz_log;
    c->pool = pool;

    r->connection = c;
    r->pool = pool;
    r->main = r;

    r->ctx = ngx_pcalloc(pool, sizeof(void *));
    if (r->ctx == NULL) {
        abort();
    }

    ngx_str_set(&ctx->cart_key, "cart:{user-fuzz}");
    ngx_str_set(&ctx->owner, "user-fuzz");
    ngx_http_set_ctx(r, ctx, ngx_http_cart_module);

    if (ngx_list_init(&r->headers_in.headers, pool, 4,
                      sizeof(ngx_table_elt_t))
        != NGX_OK
        || ngx_array_init(&r->headers_in.cookies, pool, 2,
                          sizeof(ngx_table_elt_t *))
           != NGX_OK)
    {
        abort();
    }

    return r;
}


size_t
fuzz_touch_bytes(const u_char *p, size_t n)
{
    size_t           i;
    volatile size_t  sum;

    sum = 0;

    for (i = 0; i < n; i++) {
        sum += p[i];
    }

    return sum;
}


/* the log: every message formatted (a bad format or argument is seen),
 * then dropped, or printed with FUZZ_LOG=1 */

static void
fuzz_log_vprint(ngx_uint_t level, ngx_err_t err, const char *fmt,
    va_list args)
{
    u_char  buf[NGX_MAX_ERROR_STR], *p, *last;

    last = buf + sizeof(buf);

    p = ngx_slprintf(buf, last, "[%ui] ", level);
    p = ngx_vslprintf(p, last, fmt, args);

    if (err) {
        p = ngx_slprintf(p, last, " (%d)", err);
    }

    if (fuzz_verbose > (level == NGX_LOG_DEBUG)) {
        fprintf(stderr, "%.*s\n", (int) (p - buf), buf);
    }
}


void ngx_cdecl
ngx_log_error_core(ngx_uint_t level, ngx_log_t *log, ngx_err_t err,
    const char *fmt, ...)
{
    va_list  args;

    va_start(args, fmt);
    fuzz_log_vprint(level, err, fmt, args);
    va_end(args);
}


void ngx_cdecl
ngx_conf_log_error(ngx_uint_t level, ngx_conf_t *cf, ngx_err_t err,
    const char *fmt, ...)
{
    va_list  args;

    va_start(args, fmt);
    fuzz_log_vprint(level, err, fmt, args);
    va_end(args);
}


/* never reached by the harnesses */

static void
fuzz_stub(const char *name)
{
    fprintf(stderr, "fuzz: %s() is a stub of fuzz/fuzz.c: not for the "
            "harnesses\n", name);
    abort();
}


ngx_int_t
ngx_conf_full_name(ngx_cycle_t *cycle, ngx_str_t *name, ngx_uint_t conf_prefix)
{
    fuzz_stub("ngx_conf_full_name");
    return NGX_ERROR;
}


ngx_http_variable_t *
ngx_http_add_variable(ngx_conf_t *cf, ngx_str_t *name, ngx_uint_t flags)
{
    fuzz_stub("ngx_http_add_variable");
    return NULL;
}


ngx_int_t
ngx_http_complex_value(ngx_http_request_t *r, ngx_http_complex_value_t *val,
    ngx_str_t *value)
{
    fuzz_stub("ngx_http_complex_value");
    return NGX_ERROR;
}


ngx_int_t
ngx_http_parse_unsafe_uri(ngx_http_request_t *r, ngx_str_t *uri,
    ngx_str_t *args, ngx_uint_t *flags)
{
    fuzz_stub("ngx_http_parse_unsafe_uri");
    return NGX_ERROR;
}


ngx_int_t
ngx_http_subrequest(ngx_http_request_t *r, ngx_str_t *uri, ngx_str_t *args,
    ngx_http_request_t **psr, ngx_http_post_subrequest_t *ps,
    ngx_uint_t flags)
{
    fuzz_stub("ngx_http_subrequest");
    return NGX_ERROR;
}


void
ngx_http_request_empty_handler(ngx_http_request_t *r)
{
    fuzz_stub("ngx_http_request_empty_handler");
}


ngx_int_t
ngx_http_send_header(ngx_http_request_t *r)
{
    fuzz_stub("ngx_http_send_header");
    return NGX_ERROR;
}


ngx_int_t
ngx_http_output_filter(ngx_http_request_t *r, ngx_chain_t *chain)
{
    fuzz_stub("ngx_http_output_filter");
    return NGX_ERROR;
}


ngx_int_t
ngx_http_cart_redis_command(ngx_http_request_t *r, ngx_str_t *key,
    int argc, const char **argv, const size_t *argvlen,
    ngx_http_cart_redis_handler_pt handler, void *data)
{
    fuzz_stub("ngx_http_cart_redis_command");
    return NGX_ERROR;
}


void
ngx_http_cart_promos_load(ngx_http_request_t *r, ngx_uint_t fresh,
    ngx_http_cart_promos_ref_t *ref)
{
    fuzz_stub("ngx_http_cart_promos_load");
}


ngx_http_cart_promos_t *
ngx_http_cart_promos_worker(void)
{
    fuzz_stub("ngx_http_cart_promos_worker");
    return NULL;
}


ngx_int_t
ngx_http_cart_redis_command_in(ngx_http_request_t *r, ngx_pool_t *pool,
    ngx_http_cleanup_t *cln, ngx_str_t *key, int argc, const char **argv,
    const size_t *argvlen, ngx_http_cart_redis_handler_pt handler, void *data)
{
    fuzz_stub("ngx_http_cart_redis_command_in");
    return NGX_ERROR;
}


/* no metrics zone: counters are skipped, as without cart_status */

ngx_http_cart_metrics_t *
ngx_http_cart_metrics(ngx_http_cart_main_conf_t *cmcf)
{
    return NULL;
}


void
ngx_http_cart_metrics_upstream(ngx_http_request_t *r, ngx_uint_t kind,
    ngx_int_t rc, ngx_int_t status, ngx_msec_t msec)
{
}


/* no lookup caches: every document is decoded, as without the directives */

ngx_int_t
ngx_http_cart_cache_get(ngx_http_request_t *r, ngx_pool_t *pool,
    ngx_uint_t kind, ngx_str_t *sku, ngx_str_t *country,
    ngx_str_t *postal_code, ngx_http_cart_facts_t *facts,
    ngx_http_cart_cache_hold_t **hold)
{
    return NGX_DECLINED;
}


void
ngx_http_cart_cache_put(ngx_http_request_t *r, ngx_uint_t kind,
    ngx_str_t *sku, ngx_str_t *country, ngx_str_t *postal_code,
    ngx_http_cart_facts_t *facts, ngx_http_cart_cache_hold_t *hold)
{
}


/* the wave's events and filters: linked in, never reached by a harness */

ngx_queue_t                      ngx_posted_events;
ngx_rbtree_t                     ngx_event_timer_rbtree;
ngx_module_t                     ngx_http_core_module;
ngx_http_output_body_filter_pt   ngx_http_top_body_filter;


ssize_t
ngx_read_file(ngx_file_t *file, u_char *buf, size_t size, off_t offset)
{
    fuzz_stub("ngx_read_file");
    return NGX_ERROR;
}


void
ngx_rbtree_insert(ngx_rbtree_t *tree, ngx_rbtree_node_t *node)
{
    fuzz_stub("ngx_rbtree_insert");
}


void
ngx_rbtree_delete(ngx_rbtree_t *tree, ngx_rbtree_node_t *node)
{
    fuzz_stub("ngx_rbtree_delete");
}


void
ngx_http_run_posted_requests(ngx_connection_t *c)
{
    fuzz_stub("ngx_http_run_posted_requests");
}


ngx_uint_t
ngx_hash_key(u_char *data, size_t len)
{
    fuzz_stub("ngx_hash_key");
    return 0;
}


ngx_chain_t *
ngx_alloc_chain_link(ngx_pool_t *pool)
{
    fuzz_stub("ngx_alloc_chain_link");
    return NULL;
}
