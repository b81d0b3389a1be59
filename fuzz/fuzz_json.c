/*
 * The JSON body parser and its readers (src/ngx_http_cart_json.c): any
 * bytes to ngx_http_cart_json_parse(), as a request body or an upstream
 * document arrives; every value of the tree through the readers the
 * module validates with (ngx_http_cart_json_field, _integer, _money); then
 * the tree printed again with the module's generator (strings, integers,
 * amounts, dates), which must give JSON that parses.
 *
 * Strings go through ngx_http_cart_valid_id() (src/ngx_http_cart_reply.c)
 * too, as sku_id and seller_id do.
 *
 * Checks: a key is found by ngx_http_cart_json_field() as the value it
 * names (the parser refuses duplicates); an amount read is within
 * NGX_HTTP_CART_MAX_AMOUNT; an id is valid exactly when it is 1 to 64 of
 * [A-Za-z0-9._:-] and not "." nor ".."; the printed text parses to as many
 * values.
 */

#include "fuzz.h"
#include "ngx_http_cart_json.h"
#include "ngx_http_cart_reply.h"


/* yajl's generator refuses more than 128 levels */
#define FUZZ_JSON_DEPTH  100


static ngx_uint_t fuzz_json_walk(yajl_val v, yajl_gen g);
static ngx_uint_t fuzz_json_depth(yajl_val v);
static void fuzz_json_id(ngx_str_t *s);


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char                    *copy;
    yajl_val                   v, again;
    ngx_str_t                  text;
    ngx_uint_t                 n, m;
    ngx_pool_t                *pool;
    ngx_http_cart_json_gen_t  *json;

    fuzz_init();

    pool = fuzz_pool();
    copy = fuzz_copy(pool, data, size);

    v = ngx_http_cart_json_parse(pool, copy, size);

    if (v != NULL && fuzz_json_depth(v) > FUZZ_JSON_DEPTH) {
        (void) fuzz_json_walk(v, NULL);

    } else if (v != NULL) {
        json = ngx_http_cart_json_gen(pool);
        fuzz_assert(json != NULL);

        n = fuzz_json_walk(v, json->g);

        fuzz_assert(ngx_http_cart_json_text(json, &text) == NGX_OK);
        fuzz_touch(text.data, text.len);

        again = ngx_http_cart_json_parse(pool, text.data, text.len);
        fuzz_assert(again != NULL);

        m = fuzz_json_walk(again, NULL);
        fuzz_assert(m == n);

        /* the generator used again, as a stream's events use it */
        ngx_http_cart_json_reset(json);
        ngx_http_cart_json_key(json->g, "k");
        fuzz_assert(ngx_http_cart_json_text(json, &text) == NGX_OK);
    }

    ngx_destroy_pool(pool);

    return 0;
}


static ngx_uint_t
fuzz_json_depth(yajl_val v)
{
    size_t      i;
    ngx_uint_t  d, max;

    max = 0;

    if (YAJL_IS_OBJECT(v)) {
        for (i = 0; i < v->u.object.len; i++) {
            d = fuzz_json_depth(v->u.object.values[i]);
            max = ngx_max(max, d);
        }

    } else if (YAJL_IS_ARRAY(v)) {
        for (i = 0; i < v->u.array.len; i++) {
            d = fuzz_json_depth(v->u.array.values[i]);
            max = ngx_max(max, d);
        }
    }

    return max + 1;
}


/*
 * The values of the tree, counted; printed with "g" if not NULL: numbers
 * as the module prints those it reads (amounts with
 * ngx_http_cart_json_amount(), integers with _int(), or as dates with
 * _time() and _day()), the text yajl kept otherwise.
 */

static ngx_uint_t
fuzz_json_walk(yajl_val v, yajl_gen g)
{
    size_t       i, len;
    int64_t      n, minor;
    ngx_str_t    s;
    ngx_int_t    rc;
    ngx_uint_t   count;
    const char  *key;

    fuzz_assert(v != NULL);

    count = 1;

    switch (v->type) {

    case yajl_t_string:
        len = ngx_strlen(v->u.string);
        fuzz_touch(v->u.string, len + 1);

        s.data = (u_char *) v->u.string;
        s.len = len;

        fuzz_json_id(&s);

        if (g) {
            ngx_http_cart_json_str(g, &s);
        }

        break;

    case yajl_t_number:
        fuzz_touch(v->u.number.r, ngx_strlen(v->u.number.r) + 1);

        rc = ngx_http_cart_json_integer(v, &n);
        fuzz_assert(rc == NGX_OK || rc == NGX_DECLINED || rc == NGX_ABORT);

        if (rc == NGX_OK) {
            fuzz_assert(YAJL_IS_INTEGER(v) && n == YAJL_GET_INTEGER(v));
        }

        rc = ngx_http_cart_json_money(v, &minor);
        fuzz_assert(rc == NGX_OK || rc == NGX_DECLINED || rc == NGX_ABORT);

        if (rc == NGX_OK) {
            fuzz_assert(minor <= NGX_HTTP_CART_MAX_AMOUNT
                        && minor >= -NGX_HTTP_CART_MAX_AMOUNT);
        }

        if (g == NULL) {
            break;
        }

        if (rc == NGX_OK && (minor & 1)) {
            ngx_http_cart_json_amount(g, minor);

        } else if (ngx_http_cart_json_integer(v, &n) == NGX_OK) {
            /* any time_t, as a line's added_at from Redis may be */
            if (n & 1) {
                ngx_http_cart_json_time(g, (time_t) n);

            } else if (n & 2) {
                ngx_http_cart_json_day(g, (time_t) n);

            } else {
                ngx_http_cart_json_int(g, n);
            }

        } else {
            yajl_gen_number(g, v->u.number.r, ngx_strlen(v->u.number.r));
        }

        break;

    case yajl_t_object:
        if (g) {
            yajl_gen_map_open(g);
        }

        for (i = 0; i < v->u.object.len; i++) {
            key = v->u.object.keys[i];
            fuzz_assert(key != NULL);
            fuzz_touch(key, ngx_strlen(key) + 1);

            /* keys are unique: the field of a key is its value */
            fuzz_assert(ngx_http_cart_json_field(v, key)
                        == v->u.object.values[i]);

            if (g) {
                yajl_gen_string(g, (const unsigned char *) key,
                                ngx_strlen(key));
            }

            count += fuzz_json_walk(v->u.object.values[i], g);
        }

        fuzz_assert(ngx_http_cart_json_field(v, "\x01no such key") == NULL);

        if (g) {
            yajl_gen_map_close(g);
        }

        break;

    case yajl_t_array:
        fuzz_assert(ngx_http_cart_json_field(v, "a") == NULL);

        if (g) {
            yajl_gen_array_open(g);
        }

        for (i = 0; i < v->u.array.len; i++) {
            count += fuzz_json_walk(v->u.array.values[i], g);
        }

        if (g) {
            yajl_gen_array_close(g);
        }

        break;

    case yajl_t_true:
    case yajl_t_false:
        if (g) {
            yajl_gen_bool(g, v->type == yajl_t_true);
        }

        break;

    case yajl_t_null:
        if (g) {
            yajl_gen_null(g);
        }

        break;

    default:
        fuzz_assert(0);
    }

    return count;
}


/* an id of a Redis key or line: what ngx_http_cart_valid_id() promises */

static void
fuzz_json_id(ngx_str_t *s)
{
    size_t      i;
    ngx_uint_t  valid;

    valid = s->len >= 1 && s->len <= NGX_HTTP_CART_MAX_SKU_LEN
            && !(s->len == 1 && s->data[0] == '.')
            && !(s->len == 2 && s->data[0] == '.' && s->data[1] == '.');

    for (i = 0; valid && i < s->len; i++) {
        valid = (s->data[i] >= 'a' && s->data[i] <= 'z')
                || (s->data[i] >= 'A' && s->data[i] <= 'Z')
                || (s->data[i] >= '0' && s->data[i] <= '9')
                || s->data[i] == '.' || s->data[i] == '_'
                || s->data[i] == ':' || s->data[i] == '-';
    }

    fuzz_assert((ngx_http_cart_valid_id(s, NGX_HTTP_CART_MAX_SKU_LEN)
                 == NGX_OK)
                == valid);
}
