// COUNTERPART: Alby's lightning-tools 10.0.0 (npm @getalby/lightning-tools, `fetch402`) as a
// buyer, paying from our embedded wallet "alby-buyer": OUR gateway selling through the Payment
// scheme only (`--auth mpp`, a 21-sat charge). Alby reads the `Payment` challenge with its own
// parser and echoes it in its own way (it drops `description`), so this checks that our
// gateway takes an echo of another implementation, and that a credential Alby reuses is
// refused (a charge is single use).
// Usage: node alby-buyer.mjs GATEWAY_URL
import { fetch402 } from '@getalby/lightning-tools/402'
import { balance, check, payInvoice } from './wallet.mjs'

const [gatewayUrl] = process.argv.slice(2)
const CP = 'alby'
const D = 'alby->our-gateway'
const pay = payInvoice('alby-buyer')
let paid = 0
const wallet = {
  payInvoice: async ({ invoice }) => {
    paid++
    return { preimage: await pay(invoice) }
  },
}

try {
  const b0 = balance('alby-buyer')
  const res = await fetch402(gatewayUrl, {}, { wallet })
  const body = await res.text()
  check(CP, D, 'paid charge: 200 with the upstream data', res.status === 200 && body.includes('the answer is 42'), `${res.status} ${body.slice(0, 200)}`)
  check(CP, D, 'Alby says it paid the charge (scheme mpp)', res.payment?.paid === true && res.payment.amountSat === 21 && /^Payment /.test(res.payment.credentials?.value ?? ''), JSON.stringify({ ...res.payment, preimage: undefined, credentials: res.payment?.credentials?.header }))
  check(CP, D, 'wallet paid exactly 21 sats once', paid === 1 && b0 - balance('alby-buyer') === 21_000, `${paid} payments, ${b0} -> ${balance('alby-buyer')}`)
  // Alby offers to reuse a credential; a Payment charge is single use, so ours refuses it
  // with a fresh 402 (and Alby, given no wallet budget to pay again, does not pay).
  const again = await fetch(gatewayUrl, { headers: { [res.payment.credentials.header]: res.payment.credentials.value } })
  await again.text()
  check(CP, D, 'the same credential again: a fresh 402, nothing paid', again.status === 402 && paid === 1, `${again.status}`)
} catch (e) {
  check(CP, D, 'paid charge', false, e.stack)
}
