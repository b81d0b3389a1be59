// Browser client of ngx_http_cart_module's cart API: one ES module, no
// dependencies. CartClient speaks the HTTP API (typed errors, an
// Idempotency-Key on every write, retries with backoff, If-Match, the live
// stream); CartStore keeps a cart usable while the server is unreachable
// (local writes in localStorage, replayed with their keys when it returns).

// Codes whose request may be sent again (README's error table); the
// outcome-unknown ones only with the first attempt's Idempotency-Key.
const RETRYABLE = new Set([
  'network_error', 'idempotency_in_flight', 'cart_changed',
  'store_unavailable', 'store_timeout', 'store_outcome_unknown',
  'too_many_streams', 'catalog_unavailable', 'inventory_unavailable',
  'shipping_unavailable', 'promotions_unavailable', 'internal_error',
  'too_many_requests', 'bad_gateway', 'service_unavailable',
  'gateway_timeout',
]);

// The write may have been applied although it failed.
const OUTCOME_UNKNOWN = new Set([
  'network_error', 'store_outcome_unknown', 'internal_error',
]);

const WRITES = new Set(['POST', 'PUT', 'DELETE', 'PATCH']);

export class CartError extends Error {
  constructor(status, code, message, details = {}) {
    super(message || code);
    this.name = 'CartError';
    this.status = status;
    this.code = code;
    // the error object's other fields, e.g. checkout's "lines"
    this.details = details;
    this.retryAfter = null;
  }

  get retryable() { return RETRYABLE.has(this.code); }
  get outcomeUnknown() { return OUTCOME_UNKNOWN.has(this.code); }
}

// No answer at all (server down, connection reset): for a write the
// outcome is unknown, as with store_outcome_unknown.
export class NetworkError extends CartError {
  constructor(cause) {
    super(0, 'network_error', 'the server could not be reached');
    this.name = 'NetworkError';
    this.cause = cause;
  }
}

// Builds the typed error of a non-2xx answer from the API's error shape
// {"error":{"code","message",...}}; a body in another shape (a proxy's
// page) still gives a CartError, named after the status.
export function errorFromAnswer(status, body, retryAfter) {
  let err;
  const e = body && typeof body === 'object' ? body.error : null;
  if (e && typeof e.code === 'string') {
    const { code, message, ...details } = e;
    err = new CartError(status, code, message, details);
  } else {
    err = new CartError(status, 'http_' + status, 'HTTP status ' + status);
    if (status === 429 || status >= 502) {
      err.code = { 429: 'too_many_requests', 502: 'bad_gateway',
                   503: 'service_unavailable',
                   504: 'gateway_timeout' }[status] || err.code;
    }
  }
  const s = Number.parseInt(retryAfter, 10);
  err.retryAfter = Number.isFinite(s) ? s : null;
  return err;
}

// Whether attempt number `attempt` (1 = the first) of a request that
// failed with `err` may be sent again. A write is only ever sent again
// with its Idempotency-Key: without one a write of unknown outcome could
// be applied twice.
export function mayRetry(err, method, idempotencyKey, attempt, maxAttempts) {
  if (attempt >= maxAttempts || !(err instanceof CartError)) {
    return false;
  }
  if (!err.retryable) {
    return false;
  }
  return !WRITES.has(method) || Boolean(idempotencyKey);
}

// Delay before attempt `attempt + 1`: the server's Retry-After if it said
// one, else exponential with full jitter, capped.
export function backoff(attempt, err, base = 250, cap = 8000,
                        random = Math.random) {
  if (err && err.retryAfter) {
    return Math.min(err.retryAfter * 1000, cap);
  }
  const ceiling = Math.min(cap, base * 2 ** (attempt - 1));
  return Math.round(ceiling / 2 + random() * ceiling / 2);
}

export function newIdempotencyKey() {
  if (globalThis.crypto && globalThis.crypto.randomUUID) {
    return globalThis.crypto.randomUUID();
  }
  const b = new Uint8Array(16);
  globalThis.crypto.getRandomValues(b);
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export class CartClient {
  // base: the cart_api location, e.g. '/api/v1/cart'. headers: sent with
  // every request (e.g. Authorization); EventSource cannot send them, so
  // the stream relies on cookies.
  constructor({ base = '/api/v1/cart', headers = {}, maxAttempts = 4,
                fetch = globalThis.fetch.bind(globalThis),
                EventSource = globalThis.EventSource,
                sleep: wait = sleep } = {}) {
    this.base = base.replace(/\/$/, '');
    this.headers = headers;
    this.maxAttempts = maxAttempts;
    this.fetch = fetch;
    this.EventSource = EventSource;
    this.sleep = wait;
    // the version of the last cart answer (its ETag), for ifMatch: true
    this.version = null;
  }

  // One API call with retries. opts: body, ifMatch (a version, or true for
  // the last one seen), idempotencyKey (writes get a fresh one otherwise;
  // pass the same one to send a request again later).
  async request(method, path, opts = {}) {
    const key = WRITES.has(method)
                ? (opts.idempotencyKey || newIdempotencyKey()) : null;
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.once(method, path, opts, key);
      } catch (err) {
        if (!mayRetry(err, method, key, attempt,
                      opts.maxAttempts || this.maxAttempts)) {
          err.idempotencyKey = key;
          throw err;
        }
        await this.sleep(backoff(attempt, err));
      }
    }
  }

  async once(method, path, opts, key) {
    const headers = { ...this.headers, Accept: 'application/json' };
    if (key) {
      headers['Idempotency-Key'] = key;
    }
    if (opts.ifMatch !== undefined && opts.ifMatch !== null) {
      const v = opts.ifMatch === true ? this.version : opts.ifMatch;
      if (v !== null) {
        headers['If-Match'] = '"' + v + '"';
      }
    }
    let body;
    if (opts.body !== undefined) {
      headers['Content-Type'] = 'application/json';
      body = JSON.stringify(opts.body);
    }
    let res;
    try {
      res = await this.fetch(this.base + path, {
        method, headers, body, credentials: 'same-origin',
        cache: 'no-store',
      });
    } catch (cause) {
      throw new NetworkError(cause);
    }
    let data = null;
    const text = await res.text().catch(() => '');
    if (text) {
      try {
        data = JSON.parse(text);
      } catch (e) {
        data = null;
      }
    }
    if (!res.ok) {
      throw errorFromAnswer(res.status, data, res.headers.get('Retry-After'));
    }
    const etag = res.headers.get('ETag');
    const m = etag && /^"(\d+)"$/.exec(etag);
    if (m) {
      this.version = Number(m[1]);
    }
    return data;
  }

  getCart() { return this.request('GET', '/'); }
  count() { return this.request('GET', '/count'); }

  addItem(skuId, quantity, opts = {}) {
    const body = { sku_id: skuId, quantity };
    if (opts.sellerId) {
      body.seller_id = opts.sellerId;
    }
    return this.request('POST', '/items', { ...opts, body });
  }

  setQuantity(skuId, quantity, opts = {}) {
    return this.request('PUT', '/items/' + encodeURIComponent(skuId),
                        { ...opts, body: { quantity } });
  }

  removeItem(skuId, opts = {}) {
    return this.request('DELETE', '/items/' + encodeURIComponent(skuId),
                        opts);
  }

  applyCoupon(code, opts = {}) {
    return this.request('POST', '/coupons', { ...opts, body: { code } });
  }

  removeCoupon(code, opts = {}) {
    return this.request('DELETE', '/coupons/' + encodeURIComponent(code),
                        opts);
  }

  setShippingAddress(country, postalCode, opts = {}) {
    return this.request('PUT', '/shipping-address', {
      ...opts, body: { country, postal_code: postalCode },
    });
  }

  checkout({ acceptPriceIncrease = false, ...opts } = {}) {
    return this.request('POST', '/checkout', {
      ...opts,
      body: acceptPriceIncrease ? { accept_price_increase: true } : undefined,
    });
  }

  merge(guestSessionId, opts = {}) {
    return this.request('POST', '/merge', {
      ...opts, body: { guest_session_id: guestSessionId },
    });
  }

  // The live stream. onCart(cart) gets the whole cart after every change:
  // the event's "cart" when the server sent it, else a GET. The browser's
  // EventSource reconnects by itself with Last-Event-ID; when it gives up
  // (an error answer such as 503 too_many_streams) a new one is opened
  // after a backoff. onState('open' | 'reconnecting') tells the caller.
  // Returns { close() }.
  stream({ onCart, onError = () => {}, onState = () => {} }) {
    let es = null;
    let closed = false;
    let failures = 0;
    let timer = null;
    let fetching = null;
    let again = false;

    // one GET at a time; events that come meanwhile fold into one more
    const fetchCart = async () => {
      if (fetching) {
        again = true;
        return;
      }
      do {
        again = false;
        fetching = this.getCart().then(onCart, onError);
        await fetching;
        fetching = null;
      } while (again && !closed);
    };

    const open = () => {
      es = new this.EventSource(this.base + '/stream',
                                { withCredentials: true });
      es.addEventListener('open', () => {
        failures = 0;
        onState('open');
      });
      es.addEventListener('cart', (ev) => {
        let data;
        try {
          data = JSON.parse(ev.data);
        } catch (e) {
          onError(e);
          return;
        }
        if (data && data.cart && typeof data.cart === 'object') {
          onCart(data.cart);
        } else {
          fetchCart();
        }
      });
      es.addEventListener('error', () => {
        if (closed) {
          return;
        }
        onState('reconnecting');
        if (es.readyState === 2) {
          // CLOSED: the browser will not retry this one itself
          es.close();
          failures++;
          timer = setTimeout(open, backoff(failures, null, 1000, 15000));
        }
      });
    };

    open();
    return {
      close() {
        closed = true;
        clearTimeout(timer);
        if (es) {
          es.close();
        }
      },
    };
  }
}

// --- the cart kept locally -------------------------------------------------

// The guest session of a guest cart's id "cart:guest-<session>" (what
// POST /merge takes), or null for a signed-in user's cart.
export function guestSession(cartId) {
  const m = /^cart:guest-([0-9a-f]+)$/.exec(cartId || '');
  return m ? m[1] : null;
}

function emptyCart() {
  return { cart_id: null, items: [], item_count: 0, version: 0,
           warnings: [], sellers: [] };
}

// The cart as the UI shows it: the server's last known cart with the
// writes not yet confirmed applied on top (those lines marked pending).
// ops: [{op:'add'|'set'|'remove', sku_id, quantity, info}].
export function applyPending(cart, ops) {
  const view = { ...cart, items: cart.items.map((l) => ({ ...l })) };
  for (const o of ops) {
    let line = view.items.find((l) => l.sku_id === o.sku_id);
    if (o.op === 'add') {
      if (!line) {
        line = { sku_id: o.sku_id, quantity: 0, ...(o.info || {}) };
        view.items.push(line);
      }
      line.quantity += o.quantity;
    } else if (line) {
      line.quantity = o.op === 'set' ? o.quantity : 0;
    } else if (o.op === 'set' && o.quantity > 0) {
      line = { sku_id: o.sku_id, quantity: o.quantity, ...(o.info || {}) };
      view.items.push(line);
    }
    if (line) {
      line.pending = true;
    }
  }
  view.items = view.items.filter((l) => l.quantity > 0);
  view.item_count = view.items.reduce((n, l) => n + l.quantity, 0);
  view.pending = ops.length;
  return view;
}

// A line answer (POST/PUT/DELETE on items) folded into the last known
// cart, so that a confirmed write shows until the next GET.
export function applyLineAnswer(cart, answer) {
  const items = cart.items.filter((l) => l.sku_id !== answer.item.sku_id);
  if (answer.item.quantity > 0) {
    const old = cart.items.find((l) => l.sku_id === answer.item.sku_id);
    items.push({ ...(old || { price_at_add: answer.item.price,
                              seller_id: answer.item.seller_id }),
                 sku_id: answer.item.sku_id,
                 quantity: answer.item.quantity });
  }
  return { ...cart, cart_id: answer.cart_id, items,
           item_count: answer.item_count, version: answer.version };
}

// A cart whose writes survive the server being away. Each add, change or
// removal is kept in storage with its Idempotency-Key, shown at once, and
// sent; a write that got no answer (or a retryable one) stays queued and
// is sent again, with the same key, until the server answers, so it is
// applied exactly once. Listeners of 'change' get { cart, online, error }.
export class CartStore extends EventTarget {
  constructor({ client = new CartClient(), storage = globalThis.localStorage,
                scope = 'guest', retryMin = 500, retryMax = 10000 } = {}) {
    super();
    this.client = client;
    this.storage = storage;
    this.retryMin = retryMin;
    this.retryMax = retryMax;
    this.online = true;
    this.flushing = null;
    this.sending = false;
    this.stale = false;
    this.timer = null;
    this.failures = 0;
    this.live = null;
    this.setScope(scope);
  }

  // The identity the local state belongs to ('guest', 'user:<id>').
  setScope(scope) {
    this.scope = scope;
    const saved = this.read();
    this.server = saved.server || emptyCart();
    this.pending = saved.pending || [];
  }

  storageKey(scope = this.scope) { return 'cart-client:' + scope; }

  read(scope = this.scope) {
    try {
      return JSON.parse(this.storage.getItem(this.storageKey(scope))) || {};
    } catch (e) {
      return {};
    }
  }

  save() {
    this.storage.setItem(this.storageKey(), JSON.stringify({
      server: this.server, pending: this.pending,
    }));
  }

  get cart() { return applyPending(this.server, this.pending); }

  emit(error = null) {
    this.dispatchEvent(Object.assign(new Event('change'), {
      cart: this.cart, online: this.online, error,
    }));
  }

  // Takes a cart from the server unless it is older than what is known;
  // while writes wait or are on their way it is read again after them.
  accept(cart) {
    if (this.sending || this.pending.length) {
      this.stale = true;
      return;
    }
    if (cart.cart_id === this.server.cart_id
        && cart.version < this.server.version) {
      return;
    }
    this.server = cart;
    this.save();
    this.emit();
  }

  async refresh() {
    try {
      const cart = await this.client.getCart();
      this.setOnline(true);
      this.accept(cart);
    } catch (err) {
      this.failed(err);
    }
  }

  // The UI's writes. info: what to show of a line added while offline
  // (name, price_at_add, seller_id).
  add(skuId, quantity = 1, info = {}) {
    return this.enqueue({ op: 'add', sku_id: skuId, quantity, info });
  }

  setQuantity(skuId, quantity) {
    return this.enqueue({ op: 'set', sku_id: skuId, quantity });
  }

  remove(skuId) {
    return this.enqueue({ op: 'remove', sku_id: skuId, quantity: 0 });
  }

  enqueue(op) {
    op.key = newIdempotencyKey();
    this.pending.push(op);
    this.save();
    this.emit();
    return this.flush();
  }

  // Sends the queued writes in order, each with its own key. Stops at the
  // first that gets no answer and tries again later; a write the server
  // refuses for good (e.g. quantity_limit) is dropped and reported.
  flush() {
    if (!this.flushing) {
      this.flushing = this.sendAll().finally(() => {
        this.flushing = null;
      });
    }
    return this.flushing;
  }

  async sendAll() {
    clearTimeout(this.timer);
    while (this.pending.length) {
      const op = this.pending[0];
      let answer;
      try {
        this.sending = true;
        answer = await this.send(op);
      } catch (err) {
        if (err instanceof CartError && !err.retryable) {
          this.pending.shift();
          this.save();
          this.stale = true;
          this.emit(err);
          continue;
        }
        this.failed(err);
        this.later();
        return;
      } finally {
        this.sending = false;
      }
      this.pending.shift();
      const owner = this.server.cart_id;
      this.server = applyLineAnswer(this.server, answer);
      // the line answer is not the priced view: read it after the writes
      this.stale = true;
      this.setOnline(true);
      this.save();
      this.emit();
      if (owner !== answer.cart_id && this.live) {
        // a guest's first write made its session: follow that cart
        this.follow();
      }
    }
    if (this.stale) {
      this.stale = false;
      await this.refresh();
    }
  }

  send(op) {
    const opts = { idempotencyKey: op.key, maxAttempts: 2 };
    if (op.op === 'add') {
      return this.client.addItem(op.sku_id, op.quantity, opts);
    }
    if (op.op === 'set') {
      return this.client.setQuantity(op.sku_id, op.quantity, opts);
    }
    return this.client.removeItem(op.sku_id, opts);
  }

  later() {
    clearTimeout(this.timer);
    this.failures++;
    this.timer = setTimeout(() => this.flush(),
                            backoff(this.failures, null, this.retryMin,
                                    this.retryMax));
  }

  failed(err) {
    if (err instanceof CartError && err.retryable) {
      this.setOnline(false);
    }
    this.emit(err);
  }

  setOnline(online) {
    if (online) {
      this.failures = 0;
    }
    if (this.online !== online) {
      this.online = online;
      this.emit();
    }
  }

  // Loads the cart and follows the stream; the stream's (re)connection and
  // the browser's 'online' event send what is queued.
  start() {
    this.follow();
    if (globalThis.addEventListener) {
      this.onOnline = () => this.flush();
      globalThis.addEventListener('online', this.onOnline);
    }
    this.emit();
    return this.flush().then(() => this.refresh());
  }

  // (Re)opens the stream of the current identity's cart.
  follow() {
    if (this.live) {
      this.live.close();
    }
    this.live = this.client.stream({
      onCart: (cart) => this.accept(cart),
      onError: (err) => this.failed(err),
      onState: (state) => {
        if (state === 'open') {
          this.setOnline(true);
          this.flush();
        } else {
          this.setOnline(false);
        }
      },
    });
  }

  stop() {
    clearTimeout(this.timer);
    if (this.live) {
      this.live.close();
      this.live = null;
    }
    if (this.onOnline) {
      globalThis.removeEventListener('online', this.onOnline);
    }
  }

  // Sign-in: sends what the guest queued (still as the guest), lets the
  // caller make the new identity effective (becomeUser), merges the guest
  // cart into the account and follows the account's cart from then on.
  // The guest cookie goes with the merge; the server deletes it.
  async signIn(userScope, becomeUser) {
    await this.flush();
    if (this.pending.length) {
      throw new NetworkError(null);
    }
    // a guest that never wrote has no session on the server to merge
    const session = this.server.items.length
                    ? guestSession(this.server.cart_id) : null;
    this.stop();
    await becomeUser();
    try {
      return session ? await this.client.merge(session) : null;
    } finally {
      this.storage.removeItem(this.storageKey());
      this.setScope(userScope);
      await this.start();
    }
  }

  // Coupon, address and checkout need the server: no local fallback.
  async run(fn) {
    try {
      const out = await fn(this.client);
      this.setOnline(true);
      await this.refresh();
      return out;
    } catch (err) {
      this.failed(err);
      throw err;
    }
  }
}
