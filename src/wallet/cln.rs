//! Core Lightning backend (clnrest plugin): a rune for auth.
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

/// `[backend] kind = "cln"` settings.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClnConfig {
    /// clnrest URL, e.g. https://127.0.0.1:3010
    pub url: String,
    /// Rune. Secret.
    pub rune: String,
    /// Path of the clnrest certificate (PEM), when it is self-signed.
    #[serde(default)]
    pub tls_cert_path: Option<std::path::PathBuf>,
    /// Network of the node; default mainnet.
    #[serde(default)]
    pub network: Option<Network>,
    /// Seconds per request; default 30.
    #[serde(default)]
    pub timeout_secs: Option<u64>,
}

impl std::fmt::Debug for ClnConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClnConfig")
            .field("url", &self.url)
            .field("rune", &"<secret>")
            .field("tls_cert_path", &self.tls_cert_path)
            .field("network", &self.network)
            .finish_non_exhaustive()
    }
}

/// The Core Lightning backend.
#[derive(Debug)]
pub struct ClnWallet {
    config: ClnConfig,
}

impl ClnWallet {
    pub fn new(config: &ClnConfig) -> Result<ClnWallet, WalletError> {
        let _ = Duration::from_secs(config.timeout_secs.unwrap_or(30));
        Ok(ClnWallet {
            config: config.clone(),
        })
    }

    fn missing(&self) -> WalletError {
        WalletError::Unavailable(format!(
            "the Core Lightning backend is not implemented yet (configured: {:?})",
            self.config
        ))
    }
}

#[async_trait]
impl Wallet for ClnWallet {
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
