//! What `fetch_paid` (library `Fetcher`) adds over a plain reqwest GET to the same local axum
//! endpoint, and a full paid round trip on loopback with the embedded wallet: 402 with a
//! challenge minted by `Seller`, payment through `Payer`, resend with the credential, verified
//! by `Seller`.
//!
//! Then the costs that must not grow with history: the cached-token overhead again with 1k,
//! 10k and 100k other tokens cached for the same origin, and with 10k payments in the day.
//!
//! Usage: fetch_paid [--calls N] [--paid N] [--parts N] [--tokens 1000,10000,100000]
//! [--history 10000]. `--calls 0` skips the cached-token runs and `--parts 0` the round trip's
//! parts, so that a tracer (`strace -c`, `perf`) sees the full round trips alone.
//! Prints a human report on stderr and one JSON line on stdout. The two sides of each
//! comparison are interleaved call by call, so load on the machine hits both alike.
//!
//! Benchmarks measure; they assert nothing about time.
// A failed step in a test or benchmark is a failed run: unwrapping is fine here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use l402_mcp::app::App;
use l402_mcp::budget::{BudgetPolicy, MSAT_PER_SAT};
use l402_mcp::clock::{ManualClock, SharedClock};
use l402_mcp::fetch::{FetchRequest, Fetcher};
use l402_mcp::mint::ChallengeRequest;
use l402_mcp::netguard::NetPolicy;
use serde_json::{Value, json};

const T0: u64 = 1_800_000_000;
const SERVICE: &str = "bench";

/// The seller's API: `/plain` is free and ignores credentials; `/paid/...` sells through
/// `Seller` (a 1-sat challenge, then verification of the credential on every request).
async fn serve(seller: Arc<App>) -> SocketAddr {
    let app = Router::new()
        .route("/plain", get(|| async { "hello" }))
        .route("/paid/{*rest}", get(paid))
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

async fn paid(State(seller): State<Arc<App>>, headers: HeaderMap) -> Response {
    if let Some(auth) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let v = seller
            .seller
            .verify_authorization(auth, Some(SERVICE), None)
            .await
            .expect("verify");
        if v.valid {
            return (StatusCode::OK, "paid content").into_response();
        }
    }
    let c = seller
        .seller
        .create_challenge(&ChallengeRequest {
            amount_msat: MSAT_PER_SAT,
            service: Some(SERVICE.into()),
            ..ChallengeRequest::default()
        })
        .await
        .expect("challenge");
    let mut resp = (StatusCode::PAYMENT_REQUIRED, "payment required").into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    for line in &c.www_authenticate {
        resp.headers_mut().append(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_str(line).expect("header"),
        );
    }
    resp
}

struct Lat(Vec<f64>);

impl Lat {
    fn pct(&self, p: f64) -> f64 {
        let mut s = self.0.clone();
        s.sort_by(f64::total_cmp);
        s[((s.len() as f64 - 1.0) * p).round() as usize]
    }
    fn mean(&self) -> f64 {
        self.0.iter().sum::<f64>() / self.0.len() as f64
    }
    fn json(&self) -> Value {
        let r = |v: f64| (v * 1000.0).round() / 1000.0;
        json!({"p50_ms": r(self.pct(0.5)), "p99_ms": r(self.pct(0.99)), "mean_ms": r(self.mean()), "n": self.0.len()})
    }
    fn show(&self, label: &str) {
        eprintln!(
            "  {label:<44} p50 {:.3} ms  p99 {:.3} ms  mean {:.3} ms  (n={})",
            self.pct(0.5),
            self.pct(0.99),
            self.mean(),
            self.0.len()
        );
    }
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

/// Interleave `calls` plain reqwest GETs (with `auth`, if any) and `Fetcher` fetches of `url`.
async fn compare(
    http: &reqwest::Client,
    fetcher: &Fetcher,
    url: &str,
    auth: Option<&str>,
    calls: usize,
    want_reused: bool,
) -> (Lat, Lat) {
    let (mut plain, mut ours) = (Vec::new(), Vec::new());
    for i in 0..calls + calls / 10 {
        let t = Instant::now();
        let mut rb = http.get(url);
        if let Some(a) = auth {
            rb = rb.header(header::AUTHORIZATION, a);
        }
        let resp = rb.send().await.expect("GET");
        assert_eq!(resp.status(), StatusCode::OK);
        let _ = resp.bytes().await.expect("body");
        let p = ms(t);

        let t = Instant::now();
        let r = fetcher.fetch(&FetchRequest::get(url)).await.expect("fetch");
        let f = ms(t);
        assert_eq!(r.status, 200);
        assert!(!r.receipt.paid);
        assert_eq!(r.receipt.token_reused, want_reused);
        if i >= calls / 10 {
            plain.push(p);
            ours.push(f);
        }
    }
    (Lat(plain), Lat(ours))
}

/// Cache `n` more tokens for `origin` (other paths of it), as a long-lived agent would have:
/// written straight into the ledger file, in one transaction.
async fn fill_tokens(dir: &std::path::Path, origin: &str, from: usize, n: usize) {
    use sqlx::Connection;
    let path = dir.join(l402_mcp::storage::LEDGER_FILE);
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .expect("open the ledger");
    sqlx::query(
        "INSERT INTO token_cache (wallet, origin, path_prefix, scheme, macaroon, preimage,
             payment_hash, expires_at, created_at)
         WITH RECURSIVE seq(i) AS (SELECT $3 UNION ALL SELECT i + 1 FROM seq WHERE i < $3 + $4 - 1)
         SELECT 'buyer', $1, '/other/' || i, 'L402', 'AgEEYmVuY2g=', printf('%064x', i),
                printf('%064x', i), NULL, $2
           FROM seq",
    )
    .bind(origin)
    .bind(T0 as i64)
    .bind(from as i64)
    .bind(n as i64)
    .execute(&mut conn)
    .await
    .expect("tokens");
    let _ = conn.close().await;
}

/// `rows` payments of the buyer's in the last 24 hours, written straight into the ledger file.
async fn fill_history(dir: &std::path::Path, rows: usize) {
    use sqlx::Connection;
    let path = dir.join(l402_mcp::storage::LEDGER_FILE);
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .expect("open the ledger");
    sqlx::query(
        "INSERT INTO payments (wallet, direction, status, payment_hash, bolt11, amount_msat,
             fee_msat, reserved_msat, host, created_at, updated_at, settled_at)
         WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < $1)
         SELECT 'buyer', 'out', 'succeeded', printf('%064x', i), 'history', 1, 0, 0,
                'bench.example', $2 - 1 - (i % 86000), $2 - 1 - (i % 86000), $2 - 1 - (i % 86000)
           FROM seq",
    )
    .bind(rows as i64)
    .bind(T0 as i64)
    .execute(&mut conn)
    .await
    .expect("history");
    let _ = conn.close().await;
}

/// This process's resident memory (VmRSS), KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// A comma-separated list of counts after `flag`, or `default`.
fn counts(flag: &str, default: &str) -> Vec<usize> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1))
        .map_or(default, String::as_str)
        .split(',')
        .filter_map(|v| v.trim().parse().ok())
        .filter(|&v| v > 0)
        .collect()
}

fn main() {
    let opt = common::arg;
    let calls = opt("--calls", 2000);
    let paid_n = opt("--paid", 300);
    let parts_n = opt("--parts", paid_n.min(200));
    let token_counts = counts("--tokens", "1000,10000,100000");
    let history = counts("--history", "10000");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        l402_mcp::init_tls();
        let dir = tempfile::tempdir().expect("temp dir");
        let clock: SharedClock = ManualClock::new(T0);
        let buyer = App::open_embedded(dir.path(), "buyer", clock.clone())
            .await
            .expect("buyer");
        let seller = Arc::new(
            App::open_embedded(dir.path(), "seller", clock.clone())
                .await
                .expect("seller"),
        );
        let policy = BudgetPolicy {
            daily_msat: 1_000_000 * MSAT_PER_SAT,
            ..BudgetPolicy::default()
        };
        buyer
            .ledger
            .set_budget("buyer", &policy, T0)
            .await
            .expect("budget");
        let addr = serve(seller.clone()).await;
        let fetcher = Fetcher::new(
            buyer.payer.clone(),
            buyer.storage.tokens(),
            clock.clone(),
            NetPolicy::loopback(),
        )
        .expect("fetcher");
        let http = reqwest::Client::new();
        let base = format!("http://{addr}");
        let mut out = json!({});

        // 1. A free endpoint: what fetch_paid adds when nothing is paid or cached.
        if calls > 0 {
        let url = format!("{base}/plain");
        let (plain, ours) = compare(&http, &fetcher, &url, None, calls, false).await;
        eprintln!("free endpoint (no credential):");
        plain.show("reqwest GET");
        ours.show("Fetcher::fetch");
        out["free"] = json!({"reqwest": plain.json(), "fetcher": ours.json(),
            "added_p50_ms": ours.pct(0.5) - plain.pct(0.5), "added_mean_ms": ours.mean() - plain.mean()});

        // 2. A paid endpoint with a cached credential: both sides send the same Authorization
        //    and the seller verifies it each time.
        let url = format!("{base}/paid/cached");
        let first = fetcher.fetch(&FetchRequest::get(&url)).await.expect("first fetch");
        assert!(first.receipt.paid, "the first fetch pays");
        let token = buyer
            .storage
            .tokens()
            .find_token("buyer", &base, "/paid/cached", T0)
            .await
            .expect("token cache")
            .expect("cached token");
        let auth = token.authorization();
        let (plain, ours) = compare(&http, &fetcher, &url, Some(&auth), calls, true).await;
        eprintln!("paid endpoint, cached credential (seller verifies every request):");
        plain.show("reqwest GET with the same Authorization");
        ours.show("Fetcher::fetch (token reused)");
        out["cached_token"] = json!({"reqwest": plain.json(), "fetcher": ours.json(),
            "added_p50_ms": ours.pct(0.5) - plain.pct(0.5), "added_mean_ms": ours.mean() - plain.mean()});

        // 2b. The same with many other tokens cached for the origin, then with many payments
        //     in the day: what a long-lived agent pays per fetch for its history.
        // And what the process holds (VmRSS) after each: the cache lives in the ledger file, so
        // memory should not grow with it.
        let rss_one = rss_kib();
        let mut scaling = Vec::new();
        let mut cached = 1;
        for &n in &token_counts {
            fill_tokens(dir.path(), &base, cached, n - cached).await;
            cached = n;
            let (plain, ours) = compare(&http, &fetcher, &url, Some(&auth), calls, true).await;
            let rss = rss_kib();
            eprintln!(
                "cached token with {n} tokens for the origin (process RSS {rss} KiB, {rss_one} KiB with one):"
            );
            ours.show("Fetcher::fetch (token reused)");
            scaling.push(json!({"tokens": n, "added_p50_ms": ours.pct(0.5) - plain.pct(0.5),
                "added_mean_ms": ours.mean() - plain.mean(), "fetcher": ours.json(),
                "rss_kib": rss, "rss_kib_with_one_token": rss_one}));
        }
        out["cached_token_scaling"] = json!(scaling);
        let mut with_history = Vec::new();
        for &rows in &history {
            fill_history(dir.path(), rows).await;
            let (plain, ours) = compare(&http, &fetcher, &url, Some(&auth), calls, true).await;
            eprintln!("cached token with {rows} payments in the day:");
            ours.show("Fetcher::fetch (token reused)");
            with_history.push(json!({"payments": rows, "added_p50_ms": ours.pct(0.5) - plain.pct(0.5),
                "added_mean_ms": ours.mean() - plain.mean(), "fetcher": ours.json()}));
        }
        out["cached_token_history"] = json!(with_history);
        }

        // 3. Full paid round trips: GET -> 402 (Seller mints) -> pay (Payer, embedded wallet)
        //    -> GET with the credential (Seller verifies) -> 200. A new resource each time.
        let mut lat = Vec::with_capacity(paid_n);
        for i in 0..paid_n + paid_n / 10 {
            let url = format!("{base}/paid/r{i}");
            let t = Instant::now();
            let r = fetcher.fetch(&FetchRequest::get(&url)).await.expect("paid fetch");
            let took = ms(t);
            assert_eq!(r.status, 200);
            assert!(r.receipt.paid);
            if i >= paid_n / 10 {
                lat.push(took);
            }
        }
        let lat = Lat(lat);
        eprintln!("full paid round trip (402, pay, resend, verify):");
        lat.show("Fetcher::fetch, new resource each time");
        out["paid_round_trip"] = lat.json();

        // 4. The round trip's library parts, called directly (no HTTP): what the seller does to
        //    answer 402, what the buyer's payment costs, what the seller's verification costs.
        let (mut mint, mut pay, mut verify) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..parts_n {
            let t = Instant::now();
            let c = seller
                .seller
                .create_challenge(&ChallengeRequest {
                    amount_msat: MSAT_PER_SAT,
                    service: Some(SERVICE.into()),
                    ..ChallengeRequest::default()
                })
                .await
                .expect("challenge");
            mint.push(ms(t));
            let t = Instant::now();
            let receipt = buyer
                .payer
                .pay(&l402_mcp::pay::PayRequest {
                    invoice: &c.invoice,
                    payee: Some(&l402_mcp::payee::Payee::of_host("127.0.0.1")),
                    ..Default::default()
                })
                .await
                .expect("pay");
            pay.push(ms(t));
            let macaroon = l402_mcp::l402::b64::decode(&c.macaroon).expect("macaroon");
            let auth = l402_mcp::l402::Credential::format(
                l402_mcp::l402::Scheme::L402,
                &macaroon,
                &receipt.preimage,
            );
            let t = Instant::now();
            let v = seller
                .seller
                .verify_authorization(&auth, Some(SERVICE), None)
                .await
                .expect("verify");
            verify.push(ms(t));
            assert!(v.valid);
        }
        // 5. The same round trip by hand on reqwest (GET -> 402 -> parse the challenge ->
        //    Payer::pay -> GET with the credential): the protocol's floor without Fetcher's
        //    token cache, locks and receipt.
        let mut manual = Vec::with_capacity(parts_n);
        for i in 0..parts_n {
            let url = format!("{base}/paid/m{i}");
            let t = Instant::now();
            let first = http.get(&url).send().await.expect("GET");
            assert_eq!(first.status(), StatusCode::PAYMENT_REQUIRED);
            let values: Vec<String> = first
                .headers()
                .get_all(header::WWW_AUTHENTICATE)
                .iter()
                .filter_map(|v| v.to_str().ok().map(str::to_owned))
                .collect();
            let _ = first.bytes().await.expect("body");
            let all = l402_mcp::l402::challenge::parse_headers(values.iter().map(String::as_str))
                .expect("challenge");
            let c = l402_mcp::l402::challenge::preferred(&all).expect("preferred");
            let receipt = buyer
                .payer
                .pay(&l402_mcp::pay::PayRequest {
                    invoice: &c.invoice,
                    payee: Some(&l402_mcp::payee::Payee::of_host("127.0.0.1")),
                    ..Default::default()
                })
                .await
                .expect("pay");
            let auth = l402_mcp::l402::Credential::format(c.scheme, &c.macaroon, &receipt.preimage);
            let resp = http
                .get(&url)
                .header(header::AUTHORIZATION, auth)
                .send()
                .await
                .expect("GET with credential");
            assert_eq!(resp.status(), StatusCode::OK);
            let _ = resp.bytes().await.expect("body");
            manual.push(ms(t));
        }
        if parts_n > 0 {
            let manual = Lat(manual);
            manual.show("by hand on reqwest + Payer::pay");
            out["paid_round_trip_by_hand"] = manual.json();

            eprintln!("its parts, called directly:");
            let (mint, pay, verify) = (Lat(mint), Lat(pay), Lat(verify));
            mint.show("Seller::create_challenge");
            pay.show("Payer::pay (embedded wallet)");
            verify.show("Seller::verify_authorization");
            out["paid_round_trip_parts"] = json!({"create_challenge": mint.json(), "pay": pay.json(), "verify": verify.json()});
        }
        println!("{out}");
    });
}
