//! The pages for people: the dashboard (`l402-mcp dashboard`, or `serve --http --dashboard`
//! under `/dashboard`) and the approval page of a held payment (`/approve/<id>`, linked from
//! `approval_required` and opened by URL elicitation).
//!
//! Served on loopback only. Every answer carries a strict CSP (no script at all), no framing,
//! no referrer to other origins, no caching. Every request must name a loopback host (DNS rebinding); every POST
//! must come from this very origin (`Origin`) and carry a CSRF token; the dashboard needs a
//! session from a one-time login link ([`session`]); the approval page needs no login but asks
//! the PIN when one is set (wrong ones are counted for every channel and process, and entry
//! locked, by [`crate::approval::pin`]). The logic is the library's ([`crate::ops`]); this is HTML and HTTP.

mod handlers;
pub mod render;
pub mod session;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio_util::sync::CancellationToken;

use crate::app::App;
use session::Sessions;

/// The cookie naming a dashboard session.
pub const COOKIE: &str = "l402_mcp_session";

const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The pages of one wallet.
pub struct Web {
    pub(crate) app: Arc<App>,
    /// Where the pages are mounted: "" or e.g. "/dashboard".
    pub(crate) base: String,
    pub(crate) sessions: Sessions,
}

#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error(
        "the dashboard and approval pages are served on loopback only (127.0.0.1, ::1), not on {0}"
    )]
    NotLoopback(SocketAddr),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

impl Web {
    /// The pages of `app`'s wallet, mounted at `base` ("" or "/something").
    pub fn new(app: Arc<App>, base: &str) -> Arc<Web> {
        Arc::new(Web {
            app,
            base: base.trim_end_matches('/').to_owned(),
            sessions: Sessions::new(),
        })
    }

    /// The wallet shown.
    pub fn wallet(&self) -> &str {
        &self.app.wallet_name
    }

    /// A one-time login link for the dashboard at `origin` (`http://127.0.0.1:PORT`).
    pub fn login_link(&self, origin: &str) -> String {
        let token = self.sessions.login_token(self.app.clock.now());
        format!("{origin}{}/login?token={token}", self.base)
    }

    /// The approval page of approval `id` at `origin`.
    pub fn approve_url(&self, origin: &str, id: &str) -> String {
        format!("{origin}{}/approve/{id}", self.base)
    }
}

/// The routes, to be served at `web.base`.
pub fn router(web: Arc<Web>) -> Router {
    let routes = Router::new()
        .route("/", get(handlers::dashboard))
        .route("/login", get(handlers::login))
        .route("/approvals/{id}", post(handlers::decide))
        .route("/settings", post(handlers::settings))
        .route(
            "/approve/{id}",
            get(handlers::approval_page).post(handlers::approval_decide),
        )
        .with_state(web.clone());
    let routes = if web.base.is_empty() {
        routes
    } else {
        Router::new().nest(&web.base, routes)
    };
    routes.layer(middleware::from_fn(guard))
}

/// Listen on `addr`, which must be a loopback address.
pub async fn bind(addr: SocketAddr) -> Result<(tokio::net::TcpListener, SocketAddr), WebError> {
    if !addr.ip().is_loopback() {
        return Err(WebError::NotLoopback(addr));
    }
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| WebError::Bind { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| WebError::Bind { addr, source })?;
    Ok((listener, local))
}

/// Serve `web` on `listener` until `shutdown`.
pub async fn serve(web: Arc<Web>, listener: tokio::net::TcpListener, shutdown: CancellationToken) {
    crate::listen::serve_router(listener, router(web), shutdown).await;
}

/// Whether a `Host` value names this machine's loopback.
fn loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.split(':').next().unwrap_or(""),
    };
    matches!(
        name.to_ascii_lowercase().as_str(),
        "127.0.0.1" | "localhost" | "::1"
    )
}

/// Host and Origin checks, and the headers every answer carries.
async fn guard(req: Request, next: Next) -> Response {
    let headers = req.headers();
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let refused = if !loopback_host(&host) {
        Some("this page answers only to a loopback host name")
    } else if req.method() == Method::POST {
        let origin = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok());
        (origin != Some(&format!("http://{host}"))).then_some(
            "refused: a form may only be sent from this page itself (cross-origin request)",
        )
    } else {
        None
    };
    let mut resp = match refused {
        Some(why) => (StatusCode::FORBIDDEN, why).into_response(),
        None => next.run(req).await,
    };
    let h = resp.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
        (header::CACHE_CONTROL, "no-store"),
    ] {
        h.insert(name, HeaderValue::from_static(value));
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for ok in [
            "127.0.0.1:8403",
            "localhost:1",
            "LOCALHOST",
            "[::1]:80",
            "127.0.0.1",
        ] {
            assert!(loopback_host(ok), "{ok}");
        }
        for bad in [
            "evil.example:8403",
            "127.0.0.1.evil.example",
            "",
            "[::2]:80",
            "0.0.0.0",
        ] {
            assert!(!loopback_host(bad), "{bad}");
        }
    }
}
