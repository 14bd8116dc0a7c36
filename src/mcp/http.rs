//! `l402-mcp serve --http ADDR`: streamable HTTP at `/mcp` and the legacy HTTP+SSE transport at
//! `GET /sse` + `POST /messages`, behind a bearer token and Host/Origin checks.
//!
//! - Binding anything but a loopback address without a bearer token is refused.
//! - `Host` must be a loopback name or one of the configured hosts (DNS-rebinding protection).
//! - A request carrying `Origin` (a browser) must come from a loopback origin or a configured one.
//! - Sessions of both transports together are capped, and idle ones closed ([`super::sessions`]).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use rmcp::model::{ClientJsonRpcMessage, ClientRequest};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::Value;
use subtle::ConstantTimeEq;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::sessions::{RETRY_AFTER_SECS, SessionCap, SessionLimits};
use super::{L402Server, jsonrpc};
use crate::secret::SecretString;

/// The JSON-RPC error code of a refusal for lack of room (in the range for server errors).
const SERVER_BUSY: i64 = -32000;

/// The largest POST body of the streamable transport (rmcp's default, set explicitly so that
/// this layer and rmcp agree).
const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// Hosts every server accepts: loopback names.
const LOOPBACK_HOSTS: &[&str] = &["localhost", "127.0.0.1", "::1"];
/// Origins every server accepts: loopback pages on any port.
const LOOPBACK_ORIGINS: &[&str] = &["http://localhost:*", "http://127.0.0.1:*", "http://[::1]:*"];

/// How the HTTP transport is exposed.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    pub bind: SocketAddr,
    /// Required from clients as `Authorization: Bearer <token>` when set.
    pub bearer_token: Option<SecretString>,
    /// Extra `Host` values accepted (name or name:port).
    pub allowed_hosts: Vec<String>,
    /// Extra `Origin` values accepted (scheme://host[:port|:*]).
    pub allowed_origins: Vec<String>,
    /// How many sessions are kept, and for how long without a message.
    pub sessions: SessionLimits,
    /// More routes served beside the transports, outside their bearer token (the dashboard,
    /// which has its own login, Host and Origin checks).
    pub pages: Option<Router>,
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

/// Who may reach an MCP listener: the `Host` names it answers to (DNS-rebinding protection)
/// and the browser `Origin`s it serves, loopback ones always.
#[derive(Debug, Clone)]
pub(crate) struct Reach {
    hosts: Vec<String>,
    origins: Vec<String>,
}

impl Reach {
    /// Loopback hosts and origins, and `hosts` (name or name:port) and `origins`
    /// (scheme://host[:port|:*]) besides.
    pub(crate) fn loopback_and(hosts: &[String], origins: &[String]) -> Reach {
        let with = |loopback: &[&str], more: &[String]| -> Vec<String> {
            loopback
                .iter()
                .map(|h| (*h).to_owned())
                .chain(more.iter().cloned())
                .collect()
        };
        Reach {
            hosts: with(LOOPBACK_HOSTS, hosts),
            origins: with(LOOPBACK_ORIGINS, origins),
        }
    }

    /// rmcp's streamable transport, checking the same (behind [`Reach::refusal`], as a second
    /// line).
    pub(crate) fn configure(
        &self,
        config: StreamableHttpServerConfig,
    ) -> StreamableHttpServerConfig {
        config
            .with_allowed_hosts(self.hosts.clone())
            .with_allowed_origins(self.origins.clone())
    }

    /// 403 for a request whose `Host` is not one of ours or whose `Origin` (a browser page's)
    /// is not allowed; `None` when it may go on.
    pub(crate) fn refusal(&self, headers: &HeaderMap) -> Option<Response> {
        if !host_allowed(headers, &self.hosts) {
            warn!("refused a request with a Host that is not allowed");
            return Some((StatusCode::FORBIDDEN, "Forbidden: Host not allowed").into_response());
        }
        if let Some(origin) = headers.get(header::ORIGIN)
            && !origin
                .to_str()
                .is_ok_and(|o| origin_allowed(o, &self.origins))
        {
            warn!("refused a request with an Origin that is not allowed");
            return Some((StatusCode::FORBIDDEN, "Forbidden: Origin not allowed").into_response());
        }
        None
    }
}

#[derive(Debug)]
struct Guard {
    token: Option<SecretString>,
    reach: Reach,
}

/// The axum router with both transports and the checks, for `server`.
pub fn router(server: L402Server, opts: &HttpOptions, shutdown: CancellationToken) -> Router {
    let reach = Reach::loopback_and(&opts.allowed_hosts, &opts.allowed_origins);
    let config = reach.configure(
        StreamableHttpServerConfig::default()
            .with_max_request_body_bytes(MAX_BODY_BYTES)
            .with_cancellation_token(shutdown),
    );
    let for_mcp = server.clone();
    // rmcp closes a session whose worker sees no message for `keep_alive`.
    let mut manager = LocalSessionManager::default();
    manager.session_config.keep_alive = Some(opts.sessions.idle);
    let manager = Arc::new(manager);
    let cap = SessionCap::new(opts.sessions, Some(manager.clone()));
    let streamable: StreamableHttpService<L402Server, LocalSessionManager> =
        StreamableHttpService::new(move || Ok(for_mcp.for_session()), manager, config);
    let guard = Arc::new(Guard {
        token: opts.bearer_token.clone().filter(|t| !t.is_empty()),
        reach,
    });
    let mcp = Router::new()
        .nest_service("/mcp", streamable)
        .layer(middleware::from_fn_with_state(cap.clone(), mcp_messages));
    let transports = Router::new()
        .merge(mcp)
        .merge(super::sse::router_with(move || server.for_session(), cap))
        .layer(middleware::from_fn_with_state(guard, check));
    match &opts.pages {
        Some(pages) => transports.merge(pages.clone()),
        None => transports,
    }
}

/// Serve until `shutdown` is cancelled.
pub async fn serve(
    server: L402Server,
    opts: HttpOptions,
    shutdown: CancellationToken,
) -> Result<(), HttpError> {
    if !opts.bind.ip().is_loopback()
        && opts
            .bearer_token
            .as_ref()
            .is_none_or(SecretString::is_empty)
    {
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
    crate::listen::serve_router(listener, app, shutdown).await;
    Ok(())
}

async fn check(State(guard): State<Arc<Guard>>, request: Request, next: Next) -> Response {
    let headers = request.headers();
    if let Some(refused) = guard.reach.refusal(headers) {
        return refused;
    }
    if let Some(token) = &guard.token {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer_token);
        let ok = presented.is_some_and(|p| {
            let token = token.expose();
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

/// The token of an `Authorization: Bearer <token>` value. The scheme is case-insensitive
/// (RFC 9110, 11.1) and may be followed by more than one space; the token is taken as is.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once([' ', '\t'])?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// POST bodies of the streamable transport, read here so that a malformed one gets 400 and a
/// JSON-RPC error ([`jsonrpc::check`]) instead of rmcp's 415 and text, and so that an
/// `initialize` that would open a session beyond the cap gets 503. Other requests, and bodies
/// that are not `application/json` (rmcp's 415 is right for those), pass untouched.
async fn mcp_messages(
    State(cap): State<Arc<SessionCap>>,
    request: Request,
    next: Next,
) -> Response {
    let is_json = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if request.method() != axum::http::Method::POST || !is_json {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let bytes = match read_body(body, MAX_BODY_BYTES).await {
        Ok(b) => b,
        Err(status) => {
            let why = if status == StatusCode::PAYLOAD_TOO_LARGE {
                format!("Invalid Request: the body is larger than {MAX_BODY_BYTES} bytes")
            } else {
                "Invalid Request: the body could not be read".to_owned()
            };
            return json_rpc_refusal(status, Value::Null, jsonrpc::INVALID_REQUEST, &why);
        }
    };
    match jsonrpc::check(&bytes, jsonrpc::Policy::Http) {
        jsonrpc::Checked::Message(message) => {
            let request = Request::from_parts(parts, axum::body::Body::from(bytes));
            // An `initialize` without a session id is what opens a session (rmcp's
            // session mode): admitted under the cap, and created while the gate is held.
            let opens_session = !request.headers().contains_key("mcp-session-id")
                && matches!(
                    &*message,
                    ClientJsonRpcMessage::Request(r)
                        if matches!(r.request, ClientRequest::InitializeRequest(_))
                );
            if !opens_session {
                return next.run(request).await;
            }
            match cap.admit().await {
                Ok(_gate) => next.run(request).await,
                Err(full) => {
                    warn!(
                        open = full.open,
                        "refused a new MCP session: at the session cap"
                    );
                    let id = match &*message {
                        ClientJsonRpcMessage::Request(r) => {
                            serde_json::to_value(&r.id).unwrap_or(Value::Null)
                        }
                        _ => Value::Null,
                    };
                    let mut refusal = json_rpc_refusal(
                        StatusCode::SERVICE_UNAVAILABLE,
                        id,
                        SERVER_BUSY,
                        &full.to_string(),
                    );
                    refusal.headers_mut().insert(
                        header::RETRY_AFTER,
                        axum::http::HeaderValue::from(RETRY_AFTER_SECS),
                    );
                    refusal
                }
            }
        }
        jsonrpc::Checked::Answer(answer) => {
            (StatusCode::BAD_REQUEST, axum::Json(answer)).into_response()
        }
        jsonrpc::Checked::Ignore => json_rpc_refusal(
            StatusCode::BAD_REQUEST,
            Value::Null,
            jsonrpc::INVALID_REQUEST,
            "Invalid Request",
        ),
    }
}

/// A body of at most `limit` bytes.
async fn read_body(body: axum::body::Body, limit: usize) -> Result<bytes::Bytes, StatusCode> {
    use futures::StreamExt;
    let mut stream = body.into_data_stream();
    let mut collected = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| StatusCode::BAD_REQUEST)?;
        if collected.len() + chunk.len() > limit {
            return Err(StatusCode::PAYLOAD_TOO_LARGE);
        }
        collected.extend_from_slice(&chunk);
    }
    Ok(collected.into())
}

/// An HTTP refusal whose body is a JSON-RPC error.
fn json_rpc_refusal(status: StatusCode, id: Value, code: i64, message: &str) -> Response {
    (status, axum::Json(jsonrpc::error(id, code, message))).into_response()
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
    fn bearer_scheme_is_case_insensitive() {
        for ok in [
            "Bearer t",
            "bearer t",
            "BEARER t",
            "Bearer   t",
            "  BeArEr\tt ",
        ] {
            assert_eq!(bearer_token(ok), Some("t"), "{ok:?}");
        }
        for bad in ["Bearert", "Basic t", "Bearer ", "Bearer", ""] {
            assert_eq!(bearer_token(bad), None, "{bad:?}");
        }
        assert_eq!(bearer_token("Bearer T"), Some("T"));
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
