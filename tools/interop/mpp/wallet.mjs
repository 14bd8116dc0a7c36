// GLUE (ours): the Lightning side of the mppx counterparts is l402-mcp's embedded wallets in one
// data dir (test sats, settled inside its ledger), reached through our own command line.
import { execFileSync } from 'node:child_process'

/** The environment of our processes: no config file but the data dir's own. */
export function ourEnv(extra = {}) {
  const env = { ...process.env, XDG_CONFIG_HOME: process.env.MPP_DATA_DIR, ...extra }
  delete env.L402_MCP_CONFIG
  delete env.L402_MCP_BACKEND
  return env
}
export function cli(wallet, ...args) {
  const out = execFileSync(process.env.L402_MCP_BIN, ['--data-dir', process.env.MPP_DATA_DIR, '--wallet', wallet, '--json', ...args], {
    encoding: 'utf8',
    env: ourEnv(),
  })
  return JSON.parse(out)
}
// INTEROP_BREAK=preimage (run.sh): hand back a wrong preimage, so the seller must refuse.
export const breakPreimage = () => process.env.MPP_BREAK_PREIMAGE === '1'
export const payInvoice = (wallet) => async (bolt11) => {
  const preimage = cli(wallet, 'pay', bolt11).preimage
  return breakPreimage() ? preimage.replace(/^./, (c) => (c === '0' ? '1' : '0')) : preimage
}
export const createInvoice = (wallet) => async ({ amountSat, memo }) => {
  const r = cli(wallet, 'invoice', String(amountSat), '--description', memo || 'mppx')
  return { invoice: r.bolt11, paymentHash: r.payment_hash }
}
export function decode(bolt11) {
  const r = JSON.parse(execFileSync(process.env.L402_MCP_BIN, ['--json', 'decode', bolt11], { encoding: 'utf8' }))
  return r
}
export const balance = (wallet) => cli(wallet, 'balance').balance_msat
export function check(counterpart, direction, name, ok, detail = '') {
  console.log(`${counterpart.padEnd(14)} ${direction.padEnd(28)} ${name.padEnd(52)} ${ok ? 'PASS' : 'FAIL'}${ok || !detail ? '' : '  ' + String(detail).slice(0, 600)}`)
  if (!ok) process.exitCode = 1
}
