// clients/js/cart.js without a browser: fetch, EventSource, storage and
// sleep are stand-ins that record what the client does (t/600-browser.t).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  CartClient, CartStore, CartError, NetworkError, errorFromAnswer, mayRetry,
  backoff, applyPending, guestSession,
} from '../../clients/js/cart.js';
import { webcrypto } from 'node:crypto';

// what every browser has; Debian 12's Node 18 has it only in node:crypto
globalThis.crypto ??= webcrypto;

// A fetch that answers from a list: {status, body, headers} or 'down'.
function fakeFetch(answers) {
  const calls = [];
  const fn = async (url, init) => {
    calls.push({ url, ...init });
    const a = answers.length > 1 ? answers.shift() : answers[0];
    if (a === 'down') {
      throw new TypeError('Failed to fetch');
    }
    const headers = new Map(Object.entries(a.headers || {}));
    return {
      ok: a.status >= 200 && a.status < 300,
      status: a.status,
      headers: { get: (k) => headers.get(k) ?? null },
      text: async () => (a.body === undefined ? '' : JSON.stringify(a.body)),
    };
  };
  fn.calls = calls;
  return fn;
}

const err = (status, code, headers) => ({
  status, headers, body: { error: { code, message: code + ' said' } },
});
const line = (sku, q, v) => ({
  status: 200, headers: { ETag: `"${v}"` },
  body: { cart_id: 'cart:user-u', item_count: q,
          item: { sku_id: sku, quantity: q, price: 1, seller_id: 's' },
          version: v },
});

function client(answers, slept = []) {
  const fetch = fakeFetch(answers);
  const c = new CartClient({ fetch, EventSource: null,
                             sleep: async (ms) => { slept.push(ms); } });
  return { c, fetch, slept };
}

function memoryStorage() {
  const m = new Map();
  return { getItem: (k) => (m.has(k) ? m.get(k) : null),
           setItem: (k, v) => m.set(k, String(v)),
           removeItem: (k) => m.delete(k), map: m };
}

test('errors are typed from the API error shape', () => {
  const e = errorFromAnswer(409, { error: { code: 'out_of_stock',
    message: 'no', lines: [{ sku_id: 'A' }] } }, null);
  assert.ok(e instanceof CartError);
  assert.equal(e.code, 'out_of_stock');
  assert.equal(e.status, 409);
  assert.deepEqual(e.details.lines, [{ sku_id: 'A' }]);
  assert.equal(e.retryable, false);
  const u = errorFromAnswer(503, { error: { code: 'store_outcome_unknown',
                                            message: 'm' } }, '1');
  assert.equal(u.retryable, true);
  assert.equal(u.outcomeUnknown, true);
  assert.equal(u.retryAfter, 1);
  // not the API's shape (a proxy's page): still typed by its status
  assert.equal(errorFromAnswer(502, null, null).code, 'bad_gateway');
  assert.equal(errorFromAnswer(418, null, null).code, 'http_418');
  assert.equal(new NetworkError().outcomeUnknown, true);
});

test('a write is retried only with its idempotency key', () => {
  const unknown = new CartError(503, 'store_outcome_unknown', '');
  assert.equal(mayRetry(unknown, 'POST', null, 1, 4), false);
  assert.equal(mayRetry(unknown, 'POST', 'k1', 1, 4), true);
  assert.equal(mayRetry(new NetworkError(), 'PUT', undefined, 1, 4), false);
  assert.equal(mayRetry(new NetworkError(), 'GET', null, 1, 4), true);
  assert.equal(mayRetry(unknown, 'POST', 'k1', 4, 4), false, 'attempts');
  assert.equal(mayRetry(new CartError(422, 'quantity_limit', ''), 'POST',
                        'k1', 1, 4), false, 'not retryable');
  assert.equal(mayRetry(new Error('bug'), 'GET', null, 1, 4), false);
});

test('backoff grows, is capped and follows Retry-After', () => {
  const r = () => 1;
  assert.equal(backoff(1, null, 100, 1000, r), 100);
  assert.equal(backoff(3, null, 100, 1000, r), 400);
  assert.equal(backoff(10, null, 100, 1000, r), 1000);
  assert.equal(backoff(1, null, 100, 1000, () => 0), 50);
  const e = new CartError(503, 'store_unavailable', '');
  e.retryAfter = 2;
  assert.equal(backoff(1, e, 100, 8000, r), 2000);
});

test('every write carries one Idempotency-Key across its retries', async () => {
  const { c, fetch, slept } = client([
    err(503, 'store_outcome_unknown', { 'Retry-After': '1' }), 'down',
    line('A', 2, 7)]);
  const out = await c.addItem('A', 2);
  assert.equal(out.version, 7);
  assert.equal(fetch.calls.length, 3);
  const keys = fetch.calls.map((x) => x.headers['Idempotency-Key']);
  assert.ok(keys[0]);
  assert.deepEqual(keys, [keys[0], keys[0], keys[0]]);
  assert.equal(slept[0], 1000, 'Retry-After honoured');
  assert.equal(fetch.calls[0].body, '{"sku_id":"A","quantity":2}');
  assert.equal(fetch.calls[0].headers['Content-Type'], 'application/json');
  assert.equal(c.version, 7, 'the ETag is remembered');
  const g = client([{ status: 200, body: {} }]);
  await g.c.getCart();
  assert.equal(g.fetch.calls[0].headers['Idempotency-Key'], undefined,
               'a read has no key');
});

test('a refused write is not retried and throws the typed error',
     async () => {
  const { c, fetch } = client([err(422, 'quantity_limit')]);
  await assert.rejects(c.addItem('A', 99), (e) => e.code === 'quantity_limit'
                       && e.idempotencyKey && e.status === 422);
  assert.equal(fetch.calls.length, 1);
  const down = client(['down']);
  await assert.rejects(down.c.removeItem('A'),
                       (e) => e instanceof NetworkError);
  assert.equal(down.fetch.calls.length, 4, 'maxAttempts');
});

test('If-Match: a given version or the last one seen', async () => {
  const { c, fetch } = client([line('A', 1, 3), line('A', 2, 4)]);
  await c.setQuantity('A', 1, { ifMatch: 2 });
  await c.setQuantity('A/b', 2, { ifMatch: true });
  assert.equal(fetch.calls[0].headers['If-Match'], '"2"');
  assert.equal(fetch.calls[1].headers['If-Match'], '"3"');
  assert.match(fetch.calls[1].url, /\/items\/A%2Fb$/);
});

test('local view: pending writes on top of the server cart', () => {
  const cart = { cart_id: 'c', version: 3, item_count: 3, items: [
    { sku_id: 'A', quantity: 2 }, { sku_id: 'B', quantity: 1 }] };
  const v = applyPending(cart, [
    { op: 'add', sku_id: 'A', quantity: 1 },
    { op: 'add', sku_id: 'C', quantity: 2, info: { name: 'c' } },
    { op: 'remove', sku_id: 'B' },
    { op: 'set', sku_id: 'D', quantity: 0 }]);
  assert.deepEqual(v.items.map((l) => [l.sku_id, l.quantity, l.pending]),
                   [['A', 3, true], ['C', 2, true]]);
  assert.equal(v.item_count, 5);
  assert.equal(v.pending, 4);
  assert.equal(cart.items[0].quantity, 2, 'the server cart is untouched');
  assert.equal(guestSession('cart:guest-0af3'), '0af3');
  assert.equal(guestSession('cart:user-u'), null);
});

test('offline writes are kept, shown, then sent once with their keys',
     async () => {
  const storage = memoryStorage();
  const answers = ['down'];
  const fetch = fakeFetch(answers);
  const c = new CartClient({ fetch, sleep: async () => {} });
  const store = new CartStore({ client: c, storage, scope: 'user:u',
                                retryMin: 60000 });
  await store.add('A', 2, { name: 'a' });
  await store.setQuantity('A', 5);
  assert.equal(store.online, false);
  assert.deepEqual(store.cart.items.map((l) => [l.sku_id, l.quantity]),
                   [['A', 5]]);
  const kept = JSON.parse(storage.getItem('cart-client:user:u'));
  assert.deepEqual(kept.pending.map((o) => o.op), ['add', 'set']);
  const keys = kept.pending.map((o) => o.key);

  // a new page (a reload while the server is away) finds them
  const again = new CartStore({ client: c, storage, scope: 'user:u' });
  assert.equal(again.cart.item_count, 5);

  // the server is back
  answers.splice(0, 1, line('A', 2, 1), line('A', 5, 2),
                 { status: 200, headers: { ETag: '"2"' },
                   body: { cart_id: 'cart:user-u', version: 2, item_count: 5,
                           items: [{ sku_id: 'A', quantity: 5 }],
                           sellers: [{ seller_id: 's' }] } });
  const sentBefore = fetch.calls.length;
  await store.flush();
  clearTimeout(store.timer);
  const sent = fetch.calls.slice(sentBefore);
  assert.deepEqual(sent.map((x) => x.method), ['POST', 'PUT', 'GET']);
  assert.deepEqual(sent.slice(0, 2).map((x) => x.headers['Idempotency-Key']),
                   keys, 'replayed with the keys they were kept with');
  assert.equal(store.online, true);
  assert.deepEqual(store.pending, []);
  assert.equal(store.cart.item_count, 5);
  assert.deepEqual(store.cart.sellers, [{ seller_id: 's' }],
                   'the priced cart read after the writes is taken');
  assert.equal(JSON.parse(storage.getItem('cart-client:user:u'))
                 .pending.length, 0);
});

test('a write the server refuses is dropped and reported', async () => {
  const fetch = fakeFetch([err(422, 'quantity_limit'),
                           { status: 200, body: { cart_id: 'x', version: 0,
                                                  item_count: 0,
                                                  items: [] } }]);
  const store = new CartStore({
    client: new CartClient({ fetch, sleep: async () => {} }),
    storage: memoryStorage() });
  const seen = [];
  store.addEventListener('change', (e) => seen.push(e.error && e.error.code));
  await store.add('A', 100);
  assert.equal(fetch.calls.length, 2, 'one POST, then the cart read');
  assert.deepEqual(store.pending, []);
  assert.ok(seen.includes('quantity_limit'));
  assert.equal(store.cart.item_count, 0);
});

test('stream: the event\'s cart when sent, else a GET; reopened when closed',
     async () => {
  const opened = [];
  class FakeES {
    constructor(url) {
      this.url = url;
      this.readyState = 0;
      this.l = {};
      opened.push(this);
    }
    addEventListener(t, f) { this.l[t] = f; }
    close() { this.readyState = 2; this.closed = true; }
  }
  const fetch = fakeFetch([{ status: 200, body: { version: 9 } }]);
  const c = new CartClient({ fetch, EventSource: FakeES });
  const carts = [];
  const states = [];
  const s = c.stream({ onCart: (x) => carts.push(x),
                       onState: (x) => states.push(x) });
  const es = opened[0];
  assert.equal(es.url, '/api/v1/cart/stream');
  es.l.open();
  es.l.cart({ data: '{"version":4,"item_count":1,"cart":{"version":4}}' });
  es.l.cart({ data: '{"version":5,"item_count":2}' });
  await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(carts, [{ version: 4 }, { version: 9 }]);
  assert.equal(fetch.calls.length, 1);
  // closed by an error answer: a new EventSource after a backoff
  es.readyState = 2;
  es.l.error();
  assert.deepEqual(states, ['open', 'reconnecting']);
  await new Promise((r) => setTimeout(r, 1200));
  assert.equal(opened.length, 2);
  s.close();
  assert.equal(opened[1].closed, true);
});
