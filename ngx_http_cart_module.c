/*
 * ngx_http_cart_module: shopping carts served by nginx, stored in Redis.
 * Directives, configuration and the worker life cycle; requests start in
 * src/ngx_http_cart_handler.c.
 */

#include "ngx_http_cart.h"
#include "ngx_http_cart_handler.h"
#include "ngx_http_cart_cache.h"
#include "ngx_http_cart_errors.h"
#include "ngx_http_cart_identity.h"
#include "ngx_http_cart_promo.h"
#include "ngx_http_cart_events.h"
#include "ngx_http_cart_kafka.h"
#include "ngx_http_cart_status.h"
#include "ngx_http_cart_redis.h"
#include "ngx_http_cart_scripts.h"
#include "ngx_http_cart_stream.h"
#include "ngx_http_cart_subrequest.h"


static ngx_int_t ngx_http_cart_preconfiguration(ngx_conf_t *cf);
static ngx_int_t ngx_http_cart_postconfiguration(ngx_conf_t *cf);
static void *ngx_http_cart_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_cart_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_http_cart_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_cart_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static char *ngx_http_cart_redis(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_cart_api(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_cart_currency(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_cart_reserve(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_cart_kafka_property(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_cart_status(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_cart_subscriber_ping(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static ngx_int_t ngx_http_cart_init_process(ngx_cycle_t *cycle);
static void ngx_http_cart_exit_process(ngx_cycle_t *cycle);


static ngx_conf_num_bounds_t  ngx_http_cart_connections_bounds = {
    ngx_conf_check_num_bounds, 1, 64
};

static ngx_conf_num_bounds_t  ngx_http_cart_pending_bounds = {
    ngx_conf_check_num_bounds, 1, 1000000
};

/* a view of N lines is up to 3N lookups: keep N sane */
static ngx_conf_num_bounds_t  ngx_http_cart_lines_bounds = {
    ngx_conf_check_num_bounds, 1, 1000
};

static ngx_conf_num_bounds_t  ngx_http_cart_subrequests_bounds = {
    ngx_conf_check_num_bounds, 1, 1000
};

static ngx_conf_num_bounds_t  ngx_http_cart_quantity_bounds = {
    ngx_conf_check_num_bounds, 1, NGX_HTTP_CART_MAX_QUANTITY
};

static ngx_conf_num_bounds_t  ngx_http_cart_streams_bounds = {
    ngx_conf_check_num_bounds, 0, 1000000
};

static ngx_conf_num_bounds_t  ngx_http_cart_stream_lines_bounds = {
    ngx_conf_check_num_bounds, 0, 1000
};


static ngx_conf_enum_t  ngx_http_cart_merge_strategies[] = {
    { ngx_string("max"), NGX_HTTP_CART_MERGE_MAX },
    { ngx_string("sum"), NGX_HTTP_CART_MERGE_SUM },
    { ngx_string("guest"), NGX_HTTP_CART_MERGE_GUEST },
    { ngx_null_string, 0 }
};


static ngx_command_t  ngx_http_cart_commands[] = {

    { ngx_string("cart_redis"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_cart_redis,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("cart_redis_cluster"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_cart_main_conf_t, redis_cluster),
      NULL },

    { ngx_string("cart_redis_connections"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_cart_main_conf_t, redis_connections),
      &ngx_http_cart_connections_bounds },

    { ngx_string("cart_redis_max_pending"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_cart_main_conf_t, redis_max_pending),
      &ngx_http_cart_pending_bounds },

    { ngx_string("cart_redis_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_cart_main_conf_t, redis_timeout),
      NULL },

    { ngx_string("cart_ttl"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_cart_main_conf_t, ttl),
      NULL },

    { ngx_string("cart_idempotency_ttl"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_cart_main_conf_t, idempotency_ttl),
      NULL },

    { ngx_string("cart_max_lines"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_cart_main_conf_t, max_lines),
      &ngx_http_cart_lines_bounds },

    { ngx_string("cart_max_quantity"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_cart_main_conf_t, max_quantity),
      &ngx_http_cart_quantity_bounds },

    { ngx_string("cart_guest_ttl"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_cart_main_conf_t, guest_ttl),
      NULL },

    { ngx_string("cart_saved_ttl"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_cart_main_conf_t, saved_ttl),
      NULL },

    { ngx_string("cart_share_ttl"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_cart_main_conf_t, share_ttl),
      NULL },

    { ngx_string("cart_merge_strategy"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_cart_main_conf_t, merge_strategy),
      &ngx_http_cart_merge_strategies },

    { ngx_string("cart_currency"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_cart_currency,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("cart_kafka_brokers"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_cart_main_conf_t, kafka_brokers),
      NULL },

    { ngx_string("cart_kafka_topic"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_cart_main_conf_t, kafka_topic),
      NULL },

    { ngx_string("cart_kafka_property"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE2,
      ngx_http_cart_kafka_property,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("cart_stream_max"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_cart_main_conf_t, stream_max),
      &ngx_http_cart_streams_bounds },

    { ngx_string("cart_stream_heartbeat"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_cart_main_conf_t, stream_heartbeat),
      NULL },

    { ngx_string("cart_stream_lines"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_cart_loc_conf_t, stream_lines),
      &ngx_http_cart_stream_lines_bounds },

    { ngx_string("cart_subscriber_ping"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE12,
      ngx_http_cart_subscriber_ping,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("cart_api"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_cart_api,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_cart_loc_conf_t, api),
      NULL },

    { ngx_string("cart_status"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_cart_status,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("cart_user"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_cart_loc_conf_t, user),
      NULL },

    { ngx_string("cart_catalog"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_cart_loc_conf_t, catalog),
      NULL },

    { ngx_string("cart_jwt_key"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1234,
      ngx_http_cart_jwt_key_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_cart_loc_conf_t, jwt),
      NULL },

    { ngx_string("cart_guest_cookie"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_cart_guest_cookie_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_cart_loc_conf_t, guest_cookie),
      NULL },

    { ngx_string("cart_share_url"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_cart_loc_conf_t, share_url),
      NULL },

    { ngx_string("cart_subrequests"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_cart_loc_conf_t, subrequests),
      &ngx_http_cart_subrequests_bounds },

    { ngx_string("cart_lookup_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_cart_loc_conf_t, lookup_timeout),
      NULL },

    { ngx_string("cart_inventory"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_cart_loc_conf_t, inventory),
      NULL },

    { ngx_string("cart_inventory_reserve"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_cart_reserve,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_cart_loc_conf_t, reserve),
      NULL },

    { ngx_string("cart_shipping"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_cart_loc_conf_t, shipping),
      NULL },

    { ngx_string("cart_catalog_cache"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE123,
      ngx_http_cart_cache_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_cart_loc_conf_t, catalog_cache),
      NULL },

    { ngx_string("cart_inventory_cache"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE123,
      ngx_http_cart_cache_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_cart_loc_conf_t, inventory_cache),
      NULL },

    { ngx_string("cart_shipping_cache"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE123,
      ngx_http_cart_cache_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_cart_loc_conf_t, shipping_cache),
      NULL },

    { ngx_string("cart_admin"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_cart_api,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_cart_loc_conf_t, admin),
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_cart_module_ctx = {
    ngx_http_cart_preconfiguration,        /* preconfiguration */
    ngx_http_cart_postconfiguration,       /* postconfiguration */

    ngx_http_cart_create_main_conf,        /* create main configuration */
    ngx_http_cart_init_main_conf,          /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_cart_create_loc_conf,         /* create location configuration */
    ngx_http_cart_merge_loc_conf           /* merge location configuration */
};


ngx_module_t  ngx_http_cart_module = {
    NGX_MODULE_V1,
    &ngx_http_cart_module_ctx,             /* module context */
    ngx_http_cart_commands,                /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_cart_init_process,            /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_cart_exit_process,            /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_int_t
ngx_http_cart_preconfiguration(ngx_conf_t *cf)
{
    return ngx_http_cart_subrequest_add_variables(cf);
}


static ngx_int_t
ngx_http_cart_postconfiguration(ngx_conf_t *cf)
{
    ngx_uint_t                        i;
    ngx_http_cart_main_conf_t        *cmcf;
    ngx_http_cart_redis_node_conf_t  *node;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_cart_module);

    if (cmcf->used && cmcf->redis_nodes == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"cart_api\" requires \"cart_redis\" in the "
                           "http block");
        return NGX_ERROR;
    }

    if (cmcf->redis_cluster && cmcf->redis_nodes) {
        node = cmcf->redis_nodes->elts;

        for (i = 0; i < cmcf->redis_nodes->nelts; i++) {
            if (node[i].db) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "Redis URL \"%V\" selects a database: "
                                   "Redis Cluster has only database 0",
                                   &node[i].url);
                return NGX_ERROR;
            }
        }
    }

    if (cmcf->used || cmcf->status) {
        if (ngx_http_cart_status_zone(cf, cmcf) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    if (ngx_http_cart_subrequest_init(cf) != NGX_OK
        || ngx_http_cart_errors_init(cf) != NGX_OK
        || (cmcf->used && ngx_http_cart_status_init(cf) != NGX_OK))
    {
        return NGX_ERROR;
    }

    return ngx_http_cart_scripts_init(cf);
}


static void *
ngx_http_cart_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_cart_main_conf_t  *cmcf;

    cmcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_cart_main_conf_t));
    if (cmcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     cmcf->redis_nodes = NULL;
     *     cmcf->currency = { 0, NULL };
     *     cmcf->redis = NULL;
     */

    cmcf->redis_cluster = NGX_CONF_UNSET;
    cmcf->redis_connections = NGX_CONF_UNSET_UINT;
    cmcf->redis_max_pending = NGX_CONF_UNSET_UINT;
    cmcf->redis_timeout = NGX_CONF_UNSET_MSEC;
    cmcf->ttl = NGX_CONF_UNSET;
    cmcf->idempotency_ttl = NGX_CONF_UNSET;
    cmcf->max_lines = NGX_CONF_UNSET_UINT;
    cmcf->max_quantity = NGX_CONF_UNSET_UINT;
    cmcf->guest_ttl = NGX_CONF_UNSET;
    cmcf->saved_ttl = NGX_CONF_UNSET;
    cmcf->share_ttl = NGX_CONF_UNSET;
    cmcf->merge_strategy = NGX_CONF_UNSET_UINT;
    cmcf->stream_max = NGX_CONF_UNSET_UINT;
    cmcf->stream_heartbeat = NGX_CONF_UNSET_MSEC;
    cmcf->subscriber_ping = NGX_CONF_UNSET_MSEC;
    cmcf->subscriber_ping_timeout = NGX_CONF_UNSET_MSEC;

    return cmcf;
}


static char *
ngx_http_cart_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_cart_main_conf_t  *cmcf = conf;

    ngx_conf_init_value(cmcf->redis_cluster, 0);
    ngx_conf_init_uint_value(cmcf->redis_connections, 2);
    ngx_conf_init_uint_value(cmcf->redis_max_pending, 1024);
    ngx_conf_init_msec_value(cmcf->redis_timeout, 100);
    ngx_conf_init_value(cmcf->ttl, 30 * 86400);
    ngx_conf_init_value(cmcf->idempotency_ttl, 86400);
    ngx_conf_init_uint_value(cmcf->max_lines, 100);
    ngx_conf_init_uint_value(cmcf->max_quantity, 99);
    ngx_conf_init_value(cmcf->guest_ttl, 86400);
    ngx_conf_init_value(cmcf->saved_ttl, 90 * 86400);
    ngx_conf_init_value(cmcf->share_ttl, 7 * 86400);
    ngx_conf_init_uint_value(cmcf->merge_strategy, NGX_HTTP_CART_MERGE_MAX);
    ngx_conf_init_uint_value(cmcf->stream_max, 512);
    ngx_conf_init_msec_value(cmcf->stream_heartbeat, 20000);
    ngx_conf_init_msec_value(cmcf->subscriber_ping, 5000);
    ngx_conf_init_msec_value(cmcf->subscriber_ping_timeout, 3000);

    if ((uint64_t) cmcf->max_lines * cmcf->max_quantity
        > NGX_HTTP_CART_MAX_UNITS)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"cart_max_lines\" %ui x \"cart_max_quantity\" "
                           "%ui is over %d units: a cart's total could "
                           "overflow", cmcf->max_lines, cmcf->max_quantity,
                           NGX_HTTP_CART_MAX_UNITS);
        return NGX_CONF_ERROR;
    }

    /* the guest cookie's Max-Age unless its max_age= says otherwise */
    if (cmcf->guest_ttl > NGX_HTTP_CART_MAX_COOKIE_AGE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"cart_guest_ttl\" must be at most 400d");
        return NGX_CONF_ERROR;
    }

    if (cmcf->stream_heartbeat < 100) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"cart_stream_heartbeat\" must be at least 100ms");
        return NGX_CONF_ERROR;
    }

    if (cmcf->currency.data == NULL) {
        ngx_str_set(&cmcf->currency, "USD");
    }

    /* the limits go to the write scripts as text: format them once here */

    cmcf->max_lines_arg.data = ngx_pnalloc(cf->pool, 2 * NGX_INT_T_LEN);
    if (cmcf->max_lines_arg.data == NULL) {
        return NGX_CONF_ERROR;
    }

    cmcf->max_lines_arg.len = ngx_sprintf(cmcf->max_lines_arg.data, "%ui",
                                          cmcf->max_lines)
                              - cmcf->max_lines_arg.data;

    cmcf->max_quantity_arg.data = cmcf->max_lines_arg.data + NGX_INT_T_LEN;
    cmcf->max_quantity_arg.len = ngx_sprintf(cmcf->max_quantity_arg.data,
                                             "%ui", cmcf->max_quantity)
                                 - cmcf->max_quantity_arg.data;

    if (cmcf->kafka_topic.data == NULL) {
        ngx_str_set(&cmcf->kafka_topic, "cart-events");
    }

    return NGX_CONF_OK;
}


static void *
ngx_http_cart_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_cart_loc_conf_t  *lcf;

    lcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_cart_loc_conf_t));
    if (lcf == NULL) {
        return NULL;
    }

    lcf->api = NGX_CONF_UNSET;
    lcf->user = NGX_CONF_UNSET_PTR;
    lcf->catalog = NGX_CONF_UNSET_PTR;
    lcf->jwt = NGX_CONF_UNSET_PTR;
    lcf->guest_cookie = NGX_CONF_UNSET_PTR;
    lcf->inventory = NGX_CONF_UNSET_PTR;
    lcf->reserve = NGX_CONF_UNSET_PTR;
    lcf->shipping = NGX_CONF_UNSET_PTR;
    lcf->share_url = NGX_CONF_UNSET_PTR;
    lcf->subrequests = NGX_CONF_UNSET_UINT;
    lcf->lookup_timeout = NGX_CONF_UNSET_MSEC;
    lcf->admin = NGX_CONF_UNSET;
    lcf->catalog_cache = NGX_CONF_UNSET_PTR;
    lcf->inventory_cache = NGX_CONF_UNSET_PTR;
    lcf->shipping_cache = NGX_CONF_UNSET_PTR;
    lcf->stream_lines = NGX_CONF_UNSET_UINT;

    return lcf;
}


static char *
ngx_http_cart_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_cart_loc_conf_t  *prev = parent;
    ngx_http_cart_loc_conf_t  *conf = child;

    ngx_conf_merge_value(conf->api, prev->api, 0);
    ngx_conf_merge_ptr_value(conf->user, prev->user, NULL);
    ngx_conf_merge_ptr_value(conf->catalog, prev->catalog, NULL);
    ngx_conf_merge_ptr_value(conf->jwt, prev->jwt, NULL);
    ngx_conf_merge_ptr_value(conf->guest_cookie, prev->guest_cookie, NULL);
    ngx_conf_merge_ptr_value(conf->inventory, prev->inventory, NULL);
    ngx_conf_merge_ptr_value(conf->reserve, prev->reserve, NULL);
    ngx_conf_merge_ptr_value(conf->shipping, prev->shipping, NULL);
    ngx_conf_merge_ptr_value(conf->share_url, prev->share_url, NULL);
    ngx_conf_merge_uint_value(conf->subrequests, prev->subrequests, 32);
    ngx_conf_merge_msec_value(conf->lookup_timeout, prev->lookup_timeout,
                              5000);
    ngx_conf_merge_value(conf->admin, prev->admin, 0);
    ngx_conf_merge_ptr_value(conf->catalog_cache, prev->catalog_cache, NULL);
    ngx_conf_merge_ptr_value(conf->inventory_cache, prev->inventory_cache,
                             NULL);
    ngx_conf_merge_ptr_value(conf->shipping_cache, prev->shipping_cache,
                             NULL);
    ngx_conf_merge_uint_value(conf->stream_lines, prev->stream_lines, 20);

    return NGX_CONF_OK;
}


/* cart_redis URL...: several URLs are the seed nodes of one deployment */

static char *
ngx_http_cart_redis(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_cart_main_conf_t  *cmcf = conf;

    ngx_str_t                        *value;
    ngx_uint_t                        i;
    ngx_http_cart_redis_node_conf_t  *node;

    if (cmcf->redis_nodes) {
        return "is duplicate";
    }

    cmcf->redis_nodes = ngx_array_create(cf->pool, cf->args->nelts - 1,
                                     sizeof(ngx_http_cart_redis_node_conf_t));
    if (cmcf->redis_nodes == NULL) {
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {
        node = ngx_array_push(cmcf->redis_nodes);
        if (node == NULL) {
            return NGX_CONF_ERROR;
        }

        if (ngx_http_cart_redis_parse_url(cf, &value[i], node) != NGX_OK) {
            return NGX_CONF_ERROR;
        }
    }

    return NGX_CONF_OK;
}


/* cart_api and cart_admin: the location is served by the dispatcher */

static char *
ngx_http_cart_api(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_flag_t                 *flag;
    ngx_http_core_loc_conf_t   *clcf;
    ngx_http_cart_main_conf_t  *cmcf;

    flag = (ngx_flag_t *) ((char *) conf + cmd->offset);

    if (*flag != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    *flag = 1;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_cart_handler;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_cart_module);
    cmcf->used = 1;

    return NGX_CONF_OK;
}


/* cart_inventory_reserve uri: one hold per line, never a batch */

static char *
ngx_http_cart_reserve(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_str_t  *value;

    value = cf->args->elts;

    if (ngx_strstr(value[1].data, "$cart_skus") != NULL
        || ngx_strstr(value[1].data, "${cart_skus}") != NULL)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "cart_inventory_reserve holds one line per "
                           "subrequest: use $cart_sku or $cart_hold_id, "
                           "not $cart_skus");
        return NGX_CONF_ERROR;
    }

    return ngx_http_set_complex_value_slot(cf, cmd, conf);
}


static char *
ngx_http_cart_currency(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_cart_main_conf_t  *cmcf = conf;

    ngx_str_t   *value;
    ngx_uint_t   i;

    if (cmcf->currency.data) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (value[1].len != 3) {
        return "must be an ISO 4217 code such as USD";
    }

    for (i = 0; i < 3; i++) {
        if (value[1].data[i] < 'A' || value[1].data[i] > 'Z') {
            return "must be an ISO 4217 code such as USD";
        }
    }

    cmcf->currency = value[1];

    return NGX_CONF_OK;
}


/* cart_subscriber_ping interval [deadline] */

static char *
ngx_http_cart_subscriber_ping(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_cart_main_conf_t  *cmcf = conf;

    ngx_str_t   *value;
    ngx_int_t    interval, deadline;

    if (cmcf->subscriber_ping != NGX_CONF_UNSET_MSEC) {
        return "is duplicate";
    }

    value = cf->args->elts;

    interval = ngx_parse_time(&value[1], 0);
    deadline = 3000;

    if (cf->args->nelts == 3) {
        deadline = ngx_parse_time(&value[2], 0);
    }

    /* shorter would take a busy Redis for a dead one */

    if (interval == NGX_ERROR || deadline == NGX_ERROR
        || interval < 100 || deadline < 100)
    {
        return "takes times of at least 100ms";
    }

    cmcf->subscriber_ping = interval;
    cmcf->subscriber_ping_timeout = deadline;

    return NGX_CONF_OK;
}


/* cart_kafka_property NAME VALUE: checked by librdkafka now, used in the
 * workers' producers */

static char *
ngx_http_cart_kafka_property(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_cart_main_conf_t  *cmcf = conf;

    ngx_str_t     *value;
    ngx_keyval_t  *kv;

    value = cf->args->elts;

    if (ngx_http_cart_kafka_check_property(cf, &value[1], &value[2])
        != NGX_CONF_OK)
    {
        return NGX_CONF_ERROR;
    }

    if (cmcf->kafka_properties == NULL) {
        cmcf->kafka_properties = ngx_array_create(cf->pool, 4,
                                                  sizeof(ngx_keyval_t));
        if (cmcf->kafka_properties == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    kv = ngx_array_push(cmcf->kafka_properties);
    if (kv == NULL) {
        return NGX_CONF_ERROR;
    }

    kv->key = value[1];
    kv->value = value[2];

    return NGX_CONF_OK;
}


static char *
ngx_http_cart_status(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_core_loc_conf_t   *clcf;
    ngx_http_cart_main_conf_t  *cmcf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_cart_status_handler;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_cart_module);
    cmcf->status = 1;

    return NGX_CONF_OK;
}


/* Redis connections belong to worker processes, never to the master or
 * the cache helpers */

static ngx_int_t
ngx_http_cart_init_process(ngx_cycle_t *cycle)
{
    ngx_uint_t                     n;
    ngx_http_cart_main_conf_t     *cmcf;
    ngx_http_cart_redis_script_t  *scripts;

    if (ngx_process != NGX_PROCESS_WORKER && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    cmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_cart_module);

    if (cmcf == NULL || !cmcf->used) {
        return NGX_OK;
    }

    scripts = ngx_http_cart_scripts(&n);

    /* first: the Redis nodes take their metric slots as they are added */
    ngx_http_cart_metrics_init_worker(cmcf);

    if (ngx_http_cart_redis_init_worker(cycle, cmcf, scripts, n) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_http_cart_stream_init_worker(cycle, cmcf) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_cart_events_init_worker(cycle, cmcf);
}


static void
ngx_http_cart_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_cart_main_conf_t  *cmcf;

    cmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_cart_module);

    ngx_http_cart_promos_exit();

    if (cmcf) {
        /* the streams first: their cleanup still talks to the subscriber */
        ngx_http_cart_stream_exit_worker(cmcf);
        ngx_http_cart_events_exit_worker(cmcf);
        ngx_http_cart_redis_exit_worker(cmcf);

        /* last: closing connections above moved this worker's gauges */
        ngx_http_cart_metrics_exit_worker(cmcf);
    }
}
