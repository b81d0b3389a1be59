/*
 * CRC16 (XMODEM, as Redis Cluster uses) and the slot -> hash tag table.
 */

#include <string.h>
#include "ngx_http_cart_slot.h"


static char  ngx_http_cart_slot_tags[NGX_HTTP_CART_SLOTS]
                                    [NGX_HTTP_CART_SLOT_TAG_LEN + 1];


static unsigned
ngx_http_cart_crc16(const unsigned char *p, size_t len)
{
    size_t    i;
    unsigned  crc, bit;

    crc = 0;

    for (i = 0; i < len; i++) {
        crc ^= (unsigned) p[i] << 8;

        for (bit = 0; bit < 8; bit++) {
            crc = (crc & 0x8000) ? ((crc << 1) ^ 0x1021) : (crc << 1);
            crc &= 0xffff;
        }
    }

    return crc;
}


unsigned
ngx_http_cart_slot(const unsigned char *key, size_t len)
{
    size_t  s, e;

    for (s = 0; s < len && key[s] != '{'; s++) { /* void */ }

    if (s < len) {
        for (e = s + 1; e < len && key[e] != '}'; e++) { /* void */ }

        /* "{}" or no "}": the whole key is hashed */
        if (e < len && e != s + 1) {
            key += s + 1;
            len = e - s - 1;
        }
    }

    return ngx_http_cart_crc16(key, len) & (NGX_HTTP_CART_SLOTS - 1);
}


int
ngx_http_cart_slot_init(void)
{
    static const char  alphabet[] = "0123456789abcdefghijklmnopqrstuvwxyz";

    size_t         n, k;
    unsigned       slot, left;
    unsigned long  i, count, x;
    unsigned char  s[NGX_HTTP_CART_SLOT_TAG_LEN];

    if (ngx_http_cart_slot_tags[0][0]) {
        return 0;
    }

    left = NGX_HTTP_CART_SLOTS;
    count = 1;

    for (n = 1; n <= NGX_HTTP_CART_SLOT_TAG_LEN && left; n++) {
        count *= sizeof(alphabet) - 1;

        for (i = 0; i < count && left; i++) {
            x = i;
            for (k = n; k > 0; k--) {
                s[k - 1] = alphabet[x % (sizeof(alphabet) - 1)];
                x /= sizeof(alphabet) - 1;
            }

            slot = ngx_http_cart_crc16(s, n) & (NGX_HTTP_CART_SLOTS - 1);

            if (ngx_http_cart_slot_tags[slot][0] == '\0') {
                memcpy(ngx_http_cart_slot_tags[slot], s, n);
                left--;
            }
        }
    }

    return left ? -1 : 0;
}


const char *
ngx_http_cart_slot_tag(unsigned slot)
{
    return ngx_http_cart_slot_tags[slot & (NGX_HTTP_CART_SLOTS - 1)];
}
