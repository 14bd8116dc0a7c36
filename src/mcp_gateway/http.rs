//! The MCP gateway over streamable HTTP at `/mcp`, and L402 on that transport: a `tools/call`
//! of a priced tool that carries `Authorization: L402 <macaroon>:<preimage>` (a token sold for
//! that tool) is admitted here and marked paid for the handler; with `http_402`, an unpaid call
//! is answered HTTP 402 with both schemes' challenges (`LSAT`, `L402`, `Payment`) and the
//! JSON-RPC `-32042` error as the body, for clients that pay 402s (e.g. `fetch_paid`).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{PaidOverHttp, PaidTools, tool_binding, tool_service};
use crate::l402::mpp::{MCP_CREDENTIAL_META, MCP_PAYMENT_REQUIRED};
use crate::mcp::http::Reach;
use crate::mint::{Access, ChallengeRequest};
use crate::mpp::ChargeTerms;

/// The largest POST body read (rmcp's default).
const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

#[derive(Debug, Clone)]
struct HttpPaywall {
    tools: PaidTools,
    http_402: bool,
}

/// `/mcp`, for `tools`. Requests must name a loopback host or one of `allowed_hosts` in `Host`
/// (DNS-rebinding protection), and a browser's must come from a loopback page or one of
/// `allowed_origins`: checked before anything is paid, charged or forwarded.
pub fn router(
    tools: PaidTools,
    http_402: bool,
    allowed_hosts: &[String],
    allowed_origins: &[String],
    shutdown: CancellationToken,
) -> Router {
    let reach = Arc::new(Reach::loopback_and(allowed_hosts, allowed_origins));
    let config = reach.configure(
        StreamableHttpServerConfig::default()
            .with_max_request_body_bytes(MAX_BODY_BYTES)
            .with_cancellation_token(shutdown),
    );
    let for_mcp = tools.clone();
    let service: StreamableHttpService<PaidTools, LocalSessionManager> = StreamableHttpService::new(
        move || Ok(for_mcp.clone()),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    let paywall = Arc::new(HttpPaywall { tools, http_402 });
    Router::new()
        .nest_service("/mcp", service)
        .layer(middleware::from_fn_with_state(paywall, l402_layer))
        .layer(middleware::from_fn_with_state(reach, reach_layer))
}

/// The Host and Origin checks, outside the paywall: a refused request admits no credential and
/// mints no challenge.
async fn reach_layer(State(reach): State<Arc<Reach>>, request: Request, next: Next) -> Response {
    match reach.refusal(request.headers()) {
        Some(refused) => refused,
        None => next.run(request).await,
    }
}

/// Serve until `shutdown`.
pub async fn serve(
    app: Router,
    addr: SocketAddr,
    shutdown: CancellationToken,
) -> Result<(), std::io::Error> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    info!(addr = %listener.local_addr()?, "MCP gateway (paid tools) at /mcp");
    crate::listen::serve_router(listener, app, shutdown).await;
    Ok(())
}

/// The priced tool a JSON-RPC `tools/call` body calls, and whether it carries a `Payment`
/// credential in `_meta`.
fn priced_call(tools: &PaidTools, body: &[u8]) -> Option<(String, u64, bool)> {
    let v: Value = serde_json::from_slice(body).ok()?;
    if v.get("method")?.as_str()? != "tools/call" {
        return None;
    }
    let name = v.get("params")?.get("name")?.as_str()?.to_owned();
    let price = tools.price(&name)?;
    let has_credential = v
        .get("params")
        .and_then(|p| p.get("_meta"))
        .and_then(|m| m.get(MCP_CREDENTIAL_META))
        .is_some();
    Some((name, price, has_credential))
}

async fn l402_layer(
    State(paywall): State<Arc<HttpPaywall>>,
    request: Request,
    next: Next,
) -> Response {
    if request.method() != axum::http::Method::POST {
        return next.run(request).await;
    }
    let (mut parts, body) = request.into_parts();
    let bytes: Bytes = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(b) => b,
        Err(_) => return (StatusCode::PAYLOAD_TOO_LARGE, "body too large").into_response(),
    };
    if let Some((tool, price, has_credential)) = priced_call(&paywall.tools, &bytes) {
        let authorization = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .filter(|a| {
                a.split_whitespace()
                    .next()
                    .and_then(crate::l402::Scheme::from_token)
                    .is_some()
            })
            .map(str::to_owned);
        if let Some(auth) = authorization {
            let service = tool_service(&tool);
            let access = Access {
                service: Some(&service),
                price_msat: Some(price),
                ..Access::default()
            };
            match paywall.tools.seller().admit(&auth, access).await {
                Ok(v) if v.valid => {
                    parts.extensions.insert(PaidOverHttp(tool));
                }
                Ok(v) => {
                    info!(
                        tool,
                        reason = v.reason_code.unwrap_or("invalid"),
                        "L402 credential refused on the MCP transport"
                    );
                    if paywall.http_402 {
                        return challenge_402(&paywall, &bytes, &tool, price).await;
                    }
                }
                Err(e) => warn!(error = %e, "L402 credential check failed"),
            }
        } else if paywall.http_402 && !has_credential {
            return challenge_402(&paywall, &bytes, &tool, price).await;
        }
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// HTTP 402 with `LSAT`, `L402` and `Payment` challenges for `tool`, and the JSON-RPC error
/// `-32042` (same Payment challenge) as the body.
async fn challenge_402(paywall: &HttpPaywall, body: &[u8], tool: &str, price: u64) -> Response {
    let id = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("id").cloned())
        .unwrap_or(Value::Null);
    let l402 = paywall
        .tools
        .seller()
        .create_challenge(&ChallengeRequest {
            amount_msat: price,
            description: Some(format!("MCP tool {tool}")),
            service: Some(tool_service(tool)),
            ..ChallengeRequest::default()
        })
        .await;
    let payment = paywall
        .tools
        .mpp()
        .charge_challenge(&ChargeTerms {
            amount_msat: price,
            description: Some(format!("MCP tool {tool}")),
            expiry_secs: None,
            opaque: Some(tool_binding(tool)),
        })
        .await;
    let (Ok(l402), Ok(payment)) = (l402, payment) else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "cannot create an invoice right now; try again",
        )
            .into_response();
    };
    let challenge = payment.challenge.to_json().unwrap_or(Value::Null);
    let error = json!({
        "jsonrpc": "2.0",
        "id": id,
        "error": {
            "code": MCP_PAYMENT_REQUIRED,
            "message": "Payment Required",
            "data": { "httpStatus": 402, "challenges": [challenge] },
        },
    });
    let mut resp = (StatusCode::PAYMENT_REQUIRED, error.to_string()).into_response();
    let h = resp.headers_mut();
    for line in l402
        .www_authenticate
        .iter()
        .chain(std::iter::once(&payment.www_authenticate))
    {
        if let Ok(v) = HeaderValue::from_str(line) {
            h.append(header::WWW_AUTHENTICATE, v);
        }
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}
