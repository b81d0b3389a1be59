// Exits 0 when node_modules holds every package of package-lock.json at its
// locked version (util/test.sh then skips "npm ci"), 1 otherwise.
'use strict';
const fs = require('fs');
const path = require('path');

const lock = JSON.parse(fs.readFileSync(path.join(__dirname, 'package-lock.json'), 'utf8'));
for (const [where, pkg] of Object.entries(lock.packages)) {
  if (where === '') continue;
  try {
    const got = JSON.parse(fs.readFileSync(path.join(__dirname, where, 'package.json'), 'utf8'));
    if (got.version !== pkg.version) process.exit(1);
  } catch (e) {
    process.exit(1);
  }
}
process.exit(0);
