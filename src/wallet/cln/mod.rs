//! Core Lightning backend (the clnrest plugin): a rune for auth.
//!
//! clnrest turns `POST /v1/<method>` with a JSON object of named parameters into a JSON-RPC call
//! and answers `201` with the call's result, or `401`/`403` (rune refused), `404` (no such
//! method) and `500` with the JSON-RPC error `{"code", "message", "data"}`
//! (<https://docs.corelightning.org/docs/rest>). Methods used, from the JSON-RPC reference
//! (<https://docs.corelightning.org/reference>): `getinfo`, `listfunds`, `invoice`, `pay`,
//! `listinvoices`, `listpays`.
//!
//! A Payment session's return invoice is `invoice` with `amount_msat: "any"`; its refund is
//! `pay` with `amount_msat`, which `pay` takes only for an invoice without an amount.
//!
//! Amounts are msat numbers; versions before 23.x wrote them as strings like `"1000msat"`: both
//! are read. `pay` may be served by `xpay` (`xpay-handle-pay`), whose answer has no `status`.

mod api;
mod config;
mod error;

use std::time::Duration;

use async_trait::async_trait;
use rand::RngCore;
use serde_json::{Value, json};
use tracing::instrument;

use self::api::{GetInfo, ListFunds, ListInvoices, ListPays, NewInvoice, Pay, fee};
pub use self::config::ClnConfig;
use self::error::{pay_error, rpc_error};
use super::toolkit::json;
use super::toolkit::node::{
    self, check_created, check_created_amountless, reported_network, settle_network,
};
use super::toolkit::{Rest, Tls};
use super::{
    Balance, CreatedInvoice, IncomingStatus, InvoiceRequest, OutgoingStatus, PaymentResult, Wallet,
    WalletError, WalletInfo,
};
use crate::bolt11::{DecodedInvoice, Network};

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
        let rune = config.rune.expose().trim();
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

    /// `invoice` for `amount_msat` (msat, or `"any"`) with a label unique on the node: the
    /// BOLT11 string and the payment hash the node reported.
    async fn invoice(
        &self,
        amount_msat: Value,
        description: &str,
        expiry_secs: u64,
    ) -> Result<(String, crate::l402::PaymentHash), WalletError> {
        // Labels must be unique on the node.
        let mut nonce = [0u8; 12];
        rand::thread_rng().fill_bytes(&mut nonce);
        let params = json!({
            "amount_msat": amount_msat,
            "label": format!("l402-mcp-{}", hex::encode(nonce)),
            "description": description,
            "expiry": expiry_secs,
        });
        let created: NewInvoice = self
            .rest
            .post("v1/invoice", &params, false)
            .await
            .map_err(|e| rpc_error("invoice", e))?;
        let hash = json::hash32(&created.payment_hash).ok_or_else(|| {
            WalletError::Other("Core Lightning's payment_hash is not 32 bytes of hex".into())
        })?;
        Ok((created.bolt11, hash))
    }

    /// `pay` the invoice, at its own amount or (an invoice without one) `amount_msat`, which
    /// `pay` takes only for such an invoice.
    async fn pay(
        &self,
        invoice: &DecodedInvoice,
        amount_msat: Option<u64>,
        max_fee_msat: u64,
    ) -> Result<PaymentResult, WalletError> {
        let mut params = json!({
            "bolt11": invoice.bolt11,
            "maxfee": max_fee_msat,
            "retry_for": self.retry_for_secs(),
        });
        if let Some(amount) = amount_msat {
            params["amount_msat"] = json!(amount);
        }
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

    /// `pay`'s own limit for retrying routes: a little under ours, so it gives up first.
    fn retry_for_secs(&self) -> u64 {
        node::payment_time_limit_secs(self.timeout)
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
        let (bolt11, hash) = self
            .invoice(
                json!(request.amount_msat),
                &request.description,
                request.expiry_secs,
            )
            .await?;
        check_created("Core Lightning", &bolt11, Some(hash), request)
    }

    #[instrument(skip_all, fields(backend = "cln", payment_hash = %hex::encode(invoice.payment_hash)))]
    async fn pay_invoice(
        &self,
        invoice: &DecodedInvoice,
        max_fee_msat: u64,
    ) -> Result<PaymentResult, WalletError> {
        self.pay(invoice, None, max_fee_msat).await
    }

    /// `invoice` with `amount_msat: "any"`: the payer chooses the amount.
    #[instrument(skip_all, fields(backend = "cln"))]
    async fn create_amountless_invoice(
        &self,
        description: &str,
        expiry_secs: u64,
    ) -> Result<CreatedInvoice, WalletError> {
        let (bolt11, hash) = self.invoice(json!("any"), description, expiry_secs).await?;
        check_created_amountless("Core Lightning", &bolt11, Some(hash))
    }

    fn pays_amountless(&self) -> bool {
        true
    }

    #[instrument(skip_all, fields(backend = "cln", payment_hash = %hex::encode(invoice.payment_hash), amount_msat))]
    async fn pay_amountless(
        &self,
        invoice: &DecodedInvoice,
        amount_msat: u64,
        max_fee_msat: u64,
    ) -> Result<PaymentResult, WalletError> {
        let amount = node::amountless_amount("Core Lightning", invoice, amount_msat)?;
        self.pay(invoice, Some(amount), max_fee_msat).await
    }

    async fn lookup_incoming(
        &self,
        payment_hash: &crate::l402::PaymentHash,
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
        payment_hash: &crate::l402::PaymentHash,
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
