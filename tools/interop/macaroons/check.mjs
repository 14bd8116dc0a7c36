// check.mjs: the JavaScript side of the macaroon interop check, on the npm
// package `macaroon` 3.0.4 (js-macaroon), the library lsat-js and boltwall use.
//
// JS_MACAROON_DIR must name the folder whose node_modules holds `macaroon`.
// Same command line as check.go (hex lowercase, base64 standard and padded):
//
//   vector                         libmacaroons' classic vector (key derivation)
//   mint   --root-key HEX (--id-hex HEX | --id-text S) [--location L] [--caveat C]...
//   verify --root-key HEX --macaroon B64 [--id-hex HEX] [--location L] [--caveat C]...
//          asserts: location (default lsat) and identifier (if given); verifies with the root key and a checker accepting exactly
//          the given caveats (seen in that order); fails with a wrong root key;
//          fails when the checker refuses the last caveat; re-serializes to the
//          same bytes.
//
// js-macaroon derives the key in newMacaroon() and verify() (makeKey), and
// bytesToBase64() is URL-safe unpadded, so we encode standard base64 ourselves.
import { createRequire } from 'node:module';
import { parseArgs } from 'node:util';

const require = createRequire(`${process.env.JS_MACAROON_DIR ?? '.'}/`);
const { newMacaroon, importMacaroon } = require('macaroon');

const fail = (msg) => {
  console.error(`js: ${msg}`);
  process.exit(1);
};
const hex = (bytes) => Buffer.from(bytes).toString('hex');
const fromHex = (s) => new Uint8Array(Buffer.from(s, 'hex'));
const enc = new TextEncoder();

function mint(rootKey, identifier, location, caveats) {
  const m = newMacaroon({ rootKey, identifier, location, version: 2 });
  for (const c of caveats) m.addFirstPartyCaveat(c);
  return m;
}

// Library verify with a checker accepting exactly `expected`; the checker
// returns an error string to refuse, null to accept.
function verifyWith(m, rootKey, expected, refuse) {
  const seen = [];
  try {
    m.verify(rootKey, (cond) => {
      seen.push(cond);
      if (cond === refuse) return 'refused on purpose';
      return expected.includes(cond) ? null : `unexpected caveat ${cond}`;
    });
    return { ok: true, seen };
  } catch (e) {
    return { ok: false, err: e.message, seen };
  }
}

const [cmd, ...rest] = process.argv.slice(2);
const { values: a } = parseArgs({
  args: rest,
  options: {
    'root-key': { type: 'string' },
    'id-hex': { type: 'string' },
    'id-text': { type: 'string' },
    location: { type: 'string', default: 'lsat' },
    macaroon: { type: 'string' },
    caveat: { type: 'string', multiple: true, default: [] },
  },
});

if (cmd === 'vector') {
  const m = mint(enc.encode('this is our super secret key; only we should know it'),
    enc.encode('we used our secret key'), 'http://mybank/', []);
  const want = 'e3d9e02908526c4c0039ae15114115d97fdd68bf2ba379b342aaf0f617d0552f';
  if (hex(m.signature) !== want) fail(`libmacaroons vector: signature ${hex(m.signature)}, want ${want}`);
  m.addFirstPartyCaveat('account = 3735928559');
  const want2 = '1efe4763f290dbce0c1d08477367e11f4eee456a64933cf662d79772dbb82128';
  if (hex(m.signature) !== want2) fail(`libmacaroons vector with caveat: signature ${hex(m.signature)}, want ${want2}`);
  console.log('js: libmacaroons vector ok');
} else if (cmd === 'mint') {
  const id = a['id-hex'] !== undefined ? fromHex(a['id-hex']) : enc.encode(a['id-text']);
  const m = mint(fromHex(a['root-key']), id, a.location, a.caveat);
  console.log(Buffer.from(m.exportBinary()).toString('base64'));
} else if (cmd === 'verify') {
  const rootKey = fromHex(a['root-key']);
  // Our side promises standard padded base64: check that strictly...
  const b64 = a.macaroon;
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(b64) || b64.length % 4 !== 0) fail('not standard padded base64');
  const raw = new Uint8Array(Buffer.from(b64, 'base64'));
  // ...then let the library parse the base64 string itself.
  const m = importMacaroon(b64);
  // (js-macaroon has no public version getter)
  if (m._version !== 2) fail(`version ${m._version}, want 2`);
  if (m.location !== a.location) fail(`location ${m.location}, want ${a.location}`);
  if (a['id-hex'] !== undefined && hex(m.identifier) !== a['id-hex']) {
    fail(`identifier ${hex(m.identifier)}, want ${a['id-hex']}`);
  }
  const good = verifyWith(m, rootKey, a.caveat);
  if (!good.ok) fail(`does not verify with the right root key: ${good.err}`);
  if (JSON.stringify(good.seen) !== JSON.stringify(a.caveat)) {
    fail(`caveats ${JSON.stringify(good.seen)}, want ${JSON.stringify(a.caveat)}`);
  }
  const wrong = rootKey.slice();
  wrong[wrong.length - 1] ^= 1;
  if (verifyWith(m, wrong, a.caveat).ok) fail('verifies with a WRONG root key');
  if (a.caveat.length > 0 && verifyWith(m, rootKey, a.caveat, a.caveat.at(-1)).ok) {
    fail('verifies although the checker refused a caveat');
  }
  const again = m.exportBinary();
  if (hex(again) !== hex(raw)) fail(`re-serialized bytes differ:\n in  ${hex(raw)}\n out ${hex(again)}`);
  console.log(`js: ok, id ${hex(m.identifier)}, ${good.seen.length} caveats, signature ${hex(m.signature)}`);
} else {
  console.error('usage: check.mjs vector|mint|verify [options]');
  process.exit(2);
}
