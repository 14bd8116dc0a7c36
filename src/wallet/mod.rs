//! What a wallet backend must do, and the backends: one folder each, built from `toolkit`.
//!
//! The pay path needs to know, when a payment call fails, whether money may have moved:
//! [`WalletError::definitely_not_paid`] says so. A definite failure releases the budget
//! reservation; anything else leaves the payment pending until a lookup resolves it.

pub mod blink;
pub mod cln;
pub mod embedded;
pub mod fake;
pub mod lnbits;
pub mod lnbot;
pub mod lnd;
pub mod nwc;
pub mod opennode;
pub mod phoenixd;
pub mod strike;
pub(crate) mod toolkit;

pub use embedded::EmbeddedWallet;
pub use fake::{FakeNode, FakeWallet};
pub use toolkit::RefStore;

use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;

use crate::bolt11::{DecodedInvoice, Network};
use crate::l402::{PaymentHash, Preimage};
use crate::storage::PaidRecord;

/// Which wallet backend to use, from the `[backend]` config section (`kind = "..."`) or the
/// environment (`L402_MCP_BACKEND` and `L402_MCP_<KIND>_<FIELD>`).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum BackendConfig {
    /// The offline demo wallet in the data dir (the default).
    #[default]
    Embedded,
    Lnbits(lnbits::LnbitsConfig),
    Lnd(lnd::LndConfig),
    Cln(cln::ClnConfig),
    Phoenixd(phoenixd::PhoenixdConfig),
    Nwc(nwc::NwcConfig),
    Blink(blink::BlinkConfig),
    Opennode(opennode::OpennodeConfig),
    Strike(strike::StrikeConfig),
    Lnbot(lnbot::LnbotConfig),
}

impl BackendConfig {
    pub fn kind(&self) -> &'static str {
        match self {
            BackendConfig::Embedded => "embedded",
            BackendConfig::Lnbits(_) => "lnbits",
            BackendConfig::Lnd(_) => "lnd",
            BackendConfig::Cln(_) => "cln",
            BackendConfig::Phoenixd(_) => "phoenixd",
            BackendConfig::Nwc(_) => "nwc",
            BackendConfig::Blink(_) => "blink",
            BackendConfig::Opennode(_) => "opennode",
            BackendConfig::Strike(_) => "strike",
            BackendConfig::Lnbot(_) => "lnbot",
        }
    }
}

/// Open a backend other than the embedded wallet (which needs the ledger: see `App`). `refs`
/// is where a hosted backend that cannot look payments up by hash keeps its ids for them.
pub async fn open_remote(
    config: &BackendConfig,
    refs: RefStore,
) -> Result<Arc<dyn Wallet>, WalletError> {
    Ok(match config {
        BackendConfig::Embedded => {
            return Err(WalletError::Other(
                "the embedded wallet is opened with its data dir".into(),
            ));
        }
        BackendConfig::Lnbits(c) => Arc::new(lnbits::LnbitsWallet::new(c)?),
        BackendConfig::Lnd(c) => Arc::new(lnd::LndWallet::new(c)?),
        BackendConfig::Cln(c) => Arc::new(cln::ClnWallet::new(c)?),
        BackendConfig::Phoenixd(c) => Arc::new(phoenixd::PhoenixdWallet::new(c)?),
        BackendConfig::Nwc(c) => Arc::new(nwc::NwcWallet::new(c).await?),
        BackendConfig::Blink(c) => Arc::new(blink::BlinkWallet::new(c)?),
        BackendConfig::Opennode(c) => Arc::new(opennode::OpennodeWallet::new(c, refs)?),
        BackendConfig::Strike(c) => Arc::new(strike::StrikeWallet::new(c, refs)?),
        BackendConfig::Lnbot(c) => Arc::new(lnbot::LnbotWallet::new(c)?),
    })
}

/// What a backend says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WalletInfo {
    /// Backend kind, e.g. `embedded`, `lnbits`.
    pub backend: &'static str,
    pub network: Network,
    /// The node's public key, hex, when the backend has one.
    pub node_id: Option<String>,
    /// Whether paying returns the preimage (without it no L402 credential can be shown).
    pub returns_preimages: bool,
    /// Whether the funds are test sats (the embedded wallet's demo grant and deposits).
    pub demo_funds: bool,
}

/// How sure a backend is of what it found in [`Wallet::access`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Ok,
    Warn,
    Fail,
}

/// What a backend found out about its credential or account beyond [`Wallet::info`], for
/// `doctor`: a key that may not pay, a scope missing, a seller-only backend.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccessCheck {
    /// What was checked (`pay`, `receive`, `key`, `preimages`...): doctor shows it in place of a
    /// check of its own by that name.
    pub check: &'static str,
    pub level: Level,
    pub detail: String,
    /// What to do about it.
    pub fix: Option<String>,
}

/// A wallet balance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Balance {
    pub msat: u64,
    /// True when these are test sats, not real bitcoin. Show it wherever the balance is shown.
    pub demo_funds: bool,
}

/// An invoice to create.
#[derive(Debug, Clone)]
pub struct InvoiceRequest {
    pub amount_msat: u64,
    pub description: String,
    pub expiry_secs: u64,
}

/// An invoice created by a backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedInvoice {
    pub bolt11: String,
    pub payment_hash: PaymentHash,
    /// Unix seconds.
    pub expires_at: u64,
}

/// The outcome of a payment the backend made.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PaymentResult {
    /// `None` when the backend does not reveal preimages.
    pub preimage: Option<Preimage>,
    pub fee_msat: u64,
}

impl std::fmt::Debug for PaymentResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PaymentResult")
            .field("has_preimage", &self.preimage.is_some())
            .field("fee_msat", &self.fee_msat)
            .finish()
    }
}

/// An invoice we issued, as the backend sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncomingStatus {
    Pending,
    Settled { amount_msat: u64 },
    Expired,
    NotFound,
}

/// A payment we made, as the backend sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutgoingStatus {
    /// Under way: money may still move.
    InFlight,
    Succeeded(PaymentResult),
    /// Failed for good: no money moved.
    Failed(String),
    /// The backend has no record: the payment never reached it.
    NotFound,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WalletError {
    /// The backend refused before any money moved (insufficient balance, no route, expired...).
    #[error("payment refused by the wallet: {0}")]
    Rejected(String),
    /// This backend cannot pay this invoice at all.
    #[error("{0}")]
    NotPayable(String),
    /// The backend could not be reached or did not understand us; no payment was sent.
    #[error("wallet unavailable: {0}")]
    Unavailable(String),
    /// The request may have reached the backend but we do not know the outcome.
    #[error("payment outcome unknown: {0}")]
    OutcomeUnknown(String),
    #[error("wallet error: {0}")]
    Other(String),
    /// The wallet's own records (the embedded wallet's books in the ledger) hold a value that
    /// cannot be right; nothing was done with it.
    #[error("{0}")]
    Corrupt(String),
}

impl WalletError {
    /// True when no money moved and none will: the budget reservation can be released.
    pub fn definitely_not_paid(&self) -> bool {
        matches!(
            self,
            WalletError::Rejected(_) | WalletError::NotPayable(_) | WalletError::Unavailable(_)
        )
    }
}

/// A Lightning wallet backend.
#[async_trait]
pub trait Wallet: Send + Sync + std::fmt::Debug {
    async fn info(&self) -> Result<WalletInfo, WalletError>;
    async fn balance(&self) -> Result<Balance, WalletError>;
    async fn create_invoice(&self, request: &InvoiceRequest)
    -> Result<CreatedInvoice, WalletError>;
    /// Pay `invoice`, spending at most `max_fee_msat` on routing.
    async fn pay_invoice(
        &self,
        invoice: &DecodedInvoice,
        max_fee_msat: u64,
    ) -> Result<PaymentResult, WalletError>;
    /// [`Wallet::pay_invoice`], and the payment's success recorded in the ledger in the same
    /// commit as the payment itself, where the wallet's books are the ledger's database (the
    /// embedded wallet): `true` when it was recorded so; otherwise (by default) the caller
    /// records it.
    async fn pay_invoice_recorded(
        &self,
        invoice: &DecodedInvoice,
        max_fee_msat: u64,
        record: &PaidRecord<'_>,
    ) -> Result<(PaymentResult, bool), WalletError> {
        let _ = record;
        Ok((self.pay_invoice(invoice, max_fee_msat).await?, false))
    }
    async fn lookup_incoming(
        &self,
        payment_hash: &PaymentHash,
    ) -> Result<IncomingStatus, WalletError>;
    async fn lookup_outgoing(
        &self,
        payment_hash: &PaymentHash,
    ) -> Result<OutgoingStatus, WalletError>;

    /// How long (seconds) after a pay call began the backend may still start that payment,
    /// e.g. a request still valid at a relay. A payment the backend has no record of is only
    /// declared failed (and its budget released) once this has passed; never less than
    /// [`crate::pay::RECONCILE_GRACE_SECS`].
    fn late_start_window_secs(&self) -> u64 {
        crate::pay::RECONCILE_GRACE_SECS
    }

    /// True when this backend is known not to return preimages (configured so, or seen paying
    /// without one): payments that need one (L402) are refused before any money moves.
    fn withholds_preimages(&self) -> bool {
        false
    }

    /// Create an invoice without an amount (the payer chooses it): a `Payment` session's return
    /// invoice, which takes the refund of an unspent deposit. Backends that cannot refuse
    /// ([`WalletError::NotPayable`], naming themselves and why), before asking anything.
    async fn create_amountless_invoice(
        &self,
        _description: &str,
        _expiry_secs: u64,
    ) -> Result<CreatedInvoice, WalletError> {
        Err(WalletError::NotPayable(
            "this wallet backend cannot create amountless invoices (a Payment session's return invoice, needed to get its deposit back)".into(),
        ))
    }

    /// Pay `amount_msat` to an invoice without an amount (a session's refund to the buyer's
    /// return invoice), under the same rules as [`Wallet::pay_invoice`] (a definite refusal
    /// only when nothing moved, else an unknown outcome resolved by `lookup_outgoing`); an
    /// invoice that states its own amount is refused. Backends that cannot refuse
    /// ([`WalletError::NotPayable`], naming themselves and why), before any money moves.
    async fn pay_amountless(
        &self,
        _invoice: &DecodedInvoice,
        _amount_msat: u64,
        _max_fee_msat: u64,
    ) -> Result<PaymentResult, WalletError> {
        Err(WalletError::NotPayable(
            "this wallet backend cannot pay amountless invoices (a Payment session's refund)"
                .into(),
        ))
    }

    /// Whether [`Wallet::pay_amountless`] is implemented, so that this wallet can sell
    /// `Payment` sessions (their refunds); a gateway on a wallet that cannot refuses to offer
    /// them rather than take deposits it could not pay back.
    fn pays_amountless(&self) -> bool {
        false
    }

    /// What this backend can tell of its credential and account beyond [`Wallet::info`] (asked
    /// by `doctor` once `info` answered; never moves money).
    async fn access(&self) -> Vec<AccessCheck> {
        Vec::new()
    }
}
