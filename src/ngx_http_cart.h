/*
 * ngx_http_cart_module — shared types: configuration and the per-request
 * context. Every file of the module includes this header; it knows nothing
 * of hiredis.
 */

#ifndef _NGX_HTTP_CART_H_INCLUDED_
#define _NGX_HTTP_CART_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_cart_subrequest.h"


#define NGX_HTTP_CART_MAX_SKU_LEN       64
#define NGX_HTTP_CART_MAX_USER_LEN      128
#define NGX_HTTP_CART_MAX_IDEM_LEN      128

/* the largest cart_max_quantity: no line of a cart holds more */
#define NGX_HTTP_CART_MAX_QUANTITY      1000000

/*
 * The most units a cart may hold, cart_max_lines x cart_max_quantity: at
 * the highest price a catalog may give (NGX_HTTP_CART_MAX_AMOUNT, 10^11
 * minor units) the engine's int64 sums stay below 10^18, 9 times under
 * INT64_MAX, with room for shipping and rounding.
 */
#define NGX_HTTP_CART_MAX_UNITS         10000000

/* browsers keep a cookie 400 days at most (RFC 6265bis); also far from
 * any time_t overflow of now + Max-Age */
#define NGX_HTTP_CART_MAX_COOKIE_AGE    (400 * 86400)

#define NGX_HTTP_CART_MERGE_MAX         0
#define NGX_HTTP_CART_MERGE_SUM         1
#define NGX_HTTP_CART_MERGE_GUEST       2


typedef struct ngx_http_cart_redis_s  ngx_http_cart_redis_t;
typedef struct ngx_http_cart_jwt_s    ngx_http_cart_jwt_t;
typedef struct ngx_http_cart_cookie_s  ngx_http_cart_cookie_t;
typedef struct ngx_http_cart_kafka_s  ngx_http_cart_kafka_t;
typedef struct ngx_http_cart_streams_s  ngx_http_cart_streams_t;
typedef struct ngx_http_cart_cache_conf_s  ngx_http_cart_cache_conf_t;


/* one Redis node as written in cart_redis, resolved at configuration time */
typedef struct {
    ngx_str_t                      url;        /* as configured, for logs */
    ngx_str_t                      host;       /* numeric, NUL-terminated */
    in_port_t                      port;
    ngx_str_t                      user;       /* ACL user, may be empty */
    ngx_str_t                      password;   /* may be empty */
    ngx_uint_t                     db;
} ngx_http_cart_redis_node_conf_t;


typedef struct {
    ngx_array_t                   *redis_nodes;  /* node confs, in order */
    ngx_flag_t                     redis_cluster; /* the nodes are seeds */
    ngx_uint_t                     redis_connections;
    ngx_uint_t                     redis_max_pending; /* per connection */
    ngx_msec_t                     redis_timeout;

    time_t                         ttl;
    time_t                         idempotency_ttl;

    ngx_uint_t                     max_lines;
    ngx_uint_t                     max_quantity;
    ngx_str_t                      max_lines_arg;    /* as script arguments, */
    ngx_str_t                      max_quantity_arg; /* formatted once */
    ngx_str_t                      currency;

    time_t                         guest_ttl;
    time_t                         saved_ttl;
    time_t                         share_ttl;
    ngx_uint_t                     merge_strategy; /* NGX_HTTP_CART_MERGE_* */

    ngx_flag_t                     used;       /* a location: cart_api */
    ngx_flag_t                     status;     /* a location: cart_status */

    ngx_str_t                      kafka_brokers;    /* empty: events off */
    ngx_str_t                      kafka_topic;
    ngx_array_t                   *kafka_properties; /* of ngx_keyval_t */

    ngx_shm_zone_t                *status_zone;      /* the metrics */

    ngx_uint_t                     stream_max;       /* per worker */
    ngx_msec_t                     stream_heartbeat;
    ngx_msec_t                     subscriber_ping;  /* PING every, and */
    ngx_msec_t                     subscriber_ping_timeout; /* its answer */

    /* per worker, created in init_process */
    ngx_http_cart_redis_t         *redis;
    ngx_http_cart_kafka_t         *kafka;
    ngx_http_cart_streams_t       *streams;
} ngx_http_cart_main_conf_t;


typedef struct {
    ngx_flag_t                     api;
    ngx_http_complex_value_t      *user;
    ngx_http_complex_value_t      *catalog;
    ngx_http_cart_jwt_t           *jwt;         /* cart_jwt_key */
    ngx_http_cart_cookie_t        *guest_cookie;
    ngx_http_complex_value_t      *inventory;
    ngx_http_complex_value_t      *reserve;     /* cart_inventory_reserve */
    ngx_http_complex_value_t      *shipping;
    ngx_http_complex_value_t      *share_url;  /* the link's base */
    ngx_uint_t                     subrequests; /* at once, per request */
    ngx_msec_t                     lookup_timeout; /* a wave's deadline */
    ngx_flag_t                     admin;      /* cart_admin: promotions API */

    /* cart_*_cache: the lookups' answers in shared memory, or NULL */
    ngx_http_cart_cache_conf_t    *catalog_cache;
    ngx_http_cart_cache_conf_t    *inventory_cache;
    ngx_http_cart_cache_conf_t    *shipping_cache;

    ngx_uint_t                     stream_lines; /* a stream's event carries
                                                    a cart of at most these */
} ngx_http_cart_loc_conf_t;


/* a resource's handler: an HTTP status / NGX_* to finalize with, or
 * NGX_DONE when it went asynchronous and finalizes by itself */
typedef ngx_int_t (*ngx_http_cart_action_pt)(ngx_http_request_t *r);


/* the request context */
typedef struct {
    /* first: the subrequest layer's state, which it finds as the context */
    ngx_http_cart_wave_t           wave;

    ngx_http_cart_action_pt        action;
    ngx_str_t                      path_sku;    /* {sku_id} of the URI */
    void                          *body;        /* parsed JSON (yajl_val) */

    ngx_str_t                      owner;       /* user-<id>, guest-<s> */
    time_t                         ttl;         /* of this owner's cart */
    ngx_str_t                      cart_key;    /* cart:{owner} */
    ngx_str_t                      count_key;   /* cart_count:{owner} */
    ngx_str_t                      idem_key;    /* idem:{owner}:<key> or "" */
    ngx_str_t                      if_match;    /* version digits, or empty */
    ngx_str_t                      fingerprint; /* of the request's meaning */

    ngx_int_t                      quantity;
    ngx_str_t                      seller;      /* the client's seller_id */
    int64_t                        price;       /* minor units, -1 unknown */

    void                          *data;        /* the resource's own state */

    ngx_str_t                      guest;       /* a valid cookie's session */
    ngx_str_t                      set_cookie;  /* Set-Cookie of a 2xx answer */

    ngx_str_t                     *error_page;  /* nginx's error, as JSON */
    ngx_uint_t                     op;          /* for the metrics */
    const char                    *code;        /* the error answered */

    unsigned                       answered:1;  /* the module's own answer */
    unsigned                       reserved:1;  /* holds an idem key */
    unsigned                       signed_in:1; /* a user, not a guest */
    unsigned                       new_guest:1; /* a guest session made for
                                                   this request: no cart yet */
    unsigned                       replayed:1;  /* Idempotent-Replayed */
} ngx_http_cart_ctx_t;


extern ngx_module_t  ngx_http_cart_module;


#endif /* _NGX_HTTP_CART_H_INCLUDED_ */
