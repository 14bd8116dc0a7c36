//! The MCP server: tools that translate calls into the library (no business logic here).
//!
//! Business failures (over budget, price above the cap, wallet error, bad invoice) are tool
//! results with `isError: true` and a message the agent can act on; JSON-RPC errors are left to
//! protocol misuse (unknown tool, arguments that do not match the schema).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::IntoCallToolResult;
use rmcp::handler::server::wrapper::{Json, Parameters};
use rmcp::model::{
    CallToolResponse, CallToolResult, ContentBlock, Implementation, ServerCapabilities,
    ServerConfig,
};
use rmcp::{ErrorData, ServerHandler, tool, tool_handler, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tracing::warn;

use crate::app::{App, AppError};
use crate::bolt11;
use crate::budget::{MAX_SATS, MSAT_PER_SAT};
use crate::fetch::{self, FetchError, FetchRequest, Fetcher};
use crate::mint::{Access, ChallengeRequest, DEFAULT_INVOICE_EXPIRY_SECS, SellError};
use crate::pay::{PayError, PayRequest};
use crate::storage::{Direction, PaymentFilter, StorageError};

const INSTRUCTIONS: &str = "A Lightning wallet that speaks L402. To buy: call fetch_paid instead of a plain HTTP fetch; \
it pays an L402 challenge (HTTP 402) within the per-call cap (max_price_sats) and the wallet's budget, then retries with \
the credential, and reuses it later. To sell: create_l402_challenge returns the 402 headers to send; verify_l402_payment \
checks the Authorization header a buyer sends back. wallet_balance shows funds and what the budget still allows. \
Amounts are in sats. When wallet_balance says demo_funds, the sats are test sats, not real bitcoin.";

/// The tools, over one opened wallet.
#[derive(Clone)]
pub struct L402Server {
    app: Arc<App>,
    fetcher: Arc<Fetcher>,
    tool_router: ToolRouter<Self>,
}

impl std::fmt::Debug for L402Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("L402Server")
            .field("wallet", &self.app.wallet_name)
            .finish_non_exhaustive()
    }
}

/// A business failure, returned as a tool result with `isError: true`.
#[derive(Debug)]
pub struct ToolError {
    /// Stable, machine-readable kind (e.g. `budget_exceeded`).
    pub code: &'static str,
    pub message: String,
}

impl ToolError {
    fn new(code: &'static str, message: impl Into<String>) -> ToolError {
        ToolError {
            code,
            message: message.into(),
        }
    }
}

impl IntoCallToolResult for ToolError {
    fn into_call_tool_result(self) -> Result<CallToolResponse, ErrorData> {
        Ok(CallToolResult::error(vec![ContentBlock::text(format!(
            "{}: {}",
            self.code, self.message
        ))])
        .into())
    }
}

impl From<PayError> for ToolError {
    fn from(e: PayError) -> Self {
        let code = match &e {
            PayError::InvalidInvoice(_) => "invalid_invoice",
            PayError::Amountless => "amountless_invoice",
            PayError::Expired { .. } => "expired_invoice",
            PayError::WrongNetwork { .. } => "wrong_network",
            PayError::ChallengeMismatch { .. } => "challenge_mismatch",
            PayError::Budget(
                crate::budget::BudgetRefusal::PerPaymentCap { .. }
                | crate::budget::BudgetRefusal::CallerCap { .. },
            ) => "price_above_cap",
            PayError::Budget(_) => "budget_exceeded",
            PayError::InFlight { .. } => "payment_in_flight",
            PayError::Failed(_) => "payment_failed",
            PayError::OutcomeUnknown { .. } => "payment_outcome_unknown",
            PayError::NoPreimage { .. } => "no_preimage",
            PayError::PreimagesWithheld => "wallet_withholds_preimages",
            PayError::PreimageMismatch { .. } => "preimage_mismatch",
            PayError::Storage(StorageError::Corrupt(_))
            | PayError::Wallet(crate::wallet::WalletError::Corrupt(_)) => "ledger_corrupt",
            PayError::Storage(_) | PayError::Wallet(_) => "wallet_error",
        };
        ToolError::new(code, e.to_string())
    }
}

impl From<FetchError> for ToolError {
    fn from(e: FetchError) -> Self {
        match e {
            FetchError::Pay(p) => p.into(),
            FetchError::Invalid(m) => ToolError::new("invalid_request", m),
            FetchError::Http(m) => ToolError::new("http_error", format!("{m}; nothing was paid")),
            e @ FetchError::PaidButFailed { .. } => {
                ToolError::new("paid_but_failed", e.to_string())
            }
            e @ FetchError::Blocked(_) => ToolError::new("address_refused", e.to_string()),
            e @ FetchError::SellerDistrusted { .. } => {
                ToolError::new("seller_distrusted", e.to_string())
            }
            e @ FetchError::NotL402 { .. } => ToolError::new("not_l402", e.to_string()),
            e @ FetchError::RefusedAfterPayment { .. } => {
                ToolError::new("refused_after_payment", e.to_string())
            }
            FetchError::Storage(l) => ledger_error(l),
        }
    }
}

impl From<SellError> for ToolError {
    fn from(e: SellError) -> Self {
        match e {
            SellError::Invalid(m) => ToolError::new("invalid_request", m),
            SellError::Storage(l) => ledger_error(l),
            e @ SellError::Wallet(crate::wallet::WalletError::Corrupt(_)) => {
                ToolError::new("ledger_corrupt", e.to_string())
            }
            other => ToolError::new("wallet_error", other.to_string()),
        }
    }
}

impl From<AppError> for ToolError {
    fn from(e: AppError) -> Self {
        match e {
            AppError::Storage(l) => ledger_error(l),
            AppError::Pay(p) => p.into(),
            e @ AppError::Wallet(crate::wallet::WalletError::Corrupt(_)) => {
                ToolError::new("ledger_corrupt", e.to_string())
            }
            other => internal(other),
        }
    }
}

/// A ledger failure: `ledger_corrupt` when it holds a value that cannot be right (reported,
/// never read as 0), else `wallet_error`.
fn ledger_error(e: StorageError) -> ToolError {
    match e {
        e @ StorageError::Corrupt(_) => ToolError::new("ledger_corrupt", e.to_string()),
        other => internal(other),
    }
}

/// schemars marks integers with formats such as `uint64` that are not JSON Schema formats; some
/// clients print a warning for each. The type and `minimum` already say it all.
fn tidy_tool_schemas(tool: &mut rmcp::model::Tool) {
    fn tidy(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(map) => {
                if map
                    .get("format")
                    .and_then(|f| f.as_str())
                    .is_some_and(|f| f.starts_with("int") || f.starts_with("uint"))
                {
                    map.remove("format");
                }
                map.values_mut().for_each(tidy);
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(tidy),
            _ => {}
        }
    }
    let mut input = serde_json::Value::Object((*tool.input_schema).clone());
    tidy(&mut input);
    if let serde_json::Value::Object(map) = input {
        tool.input_schema = Arc::new(map);
    }
    if let Some(out) = &tool.output_schema {
        let mut output = serde_json::Value::Object((**out).clone());
        tidy(&mut output);
        if let serde_json::Value::Object(map) = output {
            tool.output_schema = Some(Arc::new(map));
        }
    }
}

fn internal(e: impl std::fmt::Display) -> ToolError {
    ToolError::new("wallet_error", e.to_string())
}

/// A sats argument in msat, refused (with the range) when below `min` or above every bitcoin
/// there will ever be.
fn sats_arg(name: &str, sats: u64, min: u64) -> Result<u64, ToolError> {
    let msat = crate::mint::in_range(name, sats, min, MAX_SATS, " sats")?;
    Ok(msat * MSAT_PER_SAT)
}

/// A numeric argument, refused (with the range) outside `min..=max`.
fn range_arg(name: &str, value: u64, min: u64, max: u64) -> Result<u64, ToolError> {
    Ok(crate::mint::in_range(name, value, min, max, "")?)
}

/// Whole sats for display (msat kept alongside where precision matters).
fn whole_sats(msat: u64) -> u64 {
    msat / MSAT_PER_SAT
}

// ---------------------------------------------------------------- fetch_paid

#[derive(Debug, Deserialize, JsonSchema)]
pub struct FetchPaidParams {
    /// The http:// or https:// URL to fetch.
    pub url: String,
    /// HTTP method; default GET.
    #[serde(default)]
    pub method: Option<String>,
    /// Request headers, as name -> value.
    #[serde(default)]
    pub headers: Option<BTreeMap<String, String>>,
    /// Request body (text, e.g. JSON).
    #[serde(default)]
    pub body: Option<String>,
    /// The most this call may pay, in sats (checked against the invoice itself); 0 pays nothing. Default: the wallet's per-payment cap.
    #[serde(default)]
    #[schemars(range(max = 2_100_000_000_000_000u64))]
    pub max_price_sats: Option<u64>,
    /// Seconds to wait for each HTTP exchange; default 30, 1 to 300.
    #[serde(default)]
    #[schemars(range(min = 1, max = 300))]
    pub timeout_secs: Option<u64>,
    /// Largest response body returned, in bytes; default 1048576, 1 to 16777216. Longer bodies are truncated (and say so).
    #[serde(default)]
    #[schemars(range(min = 1, max = 16_777_216))]
    pub max_response_bytes: Option<usize>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct FetchPaidOutput {
    /// HTTP status of the final response.
    pub status: u16,
    /// The final URL (after redirects).
    pub url: String,
    /// Selected response headers.
    pub headers: BTreeMap<String, String>,
    pub content_type: Option<String>,
    /// The response body: text, or base64 when binary (see body_encoding).
    pub body: String,
    /// "text" or "base64".
    pub body_encoding: String,
    /// Bytes of body received.
    pub body_bytes: usize,
    /// True when the body was cut at max_response_bytes.
    pub truncated: bool,
    pub receipt: FetchReceiptOutput,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct FetchReceiptOutput {
    /// True when this call paid an invoice.
    pub paid: bool,
    pub amount_sats: u64,
    pub fee_sats: u64,
    pub amount_msat: u64,
    pub fee_msat: u64,
    /// Payment hash of the invoice paid (or of the credential reused).
    pub payment_hash: Option<String>,
    /// True when a credential bought earlier was reused (nothing paid).
    pub token_reused: bool,
    /// Scheme of the credential presented: L402 or LSAT.
    pub scheme: Option<String>,
    /// What the daily budget still allows, in sats.
    pub budget_remaining_sats: u64,
}

// ---------------------------------------------------------------- selling

#[derive(Debug, Deserialize, JsonSchema)]
pub struct CreateChallengeParams {
    /// Price in sats, 1 to 2100000000000000.
    #[schemars(range(min = 1, max = 2_100_000_000_000_000u64))]
    pub amount_sats: u64,
    /// Invoice description shown to the payer.
    #[serde(default)]
    pub description: Option<String>,
    /// Seconds until the invoice expires; default 3600, 1 to 31536000 (a year).
    #[serde(default)]
    #[schemars(range(min = 1, max = 31_536_000))]
    pub expiry_secs: Option<u64>,
    /// Service name the token is for; default "api". Letters, digits, '-', '_', '.'.
    #[serde(default)]
    pub service: Option<String>,
    /// Pricing tier within the service; default 0.
    #[serde(default)]
    pub tier: Option<u8>,
    /// Capabilities the token grants within the service (none by default).
    #[serde(default)]
    pub capabilities: Option<Vec<String>>,
    /// Token lifetime in seconds after minting, 1 to 315360000 (ten years); default: the token does not expire.
    #[serde(default)]
    #[schemars(range(min = 1, max = 315_360_000))]
    pub valid_for_secs: Option<u64>,
    /// How many requests the token pays for (each successful verify_l402_payment uses one), 1 to 1000000000; default unlimited.
    #[serde(default)]
    #[schemars(range(min = 1, max = 1_000_000_000))]
    pub max_uses: Option<u64>,
    /// Bind the token to these HTTP methods, e.g. ["GET"]; default any method. verify_l402_payment then needs the request's method to accept the token (binding_unchecked without it).
    #[serde(default)]
    pub methods: Option<Vec<String>>,
    /// Bind the token to requests under this path, e.g. "/v1/data" (covers /v1/data and /v1/data/..., not /v1/database); default any path. verify_l402_payment then needs the request's path to accept the token (binding_unchecked without it).
    #[serde(default)]
    pub path_prefix: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct CreateChallengeOutput {
    /// The macaroon, standard base64.
    pub macaroon: String,
    /// The BOLT11 invoice the buyer pays.
    pub invoice: String,
    pub payment_hash: String,
    pub token_id: String,
    pub amount_sats: u64,
    /// The two WWW-Authenticate header values to send with status 402, in this order (LSAT first, then L402).
    pub www_authenticate: Vec<String>,
    /// When the invoice expires (unix seconds).
    pub invoice_expires_at: u64,
    /// When the token stops being accepted (unix seconds), or null if never.
    pub valid_until: Option<u64>,
    pub service: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct VerifyParams {
    /// The full Authorization header value, e.g. "L402 <macaroon>:<preimage>". Give this, or macaroon and preimage.
    #[serde(default)]
    pub authorization: Option<String>,
    /// The macaroon, base64 (with preimage, instead of authorization).
    #[serde(default)]
    pub macaroon: Option<String>,
    /// The payment preimage, 64 hex characters (with macaroon).
    #[serde(default)]
    pub preimage: Option<String>,
    /// The service being accessed; when given, the token must be for it.
    #[serde(default)]
    pub service: Option<String>,
    /// A capability the request needs within the service (without service: within every service the token is for).
    #[serde(default)]
    pub capability: Option<String>,
    /// The HTTP method of the request being served, e.g. "GET": a token bound to methods must allow it, and is refused (binding_unchecked) when the method is not given.
    #[serde(default)]
    pub method: Option<String>,
    /// The path of the request being served (no query), e.g. "/v1/data/7": a token bound to a path prefix must cover it, and is refused (binding_unchecked) when the path is not given.
    #[serde(default)]
    pub path: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct VerifyOutput {
    /// True when the credential is valid: serve the request.
    pub valid: bool,
    /// Why it is not valid: malformed, unknown_token, bad_signature, preimage_mismatch, expired, wrong_service, missing_capability, wrong_route, binding_unchecked, unknown_caveat, widened_caveat, invalid_caveat, used_up.
    pub reason_code: Option<String>,
    /// The reason in words.
    pub reason: Option<String>,
    pub payment_hash: Option<String>,
    pub token_id: Option<String>,
    /// What the buyer paid, when this wallet issued the token.
    pub amount_paid_sats: Option<u64>,
    pub caveats: Vec<String>,
    /// When the token expires (unix seconds), if it does.
    pub valid_until: Option<u64>,
    /// The service the token was accepted for: the one asked for, else the first it names.
    pub service: Option<String>,
    /// The pricing tier the token was minted with for that service (a token whose caveats change it is refused).
    pub tier: Option<u8>,
}

// ---------------------------------------------------------------- wallet

#[derive(Debug, Deserialize, JsonSchema)]
pub struct NoParams {}

#[derive(Debug, Serialize, JsonSchema)]
pub struct BalanceOutput {
    pub wallet: String,
    /// Wallet backend, e.g. "embedded".
    pub backend: String,
    /// mainnet, testnet, signet or regtest.
    pub network: String,
    pub balance_sats: u64,
    pub balance_msat: u64,
    /// True when the balance is test sats (the embedded demo wallet), not real bitcoin.
    pub demo_funds: bool,
    /// False when the wallet does not return payment preimages: fetch_paid then refuses to pay L402 challenges (no credential could be shown).
    pub returns_preimages: bool,
    pub budget: BudgetOutput,
    /// Income received in the last 24 hours, in sats.
    pub earned_24h_sats: u64,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct BudgetOutput {
    pub per_payment_sats: u64,
    /// Cap over a rolling 24 hours, fees included.
    pub daily_sats: u64,
    pub hourly_sats: Option<u64>,
    pub per_host_daily_sats: Option<u64>,
    pub spent_24h_sats: u64,
    /// Held by payments in flight.
    pub reserved_sats: u64,
    /// What may still be spent in the daily window.
    pub remaining_24h_sats: u64,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct PayInvoiceParams {
    /// The BOLT11 invoice to pay.
    pub bolt11: String,
    /// Routing fee limit in sats; the budget's fee limit applies when lower.
    #[serde(default)]
    #[schemars(range(max = 2_100_000_000_000_000u64))]
    pub max_fee_sats: Option<u64>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct PayInvoiceOutput {
    /// False when the invoice had been paid before (nothing new was spent).
    pub paid: bool,
    pub amount_sats: u64,
    pub fee_sats: u64,
    pub amount_msat: u64,
    pub fee_msat: u64,
    pub payment_hash: String,
    /// Proof of payment, 64 hex characters.
    pub preimage: String,
    /// What may still be spent in the rolling 24 h window; null if the ledger could not be read
    /// (the payment above stands either way).
    pub budget_remaining_sats: Option<u64>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct CreateInvoiceParams {
    /// Amount in sats, 1 to 2100000000000000.
    #[schemars(range(min = 1, max = 2_100_000_000_000_000u64))]
    pub amount_sats: u64,
    #[serde(default)]
    pub description: Option<String>,
    /// Seconds until the invoice expires; default 3600, 1 to 31536000 (a year).
    #[serde(default)]
    #[schemars(range(min = 1, max = 31_536_000))]
    pub expiry_secs: Option<u64>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct CreateInvoiceOutput {
    pub bolt11: String,
    pub payment_hash: String,
    pub amount_sats: u64,
    /// Unix seconds.
    pub expires_at: u64,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct DecodeInvoiceParams {
    /// The BOLT11 invoice to decode.
    pub bolt11: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct DecodeInvoiceOutput {
    pub network: String,
    /// Null for an amountless invoice (which this wallet refuses to pay).
    pub amount_sats: Option<u64>,
    pub amount_msat: Option<u64>,
    pub payment_hash: String,
    pub description: Option<String>,
    /// Creation time, unix seconds.
    pub timestamp: u64,
    /// Unix seconds.
    pub expires_at: u64,
    /// True when it can no longer be paid.
    pub expired: bool,
    /// Payee node public key.
    pub payee: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct DiscoverParams {
    /// Any URL of the service (only its origin is used), e.g. https://api.example.com/weather.
    pub url: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct DiscoverOutput {
    /// The origin the documents were read from.
    pub origin: String,
    /// The service's /.well-known/l402 document (routes, prices, terms), or null if it has none.
    pub l402: Option<serde_json::Value>,
    /// The service's /llms.txt, or null if it has none.
    pub llms_txt: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ListPaymentsParams {
    /// How many (newest first); default 20, 1 to 200.
    #[serde(default)]
    #[schemars(range(min = 1, max = 200))]
    pub limit: Option<u32>,
    /// "in" (received) or "out" (sent); default both.
    #[serde(default)]
    pub direction: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ListPaymentsOutput {
    pub payments: Vec<PaymentOutput>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct PaymentOutput {
    pub id: i64,
    /// "in" or "out".
    pub direction: String,
    /// pending, succeeded or failed.
    pub status: String,
    pub amount_sats: u64,
    pub fee_sats: u64,
    pub amount_msat: u64,
    pub fee_msat: u64,
    pub payment_hash: String,
    pub description: Option<String>,
    pub url: Option<String>,
    pub error: Option<String>,
    /// Unix seconds.
    pub created_at: u64,
    pub settled_at: Option<u64>,
}

#[tool_router(router = tool_router)]
impl L402Server {
    /// Tools over an opened wallet.
    pub fn new(app: Arc<App>, fetch: crate::config::FetchConfig) -> Result<L402Server, FetchError> {
        let mut fetcher = Fetcher::new(
            app.payer.clone(),
            app.storage.tokens(),
            app.clock.clone(),
            fetch.policy(),
        )?;
        if let Some(proxy) = &fetch.proxy {
            fetcher = fetcher.via_proxy(proxy.expose())?;
        }
        let fetcher = Arc::new(fetcher);
        let mut tool_router = Self::tool_router();
        for route in tool_router.map.values_mut() {
            tidy_tool_schemas(&mut route.attr);
        }
        Ok(L402Server {
            app,
            fetcher,
            tool_router,
        })
    }

    /// What may still be spent in the daily window, from the ledger alone (no wallet call, so
    /// it cannot fail after a payment because the wallet is slow). `None` if the ledger cannot
    /// be read: the payment's own result must not be lost to that.
    async fn budget_remaining(&self) -> Option<u64> {
        match self
            .app
            .ledger
            .budget_and_use(&self.app.wallet_name, None, self.app.clock.now())
            .await
        {
            Ok((p, u)) => Some(whole_sats(p.daily_msat.saturating_sub(u.daily_msat))),
            Err(e) => {
                warn!(error = %e, "cannot read the remaining budget after a payment");
                None
            }
        }
    }

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
    ) -> Result<Json<FetchPaidOutput>, ToolError> {
        let max_price_msat = p
            .max_price_sats
            .map(|s| sats_arg("max_price_sats", s, 0))
            .transpose()?;
        let timeout = range_arg(
            "timeout_secs",
            p.timeout_secs.unwrap_or(fetch::DEFAULT_TIMEOUT_SECS),
            1,
            fetch::MAX_TIMEOUT_SECS,
        )?;
        let max_bytes = range_arg(
            "max_response_bytes",
            p.max_response_bytes
                .map_or(fetch::DEFAULT_MAX_RESPONSE_BYTES as u64, |b| b as u64),
            1,
            fetch::MAX_RESPONSE_BYTES as u64,
        )? as usize;
        let req = FetchRequest {
            url: p.url,
            method: p.method.unwrap_or_else(|| "GET".into()),
            headers: p.headers.unwrap_or_default().into_iter().collect(),
            body: p.body,
            max_price_msat,
            timeout: Duration::from_secs(timeout),
            max_response_bytes: max_bytes,
        };
        let r = self.fetcher.fetch(&req).await?;
        let receipt = FetchReceiptOutput {
            paid: r.receipt.paid,
            amount_sats: whole_sats(r.receipt.amount_msat),
            fee_sats: whole_sats(r.receipt.fee_msat),
            amount_msat: r.receipt.amount_msat,
            fee_msat: r.receipt.fee_msat,
            payment_hash: r.receipt.payment_hash,
            token_reused: r.receipt.token_reused,
            scheme: r.receipt.scheme.map(|s| s.to_string()),
            budget_remaining_sats: whole_sats(r.receipt.budget_remaining_msat),
        };
        Ok(Json(FetchPaidOutput {
            status: r.status,
            url: r.url,
            headers: r.headers.into_iter().collect(),
            content_type: r.content_type,
            body: r.body.content,
            body_encoding: r.body.encoding.to_owned(),
            body_bytes: r.body.bytes,
            truncated: r.body.truncated,
            receipt,
        }))
    }

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
    ) -> Result<Json<CreateChallengeOutput>, ToolError> {
        let c = self
            .app
            .seller
            .create_challenge(&ChallengeRequest {
                amount_msat: sats_arg("amount_sats", p.amount_sats, 1)?,
                description: p.description,
                expiry_secs: p.expiry_secs,
                service: p.service,
                tier: p.tier,
                capabilities: p.capabilities.unwrap_or_default(),
                valid_for_secs: p.valid_for_secs,
                max_uses: p.max_uses,
                methods: p.methods.unwrap_or_default(),
                path_prefix: p.path_prefix,
            })
            .await?;
        Ok(Json(CreateChallengeOutput {
            macaroon: c.macaroon,
            invoice: c.invoice,
            payment_hash: hex::encode(c.payment_hash),
            token_id: hex::encode(c.token_id),
            amount_sats: whole_sats(c.amount_msat),
            www_authenticate: c.www_authenticate.to_vec(),
            invoice_expires_at: c.invoice_expires_at,
            valid_until: c.valid_until,
            service: c.service,
        }))
    }

    #[tool(
        description = "Check an L402 credential a buyer sent (the Authorization header, or macaroon + preimage) with the embedded verifier: signature, payment preimage, expiry, service, capability, and the request's method and path for tokens bound to them (such a token is refused, reason binding_unchecked, when they are not given). An invalid credential is a normal result with valid=false and a reason (answer the buyer with a fresh 402 from create_l402_challenge); only a broken request is an error. Call it once per request you serve: a valid call records the sale and counts one use of an N-use token (max_uses), so a token sold for N requests is refused (reason used_up) after N calls.",
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
    ) -> Result<Json<VerifyOutput>, ToolError> {
        let seller = &self.app.seller;
        let access = Access {
            service: p.service.as_deref(),
            capability: p.capability.as_deref(),
            method: p.method.as_deref(),
            path: p.path.as_deref(),
            price_msat: None,
        };
        let auth = match (p.authorization, p.macaroon, p.preimage) {
            (Some(auth), None, None) => auth,
            (None, Some(mac), Some(pre)) => format!("L402 {}:{}", mac.trim(), pre.trim()),
            _ => {
                return Err(ToolError::new(
                    "invalid_request",
                    "give either authorization, or both macaroon and preimage",
                ));
            }
        };
        let v = seller.admit(&auth, access).await?;
        Ok(Json(VerifyOutput {
            valid: v.valid,
            reason_code: v.reason_code.map(str::to_owned),
            reason: v.reason,
            payment_hash: v.payment_hash,
            token_id: v.token_id,
            amount_paid_sats: v.amount_paid_msat.map(whole_sats),
            caveats: v.caveats,
            valid_until: v.valid_until,
            service: v.service,
            tier: v.tier,
        }))
    }

    #[tool(
        description = "Show the wallet: balance in sats (demo_funds=true means test sats, not real bitcoin), network and backend, whether it returns preimages (returns_preimages=false: it cannot buy L402 access), the spending budget (per-payment cap, daily cap over a rolling 24 h, spent, reserved, remaining) and income of the last 24 h.",
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
        Parameters(_): Parameters<NoParams>,
    ) -> Result<Json<BalanceOutput>, ToolError> {
        let s = self.app.status().await?;
        let b = &s.budget;
        Ok(Json(BalanceOutput {
            wallet: s.wallet,
            backend: s.backend.to_owned(),
            network: s.network.to_string(),
            balance_sats: whole_sats(s.balance_msat),
            balance_msat: s.balance_msat,
            demo_funds: s.demo_funds,
            returns_preimages: s.returns_preimages,
            budget: BudgetOutput {
                per_payment_sats: whole_sats(b.policy.per_payment_msat),
                daily_sats: whole_sats(b.policy.daily_msat),
                hourly_sats: b.policy.hourly_msat.map(whole_sats),
                per_host_daily_sats: b.policy.per_host_daily_msat.map(whole_sats),
                spent_24h_sats: whole_sats(b.spent_24h_msat),
                reserved_sats: whole_sats(b.reserved_msat),
                remaining_24h_sats: whole_sats(b.remaining_24h_msat),
            },
            earned_24h_sats: whole_sats(s.earned_24h_msat),
        }))
    }

    #[tool(
        description = "Pay a BOLT11 invoice under the same rules as fetch_paid: the invoice must have an amount, not be expired, be for this wallet's network, be at most the per-payment cap and fit the daily budget. Paying an invoice that was already paid returns the first payment and spends nothing.",
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
    ) -> Result<Json<PayInvoiceOutput>, ToolError> {
        let max_fee_msat = p
            .max_fee_sats
            .map(|s| sats_arg("max_fee_sats", s, 0))
            .transpose()?;
        let r = self
            .app
            .payer
            .pay(&PayRequest {
                invoice: &p.bolt11,
                max_fee_msat,
                ..Default::default()
            })
            .await?;
        Ok(Json(PayInvoiceOutput {
            paid: !r.already_paid,
            amount_sats: whole_sats(r.amount_msat),
            fee_sats: whole_sats(r.fee_msat),
            amount_msat: r.amount_msat,
            fee_msat: r.fee_msat,
            payment_hash: hex::encode(r.payment_hash),
            preimage: r.preimage.to_hex(),
            budget_remaining_sats: self.budget_remaining().await,
        }))
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
    ) -> Result<Json<CreateInvoiceOutput>, ToolError> {
        let amount_msat = sats_arg("amount_sats", p.amount_sats, 1)?;
        let expiry = p.expiry_secs.unwrap_or(DEFAULT_INVOICE_EXPIRY_SECS);
        let (created, _) = self
            .app
            .seller
            .create_invoice(amount_msat, p.description.as_deref().unwrap_or(""), expiry)
            .await?;
        Ok(Json(CreateInvoiceOutput {
            bolt11: created.bolt11,
            payment_hash: hex::encode(created.payment_hash),
            amount_sats: p.amount_sats,
            expires_at: created.expires_at,
        }))
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
    ) -> Result<Json<DecodeInvoiceOutput>, ToolError> {
        let d = bolt11::decode(&p.bolt11)
            .map_err(|e| ToolError::new("invalid_invoice", e.to_string()))?;
        let now = self.app.clock.now();
        Ok(Json(DecodeInvoiceOutput {
            network: d.network.to_string(),
            amount_sats: d.amount_msat.map(whole_sats),
            amount_msat: d.amount_msat,
            payment_hash: hex::encode(d.payment_hash),
            description: d.description.clone(),
            timestamp: d.timestamp,
            expires_at: d.expires_at(),
            expired: d.is_expired(now),
            payee: d.payee,
        }))
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
    ) -> Result<Json<DiscoverOutput>, ToolError> {
        let url = url::Url::parse(p.url.trim()).map_err(|e| {
            ToolError::new("invalid_request", format!("{:?} is not a URL: {e}", p.url))
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(ToolError::new(
                "invalid_request",
                "only http and https URLs",
            ));
        }
        let origin = url.origin().ascii_serialization();
        let get = async |path: &str| -> Result<Option<String>, ToolError> {
            let mut req = FetchRequest::get(&format!("{origin}{path}"));
            req.max_price_msat = Some(0); // reading a catalogue never pays
            req.max_response_bytes = 256 * 1024;
            match self.fetcher.fetch(&req).await {
                Ok(r) => {
                    Ok((r.status == 200 && r.body.encoding == "text").then_some(r.body.content))
                }
                // A document behind a paywall (any 402) is one this service does not give away.
                Err(FetchError::Pay(_) | FetchError::NotL402 { .. }) => Ok(None),
                Err(e) => Err(e.into()),
            }
        };
        let l402 = get("/.well-known/l402")
            .await?
            .and_then(|t| serde_json::from_str(&t).ok());
        let llms_txt = get("/llms.txt").await?;
        Ok(Json(DiscoverOutput {
            origin,
            l402,
            llms_txt,
        }))
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
    ) -> Result<Json<ListPaymentsOutput>, ToolError> {
        let limit = range_arg("limit", u64::from(p.limit.unwrap_or(20)), 1, 200)? as u32;
        let direction = match p
            .direction
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("") | Some("all") => None,
            Some("in") => Some(Direction::In),
            Some("out") => Some(Direction::Out),
            Some(other) => {
                return Err(ToolError::new(
                    "invalid_request",
                    format!("direction must be \"in\" or \"out\", not {other:?}"),
                ));
            }
        };
        let rows = self
            .app
            .ledger
            .list_payments(
                &self.app.wallet_name,
                &PaymentFilter {
                    direction,
                    ..PaymentFilter::default()
                },
                limit,
            )
            .await
            .map_err(ledger_error)?;
        let payments = rows
            .into_iter()
            .map(|r| {
                let (amount, fee) = (r.amount.msat(), r.fee.msat());
                Ok(PaymentOutput {
                    id: r.id,
                    direction: r.direction.as_str().to_owned(),
                    status: r.status.as_str().to_owned(),
                    amount_sats: whole_sats(amount),
                    fee_sats: whole_sats(fee),
                    amount_msat: amount,
                    fee_msat: fee,
                    payment_hash: r.payment_hash.to_hex(),
                    description: r.description,
                    url: r.url,
                    error: r.error,
                    created_at: r.created_at,
                    settled_at: r.settled_at,
                })
            })
            .collect::<Result<_, ToolError>>()?;
        Ok(Json(ListPaymentsOutput { payments }))
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for L402Server {
    // Logging is deprecated by SEP-2577 (2026-07-28) but older clients and the conformance suite
    // still use it: keep answering `logging/setLevel`.
    #[allow(deprecated)]
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_logging()
                .build(),
        )
        .with_server_info(Implementation::new("l402-mcp", env!("CARGO_PKG_VERSION")))
        .with_instructions(INSTRUCTIONS)
    }

    /// Clients may set a log level; this server's logs go to stderr (stdout is the transport),
    /// so the request is accepted and nothing more is sent over MCP.
    #[allow(deprecated)]
    fn set_level(
        &self,
        request: rmcp::model::SetLevelRequestParams,
        _context: rmcp::service::RequestContext<rmcp::RoleServer>,
    ) -> impl std::future::Future<Output = Result<(), ErrorData>> + Send + '_ {
        tracing::debug!(level = ?request.level, "client asked for a log level");
        std::future::ready(Ok(()))
    }
}
