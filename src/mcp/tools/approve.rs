//! The approval card's tool: `approve_payment` (MCP Apps, visible to the card only).

use rmcp::handler::server::wrapper::{Json, Parameters};
use rmcp::{tool, tool_router};

use crate::mcp::L402Server;
use crate::mcp::apps::approve_payment_meta;
use crate::ops::approve::{ApprovePaymentOutput, ApprovePaymentParams};
use crate::ops::{self, Failure};

#[tool_router(router = approve_tools, vis = "pub(crate)")]
impl L402Server {
    #[tool(
        description = "For the approval card of an MCP App host only: a person's Approve or Deny of a payment held for approval. It needs the approval's one-time secret, which only the card receives (never the model): an agent cannot approve its own payments, and a call without the right secret is refused (approval_wrong_secret) and pays nothing. Approving pays the held invoice once, within the budget.",
        meta = approve_payment_meta(),
        annotations(
            title = "Approve or deny a held payment (approval card)",
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = false,
            open_world_hint = true
        )
    )]
    async fn approve_payment(
        &self,
        Parameters(p): Parameters<ApprovePaymentParams>,
    ) -> Result<Json<ApprovePaymentOutput>, Failure> {
        Ok(Json(ops::approve::decide_in_card(self.app(), p).await?))
    }
}
