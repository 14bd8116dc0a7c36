//! LND backend (REST API, port 8080 by default): the macaroon as a hex header, the node's TLS
//! certificate.
//!
//! Endpoints, from LND's REST reference (<https://lightning.engineering/api-docs/api/lnd/>):
//!
//! - `GET  /v1/getinfo`: `identity_pubkey`, `chains[].network` (or the old `testnet` flag).
//! - `GET  /v1/balance/channels`: `local_balance.msat` (or the deprecated `balance`, sats).
//! - `POST /v1/invoices` (`value_msat`, `memo`, `expiry`): `r_hash` is **base64** bytes,
//!   `payment_request` the BOLT11 string. Without `value`/`value_msat`, a zero-amount invoice
//!   (a Payment session's return invoice).
//! - `GET  /v1/invoice/{r_hash_str}` with the **hex** hash: `state`, `amt_paid_msat`.
//! - `POST /v2/router/send` (SendPaymentV2): a stream of `{"result": Payment}` lines; a
//!   `Payment`'s `payment_preimage` is a **hex** string. `fee_limit_msat` caps the fee;
//!   `amt_msat` says how much to send to a zero-amount invoice (a session's refund).
//! - `GET  /v2/router/track/{payment_hash}` (TrackPaymentV2), the hash in URL-safe base64 (a
//!   `bytes` path field): the same stream, whose first line is the payment's current state.
//!
//! `POST /v1/channels/transactions` (SendPaymentSync, base64 preimage) is not used: it is
//! deprecated, and LND 0.21 removes it.
//!
//! Integers of 64 bits come as JSON strings (proto3 JSON mapping); both forms are read.

mod api;
mod config;
mod error;

use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use reqwest::Method;
use serde_json::{Value, json};
use tracing::{debug, instrument, warn};

use self::api::{
    AddInvoiceResponse, ChannelBalance, GetInfo, Invoice, PaymentState, StreamMessage, base64_32,
    stream_message,
};
pub use self::config::LndConfig;
use self::config::macaroon_hex;
use self::error::{grpc_status, payment_refusal, read_error};
use super::toolkit::node::{self, check_created, check_created_amountless, settle_network};
use super::toolkit::{Rest, RestError, Tls};
use super::{
    Balance, CreatedInvoice, IncomingStatus, InvoiceRequest, OutgoingStatus, PaymentResult, Wallet,
    WalletError, WalletInfo,
};
use crate::bolt11::{DecodedInvoice, Network};

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

    /// AddInvoice (`POST /v1/invoices`): the BOLT11 string and the hash LND reported.
    async fn add_invoice(
        &self,
        body: &Value,
    ) -> Result<(String, l402_proto::PaymentHash), WalletError> {
        let created: AddInvoiceResponse = self
            .rest
            .post("v1/invoices", body, false)
            .await
            .map_err(read_error)?;
        let hash = base64_32(&created.r_hash).ok_or_else(|| {
            WalletError::Other("LND's r_hash is not a base64 32-byte hash".into())
        })?;
        Ok((created.payment_request, l402_proto::PaymentHash(hash)))
    }

    /// LND's own limit for finding a route: a little under ours, so LND gives up first.
    fn payment_timeout_secs(&self) -> u64 {
        node::payment_time_limit_secs(self.timeout)
    }
}

impl LndWallet {
    /// SendPaymentV2 for `invoice`, at its own amount or (a zero-amount invoice) `amount_msat`:
    /// a refusal before the stream is definite, anything after LND registered it unknown.
    async fn send(
        &self,
        invoice: &DecodedInvoice,
        amount_msat: Option<u64>,
        max_fee_msat: u64,
    ) -> Result<PaymentResult, WalletError> {
        let mut body = json!({
            "payment_request": invoice.bolt11,
            "fee_limit_msat": max_fee_msat.to_string(),
            "timeout_seconds": self.payment_timeout_secs(),
            // The first update confirms LND registered the payment: any error after it is an
            // unknown outcome, any error before it a refusal.
            "no_inflight_updates": false,
        });
        if let Some(amount) = amount_msat {
            // A zero-amount invoice: SendPaymentRequest's `amt_msat` says how much to send.
            body["amt_msat"] = json!(amount.to_string());
        }
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
        let (bolt11, hash) = self.add_invoice(&body).await?;
        check_created("LND", &bolt11, Some(hash), request)
    }

    #[instrument(skip_all, fields(backend = "lnd", payment_hash = %hex::encode(invoice.payment_hash)))]
    async fn pay_invoice(
        &self,
        invoice: &DecodedInvoice,
        max_fee_msat: u64,
    ) -> Result<PaymentResult, WalletError> {
        self.send(invoice, None, max_fee_msat).await
    }

    /// AddInvoice without `value`/`value_msat`: LND makes a zero-amount invoice.
    #[instrument(skip_all, fields(backend = "lnd"))]
    async fn create_amountless_invoice(
        &self,
        description: &str,
        expiry_secs: u64,
    ) -> Result<CreatedInvoice, WalletError> {
        let body = json!({ "memo": description, "expiry": expiry_secs.to_string() });
        let (bolt11, hash) = self.add_invoice(&body).await?;
        check_created_amountless("LND", &bolt11, Some(hash))
    }

    fn pays_amountless(&self) -> bool {
        true
    }

    #[instrument(skip_all, fields(backend = "lnd", payment_hash = %hex::encode(invoice.payment_hash), amount_msat))]
    async fn pay_amountless(
        &self,
        invoice: &DecodedInvoice,
        amount_msat: u64,
        max_fee_msat: u64,
    ) -> Result<PaymentResult, WalletError> {
        let amount = node::amountless_amount("LND", invoice, amount_msat)?;
        self.send(invoice, Some(amount), max_fee_msat).await
    }

    async fn lookup_incoming(
        &self,
        payment_hash: &crate::l402::PaymentHash,
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
        payment_hash: &crate::l402::PaymentHash,
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
