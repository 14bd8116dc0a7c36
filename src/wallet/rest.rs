//! The HTTP client REST backends share, with the failure handling every backend must follow:
//!
//! - every request has a timeout;
//! - only idempotent requests (lookups, balance) are retried, on connection failures, timeouts
//!   and 5xx answers; a payment is sent once;
//! - a failure is classified by whether the request can have reached the backend:
//!   [`RestError::NotSent`] (it cannot: safe to call the payment failed) versus everything else
//!   (it may have: a payment must stay pending and be reconciled through lookup).

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::debug;

use super::WalletError;

/// Default timeout of one request to a wallet backend.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const RETRIES: usize = 2;

/// TLS settings for a backend with its own certificate (LND, Core Lightning).
#[derive(Debug, Clone, Default)]
pub struct Tls {
    /// PEM certificate to trust (e.g. LND's `tls.cert`), in addition to the system roots.
    pub ca_cert_pem: Option<Vec<u8>>,
}

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum RestError {
    /// The request never reached the backend (could not connect, bad URL).
    #[error("could not reach the wallet backend: {0}")]
    NotSent(String),
    /// No answer in time: the backend may have acted on it.
    #[error("the wallet backend did not answer in time: {0}")]
    Timeout(String),
    /// The backend answered with an error status.
    #[error("the wallet backend answered HTTP {status}: {body}")]
    Status { status: u16, body: String },
    /// The backend answered, but not with what was expected.
    #[error("the wallet backend's answer could not be read: {0}")]
    Decode(String),
}

impl RestError {
    /// For a payment call: the wallet error that says whether money may have moved. Error
    /// statuses are left to the backend, which knows which of its answers are definite.
    pub fn into_payment_error(self) -> WalletError {
        match self {
            RestError::NotSent(m) => WalletError::Unavailable(m),
            other => WalletError::OutcomeUnknown(other.to_string()),
        }
    }

    /// For a call that moves no money.
    pub fn into_wallet_error(self) -> WalletError {
        match self {
            RestError::NotSent(m) => WalletError::Unavailable(m),
            RestError::Status {
                status: 401 | 403,
                body,
            } => WalletError::Unavailable(format!(
                "the backend refused our credentials (check the key or macaroon): {}",
                clip(&body)
            )),
            other => WalletError::Other(other.to_string()),
        }
    }
}

/// A backend's answer as quoted in a message: redacted (see [`redact_long_tokens`]: an answer
/// may carry a preimage or a key) and kept short.
pub fn clip(s: &str) -> String {
    let s = redact_long_tokens(s.trim());
    match s.char_indices().nth(300) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s,
    }
}

/// An answer that is not the JSON expected. serde's message may quote a value from it, so it
/// is redacted like the answer itself.
pub fn decode_error(e: &serde_json::Error, bytes: &[u8]) -> RestError {
    RestError::Decode(format!(
        "{} in {}",
        redact_long_tokens(&e.to_string()),
        clip(&String::from_utf8_lossy(bytes))
    ))
}

/// `text` with every run of 32 or more hex or base64 characters (a preimage, hash, key or
/// macaroon) replaced by `<redacted N chars>`, for quoting a backend's answer in an error.
pub fn redact_long_tokens(text: &str) -> String {
    let is_token = |c: char| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=' | '-' | '_');
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if run.len() >= 32 {
            out.push_str(&format!("<redacted {} chars>", run.len()));
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in text.chars() {
        if is_token(c) {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

/// The HTTP client every backend uses: its base URL (ending in `/`), auth headers marked
/// sensitive, a timeout per request, no redirects, and, when a certificate is configured, trust
/// in that certificate itself (LND's `tls.cert` is a self-signed CA:TRUE certificate, which
/// WebPKI refuses as a server certificate) or in chains to it (CLN's `ca.pem`).
pub fn backend_client(
    base_url: &str,
    headers: &[(&str, &str)],
    tls: &Tls,
    timeout: Duration,
) -> Result<(reqwest::Client, Url), WalletError> {
    crate::init_tls();
    let mut base = Url::parse(base_url.trim())
        .map_err(|e| WalletError::Other(format!("backend URL {base_url:?} is not valid: {e}")))?;
    if !matches!(base.scheme(), "http" | "https") {
        return Err(WalletError::Other(format!(
            "backend URL must be http or https, not {}",
            base.scheme()
        )));
    }
    if !base.path().ends_with('/') {
        base.set_path(&format!("{}/", base.path()));
    }
    let mut map = HeaderMap::new();
    for (k, v) in headers {
        let name = HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| WalletError::Other(format!("bad header name {k}")))?;
        let mut value = HeaderValue::from_str(v).map_err(|_| {
            WalletError::Other(format!(
                "the value for {k} is not a valid header (check for stray characters)"
            ))
        })?;
        value.set_sensitive(true);
        map.insert(name, value);
    }
    let mut builder = reqwest::Client::builder()
        .default_headers(map)
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(10).min(timeout))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("l402-mcp/", env!("CARGO_PKG_VERSION")));
    if let Some(pem) = &tls.ca_cert_pem {
        builder = builder.use_preconfigured_tls(super::wire::trusting(pem)?);
    }
    let client = builder
        .build()
        .map_err(|e| WalletError::Other(format!("cannot build the HTTP client: {e}")))?;
    Ok((client, base))
}

/// A REST endpoint with fixed auth headers.
#[derive(Clone)]
pub struct Rest {
    client: reqwest::Client,
    base: Url,
}

impl std::fmt::Debug for Rest {
    // The client holds auth headers: show only where it points.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rest")
            .field("base", &self.base.as_str())
            .finish_non_exhaustive()
    }
}

impl Rest {
    /// A client for `base_url` sending `headers` (secrets: marked sensitive) on every request.
    pub fn new(
        base_url: &str,
        headers: &[(&str, &str)],
        tls: &Tls,
        timeout: Duration,
    ) -> Result<Rest, WalletError> {
        let (client, base) = backend_client(base_url, headers, tls, timeout)?;
        Ok(Rest { client, base })
    }

    fn url(&self, path: &str) -> Result<Url, RestError> {
        self.base
            .join(path.trim_start_matches('/'))
            .map_err(|e| RestError::NotSent(format!("bad path {path}: {e}")))
    }

    /// GET, retried on transient failures.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, RestError> {
        self.send::<(), T>(Method::GET, path, None, true).await
    }

    /// POST a JSON body. `idempotent` allows retries (never for a payment).
    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
        idempotent: bool,
    ) -> Result<T, RestError> {
        self.send(Method::POST, path, Some(body), idempotent).await
    }

    /// Any method, with an optional JSON body.
    pub async fn send<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
        idempotent: bool,
    ) -> Result<T, RestError> {
        let url = self.url(path)?;
        let mut attempt = 0;
        loop {
            let mut req = self.client.request(method.clone(), url.clone());
            if let Some(b) = body {
                req = req.json(b);
            }
            let result = Self::once(req).await;
            let transient = matches!(&result, Err(RestError::NotSent(_) | RestError::Timeout(_)))
                || matches!(&result, Err(RestError::Status { status, .. }) if *status >= 500);
            if idempotent && transient && attempt < RETRIES {
                attempt += 1;
                debug!(%method, path, attempt, "retrying an idempotent request");
                tokio::time::sleep(Duration::from_millis(200 * attempt as u64)).await;
                continue;
            }
            return result;
        }
    }

    async fn once<T: DeserializeOwned>(req: reqwest::RequestBuilder) -> Result<T, RestError> {
        let resp = req.send().await.map_err(|e| {
            if e.is_connect() || e.is_builder() {
                RestError::NotSent(chain(&e))
            } else if e.is_timeout() {
                RestError::Timeout(chain(&e))
            } else {
                // The request may have gone out (e.g. the connection dropped mid-answer).
                RestError::Timeout(chain(&e))
            }
        })?;
        let status = resp.status();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| RestError::Decode(chain(&e)))?;
        if !status.is_success() {
            return Err(RestError::Status {
                status: status.as_u16(),
                body: clip(&String::from_utf8_lossy(&bytes)),
            });
        }
        let body = if bytes.is_empty() && status == StatusCode::NO_CONTENT {
            &b"null"[..]
        } else {
            &bytes[..]
        };
        serde_json::from_slice(body).map_err(|e| decode_error(&e, &bytes))
    }
}

fn chain(e: &reqwest::Error) -> String {
    let mut msg = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg.push_str(&format!(": {s}"));
        source = s.source();
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_tokens_are_redacted_and_words_kept() {
        let preimage = "ab".repeat(32);
        let b64 = "q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=";
        let text = format!(
            r#"invalid type: string "{preimage}", expected u64 in {{"preimage":"{preimage}","r_preimage":"{b64}","status":"SUCCEEDED"}}"#
        );
        let r = redact_long_tokens(&text);
        assert!(!r.contains(&preimage) && !r.contains(b64), "{r}");
        assert!(r.contains("<redacted 64 chars>") && r.contains("<redacted 44 chars>"));
        assert!(r.contains("invalid type") && r.contains("\"status\":\"SUCCEEDED\""));
        // Every quoted answer goes through it: clip, and decode errors with serde's message.
        assert!(!clip(&text).contains(&preimage));
        let bad = format!(r#"{{"payment_preimage": "{preimage}", "fee": "#);
        let e = serde_json::from_str::<serde_json::Value>(&bad).unwrap_err();
        assert!(
            !decode_error(&e, bad.as_bytes())
                .to_string()
                .contains(&preimage)
        );
    }
}
