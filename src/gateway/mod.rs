//! `l402-mcp gateway`: an L402 paywall ([`paywall::L402Layer`]) in front of a reverse proxy
//! ([`proxy`]), with discovery documents, a health endpoint and CORS. Tokens are minted and
//! checked by the same [`crate::mint::Seller`] as the MCP tools, so tokens from
//! `create_l402_challenge` work here and the reverse.

pub mod discovery;
mod http1;
pub mod payment;
pub mod paywall;
mod pool;
pub mod proxy;
mod route;

pub use crate::listen::serve_on;
pub use payment::AuthMode;
pub use paywall::{L402Layer, Paywall, Price, Route, RouteConfig};

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Method, Request, Response, header};
use axum::response::IntoResponse;
use axum::routing::get;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;
use tracing::info;

use discovery::About;

/// `[gateway]` in the config file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// Where to listen; default 127.0.0.1:8402.
    pub listen: Option<SocketAddr>,
    /// The service to put behind the paywall, e.g. http://127.0.0.1:3000.
    pub upstream: Option<String>,
    /// `postgres://...` to share tokens and counters between instances; default: the ledger.
    /// The top-level `database_url` (used by every command that sells) takes precedence.
    pub database_url: Option<crate::config::SecretString>,
    pub name: Option<String>,
    pub description: Option<String>,
    /// Public base URL for discovery documents.
    pub public_url: Option<String>,
    /// The `Payment` scheme's realm (bound into challenge ids); default: the host of
    /// `public_url`, else the listen address (as Aperture's default).
    pub mpp_realm: Option<String>,
    /// Browser origins allowed by CORS (e.g. "https://app.example.com"); "*" for any.
    #[serde(default)]
    pub cors_origins: Vec<String>,
    /// Take the client address from X-Forwarded-For (only behind a proxy you trust).
    #[serde(default)]
    pub trust_forwarded_for: bool,
    /// Forward paths no route covers to the upstream, free; default `false`: they get a 404.
    #[serde(default)]
    pub pass_unmatched: Option<bool>,
    /// The old, inverted name of `pass_unmatched` (whose default was to forward), still read:
    /// `deny_unmatched = false` forwards unmatched paths. Giving both is refused.
    #[serde(default)]
    pub deny_unmatched: Option<bool>,
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
}

impl GatewayConfig {
    /// Whether paths no route covers are forwarded (free) rather than refused with a 404:
    /// `pass_unmatched`, or the old `deny_unmatched` inverted; refused when both are given.
    pub fn passes_unmatched(&self) -> Result<bool, GatewayError> {
        match (self.pass_unmatched, self.deny_unmatched) {
            (Some(_), Some(_)) => Err(GatewayError::Config(
                "[gateway] has both pass_unmatched and deny_unmatched (its old, inverted name): keep only pass_unmatched".into(),
            )),
            (Some(pass), None) => Ok(pass),
            (None, Some(deny)) => {
                tracing::warn!(
                    "[gateway] deny_unmatched is deprecated: write pass_unmatched = {} instead",
                    !deny
                );
                Ok(!deny)
            }
            (None, None) => Ok(false),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("gateway configuration: {0}")]
    Config(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("gateway failed: {0}")]
    Serve(std::io::Error),
}

/// The paths the gateway answers itself; every other path goes to the paywall and the proxy.
const DOCUMENTS: [&str; 5] = [
    "/.well-known/l402",
    "/.well-known/agent.json",
    "/llms.txt",
    "/openapi.json",
    "/.well-known/l402/health",
];

/// Everything the gateway serves, ready to listen ([`serve_on`]).
#[derive(Clone)]
pub struct Gateway {
    /// All of it as one axum router: the documents, with the paywall in front of the proxy as
    /// its fallback; CORS, when configured, around the whole.
    router: Router,
    /// Without CORS, the paywall and the proxy called straight for every path but the
    /// documents: no routing, no boxed services, no extensions map per request.
    direct: Option<(Paywall, proxy::Proxy)>,
}

impl Gateway {
    /// The same gateway as one axum router, for a server of the caller's (serve it with
    /// `into_make_service_with_connect_info::<SocketAddr>()` for the free tier).
    pub fn into_router(self) -> Router {
        self.router
    }

    /// Answer one request from `peer`.
    pub(crate) async fn answer(&self, request: Request<Body>, peer: SocketAddr) -> Response<Body> {
        let ip = Some(peer.ip());
        if let Some((paywall, proxy)) = &self.direct
            && !DOCUMENTS.contains(&request.uri().path())
        {
            let forwarded = paywall.guard(request, ip, async |r| {
                Ok::<_, Infallible>(proxy.forward_from(r, ip).await)
            });
            return forwarded.await.unwrap_or_else(|e| match e {});
        }
        let mut request = request;
        request.extensions_mut().insert(ConnectInfo(peer));
        let answer = tower::ServiceExt::oneshot(self.router.clone(), request);
        answer.await.unwrap_or_else(|e| match e {})
    }
}

/// Everything the gateway serves, as one axum router: [`app`]'s [`Gateway::into_router`].
pub fn router(
    paywall: Paywall,
    upstream: &str,
    about: About,
    cors_origins: &[String],
) -> Result<Router, GatewayError> {
    Ok(app(paywall, upstream, about, cors_origins)?.into_router())
}

/// Everything the gateway serves, ready for [`serve_on`].
pub fn app(
    paywall: Paywall,
    upstream: &str,
    about: About,
    cors_origins: &[String],
) -> Result<Gateway, GatewayError> {
    let proxy = proxy::Proxy::new(upstream).map_err(GatewayError::Config)?;
    // The paywall straight in front of the proxy's service: no router, no extractors between.
    let proxied = tower::Layer::layer(&L402Layer::new(paywall.clone()), proxy.clone());
    let about = Arc::new(about);
    let routes: Arc<Vec<Route>> = Arc::new(paywall.routes().to_vec());
    let (a1, r1) = (about.clone(), routes.clone());
    let (a2, r2) = (about.clone(), routes.clone());
    let (a3, r3) = (about.clone(), routes.clone());
    let (a4, r4) = (about, routes);
    let [l402, agent, llms, openapi, health] = DOCUMENTS;
    let mut router = Router::new()
        .route(
            l402,
            get(move || async move { axum::Json(discovery::l402_document(&a1, &r1)) }),
        )
        .route(
            agent,
            get(move || async move { axum::Json(discovery::agent_card(&a2, &r2)) }),
        )
        .route(
            llms,
            get(move || async move {
                (
                    [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                    discovery::llms_txt(&a3, &r3),
                )
                    .into_response()
            }),
        )
        .route(
            openapi,
            get(move || async move {
                (
                    [(header::CACHE_CONTROL, "max-age=300")],
                    axum::Json(discovery::openapi(&a4, &r4)),
                )
                    .into_response()
            }),
        )
        .route(
            health,
            get(|| async { axum::Json(serde_json::json!({ "ok": true })) }),
        )
        .fallback_service(proxied);
    let mut direct = Some((paywall, proxy));
    if !cors_origins.is_empty() {
        router = router.layer(cors(cors_origins)?);
        direct = None;
    }
    Ok(Gateway { router, direct })
}

fn cors(origins: &[String]) -> Result<tower_http::cors::CorsLayer, GatewayError> {
    use tower_http::cors::{AllowHeaders, AllowOrigin, CorsLayer};
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        let list = origins
            .iter()
            .map(|o| {
                HeaderValue::from_str(o.trim_end_matches('/'))
                    .map_err(|_| GatewayError::Config(format!("CORS origin {o:?} is not valid")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        AllowOrigin::list(list)
    };
    Ok(CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
            Method::HEAD,
            Method::OPTIONS,
        ])
        // Whatever headers the upstream's own browser clients send (Authorization for the L402
        // credential among them): the allowed origins are the gate, not a header list.
        .allow_headers(AllowHeaders::mirror_request())
        // Browsers hide response headers from scripts unless exposed: the challenge (and the
        // Payment receipt) must be readable.
        .expose_headers([
            header::WWW_AUTHENTICATE,
            header::HeaderName::from_static("payment-receipt"),
        ])
        .max_age(std::time::Duration::from_secs(600)))
}

/// The `Payment` realm: `mpp_realm`, else `public_url`'s host (and port), else the listen
/// address (Aperture's default).
pub fn mpp_realm(config: &GatewayConfig, listen: SocketAddr) -> String {
    if let Some(r) = &config.mpp_realm {
        return r.clone();
    }
    config
        .public_url
        .as_deref()
        .and_then(|u| url::Url::parse(u).ok())
        .and_then(|u| {
            u.host_str().map(|h| match u.port() {
                Some(p) => format!("{h}:{p}"),
                None => h.to_owned(),
            })
        })
        .unwrap_or_else(|| listen.to_string())
}

/// Refuse routes that offer `Payment` sessions on a wallet that cannot pay their refunds (to
/// the buyer's amountless return invoice): it would take deposits it could never pay back.
pub fn check_sessions(
    routes: &[Route],
    wallet: &dyn crate::wallet::Wallet,
    backend: &str,
) -> Result<(), String> {
    match routes.iter().find(|r| r.sessions) {
        Some(r) if !wallet.pays_amountless() => Err(format!(
            "route {}: sessions are offered, but the {backend} backend cannot pay a session's refund (an amount of its choosing to the buyer's amountless return invoice), so deposits could not be paid back: set sessions = false (or drop --sessions), or sell from a backend that pays refunds (README: The Payment scheme)",
            r.path
        )),
        _ => Ok(()),
    }
}

/// How often the gateway closes idle `Payment` sessions and pays refunds still owed.
pub const REFUND_SWEEP_SECS: u64 = 30;

/// Close idle sessions and pay owed refunds now and every [`REFUND_SWEEP_SECS`], until
/// `shutdown` (a refund interrupted by a crash is paid by the next start's sweep).
pub fn spawn_refunds(mpp: crate::mpp::MppSeller, shutdown: CancellationToken) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(REFUND_SWEEP_SECS));
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => {}
            }
            match mpp.settle_refunds().await {
                Ok(r) if r != crate::mpp::RefundReport::default() => {
                    info!(report = ?r, "Payment sessions swept")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "Payment session sweep failed"),
            }
        }
    });
}

/// Turn configured routes into [`Route`]s.
pub fn routes_from(config: &GatewayConfig) -> Result<Vec<Route>, GatewayError> {
    config
        .routes
        .iter()
        .cloned()
        .map(|r| r.into_route().map_err(GatewayError::Config))
        .collect()
}

/// Listen on `addr` until `shutdown`, with client addresses available to the free tier.
pub async fn serve(
    app: Gateway,
    addr: SocketAddr,
    shutdown: CancellationToken,
) -> Result<(), GatewayError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| GatewayError::Bind { addr, source })?;
    let local = listener.local_addr().map_err(GatewayError::Serve)?;
    info!(addr = %local, "L402 gateway listening");
    serve_on(listener, app, shutdown).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bolt11::Network;
    use crate::clock::ManualClock;
    use crate::wallet::FakeNode;
    use crate::wallet::lnbits::{LnbitsConfig, LnbitsWallet};

    #[test]
    fn sessions_are_offered_only_on_a_wallet_that_pays_refunds() {
        let mut routes = vec![Route::new("/free", Price::Fixed { msat: 21_000 })];
        let mut with_sessions = Route::new("/forecast", Price::Fixed { msat: 21_000 });
        with_sessions.sessions = true;
        let lnbits = LnbitsWallet::new(&LnbitsConfig {
            url: "http://127.0.0.1:1".into(),
            admin_key: Some("admin".into()),
            invoice_key: None,
            network: None,
            timeout_secs: None,
        })
        .unwrap();
        let fake = FakeNode::new(Network::Regtest, ManualClock::new(0)).wallet(0);
        assert_eq!(check_sessions(&routes, &lnbits, "lnbits"), Ok(()));
        routes.push(with_sessions);
        let refused = check_sessions(&routes, &lnbits, "lnbits").unwrap_err();
        assert!(
            refused.contains("/forecast") && refused.contains("the lnbits backend cannot pay"),
            "{refused}"
        );
        assert_eq!(check_sessions(&routes, &fake, "fake"), Ok(()));
    }
}
