//! LNbits backend over its REST API: the admin key pays; the invoice key receives, looks up and
//! reads the balance. Either key may be left out: the invoice key alone can receive (least
//! privilege for a seller), the admin key alone does everything.
//!
//! What LNbits answers, as read in LNbits 1.6.2 (`core/views/payment_api.py`,
//! `core/services/payments.py`, `exceptions.py`, `decorators.py`) and checked against it:
//!
//! - Amounts go in as sats and come back as msat; an outgoing payment has a negative amount and
//!   fee.
//! - A refused payment is HTTP 520 `{"detail", "status"}`: status "failed" means nothing moved
//!   and nothing will, "pending" that it may still go through, "success" that the invoice was
//!   paid before. Older versions send only `detail`: their definite refusals are known by words.
//! - A key no wallet has is 404 "Wallet not found."; paying with the invoice key is 403.
//! - `GET /api/v1/payments/{hash}` answers with any key or none, then about anyone's payment and
//!   without `details`; with a valid key it finds only that wallet's payments. So an answer is
//!   trusted only with `details`, and a 404 only once the key is confirmed.
//! - Creating an invoice answers with its preimage too: answers never go into logs or errors.

use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::OnceCell;
use tracing::{info, instrument, warn};

use super::toolkit::json::{hash32, preimage as preimage_of};
use super::toolkit::node::{self, check_created};
use super::toolkit::redact::{Secrets, clip, clip_chars};
use super::toolkit::{Rest, RestError, Tls};
use super::{
    Balance, CreatedInvoice, IncomingStatus, InvoiceRequest, OutgoingStatus, PaymentResult, Wallet,
    WalletError, WalletInfo,
};
use crate::bolt11::{DecodedInvoice, Network};

/// LNbits caps memos at this many characters.
const MAX_MEMO_CHARS: usize = 640;
/// How long to keep asking about a payment LNbits accepted as pending before calling its
/// outcome unknown (it is then reconciled later).
const PENDING_POLLS: [Duration; 3] = [
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_secs(2),
];

/// `[backend] kind = "lnbits"` settings.
#[derive(Clone, Deserialize)]
#[serde(try_from = "RawConfig")]
pub struct LnbitsConfig {
    /// Base URL, e.g. https://lnbits.example.com (a sub-path install includes its path).
    pub url: String,
    /// Admin key: pays. Secret. Without it the wallet can receive but not pay.
    pub admin_key: Option<String>,
    /// Invoice/read key: receives, looks up, reads the balance. Secret. Defaults to the admin key.
    pub invoice_key: Option<String>,
    /// Network of the funding node; default mainnet.
    pub network: Option<Network>,
    /// Seconds per request; default 30.
    pub timeout_secs: Option<u64>,
}

/// The settings as written; [`LnbitsConfig`] is them checked.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    url: String,
    #[serde(default)]
    admin_key: Option<String>,
    #[serde(default)]
    invoice_key: Option<String>,
    #[serde(default)]
    network: Option<Network>,
    #[serde(default)]
    timeout_secs: Option<u64>,
}

impl TryFrom<RawConfig> for LnbitsConfig {
    type Error = String;

    fn try_from(raw: RawConfig) -> Result<Self, String> {
        let key = |k: Option<String>| k.map(|k| k.trim().to_owned()).filter(|k| !k.is_empty());
        let (admin_key, invoice_key) = (key(raw.admin_key), key(raw.invoice_key));
        if admin_key.is_none() && invoice_key.is_none() {
            return Err("LNbits needs a key from the wallet's API info: invoice_key to receive (L402_MCP_LNBITS_INVOICE_KEY), admin_key to pay (L402_MCP_LNBITS_ADMIN_KEY)".into());
        }
        if raw.timeout_secs == Some(0) {
            return Err("timeout_secs must be at least 1".into());
        }
        Ok(LnbitsConfig {
            url: raw.url,
            admin_key,
            invoice_key,
            network: raw.network,
            timeout_secs: raw.timeout_secs,
        })
    }
}

impl std::fmt::Debug for LnbitsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secret = |k: &Option<String>| if k.is_some() { "<secret>" } else { "<not set>" };
        f.debug_struct("LnbitsConfig")
            .field("url", &self.url)
            .field("admin_key", &secret(&self.admin_key))
            .field("invoice_key", &secret(&self.invoice_key))
            .field("network", &self.network)
            .field("timeout_secs", &self.timeout_secs)
            .finish()
    }
}

/// Which configured key a request went with, for messages that say what to fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Admin,
    Invoice,
}

impl Key {
    fn field(self) -> &'static str {
        match self {
            Key::Admin => "admin_key",
            Key::Invoice => "invoice_key",
        }
    }
    fn env(self) -> &'static str {
        match self {
            Key::Admin => "L402_MCP_LNBITS_ADMIN_KEY",
            Key::Invoice => "L402_MCP_LNBITS_INVOICE_KEY",
        }
    }
    fn label(self) -> &'static str {
        match self {
            Key::Admin => "Admin key",
            Key::Invoice => "Invoice/read key",
        }
    }
}

/// A REST client holding one key.
#[derive(Debug)]
struct Client {
    rest: Rest,
    key: Key,
}

/// The LNbits backend.
pub struct LnbitsWallet {
    url: String,
    network: Network,
    /// Pays; `None` when only the invoice key is configured.
    pay: Option<Client>,
    /// Receives, looks up incoming payments, reads the balance.
    read: Client,
    /// The keys, to scrub from any message.
    secrets: Secrets,
    /// Set once the keys have been checked against LNbits.
    checked: OnceCell<()>,
}

impl std::fmt::Debug for LnbitsWallet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LnbitsWallet")
            .field("url", &self.url)
            .field("network", &self.network)
            .field("can_pay", &self.pay.is_some())
            .finish_non_exhaustive()
    }
}

/// `GET /api/v1/wallet`.
#[derive(Debug, Deserialize)]
struct WalletAnswer {
    #[serde(default)]
    name: Option<String>,
    /// msat.
    balance: i64,
    /// Only shown to the admin key.
    #[serde(default)]
    id: Option<String>,
}

/// The `{"detail", "status"}` of an error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ErrorBody {
    detail: String,
    /// LNbits' word on the payment: failed, pending or success.
    status: Option<String>,
    /// FastAPI's request validation (the handler never ran).
    validation: bool,
}

impl ErrorBody {
    fn parse(body: &str) -> ErrorBody {
        match serde_json::from_str::<Value>(body) {
            Ok(v) => {
                let (detail, validation) = match v.get("detail") {
                    Some(Value::String(s)) => (s.clone(), false),
                    Some(Value::Array(items)) => {
                        let msgs: Vec<String> = items
                            .iter()
                            .map(|i| {
                                i.get("msg")
                                    .and_then(Value::as_str)
                                    .map_or_else(|| i.to_string(), str::to_owned)
                            })
                            .collect();
                        (format!("invalid request: {}", msgs.join("; ")), true)
                    }
                    Some(other) => (other.to_string(), false),
                    None => (clip(body), false),
                };
                let status = v.get("status").and_then(Value::as_str).map(str::to_owned);
                ErrorBody {
                    detail,
                    status,
                    validation,
                }
            }
            // Not JSON, or cut short by the client: read what can be read.
            Err(_) => {
                let squeezed: String = body.chars().filter(|c| !c.is_whitespace()).collect();
                let status = ["failed", "pending", "success"]
                    .into_iter()
                    .find(|s| squeezed.contains(&format!("\"status\":\"{s}\"")))
                    .map(str::to_owned);
                let detail = body
                    .split("\"detail\"")
                    .nth(1)
                    .and_then(|rest| rest.split('"').nth(1))
                    .map_or_else(|| clip(body), str::to_owned);
                ErrorBody {
                    detail,
                    status,
                    validation: false,
                }
            }
        }
    }

    fn wallet_not_found(&self) -> bool {
        self.detail
            .trim_end_matches('.')
            .eq_ignore_ascii_case("wallet not found")
    }
}

/// Words of LNbits' payment refusals that leave no doubt nothing was paid (for versions whose
/// answers carry no `status`; 1.6.2 raises every one of these with status "failed").
const DEFINITE_REFUSALS: &[&str] = &[
    "insufficient balance",
    "internal invoice already paid",
    "only internal invoices can be used",
    "expired",
    "amountless invoices",
    "bolt11 decoding failed",
    "invalid bolt11",
    "invalid invoice",
    "is too high",
    "cover potential routing fees",
    "does not have permission",
    "only incoming payments allowed",
    "time limit of",
    "daily withdrawal limit",
    "not allowed to spend funds",
    "missing bolt11",
    "missig invoice amount",
    "missing invoice amount",
    "internal payment not found",
    "payment failed:",
];

/// What an error answer to `POST /api/v1/payments {"out": true}` says about the money.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Refusal {
    /// The key was refused before LNbits looked at the invoice.
    Key,
    /// The URL is not an LNbits payments endpoint.
    NotLnbits,
    /// Too many requests: refused before the handler ran.
    RateLimited,
    /// Nothing moved and nothing will.
    Definite,
    /// LNbits says the invoice was paid before, perhaps by this wallet.
    AlreadyPaid,
    /// It may have gone out, or still may.
    Unknown,
}

fn classify_refusal(status: u16, body: &ErrorBody) -> Refusal {
    match status {
        401 | 403 => Refusal::Key,
        404 if body.wallet_not_found() => Refusal::Key,
        404 | 405 => Refusal::NotLnbits,
        429 => Refusal::RateLimited,
        _ => match body.status.as_deref() {
            Some("failed") => Refusal::Definite,
            Some("success") => Refusal::AlreadyPaid,
            Some(_) => Refusal::Unknown,
            None if body.validation => Refusal::Definite,
            None => {
                let detail = body.detail.to_ascii_lowercase();
                if DEFINITE_REFUSALS.iter().any(|w| detail.contains(w)) {
                    Refusal::Definite
                } else {
                    Refusal::Unknown
                }
            }
        },
    }
}

/// A payment as `GET /api/v1/payments/{hash}` shows it to its own wallet.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Found {
    state: State,
    /// msat: positive for an invoice, negative for a payment.
    amount_msat: Option<i64>,
    fee_msat: Option<i64>,
    /// Only once the payment succeeded.
    preimage: Option<[u8; 32]>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Pending,
    Succeeded,
    Failed,
}

impl Found {
    /// From the lookup answer's top level (`paid`, `status`, `preimage`) and its `details`.
    fn read(top: &Value, details: &Value) -> Found {
        let status = top
            .get("status")
            .or_else(|| details.get("status"))
            .and_then(Value::as_str);
        let state = if top.get("paid").and_then(Value::as_bool) == Some(true)
            || details.get("status").and_then(Value::as_str) == Some("success")
        {
            State::Succeeded
        } else if status == Some("failed") {
            State::Failed
        } else {
            State::Pending
        };
        let preimage = (state == State::Succeeded)
            .then(|| {
                top.get("preimage")
                    .and_then(Value::as_str)
                    .and_then(preimage_of)
                    .or_else(|| {
                        details
                            .get("preimage")
                            .and_then(Value::as_str)
                            .and_then(preimage_of)
                    })
            })
            .flatten();
        Found {
            state,
            amount_msat: details.get("amount").and_then(Value::as_i64),
            fee_msat: details.get("fee").and_then(Value::as_i64),
            preimage,
        }
    }
}

fn fee_of(v: &Value) -> u64 {
    v.get("fee")
        .and_then(Value::as_i64)
        .map_or(0, i64::unsigned_abs)
}

impl LnbitsWallet {
    pub fn new(config: &LnbitsConfig) -> Result<LnbitsWallet, WalletError> {
        let timeout = node::timeout(config.timeout_secs);
        let client = |key: Key, value: &str| -> Result<Client, WalletError> {
            Ok(Client {
                rest: Rest::new(
                    &config.url,
                    &[("X-Api-Key", value)],
                    &Tls::default(),
                    timeout,
                )?,
                key,
            })
        };
        let pay = config
            .admin_key
            .as_deref()
            .map(|k| client(Key::Admin, k))
            .transpose()?;
        let read = match (&config.invoice_key, &config.admin_key) {
            (Some(k), _) => client(Key::Invoice, k)?,
            (None, Some(k)) => client(Key::Admin, k)?,
            (None, None) => {
                return Err(WalletError::Other(
                    "LNbits needs invoice_key (to receive) or admin_key (to pay)".into(),
                ));
            }
        };
        Ok(LnbitsWallet {
            url: config.url.trim().trim_end_matches('/').to_owned(),
            network: config.network.unwrap_or(Network::Mainnet),
            pay,
            read,
            secrets: Secrets::new(
                [&config.admin_key, &config.invoice_key]
                    .into_iter()
                    .flatten()
                    .map(String::as_str),
            ),
            checked: OnceCell::new(),
        })
    }

    /// `msg` with every configured key scrubbed out.
    fn redact(&self, msg: impl Into<String>) -> String {
        self.secrets.scrub(msg)
    }

    /// The error for a key LNbits refused, if it refused one.
    fn key_error(&self, key: Key, status: u16, body: &ErrorBody) -> Option<WalletError> {
        let (field, env, label) = (key.field(), key.env(), key.label());
        let msg = match status {
            403 if key == Key::Admin => format!(
                "LNbits refused the credentials: {field} is not the wallet's Admin key (HTTP 403 \"{}\"), and only the Admin key can pay; copy the Admin key from the wallet's API info into {field} ({env})",
                body.detail
            ),
            401 | 403 => format!(
                "LNbits refused the credentials (HTTP {status} \"{}\"): check {field} ({env}), the wallet's {label}",
                body.detail
            ),
            404 if body.wallet_not_found() => format!(
                "LNbits refused the credentials: no wallet on {} has this {label} (HTTP 404 \"Wallet not found.\"); copy it from the wallet's API info into {field} ({env})",
                self.url
            ),
            _ => return None,
        };
        Some(WalletError::Unavailable(self.redact(msg)))
    }

    fn not_lnbits(&self, status: u16) -> WalletError {
        WalletError::Unavailable(self.redact(format!(
            "{} answered HTTP {status} where the LNbits API should be: check url (L402_MCP_LNBITS_URL), the LNbits base URL without /api/...",
            self.url
        )))
    }

    fn unreachable(&self, why: &str) -> WalletError {
        WalletError::Unavailable(self.redact(format!(
            "could not reach LNbits at {} ({why}): check url (L402_MCP_LNBITS_URL) and that LNbits is running",
            self.url
        )))
    }

    /// The error of a call that moves no money.
    fn call_error(&self, key: Key, what: &str, e: RestError) -> WalletError {
        let msg = match e {
            RestError::NotSent(m) => return self.unreachable(&m),
            RestError::Status { status, body } => {
                let b = ErrorBody::parse(&body);
                if let Some(e) = self.key_error(key, status, &b) {
                    return e;
                }
                if status == 404 {
                    return self.not_lnbits(status);
                }
                format!("{what}: LNbits answered HTTP {status}: {}", b.detail)
            }
            RestError::Timeout(m) => format!("{what}: LNbits did not answer in time ({m})"),
            RestError::Decode(m) => format!(
                "{what}: the answer from {} could not be read as LNbits' ({m})",
                self.url
            ),
        };
        WalletError::Other(self.redact(msg))
    }

    async fn wallet_answer(&self, client: &Client) -> Result<WalletAnswer, WalletError> {
        client
            .rest
            .get("api/v1/wallet")
            .await
            .map_err(|e| self.call_error(client.key, "reading the wallet", e))
    }

    /// Both keys work, the admin key is one, and both belong to one wallet (as far as LNbits
    /// lets an invoice key tell: by the wallet's name).
    async fn check_keys(&self) -> Result<(), WalletError> {
        let read = self.wallet_answer(&self.read).await?;
        if self.read.key == Key::Invoice && read.id.is_some() {
            warn!(
                "invoice_key is the LNbits wallet's Admin key: set the Invoice/read key there, so that what only receives cannot spend"
            );
        }
        if let Some(pay) = &self.pay {
            let paying = self.wallet_answer(pay).await?;
            if paying.id.is_none() {
                return Err(WalletError::Unavailable(
                    "LNbits refused the credentials: admin_key is the wallet's Invoice/read key, which cannot pay; copy the Admin key from the wallet's API info into admin_key (L402_MCP_LNBITS_ADMIN_KEY)".into(),
                ));
            }
            if self.read.key == Key::Invoice && paying.name != read.name {
                return Err(WalletError::Other(self.redact(format!(
                    "admin_key and invoice_key belong to different LNbits wallets ({:?} and {:?}): take both from the same wallet's API info",
                    paying.name.unwrap_or_default(),
                    read.name.unwrap_or_default()
                ))));
            }
        }
        Ok(())
    }

    /// `GET /api/v1/payments/{hash}` as `client`'s wallet sees it; `None` when it has no such
    /// payment.
    async fn lookup(
        &self,
        client: &Client,
        payment_hash: &[u8; 32],
    ) -> Result<Option<Found>, WalletError> {
        let path = format!("api/v1/payments/{}", hex::encode(payment_hash));
        match client.rest.get::<Value>(&path).await {
            Ok(v) => match v.get("details").filter(|d| d.is_object()) {
                Some(d) => Ok(Some(Found::read(&v, d))),
                // LNbits answers without details when it does not know the key (and then about
                // any wallet's payment): nothing here can be trusted.
                None => Err(WalletError::Unavailable(self.redact(format!(
                    "LNbits refused the credentials: it answered the payment lookup without details, as it does for a key no wallet has; check {} ({})",
                    client.key.field(),
                    client.key.env()
                )))),
            },
            Err(RestError::Status { status: 404, .. }) => {
                // "Payment does not exist." means something only if the key is good (a bad key
                // searches every wallet) and this is LNbits at all.
                self.wallet_answer(client).await?;
                Ok(None)
            }
            Err(e) => Err(self.call_error(client.key, "looking the payment up", e)),
        }
    }

    /// An invoice of a wallet that also paid it: the single lookup shows the payment, the list
    /// filtered by hash shows both.
    async fn incoming_from_list(
        &self,
        payment_hash: &[u8; 32],
    ) -> Result<Option<Found>, WalletError> {
        let path = format!("api/v1/payments?payment_hash={}", hex::encode(payment_hash));
        let list: Vec<Value> = self
            .read
            .rest
            .get(&path)
            .await
            .map_err(|e| self.call_error(self.read.key, "listing payments", e))?;
        Ok(list
            .iter()
            .find(|p| {
                p.get("amount")
                    .and_then(Value::as_i64)
                    .is_some_and(|a| a > 0)
            })
            .map(|p| Found::read(&json!({}), p)))
    }

    /// What an error answer to the payment request means for the money.
    async fn refused(
        &self,
        client: &Client,
        payment_hash: &[u8; 32],
        status: u16,
        body: &str,
    ) -> Result<PaymentResult, WalletError> {
        let b = ErrorBody::parse(body);
        let detail = self.redact(b.detail.clone());
        match classify_refusal(status, &b) {
            Refusal::Key => Err(self
                .key_error(client.key, status, &b)
                .unwrap_or_else(|| self.not_lnbits(status))),
            Refusal::NotLnbits => Err(self.not_lnbits(status)),
            Refusal::RateLimited => Err(WalletError::Unavailable(format!(
                "LNbits is rate-limiting this client (HTTP 429 {detail}); nothing was paid"
            ))),
            Refusal::Definite => Err(WalletError::Rejected(format!("LNbits: {detail}"))),
            Refusal::AlreadyPaid => match self.lookup_outgoing(payment_hash).await {
                Ok(OutgoingStatus::Succeeded(r)) => {
                    info!("LNbits says this wallet paid the invoice before");
                    Ok(r)
                }
                Ok(OutgoingStatus::NotFound) => Err(WalletError::Rejected(format!(
                    "LNbits: {detail} (the invoice was paid already, not by this wallet)"
                ))),
                _ => Err(WalletError::OutcomeUnknown(format!(
                    "LNbits: {detail}; this wallet's part could not be confirmed, so the payment stays pending and is reconciled"
                ))),
            },
            Refusal::Unknown => Err(WalletError::OutcomeUnknown(format!(
                "LNbits answered HTTP {status} {detail}; the payment may have gone out, so it stays pending and is reconciled through LNbits' payment lookup"
            ))),
        }
    }

    /// LNbits accepted the payment: settle what it answered, asking it when the answer has no
    /// preimage or the payment is still under way.
    async fn accepted(
        &self,
        payment_hash: &[u8; 32],
        answer: &Value,
    ) -> Result<PaymentResult, WalletError> {
        let status = answer.get("status").and_then(Value::as_str);
        let preimage = answer
            .get("preimage")
            .and_then(Value::as_str)
            .and_then(preimage_of);
        let fee_msat = fee_of(answer);
        match (status, preimage) {
            (Some("success"), Some(_)) => return Ok(PaymentResult { preimage, fee_msat }),
            (Some("failed"), _) => {
                return Err(WalletError::Rejected(
                    "LNbits marked the payment failed".into(),
                ));
            }
            _ => {}
        }
        // Paid without a preimage, pending, or an older LNbits answering only with the hash.
        let mut outcome = self.lookup_outgoing(payment_hash).await;
        for delay in PENDING_POLLS {
            if !matches!(outcome, Ok(OutgoingStatus::InFlight)) {
                break;
            }
            tokio::time::sleep(delay).await;
            outcome = self.lookup_outgoing(payment_hash).await;
        }
        match outcome {
            Ok(OutgoingStatus::Succeeded(r)) => Ok(PaymentResult {
                preimage: r.preimage.or(preimage),
                fee_msat: if r.fee_msat > 0 { r.fee_msat } else { fee_msat },
            }),
            Ok(OutgoingStatus::Failed(why)) => Err(WalletError::Rejected(why)),
            // LNbits said paid: money moved. A missing preimage is the pay path's to report.
            _ if status == Some("success") => Ok(PaymentResult { preimage, fee_msat }),
            Ok(OutgoingStatus::InFlight) => Err(WalletError::OutcomeUnknown(
                "LNbits reports the payment as still pending; it stays pending here and is reconciled through LNbits' payment lookup".into(),
            )),
            Ok(OutgoingStatus::NotFound) => Err(WalletError::OutcomeUnknown(
                "LNbits accepted the payment but shows no record of it yet; it stays pending and is reconciled".into(),
            )),
            Err(e) => Err(WalletError::OutcomeUnknown(format!(
                "LNbits accepted the payment, but its status could not be read ({e}); it stays pending and is reconciled"
            ))),
        }
    }
}

#[async_trait]
impl Wallet for LnbitsWallet {
    async fn info(&self) -> Result<WalletInfo, WalletError> {
        self.checked.get_or_try_init(|| self.check_keys()).await?;
        Ok(WalletInfo {
            backend: "lnbits",
            network: self.network,
            node_id: None,
            returns_preimages: true,
            demo_funds: false,
        })
    }

    async fn balance(&self) -> Result<Balance, WalletError> {
        let w = self.wallet_answer(&self.read).await?;
        Ok(Balance {
            msat: u64::try_from(w.balance).unwrap_or(0),
            demo_funds: false,
        })
    }

    #[instrument(skip_all, fields(backend = "lnbits", amount_msat = request.amount_msat))]
    async fn create_invoice(
        &self,
        request: &InvoiceRequest,
    ) -> Result<CreatedInvoice, WalletError> {
        let sats = node::whole_sats("LNbits", request.amount_msat)?;
        let memo = clip_chars(&request.description, MAX_MEMO_CHARS);
        let body = json!({
            "out": false,
            "amount": sats,
            "unit": "sat",
            "memo": memo,
            "expiry": request.expiry_secs,
        });
        // Not retried: a retry could make a second invoice.
        let answer: Value = match self.read.rest.post("api/v1/payments", &body, false).await {
            Ok(v) => v,
            Err(RestError::Status { status, body }) if status == 520 || status == 400 => {
                let b = ErrorBody::parse(&body);
                return Err(WalletError::Rejected(self.redact(format!(
                    "LNbits refused to create the invoice: {}",
                    b.detail
                ))));
            }
            Err(e) => return Err(self.call_error(self.read.key, "creating an invoice", e)),
        };
        // The answer holds the invoice's preimage as well: only these two fields are read.
        let bolt11 = answer
            .get("bolt11")
            .or_else(|| answer.get("payment_request"))
            .and_then(Value::as_str)
            .ok_or_else(|| {
                WalletError::Other("LNbits answered the invoice request without an invoice".into())
            })?;
        let answered_hash = answer
            .get("payment_hash")
            .and_then(Value::as_str)
            .and_then(hash32);
        let created = check_created("LNbits", bolt11, answered_hash, request)?;
        info!(payment_hash = %hex::encode(created.payment_hash), "LNbits invoice created");
        Ok(created)
    }

    #[instrument(skip_all, fields(backend = "lnbits", payment_hash = %hex::encode(invoice.payment_hash)))]
    async fn pay_invoice(
        &self,
        invoice: &DecodedInvoice,
        _max_fee_msat: u64,
    ) -> Result<PaymentResult, WalletError> {
        // LNbits takes no fee limit: it holds its own fee reserve, and internal payments cost
        // nothing. The pay path warns when a fee exceeded the budget's.
        let Some(pay) = &self.pay else {
            return Err(WalletError::NotPayable(
                "this LNbits wallet is configured with its invoice key only, which can receive but not pay: set admin_key (L402_MCP_LNBITS_ADMIN_KEY) to pay".into(),
            ));
        };
        let body = json!({ "out": true, "bolt11": invoice.bolt11 });
        // Sent once: never retried.
        let result = match pay.rest.post::<_, Value>("api/v1/payments", &body, false).await {
            Ok(answer) => self.accepted(&invoice.payment_hash, &answer).await,
            Err(RestError::NotSent(m)) => Err(self.unreachable(&m)),
            Err(RestError::Status { status, body }) => {
                self.refused(pay, &invoice.payment_hash, status, &body)
                    .await
            }
            Err(e @ (RestError::Timeout(_) | RestError::Decode(_))) => {
                Err(WalletError::OutcomeUnknown(self.redact(format!(
                    "{e}; the payment may have gone out, so it stays pending and is reconciled through LNbits' payment lookup"
                ))))
            }
        };
        match &result {
            Ok(r) => info!(
                fee_msat = r.fee_msat,
                has_preimage = r.preimage.is_some(),
                "LNbits paid"
            ),
            Err(e) => {
                warn!(error = %e, definite = e.definitely_not_paid(), "LNbits payment did not go through")
            }
        }
        result
    }

    async fn lookup_incoming(
        &self,
        payment_hash: &[u8; 32],
    ) -> Result<IncomingStatus, WalletError> {
        let found = match self.lookup(&self.read, payment_hash).await? {
            Some(f) if f.amount_msat.is_some_and(|a| a < 0) => {
                self.incoming_from_list(payment_hash).await?
            }
            other => other,
        };
        Ok(match found {
            None => IncomingStatus::NotFound,
            Some(f) => match f.state {
                State::Succeeded => IncomingStatus::Settled {
                    amount_msat: f.amount_msat.map_or(0, i64::unsigned_abs),
                },
                // LNbits fails an invoice when it expires (or a hold invoice is cancelled).
                State::Failed => IncomingStatus::Expired,
                State::Pending => IncomingStatus::Pending,
            },
        })
    }

    async fn lookup_outgoing(
        &self,
        payment_hash: &[u8; 32],
    ) -> Result<OutgoingStatus, WalletError> {
        // Asked with the key that paid, so the answer is about the wallet that paid.
        let client = self.pay.as_ref().unwrap_or(&self.read);
        Ok(match self.lookup(client, payment_hash).await? {
            None => OutgoingStatus::NotFound,
            // Only this wallet's own invoice carries the hash: it never paid it.
            Some(f) if f.amount_msat.is_some_and(|a| a > 0) => OutgoingStatus::NotFound,
            Some(f) => match f.state {
                State::Succeeded => OutgoingStatus::Succeeded(PaymentResult {
                    preimage: f.preimage,
                    fee_msat: f.fee_msat.map_or(0, i64::unsigned_abs),
                }),
                State::Failed => OutgoingStatus::Failed("LNbits marked the payment failed".into()),
                State::Pending => OutgoingStatus::InFlight,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(status: u16, body: &str) -> Refusal {
        classify_refusal(status, &ErrorBody::parse(body))
    }

    #[test]
    fn payment_refusals_are_definite_only_when_lnbits_says_so() {
        // LNbits 1.6.2 answers.
        assert_eq!(
            refusal(
                520,
                r#"{"detail":"Insufficient balance.","status":"failed"}"#
            ),
            Refusal::Definite
        );
        assert_eq!(
            refusal(
                520,
                r#"{"detail":"Payment failed: Only internal invoices can be used!","status":"failed"}"#
            ),
            Refusal::Definite
        );
        assert_eq!(
            refusal(
                520,
                r#"{"detail":"Payment is still pending.","status":"pending"}"#
            ),
            Refusal::Unknown
        );
        assert_eq!(
            refusal(
                520,
                r#"{"detail":"Payment already paid.","status":"success"}"#
            ),
            Refusal::AlreadyPaid
        );
        assert_eq!(
            refusal(404, r#"{"detail":"Wallet not found."}"#),
            Refusal::Key
        );
        assert_eq!(
            refusal(403, r#"{"detail":"Invoice (or Admin) key required."}"#),
            Refusal::Key
        );
        assert_eq!(
            refusal(404, r#"{"detail":"Not Found"}"#),
            Refusal::NotLnbits
        );
        assert_eq!(
            refusal(
                400,
                r#"{"detail":[{"loc":["body","bolt11"],"msg":"str type expected"}]}"#
            ),
            Refusal::Definite
        );
        // Older versions: no status, known words.
        assert_eq!(
            refusal(520, r#"{"detail":"Insufficient balance."}"#),
            Refusal::Definite
        );
        assert_eq!(
            refusal(520, r#"{"detail":"Internal invoice already paid."}"#),
            Refusal::Definite
        );
        // Anything else may have moved money.
        assert_eq!(
            refusal(500, r#"{"detail":"Unexpected error! ID: 1234"}"#),
            Refusal::Unknown
        );
        assert_eq!(refusal(502, "Bad Gateway"), Refusal::Unknown);
        assert_eq!(
            refusal(400, r#"{"detail":"something odd"}"#),
            Refusal::Unknown
        );
        // A body the client cut short still says what it says.
        assert_eq!(
            refusal(
                520,
                r#"{"detail": "Insufficient balance.", "status": "failed"#
            ),
            Refusal::Definite
        );
    }

    #[test]
    fn lookups_read_status_preimage_and_amounts() {
        let pre = "838d4177dc4c79052cededbf78f6f1b7c2a4148b950762feeb605d77a79c5954";
        let paid: Value = serde_json::from_str(&format!(
            r#"{{"paid":true,"preimage":"{pre}","details":{{"amount":-21000,"fee":-1000,"status":"success","preimage":"{pre}"}}}}"#
        ))
        .unwrap_or_default();
        let f = Found::read(&paid, &paid["details"]);
        assert_eq!(f.state, State::Succeeded);
        assert_eq!(f.preimage, crate::l402::parse_hex32(pre));
        assert_eq!((f.amount_msat, f.fee_msat), (Some(-21000), Some(-1000)));

        let zero: Value = serde_json::from_str(&format!(
            r#"{{"paid":true,"preimage":"{}","details":{{"amount":-1000,"status":"success"}}}}"#,
            "0".repeat(64)
        ))
        .unwrap_or_default();
        assert_eq!(Found::read(&zero, &zero["details"]).preimage, None);

        // An unpaid invoice's preimage (LNbits keeps it in details) is never taken.
        let pending: Value = serde_json::from_str(&format!(
            r#"{{"paid":false,"status":"pending","preimage":null,"details":{{"amount":21000,"status":"pending","preimage":"{pre}"}}}}"#
        ))
        .unwrap_or_default();
        let f = Found::read(&pending, &pending["details"]);
        assert_eq!((f.state, f.preimage), (State::Pending, None));

        let failed: Value = serde_json::from_str(
            r#"{"paid":false,"status":"failed","details":{"amount":21000,"status":"failed"}}"#,
        )
        .unwrap_or_default();
        assert_eq!(
            Found::read(&failed, &failed["details"]).state,
            State::Failed
        );
    }

    #[test]
    fn config_needs_a_key_and_hides_both() {
        let parse = |s: &str| toml::from_str::<LnbitsConfig>(s).map_err(|e| e.to_string());
        let both = parse("url = \"http://x\"\nadmin_key = \"adm1n\"\ninvoice_key = \"1nv\"");
        let shown = format!("{both:?}");
        assert!(
            both.is_ok() && !shown.contains("adm1n") && !shown.contains("1nv"),
            "{shown}"
        );
        assert!(parse("url = \"http://x\"\ninvoice_key = \"1nv\"").is_ok());
        assert!(parse("url = \"http://x\"").is_err_and(|e| e.contains("admin_key")));
        assert!(parse("url = \"http://x\"\nadmin_key = \" \"").is_err());
        assert!(parse("url = \"http://x\"\nadmin_key = \"a\"\nadminkey = \"b\"").is_err());
    }

    /// A stand-in answering as LNbits 1.6.2 does in the cases its FakeWallet cannot produce
    /// (payments that stay pending, lost answers, crashes). `pay` answers the payment request
    /// (status 0: never in time); `lookups` answer the lookups in turn, the last one repeating.
    async fn replay(pay: (u16, String), lookups: Vec<(u16, String)>) -> LnbitsWallet {
        use axum::extract::State;
        use axum::http::StatusCode;
        use axum::routing::{get, post};
        use std::sync::{Arc, Mutex};

        type Answers = Arc<(Mutex<Vec<(u16, String)>>, (u16, String))>;
        fn answer((status, body): (u16, String)) -> (StatusCode, String) {
            (
                StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                body,
            )
        }
        let state: Answers = Arc::new((Mutex::new(lookups), pay));
        let app = axum::Router::new()
            .route(
                "/api/v1/payments",
                post(|State(s): State<Answers>| async move {
                    if s.1.0 == 0 {
                        tokio::time::sleep(Duration::from_secs(5)).await;
                    }
                    answer(s.1.clone())
                }),
            )
            .route(
                "/api/v1/payments/{hash}",
                get(|State(s): State<Answers>| async move {
                    let mut queue = s.0.lock().unwrap_or_else(|e| e.into_inner());
                    let next = if queue.len() > 1 {
                        queue.remove(0)
                    } else {
                        queue.first().cloned().unwrap_or((404, String::new()))
                    };
                    answer(next)
                }),
            )
            .route(
                "/api/v1/wallet",
                get(|| async { r#"{"name":"w","balance":5000000,"id":"x"}"#.to_owned() }),
            )
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let url = format!(
            "http://{}",
            listener.local_addr().unwrap_or_else(|e| panic!("{e}"))
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        LnbitsWallet::new(&LnbitsConfig {
            url,
            admin_key: Some("admin".into()),
            invoice_key: Some("invoice".into()),
            network: None,
            timeout_secs: Some(1),
        })
        .unwrap_or_else(|e| panic!("{e}"))
    }

    fn an_invoice() -> (DecodedInvoice, [u8; 32]) {
        let preimage = [7u8; 32];
        let key = bitcoin::secp256k1::SecretKey::from_slice(&[0x42; 32])
            .unwrap_or_else(|e| panic!("{e}"));
        let bolt11 = crate::bolt11::create(
            &key,
            &crate::bolt11::NewInvoice {
                network: Network::Mainnet,
                amount_msat: Some(1_000),
                description: "replay",
                payment_hash: crate::l402::sha256(&preimage),
                payment_secret: [1; 32],
                timestamp: 1_800_000_000,
                expiry_secs: 600,
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
        (
            crate::bolt11::decode(&bolt11).unwrap_or_else(|e| panic!("{e}")),
            preimage,
        )
    }

    #[tokio::test]
    async fn the_pay_path_keeps_payments_pending_unless_lnbits_is_sure() {
        let (inv, preimage) = an_invoice();
        let pre = hex::encode(preimage);
        let paid = format!(
            r#"{{"paid":true,"preimage":"{pre}","details":{{"amount":-1000,"fee":-3000,"status":"success","preimage":"{pre}"}}}}"#
        );
        let pending = r#"{"paid":false,"status":"pending","details":{"amount":-1000,"fee":-2000,"status":"pending"}}"#.to_owned();
        let unknown = |r: &Result<PaymentResult, WalletError>| matches!(r, Err(e @ WalletError::OutcomeUnknown(_)) if !e.definitely_not_paid());

        // A crash inside LNbits, a lost answer, LNbits' own "pending": never definite.
        let w = replay(
            (500, r#"{"detail":"Unexpected error! ID: 1"}"#.into()),
            vec![],
        )
        .await;
        assert!(unknown(&w.pay_invoice(&inv, 0).await));
        let w = replay((0, String::new()), vec![]).await;
        assert!(unknown(&w.pay_invoice(&inv, 0).await));
        let w = replay(
            (
                520,
                r#"{"detail":"Payment is still pending.","status":"pending"}"#.into(),
            ),
            vec![],
        )
        .await;
        assert!(unknown(&w.pay_invoice(&inv, 0).await));
        // Accepted but still routing after the polls: unknown, to be reconciled.
        let w = replay(
            (201, r#"{"status":"pending"}"#.into()),
            vec![(200, pending.clone())],
        )
        .await;
        assert!(unknown(&w.pay_invoice(&inv, 0).await));

        // Accepted as pending, then paid: the preimage and fee come from the lookup.
        let w = replay(
            (201, r#"{"status":"pending","fee":-2000}"#.into()),
            vec![(200, pending.clone()), (200, paid.clone())],
        )
        .await;
        assert_eq!(
            w.pay_invoice(&inv, 0).await,
            Ok(PaymentResult {
                preimage: Some(preimage),
                fee_msat: 3000
            })
        );
        // Accepted as pending, then failed: definite.
        let w = replay(
            (201, r#"{"status":"pending"}"#.into()),
            vec![(
                200,
                r#"{"paid":false,"status":"failed","details":{"amount":-1000,"status":"failed"}}"#
                    .into(),
            )],
        )
        .await;
        assert!(matches!(
            w.pay_invoice(&inv, 0).await,
            Err(WalletError::Rejected(_))
        ));
        // An older LNbits answers only with the hash: the lookup tells.
        let w = replay(
            (
                201,
                format!(r#"{{"payment_hash":"{}"}}"#, hex::encode(inv.payment_hash)),
            ),
            vec![(200, paid.clone())],
        )
        .await;
        assert_eq!(
            w.pay_invoice(&inv, 0).await.map(|r| r.preimage),
            Ok(Some(preimage))
        );
        // Paid, with the all-zero placeholder and no better preimage anywhere: paid, without
        // proof (the pay path records and reports that).
        let w = replay(
            (
                201,
                format!(r#"{{"status":"success","fee":-1000,"preimage":"{}"}}"#, "0".repeat(64)),
            ),
            vec![(
                200,
                r#"{"paid":true,"preimage":null,"details":{"amount":-1000,"fee":-1000,"status":"success"}}"#
                    .into(),
            )],
        )
        .await;
        assert_eq!(
            w.pay_invoice(&inv, 0).await,
            Ok(PaymentResult {
                preimage: None,
                fee_msat: 1000
            })
        );
        // "Already paid", by someone else (this wallet has no such payment): definite.
        let w = replay(
            (
                520,
                r#"{"detail":"Payment already paid.","status":"success"}"#.into(),
            ),
            vec![(404, r#"{"detail":"Payment does not exist."}"#.into())],
        )
        .await;
        assert!(matches!(
            w.pay_invoice(&inv, 0).await,
            Err(WalletError::Rejected(_))
        ));
        // ... and by this wallet: its earlier payment.
        let w = replay(
            (
                520,
                r#"{"detail":"Payment already paid.","status":"success"}"#.into(),
            ),
            vec![(200, paid)],
        )
        .await;
        assert_eq!(
            w.pay_invoice(&inv, 0).await.map(|r| r.preimage),
            Ok(Some(preimage))
        );
    }

    #[tokio::test]
    async fn errors_never_carry_the_keys() {
        let config = LnbitsConfig {
            // Nothing listens on port 9 of loopback.
            url: "http://127.0.0.1:9".into(),
            admin_key: Some("s3cr3t-admin-key".into()),
            invoice_key: Some("s3cr3t-invoice-key".into()),
            network: None,
            timeout_secs: Some(2),
        };
        let w = LnbitsWallet::new(&config).unwrap_or_else(|e| panic!("{e}"));
        assert!(!format!("{w:?}").contains("s3cr3t"));
        let e = w
            .balance()
            .await
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            e.contains("could not reach LNbits") && !e.contains("s3cr3t"),
            "{e}"
        );
        let sub_sat = w
            .create_invoice(&InvoiceRequest {
                amount_msat: 1_500,
                description: String::new(),
                expiry_secs: 60,
            })
            .await;
        assert!(
            matches!(&sub_sat, Err(WalletError::Rejected(m)) if m.contains("whole sats")),
            "{sub_sat:?}"
        );
        assert_eq!(
            w.redact("key s3cr3t-admin-key and s3cr3t-invoice-key"),
            "key <key> and <key>"
        );
    }
}
