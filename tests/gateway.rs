//! The L402 gateway: the paywall layer in front of a reverse proxy, through real HTTP.
// A failed step in a test or benchmark is a failed run: unwrapping is fine here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{any, post};
use common::fixture::listen_gateway;
use common::{T0, Trade, trade};
use l402_mcp::fetch::{FetchRequest, Fetcher};
use l402_mcp::gateway::discovery::About;
use l402_mcp::gateway::{self, Paywall, Price, Route};
use l402_mcp::l402::{Credential, Scheme, b64, challenge};
use l402_mcp::mint::ChallengeRequest;
use l402_mcp::netguard::NetPolicy;
use serde_json::{Value, json};

type Seen = Arc<Mutex<Vec<HeaderMap>>>;

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

/// An upstream that answers with the path it got and records the headers.
async fn upstream() -> (SocketAddr, Seen) {
    let seen: Seen = Arc::default();
    let s = seen.clone();
    let app = Router::new().fallback(any(
        move |headers: HeaderMap, uri: axum::http::Uri, body: axum::body::Bytes| {
            let s = s.clone();
            async move {
                s.lock().unwrap().push(headers);
                format!("upstream saw {} ({} bytes)", uri.path(), body.len())
            }
        },
    ));
    (
        listen(app.layer(axum::extract::DefaultBodyLimit::disable())).await,
        seen,
    )
}

fn route(path: &str, sats: u64, service: &str) -> Route {
    let mut r = Route::new(path, Price::Fixed { msat: sats * 1000 });
    r.service = service.into();
    r
}

async fn gateway_with(t: &Trade, routes: Vec<Route>, cors: &[String]) -> (SocketAddr, Seen) {
    gateway_of(Paywall::new(t.seller.seller.clone(), routes), cors).await
}

/// `paywall` in front of a fresh [`upstream`].
async fn gateway_of(paywall: Paywall, cors: &[String]) -> (SocketAddr, Seen) {
    let (up, seen) = upstream().await;
    let about = About {
        name: "Test API".into(),
        description: "things".into(),
        base_url: None,
        network: "regtest".into(),
    };
    let app = gateway::app(paywall, &format!("http://{up}"), about, cors).unwrap();
    (listen_gateway(app).await, seen)
}

/// GET `path` exactly as written (no client-side normalization); the status code.
async fn raw_get(addr: SocketAddr, path: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer);
    answer
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {answer}"))
}

fn http() -> reqwest::Client {
    l402_mcp::init_tls();
    reqwest::Client::new()
}

fn fetcher(t: &Trade) -> Fetcher {
    Fetcher::new(
        t.buyer.payer.clone(),
        t.buyer.storage.tokens(),
        t.clock.clone(),
        NetPolicy::loopback(),
    )
    .unwrap()
}

async fn pay(t: &Trade, invoice: &str) -> l402_mcp::l402::Preimage {
    t.buyer
        .payer
        .pay(&l402_mcp::pay::PayRequest {
            invoice,
            ..Default::default()
        })
        .await
        .unwrap()
        .preimage
}

/// Buy a token from the 402 at `url`: its macaroon and the `Authorization` value.
async fn buy_at(t: &Trade, url: &str) -> (Vec<u8>, String) {
    let r = http().get(url).send().await.unwrap();
    assert_eq!(r.status(), 402);
    let body: Value = r.json().await.unwrap();
    let mac = b64::decode(body["macaroon"].as_str().unwrap()).unwrap();
    let pre = pay(t, body["invoice"].as_str().unwrap()).await;
    let auth = Credential::format(Scheme::L402, &mac, &pre);
    (mac, auth)
}

#[tokio::test]
async fn challenges_exactly_as_aperture_and_forwards_paid_requests() {
    let t = trade().await;
    let mut free = Route::new("/public", Price::Free);
    free.service = "public".into();
    let (gw, seen) = gateway_with(&t, vec![route("/api", 21, "api"), free], &[]).await;

    let r = http()
        .get(format!("http://{gw}/api/things?x=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 402);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let lines: Vec<String> = r
        .headers()
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert_eq!(lines.len(), 2);
    assert!(
        lines[0].starts_with("LSAT macaroon=\"") && lines[1].starts_with("L402 macaroon=\""),
        "{lines:?}"
    );
    let parsed = challenge::parse_headers(lines.iter().map(String::as_str)).unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["invoice"], parsed[0].invoice);
    assert_eq!(
        b64::decode(body["macaroon"].as_str().unwrap()).unwrap(),
        parsed[0].macaroon
    );
    assert_eq!(body["amount_sats"], 21);
    assert!(
        seen.lock().unwrap().is_empty(),
        "an unpaid request reached the upstream"
    );

    // Free paths and the health endpoint need nothing.
    let r = http()
        .get(format!("http://{gw}/public/x"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        (r.status().as_u16(), r.text().await.unwrap()),
        (200, "upstream saw /public/x (0 bytes)".to_owned())
    );
    assert_eq!(
        http()
            .get(format!("http://{gw}/.well-known/l402/health"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    // fetch_paid's engine pays and gets the upstream's answer; the credential stays at the gateway.
    let got = fetcher(&t)
        .fetch(&FetchRequest::get(&format!("http://{gw}/api/things?x=1")))
        .await
        .unwrap();
    assert_eq!(
        (got.status, got.body.content.as_str(), got.receipt.paid),
        (200, "upstream saw /api/things (0 bytes)", true)
    );
    let headers = seen.lock().unwrap().last().cloned().unwrap();
    assert!(
        headers.get("authorization").is_none(),
        "the L402 credential was forwarded upstream"
    );
    assert_eq!(headers["x-forwarded-for"], "127.0.0.1");

    // Sales are recorded once.
    let sales = t.seller.seller.tokens().sales_since(0).await.unwrap();
    assert_eq!((sales.count, sales.amount.msat()), (1, 21_000));
}

#[tokio::test]
async fn tokens_from_the_mcp_tools_work_at_the_gateway_and_the_reverse() {
    let t = trade().await;
    let (gw, _) = gateway_with(&t, vec![route("/api", 5, "api")], &[]).await;
    // Minted as create_l402_challenge does, accepted by the gateway.
    let c = t
        .seller
        .seller
        .create_challenge(&ChallengeRequest {
            amount_msat: 5_000,
            service: Some("api".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let pre = pay(&t, &c.invoice).await;
    let auth = Credential::format(Scheme::Lsat, &b64::decode(&c.macaroon).unwrap(), &pre);
    let r = http()
        .get(format!("http://{gw}/api/x"))
        .header("authorization", &auth)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Minted by the gateway, accepted by verify_l402_payment's service.
    let r = http()
        .get(format!("http://{gw}/api/y"))
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    let pre = pay(&t, body["invoice"].as_str().unwrap()).await;
    let auth = Credential::format(
        Scheme::L402,
        &b64::decode(body["macaroon"].as_str().unwrap()).unwrap(),
        &pre,
    );
    let v = t
        .seller
        .seller
        .verify_authorization(&auth, Some("api"), None)
        .await
        .unwrap();
    assert!(v.valid, "{v:?}");
}

/// The gateway's per-request check (`admit_verdict`) counts uses as `admit` does, on the same
/// counter, and builds none of the token's details it would throw away.
#[tokio::test]
async fn admit_verdict_counts_uses_as_admit_does_without_the_details() {
    let t = trade().await;
    let seller = &t.seller.seller;
    let c = seller
        .create_challenge(&ChallengeRequest {
            amount_msat: 5_000,
            service: Some("api".into()),
            max_uses: Some(3),
            ..Default::default()
        })
        .await
        .unwrap();
    let pre = pay(&t, &c.invoice).await;
    let auth = Credential::format(Scheme::L402, &b64::decode(&c.macaroon).unwrap(), &pre);
    let access = || l402_mcp::mint::Access {
        service: Some("api"),
        method: Some("GET"),
        path: Some("/api/x"),
        ..Default::default()
    };
    let lean = seller.admit_verdict(&auth, access()).await.unwrap();
    assert!(lean.valid, "{lean:?}");
    assert_eq!(
        (lean.max_uses, lean.amount_paid_msat),
        (Some(3), Some(5_000))
    );
    assert!(lean.token_id.is_none() && lean.payment_hash.is_none() && lean.caveats.is_empty());
    let full = seller.admit(&auth, access()).await.unwrap();
    assert!(full.valid, "{full:?}");
    assert_eq!(full.token_id, Some(c.token_id.to_hex()));
    assert_eq!(full.service.as_deref(), Some("api"));
    assert!(!full.caveats.is_empty());
    // The third use, then none left, whichever way it is asked.
    assert!(seller.admit_verdict(&auth, access()).await.unwrap().valid);
    let spent = seller.admit_verdict(&auth, access()).await.unwrap();
    assert_eq!((spent.valid, spent.reason_code), (false, Some("used_up")));
    let spent = seller.admit(&auth, access()).await.unwrap();
    assert_eq!(spent.reason_code, Some("used_up"));
    // A refusal keeps its details.
    let forged = Credential::format(
        Scheme::L402,
        &b64::decode(&c.macaroon).unwrap(),
        &l402_mcp::l402::Preimage([7; 32]),
    );
    let refused = seller.admit_verdict(&forged, access()).await.unwrap();
    assert!(!refused.valid && refused.token_id.is_some(), "{refused:?}");
}

#[tokio::test]
async fn forged_expired_used_up_and_wrong_route_credentials_get_a_fresh_402() {
    let t = trade().await;
    let mut limited = route("/limited", 2, "limited");
    limited.max_uses = Some(2);
    let mut brief = route("/brief", 2, "brief");
    brief.valid_for_secs = Some(60);
    let (gw, _) = gateway_with(
        &t,
        vec![
            route("/api", 2, "api"),
            route("/other", 2, "other"),
            limited,
            brief,
        ],
        &[],
    )
    .await;
    let get = |path: &str, auth: &str| {
        let url = format!("http://{gw}{path}");
        let auth = auth.to_owned();
        async move {
            let r = http()
                .get(url)
                .header("authorization", auth)
                .send()
                .await
                .unwrap();
            let fresh = r.headers().get_all("www-authenticate").iter().count() == 2;
            (r.status().as_u16(), fresh)
        }
    };
    let buy = async |path: &str| {
        let body: Value = http()
            .get(format!("http://{gw}{path}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let mac = b64::decode(body["macaroon"].as_str().unwrap()).unwrap();
        let pre = pay(&t, body["invoice"].as_str().unwrap()).await;
        (mac, pre)
    };

    let (mac, pre) = buy("/api").await;
    let good = Credential::format(Scheme::L402, &mac, &pre);
    assert_eq!(get("/api/a", &good).await, (200, false));
    // Wrong route (another service), wrong preimage, tampered signature, garbage.
    assert_eq!(get("/other/a", &good).await, (402, true));
    assert_eq!(
        get(
            "/api/a",
            &Credential::format(Scheme::L402, &mac, &l402_mcp::l402::Preimage([7; 32]))
        )
        .await,
        (402, true)
    );
    let mut bad = mac.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    assert_eq!(
        get("/api/a", &Credential::format(Scheme::L402, &bad, &pre)).await,
        (402, true)
    );
    assert_eq!(get("/api/a", "L402 garbage").await, (402, true));

    // N-use: two requests, then a fresh 402.
    let (mac, pre) = buy("/limited").await;
    let auth = Credential::format(Scheme::L402, &mac, &pre);
    assert_eq!(get("/limited", &auth).await, (200, false));
    assert_eq!(get("/limited", &auth).await, (200, false));
    assert_eq!(get("/limited", &auth).await, (402, true));

    // Expired.
    let (mac, pre) = buy("/brief").await;
    let auth = Credential::format(Scheme::L402, &mac, &pre);
    assert_eq!(get("/brief", &auth).await, (200, false));
    t.clock.advance(61);
    assert_eq!(get("/brief", &auth).await, (402, true));
}

/// The gateway keeps a verified token's root key in memory: revoking the token (deleting the
/// root key) must still refuse it on the very next request, and it must not be the last 200.
#[tokio::test]
async fn a_revoked_token_is_refused_at_once() {
    let t = trade().await;
    let (gw, seen) = gateway_with(&t, vec![route("/api", 2, "api")], &[]).await;
    let (mac, auth) = buy_at(&t, &format!("http://{gw}/api/a")).await;
    let get = || {
        http()
            .get(format!("http://{gw}/api/a"))
            .header("authorization", auth.clone())
            .send()
    };
    // Verified twice: the second from memory.
    for _ in 0..2 {
        assert_eq!(get().await.unwrap().status(), 200);
    }
    let served = seen.lock().unwrap().len();
    let key_id = l402_mcp::l402::sha256(
        l402_mcp::l402::Macaroon::deserialize(&mac)
            .unwrap()
            .identifier(),
    );
    assert!(t.seller.storage.seller().revoke(&key_id).await.unwrap());
    assert_eq!(get().await.unwrap().status(), 402);
    assert_eq!(seen.lock().unwrap().len(), served, "not forwarded");
}

#[tokio::test]
async fn tokens_bound_to_method_and_path_prefix() {
    let t = trade().await;
    // Two routes of one service: only the path binding tells their tokens apart.
    let mut reports = route("/v1/reports", 2, "data");
    reports.bind_method = true;
    reports.bind_path = true;
    let mut raw = route("/v1/raw", 2, "data");
    raw.bind_path = true;
    let mut free = Route::new("/public", Price::Free);
    free.service = "public".into();
    let (gw, seen) = gateway_with(&t, vec![reports, raw, free], &[]).await;
    let send = |method: &str, path: &str, auth: Option<&str>| {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = http().request(method, format!("http://{gw}{path}"));
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        async move {
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.text().await.unwrap_or_default())
        }
    };
    let buy = async |method: &str, path: &str| {
        let (status, body) = send(method, path, None).await;
        assert_eq!(status, 402, "{body}");
        let body: Value = serde_json::from_str(&body).unwrap();
        let mac = b64::decode(body["macaroon"].as_str().unwrap()).unwrap();
        let caveats = l402_mcp::l402::Macaroon::deserialize(&mac)
            .unwrap()
            .caveat_strings();
        let pre = pay(&t, body["invoice"].as_str().unwrap()).await;
        (Credential::format(Scheme::L402, &mac, &pre), caveats)
    };

    let (auth, caveats) = buy("GET", "/v1/reports/7").await;
    assert!(
        caveats.contains(&"data_methods=GET".to_owned())
            && caveats.contains(&"data_path_prefix=/v1/reports".to_owned()),
        "{caveats:?}"
    );
    assert_eq!(send("GET", "/v1/reports/7", Some(&auth)).await.0, 200);
    assert_eq!(send("GET", "/v1/reports", Some(&auth)).await.0, 200);
    // Another method, another route of the same service, a look-alike path: a fresh 402.
    assert_eq!(send("POST", "/v1/reports/7", Some(&auth)).await.0, 402);
    assert_eq!(send("GET", "/v1/raw/7", Some(&auth)).await.0, 402);

    // Path-bound only: any method under its prefix.
    let (auth, _) = buy("GET", "/v1/raw/a").await;
    assert_eq!(send("POST", "/v1/raw/b", Some(&auth)).await.0, 200);
    assert_eq!(send("GET", "/v1/reports/1", Some(&auth)).await.0, 402);

    // Paths an upstream could resolve into another route are refused before any route matches,
    // even under a free route, and never reach the upstream. Sent raw: an HTTP client library
    // would resolve the dot segments itself.
    let before = seen.lock().unwrap().len();
    for path in [
        "/public/../v1/raw/a",
        "/public/%2e%2e/v1/raw/a",
        "/public/..%2Fv1/raw/a",
        "/v1/raw/./a",
    ] {
        assert_eq!(raw_get(gw, path).await, 400, "{path}");
    }
    // Spellings that many routers read as a priced path (merged slashes, escaped letters, path
    // parameters) would match no route as written and pass free: refused too.
    for path in [
        "//v1/raw/a",
        "/v1//raw/a",
        "/%761/raw/a",
        "/v1/r%61w/a",
        "/v1/raw;x=1/a",
        "/v1;/raw/a",
        "/v1/raw%3Bx/a",
        "/v1/raw/a%",
    ] {
        assert_eq!(raw_get(gw, path).await, 400, "{path}");
    }
    assert_eq!(raw_get(gw, "/public/a").await, 200);
    assert_eq!(raw_get(gw, "/public/a%20b").await, 200);
    assert_eq!(seen.lock().unwrap().len(), before + 2);
}

#[tokio::test]
async fn free_tier_per_client_network_per_day() {
    let t = trade().await;
    let mut r = route("/api", 3, "api");
    r.free_per_day = 2;
    let (gw, _) = gateway_with(&t, vec![r], &[]).await;
    let status = async || {
        http()
            .get(format!("http://{gw}/api"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(
        (status().await, status().await, status().await),
        (200, 200, 402)
    );
    t.clock.set(T0 + 86_400);
    assert_eq!(status().await, 200);

    // Behind a trusted proxy the client is the address the proxy appended (the last entry of
    // X-Forwarded-For), not whatever the client wrote in front of it.
    let mut r = route("/api", 3, "api");
    r.free_per_day = 1;
    let (up, _) = upstream().await;
    let paywall = Paywall::new(t.seller.seller.clone(), vec![r]).trust_forwarded_for(true);
    let about = About {
        name: "Test API".into(),
        description: "things".into(),
        base_url: None,
        network: "regtest".into(),
    };
    let gw =
        listen_gateway(gateway::app(paywall, &format!("http://{up}"), about, &[]).unwrap()).await;
    let via_proxy = async |xff: &str| {
        http()
            .get(format!("http://{gw}/api"))
            .header("x-forwarded-for", xff)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(via_proxy("203.0.113.7").await, 200);
    // The same client with spoofed entries in front: still 203.0.113.0/24, already used.
    assert_eq!(via_proxy("198.51.100.1, 203.0.113.7").await, 402);
    assert_eq!(via_proxy("192.0.2.99, 203.0.113.8").await, 402);
    // Another /24, and IPv6 counted per /48.
    assert_eq!(via_proxy("203.0.114.7").await, 200);
    assert_eq!(via_proxy("2001:db8:1:2::1").await, 200);
    assert_eq!(via_proxy("2001:db8:1:ffff::2").await, 402);
    assert_eq!(via_proxy("2001:db8:2::1").await, 200);
}

#[tokio::test]
async fn dynamic_pricing_through_a_hook() {
    let t = trade().await;
    // "1 sat per row": the hook reads ?rows= from the query.
    let hook = Router::new().route(
        "/price",
        post(|axum::Json(q): axum::Json<Value>| async move {
            let rows: u64 = q["query"]
                .as_str()
                .unwrap_or("")
                .strip_prefix("rows=")
                .and_then(|n| n.parse().ok())
                .unwrap_or(1);
            assert_eq!(q["method"], "GET");
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
    r.service = "rows".into();
    // The same prices for 1-use tokens.
    let mut once = Route::new(
        "/once",
        Price::Hook {
            url: format!("http://{h}/price"),
        },
    );
    once.max_uses = Some(1);
    let (gw, _) = gateway_with(&t, vec![r, once], &[]).await;
    for rows in [1u64, 7, 250] {
        let body: Value = http()
            .get(format!("http://{gw}/rows?rows={rows}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(body["amount_sats"], rows);
        let inv = l402_mcp::bolt11::decode(body["invoice"].as_str().unwrap()).unwrap();
        assert_eq!(inv.amount_msat, Some(rows * 1000));
    }
    let buy = async |path: &str| {
        let body: Value = http()
            .get(format!("http://{gw}{path}?rows=2"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let mac = b64::decode(body["macaroon"].as_str().unwrap()).unwrap();
        let pre = pay(&t, body["invoice"].as_str().unwrap()).await;
        Credential::format(Scheme::L402, &mac, &pre)
    };
    let get = |path: &str, rows: u64, auth: &str| {
        http()
            .get(format!("http://{gw}{path}?rows={rows}"))
            .header("authorization", auth)
            .send()
    };
    // A token pays for requests priced at most what it paid: bought for 2 rows, it serves 2
    // rows and 1 row, and 3 rows gets a fresh challenge for the 3-row price.
    let auth = buy("/rows").await;
    assert_eq!(get("/rows", 2, &auth).await.unwrap().status(), 200);
    assert_eq!(get("/rows", 1, &auth).await.unwrap().status(), 200);
    let r = get("/rows", 3, &auth).await.unwrap();
    assert_eq!(r.status(), 402);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["amount_sats"], 3);
    // The price is checked before a use is counted: a request the token paid too little for
    // leaves a 1-use token's use for a request it does pay for.
    let auth = buy("/once").await;
    let status = async |rows| get("/once", rows, &auth).await.unwrap().status();
    assert_eq!(status(3).await, 402);
    assert_eq!(status(2).await, 200);
    assert_eq!(status(1).await, 402, "a 1-use token served twice");

    // A broken hook: no price, no invoice.
    let mut broken = Route::new(
        "/broken",
        Price::Hook {
            url: "http://127.0.0.1:1/price".into(),
        },
    );
    broken.service = "broken".into();
    let (gw, _) = gateway_with(&t, vec![broken], &[]).await;
    assert_eq!(
        http()
            .get(format!("http://{gw}/broken"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
}

#[tokio::test]
async fn discovery_documents_and_cors() {
    let t = trade().await;
    let mut r = route("/api", 21, "api");
    r.max_uses = Some(10);
    r.description = Some("the things".into());
    let (gw, _) = gateway_with(
        &t,
        vec![r, Route::new("/free", Price::Free)],
        &["https://app.example".into()],
    )
    .await;
    let doc: Value = http()
        .get(format!("http://{gw}/.well-known/l402"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["routes"][0]["path"], "/api");
    assert_eq!(doc["routes"][0]["price"]["sats"], 21);
    assert_eq!(doc["routes"][0]["max_uses"], 10);
    let card: Value = http()
        .get(format!("http://{gw}/.well-known/agent.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(card["skills"][0]["id"], "api");
    let llms = http()
        .get(format!("http://{gw}/llms.txt"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        llms.contains("- [/api](/api): 21 sats (10 requests per token): the things"),
        "{llms}"
    );

    let pre = http()
        .request(reqwest::Method::OPTIONS, format!("http://{gw}/api"))
        .header("origin", "https://app.example")
        .header("access-control-request-method", "GET")
        .header(
            "access-control-request-headers",
            "authorization, x-api-version",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        pre.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    let allowed = pre.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(
        allowed.contains("authorization") && allowed.contains("x-api-version"),
        "{allowed}"
    );
    // A preflight from an origin not configured gets no permission.
    let pre = http()
        .request(reqwest::Method::OPTIONS, format!("http://{gw}/api"))
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "GET")
        .send()
        .await
        .unwrap();
    assert!(pre.headers().get("access-control-allow-origin").is_none());
    let r = http()
        .get(format!("http://{gw}/api"))
        .header("origin", "https://app.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 402);
    assert!(
        r.headers()["access-control-expose-headers"]
            .to_str()
            .unwrap()
            .to_ascii_lowercase()
            .contains("www-authenticate")
    );
    let r = http()
        .get(format!("http://{gw}/api"))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn bodies_stream_through_both_ways() {
    let t = trade().await;
    let (gw, _) = gateway_with(&t, vec![Route::new("/free", Price::Free)], &[]).await;
    let big = vec![b'z'; 3 << 20];
    let r = http()
        .post(format!("http://{gw}/free/upload"))
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.text().await.unwrap(),
        format!("upstream saw /free/upload ({} bytes)", 3 << 20)
    );
}

async fn status(url: String) -> u16 {
    http().get(url).send().await.unwrap().status().as_u16()
}

/// A paywall refuses paths no route covers (404, never forwarded) unless told to pass them;
/// discovery documents and health are still served.
#[tokio::test]
async fn paths_no_route_covers_get_a_404_unless_passed() {
    let t = trade().await;
    let routes = vec![route("/api", 2, "api"), Route::new("/public", Price::Free)];
    let (gw, seen) = gateway_with(&t, routes, &[]).await;
    for path in ["/", "/admin", "/apix", "/publicity", "/.well-known/other"] {
        assert_eq!(status(format!("http://{gw}{path}")).await, 404, "{path}");
    }
    assert!(
        seen.lock().unwrap().is_empty(),
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
    let paywall =
        Paywall::new(t.seller.seller.clone(), vec![route("/api", 2, "api")]).pass_unmatched(true);
    let (gw, _) = gateway_of(paywall, &[]).await;
    let r = http()
        .get(format!("http://{gw}/admin"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        (r.status().as_u16(), r.text().await.unwrap()),
        (200, "upstream saw /admin (0 bytes)".to_owned())
    );
    assert_eq!(status(format!("http://{gw}/api/x")).await, 402);
}

/// `l402-mcp gateway` with `config` as its config file, on the data dir `dir`, in front of
/// `upstream`; killed when dropped.
fn gateway_command(
    dir: &std::path::Path,
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
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_l402-mcp"))
        .arg("--data-dir")
        .arg(dir)
        .arg("--config")
        .arg(&config_file)
        .args(["gateway", "--upstream", &format!("http://{upstream}")])
        .args(["--listen", &addr.to_string()])
        .env_remove("L402_MCP_DATABASE_URL")
        .stderr(std::process::Stdio::null())
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

/// The command: unmatched paths are refused unless `[gateway] pass_unmatched = true`; the old
/// `deny_unmatched` key is still read; both together are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_command_passes_unmatched_paths_only_when_configured() {
    let dir = tempfile::tempdir().unwrap();
    let (up, seen) = upstream().await;
    let routes = "[[gateway.routes]]\npath = \"/api\"\nprice_sats = 2\n";
    for (setting, unmatched) in [
        ("", 404),
        ("pass_unmatched = false\n", 404),
        ("pass_unmatched = true\n", 200),
        ("deny_unmatched = true\n", 404),
        ("deny_unmatched = false\n", 200),
    ] {
        let config = format!("[gateway]\n{setting}{routes}");
        let (mut child, gw) = gateway_command(dir.path(), &config, up);
        assert!(
            comes_up(&mut child, gw).await,
            "{setting:?}: gateway did not start"
        );
        let before = seen.lock().unwrap().len();
        assert_eq!(
            status(format!("http://{gw}/other")).await,
            unmatched,
            "{setting:?}"
        );
        assert_eq!(
            seen.lock().unwrap().len() - before,
            usize::from(unmatched == 200),
            "{setting:?}"
        );
        assert_eq!(status(format!("http://{gw}/api")).await, 402, "{setting:?}");
        child.kill().await.unwrap();
    }
    let config = format!("[gateway]\npass_unmatched = true\ndeny_unmatched = true\n{routes}");
    let (mut child, gw) = gateway_command(dir.path(), &config, up);
    assert!(
        !comes_up(&mut child, gw).await,
        "contradicting keys accepted"
    );
}
