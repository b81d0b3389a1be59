/*
 * What the harnesses share: nginx's core set up once (a fixed clock, a
 * log that formats every message, debug ones included, and drops it), a
 * pool per input, and a request with just what the parsers read: its
 * pool, a connection with the log, the module's context.
 *
 * The pools are built with NGX_DEBUG_PALLOC: every allocation is a
 * malloc() of its own, so that ASan sees an overrun of a pool block too.
 * Set FUZZ_LOG=1 to see the log lines when replaying an input,
 * FUZZ_LOG=debug for the debug ones too.
 */

#ifndef _FUZZ_H_INCLUDED_
#define _FUZZ_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <stdint.h>
#include <stdlib.h>


/* 2026-03-14T10:00:00Z, as in t/unit/engine_test.c: inputs replay alike */
#define FUZZ_NOW  1773482400


extern ngx_log_t  fuzz_log;


void fuzz_init(void);

/* the input in a malloc()ed block of its own size: a read past it is seen */
u_char *fuzz_copy(ngx_pool_t *pool, const uint8_t *data, size_t size);

ngx_pool_t *fuzz_pool(void);
ngx_http_request_t *fuzz_request(ngx_pool_t *pool);

/* a check the harness makes on what a parser returned */
#define fuzz_assert(expr)                                                     \
    do {                                                                      \
        if (!(expr)) {                                                        \
            fprintf(stderr, "%s:%d: fuzz_assert(%s) failed\n",                \
                    __FILE__, __LINE__, #expr);                               \
            abort();                                                          \
        }                                                                     \
    } while (0)

/* reads every byte, so that ASan checks that they all are there */
#define fuzz_touch(p, n)  fuzz_touch_bytes((const u_char *) (p), (n))

size_t fuzz_touch_bytes(const u_char *p, size_t n);


#endif /* _FUZZ_H_INCLUDED_ */
