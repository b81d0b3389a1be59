// The demo storefront: plain DOM over clients/js/cart.js. Sign-in is a
// demo: it sets the cookie cart_demo_user, which conf/nginx.conf maps to
// the cart user (an EventSource cannot send X-User-Id).
import { CartClient, CartStore } from '/clients/js/cart.js';

const USER_COOKIE = 'cart_demo_user';
const $ = (id) => document.getElementById(id);
const money = (x) => (typeof x === 'number' ? x.toFixed(2) : '—');
const products = new Map();
let offlineShown = false;

function demoUser() {
  const m = /(?:^|;\s*)cart_demo_user=([^;]*)/.exec(document.cookie);
  return m ? decodeURIComponent(m[1]) : null;
}

function setDemoUser(user) {
  document.cookie = USER_COOKIE + '='
    + (user ? encodeURIComponent(user) + '; max-age=2592000'
            : '; max-age=0')
    + '; path=/; samesite=lax';
}

const scopeOf = (user) => (user ? 'user:' + user : 'guest');
const store = new CartStore({ client: new CartClient(),
                              scope: scopeOf(demoUser()) });

function cell(row, text) {
  const td = row.insertCell();
  td.textContent = text;
  return td;
}

function showMessage(text) {
  $('message').textContent = text || '';
  $('message').hidden = !text;
}

function render({ cart, online, error }) {
  const status = $('status');
  status.dataset.online = String(online);
  status.dataset.pending = String(cart.pending);
  status.textContent = (online ? 'online' : 'offline')
    + (cart.pending ? ', ' + cart.pending + ' change(s) kept on this device'
                    : '');
  $('count').textContent = cart.item_count;
  if (error && error.code !== 'network_error' && !error.retryable) {
    showMessage(error.code + ': ' + error.message);
  } else if (error && !online) {
    offlineShown = true;
    showMessage('The store cannot be reached: your cart is kept on this'
                + ' device and sent when it is back.');
  } else if (online && offlineShown) {
    offlineShown = false;
    showMessage('');
  }

  const lines = $('lines');
  lines.replaceChildren();
  for (const l of cart.items) {
    const row = lines.insertRow();
    row.dataset.sku = l.sku_id;
    row.className = l.pending ? 'pending' : '';
    const p = products.get(l.sku_id);
    cell(row, l.name || (p && p.name) || l.sku_id);
    cell(row, l.seller || l.seller_id || '');
    cell(row, money(l.current_price ?? l.price_at_add));
    const qty = document.createElement('input');
    qty.type = 'number';
    qty.min = '0';
    qty.className = 'qty';
    qty.value = l.quantity;
    qty.setAttribute('aria-label', 'quantity of ' + l.sku_id);
    qty.addEventListener('change', () => {
      // one change per value, however often the field reports it
      if (qty.dataset.sent !== qty.value) {
        qty.dataset.sent = qty.value;
        store.setQuantity(l.sku_id, Number(qty.value));
      }
    });
    row.insertCell().append(qty);
    const rm = document.createElement('button');
    rm.textContent = 'Remove';
    rm.className = 'remove';
    rm.addEventListener('click', () => store.remove(l.sku_id));
    row.insertCell().append(rm);
  }

  const warnings = $('warnings');
  warnings.replaceChildren(...(cart.warnings || []).map((w) => {
    const li = document.createElement('li');
    li.dataset.code = w.code;
    li.textContent = w.sku_id + ': ' + w.message;
    return li;
  }));

  const sellers = $('sellers').tBodies[0];
  sellers.replaceChildren();
  for (const s of cart.sellers || []) {
    const row = sellers.insertRow();
    row.dataset.seller = s.seller_id;
    for (const v of [s.seller_id, s.item_count, money(s.subtotal),
                     money(s.discount), money(s.shipping),
                     money(s.estimated_total)]) {
      cell(row, v);
    }
  }
  $('total').textContent = money(cart.estimated_total);
  $('currency').textContent = cart.currency || 'USD';
  $('coupon-state').textContent = cart.coupon
    ? cart.coupon.code + (cart.coupon.applied === false ? ' (not applied)'
                                                        : ' applied')
    : '';
  const a = cart.shipping_address;
  $('address-state').textContent = a ? a.country + ' ' + a.postal_code : '';
}

async function loadCatalog() {
  const res = await fetch('/demo/catalog/');
  const files = (await res.json()).filter((f) => /\.json$/.test(f.name));
  const docs = await Promise.all(files.map(
    (f) => fetch('/demo/catalog/' + f.name).then((r) => r.json())));
  docs.sort((x, y) => x.sku_id.localeCompare(y.sku_id, 'en',
                                             { numeric: true }));
  const list = $('catalog');
  for (const d of docs) {
    products.set(d.sku_id, d);
    const li = document.createElement('li');
    li.dataset.sku = d.sku_id;
    const label = document.createElement('span');
    label.textContent = d.name + ' — ' + money(d.price) + ' (' + d.seller_id
                        + ')';
    const add = document.createElement('button');
    add.id = 'add-' + d.sku_id;
    add.textContent = 'Add to cart';
    add.addEventListener('click', () => store.add(d.sku_id, 1, {
      name: d.name, price_at_add: d.price, seller_id: d.seller_id,
    }));
    li.append(label, add);
    list.append(li);
  }
}

// the action's own error is shown by render(); nothing else to do here
const quietly = (p) => p.catch(() => {});

function showIdentity() {
  const user = demoUser();
  $('who').textContent = user ? 'Signed in as ' + user : 'Guest';
  $('user').hidden = $('signin-button').hidden = Boolean(user);
  $('signout').hidden = !user;
  document.body.dataset.user = user || '';
}

$('signin').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const user = $('user').value.trim();
  try {
    const merged = await store.signIn(scopeOf(user),
                                      () => setDemoUser(user));
    if (merged && merged.adjusted && merged.adjusted.length) {
      showMessage('Some quantities were adjusted when your carts were'
                  + ' merged.');
    }
  } catch (err) {
    showMessage((err.code || 'error') + ': ' + err.message);
  }
  showIdentity();
});

$('signout').addEventListener('click', async () => {
  store.stop();
  setDemoUser(null);
  store.setScope('guest');
  showIdentity();
  await store.start();
});

$('coupon').addEventListener('submit', (ev) => {
  ev.preventDefault();
  quietly(store.run((c) => c.applyCoupon($('coupon-code').value.trim())));
});

$('address').addEventListener('submit', (ev) => {
  ev.preventDefault();
  quietly(store.run((c) => c.setShippingAddress(
    $('country').value.trim().toUpperCase(), $('postal').value.trim())));
});

$('checkout').addEventListener('click', async () => {
  try {
    const order = await store.run((c) => c.checkout());
    const out = $('order');
    out.hidden = false;
    out.dataset.checkoutId = order.checkout_id;
    out.textContent = 'Order ' + order.checkout_id + ': '
      + order.fulfillment_groups.map((g) => g.seller_id + ' '
                                     + money(g.total)).join(', ')
      + '; total ' + money(order.total) + ' ' + order.currency;
  } catch (err) {
    // shown by render()
  }
});

store.addEventListener('change', render);
showIdentity();
await loadCatalog();
await store.start();
document.body.dataset.ready = 'true';
