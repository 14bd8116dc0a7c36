//! Phoenixd backend (HTTP API, basic auth with the http-password).
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

/// `[backend] kind = "phoenixd"` settings.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhoenixdConfig {
    /// URL, e.g. http://127.0.0.1:9740
    pub url: String,
    /// http-password from phoenix.conf. Secret.
    pub password: String,
    /// Network of the node; default mainnet.
    #[serde(default)]
    pub network: Option<Network>,
    /// Seconds per request; default 30.
    #[serde(default)]
    pub timeout_secs: Option<u64>,
}

impl std::fmt::Debug for PhoenixdConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PhoenixdConfig")
            .field("url", &self.url)
            .field("password", &"<secret>")
            .field("network", &self.network)
            .finish_non_exhaustive()
    }
}

/// The Phoenixd backend.
#[derive(Debug)]
pub struct PhoenixdWallet {
    config: PhoenixdConfig,
}

impl PhoenixdWallet {
    pub fn new(config: &PhoenixdConfig) -> Result<PhoenixdWallet, WalletError> {
        let _ = Duration::from_secs(config.timeout_secs.unwrap_or(30));
        Ok(PhoenixdWallet {
            config: config.clone(),
        })
    }

    fn missing(&self) -> WalletError {
        WalletError::Unavailable(format!(
            "the Phoenixd backend is not implemented yet (configured: {:?})",
            self.config
        ))
    }
}

#[async_trait]
impl Wallet for PhoenixdWallet {
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
