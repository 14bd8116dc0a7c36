//! Nostr Wallet Connect backend (NIP-47): pay_invoice, make_invoice, get_balance,
//! lookup_invoice and get_info, over the relays named in a `nostr+walletconnect://` URI.
//!
//! The transport is the `nwc` crate's Nostr stack (its re-exported `nostr` and relay pool), driven
//! here step by step rather than through `nwc::NWC`, because the pay path must know whether a
//! request left this process:
//! - before the request event is accepted by a relay (no relay reachable, the relay refuses the
//!   event), nothing can have been paid: [`WalletError::Unavailable`];
//! - once it may have reached the wallet service, a missing or unreadable answer is
//!   [`WalletError::OutcomeUnknown`], and the payment stays pending until `lookup_invoice` tells.
//!
//! Answers are parsed leniently (also by hand rather than with `nwc`'s types): a `pay_invoice`
//! result without a preimage, error codes and methods newer than the crate, and empty strings
//! for absent fields all occur in real wallet services.
//!
//! Error codes of a `pay_invoice` answer: the ones NIP-47 defines as refusals made before any
//! payment is attempted (`RATE_LIMITED`, `NOT_IMPLEMENTED`, `INSUFFICIENT_BALANCE`,
//! `QUOTA_EXCEEDED`, `RESTRICTED`, `UNAUTHORIZED`, `UNSUPPORTED_ENCRYPTION`) are definite:
//! [`WalletError::Rejected`]. `PAYMENT_FAILED` is not, because NIP-47 says it "may be due to a
//! timeout"; it, `INTERNAL`, `OTHER` and unknown codes are followed by one `lookup_invoice`: a
//! payment the wallet service reports as failed is `Rejected`, a settled one is a success, and
//! anything else is `OutcomeUnknown`.
//!
//! Requests are NIP-04 encrypted (what `nwc` 0.44 speaks; NIP-47 services accept it when no
//! `encryption` tag is sent) and carry a NIP-40 `expiration` tag, so a service that receives one
//! late does not act on it. NIP-47 has no fee limit for `pay_invoice`: the wallet service's own
//! fee policy applies.

mod api;
mod config;
mod error;
mod relay;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use nwc::nostr::Timestamp;
use nwc::nostr::nips::nip47::{
    LookupInvoiceRequest, MakeInvoiceRequest, NostrWalletConnectURI, PayInvoiceRequest, Request,
};
use tracing::{info, instrument, warn};

use self::api::{
    BalanceResult, InfoResult, MakeResult, PayResult, Transaction, describe_outgoing,
    incoming_status, outgoing_status, parse_result, payment_result,
};
pub use self::config::NwcConfig;
use self::error::{ReplyError, Transport, advice, is_definite_refusal};
use self::relay::{EXPIRATION_SLACK_SECS, Link};
use super::toolkit::json::hash32;
use super::toolkit::node::{self, check_created};
use super::{
    Balance, CreatedInvoice, IncomingStatus, InvoiceRequest, OutgoingStatus, PaymentResult, Wallet,
    WalletError, WalletInfo,
};
use crate::bolt11::{DecodedInvoice, Network};

/// Seconds per request when `timeout_secs` is not set.
pub use super::toolkit::node::DEFAULT_TIMEOUT_SECS;
/// Longest time per request: a request's `expiration` tag is this far ahead at most.
const MAX_TIMEOUT: Duration = Duration::from_secs(3600);

/// What get_info told us (asked once).
#[derive(Debug, Clone, Default)]
struct ServiceInfo {
    network: Option<Network>,
    node_id: Option<String>,
}

/// The Nostr Wallet Connect backend.
pub struct NwcWallet {
    link: Link,
    network: Option<Network>,
    returns_preimages: Option<bool>,
    /// Set when a payment came back without a preimage.
    saw_no_preimage: AtomicBool,
    service_info: tokio::sync::OnceCell<ServiceInfo>,
}

impl std::fmt::Debug for NwcWallet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NwcWallet")
            .field("link", &self.link)
            .finish_non_exhaustive()
    }
}

fn now_secs() -> u64 {
    Timestamp::now().as_secs()
}

impl NwcWallet {
    /// `pay_invoice`, at the invoice's amount or (one without an amount) `amount_msat`: a
    /// refusal NIP-47 defines as made before paying is definite; any other error is settled by
    /// a lookup.
    async fn pay(
        &self,
        invoice: &DecodedInvoice,
        amount_msat: Option<u64>,
    ) -> Result<PaymentResult, WalletError> {
        // NIP-47 pay_invoice has no fee limit: the wallet service's fee policy applies.
        let reply = match self
            .link
            .call(Request::pay_invoice(PayInvoiceRequest {
                id: None,
                invoice: invoice.bolt11.clone(),
                amount: amount_msat,
            }))
            .await
        {
            Ok(reply) => reply,
            Err(Transport::NotSent(m)) => return Err(WalletError::Unavailable(m)),
            Err(Transport::Unknown(m)) => return Err(WalletError::OutcomeUnknown(m)),
        };
        if let Some(e) = reply.error {
            if is_definite_refusal(&e.code) {
                return Err(WalletError::Rejected(format!(
                    "{}: {}",
                    e.describe(),
                    advice(&e.code)
                )));
            }
            return self.settle_doubt(invoice, &e).await;
        }
        let result: PayResult = parse_result("pay_invoice", reply.result).map_err(|m| {
            WalletError::OutcomeUnknown(format!("{m}; the payment may have gone through"))
        })?;
        let paid = payment_result(result.preimage.as_deref(), result.fees_paid);
        if paid.preimage.is_none() {
            warn!("the NWC wallet service paid but returned no preimage");
        }
        self.note_preimage(&paid);
        info!(fee_msat = paid.fee_msat, "paid over NWC");
        Ok(paid)
    }

    /// Parse the connection URI and prepare the relay pool; nothing is contacted until the first
    /// call, so a wallet service that is down does not stop a start.
    pub async fn new(config: &NwcConfig) -> Result<NwcWallet, WalletError> {
        let uri = NostrWalletConnectURI::parse(config.uri.expose().trim()).map_err(|_| {
            WalletError::Other(
                "the NWC connection URI is not valid: expected nostr+walletconnect://<wallet service pubkey>?relay=<wss://...>&secret=<64 hex> (copy it again from the wallet app)".into(),
            )
        })?;
        let timeout = node::timeout(config.timeout_secs).min(MAX_TIMEOUT);
        Ok(NwcWallet {
            link: Link::new(&uri, timeout).await?,
            network: config.network,
            returns_preimages: config.returns_preimages,
            saw_no_preimage: AtomicBool::new(false),
            service_info: tokio::sync::OnceCell::new(),
        })
    }

    /// The wallet service's get_info, asked once; `Ok(default)` when it does not support it.
    async fn service_info(&self) -> Result<ServiceInfo, WalletError> {
        self.service_info
            .get_or_try_init(|| async {
                let reply = self
                    .link
                    .call(Request::get_info())
                    .await
                    .map_err(Transport::unavailable)?;
                if let Some(e) = reply.error {
                    info!(error = %e.describe(), "the NWC wallet service does not answer get_info; using the configured network");
                    return Ok(ServiceInfo::default());
                }
                let result: InfoResult = parse_result("get_info", reply.result)
                    .inspect_err(|e| warn!(error = %e, "ignoring the get_info result"))
                    .unwrap_or_default();
                if let Some(methods) = &result.methods
                    && !methods.iter().any(|m| m == "pay_invoice")
                {
                    warn!("this NWC connection does not list pay_invoice among its permitted methods: payments will be refused");
                }
                let network = result.network.as_deref().and_then(|n| {
                    n.parse::<Network>()
                        .inspect_err(|_| warn!(network = n, "unknown network in get_info; ignoring it"))
                        .ok()
                });
                if let (Some(said), Some(configured)) = (network, self.network)
                    && said != configured
                {
                    warn!(%said, %configured, "the NWC wallet service's network differs from the configured one; using the wallet service's");
                }
                Ok(ServiceInfo {
                    network,
                    node_id: result.pubkey,
                })
            })
            .await
            .cloned()
    }

    async fn lookup(
        &self,
        payment_hash: &crate::l402::PaymentHash,
    ) -> Result<Option<Transaction>, WalletError> {
        let reply = self
            .link
            .call(Request::lookup_invoice(LookupInvoiceRequest {
                payment_hash: Some(hex::encode(payment_hash)),
                invoice: None,
            }))
            .await
            .map_err(Transport::unavailable)?;
        if let Some(e) = reply.error {
            if e.code.eq_ignore_ascii_case("NOT_FOUND") {
                return Ok(None);
            }
            return Err(WalletError::Other(format!(
                "lookup_invoice: {}: {}",
                e.describe(),
                advice(&e.code)
            )));
        }
        parse_result("lookup_invoice", reply.result)
            .map(Some)
            .map_err(WalletError::Other)
    }

    /// After a pay_invoice error that does not prove anything: ask once what happened.
    async fn settle_doubt(
        &self,
        invoice: &DecodedInvoice,
        error: &ReplyError,
    ) -> Result<PaymentResult, WalletError> {
        let said = format!("{}: {}", error.describe(), advice(&error.code));
        match self.lookup_outgoing(&invoice.payment_hash).await {
            Ok(OutgoingStatus::Failed(_)) => Err(WalletError::Rejected(said)),
            Ok(OutgoingStatus::Succeeded(result)) => {
                warn!(error = %said, "the wallet service reported an error, but its lookup shows the payment succeeded");
                self.note_preimage(&result);
                Ok(result)
            }
            Ok(other) => Err(WalletError::OutcomeUnknown(format!(
                "{said}; its lookup_invoice says {}, so the payment may still go through",
                describe_outgoing(&other)
            ))),
            Err(e) => Err(WalletError::OutcomeUnknown(format!(
                "{said}; the follow-up lookup failed ({e}), so the payment may still go through"
            ))),
        }
    }

    fn note_preimage(&self, result: &PaymentResult) {
        if result.preimage.is_none() {
            self.saw_no_preimage.store(true, Ordering::Relaxed);
        }
    }
}

#[async_trait]
impl Wallet for NwcWallet {
    async fn info(&self) -> Result<WalletInfo, WalletError> {
        let service = self.service_info().await?;
        Ok(WalletInfo {
            backend: "nwc",
            network: service.network.or(self.network).unwrap_or(Network::Mainnet),
            node_id: service.node_id,
            returns_preimages: self.returns_preimages.unwrap_or(true)
                && !self.saw_no_preimage.load(Ordering::Relaxed),
            demo_funds: false,
        })
    }

    async fn balance(&self) -> Result<Balance, WalletError> {
        let reply = self
            .link
            .call(Request::get_balance())
            .await
            .map_err(Transport::unavailable)?;
        if let Some(e) = reply.error {
            return Err(WalletError::Other(format!(
                "get_balance: {}: {}",
                e.describe(),
                advice(&e.code)
            )));
        }
        let result: BalanceResult =
            parse_result("get_balance", reply.result).map_err(WalletError::Other)?;
        Ok(Balance {
            msat: result.balance,
            demo_funds: false,
        })
    }

    #[instrument(skip_all, fields(amount_msat = request.amount_msat))]
    async fn create_invoice(
        &self,
        request: &InvoiceRequest,
    ) -> Result<CreatedInvoice, WalletError> {
        node::positive_amount(request.amount_msat)?;
        let reply = self
            .link
            .call(Request::make_invoice(MakeInvoiceRequest {
                amount: request.amount_msat,
                description: Some(request.description.clone()),
                description_hash: None,
                expiry: Some(request.expiry_secs),
            }))
            .await
            .map_err(Transport::unavailable)?;
        if let Some(e) = reply.error {
            return Err(WalletError::Rejected(format!(
                "make_invoice: {}: {}",
                e.describe(),
                advice(&e.code)
            )));
        }
        let result: MakeResult =
            parse_result("make_invoice", reply.result).map_err(WalletError::Other)?;
        let reported_hash = match &result.payment_hash {
            Some(h) => Some(hash32(h).ok_or_else(|| {
                WalletError::Other(
                    "the NWC wallet service's payment_hash is not 32 bytes of hex".into(),
                )
            })?),
            None => None,
        };
        check_created(
            "the NWC wallet service",
            &result.invoice,
            reported_hash,
            request,
        )
    }

    #[instrument(skip_all, fields(payment_hash = %hex::encode(invoice.payment_hash)))]
    async fn pay_invoice(
        &self,
        invoice: &DecodedInvoice,
        _max_fee_msat: u64,
    ) -> Result<PaymentResult, WalletError> {
        self.pay(invoice, None).await
    }

    /// NIP-47's `make_invoice` requires an amount: no invoice without one can be asked for.
    async fn create_amountless_invoice(
        &self,
        _description: &str,
        _expiry_secs: u64,
    ) -> Result<CreatedInvoice, WalletError> {
        Err(node::unsupported(
            "NWC",
            "create amountless invoices (a Payment session's return invoice, to buy sessions)",
            "NIP-47's make_invoice requires an amount",
        ))
    }

    fn pays_amountless(&self) -> bool {
        true
    }

    /// `pay_invoice` with its optional `amount` (msat), for an invoice without one.
    #[instrument(skip_all, fields(backend = "nwc", payment_hash = %hex::encode(invoice.payment_hash), amount_msat))]
    async fn pay_amountless(
        &self,
        invoice: &DecodedInvoice,
        amount_msat: u64,
        _max_fee_msat: u64,
    ) -> Result<PaymentResult, WalletError> {
        let amount = node::amountless_amount("NWC", invoice, amount_msat)?;
        self.pay(invoice, Some(amount)).await
    }

    async fn lookup_incoming(
        &self,
        payment_hash: &crate::l402::PaymentHash,
    ) -> Result<IncomingStatus, WalletError> {
        Ok(match self.lookup(payment_hash).await? {
            None => IncomingStatus::NotFound,
            Some(tx) => incoming_status(&tx, now_secs()),
        })
    }

    async fn lookup_outgoing(
        &self,
        payment_hash: &crate::l402::PaymentHash,
    ) -> Result<OutgoingStatus, WalletError> {
        Ok(match self.lookup(payment_hash).await? {
            None => OutgoingStatus::NotFound,
            Some(tx) => outgoing_status(&tx),
        })
    }

    fn withholds_preimages(&self) -> bool {
        self.returns_preimages == Some(false) || self.saw_no_preimage.load(Ordering::Relaxed)
    }

    /// A pay_invoice request stays valid at the relay until its `expiration` tag (our timeout
    /// plus clock-skew slack): a wallet service that comes back online before then may still
    /// pay it. Add as much again for a wallet service whose clock runs behind.
    fn late_start_window_secs(&self) -> u64 {
        self.link.timeout().as_secs() + 2 * EXPIRATION_SLACK_SECS
    }
}
