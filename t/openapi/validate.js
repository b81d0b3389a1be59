#!/usr/bin/env node
// Validates the answers captured during the test suite against the API's
// OpenAPI document, and prints TAP (t/990-openapi.t passes it through).
//
//   node t/openapi/validate.js SPEC CAPTURE [--all]
//
// SPEC is docs/openapi.yaml; CAPTURE the file the runner appended one JSON
// line per request to (TEST_NGINX_CAPTURE, see t/lib/CartTest/Runner.pm):
// {"file","block","req","method","uri","location","kind","path","status",
//  "complete","content_type","headers","body"}.
//
// An answer on a cart_api or cart_admin location ("kind") is matched to the
// document's operation by its path below the location ("/items/SKU-1" is
// /items/{sku_id}) and method (HEAD is GET's operation, without a body).
// Its status must be documented for that operation, its content type be one
// of that response's, its JSON body valid against that response's schema
// (JSON Schema 2020-12, ajv), its documented headers present when required
// and valid when present. A path that no operation has is answered as
// components/responses/Error<status> says (404 not_found), a method that
// its path does not have likewise (405 method_not_allowed, with Allow).
// Answers on other locations (the fake upstreams, /wait, ...) are skipped.
//
// With --all (the whole suite ran) every operation must also have been
// answered with a success status at least once, unless NOT_EXERCISED below
// says why it cannot be.
'use strict';

const fs = require('fs');
const YAML = require('yaml');
const Ajv2020 = require('ajv/dist/2020');
const addFormats = require('ajv-formats');

// Operations that no captured answer can show, and why. Keep it short: an
// entry whose operation was answered after all is itself a failure.
const NOT_EXERCISED = {
};

const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options'];
const SPEC_ID = 'openapi.yaml';

const argv = process.argv.slice(2);
const all = argv.includes('--all');
const [specFile, captureFile] = argv.filter((a) => !a.startsWith('--'));
if (!specFile || !captureFile) {
  console.error('usage: validate.js SPEC CAPTURE [--all]');
  process.exit(2);
}

let testNo = 0;
let failed = 0;
function ok(pass, name, diag) {
  testNo++;
  if (!pass) failed++;
  console.log(`${pass ? '' : 'not '}ok ${testNo} - ${name}`);
  if (diag && !pass) {
    for (const line of String(diag).split('\n')) console.log(`# ${line}`);
  }
}
function note(text) {
  for (const line of String(text).split('\n')) console.log(`# ${line}`);
}

// --- the document ----------------------------------------------------------

let doc;
try {
  doc = YAML.parse(fs.readFileSync(specFile, 'utf8'));
} catch (e) {
  ok(false, `${specFile} is YAML`, e.message);
  console.log(`1..${testNo}`);
  process.exit(1);
}

const ajv = new Ajv2020({
  strictSchema: true,       // an unknown keyword (a typo) is an error
  strictNumbers: true,
  strictTypes: false,       // "properties" beside a $ref need no "type"
  strictTuples: false,
  strictRequired: false,    // "then: {required: [...]}" names properties of the parent
  allErrors: true,
  multipleOfPrecision: 9,   // amounts are multipleOf 0.01
});
addFormats(ajv);
// the document itself is registered as a schema so that "#/components/..."
// references resolve; its OpenAPI keywords are no schema keywords
ajv.addVocabulary(['openapi', 'info', 'servers', 'paths', 'components', 'tags',
                   'jsonSchemaDialect', 'webhooks', 'security', 'externalDocs']);
ajv.addSchema(doc, SPEC_ID);

const escape = (s) => s.replace(/~/g, '~0').replace(/\//g, '~1');
const pointerText = (ptr) => '/' + ptr.map(escape).join('/');

function at(ptr) {
  let node = doc;
  for (const key of ptr) {
    if (node === undefined || node === null) return undefined;
    node = node[key];
  }
  return node;
}

// follows a Reference Object ("$ref": "#/components/...") to its target;
// returns [object, pointer]
function resolve(node, ptr) {
  for (let hops = 0; node && typeof node.$ref === 'string'; hops++) {
    if (!node.$ref.startsWith('#/') || hops > 10) {
      throw new Error(`unsupported reference ${node.$ref} at ${pointerText(ptr)}`);
    }
    ptr = node.$ref.slice(2).split('/').map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
    node = at(ptr);
    if (node === undefined) throw new Error(`dangling reference at ${pointerText(ptr)}`);
  }
  return [node, ptr];
}

const validators = new Map();
function validator(ptr) {
  const key = pointerText(ptr);
  if (!validators.has(key)) {
    const ref = SPEC_ID + '#/' + ptr.map((s) => encodeURIComponent(escape(s))).join('/');
    validators.set(key, ajv.compile({ $ref: ref }));
  }
  return validators.get(key);
}

function templateRegex(template) {
  const parts = template.split(/(\{[^}/]+\})/).map((part) =>
    /^\{.*\}$/.test(part) ? '[^/]+' : part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  return new RegExp(`^${parts.join('')}$`);
}

// every operation: {key, kind, method, template, regex, op, ptr}
const operations = [];
const pathItems = [];
for (const [template, item] of Object.entries(doc.paths || {})) {
  const kind = item['x-cart-location'] || 'cart_api';
  pathItems.push({ kind, template, regex: templateRegex(template), item });
  for (const method of METHODS) {
    if (!item[method]) continue;
    operations.push({
      key: `${method.toUpperCase()} ${template}${kind === 'cart_api' ? '' : ` (${kind})`}`,
      kind, method, template, regex: templateRegex(template), op: item[method],
      ptr: ['paths', template, method],
    });
  }
}

// every response of the document compiles: a broken reference or a
// misspelt keyword shows even where no answer reached it
{
  const problems = [];
  const responses = [];
  for (const o of operations) {
    for (const status of Object.keys(o.op.responses || {})) {
      responses.push([...o.ptr, 'responses', status]);
    }
  }
  for (const name of Object.keys((doc.components || {}).responses || {})) {
    responses.push(['components', 'responses', name]);
  }
  for (const ptr0 of responses) {
    try {
      const [res, ptr] = resolve(at(ptr0), ptr0);
      for (const [type, media] of Object.entries(res.content || {})) {
        if (media.schema) validator([...ptr, 'content', type, 'schema']);
      }
      for (const [name, header] of Object.entries(res.headers || {})) {
        const [h, hptr] = resolve(header, [...ptr, 'headers', name]);
        if (h.schema) validator([...hptr, 'schema']);
      }
    } catch (e) {
      problems.push(`${pointerText(ptr0)}: ${e.message}`);
    }
  }
  ok(problems.length === 0 && operations.length > 0,
     `${specFile}: ${operations.length} operations, every response schema compiles`,
     problems.join('\n'));
}

// --- the answers -----------------------------------------------------------

let lines = [];
try {
  lines = fs.readFileSync(captureFile, 'utf8').split('\n').filter((l) => l.trim() !== '');
} catch (e) {
  ok(false, `read ${captureFile}`, e.message);
}

const stats = new Map();    // operation key -> {validated, failures[], skipped{}, statuses{}}
function statsOf(key) {
  if (!stats.has(key)) stats.set(key, { validated: 0, success: 0, failures: [], skipped: {}, statuses: {} });
  return stats.get(key);
}
const otherLocations = {};  // location -> count of skipped answers
let cartAnswers = 0;

function where(rec) {
  return `${rec.file} "${rec.block}" req ${rec.req}${rec.repeat ? ` (repeat ${rec.repeat})` : ''}: `
         + `${rec.method} ${rec.uri} -> ${rec.status}`;
}

function checkAnswer(rec, resPtr0, isHead) {
  const errors = [];
  const [res, resPtr] = resolve(at(resPtr0), resPtr0);
  const headers = rec.headers || {};

  for (const [name, header] of Object.entries(res.headers || {})) {
    const [h, hptr] = resolve(header, [...resPtr, 'headers', name]);
    const value = headers[name.toLowerCase()];
    if (value === undefined) {
      if (h.required) errors.push(`header ${name} is missing`);
      continue;
    }
    if (h.schema) {
      const v = validator([...hptr, 'schema']);
      if (!v(value)) {
        errors.push(`header ${name}: ${JSON.stringify(value)} `
                    + v.errors.map((e) => `${e.message} ${JSON.stringify(e.params)}`).join('; '));
      }
    }
  }

  const body = rec.body === undefined ? null : rec.body;
  const content = res.content || {};
  if (Object.keys(content).length === 0) {
    if (body) errors.push(`a body where the document has none: ${body.slice(0, 200)}`);
    return errors;
  }
  const type = (rec.content_type || '').split(';')[0].trim().toLowerCase();
  if (!content[type]) {
    errors.push(`content type "${rec.content_type}" is not one of ${Object.keys(content).join(', ')}`);
    return errors;
  }
  if (isHead || !content[type].schema) return errors;
  if (body === null) {
    errors.push('a body that is not UTF-8');
    return errors;
  }
  let value = body;
  if (type === 'application/json' || type.endsWith('+json')) {
    try {
      value = JSON.parse(body);
    } catch (e) {
      errors.push(`not JSON: ${e.message}: ${body.slice(0, 200)}`);
      return errors;
    }
  }
  const v = validator([...resPtr, 'content', type, 'schema']);
  if (!v(value)) {
    for (const e of v.errors.slice(0, 8)) {
      errors.push(`body${e.instancePath} ${e.message}`
                  + (e.params && Object.keys(e.params).length ? ` ${JSON.stringify(e.params)}` : '')
                  + ` (${e.schemaPath})`);
    }
    errors.push(`body: ${body.length > 600 ? body.slice(0, 600) + '...' : body}`);
  }
  // an event stream's pattern checks the frame; each event's data is JSON
  // of the schema StreamEvent
  if (type === 'text/event-stream') {
    const ev = validator(['components', 'schemas', 'StreamEvent']);
    for (const m of body.matchAll(/^data: (.*)$/gm)) {
      let data;
      try {
        data = JSON.parse(m[1]);
      } catch (e) {
        errors.push(`event data not JSON: ${e.message}: ${m[1].slice(0, 200)}`);
        continue;
      }
      if (!ev(data)) {
        for (const e of ev.errors.slice(0, 8)) {
          errors.push(`event data${e.instancePath} ${e.message} (${e.schemaPath})`);
        }
      }
    }
  }
  return errors;
}

for (const line of lines) {
  let rec;
  try {
    rec = JSON.parse(line);
  } catch (e) {
    ok(false, 'a captured line is JSON', `${e.message}: ${line.slice(0, 200)}`);
    continue;
  }
  if (!rec.kind) {
    const loc = rec.location === null || rec.location === undefined ? '(no location)' : rec.location;
    otherLocations[loc] = (otherLocations[loc] || 0) + 1;
    continue;
  }
  cartAnswers++;

  const isHead = rec.method === 'HEAD';
  const method = isHead ? 'get' : String(rec.method).toLowerCase();
  const item = pathItems.find((p) => p.kind === rec.kind && p.regex.test(rec.path));
  const operation = item && operations.find((o) => o.kind === rec.kind
                                               && o.template === item.template
                                               && o.method === method);
  let key;
  let resPtr;
  if (operation) {
    key = operation.key;
    if (rec.status !== null && rec.status !== undefined) {
      const responses = operation.op.responses || {};
      if (responses[String(rec.status)]) {
        resPtr = [...operation.ptr, 'responses', String(rec.status)];
      }
    }
  } else {
    // the module's answer to a path or a method that the API has not
    key = item ? `(other methods of ${item.template}${rec.kind === 'cart_api' ? '' : ` (${rec.kind})`})`
               : `(no such path below ${rec.kind})`;
    if (((doc.components || {}).responses || {})[`Error${rec.status}`]) {
      resPtr = ['components', 'responses', `Error${rec.status}`];
    }
  }

  const s = statsOf(key);
  if (rec.status === null || rec.status === undefined || rec.complete === false) {
    const why = 'no complete answer';
    s.skipped[why] = (s.skipped[why] || 0) + 1;
    continue;
  }
  s.statuses[rec.status] = (s.statuses[rec.status] || 0) + 1;
  const errors = resPtr ? checkAnswer(rec, resPtr, isHead)
                        : [`status ${rec.status} is not documented here`];
  if (errors.length) {
    s.failures.push(`${where(rec)}\n  ${errors.join('\n  ')}`);
  } else {
    s.validated++;
    if (rec.status >= 200 && rec.status < 300) s.success++;
  }
}

ok(cartAnswers > 0, `${captureFile}: ${lines.length} answers captured, ${cartAnswers} on cart locations`);

// --- per operation ---------------------------------------------------------

const keys = [...operations.map((o) => o.key),
              ...[...stats.keys()].filter((k) => !operations.some((o) => o.key === k)).sort()];
const table = [];
for (const key of keys) {
  const s = statsOf(key);
  const skipped = Object.values(s.skipped).reduce((a, b) => a + b, 0);
  const statuses = Object.entries(s.statuses).map(([st, n]) => `${st}×${n}`).join(' ');
  table.push([key, s.validated, s.failures.length, skipped, statuses]);
  if (s.validated + s.failures.length + skipped === 0) continue;
  const skippedText = skipped
    ? `, ${skipped} skipped (${Object.entries(s.skipped).map(([w, n]) => `${w}: ${n}`).join(', ')})` : '';
  const shown = s.failures.slice(0, 5).join('\n');
  ok(s.failures.length === 0,
     `${key}: ${s.validated} answers valid${s.failures.length ? `, ${s.failures.length} not` : ''}${skippedText}`,
     s.failures.length > 5 ? `${shown}\n... and ${s.failures.length - 5} more` : shown);
}

// --- coverage --------------------------------------------------------------

const never = operations.filter((o) => statsOf(o.key).success === 0 && !NOT_EXERCISED[o.key]);
const stale = Object.keys(NOT_EXERCISED).filter((k) => !operations.some((o) => o.key === k)
                                                      || statsOf(k).success > 0);
if (all) {
  ok(never.length === 0,
     'every documented operation was answered with a success at least once',
     `never answered with a 2xx:\n${never.map((o) => `  ${o.key}`).join('\n')}`);
  ok(stale.length === 0, 'every entry of the NOT_EXERCISED list is needed',
     `answered after all, or no such operation: ${stale.join(', ')}`);
} else {
  console.log(`ok ${++testNo} # SKIP coverage: not the whole suite`
              + (never.length ? ` (never answered with a 2xx here: ${never.map((o) => o.key).join(', ')})` : ''));
}
for (const [key, why] of Object.entries(NOT_EXERCISED)) note(`not exercised, by the list: ${key}: ${why}`);

// --- the summary -----------------------------------------------------------

const head = ['operation', 'valid', 'invalid', 'skipped', 'statuses seen'];
const widths = head.map((h, i) => Math.max(h.length, ...table.map((r) => String(r[i]).length)));
const row = (r) => r.map((c, i) => (i === 0 || i === 4 ? String(c).padEnd(widths[i])
                                                       : String(c).padStart(widths[i]))).join('  ').trimEnd();
note(row(head));
for (const r of table) note(row(r));
const other = Object.entries(otherLocations).sort((a, b) => b[1] - a[1]);
note(`skipped, not on a cart location: ${other.reduce((a, [, n]) => a + n, 0)} answers`
     + (other.length ? ` (${other.map(([l, n]) => `${l}: ${n}`).join(', ')})` : ''));

console.log(`1..${testNo}`);
process.exit(failed ? 1 : 0);
