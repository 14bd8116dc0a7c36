//! Hostile sellers against the buyer, through `l402-mcp serve` and its `fetch_paid` tool: sellers
//! that take the money and refuse the credential (any refusal, now or later), challenges whose
//! macaroon and invoice disagree, per-host caps dodged by spelling the host differently, and
//! proxies from the environment that would carry requests past the address guard.
//!
//! The sellers mint real challenges with an embedded wallet of the same data dir (the buyer's
//! embedded wallet pays it by settling inside the ledger), served by axum on loopback.
// A failed step in a test or benchmark is a failed run: unwrapping is fine here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use common::agents::{Agent, balance_sats, call, failed, ok, spawn_agent};
use l402_mcp::app::App;
use l402_mcp::mint::{ChallengeRequest, Seller};
use serde_json::json;

const PRICE_SATS: u64 = 10;

async fn seller_app(dir: &Path) -> App {
    App::open_embedded(dir, "seller", l402_mcp::clock::system())
        .await
        .unwrap()
}

use common::fixture::listen as serve;

/// A 402 with a fresh challenge for `PRICE_SATS`.
async fn challenge(seller: &Seller) -> Response {
    let c = seller
        .create_challenge(&ChallengeRequest {
            amount_msat: PRICE_SATS * 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    with_challenge(&c.www_authenticate)
}

fn with_challenge(lines: &[String]) -> Response {
    let mut r = (StatusCode::PAYMENT_REQUIRED, "payment required").into_response();
    for line in lines {
        r.headers_mut().append(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_str(line).unwrap(),
        );
    }
    r
}

/// What a hostile seller answers to a request carrying a credential (it never checks it).
#[derive(Clone, Copy)]
enum Answer {
    /// This status, every time.
    Always(StatusCode),
    /// 500 the first time, then a fresh 402 (as if the token were unknown).
    ServerErrorThen402,
}

#[derive(Clone)]
struct Hostile {
    seller: Seller,
    answer: Answer,
    credentialed: Arc<Mutex<u32>>,
}

async fn hostile(State(h): State<Hostile>, headers: HeaderMap) -> Response {
    if headers.contains_key(header::AUTHORIZATION) {
        let n = {
            let mut n = h.credentialed.lock().unwrap();
            *n += 1;
            *n
        };
        return match h.answer {
            Answer::Always(status) => (status, "no").into_response(),
            Answer::ServerErrorThen402 if n == 1 => {
                (StatusCode::INTERNAL_SERVER_ERROR, "oops").into_response()
            }
            Answer::ServerErrorThen402 => challenge(&h.seller).await,
        };
    }
    challenge(&h.seller).await
}

async fn hostile_seller(seller: &App, answer: Answer) -> SocketAddr {
    serve(Router::new().fallback(hostile).with_state(Hostile {
        seller: seller.seller.clone(),
        answer,
        credentialed: Arc::default(),
    }))
    .await
}

async fn fetch(buyer: &Agent, url: &str) -> rmcp::model::CallToolResult {
    call(buyer, "fetch_paid", json!({ "url": url })).await
}

fn code(r: &rmcp::model::CallToolResult) -> String {
    failed(r).split(':').next().unwrap_or_default().to_owned()
}

/// A seller that answers the paid credential with 401, 403 or 402 is paid once: the call says
/// the credential was refused after payment, and the next calls pay nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seller_refusing_the_paid_credential_is_paid_once_whatever_it_answers() {
    for status in [
        StatusCode::UNAUTHORIZED,
        StatusCode::FORBIDDEN,
        StatusCode::PAYMENT_REQUIRED,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let seller = seller_app(dir.path()).await;
        let addr = hostile_seller(&seller, Answer::Always(status)).await;
        let buyer = spawn_agent(dir.path(), "buyer", &[], Stdio::null()).await;
        let before = balance_sats(&buyer).await;
        let url = format!("http://{addr}/data");
        let first = fetch(&buyer, &url).await;
        assert_eq!(code(&first), "refused_after_payment", "{status}");
        assert!(
            failed(&first).contains(&format!("HTTP {}", status.as_u16())),
            "{}",
            failed(&first)
        );
        for _ in 0..3 {
            assert_eq!(code(&fetch(&buyer, &url).await), "seller_distrusted");
        }
        assert_eq!(balance_sats(&buyer).await, before - PRICE_SATS, "{status}");
    }
}

/// A seller that answers the paid credential with a 500 (kept: maybe a passing fault) and
/// later refuses it without ever having honoured it gets nothing more: the credential was
/// never worth its payment, so it is not bought again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_credential_never_honoured_and_refused_later_is_not_bought_again() {
    let dir = tempfile::tempdir().unwrap();
    let seller = seller_app(dir.path()).await;
    let addr = hostile_seller(&seller, Answer::ServerErrorThen402).await;
    let buyer = spawn_agent(dir.path(), "buyer", &[], Stdio::null()).await;
    let before = balance_sats(&buyer).await;
    let url = format!("http://{addr}/data");
    let first = ok(&fetch(&buyer, &url).await);
    assert_eq!(
        (first["status"].as_u64(), first["receipt"]["paid"].as_bool()),
        (Some(500), Some(true))
    );
    let second = fetch(&buyer, &url).await;
    assert_eq!(code(&second), "refused_after_payment");
    assert_eq!(code(&fetch(&buyer, &url).await), "seller_distrusted");
    assert_eq!(balance_sats(&buyer).await, before - PRICE_SATS);
}

/// The distrust is kept in the ledger, so a restarted server (a client restarting its MCP
/// servers) does not pay the seller again; and it follows the seller under its other names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distrust_survives_a_restart_and_follows_the_seller_under_other_names() {
    let dir = tempfile::tempdir().unwrap();
    let seller = seller_app(dir.path()).await;
    let addr = hostile_seller(&seller, Answer::Always(StatusCode::UNAUTHORIZED)).await;
    let buyer = spawn_agent(dir.path(), "buyer", &[], Stdio::null()).await;
    let before = balance_sats(&buyer).await;
    let port = addr.port();
    assert_eq!(
        code(&fetch(&buyer, &format!("http://127.0.0.1:{port}/a")).await),
        "refused_after_payment"
    );
    drop(buyer);
    let buyer = spawn_agent(dir.path(), "buyer", &[], Stdio::null()).await;
    for url in [
        format!("http://127.0.0.1:{port}/b"),
        format!("http://localhost:{port}/c"),
        format!("http://[::ffff:127.0.0.1]:{port}/d"),
    ] {
        assert_eq!(
            code(&fetch(&buyer, &url).await),
            "seller_distrusted",
            "{url}"
        );
    }
    assert_eq!(balance_sats(&buyer).await, before - PRICE_SATS);
}

/// A challenge whose macaroon is for another payment hash than its invoice could never buy
/// access: refused before anything is reserved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_challenge_whose_macaroon_and_invoice_disagree_is_not_paid() {
    let dir = tempfile::tempdir().unwrap();
    let seller = seller_app(dir.path()).await;
    let s = seller.seller.clone();
    let app = Router::new().fallback(move || {
        let s = s.clone();
        async move {
            let a = s
                .create_challenge(&ChallengeRequest {
                    amount_msat: PRICE_SATS * 1000,
                    ..Default::default()
                })
                .await
                .unwrap();
            let (other, _) = s
                .create_invoice(PRICE_SATS * 1000, "other", 600)
                .await
                .unwrap();
            // A's macaroon with another invoice.
            let line = format!(
                "L402 macaroon=\"{}\", invoice=\"{}\"",
                a.macaroon, other.bolt11
            );
            with_challenge(&[line])
        }
    });
    let addr = serve(app).await;
    let buyer = spawn_agent(dir.path(), "buyer", &[], Stdio::null()).await;
    let before = balance_sats(&buyer).await;
    let r = fetch(&buyer, &format!("http://{addr}/x")).await;
    assert_eq!(code(&r), "challenge_mismatch");
    assert!(failed(&r).contains("nothing was paid"), "{}", failed(&r));
    let history = ok(&call(&buyer, "list_payments", json!({ "direction": "out" })).await);
    assert_eq!(history["payments"], json!([]));
    assert_eq!(balance_sats(&buyer).await, before);
}

/// An honest seller reached as `127.0.0.1`, `[::ffff:127.0.0.1]` and `localhost` is one server
/// under the per-host cap: 20 sats a day buys two 10-sat answers, not three.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_per_host_cap_counts_one_server_however_it_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let seller = seller_app(dir.path()).await;
    let s = seller.seller.clone();
    let app = Router::new().fallback(move |headers: HeaderMap| {
        let s = s.clone();
        async move {
            if let Some(auth) = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                && s.verify_authorization(auth, None, None)
                    .await
                    .unwrap()
                    .valid
            {
                return "paid content".into_response();
            }
            challenge(&s).await
        }
    });
    let addr = serve(app).await;
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        "[budget]\nper_host_daily_sats = 20\nmax_fee_sats = 0\nmax_fee_percent = 0\n",
    )
    .unwrap();
    let buyer = spawn_agent(
        dir.path(),
        "buyer",
        &[("L402_MCP_CONFIG", config.to_str().unwrap())],
        Stdio::null(),
    )
    .await;
    let port = addr.port();
    for url in [
        format!("http://127.0.0.1:{port}/r"),
        format!("http://[::ffff:127.0.0.1]:{port}/r"),
    ] {
        let r = ok(&fetch(&buyer, &url).await);
        assert_eq!(r["body"], "paid content", "{url}");
    }
    let third = fetch(&buyer, &format!("http://localhost:{port}/r")).await;
    assert_eq!(code(&third), "budget_exceeded");
    assert!(failed(&third).contains("per-host"), "{}", failed(&third));
}

/// A stand-in HTTP proxy: answers everything with 200 and writes down what it was asked.
async fn recording_proxy() -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let app = Router::new().fallback({
        let seen = seen.clone();
        move |uri: Uri| {
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().push(uri.to_string());
                "via proxy"
            }
        }
    });
    (serve(app).await, seen)
}

/// `HTTP_PROXY`, `HTTPS_PROXY` and `ALL_PROXY` in the environment would send requests for
/// loopback, internal names and metadata hosts to the proxy, past the resolver's guard: they
/// are ignored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxies_from_the_environment_are_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let (proxy, seen) = recording_proxy().await;
    let proxy_url = format!("http://{proxy}");
    let env = [
        ("HTTP_PROXY", proxy_url.as_str()),
        ("http_proxy", proxy_url.as_str()),
        ("HTTPS_PROXY", proxy_url.as_str()),
        ("ALL_PROXY", proxy_url.as_str()),
        ("L402_MCP_FETCH_ALLOW_LOOPBACK", "0"),
    ];
    let buyer = spawn_agent(dir.path(), "buyer", &env, Stdio::null()).await;
    for url in [
        "http://localhost:9/admin",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://169.254.169.254/latest/meta-data/",
    ] {
        let r = fetch(&buyer, url).await;
        assert!(
            matches!(code(&r).as_str(), "address_refused" | "http_error"),
            "{url}: {}",
            failed(&r)
        );
    }
    assert_eq!(*seen.lock().unwrap(), Vec::<String>::new());
}

/// A proxy set in `[fetch] proxy` is used, and the guard still holds: a target whose address is
/// refused never reaches the proxy; an allowed one goes through it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_proxy_is_used_behind_the_guard() {
    let dir = tempfile::tempdir().unwrap();
    let (proxy, seen) = recording_proxy().await;
    let proxy_url = format!("http://{proxy}");
    let guarded = spawn_agent(
        dir.path(),
        "buyer",
        &[
            ("L402_MCP_FETCH_PROXY", proxy_url.as_str()),
            ("L402_MCP_FETCH_ALLOW_LOOPBACK", "0"),
        ],
        Stdio::null(),
    )
    .await;
    for url in ["http://localhost:9/x", "http://127.0.0.1:9/x"] {
        assert_eq!(
            code(&fetch(&guarded, url).await),
            "address_refused",
            "{url}"
        );
    }
    assert_eq!(*seen.lock().unwrap(), Vec::<String>::new());
    let open = spawn_agent(
        dir.path(),
        "buyer",
        &[("L402_MCP_FETCH_PROXY", proxy_url.as_str())],
        Stdio::null(),
    )
    .await;
    let r = ok(&fetch(&open, "http://localhost:9/through").await);
    assert_eq!(r["body"], "via proxy");
    assert_eq!(
        *seen.lock().unwrap(),
        vec!["http://localhost:9/through".to_owned()]
    );
}

/// After payment the seller redirects the credentialed request to another of its paths, which
/// asks for payment again: that is a refusal of what was paid for, not a new sale.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_to_another_paywall_after_payment_is_a_refusal() {
    let dir = tempfile::tempdir().unwrap();
    let seller = seller_app(dir.path()).await;
    let s = seller.seller.clone();
    let app = Router::new().fallback(move |uri: Uri, headers: HeaderMap| {
        let s = s.clone();
        async move {
            if uri.path() == "/paid" && headers.contains_key(header::AUTHORIZATION) {
                return (StatusCode::FOUND, [(header::LOCATION, "/elsewhere")]).into_response();
            }
            challenge(&s).await
        }
    });
    let addr = serve(app).await;
    let buyer = spawn_agent(dir.path(), "buyer", &[], Stdio::null()).await;
    let before = balance_sats(&buyer).await;
    let url = format!("http://{addr}/paid");
    assert_eq!(code(&fetch(&buyer, &url).await), "refused_after_payment");
    assert_eq!(code(&fetch(&buyer, &url).await), "seller_distrusted");
    assert_eq!(balance_sats(&buyer).await, before - PRICE_SATS);
}

/// A seller in the LNbits-tutorial style (a JSON invoice, no macaroon; the buyer resends the
/// request with `payment_hash`) that refuses the resend is paid once too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_hash_seller_refusing_the_resend_is_paid_once() {
    let dir = tempfile::tempdir().unwrap();
    let seller = seller_app(dir.path()).await;
    let s = seller.seller.clone();
    let app = Router::new().fallback(move |body: String| {
        let s = s.clone();
        async move {
            if body.contains("payment_hash") {
                return (StatusCode::FORBIDDEN, "who are you").into_response();
            }
            let (inv, _) = s.create_invoice(PRICE_SATS * 1000, "data", 600).await.unwrap();
            let body = json!({ "payment_request": inv.bolt11, "payment_hash": hex::encode(inv.payment_hash) });
            (StatusCode::PAYMENT_REQUIRED, axum::Json(body)).into_response()
        }
    });
    let addr = serve(app).await;
    let buyer = spawn_agent(dir.path(), "buyer", &[], Stdio::null()).await;
    let before = balance_sats(&buyer).await;
    let url = format!("http://{addr}/api");
    let post = json!({ "url": url, "method": "POST", "body": "{}" });
    let first = call(&buyer, "fetch_paid", post.clone()).await;
    assert_eq!(code(&first), "refused_after_payment");
    assert_eq!(
        code(&call(&buyer, "fetch_paid", post).await),
        "seller_distrusted"
    );
    assert_eq!(balance_sats(&buyer).await, before - PRICE_SATS);
}

/// Parallel calls to a seller of single-use tokens: a call that presents a token another call
/// has just used gets 401, and must not take that for a refusal of a payment (the token was
/// honoured). Every call gets its answer; none reports a refusal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_calls_to_a_single_use_seller_are_not_taken_for_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let seller = seller_app(dir.path()).await;
    let s = seller.seller.clone();
    let used: Arc<Mutex<Vec<String>>> = Arc::default();
    let app = Router::new().fallback(move |headers: HeaderMap| {
        let (s, used) = (s.clone(), used.clone());
        async move {
            if let Some(auth) = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
            {
                if used.lock().unwrap().iter().any(|a| a == auth) {
                    return (StatusCode::UNAUTHORIZED, "token already used").into_response();
                }
                if s.verify_authorization(auth, None, None)
                    .await
                    .unwrap()
                    .valid
                {
                    used.lock().unwrap().push(auth.to_owned());
                    return "data".into_response();
                }
            }
            challenge(&s).await
        }
    });
    let addr = serve(app).await;
    let buyer = spawn_agent(dir.path(), "buyer", &[], Stdio::null()).await;
    let url = format!("http://{addr}/once");
    let calls = (0..8).map(|_| {
        let (buyer, url) = (buyer.clone(), url.clone());
        tokio::spawn(async move { fetch(&buyer, &url).await })
    });
    for r in futures::future::join_all(calls).await {
        let r = ok(&r.unwrap());
        assert_eq!(
            (r["status"].as_u64(), r["body"].as_str()),
            (Some(200), Some("data"))
        );
    }
}
