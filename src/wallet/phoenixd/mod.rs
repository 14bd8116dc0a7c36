//! Phoenixd backend (HTTP API, port 9740 by default): basic auth with an empty user name and
//! the `http-password` from `phoenix.conf`.
//!
//! Endpoints, from the API reference (<https://phoenix.acinq.co/server/api>) and the routes of
//! phoenixd's `Api.kt`. Requests with parameters are forms (`application/x-www-form-urlencoded`);
//! answers are JSON, amounts in sats except `fees` (msat):
//!
//! - `GET  /getinfo`: `nodeId`, `chain` (`mainnet`, `testnet3`, `testnet4`, `regtest`...).
//! - `GET  /getbalance`: `balanceSat` (spendable), `feeCreditSat` (not spendable on payments).
//! - `POST /createinvoice` (`description`, `amountSat`, `expirySeconds`): `paymentHash` (hex),
//!   `serialized` (the BOLT11 string). Without `amountSat`, an invoice without an amount (a
//!   Payment session's return invoice).
//! - `POST /payinvoice` (`invoice`, trampoline fee override, and `amountSat` only for an
//!   invoice without an amount: a session's refund, in whole sats): `200` with either
//!   `paymentPreimage` (hex), `routingFeeSat`, `paymentId`, or `reason` when it failed for good.
//! - `GET  /payments/incoming/{paymentHash}`: `isPaid`, `isExpired`, `receivedSat`.
//! - `GET  /payments/outgoingbyhash/{paymentHash}`: `isPaid`, `preimage`, `fees` (msat),
//!   `completedAt` (absent while pending); the best attempt when there were several.
//! - `GET  /payments/outgoing/{paymentId}`: the same, for one attempt.
//!
//! An unknown payment is `404 Not found`; an unknown route is `404 Unknown endpoint`.
//!
//! Phoenixd has no fee limit parameter: it pays a fixed trampoline fee (4 sat + 0.4% by
//! default). The fee is checked against the limit before paying and sent as an explicit
//! override (`trampolineFeeBaseSat`, `trampolineFeeProportional`), so it cannot grow behind our
//! back; phoenixd versions without the override ignore it and charge their default.

mod api;
mod config;
mod error;

use async_trait::async_trait;
use base64::Engine as _;
use tracing::{debug, instrument, warn};

use self::api::{
    GeneratedInvoice, GetBalance, IncomingPayment, NodeInfo, OutgoingPayment, PayResult,
};
pub use self::config::{
    DEFAULT_TRAMPOLINE_FEE_BASE_SAT, DEFAULT_TRAMPOLINE_FEE_PPM, PhoenixdConfig,
};
use self::error::{pay_error, refused_or};
use super::toolkit::json;
use super::toolkit::node::{
    self, check_created, check_created_amountless, reported_network, settle_network,
};
use super::toolkit::redact::clip_chars;
use super::toolkit::{Rest, RestError, Tls};
use super::{
    Balance, CreatedInvoice, IncomingStatus, InvoiceRequest, OutgoingStatus, PaymentResult, Wallet,
    WalletError, WalletInfo,
};
use crate::bolt11::{DecodedInvoice, Network};

/// Longest invoice description phoenixd accepts.
const MAX_DESCRIPTION_CHARS: usize = 128;

/// The Phoenixd backend.
#[derive(Debug)]
pub struct PhoenixdWallet {
    rest: Rest,
    network: Option<Network>,
    fee_base_sat: u64,
    fee_ppm: u64,
    /// Whether this phoenixd has `GET /payments/outgoingbyhash/{hash}` (seen once, kept).
    has_outgoing_by_hash: std::sync::atomic::AtomicBool,
}

impl PhoenixdWallet {
    pub fn new(config: &PhoenixdConfig) -> Result<PhoenixdWallet, WalletError> {
        let timeout = node::timeout(config.timeout_secs);
        if config.password.expose().trim().is_empty() {
            return Err(WalletError::Other(
                "Phoenixd needs its http-password (from ~/.phoenix/phoenix.conf)".into(),
            ));
        }
        let credentials = base64::engine::general_purpose::STANDARD
            .encode(format!(":{}", config.password.expose().trim()));
        let auth = format!("Basic {credentials}");
        let headers = [("Authorization", auth.as_str())];
        Ok(PhoenixdWallet {
            rest: Rest::new(&config.url, &headers, &Tls::default(), timeout)?,
            network: config.network,
            fee_base_sat: config
                .trampoline_fee_base_sat
                .unwrap_or(DEFAULT_TRAMPOLINE_FEE_BASE_SAT),
            fee_ppm: config
                .trampoline_fee_ppm
                .unwrap_or(DEFAULT_TRAMPOLINE_FEE_PPM),
            has_outgoing_by_hash: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// The trampoline fee phoenixd will pay for `amount_msat`, rounded up.
    fn fee_msat(&self, amount_msat: u64) -> u64 {
        let share = (u128::from(amount_msat) * u128::from(self.fee_ppm)).div_ceil(1_000_000);
        self.fee_base_sat
            .saturating_mul(1000)
            .saturating_add(u64::try_from(share).unwrap_or(u64::MAX))
    }

    /// GET a payment by hash: `None` when phoenixd has no such payment.
    ///
    /// phoenixd answers an unknown payment and an unknown route alike (`404 Unknown endpoint
    /// (check api doc)`: its StatusPages handler rewrites every bare 404). `payments/incoming`
    /// exists in every version, so there a 404 is an unknown payment. `outgoingbyhash` came
    /// later: whether this phoenixd has it is asked once with a hash that is not hex, which
    /// the route refuses with 400 and an unknown route answers with 404.
    async fn lookup<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
    ) -> Result<Option<T>, WalletError> {
        match self.rest.get(path).await {
            Ok(v) => Ok(Some(v)),
            Err(RestError::Status { status: 404, .. })
                if !path.starts_with(OUTGOING_BY_HASH) || self.has_outgoing_by_hash().await? =>
            {
                Ok(None)
            }
            Err(RestError::Status { status: 404, .. }) => Err(WalletError::Other(format!(
                "this phoenixd has no {OUTGOING_BY_HASH} endpoint: upgrade phoenixd to a version with GET /{OUTGOING_BY_HASH}{{paymentHash}} so payments can be looked up"
            ))),
            Err(e) => Err(refused_or(e)),
        }
    }

    async fn has_outgoing_by_hash(&self) -> Result<bool, WalletError> {
        use std::sync::atomic::Ordering::Relaxed;
        if self.has_outgoing_by_hash.load(Relaxed) {
            return Ok(true);
        }
        let probe = format!("{OUTGOING_BY_HASH}not-a-payment-hash");
        match self.rest.get::<serde_json::Value>(&probe).await {
            Err(RestError::Status { status: 404, .. }) => Ok(false),
            Err(RestError::Status { status: 400, .. }) | Ok(_) => {
                self.has_outgoing_by_hash.store(true, Relaxed);
                Ok(true)
            }
            Err(e) => Err(refused_or(e)),
        }
    }

    /// `createinvoice`, for `amount_sat` (none: the payer chooses): the BOLT11 string and the
    /// payment hash phoenixd reported.
    async fn create(
        &self,
        description: &str,
        amount_sat: Option<u64>,
        expiry_secs: u64,
    ) -> Result<(String, crate::l402::PaymentHash), WalletError> {
        let clipped = clip_chars(description, MAX_DESCRIPTION_CHARS);
        if clipped.len() < description.len() {
            debug!("description cut to {MAX_DESCRIPTION_CHARS} characters, phoenixd's limit");
        }
        let mut fields = vec![("description", clipped.to_owned())];
        if let Some(sats) = amount_sat {
            fields.push(("amountSat", sats.to_string()));
        }
        fields.push(("expirySeconds", expiry_secs.to_string()));
        let created: GeneratedInvoice = self
            .rest
            .post_form("createinvoice", &fields)
            .await
            .map_err(refused_or)?;
        let hash = json::hash32(&created.payment_hash).ok_or_else(|| {
            WalletError::Other("phoenixd's paymentHash is not 32 bytes of hex".into())
        })?;
        Ok((created.serialized, hash))
    }

    /// `payinvoice` for `amount_msat` (the invoice's own, or, with `amount_sat`, the amount
    /// sent to an invoice without one), its trampoline fee checked against the limit first.
    async fn pay(
        &self,
        invoice: &DecodedInvoice,
        amount: u64,
        amount_sat: Option<u64>,
        max_fee_msat: u64,
    ) -> Result<PaymentResult, WalletError> {
        let fee = self.fee_msat(amount);
        if fee > max_fee_msat {
            return Err(WalletError::Rejected(format!(
                "phoenixd's trampoline fee for this payment is {fee} msat, above the fee limit of {max_fee_msat} msat"
            )));
        }
        let mut fields = vec![
            ("invoice", invoice.bolt11.clone()),
            ("trampolineFeeBaseSat", self.fee_base_sat.to_string()),
            ("trampolineFeeProportional", self.fee_ppm.to_string()),
        ];
        if let Some(sats) = amount_sat {
            fields.push(("amountSat", sats.to_string()));
        }
        let paid: PayResult = self
            .rest
            .post_form("payinvoice", &fields)
            .await
            .map_err(pay_error)?;
        if let Some(reason) = paid.reason {
            return Err(WalletError::Rejected(format!(
                "phoenixd could not pay: {reason}"
            )));
        }
        if let Some(h) = &paid.payment_hash
            && !h.eq_ignore_ascii_case(&hex::encode(invoice.payment_hash))
        {
            return Err(WalletError::OutcomeUnknown(
                "phoenixd answered about another payment".into(),
            ));
        }
        // routingFeeSat is rounded down to the sat; the payment record has the msat.
        let mut fee_msat = paid.routing_fee_sat.unwrap_or(0).saturating_mul(1000);
        if let Some(id) = paid
            .payment_id
            .as_deref()
            .filter(|id| id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-'))
        {
            match self
                .lookup::<OutgoingPayment>(&format!("payments/outgoing/{id}"))
                .await
            {
                Ok(Some(OutgoingPayment {
                    fees: Some(f),
                    is_paid: true,
                    ..
                })) => fee_msat = f,
                Ok(_) => {}
                Err(e) => warn!(error = %e, "could not read the exact fee; using routingFeeSat"),
            }
        }
        Ok(PaymentResult {
            preimage: paid.payment_preimage.as_deref().and_then(json::preimage),
            fee_msat,
        })
    }
}

/// The route of outgoing payments by payment hash (phoenixd 0.4 and later).
const OUTGOING_BY_HASH: &str = "payments/outgoingbyhash/";

#[async_trait]
impl Wallet for PhoenixdWallet {
    async fn info(&self) -> Result<WalletInfo, WalletError> {
        let info: NodeInfo = self.rest.get("getinfo").await.map_err(refused_or)?;
        let reported = reported_network("phoenixd", &info.chain)?;
        Ok(WalletInfo {
            backend: "phoenixd",
            network: settle_network("phoenixd", reported, self.network)?,
            node_id: info.node_id.filter(|k| !k.is_empty()),
            returns_preimages: true,
            demo_funds: false,
        })
    }

    async fn balance(&self) -> Result<Balance, WalletError> {
        let b: GetBalance = self.rest.get("getbalance").await.map_err(refused_or)?;
        Ok(Balance {
            msat: b.balance_sat.unwrap_or(0).saturating_mul(1000),
            demo_funds: false,
        })
    }

    #[instrument(skip_all, fields(backend = "phoenixd", amount_msat = request.amount_msat))]
    async fn create_invoice(
        &self,
        request: &InvoiceRequest,
    ) -> Result<CreatedInvoice, WalletError> {
        let sats = node::whole_sats("phoenixd", request.amount_msat)?;
        let (bolt11, hash) = self
            .create(&request.description, Some(sats), request.expiry_secs)
            .await?;
        check_created("phoenixd", &bolt11, Some(hash), request)
    }

    #[instrument(skip_all, fields(backend = "phoenixd", payment_hash = %hex::encode(invoice.payment_hash)))]
    async fn pay_invoice(
        &self,
        invoice: &DecodedInvoice,
        max_fee_msat: u64,
    ) -> Result<PaymentResult, WalletError> {
        let Some(amount) = invoice.amount_msat else {
            return Err(WalletError::NotPayable(
                "phoenixd is only asked to pay invoices that state their amount".into(),
            ));
        };
        // No amountSat: phoenixd pays the invoice's own amount, to the msat.
        self.pay(invoice, amount, None, max_fee_msat).await
    }

    /// `createinvoice` without `amountSat`: phoenixd makes an invoice without an amount.
    #[instrument(skip_all, fields(backend = "phoenixd"))]
    async fn create_amountless_invoice(
        &self,
        description: &str,
        expiry_secs: u64,
    ) -> Result<CreatedInvoice, WalletError> {
        let (bolt11, hash) = self.create(description, None, expiry_secs).await?;
        check_created_amountless("phoenixd", &bolt11, Some(hash))
    }

    fn pays_amountless(&self) -> bool {
        true
    }

    /// `payinvoice` with `amountSat`: phoenixd sends whole sats only, so an amount that is not
    /// one is refused before anything is sent.
    #[instrument(skip_all, fields(backend = "phoenixd", payment_hash = %hex::encode(invoice.payment_hash), amount_msat))]
    async fn pay_amountless(
        &self,
        invoice: &DecodedInvoice,
        amount_msat: u64,
        max_fee_msat: u64,
    ) -> Result<PaymentResult, WalletError> {
        let amount = node::amountless_amount("phoenixd", invoice, amount_msat)?;
        let sats = node::send_whole_sats("phoenixd", amount)?;
        self.pay(invoice, amount, Some(sats), max_fee_msat).await
    }

    async fn lookup_incoming(
        &self,
        payment_hash: &crate::l402::PaymentHash,
    ) -> Result<IncomingStatus, WalletError> {
        let path = format!("payments/incoming/{}", hex::encode(payment_hash));
        Ok(match self.lookup::<IncomingPayment>(&path).await? {
            None => IncomingStatus::NotFound,
            Some(p) if p.is_paid => IncomingStatus::Settled {
                amount_msat: p.received_sat.unwrap_or(0).saturating_mul(1000),
            },
            Some(p) if p.is_expired => IncomingStatus::Expired,
            Some(_) => IncomingStatus::Pending,
        })
    }

    async fn lookup_outgoing(
        &self,
        payment_hash: &crate::l402::PaymentHash,
    ) -> Result<OutgoingStatus, WalletError> {
        let path = format!("{OUTGOING_BY_HASH}{}", hex::encode(payment_hash));
        Ok(match self.lookup::<OutgoingPayment>(&path).await? {
            None => OutgoingStatus::NotFound,
            Some(p) if p.is_paid => OutgoingStatus::Succeeded(PaymentResult {
                preimage: p.preimage.as_deref().and_then(json::preimage),
                fee_msat: p.fees.unwrap_or(0),
            }),
            Some(p) if p.completed_at.as_ref().is_some_and(|v| !v.is_null()) => {
                OutgoingStatus::Failed("phoenixd reports the payment failed".into())
            }
            Some(_) => OutgoingStatus::InFlight,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wallet(base: Option<u64>, ppm: Option<u64>) -> PhoenixdWallet {
        PhoenixdWallet::new(&PhoenixdConfig {
            url: "http://127.0.0.1:9740".into(),
            password: "pw".into(),
            network: None,
            timeout_secs: None,
            trampoline_fee_base_sat: base,
            trampoline_fee_ppm: ppm,
        })
        .unwrap()
    }

    #[test]
    fn trampoline_fee_is_phoenix_default_rounded_up() {
        let w = wallet(None, None);
        assert_eq!(w.fee_msat(100_000), 4_000 + 400);
        assert_eq!(w.fee_msat(1), 4_001);
        assert_eq!(wallet(Some(0), Some(0)).fee_msat(5_000_000), 0);
    }
}
