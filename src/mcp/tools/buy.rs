//! Tools that spend: `fetch_paid`, `pay_invoice`, and `discover` (which never pays).

use rmcp::handler::server::wrapper::{Json, Parameters};
use rmcp::{tool, tool_router};

use crate::mcp::L402Server;
use crate::ops::buy::{
    DiscoverOutput, DiscoverParams, FetchPaidOutput, FetchPaidParams, PayInvoiceOutput,
    PayInvoiceParams,
};
use crate::ops::{self, Failure};

#[tool_router(router = buy_tools, vis = "pub(crate)")]
impl L402Server {
    #[tool(
        description = "Fetch an HTTP(S) URL and, if it answers 402 with an L402 (or LSAT) challenge, pay the invoice and retry with the credential, without asking anyone. The price is checked against the decoded invoice: it must be at most max_price_sats (default: the wallet's per-payment cap) and fit the wallet's daily budget; otherwise nothing is paid and the result is an error saying which limit refused it. Credentials are cached and reused for the same URL path, so repeat calls do not pay again. Returns the status, selected headers, the body (text, or base64 for binary; truncated at max_response_bytes) and a receipt (paid, amount, fee, payment hash, token reused, budget remaining). A 402 that is not L402 (e.g. x402) is reported and not paid.",
        annotations(
            title = "Fetch a URL, paying L402 if asked",
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = false,
            open_world_hint = true
        )
    )]
    async fn fetch_paid(
        &self,
        Parameters(p): Parameters<FetchPaidParams>,
    ) -> Result<Json<FetchPaidOutput>, Failure> {
        Ok(Json(ops::buy::fetch_paid(self.fetcher(), p).await?))
    }

    #[tool(
        description = "Pay a BOLT11 invoice under the same rules as fetch_paid: the invoice must have an amount, not be expired, be for this wallet's network, be at most the per-payment cap (and max_amount_sats, when given) and fit the daily budget. Paying an invoice that was already paid returns the first payment and spends nothing.",
        annotations(
            title = "Pay a Lightning invoice",
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = true,
            open_world_hint = true
        )
    )]
    async fn pay_invoice(
        &self,
        Parameters(p): Parameters<PayInvoiceParams>,
    ) -> Result<Json<PayInvoiceOutput>, Failure> {
        Ok(Json(ops::buy::pay_invoice(self.app(), p).await?))
    }

    #[tool(
        description = "Before buying, read what an L402 service sells: its /.well-known/l402 document (paths, prices in sats, token terms) and /llms.txt, from the origin of the given URL. Never pays anything.",
        annotations(
            title = "Discover an L402 service",
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = true
        )
    )]
    async fn discover(
        &self,
        Parameters(p): Parameters<DiscoverParams>,
    ) -> Result<Json<DiscoverOutput>, Failure> {
        Ok(Json(ops::buy::discover(self.fetcher(), p).await?))
    }
}
