// GLUE (ours, not a counterpart's): a `lightning` / `charge` payment method for mppx 0.11.0.
// mppx ships no lightning method and none is published on npm (checked: @mppx/lightning,
// mppx-lightning, @buildonspark/lightning-mpp-sdk, lightning-mpp, ... are 404s), so this adds one
// through mppx's documented custom-method API (Method.from / Method.toClient / Method.toServer),
// with the wire shape of draft lightning-charge as Aperture deploys it. The Lightning side is
// l402-mcp's embedded wallets (wallet.mjs). Written from mppx's public API; nothing copied.
import { createHash } from 'node:crypto'
import { Credential, Errors, Method, z } from 'mppx'
import { breakPreimage } from './wallet.mjs'

const hex64 = () => z.string().check(z.regex(/^[0-9a-f]{64}$/, 'expected 64 lowercase hex'))
export const sha256hex = (hex) => createHash('sha256').update(Buffer.from(hex, 'hex')).digest('hex')

export const charge = Method.from({
  name: 'lightning',
  intent: 'charge',
  schema: {
    credential: { payload: z.object({ preimage: hex64() }) },
    request: z.object({
      amount: z.string().check(z.regex(/^[1-9][0-9]*$/, 'amount: positive integer sats')),
      currency: z.string(),
      description: z.optional(z.string()),
      recipient: z.optional(z.string()),
      externalId: z.optional(z.string()),
      // Optional only because mppx parses the route options with this schema before the
      // request hook adds the invoice.
      methodDetails: z.optional(z.object({
        invoice: z.string(),
        paymentHash: hex64(),
        network: z.optional(z.string()),
      })),
    }),
  },
})

/** Buyer side: pays `methodDetails.invoice` with `payInvoice(bolt11) -> preimage hex` after
 *  checking the invoice against the request (amount, hash, network) through `decode`. */
export function lightningChargeClient({ payInvoice, decode, maxSat = Infinity }) {
  return Method.toClient(charge, {
    async createCredential({ challenge }) {
      const { amount, methodDetails } = challenge.request
      const inv = decode(methodDetails.invoice)
      if (inv.amount_msat !== Number(amount) * 1000) throw new Error(`invoice ${inv.amount_msat} msat != ${amount} sat`)
      if (inv.payment_hash !== methodDetails.paymentHash) throw new Error('invoice hash != paymentHash')
      if (inv.network !== (methodDetails.network ?? 'mainnet')) throw new Error(`network ${inv.network}`)
      if (Number(amount) > maxSat) throw new Error(`amount ${amount} over cap ${maxSat}`)
      if (inv.expired) throw new Error('invoice expired')
      const preimage = (await payInvoice(methodDetails.invoice)).toLowerCase()
      if (sha256hex(preimage) !== methodDetails.paymentHash && !breakPreimage()) throw new Error('preimage does not match paymentHash')
      return Credential.serialize({ challenge, payload: { preimage } })
    },
  })
}

/** Seller side: `createInvoice({amountSat, memo}) -> {invoice, paymentHash}`; the preimage is
 *  the proof (sha256 checked), a payment hash is accepted once. */
export function lightningChargeServer({ createInvoice, network, replay = new Map() }) {
  return Method.toServer(charge, {
    defaults: { currency: 'sat' },
    // Called on every request, the paid retry too (before the HMAC check): reuse the echoed,
    // HMAC-bound methodDetails when the amount is the route's, else mint a new invoice.
    async request({ request: { memo, ...routeRequest }, credential }) {
      const request = memo === undefined ? routeRequest : { ...routeRequest, description: memo }
      const echoed = credential?.challenge
      if (echoed?.method === 'lightning' && echoed.intent === 'charge' && echoed.request?.amount === request.amount && echoed.request?.methodDetails)
        return { ...request, methodDetails: echoed.request.methodDetails }
      const { invoice, paymentHash } = await createInvoice({ amountSat: Number(request.amount), memo: request.description ?? '' })
      return { ...request, methodDetails: { invoice, network, paymentHash } }
    },
    async verify({ credential }) {
      const { challenge, payload } = credential
      const paymentHash = challenge.request.methodDetails?.paymentHash
      if (!paymentHash) throw new Errors.VerificationFailedError({ reason: 'no paymentHash' })
      if (sha256hex(payload.preimage) !== paymentHash) throw new Errors.VerificationFailedError({ reason: 'preimage mismatch' })
      if (replay.has(paymentHash)) throw new Errors.VerificationFailedError({ reason: 'preimage already used' })
      replay.set(paymentHash, challenge.id)
      return { method: 'lightning', reference: paymentHash, status: 'success', timestamp: new Date().toISOString(), challengeId: challenge.id }
    },
  })
}
