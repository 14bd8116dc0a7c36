//! Several gateway instances on one PostgreSQL: two paywalls over two sellers (embedded wallets
//! in two data dirs, as on two machines), each in front of its own upstream, both keeping tokens
//! and counters in `PgStore` on the same database. One N-use token, one free tier and one sales
//! book across both.
//!
//! Needs a server: `tools/postgres/test.sh` starts a throwaway one and runs these with
//! `L402_TEST_DATABASE_URL` set. Each test works in a schema of its own, made afresh.
// A failed step in a test or benchmark is a failed run: unwrapping is fine here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use l402_mcp::app::App;
use l402_mcp::clock::{ManualClock, SharedClock};
use l402_mcp::gateway::discovery::About;
use l402_mcp::gateway::{self, Paywall, Price, Route};
use l402_mcp::l402::{Credential, Scheme, b64};
use l402_mcp::store::postgres::{self, PgStore};
use l402_mcp::store::{NewMintedToken, ServiceSales, TokenStore};
use serde_json::Value;
use sqlx::{AssertSqlSafe, Connection, PgConnection};

const T0: u64 = 1_800_000_000;
const PRICE_SATS: u64 = 10;

fn server_url() -> String {
    std::env::var("L402_TEST_DATABASE_URL").unwrap_or_else(|_| {
        panic!("L402_TEST_DATABASE_URL is not set: these tests need PostgreSQL; run tools/postgres/test.sh")
    })
}

/// The test server's URL, narrowed to schema `name`, dropped and made again empty.
async fn fresh_schema(name: &str) -> String {
    let url = server_url();
    let mut admin = PgConnection::connect(&url)
        .await
        .expect("cannot connect to L402_TEST_DATABASE_URL");
    sqlx::raw_sql(AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS {name} CASCADE; CREATE SCHEMA {name}"
    )))
    .execute(&mut admin)
    .await
    .expect("make a schema");
    let _ = admin.close().await;
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}options[search_path]={name}")
}

/// One gateway instance: its own data dir, seller wallet, buyer wallet (to pay its invoices)
/// and upstream, with tokens and counters in PostgreSQL.
struct Instance {
    addr: SocketAddr,
    buyer: App,
    store: Arc<dyn TokenStore>,
    /// Requests that reached the upstream.
    served: Arc<AtomicUsize>,
    _seller: App,
    _dir: tempfile::TempDir,
}

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

async fn instance(name: &str, db: &str, clock: &Arc<ManualClock>, routes: &[Route]) -> Instance {
    let dir = tempfile::tempdir().unwrap();
    let shared: SharedClock = clock.clone();
    let seller = App::open_embedded(dir.path(), name, shared.clone())
        .await
        .unwrap();
    let buyer = App::open_embedded(dir.path(), "buyer", shared)
        .await
        .unwrap();
    let store = postgres::connect(db).await.unwrap();
    let paywall = Paywall::new(
        seller.seller.clone().with_token_store(store.clone()),
        routes.to_vec(),
    );
    let served = Arc::new(AtomicUsize::new(0));
    let count = served.clone();
    let upstream = listen(Router::new().fallback(move || {
        count.fetch_add(1, Ordering::SeqCst);
        async { "served" }
    }))
    .await;
    let about = About {
        name: name.into(),
        description: "an instance".into(),
        base_url: None,
        network: "regtest".into(),
    };
    let app = gateway::router(paywall, &format!("http://{upstream}"), about, &[]).unwrap();
    Instance {
        addr: listen(app).await,
        buyer,
        store,
        served,
        _seller: seller,
        _dir: dir,
    }
}

/// Two instances on schema `schema`, sharing a clock.
async fn two_instances(schema: &str, routes: &[Route]) -> (Instance, Instance, Arc<ManualClock>) {
    let db = fresh_schema(schema).await;
    let clock = ManualClock::new(T0);
    let a = instance("gw1", &db, &clock, routes).await;
    let b = instance("gw2", &db, &clock, routes).await;
    (a, b, clock)
}

fn api(max_uses: Option<u64>, free_per_day: u64) -> Route {
    let mut r = Route::new(
        "/api",
        Price::Fixed {
            msat: PRICE_SATS * 1000,
        },
    );
    r.max_uses = max_uses;
    r.free_per_day = free_per_day;
    r
}

fn http() -> reqwest::Client {
    l402_mcp::init_tls();
    reqwest::Client::new()
}

/// The status of GET /api at `at`, and whether a 402 carried a fresh challenge.
async fn get(at: &Instance, auth: Option<&str>) -> u16 {
    let mut req = http().get(format!("http://{}/api", at.addr));
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    if status == 402 {
        assert_eq!(
            r.headers().get_all("www-authenticate").iter().count(),
            2,
            "a 402 without a fresh challenge"
        );
    }
    status
}

/// Buy a token at `at` (its buyer pays its invoice): the `Authorization` value.
async fn buy(at: &Instance) -> String {
    let r = http()
        .get(format!("http://{}/api", at.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 402);
    let body: Value = r.json().await.unwrap();
    let preimage = at
        .buyer
        .payer
        .pay(&l402_mcp::pay::PayRequest {
            invoice: body["invoice"].as_str().unwrap(),
            ..Default::default()
        })
        .await
        .unwrap()
        .preimage;
    let mac = b64::decode(body["macaroon"].as_str().unwrap()).unwrap();
    Credential::format(Scheme::L402, &mac, &preimage)
}

async fn sales(store: &Arc<dyn TokenStore>) -> (u64, u64) {
    let s = store.sales_since(0).await.unwrap();
    (s.count, s.amount_msat)
}

#[tokio::test]
#[ignore = "needs PostgreSQL: tools/postgres/test.sh"]
async fn one_n_use_token_is_counted_across_instances() {
    let (a, b, _) = two_instances("gw_n_use", &[api(Some(3), 0)]).await;
    let auth = buy(&a).await;
    assert_eq!(
        (
            get(&a, Some(&auth)).await,
            get(&b, Some(&auth)).await,
            get(&a, Some(&auth)).await
        ),
        (200, 200, 200)
    );
    assert_eq!(get(&a, Some(&auth)).await, 402);
    assert_eq!(get(&b, Some(&auth)).await, 402);
    assert_eq!(
        (
            a.served.load(Ordering::SeqCst),
            b.served.load(Ordering::SeqCst)
        ),
        (2, 1)
    );
    // One sale, whichever instance saw the credential first and however often it was used.
    let one = (1, PRICE_SATS * 1000);
    assert_eq!((sales(&a.store).await, sales(&b.store).await), (one, one));
}

#[tokio::test]
#[ignore = "needs PostgreSQL: tools/postgres/test.sh"]
async fn tokens_minted_at_one_instance_are_accepted_at_the_other() {
    let (a, b, _) = two_instances("gw_shared_keys", &[api(None, 0)]).await;
    // Minted (and paid) at instance 2: its root key is in the shared store.
    let auth = buy(&b).await;
    for at in [&a, &b, &a] {
        assert_eq!(get(at, Some(&auth)).await, 200);
    }
    // The preimage still has to match.
    let forged = Credential::format(
        Scheme::L402,
        &Credential::parse(&auth).unwrap().macaroons[0],
        &[7; 32],
    );
    assert_eq!(get(&a, Some(&forged)).await, 402);
    let one = (1, PRICE_SATS * 1000);
    assert_eq!((sales(&a.store).await, sales(&b.store).await), (one, one));
    // And the other way round: minted at 1, accepted at 2; two sales in all.
    let auth = buy(&a).await;
    assert_eq!(get(&b, Some(&auth)).await, 200);
    assert_eq!(sales(&b.store).await, (2, 2 * PRICE_SATS * 1000));
}

#[tokio::test]
#[ignore = "needs PostgreSQL: tools/postgres/test.sh"]
async fn the_free_tier_is_counted_across_instances() {
    let (a, b, clock) = two_instances("gw_free_tier", &[api(None, 2)]).await;
    assert_eq!((get(&a, None).await, get(&b, None).await), (200, 200));
    assert_eq!((get(&a, None).await, get(&b, None).await), (402, 402));
    clock.set(T0 + 86_400);
    assert_eq!(get(&b, None).await, 200);
    assert_eq!(sales(&a.store).await, (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL: tools/postgres/test.sh"]
async fn twenty_parallel_requests_spend_a_five_use_token_exactly_five_times() {
    let (a, b, _) = two_instances("gw_parallel", &[api(Some(5), 0)]).await;
    let auth = buy(&a).await;
    let (a, b) = (Arc::new(a), Arc::new(b));
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let at = if i % 2 == 0 { a.clone() } else { b.clone() };
            let auth = auth.clone();
            tokio::spawn(async move { get(&at, Some(&auth)).await })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            200 => ok += 1,
            402 => {}
            other => panic!("status {other}"),
        }
    }
    assert_eq!(ok, 5);
    assert_eq!(
        a.served.load(Ordering::SeqCst) + b.served.load(Ordering::SeqCst),
        5
    );
    assert_eq!(get(&b, Some(&auth)).await, 402);
    assert_eq!(sales(&a.store).await, (1, PRICE_SATS * 1000));
}

fn minted<'a>(
    n: u8,
    root_key: &'a [u8; 32],
    capabilities: &'a [String],
    max_uses: Option<u64>,
) -> NewMintedToken<'a> {
    NewMintedToken {
        key_id: [n; 32],
        root_key,
        token_id: [n + 100; 32],
        wallet: "gw1",
        payment_hash: [n + 200; 32],
        amount_msat: 21_000,
        service: "api",
        tier: 2,
        capabilities,
        valid_until: max_uses.map(|_| T0 + 60),
        max_uses,
    }
}

#[tokio::test]
#[ignore = "needs PostgreSQL: tools/postgres/test.sh"]
async fn store_methods_keep_the_sqlite_semantics() {
    let db = fresh_schema("gw_store").await;
    let s = postgres::connect(&db).await.unwrap();

    // Root keys and terms.
    let caps = vec!["read".to_owned(), "write".to_owned()];
    s.store_minted(&minted(1, &[9; 32], &caps, Some(3)), T0)
        .await
        .unwrap();
    s.store_minted(&minted(2, &[8; 32], &[], None), T0)
        .await
        .unwrap();
    assert!(
        s.store_minted(&minted(1, &[9; 32], &caps, Some(3)), T0)
            .await
            .is_err(),
        "a key id is stored once"
    );
    assert_eq!(s.root_key(&[1; 32]).await.unwrap(), Some([9; 32]));
    assert_eq!(s.root_key(&[3; 32]).await.unwrap(), None);
    let t = s.minted_token(&[101; 32]).await.unwrap().unwrap();
    assert_eq!(
        (
            t.token_id.as_str(),
            t.wallet.as_str(),
            t.payment_hash.as_str(),
            t.amount_msat().unwrap(),
            t.service.as_str(),
            t.tier,
            t.capabilities.as_str(),
            t.valid_until,
            t.created_at,
            t.max_uses
        ),
        (
            hex::encode([101; 32]).as_str(),
            "gw1",
            hex::encode([201; 32]).as_str(),
            21_000,
            "api",
            2,
            "read,write",
            Some(T0 as i64 + 60),
            T0 as i64,
            Some(3)
        )
    );
    let t = s.minted_token(&[102; 32]).await.unwrap().unwrap();
    assert_eq!(
        (t.capabilities.as_str(), t.valid_until, t.max_uses),
        ("", None, None)
    );
    assert!(s.minted_token(&[103; 32]).await.unwrap().is_none());

    // Use counters: up to the limit, then refused; per token; a limit of 0 allows nothing.
    let mut uses = Vec::new();
    for _ in 0..5 {
        uses.push(s.use_token(&[101; 32], 3).await.unwrap());
    }
    assert_eq!(uses, [Some(1), Some(2), Some(3), None, None]);
    assert_eq!(s.use_token(&[102; 32], 3).await.unwrap(), Some(1));
    assert_eq!(s.use_token(&[104; 32], 0).await.unwrap(), None);
    assert_eq!(s.use_token(&[104; 32], 0).await.unwrap(), None);

    // Free tier: per client, route and day; a limit of 0 allows nothing.
    let mut hits = Vec::new();
    for _ in 0..3 {
        hits.push(s.free_tier_hit("10.0.0.0/24", "/api", 7, 2).await.unwrap());
    }
    assert_eq!(hits, [true, true, false]);
    assert!(s.free_tier_hit("10.0.1.0/24", "/api", 7, 2).await.unwrap());
    assert!(
        s.free_tier_hit("10.0.0.0/24", "/other", 7, 2)
            .await
            .unwrap()
    );
    assert!(s.free_tier_hit("10.0.0.0/24", "/api", 8, 2).await.unwrap());
    assert!(!s.free_tier_hit("10.0.2.0/24", "/api", 7, 0).await.unwrap());
    // A lower limit than the count so far refuses, and counts nothing.
    assert!(!s.free_tier_hit("10.0.0.0/24", "/api", 7, 1).await.unwrap());

    // Sales: once per payment hash, whatever the second call says.
    assert_eq!(s.sales_since(0).await.unwrap(), Default::default());
    assert!(
        s.record_sale(&[1; 32], &[101; 32], "api", 21_000, T0)
            .await
            .unwrap()
    );
    assert!(
        !s.record_sale(&[1; 32], &[101; 32], "api", 99_000, T0 + 5)
            .await
            .unwrap()
    );
    assert!(
        s.record_sale(&[2; 32], &[102; 32], "api", 4_000, T0 + 10)
            .await
            .unwrap()
    );
    assert!(
        s.record_sale(&[3; 32], &[103; 32], "zeta", 1_000, T0 - 100)
            .await
            .unwrap()
    );
    assert!(
        s.record_sale(&[4; 32], &[104; 32], "beta", 7, T0 + 20)
            .await
            .unwrap()
    );
    let all = s.sales_since(0).await.unwrap();
    assert_eq!((all.count, all.amount_msat), (4, 26_007));
    assert_eq!(
        all.by_service,
        [
            ServiceSales {
                service: "api".into(),
                count: 2,
                amount_msat: 25_000
            },
            ServiceSales {
                service: "beta".into(),
                count: 1,
                amount_msat: 7
            },
            ServiceSales {
                service: "zeta".into(),
                count: 1,
                amount_msat: 1_000
            },
        ]
    );
    let recent = s.sales_since(T0 + 10).await.unwrap();
    assert_eq!(
        (recent.count, recent.amount_msat, recent.by_service.len()),
        (2, 4_007, 2)
    );
    assert_eq!(s.sales_since(T0 + 21).await.unwrap(), Default::default());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL: tools/postgres/test.sh"]
async fn counters_hold_under_concurrent_calls() {
    let db = fresh_schema("gw_store_race").await;
    // Two pools, as two instances.
    let (s1, s2) = (
        postgres::connect(&db).await.unwrap(),
        postgres::connect(&db).await.unwrap(),
    );
    let calls: Vec<_> = (0..40)
        .map(|i| {
            let s = if i % 2 == 0 { s1.clone() } else { s2.clone() };
            tokio::spawn(async move {
                let used = s.use_token(&[5; 32], 7).await.unwrap();
                let free = s.free_tier_hit("c", "/r", 1, 11).await.unwrap();
                let sold = s
                    .record_sale(&[5; 32], &[5; 32], "api", 1, T0)
                    .await
                    .unwrap();
                (used, free, sold)
            })
        })
        .collect();
    let mut used = Vec::new();
    let (mut free, mut sold) = (0, 0);
    for c in calls {
        let (u, f, s) = c.await.unwrap();
        used.extend(u);
        free += usize::from(f);
        sold += usize::from(s);
    }
    used.sort_unstable();
    assert_eq!(used, [1, 2, 3, 4, 5, 6, 7], "each use counted once");
    assert_eq!((free, sold), (11, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL: tools/postgres/test.sh"]
async fn instances_starting_together_migrate_once() {
    let db = fresh_schema("gw_migrate").await;
    let starts: Vec<_> = (0..8)
        .map(|_| {
            let db = db.clone();
            tokio::spawn(async move { PgStore::connect(&db).await.map(|_| ()) })
        })
        .collect();
    for s in starts {
        s.await.unwrap().expect("an instance failed to start");
    }
    let mut conn = PgConnection::connect(&db).await.unwrap();
    let applied: Vec<(i64, bool)> =
        sqlx::query_as("SELECT version, success FROM _sqlx_migrations ORDER BY version")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    assert_eq!(applied, [(1, true)]);
    // A later start finds nothing to do.
    PgStore::connect(&db).await.unwrap();
    let _ = conn.close().await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL: tools/postgres/test.sh"]
async fn a_wrong_password_is_not_repeated_in_the_error() {
    let db = fresh_schema("gw_password").await;
    let good = url::Url::parse(&db).unwrap();
    let real = good
        .password()
        .expect("the test URL has a password")
        .to_owned();
    let mut bad = good.clone();
    bad.set_password(Some("Wr0ngPassw0rd")).unwrap();
    let e = PgStore::connect(bad.as_str()).await.unwrap_err();
    let (shown, debug) = (e.to_string(), format!("{e:?}"));
    for text in [&shown, &debug] {
        assert!(
            !text.contains("Wr0ngPassw0rd") && !text.contains(&real),
            "{text}"
        );
    }
    assert!(
        shown.contains(":***@") && shown.contains("password authentication failed"),
        "{shown}"
    );
    let store = PgStore::connect(&db).await.unwrap();
    assert!(!format!("{store:?}").contains(&real));
}

/// No server needed: nothing listens on port 1.
#[tokio::test]
async fn an_unreachable_server_is_named_without_its_password() {
    let e = PgStore::connect("postgres://l402:Hunter2Hunter2@127.0.0.1:1/l402")
        .await
        .unwrap_err()
        .to_string();
    assert!(!e.contains("Hunter2"), "{e}");
    assert!(
        e.contains("postgres://l402:***@127.0.0.1:1/l402") && e.contains("database_url"),
        "{e}"
    );
    let e = PgStore::connect("mysql://l402:Hunter2Hunter2@127.0.0.1/l402")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        !e.contains("Hunter2") && e.contains("postgres://USER:PASSWORD@HOST"),
        "{e}"
    );
}

/// `l402-mcp` with `L402_MCP_DATABASE_URL` set: `args` in data dir `dir`; its JSON output.
fn cli(dir: &std::path::Path, db: &str, args: &[&str]) -> (bool, Value) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_l402-mcp"))
        .args(["--json", "--data-dir"])
        .arg(dir)
        .args(args)
        .env("L402_MCP_DATABASE_URL", db)
        .env("L402_MCP_CONFIG", dir.join("none.toml"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let value = serde_json::from_str(&stdout).unwrap_or_else(|_| {
        panic!(
            "{args:?}: not JSON: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.success(), value)
}

/// The command line and the MCP server sell through the same store as the gateways when
/// `database_url` is set: a token minted by `l402-mcp challenge` is accepted by a gateway, one
/// bought at a gateway passes `l402-mcp verify`, and `l402-mcp sales` reports the gateways' sales.
#[tokio::test]
#[ignore = "needs PostgreSQL: tools/postgres/test.sh"]
async fn the_command_line_sells_through_the_shared_store() {
    let db = fresh_schema("gw_cli").await;
    let clock = ManualClock::new(T0);
    let gw = instance("gw1", &db, &clock, &[api(None, 0)]).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("none.toml"), "").unwrap();
    let (ok, c) = cli(
        dir.path(),
        &db,
        &["--wallet", "seller", "challenge", "10", "--service", "api"],
    );
    assert!(ok, "{c}");
    let (ok, paid) = cli(
        dir.path(),
        &db,
        &["--wallet", "buyer", "pay", c["invoice"].as_str().unwrap()],
    );
    assert!(ok, "{paid}");
    let auth = format!(
        "L402 {}:{}",
        c["macaroon"].as_str().unwrap(),
        paid["preimage"].as_str().unwrap()
    );
    assert_eq!(get(&gw, Some(&auth)).await, 200);
    // Bought at the gateway, verified by the command line.
    let bought = buy(&gw).await;
    let (ok, v) = cli(
        dir.path(),
        &db,
        &["--wallet", "seller", "verify", &bought, "--service", "api"],
    );
    assert!(ok && v["valid"] == true, "{v}");
    let (ok, s) = cli(dir.path(), &db, &["--wallet", "seller", "sales"]);
    assert!(ok, "{s}");
    assert_eq!(
        (s["count"].as_u64(), s["amount_msat"].as_u64()),
        (Some(2), Some(2 * PRICE_SATS * 1000))
    );
    // Without the database the command line sees its own ledger: neither token.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_l402-mcp"))
        .args(["--json", "--data-dir"])
        .arg(dir.path())
        .args(["--wallet", "seller", "verify", &bought, "--service", "api"])
        .env("L402_MCP_CONFIG", dir.path().join("none.toml"))
        .env_remove("L402_MCP_DATABASE_URL")
        .output()
        .unwrap();
    assert!(!out.status.success());
}
