// Prints the raw and gzipped size of chatvault.js; exits non-zero above the 10 KB budget.
import { readFileSync } from 'node:fs';
import { gzipSync, constants } from 'node:zlib';

const LIMIT = 10240;
const raw = readFileSync(new URL('./chatvault.js', import.meta.url));
const gz = gzipSync(raw, { level: constants.Z_BEST_COMPRESSION }).length;
console.log(`chatvault.js: ${raw.length} bytes raw, ${gz} bytes gzipped (budget ${LIMIT})`);
if (gz > LIMIT) {
  console.error(`error: widget is ${gz - LIMIT} bytes over the gzipped budget`);
  process.exit(1);
}
