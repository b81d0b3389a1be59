// node util/npm-installed.js DIR: exits 0 when DIR/node_modules holds every
// package of DIR/package-lock.json at its locked version (util/test.sh
// then skips "npm ci --prefix DIR"), 1 otherwise. Used for t/openapi and
// t/browser.
'use strict';
const fs = require('fs');
const path = require('path');

const dir = path.resolve(process.argv[2] || '.');
let lock;
try {
  lock = JSON.parse(fs.readFileSync(path.join(dir, 'package-lock.json'), 'utf8'));
} catch (e) {
  process.exit(1);
}
for (const [where, pkg] of Object.entries(lock.packages)) {
  if (where === '') continue;
  try {
    const got = JSON.parse(fs.readFileSync(path.join(dir, where, 'package.json'), 'utf8'));
    if (got.version !== pkg.version) process.exit(1);
  } catch (e) {
    process.exit(1);
  }
}
process.exit(0);
