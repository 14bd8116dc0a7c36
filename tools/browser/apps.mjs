#!/usr/bin/env node
// The MCP Apps approval card (ui://l402-mcp/approval.html) in a real headless Chromium.
// `l402-mcp serve` (wallet "buyer", payments above 30 sats held) runs over stdio under the official
// TypeScript MCP SDK client, which declares the MCP Apps extension and no elicitation. The host is
// the official host-side implementation, AppBridge of @modelcontextprotocol/ext-apps (bundled by
// esbuild and inlined), in a plain page: no sandbox-proxy iframe, the card directly in a sandboxed
// srcdoc iframe (the CSP the resource asks for added), AppBridge on a PostMessageTransport to it.
// AppBridge answers ui/initialize; once the card says initialized the page sends the held result
// (sendToolResult), follows size-changed, and its oncalltool relays the card's tools/call to the
// server through the SDK client in node (app-visible tools only). Checks, one line each:
// pay_invoice held with the secret in _meta only (none for a client without Apps); asked again,
// only the newest card's secret works; the card shows 50 sats; Approve pays once and the card
// says so; a second click, a reloaded card, a replayed secret and the agent's retry pay nothing
// more; a wrong secret is refused; Deny pays nothing; the card makes no network request;
// AppBridge logged no warning or error. Screenshots go to --log-dir, the page's console to
// apps-host-console.log.
//
//   MCP_BROWSER_DIR=<dir with playwright-core> MCP_TS_DIR=<dir with @modelcontextprotocol/sdk> \
//   MCP_EXT_APPS_DIR=<dir with @modelcontextprotocol/ext-apps and esbuild> \
//     node apps.mjs --bin BIN --data-dir DIR --log-dir DIR

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const { values: args } = parseArgs({
  options: {
    bin: { type: 'string' },
    'data-dir': { type: 'string' },
    'log-dir': { type: 'string' },
    chromium: { type: 'string', default: '/usr/bin/chromium' },
  },
});
const load = (env, p) => import(pathToFileURL(path.join(process.env[env] ?? '.', 'node_modules', p)).href);
const { chromium } = await load('MCP_BROWSER_DIR', 'playwright-core/index.mjs');
const { Client } = await load('MCP_TS_DIR', '@modelcontextprotocol/sdk/dist/esm/client/index.js');
const { StdioClientTransport } = await load('MCP_TS_DIR', '@modelcontextprotocol/sdk/dist/esm/client/stdio.js');
// The host SDK for the page: AppBridge and PostMessageTransport, one browser IIFE (global ExtApps).
const EXT_DIR = process.env.MCP_EXT_APPS_DIR ?? '.';
const { default: esbuild } = await load('MCP_EXT_APPS_DIR', 'esbuild/lib/main.js');
const EXT_APPS = JSON.parse(fs.readFileSync(path.join(EXT_DIR, 'node_modules/@modelcontextprotocol/ext-apps/package.json'), 'utf8')).version;
const bridgeJs = (await esbuild.build({
  stdin: { contents: "export { AppBridge, PostMessageTransport } from '@modelcontextprotocol/ext-apps/app-bridge';", resolveDir: EXT_DIR },
  bundle: true, format: 'iife', globalName: 'ExtApps', platform: 'browser', target: 'chrome120', write: false, logLevel: 'error',
})).outputFiles[0].text;
if (/<\/script/i.test(bridgeJs)) throw new Error('the AppBridge bundle contains </script');

const UI = 'io.modelcontextprotocol/ui';
const CARD_URI = 'ui://l402-mcp/approval.html';
const PRICE = 50;
let passed = 0;
let failed = 0;
function check(name, ok, detail = '') {
  ok ? passed++ : failed++;
  console.log(`browser apps       ${name.padEnd(48)} ${ok ? 'PASS' : 'FAIL'}${!ok && detail ? '  ' + detail : ''}`);
  return ok;
}
const short = (v, n = 300) => String(typeof v === 'string' ? v : JSON.stringify(v)).slice(0, n);
const textOf = (r) => (r?.content ?? []).map((c) => c.text ?? '').join(' ');
const shot = (page, name) => page.screenshot({ path: path.join(args['log-dir'], name), fullPage: true });
const cli = (wallet, ...rest) => {
  const p = spawnSync(args.bin, ['--json', '--data-dir', args['data-dir'], '--wallet', wallet, ...rest],
    { encoding: 'utf8', env: { PATH: process.env.PATH, XDG_CONFIG_HOME: args['log-dir'] } });
  try { return JSON.parse(p.stdout); } catch { return { stdout: p.stdout, stderr: p.stderr }; }
};
const balances = () => [cli('buyer', 'balance').balance_sats, cli('seller', 'balance').balance_sats];
const status = (id) => (cli('buyer', 'approvals', '--all').approvals ?? []).find((a) => a.id === id)?.status;

// The agent's MCP server over stdio; `apps`: the client declares the MCP Apps extension.
async function connect(apps) {
  const capabilities = apps ? { extensions: { [UI]: { mimeTypes: ['text/html;profile=mcp-app'] } } } : {};
  const client = new Client({ name: 'l402-mcp-apps-test-host', version: '1.0.0' }, { capabilities });
  const transport = new StdioClientTransport({
    command: args.bin,
    args: ['serve'],
    env: { PATH: process.env.PATH, L402_MCP_DATA_DIR: args['data-dir'], L402_MCP_WALLET: 'buyer', XDG_CONFIG_HOME: args['log-dir'] },
    stderr: 'pipe',
  });
  transport.stderr?.pipe(fs.createWriteStream(path.join(args['log-dir'], `apps-serve-${apps ? 'apps' : 'plain'}.log`)));
  await client.connect(transport, { timeout: 30_000 });
  return client;
}
const payInvoice = (client, bolt11) => client.callTool({ name: 'pay_invoice', arguments: { bolt11 } });
const newInvoice = () => cli('seller', 'invoice', String(PRICE), '--description', 'a weather report').bolt11;

// The host page: the card in a sandboxed iframe, and AppBridge (ext-apps) as the host's half of
// the card's JSON-RPC. window.rpc: the methods the card sent, in order, as AppBridge received them.
const hostPage = (cardHtml, toolResult) => {
  const csp = `<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; connect-src 'none'">`;
  const json = (v) => JSON.stringify(v).replace(/</g, '\\u003c');
  return `<!doctype html><meta charset="utf-8"><title>MCP Apps host: ext-apps AppBridge ${EXT_APPS}</title>
<body style="font:14px system-ui;margin:16px;background:#f3f4f7">
<p>MCP Apps host (test): ext-apps ${EXT_APPS} AppBridge &mdash; the agent called <code>pay_invoice</code>; the server's card:</p>
<iframe id="card" sandbox="allow-scripts" style="width:620px;height:270px;border:1px solid #ccc;background:#fff"></iframe>
<script>${bridgeJs}</script>
<script>
const { AppBridge, PostMessageTransport } = ExtApps;
const frame = document.getElementById('card');
const result = ${json(toolResult)};
window.rpc = [];
window.sizes = [];
const bridge = new AppBridge(null, { name: 'l402-mcp browser test host', version: '1.0.0' }, { serverTools: {} },
  { hostContext: { theme: 'light', displayMode: 'inline' } });
bridge.oninitialized = () => bridge.sendToolResult(result);
bridge.onsizechange = (size) => {
  window.sizes.push(size);
  if (size?.height > 0) frame.style.height = size.height + 'px';
};
// No MCP client in the page: the SDK client lives in node (window.hostCallTool, app tools only).
bridge.oncalltool = async (params) => {
  const answer = await window.hostCallTool(params);
  if (answer.error) throw Object.assign(new Error(answer.error.message), { code: answer.error.code });
  return answer.result;
};
const transport = new PostMessageTransport(frame.contentWindow, frame.contentWindow);
bridge.connect(transport).then(() => {
  const received = transport.onmessage;
  transport.onmessage = (m, extra) => { window.rpc.push(m.method ?? 'response'); received?.(m, extra); };
  frame.srcdoc = ${json(cardHtml.replace('<head>', '<head>' + csp))};
}, (e) => console.error('AppBridge connect failed: ' + e));
</script>`;
};

const opened = [];
const browser = await chromium.launch({
  executablePath: args.chromium,
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const requests = [];
const hostWarnings = [];
const consoleLog = fs.createWriteStream(path.join(args['log-dir'], 'apps-host-console.log'));
let page;
try {
  const client = await connect(true);
  opened.push(client);
  const appTools = new Set((await client.listTools()).tools
    .filter((t) => t._meta?.ui?.resourceUri === CARD_URI && t._meta.ui.visibility?.includes('app')).map((t) => t.name));
  check('pay_invoice and approve_payment link the card', appTools.has('pay_invoice') && appTools.has('approve_payment'), [...appTools].join());
  const res = await client.readResource({ uri: CARD_URI });
  const card = res.contents?.[0];
  check('resources/read: the card, as mcp-app HTML', card?.mimeType === 'text/html;profile=mcp-app' && card.text?.includes('approve_payment'), short(card));

  // Open the card for `result` in a fresh page; the host relays the card's tools/call of app tools.
  const calls = [];
  const openCard = async (result) => {
    page = await (await browser.newContext({ viewport: { width: 700, height: 370 } })).newPage();
    page.on('request', (r) => requests.push(r.url()));
    page.on('console', (m) => {
      consoleLog.write(`[${m.type()}] ${m.text()}\n`);
      if (m.type() === 'warning' || m.type() === 'error') hostWarnings.push(m.text());
    });
    page.on('pageerror', (e) => { consoleLog.write(`[pageerror] ${e}\n`); hostWarnings.push(String(e)); });
    await page.exposeFunction('hostCallTool', async (params) => {
      calls.push(params);
      if (!appTools.has(params?.name)) return { error: { code: -32602, message: `not a tool of this view: ${params?.name}` } };
      try {
        return { result: await client.callTool({ name: params.name, arguments: params.arguments }) };
      } catch (e) {
        return { error: { code: e.code ?? -32603, message: String(e.message ?? e) } };
      }
    });
    await page.setContent(hostPage(card.text, result));
    return page.frameLocator('#card');
  };
  const decide = async (frame, button, want) => {
    await frame.locator(button).click();
    await frame.locator('#status').filter({ hasText: want }).waitFor({ timeout: 15_000 }).catch(() => {});
    return frame.locator('#status').textContent();
  };

  // 1. The agent pays an invoice above the threshold: held, the secret only for the host.
  const [buyer0, seller0] = balances();
  const bolt11 = newInvoice();
  const first = await payInvoice(client, bolt11);
  const old = first._meta?.['io.l402-mcp/approval'] ?? {};
  check('pay_invoice: approval_required, nothing paid', first.isError && textOf(first).startsWith('approval_required') && old.amount_sats === PRICE && balances().join() === [buyer0, seller0].join(), short(first));
  check('the secret is in _meta only, not in the text', old.secret?.length >= 16 && !JSON.stringify(first.content).includes(old.secret), short(old));
  const plain = await connect(false);
  opened.push(plain);
  const noApps = await payInvoice(plain, bolt11);
  check('a client without Apps: held, no secret at all', noApps.isError && textOf(noApps).includes(old.id) && !JSON.stringify(noApps).includes(old.secret) && !noApps._meta?.['io.l402-mcp/approval'], short(noApps));
  // Asking again finds the same approval with a new secret: only the newest card works.
  const held = await payInvoice(client, bolt11);
  const meta = held._meta?.['io.l402-mcp/approval'] ?? {};
  check('asked again: same approval, a new secret', meta.id === old.id && meta.secret && meta.secret !== old.secret, short(meta));
  let frame = await openCard(first);
  const stale = await decide(frame, '#approve', 'approval_wrong_secret');
  check('an older card (stale secret): refused', stale.includes('approval_wrong_secret') && status(meta.id) === 'pending' && balances().join() === [buyer0, seller0].join(), stale);
  calls.length = 0;

  // 2. The newest card shows it; Approve pays once.
  frame = await openCard(held);
  const amount = await frame.locator('.amount').textContent({ timeout: 15_000 });
  check('card shows the payment: 50 sats', amount.includes(`${PRICE} sats`) && (await frame.locator('#approve').isEnabled()), amount);
  check('card spoke ui/initialize, then initialized', short(await page.evaluate(() => window.rpc.slice(0, 2))) === '["ui/initialize","ui/notifications/initialized"]', short(await page.evaluate(() => window.rpc)));
  await shot(page, '10-card-held.png');
  const said = await decide(frame, '#approve', 'APPROVED');
  const [buyer1, seller1] = balances();
  check('Approve: paid once (buyer -50, seller +50)', buyer1 === buyer0 - PRICE && seller1 === seller0 + PRICE && calls.length === 1 && status(meta.id) === 'paid', `buyer ${buyer1} seller ${seller1} calls ${calls.length} ${status(meta.id)}`);
  check('card shows it paid, buttons disabled', said.includes(`APPROVED and paid ${PRICE} sats`) && (await frame.locator('#approve').isDisabled()), said);
  await shot(page, '11-card-approved.png');
  await frame.locator('#approve').click({ force: true });
  await page.waitForTimeout(300);
  check('a second click: no second tools/call', calls.length === 1, `${calls.length} calls`);

  // 3. Replays: the card opened again with the same result, the secret over the SDK, the agent's retry.
  frame = await openCard(held);
  const again = await decide(frame, '#approve', 'approval_not_pending');
  check('reloaded card, Approve again: refused', again.includes('approval_not_pending') && balances().join() === [buyer1, seller1].join(), again);
  await shot(page, '12-card-replayed.png');
  const replay = await client.callTool({ name: 'approve_payment', arguments: { approval_id: meta.id, secret: meta.secret, approve: true } });
  check('replayed secret over tools/call: refused', replay.isError && textOf(replay).startsWith('approval_not_pending') && balances().join() === [buyer1, seller1].join(), short(replay));
  const retry = await payInvoice(client, bolt11);
  const rs = retry.structuredContent ?? {};
  check("the agent's retry: already paid, not paid again", !retry.isError && rs.already_paid === true && rs.paid === false && !!rs.preimage && balances().join() === [buyer1, seller1].join(), short(retry));

  // 4. Another held payment: a card given a wrong secret is refused; then Deny pays nothing.
  const held2 = await payInvoice(client, newInvoice());
  const meta2 = held2._meta?.['io.l402-mcp/approval'] ?? {};
  const forged = structuredClone(held2);
  forged._meta['io.l402-mcp/approval'].secret = meta.secret; // the spent one of another approval
  frame = await openCard(forged);
  const wrong = await decide(frame, '#approve', 'approval_wrong_secret');
  check('card, wrong secret: refused, still pending', wrong.includes('approval_wrong_secret') && status(meta2.id) === 'pending' && balances().join() === [buyer1, seller1].join(), `${wrong} ${status(meta2.id)}`);
  await shot(page, '13-card-wrong-secret.png');
  const guess = await client.callTool({ name: 'approve_payment', arguments: { approval_id: meta2.id, secret: '00'.repeat(16), approve: true } });
  check('a guessed secret over tools/call: refused', guess.isError && textOf(guess).startsWith('approval_wrong_secret') && status(meta2.id) === 'pending', short(guess));
  frame = await openCard(held2);
  const denied = await decide(frame, '#deny', 'DENIED');
  check('Deny: nothing paid, approval denied', denied.includes('DENIED') && status(meta2.id) === 'denied' && balances().join() === [buyer1, seller1].join(), `${denied} ${status(meta2.id)} ${balances()}`);
  const sizes = await page.evaluate(() => window.sizes);
  const note = await frame.locator('#note').textContent();
  check('card told the host its size; its note gone once decided', sizes.length > 0 && sizes.every((z) => z.height > 0 && z.width > 0) && note === '', `${short(sizes)} note ${JSON.stringify(note)}`);
  await shot(page, '14-card-denied.png');
  check('the card made no network request', requests.length === 0, short(requests));
  check('AppBridge logged no warning or error', hostWarnings.length === 0, short(hostWarnings));
} catch (e) {
  check('run completed', false, String(e?.stack ?? e).slice(0, 800));
  if (page) await shot(page, '19-apps-failure.png').catch(() => {});
} finally {
  await browser.close();
  await Promise.allSettled(opened.map((c) => c.close()));
  await new Promise((done) => consoleLog.end(done));
}
process.exit(failed || !passed ? 1 : 0);
