//! Core Lightning backend (the clnrest plugin): a rune for auth.
//!
//! clnrest turns `POST /v1/<method>` with a JSON object of named parameters into a JSON-RPC call
//! and answers `201` with the call's result, or `401`/`403` (rune refused), `404` (no such
//! method) and `500` with the JSON-RPC error `{"code", "message", "data"}`
//! (<https://docs.corelightning.org/docs/rest>). Methods used, from the JSON-RPC reference
//! (<https://docs.corelightning.org/reference>): `getinfo`, `listfunds`, `invoice`, `pay`,
//! `listinvoices`, `listpays`.
//!
//! Amounts are msat numbers; versions before 23.x wrote them as strings like `"1000msat"`: both
//! are read. `pay` may be served by `xpay` (`xpay-handle-pay`), whose answer has no `status`.

use std::time::Duration;

use async_trait::async_trait;
use rand::RngCore;
use serde::Deserialize;
use serde_json::{Value, json};
use tracing::instrument;

use super::toolkit::json::{self, de_u64};
use super::toolkit::node::{self, check_created, reported_network, settle_network};
use super::toolkit::{Rest, RestError, Tls};
use super::{
    Balance, CreatedInvoice, IncomingStatus, InvoiceRequest, OutgoingStatus, PaymentResult, Wallet,
    WalletError, WalletInfo,
};
use crate::bolt11::{DecodedInvoice, Network};

/// `[backend] kind = "cln"` settings.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClnConfig {
    /// clnrest URL, e.g. https://localhost:3010
    pub url: String,
    /// Rune. Secret.
    pub rune: String,
    /// Path of the CA certificate clnrest's certificate is signed with (PEM), e.g.
    /// `~/.lightning/bitcoin/ca.pem`, when it is self-signed.
    #[serde(default)]
    pub tls_cert_path: Option<std::path::PathBuf>,
    /// Network the node must be on; by default whatever the node reports.
    #[serde(default)]
    pub network: Option<Network>,
    /// Seconds per request; default 30.
    #[serde(default)]
    pub timeout_secs: Option<u64>,
}

impl std::fmt::Debug for ClnConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClnConfig")
            .field("url", &self.url)
            .field("rune", &"<secret>")
            .field("tls_cert_path", &self.tls_cert_path)
            .field("network", &self.network)
            .finish_non_exhaustive()
    }
}

/// The Core Lightning backend.
#[derive(Debug)]
pub struct ClnWallet {
    rest: Rest,
    network: Option<Network>,
    timeout: Duration,
}

impl ClnWallet {
    pub fn new(config: &ClnConfig) -> Result<ClnWallet, WalletError> {
        let timeout = node::timeout(config.timeout_secs);
        let rune = config.rune.trim();
        if rune.is_empty() {
            return Err(WalletError::Other(
                "Core Lightning needs a rune: create one with `lightning-cli createrune` (see docs/wallets/cln.md)".into(),
            ));
        }
        let tls = Tls::from_pem_file("clnrest's CA certificate", config.tls_cert_path.as_deref())?;
        Ok(ClnWallet {
            rest: Rest::new(&config.url, &[("Rune", rune)], &tls, timeout)?,
            network: config.network,
            timeout,
        })
    }

    /// Call a read-only method (retried on transient failures).
    async fn read<T: serde::de::DeserializeOwned>(
        &self,
        method: &str,
        params: Value,
    ) -> Result<T, WalletError> {
        self.rest
            .post(&format!("v1/{method}"), &params, true)
            .await
            .map_err(|e| rpc_error(method, e))
    }

    /// `pay`'s own limit for retrying routes: a little under ours, so it gives up first.
    fn retry_for_secs(&self) -> u64 {
        node::payment_time_limit_secs(self.timeout)
    }
}

/// A failed call that moves no money, with CLN's message when it sent one.
fn rpc_error(method: &str, e: RestError) -> WalletError {
    match e {
        RestError::Status {
            status: 401 | 403,
            body,
        } => WalletError::Unavailable(format!(
            "Core Lightning refused the rune for {method} (check the rune and its restrictions): {}",
            message(&body)
        )),
        RestError::Status { status: 404, body } => WalletError::Unavailable(format!(
            "Core Lightning has no method {method} (is clnrest up to date?): {}",
            message(&body)
        )),
        RestError::Status { status, body } => WalletError::Other(format!(
            "Core Lightning's {method} failed (HTTP {status}): {}",
            message(&body)
        )),
        other => other.into_wallet_error(),
    }
}

/// The `message` of a JSON-RPC error body (which `Rest` may have clipped).
fn message(body: &str) -> String {
    json::error_fields(body)
        .1
        .unwrap_or_else(|| body.to_owned())
}

/// A failed `pay`: definite only for the error codes that say no part of the payment is out.
fn pay_error(e: RestError) -> WalletError {
    let (status, body) = match e {
        RestError::Status { status, body } => (status, body),
        other => return other.into_payment_error(),
    };
    if matches!(status, 401 | 403 | 404) {
        return rpc_error("pay", RestError::Status { status, body });
    }
    let (code, msg) = json::error_fields(&body);
    let msg = msg.unwrap_or(body);
    match code {
        // 203 permanent failure at the destination, 205 no route, 206 route too expensive
        // (fee or delay limit), 210 timed out with no payment in progress; -32602 invalid
        // parameters (e.g. an invoice CLN cannot parse).
        Some(203) => WalletError::Rejected(format!("the payee refused the payment: {msg}")),
        Some(205) => WalletError::Rejected(format!("Core Lightning found no route: {msg}")),
        Some(206) => {
            WalletError::Rejected(format!("every route costs more than the fee limit: {msg}"))
        }
        Some(210) => WalletError::Rejected(format!("the payment timed out unsent: {msg}")),
        Some(-32602) => WalletError::Rejected(format!("Core Lightning refused the invoice: {msg}")),
        // -1 catchall, 201 already paid with this hash, 207 expired while paying, 209 xpay's
        // other error, 219 already paid, or no code at all: parts may be out.
        _ => WalletError::OutcomeUnknown(format!(
            "Core Lightning's pay failed with code {}: {msg}",
            code.map_or_else(|| "none".into(), |c| c.to_string())
        )),
    }
}

#[derive(Deserialize)]
struct GetInfo {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    network: String,
}

#[derive(Deserialize)]
struct ListFunds {
    #[serde(default)]
    channels: Vec<FundChannel>,
}

#[derive(Deserialize)]
struct FundChannel {
    #[serde(default)]
    state: String,
    #[serde(default, deserialize_with = "de_u64")]
    our_amount_msat: Option<u64>,
}

#[derive(Deserialize)]
struct NewInvoice {
    bolt11: String,
    payment_hash: String,
}

#[derive(Deserialize)]
struct Pay {
    #[serde(default)]
    payment_preimage: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default, deserialize_with = "de_u64")]
    amount_msat: Option<u64>,
    #[serde(default, deserialize_with = "de_u64")]
    amount_sent_msat: Option<u64>,
}

#[derive(Deserialize)]
struct ListInvoices {
    #[serde(default)]
    invoices: Vec<ListedInvoice>,
}

#[derive(Deserialize)]
struct ListedInvoice {
    #[serde(default)]
    status: String,
    #[serde(default, deserialize_with = "de_u64")]
    amount_received_msat: Option<u64>,
    #[serde(default, deserialize_with = "de_u64")]
    amount_msat: Option<u64>,
}

#[derive(Deserialize)]
struct ListPays {
    #[serde(default)]
    pays: Vec<ListedPay>,
}

#[derive(Deserialize)]
struct ListedPay {
    #[serde(default)]
    status: String,
    #[serde(default)]
    preimage: Option<String>,
    #[serde(default, deserialize_with = "de_u64")]
    amount_msat: Option<u64>,
    #[serde(default, deserialize_with = "de_u64")]
    amount_sent_msat: Option<u64>,
}

/// Fee of a payment: what was sent beyond what the payee received.
fn fee(sent: Option<u64>, received: Option<u64>) -> u64 {
    match (sent, received) {
        (Some(s), Some(r)) => s.saturating_sub(r),
        _ => 0,
    }
}

#[async_trait]
impl Wallet for ClnWallet {
    async fn info(&self) -> Result<WalletInfo, WalletError> {
        let info: GetInfo = self.read("getinfo", json!({})).await?;
        let reported = reported_network("Core Lightning", &info.network)?;
        Ok(WalletInfo {
            backend: "cln",
            network: settle_network("Core Lightning", reported, self.network)?,
            node_id: info.id.filter(|k| !k.is_empty()),
            returns_preimages: true,
            demo_funds: false,
        })
    }

    async fn balance(&self) -> Result<Balance, WalletError> {
        let funds: ListFunds = self.read("listfunds", json!({})).await?;
        // What the node can spend over Lightning: our side of its channels in normal operation.
        let msat = funds
            .channels
            .iter()
            .filter(|c| c.state == "CHANNELD_NORMAL")
            .filter_map(|c| c.our_amount_msat)
            .fold(0u64, u64::saturating_add);
        Ok(Balance {
            msat,
            demo_funds: false,
        })
    }

    #[instrument(skip_all, fields(backend = "cln", amount_msat = request.amount_msat))]
    async fn create_invoice(
        &self,
        request: &InvoiceRequest,
    ) -> Result<CreatedInvoice, WalletError> {
        // Labels must be unique on the node.
        let mut nonce = [0u8; 12];
        rand::thread_rng().fill_bytes(&mut nonce);
        let params = json!({
            "amount_msat": request.amount_msat,
            "label": format!("l402-mcp-{}", hex::encode(nonce)),
            "description": request.description,
            "expiry": request.expiry_secs,
        });
        let created: NewInvoice = self
            .rest
            .post("v1/invoice", &params, false)
            .await
            .map_err(|e| rpc_error("invoice", e))?;
        let hash = json::hash32(&created.payment_hash).ok_or_else(|| {
            WalletError::Other("Core Lightning's payment_hash is not 32 bytes of hex".into())
        })?;
        check_created("Core Lightning", &created.bolt11, Some(hash), request)
    }

    #[instrument(skip_all, fields(backend = "cln", payment_hash = %hex::encode(invoice.payment_hash)))]
    async fn pay_invoice(
        &self,
        invoice: &DecodedInvoice,
        max_fee_msat: u64,
    ) -> Result<PaymentResult, WalletError> {
        let params = json!({
            "bolt11": invoice.bolt11,
            "maxfee": max_fee_msat,
            "retry_for": self.retry_for_secs(),
        });
        let paid: Pay = self
            .rest
            .post("v1/pay", &params, false)
            .await
            .map_err(pay_error)?;
        match paid.status.as_deref() {
            // xpay answers without a status; it only answers once the payment succeeded.
            Some("complete") | None => Ok(PaymentResult {
                preimage: paid.payment_preimage.as_deref().and_then(json::preimage),
                fee_msat: fee(paid.amount_sent_msat, paid.amount_msat),
            }),
            Some(other) => Err(WalletError::OutcomeUnknown(format!(
                "Core Lightning's pay answered with status {other:?}"
            ))),
        }
    }

    async fn lookup_incoming(
        &self,
        payment_hash: &[u8; 32],
    ) -> Result<IncomingStatus, WalletError> {
        let list: ListInvoices = self
            .read(
                "listinvoices",
                json!({ "payment_hash": hex::encode(payment_hash) }),
            )
            .await?;
        let Some(inv) = list.invoices.first() else {
            return Ok(IncomingStatus::NotFound);
        };
        Ok(match inv.status.as_str() {
            "paid" => IncomingStatus::Settled {
                amount_msat: inv.amount_received_msat.or(inv.amount_msat).unwrap_or(0),
            },
            "expired" => IncomingStatus::Expired,
            _ => IncomingStatus::Pending,
        })
    }

    async fn lookup_outgoing(
        &self,
        payment_hash: &[u8; 32],
    ) -> Result<OutgoingStatus, WalletError> {
        let list: ListPays = self
            .read(
                "listpays",
                json!({ "payment_hash": hex::encode(payment_hash) }),
            )
            .await?;
        // One entry per pay attempt: any success wins, then anything still under way.
        if let Some(p) = list.pays.iter().find(|p| p.status == "complete") {
            return Ok(OutgoingStatus::Succeeded(PaymentResult {
                preimage: p.preimage.as_deref().and_then(json::preimage),
                fee_msat: fee(p.amount_sent_msat, p.amount_msat),
            }));
        }
        if list.pays.iter().any(|p| p.status != "failed") {
            return Ok(OutgoingStatus::InFlight);
        }
        Ok(if list.pays.is_empty() {
            OutgoingStatus::NotFound
        } else {
            OutgoingStatus::Failed("Core Lightning reports the payment failed".into())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pay_errors_are_definite_only_when_nothing_is_out() {
        let status = |code: &str| {
            pay_error(RestError::Status {
                status: 500,
                body: format!(r#"{{"code":{code},"message":"m","data":{{}}}}"#),
            })
        };
        for code in ["203", "205", "206", "210", "-32602"] {
            assert!(status(code).definitely_not_paid(), "{code}");
        }
        for code in ["-1", "201", "207", "209", "219", "null"] {
            assert!(!status(code).definitely_not_paid(), "{code}");
        }
        let refused = pay_error(RestError::Status {
            status: 401,
            body: r#"{"code":1502,"message":"Rune is not valid"}"#.into(),
        });
        assert!(refused.definitely_not_paid());
        assert!(
            !pay_error(RestError::Timeout("slow".into())).definitely_not_paid(),
            "a timeout is never definite"
        );
    }
}
