//! The HTTP client every REST backend uses, with the failure handling every backend must follow:
//!
//! - every request has a timeout;
//! - only idempotent requests (lookups, balance) are retried, on connection failures, timeouts
//!   and 5xx answers; a payment is sent once;
//! - a `429 Too Many Requests` is waited out (its `Retry-After`, within
//!   [`MAX_RATE_LIMIT_WAIT`] in all) for idempotent requests only; for any other it is the
//!   answer, and the backend says what it means for the money;
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

/// The longest an idempotent request waits, in all, for a backend that rate-limits it (429)
/// before its answer is the 429 (then [`RestError::into_wallet_error`]: unavailable).
pub const MAX_RATE_LIMIT_WAIT: Duration = Duration::from_secs(10);
/// The wait after a 429 that says nothing of when to come back.
const DEFAULT_RATE_LIMIT_WAIT: Duration = Duration::from_secs(1);
/// 429s an idempotent request sits through at most (a `Retry-After: 0` must not spin).
const RATE_LIMIT_RETRIES: usize = 5;

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
            RestError::Status { status: 429, body } => WalletError::Unavailable(format!(
                "the backend is rate-limiting this client (HTTP 429 {}); try again later",
                clip(&body)
            )),
            other => WalletError::Other(other.to_string()),
        }
    }

    /// True for a `429 Too Many Requests`: the backend refused the request before acting on it.
    pub fn is_rate_limited(&self) -> bool {
        matches!(self, RestError::Status { status: 429, .. })
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
        self.send_with(method, path, body, &[], idempotent).await
    }

    /// Any method, with an optional JSON body and headers of this request alone (e.g. an
    /// idempotency key, which makes a request idempotent for the backend that honours it).
    pub async fn send_with<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
        headers: &[(&str, &str)],
        idempotent: bool,
    ) -> Result<T, RestError> {
        let (mut attempt, mut limited, mut waited) = (0, 0, Duration::ZERO);
        loop {
            let mut req = self.request(method.clone(), path)?;
            for (k, v) in headers {
                req = req.header(*k, *v);
            }
            if let Some(b) = body {
                req = req.json(b);
            }
            let result = match respond_or_wait(req).await {
                Ok(resp) => read_json(resp).await.map_err(|e| (e, None)),
                Err(e) => Err(e),
            };
            match result {
                Ok(v) => return Ok(v),
                Err((e, retry_after)) if idempotent && e.is_rate_limited() => {
                    let wait = retry_after.unwrap_or(DEFAULT_RATE_LIMIT_WAIT);
                    if limited >= RATE_LIMIT_RETRIES || waited + wait > MAX_RATE_LIMIT_WAIT {
                        return Err(e);
                    }
                    limited += 1;
                    waited += wait;
                    debug!(%method, path, wait_ms = wait.as_millis() as u64, "rate-limited; waiting as the backend asked");
                    tokio::time::sleep(wait).await;
                }
                Err((e, _)) if idempotent && e.is_transient() && attempt < RETRIES => {
                    attempt += 1;
                    debug!(%method, path, attempt, "retrying an idempotent request");
                    tokio::time::sleep(Duration::from_millis(200 * attempt as u64)).await;
                }
                Err((e, _)) => return Err(e),
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
    respond_or_wait(req).await.map_err(|(e, _)| e)
}

/// [`respond`], with how long a 429 asked us to wait (its `Retry-After`).
async fn respond_or_wait(
    req: reqwest::RequestBuilder,
) -> Result<reqwest::Response, (RestError, Option<Duration>)> {
    let resp = req.send().await.map_err(|e| {
        if e.is_connect() || e.is_builder() {
            (RestError::NotSent(crate::error_chain(&e)), None)
        } else {
            // A timeout, or a connection lost mid-answer: the request may have gone out.
            (RestError::Timeout(crate::error_chain(&e)), None)
        }
    })?;
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let retry_after = (status == StatusCode::TOO_MANY_REQUESTS)
        .then(|| resp.headers().get(reqwest::header::RETRY_AFTER))
        .flatten()
        .and_then(|v| v.to_str().ok())
        .and_then(|v| super::dates::retry_after(v, super::dates::unix_now()));
    let bytes = resp.bytes().await.map_err(|e| (lost(&e), None))?;
    Err((
        RestError::Status {
            status: status.as_u16(),
            body: clip(&String::from_utf8_lossy(&bytes)),
        },
        retry_after,
    ))
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

    /// A loopback server answering 429 (with `retry_after`) to its first `limited` requests,
    /// then `{"ok": true}`; and a client for it.
    async fn rate_limiting(
        limited: usize,
        retry_after: &'static str,
    ) -> (Rest, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let calls = std::sync::Arc::new(AtomicUsize::new(0));
        let seen = calls.clone();
        let app = axum::Router::new().fallback(move || {
            let seen = seen.clone();
            async move {
                if seen.fetch_add(1, Ordering::SeqCst) < limited {
                    (
                        axum::http::StatusCode::TOO_MANY_REQUESTS,
                        [("retry-after", retry_after)],
                        r#"{"message":"slow down"}"#,
                    )
                        .into_response()
                } else {
                    axum::Json(serde_json::json!({"ok": true})).into_response()
                }
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let rest = Rest::new(&url, &[], &Tls::default(), Duration::from_secs(5)).unwrap();
        (rest, calls)
    }

    use axum::response::IntoResponse;

    #[tokio::test]
    async fn a_429_is_waited_out_for_idempotent_requests_only() {
        use std::sync::atomic::Ordering;
        let (rest, calls) = rate_limiting(1, "1").await;
        let started = std::time::Instant::now();
        let v: Value = rest.get("balance").await.unwrap();
        assert_eq!(v["ok"], true);
        assert!(
            started.elapsed() >= Duration::from_secs(1),
            "Retry-After honoured"
        );
        assert_eq!(calls.load(Ordering::SeqCst), 2);

        // A request that may move money is sent once: the 429 is its answer.
        let (rest, calls) = rate_limiting(1, "1").await;
        let e = rest
            .post::<_, Value>("pay", &serde_json::json!({}), false)
            .await
            .unwrap_err();
        assert!(e.is_rate_limited(), "{e}");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert!(matches!(e.into_wallet_error(), WalletError::Unavailable(m) if m.contains("429")));

        // A wait longer than the bound is not sat through.
        let (rest, calls) = rate_limiting(1, "3600").await;
        let started = std::time::Instant::now();
        assert!(
            rest.get::<Value>("balance")
                .await
                .unwrap_err()
                .is_rate_limited()
        );
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        // Nor more than a few 429s, even with no wait asked.
        let (rest, calls) = rate_limiting(100, "0").await;
        assert!(
            rest.get::<Value>("balance")
                .await
                .unwrap_err()
                .is_rate_limited()
        );
        assert_eq!(calls.load(Ordering::SeqCst), RATE_LIMIT_RETRIES + 1);
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
