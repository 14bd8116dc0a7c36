//! Tools that spend: `fetch_paid`, `call_paid_tool`, `pay_invoice`, `close_sessions` (which
//! gets money back), and `discover` (which never pays).

use rmcp::handler::server::tool::{InputResponses, RequestState, schema_for_output};
use rmcp::handler::server::wrapper::{Json, Parameters};
use rmcp::model::CallToolResponse;
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, tool, tool_router};

use crate::mcp::L402Server;
use crate::mcp::approval::Purchase;
use crate::mcp::apps::approval_tool_meta;
use crate::ops::buy::{
    CallPaidToolOutput, CallPaidToolParams, CloseSessionsOutput, CloseSessionsParams,
    DiscoverOutput, DiscoverParams, FetchPaidOutput, FetchPaidParams, PayInvoiceOutput,
    PayInvoiceParams,
};
use crate::ops::{self, Failure};

#[tool_router(router = buy_tools, vis = "pub(crate)")]
impl L402Server {
    #[tool(
        description = "Fetch an HTTP(S) URL and, if it answers 402 with an L402 (or LSAT) or Payment (MPP, lightning) challenge, pay the invoice and retry with the credential, without asking anyone. When several are offered, L402 is paid first unless prefer_scheme says \"payment\" (a one-off charge) or \"session\" (a deposit spent request by request; close_session or close_sessions gets the rest back). The price is checked against the decoded invoice: it must be at most max_price_sats (default: the wallet's per-payment cap) and fit the wallet's daily budget; otherwise nothing is paid and the result is an error saying which limit refused it. Credentials are cached and reused for the same URL path, so repeat calls do not pay again. When the wallet's approval policy holds the payment for a human, the human is asked in the client's own dialog where the client supports it; otherwise the result is an approval_required error with the approval's id: a person approves it (l402-mcp approve ID), then calling fetch_paid again with the same URL pays once, from the approval. You cannot approve payments yourself. Returns the status, selected headers, the body (text, or base64 for binary; truncated at max_response_bytes) and a receipt (paid, amount, fee, payment hash, token reused, budget remaining). A 402 that is neither (e.g. x402) is reported and not paid.",
        output_schema = schema_for_output::<FetchPaidOutput>(),
        meta = approval_tool_meta(),
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
        ctx: RequestContext<RoleServer>,
        Parameters(p): Parameters<FetchPaidParams>,
        RequestState(state): RequestState,
        InputResponses(answers): InputResponses,
    ) -> Result<CallToolResponse, ErrorData> {
        self.purchase(ctx, Purchase::Fetch(p), state, answers).await
    }

    #[tool(
        description = "Pay a BOLT11 invoice under the same rules as fetch_paid: the invoice must have an amount, not be expired, be for this wallet's network, be at most the per-payment cap (and max_amount_sats, when given) and fit the daily budget. Paying an invoice that was already paid returns the first payment and spends nothing. A payment the approval policy holds for a human is asked in the client's dialog where supported, else it is an approval_required error with the approval's id; once a person approves it, calling pay_invoice again with the same invoice returns the payment.",
        output_schema = schema_for_output::<PayInvoiceOutput>(),
        meta = approval_tool_meta(),
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
        ctx: RequestContext<RoleServer>,
        Parameters(p): Parameters<PayInvoiceParams>,
        RequestState(state): RequestState,
        InputResponses(answers): InputResponses,
    ) -> Result<CallToolResponse, ErrorData> {
        self.purchase(ctx, Purchase::Pay(p), state, answers).await
    }

    #[tool(
        description = "Before buying, read what an L402 or Payment (MPP) service sells: its /.well-known/l402 document (paths, prices in sats, token terms), /llms.txt and /openapi.json (x-payment-info per priced operation), from the origin of the given URL. Never pays anything.",
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

    #[tool(
        description = "Close open Payment (MPP) sessions so their unspent deposits come back to this wallet: the one with url's service, the one session_id names, or all of them. Returns each session's deposit, the refund the seller announced, what has come back so far, and what was spent.",
        annotations(
            title = "Close Payment sessions",
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = true
        )
    )]
    async fn close_sessions(
        &self,
        Parameters(p): Parameters<CloseSessionsParams>,
    ) -> Result<Json<CloseSessionsOutput>, Failure> {
        Ok(Json(ops::buy::close_sessions(self.fetcher(), p).await?))
    }

    #[tool(
        description = "Call a tool of another MCP server (streamable HTTP at server_url) and, if it asks for payment (JSON-RPC error -32042 with a Payment challenge, method lightning), pay the invoice and call again with the credential, without asking anyone. The price is checked against the decoded invoice: at most max_price_sats (default: the wallet's per-payment cap) and within the daily budget; a server that refuses what it was paid for is not paid again for a day. A -32042 that asks the user to open a URL (elicitation) is not a payment and is reported. Returns the tool's result and the payment receipt.",
        annotations(
            title = "Call a paid MCP tool",
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = false,
            open_world_hint = true
        )
    )]
    async fn call_paid_tool(
        &self,
        Parameters(p): Parameters<CallPaidToolParams>,
    ) -> Result<Json<CallPaidToolOutput>, Failure> {
        Ok(Json(
            ops::buy::call_paid_tool(self.app(), self.fetcher(), p).await?,
        ))
    }
}
