//! Buying: fetch a URL paying its L402 or Payment challenge, pay an invoice, read a service's
//! catalogue, close Payment sessions.

use std::collections::BTreeMap;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tracing::warn;

use super::{Failure, approve, range_arg, sats_arg, whole_sats};
use crate::app::App;
use crate::approval::ApprovalTicket;
use crate::fetch::{self, FetchError, FetchRequest, Fetcher};
use crate::pay::{PayError, PayRequest};
use crate::storage::Payment;

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
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
    /// When a 402 offers several ways to pay: "l402" (default), "payment" (a Payment charge first) or "session" (a Payment session: a deposit spent request by request, refunded at close).
    #[serde(default)]
    pub prefer_scheme: Option<String>,
    /// After this request, close the Payment session with this URL's service (if one is open) so the unspent deposit comes back.
    #[serde(default)]
    pub close_session: Option<bool>,
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
    /// Scheme of the credential presented: L402, LSAT or Payment.
    pub scheme: Option<String>,
    /// What the daily budget still allows, in sats.
    pub budget_remaining_sats: u64,
    /// With the Payment scheme: "charge" or "session".
    pub payment_intent: Option<String>,
    /// With the Payment scheme: "charge", or the session's "open", "bearer", "topUp".
    pub payment_action: Option<String>,
    /// The seller's Payment-Receipt, decoded (status, method, timestamp, reference, challengeId).
    pub payment_receipt: Option<serde_json::Value>,
    /// The Payment session used (its deposit's payment hash).
    pub session_id: Option<String>,
    /// The sessions closed after the request (close_session).
    pub sessions_closed: Vec<ClosedSessionOutput>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ClosedSessionOutput {
    pub session_id: String,
    pub origin: String,
    /// Deposit and top-ups paid, in sats.
    pub deposit_sats: u64,
    /// What the seller said it refunds, in sats (null if it did not say).
    pub refund_sats: Option<u64>,
    /// The seller's word on the refund: succeeded, failed, skipped or unknown.
    pub refund_status: String,
    /// What came back to this wallet's return invoice so far, in sats (null: not yet).
    pub refund_received_sats: Option<u64>,
    /// Deposit minus what came back, in sats (null until the refund arrives).
    pub spent_sats: Option<u64>,
}

impl From<fetch::ClosedSession> for ClosedSessionOutput {
    fn from(c: fetch::ClosedSession) -> Self {
        ClosedSessionOutput {
            session_id: c.session_id,
            origin: c.origin,
            deposit_sats: whole_sats(c.deposit_msat),
            refund_sats: c.refund_msat.map(whole_sats),
            refund_status: c.refund_status,
            refund_received_sats: c.refund_received_msat.map(whole_sats),
            spent_sats: c.spent_msat.map(whole_sats),
        }
    }
}

impl FetchPaidParams {
    /// The request these parameters ask for, its limits checked.
    pub fn request(self) -> Result<FetchRequest, Failure> {
        let max_price_msat = self
            .max_price_sats
            .map(|s| sats_arg("max_price_sats", s, 0))
            .transpose()?;
        let timeout = range_arg(
            "timeout_secs",
            self.timeout_secs.unwrap_or(fetch::DEFAULT_TIMEOUT_SECS),
            1,
            fetch::MAX_TIMEOUT_SECS,
        )?;
        let max_bytes = range_arg(
            "max_response_bytes",
            self.max_response_bytes
                .map_or(fetch::DEFAULT_MAX_RESPONSE_BYTES as u64, |b| b as u64),
            1,
            fetch::MAX_RESPONSE_BYTES as u64,
        )?;
        Ok(FetchRequest {
            url: self.url,
            method: self.method.unwrap_or_else(|| "GET".into()),
            headers: self.headers.unwrap_or_default().into_iter().collect(),
            body: self.body,
            max_price_msat,
            timeout: Duration::from_secs(timeout),
            max_response_bytes: usize::try_from(max_bytes).unwrap_or(fetch::MAX_RESPONSE_BYTES),
            prefer: self
                .prefer_scheme
                .as_deref()
                .map(str::parse)
                .transpose()
                .map_err(Failure::invalid)?,
        })
    }
}

/// What a buying operation did, when the payment may be held for a human.
#[derive(Debug)]
pub enum Held<T> {
    Done(T),
    /// The payment needs a human's approval; nothing was paid.
    ForApproval(Box<ApprovalTicket>),
}

/// What `fetch_paid` says to do once a held payment is approved.
pub const FETCH_RETRY: &str = "call fetch_paid again with the same URL";
/// What `pay_invoice` says to do once a held payment is approved.
pub const PAY_RETRY: &str = "call pay_invoice again with the same invoice";

/// Fetch a URL, paying an L402 or Payment challenge within the caller's cap and the budget. A payment held
/// for a human is `approval_required`.
pub async fn fetch_paid(fetcher: &Fetcher, p: FetchPaidParams) -> Result<FetchPaidOutput, Failure> {
    match fetch_paid_or_held(fetcher, p).await? {
        Held::Done(out) => Ok(out),
        Held::ForApproval(t) => Err(approve::required(&t, FETCH_RETRY, None)),
    }
}

/// [`fetch_paid`], with a payment held for a human given back as its ticket (for a caller that
/// can ask the human itself).
pub async fn fetch_paid_or_held(
    fetcher: &Fetcher,
    p: FetchPaidParams,
) -> Result<Held<FetchPaidOutput>, Failure> {
    let close = p.close_session.unwrap_or(false);
    let r = match fetcher.fetch(&p.request()?).await {
        Ok(r) => r,
        Err(FetchError::Pay(PayError::ApprovalRequired(t))) => return Ok(Held::ForApproval(t)),
        Err(e) => return Err(e.into()),
    };
    let sessions_closed = if close {
        let origin = url::Url::parse(&r.url)
            .map(|u| u.origin().ascii_serialization())
            .unwrap_or_default();
        match fetcher.close_sessions(Some(&origin), None).await {
            Ok(closed) => closed.into_iter().map(Into::into).collect(),
            Err(e) => {
                warn!(error = %e, "could not close the session after the request");
                Vec::new()
            }
        }
    } else {
        Vec::new()
    };
    let payment = r.receipt.payment.clone();
    let receipt = FetchReceiptOutput {
        paid: r.receipt.paid,
        amount_sats: whole_sats(r.receipt.amount_msat),
        fee_sats: whole_sats(r.receipt.fee_msat),
        amount_msat: r.receipt.amount_msat,
        fee_msat: r.receipt.fee_msat,
        payment_hash: r.receipt.payment_hash,
        token_reused: r.receipt.token_reused,
        scheme: match &payment {
            Some(_) => Some(crate::l402::mpp::SCHEME.to_owned()),
            None => r.receipt.scheme.map(|s| s.to_string()),
        },
        budget_remaining_sats: whole_sats(r.receipt.budget_remaining_msat),
        payment_intent: payment.as_ref().map(|p| p.intent.to_owned()),
        payment_action: payment.as_ref().map(|p| p.action.to_owned()),
        payment_receipt: payment.as_ref().and_then(|p| p.receipt.clone()),
        session_id: payment.and_then(|p| p.session_id),
        sessions_closed,
    };
    Ok(Held::Done(FetchPaidOutput {
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

/// A fetch made after a human approved its payment: the approval paid (`p`, the ledger's
/// payment), this call presented the credential; the receipt says what was paid.
pub fn paid_by_approval(out: &mut FetchPaidOutput, p: &Payment) {
    let receipt = &mut out.receipt;
    receipt.paid = true;
    receipt.token_reused = false;
    receipt.amount_msat = p.amount.msat();
    receipt.fee_msat = p.fee.msat();
    receipt.amount_sats = whole_sats(p.amount.msat());
    receipt.fee_sats = whole_sats(p.fee.msat());
    receipt.payment_hash = Some(p.payment_hash.to_hex());
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct PayInvoiceParams {
    /// The BOLT11 invoice to pay.
    pub bolt11: String,
    /// Routing fee limit in sats; the budget's fee limit applies when lower.
    #[serde(default)]
    #[schemars(range(max = 2_100_000_000_000_000u64))]
    pub max_fee_sats: Option<u64>,
    /// Refuse if the invoice asks for more than this many sats (the budget's caps apply too).
    #[serde(default)]
    #[schemars(range(max = 2_100_000_000_000_000u64))]
    pub max_amount_sats: Option<u64>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct PayInvoiceOutput {
    /// True when this call paid the invoice; false when it had been paid before.
    pub paid: bool,
    /// True when the invoice had been paid before: the first receipt, nothing spent now.
    pub already_paid: bool,
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
    /// True when the wallet holds test sats (the embedded demo wallet), not real bitcoin.
    pub demo_funds: bool,
}

/// Pay an invoice under the budget. A payment held for a human is `approval_required`.
pub async fn pay_invoice(app: &App, p: PayInvoiceParams) -> Result<PayInvoiceOutput, Failure> {
    match pay_invoice_or_held(app, p).await? {
        Held::Done(out) => Ok(out),
        Held::ForApproval(t) => Err(approve::required(&t, PAY_RETRY, None)),
    }
}

/// [`pay_invoice`], with a payment held for a human given back as its ticket.
pub async fn pay_invoice_or_held(
    app: &App,
    p: PayInvoiceParams,
) -> Result<Held<PayInvoiceOutput>, Failure> {
    let max_fee_msat = p
        .max_fee_sats
        .map(|s| sats_arg("max_fee_sats", s, 0))
        .transpose()?;
    let max_amount_msat = p
        .max_amount_sats
        .map(|s| sats_arg("max_amount_sats", s, 0))
        .transpose()?;
    let paid = app
        .payer
        .pay(&PayRequest {
            invoice: &p.bolt11,
            max_fee_msat,
            max_amount_msat,
            ..Default::default()
        })
        .await;
    let r = match paid {
        Ok(r) => r,
        Err(PayError::ApprovalRequired(t)) => return Ok(Held::ForApproval(t)),
        Err(e) => return Err(e.into()),
    };
    // From here on the payment stands: what follows only describes it, and never fails it.
    let (remaining, demo) = tokio::join!(budget_remaining(app), app.wallet.info());
    Ok(Held::Done(PayInvoiceOutput {
        paid: !r.already_paid,
        already_paid: r.already_paid,
        amount_sats: whole_sats(r.amount_msat),
        fee_sats: whole_sats(r.fee_msat),
        amount_msat: r.amount_msat,
        fee_msat: r.fee_msat,
        payment_hash: r.payment_hash.to_hex(),
        preimage: r.preimage.to_hex(),
        budget_remaining_sats: remaining,
        demo_funds: demo.is_ok_and(|i| i.demo_funds),
    }))
}

/// What may still be spent in the daily window, from the ledger alone (no wallet call, so it
/// cannot fail after a payment because the wallet is slow). `None` if the ledger cannot be read:
/// the payment's own result must not be lost to that.
async fn budget_remaining(app: &App) -> Option<u64> {
    match app
        .ledger
        .budget_and_use(&app.wallet_name, None, app.clock.now())
        .await
    {
        Ok((p, u)) => Some(whole_sats(p.daily_msat.saturating_sub(u.daily_msat))),
        Err(e) => {
            warn!(error = %e, "cannot read the remaining budget after a payment");
            None
        }
    }
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct CallPaidToolParams {
    /// The MCP server's streamable HTTP endpoint, e.g. https://tools.example.com/mcp.
    pub server_url: String,
    /// The tool to call.
    pub tool: String,
    /// The tool's arguments (a JSON object).
    #[serde(default)]
    pub arguments: Option<serde_json::Map<String, serde_json::Value>>,
    /// The most this call may pay, in sats (checked against the invoice itself); 0 pays nothing. Default: the wallet's per-payment cap.
    #[serde(default)]
    #[schemars(range(max = 2_100_000_000_000_000u64))]
    pub max_price_sats: Option<u64>,
    /// Seconds to wait for each MCP exchange; default 30, 1 to 300.
    #[serde(default)]
    #[schemars(range(min = 1, max = 300))]
    pub timeout_secs: Option<u64>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct CallPaidToolOutput {
    /// The tool's result as the server sent it (content, structuredContent, isError, _meta).
    pub result: serde_json::Value,
    /// True when this call paid an invoice.
    pub paid: bool,
    pub amount_sats: u64,
    pub fee_sats: u64,
    /// Payment hash of the invoice paid.
    pub payment_hash: Option<String>,
    /// The seller's receipt (_meta["org.paymentauth/receipt"]: status, method, timestamp, reference, challengeId).
    pub payment_receipt: Option<serde_json::Value>,
    /// The id of the challenge paid.
    pub challenge_id: Option<String>,
    /// What the daily budget still allows, in sats.
    pub budget_remaining_sats: Option<u64>,
}

/// Call a priced tool of another MCP server, paying its Payment challenge (-32042) within the
/// caller's cap and the budget.
pub async fn call_paid_tool(
    app: &App,
    fetcher: &Fetcher,
    p: CallPaidToolParams,
) -> Result<CallPaidToolOutput, Failure> {
    let timeout = range_arg(
        "timeout_secs",
        p.timeout_secs.unwrap_or(fetch::DEFAULT_TIMEOUT_SECS),
        1,
        fetch::MAX_TIMEOUT_SECS,
    )?;
    let call = fetch::PaidToolCall {
        server_url: p.server_url,
        tool: p.tool,
        arguments: p.arguments.unwrap_or_default(),
        max_price_msat: p
            .max_price_sats
            .map(|s| sats_arg("max_price_sats", s, 0))
            .transpose()?,
        timeout: Duration::from_secs(timeout),
    };
    let out = fetcher.call_paid_tool(&call).await?;
    let paid = out.paid.as_ref();
    Ok(CallPaidToolOutput {
        result: out.result,
        paid: paid.is_some_and(|r| !r.already_paid),
        amount_sats: paid.map_or(0, |r| whole_sats(r.amount_msat)),
        fee_sats: paid.map_or(0, |r| whole_sats(r.fee_msat)),
        payment_hash: paid.map(|r| r.payment_hash.to_hex()),
        payment_receipt: out.payment_receipt,
        challenge_id: out.challenge_id,
        budget_remaining_sats: budget_remaining(app).await,
    })
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
pub struct CloseSessionsParams {
    /// Close the open session with this URL's service (its origin); without it (and without session_id), every open session.
    #[serde(default)]
    pub url: Option<String>,
    /// Close this session only (the session_id fetch_paid returned).
    #[serde(default)]
    pub session_id: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct CloseSessionsOutput {
    pub closed: Vec<ClosedSessionOutput>,
}

/// Close open Payment sessions so their unspent deposits come back to this wallet.
pub async fn close_sessions(
    fetcher: &Fetcher,
    p: CloseSessionsParams,
) -> Result<CloseSessionsOutput, Failure> {
    let origin = p
        .url
        .as_deref()
        .map(|u| {
            url::Url::parse(u.trim())
                .map(|u| u.origin().ascii_serialization())
                .map_err(|e| Failure::invalid(format!("{u:?} is not a URL: {e}")))
        })
        .transpose()?;
    let closed = fetcher
        .close_sessions(origin.as_deref(), p.session_id.as_deref())
        .await?;
    Ok(CloseSessionsOutput {
        closed: closed.into_iter().map(Into::into).collect(),
    })
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
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
    /// The service's /openapi.json (priced operations carry x-payment-info: the Payment scheme's offers), or null if it has none.
    pub openapi: Option<serde_json::Value>,
}

/// Read what a service sells (`/.well-known/l402`, `/llms.txt`, `/openapi.json`), never paying.
pub async fn discover(fetcher: &Fetcher, p: DiscoverParams) -> Result<DiscoverOutput, Failure> {
    let url = url::Url::parse(p.url.trim())
        .map_err(|e| Failure::invalid(format!("{:?} is not a URL: {e}", p.url)))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Failure::invalid("only http and https URLs"));
    }
    let origin = url.origin().ascii_serialization();
    let get = async |path: &str| -> Result<Option<String>, Failure> {
        let mut req = FetchRequest::get(&format!("{origin}{path}"));
        req.max_price_msat = Some(0); // reading a catalogue never pays
        req.max_response_bytes = 256 * 1024;
        match fetcher.fetch(&req).await {
            Ok(r) => Ok((r.status == 200 && r.body.encoding == "text").then_some(r.body.content)),
            // A document behind a paywall (any 402) is one this service does not give away.
            Err(FetchError::Pay(_) | FetchError::NotL402 { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    };
    let l402 = get("/.well-known/l402")
        .await?
        .and_then(|t| serde_json::from_str(&t).ok());
    let llms_txt = get("/llms.txt").await?;
    let openapi = get("/openapi.json")
        .await?
        .and_then(|t| serde_json::from_str(&t).ok());
    Ok(DiscoverOutput {
        origin,
        l402,
        llms_txt,
        openapi,
    })
}
