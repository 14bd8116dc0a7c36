//! Paid MCP tools (the `Payment` scheme's MCP transport), end to end with real processes: a
//! seller agent (`l402-mcp serve`, its tools) behind `l402-mcp mcp-gateway` with a price on one
//! tool, and a buyer agent (`l402-mcp serve`) calling it with `call_paid_tool`. Then the
//! gateway's answers as a raw client sees them: `-32042` with challenges, `-32043` for a
//! tampered or replayed credential, `-32602` for a malformed one, a receipt in `_meta`, and L402
//! on the HTTP transport.
// A failed step in a test is a failed test: unwrapping is fine here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};

use common::agents::{BIN, call, failed, ok, spawn_agent};
use l402_mcp::app::App;
use l402_mcp::l402::mpp::lightning::{ChargeRequest, Payload};
use l402_mcp::l402::mpp::{
    MCP_CREDENTIAL_META, MCP_RECEIPT_META, PaymentChallenge, challenge, credential,
};
use rmcp::model::{CallToolRequestParams, ErrorData, MetaObject, RequestMetaObject};
use rmcp::service::RunningService;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{RoleClient, ServiceError, ServiceExt};
use serde_json::{Map, Value, json};

const PRICE_SATS: u64 = 5;

/// A gateway process, killed when dropped: also when its test fails half way.
struct Gateway(Child);

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `mcp-gateway` as wallet "seller" of `dir`, pricing the `tools` agent's `decode_invoice`,
/// once it takes MCP connections; and its `/mcp` URL.
async fn mcp_gateway(dir: &Path, extra: &[&str]) -> (Gateway, String) {
    let port = common::free_port();
    let gateway = spawn_gateway(dir, port, extra);
    let url = format!("http://127.0.0.1:{port}/mcp");
    when_up(&url).await;
    (gateway, url)
}

fn spawn_gateway(dir: &Path, port: u16, extra: &[&str]) -> Gateway {
    let upstream = format!("{BIN} serve --data-dir {} --wallet tools", dir.display());
    Command::new(BIN)
        .args([
            "--data-dir",
            dir.to_str().unwrap(),
            "--wallet",
            "seller",
            "mcp-gateway",
        ])
        .args(["--upstream-cmd", &upstream])
        .args(["--price", &format!("decode_invoice={PRICE_SATS}")])
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--realm",
            "tools.test",
        ])
        .args(extra)
        .env_remove("L402_MCP_CONFIG")
        .env_remove("L402_MCP_BACKEND")
        .env("XDG_CONFIG_HOME", dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(Gateway)
        .unwrap()
}

async fn client(url: &str, authorization: Option<&str>) -> RunningService<RoleClient, ()> {
    l402_mcp::init_tls();
    let mut config = StreamableHttpClientTransportConfig::with_uri(url);
    if let Some(a) = authorization {
        config = config.custom_headers(
            [(
                axum::http::header::AUTHORIZATION,
                axum::http::HeaderValue::from_str(a).unwrap(),
            )]
            .into(),
        );
    }
    let transport = StreamableHttpClientTransport::with_client(reqwest::Client::new(), config);
    ().serve(transport).await.unwrap()
}

/// Wait until the gateway takes MCP connections.
async fn when_up(url: &str) {
    l402_mcp::init_tls();
    for _ in 0..200 {
        let l = reqwest::Client::new()
            .post(url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body("{}")
            .send()
            .await;
        if l.is_ok() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{url} did not come up");
}

fn decode_call(bolt11: &str, meta: Option<Value>) -> CallToolRequestParams {
    let mut p = CallToolRequestParams::new("decode_invoice")
        .with_arguments(json!({ "bolt11": bolt11 }).as_object().cloned().unwrap());
    if let Some(m) = meta {
        let mut map = Map::new();
        map.insert(MCP_CREDENTIAL_META.into(), m);
        p.meta = Some(RequestMetaObject(MetaObject(map)));
    }
    p
}

fn mcp_error(r: Result<rmcp::model::CallToolResponse, ServiceError>) -> ErrorData {
    match r {
        Err(ServiceError::McpError(e)) => e,
        other => panic!("expected a JSON-RPC error, got {other:?}"),
    }
}

fn the_challenge(e: &ErrorData) -> PaymentChallenge {
    let data = e.data.as_ref().expect("data");
    assert_eq!(data["httpStatus"], 402);
    PaymentChallenge::from_json(&data["challenges"][0]).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_buyer_agent_pays_a_seller_agents_tool_through_mcp_gateway() {
    let dir = tempfile::tempdir().unwrap();
    let seller = App::open_embedded(dir.path(), "seller", l402_mcp::clock::system())
        .await
        .unwrap();
    let (_gateway, url) = mcp_gateway(dir.path(), &[]).await;
    let buyer = spawn_agent(dir.path(), "buyer", &[], Stdio::null()).await;
    let invoice = seller
        .seller
        .create_invoice(1_234_000, "something", 600)
        .await
        .unwrap()
        .0
        .bolt11;
    let seller0 = common::balance(&seller).await;

    // Over the cap: refused before anything is paid.
    let r = call(
        &buyer,
        "call_paid_tool",
        json!({ "server_url": url, "tool": "decode_invoice", "arguments": { "bolt11": invoice }, "max_price_sats": 1 }),
    )
    .await;
    assert!(failed(&r).starts_with("price_above_cap"), "{}", failed(&r));

    // Within the cap: paid once, the tool's answer and the receipt come back.
    let r = ok(&call(
        &buyer,
        "call_paid_tool",
        json!({ "server_url": url, "tool": "decode_invoice", "arguments": { "bolt11": invoice }, "max_price_sats": 10 }),
    )
    .await);
    assert_eq!(
        (r["paid"].as_bool(), r["amount_sats"].as_u64()),
        (Some(true), Some(PRICE_SATS))
    );
    assert_eq!(r["result"]["structuredContent"]["amount_sats"], 1_234);
    let receipt = &r["payment_receipt"];
    assert_eq!(receipt["status"], "success");
    assert_eq!(receipt["reference"], r["payment_hash"]);
    assert_eq!(receipt["challengeId"], r["challenge_id"]);
    assert_eq!(common::balance(&seller).await, seller0 + PRICE_SATS * 1000);
    // A free tool of the upstream passes through, unpaid.
    let free = ok(&call(
        &buyer,
        "call_paid_tool",
        json!({ "server_url": url, "tool": "wallet_balance" }),
    )
    .await);
    assert_eq!(free["paid"], false);
    assert_eq!(free["result"]["structuredContent"]["wallet"], "tools");

    // As a raw client sees it.
    let raw = client(&url, None).await;
    let tools = raw.list_tools(None).await.unwrap();
    let priced = tools
        .tools
        .iter()
        .find(|t| t.name == "decode_invoice")
        .unwrap();
    assert!(
        priced
            .description
            .as_deref()
            .unwrap()
            .contains("paid: 5 sats")
    );
    let e = mcp_error(raw.call_tool_once(decode_call(&invoice, None)).await);
    assert_eq!(e.code.0, -32042);
    let c = the_challenge(&e);
    assert_eq!(
        (c.realm.as_str(), c.intent.as_str()),
        ("tools.test", "charge")
    );
    assert!(
        e.data.as_ref().unwrap()["challenges"][0]["request"].is_object(),
        "request as an object"
    );
    let request = ChargeRequest::parse(&c.request_json().unwrap()).unwrap();
    assert_eq!(request.amount_sats, PRICE_SATS);
    let pay = |bolt11: String| {
        let dir = dir.path().to_owned();
        async move {
            let me = App::open_embedded(&dir, "prober", l402_mcp::clock::system())
                .await
                .unwrap();
            me.payer
                .pay(&l402_mcp::pay::PayRequest {
                    invoice: &bolt11,
                    ..Default::default()
                })
                .await
                .unwrap()
                .preimage
        }
    };
    let preimage = pay(request.invoice.clone()).await;
    let good = credential::to_mcp_json(&c, &Payload::Charge { preimage }).unwrap();
    // Tampered echo: -32043 with a fresh challenge and the reason.
    let mut tampered = good.clone();
    tampered["challenge"]["expires"] = json!("2099-01-01T00:00:00Z");
    let e = mcp_error(
        raw.call_tool_once(decode_call(&invoice, Some(tampered)))
            .await,
    );
    assert_eq!(e.code.0, -32043);
    assert_eq!(
        e.data.as_ref().unwrap()["failure"]["reason"],
        "invalid_challenge"
    );
    assert_ne!(the_challenge(&e).id, c.id, "a fresh challenge");
    // Malformed: -32602.
    let e = mcp_error(
        raw.call_tool_once(decode_call(&invoice, Some(json!({ "challenge": 1 }))))
            .await,
    );
    assert_eq!(e.code.0, -32602);
    // A challenge for this tool does not buy another priced... (only one is priced here): the
    // binding is checked by changing the echoed opaque.
    let mut other_tool = good.clone();
    other_tool["challenge"]["opaque"] = json!(challenge::encode_opaque(
        &l402_mcp::mcp_gateway::tool_binding("other")
    ));
    let e = mcp_error(
        raw.call_tool_once(decode_call(&invoice, Some(other_tool)))
            .await,
    );
    assert_eq!(e.code.0, -32043);
    // The good credential: the tool's answer with the receipt in _meta.
    let done = raw
        .call_tool_once(decode_call(&invoice, Some(good.clone())))
        .await
        .unwrap();
    let rmcp::model::CallToolResponse::Complete(done) = done else {
        panic!("{done:?}")
    };
    let rc = &done.meta.as_ref().unwrap().0[MCP_RECEIPT_META];
    assert_eq!(rc["challengeId"], c.id.as_str());
    assert_eq!(
        rc["reference"],
        request.payment_hash.unwrap().to_hex().as_str()
    );
    // Replayed: refused.
    let e = mcp_error(raw.call_tool_once(decode_call(&invoice, Some(good))).await);
    assert_eq!(
        (
            e.code.0,
            e.data.as_ref().unwrap()["failure"]["reason"].as_str()
        ),
        (-32043, Some("already_used"))
    );
    let _ = raw.cancel().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l402_on_the_http_transport() {
    let dir = tempfile::tempdir().unwrap();
    let (_gateway, url) = mcp_gateway(dir.path(), &["--http-402"]).await;
    let seller = App::open_embedded(dir.path(), "seller", l402_mcp::clock::system())
        .await
        .unwrap();
    let invoice = seller
        .seller
        .create_invoice(2_000, "x", 600)
        .await
        .unwrap()
        .0
        .bolt11;
    // An unpaid call: HTTP 402 with LSAT, L402 and Payment challenges, the -32042 error as body.
    let body = json!({ "jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": { "name": "decode_invoice", "arguments": { "bolt11": invoice } } });
    let resp = reqwest::Client::new()
        .post(&url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 402);
    let lines: Vec<String> = resp
        .headers()
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let schemes: Vec<&str> = lines.iter().map(|l| l.split(' ').next().unwrap()).collect();
    assert_eq!(schemes, ["LSAT", "L402", "Payment"]);
    let err: Value = resp.json().await.unwrap();
    assert_eq!(
        (err["id"].as_u64(), err["error"]["code"].as_i64()),
        (Some(3), Some(-32042))
    );
    // Pay the L402 invoice; an MCP client presenting the token on the HTTP requests is served.
    let l402 = l402_mcp::l402::challenge::parse_headers(lines.iter().map(String::as_str)).unwrap();
    let l402 = l402_mcp::l402::challenge::preferred(&l402).unwrap().clone();
    let buyer = App::open_embedded(dir.path(), "buyer", l402_mcp::clock::system())
        .await
        .unwrap();
    let receipt = buyer
        .payer
        .pay(&l402_mcp::pay::PayRequest {
            invoice: &l402.invoice,
            ..Default::default()
        })
        .await
        .unwrap();
    let auth = l402_mcp::l402::Credential::format(l402.scheme, &l402.macaroon, &receipt.preimage);
    let paid = client(&url, Some(&auth)).await;
    let r = paid.call_tool(decode_call(&invoice, None)).await.unwrap();
    assert_ne!(r.is_error, Some(true));
    assert_eq!(r.structured_content.unwrap()["amount_sats"], 2);
    let _ = paid.cancel().await;
    // The Payment offer of that 402 is the same tool's.
    let c = challenge::parse_headers(lines.iter().map(String::as_str))
        .challenges
        .remove(0);
    assert_eq!(
        challenge::decode_json(c.opaque.as_deref().unwrap()).unwrap()["tool"],
        "decode_invoice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_and_origin_are_checked_before_the_paywall() {
    let dir = tempfile::tempdir().unwrap();
    let (_gateway, url) = mcp_gateway(
        dir.path(),
        &[
            "--http-402",
            "--allowed-host",
            "tools.test",
            "--allowed-origin",
            "https://app.test",
        ],
    )
    .await;
    // An unpaid call of the priced tool: 402 where it may go on, 403 before the paywall (no
    // challenge minted) where it may not.
    let call = json!({ "jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": { "name": "decode_invoice", "arguments": { "bolt11": "lnbc1" } } });
    let post = |body: &Value, host: Option<&'static str>, origin: Option<&'static str>| {
        let mut req = reqwest::Client::new()
            .post(&url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .json(body);
        if let Some(h) = host {
            req = req.header("host", h);
        }
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        async move { req.send().await.unwrap().status().as_u16() }
    };
    let status = |host, origin| post(&call, host, origin);
    assert_eq!(status(None, None).await, 402, "loopback Host");
    assert_eq!(
        status(Some("tools.test"), None).await,
        402,
        "an allowed Host"
    );
    assert_eq!(
        status(Some("TOOLS.test:443"), None).await,
        402,
        "any case, any port"
    );
    assert_eq!(status(Some("evil.test"), None).await, 403, "a rebound name");
    assert_eq!(
        status(None, Some("https://app.test")).await,
        402,
        "an allowed page"
    );
    assert_eq!(
        status(None, Some("http://localhost:5173")).await,
        402,
        "a loopback page"
    );
    assert_eq!(
        status(None, Some("https://evil.test")).await,
        403,
        "another page"
    );
    assert_eq!(status(None, Some("null")).await, 403, "an opaque origin");
    // Past the paywall, rmcp's own checks let the same names through: a session opens.
    let init = json!({ "jsonrpc": "2.0", "id": 2, "method": "initialize", "params": { "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": { "name": "t", "version": "1" } } });
    assert_eq!(
        post(&init, Some("TOOLS.test:443"), Some("https://app.test")).await,
        200
    );
    assert_eq!(post(&init, Some("evil.test"), None).await, 403);
}
