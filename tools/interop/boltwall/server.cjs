#!/usr/bin/env node
// A boltwall 6.0.3 seller (npm `boltwall`, Tierion's LSAT paywall for Express) selling GET /protected.
//
// boltwall itself runs unchanged: its middleware chain (parseEnv, node, invoice, token,
// validateLsat, paywall), its LSAT minting (lsat-js Identifier as a 132-character hex identifier,
// js-macaroon signed with SESSION_SECRET, URL-safe unpadded base64), its `WWW-Authenticate: LSAT
// macaroon=..., invoice=...` challenge, and its validation (LSAT scheme only, macaroon signature and
// caveats, preimage against the payment hash).
//
// GLUE, not boltwall: boltwall reaches a Lightning node only through two ln-service calls,
// createInvoice and getInvoice, on an LND gRPC connection from authenticatedLndGrpc (or the OpenNode
// API). Neither LND nor OpenNode exists offline, so those three ln-service functions are replaced,
// on the module object boltwall requires, by calls to LNbits' REST API with wallet B's invoice key
// (POST /api/v1/payments, GET /api/v1/payments/{hash}). Nothing else of boltwall is touched.
//
// Usage: node server.cjs --port P --lnbits-url URL --invoice-key KEY [--price SATS]
// Env:   BOLTWALL_DIR  folder whose node_modules holds boltwall (installed by ../run.sh)
//        INTEROP_BREAK=signature  rotates SESSION_SECRET after every challenge (sabotage: every
//        LSAT minted before then fails boltwall's signature check)
// Prints "ready" on stdout once listening.
'use strict';
const path = require('node:path');
const { createRequire } = require('node:module');

const args = {};
for (let i = 2; i < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, '')] = process.argv[i + 1];
const req = createRequire(path.join(process.env.BOLTWALL_DIR || '.', 'node_modules', 'x.js'));
const price = Number(args.price || 17);

async function lnbits(method, p, body) {
  const r = await fetch(args['lnbits-url'] + p, {
    method,
    headers: { 'X-Api-Key': args['invoice-key'], 'Content-Type': 'application/json' },
    body: body && JSON.stringify(body),
  });
  const j = await r.json();
  if (!r.ok) throw [503, 'LNbitsGlueError', { err: { details: JSON.stringify(j) } }]; // ln-service's error shape
  return j;
}

// --- the glue: ln-service's LND calls answered by LNbits (wallet B) ---
const lnService = req('ln-service');
lnService.authenticatedLndGrpc = () => ({ lnd: { glue: 'lnbits' } });
lnService.createInvoice = async ({ tokens, description }) => {
  const inv = await lnbits('POST', '/api/v1/payments', { out: false, amount: Number(tokens), memo: description || 'boltwall' });
  return {
    id: inv.payment_hash,
    request: inv.bolt11 || inv.payment_request,
    tokens: Number(tokens),
    description: description || 'boltwall',
    created_at: new Date().toISOString(),
  };
};
lnService.getInvoice = async ({ id }) => {
  const p = await lnbits('GET', `/api/v1/payments/${id}`);
  const d = p.details || {};
  return {
    id,
    is_confirmed: Boolean(p.paid),
    is_held: false,
    tokens: Math.floor(Math.abs(Number(d.amount || 0)) / 1000),
    request: d.bolt11 || d.payment_request,
    created_at: d.time || new Date().toISOString(),
    description: d.memo || '',
  };
};

// --- boltwall, as its README shows it ---
process.env.SESSION_SECRET = process.env.SESSION_SECRET || require('node:crypto').randomBytes(32).toString('hex');
process.env.LND_SOCKET = '127.0.0.1:1'; // satisfies boltwall's config check; never dialled (glue above)
const express = req('express');
const { boltwall } = req('boltwall');
const app = express();
app.use(express.json());
if (process.env.INTEROP_BREAK === 'signature') {
  app.use((_q, res, next) => {
    res.on('finish', () => {
      if (res.statusCode === 402) process.env.SESSION_SECRET = require('node:crypto').randomBytes(32).toString('hex');
    });
    next();
  });
}
app.get('/health', (_q, res) => res.json({ ok: true }));
app.use(boltwall({ minAmount: price }, { // a quiet logger with blgr's interface
  debug() {}, info() {}, warning() {}, spam() {},
  error: (...a) => console.error('boltwall:', ...a),
}));
app.get('/protected', (_q, res) => res.json({ data: 'boltwall protected content', seller: 'boltwall' }));
const server = app.listen(Number(args.port), '127.0.0.1', () => console.log('ready'));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
