//! `[backend] kind = "strike"`: the settings, the API key hidden in `Debug` ([`SecretString`]).

use serde::Deserialize;

use crate::bolt11::Network;
use crate::config::SecretString;
use crate::wallet::toolkit::json::de_bool;

/// Strike's production API.
pub const DEFAULT_URL: &str = "https://api.strike.me";

/// `[backend] kind = "strike"` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StrikeConfig {
    /// The API; default `https://api.strike.me` (sandbox: `https://api.dev.strike.me`).
    #[serde(default = "default_url")]
    pub url: String,
    /// An API key with the scopes docs/wallets/strike.md lists. Secret.
    pub api_key: SecretString,
    /// The network of Strike's invoices: mainnet (default; Strike does not say).
    #[serde(default)]
    pub network: Option<Network>,
    /// Seconds per request; default 30.
    #[serde(default)]
    pub timeout_secs: Option<u64>,
    /// Set to false if this account's payments come back without preimages: L402 buying is
    /// then refused before anything is paid. Default: find out (each payment's preimage is
    /// checked against its hash; one without turns L402 buying off).
    #[serde(default, deserialize_with = "de_bool")]
    pub returns_preimages: Option<bool>,
}

fn default_url() -> String {
    DEFAULT_URL.into()
}
