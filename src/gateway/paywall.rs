//! The paywall: decides, per request, whether it is served or answered with an L402 challenge.
//! [`L402Layer`] puts it in front of any tower/axum service; the gateway puts it in front of a
//! reverse proxy.
//!
//! Per request: refuse a path with `.`/`..` segments or escapes an upstream could resolve across
//! routes (400), then find the route (longest path prefix); a path no route covers gets a 404
//! (unless the paywall is told to pass such paths). A free route passes. A priced one
//! passes with a valid credential for its service and this request (admitted by
//! [`Seller::admit_verdict`]: the checks of the `verify_l402_payment` tool's [`Seller::admit`],
//! counting a use of N-use tokens, without the details it does not need; a token
//! bound to methods or a path prefix must allow the request's), or within the client's free
//! tier; anything else gets a fresh challenge exactly as Aperture sends it (status 402, an
//! `LSAT` and an `L402` `WWW-Authenticate` line, `Cache-Control: no-store`) plus a JSON body with
//! the same invoice and macaroon for simple clients.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header};
use futures::future::BoxFuture;
use tracing::{info, warn};

use crate::budget::MSAT_PER_SAT;
use crate::l402::caveat;
use crate::mint::{Access, ChallengeRequest, Seller};
use crate::mpp::MppSeller;

pub use super::payment::AuthMode;
pub use super::route::{Price, Route, RouteConfig};

/// The paywall's settings and state; cheap to clone.
#[derive(Clone)]
pub struct Paywall {
    inner: Arc<PaywallInner>,
}

struct PaywallInner {
    seller: Seller,
    /// Sells through the `Payment` scheme; without it only L402 is offered.
    mpp: Option<MppSeller>,
    routes: Vec<Route>,
    /// Paths no route covers: forwarded, free (`true`), or 404 (`false`, the default).
    pass_unmatched: bool,
    trust_forwarded_for: bool,
    hook: reqwest::Client,
}

impl std::fmt::Debug for Paywall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Paywall")
            .field("routes", &self.inner.routes)
            .finish_non_exhaustive()
    }
}

/// What the paywall decided for a request.
#[derive(Debug)]
pub(super) enum Decision {
    /// Serve it; with headers to add to the response (a `Payment-Receipt`).
    Pass(Option<HeaderMap>),
    Respond(Response<Body>),
}

impl Paywall {
    /// A paywall selling through `seller`. Paths no route covers are refused (404), as
    /// Aperture refuses them, unless [`Paywall::pass_unmatched`] says otherwise.
    pub fn new(seller: Seller, routes: Vec<Route>) -> Paywall {
        crate::init_tls();
        let hook = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Paywall {
            inner: Arc::new(PaywallInner {
                seller,
                mpp: None,
                routes,
                pass_unmatched: false,
                trust_forwarded_for: false,
                hook,
            }),
        }
    }

    fn with(self, f: impl FnOnce(&mut PaywallInner)) -> Paywall {
        let mut inner = Arc::try_unwrap(self.inner).unwrap_or_else(|shared| PaywallInner {
            seller: shared.seller.clone(),
            mpp: shared.mpp.clone(),
            routes: shared.routes.clone(),
            pass_unmatched: shared.pass_unmatched,
            trust_forwarded_for: shared.trust_forwarded_for,
            hook: shared.hook.clone(),
        });
        f(&mut inner);
        Paywall {
            inner: Arc::new(inner),
        }
    }

    /// Forward paths no route covers, free (`true`), or answer them 404 (`false`, the default).
    /// Only for an upstream whose every unpriced path may be served to anyone.
    pub fn pass_unmatched(self, yes: bool) -> Paywall {
        self.with(|i| i.pass_unmatched = yes)
    }

    /// Take the client address from `X-Forwarded-For` (only behind a trusted proxy).
    pub fn trust_forwarded_for(self, yes: bool) -> Paywall {
        self.with(|i| i.trust_forwarded_for = yes)
    }

    /// Also sell through the `Payment` scheme (routes whose `auth` allows it).
    pub fn with_mpp(self, mpp: MppSeller) -> Paywall {
        self.with(|i| i.mpp = Some(mpp))
    }

    /// The `Payment` seller, when the paywall has one.
    pub fn mpp(&self) -> Option<&MppSeller> {
        self.inner.mpp.as_ref()
    }

    pub fn routes(&self) -> &[Route] {
        &self.inner.routes
    }

    pub fn seller(&self) -> &Seller {
        &self.inner.seller
    }

    fn route_for(&self, path: &str) -> Option<&Route> {
        // The most specific (longest) matching prefix wins.
        self.inner
            .routes
            .iter()
            .filter(|r| r.matches(path))
            .max_by_key(|r| r.path.trim_end_matches('/').len())
    }

    async fn decide(&self, parts: &axum::http::request::Parts, peer: Option<IpAddr>) -> Decision {
        let path = parts.uri.path();
        if !caveat::is_plain_path(path) {
            return Decision::Respond(plain(
                StatusCode::BAD_REQUEST,
                "path refused: it has '.' or '..' or empty segments, a ';' or backslash, or an escape of a letter, digit or one of -._~/\\;% (send the path as plain characters)",
            ));
        }
        let Some(route) = self.route_for(path) else {
            return if self.inner.pass_unmatched {
                Decision::Pass(None)
            } else {
                Decision::Respond(plain(StatusCode::NOT_FOUND, "no such route"))
            };
        };
        if route.price == Price::Free {
            return Decision::Pass(None);
        }
        let seller = &self.inner.seller;
        let Ok(credential) = one_credential(&parts.headers) else {
            return Decision::Respond(plain(
                StatusCode::BAD_REQUEST,
                "several credentials in one request: send one Authorization header with one credential",
            ));
        };
        if let Some(auth) = credential {
            if super::payment::is_payment(auth) {
                return self.decide_payment(route, parts, auth).await;
            }
            if !route.auth.l402() {
                return Decision::Respond(self.challenge(route, parts).await);
            }
            // A dynamically priced token pays for requests priced at most what was paid (a token
            // bought for `?rows=1` does not buy `?rows=10000`): the price is asked first, so
            // `admit` refuses an underpaid token before it counts a use, and a refusal is
            // answered with a challenge for this price.
            let price = match route.price {
                Price::Hook { .. } => match self.price_msat(route, parts).await {
                    Ok(price) => Some(price),
                    Err(e) => {
                        warn!(route = %route.path, error = %e, "no price");
                        return Decision::Respond(plain(
                            StatusCode::SERVICE_UNAVAILABLE,
                            "pricing is unavailable; try again later",
                        ));
                    }
                },
                _ => None,
            };
            let access = Access {
                service: Some(&route.service),
                capability: None,
                method: Some(parts.method.as_str()),
                path: Some(path),
                price_msat: price,
            };
            match seller.admit_verdict(auth, access).await {
                Ok(v) if v.valid => return Decision::Pass(None),
                Ok(v) => {
                    info!(route = %route.path, reason = v.reason_code.unwrap_or("invalid"), "credential refused; sending a fresh challenge");
                    if let Some(price) = price {
                        return Decision::Respond(
                            self.challenge_priced(route, parts, Ok(price)).await,
                        );
                    }
                }
                Err(e) => {
                    warn!(error = %e, "credential check failed");
                    return Decision::Respond(plain(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "payment verification is unavailable; try again",
                    ));
                }
            }
        } else if route.free_per_day > 0
            && let Some(ip) = self.client_ip(&parts.headers, peer)
        {
            let day = seller.now() / 86_400;
            match seller
                .tokens()
                .free_tier_hit(&client_network(ip), &route.path, day, route.free_per_day)
                .await
            {
                Ok(true) => return Decision::Pass(None),
                Ok(false) => {}
                Err(e) => warn!(error = %e, "free-tier count failed; charging"),
            }
        }
        Decision::Respond(self.challenge(route, parts).await)
    }

    fn client_ip(&self, headers: &HeaderMap, peer: Option<IpAddr>) -> Option<IpAddr> {
        // The trusted proxy appends the address it saw to the right of whatever the client
        // sent: the last entry is the only one a client cannot choose.
        if self.inner.trust_forwarded_for {
            return headers
                .get_all("x-forwarded-for")
                .iter()
                .next_back()
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.rsplit(',').next())
                .and_then(|v| v.trim().parse().ok())
                .or(peer);
        }
        peer
    }

    pub(super) async fn price_msat(
        &self,
        route: &Route,
        parts: &axum::http::request::Parts,
    ) -> Result<u64, String> {
        match &route.price {
            Price::Free => Ok(0),
            Price::Fixed { msat } => Ok(*msat),
            Price::Hook { url } => {
                let body = serde_json::json!({ "method": parts.method.as_str(), "path": parts.uri.path(), "query": parts.uri.query().unwrap_or("") });
                let answer: serde_json::Value = self
                    .inner
                    .hook
                    .post(url)
                    .json(&body)
                    .send()
                    .await
                    .and_then(|r| r.error_for_status())
                    .map_err(|e| format!("pricing hook failed: {e}"))?
                    .json()
                    .await
                    .map_err(|e| format!("pricing hook answer is not JSON: {e}"))?;
                if let Some(msat) = answer.get("price_msat").and_then(|v| v.as_u64()) {
                    Ok(msat)
                } else if let Some(sats) = answer.get("price_sats").and_then(|v| v.as_u64()) {
                    sats.checked_mul(MSAT_PER_SAT)
                        .ok_or_else(|| "price too large".to_owned())
                } else {
                    Err("pricing hook answer has no price_sats or price_msat".into())
                }
            }
        }
    }

    pub(super) async fn challenge(
        &self,
        route: &Route,
        parts: &axum::http::request::Parts,
    ) -> Response<Body> {
        let price = self.price_msat(route, parts).await;
        self.challenge_priced(route, parts, price).await
    }

    pub(super) async fn challenge_priced(
        &self,
        route: &Route,
        parts: &axum::http::request::Parts,
        price: Result<u64, String>,
    ) -> Response<Body> {
        let msat = match price {
            Ok(0) => {
                return plain(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "this request has no price; try again later",
                );
            }
            Ok(m) => m,
            Err(e) => {
                warn!(route = %route.path, error = %e, "no price");
                return plain(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "pricing is unavailable; try again later",
                );
            }
        };
        let description = route
            .description
            .clone()
            .unwrap_or_else(|| format!("{} {}", parts.method, route.path));
        let mut lines: Vec<String> = Vec::new();
        let mut l402_body = None;
        if route.auth.l402() {
            let req = ChallengeRequest {
                amount_msat: msat,
                description: Some(description.clone()),
                expiry_secs: None,
                service: Some(route.service.clone()),
                tier: Some(route.tier),
                capabilities: route.capabilities.clone(),
                valid_for_secs: route.valid_for_secs,
                max_uses: route.max_uses,
                methods: if route.bind_method {
                    vec![parts.method.as_str().to_owned()]
                } else {
                    Vec::new()
                },
                path_prefix: route.bind_path.then(|| route.path.clone()),
            };
            let c = match self.inner.seller.create_challenge(&req).await {
                Ok(c) => c,
                Err(e) => {
                    warn!(error = %e, "cannot create a challenge");
                    return plain(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "cannot create an invoice right now; try again",
                    );
                }
            };
            let [lsat, l402] = &c.www_authenticate;
            if route.send_lsat {
                lines.push(lsat.clone());
            }
            lines.push(l402.clone());
            l402_body = Some(serde_json::json!({
                "error": "payment required",
                "invoice": c.invoice,
                "macaroon": c.macaroon,
                "payment_hash": hex::encode(c.payment_hash),
                "amount_sats": msat / MSAT_PER_SAT,
                "amount_msat": msat,
                "service": c.service,
                "expires_at": c.invoice_expires_at,
                "valid_until": c.valid_until,
                "max_uses": route.max_uses,
            }));
        }
        let accept_payment = parts
            .headers
            .get(crate::l402::mpp::accept::HEADER)
            .and_then(|v| v.to_str().ok());
        let payment = match self
            .payment_lines(route, msat, &description, accept_payment)
            .await
        {
            Ok(p) => p,
            Err(e) => {
                warn!(error = %e, "cannot create a Payment challenge");
                return plain(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "cannot create an invoice right now; try again",
                );
            }
        };
        if lines.is_empty() && payment.is_empty() {
            warn!(route = %route.path, "route sells only through Payment, and this gateway has no Payment seller");
            return plain(
                StatusCode::SERVICE_UNAVAILABLE,
                "this route cannot be paid right now",
            );
        }
        // Aperture's 402: with any Payment challenge, its problem+json body; else the L402
        // JSON body simple clients read.
        let (body, content_type) = if payment.is_empty() {
            (
                l402_body.map(|b| b.to_string()).unwrap_or_default(),
                "application/json",
            )
        } else {
            (
                crate::l402::mpp::PAYMENT_REQUIRED_PROBLEM.to_owned(),
                "application/problem+json",
            )
        };
        lines.extend(payment);
        let mut resp = Response::new(Body::from(body));
        *resp.status_mut() = StatusCode::PAYMENT_REQUIRED;
        let h = resp.headers_mut();
        for line in &lines {
            if let Ok(v) = HeaderValue::from_str(line) {
                h.append(header::WWW_AUTHENTICATE, v);
            }
        }
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        resp
    }
}

/// The network a client counts under for the free tier: IPv4 /24, IPv6 /48.
pub(crate) fn client_network(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.0/24", o[0], o[1], o[2])
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => client_network(IpAddr::V4(v4)),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}::/48", s[0], s[1], s[2])
            }
        },
    }
}

/// The request's credential: its one `Authorization` value, when it is text. `Err` when the
/// request carries more than one: several `Authorization` headers (a singleton field, RFC 9110),
/// or one `Payment` value listing several (the Payment scheme allows one per request; its
/// base64url token has no comma or space). The (long) value is checked for text once.
fn one_credential(headers: &HeaderMap) -> Result<Option<&str>, ()> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(());
    }
    let Ok(v) = first.to_str() else {
        return Ok(None);
    };
    let several = super::payment::is_payment(v)
        && v.trim()
            .split_once(char::is_whitespace)
            .is_some_and(|(_, token)| token.trim().contains([',', ' ', '\t']));
    if several { Err(()) } else { Ok(Some(v)) }
}

pub(super) fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut r = Response::new(Body::from(text));
    *r.status_mut() = status;
    r
}

/// A tower [`Layer`](tower::Layer) that puts a [`Paywall`] in front of a service:
///
/// ```ignore
/// let paywall = Paywall::new(seller, vec![Route::new("/weather", Price::Fixed { msat: 21_000 })]);
/// let app = axum::Router::new().route("/weather", get(weather)).layer(L402Layer::new(paywall));
/// ```
/// Serve the app with `into_make_service_with_connect_info::<SocketAddr>()` for the free tier.
#[derive(Clone, Debug)]
pub struct L402Layer {
    paywall: Paywall,
}

impl L402Layer {
    pub fn new(paywall: Paywall) -> L402Layer {
        L402Layer { paywall }
    }
}

impl<S> tower::Layer<S> for L402Layer {
    type Service = L402Service<S>;
    fn layer(&self, inner: S) -> L402Service<S> {
        L402Service {
            paywall: self.paywall.clone(),
            inner,
        }
    }
}

/// The service [`L402Layer`] makes.
#[derive(Clone, Debug)]
pub struct L402Service<S> {
    paywall: Paywall,
    inner: S,
}

impl<S> tower::Service<Request<Body>> for L402Service<S>
where
    S: tower::Service<Request<Body>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response<Body>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let paywall = self.paywall.clone();
        // The service that was polled ready serves this request; a clone takes its place.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            let peer = request
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip());
            paywall.guard(request, peer, |r| inner.call(r)).await
        })
    }
}

impl Paywall {
    /// Admit `request` from `peer`: answer it here (a challenge, a refusal), or have `next`
    /// serve it and add the paywall's headers (a receipt) to the answer.
    pub(crate) async fn guard<E, F>(
        &self,
        request: Request<Body>,
        peer: Option<IpAddr>,
        next: impl FnOnce(Request<Body>) -> F,
    ) -> Result<Response<Body>, E>
    where
        F: Future<Output = Result<Response<Body>, E>>,
    {
        let (parts, body) = request.into_parts();
        match self.decide(&parts, peer).await {
            Decision::Pass(extra) => {
                let mut response = next(Request::from_parts(parts, body)).await?;
                if let Some(extra) = extra {
                    for (name, value) in extra {
                        if let Some(name) = name {
                            response.headers_mut().insert(name, value);
                        }
                    }
                }
                Ok(response)
            }
            Decision::Respond(r) => Ok(r),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks() {
        assert_eq!(
            client_network("203.0.113.77".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))),
            "203.0.113.0/24"
        );
        assert_eq!(
            client_network(
                "2001:db8:abcd:12::1"
                    .parse()
                    .unwrap_or(IpAddr::from([0, 0, 0, 0]))
            ),
            "2001:db8:abcd::/48"
        );
        assert_eq!(
            client_network(
                "::ffff:10.1.2.3"
                    .parse()
                    .unwrap_or(IpAddr::from([0, 0, 0, 0]))
            ),
            "10.1.2.0/24"
        );
    }

    #[test]
    fn route_matching_and_config() {
        let r = Route::new("/api/weather", Price::Free);
        assert!(
            r.matches("/api/weather")
                && r.matches("/api/weather/today")
                && !r.matches("/api/weatherman")
        );
        assert_eq!(r.service, "api-weather");
        let bad = |toml: &str| {
            toml::from_str::<RouteConfig>(toml)
                .map_err(|e| e.to_string())
                .and_then(RouteConfig::into_route)
                .is_err()
        };
        assert!(bad("path = \"/x\""));
        assert!(bad("path = \"/x\"\nprice_sats = 1\nfree = true"));
        assert!(bad("path = \"x\"\nprice_sats = 1"));
        assert!(bad("path = \"/x\"\nprice_sats = 0"));
        assert!(bad("path = \"/x\"\nprice_sats = 1\nservice = \"a:b\""));
        assert!(!bad(
            "path = \"/x\"\nprice_sats = 1\nmax_uses = 3\nfree_per_day = 2"
        ));
        assert!(bad("path = \"/x\"\nprice_sats = 1\nauth = \"bearer\""));
        assert!(bad(
            "path = \"/x\"\nprice_sats = 1\nauth = \"l402\"\nsessions = true"
        ));
        assert!(!bad(
            "path = \"/x\"\nprice_sats = 1\nauth = \"mpp\"\nsessions = true\nsend_lsat = false"
        ));
    }
}
