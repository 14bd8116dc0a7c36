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

mod challenge;
mod judge;
mod paid_tool;
mod payment;
mod session;
mod transport;

pub use paid_tool::{PaidToolCall, PaidToolOutcome};
pub use payment::{PaymentUse, SchemePreference};
pub use session::ClosedSession;
use session::Presented;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tracing::{Instrument, info, info_span};

use crate::clock::SharedClock;
use crate::l402::Scheme;
use crate::netguard::{self, NetPolicy};
use crate::pay::{PayError, PayRequest, Payer, Receipt};
use crate::payee::Payee;
use crate::storage::{
    BuyerSessionStatus, BuyerSessions, CredentialScope, SpendLedger, StorageError, TokenCache,
};
use challenge::{Found, find_challenge, token_expiry};
use judge::{Judged, refuses};
use payment::Offer;
use transport::{Present, Proxy, read_body};

/// Default and largest response body kept.
pub(crate) const DEFAULT_MAX_RESPONSE_BYTES: usize = 1 << 20;
pub(crate) const MAX_RESPONSE_BYTES: usize = 16 << 20;
/// Default and largest time for one HTTP exchange.
pub(crate) const DEFAULT_TIMEOUT_SECS: u64 = 30;
pub(crate) const MAX_TIMEOUT_SECS: u64 = 300;
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
    /// Which offer of a 402 to pay first; the fetcher's preference when `None`.
    pub prefer: Option<SchemePreference>,
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
            prefer: None,
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
    /// When the `Payment` scheme paid: the intent, what was done, the seller's receipt.
    pub payment: Option<PaymentUse>,
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
    #[error(
        "the server answered 402 but not with a challenge this wallet pays: L402, or Payment with method lightning ({detail}); nothing was paid"
    )]
    NotL402 { detail: String },
    /// A `Payment` challenge that cannot be paid as it stands (its invoice does not match it,
    /// it expired, it does not parse). `code` is the stable code.
    #[error("{detail}; nothing was paid")]
    PaymentChallenge { code: &'static str, detail: String },
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
    /// The buyer's `Payment` sessions; without them, session offers are not taken.
    sessions: Option<Arc<dyn BuyerSessions>>,
    /// Which offer of a 402 to pay first.
    prefer: SchemePreference,
    /// The credential cache is the ledger's database: a credential the pay path cached with
    /// its payment's record ([`Receipt::credential_cached`]) is not written again.
    tokens_in_ledger: bool,
}

/// Where a credential applies: origin and path (without query).
#[derive(Debug, Clone)]
struct Resource {
    url: reqwest::Url,
    origin: String,
    path: String,
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
            tokens_in_ledger: std::ptr::addr_eq(Arc::as_ptr(&tokens), Arc::as_ptr(payer.ledger())),
            ledger: payer.ledger().clone(),
            payer,
            tokens,
            http: std::sync::OnceLock::new(),
            clock,
            policy,
            proxy: None,
            resolved: netguard::Resolutions::default(),
            locks: Mutex::new(HashMap::new()),
            sessions: None,
            prefer: SchemePreference::default(),
        })
    }

    /// Keep `Payment` sessions in `store` (without one, session offers are not taken).
    pub fn with_sessions(mut self, store: Arc<dyn BuyerSessions>) -> Fetcher {
        self.sessions = Some(store);
        self
    }

    /// Pay 402 offers in this order of preference (default: L402 first).
    pub fn prefer(mut self, preference: SchemePreference) -> Fetcher {
        self.prefer = preference;
        self
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
        let mut live = match &self.sessions {
            Some(store) => store.live_buyer_sessions(&self.wallet).await?,
            None => Vec::new(),
        };
        // An open Payment session for this very resource is presented first: no 402 needed.
        let presented = match self.session_to_present(&url, &live) {
            Some((s, c)) => Some(self.presend_bearer(req, &url, s, c).await?),
            None => None,
        };
        let mut just_402 = None;
        let mut first = match presented {
            Some(Presented::Served(done)) => return Ok(done),
            Some(Presented::Challenged(ex, session)) => {
                just_402 = Some(session);
                ex
            }
            Some(Presented::Abandoned) => {
                // Closed now: not an open session to prefer below.
                let origin = Resource::of(&url).origin;
                live.retain(|s| s.origin != origin);
                self.exchange(req, url.clone(), Present::Cached).await?
            }
            None => self.exchange(req, url.clone(), Present::Cached).await?,
        };
        // A credential honoured before and refused now with 401/403 (a single-use token
        // spent): ask again without it, which gets a fresh challenge if the resource is paid.
        if self.judge(&first, false).await? == Judged::Dropped
            && first.response.status() != reqwest::StatusCode::PAYMENT_REQUIRED
        {
            first = self.exchange(req, url, Present::Cached).await?;
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
        let found = find_challenge(&headers, &body);
        let (offers, skipped) = payment::payment_offers(&headers);
        if offers.is_empty() {
            let found = found.map_err(|e| with_skipped(e, &skipped))?;
            return self.buy_l402(req, resource, dropped, payee, found).await;
        }
        let open_realm = live
            .into_iter()
            .find(|s| s.origin == resource.origin && s.status == BuyerSessionStatus::Open)
            .map(|s| s.realm);
        let ordered = payment::ordered(
            req.prefer.unwrap_or(self.prefer),
            found.ok(),
            offers,
            open_realm.as_deref(),
        );
        let now = self.clock.now();
        if let Some(d) = self.tokens.distrusted(&self.wallet, &payee, now).await? {
            return Err(FetchError::SellerDistrusted {
                origin: d.origin,
                until: d.until,
            });
        }
        // The first offer that can be paid as it stands; else why the first could not.
        let mut first_refusal = None;
        for offer in ordered {
            let tried = match offer {
                Offer::L402(found) => {
                    return self.buy_l402(req, resource, dropped, payee, found).await;
                }
                Offer::Charge(c) => match payment::check_digest(&c, req)
                    .and_then(|()| payment::plan_charge(&c, req.max_price_msat, now))
                {
                    Ok(plan) => return self.buy_charge(req, &resource, &payee, plan).await,
                    Err(e) => e,
                },
                Offer::Session(c) if self.sessions.is_some() => {
                    match payment::check_digest(&c, req)
                        .and_then(|()| payment::session_request(&c, now))
                    {
                        Ok(r) => match self
                            .use_session(req, &resource, &payee, c, r, just_402)
                            .await
                        {
                            Err(e @ FetchError::PaymentChallenge { .. }) => e,
                            Err(FetchError::Pay(p)) if !p.money_may_have_moved() => {
                                FetchError::Pay(p)
                            }
                            other => return other,
                        },
                        Err(e) => e,
                    }
                }
                Offer::Session(_) => payment::refuse(
                    "sessions_unsupported",
                    "a Payment session is offered, and this fetcher keeps no sessions",
                ),
            };
            info!(error = %tried, "this offer cannot be paid; trying the next");
            first_refusal.get_or_insert(tried);
        }
        Err(first_refusal.unwrap_or_else(|| FetchError::NotL402 {
            detail: "no offer could be used".into(),
        }))
    }

    /// Pay an L402 challenge (or a JSON-body invoice) and send the request again.
    async fn buy_l402(
        &self,
        req: &FetchRequest,
        resource: Resource,
        dropped: Option<crate::l402::PaymentHash>,
        payee: Payee,
        found: Found,
    ) -> Result<FetchResponse, FetchError> {
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
            let retry = self
                .exchange(req, resource.url.clone(), Present::Cached)
                .await?;
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
                needs_preimage: false,
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
                if !(receipt.credential_cached && self.tokens_in_ledger) {
                    self.tokens
                        .put_token(&self.wallet, &token, self.clock.now())
                        .await?;
                }
                self.exchange(req, resource.url.clone(), Present::Token(token))
                    .await?
            }
            None => {
                self.exchange(
                    req,
                    resource.url.clone(),
                    Present::PaymentHash(&receipt.payment_hash),
                )
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

    async fn budget_remaining(&self) -> Result<u64, StorageError> {
        let (policy, used) = self
            .ledger
            .budget_and_use(&self.wallet, None, self.clock.now())
            .await?;
        Ok(policy.daily_msat.saturating_sub(used.daily_msat))
    }
}

/// A 402 with nothing payable: say also why any `Payment` offer was skipped.
fn with_skipped(e: FetchError, skipped: &[String]) -> FetchError {
    match e {
        FetchError::NotL402 { mut detail } if !skipped.is_empty() => {
            detail.push_str("; ");
            detail.push_str(&skipped.join("; "));
            FetchError::NotL402 { detail }
        }
        e => e,
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

#[cfg(test)]
mod tests {
    use super::*;

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
