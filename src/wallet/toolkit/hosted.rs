//! What the hosted wallets (Blink, Strike, OpenNode, ln.bot) share: an API reached with one
//! API key, which is never shown (scrubbed from every message, hidden in `Debug`), and the
//! messages that say which setting to fix when the API cannot be reached or refuses the key.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::redact::Secrets;
use super::{Rest, Tls};
use crate::bolt11::Network;
use crate::config::SecretString;
use crate::wallet::{AccessCheck, Level, PaymentResult, WalletError, WalletInfo};

/// A hosted wallet's API: its client, holding the key in a header.
#[derive(Clone)]
pub struct HostedApi {
    pub rest: Rest,
    /// The API's URL as configured, for messages.
    pub url: String,
    /// The provider's name, e.g. `Strike`.
    pub name: &'static str,
    /// The kind in upper case, e.g. `STRIKE`, for the variables messages name.
    env: &'static str,
    secrets: Secrets,
}

impl std::fmt::Debug for HostedApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostedApi")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl HostedApi {
    /// A client of `name`'s API at `base` (`url` as configured), sending the key as
    /// `header(key)`, with `timeout` per request. `env` is the kind in upper case.
    pub fn new(
        name: &'static str,
        env: &'static str,
        url: &str,
        base: &str,
        key: &SecretString,
        header: impl FnOnce(&str) -> (&'static str, String),
        timeout: Duration,
    ) -> Result<HostedApi, WalletError> {
        let key = key.expose().trim();
        if key.is_empty() {
            return Err(WalletError::Other(format!(
                "{name} needs an API key: set api_key (L402_MCP_{env}_API_KEY); docs/wallets/{}.md says which",
                env.to_ascii_lowercase()
            )));
        }
        let (field, value) = header(key);
        Ok(HostedApi {
            rest: Rest::new(base, &[(field, value.as_str())], &Tls::default(), timeout)?,
            url: url.trim().trim_end_matches('/').to_owned(),
            name,
            env,
            secrets: Secrets::new([key]),
        })
    }

    /// `msg` with the key scrubbed out.
    pub fn redact(&self, msg: impl Into<String>) -> String {
        self.secrets.scrub(msg)
    }

    /// The API could not be reached: nothing was sent.
    pub fn unreachable(&self, why: &str) -> WalletError {
        WalletError::Unavailable(self.redact(format!(
            "could not reach {} at {} ({why}): check url (L402_MCP_{}_URL)",
            self.name, self.url, self.env
        )))
    }

    /// What a hosted backend says about itself: no node of its own to name, real funds.
    pub fn info(
        &self,
        backend: &'static str,
        network: Network,
        returns_preimages: bool,
    ) -> WalletInfo {
        WalletInfo {
            backend,
            network,
            node_id: None,
            returns_preimages,
            demo_funds: false,
        }
    }

    /// The API does not know the key: nothing was done.
    pub fn key_refused(&self, status: u16) -> WalletError {
        WalletError::Unavailable(format!(
            "{} refused the API key (HTTP {status}): check api_key (L402_MCP_{}_API_KEY)",
            self.name, self.env
        ))
    }
}

/// Whether a backend that documents preimages only "if available" withholds them: configured
/// so (`returns_preimages = false`), or seen so (a payment that succeeded without one). Then
/// L402 payments are refused before anything is reserved ([`crate::wallet::Wallet::withholds_preimages`]).
#[derive(Debug, Default)]
pub struct PreimagePolicy {
    configured: Option<bool>,
    seen_none: AtomicBool,
}

impl PreimagePolicy {
    pub fn new(returns_preimages: Option<bool>) -> PreimagePolicy {
        PreimagePolicy {
            configured: returns_preimages,
            seen_none: AtomicBool::new(false),
        }
    }

    pub fn withholds(&self) -> bool {
        self.configured == Some(false) || self.seen_none.load(Ordering::Relaxed)
    }

    /// What `doctor` says about preimages on `backend`: withheld (buying L402 is refused; `also`
    /// says what still works), or documented as `documented` and checked payment by payment.
    pub fn access_check(&self, backend: &str, also: &str, documented: &str) -> AccessCheck {
        let (detail, fix) = if self.withholds() {
            (
                format!(
                    "{backend} withholds payment preimages here (configured so, or seen so): L402 buying is refused before anything is paid{also}"
                ),
                "a buying agent needs a backend that returns preimages",
            )
        } else {
            (
                format!(
                    "{documented}: each one is checked against its hash, and a payment settled without one turns L402 buying off for this wallet"
                ),
                "try a small payment first; if it comes back without a preimage, set returns_preimages = false",
            )
        };
        AccessCheck {
            check: "preimages",
            level: Level::Warn,
            detail,
            fix: Some(fix.into()),
        }
    }

    /// Take note of a payment that succeeded: one without a preimage turns L402 buying off.
    pub fn note(&self, backend: &str, result: &PaymentResult) {
        if result.preimage.is_none() && !self.seen_none.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                backend,
                "a payment succeeded without a preimage: L402 payments are refused from now on"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_required_and_never_shown() {
        let header = |k: &str| ("Authorization", format!("Bearer {k}"));
        let none = HostedApi::new(
            "Strike",
            "STRIKE",
            "http://x",
            "http://x",
            &SecretString::new(" "),
            header,
            Duration::from_secs(1),
        );
        assert!(
            matches!(none, Err(WalletError::Other(m)) if m.contains("L402_MCP_STRIKE_API_KEY"))
        );
        let api = HostedApi::new(
            "Strike",
            "STRIKE",
            "http://127.0.0.1:9/",
            "http://127.0.0.1:9/",
            &SecretString::new("s3cr3t"),
            header,
            Duration::from_secs(1),
        )
        .unwrap();
        assert!(!format!("{api:?}").contains("s3cr3t"));
        assert_eq!(api.redact("key s3cr3t"), "key <key>");
        assert!(
            api.unreachable("refused")
                .to_string()
                .contains("L402_MCP_STRIKE_URL")
        );
        assert!(
            api.key_refused(401)
                .to_string()
                .contains("refused the API key")
        );
    }
}
