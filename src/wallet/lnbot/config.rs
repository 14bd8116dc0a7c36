//! `[backend] kind = "lnbot"`: the settings, the key hidden in `Debug` ([`SecretString`]).

use serde::Deserialize;

use crate::bolt11::Network;
use crate::config::SecretString;
use crate::wallet::toolkit::json::de_bool;

/// ln.bot's API.
pub const DEFAULT_URL: &str = "https://api.ln.bot";

/// `[backend] kind = "lnbot"` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LnbotConfig {
    /// The API; default `https://api.ln.bot`.
    #[serde(default = "default_url")]
    pub url: String,
    /// The wallet's key (`wk_...`), or a user key (`uk_...`) with `wallet_id`. Secret.
    pub api_key: SecretString,
    /// The wallet (`wal_...`); default: the wallet key's own.
    #[serde(default)]
    pub wallet_id: Option<String>,
    /// The network of ln.bot's invoices: mainnet (default; ln.bot does not say).
    #[serde(default)]
    pub network: Option<Network>,
    /// Seconds per request; default 30.
    #[serde(default)]
    pub timeout_secs: Option<u64>,
    /// Set to false if this wallet's payments come back without preimages: L402 buying is then
    /// refused before anything is paid. Default: find out, payment by payment.
    #[serde(default, deserialize_with = "de_bool")]
    pub returns_preimages: Option<bool>,
}

fn default_url() -> String {
    DEFAULT_URL.into()
}
