//! ln.bot over its public wallet API with a key (`Authorization: Bearer wk_...`), in sats.
//! Read in ln.bot's SDKs (PyPI and crates `lnbot` 1.2.0: client, types, errors; the TypeScript
//! SDK) and API docs (ln.bot/docs); not run against ln.bot here (see docs/wallets/lnbot.md for
//! what is verified).
//!
//! - Paths are per wallet: `/v1/wallets/{walletId}/...`; a wallet key's own wallet is
//!   `GET /v1/wallets/current`. Amounts and fees are whole sats; dates RFC 3339.
//! - Invoices: `POST .../invoices {amount, memo}` (no expiry parameter: ln.bot's own), looked up
//!   by payment hash (`GET .../invoices/{number_or_hash}`); an expired invoice can still turn
//!   settled a moment later, so it is only called expired a while after its expiry.
//! - Payments are asynchronous: `POST .../payments {target, maxFee, idempotencyKey}` usually
//!   answers `pending`; `GET .../payments/{number_or_hash}` says `processing`, `settled` (with
//!   `preimage`, `actualFee` and `serviceFee`) or `failed` (`failureReason`). The fee limit is in
//!   sats and covers routing only: ln.bot's service fee, priced first with
//!   `GET .../payments/resolve`, is counted into the budget's limit.

mod config;

use async_trait::async_trait;
use reqwest::Method;
use serde_json::{Value, json};
use tokio::sync::OnceCell;
use tracing::{info, instrument};

pub use self::config::{DEFAULT_URL, LnbotConfig};
use super::toolkit::dates::{rfc3339, unix_now};
use super::toolkit::json::preimage_for;
use super::toolkit::node::{self, accepted_outcome, before_sending, check_created, follow_pending};
use super::toolkit::redact::clip_chars;
use super::toolkit::{HostedApi, PreimagePolicy, RestError, amount};
use super::{
    AccessCheck, Balance, CreatedInvoice, IncomingStatus, InvoiceRequest, Level, OutgoingStatus,
    PaymentResult, Wallet, WalletError, WalletInfo,
};
use crate::bolt11::{DecodedInvoice, Network};
use crate::budget::MSAT_PER_SAT;
use crate::l402::PaymentHash;

const KIND: &str = "lnbot";
/// How long after its expiry an invoice may still turn settled ("one paid just before it
/// expired can turn settled a moment later").
const EXPIRY_GRACE_SECS: u64 = 300;
/// ln.bot's ceiling on a payment's `maxFee`: 10,000 sats or 5% of the amount, the larger.
const MAX_FEE_CEILING_SATS: u64 = 10_000;

/// The ln.bot backend.
#[derive(Debug)]
pub struct LnbotWallet {
    api: HostedApi,
    network: Network,
    /// The configured wallet, else the key's own (found once).
    wallet_id: OnceCell<String>,
    user_key: bool,
    preimages: PreimagePolicy,
}

/// What ln.bot's error answer says: its `message` (or `error`).
fn message(body: &str) -> String {
    let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    ["message", "error"]
        .iter()
        .find_map(|k| v.get(k).and_then(Value::as_str))
        .map_or_else(|| crate::wallet::toolkit::redact::clip(body), str::to_owned)
}

/// Whole sats of an answer's field, in msat.
fn sats_field(v: &Value, field: &str) -> Result<Option<u64>, WalletError> {
    v.get(field)
        .and_then(Value::as_number)
        .map(amount::sats_to_msat)
        .transpose()
        .map_err(|e| WalletError::Other(format!("ln.bot's {field}: {e}")))
}

impl LnbotWallet {
    pub fn new(config: &LnbotConfig) -> Result<LnbotWallet, WalletError> {
        let user_key = config.api_key.expose().trim().starts_with("uk_");
        let wallet_id = config
            .wallet_id
            .as_deref()
            .map(str::trim)
            .filter(|w| !w.is_empty());
        if user_key && wallet_id.is_none() {
            return Err(WalletError::Other(
                "api_key is an ln.bot user key (uk_), which controls every wallet of the account: use the wallet's own key (wk_), or set wallet_id (L402_MCP_LNBOT_WALLET_ID)".into(),
            ));
        }
        Ok(LnbotWallet {
            api: HostedApi::new(
                "ln.bot",
                "LNBOT",
                &config.url,
                &config.url,
                &config.api_key,
                |key| ("Authorization", format!("Bearer {key}")),
                node::timeout(config.timeout_secs),
            )?,
            network: config.network.unwrap_or(Network::Mainnet),
            wallet_id: wallet_id.map_or_else(OnceCell::new, |w| OnceCell::from(w.to_owned())),
            user_key,
            preimages: PreimagePolicy::new(config.returns_preimages),
        })
    }

    /// The error of a call that moves no money; `what` says what it was for.
    fn call_error(&self, what: &str, e: RestError) -> WalletError {
        let msg = match e {
            RestError::NotSent(m) => return self.api.unreachable(&m),
            RestError::Status {
                status: status @ (401 | 403),
                ..
            } => return self.api.key_refused(status),
            e if e.is_rate_limited() => return e.into_wallet_error(),
            RestError::Status { status, body } => {
                format!("{what}: ln.bot answered HTTP {status}: {}", message(&body))
            }
            other => format!("{what}: {other}"),
        };
        WalletError::Other(self.api.redact(msg))
    }

    /// The wallet's own path: `v1/wallets/{id}/` and `tail`.
    async fn path(&self, tail: &str) -> Result<String, WalletError> {
        let id = self
            .wallet_id
            .get_or_try_init(|| async {
                let w: Value = self
                    .api
                    .rest
                    .get("v1/wallets/current")
                    .await
                    .map_err(|e| self.call_error("finding the key's wallet", e))?;
                w.get("walletId")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .ok_or_else(|| {
                        WalletError::Other("ln.bot answered without the wallet's id".into())
                    })
            })
            .await?;
        Ok(format!("v1/wallets/{id}/{tail}"))
    }

    /// The wallet: its balance, and proof the key and the wallet are right.
    async fn wallet(&self) -> Result<Value, WalletError> {
        let path = self.path("").await?;
        self.api
            .rest
            .get(path.trim_end_matches('/'))
            .await
            .map_err(|e| match e {
                RestError::Status { status: 404, .. } => WalletError::Unavailable(
                    "ln.bot has no such wallet for this key: check wallet_id (L402_MCP_LNBOT_WALLET_ID) and api_key".into(),
                ),
                e => self.call_error("reading the wallet", e),
            })
    }

    /// A payment as ln.bot shows it, in our terms.
    fn outgoing(&self, p: &Value, hash: &PaymentHash) -> Result<OutgoingStatus, WalletError> {
        Ok(match p.get("status").and_then(Value::as_str) {
            Some("settled") => {
                let fee = sats_field(p, "actualFee")?.unwrap_or(0)
                    + sats_field(p, "serviceFee")?.unwrap_or(0);
                let r = PaymentResult {
                    preimage: p
                        .get("preimage")
                        .and_then(Value::as_str)
                        .and_then(|s| preimage_for(s, hash)),
                    fee_msat: fee,
                };
                self.preimages.note(KIND, &r);
                OutgoingStatus::Succeeded(r)
            }
            Some("failed") => OutgoingStatus::Failed(format!(
                "ln.bot could not pay: {}",
                p.get("failureReason")
                    .and_then(Value::as_str)
                    .unwrap_or("no reason given")
            )),
            Some("pending" | "processing") => OutgoingStatus::InFlight,
            other => {
                return Err(WalletError::Other(format!(
                    "ln.bot answered a payment status of {other:?}"
                )));
            }
        })
    }

    /// The routing fee limit ln.bot is given, in sats: the budget's limit less ln.bot's service
    /// fee (priced first; moves no money), within ln.bot's bounds.
    async fn max_fee_sats(
        &self,
        invoice: &DecodedInvoice,
        max_fee_msat: u64,
    ) -> Result<u64, WalletError> {
        let path = self.path("payments/resolve").await?;
        let query: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("target", &invoice.bolt11)
            .finish();
        let r: Value = self
            .api
            .rest
            .get(&format!("{path}?{query}"))
            .await
            .map_err(|e| before_sending(self.call_error("pricing the payment", e)))?;
        let service = sats_field(&r, "serviceFee")
            .map_err(before_sending)?
            .unwrap_or(0);
        let estimate = sats_field(&r, "networkFeeEstimate")
            .map_err(before_sending)?
            .unwrap_or(0);
        let amount_sats = invoice.amount_msat.unwrap_or(0) / MSAT_PER_SAT;
        let ceiling = MAX_FEE_CEILING_SATS.max(amount_sats / 20);
        let routing = (max_fee_msat.saturating_sub(service) / MSAT_PER_SAT).min(ceiling);
        if routing == 0 || estimate > routing * MSAT_PER_SAT {
            return Err(WalletError::Rejected(format!(
                "ln.bot's fees for this payment (service fee {service} msat, routing estimate {estimate} msat) do not fit the fee limit of {max_fee_msat} msat; nothing was paid"
            )));
        }
        Ok(routing)
    }

    /// What a failed payment request means for the money.
    async fn pay_failed(&self, hash: &PaymentHash, e: RestError) -> WalletError {
        match e {
            RestError::NotSent(m) => self.api.unreachable(&m),
            RestError::Status {
                status: status @ (401 | 403),
                ..
            } => self.api.key_refused(status),
            RestError::Status { status: 429, body } => WalletError::Unavailable(format!(
                "ln.bot is rate-limiting this client (HTTP 429 {}); nothing was paid",
                message(&body)
            )),
            // Refused as asked (a fee above maxFee, a target it cannot pay, no such wallet).
            RestError::Status {
                status: status @ (400 | 404),
                body,
            } => WalletError::Rejected(format!("ln.bot refused the payment (HTTP {status}): {}", message(&body))),
            // A conflict: ln.bot has a payment of this invoice. What it says of it decides.
            RestError::Status { status: 409, body } => match self.lookup_outgoing(hash).await {
                Ok(OutgoingStatus::Succeeded(_) | OutgoingStatus::InFlight) => {
                    WalletError::OutcomeUnknown(format!(
                        "ln.bot has a payment of this invoice already ({}); it stays pending and is reconciled",
                        message(&body)
                    ))
                }
                _ => WalletError::Rejected(format!("ln.bot refused the payment (HTTP 409): {}", message(&body))),
            },
            other => WalletError::OutcomeUnknown(self.api.redact(format!(
                "{other}; the payment may have gone out, so it stays pending and is reconciled through ln.bot's payment lookup"
            ))),
        }
    }
}

#[async_trait]
impl Wallet for LnbotWallet {
    async fn info(&self) -> Result<WalletInfo, WalletError> {
        self.wallet().await?;
        Ok(self
            .api
            .info(KIND, self.network, !self.withholds_preimages()))
    }

    async fn balance(&self) -> Result<Balance, WalletError> {
        let w = self.wallet().await?;
        // What can be spent: the balance less what payments under way hold.
        let msat = match sats_field(&w, "available")? {
            Some(m) => m,
            None => sats_field(&w, "balance")?.unwrap_or(0),
        };
        Ok(Balance {
            msat,
            demo_funds: false,
        })
    }

    #[instrument(skip_all, fields(backend = "lnbot", amount_msat = request.amount_msat))]
    async fn create_invoice(
        &self,
        request: &InvoiceRequest,
    ) -> Result<CreatedInvoice, WalletError> {
        let sats = node::whole_sats("ln.bot", request.amount_msat)?;
        let path = self.path("invoices").await?;
        let body = json!({ "amount": sats, "memo": clip_chars(&request.description, 640) });
        // Not retried: a retry could make a second invoice.
        let v: Value = self
            .api
            .rest
            .post(&path, &body, false)
            .await
            .map_err(|e| match e {
                RestError::Status { status: 400, body } => WalletError::Rejected(format!(
                    "ln.bot refused to create the invoice: {}",
                    message(&body)
                )),
                e => self.call_error("creating an invoice", e),
            })?;
        let bolt11 = v.get("bolt11").and_then(Value::as_str).ok_or_else(|| {
            WalletError::Other("ln.bot answered the invoice request without an invoice".into())
        })?;
        let created = check_created("ln.bot", bolt11, None, request)?;
        info!(payment_hash = %created.payment_hash, "ln.bot invoice created");
        Ok(created)
    }

    #[instrument(skip_all, fields(backend = "lnbot", payment_hash = %invoice.payment_hash))]
    async fn pay_invoice(
        &self,
        invoice: &DecodedInvoice,
        max_fee_msat: u64,
    ) -> Result<PaymentResult, WalletError> {
        let hash = &invoice.payment_hash;
        let max_fee = self.max_fee_sats(invoice, max_fee_msat).await?;
        let path = self.path("payments").await.map_err(before_sending)?;
        let body = json!({
            "target": invoice.bolt11,
            "maxFee": max_fee,
            // This attempt's: ln.bot never makes two payments of one request.
            "idempotencyKey": format!("l402mcp-{}-{:016x}", &hash.to_hex()[..16], rand::random::<u64>()),
            "reference": "l402-mcp",
        });
        // Sent once: never retried.
        let result = match self
            .api
            .rest
            .send::<_, Value>(Method::POST, &path, Some(&body), false)
            .await
        {
            Ok(p) => match self.outgoing(&p, hash) {
                Ok(OutgoingStatus::Succeeded(r)) => Ok(r),
                Ok(OutgoingStatus::Failed(why)) => Err(WalletError::Rejected(why)),
                // Asynchronous: followed through the lookup while under way.
                _ => accepted_outcome(
                    "ln.bot",
                    follow_pending(|| self.lookup_outgoing(hash)).await,
                ),
            },
            Err(e) => Err(self.pay_failed(hash, e).await),
        };
        node::logged(KIND, result)
    }

    /// ln.bot's invoices always have an amount (`amount` is required).
    async fn create_amountless_invoice(
        &self,
        _description: &str,
        _expiry_secs: u64,
    ) -> Result<CreatedInvoice, WalletError> {
        Err(node::unsupported(
            "ln.bot",
            "create amountless invoices (a Payment session's return invoice, to buy sessions)",
            "its invoices always state an amount (`amount` is required)",
        ))
    }

    /// ln.bot's `amount` on a payment is documented for Lightning addresses and LNURL only; a
    /// refund is not sent on a guess.
    async fn pay_amountless(
        &self,
        _invoice: &DecodedInvoice,
        _amount_msat: u64,
        _max_fee_msat: u64,
    ) -> Result<PaymentResult, WalletError> {
        Err(node::unsupported(
            "ln.bot",
            "pay amountless invoices (a Payment session's refund, to sell sessions)",
            "its API documents a payment's `amount` for Lightning addresses and LNURL only, not for a BOLT11 invoice without an amount",
        ))
    }

    async fn lookup_incoming(
        &self,
        payment_hash: &PaymentHash,
    ) -> Result<IncomingStatus, WalletError> {
        let path = self.path(&format!("invoices/{payment_hash}")).await?;
        let v: Value = match self.api.rest.get(&path).await {
            Ok(v) => v,
            Err(RestError::Status { status: 404, .. }) => return Ok(IncomingStatus::NotFound),
            Err(e) => return Err(self.call_error("looking the invoice up", e)),
        };
        Ok(match v.get("status").and_then(Value::as_str) {
            Some("settled") => IncomingStatus::Settled {
                amount_msat: sats_field(&v, "amount")?.unwrap_or(0),
            },
            Some("expired") => {
                let expired_at = v.get("expiresAt").and_then(Value::as_str).and_then(rfc3339);
                match expired_at {
                    // It may still turn settled for a while.
                    Some(at) if unix_now() < at + EXPIRY_GRACE_SECS => IncomingStatus::Pending,
                    _ => IncomingStatus::Expired,
                }
            }
            Some("pending") => IncomingStatus::Pending,
            other => {
                return Err(WalletError::Other(format!(
                    "ln.bot answered an invoice status of {other:?}"
                )));
            }
        })
    }

    async fn lookup_outgoing(
        &self,
        payment_hash: &PaymentHash,
    ) -> Result<OutgoingStatus, WalletError> {
        let path = self.path(&format!("payments/{payment_hash}")).await?;
        match self.api.rest.get::<Value>(&path).await {
            Ok(p) => self.outgoing(&p, payment_hash),
            Err(RestError::Status { status: 404, .. }) => Ok(OutgoingStatus::NotFound),
            Err(e) => Err(self.call_error("looking the payment up", e)),
        }
    }

    fn withholds_preimages(&self) -> bool {
        self.preimages.withholds()
    }

    async fn access(&self) -> Vec<AccessCheck> {
        let key = if self.user_key {
            AccessCheck {
                check: "key",
                level: Level::Warn,
                detail: "a user key (uk_): it controls every wallet of the ln.bot account".into(),
                fix: Some("use this wallet's own key (wk_) instead".into()),
            }
        } else {
            AccessCheck {
                check: "key",
                level: Level::Warn,
                detail: "a wallet key (wk_): ln.bot has no read-only or receive-only keys, so even a seller's key can spend this wallet".into(),
                fix: Some("keep in this ln.bot wallet only what the agent may spend, and the budget below it".into()),
            }
        };
        let preimages = self.preimages.access_check(
            "ln.bot",
            "",
            "ln.bot's payments carry a preimage field, not verified to be filled for every payment",
        );
        vec![key, preimages]
    }
}
