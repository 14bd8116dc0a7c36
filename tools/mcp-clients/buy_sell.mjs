#!/usr/bin/env node
// One full L402 buy/sell loop between two l402-mcp servers, driven by the official MCP
// TypeScript SDK (1.x, classic initialize handshake). Same checks as buy_sell.py.
//
// Agent B (seller) and agent A (buyer) are two MCP client sessions to `l402-mcp serve`
// processes over one shared data dir (wallets "seller" and "buyer"). This script runs a small
// node:http endpoint on 127.0.0.1 that sells /joke through B's tools (create_l402_challenge,
// verify_l402_payment); A buys it with fetch_paid. One line per check on stdout; exit 0 only
// if every check passed.
//
// Normally called by run.sh:
//   MCP_TS_DIR=<dir holding node_modules/@modelcontextprotocol/sdk> node buy_sell.mjs \
//     --label "ts - stdio" --transport stdio --bin BIN --data-dir DIR
//   ... --transport http --seller-url http://127.0.0.1:P/mcp --buyer-url http://127.0.0.1:Q/mcp [--token T]
//   ... --transport sse  --seller-url http://127.0.0.1:P/sse --buyer-url ...   (legacy HTTP+SSE)

import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

import { reporter, short, textOf } from './report.mjs';

const { values: args } = parseArgs({
  options: {
    label: { type: 'string' },
    transport: { type: 'string' },
    bin: { type: 'string', default: process.env.L402_MCP_BIN ?? 'l402-mcp' },
    'data-dir': { type: 'string' },
    'log-dir': { type: 'string' },
    'seller-url': { type: 'string' },
    'buyer-url': { type: 'string' },
    token: { type: 'string' },
  },
});

const SDK = path.join(process.env.MCP_TS_DIR ?? '.', 'node_modules/@modelcontextprotocol/sdk/dist/esm');
const sdk = async (p) => import(pathToFileURL(path.join(SDK, p)).href);
const { Client } = await sdk('client/index.js');
const { StdioClientTransport } = await sdk('client/stdio.js');
const { StreamableHTTPClientTransport } = await sdk('client/streamableHttp.js');
const { SSEClientTransport } = await sdk('client/sse.js');

const EXPECTED_TOOLS = [
  'create_invoice', 'create_l402_challenge', 'decode_invoice', 'fetch_paid',
  'list_payments', 'pay_invoice', 'verify_l402_payment', 'wallet_balance',
];
const START_SATS = 100_000;
const PRICE = 21; // /joke, /joke-two
const EXPENSIVE = 5_000; // /expensive: above the default per-payment cap (1000)
const STEP_TIMEOUT_MS = 1000 * Number(process.env.MCP_CLIENTS_STEP_TIMEOUT ?? 30); // per MCP request
const JOKE = { joke: 'Why did the Lightning node cross the channel? To get to the other side of the HTLC.' };

const report = reporter(args.label);
const check = report.check;

// ------------------------------------------------------------------ connecting

function makeTransport(wallet, url, token) {
  const dataDir = args['data-dir'];
  const logDir = args['log-dir'] ?? dataDir;
  if (args.transport === 'stdio') {
    const t = new StdioClientTransport({
      command: args.bin,
      args: ['serve', '--data-dir', dataDir, '--wallet', wallet],
      // fetch_paid refuses loopback addresses by default; the buyer must reach the shop on
      // 127.0.0.1. The seller keeps the default (checked below).
      env: {
        L402_MCP_DATA_DIR: dataDir, L402_MCP_WALLET: wallet, XDG_CONFIG_HOME: dataDir,
        L402_MCP_FETCH_ALLOW_LOOPBACK: wallet === 'buyer' ? '1' : '0',
        // INTEROP_BREAK=budget (sabotage): no payment can pass the cap.
        ...(process.env.INTEROP_BREAK === 'budget' ? { L402_MCP_PER_PAYMENT_SATS: '1' } : {}),
      },
      stderr: 'pipe',
    });
    const log = fs.createWriteStream(path.join(logDir, `${wallet}.stdio.log`));
    t.stderr?.pipe(log);
    return t;
  }
  const requestInit = token ? { headers: { Authorization: `Bearer ${token}` } } : undefined;
  if (args.transport === 'sse') {
    const fetchWithToken = (u, init) => fetch(u, { ...init, headers: { ...(init?.headers ?? {}), ...(requestInit?.headers ?? {}) } });
    return new SSEClientTransport(new URL(url), { requestInit, eventSourceInit: { fetch: fetchWithToken } });
  }
  return new StreamableHTTPClientTransport(new URL(url), { requestInit });
}

// Every transport opened, so that no server process outlives this script, whatever happens.
// (The SDK's own close after a failed connect is not awaited and forgets the child: keep the
// child processes and kill those still running.)
const opened = [];
const children = [];
async function closeAll() {
  await Promise.allSettled(opened.splice(0).map((t) => t.close()));
  for (const child of children.splice(0)) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
}

async function connect(wallet, url, token) {
  const c = new Client({ name: 'l402-mcp-buy-sell', version: '1.0.0' });
  const t = makeTransport(wallet, url, token);
  opened.push(t);
  const connecting = c.connect(t, { timeout: STEP_TIMEOUT_MS });
  if (t._process) children.push(t._process); // the stdio child, spawned synchronously by start()
  await connecting;
  return c;
}

const call = (c, name, a) => c.callTool({ name, arguments: a }, undefined, { timeout: STEP_TIMEOUT_MS });

// ------------------------------------------------------------------ the seller's HTTP endpoint

class JokeShop {
  constructor(seller) {
    this.seller = seller;
    this.challenges = [];
    this.verifications = [];
    this.errors = [];
  }

  async start() {
    this.server = http.createServer((req, res) => {
      this.route(req).then(
        ([status, extra, body]) => this.reply(res, status, extra, body),
        (e) => {
          this.errors.push(String(e?.stack ?? e));
          this.reply(res, 500, [], JSON.stringify({ error: String(e) }));
        },
      );
    });
    await new Promise((ok) => this.server.listen(0, '127.0.0.1', ok));
    this.port = this.server.address().port;
  }

  reply(res, status, extra, body) {
    const headers = [['Content-Type', 'application/json'], ['Connection', 'close'], ...extra];
    // Array form keeps the two WWW-Authenticate lines as two lines, in order.
    res.writeHead(status, headers.flat());
    res.end(body);
  }

  stop() {
    return new Promise((ok) => {
      this.server.closeAllConnections?.();
      this.server.close(() => ok());
    });
  }

  url(p) {
    return `http://127.0.0.1:${this.port}${p}`;
  }

  async route(req) {
    const prices = { '/joke': PRICE, '/joke-two': PRICE, '/expensive': EXPENSIVE };
    const p = req.url.split('?')[0];
    if (req.method !== 'GET' || !(p in prices)) return [404, [], '{"error":"not found"}'];
    const authorization = req.headers.authorization;
    if (authorization) {
      const r = await call(this.seller, 'verify_l402_payment', { authorization, service: 'jokes' });
      if (r.isError) throw new Error(`verify_l402_payment failed: ${textOf(r)}`);
      const v = r.structuredContent ?? {};
      this.verifications.push(v);
      if (v.valid === true) return [200, [], JSON.stringify(JOKE)];
    }
    const r = await call(this.seller, 'create_l402_challenge', { amount_sats: prices[p], description: `joke ${p}`, service: 'jokes' });
    if (r.isError) throw new Error(`create_l402_challenge failed: ${textOf(r)}`);
    const c = r.structuredContent ?? {};
    this.challenges.push(c);
    const extra = (c.www_authenticate ?? []).map((line) => ['WWW-Authenticate', line]);
    extra.push(['Cache-Control', 'no-store']);
    return [402, extra, '{"error":"payment required"}'];
  }
}

// raw GET with headers as a list of [name, value] lines (node:http keeps repeated headers)
function rawGet(url, authorization) {
  return new Promise((ok, fail) => {
    const req = http.get(url, { headers: authorization ? { Authorization: authorization } : {} }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => {
        const lines = [];
        for (let i = 0; i < res.rawHeaders.length; i += 2) lines.push([res.rawHeaders[i], res.rawHeaders[i + 1]]);
        ok({ status: res.statusCode, headers: lines, body });
      });
    });
    req.on('error', fail);
  });
}

// ------------------------------------------------------------------ the loop

async function run() {
  if (args.token) await checkTokenRefused();

  const seller = await connect('seller', args['seller-url'], args.token);
  const buyer = await connect('buyer', args['buyer-url'], args.token);
  {
    for (const [who, c] of [['seller', seller], ['buyer', buyer]]) {
      const info = c.getServerVersion();
      check(`connect ${who}`, info?.name === 'l402-mcp' && c.getServerCapabilities()?.tools !== undefined, short({ info, caps: c.getServerCapabilities() }));
    }
    for (const [who, c] of [['buyer', buyer], ['seller', seller]]) {
      const t = await c.listTools(undefined, { timeout: STEP_TIMEOUT_MS });
      const names = t.tools.map((x) => x.name).sort();
      const missing = EXPECTED_TOOLS.filter((n) => !names.includes(n));
      check(`tools/list ${who}`, missing.length === 0, `missing ${missing.join(',')} (listed: ${names.join(',')})`);
    }
    const bal = {};
    for (const [who, c] of [['buyer', buyer], ['seller', seller]]) {
      const r = await call(c, 'wallet_balance', {});
      const s = r.structuredContent ?? {};
      bal[who] = s;
      const ok = !r.isError && s.wallet === who && s.balance_sats === START_SATS && s.balance_msat === START_SATS * 1000 && s.demo_funds === true && typeof s.budget === 'object';
      check(`wallet_balance ${who}`, ok, `isError=${r.isError} ${short(r.structuredContent ?? textOf(r))}`);
    }
    const shop = new JokeShop(seller);
    await shop.start();
    try {
      await buy(buyer, seller, shop, bal.buyer?.budget?.per_payment_sats, bal.buyer?.budget?.daily_sats);
    } finally {
      await shop.stop();
    }
    check('endpoint without internal errors', shop.errors.length === 0, short(shop.errors));
  }
}

async function buy(buyer, seller, shop, perPayment, daily) {
  // 0. by default fetch_paid does not reach loopback addresses: the seller has the default policy
  let r0 = await call(seller, 'fetch_paid', { url: shop.url('/joke') });
  check('loopback refused by default', r0.isError === true && textOf(r0).startsWith('address_refused') && shop.challenges.length === 0,
    `isError=${r0.isError} challenges=${shop.challenges.length} ${short(r0.structuredContent ?? textOf(r0))}`);

  // 1. the first purchase
  let r = await call(buyer, 'fetch_paid', { url: shop.url('/joke'), max_price_sats: 100 });
  let s = r.structuredContent ?? {};
  let rc = s.receipt ?? {};
  const challenge = shop.challenges[0] ?? {};
  let bodyOk = false;
  try {
    bodyOk = JSON.stringify(JSON.parse(s.body)) === JSON.stringify(JOKE);
  } catch {}
  let ok = !r.isError && s.status === 200 && bodyOk && s.body_encoding === 'text' && rc.paid === true &&
    rc.amount_sats === PRICE && rc.amount_msat === PRICE * 1000 && rc.token_reused === false && rc.scheme === 'L402' &&
    rc.payment_hash === challenge.payment_hash && shop.challenges.length === 1;
  check('fetch_paid pays and gets 200', ok, `isError=${r.isError} challenges=${shop.challenges.length} ${short(r.structuredContent ?? textOf(r), 700)}`);
  const fee = rc.fee_sats ?? 0;
  const paidHash = rc.payment_hash;
  let v = shop.verifications.at(-1) ?? {};
  check('seller verified the credential', v.valid === true && v.amount_paid_sats === PRICE && v.payment_hash === paidHash, short(shop.verifications));
  if (typeof daily === 'number') check('receipt budget_remaining', rc.budget_remaining_sats === daily - PRICE - fee, `daily=${daily} receipt=${short(rc)}`);

  // 2. the same URL again: the cached credential, nothing paid
  let n = shop.challenges.length;
  r = await call(buyer, 'fetch_paid', { url: shop.url('/joke'), max_price_sats: 100 });
  s = r.structuredContent ?? {};
  rc = s.receipt ?? {};
  ok = !r.isError && s.status === 200 && rc.paid === false && rc.token_reused === true && shop.challenges.length === n && shop.verifications.at(-1)?.valid === true;
  check('fetch_paid again reuses token', ok, `isError=${r.isError} new challenges=${shop.challenges.length - n} ${short(r.structuredContent ?? textOf(r), 700)}`);

  // 3. a forged credential (right macaroon, wrong preimage) gets a fresh 402
  n = shop.challenges.length;
  const g = await rawGet(shop.url('/joke'), `L402 ${challenge.macaroon}:${'00'.repeat(32)}`);
  const www = g.headers.filter(([k]) => k.toLowerCase() === 'www-authenticate').map(([, val]) => val);
  v = shop.verifications.at(-1) ?? {};
  ok = g.status === 402 && v.valid === false && v.reason_code === 'preimage_mismatch' && www.length === 2 &&
    www[0].startsWith('LSAT macaroon=') && www[1].startsWith('L402 macaroon=') && shop.challenges.length === n + 1;
  check('wrong preimage -> fresh 402', ok, `status=${g.status} www=${short(www, 200)} verify=${short(v)}`);

  // 4. refusals: nothing may be paid
  r = await call(buyer, 'fetch_paid', { url: shop.url('/joke-two'), max_price_sats: PRICE - 1 });
  check('max_price_sats below price refused', r.isError === true && textOf(r).startsWith('price_above_cap'), `isError=${r.isError} ${short(r.structuredContent ?? textOf(r))}`);
  r = await call(buyer, 'fetch_paid', { url: shop.url('/expensive') });
  check(`price above per-payment cap (${perPayment}) refused`, r.isError === true && textOf(r).startsWith('price_above_cap'), `isError=${r.isError} ${short(r.structuredContent ?? textOf(r))}`);

  // 5. money moved by exactly the price, once
  const b = (await call(buyer, 'wallet_balance', {})).structuredContent ?? {};
  const sl = (await call(seller, 'wallet_balance', {})).structuredContent ?? {};
  check('buyer balance down by price', b.balance_sats === START_SATS - PRICE - fee && b.budget?.spent_24h_sats === PRICE + fee, `fee=${fee} ${short(b)}`);
  check('seller balance up by price', sl.balance_sats === START_SATS + PRICE && sl.earned_24h_sats === PRICE, short(sl));

  r = await call(buyer, 'list_payments', { direction: 'out' });
  const out = r.structuredContent?.payments ?? [];
  ok = !r.isError && out.length === 1 && out[0].direction === 'out' && out[0].status === 'succeeded' && out[0].amount_sats === PRICE && out[0].payment_hash === paidHash;
  check('list_payments buyer: one out', ok, short(r.structuredContent ?? textOf(r), 700));
  r = await call(seller, 'list_payments', { direction: 'in' });
  const settled = (r.structuredContent?.payments ?? []).filter((p) => p.status === 'succeeded');
  ok = !r.isError && settled.length === 1 && settled[0].direction === 'in' && settled[0].amount_sats === PRICE && settled[0].payment_hash === paidHash;
  check('list_payments seller: one in', ok, short(r.structuredContent ?? textOf(r), 700));
}

async function checkTokenRefused() {
  const url = args['buyer-url'];
  if (args.transport === 'http') {
    const init = { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'probe', version: '0' } } };
    const post = (headers) => fetch(url, { method: 'POST', headers: { 'Content-Type': 'application/json', Accept: 'application/json, text/event-stream', ...headers }, body: JSON.stringify(init) });
    let res = await post({});
    const www = res.headers.get('www-authenticate') ?? '';
    check('no token: raw POST -> 401', res.status === 401 && www.toLowerCase().startsWith('bearer'), `status=${res.status} www-authenticate=${www} body=${short(await res.text(), 200)}`);
    res = await post({ Authorization: 'Bearer wrong-token' });
    check('wrong token: raw POST -> 401', res.status === 401, `status=${res.status} body=${short(await res.text(), 200)}`);
  }
  let refused = false;
  let detail = 'connected without a token';
  try {
    await connect('buyer', url, undefined);
  } catch (e) {
    const msg = String(e?.message ?? e);
    detail = `refused, but not visibly for a 401: ${msg}`;
    refused = /401|nauthorized/.test(msg);
  } finally {
    await closeAll();
  }
  check('no token: SDK client refused', refused, detail);
}

const deadline = setTimeout(() => {
  check('run completed', false, 'timed out after 120 s');
  closeAll().finally(() => process.exit(1));
}, 120_000);
try {
  await run();
} catch (e) {
  check('run completed', false, String(e?.message ?? e));
  console.error(String(e?.stack ?? e).split('\n').map((l) => '    ' + l).join('\n'));
} finally {
  await closeAll();
}
clearTimeout(deadline);
process.exit(report.failed() || !report.passed() ? 1 : 0);
