/*
 * Parallel in-memory subrequests to the operator's upstream locations:
 * GET lookups (cart_catalog, cart_inventory, cart_shipping) and, through
 * their own explicit call, POST / DELETE writes with a JSON body
 * (cart_inventory_reserve's holds and their release).
 *
 * A request runs one "wave" at a time: any number of fetch groups started
 * with ngx_http_cart_fetch_start() (one subrequest per SKU, or, when the
 * URI uses $cart_skus, one per batch of SKUs), plus any other asynchronous
 * operations that joined it with ngx_http_cart_fetch_hold(); the parent
 * resumes once, when the last of them is done. The foundation knows
 * nothing of what the documents mean.
 */

#ifndef _NGX_HTTP_CART_SUBREQUEST_H_INCLUDED_
#define _NGX_HTTP_CART_SUBREQUEST_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <yajl/yajl_tree.h>


/* SKUs per batch subrequest: keeps the URI well under common header limits */
#define NGX_HTTP_CART_BATCH_MAX  50


/* the result of one upstream lookup (the document of one SKU) or write */
typedef struct {
    ngx_str_t                      sku;
    ngx_int_t                      status;     /* HTTP status; 0: failed */
    ngx_str_t                      body;
    ngx_uint_t                     done;       /* counted once */
    void                          *batch;      /* answering it, or NULL */

    /* a write's own (ngx_http_cart_send_start()); lookups leave them */
    ngx_str_t                      hold_id;    /* $cart_hold_id */
    ngx_str_t                      payload;    /* the JSON body it sends */
} ngx_http_cart_fetch_t;


typedef void (*ngx_http_cart_resume_pt)(ngx_http_request_t *r);


/*
 * What $cart_sku, $cart_skus, $cart_country, $cart_postal_code,
 * $cart_hold_id are; in a subrequest also the body it answered, captured
 * by our body filter
 */
typedef struct {
    ngx_str_t                      sku;
    ngx_str_t                      skus;       /* comma-joined */
    ngx_str_t                      country;
    ngx_str_t                      postal_code;
    ngx_str_t                      hold_id;

    u_char                        *body;
    size_t                         len;
    /* at most the location's subrequest_output_buffer_size */
    size_t                         size;
    unsigned                       capture:1;
    unsigned                       too_big:1;
} ngx_http_cart_vars_t;


/*
 * A request's wave. It is the first member of the request's context, so
 * this layer reaches it as the module's context; a subrequest's context
 * is its variables alone, the first member of a wave.
 */
typedef struct ngx_http_cart_job_s  ngx_http_cart_job_t;

typedef struct {
    ngx_http_cart_vars_t           vars;
    ngx_uint_t                     pending;    /* not done yet */
    ngx_http_cart_resume_pt        resume;

    ngx_http_cart_job_t           *jobs;       /* subrequests, in order */
    ngx_http_cart_job_t          **last;
    ngx_http_cart_job_t           *next;       /* the first not started */
    ngx_uint_t                     running;
    ngx_event_t                   *deadline;   /* cart_lookup_timeout */
} ngx_http_cart_wave_t;


ngx_int_t ngx_http_cart_subrequest_add_variables(ngx_conf_t *cf);

/* the body filter that captures the lookups' answers */
ngx_int_t ngx_http_cart_subrequest_init(ngx_conf_t *cf);

/*
 * Starts the subrequests for the elements of fetches (their "sku" set),
 * to the URI "uri" evaluates to with $cart_sku = that sku, or with
 * $cart_skus = the comma-joined SKUs of a batch when the URI uses
 * $cart_skus. $cart_country and $cart_postal_code are those last given
 * to ngx_http_cart_fetch_address(). Results land in the elements.
 * NGX_OK: started.
 */
ngx_int_t ngx_http_cart_fetch_start(ngx_http_request_t *r,
    ngx_http_complex_value_t *uri, ngx_http_cart_fetch_t *fetches,
    ngx_uint_t n);

/*
 * Writes, not lookups: one subrequest per element of fetches, with method
 * NGX_HTTP_POST or NGX_HTTP_DELETE and the element's "payload" as its body
 * (Content-Type: application/json, Content-Length), to the URI "uri"
 * evaluates to with $cart_sku = its sku and $cart_hold_id = its hold_id.
 * Never batched. Otherwise a lookup's rules: the client's body, cookies,
 * credentials and preconditions are not passed, the answer is captured
 * (status and body land in the element), cart_subrequests and
 * cart_lookup_timeout bound them, and they join the wave like lookups.
 * NGX_OK: started.
 */
ngx_int_t ngx_http_cart_send_start(ngx_http_request_t *r,
    ngx_http_complex_value_t *uri, ngx_uint_t method,
    ngx_http_cart_fetch_t *fetches, ngx_uint_t n);

/* $cart_country and $cart_postal_code of the subrequests started next */
void ngx_http_cart_fetch_address(ngx_http_request_t *r, ngx_str_t *country,
    ngx_str_t *postal_code);

/* another asynchronous operation joins the wave / is done */
void ngx_http_cart_fetch_hold(ngx_http_request_t *r);
void ngx_http_cart_fetch_release(ngx_http_request_t *r);

/* "resume" runs once everything started or held is done — at once, before
 * this returns, when nothing is pending */
void ngx_http_cart_fetch_wait(ngx_http_request_t *r,
    ngx_http_cart_resume_pt resume);



/*
 * The JSON document a fetch got for its SKU: NGX_OK with *doc (an
 * object); NGX_DECLINED when the upstream does not know the SKU (404, or
 * no such key in a batch answer); NGX_ERROR when it failed, timed out or
 * answered something that is not a JSON object.
 */
ngx_int_t ngx_http_cart_fetch_doc(ngx_http_request_t *r,
    ngx_http_cart_fetch_t *f, yajl_val *doc);


#endif /* _NGX_HTTP_CART_SUBREQUEST_H_INCLUDED_ */
