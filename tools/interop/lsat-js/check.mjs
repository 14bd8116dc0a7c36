#!/usr/bin/env node
// lsat-js 2.0.6 (npm; the LSAT library of boltwall and its clients) against OUR L402 side.
//
//   our-gateway->lsat-js   parse: Lsat.fromHeader() on the 402 our gateway sends (the folded
//                          "LSAT ..., L402 ..." value fetch() gives, and each line alone);
//                          payment hash, invoice and amount must match the challenge's JSON body,
//                          and lsat-js' Identifier decoding of OUR identifier (version 0, payment
//                          hash, token id) and its caveat list must match what our own
//                          l402_oracle inspect reads from the same macaroon
//   lsat-js->our-gateway   token: after paying the invoice (LNbits wallet A), lsat.setPreimage()
//                          (lsat-js checks the hash) and lsat.toToken() = "LSAT mac:preimage";
//                          our gateway must accept it (200 with the upstream's data), and refuse
//                          the same token with a wrong preimage (402)
//   lsat-js->ours(hex-id)  an LSAT made the lsat-js/boltwall way: identifier = lsat-js'
//                          Identifier.toString() (the 132-character hex of the 66 bytes), macaroon
//                          minted with lsat-js' macaroon library, exported with getRawMacaroon(),
//                          read back by Lsat.fromMacaroon(), token from toToken(); our verifier
//                          (l402_oracle verify) must accept it with the root key and refuse it
//                          with a wrong one
//
// Usage: node check.mjs --gateway URL --path /paid/data --price SATS --lnbits INFO_JSON --oracle BIN
// Env:   LSAT_JS_DIR  folder whose node_modules holds lsat-js (and macaroon@3.0.4)
//        INTEROP_BREAK=lsat-header  hands lsat-js the challenge with the macaroon's first
//        character changed (shows the parse check can fail)
// One line per check: "lsat-js <direction> <check> PASS|FAIL [detail]"; exit 1 if any failed.
import { createRequire } from 'node:module';
import { createHash, randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';

const require = createRequire(path.join(process.env.LSAT_JS_DIR || '.', 'node_modules', 'x.js'));
const { Lsat, Identifier, getRawMacaroon } = require('lsat-js');
const Macaroon = require('macaroon');

const args = {};
for (let i = 2; i < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, '')] = process.argv[i + 1];
const info = JSON.parse(readFileSync(args.lnbits, 'utf8'));
const url = args.gateway.replace(/\/$/, '') + (args.path || '/paid/data');
const price = Number(args.price);
let failed = 0;

function check(direction, name, ok, detail = '') {
  if (!ok) failed++;
  let line = `${'lsat-js'.padEnd(14)} ${direction.padEnd(22)} ${name.padEnd(44)} ${ok ? 'PASS' : 'FAIL'}`;
  if (!ok && detail) line += '  ' + String(detail).slice(0, 600);
  console.log(line);
  return ok;
}
function attempt(direction, name, fn) {
  try { return fn(); } catch (e) { check(direction, name, false, e.stack || e.message); return undefined; }
}
const sha256 = (hex) => createHash('sha256').update(Buffer.from(hex, 'hex')).digest('hex');
function oracle(...a) {
  try { return { rc: 0, out: execFileSync(args.oracle, a, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }) }; }
  catch (e) { return { rc: e.status, out: (e.stdout || '') + (e.stderr || '') }; }
}
async function lnbits(method, p, key, body) {
  const r = await fetch(info.url + p, { method, headers: { 'X-Api-Key': key, 'Content-Type': 'application/json' }, body: body && JSON.stringify(body) });
  const j = await r.json();
  if (!r.ok) throw new Error(`LNbits ${method} ${p}: ${r.status} ${JSON.stringify(j)}`);
  return j;
}

// ------------------------------------------------------------ our gateway -> lsat-js (parse)
const D1 = 'our-gateway->lsat-js';
const r402 = await fetch(url);
const folded = r402.headers.get('www-authenticate') || '';
const lines = folded.split(/,\s*(?=(?:LSAT|L402) )/); // fetch() folds the two header lines
const body = await r402.json().catch(() => ({}));
check(D1, 'gateway 402 with LSAT and L402 lines', r402.status === 402 && /^LSAT /.test(folded) && /, L402 /.test(folded),
  `status ${r402.status}, www-authenticate: ${folded.slice(0, 200)}`);
const given = process.env.INTEROP_BREAK === 'lsat-header' ? folded.replace(/macaroon="(.)/, (m, c) => `macaroon="${c === 'A' ? 'B' : 'A'}`) : folded;

const inspected = (() => {
  const o = oracle('inspect', '--macaroon', body.macaroon || '');
  try { return JSON.parse(o.out); } catch { return {}; }
})();
let lsat;
for (const [label, header] of [['folded header', given], ['LSAT line alone', lines[0]], ['L402 line alone', lines[1] || '']]) {
  const l = attempt(D1, `fromHeader(${label})`, () => Lsat.fromHeader(header));
  if (!l) continue;
  const problems = [];
  if (l.paymentHash !== body.payment_hash) problems.push(`paymentHash ${l.paymentHash} != ${body.payment_hash}`);
  if (l.invoice !== body.invoice) problems.push('invoice differs from the JSON body');
  if (l.invoiceAmount !== price) problems.push(`invoiceAmount ${l.invoiceAmount} != ${price}`);
  if (l.baseMacaroon !== body.macaroon) problems.push('baseMacaroon differs from the JSON body');
  check(D1, `fromHeader(${label}): hash, invoice, amount`, problems.length === 0, problems.join('; '));
  if (label === 'folded header') lsat = l;
}
if (lsat) {
  attempt(D1, 'identifier decoded by lsat-js', () => {
    const id = Identifier.fromString(lsat.id);
    const problems = [];
    if (id.version !== 0) problems.push(`version ${id.version}`);
    if (id.paymentHash.toString('hex') !== body.payment_hash) problems.push(`paymentHash ${id.paymentHash.toString('hex')}`);
    if (id.tokenId.toString('hex') !== inspected.token_id) problems.push(`tokenId ${id.tokenId.toString('hex')} != ours ${inspected.token_id}`);
    check(D1, 'identifier: version 0, payment hash, token id', problems.length === 0, problems.join('; '));
  });
  attempt(D1, 'caveats read by lsat-js', () => {
    const cav = lsat.getCaveats().map((c) => c.encode());
    check(D1, 'caveats equal ours', JSON.stringify(cav) === JSON.stringify(inspected.caveats),
      `lsat-js ${JSON.stringify(cav)} vs ours ${JSON.stringify(inspected.caveats)}`);
  });
}

// ------------------------------------------------------------ lsat-js token -> our gateway
const D2 = 'lsat-js->our-gateway';
if (lsat) {
  try {
    const paid = await lnbits('POST', '/api/v1/payments', info.a.admin_key, { out: true, bolt11: lsat.invoice });
    let pre = paid.preimage;
    if (!pre) pre = (await lnbits('GET', `/api/v1/payments/${paid.payment_hash}`, info.a.admin_key)).preimage;
    attempt(D2, 'setPreimage', () => { lsat.setPreimage(pre); });
    check(D2, 'isSatisfied after paying', lsat.isSatisfied() === true);
    const token = lsat.toToken();
    const ok = await fetch(url, { headers: { Authorization: token } });
    const text = await ok.text();
    check(D2, 'toToken() "LSAT mac:pre" accepted (200)', token.startsWith('LSAT ') && ok.status === 200 && text.includes('the answer is 42'),
      `status ${ok.status}: ${text.slice(0, 200)}`);
    const last = token.slice(-1) === '0' ? '1' : '0';
    const bad = await fetch(url, { headers: { Authorization: token.slice(0, -1) + last } });
    check(D2, 'same token, wrong preimage: refused (402)', bad.status === 402, `status ${bad.status}`);
  } catch (e) {
    check(D2, 'pay and present the token', false, e.stack || e.message);
  }
}

// ------------------------------------------------------------ lsat-js-made LSAT (hex id) -> ours
const D3 = 'lsat-js->ours(hex-id)';
attempt(D3, 'mint the lsat-js way', () => {
  const rootKey = randomBytes(32);
  const preimage = randomBytes(32).toString('hex');
  const paymentHash = sha256(preimage);
  const tokenId = randomBytes(32);
  const id = new Identifier({ paymentHash: Buffer.from(paymentHash, 'hex'), tokenId });
  const idHex = id.toString();
  check(D3, 'identifier is 132 hex characters', /^0000[0-9a-f]{128}$/.test(idHex), idHex);
  const mac = Macaroon.newMacaroon({ version: 2, rootKey, identifier: idHex, location: 'lsat' });
  mac.addFirstPartyCaveat('services=demo:0');
  mac.addFirstPartyCaveat('demo_capabilities=read');
  const raw = getRawMacaroon(mac, true); // URL-safe, unpadded: boltwall's encoding
  const l = Lsat.fromMacaroon(raw);
  l.setPreimage(preimage);
  const token = l.toToken();
  const [m, p] = token.slice('LSAT '.length).split(':');
  const v = oracle('verify', '--root-key', rootKey.toString('hex'), '--macaroon', m, '--preimage', p, '--service', 'demo', '--capability', 'read');
  let j = {};
  try { j = JSON.parse(v.out); } catch { /* reported below */ }
  check(D3, 'our verifier accepts it', v.rc === 0 && j.valid === true && j.payment_hash === paymentHash && j.token_id === tokenId.toString('hex'),
    `exit ${v.rc}: ${v.out.slice(0, 300)} token ${token}`);
  const wrong = Buffer.from(rootKey); wrong[31] ^= 1;
  const w = oracle('verify', '--root-key', wrong.toString('hex'), '--macaroon', m, '--preimage', p, '--service', 'demo', '--capability', 'read');
  check(D3, 'control: wrong root key refused', w.rc === 1, `exit ${w.rc}: ${w.out.slice(0, 300)}`);
});

process.exit(failed ? 1 : 0);
