//! Agents for end-to-end tests: `l402-mcp serve` processes driven through rmcp's client, and a
//! seller HTTP endpoint that mints and verifies through the seller agent's tools.
// A failed step in a test or benchmark is a failed run: unwrapping is fine here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::RunningService;
use rmcp::transport::{ConfigureCommandExt, TokioChildProcess};
use rmcp::{RoleClient, ServiceExt};
use serde_json::{Value, json};

pub type Agent = Arc<RunningService<RoleClient, ()>>;

pub const BIN: &str = env!("CARGO_BIN_EXE_l402-mcp");
pub const JOKE_SATS: u64 = 21;

/// `l402-mcp serve --wallet NAME` over stdio, with extra env, its stderr going to `stderr`.
pub async fn spawn_agent(dir: &Path, wallet: &str, env: &[(&str, &str)], stderr: Stdio) -> Agent {
    let (transport, _) =
        TokioChildProcess::builder(tokio::process::Command::new(BIN).configure(|c| {
            c.arg("serve")
                .arg("--data-dir")
                .arg(dir)
                .arg("--wallet")
                .arg(wallet)
                // Test sellers listen on loopback, which fetch_paid refuses unless allowed.
                .env("L402_MCP_FETCH_ALLOW_LOOPBACK", "1");
            for (k, v) in env {
                c.env(k, v);
            }
        }))
        .stderr(stderr)
        .spawn()
        .expect("spawn agent");
    Arc::new(().serve(transport).await.expect("MCP handshake"))
}

pub async fn call(
    agent: &RunningService<RoleClient, ()>,
    tool: &'static str,
    args: Value,
) -> CallToolResult {
    let params = CallToolRequestParams::new(tool)
        .with_arguments(args.as_object().cloned().unwrap_or_default());
    agent
        .call_tool(params)
        .await
        .expect("tool call (protocol level)")
}

pub fn text(r: &CallToolResult) -> String {
    r.content
        .iter()
        .filter_map(|c| c.as_text())
        .map(|t| t.text.clone())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The structured result of a successful call (panics on a tool error, showing it).
pub fn ok(r: &CallToolResult) -> Value {
    assert_ne!(r.is_error, Some(true), "tool error: {}", text(r));
    r.structured_content.clone().expect("structured content")
}

/// The text of a failed call (panics if it did not fail).
pub fn failed(r: &CallToolResult) -> String {
    assert_eq!(
        r.is_error,
        Some(true),
        "expected a tool error, got {:?}",
        r.structured_content
    );
    text(r)
}

pub async fn balance_sats(agent: &RunningService<RoleClient, ()>) -> u64 {
    ok(&call(agent, "wallet_balance", json!({})).await)["balance_sats"]
        .as_u64()
        .expect("balance")
}

/// An HTTP API selling `/joke` for `JOKE_SATS` through the seller agent; `/x402` answers an
/// x402-style 402; `/free` is free.
pub async fn seller_api(seller: Agent) -> SocketAddr {
    let app = Router::new()
        .route("/joke", get(joke))
        .route("/x402", get(x402))
        .route("/free", get(|| async { "free as in beer" }))
        .with_state(seller);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

async fn joke(State(seller): State<Agent>, headers: HeaderMap) -> Response {
    if let Some(auth) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let v = ok(&call(
            &seller,
            "verify_l402_payment",
            json!({ "authorization": auth, "service": "jokes" }),
        )
        .await);
        if v["valid"] == json!(true) {
            return (StatusCode::OK, axum::Json(json!({ "joke": "knock knock" }))).into_response();
        }
    }
    let c = ok(&call(
        &seller,
        "create_l402_challenge",
        json!({ "amount_sats": JOKE_SATS, "service": "jokes" }),
    )
    .await);
    let mut resp = (StatusCode::PAYMENT_REQUIRED, "payment required").into_response();
    for line in c["www_authenticate"].as_array().into_iter().flatten() {
        if let Some(v) = line.as_str().and_then(|s| HeaderValue::from_str(s).ok()) {
            resp.headers_mut().append(header::WWW_AUTHENTICATE, v);
        }
    }
    resp
}

async fn x402() -> Response {
    let body = json!({ "x402Version": 1, "accepts": [{ "scheme": "exact", "network": "base", "maxAmountRequired": "1000" }] });
    (StatusCode::PAYMENT_REQUIRED, axum::Json(body)).into_response()
}
