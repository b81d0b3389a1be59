/*
 * JWT verification, signed guest cookies and random ids over libcrypto.
 * Not libjwt: its jwt_decode() takes the algorithm from the token (algorithm
 * confusion); here it is the configured one and a token naming another is
 * refused before any signature is checked.
 */

#include "ngx_http_cart_identity.h"
#include "ngx_http_cart_json.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>


#define NGX_HTTP_CART_JWT_HS256    1
#define NGX_HTTP_CART_JWT_RS256    2
#define NGX_HTTP_CART_JWT_ES256    3

/* clocks of the token issuer and of nginx may differ a little */
#define NGX_HTTP_CART_JWT_LEEWAY   60
#define NGX_HTTP_CART_JWT_MAX_LEN  8192

/* RFC 7518 3.2: an HS256 key must have at least 256 bits */
#define NGX_HTTP_CART_MIN_SECRET   32
#define NGX_HTTP_CART_MAX_KEYFILE  65536

#define NGX_HTTP_CART_TAG_LEN      43     /* base64url of 32 bytes */


struct ngx_http_cart_jwt_s {
    ngx_uint_t                alg;
    ngx_str_t                 name;       /* "HS256", as in the header */
    ngx_str_t                 secret;     /* HS256 */
    EVP_PKEY                 *pkey;       /* RS256, ES256 */
    ngx_str_t                 iss;        /* required "iss", or empty */
    ngx_str_t                 aud;        /* required in "aud", or empty */
};


struct ngx_http_cart_cookie_s {
    ngx_str_t                 name;
    ngx_str_t                 secret;
    time_t                    max_age;    /* NGX_CONF_UNSET: the caller's */
    ngx_str_t                 path;
    ngx_str_t                 samesite;
    ngx_flag_t                secure;
};


static ngx_int_t ngx_http_cart_read_key_file(ngx_conf_t *cf, ngx_str_t *name,
    ngx_str_t *content);
static ngx_int_t ngx_http_cart_secret(ngx_conf_t *cf, ngx_str_t *content,
    ngx_str_t *secret);
static char *ngx_http_cart_jwt_pem(ngx_conf_t *cf, ngx_http_cart_jwt_t *jwt,
    ngx_str_t *content, ngx_str_t *alg);
static void ngx_http_cart_pkey_free(void *data);
static ngx_int_t ngx_http_cart_jwt_refuse(ngx_http_request_t *r,
    const char *reason);
static ngx_int_t ngx_http_cart_jwt_signature(ngx_http_cart_jwt_t *jwt,
    ngx_str_t *data, ngx_str_t *sig);
static ngx_int_t ngx_http_cart_jwt_claims(ngx_http_request_t *r,
    ngx_http_cart_jwt_t *jwt, yajl_val claims, ngx_str_t *sub);
static ngx_uint_t ngx_http_cart_jwt_string(yajl_val v, ngx_str_t *want);
static ngx_int_t ngx_http_cart_jwt_time(yajl_val v, time_t *t);
static yajl_val ngx_http_cart_b64_json(ngx_pool_t *pool, u_char *data,
    size_t len);
static ngx_int_t ngx_http_cart_hmac(ngx_str_t *key, ngx_str_t *data,
    u_char *out);
static ngx_int_t ngx_http_cart_cookie_check(ngx_http_cart_cookie_t *cookie,
    ngx_str_t *value, ngx_str_t *session);
static ngx_int_t ngx_http_cart_cookie_tag(ngx_http_cart_cookie_t *cookie,
    u_char *session, u_char *expires, size_t expires_len, u_char *tag);


/* cart_jwt_key FILE [HS256|RS256|ES256] [iss=ISSUER] [aud=AUDIENCE] | off */

char *
ngx_http_cart_jwt_key_slot(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    char  *p = conf;

    ngx_str_t             *value, content, alg, *claim;
    ngx_uint_t             i;
    ngx_http_cart_jwt_t  **field, *jwt;

    field = (ngx_http_cart_jwt_t **) (p + cmd->offset);

    if (*field != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (cf->args->nelts == 2 && ngx_strcmp(value[1].data, "off") == 0) {
        *field = NULL;
        return NGX_CONF_OK;
    }

    jwt = ngx_pcalloc(cf->pool, sizeof(ngx_http_cart_jwt_t));
    if (jwt == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_str_null(&alg);

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "iss=", 4) == 0) {
            claim = &jwt->iss;

        } else if (ngx_strncmp(value[i].data, "aud=", 4) == 0) {
            claim = &jwt->aud;

        } else if (alg.len == 0) {
            alg = value[i];
            continue;

        } else {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\"", &value[i]);
            return NGX_CONF_ERROR;
        }

        if (claim->data || value[i].len == 4) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"%V\": one non-empty value each",
                               &value[i]);
            return NGX_CONF_ERROR;
        }

        claim->data = value[i].data + 4;
        claim->len = value[i].len - 4;
    }

    if (ngx_http_cart_read_key_file(cf, &value[1], &content) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (ngx_strnstr(content.data, "-----BEGIN", content.len) != NULL) {
        if (alg.len == 5 && ngx_strncmp(alg.data, "HS256", 5) == 0) {
            /* anyone can read a public key: it must never be an HMAC key */
            return "has a PEM key, which cannot be an HS256 secret";
        }

        if (ngx_http_cart_jwt_pem(cf, jwt, &content, &alg) != NGX_CONF_OK) {
            return NGX_CONF_ERROR;
        }

    } else {
        if (alg.len && !(alg.len == 5 && ngx_strncmp(alg.data, "HS256", 5)
                                         == 0))
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"%V\": RS256 and ES256 need a PEM public "
                               "key", &value[1]);
            return NGX_CONF_ERROR;
        }

        if (ngx_http_cart_secret(cf, &content, &jwt->secret) != NGX_OK) {
            return NGX_CONF_ERROR;
        }

        jwt->alg = NGX_HTTP_CART_JWT_HS256;
        ngx_str_set(&jwt->name, "HS256");
    }

    *field = jwt;

    return NGX_CONF_OK;
}


static char *
ngx_http_cart_jwt_pem(ngx_conf_t *cf, ngx_http_cart_jwt_t *jwt,
    ngx_str_t *content, ngx_str_t *alg)
{
    BIO                 *bio;
    char                 group[64];
    size_t               len;
    EVP_PKEY            *pkey;
    ngx_pool_cleanup_t  *cln;

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        return NGX_CONF_ERROR;
    }

    bio = BIO_new_mem_buf(content->data, content->len);
    if (bio == NULL) {
        return NGX_CONF_ERROR;
    }

    pkey = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
    BIO_free(bio);

    if (pkey == NULL) {
        ERR_clear_error();
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "the JWT key is not a PEM public key "
                           "(\"-----BEGIN PUBLIC KEY-----\")");
        return NGX_CONF_ERROR;
    }

    cln->handler = ngx_http_cart_pkey_free;
    cln->data = pkey;
    jwt->pkey = pkey;

    if (EVP_PKEY_is_a(pkey, "RSA")) {
        jwt->alg = NGX_HTTP_CART_JWT_RS256;
        ngx_str_set(&jwt->name, "RS256");

        if (EVP_PKEY_get_bits(pkey) < 2048) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "the RS256 key has fewer than 2048 bits");
            return NGX_CONF_ERROR;
        }

    } else if (EVP_PKEY_is_a(pkey, "EC")) {
        jwt->alg = NGX_HTTP_CART_JWT_ES256;
        ngx_str_set(&jwt->name, "ES256");

        if (!EVP_PKEY_get_utf8_string_param(pkey,
                                            OSSL_PKEY_PARAM_GROUP_NAME,
                                            group, sizeof(group), &len)
            || ngx_strcmp(group, "prime256v1") != 0)
        {
            ERR_clear_error();
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "an ES256 key must be on the P-256 curve");
            return NGX_CONF_ERROR;
        }

    } else {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "the JWT key is neither RSA nor EC");
        return NGX_CONF_ERROR;
    }

    if (alg->len
        && (alg->len != jwt->name.len
            || ngx_strncmp(alg->data, jwt->name.data, alg->len) != 0))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "the JWT key is a %V key, not one for \"%V\"",
                           &jwt->name, alg);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static void
ngx_http_cart_pkey_free(void *data)
{
    EVP_PKEY_free(data);
}


/*
 * cart_guest_cookie NAME secret=FILE [max_age=TIME] [path=PATH] [secure]
 *     [samesite=strict|lax|none] | off
 */

char *
ngx_http_cart_guest_cookie_slot(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    char  *p = conf;

    u_char                   *c;
    ngx_str_t                *value, s, content;
    ngx_uint_t                i;
    ngx_http_cart_cookie_t  **field, *cookie;

    field = (ngx_http_cart_cookie_t **) (p + cmd->offset);

    if (*field != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (cf->args->nelts == 2 && ngx_strcmp(value[1].data, "off") == 0) {
        *field = NULL;
        return NGX_CONF_OK;
    }

    cookie = ngx_pcalloc(cf->pool, sizeof(ngx_http_cart_cookie_t));
    if (cookie == NULL) {
        return NGX_CONF_ERROR;
    }

    cookie->name = value[1];
    cookie->max_age = NGX_CONF_UNSET;
    ngx_str_set(&cookie->path, "/");
    ngx_str_set(&cookie->samesite, "Lax");

    for (c = cookie->name.data; c < cookie->name.data + cookie->name.len; c++)
    {
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z')
              || (*c >= '0' && *c <= '9') || *c == '_' || *c == '-'))
        {
            return "has a cookie name that is not A-Z a-z 0-9 _ -";
        }
    }

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "secret=", 7) == 0) {
            s.data = value[i].data + 7;
            s.len = value[i].len - 7;

            if (ngx_http_cart_read_key_file(cf, &s, &content) != NGX_OK
                || ngx_http_cart_secret(cf, &content, &cookie->secret)
                   != NGX_OK)
            {
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "max_age=", 8) == 0) {
            s.data = value[i].data + 8;
            s.len = value[i].len - 8;

            cookie->max_age = ngx_parse_time(&s, 1);
            if (cookie->max_age == (time_t) NGX_ERROR || cookie->max_age == 0)
            {
                return "has an invalid max_age";
            }

            if (cookie->max_age > NGX_HTTP_CART_MAX_COOKIE_AGE) {
                return "has a max_age over 400 days";
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "path=", 5) == 0 && value[i].len > 5) {
            cookie->path.data = value[i].data + 5;
            cookie->path.len = value[i].len - 5;

            if (cookie->path.data[0] != '/'
                || ngx_strlchr(cookie->path.data,
                               cookie->path.data + cookie->path.len, ';'))
            {
                return "has an invalid path";
            }

            continue;
        }

        if (ngx_strcmp(value[i].data, "secure") == 0) {
            cookie->secure = 1;
            continue;
        }

        if (ngx_strcmp(value[i].data, "samesite=strict") == 0) {
            ngx_str_set(&cookie->samesite, "Strict");
            continue;
        }

        if (ngx_strcmp(value[i].data, "samesite=lax") == 0) {
            ngx_str_set(&cookie->samesite, "Lax");
            continue;
        }

        if (ngx_strcmp(value[i].data, "samesite=none") == 0) {
            ngx_str_set(&cookie->samesite, "None");
            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\"", &value[i]);
        return NGX_CONF_ERROR;
    }

    if (cookie->secret.data == NULL) {
        return "needs secret=FILE";
    }

    if (cookie->samesite.len == 4 && !cookie->secure) {
        /* browsers drop SameSite=None cookies that are not Secure */
        return "with samesite=none needs secure";
    }

    *field = cookie;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_cart_read_key_file(ngx_conf_t *cf, ngx_str_t *name,
    ngx_str_t *content)
{
    ssize_t          n;
    ngx_fd_t         fd;
    ngx_str_t        path;
    ngx_file_info_t  fi;

    path = *name;

    if (ngx_conf_full_name(cf->cycle, &path, 1) != NGX_OK) {
        return NGX_ERROR;
    }

    fd = ngx_open_file(path.data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);
    if (fd == NGX_INVALID_FILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           ngx_open_file_n " \"%V\" failed", &path);
        return NGX_ERROR;
    }

    if (ngx_fd_info(fd, &fi) == NGX_FILE_ERROR
        || ngx_file_size(&fi) > NGX_HTTP_CART_MAX_KEYFILE)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "key file \"%V\" is unreadable or too large",
                           &path);
        (void) ngx_close_file(fd);
        return NGX_ERROR;
    }

    content->len = ngx_file_size(&fi);
    content->data = ngx_pnalloc(cf->pool, content->len + 1);
    if (content->data == NULL) {
        (void) ngx_close_file(fd);
        return NGX_ERROR;
    }

    n = ngx_read_fd(fd, content->data, content->len);
    (void) ngx_close_file(fd);

    if (n != (ssize_t) content->len) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "cannot read key file \"%V\"", &path);
        return NGX_ERROR;
    }

    content->data[content->len] = '\0';

    return NGX_OK;
}


/* a secret file's bytes; the line break an editor adds is not part of it */

static ngx_int_t
ngx_http_cart_secret(ngx_conf_t *cf, ngx_str_t *content, ngx_str_t *secret)
{
    *secret = *content;

    while (secret->len
           && (secret->data[secret->len - 1] == '\n'
               || secret->data[secret->len - 1] == '\r'))
    {
        secret->len--;
    }

    if (secret->len < NGX_HTTP_CART_MIN_SECRET) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "a secret must have at least %d bytes",
                           NGX_HTTP_CART_MIN_SECRET);
        return NGX_ERROR;
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_cart_jwt_verify(ngx_http_request_t *r, ngx_http_cart_jwt_t *jwt,
    ngx_str_t *sub)
{
    u_char    *p, *dot1, *dot2, *last;
    yajl_val   header, claims, v;
    ngx_str_t  token, data, sig, raw;

    if (r->headers_in.authorization == NULL) {
        return NGX_DECLINED;
    }

    token = r->headers_in.authorization->value;

    if (token.len < sizeof("Bearer ") - 1
        || ngx_strncasecmp(token.data, (u_char *) "Bearer ",
                           sizeof("Bearer ") - 1) != 0)
    {
        return NGX_DECLINED;
    }

    token.data += sizeof("Bearer ") - 1;
    token.len -= sizeof("Bearer ") - 1;

    while (token.len && token.data[0] == ' ') {
        token.data++;
        token.len--;
    }

    if (token.len == 0 || token.len > NGX_HTTP_CART_JWT_MAX_LEN) {
        return ngx_http_cart_jwt_refuse(r, "empty or oversized token");
    }

    last = token.data + token.len;

    dot1 = ngx_strlchr(token.data, last, '.');
    dot2 = dot1 ? ngx_strlchr(dot1 + 1, last, '.') : NULL;

    if (dot2 == NULL || ngx_strlchr(dot2 + 1, last, '.') != NULL) {
        return ngx_http_cart_jwt_refuse(r, "not three base64url parts");
    }

    /* the header first: the algorithm is the configured one, or nothing */

    header = ngx_http_cart_b64_json(r->pool, token.data, dot1 - token.data);
    if (header == NULL) {
        return ngx_http_cart_jwt_refuse(r, "malformed header");
    }

    v = ngx_http_cart_json_field(header, "alg");

    if (!YAJL_IS_STRING(v)
        || ngx_strlen(v->u.string) != jwt->name.len
        || ngx_strncmp(v->u.string, jwt->name.data, jwt->name.len) != 0)
    {
        return ngx_http_cart_jwt_refuse(r, "not the configured algorithm");
    }

    v = ngx_http_cart_json_field(header, "typ");

    if (v && !(YAJL_IS_STRING(v)
               && ngx_strcasecmp((u_char *) v->u.string, (u_char *) "JWT")
                  == 0))
    {
        return ngx_http_cart_jwt_refuse(r, "typ is not JWT");
    }

    if (ngx_http_cart_json_field(header, "crit") != NULL) {
        /* RFC 7515 4.1.11: unknown critical extensions must be refused */
        return ngx_http_cart_jwt_refuse(r, "crit header");
    }

    /* the signature over "header.payload" */

    raw.data = dot2 + 1;
    raw.len = last - raw.data;

    sig.data = ngx_pnalloc(r->pool, ngx_base64_decoded_length(raw.len) + 1);
    if (sig.data == NULL) {
        return NGX_ERROR;
    }

    if (raw.len == 0 || ngx_decode_base64url(&sig, &raw) != NGX_OK) {
        return ngx_http_cart_jwt_refuse(r, "malformed signature");
    }

    data.data = token.data;
    data.len = dot2 - token.data;

    if (ngx_http_cart_jwt_signature(jwt, &data, &sig) != NGX_OK) {
        return ngx_http_cart_jwt_refuse(r, "bad signature");
    }

    /* only a verified payload is read */

    p = dot1 + 1;
    claims = ngx_http_cart_b64_json(r->pool, p, dot2 - p);
    if (claims == NULL) {
        return ngx_http_cart_jwt_refuse(r, "malformed payload");
    }

    return ngx_http_cart_jwt_claims(r, jwt, claims, sub);
}


static ngx_int_t
ngx_http_cart_jwt_refuse(ngx_http_request_t *r, const char *reason)
{
    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "cart: JWT refused: %s", reason);
    return NGX_ERROR;
}


static ngx_int_t
ngx_http_cart_jwt_signature(ngx_http_cart_jwt_t *jwt, ngx_str_t *data,
    ngx_str_t *sig)
{
    int           ok;
    u_char        mac[32], *der;
    BIGNUM       *br, *bs;
    ngx_str_t     in;
    ECDSA_SIG    *ecdsa;
    EVP_MD_CTX   *md;
    ngx_int_t     rc;

    if (jwt->alg == NGX_HTTP_CART_JWT_HS256) {
        if (sig->len != sizeof(mac)
            || ngx_http_cart_hmac(&jwt->secret, data, mac) != NGX_OK)
        {
            return NGX_ERROR;
        }

        return CRYPTO_memcmp(mac, sig->data, sizeof(mac)) == 0 ? NGX_OK
                                                               : NGX_ERROR;
    }

    in = *sig;
    der = NULL;

    if (jwt->alg == NGX_HTTP_CART_JWT_ES256) {

        /* JWS carries r || s (RFC 7518 3.4); OpenSSL wants DER */

        if (sig->len != 64) {
            return NGX_ERROR;
        }

        ecdsa = ECDSA_SIG_new();
        br = BN_bin2bn(sig->data, 32, NULL);
        bs = BN_bin2bn(sig->data + 32, 32, NULL);

        if (ecdsa == NULL || br == NULL || bs == NULL
            || ECDSA_SIG_set0(ecdsa, br, bs) != 1)
        {
            ECDSA_SIG_free(ecdsa);
            BN_free(br);
            BN_free(bs);
            ERR_clear_error();
            return NGX_ERROR;
        }

        ok = i2d_ECDSA_SIG(ecdsa, &der);
        ECDSA_SIG_free(ecdsa);

        if (ok <= 0) {
            ERR_clear_error();
            return NGX_ERROR;
        }

        in.data = der;
        in.len = ok;

    } else if (sig->len != (size_t) EVP_PKEY_get_size(jwt->pkey)) {
        return NGX_ERROR;
    }

    md = EVP_MD_CTX_new();

    ok = md != NULL
         && EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, jwt->pkey) == 1
         && EVP_DigestVerify(md, in.data, in.len, data->data, data->len) == 1;

    rc = ok ? NGX_OK : NGX_ERROR;

    EVP_MD_CTX_free(md);
    OPENSSL_free(der);

    /* else nginx's SSL code reports them on an unrelated connection */
    ERR_clear_error();

    return rc;
}


/* exp (required) and nbf with the leeway, iss and aud when configured;
 * sub is the user id */

static ngx_int_t
ngx_http_cart_jwt_claims(ngx_http_request_t *r, ngx_http_cart_jwt_t *jwt,
    yajl_val claims, ngx_str_t *sub)
{
    size_t      i, n;
    time_t      now, t;
    yajl_val    v, *aud;

    if (!YAJL_IS_OBJECT(claims)) {
        return ngx_http_cart_jwt_refuse(r, "payload is not an object");
    }

    now = ngx_time();

    if (ngx_http_cart_jwt_time(ngx_http_cart_json_field(claims, "exp"), &t)
        != NGX_OK)
    {
        return ngx_http_cart_jwt_refuse(r, "no numeric exp");
    }

    if (now > t + NGX_HTTP_CART_JWT_LEEWAY) {
        return ngx_http_cart_jwt_refuse(r, "expired");
    }

    v = ngx_http_cart_json_field(claims, "nbf");

    if (v) {
        if (ngx_http_cart_jwt_time(v, &t) != NGX_OK) {
            return ngx_http_cart_jwt_refuse(r, "nbf is not a number");
        }

        if (now + NGX_HTTP_CART_JWT_LEEWAY < t) {
            return ngx_http_cart_jwt_refuse(r, "not valid yet (nbf)");
        }
    }

    if (jwt->iss.len
        && !ngx_http_cart_jwt_string(ngx_http_cart_json_field(claims, "iss"),
                                     &jwt->iss))
    {
        return ngx_http_cart_jwt_refuse(r, "another issuer (iss)");
    }

    if (jwt->aud.len) {
        /* RFC 7519 4.1.3: one string, or an array of them */

        v = ngx_http_cart_json_field(claims, "aud");
        aud = &v;
        n = 1;

        if (YAJL_IS_ARRAY(v)) {
            aud = v->u.array.values;
            n = v->u.array.len;
        }

        for (i = 0; i < n; i++) {
            if (ngx_http_cart_jwt_string(aud[i], &jwt->aud)) {
                break;
            }
        }

        if (i == n) {
            return ngx_http_cart_jwt_refuse(r, "not for this audience (aud)");
        }
    }

    v = ngx_http_cart_json_field(claims, "sub");

    if (!YAJL_IS_STRING(v) || v->u.string[0] == '\0') {
        return ngx_http_cart_jwt_refuse(r, "no sub");
    }

    sub->data = (u_char *) v->u.string;
    sub->len = ngx_strlen(sub->data);

    return NGX_OK;
}


/* a claim that is exactly this string */

static ngx_uint_t
ngx_http_cart_jwt_string(yajl_val v, ngx_str_t *want)
{
    return YAJL_IS_STRING(v)
           && ngx_strlen(v->u.string) == want->len
           && ngx_strncmp(v->u.string, want->data, want->len) == 0;
}


/* a NumericDate: seconds, possibly with a fraction; absurd values refused */

static ngx_int_t
ngx_http_cart_jwt_time(yajl_val v, time_t *t)
{
    double  d;

    if (!YAJL_IS_NUMBER(v)) {
        return NGX_ERROR;
    }

    if (YAJL_IS_INTEGER(v)) {
        if (YAJL_GET_INTEGER(v) < 0 || YAJL_GET_INTEGER(v) > 1LL << 40) {
            return NGX_ERROR;
        }

        *t = (time_t) YAJL_GET_INTEGER(v);
        return NGX_OK;
    }

    if (!YAJL_IS_DOUBLE(v)) {
        return NGX_ERROR;
    }

    d = YAJL_GET_DOUBLE(v);

    if (!(d >= 0 && d <= (double) (1LL << 40))) {
        return NGX_ERROR;
    }

    *t = (time_t) d;

    return NGX_OK;
}


static yajl_val
ngx_http_cart_b64_json(ngx_pool_t *pool, u_char *data, size_t len)
{
    ngx_str_t  src, dst;

    src.data = data;
    src.len = len;

    dst.data = ngx_pnalloc(pool, ngx_base64_decoded_length(len) + 1);
    if (dst.data == NULL || len == 0) {
        return NULL;
    }

    if (ngx_decode_base64url(&dst, &src) != NGX_OK) {
        return NULL;
    }

    return ngx_http_cart_json_parse(pool, dst.data, dst.len);
}


static ngx_int_t
ngx_http_cart_hmac(ngx_str_t *key, ngx_str_t *data, u_char *out)
{
    size_t  len;

    if (EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, key->data, key->len,
                  data->data, data->len, out, 32, &len)
        == NULL || len != 32)
    {
        ERR_clear_error();
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * "<session>.<expires>.<tag>": 32 hex characters, a unix time, and the
 * base64url HMAC-SHA256 of both. A sibling domain may set a cookie of the
 * same name: each is checked, the first valid one wins.
 */

ngx_int_t
ngx_http_cart_cookie_session(ngx_http_request_t *r,
    ngx_http_cart_cookie_t *cookie, ngx_str_t *session)
{
    u_char            *p, *last, *start, *eq;
    ngx_str_t          value;
    ngx_uint_t         i;
    ngx_table_elt_t  **h;

    h = r->headers_in.cookies.elts;

    for (i = 0; i < r->headers_in.cookies.nelts; i++) {
        p = h[i]->value.data;
        last = p + h[i]->value.len;

        while (p < last) {
            while (p < last && (*p == ' ' || *p == ';' || *p == '\t')) {
                p++;
            }

            start = p;
            p = ngx_strlchr(p, last, ';');
            if (p == NULL) {
                p = last;
            }

            eq = ngx_strlchr(start, p, '=');
            if (eq == NULL
                || (size_t) (eq - start) != cookie->name.len
                || ngx_strncmp(start, cookie->name.data, cookie->name.len)
                   != 0)
            {
                continue;
            }

            value.data = eq + 1;
            value.len = p - value.data;

            if (ngx_http_cart_cookie_check(cookie, &value, session) == NGX_OK)
            {
                return NGX_OK;
            }

            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "cart: guest cookie refused (forged, tampered or "
                          "expired)");
        }
    }

    return NGX_DECLINED;
}


static ngx_int_t
ngx_http_cart_cookie_check(ngx_http_cart_cookie_t *cookie, ngx_str_t *value,
    ngx_str_t *session)
{
    u_char     *p, *last, *dot, tag[NGX_HTTP_CART_TAG_LEN];
    time_t      expires;
    ngx_uint_t  i;

    p = value->data;
    last = p + value->len;

    if (value->len < NGX_HTTP_CART_SESSION_LEN + 3 + NGX_HTTP_CART_TAG_LEN
        || p[NGX_HTTP_CART_SESSION_LEN] != '.')
    {
        return NGX_ERROR;
    }

    for (i = 0; i < NGX_HTTP_CART_SESSION_LEN; i++) {
        if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f'))) {
            return NGX_ERROR;
        }
    }

    p += NGX_HTTP_CART_SESSION_LEN + 1;

    dot = ngx_strlchr(p, last, '.');
    if (dot == NULL || dot == p || (size_t) (dot - p) > NGX_TIME_T_LEN
        || last - (dot + 1) != NGX_HTTP_CART_TAG_LEN)
    {
        return NGX_ERROR;
    }

    expires = ngx_atotm(p, dot - p);
    if (expires == NGX_ERROR) {
        return NGX_ERROR;
    }

    if (ngx_http_cart_cookie_tag(cookie, value->data, p, dot - p, tag)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (CRYPTO_memcmp(tag, dot + 1, NGX_HTTP_CART_TAG_LEN) != 0) {
        return NGX_ERROR;
    }

    /* checked after the tag: an expired cookie is refused like a forged one */
    if (expires < ngx_time()) {
        return NGX_ERROR;
    }

    session->data = value->data;
    session->len = NGX_HTTP_CART_SESSION_LEN;

    return NGX_OK;
}


/* the tag: base64url HMAC-SHA256 of "cart-guest-v1:<session>.<expires>" */

static ngx_int_t
ngx_http_cart_cookie_tag(ngx_http_cart_cookie_t *cookie, u_char *session,
    u_char *expires, size_t expires_len, u_char *tag)
{
    u_char     buf[sizeof("cart-guest-v1:.") + NGX_HTTP_CART_SESSION_LEN
                   + NGX_TIME_T_LEN];
    u_char     mac[32];
    ngx_str_t  data, src, dst;

    data.data = buf;
    data.len = ngx_sprintf(buf, "cart-guest-v1:%*s.%*s",
                           (size_t) NGX_HTTP_CART_SESSION_LEN, session,
                           expires_len, expires)
               - buf;

    if (ngx_http_cart_hmac(&cookie->secret, &data, mac) != NGX_OK) {
        return NGX_ERROR;
    }

    src.data = mac;
    src.len = sizeof(mac);
    dst.data = tag;

    ngx_encode_base64url(&dst, &src);

    return dst.len == NGX_HTTP_CART_TAG_LEN ? NGX_OK : NGX_ERROR;
}


ngx_int_t
ngx_http_cart_cookie_make(ngx_http_request_t *r,
    ngx_http_cart_cookie_t *cookie, ngx_str_t *session, time_t max_age,
    ngx_str_t *value)
{
    u_char  *p, expires[NGX_TIME_T_LEN], tag[NGX_HTTP_CART_TAG_LEN];
    size_t   len, n;

    if (cookie->max_age != NGX_CONF_UNSET) {
        max_age = cookie->max_age;
    }

    len = cookie->name.len + NGX_HTTP_CART_SESSION_LEN + NGX_TIME_T_LEN
          + NGX_HTTP_CART_TAG_LEN + cookie->path.len + cookie->samesite.len
          + sizeof("=..; Max-Age=; Path=; HttpOnly; SameSite=; Secure")
          + NGX_TIME_T_LEN;

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    value->data = p;

    if (session->len == 0) {
        p = ngx_sprintf(p, "%V=; Max-Age=0", &cookie->name);

    } else {
        if (session->len != NGX_HTTP_CART_SESSION_LEN) {
            return NGX_ERROR;
        }

        n = ngx_sprintf(expires, "%T", ngx_time() + max_age) - expires;

        if (ngx_http_cart_cookie_tag(cookie, session->data, expires, n, tag)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        p = ngx_sprintf(p, "%V=%V.%*s.%*s; Max-Age=%T", &cookie->name,
                        session, n, expires,
                        (size_t) NGX_HTTP_CART_TAG_LEN, tag, max_age);
    }

    p = ngx_sprintf(p, "; Path=%V; HttpOnly; SameSite=%V", &cookie->path,
                    &cookie->samesite);

    if (cookie->secure) {
        p = ngx_cpymem(p, "; Secure", sizeof("; Secure") - 1);
    }

    value->len = p - value->data;

    return NGX_OK;
}


ngx_int_t
ngx_http_cart_random_hex(ngx_pool_t *pool, size_t bytes, ngx_str_t *out)
{
    u_char  buf[64];

    if (bytes > sizeof(buf) || RAND_bytes(buf, bytes) != 1) {
        ERR_clear_error();
        return NGX_ERROR;
    }

    out->data = ngx_pnalloc(pool, 2 * bytes);
    if (out->data == NULL) {
        return NGX_ERROR;
    }

    out->len = ngx_hex_dump(out->data, buf, bytes) - out->data;

    return NGX_OK;
}


ngx_int_t
ngx_http_cart_random_base64url(ngx_pool_t *pool, size_t bytes, ngx_str_t *out)
{
    u_char     buf[64];
    ngx_str_t  src;

    if (bytes > sizeof(buf) || RAND_bytes(buf, bytes) != 1) {
        ERR_clear_error();
        return NGX_ERROR;
    }

    out->data = ngx_pnalloc(pool, ngx_base64_encoded_length(bytes));
    if (out->data == NULL) {
        return NGX_ERROR;
    }

    src.data = buf;
    src.len = bytes;

    ngx_encode_base64url(out, &src);

    return NGX_OK;
}


ngx_int_t
ngx_http_cart_equal(ngx_str_t *a, ngx_str_t *b)
{
    if (a->len != b->len) {
        return NGX_DECLINED;
    }

    return CRYPTO_memcmp(a->data, b->data, a->len) == 0 ? NGX_OK
                                                        : NGX_DECLINED;
}
