//! `[backend] kind = "nwc"`: the settings (the connection URI is the secret).

use serde::{Deserialize, Deserializer};

use crate::bolt11::Network;
use crate::secret::SecretString;

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
    #[serde(default, deserialize_with = "lenient_bool")]
    pub returns_preimages: Option<bool>,
}

/// `true`/`false`, also as a string (environment variables arrive as strings).
fn lenient_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum B {
        Bool(bool),
        Str(String),
    }
    match Option::<B>::deserialize(d)? {
        None => Ok(None),
        Some(B::Bool(b)) => Ok(Some(b)),
        Some(B::Str(s)) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "1" => Ok(Some(true)),
            "false" | "no" | "0" => Ok(Some(false)),
            other => Err(serde::de::Error::custom(format!(
                "returns_preimages: {other:?} is not true or false"
            ))),
        },
    }
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
