/*
 * The JWT parser (src/ngx_http_cart_identity.c): ngx_http_cart_jwt_verify()
 * on an Authorization header made from the input, against one of four
 * configurations (the file is included for its private key type):
 *
 *   HS256; HS256 with iss and aud required; RS256; ES256 (keys made at
 *   start).
 *
 * The first byte of the input chooses (bits 0-1: the configuration) and
 * says how the rest becomes the header:
 *
 *   bit 2: the rest is "<header JSON>\n<claims JSON>": both are base64url
 *          encoded and, with HS256, signed, so that the fuzzer works on
 *          the JSON the verifier reads once the signature holds;
 *   bit 3: (without bit 2) the rest is "header.payload", which HS256
 *          signs and which gets ".<signature>";
 *   bit 4: no "Bearer " prefix is added (the rest is the whole value);
 *   neither bit 2 nor 3: the rest is the token as it is.
 *
 * Checks: a verified token gives a non-empty sub without NUL; a token the
 * HS256 configuration verifies verifies again (nothing in the request
 * changed).
 */

#include "fuzz.h"
#include "../src/ngx_http_cart_identity.c"


static ngx_http_cart_jwt_t  fuzz_jwts[4];


static void fuzz_jwt_setup(void);
static ngx_str_t fuzz_jwt_token(ngx_pool_t *pool, ngx_http_cart_jwt_t *jwt,
    ngx_uint_t flags, u_char *data, size_t size);
static void fuzz_b64(ngx_pool_t *pool, u_char *data, size_t len,
    ngx_str_t *out);


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char               *p;
    ngx_int_t             rc;
    ngx_str_t             token, sub;
    ngx_uint_t            flags;
    ngx_pool_t           *pool;
    ngx_table_elt_t      *h;
    ngx_http_request_t   *r;
    ngx_http_cart_jwt_t  *jwt;

    fuzz_init();
    fuzz_jwt_setup();

    if (size == 0) {
        return 0;
    }

    flags = data[0];
    jwt = &fuzz_jwts[flags & 3];

    pool = fuzz_pool();
    r = fuzz_request(pool);

    token = fuzz_jwt_token(pool, jwt, flags, fuzz_copy(pool, data + 1,
                                                       size - 1),
                           size - 1);

    h = ngx_list_push(&r->headers_in.headers);
    fuzz_assert(h != NULL);

    ngx_str_set(&h->key, "Authorization");
    h->lowcase_key = (u_char *) "authorization";
    h->hash = 1;

    if (flags & 0x10) {
        h->value = token;

    } else {
        h->value.len = sizeof("Bearer ") - 1 + token.len;
        h->value.data = ngx_pnalloc(pool, h->value.len);
        fuzz_assert(h->value.data != NULL);

        p = ngx_cpymem(h->value.data, "Bearer ", sizeof("Bearer ") - 1);
        if (token.len) {
            ngx_memcpy(p, token.data, token.len);
        }
    }

    r->headers_in.authorization = h;

    ngx_str_null(&sub);

    rc = ngx_http_cart_jwt_verify(r, jwt, &sub);
    fuzz_assert(rc == NGX_OK || rc == NGX_DECLINED || rc == NGX_ERROR);

    if (rc == NGX_OK) {
        fuzz_assert(sub.len > 0 && sub.data != NULL);
        fuzz_assert(ngx_strlen(sub.data) == sub.len);
        fuzz_touch(sub.data, sub.len);

        rc = ngx_http_cart_jwt_verify(r, jwt, &sub);
        fuzz_assert(rc == NGX_OK);
    }

    ngx_destroy_pool(pool);

    return 0;
}


static ngx_str_t
fuzz_jwt_token(ngx_pool_t *pool, ngx_http_cart_jwt_t *jwt, ngx_uint_t flags,
    u_char *data, size_t size)
{
    u_char     *nl, *p, mac[32];
    ngx_str_t   token, header, claims, signing, sig, raw;

    token.data = data;
    token.len = size;

    if (flags & 0x04) {
        /* "<header JSON>\n<claims JSON>" */

        nl = ngx_strlchr(data, data + size, '\n');

        fuzz_b64(pool, data, nl ? (size_t) (nl - data) : size, &header);

        if (nl) {
            fuzz_b64(pool, nl + 1, data + size - nl - 1, &claims);

        } else {
            ngx_str_set(&claims, "");
        }

        signing.len = header.len + 1 + claims.len;
        signing.data = ngx_pnalloc(pool, signing.len);
        fuzz_assert(signing.data != NULL);

        p = ngx_cpymem(signing.data, header.data, header.len);
        *p++ = '.';
        ngx_memcpy(p, claims.data, claims.len);

    } else if (flags & 0x08) {
        signing = token;

    } else {
        return token;
    }

    if (jwt->alg == NGX_HTTP_CART_JWT_HS256) {
        fuzz_assert(ngx_http_cart_hmac(&jwt->secret, &signing, mac)
                    == NGX_OK);

        raw.data = mac;
        raw.len = sizeof(mac);

    } else {
        /* an RS256 or ES256 signature of the right length, not valid */
        raw.len = jwt->alg == NGX_HTTP_CART_JWT_ES256
                  ? 64 : (size_t) EVP_PKEY_get_size(jwt->pkey);
        raw.data = ngx_pcalloc(pool, raw.len);
        fuzz_assert(raw.data != NULL);
        raw.data[0] = 1;
        raw.data[raw.len - 1] = 1;
    }

    sig.data = ngx_pnalloc(pool, ngx_base64_encoded_length(raw.len));
    fuzz_assert(sig.data != NULL);
    ngx_encode_base64url(&sig, &raw);

    token.len = signing.len + 1 + sig.len;
    token.data = ngx_pnalloc(pool, token.len);
    fuzz_assert(token.data != NULL);

    p = token.data;
    if (signing.len) {
        p = ngx_cpymem(p, signing.data, signing.len);
    }
    *p++ = '.';
    ngx_memcpy(p, sig.data, sig.len);

    return token;
}


static void
fuzz_b64(ngx_pool_t *pool, u_char *data, size_t len, ngx_str_t *out)
{
    ngx_str_t  src;

    src.data = data;
    src.len = len;

    out->data = ngx_pnalloc(pool, ngx_base64_encoded_length(len) + 1);
    fuzz_assert(out->data != NULL);

    ngx_encode_base64url(out, &src);
}


/* what cart_jwt_key would configure; the keys are made once */

static void
fuzz_jwt_setup(void)
{
    static ngx_uint_t  done;

    ngx_uint_t           i;
    ngx_http_cart_jwt_t *jwt;

    static u_char  secret[] = "fuzz-secret-of-at-least-32-bytes-for-hs256";

    if (done) {
        return;
    }

    done = 1;

    for (i = 0; i < 4; i++) {
        jwt = &fuzz_jwts[i];

        switch (i) {

        case 0:
        case 1:
            jwt->alg = NGX_HTTP_CART_JWT_HS256;
            ngx_str_set(&jwt->name, "HS256");
            jwt->secret.data = secret;
            jwt->secret.len = sizeof(secret) - 1;
            break;

        case 2:
            jwt->alg = NGX_HTTP_CART_JWT_RS256;
            ngx_str_set(&jwt->name, "RS256");
            jwt->pkey = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t) 2048);
            break;

        default:
            jwt->alg = NGX_HTTP_CART_JWT_ES256;
            ngx_str_set(&jwt->name, "ES256");
            jwt->pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
            break;
        }

        fuzz_assert(jwt->alg == NGX_HTTP_CART_JWT_HS256 || jwt->pkey != NULL);

        if (i == 1) {
            ngx_str_set(&jwt->iss, "https://idp.example");
            ngx_str_set(&jwt->aud, "cart");
        }
    }
}
