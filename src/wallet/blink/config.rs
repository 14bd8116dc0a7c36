//! `[backend] kind = "blink"`: the settings, the API key hidden in `Debug` ([`SecretString`]).

use serde::Deserialize;

use crate::bolt11::Network;
use crate::config::SecretString;

/// Blink's production GraphQL endpoint.
pub const DEFAULT_URL: &str = "https://api.blink.sv/graphql";

/// `[backend] kind = "blink"` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlinkConfig {
    /// The GraphQL endpoint; default `https://api.blink.sv/graphql` (staging:
    /// `https://api.staging.blink.sv/graphql`).
    #[serde(default = "default_url")]
    pub url: String,
    /// An API key (`blink_...`) from dashboard.blink.sv. Secret.
    pub api_key: SecretString,
    /// The BTC wallet to use; default: the account's BTC wallet (never its USD wallet).
    #[serde(default)]
    pub wallet_id: Option<String>,
    /// Network Blink must be on; by default whatever it reports.
    #[serde(default)]
    pub network: Option<Network>,
    /// Seconds per request; default 30.
    #[serde(default)]
    pub timeout_secs: Option<u64>,
}

fn default_url() -> String {
    DEFAULT_URL.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_required_and_never_shown() {
        let c: BlinkConfig = toml::from_str("api_key = \"blink_s3cr3t\"").unwrap();
        assert_eq!(c.url, DEFAULT_URL);
        assert!(!format!("{c:?}").contains("s3cr3t"));
        assert!(toml::from_str::<BlinkConfig>("url = \"http://x\"").is_err());
        assert!(toml::from_str::<BlinkConfig>("api_key = \"k\"\napikey = \"k\"").is_err());
    }
}
