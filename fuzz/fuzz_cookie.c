/*
 * The guest-cookie parser (src/ngx_http_cart_identity.c, included for its
 * private cookie type): ngx_http_cart_cookie_session() on the Cookie
 * headers of a request, one per line of the input after its first byte,
 * for a cookie named "cart_guest" (cart_guest_cookie cart_guest secret=...).
 *
 * First byte, bit 0: every "cart_guest=<32 bytes>.<up to 20 bytes>"
 * in a line that has no third part gets the tag the module would give it
 * (".<tag>"), so that the fuzzer reaches the checks after the tag's;
 * bit 1: the lines are also the source of a session to make a cookie for
 * with ngx_http_cart_cookie_make(), which must then be read back as it.
 *
 * Checks: a session read is 32 lowercase hex characters that are in one of
 * the headers; a cookie made is read back as its session while valid.
 */

#include "fuzz.h"
#include "../src/ngx_http_cart_identity.c"


#define FUZZ_COOKIE_NAME  "cart_guest"


static ngx_http_cart_cookie_t  fuzz_cookie;


static void fuzz_cookie_setup(void);
static ngx_str_t fuzz_cookie_sign(ngx_pool_t *pool, u_char *p, u_char *last);
static void fuzz_cookie_make(ngx_pool_t *pool, const uint8_t *data,
    size_t size);


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char               *p, *last, *nl, *copy;
    ngx_int_t             rc;
    ngx_str_t             session, line;
    ngx_uint_t            flags, i;
    ngx_pool_t           *pool;
    ngx_table_elt_t      *h, **ph;
    ngx_http_request_t   *r;

    fuzz_init();
    fuzz_cookie_setup();

    if (size == 0) {
        return 0;
    }

    flags = data[0];

    pool = fuzz_pool();
    r = fuzz_request(pool);

    copy = fuzz_copy(pool, data + 1, size - 1);
    last = copy + size - 1;

    for (p = copy; p < last; p = nl + 1) {
        nl = ngx_strlchr(p, last, '\n');
        if (nl == NULL) {
            nl = last;
        }

        if (flags & 1) {
            line = fuzz_cookie_sign(pool, p, nl);

        } else {
            /* a header of its own, so that a read past it is seen */
            line.len = nl - p;
            line.data = fuzz_copy(pool, p, line.len);
        }

        h = ngx_list_push(&r->headers_in.headers);
        ph = ngx_array_push(&r->headers_in.cookies);
        fuzz_assert(h != NULL && ph != NULL);

        ngx_str_set(&h->key, "Cookie");
        h->lowcase_key = (u_char *) "cookie";
        h->hash = 1;
        h->value = line;
        *ph = h;
    }

    rc = ngx_http_cart_cookie_session(r, &fuzz_cookie, &session);
    fuzz_assert(rc == NGX_OK || rc == NGX_DECLINED);

    if (rc == NGX_OK) {
        fuzz_assert(session.len == NGX_HTTP_CART_SESSION_LEN);

        for (i = 0; i < session.len; i++) {
            fuzz_assert((session.data[i] >= '0' && session.data[i] <= '9')
                        || (session.data[i] >= 'a' && session.data[i] <= 'f'));
        }

        ph = r->headers_in.cookies.elts;

        for (i = 0; i < r->headers_in.cookies.nelts; i++) {
            if (session.data >= ph[i]->value.data
                && session.data + session.len
                   <= ph[i]->value.data + ph[i]->value.len)
            {
                break;
            }
        }

        fuzz_assert(i < r->headers_in.cookies.nelts);
    }

    if (flags & 2) {
        fuzz_cookie_make(pool, data + 1, size - 1);
    }

    ngx_destroy_pool(pool);

    return 0;
}


/* the line with the tags a signed cookie would have */

static ngx_str_t
fuzz_cookie_sign(ngx_pool_t *pool, u_char *p, u_char *last)
{
    u_char     *q, *start, *dot, *end, tag[NGX_HTTP_CART_TAG_LEN];
    size_t      n;
    ngx_str_t   line;

    static u_char  name[] = FUZZ_COOKIE_NAME "=";

    /* room for a tag per name */
    n = (last - p) / (sizeof(name) - 1) + 1;

    line.data = ngx_pnalloc(pool, (last - p) + n * (NGX_HTTP_CART_TAG_LEN + 1));
    fuzz_assert(line.data != NULL);

    q = line.data;

    while (p < last) {
        start = ngx_strlcasestrn(p, last, name, sizeof(name) - 2);

        if (start == NULL
            || last - start < (ssize_t) (sizeof(name) - 1
                                         + NGX_HTTP_CART_SESSION_LEN + 2))
        {
            break;
        }

        start += sizeof(name) - 1;

        q = ngx_cpymem(q, p, start - p);
        p = start;

        end = ngx_strlchr(p, last, ';');
        if (end == NULL) {
            end = last;
        }

        dot = p + NGX_HTTP_CART_SESSION_LEN;

        if (dot < end && *dot == '.' && dot + 1 < end
            && (size_t) (end - dot - 1) <= NGX_TIME_T_LEN
            && ngx_strlchr(dot + 1, end, '.') == NULL
            && ngx_http_cart_cookie_tag(&fuzz_cookie, p, dot + 1,
                                        end - dot - 1, tag)
               == NGX_OK)
        {
            q = ngx_cpymem(q, p, end - p);
            *q++ = '.';
            q = ngx_cpymem(q, tag, NGX_HTTP_CART_TAG_LEN);
            p = end;
        }
    }

    if (p < last) {
        q = ngx_cpymem(q, p, last - p);
    }

    line.len = q - line.data;

    return line;
}


/* a cookie made for a session of the input's bytes, read back */

static void
fuzz_cookie_make(ngx_pool_t *pool, const uint8_t *data, size_t size)
{
    u_char               *semi, hex[NGX_HTTP_CART_SESSION_LEN];
    time_t                max_age;
    ngx_int_t             rc;
    ngx_str_t             session, value, read;
    ngx_uint_t            i;
    ngx_table_elt_t      *h, **ph;
    ngx_http_request_t   *r;

    static u_char  digits[] = "0123456789abcdef";

    if (size < 1) {
        return;
    }

    for (i = 0; i < NGX_HTTP_CART_SESSION_LEN; i++) {
        hex[i] = digits[data[i % size] >> (i & 1 ? 0 : 4) & 0xf];
    }

    session.data = hex;
    session.len = sizeof(hex);

    /* from 1 second to about 4 years, as cart_guest_ttl could be */
    max_age = 1 + (data[0] | (size > 1 ? data[1] << 8 : 0)) * 1931;

    r = fuzz_request(pool);

    rc = ngx_http_cart_cookie_make(r, &fuzz_cookie, &session, max_age,
                                   &value);
    fuzz_assert(rc == NGX_OK);
    fuzz_touch(value.data, value.len);

    /* "cart_guest=<value>; Max-Age=...": the part a browser sends back */
    semi = ngx_strlchr(value.data, value.data + value.len, ';');
    fuzz_assert(semi != NULL);

    h = ngx_list_push(&r->headers_in.headers);
    ph = ngx_array_push(&r->headers_in.cookies);
    fuzz_assert(h != NULL && ph != NULL);

    h->value.data = value.data;
    h->value.len = semi - value.data;
    *ph = h;

    rc = ngx_http_cart_cookie_session(r, &fuzz_cookie, &read);
    fuzz_assert(rc == NGX_OK);
    fuzz_assert(read.len == session.len
                && ngx_memcmp(read.data, session.data, session.len) == 0);

    /* and the one that deletes it is no session */
    ngx_str_set(&session, "");
    rc = ngx_http_cart_cookie_make(r, &fuzz_cookie, &session, max_age,
                                   &value);
    fuzz_assert(rc == NGX_OK);

    semi = ngx_strlchr(value.data, value.data + value.len, ';');
    fuzz_assert(semi != NULL);

    h->value.data = value.data;
    h->value.len = semi - value.data;

    rc = ngx_http_cart_cookie_session(r, &fuzz_cookie, &read);
    fuzz_assert(rc == NGX_DECLINED);
}


/* what "cart_guest_cookie cart_guest secret=FILE secure" configures */

static void
fuzz_cookie_setup(void)
{
    static u_char  secret[] = "fuzz-guest-cookie-secret-of-32-bytes-at-least";

    ngx_str_set(&fuzz_cookie.name, FUZZ_COOKIE_NAME);
    fuzz_cookie.secret.data = secret;
    fuzz_cookie.secret.len = sizeof(secret) - 1;
    fuzz_cookie.max_age = NGX_CONF_UNSET;
    ngx_str_set(&fuzz_cookie.path, "/");
    ngx_str_set(&fuzz_cookie.samesite, "Lax");
    fuzz_cookie.secure = 1;
}
