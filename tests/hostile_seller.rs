//! Hostile input against the seller, through its public surface: the `verify_l402_payment` tool
//! of `l402-mcp serve`, the `l402-mcp verify` and `l402-mcp gateway` commands, and the gateway
//! over real HTTP. Each test is a way a buyer could get more than was sold.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::routing::{any, post};
use common::agents::{Agent, BIN, call, ok, spawn_agent};
use l402_mcp::gateway::discovery::About;
use l402_mcp::gateway::{self, Paywall, Price, Route};
use l402_mcp::l402::{Credential, Macaroon, Scheme, b64};
use serde_json::{Value, json};

/// A seller and a buyer agent on one data dir.
async fn agents() -> (tempfile::TempDir, Agent, Agent) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("none.toml"), "").unwrap();
    let seller = spawn_agent(dir.path(), "seller", &[], Stdio::null()).await;
    let buyer = spawn_agent(dir.path(), "buyer", &[], Stdio::null()).await;
    (dir, seller, buyer)
}

/// Mint a token with `terms` through `create_l402_challenge` and pay it through `pay_invoice`:
/// (macaroon base64, preimage hex).
async fn buy(seller: &Agent, buyer: &Agent, terms: Value) -> (String, String) {
    let c = ok(&call(seller, "create_l402_challenge", terms).await);
    let paid = ok(&call(buyer, "pay_invoice", json!({ "bolt11": c["invoice"] })).await);
    (
        c["macaroon"].as_str().unwrap().to_owned(),
        paid["preimage"].as_str().unwrap().to_owned(),
    )
}

/// `verify_l402_payment` with the credential and `extra` arguments.
async fn verify(seller: &Agent, mac: &str, pre: &str, extra: Value) -> Value {
    let mut args = json!({ "macaroon": mac, "preimage": pre });
    for (k, v) in extra.as_object().unwrap() {
        args[k] = v.clone();
    }
    ok(&call(seller, "verify_l402_payment", args).await)
}

fn verdict(v: &Value) -> (Option<bool>, Option<&str>) {
    (v["valid"].as_bool(), v["reason_code"].as_str())
}

/// `l402-mcp --json --wallet WALLET ARGS...` on `dir` without a config file: (success, the first
/// JSON document printed).
fn cli(dir: &Path, wallet: &str, args: &[&str]) -> (bool, Value) {
    let out = std::process::Command::new(BIN)
        .args(["--json", "--data-dir"])
        .arg(dir)
        .args(["--wallet", wallet])
        .args(args)
        .env("L402_MCP_CONFIG", dir.join("none.toml"))
        .env_remove("L402_MCP_DATABASE_URL")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let first = serde_json::Deserializer::from_str(&stdout)
        .into_iter::<Value>()
        .next()
        .and_then(Result::ok)
        .unwrap_or_else(|| {
            panic!(
                "{args:?}: not JSON: {stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    (out.status.success(), first)
}

fn cli_verdict(v: &(bool, Value)) -> (bool, Option<&str>) {
    (v.0, v.1["reason_code"].as_str())
}

fn authorization(mac: &str, pre: &str) -> String {
    format!("L402 {mac}:{pre}")
}

/// The macaroon with one more caveat, as any holder can add (attenuation).
fn append_caveat(mac: &str, caveat: &str) -> String {
    let mut m = Macaroon::deserialize(&b64::decode(mac).unwrap()).unwrap();
    m.add_caveat(caveat.as_bytes());
    b64::encode(&m.serialize())
}

/// Item 5: a token sold for `read` is not accepted for `write` when the caller names no
/// service; the refusal records no sale and counts no use.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capability_is_enforced_when_no_service_is_named() {
    let (dir, seller, buyer) = agents().await;
    let (mac, pre) = buy(
        &seller,
        &buyer,
        json!({ "amount_sats": 3, "service": "data", "capabilities": ["read"], "max_uses": 2 }),
    )
    .await;
    let write = verify(&seller, &mac, &pre, json!({ "capability": "write" })).await;
    assert_eq!(
        verdict(&write),
        (Some(false), Some("missing_capability")),
        "{write}"
    );
    let auth = authorization(&mac, &pre);
    let cli_write = cli(
        dir.path(),
        "seller",
        &["verify", &auth, "--capability", "write"],
    );
    assert_eq!(
        cli_verdict(&cli_write),
        (false, Some("missing_capability")),
        "{cli_write:?}"
    );
    // Nothing was sold or used by the refusals.
    let (ok_, sales) = cli(dir.path(), "seller", &["sales"]);
    assert!(ok_, "{sales}");
    assert_eq!(sales["count"], 0, "{sales}");
    // The capability it was sold for works, without and with the service, for its two uses.
    let read = verify(&seller, &mac, &pre, json!({ "capability": "read" })).await;
    assert_eq!(verdict(&read), (Some(true), None), "{read}");
    let read = verify(
        &seller,
        &mac,
        &pre,
        json!({ "capability": "read", "service": "data" }),
    )
    .await;
    assert_eq!(verdict(&read), (Some(true), None), "{read}");
    let third = verify(&seller, &mac, &pre, json!({ "capability": "read" })).await;
    assert_eq!(verdict(&third), (Some(false), Some("used_up")), "{third}");
}

/// Item 6: a later `services` caveat may not change the tier a service was minted with; the
/// verdict reports the minted tier.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_tier_is_refused_and_the_minted_tier_is_reported() {
    let (dir, seller, buyer) = agents().await;
    let (mac, pre) = buy(
        &seller,
        &buyer,
        json!({ "amount_sats": 3, "service": "data", "tier": 2 }),
    )
    .await;
    let good = verify(&seller, &mac, &pre, json!({ "service": "data" })).await;
    assert_eq!(verdict(&good), (Some(true), None), "{good}");
    assert_eq!(good["tier"], 2, "{good}");
    let (ok_, v) = cli(
        dir.path(),
        "seller",
        &["verify", &authorization(&mac, &pre), "--service", "data"],
    );
    assert!(ok_ && v["tier"] == 2, "{v}");

    for forged in ["services=data:7", "services=data:0"] {
        let m = append_caveat(&mac, forged);
        for extra in [json!({ "service": "data" }), json!({})] {
            let v = verify(&seller, &m, &pre, extra).await;
            assert_eq!(
                verdict(&v),
                (Some(false), Some("widened_caveat")),
                "{forged}: {v}"
            );
        }
    }
    // Restating the minted tier narrows nothing and changes nothing: accepted.
    let same = append_caveat(&mac, "services=data:2");
    let v = verify(&seller, &same, &pre, json!({ "service": "data" })).await;
    assert_eq!((verdict(&v), &v["tier"]), ((Some(true), None), &json!(2)));
}

/// Item 7: a token bound to a method and a path prefix is refused (`binding_unchecked`) when
/// the caller does not say which method and path it serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_bound_to_method_and_path_is_refused_without_them() {
    let (dir, seller, buyer) = agents().await;
    let (mac, pre) = buy(
        &seller,
        &buyer,
        json!({ "amount_sats": 3, "service": "data", "methods": ["GET"], "path_prefix": "/v1/data" }),
    )
    .await;
    for extra in [
        json!({ "service": "data" }),
        json!({}),
        json!({ "service": "data", "method": "GET" }),
        json!({ "service": "data", "path": "/v1/data/7" }),
        json!({ "method": "GET" }),
    ] {
        let v = verify(&seller, &mac, &pre, extra.clone()).await;
        assert_eq!(
            verdict(&v),
            (Some(false), Some("binding_unchecked")),
            "{extra}: {v}"
        );
        assert!(
            v["reason"].as_str().unwrap().contains("method")
                || v["reason"].as_str().unwrap().contains("path"),
            "{v}"
        );
    }
    let auth = authorization(&mac, &pre);
    let refused = cli(
        dir.path(),
        "seller",
        &["verify", &auth, "--service", "data"],
    );
    assert_eq!(
        cli_verdict(&refused),
        (false, Some("binding_unchecked")),
        "{refused:?}"
    );
    // Given the request, the binding is checked as before.
    for extra in [
        json!({ "service": "data", "method": "GET", "path": "/v1/data/7" }),
        json!({ "method": "get", "path": "/v1/data" }),
    ] {
        let v = verify(&seller, &mac, &pre, extra.clone()).await;
        assert_eq!(verdict(&v), (Some(true), None), "{extra}: {v}");
    }
    let v = verify(
        &seller,
        &mac,
        &pre,
        json!({ "service": "data", "method": "POST", "path": "/v1/data/7" }),
    )
    .await;
    assert_eq!(verdict(&v), (Some(false), Some("wrong_route")), "{v}");
    let accepted = cli(
        dir.path(),
        "seller",
        &[
            "verify",
            &auth,
            "--service",
            "data",
            "--method",
            "GET",
            "--path",
            "/v1/data",
        ],
    );
    assert_eq!(cli_verdict(&accepted), (true, None), "{accepted:?}");
}

/// Item 16: `l402-mcp verify` counts a use, like the tool: a 1-use token is valid once.
#[tokio::test]
async fn the_verify_command_counts_a_use() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("none.toml"), "").unwrap();
    let d = dir.path();
    let (ok_, c) = cli(
        d,
        "seller",
        &["challenge", "4", "--service", "data", "--max-uses", "1"],
    );
    assert!(ok_, "{c}");
    let (ok_, paid) = cli(d, "buyer", &["pay", c["invoice"].as_str().unwrap()]);
    assert!(ok_, "{paid}");
    let auth = authorization(
        c["macaroon"].as_str().unwrap(),
        paid["preimage"].as_str().unwrap(),
    );
    let first = cli(d, "seller", &["verify", &auth, "--service", "data"]);
    assert_eq!(cli_verdict(&first), (true, None), "{first:?}");
    let second = cli(d, "seller", &["verify", &auth, "--service", "data"]);
    assert_eq!(cli_verdict(&second), (false, Some("used_up")), "{second:?}");
    // The tool sees the same counter.
    let seller = spawn_agent(d, "seller", &[], Stdio::null()).await;
    let v = ok(&call(
        &seller,
        "verify_l402_payment",
        json!({ "authorization": auth, "service": "data" }),
    )
    .await);
    assert_eq!(verdict(&v), (Some(false), Some("used_up")), "{v}");
    // One sale, however often it was presented.
    let (ok_, sales) = cli(d, "seller", &["sales"]);
    assert!(ok_ && sales["count"] == 1, "{sales}");
}

// ------------------------------------------------------------------------- gateway

async fn listen(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await;
    });
    addr
}

/// An upstream that answers every path and counts the requests it got.
async fn upstream() -> (SocketAddr, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let app = Router::new().fallback(any(move |uri: axum::http::Uri| {
        h.fetch_add(1, Ordering::SeqCst);
        async move { format!("upstream saw {}", uri.path()) }
    }));
    (listen(app).await, hits)
}

fn about() -> About {
    About {
        name: "Test API".into(),
        description: "things".into(),
        base_url: None,
        network: "regtest".into(),
    }
}

fn http() -> reqwest::Client {
    l402_mcp::init_tls();
    reqwest::Client::new()
}

async fn status(url: String) -> u16 {
    http().get(url).send().await.unwrap().status().as_u16()
}

/// Item 8: a paywall refuses paths no route covers (404, never forwarded) unless told to pass
/// them; discovery documents and health are still served.
#[tokio::test]
async fn the_gateway_refuses_unmatched_paths_by_default() {
    let t = common::trade().await;
    let (up, hits) = upstream().await;
    let routes = vec![
        Route::new("/api", Price::Fixed { msat: 2_000 }),
        Route::new("/public", Price::Free),
    ];
    let paywall = Paywall::new(t.seller.seller.clone(), routes);
    let gw = listen(gateway::router(paywall, &format!("http://{up}"), about(), &[]).unwrap()).await;
    for path in ["/", "/admin", "/apix", "/publicity", "/.well-known/other"] {
        assert_eq!(status(format!("http://{gw}{path}")).await, 404, "{path}");
    }
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "an unmatched path was forwarded"
    );
    for path in [
        "/.well-known/l402",
        "/.well-known/agent.json",
        "/llms.txt",
        "/.well-known/l402/health",
        "/public/x",
    ] {
        assert_eq!(status(format!("http://{gw}{path}")).await, 200, "{path}");
    }
    assert_eq!(status(format!("http://{gw}/api/x")).await, 402);

    // Told to, it forwards them, free; priced routes stay priced.
    let routes = vec![Route::new("/api", Price::Fixed { msat: 2_000 })];
    let paywall = Paywall::new(t.seller.seller.clone(), routes).pass_unmatched(true);
    let gw = listen(gateway::router(paywall, &format!("http://{up}"), about(), &[]).unwrap()).await;
    let r = http()
        .get(format!("http://{gw}/admin"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        (r.status().as_u16(), r.text().await.unwrap()),
        (200, "upstream saw /admin".to_owned())
    );
    assert_eq!(status(format!("http://{gw}/api/x")).await, 402);
}

/// `l402-mcp gateway` with its own config file in `dir`; stopped when dropped.
async fn gateway_command(
    dir: &Path,
    config: &str,
    upstream: SocketAddr,
) -> (tokio::process::Child, SocketAddr) {
    let config_file = dir.join("gateway.toml");
    std::fs::write(&config_file, config).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let child = tokio::process::Command::new(BIN)
        .arg("--data-dir")
        .arg(dir)
        .arg("--config")
        .arg(&config_file)
        .args(["gateway", "--upstream", &format!("http://{upstream}")])
        .args(["--listen", &addr.to_string()])
        .env_remove("L402_MCP_DATABASE_URL")
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    (child, addr)
}

/// Whether the gateway at `addr` comes up (its health endpoint answers) within 10 s.
async fn comes_up(child: &mut tokio::process::Child, addr: SocketAddr) -> bool {
    for _ in 0..200 {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if let Ok(r) = http()
            .get(format!("http://{addr}/.well-known/l402/health"))
            .send()
            .await
        {
            return r.status() == 200;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    false
}

/// Item 8 through the command: unmatched paths are refused unless `[gateway] pass_unmatched =
/// true`; the old `deny_unmatched` key is still read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_command_passes_unmatched_paths_only_when_configured() {
    let dir = tempfile::tempdir().unwrap();
    let (up, hits) = upstream().await;
    let routes = "[[gateway.routes]]\npath = \"/api\"\nprice_sats = 2\n";
    for (setting, unmatched) in [
        ("", 404),
        ("pass_unmatched = false\n", 404),
        ("pass_unmatched = true\n", 200),
        ("deny_unmatched = true\n", 404),
        ("deny_unmatched = false\n", 200),
    ] {
        let config = format!("[gateway]\n{setting}{routes}");
        let (mut child, gw) = gateway_command(dir.path(), &config, up).await;
        assert!(
            comes_up(&mut child, gw).await,
            "{setting:?}: gateway did not start"
        );
        let before = hits.load(Ordering::SeqCst);
        assert_eq!(
            status(format!("http://{gw}/other")).await,
            unmatched,
            "{setting:?}"
        );
        assert_eq!(
            hits.load(Ordering::SeqCst) - before,
            usize::from(unmatched == 200),
            "{setting:?}"
        );
        assert_eq!(status(format!("http://{gw}/api")).await, 402, "{setting:?}");
        child.kill().await.unwrap();
    }
    // Both keys, contradicting each other: refused with a reason.
    let config = format!("[gateway]\npass_unmatched = true\ndeny_unmatched = true\n{routes}");
    let (mut child, gw) = gateway_command(dir.path(), &config, up).await;
    assert!(
        !comes_up(&mut child, gw).await,
        "contradicting keys accepted"
    );
}

/// The gateway's hook-priced path checks the price before it counts a use: a request the token
/// paid too little for gets a fresh challenge and leaves the token's one use for a request it
/// does pay for.
#[tokio::test]
async fn a_hook_priced_request_the_token_does_not_cover_uses_nothing() {
    let t = common::trade().await;
    let hook = Router::new().route(
        "/price",
        post(|axum::Json(q): axum::Json<Value>| async move {
            let rows: u64 = q["query"]
                .as_str()
                .unwrap_or("")
                .strip_prefix("rows=")
                .and_then(|n| n.parse().ok())
                .unwrap_or(1);
            axum::Json(json!({ "price_sats": rows }))
        }),
    );
    let h = listen(hook).await;
    let mut r = Route::new(
        "/rows",
        Price::Hook {
            url: format!("http://{h}/price"),
        },
    );
    r.max_uses = Some(1);
    let (up, _) = upstream().await;
    let paywall = Paywall::new(t.seller.seller.clone(), vec![r]);
    let gw = listen(gateway::router(paywall, &format!("http://{up}"), about(), &[]).unwrap()).await;
    let body: Value = http()
        .get(format!("http://{gw}/rows?rows=2"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mac = b64::decode(body["macaroon"].as_str().unwrap()).unwrap();
    let pre = t
        .buyer
        .payer
        .pay(&l402_mcp::pay::PayRequest {
            invoice: body["invoice"].as_str().unwrap(),
            ..Default::default()
        })
        .await
        .unwrap()
        .preimage;
    let auth = Credential::format(Scheme::L402, &mac, &pre);
    let get = |rows: u64| {
        let req = http()
            .get(format!("http://{gw}/rows?rows={rows}"))
            .header("authorization", &auth);
        async move { req.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(get(3).await, 402);
    assert_eq!(get(2).await, 200);
    assert_eq!(get(1).await, 402, "a 1-use token served twice");
}
