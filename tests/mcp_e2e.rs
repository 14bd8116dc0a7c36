//! End to end through a real MCP client (rmcp's) against `l402-mcp serve` processes: the buy/sell
//! loop between two agents over stdio and streamable HTTP, bad input to every tool, and a sweep
//! of every output and log line for secrets.
// A failed step in a test or benchmark is a failed run: unwrapping is fine here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Stdio;

use common::agents::{BIN, JOKE_SATS, balance_sats, call, failed, ok, seller_api, spawn_agent};
use common::{foreign_invoice, free_port, http_when_up};
use l402_mcp::bolt11::Network;
use rmcp::ServiceExt;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buy_and_sell_between_two_agents_over_stdio() {
    let dir = tempfile::tempdir().unwrap();
    let seller = spawn_agent(dir.path(), "seller", &[], Stdio::null()).await;
    let buyer = spawn_agent(dir.path(), "buyer", &[], Stdio::null()).await;
    let addr = seller_api(seller.clone()).await;

    let tools = buyer.list_all_tools().await.unwrap();
    let mut names: Vec<_> = tools.iter().map(|t| t.name.to_string()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "approve_payment",
            "call_paid_tool",
            "close_sessions",
            "create_invoice",
            "create_l402_challenge",
            "create_payment_challenge",
            "decode_invoice",
            "discover",
            "fetch_paid",
            "list_payments",
            "pay_invoice",
            "verify_l402_payment",
            "wallet_balance"
        ]
    );
    assert!(
        tools
            .iter()
            .all(|t| t.output_schema.is_some() && t.annotations.is_some())
    );
    // No non-standard integer formats (clients warn about each).
    for t in &tools {
        let schemas = format!("{:?}{:?}", t.input_schema, t.output_schema);
        assert!(
            !schemas.contains("uint64") && !schemas.contains("int64"),
            "{}",
            t.name
        );
    }

    let (b0, s0) = (balance_sats(&buyer).await, balance_sats(&seller).await);
    let url = format!("http://{addr}/joke");
    let first = ok(&call(
        &buyer,
        "fetch_paid",
        json!({ "url": url, "max_price_sats": 50 }),
    )
    .await);
    assert_eq!(first["status"], 200, "{first}");
    assert_eq!(first["body"], r#"{"joke":"knock knock"}"#);
    assert_eq!(
        (
            first["receipt"]["paid"].as_bool(),
            first["receipt"]["amount_sats"].as_u64()
        ),
        (Some(true), Some(JOKE_SATS))
    );
    assert_eq!(first["receipt"]["scheme"], "L402");

    let second = ok(&call(&buyer, "fetch_paid", json!({ "url": url })).await);
    assert_eq!(second["status"], 200);
    assert_eq!(
        (
            second["receipt"]["paid"].as_bool(),
            second["receipt"]["token_reused"].as_bool()
        ),
        (Some(false), Some(true))
    );

    assert_eq!(balance_sats(&buyer).await, b0 - JOKE_SATS);
    assert_eq!(balance_sats(&seller).await, s0 + JOKE_SATS);
    let sold = ok(&call(&seller, "wallet_balance", json!({})).await);
    assert_eq!(sold["earned_24h_sats"], JOKE_SATS);
    let bought = ok(&call(&buyer, "list_payments", json!({ "direction": "out" })).await);
    let payments = bought["payments"].as_array().unwrap();
    assert_eq!(payments.len(), 1);
    assert_eq!(
        (
            payments[0]["status"].as_str(),
            payments[0]["amount_sats"].as_u64()
        ),
        (Some("succeeded"), Some(JOKE_SATS))
    );

    // A token bound to GET under /v1/data: verify_l402_payment checks the request it is given.
    let c = ok(&call(
        &seller,
        "create_l402_challenge",
        json!({ "amount_sats": 2, "service": "data", "methods": ["get"], "path_prefix": "/v1/data" }),
    )
    .await);
    let paid = ok(&call(&buyer, "pay_invoice", json!({ "bolt11": c["invoice"] })).await);
    let verify = |method: &str, path: &str| {
        let args = json!({
            "macaroon": c["macaroon"], "preimage": paid["preimage"], "service": "data",
            "method": method, "path": path,
        });
        async { ok(&call(&seller, "verify_l402_payment", args).await) }
    };
    assert_eq!(verify("GET", "/v1/data/7").await["valid"], true);
    for (method, path) in [
        ("POST", "/v1/data/7"),
        ("GET", "/v1/database"),
        ("GET", "/v1/data/../x"),
    ] {
        let v = verify(method, path).await;
        assert_eq!(
            (v["valid"].as_bool(), v["reason_code"].as_str()),
            (Some(false), Some("wrong_route")),
            "{method} {path}: {v}"
        );
    }

    // Parallel calls for a fresh resource pay once.
    let dir2 = tempfile::tempdir().unwrap();
    let seller2 = spawn_agent(dir2.path(), "seller", &[], Stdio::null()).await;
    let buyer2 = spawn_agent(dir2.path(), "buyer", &[], Stdio::null()).await;
    let addr2 = seller_api(seller2.clone()).await;
    let url2 = format!("http://{addr2}/joke");
    let calls = (0..6).map(|_| call(&buyer2, "fetch_paid", json!({ "url": url2 })));
    let results = futures::future::join_all(calls).await;
    let paid = results
        .iter()
        .map(ok)
        .filter(|r| r["receipt"]["paid"] == json!(true))
        .count();
    assert_eq!(paid, 1);
    assert!(results.iter().map(ok).all(|r| r["status"] == 200));
    assert_eq!(balance_sats(&buyer2).await, 100_000 - JOKE_SATS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buy_over_streamable_http_with_a_bearer_token() {
    let dir = tempfile::tempdir().unwrap();
    let bearer = format!("Bearer {HTTP_TOKEN}");
    let server_log = dir.path().join("http-server.log");
    let seller = spawn_agent(dir.path(), "seller", &[], Stdio::null()).await;
    let addr = seller_api(seller.clone()).await;
    let port = free_port();
    let mut server = tokio::process::Command::new(BIN)
        .args([
            "serve",
            "--wallet",
            "buyer",
            "--http",
            &format!("127.0.0.1:{port}"),
            "--http-token",
            HTTP_TOKEN,
        ])
        .arg("--data-dir")
        .arg(dir.path())
        .stderr(Stdio::from(std::fs::File::create(&server_log).unwrap()))
        .env("RUST_LOG", "trace")
        .env("L402_MCP_FETCH_ALLOW_LOOPBACK", "1")
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/mcp");
    let http = http_when_up(&url).await;

    // No token, a wrong token, a foreign Host, a foreign Origin: refused.
    let init = json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}});
    let post = |auth: Option<&str>| {
        let mut r = http
            .post(&url)
            .header("Accept", "application/json, text/event-stream")
            .json(&init);
        if let Some(a) = auth {
            r = r.header("Authorization", a);
        }
        r
    };
    assert_eq!(post(None).send().await.unwrap().status(), 401);
    assert_eq!(
        post(Some("Bearer nope")).send().await.unwrap().status(),
        401
    );
    assert_eq!(
        post(Some(&bearer))
            .header("Host", "evil.example")
            .send()
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(
        post(Some(&bearer))
            .header("Origin", "https://evil.example")
            .send()
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(post(Some(&bearer)).send().await.unwrap().status(), 200);
    // The legacy SSE endpoint is behind the same token.
    assert_eq!(
        http.get(format!("http://127.0.0.1:{port}/sse"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );

    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(url.as_str()).auth_header(HTTP_TOKEN),
    );
    let buyer = ().serve(transport).await.expect("MCP over HTTP");
    let r = ok(&call(
        &buyer,
        "fetch_paid",
        json!({ "url": format!("http://{addr}/joke") }),
    )
    .await);
    assert_eq!(
        (r["status"].as_u64(), r["receipt"]["paid"].as_bool()),
        (Some(200), Some(true))
    );
    assert_eq!(balance_sats(&buyer).await, 100_000 - JOKE_SATS);
    let _ = buyer.cancel().await;
    let _ = server.kill().await;
    // The bearer token is in no tool result and in no line of the server's trace log, nor is
    // the preimage the buyer paid for (over HTTP too).
    let log = std::fs::read_to_string(&server_log).unwrap();
    assert!(log.len() > 1000, "trace logs say nothing: {log}");
    for text in [&log, &r.to_string()] {
        assert!(!text.contains(HTTP_TOKEN), "the HTTP bearer token leaked");
    }
    let db = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}",
        dir.path().join("ledger.sqlite").display()
    ))
    .await
    .unwrap();
    let preimages: Vec<String> = sqlx::query_scalar(
        "SELECT preimage FROM payments WHERE wallet = 'buyer' AND preimage IS NOT NULL",
    )
    .fetch_all(&db)
    .await
    .unwrap();
    assert_eq!(preimages.len(), 1);
    assert!(
        !log.contains(&preimages[0]),
        "the paid preimage is in the trace log"
    );
}

const HTTP_TOKEN: &str = "t0ken-5ecret-9f3a";

#[tokio::test]
async fn public_address_without_token_is_refused() {
    let out = tokio::process::Command::new(BIN)
        .args(["serve", "--http", "0.0.0.0:0"])
        .arg("--data-dir")
        .arg(tempfile::tempdir().unwrap().path())
        .env_remove("L402_MCP_HTTP_TOKEN")
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("without a bearer token"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_to_every_tool_spends_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let seller = spawn_agent(dir.path(), "seller", &[], Stdio::null()).await;
    // A buyer whose daily budget allows one joke and no more.
    let buyer = spawn_agent(
        dir.path(),
        "buyer",
        &[("L402_MCP_DAILY_SATS", "40")],
        Stdio::null(),
    )
    .await;
    let addr = seller_api(seller.clone()).await;
    let before = balance_sats(&buyer).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();

    let expect = async |tool: &'static str, args: serde_json::Value, code: &str| {
        let msg = failed(&call(&buyer, tool, args).await);
        assert!(msg.starts_with(code), "{tool}: expected {code}, got {msg}");
    };
    expect(
        "fetch_paid",
        json!({ "url": "not a url" }),
        "invalid_request",
    )
    .await;
    expect(
        "fetch_paid",
        json!({ "url": "file:///etc/passwd" }),
        "invalid_request",
    )
    .await;
    expect(
        "fetch_paid",
        json!({ "url": format!("http://{addr}/joke"), "timeout_secs": 0 }),
        "invalid_request",
    )
    .await;
    expect(
        "fetch_paid",
        json!({ "url": format!("http://{addr}/joke"), "max_price_sats": 20 }),
        "price_above_cap",
    )
    .await;
    expect(
        "fetch_paid",
        json!({ "url": format!("http://{addr}/x402") }),
        "not_l402",
    )
    .await;
    expect(
        "fetch_paid",
        json!({ "url": "http://127.0.0.1:1/unreachable" }),
        "http_error",
    )
    .await;
    expect(
        "decode_invoice",
        json!({ "bolt11": "lnbc1garbage" }),
        "invalid_invoice",
    )
    .await;
    expect(
        "pay_invoice",
        json!({ "bolt11": "garbage" }),
        "invalid_invoice",
    )
    .await;
    expect(
        "pay_invoice",
        json!({ "bolt11": foreign_invoice(Network::Regtest, None, now, 600) }),
        "amountless_invoice",
    )
    .await;
    expect(
        "pay_invoice",
        json!({ "bolt11": foreign_invoice(Network::Regtest, Some(1_000), now - 7200, 600) }),
        "expired_invoice",
    )
    .await;
    expect(
        "pay_invoice",
        json!({ "bolt11": foreign_invoice(Network::Mainnet, Some(1_000), now, 600) }),
        "wrong_network",
    )
    .await;
    expect(
        "pay_invoice",
        json!({ "bolt11": foreign_invoice(Network::Regtest, Some(1_000), now, 600) }),
        "payment_failed",
    )
    .await;
    expect(
        "create_invoice",
        json!({ "amount_sats": 0 }),
        "invalid_request",
    )
    .await;
    expect(
        "create_l402_challenge",
        json!({ "amount_sats": 5, "service": "a:b" }),
        "invalid_request",
    )
    .await;
    expect(
        "create_l402_challenge",
        json!({ "amount_sats": 5, "capabilities": ["has space"] }),
        "invalid_request",
    )
    .await;
    for bad in [
        json!({ "amount_sats": 5, "methods": ["GET,POST"] }),
        json!({ "amount_sats": 5, "path_prefix": "v1" }),
        json!({ "amount_sats": 5, "path_prefix": "/v1/../admin" }),
    ] {
        expect("create_l402_challenge", bad, "invalid_request").await;
    }
    expect(
        "list_payments",
        json!({ "direction": "sideways" }),
        "invalid_request",
    )
    .await;
    expect("verify_l402_payment", json!({}), "invalid_request").await;
    // A bad credential is an answer, not an error.
    let v = ok(&call(
        &buyer,
        "verify_l402_payment",
        json!({ "authorization": "L402 garbage" }),
    )
    .await);
    assert_eq!(
        (v["valid"].as_bool(), v["reason_code"].as_str()),
        (Some(false), Some("malformed"))
    );
    // Arguments that do not match the schema are tool errors the model can correct (SEP-1303);
    // an unknown tool is a protocol error.
    assert!(
        failed(&call(&buyer, "decode_invoice", json!({})).await).contains("missing field `bolt11`")
    );
    assert!(
        failed(&call(&buyer, "fetch_paid", json!({ "url": 5 })).await)
            .contains("expected a string")
    );
    assert!(
        buyer
            .call_tool(rmcp::model::CallToolRequestParams::new("no_such_tool"))
            .await
            .is_err()
    );
    assert_eq!(balance_sats(&buyer).await, before, "bad input spent money");

    // The budget: one joke fits (21 + 10 max fee <= 40), a second, new resource does not.
    ok(&call(
        &buyer,
        "fetch_paid",
        json!({ "url": format!("http://{addr}/joke") }),
    )
    .await);
    let other_seller = spawn_agent(dir.path(), "seller2", &[], Stdio::null()).await;
    let other = seller_api(other_seller).await;
    expect(
        "fetch_paid",
        json!({ "url": format!("http://{other}/joke") }),
        "budget_exceeded",
    )
    .await;
    assert_eq!(balance_sats(&buyer).await, before - JOKE_SATS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_a_tool_result_or_a_log() {
    let dir = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let log = |name: &str| std::fs::File::create(logs.path().join(name)).unwrap();
    let verbose = [("RUST_LOG", "trace")];
    let seller = spawn_agent(
        dir.path(),
        "seller",
        &verbose,
        Stdio::from(log("seller.log")),
    )
    .await;
    let buyer = spawn_agent(dir.path(), "buyer", &verbose, Stdio::from(log("buyer.log"))).await;
    let addr = seller_api(seller.clone()).await;

    let mut outputs = Vec::new();
    let mut record =
        |r: rmcp::model::CallToolResult| outputs.push(serde_json::to_string(&r).unwrap());
    record(
        call(
            &buyer,
            "fetch_paid",
            json!({ "url": format!("http://{addr}/joke") }),
        )
        .await,
    );
    record(
        call(
            &buyer,
            "fetch_paid",
            json!({ "url": format!("http://{addr}/joke") }),
        )
        .await,
    );
    let unpaid = call(
        &seller,
        "create_l402_challenge",
        json!({ "amount_sats": 7, "valid_for_secs": 60 }),
    )
    .await;
    let unpaid_hash = ok(&unpaid)["payment_hash"].as_str().unwrap().to_owned();
    record(unpaid);
    record(call(&seller, "create_invoice", json!({ "amount_sats": 3 })).await);
    for tool in ["wallet_balance", "list_payments"] {
        record(call(&buyer, tool, json!({})).await);
        record(call(&seller, tool, json!({})).await);
    }
    // A token sold through the tools: minted, paid with pay_invoice (whose result holds the
    // preimage), verified both ways. The results must hold these; the logs must not.
    let sold = ok(&call(
        &seller,
        "create_l402_challenge",
        json!({ "amount_sats": 4 }),
    )
    .await);
    let paid = ok(&call(&buyer, "pay_invoice", json!({ "bolt11": sold["invoice"] })).await);
    let (macaroon, preimage) = (
        sold["macaroon"].as_str().unwrap().to_owned(),
        paid["preimage"].as_str().unwrap().to_owned(),
    );
    let credential = format!("{macaroon}:{preimage}");
    let v = ok(&call(
        &seller,
        "verify_l402_payment",
        json!({ "authorization": format!("L402 {credential}") }),
    )
    .await);
    assert_eq!(v["valid"], true);
    let v = ok(&call(
        &seller,
        "verify_l402_payment",
        json!({ "macaroon": macaroon, "preimage": preimage }),
    )
    .await);
    assert_eq!(v["valid"], true);
    drop(buyer);
    drop(seller);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;

    // The secrets: node keys, every root key, the preimages of invoices not paid.
    let mut secrets: Vec<String> = Vec::new();
    let db = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}",
        dir.path().join("ledger.sqlite").display()
    ))
    .await
    .unwrap();
    let node_keys: Vec<String> = sqlx::query_scalar("SELECT node_key FROM embedded_wallets")
        .fetch_all(&db)
        .await
        .unwrap();
    assert_eq!(node_keys.len(), 2, "both wallets' node keys");
    secrets.extend(node_keys);
    let root_keys: Vec<Vec<u8>> = sqlx::query_scalar("SELECT root_key FROM root_keys")
        .fetch_all(&db)
        .await
        .unwrap();
    assert!(root_keys.len() >= 2);
    for k in root_keys {
        secrets.push(hex::encode(&k));
        secrets.push(l402_mcp::l402::b64::encode(&k));
    }
    let unpaid_preimages: Vec<String> =
        sqlx::query_scalar("SELECT preimage FROM embedded_invoices WHERE paid_by IS NULL")
            .fetch_all(&db)
            .await
            .unwrap();
    assert!(unpaid_preimages.len() >= 2);
    let stored_for_hash: String =
        sqlx::query_scalar("SELECT preimage FROM embedded_invoices WHERE payment_hash = ?")
            .bind(&unpaid_hash)
            .fetch_one(&db)
            .await
            .unwrap();
    assert!(unpaid_preimages.contains(&stored_for_hash));
    secrets.extend(unpaid_preimages);

    // Secrets a result may carry but a log never: every preimage paid (pay_invoice returns
    // it; fetch_paid presents it), the macaroons sold and the credentials presented.
    let paid_preimages: Vec<String> =
        sqlx::query_scalar("SELECT preimage FROM payments WHERE preimage IS NOT NULL")
            .fetch_all(&db)
            .await
            .unwrap();
    assert!(paid_preimages.len() >= 2, "{paid_preimages:?}");
    assert!(paid_preimages.contains(&preimage));
    let mut log_secrets = paid_preimages;
    log_secrets.extend([macaroon, credential]);

    let mut logs_text = Vec::new();
    for name in ["seller.log", "buyer.log"] {
        let text = std::fs::read_to_string(logs.path().join(name)).unwrap();
        assert!(
            text.len() > 1000,
            "trace logs should say something ({name}: {} bytes)",
            text.len()
        );
        logs_text.push((name, text));
    }
    let haystacks: Vec<&str> = outputs
        .iter()
        .map(String::as_str)
        .chain(logs_text.iter().map(|(_, t)| t.as_str()))
        .collect();
    for secret in &secrets {
        for h in &haystacks {
            assert!(
                !h.contains(secret.as_str()),
                "a secret leaked: {}...",
                &secret[..8]
            );
        }
    }
    for secret in &log_secrets {
        for (name, text) in &logs_text {
            assert!(
                !text.contains(secret.as_str()),
                "{name} holds a secret at trace level: {}...",
                &secret[..8]
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discover_reads_a_gateways_catalogue_without_paying() {
    use l402_mcp::gateway::{self, Paywall, Price, Route};
    let dir = tempfile::tempdir().unwrap();
    let seller = l402_mcp::app::App::open_embedded(dir.path(), "seller", l402_mcp::clock::system())
        .await
        .unwrap();
    let mut route = Route::new("/weather", Price::Fixed { msat: 21_000 });
    route.description = Some("forecasts".into());
    let about = gateway::discovery::About {
        name: "Weather".into(),
        description: "forecasts for agents".into(),
        base_url: None,
        network: "regtest".into(),
    };
    let app = gateway::router(
        Paywall::new(seller.seller.clone(), vec![route]),
        "http://127.0.0.1:9",
        about,
        &[],
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
    });

    let buyer = spawn_agent(dir.path(), "buyer", &[], Stdio::null()).await;
    let before = balance_sats(&buyer).await;
    let d = ok(&call(
        &buyer,
        "discover",
        json!({ "url": format!("http://{addr}/weather?city=x") }),
    )
    .await);
    assert_eq!(d["origin"], format!("http://{addr}"));
    assert_eq!(d["l402"]["routes"][0]["path"], "/weather");
    assert_eq!(d["l402"]["routes"][0]["price"]["sats"], 21);
    assert!(d["llms_txt"].as_str().unwrap().contains("21 sats"));
    // A priced path is never paid by discover.
    let paid = ok(&call(
        &buyer,
        "discover",
        json!({ "url": format!("http://{addr}/weather") }),
    )
    .await);
    assert_eq!(paid["origin"], d["origin"]);
    assert_eq!(balance_sats(&buyer).await, before);
    assert!(
        failed(&call(&buyer, "discover", json!({ "url": "ftp://x" })).await)
            .starts_with("invalid_request")
    );
}

/// The stateless 2026-07-28 lifecycle (`server/discover`, no `initialize`) over stdio: the
/// server answers discovery with its tools capability, serves tool calls, and accepts
/// `logging/setLevel`; the classic handshake is covered by the other tests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(deprecated)] // logging/setLevel is deprecated (SEP-2577), but clients still send it
async fn the_stateless_discover_lifecycle_and_logging_set_level() {
    use rmcp::model::{LoggingLevel, ProtocolVersion, SetLevelRequestParams};
    use rmcp::transport::{ConfigureCommandExt, TokioChildProcess};
    use rmcp::{ClientLifecycleMode, ClientServiceExt};

    let dir = tempfile::tempdir().unwrap();
    let (transport, _) =
        TokioChildProcess::builder(tokio::process::Command::new(BIN).configure(|c| {
            c.arg("serve").arg("--data-dir").arg(dir.path());
        }))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let client = ()
        .serve_with_lifecycle(
            transport,
            ClientLifecycleMode::Discover {
                preferred_versions: vec![ProtocolVersion::V_2026_07_28],
            },
        )
        .await
        .expect("server/discover");
    let info = client.peer_info().expect("discovered server info");
    assert!(info.capabilities.tools.is_some(), "{info:?}");
    let tools = client.list_all_tools().await.unwrap();
    assert!(tools.iter().any(|t| t.name == "fetch_paid"), "{tools:?}");
    let inv = foreign_invoice(Network::Regtest, Some(5_000), common::T0, 3600);
    let d = ok(&call(&client, "decode_invoice", json!({ "bolt11": inv })).await);
    assert_eq!(d["amount_sats"].as_u64(), Some(5));
    client
        .set_level(SetLevelRequestParams::new(LoggingLevel::Warning))
        .await
        .expect("logging/setLevel");
    let b = ok(&call(&client, "wallet_balance", json!({})).await);
    assert_eq!(b["demo_funds"], true);
    let _ = client.cancel().await;
}
