/*
 * Who is calling: JWTs (HS256, RS256, ES256, the algorithm fixed by the
 * configuration), signed guest cookies, and random ids. Knows nothing of
 * carts; OpenSSL stays in the .c file, the key and cookie types are opaque.
 */

#ifndef _NGX_HTTP_CART_IDENTITY_H_INCLUDED_
#define _NGX_HTTP_CART_IDENTITY_H_INCLUDED_


#include "ngx_http_cart.h"


/* hex characters of a guest session id (128 random bits) */
#define NGX_HTTP_CART_SESSION_LEN  32


/* directive handlers: the field at cmd->offset is a pointer, NULL = off */
char *ngx_http_cart_jwt_key_slot(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_cart_guest_cookie_slot(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);

/*
 * NGX_OK with the bearer token's "sub" (pool memory), NGX_DECLINED without
 * a bearer token, NGX_ERROR when it does not verify (logged at "info").
 */
ngx_int_t ngx_http_cart_jwt_verify(ngx_http_request_t *r,
    ngx_http_cart_jwt_t *jwt, ngx_str_t *sub);

/* the session id of the request's valid guest cookie: NGX_OK, or
 * NGX_DECLINED when it has none, or only forged, tampered or expired ones */
ngx_int_t ngx_http_cart_cookie_session(ngx_http_request_t *r,
    ngx_http_cart_cookie_t *cookie, ngx_str_t *session);

/* the Set-Cookie value carrying "session", valid for the cookie's max_age
 * or else "max_age"; an empty session makes the value that deletes it */
ngx_int_t ngx_http_cart_cookie_make(ngx_http_request_t *r,
    ngx_http_cart_cookie_t *cookie, ngx_str_t *session, time_t max_age,
    ngx_str_t *value);

/* "bytes" random bytes as lowercase hex / as base64url, in pool memory */
ngx_int_t ngx_http_cart_random_hex(ngx_pool_t *pool, size_t bytes,
    ngx_str_t *out);
ngx_int_t ngx_http_cart_random_base64url(ngx_pool_t *pool, size_t bytes,
    ngx_str_t *out);

/* constant-time equality of two strings of public lengths */
ngx_int_t ngx_http_cart_equal(ngx_str_t *a, ngx_str_t *b);


#endif /* _NGX_HTTP_CART_IDENTITY_H_INCLUDED_ */
