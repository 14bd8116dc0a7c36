//! Blink (blink.sv) over its GraphQL API with an API key (`X-API-KEY`), from the account's BTC
//! wallet. Read in Blink's public schema and server code (blinkbitcoin/blink) and API docs
//! (dev.blink.sv); not run against Blink here (see docs/wallets/blink.md for what is verified).
//!
//! - Scopes: every query needs READ; `lnInvoiceCreate` RECEIVE (or WRITE); the fee probe and
//!   payments WRITE. A key without a scope gets a GraphQL error naming an
//!   `AuthorizationError`; a key Blink does not know gets HTTP 401 from its gateway.
//! - An account has a BTC wallet (sats) and a USD wallet (cents); this backend only ever uses
//!   the BTC wallet, and refuses an account or a `wallet_id` that would make it use the other.
//! - `lnInvoicePaymentSend` takes no fee limit: `lnInvoiceFeeProbe` prices the payment first
//!   and it is refused above the limit. It answers SUCCESS, FAILURE (nothing moved), PENDING
//!   (in flight) or ALREADY_PAID (this wallet paid it before), with the SEND transaction whose
//!   `settlementVia.preImage` is the proof and `settlementFee` the fee in sats. Paying the same
//!   invoice again is answered from Blink's records, never paid twice; still, a payment is
//!   sent once, and an unclear answer is reconciled through `transactionsByPaymentHash`.
//! - A Payment session's return invoice is `lnNoAmountInvoiceCreate`; its refund
//!   `lnNoAmountInvoicePaymentSend` with `amount` in sats (priced first by
//!   `lnNoAmountInvoiceFeeProbe`), answered like `lnInvoicePaymentSend`.

mod api;
mod config;
mod error;

use async_trait::async_trait;
use serde_json::{Value, json};
use tokio::sync::OnceCell;
use tracing::{info, instrument};

use self::api::{AccountWallet, Scope};
pub use self::config::{BlinkConfig, DEFAULT_URL};
use self::error::Failure;
use super::toolkit::json::hash32;
use super::toolkit::node::{
    self, accepted_outcome, before_sending, check_created, check_created_amountless,
    follow_pending, reported_network, settle_network,
};
use super::toolkit::{HostedApi, amount};
use super::{
    AccessCheck, Balance, CreatedInvoice, IncomingStatus, InvoiceRequest, Level, OutgoingStatus,
    PaymentResult, Wallet, WalletError, WalletInfo,
};
use crate::bolt11::{DecodedInvoice, Network};

/// Blink's memo limit, in bytes.
const MAX_MEMO_BYTES: usize = 639;

/// The Blink backend.
#[derive(Debug)]
pub struct BlinkWallet {
    api: HostedApi,
    /// The GraphQL endpoint's path below the client's base.
    path: String,
    network: Option<Network>,
    /// The configured wallet, if any (it must be a BTC wallet of the account).
    wallet_id: Option<String>,
    /// The BTC wallet's id, once found.
    btc_wallet: OnceCell<String>,
    /// The key's scopes, once read.
    scopes: OnceCell<Vec<Scope>>,
}

/// The endpoint URL as a base and a path: `https://api.blink.sv/graphql` is POSTed to as it
/// is (the client's base always ends in `/`); a bare host gets `/graphql`.
fn endpoint(url: &str) -> (String, String) {
    let url = url.trim().trim_end_matches('/');
    match url.rsplit_once('/') {
        Some((base, last)) if last == "graphql" => (format!("{base}/"), last.to_owned()),
        _ => (format!("{url}/"), "graphql".to_owned()),
    }
}

impl BlinkWallet {
    pub fn new(config: &BlinkConfig) -> Result<BlinkWallet, WalletError> {
        let (base, path) = endpoint(&config.url);
        Ok(BlinkWallet {
            api: HostedApi::new(
                "Blink",
                "BLINK",
                &config.url,
                &base,
                &config.api_key,
                |key| ("X-API-KEY", key.to_owned()),
                node::timeout(config.timeout_secs),
            )?,
            path,
            network: config.network,
            wallet_id: config
                .wallet_id
                .as_deref()
                .map(str::trim)
                .filter(|w| !w.is_empty())
                .map(str::to_owned),
            btc_wallet: OnceCell::new(),
            scopes: OnceCell::new(),
        })
    }

    /// One GraphQL request; its `data` unless the answer holds top-level errors. `needs` is
    /// the scope the operation needs (named when Blink refuses it); only a request that moves
    /// no money may be `idempotent` (retried).
    async fn gql(
        &self,
        query: &str,
        variables: Value,
        needs: Scope,
        idempotent: bool,
    ) -> Result<Value, Failure> {
        let body = json!({ "query": query, "variables": variables });
        let answer: Value = self
            .api
            .rest
            .post(&self.path, &body, idempotent)
            .await
            .map_err(Failure::Http)?;
        if let Some(f) = Failure::of_answer(&answer, needs) {
            return Err(f);
        }
        Ok(answer.get("data").cloned().unwrap_or(Value::Null))
    }

    /// A query that moves nothing and needs READ; `what` says what for, in its error.
    async fn read(&self, query: &str, what: &str) -> Result<Value, WalletError> {
        self.gql(query, json!({}), Scope::Read, true)
            .await
            .map_err(|f| self.call_error(what, f))
    }

    /// The account's BTC wallet (or the configured one, checked to be it), read now.
    async fn btc_wallet(&self) -> Result<AccountWallet, WalletError> {
        let data = self
            .read(api::WALLETS, "reading the account's wallets")
            .await?;
        let wallets = api::wallets(&data).ok_or_else(|| {
            WalletError::Other("Blink answered without the account's wallets".into())
        })?;
        match &self.wallet_id {
            Some(id) => match wallets.into_iter().find(|w| &w.id == id) {
                Some(w) if w.currency == "BTC" => Ok(w),
                Some(w) => Err(WalletError::Unavailable(format!(
                    "wallet_id (L402_MCP_BLINK_WALLET_ID) is this account's {} wallet, which holds no sats: set the BTC wallet's id, or leave wallet_id out to use the BTC wallet",
                    w.currency
                ))),
                None => Err(WalletError::Unavailable(
                    "wallet_id (L402_MCP_BLINK_WALLET_ID) is not a wallet of this account: leave it out to use the account's BTC wallet".into(),
                )),
            },
            None => wallets.into_iter().find(|w| w.currency == "BTC").ok_or_else(|| {
                WalletError::Unavailable(
                    "this Blink account has no BTC wallet, only a USD (Stablesats) one: l402-mcp holds, pays and invoices in sats, from a BTC wallet; use a Blink account with a BTC wallet".into(),
                )
            }),
        }
    }

    /// The BTC wallet's id (found once).
    async fn wallet_id(&self) -> Result<&str, WalletError> {
        self.btc_wallet
            .get_or_try_init(|| async { self.btc_wallet().await.map(|w| w.id) })
            .await
            .map(String::as_str)
    }

    /// The key's scopes (read once).
    async fn scopes(&self) -> Result<&[Scope], WalletError> {
        self.scopes
            .get_or_try_init(|| async {
                let data = self
                    .read(api::SCOPES, "reading the API key's scopes")
                    .await?;
                let names = data
                    .pointer("/authorization/scopes")
                    .and_then(Value::as_array)
                    .ok_or_else(|| {
                        WalletError::Other("Blink answered without the key's scopes".into())
                    })?;
                Ok(names
                    .iter()
                    .filter_map(|s| match s.as_str()? {
                        "READ" => Some(Scope::Read),
                        "RECEIVE" => Some(Scope::Receive),
                        "WRITE" => Some(Scope::Write),
                        _ => None,
                    })
                    .collect())
            })
            .await
            .map(Vec::as_slice)
    }

    /// What Blink would charge in fees to pay as `send` says (with the payment's `input`), in
    /// msat; moves no money.
    async fn probe(&self, send: &Send<'_>, input: &Value) -> Result<u64, WalletError> {
        let data = self
            .gql(send.probe, json!({ "input": input }), Scope::Write, true)
            .await
            .map_err(|f| match f {
                Failure::Scope(s) => WalletError::NotPayable(self.lacks(s, "paying")),
                f => self.call_error("pricing the payment (fee probe)", f),
            })?;
        let payload = &data[send.probe_field];
        if let Some(errors) = api::payload_errors(payload) {
            return Err(WalletError::Rejected(format!(
                "Blink cannot pay this invoice ({errors}); nothing was paid"
            )));
        }
        let sats = payload
            .get("amount")
            .and_then(Value::as_number)
            .ok_or_else(|| WalletError::Other("Blink's fee probe answered no amount".into()))?;
        amount::sats_to_msat(sats).map_err(|e| WalletError::Other(format!("Blink's fee: {e}")))
    }

    /// What the answer to a payment (`lnInvoicePaymentSend` or `lnNoAmountInvoicePaymentSend`,
    /// the same payload) says, following it while it is pending.
    async fn sent(
        &self,
        payment_hash: &crate::l402::PaymentHash,
        payload: &Value,
    ) -> Result<PaymentResult, WalletError> {
        let status = payload.get("status").and_then(Value::as_str);
        let answered = payload
            .get("transaction")
            .filter(|t| t.is_object())
            .map(api::outgoing);
        match (status, answered) {
            (Some("SUCCESS" | "ALREADY_PAID"), Some(Ok(OutgoingStatus::Succeeded(r)))) => {
                if status == Some("ALREADY_PAID") {
                    info!("Blink says this wallet paid the invoice before");
                }
                return Ok(r);
            }
            (Some("FAILURE"), _) => {
                let why = api::payload_errors(payload).unwrap_or_else(|| "no reason given".into());
                return Err(WalletError::Rejected(format!("Blink could not pay: {why}")));
            }
            (Some("SUCCESS" | "ALREADY_PAID" | "PENDING"), _) => {}
            (other, _) => {
                return Err(WalletError::OutcomeUnknown(format!(
                    "Blink answered the payment with status {other:?}; it stays pending and is reconciled"
                )));
            }
        }
        // Pending, or paid without the transaction: Blink's record says how it ends.
        accepted_outcome(
            "Blink",
            follow_pending(|| self.lookup_outgoing(payment_hash)).await,
        )
    }

    /// Pay as `send` says: the key's Write scope and the fee probe first (above the limit,
    /// nothing is sent), then the payment, sent once; its answer followed while pending.
    async fn pay(
        &self,
        invoice: &DecodedInvoice,
        send: &Send<'_>,
        max_fee_msat: u64,
    ) -> Result<PaymentResult, WalletError> {
        // A key that may not pay is told so before anything is asked of Blink.
        if !self
            .scopes()
            .await
            .map_err(before_sending)?
            .contains(&Scope::Write)
        {
            return Err(WalletError::NotPayable(self.lacks(Scope::Write, "paying")));
        }
        let wallet_id = self.wallet_id().await.map_err(before_sending)?;
        let mut input = json!({ "walletId": wallet_id, "paymentRequest": invoice.bolt11 });
        if let Some(sats) = send.amount_sats {
            input["amount"] = json!(sats);
        }
        let fee = self.probe(send, &input).await.map_err(before_sending)?;
        if fee > max_fee_msat {
            return Err(WalletError::Rejected(format!(
                "Blink's fee for this payment is {fee} msat, above the fee limit of {max_fee_msat} msat; nothing was paid"
            )));
        }
        let vars = json!({ "input": input });
        // Sent once: never retried.
        let result = match self.gql(send.pay, vars, Scope::Write, false).await {
            Ok(data) => {
                self.sent(&invoice.payment_hash, &data[send.pay_field])
                    .await
            }
            Err(f) => Err(self.pay_error(f)),
        };
        node::logged("blink", result)
    }

    /// `lnInvoiceCreate` (for `amount_sats`) or `lnNoAmountInvoiceCreate` (`document`, whose
    /// payload is `field`), into the BTC wallet: the BOLT11 string and the hash Blink reported.
    async fn create(
        &self,
        document: &str,
        field: &str,
        amount_sats: Option<u64>,
        description: &str,
        expiry_secs: u64,
    ) -> Result<(String, Option<crate::l402::PaymentHash>), WalletError> {
        let wallet_id = self.wallet_id().await?;
        let memo = &description[..description.floor_char_boundary(MAX_MEMO_BYTES)];
        let mut input = json!({
            "walletId": wallet_id,
            "memo": memo,
            // Whole minutes, rounded up.
            "expiresIn": expiry_secs.div_ceil(60).max(1),
        });
        if let Some(sats) = amount_sats {
            input["amount"] = json!(sats);
        }
        // Not retried: a retry could make a second invoice.
        let data = self
            .gql(document, json!({ "input": input }), Scope::Receive, false)
            .await
            .map_err(|f| self.call_error("creating an invoice", f))?;
        let payload = &data[field];
        if let Some(errors) = api::payload_errors(payload) {
            return Err(WalletError::Rejected(format!(
                "Blink refused to create the invoice: {errors}"
            )));
        }
        let invoice = &payload["invoice"];
        let bolt11 = invoice
            .get("paymentRequest")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                WalletError::Other("Blink answered the invoice request without an invoice".into())
            })?;
        let hash = invoice
            .get("paymentHash")
            .and_then(Value::as_str)
            .and_then(hash32);
        Ok((bolt11.to_owned(), hash))
    }
}

/// One way of paying through Blink: its fee probe and payment mutations (and the fields their
/// payloads come in), and the amount in sats sent to an invoice without one.
struct Send<'a> {
    probe: &'a str,
    probe_field: &'a str,
    pay: &'a str,
    pay_field: &'a str,
    amount_sats: Option<u64>,
}

#[async_trait]
impl Wallet for BlinkWallet {
    async fn info(&self) -> Result<WalletInfo, WalletError> {
        let data = self.read(api::GLOBALS, "reading Blink's network").await?;
        let name = data
            .pointer("/globals/network")
            .and_then(Value::as_str)
            .unwrap_or("");
        let network = settle_network("Blink", reported_network("Blink", name)?, self.network)?;
        // The key, and a BTC wallet to use.
        self.wallet_id().await?;
        Ok(WalletInfo {
            backend: "blink",
            network,
            node_id: data
                .pointer("/globals/nodesIds/0")
                .and_then(Value::as_str)
                .map(str::to_owned),
            returns_preimages: true,
            demo_funds: false,
        })
    }

    async fn balance(&self) -> Result<Balance, WalletError> {
        let w = self.btc_wallet().await?;
        let msat = match &w.balance {
            Some(n) => amount::sats_to_msat(n)
                .map_err(|e| WalletError::Other(format!("Blink's balance: {e}")))?,
            None => 0,
        };
        Ok(Balance {
            msat,
            demo_funds: false,
        })
    }

    #[instrument(skip_all, fields(backend = "blink", amount_msat = request.amount_msat))]
    async fn create_invoice(
        &self,
        request: &InvoiceRequest,
    ) -> Result<CreatedInvoice, WalletError> {
        let sats = node::whole_sats("Blink", request.amount_msat)?;
        let (bolt11, hash) = self
            .create(
                api::CREATE,
                "lnInvoiceCreate",
                Some(sats),
                &request.description,
                request.expiry_secs,
            )
            .await?;
        let created = check_created("Blink", &bolt11, hash, request)?;
        info!(payment_hash = %created.payment_hash, "Blink invoice created");
        Ok(created)
    }

    #[instrument(skip_all, fields(backend = "blink", payment_hash = %invoice.payment_hash))]
    async fn pay_invoice(
        &self,
        invoice: &DecodedInvoice,
        max_fee_msat: u64,
    ) -> Result<PaymentResult, WalletError> {
        let send = Send {
            probe: api::PROBE,
            probe_field: "lnInvoiceFeeProbe",
            pay: api::PAY,
            pay_field: "lnInvoicePaymentSend",
            amount_sats: None,
        };
        self.pay(invoice, &send, max_fee_msat).await
    }

    /// `lnNoAmountInvoiceCreate`: an invoice into the BTC wallet without an amount.
    #[instrument(skip_all, fields(backend = "blink"))]
    async fn create_amountless_invoice(
        &self,
        description: &str,
        expiry_secs: u64,
    ) -> Result<CreatedInvoice, WalletError> {
        let (bolt11, hash) = self
            .create(
                api::CREATE_NO_AMOUNT,
                "lnNoAmountInvoiceCreate",
                None,
                description,
                expiry_secs,
            )
            .await?;
        let created = check_created_amountless("Blink", &bolt11, hash)?;
        info!(payment_hash = %created.payment_hash, "Blink invoice without an amount created");
        Ok(created)
    }

    fn pays_amountless(&self) -> bool {
        true
    }

    /// `lnNoAmountInvoicePaymentSend` with `amount` in sats, priced first by
    /// `lnNoAmountInvoiceFeeProbe` like any payment; an amount that is not whole sats is
    /// refused before anything is asked.
    #[instrument(skip_all, fields(backend = "blink", payment_hash = %invoice.payment_hash, amount_msat))]
    async fn pay_amountless(
        &self,
        invoice: &DecodedInvoice,
        amount_msat: u64,
        max_fee_msat: u64,
    ) -> Result<PaymentResult, WalletError> {
        let amount = node::amountless_amount("Blink", invoice, amount_msat)?;
        let sats = node::send_whole_sats("Blink", amount)?;
        let send = Send {
            probe: api::PROBE_NO_AMOUNT,
            probe_field: "lnNoAmountInvoiceFeeProbe",
            pay: api::PAY_NO_AMOUNT,
            pay_field: "lnNoAmountInvoicePaymentSend",
            amount_sats: Some(sats),
        };
        self.pay(invoice, &send, max_fee_msat).await
    }

    async fn lookup_incoming(
        &self,
        payment_hash: &crate::l402::PaymentHash,
    ) -> Result<IncomingStatus, WalletError> {
        let wallet_id = self.wallet_id().await?;
        let vars = json!({ "walletId": wallet_id, "hash": payment_hash.to_hex() });
        let data = match self
            .gql(api::INVOICE_BY_HASH, vars, Scope::Read, true)
            .await
        {
            Ok(d) => d,
            Err(f) if f.is_not_found() => return Ok(IncomingStatus::NotFound),
            Err(f) => return Err(self.call_error("looking the invoice up", f)),
        };
        let invoice = &data["me"]["defaultAccount"]["walletById"]["invoiceByPaymentHash"];
        Ok(match invoice.get("paymentStatus").and_then(Value::as_str) {
            Some("PAID") => IncomingStatus::Settled {
                amount_msat: match invoice.get("satoshis").and_then(Value::as_number) {
                    Some(n) => amount::sats_to_msat(n)
                        .map_err(|e| WalletError::Other(format!("Blink's invoice: {e}")))?,
                    None => 0,
                },
            },
            Some("EXPIRED") => IncomingStatus::Expired,
            Some("PENDING") => IncomingStatus::Pending,
            None if invoice.is_null() => IncomingStatus::NotFound,
            other => {
                return Err(WalletError::Other(format!(
                    "Blink answered an invoice status of {other:?}"
                )));
            }
        })
    }

    async fn lookup_outgoing(
        &self,
        payment_hash: &crate::l402::PaymentHash,
    ) -> Result<OutgoingStatus, WalletError> {
        let wallet_id = self.wallet_id().await?;
        let vars = json!({ "walletId": wallet_id, "hash": payment_hash.to_hex() });
        let data = match self.gql(api::TX_BY_HASH, vars, Scope::Read, true).await {
            Ok(d) => d,
            Err(f) if f.is_not_found() => return Ok(OutgoingStatus::NotFound),
            Err(f) => return Err(self.call_error("looking the payment up", f)),
        };
        let list = data
            .pointer("/me/defaultAccount/walletById/transactionsByPaymentHash")
            .and_then(Value::as_array)
            .ok_or_else(|| {
                WalletError::Other("Blink answered the lookup without transactions".into())
            })?;
        api::outgoing_of(list).map_err(|e| WalletError::Other(format!("Blink answered {e}")))
    }

    async fn access(&self) -> Vec<AccessCheck> {
        let scopes = match self.scopes().await {
            Ok(s) => s,
            Err(e) => {
                return vec![AccessCheck {
                    check: "scopes",
                    level: Level::Fail,
                    detail: e.to_string(),
                    fix: Some("create a Blink API key with Read + Receive (sell), or Read + Write (buy and sell)".into()),
                }];
            }
        };
        let names: Vec<&str> = scopes.iter().map(|s| s.name()).collect();
        let mut checks = vec![AccessCheck {
            check: "scopes",
            level: Level::Ok,
            detail: format!("the API key has {}", names.join(" + ")),
            fix: None,
        }];
        checks.push(if scopes.contains(&Scope::Write) {
            AccessCheck {
                check: "pay",
                level: Level::Ok,
                detail: "the key may pay (Write): fetch_paid and pay_invoice work".into(),
                fix: None,
            }
        } else {
            AccessCheck {
                check: "pay",
                level: Level::Warn,
                detail: "the key has no Write scope: it cannot pay (fetch_paid and pay_invoice are refused before anything moves)".into(),
                fix: Some("fine for a seller; to buy, create a key with Read + Write".into()),
            }
        });
        checks
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SecretString;

    #[test]
    fn the_endpoint_is_posted_to_as_written() {
        assert_eq!(
            endpoint("https://api.blink.sv/graphql"),
            ("https://api.blink.sv/".into(), "graphql".into())
        );
        assert_eq!(
            endpoint("http://127.0.0.1:9/graphql/"),
            ("http://127.0.0.1:9/".into(), "graphql".into())
        );
        assert_eq!(
            endpoint("https://blink.example"),
            ("https://blink.example/".into(), "graphql".into())
        );
    }

    #[tokio::test]
    async fn errors_never_carry_the_key() {
        let w = BlinkWallet::new(&BlinkConfig {
            url: "http://127.0.0.1:9/graphql".into(),
            api_key: SecretString::new("blink_s3cr3tk3y"),
            wallet_id: None,
            network: None,
            timeout_secs: Some(2),
        })
        .unwrap();
        assert!(!format!("{w:?}").contains("s3cr3t"));
        let e = w.balance().await.unwrap_err().to_string();
        assert!(
            e.contains("could not reach Blink") && !e.contains("s3cr3t"),
            "{e}"
        );
        let sub_sat = w
            .create_invoice(&InvoiceRequest {
                amount_msat: 1_500,
                description: String::new(),
                expiry_secs: 60,
            })
            .await;
        assert!(matches!(sub_sat, Err(WalletError::Rejected(m)) if m.contains("whole sats")));
    }
}
