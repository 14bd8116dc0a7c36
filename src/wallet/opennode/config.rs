//! `[backend] kind = "opennode"`: the settings, the API key hidden in `Debug`.

use serde::Deserialize;

use crate::bolt11::Network;
use crate::config::SecretString;

/// OpenNode's live API.
pub const DEFAULT_URL: &str = "https://api.opennode.com";

/// `[backend] kind = "opennode"` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpennodeConfig {
    /// The API; default `https://api.opennode.com` (testnet: `https://dev-api.opennode.com`).
    #[serde(default = "default_url")]
    pub url: String,
    /// An API key with the Read permission (or Invoice, without the balance). Secret.
    pub api_key: SecretString,
    /// The network of the invoices OpenNode makes: mainnet (default), or testnet for dev-api.
    #[serde(default)]
    pub network: Option<Network>,
    /// Seconds per request; default 30.
    #[serde(default)]
    pub timeout_secs: Option<u64>,
}

fn default_url() -> String {
    DEFAULT_URL.into()
}
