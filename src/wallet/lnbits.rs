//! LNbits backend (REST API): the admin key pays, the invoice key receives.
//!
//! NOT IMPLEMENTED YET: every call fails with a clear error until this backend lands.

use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;

use super::{
    Balance, CreatedInvoice, IncomingStatus, InvoiceRequest, OutgoingStatus, PaymentResult, Wallet,
    WalletError, WalletInfo,
};
use crate::bolt11::{DecodedInvoice, Network};

/// `[backend] kind = "lnbits"` settings.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LnbitsConfig {
    /// Base URL, e.g. http://127.0.0.1:5000
    pub url: String,
    /// Admin key (pays). Secret.
    pub admin_key: String,
    /// Invoice/read key (receives, looks up). Secret.
    pub invoice_key: String,
    /// Network of the node; default mainnet.
    #[serde(default)]
    pub network: Option<Network>,
    /// Seconds per request; default 30.
    #[serde(default)]
    pub timeout_secs: Option<u64>,
}

impl std::fmt::Debug for LnbitsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LnbitsConfig")
            .field("url", &self.url)
            .field("admin_key", &"<secret>")
            .field("invoice_key", &"<secret>")
            .field("network", &self.network)
            .finish_non_exhaustive()
    }
}

/// The LNbits backend.
#[derive(Debug)]
pub struct LnbitsWallet {
    config: LnbitsConfig,
}

impl LnbitsWallet {
    pub fn new(config: &LnbitsConfig) -> Result<LnbitsWallet, WalletError> {
        let _ = Duration::from_secs(config.timeout_secs.unwrap_or(30));
        Ok(LnbitsWallet {
            config: config.clone(),
        })
    }

    fn missing(&self) -> WalletError {
        WalletError::Unavailable(format!(
            "the LNbits backend is not implemented yet (configured: {:?})",
            self.config
        ))
    }
}

#[async_trait]
impl Wallet for LnbitsWallet {
    async fn info(&self) -> Result<WalletInfo, WalletError> {
        Err(self.missing())
    }
    async fn balance(&self) -> Result<Balance, WalletError> {
        Err(self.missing())
    }
    async fn create_invoice(
        &self,
        _request: &InvoiceRequest,
    ) -> Result<CreatedInvoice, WalletError> {
        Err(self.missing())
    }
    async fn pay_invoice(
        &self,
        _invoice: &DecodedInvoice,
        _max_fee_msat: u64,
    ) -> Result<PaymentResult, WalletError> {
        Err(self.missing())
    }
    async fn lookup_incoming(
        &self,
        _payment_hash: &[u8; 32],
    ) -> Result<IncomingStatus, WalletError> {
        Err(self.missing())
    }
    async fn lookup_outgoing(
        &self,
        _payment_hash: &[u8; 32],
    ) -> Result<OutgoingStatus, WalletError> {
        Err(self.missing())
    }
}
