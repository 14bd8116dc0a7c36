//! `[backend] kind = "phoenixd"`: the settings, with Phoenix's trampoline fee as default.

use serde::Deserialize;

use crate::bolt11::Network;
use crate::secret::SecretString;
use crate::wallet::toolkit::json::de_u64;

/// Phoenix's trampoline fee, as phoenixd sets it up: a base in sats ...
pub const DEFAULT_TRAMPOLINE_FEE_BASE_SAT: u64 = 4;
/// ... plus parts per million of the amount.
pub const DEFAULT_TRAMPOLINE_FEE_PPM: u64 = 4_000;

/// `[backend] kind = "phoenixd"` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhoenixdConfig {
    /// URL, e.g. http://127.0.0.1:9740
    pub url: String,
    /// http-password from phoenix.conf. Secret.
    pub password: SecretString,
    /// Network the node must be on; by default whatever the node reports.
    #[serde(default)]
    pub network: Option<Network>,
    /// Seconds per request; default 30.
    #[serde(default)]
    pub timeout_secs: Option<u64>,
    /// Trampoline fee base in sats; default 4 (Phoenix's).
    #[serde(default, deserialize_with = "de_u64")]
    pub trampoline_fee_base_sat: Option<u64>,
    /// Trampoline fee in parts per million of the amount; default 4000 (0.4%, Phoenix's).
    #[serde(default, deserialize_with = "de_u64")]
    pub trampoline_fee_ppm: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fee_settings_read_from_strings_too() {
        let c: PhoenixdConfig = toml::from_str(
            "url = \"http://x\"\npassword = \"p\"\ntrampoline_fee_base_sat = \"5\"\ntrampoline_fee_ppm = 5000",
        )
        .unwrap();
        assert_eq!(
            (c.trampoline_fee_base_sat, c.trampoline_fee_ppm),
            (Some(5), Some(5000))
        );
    }
}
