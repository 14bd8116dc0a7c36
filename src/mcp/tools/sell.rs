//! Tools that sell: `create_l402_challenge`, `create_payment_challenge`, `verify_l402_payment`
//! (both schemes), `create_invoice`.

use rmcp::handler::server::wrapper::{Json, Parameters};
use rmcp::{tool, tool_router};

use crate::mcp::L402Server;
use crate::ops::sell::{
    CreateChallengeOutput, CreateChallengeParams, CreateInvoiceOutput, CreateInvoiceParams,
    CreatePaymentChallengeOutput, CreatePaymentChallengeParams, VerifyOutput, VerifyParams,
};
use crate::ops::{self, Failure};

#[tool_router(router = sell_tools, vis = "pub(crate)")]
impl L402Server {
    #[tool(
        description = "Sell access: create an invoice for amount_sats and mint an L402 macaroon bound to it (Aperture-compatible). Send the returned www_authenticate values as two WWW-Authenticate headers with HTTP status 402; the buyer pays and comes back with 'Authorization: L402 <macaroon>:<preimage>', which verify_l402_payment checks. The result never contains the invoice's preimage.",
        annotations(
            title = "Create an L402 challenge",
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = false,
            open_world_hint = false
        )
    )]
    async fn create_l402_challenge(
        &self,
        Parameters(p): Parameters<CreateChallengeParams>,
    ) -> Result<Json<CreateChallengeOutput>, Failure> {
        Ok(Json(ops::sell::create_challenge(self.app(), p).await?))
    }

    #[tool(
        description = "Sell access through the Payment scheme (MPP, method lightning, as Aperture and lnget speak it): create an invoice and a challenge bound to it by an HMAC id. intent \"charge\" (default) is one payment for one request; \"session\" is a deposit the buyer spends request by request and gets the rest of back at close. Send www_authenticate as a WWW-Authenticate header with HTTP status 402 (or challenge in a -32042 error's data.challenges for an MCP tool); the buyer comes back with 'Authorization: Payment <credential>', which verify_l402_payment checks. The result never contains the invoice's preimage.",
        annotations(
            title = "Create a Payment (MPP) challenge",
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = false,
            open_world_hint = false
        )
    )]
    async fn create_payment_challenge(
        &self,
        Parameters(p): Parameters<CreatePaymentChallengeParams>,
    ) -> Result<Json<CreatePaymentChallengeOutput>, Failure> {
        Ok(Json(
            ops::sell::create_payment_challenge(self.app(), p).await?,
        ))
    }

    #[tool(
        description = "Check a credential a buyer sent: an L402 one (the Authorization header, or macaroon + preimage), or a Payment (MPP) one ('Authorization: Payment ...', give price_sats: a charge is accepted once, a session pays price_sats per request; send payment_receipt back as the Payment-Receipt header). For L402, with the embedded verifier: signature, payment preimage, expiry, service, capability, and the request's method and path for tokens bound to them (such a token is refused, reason binding_unchecked, when they are not given). An invalid credential is a normal result with valid=false and a reason (answer the buyer with a fresh 402 from create_l402_challenge); only a broken request is an error. Call it once per request you serve: a valid call records the sale and counts one use of an N-use token (max_uses), so a token sold for N requests is refused (reason used_up) after N calls.",
        annotations(
            title = "Verify an L402 credential",
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = false,
            open_world_hint = false
        )
    )]
    async fn verify_l402_payment(
        &self,
        Parameters(p): Parameters<VerifyParams>,
    ) -> Result<Json<VerifyOutput>, Failure> {
        Ok(Json(ops::sell::verify(self.app(), p).await?))
    }

    #[tool(
        description = "Create a BOLT11 invoice to receive amount_sats into this wallet.",
        annotations(
            title = "Create an invoice",
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = false,
            open_world_hint = false
        )
    )]
    async fn create_invoice(
        &self,
        Parameters(p): Parameters<CreateInvoiceParams>,
    ) -> Result<Json<CreateInvoiceOutput>, Failure> {
        Ok(Json(ops::sell::create_invoice(self.app(), p).await?))
    }
}
