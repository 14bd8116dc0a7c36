//! Several gateway instances on one PostgreSQL: two paywalls over two sellers (in two data dirs,
//! as on two machines), each in front of its own upstream, both keeping everything on the same
//! database. One N-use token, one free tier and one sales book across both. (The storage's own
//! rules, on both engines, are `tests/storage_conformance.rs`.)
//!
//! Needs a server: `tools/postgres/test.sh` starts a throwaway one and runs these with
//! `L402_TEST_DATABASE_URL` set. Each test works in a schema of its own, made afresh.
// A failed step in a test or benchmark is a failed run: unwrapping is fine here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use common::fixture::listen_gateway;
use common::pg::fresh_schema;
use l402_mcp::app::App;
use l402_mcp::clock::{ManualClock, SharedClock};
use l402_mcp::gateway::discovery::About;
use l402_mcp::gateway::{self, Paywall, Price, Route};
use l402_mcp::l402::{Credential, Scheme, b64};
use l402_mcp::storage::{SellerStore, Storage};
use l402_mcp::wallet::BackendConfig;
use serde_json::Value;
use sqlx::{Connection, PgConnection};

const T0: u64 = 1_800_000_000;
const PRICE_SATS: u64 = 10;

/// One gateway instance: its own data dir, seller wallet, buyer wallet (to pay its invoices)
/// and upstream, with tokens and counters in PostgreSQL.
struct Instance {
    addr: SocketAddr,
    buyer: App,
    storage: Storage,
    store: Arc<dyn SellerStore>,
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

async fn instance(
    name: &str,
    db: &str,
    clock: &Arc<ManualClock>,
    routes: &[Route],
    mpp: bool,
) -> Instance {
    let dir = tempfile::tempdir().unwrap();
    let shared: SharedClock = clock.clone();
    let storage = Storage::connect_postgres(db).await.unwrap();
    let open = |wallet: &'static str| {
        App::open_on(
            storage.clone(),
            dir.path(),
            wallet,
            &BackendConfig::Embedded,
            shared.clone(),
        )
    };
    let seller = open(if name == "gw1" { "gw1" } else { "gw2" })
        .await
        .unwrap();
    let buyer = open("buyer").await.unwrap();
    let store = storage.seller();
    let mut paywall = Paywall::new(seller.seller.clone(), routes.to_vec());
    if mpp {
        // One realm for the service, whichever instance answers.
        paywall = paywall.with_mpp(seller.mpp.clone().with_realm("api.shared").unwrap());
    }
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
    let app = gateway::app(paywall, &format!("http://{upstream}"), about, &[]).unwrap();
    Instance {
        addr: listen_gateway(app).await,
        buyer,
        storage,
        store,
        served,
        _seller: seller,
        _dir: dir,
    }
}

/// Two instances on schema `schema`, sharing a clock.
async fn two_instances(schema: &str, routes: &[Route]) -> (Instance, Instance, Arc<ManualClock>) {
    two_instances_selling(schema, routes, false).await
}

/// Two instances, selling through the Payment scheme too when `mpp`.
async fn two_instances_selling(
    schema: &str,
    routes: &[Route],
    mpp: bool,
) -> (Instance, Instance, Arc<ManualClock>) {
    let db = fresh_schema(schema).await;
    let clock = ManualClock::new(T0);
    let a = instance("gw1", &db, &clock, routes, mpp).await;
    let b = instance("gw2", &db, &clock, routes, mpp).await;
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

async fn sales(store: &Arc<dyn SellerStore>) -> (u64, u64) {
    let s = store.sales_since(0).await.unwrap();
    (s.count, s.amount.msat())
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
        &l402_mcp::l402::Preimage([7; 32]),
    );
    assert_eq!(get(&a, Some(&forged)).await, 402);
    let one = (1, PRICE_SATS * 1000);
    assert_eq!((sales(&a.store).await, sales(&b.store).await), (one, one));
    // And the other way round: minted at 1, accepted at 2; two sales in all.
    let auth = buy(&a).await;
    assert_eq!(get(&b, Some(&auth)).await, 200);
    assert_eq!(sales(&b.store).await, (2, 2 * PRICE_SATS * 1000));
}

/// Both instances keep a verified token's root key in memory; a revocation at one reaches the
/// other through PostgreSQL's notifications (delivered after the commit, so the other is
/// asked until it refuses; without them it would serve the token from memory for 30 s).
#[tokio::test]
#[ignore = "needs PostgreSQL: tools/postgres/test.sh"]
async fn a_token_revoked_at_one_instance_is_refused_at_the_other() {
    let (a, b, _) = two_instances("gw_revoke", &[api(None, 0)]).await;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while !(a.storage.verify_cache_live() && b.storage.verify_cache_live()) {
        assert!(tokio::time::Instant::now() < deadline, "no listener");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let auth = buy(&a).await;
    // Verified at both, then from memory at both.
    for at in [&a, &b, &a, &b] {
        assert_eq!(get(at, Some(&auth)).await, 200);
    }
    let mac =
        l402_mcp::l402::Macaroon::deserialize(&Credential::parse(&auth).unwrap().macaroons[0])
            .unwrap();
    assert!(
        a.store
            .revoke(&l402_mcp::l402::sha256(mac.identifier()))
            .await
            .unwrap()
    );
    assert_eq!(
        get(&a, Some(&auth)).await,
        402,
        "refused at once where revoked"
    );
    while get(&b, Some(&auth)).await != 402 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the other instance still serves a revoked token"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(get(&b, Some(&auth)).await, 402);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL: tools/postgres/test.sh"]
async fn instances_starting_together_migrate_once() {
    let db = fresh_schema("gw_migrate").await;
    let starts: Vec<_> = (0..8)
        .map(|_| {
            let db = db.clone();
            tokio::spawn(async move { Storage::connect_postgres(&db).await.map(|_| ()) })
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
    // Every migration of the folder, once, in order.
    let mut expected: Vec<(i64, bool)> = std::fs::read_dir(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/postgres"),
    )
    .unwrap()
    .filter_map(|e| {
        let name = e.unwrap().file_name().into_string().unwrap();
        name.split('_').next()?.parse().ok().map(|v| (v, true))
    })
    .collect();
    expected.sort();
    assert_eq!(applied, expected);
    // A later start finds nothing to do.
    Storage::connect_postgres(&db).await.unwrap();
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
    let e = Storage::connect_postgres(bad.as_str()).await.unwrap_err();
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
    let store = Storage::connect_postgres(&db).await.unwrap();
    assert!(!format!("{store:?}").contains(&real));
}

/// No server needed: nothing listens on port 1.
#[tokio::test]
async fn an_unreachable_server_is_named_without_its_password() {
    let e = Storage::connect_postgres("postgres://l402:Hunter2Hunter2@127.0.0.1:1/l402")
        .await
        .unwrap_err()
        .to_string();
    assert!(!e.contains("Hunter2"), "{e}");
    assert!(
        e.contains("postgres://l402:***@127.0.0.1:1/l402") && e.contains("database_url"),
        "{e}"
    );
    let e = Storage::connect_postgres("mysql://l402:Hunter2Hunter2@127.0.0.1/l402")
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
    let gw = instance("gw1", &db, &clock, &[api(None, 0)], false).await;
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

/// GET /api at `at` with `auth`: the status and the Payment offers of a 402.
async fn payment_get(
    at: &Instance,
    auth: Option<&str>,
) -> (u16, Vec<l402_mcp::l402::mpp::PaymentChallenge>) {
    let mut req = http().get(format!("http://{}/api", at.addr));
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let r = req.send().await.unwrap();
    let lines: Vec<String> = r
        .headers()
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let offers = l402_mcp::l402::mpp::challenge::parse_headers(lines.iter().map(String::as_str));
    (r.status().as_u16(), offers.challenges)
}

#[tokio::test]
#[ignore = "needs PostgreSQL: tools/postgres/test.sh"]
async fn payment_charges_and_sessions_are_shared_across_instances() {
    use l402_mcp::l402::mpp::lightning::{ChargeRequest, Payload, SessionRequest};
    use l402_mcp::l402::mpp::{PaymentChallenge, credential};
    let mut route = api(None, 0);
    route.auth = l402_mcp::gateway::AuthMode::Mpp;
    route.sessions = true;
    route.session_deposit_requests = Some(3);
    let (a, b, _) = two_instances_selling("gw_mpp", &[route], true).await;
    let pay = |invoice: String| {
        let buyer = &a.buyer;
        async move {
            buyer
                .payer
                .pay(&l402_mcp::pay::PayRequest {
                    invoice: &invoice,
                    ..Default::default()
                })
                .await
                .unwrap()
                .preimage
        }
    };
    let offer = |offers: &[PaymentChallenge], intent: &str| {
        offers.iter().find(|c| c.intent == intent).unwrap().clone()
    };

    // A charge minted by A (the HMAC secret is shared) is accepted by B, once, on any instance.
    let (status, offers) = payment_get(&a, None).await;
    assert_eq!(status, 402);
    let charge = offer(&offers, "charge");
    let r = ChargeRequest::parse(&charge.request_json().unwrap()).unwrap();
    let preimage = pay(r.invoice).await;
    let auth = credential::authorization(&charge, &Payload::Charge { preimage });
    assert_eq!(payment_get(&b, Some(&auth)).await.0, 200);
    assert_eq!(
        payment_get(&a, Some(&auth)).await.0,
        402,
        "replayed at another instance"
    );
    assert_eq!(payment_get(&b, Some(&auth)).await.0, 402);

    // A session opened at A is spent at B; its deposit (3 requests) is never spent twice.
    let session = offer(&offers, "session");
    let r = SessionRequest::parse(&session.request_json().unwrap()).unwrap();
    let deposit_preimage = pay(r.deposit_invoice.clone()).await;
    let ret = a
        .buyer
        .wallet
        .create_amountless_invoice("refund", 86_400)
        .await
        .unwrap();
    let open = credential::authorization(
        &session,
        &Payload::Open {
            preimage: deposit_preimage,
            return_invoice: ret.bolt11.clone(),
        },
    );
    assert_eq!(payment_get(&a, Some(&open)).await.0, 200);
    let bearer = credential::authorization(
        &session,
        &Payload::Bearer {
            session_id: r.payment_hash,
            preimage: deposit_preimage,
        },
    );
    assert_eq!(payment_get(&b, Some(&bearer)).await.0, 200);
    assert_eq!(payment_get(&a, Some(&bearer)).await.0, 200);
    assert_eq!(
        payment_get(&b, Some(&bearer)).await.0,
        402,
        "3 requests' deposit, spent"
    );
    assert_eq!(
        a.served.load(Ordering::SeqCst) + b.served.load(Ordering::SeqCst),
        4
    );
    // Closed at B: nothing left to refund; a second close (at A) is refused.
    let close = credential::authorization(
        &session,
        &Payload::Close {
            session_id: r.payment_hash,
            preimage: deposit_preimage,
        },
    );
    assert_eq!(payment_get(&b, Some(&close)).await.0, 200);
    assert_eq!(payment_get(&a, Some(&close)).await.0, 402);
}
