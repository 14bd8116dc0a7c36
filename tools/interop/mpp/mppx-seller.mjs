// COUNTERPART: mppx 0.11.0 as a seller, with the lightning glue (lightning.mjs), invoicing from
// our embedded wallet "mppx-seller". Usage: node mppx-seller.mjs PORT
//   GET  /weather  -> 402 Payment (100 sat) / 200 + Payment-Receipt
//   POST /mcp      -> MCP server (TS SDK 1.32.2, stateless) whose tool `weather` costs 100 sat
//                     (mppx's mcpSdk transport: -32042 with challenges, receipt in _meta)
import http from 'node:http'
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js'
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js'
import { Expires, Mppx, Request as MppxRequest, Transport } from 'mppx/server'
import { lightningChargeServer } from './lightning.mjs'
import { createInvoice } from './wallet.mjs'

const port = Number(process.argv[2])
const secretKey = 'l402-mcp-interop-test-secret-32b!' // mppx requires >= 32 bytes
const method = () => lightningChargeServer({ createInvoice: createInvoice('mppx-seller'), network: 'regtest' })
const web = Mppx.create({ realm: 'mppx.test', secretKey, methods: [method()] })
const mcp = Mppx.create({ realm: 'mppx.test', secretKey, transport: Transport.mcpSdk(), methods: [method()] })

function mcpServer() {
  const server = new McpServer({ name: 'mppx-lightning-seller', version: '0.0.1' })
  server.registerTool('weather', { description: 'paid weather report (100 sat)' }, async (extra) => {
    const result = await mcp.lightning.charge({ amount: '100', memo: 'Weather report', expires: Expires.minutes(15) })(extra)
    if (result.status === 402) throw result.challenge
    return result.withReceipt({ content: [{ type: 'text', text: 'sunny' }] })
  })
  return server
}

const web402 = MppxRequest.toNodeListener(async (request) => {
  const result = await web.lightning.charge({ amount: '100', memo: 'Weather report', expires: Expires.minutes(15) })(request)
  if (result.status === 402) return result.challenge
  return result.withReceipt(Response.json({ forecast: 'sunny' }))
})

http.createServer(async (req, res) => {
  if (req.url === '/health') { res.writeHead(200).end('ok'); return }
  if (req.url === '/weather') return web402(req, res)
  if (req.url !== '/mcp') { res.writeHead(404).end(); return }
  const chunks = []
  for await (const c of req) chunks.push(c)
  const body = chunks.length ? JSON.parse(Buffer.concat(chunks).toString()) : undefined
  const server = mcpServer()
  const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true })
  res.on('close', () => { transport.close(); server.close() })
  await server.connect(transport)
  await transport.handleRequest(req, res, body)
}).listen(port, '127.0.0.1', () => console.log(`mppx seller on http://127.0.0.1:${port}`))
