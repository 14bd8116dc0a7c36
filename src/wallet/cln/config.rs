//! `[backend] kind = "cln"`: the settings.

use serde::Deserialize;

use crate::bolt11::Network;

/// `[backend] kind = "cln"` settings.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClnConfig {
    /// clnrest URL, e.g. https://localhost:3010
    pub url: String,
    /// Rune. Secret.
    pub rune: String,
    /// Path of the CA certificate clnrest's certificate is signed with (PEM), e.g.
    /// `~/.lightning/bitcoin/ca.pem`, when it is self-signed.
    #[serde(default)]
    pub tls_cert_path: Option<std::path::PathBuf>,
    /// Network the node must be on; by default whatever the node reports.
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
