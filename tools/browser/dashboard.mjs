#!/usr/bin/env node
// The dashboard and the approval page in a real headless Chromium (Debian's), driven by
// playwright-core. run.sh prepares the data dir (wallet "me": earnings from a sale, spending,
// two payments held for approval, a PIN) and passes what to expect; this script starts
// `l402-mcp dashboard`, logs in through its one-time link and checks, one line per check:
// balance and charts shown, payments filtered, a held payment approved by clicking, the daily
// budget changed, a form without its CSRF token and a cross-origin POST refused (the budget as
// it was), and the approval page used without logging in. Screenshots go to --log-dir.
//
//   NODE_PATH-free: MCP_BROWSER_DIR=<dir with node_modules/playwright-core> node dashboard.mjs \
//     --bin BIN --data-dir DIR --log-dir DIR --pin PIN --expect-balance N --held ID1,ID2

import { spawn, spawnSync } from 'node:child_process';
import http from 'node:http';
import path from 'node:path';
import readline from 'node:readline';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const { values: args } = parseArgs({
  options: {
    bin: { type: 'string' },
    'data-dir': { type: 'string' },
    'log-dir': { type: 'string' },
    pin: { type: 'string' },
    'expect-balance': { type: 'string' },
    held: { type: 'string' },
    chromium: { type: 'string', default: '/usr/bin/chromium' },
  },
});
const dir = process.env.MCP_BROWSER_DIR ?? '.';
const { chromium } = await import(pathToFileURL(path.join(dir, 'node_modules/playwright-core/index.mjs')).href);

let passed = 0;
let failed = 0;
function check(name, ok, detail = '') {
  ok ? passed++ : failed++;
  console.log(`browser dashboard  ${name.padEnd(48)} ${ok ? 'PASS' : 'FAIL'}${!ok && detail ? '  ' + detail : ''}`);
  return ok;
}
const shot = (page, name) => page.screenshot({ path: path.join(args['log-dir'], name), fullPage: true });
const cli = (...rest) => {
  const p = spawnSync(args.bin, ['--json', '--data-dir', args['data-dir'], '--wallet', 'me', ...rest], { encoding: 'utf8' });
  try {
    return JSON.parse(p.stdout);
  } catch {
    return { stdout: p.stdout, stderr: p.stderr };
  }
};
const daily = () => cli('budget', 'show').policy?.daily_msat;
const [held1, held2] = args.held.split(',');

// The dashboard, on a free loopback port; its first line is the login link.
const dash = spawn(args.bin, ['--json', '--data-dir', args['data-dir'], '--wallet', 'me', 'dashboard', '--listen', '127.0.0.1:0'], {
  stdio: ['ignore', 'pipe', 'inherit'],
});
const first = await new Promise((resolve) => readline.createInterface({ input: dash.stdout }).once('line', resolve));
const { url, login } = JSON.parse(first);
const origin = new URL(url).origin;

// Another site on loopback (another port: another origin, same site) that posts to the
// dashboard from a page of its own, as a malicious page the person has open would.
const attacker = http.createServer((req, res) => {
  res.setHeader('content-type', 'text/html');
  res.end(`<!doctype html><form method=post action="${origin}/settings"><input name=daily_sats value=1><input name=csrf value=guess><input name=pin value="${args.pin}"></form><script>document.forms[0].submit()</script>`);
});
await new Promise((r) => attacker.listen(0, '127.0.0.1', r));
const evil = `http://127.0.0.1:${attacker.address().port}/`;

const browser = await chromium.launch({
  executablePath: args.chromium,
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const context = await browser.newContext({ viewport: { width: 1200, height: 900 } });
const page = await context.newPage();
try {

  // 1. Not logged in: nothing but how to log in.
  let r = await page.goto(url);
  check('without the login link: 401, nothing shown', r.status() === 401 && !(await page.content()).includes('sats'), `${r.status()}`);

  // 2. The one-time link: the dashboard, with balance and charts.
  r = await page.goto(login);
  const cookies = await context.cookies();
  const session = cookies.find((c) => c.name === 'l402_mcp_session');
  check('login link: a session cookie, HttpOnly, SameSite=Strict', !!session && session.httpOnly && session.sameSite === 'Strict', JSON.stringify(cookies));
  await shot(page, '01-dashboard.png');
  const balance = (await page.textContent('#balance-sats'))?.replace(/,/g, '');
  check('balance shown, labelled test sats', balance === args['expect-balance'] && (await page.isVisible('text=TEST SATS')), `${balance} (want ${args['expect-balance']})`);
  const spent = await page.$$eval('#spend-chart rect.spent', (rs) => rs.filter((x) => Number(x.getAttribute('height')) > 0).length);
  const earned = await page.$$eval('#spend-chart rect.earned', (rs) => rs.filter((x) => Number(x.getAttribute('height')) > 0).length);
  check('chart: spending and earning bars drawn', spent >= 1 && earned >= 1, `spent ${spent} earned ${earned}`);
  check('budget gauges shown', (await page.$$('[data-gauge]')).length >= 3 && (await page.isVisible('[data-gauge="daily"]')));
  check('sales per service shown', (await page.textContent('#sales')).includes('weather'));
  check('both held payments wait', (await page.isVisible(`#approval-${held1}`)) && (await page.isVisible(`#approval-${held2}`)));
  const rows = await page.$$eval('tr.payment', (t) => t.length);

  // 3. Filter the payments.
  await page.selectOption('#payments select[name=direction]', 'in');
  await Promise.all([page.waitForNavigation(), page.click('#payments button[type=submit]')]);
  const dirs = await page.$$eval('tr.payment', (t) => t.map((x) => x.classList.contains('in')));
  check('payments filtered by direction', dirs.length >= 1 && dirs.every(Boolean) && dirs.length < rows, `${dirs} of ${rows}`);
  await shot(page, '02-filtered.png');

  // 4. Approve a held payment by clicking (with the PIN).
  await page.goto(url);
  const card = page.locator(`#approval-${held1}`);
  await card.locator('input[name=pin]').fill(args.pin);
  await Promise.all([page.waitForNavigation(), card.locator('button.approve').click()]);
  const note = await page.textContent('#note');
  const after = (await page.textContent('#balance-sats'))?.replace(/,/g, '');
  check('approve by clicking: paid, balance down by 50', note?.includes('Approved and paid') && Number(after) === Number(balance) - 50 && !(await page.isVisible(`#approval-${held1}`)), `${note} ${after}`);
  await shot(page, '03-approved.png');

  // 5. Change the daily budget.
  await page.fill('#settings input[name=daily_sats]', '7777');
  await page.fill('#settings input[name=pin]', args.pin);
  await Promise.all([page.waitForNavigation(), page.click('#save-settings')]);
  check('daily budget changed from the page', (await page.textContent('#note'))?.includes('Settings saved') && daily() === 7_777_000 && (await page.textContent('[data-gauge="daily"]')).includes('7,777'), `${daily()}`);
  await shot(page, '04-budget.png');

  // 6. The same form without its CSRF token: refused, nothing changed.
  await page.evaluate(() => document.querySelector('#settings input[name=csrf]').remove());
  await page.fill('#settings input[name=daily_sats]', '1234');
  await page.fill('#settings input[name=pin]', args.pin);
  const [noCsrf] = await Promise.all([page.waitForNavigation(), page.click('#save-settings')]);
  check('a form without the CSRF token: 403, budget as it was', noCsrf.status() === 403 && daily() === 7_777_000, `${noCsrf.status()} ${daily()}`);

  // 7. A POST from another origin, with the session cookie in the browser: refused.
  const [cross] = await Promise.all([page.waitForResponse((x) => x.url().startsWith(origin)), page.goto(evil)]);
  await page.waitForLoadState();
  check('a cross-origin POST: 403, budget as it was', cross.status() === 403 && daily() === 7_777_000, `${cross.status()} ${daily()}`);
  await shot(page, '05-cross-origin-refused.png');

  // 8. The approval page of the other held payment, in a browser with no session.
  const fresh = await (await browser.newContext({ viewport: { width: 900, height: 600 } })).newPage();
  await fresh.goto(`${origin}/approve/${held2}`);
  check('approval page shows the payment', (await fresh.textContent('body')).includes('50 sats'));
  await fresh.fill('input[name=pin]', '0000');
  await Promise.all([fresh.waitForNavigation(), fresh.click('button.approve')]);
  check('approval page: a wrong PIN pays nothing', (await fresh.textContent('body')).includes('wrong PIN') && cli('approvals').approvals?.length === 1);
  await fresh.fill('input[name=pin]', args.pin);
  await Promise.all([fresh.waitForNavigation(), fresh.click('button.approve')]);
  const decided = await fresh.textContent('body');
  check('approval page: approve by clicking pays', decided.includes('This payment was paid') && cli('approvals').approvals?.length === 0, decided.slice(0, 300));
  await shot(fresh, '06-approval-page.png');
} catch (e) {
  check('run completed', false, String(e?.stack ?? e).slice(0, 800));
  await shot(page, '99-failure.png').catch(() => {});
  console.error((await page.content().catch(() => '')).slice(0, 3000));
} finally {
  await browser.close();
  attacker.close();
  dash.kill('SIGTERM');
}
process.exit(failed || !passed ? 1 : 0);
