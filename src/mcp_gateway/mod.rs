//! `l402-mcp mcp-gateway`: prices on another MCP server's tools (the `Payment` scheme's MCP
//! transport, draft-payment-transport-mcp).
//!
//! The gateway is an MCP server over streamable HTTP whose tools are the upstream's (a stdio
//! command or a streamable HTTP URL, reached through rmcp's client). A `tools/call` of a priced
//! tool without payment gets JSON-RPC error `-32042` with the challenges in `data.challenges`
//! (the request as a JSON object; the tool's name bound into the id through `opaque`); a call
//! carrying `_meta["org.paymentauth/credential"]` is admitted by [`MppSeller`] (charge: once,
//! at least the price, for that tool), forwarded without the credential and answered with
//! `_meta["org.paymentauth/receipt"]`; a refused credential gets `-32043` with fresh challenges
//! and `data.failure`, a malformed one `-32602`. Unpriced tools and other methods pass through.
//!
//! For HTTP clients that pay 402s, [`http`] also takes `Authorization: L402` on the HTTP
//! request and, with `http_402`, answers an unpaid call with HTTP 402 and both schemes'
//! challenges.

pub mod http;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, ErrorCode, Implementation, ListToolsResult,
    PaginatedRequestParams, ServerCapabilities, ServerConfig,
};
use rmcp::service::{RequestContext, RunningService};
use rmcp::{ErrorData, RoleClient, RoleServer, ServerHandler, ServiceError};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tracing::{info, warn};

use crate::l402::mpp::{
    MCP_CREDENTIAL_META, MCP_PAYMENT_REQUIRED, MCP_RECEIPT_META, MCP_VERIFICATION_FAILED,
    PaymentCredential,
};
use crate::mint::{SellError, Seller};
use crate::mpp::{Access, ChargeTerms, DEFAULT_SESSION_IDLE_SECS, MppSeller};

/// `[mcp_gateway]` in the config file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpGatewayConfig {
    /// Where to listen; default 127.0.0.1:8404 (the dashboard has 8403).
    pub listen: Option<std::net::SocketAddr>,
    /// The upstream MCP server as a command to run over stdio, e.g. ["node", "server.js"].
    pub upstream_command: Option<Vec<String>>,
    /// Or its streamable HTTP URL, e.g. http://127.0.0.1:3001/mcp.
    pub upstream_url: Option<String>,
    /// The `Payment` realm; default the listen address.
    pub realm: Option<String>,
    /// Answer an unpaid call of a priced tool with HTTP 402 (both schemes' challenges) instead
    /// of a JSON-RPC error in a 200, for clients that pay 402s.
    #[serde(default)]
    pub http_402: bool,
    /// Price in sats per call, by tool name; tools not named here are free.
    #[serde(default)]
    pub prices: BTreeMap<String, u64>,
    /// `Host` values answered besides loopback names (name or name:port): the names buyers
    /// reach the gateway by, e.g. `tools.example.com`.
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// Browser `Origin`s served besides loopback pages (scheme://host[:port|:*]).
    #[serde(default)]
    pub allowed_origins: Vec<String>,
}

/// The service name a tool's L402 tokens and sales are recorded under.
pub fn tool_service(tool: &str) -> String {
    let clean: String = tool
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .take(60)
        .collect();
    format!("mcp-{clean}")
}

/// The `opaque` a tool's challenges carry, so a credential bought for one tool does not buy
/// another.
pub fn tool_binding(tool: &str) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("tool".into(), Value::String(tool.to_owned()));
    m
}

/// Marks an HTTP request whose L402 credential paid for a call of this tool (set by
/// [`http`], read by the handler).
#[derive(Debug, Clone)]
pub(crate) struct PaidOverHttp(pub(crate) String);

/// The MCP server that puts prices on an upstream's tools.
#[derive(Clone)]
pub struct PaidTools {
    upstream: Arc<RunningService<RoleClient, ()>>,
    /// msat per call, by tool.
    prices: Arc<HashMap<String, u64>>,
    mpp: MppSeller,
    seller: Seller,
}

impl std::fmt::Debug for PaidTools {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PaidTools")
            .field("prices", &self.prices)
            .finish_non_exhaustive()
    }
}

fn upstream_error(e: ServiceError) -> ErrorData {
    match e {
        ServiceError::McpError(e) => e,
        other => {
            ErrorData::internal_error(format!("the upstream MCP server failed: {other}"), None)
        }
    }
}

impl PaidTools {
    /// Prices (sats per call, by tool) on `upstream`'s tools, sold through `mpp` (and L402
    /// over HTTP through `seller`).
    pub fn new(
        upstream: RunningService<RoleClient, ()>,
        prices: &BTreeMap<String, u64>,
        mpp: MppSeller,
        seller: Seller,
    ) -> Result<PaidTools, SellError> {
        let mut msat = HashMap::new();
        for (tool, sats) in prices {
            msat.insert(
                tool.clone(),
                crate::mint::in_range(
                    &format!("price of {tool}"),
                    *sats,
                    1,
                    crate::budget::MAX_SATS,
                    " sats",
                )? * crate::l402::MSAT_PER_SAT,
            );
        }
        Ok(PaidTools {
            upstream: Arc::new(upstream),
            prices: Arc::new(msat),
            mpp,
            seller,
        })
    }

    /// What a call of `tool` costs (msat), if it is priced.
    pub fn price(&self, tool: &str) -> Option<u64> {
        self.prices.get(tool).copied()
    }

    pub fn mpp(&self) -> &MppSeller {
        &self.mpp
    }

    pub fn seller(&self) -> &Seller {
        &self.seller
    }

    /// A fresh charge challenge for `tool`, as the JSON object `data.challenges` carries.
    pub async fn challenge_for(&self, tool: &str, price_msat: u64) -> Result<Value, ErrorData> {
        let issued = self
            .mpp
            .charge_challenge(&ChargeTerms {
                amount_msat: price_msat,
                description: Some(format!("MCP tool {tool}")),
                expiry_secs: None,
                opaque: Some(tool_binding(tool)),
            })
            .await
            .map_err(|e| {
                warn!(error = %e, "cannot create a Payment challenge");
                ErrorData::internal_error("cannot create an invoice right now; try again", None)
            })?;
        issued
            .challenge
            .to_json()
            .map_err(|e| ErrorData::internal_error(e.to_string(), None))
    }

    /// The error of an unpaid or refused call: `code` with `data.httpStatus`, fresh
    /// `data.challenges` and, for a refusal, `data.failure`.
    pub async fn payment_error(
        &self,
        code: i32,
        tool: &str,
        price_msat: u64,
        failure: Option<(&str, String)>,
    ) -> ErrorData {
        let challenge = match self.challenge_for(tool, price_msat).await {
            Ok(c) => c,
            Err(e) => return e,
        };
        let mut data = json!({ "httpStatus": 402, "challenges": [challenge] });
        let message = match failure {
            Some((reason, detail)) => {
                data["failure"] = json!({ "reason": reason, "detail": detail });
                if code == MCP_VERIFICATION_FAILED {
                    "Payment verification failed"
                } else {
                    "Invalid payment credential"
                }
            }
            None => "Payment Required",
        };
        ErrorData::new(ErrorCode(code), message, Some(data))
    }

    async fn forward(&self, request: CallToolRequestParams) -> Result<CallToolResponse, ErrorData> {
        self.upstream
            .call_tool_once(request)
            .await
            .map_err(upstream_error)
    }
}

impl ServerHandler for PaidTools {
    fn get_info(&self) -> ServerConfig {
        let mut capabilities = ServerCapabilities::builder().enable_tools().build();
        let mut payment = Map::new();
        payment.insert(
            "methods".into(),
            json!({ "lightning": { "intents": ["charge"] } }),
        );
        capabilities.experimental = Some(BTreeMap::from([("payment".to_owned(), payment)]));
        ServerConfig::new(capabilities)
            .with_server_info(Implementation::new(
                "l402-mcp mcp-gateway",
                env!("CARGO_PKG_VERSION"),
            ))
            .with_instructions(
                "Some tools are paid (the Payment scheme, method lightning): an unpaid call answers JSON-RPC error -32042 with data.challenges; pay the invoice and call again with _meta[\"org.paymentauth/credential\"].",
            )
    }

    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let mut list = self
            .upstream
            .list_tools(request)
            .await
            .map_err(upstream_error)?;
        for tool in &mut list.tools {
            if let Some(msat) = self.price(&tool.name) {
                let note = format!(
                    "(paid: {} sats per call, Payment scheme, method lightning)",
                    msat / crate::l402::MSAT_PER_SAT
                );
                tool.description = Some(match &tool.description {
                    Some(d) => format!("{d} {note}").into(),
                    None => note.into(),
                });
            }
        }
        Ok(list)
    }

    async fn call_tool(
        &self,
        mut request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let tool = request.name.to_string();
        let Some(price) = self.price(&tool) else {
            return self.forward(request).await;
        };
        let paid_over_http = context
            .extensions
            .get::<axum::http::request::Parts>()
            .and_then(|p| p.extensions.get::<PaidOverHttp>())
            .is_some_and(|p| p.0 == tool);
        // rmcp moves the request's `_meta` into the context; the credential is not forwarded.
        let mut context = context;
        let credential = (context.meta.0).0.remove(MCP_CREDENTIAL_META).or_else(|| {
            request
                .meta
                .as_mut()
                .and_then(|m| (m.0).0.remove(MCP_CREDENTIAL_META))
        });
        if paid_over_http && credential.is_none() {
            info!(tool, "MCP tool call paid with L402 over HTTP");
            return self.forward(request).await;
        }
        let Some(credential) = credential else {
            return Err(self
                .payment_error(MCP_PAYMENT_REQUIRED, &tool, price, None)
                .await);
        };
        let credential = match PaymentCredential::from_json(&credential) {
            Ok(c) => c,
            Err(e) => {
                return Err(self
                    .payment_error(-32602, &tool, price, Some(("malformed", e.to_string())))
                    .await);
            }
        };
        let binding = tool_binding(&tool);
        let service = tool_service(&tool);
        let access = Access {
            service: &service,
            price_msat: price,
            charge: true,
            session: false,
            opaque: Some(&binding),
            idle_secs: DEFAULT_SESSION_IDLE_SECS,
        };
        let verdict = match self.mpp.admit_credential(&credential, access).await {
            Ok(v) => v,
            Err(e) => {
                warn!(error = %e, "Payment credential check failed");
                return Err(ErrorData::internal_error(
                    "payment verification is unavailable; try again",
                    None,
                ));
            }
        };
        if !verdict.valid {
            let reason = verdict.reason_code.unwrap_or("invalid");
            return Err(self
                .payment_error(
                    MCP_VERIFICATION_FAILED,
                    &tool,
                    price,
                    Some((reason, verdict.reason.unwrap_or_default())),
                )
                .await);
        }
        info!(tool, "MCP tool call paid with a Payment credential");
        let response = self.forward(request).await?;
        Ok(match (response, verdict.receipt) {
            (CallToolResponse::Complete(mut result), Some(receipt)) => {
                let meta = result.meta.get_or_insert_with(Default::default);
                meta.0.insert(MCP_RECEIPT_META.into(), receipt.to_json());
                CallToolResponse::Complete(result)
            }
            (other, _) => other,
        })
    }
}
