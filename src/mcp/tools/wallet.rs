//! Tools that read the wallet: `wallet_balance`, `list_payments`, `decode_invoice`.

use rmcp::handler::server::tool::{IntoCallToolResult, schema_for_output};
use rmcp::handler::server::wrapper::{Json, Parameters};
use rmcp::model::CallToolResponse;
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, tool, tool_router};

use crate::mcp::L402Server;
use crate::mcp::apps::{renders_apps, wallet_tool_meta};
use crate::ops::wallet::{
    BalanceOutput, DecodeInvoiceOutput, DecodeInvoiceParams, ListPaymentsOutput,
    ListPaymentsParams, NoParams,
};
use crate::ops::{self, Failure};

#[tool_router(router = wallet_tools, vis = "pub(crate)")]
impl L402Server {
    #[tool(
        description = "Show the wallet: balance in sats (demo_funds=true means test sats, not real bitcoin), network and backend, whether it returns preimages (returns_preimages=false: it cannot buy L402 access), the spending budget (per-payment cap, daily cap over a rolling 24 h, spent, reserved, remaining) and income of the last 24 h.",
        output_schema = schema_for_output::<BalanceOutput>(),
        meta = wallet_tool_meta(),
        annotations(
            title = "Wallet balance and budget",
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn wallet_balance(
        &self,
        ctx: RequestContext<RoleServer>,
        Parameters(_): Parameters<NoParams>,
    ) -> Result<CallToolResponse, ErrorData> {
        let out = match ops::wallet::balance(self.app()).await {
            Ok(out) => out,
            Err(f) => return f.into_call_tool_result(),
        };
        let mut r = Json(out).into_call_tool_result()?;
        // A host that renders the wallet view gets the dashboard's HTML beside the result.
        if renders_apps(&ctx)
            && let CallToolResponse::Complete(result) = &mut r
        {
            result.meta = self.wallet_view().await;
        }
        Ok(r)
    }

    #[tool(
        description = "List recent payments from the wallet's ledger, newest first: direction (in/out), status (pending/succeeded/failed), amount and fee in sats, payment hash, what it was for.",
        annotations(
            title = "List payments",
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn list_payments(
        &self,
        Parameters(p): Parameters<ListPaymentsParams>,
    ) -> Result<Json<ListPaymentsOutput>, Failure> {
        Ok(Json(ops::wallet::list_payments(self.app(), p).await?))
    }

    #[tool(
        description = "Decode a BOLT11 invoice without paying it: network, amount, payment hash, description, expiry, payee.",
        annotations(
            title = "Decode an invoice",
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn decode_invoice(
        &self,
        Parameters(p): Parameters<DecodeInvoiceParams>,
    ) -> Result<Json<DecodeInvoiceOutput>, Failure> {
        Ok(Json(ops::wallet::decode_invoice(
            &p,
            self.app().clock.now(),
        )?))
    }
}
