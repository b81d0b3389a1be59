/*
 * The lookup caches: one shared memory zone per name (the slab pool, an
 * rbtree by the CRC32 of the key and the key itself, an LRU queue), as
 * ngx_http_limit_req_module keeps its states. The key is the kind of
 * answer, the SKU and, for shipping, the destination, so that one zone
 * may hold the three kinds. Times are ngx_current_msec, the monotonic
 * clock every worker reads alike.
 *
 * An entry is fresh for "valid" after it was fetched, then stale for
 * "stale" more. A stale entry is served while one request refreshes it:
 * the first request that finds it stale sets its "updating" stamp and
 * asks the upstream; the others see the stamp and serve the entry. A
 * stamp older than cart_lookup_timeout (the refresher's wave has ended
 * by then, however it ended) is taken over, and a refresher that goes
 * away first clears its stamp from its pool's cleanup.
 */

#include "ngx_http_cart_cache.h"
#include "ngx_http_cart_status.h"


/* the kind, the SKU, "|country|postal_code" */
#define NGX_HTTP_CART_CACHE_KEY_LEN  (1 + NGX_HTTP_CART_MAX_SKU_LEN + 64)

/* entries over this are not kept: a zone is for many SKUs */
#define NGX_HTTP_CART_CACHE_MAX_STR  4096


struct ngx_http_cart_cache_conf_s {
    ngx_shm_zone_t                *zone;
    ngx_msec_t                     valid;
    ngx_msec_t                     stale;
};


typedef struct {
    u_char                         color;
    u_char                         declined;   /* the answer was a 404 */
    u_char                         updating;   /* a refresh is under way */
    u_char                         dummy;
    u_short                        len;        /* of the key */
    u_short                        name;       /* lengths of the strings */
    u_short                        seller;     /* after the key */
    u_short                        image;
    ngx_queue_t                    queue;      /* LRU, most recent first */
    ngx_msec_t                     fetched;
    ngx_msec_t                     until;      /* servable until */
    ngx_msec_t                     since;      /* updating since */
    int64_t                        v[3];       /* price | available |
                                                  cost, min_days, max_days */
    u_char                         data[1];    /* key, name, seller, image */
} ngx_http_cart_cache_node_t;


typedef struct {
    ngx_rbtree_t                   rbtree;
    ngx_rbtree_node_t              sentinel;
    ngx_queue_t                    queue;
} ngx_http_cart_cache_sh_t;


typedef struct {
    ngx_http_cart_cache_sh_t      *sh;
    ngx_slab_pool_t               *shpool;
} ngx_http_cart_cache_ctx_t;


struct ngx_http_cart_cache_hold_s {
    ngx_shm_zone_t                *zone;
    uint32_t                       hash;
    ngx_str_t                      key;
    ngx_msec_t                     since;      /* the stamp set */
    ngx_uint_t                     done;
};


static ngx_int_t ngx_http_cart_cache_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static void ngx_http_cart_cache_rbtree_insert_value(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel);
static ngx_int_t ngx_http_cart_cache_key(ngx_uint_t kind, ngx_str_t *sku,
    ngx_str_t *country, ngx_str_t *postal_code, ngx_str_t *key);
static ngx_http_cart_cache_node_t *ngx_http_cart_cache_lookup(
    ngx_http_cart_cache_ctx_t *ctx, uint32_t hash, ngx_str_t *key);
static ngx_int_t ngx_http_cart_cache_copy(ngx_pool_t *pool,
    ngx_uint_t kind, ngx_http_cart_cache_node_t *e,
    ngx_http_cart_facts_t *facts);
static void ngx_http_cart_cache_delete(ngx_http_cart_cache_ctx_t *ctx,
    ngx_http_cart_cache_node_t *e);
static void ngx_http_cart_cache_expire(ngx_http_cart_cache_ctx_t *ctx,
    ngx_uint_t force, ngx_log_t *log);
static void ngx_http_cart_cache_release(ngx_http_cart_cache_hold_t *hold);
static void ngx_http_cart_cache_cleanup(void *data);


#define ngx_http_cart_cache_entry(node)                                       \
    ((ngx_http_cart_cache_node_t *) &(node)->color)

#define ngx_http_cart_cache_rbnode(e)                                         \
    ((ngx_rbtree_node_t *) ((u_char *) (e)                                    \
                            - offsetof(ngx_rbtree_node_t, color)))


static const char  ngx_http_cart_cache_kinds[] = "cis";


/*
 * cart_catalog_cache zone=NAME[:SIZE] [valid=TIME] [stale=TIME] | off
 *
 * A zone with a size is declared here; one without is declared by
 * another cart_*_cache directive (any location, any kind).
 */

char *
ngx_http_cart_cache_directive(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    u_char                      *p;
    ssize_t                      size;
    ngx_str_t                   *value, name, s;
    ngx_int_t                    valid, stale;
    ngx_uint_t                   i;
    ngx_shm_zone_t              *shm_zone;
    ngx_http_cart_cache_ctx_t   *ctx;
    ngx_http_cart_cache_conf_t  *cache, **slot;

    slot = (ngx_http_cart_cache_conf_t **) ((char *) conf + cmd->offset);

    if (*slot != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (cf->args->nelts == 2 && ngx_strcmp(value[1].data, "off") == 0) {
        *slot = NULL;
        return NGX_CONF_OK;
    }

    ngx_str_null(&name);
    size = 0;
    valid = 10000;
    stale = NGX_CONF_UNSET;

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "zone=", 5) == 0) {

            name.data = value[i].data + 5;

            p = (u_char *) ngx_strchr(name.data, ':');

            if (p) {
                name.len = p - name.data;

                s.data = p + 1;
                s.len = value[i].data + value[i].len - s.data;

                size = ngx_parse_size(&s);

                if (size == NGX_ERROR) {
                    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                       "invalid zone size \"%V\"", &value[i]);
                    return NGX_CONF_ERROR;
                }

                if (size < (ssize_t) (8 * ngx_pagesize)) {
                    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                       "zone \"%V\" is too small", &value[i]);
                    return NGX_CONF_ERROR;
                }

            } else {
                name.len = value[i].len - 5;
            }

            if (name.len == 0) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid zone name \"%V\"", &value[i]);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "valid=", 6) == 0) {

            s.data = value[i].data + 6;
            s.len = value[i].len - 6;

            valid = ngx_parse_time(&s, 0);

            if (valid == NGX_ERROR || valid == 0) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid valid \"%V\"", &value[i]);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "stale=", 6) == 0) {

            s.data = value[i].data + 6;
            s.len = value[i].len - 6;

            stale = ngx_parse_time(&s, 0);

            if (stale == NGX_ERROR) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid stale \"%V\"", &value[i]);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\"", &value[i]);
        return NGX_CONF_ERROR;
    }

    if (name.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" must have \"zone\" parameter",
                           &cmd->name);
        return NGX_CONF_ERROR;
    }

    shm_zone = ngx_shared_memory_add(cf, &name, size, &ngx_http_cart_module);
    if (shm_zone == NULL) {
        return NGX_CONF_ERROR;
    }

    if (shm_zone->data == NULL) {
        ctx = ngx_pcalloc(cf->pool, sizeof(ngx_http_cart_cache_ctx_t));
        if (ctx == NULL) {
            return NGX_CONF_ERROR;
        }

        shm_zone->init = ngx_http_cart_cache_init_zone;
        shm_zone->data = ctx;

    } else if (shm_zone->init != ngx_http_cart_cache_init_zone) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "zone \"%V\" is not a cart cache zone", &name);
        return NGX_CONF_ERROR;
    }

    cache = ngx_pcalloc(cf->pool, sizeof(ngx_http_cart_cache_conf_t));
    if (cache == NULL) {
        return NGX_CONF_ERROR;
    }

    cache->zone = shm_zone;
    cache->valid = valid;

    /* by default an entry is served stale as long as it was fresh, and
     * at least 10 seconds: time for its refresh to come back */
    cache->stale = stale != NGX_CONF_UNSET ? (ngx_msec_t) stale
                                           : ngx_max((ngx_msec_t) valid,
                                                     10000);

    *slot = cache;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_cart_cache_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_cart_cache_ctx_t  *octx = data;

    size_t                      len;
    ngx_http_cart_cache_ctx_t  *ctx;

    ctx = shm_zone->data;

    /* a reload keeps what is cached */

    if (octx) {
        ctx->sh = octx->sh;
        ctx->shpool = octx->shpool;
        return NGX_OK;
    }

    ctx->shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        ctx->sh = ctx->shpool->data;
        return NGX_OK;
    }

    ctx->sh = ngx_slab_alloc(ctx->shpool, sizeof(ngx_http_cart_cache_sh_t));
    if (ctx->sh == NULL) {
        return NGX_ERROR;
    }

    ctx->shpool->data = ctx->sh;

    ngx_rbtree_init(&ctx->sh->rbtree, &ctx->sh->sentinel,
                    ngx_http_cart_cache_rbtree_insert_value);

    ngx_queue_init(&ctx->sh->queue);

    len = sizeof(" in cart cache zone \"\"") + shm_zone->shm.name.len;

    ctx->shpool->log_ctx = ngx_slab_alloc(ctx->shpool, len);
    if (ctx->shpool->log_ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(ctx->shpool->log_ctx, " in cart cache zone \"%V\"%Z",
                &shm_zone->shm.name);

    /* a full zone is the normal case: the oldest entries make room */
    ctx->shpool->log_nomem = 0;

    return NGX_OK;
}


static void
ngx_http_cart_cache_rbtree_insert_value(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel)
{
    ngx_rbtree_node_t           **p;
    ngx_http_cart_cache_node_t   *n, *t;

    for ( ;; ) {

        if (node->key < temp->key) {

            p = &temp->left;

        } else if (node->key > temp->key) {

            p = &temp->right;

        } else { /* node->key == temp->key */

            n = ngx_http_cart_cache_entry(node);
            t = ngx_http_cart_cache_entry(temp);

            p = (ngx_memn2cmp(n->data, t->data, n->len, t->len) < 0)
                ? &temp->left : &temp->right;
        }

        if (*p == sentinel) {
            break;
        }

        temp = *p;
    }

    *p = node;
    node->parent = temp;
    node->left = sentinel;
    node->right = sentinel;
    ngx_rbt_red(node);
}


ngx_http_cart_cache_conf_t *
ngx_http_cart_cache_conf(ngx_http_request_t *r, ngx_uint_t kind)
{
    ngx_http_cart_loc_conf_t  *lcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_cart_module);

    switch (kind) {
    case NGX_HTTP_CART_CACHE_CATALOG:
        return lcf->catalog_cache;
    case NGX_HTTP_CART_CACHE_INVENTORY:
        return lcf->inventory_cache;
    default:
        return lcf->shipping_cache;
    }
}


ngx_int_t
ngx_http_cart_cache_get(ngx_http_request_t *r, ngx_pool_t *pool,
    ngx_uint_t kind, ngx_str_t *sku, ngx_str_t *country,
    ngx_str_t *postal_code, ngx_http_cart_facts_t *facts,
    ngx_http_cart_cache_hold_t **hold)
{
    u_char                       buf[NGX_HTTP_CART_CACHE_KEY_LEN];
    uint32_t                     hash;
    ngx_int_t                    rc;
    ngx_str_t                    key;
    ngx_msec_t                   now;
    ngx_msec_int_t               age;
    ngx_pool_cleanup_t          *cln;
    ngx_http_cart_loc_conf_t    *lcf;
    ngx_http_cart_cache_ctx_t   *ctx;
    ngx_http_cart_cache_conf_t  *cache;
    ngx_http_cart_cache_hold_t  *h;
    ngx_http_cart_cache_node_t  *e;

    if (hold) {
        *hold = NULL;
    }

    cache = ngx_http_cart_cache_conf(r, kind);
    if (cache == NULL) {
        return NGX_DECLINED;
    }

    key.data = buf;

    if (ngx_http_cart_cache_key(kind, sku, country, postal_code, &key)
        != NGX_OK)
    {
        return NGX_DECLINED;
    }

    hash = ngx_crc32_short(key.data, key.len);
    ctx = cache->zone->data;
    now = ngx_current_msec;

    ngx_shmtx_lock(&ctx->shpool->mutex);

    e = ngx_http_cart_cache_lookup(ctx, hash, &key);

    if (e == NULL) {
        ngx_shmtx_unlock(&ctx->shpool->mutex);

        ngx_http_cart_metrics_inc(r, cache[kind][NGX_HTTP_CART_CACHE_MISS]);

        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "cart cache miss: \"%V\"", &key);
        return NGX_DECLINED;
    }

    /* another worker's clock may be a little ahead of ours */
    age = (ngx_msec_int_t) (now - e->fetched);
    age = ngx_max(age, 0);

    if ((ngx_msec_t) age >= cache->valid + cache->stale) {
        ngx_shmtx_unlock(&ctx->shpool->mutex);

        ngx_http_cart_metrics_inc(r, cache[kind][NGX_HTTP_CART_CACHE_MISS]);

        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "cart cache expired: \"%V\"", &key);
        return NGX_DECLINED;
    }

    if ((ngx_msec_t) age >= cache->valid) {

        lcf = ngx_http_get_module_loc_conf(r, ngx_http_cart_module);

        if (hold
            && (!e->updating
                || (ngx_msec_int_t) (now - e->since)
                   >= (ngx_msec_int_t) lcf->lookup_timeout))
        {
            /* this request refreshes it; the others serve it meanwhile */

            cln = ngx_pool_cleanup_add(r->pool,
                                       sizeof(ngx_http_cart_cache_hold_t));
            h = cln ? cln->data : NULL;
            key.data = h ? ngx_pnalloc(r->pool, key.len) : NULL;

            if (key.data == NULL) {
                ngx_shmtx_unlock(&ctx->shpool->mutex);
                return NGX_DECLINED;
            }

            e->updating = 1;
            e->since = now;

            ngx_memcpy(key.data, e->data, key.len);

            h->zone = cache->zone;
            h->hash = hash;
            h->key = key;
            h->since = now;
            h->done = 0;

            cln->handler = ngx_http_cart_cache_cleanup;

            ngx_shmtx_unlock(&ctx->shpool->mutex);

            *hold = h;

            /* this request asks the upstream */
            ngx_http_cart_metrics_inc(r,
                                      cache[kind][NGX_HTTP_CART_CACHE_MISS]);

            ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                           "cart cache refresh: \"%V\"", &key);
            return NGX_AGAIN;
        }

        ngx_http_cart_metrics_inc(r, cache[kind][NGX_HTTP_CART_CACHE_STALE]);

        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "cart cache stale: \"%V\"", &key);

    } else {
        ngx_http_cart_metrics_inc(r, cache[kind][NGX_HTTP_CART_CACHE_HIT]);

        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "cart cache hit: \"%V\"", &key);
    }

    ngx_queue_remove(&e->queue);
    ngx_queue_insert_head(&ctx->sh->queue, &e->queue);

    rc = ngx_http_cart_cache_copy(pool, kind, e, facts);

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    return rc;
}


/* the entry's answer into the facts; its strings into the pool */

static ngx_int_t
ngx_http_cart_cache_copy(ngx_pool_t *pool, ngx_uint_t kind,
    ngx_http_cart_cache_node_t *e, ngx_http_cart_facts_t *facts)
{
    u_char                   *p;
    ngx_http_cart_product_t  *product;

    switch (kind) {

    case NGX_HTTP_CART_CACHE_CATALOG:

        if (e->declined) {
            facts->catalog = NGX_DECLINED;
            return NGX_OK;
        }

        product = &facts->product;
        product->price = e->v[0];

        p = ngx_pnalloc(pool, e->name + e->seller + e->image + 1);
        if (p == NULL) {
            return NGX_DECLINED;
        }

        ngx_memcpy(p, e->data + e->len, e->name + e->seller + e->image);

        product->name.data = p;
        product->name.len = e->name;
        product->seller.data = p + e->name;
        product->seller.len = e->seller;
        product->image.data = p + e->name + e->seller;
        product->image.len = e->image;

        facts->catalog = NGX_OK;
        return NGX_OK;

    case NGX_HTTP_CART_CACHE_INVENTORY:
        facts->available = e->v[0];
        facts->stock = NGX_OK;
        return NGX_OK;

    default:

        if (e->declined) {
            facts->ship = NGX_DECLINED;
            return NGX_OK;
        }

        facts->ship_cost = e->v[0];
        facts->min_days = e->v[1];
        facts->max_days = e->v[2];
        facts->ship = NGX_OK;
        return NGX_OK;
    }
}


void
ngx_http_cart_cache_put(ngx_http_request_t *r, ngx_uint_t kind,
    ngx_str_t *sku, ngx_str_t *country, ngx_str_t *postal_code,
    ngx_http_cart_facts_t *facts, ngx_http_cart_cache_hold_t *hold)
{
    u_char                      *p, buf[NGX_HTTP_CART_CACHE_KEY_LEN];
    size_t                       size, strings;
    uint32_t                     hash;
    ngx_int_t                    rc;
    ngx_str_t                    key;
    ngx_msec_t                   now;
    ngx_rbtree_node_t           *node;
    ngx_http_cart_product_t     *product;
    ngx_http_cart_cache_ctx_t   *ctx;
    ngx_http_cart_cache_conf_t  *cache;
    ngx_http_cart_cache_node_t  *e;

    cache = ngx_http_cart_cache_conf(r, kind);

    rc = kind == NGX_HTTP_CART_CACHE_CATALOG ? facts->catalog
         : kind == NGX_HTTP_CART_CACHE_INVENTORY ? facts->stock
         : facts->ship;

    product = &facts->product;
    strings = 0;

    if (kind == NGX_HTTP_CART_CACHE_CATALOG && rc == NGX_OK) {
        strings = product->name.len + product->seller.len
                  + product->image.len;

        if (product->name.len > NGX_HTTP_CART_CACHE_MAX_STR
            || product->seller.len > NGX_HTTP_CART_CACHE_MAX_STR
            || product->image.len > NGX_HTTP_CART_CACHE_MAX_STR)
        {
            rc = NGX_ERROR;
        }
    }

    key.data = buf;

    if (cache == NULL
        || (rc != NGX_OK && rc != NGX_DECLINED)
        || ngx_http_cart_cache_key(kind, sku, country, postal_code, &key)
           != NGX_OK)
    {
        /* a failure is never kept: whatever was cached stays */
        ngx_http_cart_cache_release(hold);
        return;
    }

    hash = ngx_crc32_short(key.data, key.len);
    ctx = cache->zone->data;
    now = ngx_current_msec;

    size = offsetof(ngx_rbtree_node_t, color)
           + offsetof(ngx_http_cart_cache_node_t, data)
           + key.len + strings;

    ngx_shmtx_lock(&ctx->shpool->mutex);

    e = ngx_http_cart_cache_lookup(ctx, hash, &key);

    if (e) {
        ngx_http_cart_cache_delete(ctx, e);
    }

    ngx_http_cart_cache_expire(ctx, 0, r->connection->log);

    for ( ;; ) {
        node = ngx_slab_alloc_locked(ctx->shpool, size);

        if (node || ngx_queue_empty(&ctx->sh->queue)) {
            break;
        }

        /* the zone is full: the least recently used entry makes room */
        ngx_http_cart_cache_expire(ctx, 1, r->connection->log);
    }

    if (node == NULL) {
        ngx_shmtx_unlock(&ctx->shpool->mutex);

        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "cart cache: no room for \"%V\"", &key);

        if (hold) {
            hold->done = 1;
        }

        return;
    }

    node->key = hash;
    e = ngx_http_cart_cache_entry(node);

    e->declined = (rc == NGX_DECLINED);
    e->updating = 0;
    e->len = (u_short) key.len;
    e->name = 0;
    e->seller = 0;
    e->image = 0;
    e->fetched = now;
    e->until = now + cache->valid + cache->stale;
    e->since = 0;
    e->v[0] = 0;
    e->v[1] = 0;
    e->v[2] = 0;

    p = ngx_cpymem(e->data, key.data, key.len);

    switch (kind) {

    case NGX_HTTP_CART_CACHE_CATALOG:
        if (rc == NGX_OK) {
            e->v[0] = product->price;
            e->name = (u_short) product->name.len;
            e->seller = (u_short) product->seller.len;
            e->image = (u_short) product->image.len;

            /* an absent name, seller or image is a null string */
            if (product->name.len) {
                p = ngx_cpymem(p, product->name.data, product->name.len);
            }

            if (product->seller.len) {
                p = ngx_cpymem(p, product->seller.data, product->seller.len);
            }

            if (product->image.len) {
                ngx_memcpy(p, product->image.data, product->image.len);
            }
        }
        break;

    case NGX_HTTP_CART_CACHE_INVENTORY:
        e->v[0] = facts->available;
        break;

    default:
        if (rc == NGX_OK) {
            e->v[0] = facts->ship_cost;
            e->v[1] = facts->min_days;
            e->v[2] = facts->max_days;
        }
        break;
    }

    ngx_rbtree_insert(&ctx->sh->rbtree, node);
    ngx_queue_insert_head(&ctx->sh->queue, &e->queue);

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    if (hold) {
        hold->done = 1;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "cart cache store: \"%V\"%s", &key,
                   rc == NGX_DECLINED ? " (not found)" : "");
}


static ngx_int_t
ngx_http_cart_cache_key(ngx_uint_t kind, ngx_str_t *sku, ngx_str_t *country,
    ngx_str_t *postal_code, ngx_str_t *key)
{
    u_char  *p;
    size_t   len;

    len = 1 + sku->len;

    if (kind == NGX_HTTP_CART_CACHE_SHIPPING) {
        len += 2 + country->len + postal_code->len;
    }

    if (len > NGX_HTTP_CART_CACHE_KEY_LEN) {
        return NGX_DECLINED;
    }

    p = key->data;
    *p++ = ngx_http_cart_cache_kinds[kind];
    p = ngx_cpymem(p, sku->data, sku->len);

    if (kind == NGX_HTTP_CART_CACHE_SHIPPING) {
        *p++ = '|';
        p = ngx_cpymem(p, country->data, country->len);
        *p++ = '|';
        p = ngx_cpymem(p, postal_code->data, postal_code->len);
    }

    key->len = p - key->data;

    return NGX_OK;
}


/* under the zone's lock */

static ngx_http_cart_cache_node_t *
ngx_http_cart_cache_lookup(ngx_http_cart_cache_ctx_t *ctx, uint32_t hash,
    ngx_str_t *key)
{
    ngx_int_t                    rc;
    ngx_rbtree_node_t           *node, *sentinel;
    ngx_http_cart_cache_node_t  *e;

    node = ctx->sh->rbtree.root;
    sentinel = ctx->sh->rbtree.sentinel;

    while (node != sentinel) {

        if (hash < node->key) {
            node = node->left;
            continue;
        }

        if (hash > node->key) {
            node = node->right;
            continue;
        }

        /* hash == node->key */

        e = ngx_http_cart_cache_entry(node);

        rc = ngx_memn2cmp(key->data, e->data, key->len, (size_t) e->len);

        if (rc == 0) {
            return e;
        }

        node = (rc < 0) ? node->left : node->right;
    }

    return NULL;
}


static void
ngx_http_cart_cache_delete(ngx_http_cart_cache_ctx_t *ctx,
    ngx_http_cart_cache_node_t *e)
{
    ngx_rbtree_node_t  *node;

    node = ngx_http_cart_cache_rbnode(e);

    ngx_queue_remove(&e->queue);
    ngx_rbtree_delete(&ctx->sh->rbtree, node);
    ngx_slab_free_locked(ctx->shpool, node);
}


/*
 * force == 0: deletes one or two of the oldest entries if they can no
 * longer be served; force == 1: deletes the oldest entry whatever its
 * age, and one or two more that can no longer be served
 */

static void
ngx_http_cart_cache_expire(ngx_http_cart_cache_ctx_t *ctx, ngx_uint_t force,
    ngx_log_t *log)
{
    ngx_uint_t                   n;
    ngx_msec_t                   now;
    ngx_queue_t                 *q;
    ngx_http_cart_cache_node_t  *e;

    now = ngx_current_msec;

    for (n = 0; n < 3; n++) {

        if (ngx_queue_empty(&ctx->sh->queue)) {
            return;
        }

        q = ngx_queue_last(&ctx->sh->queue);
        e = ngx_queue_data(q, ngx_http_cart_cache_node_t, queue);

        if (!(force && n == 0)
            && (ngx_msec_int_t) (now - e->until) < 0)
        {
            /* the oldest is still servable: so are the others */
            return;
        }

        ngx_log_debug3(NGX_LOG_DEBUG_HTTP, log, 0,
                       "cart cache %s: \"%*s\"",
                       n == 0 && force ? "evict" : "expire",
                       (size_t) e->len, e->data);

        ngx_http_cart_cache_delete(ctx, e);
    }
}


/* a refresh that stores nothing: its entry may be refreshed by another */

static void
ngx_http_cart_cache_release(ngx_http_cart_cache_hold_t *hold)
{
    ngx_http_cart_cache_ctx_t   *ctx;
    ngx_http_cart_cache_node_t  *e;

    if (hold == NULL || hold->done) {
        return;
    }

    hold->done = 1;

    ctx = hold->zone->data;

    ngx_shmtx_lock(&ctx->shpool->mutex);

    e = ngx_http_cart_cache_lookup(ctx, hold->hash, &hold->key);

    if (e && e->updating && e->since == hold->since) {
        e->updating = 0;
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);
}


static void
ngx_http_cart_cache_cleanup(void *data)
{
    ngx_http_cart_cache_release(data);
}
