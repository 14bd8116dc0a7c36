//! `[backend] kind = "cln"`: the settings.

use serde::Deserialize;

use crate::bolt11::Network;
use crate::secret::SecretString;

/// `[backend] kind = "cln"` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClnConfig {
    /// clnrest URL, e.g. https://localhost:3010
    pub url: String,
    /// Rune. Secret.
    pub rune: SecretString,
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
