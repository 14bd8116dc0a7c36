// verify.mjs: L402 credential verification on js-macaroon (npm `macaroon` 3.0.4), the same work
// as benches/l402_verify.rs on the same token: split "L402 <b64>:<hex>", base64 decode and V2
// parse (importMacaroon), identifier decode (66 bytes, version 0), sha256(preimage) == payment
// hash, sha256(identifier), verify with the root key and a checker for services / capabilities /
// valid_until.
//
// JS_MACAROON_DIR names the folder whose node_modules holds `macaroon`.
// Run: node verify.mjs HEADER ROOT_KEY_HEX NOW SECS ROUNDS   -> one JSON line
// Rates are per second of process CPU time (process.cpuUsage); wall_rates per elapsed second.
import { createHash, timingSafeEqual } from 'node:crypto';
import { createRequire } from 'node:module';

const require = createRequire(`${process.env.JS_MACAROON_DIR ?? '.'}/`);
const { importMacaroon } = require('macaroon');

const SERVICE = 'demo';
const CAPABILITY = 'read';

function checker(now) {
  return (caveat) => {
    const eq = caveat.indexOf('=');
    if (eq < 0) return 'no =';
    const cond = caveat.slice(0, eq).trim();
    const value = caveat.slice(eq + 1).trim();
    if (cond === 'services') {
      for (const s of value.split(',')) {
        const [name, tier] = s.trim().split(':');
        if (tier === undefined || !/^\d+$/.test(tier) || Number(tier) > 255) return 'bad services';
        if (name === SERVICE) return null;
      }
      return 'wrong service';
    }
    if (cond === `${SERVICE}_capabilities`) {
      return value.split(',').some((c) => c.trim() === CAPABILITY) ? null : 'missing capability';
    }
    if (cond === `${SERVICE}_valid_until`) {
      return /^\d+$/.test(value) && now <= Number(value) ? null : 'expired';
    }
    return 'unknown caveat';
  };
}

function verify(header, rootKey, now) {
  const h = header.trim();
  const sp = h.indexOf(' ');
  const scheme = h.slice(0, sp).toUpperCase();
  if (scheme !== 'L402' && scheme !== 'LSAT') throw new Error('scheme');
  const rest = h.slice(sp + 1).trim();
  const colon = rest.lastIndexOf(':');
  const preimage = Buffer.from(rest.slice(colon + 1), 'hex');
  if (preimage.length !== 32) throw new Error('preimage');
  const m = importMacaroon(rest.slice(0, colon));
  const id = m.identifier;
  if (id.length !== 66 || id[0] !== 0 || id[1] !== 0) throw new Error('identifier');
  const paymentHash = Buffer.from(id.subarray(2, 34));
  if (!timingSafeEqual(createHash('sha256').update(preimage).digest(), paymentHash)) {
    throw new Error('preimage mismatch');
  }
  createHash('sha256').update(id).digest(); // the root key's name
  m.verify(rootKey, checker(now)); // throws when it does not verify
  return true;
}

const [header, keyHex, nowS, secsS, roundsS] = process.argv.slice(2);
const rootKey = new Uint8Array(Buffer.from(keyHex, 'hex'));
const now = Number(nowS);
const secs = Number(secsS);
const rounds = Number(roundsS);
verify(header, rootKey, now);
// CPU time of the whole process (user + system, every thread: GC included), in seconds.
const cpu = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};
const rates = [];
const wall = [];
for (let round = 0; round <= rounds; round++) {
  const budget = round === 0 ? 0.2 : secs;
  const start = process.hrtime.bigint();
  const cpu0 = cpu();
  let n = 0;
  let used;
  for (;;) {
    for (let i = 0; i < 256; i++) verify(header, rootKey, now);
    n += 256;
    used = cpu() - cpu0;
    if (used >= budget) break;
  }
  if (round > 0) {
    rates.push(n / used);
    wall.push(n / (Number(process.hrtime.bigint() - start) / 1e9));
  }
}
const s = [...rates].sort((a, b) => a - b);
console.log(JSON.stringify({
  impl: `js macaroon 3.0.4 (node ${process.version})`,
  rates: rates.map(Math.round),
  median: Math.round(s[Math.floor(s.length / 2)]),
  best: Math.round(s[s.length - 1]),
  wall_rates: wall.map(Math.round),
}));
