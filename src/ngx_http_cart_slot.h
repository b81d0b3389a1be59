/*
 * Redis Cluster key slots, and one hash tag per slot. Plain C: the daemon
 * compiles this file too, so both name the activity index keys alike.
 *
 * The activity index is one sorted set per slot, "cart_activity:{TAG}": a
 * write script stays within its cart's slot, no key is hot, and the daemon
 * finds idle carts by a range query per set instead of a scan.
 */

#ifndef _NGX_HTTP_CART_SLOT_H_INCLUDED_
#define _NGX_HTTP_CART_SLOT_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>


#define NGX_HTTP_CART_SLOTS         16384
#define NGX_HTTP_CART_SLOT_TAG_LEN  4       /* at most */
#define NGX_HTTP_CART_ACTIVITY_KEY  "cart_activity:"


/* the slot of a key, honouring a {hash tag} as Redis Cluster does */
unsigned ngx_http_cart_slot(const unsigned char *key, size_t len);

/* fills the slot -> tag table once; 0 on success */
int ngx_http_cart_slot_init(void);

/* the shortest [0-9a-z] string (first in length, then in order) whose
 * slot is "slot", NUL-terminated */
const char *ngx_http_cart_slot_tag(unsigned slot);


#endif /* _NGX_HTTP_CART_SLOT_H_INCLUDED_ */
