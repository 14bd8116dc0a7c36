//! `l402-mcp serve --http ADDR`: streamable HTTP at `/mcp` and the legacy HTTP+SSE transport at
//! `GET /sse` + `POST /messages`, behind a bearer token and Host/Origin checks.
//!
//! - Binding anything but a loopback address without a bearer token is refused.
//! - `Host` must be a loopback name or one of the configured hosts (DNS-rebinding protection).
//! - A request carrying `Origin` (a browser) must come from a loopback origin or a configured one.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use subtle::ConstantTimeEq;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::L402Server;

/// Hosts every server accepts: loopback names.
const LOOPBACK_HOSTS: &[&str] = &["localhost", "127.0.0.1", "::1"];
/// Origins every server accepts: loopback pages on any port.
const LOOPBACK_ORIGINS: &[&str] = &["http://localhost:*", "http://127.0.0.1:*", "http://[::1]:*"];

/// How the HTTP transport is exposed.
#[derive(Clone)]
pub struct HttpOptions {
    pub bind: SocketAddr,
    /// Required from clients as `Authorization: Bearer <token>` when set.
    pub bearer_token: Option<String>,
    /// Extra `Host` values accepted (name or name:port).
    pub allowed_hosts: Vec<String>,
    /// Extra `Origin` values accepted (scheme://host[:port|:*]).
    pub allowed_origins: Vec<String>,
}

impl std::fmt::Debug for HttpOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpOptions")
            .field("bind", &self.bind)
            .field("bearer_token", &self.bearer_token.as_ref().map(|_| "<set>"))
            .field("allowed_hosts", &self.allowed_hosts)
            .field("allowed_origins", &self.allowed_origins)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error(
        "refusing to listen on {0} without a bearer token: set one with --http-token or L402_MCP_HTTP_TOKEN (or bind 127.0.0.1)"
    )]
    NoTokenOnPublicAddress(SocketAddr),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("HTTP server failed: {0}")]
    Serve(std::io::Error),
}

#[derive(Debug)]
struct Guard {
    token: Option<String>,
    hosts: Vec<String>,
    origins: Vec<String>,
}

/// The axum router with both transports and the checks, for `server`.
pub fn router(server: L402Server, opts: &HttpOptions, shutdown: CancellationToken) -> Router {
    let hosts: Vec<String> = LOOPBACK_HOSTS
        .iter()
        .map(|h| (*h).to_owned())
        .chain(opts.allowed_hosts.iter().cloned())
        .collect();
    let origins: Vec<String> = LOOPBACK_ORIGINS
        .iter()
        .map(|o| (*o).to_owned())
        .chain(opts.allowed_origins.iter().cloned())
        .collect();
    let config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(hosts.clone())
        .with_allowed_origins(origins.clone())
        .with_cancellation_token(shutdown);
    let for_mcp = server.clone();
    let streamable: StreamableHttpService<L402Server, LocalSessionManager> =
        StreamableHttpService::new(
            move || Ok(for_mcp.clone()),
            Arc::new(LocalSessionManager::default()),
            config,
        );
    let guard = Arc::new(Guard {
        token: opts.bearer_token.clone().filter(|t| !t.is_empty()),
        hosts,
        origins,
    });
    Router::new()
        .nest_service("/mcp", streamable)
        .merge(super::sse::router(move || server.clone()))
        .layer(middleware::from_fn_with_state(guard, check))
}

/// Serve until `shutdown` is cancelled.
pub async fn serve(
    server: L402Server,
    opts: HttpOptions,
    shutdown: CancellationToken,
) -> Result<(), HttpError> {
    if !opts.bind.ip().is_loopback() && opts.bearer_token.as_deref().is_none_or(str::is_empty) {
        return Err(HttpError::NoTokenOnPublicAddress(opts.bind));
    }
    let listener = tokio::net::TcpListener::bind(opts.bind)
        .await
        .map_err(|source| HttpError::Bind {
            addr: opts.bind,
            source,
        })?;
    let local = listener.local_addr().map_err(HttpError::Serve)?;
    info!(addr = %local, auth = opts.bearer_token.is_some(), "MCP over HTTP: streamable at /mcp, legacy SSE at /sse");
    let app = router(server, &opts, shutdown.clone());
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled_owned().await })
        .await
        .map_err(HttpError::Serve)
}

async fn check(State(guard): State<Arc<Guard>>, request: Request, next: Next) -> Response {
    let headers = request.headers();
    if !host_allowed(headers, &guard.hosts) {
        warn!("refused a request with a Host that is not allowed");
        return (StatusCode::FORBIDDEN, "Forbidden: Host not allowed").into_response();
    }
    if let Some(origin) = headers.get(header::ORIGIN)
        && !origin
            .to_str()
            .is_ok_and(|o| origin_allowed(o, &guard.origins))
    {
        warn!("refused a request with an Origin that is not allowed");
        return (StatusCode::FORBIDDEN, "Forbidden: Origin not allowed").into_response();
    }
    if let Some(token) = &guard.token {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim);
        let ok = presented.is_some_and(|p| {
            p.len() == token.len() && bool::from(p.as_bytes().ct_eq(token.as_bytes()))
        });
        if !ok {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                "Unauthorized: a bearer token is required",
            )
                .into_response();
        }
    }
    next.run(request).await
}

/// Split `host[:port]` (with `[v6]` brackets) into a lower-case host and an optional port.
fn split_authority(a: &str) -> (String, Option<u16>) {
    let a = a.trim().to_ascii_lowercase();
    if let Some(rest) = a.strip_prefix('[') {
        if let Some((h, tail)) = rest.split_once(']') {
            return (
                h.to_owned(),
                tail.strip_prefix(':').and_then(|p| p.parse().ok()),
            );
        }
        return (rest.to_owned(), None);
    }
    match a.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => (h.to_owned(), p.parse().ok()),
        _ => (a, None),
    }
}

fn host_allowed(headers: &HeaderMap, allowed: &[String]) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let (h, port) = split_authority(host);
    allowed.iter().any(|a| {
        let (ah, ap) = split_authority(a);
        ah == h && ap.is_none_or(|p| Some(p) == port)
    })
}

/// `scheme://host[:port]` as (scheme, host, port), the port defaulted from the scheme; an
/// allow-list entry may end in `:*` for any port (`None`).
fn parse_origin(s: &str) -> Option<(String, String, Option<u16>)> {
    let lower = s.trim().to_ascii_lowercase();
    let (scheme, rest) = lower.split_once("://")?;
    if let Some(host) = rest.strip_suffix(":*") {
        return Some((scheme.to_owned(), split_authority(host).0, None));
    }
    let (host, port) = split_authority(rest);
    let default = match scheme {
        "https" => 443,
        "http" => 80,
        _ => 0,
    };
    Some((scheme.to_owned(), host, Some(port.unwrap_or(default))))
}

fn origin_allowed(origin: &str, allowed: &[String]) -> bool {
    let Some((scheme, host, Some(port))) = parse_origin(origin) else {
        return false;
    };
    allowed
        .iter()
        .filter_map(|a| parse_origin(a))
        .any(|(s, h, p)| s == scheme && h == host && p.is_none_or(|p| p == port))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn hosts(h: &str) -> HeaderMap {
        let mut m = HeaderMap::new();
        m.insert(
            header::HOST,
            HeaderValue::from_str(h).unwrap_or(HeaderValue::from_static("x")),
        );
        m
    }

    #[test]
    fn host_checks() {
        let allowed: Vec<String> = ["localhost", "127.0.0.1", "::1", "mcp.example.com:8443"]
            .map(String::from)
            .to_vec();
        for ok in [
            "localhost",
            "localhost:3000",
            "127.0.0.1:9",
            "[::1]:80",
            "MCP.example.com:8443",
        ] {
            assert!(host_allowed(&hosts(ok), &allowed), "{ok}");
        }
        for bad in [
            "evil.example",
            "127.0.0.1.evil.example",
            "mcp.example.com",
            "mcp.example.com:80",
        ] {
            assert!(!host_allowed(&hosts(bad), &allowed), "{bad}");
        }
        assert!(!host_allowed(&HeaderMap::new(), &allowed));
    }

    #[test]
    fn origin_checks() {
        let allowed: Vec<String> = ["http://localhost:*", "https://app.example.com"]
            .map(String::from)
            .to_vec();
        assert!(origin_allowed("http://localhost:5173", &allowed));
        assert!(origin_allowed("https://app.example.com", &allowed));
        assert!(origin_allowed("https://app.example.com:443", &allowed));
        assert!(!origin_allowed("https://app.example.com:8443", &allowed));
        assert!(!origin_allowed("http://evil.example", &allowed));
        assert!(!origin_allowed("null", &allowed));
        assert!(!origin_allowed("https://localhost:5173", &allowed));
    }
}
