// The demo storefront in a real browser (Debian's chromium, driven by
// playwright-core), against the real nginx + module + Redis that
// t/600-browser.t started. The tests run in order and share one browser
// context (one shopper): each builds on the cart the previous one left.
//
// "Server stopped" stops that nginx for real (E2E_NGINX + "-s stop"): the
// page, loaded before, stays open with its scripts and its localStorage,
// and every API call and the stream fail as they would in the field. The
// nginx started again is a new process on the same port and Redis.
//
// Environment: STORE_URL (http://127.0.0.1:PORT), E2E_NGINX (the nginx
// command as a JSON array, without -s), E2E_SHOTS (screenshot directory),
// E2E_RUN (a run id: user ids and coupon codes are unique per run).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { chromium } from 'playwright-core';

const BASE = process.env.STORE_URL;
const NGINX = JSON.parse(process.env.E2E_NGINX || '[]');
const SHOTS = process.env.E2E_SHOTS || 'build/browser';
const RUN = process.env.E2E_RUN || String(Date.now());
const USER = 'e2e-' + RUN;
const API = BASE + '/api/v1/cart';
// generous: the machine is slow and shared
const WAIT = { timeout: 45000 };
const T = { timeout: 180000 };

let browser, context, page, page2;
const pageErrors = [];

// A call to the API as the test itself, not the browser: the user by
// X-User-Id, or the browser's guest cookie.
async function api(method, path, { user, cookie, body, headers = {} } = {}) {
  const h = { ...headers };
  if (user) h['X-User-Id'] = user;
  if (cookie) h.Cookie = cookie;
  if (body) h['Content-Type'] = 'application/json';
  const res = await fetch(API + path, {
    method, headers: h, body: body && JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
}

const linesOf = (cart) => Object.fromEntries(
  cart.items.map((l) => [l.sku_id, l.quantity]));

async function guestCookie() {
  const c = (await context.cookies(BASE)).find((x) => x.name === 'cart_guest');
  return c ? 'cart_guest=' + c.value : null;
}

// Waits until the page shows exactly these lines, all confirmed by the
// server (no pending change), and the badge agrees.
async function expectCart(p, want) {
  await p.waitForFunction((w) => {
    const rows = [...document.querySelectorAll('#lines tr')];
    const got = Object.fromEntries(rows.map(
      (r) => [r.dataset.sku, Number(r.querySelector('input.qty').value)]));
    const n = Object.values(w).reduce((a, b) => a + b, 0);
    return JSON.stringify(got, Object.keys(got).sort())
             === JSON.stringify(w, Object.keys(w).sort())
           && rows.every((r) => !r.classList.contains('pending'))
           && document.getElementById('count').textContent === String(n)
           && document.getElementById('status').dataset.online === 'true';
  }, want, WAIT).catch(async (e) => {
    const rows = await p.$$eval('#lines tr', (rs) => rs.map(
      (r) => r.dataset.sku + '=' + r.querySelector('input.qty').value
             + (r.classList.contains('pending') ? '(pending)' : '')));
    throw new Error('page shows ' + rows.join(' ') + ', want '
                    + JSON.stringify(want) + ': ' + e.message);
  });
}

async function setQuantity(p, sku, qty) {
  const input = p.locator(`#lines tr[data-sku="${sku}"] input.qty`);
  await input.fill(String(qty));
  await input.press('Tab');   // leaving the field fires its change event
}

async function open(p) {
  await p.goto(BASE + '/');
  await p.waitForSelector('body[data-ready="true"]', WAIT);
}

const shot = (p, name) => p.screenshot({ path: `${SHOTS}/${name}.png`,
                                         fullPage: true });

async function until(what, fn) {
  for (let i = 0; i < 300; i++) {
    if (await fn()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('timed out waiting until ' + what);
}

const reachable = () => fetch(BASE + '/').then((r) => r.ok, () => false);

before(async () => {
  assert.ok(BASE, 'STORE_URL is set');
  mkdirSync(SHOTS, { recursive: true });
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage',
           '--disable-quic', '--no-first-run',
           '--disable-background-networking', '--disable-component-update',
           '--disable-sync'],
  });
  context = await browser.newContext();
  page = await context.newPage();
  page.on('pageerror', (e) => pageErrors.push(e.message));
});

after(async () => {
  if (browser) await browser.close();
});

test('a guest adds to the cart: lines, seller subtotals, a guest cookie', T,
     async () => {
  await open(page);
  assert.equal(await page.locator('#catalog li').count(), 8,
               'the demo catalog lists its 8 products');
  await page.click('#add-SKU-1');
  await page.click('#add-SKU-1');
  await page.click('#add-SKU-2');
  await expectCart(page, { 'SKU-1': 2, 'SKU-2': 1 });
  await page.waitForSelector('#sellers tr[data-seller="seller-1"]', WAIT);
  const cookie = await guestCookie();
  assert.ok(cookie, 'the first write gave the guest its cookie');
  const server = await api('GET', '/', { cookie });
  assert.equal(server.status, 200);
  assert.deepEqual(linesOf(server.body), { 'SKU-1': 2, 'SKU-2': 1 },
                   'the server has the guest cart');
  await shot(page, '01-guest');
});

test('a reload keeps the cart (from the server, not only local storage)', T,
     async () => {
  // an empty local copy: what shows can only come from the server
  await page.evaluate(() => localStorage.clear());
  await page.reload();
  await page.waitForSelector('body[data-ready="true"]', WAIT);
  await expectCart(page, { 'SKU-1': 2, 'SKU-2': 1 });
  await shot(page, '02-reloaded');
});

test('sign-in merges the guest cart into the account', T, async () => {
  const seeded = await api('POST', '/items', {
    user: USER, body: { sku_id: 'SKU-3', quantity: 1 } });
  assert.equal(seeded.status, 200, 'the account had a cart before');
  await page.fill('#user', USER);
  await page.click('#signin-button');
  await page.waitForSelector(`body[data-user="${USER}"]`, WAIT);
  await expectCart(page, { 'SKU-1': 2, 'SKU-2': 1, 'SKU-3': 1 });
  const server = await api('GET', '/', { user: USER });
  assert.deepEqual(linesOf(server.body),
                   { 'SKU-1': 2, 'SKU-2': 1, 'SKU-3': 1 },
                   'the account holds both carts');
  assert.equal(await guestCookie(), null, 'the guest cookie is gone');
  await shot(page, '03-signed-in');
});

test('two pages of one user see each other\'s changes live', T, async () => {
  page2 = await context.newPage();
  page2.on('pageerror', (e) => pageErrors.push(e.message));
  await open(page2);
  await expectCart(page2, { 'SKU-1': 2, 'SKU-2': 1, 'SKU-3': 1 });
  // neither page is reloaded from here on: changes arrive by the stream
  await setQuantity(page, 'SKU-2', 4);
  await expectCart(page2, { 'SKU-1': 2, 'SKU-2': 4, 'SKU-3': 1 });
  await page2.click('#lines tr[data-sku="SKU-3"] button.remove');
  await expectCart(page, { 'SKU-1': 2, 'SKU-2': 4 });
  // and a change made elsewhere (another device, the API)
  await api('POST', '/items', { user: USER,
                                body: { sku_id: 'SKU-5', quantity: 1 } });
  await expectCart(page, { 'SKU-1': 2, 'SKU-2': 4, 'SKU-5': 1 });
  await expectCart(page2, { 'SKU-1': 2, 'SKU-2': 4, 'SKU-5': 1 });
  // the events' carts are priced from the lookup cache the demo has
  // (cart_catalog_cache), as a view is: no "could not be checked"
  assert.equal(await page2.locator('#warnings li').count(), 0,
               'no price warnings on a page the stream updated');
  await shot(page, '04-live-page1');
  await shot(page2, '04-live-page2');
});

test('server stopped: the cart keeps working on the page', T, async () => {
  execFileSync(NGINX[0], [...NGINX.slice(1), '-s', 'stop'],
               { stdio: 'ignore' });
  await until('nginx is down', async () => !(await reachable()));
  await page.click('#add-SKU-4');
  await setQuantity(page, 'SKU-1', 5);
  await page.click('#lines tr[data-sku="SKU-5"] button.remove');
  await page.waitForFunction(() => {
    const rows = [...document.querySelectorAll('#lines tr')];
    const got = rows.map((r) => r.dataset.sku + '='
                         + r.querySelector('input.qty').value).sort();
    return got.join(' ') === 'SKU-1=5 SKU-2=4 SKU-4=1'
           && document.getElementById('status').dataset.online === 'false'
           && document.getElementById('count').textContent === '10';
  }, null, WAIT);
  assert.equal(await page.locator('#lines tr.pending').count(), 2,
               'the changed and the added line are marked not yet sent');
  const kept = await page.evaluate(
    (u) => JSON.parse(localStorage.getItem('cart-client:user:' + u)), USER);
  assert.deepEqual(kept.pending.map((o) => o.op + ' ' + o.sku_id),
                   ['add SKU-4', 'set SKU-1', 'remove SKU-5'],
                   'the writes are kept in local storage, in order');
  assert.ok(kept.pending.every((o) => o.key), 'each with its key');
  assert.equal(await reachable(), false, 'the server is really down');
  await shot(page, '05-offline');
});

test('server back: synced, nothing lost, nothing doubled', T, async () => {
  execFileSync(NGINX[0], NGINX.slice(1), { stdio: 'ignore' });
  await until('nginx is up', reachable);
  const want = { 'SKU-1': 5, 'SKU-2': 4, 'SKU-4': 1 };
  await expectCart(page, want);
  const server = await api('GET', '/', { user: USER });
  assert.deepEqual(linesOf(server.body), want,
                   'the server has every offline change exactly once');
  await expectCart(page2, want);
  // a quiet while later it has not changed (a second replay would show)
  await page.waitForTimeout(1500);
  assert.deepEqual(linesOf((await api('GET', '/', { user: USER })).body),
                   want, 'and still once');
  await shot(page, '06-back-online');
});

test('an answer lost on the way: the retry carries the same key, applied once',
     T, async () => {
  const keys = [];
  page.on('request', (r) => {
    if (r.method() === 'POST' && r.url().endsWith('/items')) {
      keys.push(r.headers()['idempotency-key']);
    }
  });
  const replayed = [];
  page.on('response', (r) => {
    if (r.request().method() === 'POST' && r.url().endsWith('/items')) {
      replayed.push(r.headers()['idempotent-replayed'] || 'no');
    }
  });
  let lost = null;
  await page.route('**/api/v1/cart/items', async (route) => {
    if (!lost && route.request().method() === 'POST') {
      // the server gets it and answers; the page never sees the answer
      const first = await route.fetch();
      lost = { status: first.status(), body: await first.json() };
      await route.abort('connectionreset');
      return;
    }
    await route.continue();
  });
  await page.click('#add-SKU-6');
  await expectCart(page, { 'SKU-1': 5, 'SKU-2': 4, 'SKU-4': 1, 'SKU-6': 1 });
  await page.unroute('**/api/v1/cart/items');
  assert.ok(lost, 'the first answer was lost');
  assert.equal(lost.status, 200, 'after the server had applied the write');
  assert.equal(lost.body.cart_id, 'cart:user-' + USER, 'to this cart');
  assert.deepEqual(replayed, ['true'],
                   'the retry got the first answer back (a replay)');
  assert.equal(keys.length, 2, 'the write was sent twice');
  assert.ok(keys[0] && keys[0] === keys[1], 'with the same Idempotency-Key');
  const server = await api('GET', '/', { user: USER });
  assert.equal(linesOf(server.body)['SKU-6'], 1, 'and applied once');
});

test('coupon, shipping address and checkout from the store', T, async () => {
  const code = 'E2E' + RUN.replace(/[^A-Za-z0-9]/g, '').slice(-12);
  const res = await fetch(BASE + '/admin/cart/promotions', {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ code, type: 'percent', value: 10 }),
  });
  assert.equal(res.status, 201, 'the promotion was made');
  await page.fill('#coupon-code', code.toLowerCase());
  await page.click('#coupon button');
  await page.waitForFunction(
    (c) => document.getElementById('coupon-state').textContent
           === c + ' applied', code, WAIT);
  // an unknown coupon is refused with the API's error, shown
  await page.fill('#coupon-code', 'NOSUCH' + code);
  await page.click('#coupon button');
  await page.waitForFunction(() => /coupon_unknown/.test(
    document.getElementById('message').textContent), null, WAIT);
  await page.fill('#country', 'us');
  await page.fill('#postal', '94107');
  await page.click('#address button');
  await page.waitForFunction(() => document.getElementById('address-state')
    .textContent === 'US 94107', null, WAIT);
  await shot(page, '07-before-checkout');
  await page.click('#checkout');
  await page.waitForSelector('#order[data-checkout-id]', WAIT);
  assert.match(await page.textContent('#order'), /^Order \S+: seller-/);
  await expectCart(page, {});
  await expectCart(page2, {});
  await shot(page, '08-ordered');
});

test('no script error on the pages', () => {
  assert.deepEqual(pageErrors, []);
});
