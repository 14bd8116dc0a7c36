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

mod api;
mod config;
mod error;
mod pay;

use async_trait::async_trait;
use serde_json::{Value, json};
use tokio::sync::OnceCell;
use tracing::{info, instrument, warn};

use self::api::{Found, State, WalletAnswer};
use self::config::Key;
pub use self::config::LnbitsConfig;
use self::error::ErrorBody;
use super::toolkit::json::hash32;
use super::toolkit::node::{self, check_created};
use super::toolkit::redact::{Secrets, clip_chars};
use super::toolkit::{Rest, RestError, Tls};
use super::{
    Balance, CreatedInvoice, IncomingStatus, InvoiceRequest, OutgoingStatus, PaymentResult, Wallet,
    WalletError, WalletInfo,
};
use crate::bolt11::{DecodedInvoice, Network};
use crate::secret::SecretString;

/// LNbits caps memos at this many characters.
const MAX_MEMO_CHARS: usize = 640;

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
            .as_ref()
            .map(|k| client(Key::Admin, k.expose()))
            .transpose()?;
        let read = match (&config.invoice_key, &config.admin_key) {
            (Some(k), _) => client(Key::Invoice, k.expose())?,
            (None, Some(k)) => client(Key::Admin, k.expose())?,
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
                    .map(SecretString::expose),
            ),
            checked: OnceCell::new(),
        })
    }

    /// `msg` with every configured key scrubbed out.
    fn redact(&self, msg: impl Into<String>) -> String {
        self.secrets.scrub(msg)
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
        payment_hash: &crate::l402::PaymentHash,
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
        payment_hash: &crate::l402::PaymentHash,
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
        payment_hash: &crate::l402::PaymentHash,
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

    /// LNbits (1.6.2, `create_invoice`) refuses an invoice for 0: "Amountless invoices not
    /// supported".
    async fn create_amountless_invoice(
        &self,
        _description: &str,
        _expiry_secs: u64,
    ) -> Result<CreatedInvoice, WalletError> {
        Err(node::unsupported(
            "LNbits",
            "create amountless invoices (a Payment session's return invoice, to buy sessions)",
            "LNbits makes invoices only for an amount above 0 (\"Amountless invoices not supported\")",
        ))
    }

    /// LNbits (1.6.2, `pay_invoice`) refuses a BOLT11 without an amount and takes no amount to
    /// send with one.
    async fn pay_amountless(
        &self,
        _invoice: &DecodedInvoice,
        _amount_msat: u64,
        _max_fee_msat: u64,
    ) -> Result<PaymentResult, WalletError> {
        Err(node::unsupported(
            "LNbits",
            "pay amountless invoices (a Payment session's refund, to sell sessions)",
            "LNbits pays only invoices that state their amount (\"Amountless invoices not supported\"), and its API takes no amount to send",
        ))
    }

    async fn lookup_outgoing(
        &self,
        payment_hash: &crate::l402::PaymentHash,
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
