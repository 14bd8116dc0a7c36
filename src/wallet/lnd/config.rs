//! `[backend] kind = "lnd"`: the settings, and the macaroon they point at.

use serde::Deserialize;

use crate::bolt11::Network;
use crate::secret::SecretString;
use crate::wallet::WalletError;

/// `[backend] kind = "lnd"` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LndConfig {
    /// REST URL, e.g. https://127.0.0.1:8080
    pub url: String,
    /// Macaroon, hex (or macaroon_path). Secret.
    #[serde(default)]
    pub macaroon_hex: Option<SecretString>,
    /// Path of the macaroon file (or macaroon_hex).
    #[serde(default)]
    pub macaroon_path: Option<std::path::PathBuf>,
    /// Path of LND's tls.cert (PEM), when it is self-signed.
    #[serde(default)]
    pub tls_cert_path: Option<std::path::PathBuf>,
    /// Network the node must be on; by default whatever the node reports.
    #[serde(default)]
    pub network: Option<Network>,
    /// Seconds per request; default 30.
    #[serde(default)]
    pub timeout_secs: Option<u64>,
}

/// The macaroon as hex, from `macaroon_hex` or the file at `macaroon_path` (binary, or hex text).
pub(super) fn macaroon_hex(config: &LndConfig) -> Result<String, WalletError> {
    let not_hex = || {
        WalletError::Other(
            "macaroon_hex is not hex; give the macaroon file as macaroon_path instead, or convert it with `xxd -p -c 1000 <file>`".into(),
        )
    };
    match (&config.macaroon_hex, &config.macaroon_path) {
        (Some(_), Some(_)) => Err(WalletError::Other(
            "set either macaroon_hex or macaroon_path for LND, not both".into(),
        )),
        (Some(text), None) => as_hex(text.expose().as_bytes()).ok_or_else(not_hex),
        (None, Some(path)) => {
            let bytes = std::fs::read(path).map_err(|e| {
                WalletError::Other(format!("cannot read the macaroon {}: {e}", path.display()))
            })?;
            if bytes.iter().all(u8::is_ascii_whitespace) {
                return Err(WalletError::Other(format!(
                    "the macaroon file {} is empty",
                    path.display()
                )));
            }
            // A binary macaroon (V2 starts with 0x02) is never all hex digits.
            Ok(as_hex(&bytes).unwrap_or_else(|| hex::encode(&bytes)))
        }
        (None, None) => Err(WalletError::Other(
            "LND needs a macaroon: set macaroon_path (e.g. ~/.lnd/data/chain/bitcoin/mainnet/l402-mcp.macaroon) or macaroon_hex".into(),
        )),
    }
}

/// `text` when it is hex (surrounding whitespace allowed), lower-cased.
fn as_hex(text: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(text).ok()?.trim();
    (!text.is_empty() && text.len() % 2 == 0 && text.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| text.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macaroons_are_read_as_binary_or_hex() {
        assert_eq!(as_hex(b" 0201AB\n").as_deref(), Some("0201ab"));
        assert_eq!(as_hex(b"\x02\x01\x04"), None);
        assert_eq!(as_hex(b"abc"), None);
        let cfg = |hex: Option<&str>| LndConfig {
            url: "https://127.0.0.1:8080".into(),
            macaroon_hex: hex.map(SecretString::from),
            macaroon_path: None,
            tls_cert_path: None,
            network: None,
            timeout_secs: None,
        };
        assert!(macaroon_hex(&cfg(None)).is_err());
        assert!(macaroon_hex(&cfg(Some("not hex"))).is_err());
        assert_eq!(macaroon_hex(&cfg(Some("0A0b"))).unwrap(), "0a0b");
    }
}
