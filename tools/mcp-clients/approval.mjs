#!/usr/bin/env node
// Human approval of payments, driven by the official MCP TypeScript SDK with an elicitation
// handler. Same scenarios and checks as approval.py (accept, decline, silence, no-elicit):
//
//   --sdk v1   @modelcontextprotocol/sdk 1.x (MCP_TS_DIR): the classic initialize, so the server
//              asks with elicitation/create (2025-11-25)
//   --sdk v2   @modelcontextprotocol/client 2.x (MCP_TS2_DIR), versionNegotiation "auto": the
//              server answers input_required and the SDK retries with the answer (2026-07-28)
//
// An `l402-mcp gateway` (wallet "seller") sells --shop-url for 21 sats; each scenario starts its
// own buyer over stdio (its own wallet; above 10 sats a human decides; questions wait 3 s).
// One line per check on stdout; exit 0 only if every check passed. Normally called by run.sh:
//   node approval.mjs --label "ts v2 approval" --sdk v2 --bin BIN --data-dir DIR --shop-url URL

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

import { reporter, short, textOf } from './report.mjs';

const { values: args } = parseArgs({
  options: {
    label: { type: 'string' },
    sdk: { type: 'string' },
    bin: { type: 'string' },
    'data-dir': { type: 'string' },
    'log-dir': { type: 'string' },
    'shop-url': { type: 'string' },
  },
});

const PRICE = 21;
const START_SATS = 100_000;
const APPROVAL_TIMEOUT = 3; // seconds a question waits
const STEP_TIMEOUT_MS = 1000 * Number(process.env.MCP_CLIENTS_STEP_TIMEOUT ?? 30);
const v2 = args.sdk === 'v2';

const load = async (dir, p) => import(pathToFileURL(path.join(dir, 'node_modules', p)).href);
let Client, StdioClientTransport, ElicitRequestSchema;
if (v2) {
  const dir = process.env.MCP_TS2_DIR ?? '.';
  ({ Client } = await load(dir, '@modelcontextprotocol/client/dist/index.mjs'));
  ({ StdioClientTransport } = await load(dir, '@modelcontextprotocol/client/dist/stdio.mjs'));
} else {
  const dir = process.env.MCP_TS_DIR ?? '.';
  ({ Client } = await load(dir, '@modelcontextprotocol/sdk/dist/esm/client/index.js'));
  ({ StdioClientTransport } = await load(dir, '@modelcontextprotocol/sdk/dist/esm/client/stdio.js'));
  ({ ElicitRequestSchema } = await load(dir, '@modelcontextprotocol/sdk/dist/esm/types.js'));
}

const report = reporter(args.label ?? 'ts - approval');
const check = report.check;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// `l402-mcp --json ...` as a person runs it (no terminal: setsid).
function cli(wallet, ...rest) {
  const p = spawnSync('setsid', [args.bin, '--json', '--data-dir', args['data-dir'], '--wallet', wallet, ...rest], {
    env: { PATH: process.env.PATH, HOME: args['data-dir'] },
    timeout: 60_000,
  });
  try {
    return [p.status, JSON.parse(p.stdout.toString() || 'null')];
  } catch {
    return [p.status, p.stdout.toString() + p.stderr.toString()];
  }
}
const balance = (wallet) => cli(wallet, 'balance')[1]?.balance_sats;
const statuses = (wallet) => (cli(wallet, 'approvals', '--all')[1]?.approvals ?? []).map((a) => a.status);

const opened = [];
async function buyer(wallet, answer) {
  const capabilities = answer ? { elicitation: { form: {} } } : {};
  const options = v2 ? { capabilities, versionNegotiation: { mode: 'auto' } } : { capabilities };
  const client = new Client({ name: 'l402-mcp-approval', version: '1.0.0' }, options);
  const asked = [];
  if (answer) {
    const handler = async (request) => {
      asked.push(request.params);
      if (answer === 'accept') return { action: 'accept', content: { approve: true } };
      if (answer === 'decline') return { action: 'decline' };
      await sleep((APPROVAL_TIMEOUT + 2) * 1000); // "silence": a yes that comes too late
      return { action: 'accept', content: { approve: true } };
    };
    client.setRequestHandler(v2 ? 'elicitation/create' : ElicitRequestSchema, handler);
  }
  const transport = new StdioClientTransport({
    command: args.bin,
    args: ['serve'],
    env: {
      PATH: process.env.PATH,
      L402_MCP_DATA_DIR: args['data-dir'], L402_MCP_WALLET: wallet, XDG_CONFIG_HOME: args['data-dir'],
      L402_MCP_FETCH_ALLOW_LOOPBACK: '1',
      L402_MCP_APPROVAL_ABOVE_SATS: '10',
      L402_MCP_APPROVAL_TIMEOUT_SECS: String(APPROVAL_TIMEOUT),
    },
    stderr: 'pipe',
  });
  transport.stderr?.pipe(fs.createWriteStream(path.join(args['log-dir'] ?? args['data-dir'], `${wallet}.stdio.log`)));
  opened.push(transport);
  await client.connect(transport, { timeout: STEP_TIMEOUT_MS });
  return { client, asked };
}

const fetchPaid = (client) =>
  client.callTool({ name: 'fetch_paid', arguments: { url: args['shop-url'] } }, undefined, { timeout: STEP_TIMEOUT_MS });

async function scenario(name) {
  const wallet = `buyer-ts${args.sdk}-${name}`;
  const seller0 = balance('seller');
  const { client, asked } = await buyer(wallet, name === 'no-elicit' ? null : name);
  try {
    let r = await fetchPaid(client);
    const s = r.structuredContent ?? {};
    const txt = textOf(r);
    if (name === 'accept') {
      const rc = s.receipt ?? {};
      check('accept: asked once, paid', !r.isError && s.status === 200 && rc.paid === true && rc.amount_sats === PRICE && asked.length === 1, short(s ?? txt));
      const q = asked[0]?.message ?? '';
      check('accept: the question says it', q.includes('21 sats') && q.includes('127.0.0.1') && q.includes('/joke'), q);
      r = await fetchPaid(client);
      check('accept: next call reuses, unasked', !r.isError && r.structuredContent?.receipt?.token_reused === true && asked.length === 1, short(r.structuredContent ?? textOf(r)));
      check('accept: paid exactly once', balance(wallet) === START_SATS - PRICE && balance('seller') === seller0 + PRICE, `buyer ${balance(wallet)} seller ${balance('seller')} (was ${seller0})`);
    } else if (name === 'decline') {
      check('decline: nothing paid', r.isError && txt.startsWith('approval_declined') && asked.length === 1 && balance(wallet) === START_SATS, short(txt));
      check('decline: approval denied', short(statuses(wallet)) === '["denied"]', short(statuses(wallet)));
    } else if (name === 'silence') {
      const want = v2 ? 'approval_expired' : 'approval_timeout';
      check(`silence: ${want}`, r.isError && txt.startsWith(want) && asked.length === 1, short(txt));
      await sleep(1000);
      check('silence: nothing paid', balance(wallet) === START_SATS && short(statuses(wallet)) === '["expired"]', short(statuses(wallet)));
    } else {
      const id = txt.includes('(approval ') ? txt.split('(approval ')[1].split(',')[0] : '';
      check('no-elicit: approval_required', r.isError && txt.startsWith('approval_required') && txt.includes('l402-mcp approve') && id !== '', short(txt));
      check('no-elicit: nothing paid yet', balance(wallet) === START_SATS);
      const [code, out] = cli(wallet, 'approve', id);
      check('no-elicit: l402-mcp approve pays', code === 0 && out?.paid === true, short(out));
      r = await fetchPaid(client);
      check('no-elicit: next call gets it', !r.isError && r.structuredContent?.status === 200 && r.structuredContent?.receipt?.paid === false, short(r.structuredContent ?? textOf(r)));
      const [again, refused] = cli(wallet, 'approve', id);
      check('no-elicit: approve again refused', again !== 0 && refused?.code === 'approval_not_pending', short(refused));
      check('no-elicit: paid exactly once', balance(wallet) === START_SATS - PRICE, `${balance(wallet)}`);
    }
  } finally {
    await client.close();
  }
}

for (const name of ['accept', 'decline', 'silence', 'no-elicit']) {
  try {
    await scenario(name);
  } catch (e) {
    check(`${name}: completed`, false, short(String(e?.stack ?? e), 600));
  }
}
await Promise.allSettled(opened.map((t) => t.close()));
process.exit(report.failed() || !report.passed() ? 1 : 0);
