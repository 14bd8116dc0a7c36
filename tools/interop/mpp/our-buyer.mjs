// OUR buyer (`l402-mcp serve` over stdio, driven by the MCP TS SDK client) pays the mppx seller
// (mppx-seller.mjs): fetch_paid over HTTP, call_paid_tool over MCP. Wallet "our-buyer".
// Usage: node our-buyer.mjs SELLER_BASE_URL
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js'
import { balance, check, ourEnv } from './wallet.mjs'

const base = process.argv[2]
const CP = 'mppx'
const client = new Client({ name: 'interop', version: '0.0.1' })
await client.connect(new StdioClientTransport({
  command: process.env.L402_MCP_BIN,
  args: ['--data-dir', process.env.MPP_DATA_DIR, '--wallet', 'our-buyer', 'serve'],
  env: ourEnv({ L402_MCP_FETCH_ALLOW_LOOPBACK: '1' }),
  stderr: 'ignore',
}))
const structured = (r) => r.structuredContent ?? {}

{
  const D = 'fetch_paid->mppx-seller'
  const b0 = balance('our-buyer'), s0 = balance('mppx-seller')
  const r = await client.callTool({ name: 'fetch_paid', arguments: { url: `${base}/weather`, max_price_sats: 200 } })
  const s = structured(r)
  const rc = s.receipt ?? {}
  check(CP, D, 'paid charge: 200 with the seller data', !r.isError && s.status === 200 && (s.body ?? '').includes('sunny'), JSON.stringify(r).slice(0, 500))
  check(CP, D, 'receipt: Payment charge, mppx receipt decoded', rc.scheme === 'Payment' && rc.payment_intent === 'charge' && rc.payment_receipt?.status === 'success' && rc.payment_receipt?.reference === rc.payment_hash, JSON.stringify(rc))
  check(CP, D, 'exactly 100 sats moved, once', b0 - balance('our-buyer') === 100_000 && balance('mppx-seller') - s0 === 100_000, `${b0} -> ${balance('our-buyer')}`)
  const again = structured(await client.callTool({ name: 'fetch_paid', arguments: { url: `${base}/weather`, max_price_sats: 200 } }))
  check(CP, D, 'single use: a second call pays again (one more payment)', again.status === 200 && again.receipt?.paid === true && b0 - balance('our-buyer') === 200_000, JSON.stringify(again.receipt))
}

{
  const D = 'call_paid_tool->mppx-seller'
  const b0 = balance('our-buyer')
  const r = await client.callTool({ name: 'call_paid_tool', arguments: { server_url: `${base}/mcp`, tool: 'weather', max_price_sats: 200 } })
  const s = structured(r)
  check(CP, D, 'paid tool call: the tool result', !r.isError && JSON.stringify(s.result ?? {}).includes('sunny'), JSON.stringify(r).slice(0, 600))
  check(CP, D, 'receipt from _meta (reference = payment hash, challengeId)', s.payment_receipt?.reference === s.payment_hash && s.payment_receipt?.challengeId === s.challenge_id, JSON.stringify(s))
  check(CP, D, 'exactly 100 sats, once', s.paid === true && b0 - balance('our-buyer') === 100_000, `${b0} -> ${balance('our-buyer')}`)
}
await client.close()
