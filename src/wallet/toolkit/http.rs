//! The HTTP client every REST backend uses, with the failure handling every backend must follow:
//!
//! - every request has a timeout;
//! - only idempotent requests (lookups, balance) are retried, on connection failures, timeouts
//!   and 5xx answers; a payment is sent once;
//! - a failure is classified by whether the request can have reached the backend:
//!   [`RestError::NotSent`] (it cannot: safe to call the payment failed) versus everything else
//!   (it may have: a payment must stay pending and be reconciled through lookup).
//!
//! Bodies go out as JSON or as a form (Phoenixd); answers come back as one JSON value, or as a
//! stream of them ([`super::stream::JsonStream`], LND's payment updates).

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tracing::debug;

use super::redact::{clip, redact_long_tokens};
use super::stream::JsonStream;
use super::tls::Tls;
use crate::wallet::WalletError;

const RETRIES: usize = 2;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum RestError {
    /// The request never reached the backend (could not connect, bad URL).
    #[error("could not reach the wallet backend: {0}")]
    NotSent(String),
    /// No answer in time, or the answer broke off: the backend may have acted on it.
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

    /// True for a failure worth retrying an idempotent request after.
    fn is_transient(&self) -> bool {
        match self {
            RestError::NotSent(_) | RestError::Timeout(_) => true,
            RestError::Status { status, .. } => *status >= 500,
            RestError::Decode(_) => false,
        }
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

/// A REST endpoint: its base URL (ending in `/`), auth headers marked sensitive, a timeout per
/// request, no redirects, and, when a certificate is configured, trust in that certificate
/// itself or in chains to it (see [`super::tls::trusting`]).
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
        crate::init_tls();
        let mut base = Url::parse(base_url.trim()).map_err(|e| {
            WalletError::Other(format!("backend URL {base_url:?} is not valid: {e}"))
        })?;
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
            builder = builder.use_preconfigured_tls(super::tls::trusting(pem)?);
        }
        let client = builder
            .build()
            .map_err(|e| WalletError::Other(format!("cannot build the HTTP client: {e}")))?;
        Ok(Rest { client, base })
    }

    fn request(&self, method: Method, path: &str) -> Result<reqwest::RequestBuilder, RestError> {
        let url = self
            .base
            .join(path.trim_start_matches('/'))
            .map_err(|e| RestError::NotSent(format!("bad path {path}: {e}")))?;
        Ok(self.client.request(method, url))
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
        let mut attempt = 0;
        loop {
            let mut req = self.request(method.clone(), path)?;
            if let Some(b) = body {
                req = req.json(b);
            }
            let result = match respond(req).await {
                Ok(resp) => read_json(resp).await,
                Err(e) => Err(e),
            };
            match result {
                Err(e) if idempotent && e.is_transient() && attempt < RETRIES => {
                    attempt += 1;
                    debug!(%method, path, attempt, "retrying an idempotent request");
                    tokio::time::sleep(Duration::from_millis(200 * attempt as u64)).await;
                }
                other => return other,
            }
        }
    }

    /// POST a form (`application/x-www-form-urlencoded`) once, and read a JSON answer.
    pub async fn post_form<T: DeserializeOwned>(
        &self,
        path: &str,
        fields: &[(&str, String)],
    ) -> Result<T, RestError> {
        let req = self
            .request(Method::POST, path)?
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(form_body(fields));
        read_json(respond(req).await?).await
    }

    /// Send a request once and keep its answer open for reading as a stream of JSON values.
    /// An error status is read whole and returned as [`RestError::Status`].
    pub async fn open(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<JsonStream, RestError> {
        let mut req = self.request(method, path)?;
        if let Some(b) = body {
            req = req.json(b);
        }
        Ok(JsonStream::new(respond(req).await?))
    }
}

/// `fields` form-encoded. (Its own function: the encoder is not `Send`, so it must not live
/// across an await.)
fn form_body(fields: &[(&str, String)]) -> String {
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in fields {
        form.append_pair(k, v);
    }
    form.finish()
}

/// Send once: the answer when its status is a success; otherwise the failure, classified.
async fn respond(req: reqwest::RequestBuilder) -> Result<reqwest::Response, RestError> {
    let resp = req.send().await.map_err(|e| {
        if e.is_connect() || e.is_builder() {
            RestError::NotSent(crate::error_chain(&e))
        } else {
            // A timeout, or a connection lost mid-answer: the request may have gone out.
            RestError::Timeout(crate::error_chain(&e))
        }
    })?;
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let bytes = resp.bytes().await.map_err(|e| lost(&e))?;
    Err(RestError::Status {
        status: status.as_u16(),
        body: clip(&String::from_utf8_lossy(&bytes)),
    })
}

/// A successful answer's body as JSON (an empty 204 reads as `null`).
async fn read_json<T: DeserializeOwned>(resp: reqwest::Response) -> Result<T, RestError> {
    let status = resp.status();
    let bytes = resp.bytes().await.map_err(|e| lost(&e))?;
    let body = if bytes.is_empty() && status == StatusCode::NO_CONTENT {
        &b"null"[..]
    } else {
        &bytes[..]
    };
    serde_json::from_slice(body).map_err(|e| decode_error(&e, &bytes))
}

/// An answer that broke off while being read: the request reached the backend.
pub(super) fn lost(e: &reqwest::Error) -> RestError {
    RestError::Timeout(crate::error_chain(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_errors_never_quote_a_preimage() {
        let preimage = "ab".repeat(32);
        let bad = format!(r#"{{"payment_preimage": "{preimage}", "fee": "#);
        let e = serde_json::from_str::<serde_json::Value>(&bad).unwrap_err();
        assert!(
            !decode_error(&e, bad.as_bytes())
                .to_string()
                .contains(&preimage)
        );
    }

    #[test]
    fn only_transport_failures_and_5xx_are_retried() {
        let status = |status| RestError::Status {
            status,
            body: String::new(),
        };
        assert!(RestError::NotSent(String::new()).is_transient());
        assert!(RestError::Timeout(String::new()).is_transient());
        assert!(status(503).is_transient());
        assert!(!status(404).is_transient());
        assert!(!RestError::Decode(String::new()).is_transient());
    }
}
