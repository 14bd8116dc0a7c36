//! `fetch_paid`: an HTTP fetch that pays L402 challenges under the budget.
//!
//! 1. Send the request, with a cached credential for this origin and path if there is one.
//! 2. On anything but 402, return the response.
//! 3. On 402: a cached credential that was refused is dropped. The challenge is read from the
//!    `WWW-Authenticate` headers, or else from a JSON body. A 402 that is not L402 (e.g. x402) is
//!    reported, unpaid.
//! 4. Under a per-resource lock, check the cache again (a parallel call may have paid meanwhile);
//!    otherwise pay through the pay path (price checked against the decoded invoice, budget,
//!    never twice for one invoice), cache the credential, and resend once with the scheme the
//!    server used. A second 402 after paying is reported; it is never paid again.
//!
//! Redirects are followed here (at most five), not by the HTTP client: every hop is checked
//! against the network policy ([`crate::netguard`]), and a credential is only sent to the
//! origin and path it was bought for.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use futures::StreamExt;
use reqwest::header::{
    AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, WWW_AUTHENTICATE,
};
use serde::Serialize;
use tracing::{Instrument, info, info_span, warn};

use crate::clock::SharedClock;
use crate::l402::caveat::{self, Caveat};
use crate::l402::{Macaroon, Scheme, b64, challenge};
use crate::ledger::tokens::{CachedToken, CredentialScope};
use crate::ledger::{Ledger, LedgerError};
use crate::netguard::{self, NetPolicy};
use crate::pay::{PayError, PayRequest, Payer, Receipt};

/// Default and largest response body kept.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 1 << 20;
pub const MAX_RESPONSE_BYTES: usize = 16 << 20;
/// Default and largest time for one HTTP exchange.
pub const DEFAULT_TIMEOUT_SECS: u64 = 30;
pub const MAX_TIMEOUT_SECS: u64 = 300;
/// Response headers passed back to the caller.
const KEPT_HEADERS: &[&str] = &[
    "content-type",
    "content-length",
    "content-language",
    "cache-control",
    "etag",
    "last-modified",
    "location",
    "retry-after",
    "www-authenticate",
    "link",
];

/// One HTTP request to make.
#[derive(Debug, Clone)]
pub struct FetchRequest {
    pub url: String,
    pub method: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
    /// The caller's cap on what this request may pay, in msat; the budget applies too.
    pub max_price_msat: Option<u64>,
    pub timeout: Duration,
    pub max_response_bytes: usize,
}

impl FetchRequest {
    pub fn get(url: &str) -> FetchRequest {
        FetchRequest {
            url: url.to_owned(),
            method: "GET".into(),
            headers: Vec::new(),
            body: None,
            max_price_msat: None,
            timeout: Duration::from_secs(DEFAULT_TIMEOUT_SECS),
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
        }
    }
}

/// A response body: text when it is text, base64 otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Body {
    /// `text` or `base64`.
    pub encoding: &'static str,
    pub content: String,
    /// Bytes received (up to the limit).
    pub bytes: usize,
    /// True when the body was cut at the size limit.
    pub truncated: bool,
}

/// What was paid for this fetch.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FetchReceipt {
    /// True when this call paid an invoice.
    pub paid: bool,
    pub amount_msat: u64,
    pub fee_msat: u64,
    pub payment_hash: Option<String>,
    /// True when a credential bought earlier was presented.
    pub token_reused: bool,
    /// The scheme of the credential presented (`L402` or `LSAT`), if any.
    pub scheme: Option<Scheme>,
    /// What may still be spent in the daily window.
    pub budget_remaining_msat: u64,
}

/// The outcome of a fetch.
#[derive(Debug, Clone, Serialize)]
pub struct FetchResponse {
    pub status: u16,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub content_type: Option<String>,
    pub body: Body,
    pub receipt: FetchReceipt,
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("invalid request: {0}")]
    Invalid(String),
    #[error("HTTP request failed: {0}")]
    Http(String),
    #[error("{0}; nothing was fetched or paid")]
    Blocked(#[from] crate::netguard::Blocked),
    #[error("the server answered 402 but not with an L402 challenge ({detail}); nothing was paid")]
    NotL402 { detail: String },
    #[error("{0}")]
    Pay(#[from] PayError),
    #[error(
        "paid {amount_msat} msat (payment hash {payment_hash}) but the server answered 402 again with the credential; not paying again. The payment is in the ledger; contact the seller"
    )]
    RefusedAfterPayment {
        amount_msat: u64,
        payment_hash: String,
    },
    #[error(
        "{origin} took a payment earlier and then refused the credential; it is not paid again until {until} (unix seconds)"
    )]
    SellerDistrusted { origin: String, until: u64 },
    #[error(
        "paid {amount_msat} msat + {fee_msat} msat fee (payment hash {payment_hash}, in the ledger), then the request failed: {cause}. Next: {next}"
    )]
    PaidButFailed {
        amount_msat: u64,
        fee_msat: u64,
        payment_hash: String,
        next: &'static str,
        cause: Box<FetchError>,
    },
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

impl FetchError {
    /// True when money may have left the wallet during this call.
    pub fn money_may_have_moved(&self) -> bool {
        match self {
            FetchError::Pay(p) => p.money_may_have_moved(),
            FetchError::RefusedAfterPayment { .. } | FetchError::PaidButFailed { .. } => true,
            _ => false,
        }
    }
}

/// Makes HTTP requests for one wallet, paying L402 challenges through its [`Payer`].
#[derive(Debug)]
pub struct Fetcher {
    payer: Arc<Payer>,
    ledger: Ledger,
    wallet: String,
    /// Built on the first request: loading the system's CA certificates is most of a start-up's
    /// work, and a server that never fetches never needs them.
    http: std::sync::OnceLock<reqwest::Client>,
    clock: SharedClock,
    policy: NetPolicy,
    /// Origins that took a payment and answered 402 again: not paid again until the time given.
    refused: Mutex<HashMap<String, u64>>,
    /// One lock per resource (origin + path), so parallel calls pay once.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// Where a credential applies: origin and path (without query).
#[derive(Debug, Clone)]
struct Resource {
    url: reqwest::Url,
    origin: String,
    path: String,
}

/// One request of an exchange (the first, or a redirect).
#[derive(Clone, Copy)]
struct Hop<'a> {
    method: &'a reqwest::Method,
    url: &'a reqwest::Url,
    /// The credential bought for this hop's origin and path, if any.
    token: Option<&'a CachedToken>,
    body: Option<&'a str>,
    /// The body is JSON we wrote (a `payment_hash` resend).
    json_body: bool,
    /// Another origin than the caller asked for: the caller's own credentials stay behind.
    foreign_origin: bool,
}

/// One request with its redirects: the final response, its URL, and the credential sent there.
struct Exchange {
    response: reqwest::Response,
    url: reqwest::Url,
    token: Option<CachedToken>,
}

/// How long a seller that refused a paid credential is not paid again.
const DISTRUST_SECS: u64 = 24 * 3600;

/// Redirects followed at most.
const MAX_REDIRECTS: usize = 5;

impl Resource {
    fn of(url: &reqwest::Url) -> Resource {
        Resource {
            url: url.clone(),
            origin: url.origin().ascii_serialization(),
            path: url.path().to_owned(),
        }
    }
    fn key(&self) -> String {
        format!("{}{}", self.origin, self.path)
    }
}

/// A challenge found in a 402 response.
enum Found {
    /// Header (or JSON) challenge with a macaroon.
    L402 {
        scheme: Scheme,
        macaroon: Vec<u8>,
        invoice: String,
    },
    /// JSON body with an invoice and no macaroon: pay, then resend with `payment_hash` in the body.
    PaymentHashBody { invoice: String },
}

impl Fetcher {
    /// A fetcher for `payer`'s wallet that only reaches addresses `policy` allows.
    pub fn new(
        payer: Arc<Payer>,
        ledger: Ledger,
        clock: SharedClock,
        policy: NetPolicy,
    ) -> Result<Fetcher, FetchError> {
        Ok(Fetcher {
            wallet: payer.wallet_name().to_owned(),
            payer,
            ledger,
            http: std::sync::OnceLock::new(),
            clock,
            policy,
            refused: Mutex::new(HashMap::new()),
            locks: Mutex::new(HashMap::new()),
        })
    }

    /// The HTTP client: no redirects (followed by hand, per hop), addresses checked by the
    /// network policy in the resolver.
    fn http(&self) -> Result<&reqwest::Client, FetchError> {
        if let Some(client) = self.http.get() {
            return Ok(client);
        }
        crate::init_tls();
        let client = reqwest::Client::builder()
            .user_agent(concat!("l402-mcp/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(netguard::resolver(self.policy))
            .build()
            .map_err(|e| FetchError::Http(e.to_string()))?;
        // Two first calls at once may both build one; either is the same client.
        Ok(self.http.get_or_init(|| client))
    }

    /// Fetch `req.url`, paying an L402 challenge within the caller's cap and the budget.
    pub async fn fetch(&self, req: &FetchRequest) -> Result<FetchResponse, FetchError> {
        let url = parse_url(&req.url)?;
        let span = info_span!("fetch_paid", url = %url, method = %req.method);
        self.fetch_url(req, url).instrument(span).await
    }

    async fn fetch_url(
        &self,
        req: &FetchRequest,
        url: reqwest::Url,
    ) -> Result<FetchResponse, FetchError> {
        let mut first = self.exchange(req, url.clone(), None, None).await?;
        // A cached credential answered 401/403 (e.g. a single-use token already used): drop it
        // and ask again without it, which gets a fresh challenge if the resource is paid.
        if let Some(stale) = &first.token
            && matches!(
                first.response.status(),
                reqwest::StatusCode::UNAUTHORIZED | reqwest::StatusCode::FORBIDDEN
            )
        {
            info!(
                status = first.response.status().as_u16(),
                "the server refused the cached credential; dropping it"
            );
            self.ledger
                .drop_token(&self.wallet, &stale.origin, &stale.path_prefix)
                .await?;
            first = self.exchange(req, url, None, None).await?;
        }
        if first.response.status() != reqwest::StatusCode::PAYMENT_REQUIRED {
            return self.finish(first, req, None).await;
        }
        // The URL that asked for payment is the resource the credential is for.
        let resource = Resource::of(&first.url);
        if let Some(stale) = &first.token {
            info!("the server refused the cached credential; dropping it");
            self.ledger
                .drop_token(&self.wallet, &stale.origin, &stale.path_prefix)
                .await?;
        }
        let refused = first.token.as_ref().map(|t| t.payment_hash);
        let headers = first.response.headers().clone();
        let (body, _) = read_body(first.response, req.max_response_bytes).await?;
        let found = find_challenge(&headers, &body)?;

        // Pay under the resource lock; a parallel call may have paid while we waited.
        let lock = self.lock_for(&resource.key());
        let _held = lock.lock().await;
        let now = self.clock.now();
        if let Some(fresh) = self
            .ledger
            .find_token(&self.wallet, &resource.origin, &resource.path, now)
            .await?
            && refused != Some(fresh.payment_hash)
        {
            info!("a parallel call bought a credential for this resource; using it");
            let retry = self.exchange(req, resource.url.clone(), None, None).await?;
            if retry.response.status() != reqwest::StatusCode::PAYMENT_REQUIRED {
                return self.finish(retry, req, None).await;
            }
            self.ledger
                .drop_token(&self.wallet, &fresh.origin, &fresh.path_prefix)
                .await?;
        }

        if let Some(until) = self.refused_until(&resource.origin, now) {
            return Err(FetchError::SellerDistrusted {
                origin: resource.origin.clone(),
                until,
            });
        }
        let invoice = match &found {
            Found::L402 { invoice, .. } | Found::PaymentHashBody { invoice } => invoice.clone(),
        };
        // What the payment buys, kept with its reservation: if this process dies after paying,
        // the credential is rebuilt when the payment is reconciled, and not bought twice.
        let scope = match &found {
            Found::L402 {
                scheme, macaroon, ..
            } => Some(CredentialScope {
                origin: resource.origin.clone(),
                path_prefix: resource.path.clone(),
                scheme: *scheme,
                macaroon: macaroon.clone(),
                expires_at: token_expiry(macaroon),
            }),
            Found::PaymentHashBody { .. } => None,
        };
        let receipt = self
            .payer
            .pay(&PayRequest {
                invoice: &invoice,
                max_amount_msat: req.max_price_msat,
                max_fee_msat: None,
                url: Some(resource.url.as_str()),
                host: resource.url.host_str(),
                credential: scope.as_ref(),
            })
            .await?;
        // Money has moved: whatever fails from here on says so, with the receipt.
        let paid_but = |cause: FetchError| FetchError::PaidButFailed {
            amount_msat: receipt.amount_msat,
            fee_msat: receipt.fee_msat,
            payment_hash: hex::encode(receipt.payment_hash),
            next: if scope.is_some() && !matches!(cause, FetchError::Ledger(_)) {
                "the credential is kept: calling fetch_paid again for this URL presents it without paying again"
            } else {
                "calling fetch_paid again would pay again; the payment hash is the proof of payment to show the seller"
            },
            cause: Box::new(cause),
        };
        self.resend_paid(req, &resource, scope.as_ref(), &receipt, now)
            .await
            .map_err(|e| match e {
                e @ (FetchError::RefusedAfterPayment { .. } | FetchError::PaidButFailed { .. }) => {
                    e
                }
                e => paid_but(e),
            })
    }

    /// After paying: keep the credential, resend, and answer with the receipt.
    async fn resend_paid(
        &self,
        req: &FetchRequest,
        resource: &Resource,
        scope: Option<&CredentialScope>,
        receipt: &crate::pay::Receipt,
        now: u64,
    ) -> Result<FetchResponse, FetchError> {
        let paid = match scope {
            Some(scope) => {
                let token = scope.with_proof(receipt.preimage, receipt.payment_hash);
                self.ledger.put_token(&self.wallet, &token, now).await?;
                self.exchange(req, resource.url.clone(), None, Some(token))
                    .await?
            }
            None => {
                self.exchange(req, resource.url.clone(), Some(&receipt.payment_hash), None)
                    .await?
            }
        };
        if paid.response.status() == reqwest::StatusCode::PAYMENT_REQUIRED {
            if let Some(t) = &paid.token {
                self.ledger
                    .drop_token(&self.wallet, &t.origin, &t.path_prefix)
                    .await?;
            }
            warn!(payment_hash = %hex::encode(receipt.payment_hash), "402 again after paying; not paying this seller again for a day");
            if let Ok(mut refused) = self.refused.lock() {
                refused.insert(resource.origin.clone(), now.saturating_add(DISTRUST_SECS));
            }
            return Err(FetchError::RefusedAfterPayment {
                amount_msat: receipt.amount_msat,
                payment_hash: hex::encode(receipt.payment_hash),
            });
        }
        self.finish(paid, req, Some(receipt)).await
    }

    /// Send the request and follow redirects, checking each hop against the network policy and
    /// presenting, at each hop, only a credential bought for that hop's origin and path.
    /// `known`: the credential for the first hop when the caller has it in hand (just bought),
    /// so the cache need not be asked; later hops always ask it.
    async fn exchange(
        &self,
        req: &FetchRequest,
        mut url: reqwest::Url,
        payment_hash: Option<&[u8; 32]>,
        mut known: Option<CachedToken>,
    ) -> Result<Exchange, FetchError> {
        let mut method = reqwest::Method::from_bytes(req.method.to_ascii_uppercase().as_bytes())
            .map_err(|_| FetchError::Invalid(format!("{:?} is not an HTTP method", req.method)))?;
        let mut body = req.body.clone();
        if let Some(hash) = payment_hash {
            body = Some(with_payment_hash(body.as_deref(), hash));
        }
        // The caller's own headers (their Authorization, cookies) are for the origin they asked
        // for: a redirect elsewhere does not carry them.
        let asked_origin = reqwest::Url::parse(&req.url).ok().map(|u| u.origin());
        for _ in 0..=MAX_REDIRECTS {
            self.check_literal(&url)?;
            let here = Resource::of(&url);
            let foreign = asked_origin.as_ref() != Some(&url.origin());
            let token = match known.take() {
                Some(t) => Some(t),
                None => {
                    self.ledger
                        .find_token(&self.wallet, &here.origin, &here.path, self.clock.now())
                        .await?
                }
            };
            let hop = Hop {
                method: &method,
                url: &url,
                token: token.as_ref(),
                body: body.as_deref(),
                json_body: payment_hash.is_some(),
                foreign_origin: foreign,
            };
            let response = self.send(req, &hop).await?;
            let status = response.status();
            if !status.is_redirection() || status == reqwest::StatusCode::NOT_MODIFIED {
                return Ok(Exchange {
                    response,
                    url,
                    token,
                });
            }
            let Some(next) = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|l| l.to_str().ok())
                .and_then(|l| url.join(l).ok())
            else {
                return Ok(Exchange {
                    response,
                    url,
                    token,
                });
            };
            if !matches!(next.scheme(), "http" | "https") {
                return Err(FetchError::Invalid(format!(
                    "redirected to a {} URL, which is not fetched",
                    next.scheme()
                )));
            }
            // 303, and 301/302 after a POST, turn into a GET without a body (as browsers do).
            if status == reqwest::StatusCode::SEE_OTHER
                || (matches!(status.as_u16(), 301 | 302) && method == reqwest::Method::POST)
            {
                method = reqwest::Method::GET;
                body = None;
            }
            url = next;
        }
        Err(FetchError::Http(format!(
            "more than {MAX_REDIRECTS} redirects"
        )))
    }

    /// A URL whose host is an IP address is checked here (names are checked by the resolver).
    fn check_literal(&self, url: &reqwest::Url) -> Result<(), FetchError> {
        let ip = match url.host() {
            Some(url::Host::Ipv4(v4)) => std::net::IpAddr::V4(v4),
            Some(url::Host::Ipv6(v6)) => std::net::IpAddr::V6(v6),
            _ => return Ok(()),
        };
        Ok(self.policy.check(&ip.to_string(), ip)?)
    }

    fn refused_until(&self, origin: &str, now: u64) -> Option<u64> {
        let refused = self.refused.lock().ok()?;
        refused.get(origin).copied().filter(|until| *until > now)
    }

    fn lock_for(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self
            .locks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if locks.len() > 10_000 {
            // Forget locks nobody holds, so the map does not grow without bound.
            locks.retain(|_, l| Arc::strong_count(l) > 1);
        }
        locks.entry(key.to_owned()).or_default().clone()
    }

    async fn send(
        &self,
        req: &FetchRequest,
        hop: &Hop<'_>,
    ) -> Result<reqwest::Response, FetchError> {
        let Hop {
            method,
            url,
            token,
            body,
            json_body,
            foreign_origin,
        } = *hop;
        let mut headers = HeaderMap::new();
        for (k, v) in &req.headers {
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| FetchError::Invalid(format!("bad header name {k:?}")))?;
            if name == AUTHORIZATION && token.is_some() {
                continue; // ours wins: it is what was paid for
            }
            if foreign_origin
                && (name == AUTHORIZATION
                    || name == reqwest::header::COOKIE
                    || name == reqwest::header::PROXY_AUTHORIZATION)
            {
                continue; // the caller's credentials stay with the origin they asked for
            }
            let value = HeaderValue::from_str(v)
                .map_err(|_| FetchError::Invalid(format!("bad value for header {k:?}")))?;
            headers.append(name, value);
        }
        if let Some(t) = token {
            let mut value = HeaderValue::from_str(&t.authorization())
                .map_err(|_| FetchError::Invalid("credential is not a valid header".into()))?;
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
        if json_body {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        let mut builder = self
            .http()?
            .request(method.clone(), url.clone())
            .headers(headers)
            .timeout(req.timeout);
        if let Some(b) = body {
            builder = builder.body(b.to_owned());
        }
        builder.send().await.map_err(|e| match blocked_cause(&e) {
            Some(b) => FetchError::Blocked(b),
            None => FetchError::Http(describe_reqwest(&e)),
        })
    }

    async fn finish(
        &self,
        ex: Exchange,
        req: &FetchRequest,
        paid: Option<&Receipt>,
    ) -> Result<FetchResponse, FetchError> {
        let Exchange {
            response: resp,
            url,
            token,
        } = ex;
        let status = resp.status().as_u16();
        let headers: Vec<(String, String)> = resp
            .headers()
            .iter()
            .filter(|(k, _)| KEPT_HEADERS.contains(&k.as_str()))
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let content_type = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        // The budget left for the receipt is read while the body arrives.
        let (body, remaining) = tokio::join!(
            read_body(resp, req.max_response_bytes),
            self.budget_remaining(url.host_str())
        );
        let (bytes, truncated) = body?;
        let remaining = remaining?;
        Ok(FetchResponse {
            status,
            url: url.to_string(),
            headers,
            body: encode_body(&bytes, truncated, content_type.as_deref()),
            content_type,
            receipt: FetchReceipt {
                paid: paid.is_some_and(|r| !r.already_paid),
                amount_msat: paid.map_or(0, |r| r.amount_msat),
                fee_msat: paid.map_or(0, |r| r.fee_msat),
                payment_hash: paid
                    .map(|r| hex::encode(r.payment_hash))
                    .or_else(|| token.as_ref().map(|t| hex::encode(t.payment_hash))),
                token_reused: paid.is_none() && token.is_some(),
                scheme: token.as_ref().map(|t| t.scheme),
                budget_remaining_msat: remaining,
            },
        })
    }

    async fn budget_remaining(&self, host: Option<&str>) -> Result<u64, LedgerError> {
        let (policy, used) = self
            .ledger
            .budget_and_use(&self.wallet, host, self.clock.now())
            .await?;
        Ok(policy.daily_msat.saturating_sub(used.daily_msat))
    }
}

fn parse_url(s: &str) -> Result<reqwest::Url, FetchError> {
    let url = reqwest::Url::parse(s.trim())
        .map_err(|e| FetchError::Invalid(format!("{s:?} is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(FetchError::Invalid(format!(
            "only http and https URLs can be fetched, not {}",
            url.scheme()
        )));
    }
    if url.host_str().is_none() {
        return Err(FetchError::Invalid("the URL has no host".into()));
    }
    Ok(url)
}

/// Read the challenge of a 402: headers first, then a JSON body.
fn find_challenge(headers: &HeaderMap, body: &[u8]) -> Result<Found, FetchError> {
    let values: Vec<&str> = headers
        .get_all(WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let header_result = challenge::parse_headers(values.iter().copied());
    if let Ok(all) = &header_result
        && let Some(c) = challenge::preferred(all)
    {
        return Ok(Found::L402 {
            scheme: c.scheme,
            macaroon: c.macaroon.clone(),
            invoice: c.invoice.clone(),
        });
    }
    if let Some(json) = challenge::parse_json_body(body) {
        return Ok(match json.macaroon {
            Some(macaroon) => Found::L402 {
                scheme: Scheme::L402,
                macaroon,
                invoice: json.invoice,
            },
            None => Found::PaymentHashBody {
                invoice: json.invoice,
            },
        });
    }
    let mut detail = match header_result {
        Err(e) => e.to_string(),
        Ok(_) => "no usable challenge".into(),
    };
    if headers.contains_key("x-payment-required")
        || headers.contains_key("payment-required")
        || looks_like_x402(body)
    {
        detail.push_str("; it looks like x402, which this wallet does not pay");
    }
    Err(FetchError::NotL402 { detail })
}

fn looks_like_x402(body: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("x402Version").cloned())
        .is_some()
}

/// The request body with `payment_hash` added (a JSON object), for servers in the LNbits-tutorial
/// style that check the payment by its hash.
fn with_payment_hash(body: Option<&str>, hash: &[u8; 32]) -> String {
    let mut obj = body
        .and_then(|b| serde_json::from_str::<serde_json::Value>(b).ok())
        .and_then(|v| v.as_object().cloned())
        .unwrap_or_default();
    obj.insert(
        "payment_hash".into(),
        serde_json::Value::String(hex::encode(hash)),
    );
    serde_json::Value::Object(obj).to_string()
}

/// When a macaroon stops being accepted: its earliest `_valid_until` or `expiration` caveat.
fn token_expiry(macaroon: &[u8]) -> Option<u64> {
    let m = Macaroon::deserialize(macaroon).ok()?;
    m.caveats()
        .iter()
        .filter_map(|raw| Caveat::parse(raw).ok())
        .filter_map(|c| {
            if c.condition.ends_with(caveat::VALID_UNTIL_SUFFIX) {
                caveat::parse_timestamp(&c.value).ok()
            } else if c.condition == caveat::EXPIRATION {
                caveat::parse_timestamp(&c.value).ok().map(|ms| ms / 1000)
            } else {
                None
            }
        })
        .min()
}

async fn read_body(resp: reqwest::Response, limit: usize) -> Result<(Vec<u8>, bool), FetchError> {
    let mut out = BytesMut::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| FetchError::Http(describe_reqwest(&e)))?;
        let room = limit.saturating_sub(out.len());
        if chunk.len() > room {
            out.extend_from_slice(&chunk[..room]);
            return Ok((out.to_vec(), true));
        }
        out.extend_from_slice(&chunk);
    }
    Ok((out.to_vec(), false))
}

fn encode_body(bytes: &[u8], truncated: bool, content_type: Option<&str>) -> Body {
    let texty = content_type.is_none_or(|ct| {
        let ct = ct.to_ascii_lowercase();
        ct.starts_with("text/")
            || [
                "json",
                "xml",
                "javascript",
                "x-www-form-urlencoded",
                "yaml",
                "csv",
            ]
            .iter()
            .any(|t| ct.contains(t))
    });
    // A truncated body may end inside a UTF-8 sequence: keep the valid prefix.
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => Some(t),
        Err(e) if truncated && e.error_len().is_none() => {
            std::str::from_utf8(&bytes[..e.valid_up_to()]).ok()
        }
        Err(_) => None,
    };
    match text {
        Some(t) if texty => Body {
            encoding: "text",
            content: t.to_owned(),
            bytes: bytes.len(),
            truncated,
        },
        _ => Body {
            encoding: "base64",
            content: b64::encode(bytes),
            bytes: bytes.len(),
            truncated,
        },
    }
}

/// The network policy's refusal, when that is why a request failed.
fn blocked_cause(e: &reqwest::Error) -> Option<crate::netguard::Blocked> {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(b) = s.downcast_ref::<crate::netguard::Blocked>() {
            return Some(b.clone());
        }
        source = s.source();
    }
    None
}

fn describe_reqwest(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_redirect() {
        "too many redirects"
    } else if e.is_body() || e.is_decode() {
        "could not read the response"
    } else {
        "failed"
    };
    let mut msg = format!("{kind}: {e}");
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
    fn bodies() {
        let b = encode_body(b"{\"a\":1}", false, Some("application/json"));
        assert_eq!((b.encoding, b.content.as_str()), ("text", "{\"a\":1}"));
        let b = encode_body(&[0xff, 0x00], false, Some("image/png"));
        assert_eq!((b.encoding, b.content.as_str()), ("base64", "/wA="));
        // Cut inside a two-byte character: the valid prefix is kept as text.
        let b = encode_body(
            "né".as_bytes().get(..2).unwrap_or_default(),
            true,
            Some("text/plain"),
        );
        assert_eq!(
            (b.encoding, b.content.as_str(), b.truncated),
            ("text", "n", true)
        );
    }

    #[test]
    fn payment_hash_body() {
        let h = [0xab; 32];
        let v: serde_json::Value =
            serde_json::from_str(&with_payment_hash(Some(r#"{"q":"x"}"#), &h)).unwrap_or_default();
        assert_eq!(v["q"], "x");
        assert_eq!(v["payment_hash"], hex::encode(h));
        let v: serde_json::Value =
            serde_json::from_str(&with_payment_hash(None, &h)).unwrap_or_default();
        assert_eq!(v["payment_hash"], hex::encode(h));
    }

    #[test]
    fn urls() {
        assert!(parse_url("https://example.com/x").is_ok());
        assert!(matches!(
            parse_url("ftp://example.com"),
            Err(FetchError::Invalid(_))
        ));
        assert!(matches!(
            parse_url("not a url"),
            Err(FetchError::Invalid(_))
        ));
    }
}
