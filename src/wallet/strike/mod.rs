//! Strike (strike.me) over its REST API with a scoped API key (`Authorization: Bearer`), in
//! BTC. Read in Strike's API docs (docs.strike.me) and in clients of it (Strike.Client, lni,
//! LNbits); not run against Strike here (see docs/wallets/strike.md for what is verified).
//!
//! - Amounts are BTC decimal strings with a currency (`{"amount": "0.00002100", "currency":
//!   "BTC"}`), read to msat exactly; anything not in BTC is refused.
//! - Receiving: `POST /v1/receive-requests` (a BOLT11 invoice, `targetCurrency` BTC; without
//!   `bolt11.amount` for a Payment session's return invoice, the payer choosing); whether it
//!   was paid: `GET /v1/receive-requests/receives?$paymentHash=`; its expiry from the receive
//!   request, whose id is kept by payment hash.
//! - Paying is a quote, then its execution: `POST /v1/payment-quotes/lightning` (with an
//!   `idempotency-key`, so retrying it is safe; with `amount` for an invoice without one, a
//!   session's refund) shows the fee, which is checked against the
//!   limit (there is no fee-limit parameter); `PATCH /v1/payment-quotes/{id}/execute` pays, sent
//!   once. A payment is found only by its id (`GET /v1/payments/{id}`), never by payment hash:
//!   the quote's id is kept in the storage before the execution is sent, the payment's id as
//!   soon as Strike gives it.
//! - The preimage (`lightning.preImage`) is documented "if available": it is taken only when it
//!   hashes to the payment hash, and a payment without one marks the wallet as withholding
//!   preimages (L402 buying is then refused before anything is paid).

mod api;
mod config;
mod pay;

use std::time::Duration;

use async_trait::async_trait;
use reqwest::Method;
use serde_json::{Value, json};
use tracing::{info, instrument};

use self::api::OutRef;
pub use self::config::{DEFAULT_URL, StrikeConfig};
use super::toolkit::dates::{rfc3339, unix_now};
use super::toolkit::json::hash32;
use super::toolkit::node::{self, check_created, check_created_amountless};
use super::toolkit::redact::clip_chars;
use super::toolkit::{HostedApi, PreimagePolicy, RefStore, RestError};
use super::{
    AccessCheck, Balance, CreatedInvoice, IncomingStatus, InvoiceRequest, Level, OutgoingStatus,
    PaymentResult, Wallet, WalletError, WalletInfo,
};
use crate::bolt11::{DecodedInvoice, Network};
use crate::l402::PaymentHash;
use crate::storage::Direction;

/// The kind, as references are kept under it.
const KIND: &str = "strike";
/// Strike's limit on an invoice description, in characters.
const MAX_DESCRIPTION_CHARS: usize = 250;
/// Waits for a preimage Strike may add to a completed payment a moment later.
const PREIMAGE_POLLS: [Duration; 2] = [Duration::from_millis(500), Duration::from_secs(1)];

/// The scopes of the endpoints used.
const BALANCES_READ: &str = "partner.balances.read";
const RECEIVE_CREATE: &str = "partner.receive-request.create";
const RECEIVE_READ: &str = "partner.receive-request.read";
const QUOTE_CREATE: &str = "partner.payment-quote.lightning.create";
const QUOTE_EXECUTE: &str = "partner.payment-quote.execute";
const PAYMENT_READ: &str = "partner.payment.read";

/// The Strike backend.
#[derive(Debug)]
pub struct StrikeWallet {
    api: HostedApi,
    network: Network,
    refs: RefStore,
    preimages: PreimagePolicy,
}

impl StrikeWallet {
    pub fn new(config: &StrikeConfig, refs: RefStore) -> Result<StrikeWallet, WalletError> {
        Ok(StrikeWallet {
            api: HostedApi::new(
                "Strike",
                "STRIKE",
                &config.url,
                &config.url,
                &config.api_key,
                |key| ("Authorization", format!("Bearer {key}")),
                node::timeout(config.timeout_secs),
            )?,
            network: config.network.unwrap_or(Network::Mainnet),
            refs,
            preimages: PreimagePolicy::new(config.returns_preimages),
        })
    }

    fn lacks(&self, scope: &str, what: &str) -> String {
        format!(
            "the Strike API key lacks the scope {scope}, which {what} needs (HTTP 403): add it to the key at dashboard.strike.me (docs/wallets/strike.md lists each agent's scopes)"
        )
    }

    /// The error of a call that moves no money: `what` it was for, and the `scope` it needs.
    fn call_error(&self, what: &str, scope: &str, e: RestError) -> WalletError {
        let msg = match e {
            RestError::NotSent(m) => return self.api.unreachable(&m),
            RestError::Status { status: 401, .. } => return self.api.key_refused(401),
            RestError::Status { status: 403, .. } => {
                return WalletError::Unavailable(self.lacks(scope, what));
            }
            e if e.is_rate_limited() => return e.into_wallet_error(),
            RestError::Status { status, body } => {
                let b = api::error_body(&body);
                format!(
                    "{what}: Strike answered HTTP {status} {}: {}",
                    b.code.as_deref().unwrap_or(""),
                    b.message
                )
            }
            other => format!("{what}: {other}"),
        };
        WalletError::Other(self.api.redact(msg))
    }

    /// Probe whether the key has the scope of `method path`: a request that cannot act (an id
    /// nobody has, an invoice that is not one) answers 403 without it, 4xx with it.
    async fn has_scope(&self, method: Method, path: &str, body: Option<&Value>) -> Option<bool> {
        match self
            .api
            .rest
            .send::<_, Value>(method, path, body, false)
            .await
        {
            Ok(_) => Some(true),
            Err(RestError::Status { status: 403, .. }) => Some(false),
            Err(RestError::Status { status, .. }) if (400..500).contains(&status) => Some(true),
            Err(_) => None,
        }
    }

    /// A receive request (`POST /v1/receive-requests`) for `amount_sats` (none: the payer
    /// chooses), its invoice `check`ed, its id kept by payment hash.
    async fn receive(
        &self,
        amount_sats: Option<u64>,
        description: &str,
        expiry_secs: u64,
        check: impl FnOnce(&str, Option<PaymentHash>) -> Result<CreatedInvoice, WalletError>,
    ) -> Result<CreatedInvoice, WalletError> {
        let mut bolt11 = json!({ "expiryInSeconds": expiry_secs });
        if let Some(sats) = amount_sats {
            bolt11["amount"] = api::btc_amount(sats);
        }
        let description = clip_chars(description.trim(), MAX_DESCRIPTION_CHARS);
        if !description.is_empty() {
            bolt11["description"] = json!(description);
        }
        let body = json!({ "bolt11": bolt11, "targetCurrency": "BTC" });
        // Not retried: a retry could make a second receive request.
        let v: Value = self
            .api
            .rest
            .post("v1/receive-requests", &body, false)
            .await
            .map_err(|e| match e {
                RestError::Status {
                    status: 400 | 422,
                    body,
                } => {
                    let b = api::error_body(&body);
                    WalletError::Rejected(format!(
                        "Strike refused to create the invoice ({}): {}",
                        b.code.as_deref().unwrap_or("refused"),
                        b.message
                    ))
                }
                e => self.call_error("creating an invoice", RECEIVE_CREATE, e),
            })?;
        let (Some(id), Some(invoice)) = (
            v.get("receiveRequestId").and_then(Value::as_str),
            v.pointer("/bolt11/invoice").and_then(Value::as_str),
        ) else {
            return Err(WalletError::Other(
                "Strike answered the receive request without its id or invoice".into(),
            ));
        };
        let hash = v
            .pointer("/bolt11/paymentHash")
            .and_then(Value::as_str)
            .and_then(hash32);
        let created = check(invoice, hash)?;
        // Its expiry is read from the receive request: its id is kept before the invoice is out.
        self.refs
            .put(KIND, Direction::In, &created.payment_hash, id)
            .await?;
        info!(payment_hash = %created.payment_hash, receive_request = id, "Strike invoice created");
        Ok(created)
    }

    /// A quote (with `amount_sats` for an invoice without an amount), its fee checked, then
    /// its execution, sent once.
    async fn pay(
        &self,
        invoice: &DecodedInvoice,
        amount_sats: Option<u64>,
        max_fee_msat: u64,
    ) -> Result<PaymentResult, WalletError> {
        let hash = &invoice.payment_hash;
        let (quote, fee) = self.quote(invoice, amount_sats, max_fee_msat).await?;
        let mut out = OutRef {
            quote,
            payment: None,
            refused: false,
        };
        // Kept before the execution is sent: a lost answer is then looked up by the quote.
        self.refs
            .put(KIND, Direction::Out, hash, &out.text())
            .await?;
        let path = format!("v1/payment-quotes/{}/execute", out.quote);
        // Sent once: never retried.
        let result = match self
            .api
            .rest
            .send::<(), Value>(Method::PATCH, &path, None, false)
            .await
        {
            Ok(answer) => self.executed(&mut out, invoice, &answer, fee).await,
            Err(e) => Err(self.execute_failed(&mut out, hash, e).await),
        };
        node::logged(KIND, result)
    }
}

#[async_trait]
impl Wallet for StrikeWallet {
    async fn info(&self) -> Result<WalletInfo, WalletError> {
        // Strike names no network or node; the balance checks the key and the URL.
        self.balance().await?;
        Ok(self
            .api
            .info(KIND, self.network, !self.withholds_preimages()))
    }

    async fn balance(&self) -> Result<Balance, WalletError> {
        let list: Value = self
            .api
            .rest
            .get("v1/balances")
            .await
            .map_err(|e| self.call_error("reading the balance", BALANCES_READ, e))?;
        let btc = list
            .as_array()
            .into_iter()
            .flatten()
            .find(|b| b.get("currency").and_then(Value::as_str) == Some("BTC"));
        let msat = match btc.and_then(|b| b.get("available")) {
            Some(a) => api::btc_msat(&json!({ "amount": a, "currency": "BTC" }))
                .map_err(|e| WalletError::Other(format!("Strike's BTC balance: {e}")))?,
            // No BTC balance: nothing to pay from.
            None => 0,
        };
        Ok(Balance {
            msat,
            demo_funds: false,
        })
    }

    #[instrument(skip_all, fields(backend = "strike", amount_msat = request.amount_msat))]
    async fn create_invoice(
        &self,
        request: &InvoiceRequest,
    ) -> Result<CreatedInvoice, WalletError> {
        let sats = node::whole_sats("Strike", request.amount_msat)?;
        self.receive(
            Some(sats),
            &request.description,
            request.expiry_secs,
            |invoice, hash| check_created("Strike", invoice, hash, request),
        )
        .await
    }

    /// A receive request without `bolt11.amount`: the payer chooses it.
    #[instrument(skip_all, fields(backend = "strike"))]
    async fn create_amountless_invoice(
        &self,
        description: &str,
        expiry_secs: u64,
    ) -> Result<CreatedInvoice, WalletError> {
        self.receive(None, description, expiry_secs, |invoice, hash| {
            check_created_amountless("Strike", invoice, hash)
        })
        .await
    }

    #[instrument(skip_all, fields(backend = "strike", payment_hash = %invoice.payment_hash))]
    async fn pay_invoice(
        &self,
        invoice: &DecodedInvoice,
        max_fee_msat: u64,
    ) -> Result<PaymentResult, WalletError> {
        self.pay(invoice, None, max_fee_msat).await
    }

    fn pays_amountless(&self) -> bool {
        true
    }

    /// A payment quote with `amount` (BTC, whole sats: another amount is refused before
    /// anything is asked), executed like any payment.
    #[instrument(skip_all, fields(backend = "strike", payment_hash = %invoice.payment_hash, amount_msat))]
    async fn pay_amountless(
        &self,
        invoice: &DecodedInvoice,
        amount_msat: u64,
        max_fee_msat: u64,
    ) -> Result<PaymentResult, WalletError> {
        let amount = node::amountless_amount("Strike", invoice, amount_msat)?;
        let sats = node::send_whole_sats("Strike", amount)?;
        self.pay(invoice, Some(sats), max_fee_msat).await
    }

    async fn lookup_incoming(
        &self,
        payment_hash: &PaymentHash,
    ) -> Result<IncomingStatus, WalletError> {
        let path = format!("v1/receive-requests/receives?$paymentHash={payment_hash}");
        let v: Value = self
            .api
            .rest
            .get(&path)
            .await
            .map_err(|e| self.call_error("looking the invoice up", RECEIVE_READ, e))?;
        let items = v
            .get("items")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if let Some(done) = items
            .iter()
            .find(|i| i.get("state").and_then(Value::as_str) == Some("COMPLETED"))
        {
            let received = api::first_btc_msat(done, &["/amountCredited", "/amountReceived"])
                .transpose()
                .map_err(|e| WalletError::Other(format!("Strike's receive: {e}")))?;
            return Ok(IncomingStatus::Settled {
                amount_msat: received.unwrap_or(0),
            });
        }
        if !items.is_empty() {
            return Ok(IncomingStatus::Pending);
        }
        // Not paid (yet): the receive request says until when it can be.
        let Some(id) = self.refs.get(KIND, Direction::In, payment_hash).await? else {
            return Ok(IncomingStatus::NotFound);
        };
        let request = match self
            .api
            .rest
            .get::<Value>(&format!("v1/receive-requests/{id}"))
            .await
        {
            Ok(r) => r,
            Err(RestError::Status { status: 404, .. }) => return Ok(IncomingStatus::NotFound),
            Err(e) => return Err(self.call_error("looking the invoice up", RECEIVE_READ, e)),
        };
        let expires = request
            .pointer("/bolt11/expires")
            .and_then(Value::as_str)
            .and_then(rfc3339);
        Ok(match expires {
            Some(at) if at <= unix_now() => IncomingStatus::Expired,
            _ => IncomingStatus::Pending,
        })
    }

    async fn lookup_outgoing(
        &self,
        payment_hash: &PaymentHash,
    ) -> Result<OutgoingStatus, WalletError> {
        // Only payments this wallet asked Strike to execute have a reference.
        let Some(text) = self.refs.get(KIND, Direction::Out, payment_hash).await? else {
            return Ok(OutgoingStatus::NotFound);
        };
        let mut out = OutRef::parse(&text).ok_or_else(|| {
            WalletError::Other(format!(
                "the storage's Strike reference {text:?} cannot be read"
            ))
        })?;
        let status = self.lookup_ref(&mut out, payment_hash).await?;
        if let OutgoingStatus::Succeeded(r) = &status {
            self.preimages.note(KIND, r);
        }
        Ok(status)
    }

    fn withholds_preimages(&self) -> bool {
        self.preimages.withholds()
    }

    async fn access(&self) -> Vec<AccessCheck> {
        let none = "00000000-0000-4000-8000-000000000000";
        let probes = [
            (
                QUOTE_CREATE,
                Method::POST,
                "v1/payment-quotes/lightning".to_owned(),
                Some(json!({"lnInvoice": "lnbc1", "sourceCurrency": "BTC"})),
            ),
            (
                QUOTE_EXECUTE,
                Method::PATCH,
                format!("v1/payment-quotes/{none}/execute"),
                None,
            ),
            (
                PAYMENT_READ,
                Method::GET,
                format!("v1/payments/{none}"),
                None,
            ),
            (
                RECEIVE_READ,
                Method::GET,
                format!(
                    "v1/receive-requests/receives?$paymentHash={}",
                    "0".repeat(64)
                ),
                None,
            ),
        ];
        let mut missing = Vec::new();
        let mut unknown = Vec::new();
        for (scope, method, path, body) in probes {
            match self.has_scope(method, &path, body.as_ref()).await {
                Some(true) => {}
                Some(false) => missing.push(scope),
                None => unknown.push(scope),
            }
        }
        let pay_scopes = [QUOTE_CREATE, QUOTE_EXECUTE, PAYMENT_READ];
        let cannot_pay: Vec<&str> = missing
            .iter()
            .copied()
            .filter(|s| pay_scopes.contains(s))
            .collect();
        let mut checks = vec![if cannot_pay.is_empty() {
            AccessCheck {
                check: "pay",
                level: if unknown.is_empty() {
                    Level::Ok
                } else {
                    Level::Warn
                },
                detail: if unknown.is_empty() {
                    "the key may pay (payment quotes, their execution, payment lookups)".into()
                } else {
                    format!("could not tell whether the key has {}", unknown.join(", "))
                },
                fix: None,
            }
        } else {
            AccessCheck {
                check: "pay",
                level: Level::Warn,
                detail: format!(
                    "the key lacks {}: it cannot pay (fetch_paid and pay_invoice are refused before anything moves)",
                    cannot_pay.join(", ")
                ),
                fix: Some("fine for a seller; to buy, add those scopes to the key".into()),
            }
        }];
        if missing.contains(&RECEIVE_READ) {
            checks.push(AccessCheck {
                check: "lookups",
                level: Level::Fail,
                detail: format!(
                    "the key lacks {RECEIVE_READ}: invoices can be made but never seen paid"
                ),
                fix: Some(format!("add {RECEIVE_READ} to the key")),
            });
        }
        checks.push(self.preimages.access_check(
            "Strike",
            "; selling and plain payments work",
            "Strike documents a payment's preimage \"if available\"",
        ));
        checks
    }
}
