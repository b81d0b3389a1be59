/*
 * yajl glue: parse trees and generator output live in the request pool, so
 * a response body is built in place and sent without a copy.
 */

#include "ngx_http_cart_json.h"
#include <yajl/yajl_parse.h>


/* the first size of a generator's output buffer, doubled as it fills */
#define NGX_HTTP_CART_JSON_OUT  1024

/* the first room for the members of an object or array, doubled */
#define NGX_HTTP_CART_JSON_MEMBERS  8


/* an object or array being parsed */
typedef struct ngx_http_cart_json_level_s  ngx_http_cart_json_level_t;

struct ngx_http_cart_json_level_s {
    yajl_val                     value;
    const char                  *key;       /* of the object's next value */
    size_t                       size;      /* room in keys and values */
    ngx_http_cart_json_level_t  *next;
};


typedef struct {
    ngx_pool_t                  *pool;
    yajl_val                     root;
    ngx_http_cart_json_level_t  *stack;     /* the innermost open level */
    ngx_http_cart_json_level_t  *free;      /* closed levels, for reuse */
} ngx_http_cart_json_tree_t;


static yajl_val ngx_http_cart_json_value(ngx_http_cart_json_tree_t *tree,
    yajl_type type);
static char *ngx_http_cart_json_copy(ngx_http_cart_json_tree_t *tree,
    const void *s, size_t len);
static int ngx_http_cart_json_add(ngx_http_cart_json_tree_t *tree,
    yajl_val v);
static int ngx_http_cart_json_open(ngx_http_cart_json_tree_t *tree,
    yajl_type type);
static int ngx_http_cart_json_close(void *ctx);
static int ngx_http_cart_json_start_map(void *ctx);
static int ngx_http_cart_json_start_array(void *ctx);
static int ngx_http_cart_json_map_key(void *ctx, const unsigned char *key,
    size_t len);
static int ngx_http_cart_json_string(void *ctx, const unsigned char *s,
    size_t len);
static int ngx_http_cart_json_number(void *ctx, const char *s, size_t len);
static int ngx_http_cart_json_null(void *ctx);
static int ngx_http_cart_json_boolean(void *ctx, int b);
static void ngx_http_cart_json_print(void *ctx, const char *str, size_t len);
static ngx_int_t ngx_http_cart_json_grow(ngx_http_cart_json_gen_t *json,
    size_t len);
static uint64_t ngx_http_cart_json_abs(int64_t n);
static u_char *ngx_http_cart_json_digits(u_char *last, uint64_t n,
    ngx_uint_t width);
static u_char *ngx_http_cart_json_ymd(u_char *p, ngx_tm_t *tm);
static u_char *ngx_http_cart_json_two(u_char *p, ngx_uint_t n);
static void *ngx_http_cart_json_malloc(void *ctx, size_t size);
static void *ngx_http_cart_json_realloc(void *ctx, void *ptr, size_t size);
static void ngx_http_cart_json_free(void *ctx, void *ptr);


static yajl_callbacks  ngx_http_cart_json_callbacks = {
    ngx_http_cart_json_null,
    ngx_http_cart_json_boolean,
    NULL,                               /* no yajl_integer nor yajl_double: */
    NULL,                               /* numbers come as text */
    ngx_http_cart_json_number,
    ngx_http_cart_json_string,
    ngx_http_cart_json_start_map,
    ngx_http_cart_json_map_key,
    ngx_http_cart_json_close,
    ngx_http_cart_json_start_array,
    ngx_http_cart_json_close
};


/*
 * The tree yajl_tree_parse() would build, but in the pool: no malloc() per
 * value and no cleanup to free it.
 */

yajl_val
ngx_http_cart_json_parse(ngx_pool_t *pool, u_char *data, size_t len)
{
    yajl_handle                 h;
    yajl_status                 rc;
    yajl_alloc_funcs            funcs;
    ngx_http_cart_json_tree_t   tree;

    /* an embedded NUL is malformed, as for yajl_tree_parse() */

    if (len == 0 || ngx_strlchr(data, data + len, '\0') != NULL) {
        return NULL;
    }

    funcs.malloc = ngx_http_cart_json_malloc;
    funcs.realloc = ngx_http_cart_json_realloc;
    funcs.free = ngx_http_cart_json_free;
    funcs.ctx = pool;

    tree.pool = pool;
    tree.root = NULL;
    tree.stack = NULL;
    tree.free = NULL;

    h = yajl_alloc(&ngx_http_cart_json_callbacks, &funcs, &tree);
    if (h == NULL) {
        return NULL;
    }

    rc = yajl_parse(h, data, len);
    if (rc == yajl_status_ok) {
        rc = yajl_complete_parse(h);
    }

    yajl_free(h);

    if (rc != yajl_status_ok) {
        return NULL;
    }

    return tree.root;
}


static yajl_val
ngx_http_cart_json_value(ngx_http_cart_json_tree_t *tree, yajl_type type)
{
    yajl_val  v;

    v = ngx_pcalloc(tree->pool, sizeof(struct yajl_val_s));
    if (v == NULL) {
        return NULL;
    }

    v->type = type;

    return v;
}


static char *
ngx_http_cart_json_copy(ngx_http_cart_json_tree_t *tree, const void *s,
    size_t len)
{
    u_char  *p;

    p = ngx_pnalloc(tree->pool, len + 1);
    if (p == NULL) {
        return NULL;
    }

    ngx_memcpy(p, s, len);
    p[len] = '\0';

    return (char *) p;
}


/* a complete value goes to the open array or object, or is the root */

static int
ngx_http_cart_json_add(ngx_http_cart_json_tree_t *tree, yajl_val v)
{
    size_t                       n;
    yajl_val                     parent, *values;
    ngx_http_cart_json_level_t  *top;

    if (v == NULL) {
        return 0;
    }

    top = tree->stack;

    if (top == NULL) {
        tree->root = v;
        return 1;
    }

    parent = top->value;

    if (YAJL_IS_ARRAY(parent)) {
        n = parent->u.array.len;

        if (n == top->size) {
            top->size = n ? 2 * n : NGX_HTTP_CART_JSON_MEMBERS;

            values = ngx_palloc(tree->pool, top->size * sizeof(yajl_val));
            if (values == NULL) {
                return 0;
            }

            /* the first room has nothing to copy, from NULL: memcpy()
             * of NULL is undefined even for 0 bytes */
            if (n) {
                ngx_memcpy(values, parent->u.array.values,
                           n * sizeof(yajl_val));
            }

            parent->u.array.values = values;
        }

        parent->u.array.values[n] = v;
        parent->u.array.len++;

        return 1;
    }

    n = parent->u.object.len;

    if (n == top->size) {
        top->size = n ? 2 * n : NGX_HTTP_CART_JSON_MEMBERS;

        /* keys and values share a block */

        values = ngx_palloc(tree->pool,
                            top->size * (sizeof(yajl_val) + sizeof(char *)));
        if (values == NULL) {
            return 0;
        }

        if (n) {
            ngx_memcpy(values, parent->u.object.values, n * sizeof(yajl_val));
            ngx_memcpy(values + top->size, parent->u.object.keys,
                       n * sizeof(char *));
        }

        parent->u.object.values = values;
        parent->u.object.keys = (const char **) (values + top->size);
    }

    parent->u.object.keys[n] = top->key;
    parent->u.object.values[n] = v;
    parent->u.object.len++;

    return 1;
}


static int
ngx_http_cart_json_open(ngx_http_cart_json_tree_t *tree, yajl_type type)
{
    ngx_http_cart_json_level_t  *level;

    level = tree->free;

    if (level) {
        tree->free = level->next;

    } else {
        level = ngx_palloc(tree->pool, sizeof(ngx_http_cart_json_level_t));
        if (level == NULL) {
            return 0;
        }
    }

    level->value = ngx_http_cart_json_value(tree, type);
    if (level->value == NULL) {
        return 0;
    }

    level->key = NULL;
    level->size = 0;
    level->next = tree->stack;
    tree->stack = level;

    return 1;
}


static int
ngx_http_cart_json_close(void *ctx)
{
    ngx_http_cart_json_tree_t   *tree = ctx;
    ngx_http_cart_json_level_t  *level;

    level = tree->stack;
    tree->stack = level->next;

    level->next = tree->free;
    tree->free = level;

    return ngx_http_cart_json_add(tree, level->value);
}


static int
ngx_http_cart_json_start_map(void *ctx)
{
    return ngx_http_cart_json_open(ctx, yajl_t_object);
}


static int
ngx_http_cart_json_start_array(void *ctx)
{
    return ngx_http_cart_json_open(ctx, yajl_t_array);
}


/*
 * Strict: a duplicate key would let a validator in front and the cart read
 * two different requests; a "\u0000" would cut a C string short.
 */

static int
ngx_http_cart_json_map_key(void *ctx, const unsigned char *key, size_t len)
{
    ngx_uint_t                  i;
    yajl_val                    object;
    ngx_http_cart_json_tree_t  *tree = ctx;

    if (ngx_strlchr((u_char *) key, (u_char *) key + len, '\0') != NULL) {
        return 0;
    }

    object = tree->stack->value;

    for (i = 0; i < object->u.object.len; i++) {
        if (ngx_strlen(object->u.object.keys[i]) == len
            && ngx_strncmp(object->u.object.keys[i], key, len) == 0)
        {
            return 0;
        }
    }

    tree->stack->key = ngx_http_cart_json_copy(tree, key, len);

    return tree->stack->key != NULL;
}


static int
ngx_http_cart_json_string(void *ctx, const unsigned char *s, size_t len)
{
    yajl_val                    v;
    ngx_http_cart_json_tree_t  *tree = ctx;

    if (ngx_strlchr((u_char *) s, (u_char *) s + len, '\0') != NULL) {
        return 0;
    }

    v = ngx_http_cart_json_value(tree, yajl_t_string);
    if (v == NULL) {
        return 0;
    }

    v->u.string = ngx_http_cart_json_copy(tree, s, len);
    if (v->u.string == NULL) {
        return 0;
    }

    return ngx_http_cart_json_add(tree, v);
}


/*
 * Flags as yajl_tree_parse() sets them: an integer when all digits within
 * -LLONG_MAX..LLONG_MAX ((double) n rounds as strtod() would), a double
 * when strtod() reads it all without a range error.
 */

static int
ngx_http_cart_json_number(void *ctx, const char *s, size_t len)
{
    char                       *end;
    u_char                     *p, *last;
    uint64_t                    n;
    yajl_val                    v;
    ngx_uint_t                  negative;
    ngx_http_cart_json_tree_t  *tree = ctx;

    v = ngx_http_cart_json_value(tree, yajl_t_number);
    if (v == NULL) {
        return 0;
    }

    v->u.number.r = ngx_http_cart_json_copy(tree, s, len);
    if (v->u.number.r == NULL) {
        return 0;
    }

    p = (u_char *) s;
    last = p + len;

    negative = (*p == '-');
    p += negative;

    for (n = 0; p < last && *p >= '0' && *p <= '9'; p++) {
        if (n > ((uint64_t) LLONG_MAX - (uint64_t) (*p - '0')) / 10) {
            break;
        }

        n = n * 10 + (*p - '0');
    }

    if (p == last) {
        v->u.number.i = negative ? -(long long) n : (long long) n;
        v->u.number.d = negative ? -(double) n : (double) n;
        v->u.number.flags = YAJL_NUMBER_INT_VALID | YAJL_NUMBER_DOUBLE_VALID;

        return ngx_http_cart_json_add(tree, v);
    }

    v->u.number.i = negative ? LLONG_MIN : LLONG_MAX;

    errno = 0;
    v->u.number.d = strtod(v->u.number.r, &end);

    if (errno == 0 && *end == '\0') {
        v->u.number.flags = YAJL_NUMBER_DOUBLE_VALID;
    }

    return ngx_http_cart_json_add(tree, v);
}


static int
ngx_http_cart_json_null(void *ctx)
{
    return ngx_http_cart_json_add(ctx,
                                  ngx_http_cart_json_value(ctx, yajl_t_null));
}


static int
ngx_http_cart_json_boolean(void *ctx, int b)
{
    return ngx_http_cart_json_add(ctx,
                        ngx_http_cart_json_value(ctx, b ? yajl_t_true
                                                        : yajl_t_false));
}


yajl_val
ngx_http_cart_json_field(yajl_val object, const char *name)
{
    size_t  i;

    if (!YAJL_IS_OBJECT(object)) {
        return NULL;
    }

    for (i = 0; i < object->u.object.len; i++) {
        if (ngx_strcmp(object->u.object.keys[i], name) == 0) {
            return object->u.object.values[i];
        }
    }

    return NULL;
}


ngx_int_t
ngx_http_cart_json_integer(yajl_val v, int64_t *n)
{
    u_char  *p;

    if (!YAJL_IS_NUMBER(v)) {
        return NGX_DECLINED;
    }

    if (YAJL_IS_INTEGER(v)) {
        *n = YAJL_GET_INTEGER(v);
        return NGX_OK;
    }

    /* only digits, yet no integer: it did not fit in 64 bits */

    p = (u_char *) v->u.number.r;
    if (*p == '-') {
        p++;
    }

    while (*p >= '0' && *p <= '9') {
        p++;
    }

    return *p == '\0' ? NGX_ABORT : NGX_DECLINED;
}


/*
 * Read from the text, never through a double: "29.99" is 2999 exactly.
 * Decimals past two must be zeros; exponents are refused.
 */

ngx_int_t
ngx_http_cart_json_money(yajl_val v, int64_t *minor)
{
    u_char      *p;
    int64_t      units, cents;
    ngx_uint_t   digits, negative;

    if (!YAJL_IS_NUMBER(v)) {
        return NGX_DECLINED;
    }

    p = (u_char *) v->u.number.r;
    negative = (*p == '-');
    if (negative) {
        p++;
    }

    units = 0;
    digits = 0;

    while (*p >= '0' && *p <= '9') {
        units = units * 10 + (*p++ - '0');
        if (++digits > 12) {
            return NGX_ABORT;
        }
    }

    if (digits == 0) {
        return NGX_DECLINED;
    }

    cents = 0;

    if (*p == '.') {
        p++;

        for (digits = 0; *p >= '0' && *p <= '9'; p++, digits++) {
            if (digits < 2) {
                cents = cents * 10 + (*p - '0');

            } else if (*p != '0') {
                return NGX_DECLINED;
            }
        }

        if (digits == 0) {
            return NGX_DECLINED;
        }

        if (digits == 1) {
            cents *= 10;
        }
    }

    if (*p != '\0') {
        return NGX_DECLINED;
    }

    *minor = units * 100 + cents;

    if (*minor > NGX_HTTP_CART_MAX_AMOUNT) {
        return NGX_ABORT;
    }

    if (negative) {
        *minor = -*minor;
    }

    return NGX_OK;
}


/*
 * yajl prints into our pool buffer rather than its slower yajl_buf; it
 * still checks the structure and escapes the strings.
 */

ngx_http_cart_json_gen_t *
ngx_http_cart_json_gen(ngx_pool_t *pool)
{
    yajl_alloc_funcs           funcs;
    ngx_http_cart_json_gen_t  *json;

    json = ngx_pcalloc(pool, sizeof(ngx_http_cart_json_gen_t));
    if (json == NULL) {
        return NULL;
    }

    json->pool = pool;

    funcs.malloc = ngx_http_cart_json_malloc;
    funcs.realloc = ngx_http_cart_json_realloc;
    funcs.free = ngx_http_cart_json_free;
    funcs.ctx = pool;

    json->g = yajl_gen_alloc(&funcs);
    if (json->g == NULL || ngx_http_cart_json_grow(json, 0) != NGX_OK) {
        return NULL;
    }

    if (!yajl_gen_config(json->g, yajl_gen_print_callback,
                         ngx_http_cart_json_print, json))
    {
        return NULL;
    }

    return json;
}


ngx_int_t
ngx_http_cart_json_text(ngx_http_cart_json_gen_t *json, ngx_str_t *text)
{
    if (json->failed) {
        return NGX_ERROR;
    }

    text->data = json->start;
    text->len = json->pos - json->start;

    return NGX_OK;
}


/* a generator used again (a stream's events): its buffer is kept */

void
ngx_http_cart_json_reset(ngx_http_cart_json_gen_t *json)
{
    yajl_gen_reset(json->g, NULL);

    json->pos = json->start;
    json->failed = 0;
}


/* called per token, mostly a byte or a few: growth is kept out of line */

static void
ngx_http_cart_json_print(void *ctx, const char *str, size_t len)
{
    u_char                    *p;
    ngx_http_cart_json_gen_t  *json = ctx;

    if ((size_t) (json->end - json->pos) < len
        && ngx_http_cart_json_grow(json, len) != NGX_OK)
    {
        return;
    }

    p = json->pos;
    json->pos += len;

    if (len == 1) {
        *p = *str;
        return;
    }

    /* an empty string may come as NULL: memcpy() of NULL is undefined */
    if (len) {
        ngx_memcpy(p, str, len);
    }
}


/* room for "len" more bytes: the buffer doubles as it fills */

static ngx_int_t
ngx_http_cart_json_grow(ngx_http_cart_json_gen_t *json, size_t len)
{
    u_char  *p;
    size_t   used, size;

    if (json->failed) {
        return NGX_ERROR;
    }

    used = json->pos - json->start;
    size = ngx_max(2 * (size_t) (json->end - json->start),
                   NGX_HTTP_CART_JSON_OUT);

    while (size < used + len) {
        size *= 2;
    }

    p = ngx_pnalloc(json->pool, size);
    if (p == NULL) {
        /* yajl's print cannot fail: ngx_http_cart_json_text() will */
        json->failed = 1;
        return NGX_ERROR;
    }

    if (used) {
        ngx_memcpy(p, json->start, used);

        /* gives back an outgrown buffer that was a large allocation */
        (void) ngx_pfree(json->pool, json->start);
    }

    json->start = p;
    json->pos = p + used;
    json->end = p + size;

    return NGX_OK;
}


void
ngx_http_cart_json_str(yajl_gen g, ngx_str_t *s)
{
    yajl_gen_string(g, s->data, s->len);
}


/* digits by hand: cheaper than yajl_gen_integer()'s snprintf() */

void
ngx_http_cart_json_int(yajl_gen g, int64_t n)
{
    u_char  buf[NGX_INT64_LEN], *p, *last;

    last = buf + sizeof(buf);
    p = ngx_http_cart_json_digits(last, ngx_http_cart_json_abs(n), 1);

    if (n < 0) {
        *--p = '-';
    }

    yajl_gen_number(g, (const char *) p, last - p);
}


void
ngx_http_cart_json_amount(yajl_gen g, int64_t minor)
{
    u_char    buf[NGX_INT64_LEN + 2], *p, *last;
    uint64_t  abs;

    abs = ngx_http_cart_json_abs(minor);

    last = buf + sizeof(buf);
    p = ngx_http_cart_json_digits(last, abs % 100, 2);
    *--p = '.';
    p = ngx_http_cart_json_digits(p, abs / 100, 1);

    if (minor < 0) {
        *--p = '-';
    }

    yajl_gen_number(g, (const char *) p, last - p);
}


/* RFC 3339 UTC: "2026-03-14T10:00:00Z" */

void
ngx_http_cart_json_time(yajl_gen g, time_t t)
{
    u_char    buf[NGX_TIME_T_LEN + sizeof("-01-01T00:00:00Z")], *p;
    ngx_tm_t  tm;

    ngx_gmtime(t, &tm);

    p = ngx_http_cart_json_ymd(buf, &tm);
    *p++ = 'T';
    p = ngx_http_cart_json_two(p, tm.ngx_tm_hour);
    *p++ = ':';
    p = ngx_http_cart_json_two(p, tm.ngx_tm_min);
    *p++ = ':';
    p = ngx_http_cart_json_two(p, tm.ngx_tm_sec);
    *p++ = 'Z';

    yajl_gen_string(g, buf, p - buf);
}


/* "2026-03-14" */

void
ngx_http_cart_json_day(yajl_gen g, time_t t)
{
    u_char    buf[NGX_TIME_T_LEN + sizeof("-01-01")], *p;
    ngx_tm_t  tm;

    ngx_gmtime(t, &tm);

    p = ngx_http_cart_json_ymd(buf, &tm);

    yajl_gen_string(g, buf, p - buf);
}


/* a 64-bit magnitude, INT64_MIN included */

static uint64_t
ngx_http_cart_json_abs(int64_t n)
{
    return n < 0 ? (uint64_t) 0 - (uint64_t) n : (uint64_t) n;
}


/* the decimal digits of n, at least "width" of them, ending before "last" */

static u_char *
ngx_http_cart_json_digits(u_char *last, uint64_t n, ngx_uint_t width)
{
    u_char  *p;

    p = last;

    do {
        *--p = (u_char) ('0' + n % 10);
        n /= 10;
    } while (n || (ngx_uint_t) (last - p) < width);

    return p;
}


/* "YYYY-MM-DD"; ngx_gmtime() years start at 1970 */

static u_char *
ngx_http_cart_json_ymd(u_char *p, ngx_tm_t *tm)
{
    u_char  year[NGX_INT_T_LEN], *y, *last;

    last = year + sizeof(year);
    y = ngx_http_cart_json_digits(last, (ngx_uint_t) tm->ngx_tm_year, 4);

    p = ngx_cpymem(p, y, last - y);
    *p++ = '-';
    p = ngx_http_cart_json_two(p, tm->ngx_tm_mon);
    *p++ = '-';

    return ngx_http_cart_json_two(p, tm->ngx_tm_mday);
}


static u_char *
ngx_http_cart_json_two(u_char *p, ngx_uint_t n)
{
    *p++ = (u_char) ('0' + n / 10);
    *p++ = (u_char) ('0' + n % 10);

    return p;
}


/*
 * Pool allocator for yajl. yajl's realloc does not pass the old size, so
 * each block starts with its size; free is a no-op, the pool frees all.
 */

static void *
ngx_http_cart_json_malloc(void *ctx, size_t size)
{
    size_t  *p;

    p = ngx_palloc(ctx, sizeof(size_t) + size);
    if (p == NULL) {
        return NULL;
    }

    *p = size;

    return p + 1;
}


static void *
ngx_http_cart_json_realloc(void *ctx, void *ptr, size_t size)
{
    size_t  *old;
    void    *p;

    if (ptr == NULL) {
        return ngx_http_cart_json_malloc(ctx, size);
    }

    old = (size_t *) ptr - 1;

    if (*old >= size) {
        return ptr;
    }

    p = ngx_http_cart_json_malloc(ctx, size);
    if (p == NULL) {
        return NULL;
    }

    ngx_memcpy(p, ptr, *old);

    return p;
}


static void
ngx_http_cart_json_free(void *ctx, void *ptr)
{
}
