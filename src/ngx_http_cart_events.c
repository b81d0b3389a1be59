/*
 * Cart change events (contract section 6): one JSON document per change,
 * keyed by the cart's owner; "version" orders a cart's events across workers.
 *
 * "user_id" is the signed-in user's own id (null for a guest); the owner
 * as the cart key names it ("user-<id>", "guest-<session>") is "owner",
 * its kind "owner_kind". The message key stays the owner: all events of
 * one cart go to one partition, in order, whoever they belong to, and
 * a new key would send a cart's next events to another partition than
 * its earlier ones (consumers would see its history reordered).
 */

#include "ngx_http_cart_events.h"
#include "ngx_http_cart_json.h"
#include "ngx_http_cart_kafka.h"
#include "ngx_http_cart_status.h"


/* event ids: a random 64-bit prefix per worker and a counter */
static uint64_t  ngx_http_cart_event_prefix;
static uint64_t  ngx_http_cart_event_seq;


ngx_int_t
ngx_http_cart_events_init_worker(ngx_cycle_t *cycle,
    ngx_http_cart_main_conf_t *cmcf)
{
    ngx_fd_t                  fd;
    ssize_t                   n;
    ngx_http_cart_metrics_t  *metrics;

    metrics = ngx_http_cart_metrics(cmcf);

    if (cmcf->kafka_brokers.len == 0 || metrics == NULL) {
        return NGX_OK;
    }

    n = 0;
    fd = ngx_open_file("/dev/urandom", NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);

    if (fd != NGX_INVALID_FILE) {
        n = read(fd, &ngx_http_cart_event_prefix,
                 sizeof(ngx_http_cart_event_prefix));
        ngx_close_file(fd);
    }

    if (n != sizeof(ngx_http_cart_event_prefix)) {
        ngx_http_cart_event_prefix = ((uint64_t) ngx_random() << 32)
                                     ^ ((uint64_t) ngx_pid << 16)
                                     ^ (uint64_t) ngx_current_msec;
    }

    cmcf->kafka = ngx_http_cart_kafka_create(cycle, &cmcf->kafka_brokers,
                                             &cmcf->kafka_topic,
                                             cmcf->kafka_properties,
                                             &metrics->events,
                                             ngx_http_cart_proc_metrics
                                             ? &ngx_http_cart_proc_metrics
                                                   ->kafka_queue
                                             : NULL);

    return cmcf->kafka ? NGX_OK : NGX_ERROR;
}


void
ngx_http_cart_events_exit_worker(ngx_http_cart_main_conf_t *cmcf)
{
    if (cmcf->kafka) {
        ngx_http_cart_kafka_destroy(cmcf->kafka);
        cmcf->kafka = NULL;
    }
}


void
ngx_http_cart_event(ngx_http_request_t *r, ngx_http_cart_event_t *ev)
{
    u_char                      id[32], ts[sizeof("1970-01-01T00:00:00.000Z")];
    u_char                      cart_id[sizeof("cart:") - 1 + sizeof("user-")
                                        + NGX_HTTP_CART_MAX_USER_LEN];
    u_char                     *p;
    yajl_gen                    g;
    ngx_tm_t                    tm;
    ngx_str_t                   text, user;
    ngx_time_t                 *tp;
    ngx_http_cart_ctx_t        *ctx;
    ngx_http_cart_json_gen_t   *json;
    ngx_http_cart_main_conf_t  *cmcf;

    ctx = ngx_http_get_module_ctx(r, ngx_http_cart_module);
    cmcf = ngx_http_get_module_main_conf(r, ngx_http_cart_module);

    if (cmcf->kafka == NULL) {
        ngx_log_debug3(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "cart event %s \"%V\" v%L (events off)",
                       ev->type, &ev->sku, ev->version);
        return;
    }

    /* an event that cannot be built is logged and lost; the response goes on */

    json = ngx_http_cart_json_gen(r->pool);
    if (json == NULL) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "cart: no memory for a \"%s\" event", ev->type);
        return;
    }

    g = json->g;

    ngx_sprintf(id, "%016xL%016xL", ngx_http_cart_event_prefix,
                ++ngx_http_cart_event_seq);

    tp = ngx_timeofday();
    ngx_gmtime(tp->sec, &tm);
    ngx_sprintf(ts, "%4d-%02d-%02dT%02d:%02d:%02d.%03MZ",
                tm.ngx_tm_year, tm.ngx_tm_mon, tm.ngx_tm_mday,
                tm.ngx_tm_hour, tm.ngx_tm_min, tm.ngx_tm_sec, tp->msec);

    p = ngx_sprintf(cart_id, "cart:%V", &ctx->owner);

    yajl_gen_map_open(g);
    ngx_http_cart_json_key(g, "event_id");
    yajl_gen_string(g, id, sizeof(id));
    ngx_http_cart_json_key(g, "type");
    yajl_gen_string(g, (const unsigned char *) ev->type, ngx_strlen(ev->type));
    ngx_http_cart_json_key(g, "cart_id");
    yajl_gen_string(g, cart_id, p - cart_id);
    ngx_http_cart_json_key(g, "user_id");

    if (ctx->signed_in && ctx->owner.len > sizeof("user-") - 1) {
        user.data = ctx->owner.data + sizeof("user-") - 1;
        user.len = ctx->owner.len - (sizeof("user-") - 1);
        ngx_http_cart_json_str(g, &user);

    } else {
        yajl_gen_null(g);
    }

    ngx_http_cart_json_key(g, "owner");
    ngx_http_cart_json_str(g, &ctx->owner);
    ngx_http_cart_json_key(g, "owner_kind");
    yajl_gen_string(g, (const unsigned char *)
                       (ctx->signed_in ? "user" : "guest"),
                    ctx->signed_in ? 4 : 5);

    if (ev->sku.len) {
        ngx_http_cart_json_key(g, "sku_id");
        ngx_http_cart_json_str(g, &ev->sku);
    }

    if (ev->quantity >= 0) {
        ngx_http_cart_json_key(g, "quantity");
        ngx_http_cart_json_int(g, ev->quantity);
    }

    if (ev->price >= 0) {
        ngx_http_cart_json_key(g, "price");
        ngx_http_cart_json_amount(g, ev->price);
    }

    if (ev->seller.len) {
        ngx_http_cart_json_key(g, "seller_id");
        ngx_http_cart_json_str(g, &ev->seller);
    }

    ngx_http_cart_json_key(g, "version");
    ngx_http_cart_json_int(g, ev->version);

    if (ev->checkout_id.len) {
        ngx_http_cart_json_key(g, "checkout_id");
        ngx_http_cart_json_str(g, &ev->checkout_id);
    }

    ngx_http_cart_json_key(g, "ts");
    yajl_gen_string(g, ts, sizeof(ts) - 1);
    yajl_gen_map_close(g);

    if (ngx_http_cart_json_text(json, &text) != NGX_OK) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "cart: cannot encode a \"%s\" event", ev->type);
        return;
    }

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "cart event %s \"%V\" v%L", ev->type, &ev->sku,
                   ev->version);

    (void) ngx_http_cart_kafka_produce(cmcf->kafka, &ctx->owner,
                                       text.data, text.len,
                                       r->connection->log);
}
