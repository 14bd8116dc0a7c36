// COUNTERPART: mppx 0.11.0 as a buyer, with the lightning glue, paying from our embedded wallet
// "mppx-buyer": OUR gateway over HTTP (Mppx.fetch) and OUR mcp-gateway (McpClient.wrap over
// the MCP TS SDK client). Usage: node mppx-buyer.mjs GATEWAY_URL MCP_GATEWAY_URL
import { Receipt } from 'mppx'
import { Mppx } from 'mppx/client'
import { McpClient } from 'mppx/mcp/client'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import { lightningChargeClient } from './lightning.mjs'
import { balance, check, decode, payInvoice } from './wallet.mjs'

const [gatewayUrl, mcpUrl] = process.argv.slice(2)
const CP = 'mppx'
const method = () => lightningChargeClient({ payInvoice: payInvoice('mppx-buyer'), decode, maxSat: 1000 })

// --- HTTP: mppx pays our gateway (auth = "mpp", a 21-sat charge).
{
  const D = 'mppx->our-gateway'
  // maxPaymentRetries 1: mppx would pay a post-payment 402 again (3 times by default).
  const mppx = Mppx.create({ polyfill: false, maxPaymentRetries: 1, methods: [method()] })
  const b0 = balance('mppx-buyer')
  try {
    const res = await mppx.fetch(gatewayUrl)
    const body = await res.text()
    const rc = res.headers.get('payment-receipt')
    const receipt = rc ? Receipt.deserialize(rc) : null
    check(CP, D, 'paid charge: 200 with the upstream data', res.status === 200 && body.includes('the answer is 42'), `${res.status} ${body.slice(0, 200)}`)
    check(CP, D, 'Payment-Receipt read by mppx (reference, challengeId)', !!receipt && receipt.status === 'success' && /^[0-9a-f]{64}$/.test(receipt.reference) && !!receipt.challengeId, JSON.stringify(receipt))
    check(CP, D, 'wallet paid exactly 21 sats once', b0 - balance('mppx-buyer') === 21_000, `${b0} -> ${balance('mppx-buyer')}`)
  } catch (e) {
    check(CP, D, 'paid charge', false, e.stack)
  }
}

// --- MCP: mppx's MCP client pays OUR mcp-gateway's priced tool (decode_invoice, 5 sats).
{
  const D = 'mppx->our-mcp-gateway'
  try {
    const client = new Client({ name: 'mppx-buyer', version: '0.0.1' })
    await client.connect(new StreamableHTTPClientTransport(new URL(mcpUrl)))
    let asked = 0
    McpClient.wrap(client, { methods: [method()], onPaymentRequired: async () => { asked++; return true } })
    const b0 = balance('mppx-buyer')
    const invoice = (await import('./wallet.mjs')).cli('mppx-buyer', 'invoice', '7').bolt11
    const result = await client.callTool({ name: 'decode_invoice', arguments: { bolt11: invoice } })
    const text = JSON.stringify(result.content)
    const decoded = result.structuredContent ?? JSON.parse(result.content?.[0]?.text ?? '{}')
    check(CP, D, 'paid tool call: the tool result', !result.isError && decoded.amount_sats === 7, text.slice(0, 300))
    check(CP, D, 'receipt in _meta read by mppx', !!result.receipt && result.receipt.status === 'success' && !!result.receipt.challengeId, JSON.stringify(result.receipt))
    check(CP, D, 'one challenge, paid exactly 5 sats', asked === 1 && b0 - balance('mppx-buyer') === 5_000, `asked ${asked}, ${b0} -> ${balance('mppx-buyer')}`)
    await client.close()
  } catch (e) {
    check(CP, D, 'paid tool call', false, e.stack)
  }
}
