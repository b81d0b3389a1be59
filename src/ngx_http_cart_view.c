/*
 * The renderer: the cart view's JSON from a priced cart. What it says
 * (warnings, in_stock, price_changed) the engine decided; it only prints.
 */

#include "ngx_http_cart_view.h"


static void ngx_http_cart_json_line(yajl_gen g,
    ngx_http_cart_priced_line_t *pl);
static void ngx_http_cart_json_warnings(yajl_gen g,
    ngx_http_cart_priced_t *priced);
static void ngx_http_cart_json_sellers(yajl_gen g,
    ngx_http_cart_priced_t *priced);
static void ngx_http_cart_json_coupon(yajl_gen g,
    ngx_http_cart_priced_t *priced);
static void ngx_http_cart_json_shipping(yajl_gen g,
    ngx_http_cart_priced_t *priced);


void
ngx_http_cart_render_view(ngx_http_request_t *r, yajl_gen g,
    ngx_http_cart_snapshot_t *snap, ngx_http_cart_priced_t *priced,
    int64_t version)
{
    ngx_uint_t                  i;
    ngx_http_cart_ctx_t        *ctx;
    ngx_http_cart_main_conf_t  *cmcf;

    ctx = ngx_http_get_module_ctx(r, ngx_http_cart_module);
    cmcf = ngx_http_get_module_main_conf(r, ngx_http_cart_module);

    yajl_gen_map_open(g);
    ngx_http_cart_json_cart_id(g, ctx);
    ngx_http_cart_json_key(g, "items");
    yajl_gen_array_open(g);

    for (i = 0; i < priced->nlines; i++) {
        ngx_http_cart_json_line(g, &priced->lines[i]);
    }

    yajl_gen_array_close(g);

    ngx_http_cart_json_key(g, "item_count");
    ngx_http_cart_json_int(g, priced->item_count);
    ngx_http_cart_json_key(g, "subtotal");
    ngx_http_cart_json_amount(g, priced->subtotal);
    ngx_http_cart_json_key(g, "currency");
    ngx_http_cart_json_str(g, &cmcf->currency);
    ngx_http_cart_json_key(g, "version");
    ngx_http_cart_json_int(g, version);

    ngx_http_cart_json_warnings(g, priced);
    ngx_http_cart_json_sellers(g, priced);

    ngx_http_cart_json_key(g, "promotions_applied");
    ngx_http_cart_json_applied(g, priced);
    ngx_http_cart_json_coupon(g, priced);

    ngx_http_cart_json_key(g, "shipping_address");
    ngx_http_cart_json_address(g, snap);
    ngx_http_cart_json_shipping(g, priced);

    ngx_http_cart_json_key(g, "price_adjustment");
    ngx_http_cart_json_amount(g, priced->amount - priced->subtotal);
    ngx_http_cart_json_key(g, "discount");
    ngx_http_cart_json_amount(g, -priced->discount);
    ngx_http_cart_json_key(g, "shipping_total");
    ngx_http_cart_json_amount(g, priced->shipping);
    ngx_http_cart_json_key(g, "estimated_total");
    ngx_http_cart_json_amount(g, priced->amount - priced->discount
                                 + priced->shipping);

    yajl_gen_map_close(g);
}


static void
ngx_http_cart_json_line(yajl_gen g, ngx_http_cart_priced_line_t *pl)
{
    ngx_http_cart_line_t  *line;

    line = pl->line;

    yajl_gen_map_open(g);
    ngx_http_cart_json_key(g, "sku_id");
    ngx_http_cart_json_str(g, &line->sku);
    ngx_http_cart_json_key(g, "quantity");
    ngx_http_cart_json_int(g, line->qty);
    ngx_http_cart_json_key(g, "price_at_add");
    ngx_http_cart_json_price(g, line->price);
    ngx_http_cart_json_key(g, "seller_id");
    ngx_http_cart_json_str(g, &line->seller);

    ngx_http_cart_json_key(g, "added_at");
    ngx_http_cart_json_time(g, line->added);

    if (pl->catalog == NGX_OK) {
        ngx_http_cart_json_key(g, "current_price");
        ngx_http_cart_json_amount(g, pl->product.price);
        ngx_http_cart_json_key(g, "price_changed");
        yajl_gen_bool(g, pl->price_changed);
        ngx_http_cart_json_key(g, "name");
        ngx_http_cart_json_str(g, &pl->product.name);
        ngx_http_cart_json_key(g, "seller");
        ngx_http_cart_json_str(g, &pl->seller);
        ngx_http_cart_json_key(g, "image");
        ngx_http_cart_json_str(g, &pl->product.image);

    } else if (pl->catalog == NGX_DECLINED) {
        ngx_http_cart_json_key(g, "available");
        yajl_gen_bool(g, 0);

    } else if (pl->catalog == NGX_ERROR) {
        ngx_http_cart_json_key(g, "price_verified");
        yajl_gen_bool(g, 0);
    }

    if (pl->stock == NGX_OK) {
        ngx_http_cart_json_key(g, "in_stock");
        yajl_gen_bool(g, pl->in_stock);

    } else if (pl->stock == NGX_ERROR) {
        ngx_http_cart_json_key(g, "stock_verified");
        yajl_gen_bool(g, 0);
    }

    yajl_gen_map_close(g);
}


static void
ngx_http_cart_json_warnings(yajl_gen g, ngx_http_cart_priced_t *priced)
{
    ngx_uint_t                i;
    ngx_http_cart_warning_t  *w;

    /* by ngx_http_cart_warning_e */
    static ngx_str_t  codes[] = {
        ngx_string("unavailable"),
        ngx_string("price_unverified"),
        ngx_string("price_increased"),
        ngx_string("price_decreased"),
        ngx_string("out_of_stock"),
        ngx_string("insufficient_stock")
    };

    static ngx_str_t  messages[] = {
        ngx_string("this item is no longer sold"),
        ngx_string("the current price could not be checked"),
        ngx_string("the price went up since the item was added"),
        ngx_string("the price went down since the item was added"),
        ngx_string("this item is out of stock"),
        ngx_string("fewer items are in stock than the quantity in the cart")
    };

    ngx_http_cart_json_key(g, "warnings");
    yajl_gen_array_open(g);

    for (i = 0; i < priced->nwarnings; i++) {
        w = &priced->warnings[i];

        yajl_gen_map_open(g);
        ngx_http_cart_json_key(g, "code");
        ngx_http_cart_json_str(g, &codes[w->code]);
        ngx_http_cart_json_key(g, "sku_id");
        ngx_http_cart_json_str(g, w->sku);
        ngx_http_cart_json_key(g, "message");
        ngx_http_cart_json_str(g, &messages[w->code]);
        yajl_gen_map_close(g);
    }

    yajl_gen_array_close(g);
}


static void
ngx_http_cart_json_sellers(yajl_gen g, ngx_http_cart_priced_t *priced)
{
    ngx_uint_t              i;
    ngx_http_cart_group_t  *gr;

    ngx_http_cart_json_key(g, "sellers");
    yajl_gen_array_open(g);

    for (i = 0; i < priced->ngroups; i++) {
        gr = &priced->groups[i];

        yajl_gen_map_open(g);
        ngx_http_cart_json_key(g, "seller_id");
        ngx_http_cart_json_str(g, &gr->seller);
        ngx_http_cart_json_key(g, "item_count");
        ngx_http_cart_json_int(g, gr->items);
        ngx_http_cart_json_key(g, "subtotal");
        ngx_http_cart_json_amount(g, gr->subtotal);
        ngx_http_cart_json_key(g, "price_adjustment");
        ngx_http_cart_json_amount(g, gr->amount - gr->subtotal);
        ngx_http_cart_json_key(g, "discount");
        ngx_http_cart_json_amount(g, -gr->discount);
        ngx_http_cart_json_key(g, "shipping");
        ngx_http_cart_json_amount(g, gr->shipping);
        ngx_http_cart_json_key(g, "estimated_total");
        ngx_http_cart_json_amount(g, gr->amount - gr->discount
                                     + gr->shipping);
        yajl_gen_map_close(g);
    }

    yajl_gen_array_close(g);
}


void
ngx_http_cart_json_applied(yajl_gen g, ngx_http_cart_priced_t *priced)
{
    ngx_str_t                 type;
    ngx_uint_t                i;
    ngx_http_cart_applied_t  *a;

    static ngx_str_t  types[] = {
        ngx_string("percent"), ngx_string("amount"), ngx_string("bundle"),
        ngx_string("free_shipping")
    };

    yajl_gen_array_open(g);

    for (i = 0; i < priced->napplied; i++) {
        a = &priced->applied[i];
        type = types[a->promo->type];

        yajl_gen_map_open(g);
        ngx_http_cart_json_key(g, "id");
        ngx_http_cart_json_str(g, &a->promo->id);

        if (a->coupon) {
            ngx_http_cart_json_key(g, "code");
            ngx_http_cart_json_str(g, &a->promo->code);
        }

        ngx_http_cart_json_key(g, "type");
        ngx_http_cart_json_str(g, &type);
        ngx_http_cart_json_key(g, "discount");
        ngx_http_cart_json_amount(g, -a->discount);
        yajl_gen_map_close(g);
    }

    yajl_gen_array_close(g);
}


static void
ngx_http_cart_json_coupon(yajl_gen g, ngx_http_cart_priced_t *priced)
{
    ngx_http_cart_json_key(g, "coupon");

    if (priced->coupon.len == 0) {
        yajl_gen_null(g);
        return;
    }

    yajl_gen_map_open(g);
    ngx_http_cart_json_key(g, "code");
    ngx_http_cart_json_str(g, &priced->coupon);
    ngx_http_cart_json_key(g, "applied");
    yajl_gen_bool(g, priced->coupon_error == NULL);

    if (priced->coupon_error) {
        ngx_http_cart_json_key(g, "reason");
        yajl_gen_string(g, (const unsigned char *) priced->coupon_error,
                        ngx_strlen(priced->coupon_error));
    }

    yajl_gen_map_close(g);
}


void
ngx_http_cart_json_address(yajl_gen g, ngx_http_cart_snapshot_t *snap)
{
    if (snap->country.len == 0) {
        yajl_gen_null(g);
        return;
    }

    yajl_gen_map_open(g);
    ngx_http_cart_json_key(g, "country");
    ngx_http_cart_json_str(g, &snap->country);
    ngx_http_cart_json_key(g, "postal_code");
    ngx_http_cart_json_str(g, &snap->postal_code);
    yajl_gen_map_close(g);
}


/* per seller: the cost of its lines and when all of them arrive; per line:
 * its estimate, or why there is none */

static void
ngx_http_cart_json_shipping(yajl_gen g, ngx_http_cart_priced_t *priced)
{
    ngx_uint_t                    i, k;
    ngx_http_cart_group_t        *gr;
    ngx_http_cart_priced_line_t  *pl;

    ngx_http_cart_json_key(g, "shipping");
    yajl_gen_array_open(g);

    for (i = 0; i < priced->ngroups; i++) {
        gr = &priced->groups[i];

        for (k = 0; k < priced->nlines; k++) {
            pl = &priced->lines[k];

            if (pl->group == i && pl->ship != NGX_DONE
                && pl->catalog != NGX_DECLINED)
            {
                break;
            }
        }

        if (k == priced->nlines) {
            /* nothing of this seller was asked about */
            continue;
        }

        yajl_gen_map_open(g);
        ngx_http_cart_json_key(g, "seller_id");
        ngx_http_cart_json_str(g, &gr->seller);
        ngx_http_cart_json_key(g, "cost");
        ngx_http_cart_json_amount(g, gr->shipping);

        ngx_http_cart_json_key(g, "delivery_from");
        ngx_http_cart_json_date(g, priced->today, gr->min_days);
        ngx_http_cart_json_key(g, "delivery_to");
        ngx_http_cart_json_date(g, priced->today, gr->max_days);

        ngx_http_cart_json_key(g, "items");
        yajl_gen_array_open(g);

        for ( /* void */ ; k < priced->nlines; k++) {
            pl = &priced->lines[k];

            if (pl->group != i || pl->ship == NGX_DONE
                || pl->catalog == NGX_DECLINED)
            {
                continue;
            }

            yajl_gen_map_open(g);
            ngx_http_cart_json_key(g, "sku_id");
            ngx_http_cart_json_str(g, &pl->line->sku);
            ngx_http_cart_json_key(g, "quantity");
            ngx_http_cart_json_int(g, pl->line->qty);

            if (pl->ship == NGX_OK) {
                ngx_http_cart_json_key(g, "cost");
                ngx_http_cart_json_amount(g, pl->shipping);
                ngx_http_cart_json_key(g, "min_days");
                ngx_http_cart_json_int(g, pl->min_days);
                ngx_http_cart_json_key(g, "max_days");
                ngx_http_cart_json_int(g, pl->max_days);
                ngx_http_cart_json_key(g, "delivery_from");
                ngx_http_cart_json_date(g, priced->today, pl->min_days);
                ngx_http_cart_json_key(g, "delivery_to");
                ngx_http_cart_json_date(g, priced->today, pl->max_days);

            } else if (pl->ship == NGX_DECLINED) {
                ngx_http_cart_json_key(g, "shippable");
                yajl_gen_bool(g, 0);

            } else {
                ngx_http_cart_json_key(g, "shipping_verified");
                yajl_gen_bool(g, 0);
            }

            yajl_gen_map_close(g);
        }

        yajl_gen_array_close(g);
        yajl_gen_map_close(g);
    }

    yajl_gen_array_close(g);
}


/* "YYYY-MM-DD", days after "day"; null when there is no estimate */

void
ngx_http_cart_json_date(yajl_gen g, time_t day, int64_t days)
{
    if (days < 0) {
        yajl_gen_null(g);
        return;
    }

    ngx_http_cart_json_day(g, day + (time_t) days * 86400);
}


void
ngx_http_cart_json_price(yajl_gen g, int64_t price)
{
    if (price < 0) {
        yajl_gen_null(g);
        return;
    }

    ngx_http_cart_json_amount(g, price);
}


/* "cart:user-123", the seed's cart id: the key without its hash tag */

void
ngx_http_cart_json_cart_id(yajl_gen g, ngx_http_cart_ctx_t *ctx)
{
    u_char  buf[sizeof("cart:") - 1 + sizeof("user-")
                + NGX_HTTP_CART_MAX_USER_LEN];
    u_char *p;

    p = ngx_sprintf(buf, "cart:%V", &ctx->owner);

    ngx_http_cart_json_key(g, "cart_id");
    yajl_gen_string(g, buf, p - buf);
}
