//! `[backend] kind = "nwc"`: the settings (the connection URI is the secret).

use serde::Deserialize;

use crate::bolt11::Network;
use crate::secret::SecretString;
use crate::wallet::toolkit::json::de_bool;

/// `[backend] kind = "nwc"` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NwcConfig {
    /// Connection URI, nostr+walletconnect://... Secret (holds the client key).
    pub uri: SecretString,
    /// Network of the node when the wallet service does not say (get_info); default mainnet.
    #[serde(default)]
    pub network: Option<Network>,
    /// Seconds per request; default 30.
    #[serde(default)]
    pub timeout_secs: Option<u64>,
    /// Set to false for a wallet service known not to return preimages; default true (until a
    /// payment comes back without one).
    #[serde(default, deserialize_with = "de_bool")]
    pub returns_preimages: Option<bool>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_hides_the_uri_and_reads_env_style_booleans() {
        let c: NwcConfig = toml::from_str(
            "uri = \"nostr+walletconnect://abc?secret=deadbeef\"\nreturns_preimages = \"false\"\ntimeout_secs = 5",
        )
        .expect("config");
        assert_eq!(c.returns_preimages, Some(false));
        assert!(!format!("{c:?}").contains("deadbeef"));
        assert!(toml::from_str::<NwcConfig>("uri = \"x\"\nreturns_preimages = \"maybe\"").is_err());
    }
}
