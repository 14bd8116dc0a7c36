//! LND backend (REST API, port 8080 by default): the macaroon as a hex header, the node's TLS
//! certificate.
//!
//! Endpoints, from LND's REST reference (<https://lightning.engineering/api-docs/api/lnd/>):
//!
//! - `GET  /v1/getinfo`: `identity_pubkey`, `chains[].network` (or the old `testnet` flag).
//! - `GET  /v1/balance/channels`: `local_balance.msat` (or the deprecated `balance`, sats).
//! - `POST /v1/invoices` (`value_msat`, `memo`, `expiry`): `r_hash` is **base64** bytes,
//!   `payment_request` the BOLT11 string.
//! - `GET  /v1/invoice/{r_hash_str}` with the **hex** hash: `state`, `amt_paid_msat`.
//! - `POST /v2/router/send` (SendPaymentV2): a stream of `{"result": Payment}` lines; a
//!   `Payment`'s `payment_preimage` is a **hex** string. `fee_limit_msat` caps the fee.
//! - `GET  /v2/router/track/{payment_hash}` (TrackPaymentV2), the hash in URL-safe base64 (a
//!   `bytes` path field): the same stream, whose first line is the payment's current state.
//!
//! `POST /v1/channels/transactions` (SendPaymentSync, base64 preimage) is not used: it is
//! deprecated, and LND 0.21 removes it.
//!
//! Integers of 64 bits come as JSON strings (proto3 JSON mapping); both forms are read.

use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};
use tracing::{debug, instrument, warn};

use super::toolkit::json::{self, de_u64};
use super::toolkit::node::{self, check_created, settle_network};
use super::toolkit::{Rest, RestError, Tls, redact};
use super::{
    Balance, CreatedInvoice, IncomingStatus, InvoiceRequest, OutgoingStatus, PaymentResult, Wallet,
    WalletError, WalletInfo,
};
use crate::bolt11::{DecodedInvoice, Network};

/// `[backend] kind = "lnd"` settings.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LndConfig {
    /// REST URL, e.g. https://127.0.0.1:8080
    pub url: String,
    /// Macaroon, hex (or macaroon_path). Secret.
    #[serde(default)]
    pub macaroon_hex: Option<String>,
    /// Path of the macaroon file (or macaroon_hex).
    #[serde(default)]
    pub macaroon_path: Option<std::path::PathBuf>,
    /// Path of LND's tls.cert (PEM), when it is self-signed.
    #[serde(default)]
    pub tls_cert_path: Option<std::path::PathBuf>,
    /// Network the node must be on; by default whatever the node reports.
    #[serde(default)]
    pub network: Option<Network>,
    /// Seconds per request; default 30.
    #[serde(default)]
    pub timeout_secs: Option<u64>,
}

impl std::fmt::Debug for LndConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LndConfig")
            .field("url", &self.url)
            .field(
                "macaroon_hex",
                &self.macaroon_hex.as_ref().map(|_| "<secret>"),
            )
            .field("macaroon_path", &self.macaroon_path)
            .field("tls_cert_path", &self.tls_cert_path)
            .field("network", &self.network)
            .finish_non_exhaustive()
    }
}

/// The LND backend.
#[derive(Debug)]
pub struct LndWallet {
    rest: Rest,
    network: Option<Network>,
    timeout: Duration,
}

const MACAROON_HEADER: &str = "Grpc-Metadata-macaroon";

impl LndWallet {
    pub fn new(config: &LndConfig) -> Result<LndWallet, WalletError> {
        let timeout = node::timeout(config.timeout_secs);
        let macaroon = macaroon_hex(config)?;
        let tls = Tls::from_pem_file("LND's TLS certificate", config.tls_cert_path.as_deref())?;
        let headers = [(MACAROON_HEADER, macaroon.as_str())];
        Ok(LndWallet {
            rest: Rest::new(&config.url, &headers, &tls, timeout)?,
            network: config.network,
            timeout,
        })
    }

    /// LND's own limit for finding a route: a little under ours, so LND gives up first.
    fn payment_timeout_secs(&self) -> u64 {
        node::payment_time_limit_secs(self.timeout)
    }
}

/// The macaroon as hex, from `macaroon_hex` or the file at `macaroon_path` (binary, or hex text).
fn macaroon_hex(config: &LndConfig) -> Result<String, WalletError> {
    let not_hex = || {
        WalletError::Other(
            "macaroon_hex is not hex; give the macaroon file as macaroon_path instead, or convert it with `xxd -p -c 1000 <file>`".into(),
        )
    };
    match (&config.macaroon_hex, &config.macaroon_path) {
        (Some(_), Some(_)) => Err(WalletError::Other(
            "set either macaroon_hex or macaroon_path for LND, not both".into(),
        )),
        (Some(text), None) => as_hex(text.as_bytes()).ok_or_else(not_hex),
        (None, Some(path)) => {
            let bytes = std::fs::read(path).map_err(|e| {
                WalletError::Other(format!("cannot read the macaroon {}: {e}", path.display()))
            })?;
            if bytes.iter().all(u8::is_ascii_whitespace) {
                return Err(WalletError::Other(format!(
                    "the macaroon file {} is empty",
                    path.display()
                )));
            }
            // A binary macaroon (V2 starts with 0x02) is never all hex digits.
            Ok(as_hex(&bytes).unwrap_or_else(|| hex::encode(&bytes)))
        }
        (None, None) => Err(WalletError::Other(
            "LND needs a macaroon: set macaroon_path (e.g. ~/.lnd/data/chain/bitcoin/mainnet/l402-mcp.macaroon) or macaroon_hex".into(),
        )),
    }
}

/// `text` when it is hex (surrounding whitespace allowed), lower-cased.
fn as_hex(text: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(text).ok()?.trim();
    (!text.is_empty() && text.len() % 2 == 0 && text.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| text.to_ascii_lowercase())
}

/// The 32 bytes of a hash or preimage that LND sends as base64 (`bytes` fields).
fn base64_32(s: &str) -> Option<[u8; 32]> {
    let s = s.trim();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(s)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(s))
        .ok()?;
    bytes.try_into().ok()
}

/// What an error body of LND's REST proxy says: gRPC `code` and `message`, at the top level or
/// under `error` (streams). The body may be clipped, so a lenient scan backs up the parse.
fn grpc_status(body: &str) -> (Option<i64>, String) {
    let (code, message) = json::error_fields(body);
    (code, message.unwrap_or_else(|| redact::clip(body)))
}

/// True when LND's answer is about the macaroon rather than the request.
fn credentials_refused(status: u16, code: Option<i64>, message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    matches!(status, 401 | 403)
        || matches!(code, Some(7 | 16))
        || m.contains("macaroon")
        || m.contains("permission denied")
        || m.contains("verification failed")
}

/// A failed call that moves no money; LND sends macaroon errors as HTTP 500.
fn read_error(e: RestError) -> WalletError {
    if let RestError::Status { status, body } = &e {
        let (code, message) = grpc_status(body);
        if credentials_refused(*status, code, &message) {
            return WalletError::Unavailable(format!(
                "LND refused the macaroon (check it, and its permissions: see docs/wallets/lnd.md): {message}"
            ));
        }
    }
    e.into_wallet_error()
}

/// An HTTP error answer to SendPaymentV2. The stream had not started (LND writes the first
/// update as soon as the payment is registered), so the payment was refused before any HTLC,
/// except when LND says a payment for this hash exists already or the answer is not LND's.
fn payment_refusal(status: u16, body: &str) -> WalletError {
    let (code, message) = grpc_status(body);
    if credentials_refused(status, code, &message) {
        return WalletError::Unavailable(format!(
            "LND refused the macaroon (it needs offchain:write to pay): {message}"
        ));
    }
    match code {
        // AlreadyExists: paid, or in flight, under this hash already. The lookup settles it.
        Some(6) => WalletError::OutcomeUnknown(format!(
            "LND already has a payment for this invoice ({message}); its outcome is looked up"
        )),
        // Unknown (plain errors: invalid or expired invoice, fee limit...), InvalidArgument,
        // NotFound, FailedPrecondition, OutOfRange, Unimplemented: refused up front.
        Some(2 | 3 | 5 | 9 | 11 | 12) => {
            WalletError::Rejected(format!("LND refused the payment: {message}"))
        }
        _ => WalletError::OutcomeUnknown(format!("LND answered HTTP {status}: {message}")),
    }
}

/// A `Payment` message of LND (routerrpc streams, `/v1/payments`).
#[derive(Debug, Deserialize)]
struct LndPayment {
    #[serde(default)]
    payment_hash: String,
    #[serde(default)]
    payment_preimage: String,
    #[serde(default)]
    status: Value,
    #[serde(default, deserialize_with = "de_u64")]
    fee_msat: Option<u64>,
    #[serde(default, deserialize_with = "de_u64")]
    fee_sat: Option<u64>,
    #[serde(default)]
    failure_reason: Value,
}

#[derive(Debug, PartialEq, Eq)]
enum PaymentState {
    /// INITIATED, IN_FLIGHT (or UNKNOWN, never sent by current LND): money may still move.
    Pending,
    Succeeded,
    Failed,
}

impl LndPayment {
    fn state(&self) -> PaymentState {
        // Enum names, or their numbers: UNKNOWN 0, IN_FLIGHT 1, SUCCEEDED 2, FAILED 3, INITIATED 4.
        match (&self.status, self.status.as_str()) {
            (_, Some("SUCCEEDED")) => PaymentState::Succeeded,
            (_, Some("FAILED")) => PaymentState::Failed,
            (v, None) if v.as_i64() == Some(2) => PaymentState::Succeeded,
            (v, None) if v.as_i64() == Some(3) => PaymentState::Failed,
            _ => PaymentState::Pending,
        }
    }

    fn result(&self) -> PaymentResult {
        PaymentResult {
            preimage: json::preimage(&self.payment_preimage),
            fee_msat: self
                .fee_msat
                .or(self.fee_sat.map(|s| s.saturating_mul(1000)))
                .unwrap_or(0),
        }
    }

    fn failure(&self) -> String {
        let reason = match &self.failure_reason {
            Value::String(s) => s.clone(),
            Value::Number(n) => format!("failure reason {n}"),
            _ => String::new(),
        };
        let reason = reason
            .trim_start_matches("FAILURE_REASON_")
            .to_ascii_lowercase();
        match reason.as_str() {
            "" | "none" => "LND reports the payment failed".into(),
            "no_route" => "LND found no route to the payee within the fee limit".into(),
            "insufficient_balance" => "insufficient balance in LND's channels".into(),
            "incorrect_payment_details" => {
                "the payee rejected the payment (unknown or already paid invoice)".into()
            }
            "timeout" => "LND gave up finding a route in time".into(),
            other => format!("LND reports the payment failed: {other}"),
        }
    }

    fn is_for(&self, hash: &[u8; 32]) -> bool {
        self.payment_hash.is_empty() || self.payment_hash.eq_ignore_ascii_case(&hex::encode(hash))
    }
}

/// One message of an LND stream.
enum StreamMessage {
    Payment(LndPayment),
    Error(String),
}

fn stream_message(v: Value) -> Result<StreamMessage, String> {
    if let Some(e) = v.get("error").filter(|e| !e.is_null()) {
        let message = e
            .get("message")
            .and_then(Value::as_str)
            .map_or_else(|| e.to_string(), str::to_owned);
        return Ok(StreamMessage::Error(message));
    }
    let payment = v.get("result").cloned().unwrap_or(v);
    serde_json::from_value(payment)
        .map(StreamMessage::Payment)
        .map_err(|e| format!("an update of LND could not be read: {e}"))
}

#[derive(Deserialize)]
struct GetInfo {
    #[serde(default)]
    identity_pubkey: Option<String>,
    #[serde(default)]
    chains: Vec<Chain>,
    #[serde(default)]
    testnet: bool,
}

#[derive(Deserialize)]
struct Chain {
    #[serde(default)]
    network: String,
}

#[derive(Deserialize)]
struct ChannelBalance {
    #[serde(default)]
    local_balance: Option<Amount>,
    #[serde(default, deserialize_with = "de_u64")]
    balance: Option<u64>,
}

#[derive(Deserialize)]
struct Amount {
    #[serde(default, deserialize_with = "de_u64")]
    msat: Option<u64>,
    #[serde(default, deserialize_with = "de_u64")]
    sat: Option<u64>,
}

#[derive(Deserialize)]
struct AddInvoiceResponse {
    r_hash: String,
    payment_request: String,
}

#[derive(Deserialize)]
struct Invoice {
    #[serde(default)]
    state: Value,
    #[serde(default)]
    settled: bool,
    #[serde(default, deserialize_with = "de_u64")]
    amt_paid_msat: Option<u64>,
    #[serde(default, deserialize_with = "de_u64")]
    amt_paid_sat: Option<u64>,
}

#[async_trait]
impl Wallet for LndWallet {
    async fn info(&self) -> Result<WalletInfo, WalletError> {
        let info: GetInfo = self.rest.get("v1/getinfo").await.map_err(read_error)?;
        let reported = info
            .chains
            .iter()
            .find_map(|c| node::network_from_name(&c.network))
            .or(info.testnet.then_some(Network::Testnet));
        Ok(WalletInfo {
            backend: "lnd",
            network: settle_network("LND", reported, self.network)?,
            node_id: info.identity_pubkey.filter(|k| !k.is_empty()),
            returns_preimages: true,
            demo_funds: false,
        })
    }

    async fn balance(&self) -> Result<Balance, WalletError> {
        let b: ChannelBalance = self
            .rest
            .get("v1/balance/channels")
            .await
            .map_err(read_error)?;
        let msat = b
            .local_balance
            .and_then(|a| a.msat.or(a.sat.map(|s| s.saturating_mul(1000))))
            .or(b.balance.map(|s| s.saturating_mul(1000)))
            .unwrap_or(0);
        Ok(Balance {
            msat,
            demo_funds: false,
        })
    }

    #[instrument(skip_all, fields(backend = "lnd", amount_msat = request.amount_msat))]
    async fn create_invoice(
        &self,
        request: &InvoiceRequest,
    ) -> Result<CreatedInvoice, WalletError> {
        let body = json!({
            "value_msat": request.amount_msat.to_string(),
            "memo": request.description,
            "expiry": request.expiry_secs.to_string(),
        });
        let created: AddInvoiceResponse = self
            .rest
            .post("v1/invoices", &body, false)
            .await
            .map_err(read_error)?;
        let hash = base64_32(&created.r_hash).ok_or_else(|| {
            WalletError::Other("LND's r_hash is not a base64 32-byte hash".into())
        })?;
        check_created("LND", &created.payment_request, Some(hash), request)
    }

    #[instrument(skip_all, fields(backend = "lnd", payment_hash = %hex::encode(invoice.payment_hash)))]
    async fn pay_invoice(
        &self,
        invoice: &DecodedInvoice,
        max_fee_msat: u64,
    ) -> Result<PaymentResult, WalletError> {
        let body = json!({
            "payment_request": invoice.bolt11,
            "fee_limit_msat": max_fee_msat.to_string(),
            "timeout_seconds": self.payment_timeout_secs(),
            // The first update confirms LND registered the payment: any error after it is an
            // unknown outcome, any error before it a refusal.
            "no_inflight_updates": false,
        });
        let mut stream = match self
            .rest
            .open(Method::POST, "v2/router/send", Some(&body))
            .await
        {
            Ok(s) => s,
            Err(RestError::Status { status, body }) => return Err(payment_refusal(status, &body)),
            Err(e) => return Err(e.into_payment_error()),
        };
        loop {
            let message = match stream.next().await {
                Ok(Some(v)) => stream_message(v).map_err(WalletError::OutcomeUnknown)?,
                Ok(None) => {
                    return Err(WalletError::OutcomeUnknown(
                        "LND closed the payment stream before the payment completed".into(),
                    ));
                }
                Err(e) => return Err(e.into_payment_error()),
            };
            let payment = match message {
                StreamMessage::Payment(p) => p,
                StreamMessage::Error(m) => {
                    return Err(WalletError::OutcomeUnknown(format!(
                        "LND reported an error while paying: {m}"
                    )));
                }
            };
            if !payment.is_for(&invoice.payment_hash) {
                return Err(WalletError::OutcomeUnknown(
                    "LND sent an update for another payment".into(),
                ));
            }
            match payment.state() {
                PaymentState::Succeeded => return Ok(payment.result()),
                PaymentState::Failed => return Err(WalletError::Rejected(payment.failure())),
                PaymentState::Pending => debug!("payment in flight"),
            }
        }
    }

    async fn lookup_incoming(
        &self,
        payment_hash: &[u8; 32],
    ) -> Result<IncomingStatus, WalletError> {
        let path = format!("v1/invoice/{}", hex::encode(payment_hash));
        let invoice: Invoice = match self.rest.get(&path).await {
            Ok(i) => i,
            Err(RestError::Status { status, body }) => {
                let (code, message) = grpc_status(&body);
                let m = message.to_ascii_lowercase();
                if status == 404
                    || code == Some(5)
                    || m.contains("unable to locate invoice")
                    || m.contains("no existing invoices")
                {
                    return Ok(IncomingStatus::NotFound);
                }
                return Err(read_error(RestError::Status { status, body }));
            }
            Err(e) => return Err(e.into_wallet_error()),
        };
        let paid = || {
            invoice
                .amt_paid_msat
                .or(invoice.amt_paid_sat.map(|s| s.saturating_mul(1000)))
                .unwrap_or(0)
        };
        // States: OPEN 0, SETTLED 1, CANCELED 2, ACCEPTED 3 (a hold invoice, not yet settled).
        Ok(match (&invoice.state, invoice.state.as_str()) {
            (_, Some("SETTLED")) => IncomingStatus::Settled {
                amount_msat: paid(),
            },
            (_, Some("CANCELED")) => IncomingStatus::Expired,
            (v, None) if v.as_i64() == Some(1) => IncomingStatus::Settled {
                amount_msat: paid(),
            },
            (v, None) if v.as_i64() == Some(2) => IncomingStatus::Expired,
            (Value::Null, _) if invoice.settled => IncomingStatus::Settled {
                amount_msat: paid(),
            },
            _ => IncomingStatus::Pending,
        })
    }

    async fn lookup_outgoing(
        &self,
        payment_hash: &[u8; 32],
    ) -> Result<OutgoingStatus, WalletError> {
        let hash = base64::engine::general_purpose::URL_SAFE.encode(payment_hash);
        let path = format!("v2/router/track/{hash}?no_inflight_updates=false");
        let mut stream = match self.rest.open(Method::GET, &path, None).await {
            Ok(s) => s,
            Err(RestError::Status { status, body }) => {
                let (code, message) = grpc_status(&body);
                if status == 404 || code == Some(5) || message.contains("isn't initiated") {
                    return Ok(OutgoingStatus::NotFound);
                }
                return Err(read_error(RestError::Status { status, body }));
            }
            Err(e) => return Err(e.into_wallet_error()),
        };
        // The first update is the current state; the stream then stays open while in flight.
        let first = match stream.next().await.map_err(RestError::into_wallet_error)? {
            Some(v) => stream_message(v).map_err(WalletError::Other)?,
            None => {
                return Err(WalletError::Other(
                    "LND's payment tracking stream ended without an update".into(),
                ));
            }
        };
        let payment = match first {
            StreamMessage::Payment(p) => p,
            StreamMessage::Error(m) if m.contains("isn't initiated") => {
                return Ok(OutgoingStatus::NotFound);
            }
            StreamMessage::Error(m) => {
                return Err(WalletError::Other(format!(
                    "LND could not track the payment: {m}"
                )));
            }
        };
        if !payment.is_for(payment_hash) {
            warn!("LND tracked another payment than asked");
            return Err(WalletError::Other(
                "LND answered about another payment".into(),
            ));
        }
        Ok(match payment.state() {
            PaymentState::Succeeded => OutgoingStatus::Succeeded(payment.result()),
            PaymentState::Failed => OutgoingStatus::Failed(payment.failure()),
            PaymentState::Pending => OutgoingStatus::InFlight,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_lnd_byte_fields() {
        let hash = [7u8; 32];
        let std = base64::engine::general_purpose::STANDARD.encode(hash);
        let url = base64::engine::general_purpose::URL_SAFE.encode([0xfbu8; 32]);
        assert_eq!(base64_32(&std), Some(hash));
        assert_eq!(base64_32(&url), Some([0xfb; 32]));
        assert_eq!(base64_32("AAAA"), None);
    }

    #[test]
    fn refusals_before_the_stream_are_classified() {
        let r = |status, body: &str| payment_refusal(status, body);
        assert!(matches!(
            r(
                500,
                r#"{"code":2,"message":"invoice expired","details":[]}"#
            ),
            WalletError::Rejected(_)
        ));
        assert!(matches!(
            r(409, r#"{"code":6,"message":"payment is in transition"}"#),
            WalletError::OutcomeUnknown(_)
        ));
        assert!(matches!(
            r(
                500,
                r#"{"code":2,"message":"verification failed: signature mismatch after caveat verification"}"#
            ),
            WalletError::Unavailable(_)
        ));
        assert!(matches!(
            r(502, "Bad Gateway"),
            WalletError::OutcomeUnknown(_)
        ));
        assert!(matches!(
            r(503, r#"{"code":14,"message":"unavailable"}"#),
            WalletError::OutcomeUnknown(_)
        ));
    }

    #[test]
    fn macaroons_are_read_as_binary_or_hex() {
        assert_eq!(as_hex(b" 0201AB\n").as_deref(), Some("0201ab"));
        assert_eq!(as_hex(b"\x02\x01\x04"), None);
        assert_eq!(as_hex(b"abc"), None);
        let cfg = |hex: Option<&str>| LndConfig {
            url: "https://127.0.0.1:8080".into(),
            macaroon_hex: hex.map(str::to_owned),
            macaroon_path: None,
            tls_cert_path: None,
            network: None,
            timeout_secs: None,
        };
        assert!(macaroon_hex(&cfg(None)).is_err());
        assert!(macaroon_hex(&cfg(Some("not hex"))).is_err());
        assert_eq!(macaroon_hex(&cfg(Some("0A0b"))).unwrap(), "0a0b");
    }
}
