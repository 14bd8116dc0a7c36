//! `fetch_paid`: an HTTP fetch that pays L402 challenges under the budget.
//!
//! 1. Send the request, with a cached credential for this origin and path if there is one.
//! 2. On anything but 402, return the response.
//! 3. On 402: the challenge is read from the `WWW-Authenticate` headers, or else from a JSON
//!    body. A 402 that is not L402 (e.g. x402) is reported, unpaid. A challenge whose macaroon
//!    is for another payment hash than its invoice is refused before anything is reserved.
//! 4. Under a per-resource lock, check the cache again (a parallel call may have paid meanwhile);
//!    otherwise pay through the pay path (price checked against the decoded invoice, budget,
//!    never twice for one invoice), cache the credential, and resend once with the scheme the
//!    server used.
//!
//! A seller cannot be paid twice for nothing. A credential it refuses (401, 402 or 403) right
//! after being paid, or later without ever having honoured it, is "refused after payment": the
//! call fails saying what was paid, and the seller is not paid again for a day, under any name
//! of it ([`crate::payee`]), by any process on the ledger. A credential it honoured before and
//! refuses now (a single-use token spent, a token expired) is dropped and bought once more.
//!
//! Redirects are followed here (at most five), not by the HTTP client: every hop is checked
//! against the network policy ([`crate::netguard`]), and a credential is only sent to the
//! origin and path it was bought for. The environment's proxy variables are ignored; a proxy
//! is used only when configured ([`Fetcher::via_proxy`]).

use std::collections::HashMap;
use std::net::IpAddr;
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
use crate::l402::PaymentHash;
use crate::l402::caveat::{self, Caveat};
use crate::l402::{Identifier, Macaroon, Scheme, b64, challenge};
use crate::netguard::{self, NetPolicy};
use crate::pay::{PayError, PayRequest, Payer, Receipt};
use crate::payee::Payee;
use crate::storage::{CachedToken, CredentialScope, SpendLedger, StorageError, TokenCache};

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
        "paid {amount_msat} msat (payment hash {payment_hash}) but the server refused the credential it sold (HTTP {status}); not paying it again. The payment is in the ledger; contact the seller"
    )]
    RefusedAfterPayment {
        amount_msat: u64,
        payment_hash: String,
        status: u16,
    },
    #[error(
        "{origin} took a payment earlier and then refused the credential; it is not paid again (under any of its names) until {until} (unix seconds); nothing was paid"
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
    Storage(#[from] StorageError),
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
    ledger: Arc<dyn SpendLedger>,
    /// Credentials bought, and sellers no longer paid.
    tokens: Arc<dyn TokenCache>,
    wallet: String,
    /// Built on the first request: loading the system's CA certificates is most of a start-up's
    /// work, and a server that never fetches never needs them.
    http: std::sync::OnceLock<reqwest::Client>,
    clock: SharedClock,
    policy: NetPolicy,
    /// The configured proxy, if any.
    proxy: Option<Proxy>,
    /// What names resolved to, as the guarded resolver saw them: a payee is known by them.
    resolved: netguard::Resolutions,
    /// One lock per resource (origin + path), so parallel calls pay once.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// A configured proxy. Its URL may hold a password: never in `Debug`.
struct Proxy {
    url: reqwest::Url,
    host: String,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy").field("host", &self.host).finish()
    }
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

/// One request with its redirects: the final response, its URL, the credential sent there and
/// the address that answered (unknown through a proxy).
struct Exchange {
    response: reqwest::Response,
    url: reqwest::Url,
    token: Option<CachedToken>,
    remote: Option<IpAddr>,
}

/// What a presented credential's answer says about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Judged {
    /// No credential was presented.
    None,
    /// Accepted (any answer below 400).
    Honoured,
    /// Refused after it had been honoured before (used up, expired): dropped, to be bought again.
    Dropped,
    /// Neither accepted nor refused (a 404, a 5xx): kept.
    Kept,
}

/// How long a seller that refused a paid credential is not paid again.
const DISTRUST_SECS: u64 = 24 * 3600;

/// Redirects followed at most.
const MAX_REDIRECTS: usize = 5;

/// The answers that refuse a credential: it was not honoured.
fn refuses(status: reqwest::StatusCode) -> bool {
    matches!(status.as_u16(), 401..=403)
}

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
    PaymentHashBody {
        invoice: String,
        payment_hash: Option<PaymentHash>,
    },
}

impl Found {
    /// The payment hash the invoice must have: the one the credential is for, when it can be
    /// read: a V2 macaroon's L402 identifier, the `hash` of a JSON token (l402kit's), or the
    /// hash a JSON body states. A credential built for another invoice could never work.
    /// A token that says nothing readable (an identifier of an unknown version) is presented
    /// as it is: nothing shows it is for another invoice.
    fn expected_payment_hash(&self) -> Option<PaymentHash> {
        match self {
            Found::L402 { macaroon, .. } => token_payment_hash(macaroon),
            Found::PaymentHashBody { payment_hash, .. } => *payment_hash,
        }
    }

    fn invoice(&self) -> &str {
        match self {
            Found::L402 { invoice, .. } | Found::PaymentHashBody { invoice, .. } => invoice,
        }
    }
}

impl Fetcher {
    /// A fetcher for `payer`'s wallet, caching credentials in `tokens`, that only reaches
    /// addresses `policy` allows.
    pub fn new(
        payer: Arc<Payer>,
        tokens: Arc<dyn TokenCache>,
        clock: SharedClock,
        policy: NetPolicy,
    ) -> Result<Fetcher, FetchError> {
        Ok(Fetcher {
            wallet: payer.wallet_name().to_owned(),
            ledger: payer.ledger().clone(),
            payer,
            tokens,
            http: std::sync::OnceLock::new(),
            clock,
            policy,
            proxy: None,
            resolved: netguard::Resolutions::default(),
            locks: Mutex::new(HashMap::new()),
        })
    }

    /// Send every request through the HTTP proxy at `url` (`http://host:port`, credentials
    /// allowed). The network policy still applies to each target: every address its name
    /// resolves to here must be allowed before the request goes to the proxy.
    pub fn via_proxy(mut self, url: &str) -> Result<Fetcher, FetchError> {
        let parsed = reqwest::Url::parse(url.trim())
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https" | "socks5" | "socks5h"))
            .ok_or_else(|| {
                FetchError::Invalid(
                    "[fetch] proxy must be an http://, https:// or socks5:// URL".into(),
                )
            })?;
        let host = parsed
            .host_str()
            .ok_or_else(|| FetchError::Invalid("[fetch] proxy has no host".into()))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        self.proxy = Some(Proxy { url: parsed, host });
        Ok(self)
    }

    /// The HTTP client: no redirects (followed by hand, per hop), addresses checked by the
    /// network policy in the resolver, no proxy from the environment.
    fn http(&self) -> Result<&reqwest::Client, FetchError> {
        if let Some(client) = self.http.get() {
            return Ok(client);
        }
        crate::init_tls();
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("l402-mcp/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(netguard::resolver(
                self.policy,
                self.proxy.as_ref().map(|p| p.host.as_str()),
                self.resolved.clone(),
            ));
        if let Some(p) = &self.proxy {
            builder = builder.proxy(
                reqwest::Proxy::all(p.url.clone())
                    .map_err(|_| FetchError::Invalid("[fetch] proxy is not usable".into()))?,
            );
        }
        let client = builder
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
        // A credential honoured before and refused now with 401/403 (a single-use token
        // spent): ask again without it, which gets a fresh challenge if the resource is paid.
        if self.judge(&first, false).await? == Judged::Dropped
            && first.response.status() != reqwest::StatusCode::PAYMENT_REQUIRED
        {
            first = self.exchange(req, url, None, None).await?;
            self.judge(&first, false).await?;
        }
        if first.response.status() != reqwest::StatusCode::PAYMENT_REQUIRED {
            return self.finish(first, req, None).await;
        }
        // The URL that asked for payment is the resource the credential is for.
        let resource = Resource::of(&first.url);
        let dropped = first.token.as_ref().map(|t| t.payment_hash);
        let payee = self.payee_of(&first).await;
        let headers = first.response.headers().clone();
        let (body, _) = read_body(first.response, req.max_response_bytes).await?;
        let found = find_challenge(&headers, &body)?;
        let expect_payment_hash = found.expected_payment_hash();

        // Pay under the resource lock; a parallel call may have paid while we waited.
        let lock = self.lock_for(&resource.key());
        let _held = lock.lock().await;
        let now = self.clock.now();
        if let Some(fresh) = self
            .tokens
            .find_token(&self.wallet, &resource.origin, &resource.path, now)
            .await?
            && dropped != Some(fresh.payment_hash)
        {
            info!("a parallel call bought a credential for this resource; using it");
            let retry = self.exchange(req, resource.url.clone(), None, None).await?;
            if self.judge(&retry, true).await? != Judged::Dropped
                && retry.response.status() != reqwest::StatusCode::PAYMENT_REQUIRED
            {
                return self.finish(retry, req, None).await;
            }
        }

        if let Some(d) = self.tokens.distrusted(&self.wallet, &payee, now).await? {
            return Err(FetchError::SellerDistrusted {
                origin: d.origin,
                until: d.until,
            });
        }
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
                invoice: found.invoice(),
                max_amount_msat: req.max_price_msat,
                max_fee_msat: None,
                url: Some(resource.url.as_str()),
                payee: Some(&payee),
                expect_payment_hash,
                credential: scope.as_ref(),
            })
            .await?;
        // Money has moved: whatever fails from here on says so, with the receipt.
        let paid_but = |cause: FetchError| FetchError::PaidButFailed {
            amount_msat: receipt.amount_msat,
            fee_msat: receipt.fee_msat,
            payment_hash: receipt.payment_hash.to_hex(),
            next: if scope.is_some() && !matches!(cause, FetchError::Storage(_)) {
                "the credential is kept: calling fetch_paid again for this URL presents it without paying again"
            } else {
                "calling fetch_paid again would pay again; the payment hash is the proof of payment to show the seller"
            },
            cause: Box::new(cause),
        };
        self.resend_paid(req, &resource, scope.as_ref(), &receipt, &payee)
            .await
            .map_err(|e| match e {
                e @ (FetchError::RefusedAfterPayment { .. } | FetchError::PaidButFailed { .. }) => {
                    e
                }
                e => paid_but(e),
            })
    }

    /// After paying: keep the credential, resend, and answer with the receipt. A refusal of
    /// what was just paid for is "refused after payment".
    async fn resend_paid(
        &self,
        req: &FetchRequest,
        resource: &Resource,
        scope: Option<&CredentialScope>,
        receipt: &Receipt,
        payee: &Payee,
    ) -> Result<FetchResponse, FetchError> {
        let paid = match scope {
            Some(scope) => {
                let token = scope.with_proof(receipt.preimage, receipt.payment_hash);
                self.tokens
                    .put_token(&self.wallet, &token, self.clock.now())
                    .await?;
                self.exchange(req, resource.url.clone(), None, Some(token))
                    .await?
            }
            None => {
                self.exchange(req, resource.url.clone(), Some(&receipt.payment_hash), None)
                    .await?
            }
        };
        let status = paid.response.status();
        if refuses(status) || status == reqwest::StatusCode::PAYMENT_REQUIRED {
            return Err(self
                .refused_after_payment(
                    &resource.origin,
                    paid.token.as_ref(),
                    payee,
                    receipt.payment_hash,
                    receipt.amount_msat,
                    status,
                )
                .await?);
        }
        self.judge(&paid, true).await?;
        self.finish(paid, req, Some(receipt)).await
    }

    /// What the answer to a presented credential says about it: mark it honoured, drop it
    /// when a seller that honoured it refuses it now, or, when the seller never honoured it,
    /// the payment that bought it was refused. `locked`: the caller holds the lock of the
    /// credential's resource.
    async fn judge(&self, ex: &Exchange, locked: bool) -> Result<Judged, FetchError> {
        let Some(token) = &ex.token else {
            return Ok(Judged::None);
        };
        let status = ex.response.status();
        if !(refuses(status) || status == reqwest::StatusCode::PAYMENT_REQUIRED) {
            if status.as_u16() < 400 {
                self.tokens
                    .mark_token_honoured(&self.wallet, token, self.clock.now())
                    .await?;
                return Ok(Judged::Honoured);
            }
            return Ok(Judged::Kept);
        }
        // A parallel call may have just used this credential (a single-use token) and not yet
        // written that it was honoured: its resource lock is held until it has.
        let lock = (!locked).then(|| {
            self.lock_for(&format!(
                "{}{}",
                token.scope.origin, token.scope.path_prefix
            ))
        });
        let _held = match &lock {
            Some(l) => Some(l.lock().await),
            None => None,
        };
        let honoured = token.honoured
            || self
                .tokens
                .token_state(&self.wallet, token)
                .await?
                .is_none_or(|honoured| honoured);
        if honoured {
            info!(
                status = status.as_u16(),
                "the server refused a credential it honoured before (used up or expired); dropping it"
            );
            self.tokens
                .drop_token(&self.wallet, &token.scope.origin, &token.scope.path_prefix)
                .await?;
            return Ok(Judged::Dropped);
        }
        let amount_msat = self
            .payer
            .find(&token.payment_hash)
            .await?
            .map_or(0, |p| p.amount.msat());
        let payee = self.payee_of(ex).await;
        Err(self
            .refused_after_payment(
                &token.scope.origin,
                Some(token),
                &payee,
                token.payment_hash,
                amount_msat,
                status,
            )
            .await?)
    }

    /// A seller refused what it was paid for: forget the credential, distrust the seller under
    /// every name of it, and say what was paid.
    async fn refused_after_payment(
        &self,
        origin: &str,
        token: Option<&CachedToken>,
        payee: &Payee,
        payment_hash: PaymentHash,
        amount_msat: u64,
        status: reqwest::StatusCode,
    ) -> Result<FetchError, FetchError> {
        let now = self.clock.now();
        warn!(
            payment_hash = %payment_hash,
            status = status.as_u16(),
            payee = %payee.host,
            "the seller refused the credential it was paid for; not paying it again for a day"
        );
        self.tokens
            .distrust(
                &self.wallet,
                payee,
                origin,
                &payment_hash,
                now.saturating_add(DISTRUST_SECS),
                now,
            )
            .await?;
        // Dropped after the distrust is written: a parallel call that finds the credential
        // gone finds the distrust too.
        if let Some(t) = token {
            self.tokens
                .drop_token(&self.wallet, &t.scope.origin, &t.scope.path_prefix)
                .await?;
        }
        Ok(FetchError::RefusedAfterPayment {
            amount_msat,
            payment_hash: payment_hash.to_hex(),
            status: status.as_u16(),
        })
    }

    /// The payee that answered `ex`: its host, the addresses that name resolved to, and the
    /// address that answered.
    async fn payee_of(&self, ex: &Exchange) -> Payee {
        let mut payee = Payee::of_host(ex.url.host_str().unwrap_or_default());
        if let Some(url::Host::Domain(name)) = ex.url.host() {
            let known = self.resolved.get(name);
            let addrs = match known {
                Some(a) => a,
                None => netguard::lookup(name).await.unwrap_or_default(),
            };
            addrs.into_iter().for_each(|a| payee.add_address(a));
        }
        if let Some(ip) = ex.remote {
            payee.add_address(ip);
        }
        payee
    }

    /// Send the request and follow redirects, checking each hop against the network policy and
    /// presenting, at each hop, only a credential bought for that hop's origin and path.
    /// `known`: the credential for the first hop when the caller has it in hand (just bought),
    /// so the cache need not be asked; later hops always ask it.
    async fn exchange(
        &self,
        req: &FetchRequest,
        mut url: reqwest::Url,
        payment_hash: Option<&PaymentHash>,
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
            self.check_target(&url).await?;
            let here = Resource::of(&url);
            let foreign = asked_origin.as_ref() != Some(&url.origin());
            let token = match known.take() {
                Some(t) => Some(t),
                None => {
                    self.tokens
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
            // Through a proxy the address that answered is the proxy's, not the seller's.
            let remote = response
                .remote_addr()
                .map(|a| a.ip())
                .filter(|_| self.proxy.is_none());
            let status = response.status();
            let next = (status.is_redirection() && status != reqwest::StatusCode::NOT_MODIFIED)
                .then(|| {
                    response
                        .headers()
                        .get(reqwest::header::LOCATION)
                        .and_then(|l| l.to_str().ok())
                        .and_then(|l| url.join(l).ok())
                })
                .flatten();
            let Some(next) = next else {
                return Ok(Exchange {
                    response,
                    url,
                    token,
                    remote,
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

    /// Check a hop's target against the network policy before anything is sent. An IP literal
    /// is checked here (names are checked by the resolver); through a proxy, which resolves
    /// names itself, every address the name resolves to here must be allowed.
    async fn check_target(&self, url: &reqwest::Url) -> Result<(), FetchError> {
        match url.host() {
            Some(url::Host::Ipv4(v4)) => Ok(self.policy.check(&v4.to_string(), v4.into())?),
            Some(url::Host::Ipv6(v6)) => Ok(self.policy.check(&v6.to_string(), v6.into())?),
            Some(url::Host::Domain(name)) if self.proxy.is_some() => {
                let addrs = netguard::lookup(name).await.map_err(|e| {
                    FetchError::Http(format!(
                        "{name} does not resolve here ({e}); through a proxy, a name is fetched only when every address it resolves to is allowed"
                    ))
                })?;
                if addrs.is_empty() {
                    return Err(FetchError::Http(format!("{name} resolves to no address")));
                }
                self.policy.check_all(name, &addrs)?;
                self.resolved.put(name, addrs);
                Ok(())
            }
            _ => Ok(()),
        }
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
            ..
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
            self.budget_remaining()
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
                    .map(|r| r.payment_hash.to_hex())
                    .or_else(|| token.as_ref().map(|t| t.payment_hash.to_hex())),
                token_reused: paid.is_none() && token.is_some(),
                scheme: token.as_ref().map(|t| t.scope.scheme),
                budget_remaining_msat: remaining,
            },
        })
    }

    async fn budget_remaining(&self) -> Result<u64, StorageError> {
        let (policy, used) = self
            .ledger
            .budget_and_use(&self.wallet, None, self.clock.now())
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
                payment_hash: json.payment_hash,
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
fn with_payment_hash(body: Option<&str>, hash: &PaymentHash) -> String {
    let mut obj = body
        .and_then(|b| serde_json::from_str::<serde_json::Value>(b).ok())
        .and_then(|v| v.as_object().cloned())
        .unwrap_or_default();
    obj.insert(
        "payment_hash".into(),
        serde_json::Value::String(hash.to_hex()),
    );
    serde_json::Value::Object(obj).to_string()
}

/// The payment hash a challenge's token is for, when it says: a V2 macaroon's version-0
/// identifier, or a JSON token's `hash` / `payment_hash` (l402kit mints base64 of
/// `{"hash": ..., "exp": ...}`).
fn token_payment_hash(token: &[u8]) -> Option<PaymentHash> {
    if let Ok(m) = Macaroon::deserialize(token) {
        return Identifier::decode(m.identifier())
            .ok()
            .map(|id| id.payment_hash);
    }
    let json: serde_json::Value = serde_json::from_slice(token).ok()?;
    ["hash", "payment_hash", "paymentHash"]
        .iter()
        .find_map(|k| json.get(*k)?.as_str()?.parse().ok())
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
        let h = PaymentHash([0xab; 32]);
        let v: serde_json::Value =
            serde_json::from_str(&with_payment_hash(Some(r#"{"q":"x"}"#), &h)).unwrap_or_default();
        assert_eq!(v["q"], "x");
        assert_eq!(v["payment_hash"], hex::encode(h));
        let v: serde_json::Value =
            serde_json::from_str(&with_payment_hash(None, &h)).unwrap_or_default();
        assert_eq!(v["payment_hash"], hex::encode(h));
    }

    #[test]
    fn the_hash_a_token_is_for() {
        let hash = PaymentHash([7; 32]);
        let id = Identifier {
            payment_hash: hash,
            token_id: crate::l402::TokenId([1; 32]),
        };
        let mac = Macaroon::new(&[9; 32], id.encode().to_vec(), "lsat").serialize();
        assert_eq!(token_payment_hash(&mac), Some(hash));
        // l402kit: base64 of {"hash": <hex>, "exp": <ms>}.
        let kit = format!("{{\"hash\":\"{hash}\",\"exp\":1}}");
        assert_eq!(token_payment_hash(kit.as_bytes()), Some(hash));
        // Says nothing readable: presented as it is.
        assert_eq!(token_payment_hash(b"opaque"), None);
        let odd = Macaroon::new(&[9; 32], vec![0, 1, 2], "lsat").serialize();
        assert_eq!(token_payment_hash(&odd), None);
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
