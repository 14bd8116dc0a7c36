//! `[backend] kind = "lnbits"`: the settings (checked: at least one key), and which key a
//! request went with, for messages that say what to fix.

use serde::Deserialize;

use crate::bolt11::Network;
use crate::secret::SecretString;

/// `[backend] kind = "lnbits"` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "RawConfig")]
pub struct LnbitsConfig {
    /// Base URL, e.g. https://lnbits.example.com (a sub-path install includes its path).
    pub url: String,
    /// Admin key: pays. Secret. Without it the wallet can receive but not pay.
    pub admin_key: Option<SecretString>,
    /// Invoice/read key: receives, looks up, reads the balance. Secret. Defaults to the admin key.
    pub invoice_key: Option<SecretString>,
    /// Network of the funding node; default mainnet.
    pub network: Option<Network>,
    /// Seconds per request; default 30.
    pub timeout_secs: Option<u64>,
}

/// The settings as written; [`LnbitsConfig`] is them checked.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    url: String,
    #[serde(default)]
    admin_key: Option<SecretString>,
    #[serde(default)]
    invoice_key: Option<SecretString>,
    #[serde(default)]
    network: Option<Network>,
    #[serde(default)]
    timeout_secs: Option<u64>,
}

impl TryFrom<RawConfig> for LnbitsConfig {
    type Error = String;

    fn try_from(raw: RawConfig) -> Result<Self, String> {
        let key = |k: Option<SecretString>| {
            k.map(|k| SecretString::new(k.expose().trim()))
                .filter(|k| !k.is_empty())
        };
        let (admin_key, invoice_key) = (key(raw.admin_key), key(raw.invoice_key));
        if admin_key.is_none() && invoice_key.is_none() {
            return Err("LNbits needs a key from the wallet's API info: invoice_key to receive (L402_MCP_LNBITS_INVOICE_KEY), admin_key to pay (L402_MCP_LNBITS_ADMIN_KEY)".into());
        }
        if raw.timeout_secs == Some(0) {
            return Err("timeout_secs must be at least 1".into());
        }
        Ok(LnbitsConfig {
            url: raw.url,
            admin_key,
            invoice_key,
            network: raw.network,
            timeout_secs: raw.timeout_secs,
        })
    }
}

/// Which configured key a request went with, for messages that say what to fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Key {
    Admin,
    Invoice,
}

impl Key {
    pub(super) fn field(self) -> &'static str {
        match self {
            Key::Admin => "admin_key",
            Key::Invoice => "invoice_key",
        }
    }
    pub(super) fn env(self) -> &'static str {
        match self {
            Key::Admin => "L402_MCP_LNBITS_ADMIN_KEY",
            Key::Invoice => "L402_MCP_LNBITS_INVOICE_KEY",
        }
    }
    pub(super) fn label(self) -> &'static str {
        match self {
            Key::Admin => "Admin key",
            Key::Invoice => "Invoice/read key",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_needs_a_key_and_hides_both() {
        let parse = |s: &str| toml::from_str::<LnbitsConfig>(s).map_err(|e| e.to_string());
        let both = parse("url = \"http://x\"\nadmin_key = \"adm1n\"\ninvoice_key = \"1nv\"");
        let shown = format!("{both:?}");
        assert!(
            both.is_ok() && !shown.contains("adm1n") && !shown.contains("1nv"),
            "{shown}"
        );
        assert!(parse("url = \"http://x\"\ninvoice_key = \"1nv\"").is_ok());
        assert!(parse("url = \"http://x\"").is_err_and(|e| e.contains("admin_key")));
        assert!(parse("url = \"http://x\"\nadmin_key = \" \"").is_err());
        assert!(parse("url = \"http://x\"\nadmin_key = \"a\"\nadminkey = \"b\"").is_err());
    }
}
