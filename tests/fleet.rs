//! A fleet of agents on one PostgreSQL: `l402-mcp serve` processes with data dirs of their own
//! (as on several hosts), all naming one wallet, share its budget exactly; one killed in the
//! middle of a payment leaves nothing paid twice; a payment held for approval is paid once.
//!
//! Needs a server: `tools/postgres/test.sh` starts a throwaway one and runs these with
//! `L402_TEST_DATABASE_URL` set. Each test works in a schema of its own.
// A failed step in a test is a failed test: unwrapping is fine here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;

use common::agents::{Agent, call, failed, ok, spawn_agent};
use common::pg::fresh_schema;
use l402_mcp::app::App;
use l402_mcp::l402::Msat;
use l402_mcp::mint::Seller;
use l402_mcp::storage::Storage;
use l402_mcp::wallet::BackendConfig;
use l402_mcp::wallet::embedded::DEMO_GRANT_MSAT;
use serde_json::{Value, json};

const PRICE_SATS: u64 = 10;

/// A shop selling every path for `PRICE_SATS`, its wallet on the fleet's storage.
async fn shop(seller: Seller) -> SocketAddr {
    common::fixture::shop(seller, PRICE_SATS * 1000).await
}

/// An instance: its own data dir, the fleet's database, a budget from `config`.
async fn instance(
    db: &str,
    wallet: &str,
    config: &Path,
    extra: &[(&str, &str)],
) -> (Agent, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut env = vec![
        ("L402_MCP_DATABASE_URL", db),
        ("L402_MCP_CONFIG", config.to_str().unwrap()),
    ];
    env.extend_from_slice(extra);
    (
        spawn_agent(dir.path(), wallet, &env, Stdio::null()).await,
        dir,
    )
}

fn budget(dir: &Path, daily_sats: u64) -> std::path::PathBuf {
    let path = dir.join("config.toml");
    std::fs::write(
        &path,
        format!("[budget]\ndaily_sats = {daily_sats}\nmax_fee_sats = 0\nmax_fee_percent = 0\n"),
    )
    .unwrap();
    path
}

/// 50 `fetch_paid` calls at once, spread over three instances of one wallet, against a budget
/// for exactly seven payments: exactly seven are paid, and the ledger's sums are the wallets'
/// balances.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL: tools/postgres/test.sh"]
async fn three_instances_share_one_budget_exactly() {
    const K: u64 = 7;
    let db = fresh_schema("fleet_budget").await;
    let storage = Storage::connect_postgres(&db).await.unwrap();
    let here = tempfile::tempdir().unwrap();
    let clock = l402_mcp::clock::system();
    let seller = App::open_on(
        storage.clone(),
        here.path(),
        "shop",
        &BackendConfig::Embedded,
        clock,
    )
    .await
    .unwrap();
    let addr = shop(seller.seller.clone()).await;
    let config = budget(here.path(), K * PRICE_SATS);
    let mut agents = Vec::new();
    for _ in 0..3 {
        agents.push(instance(&db, "fleet", &config, &[]).await);
    }
    let calls: Vec<_> = (0..50)
        .map(|i| {
            let agent = agents[i % agents.len()].0.clone();
            let url = format!("http://{addr}/item/{i}");
            tokio::spawn(async move { call(&agent, "fetch_paid", json!({ "url": url })).await })
        })
        .collect();
    let (mut paid, mut refused) = (0, 0);
    for c in calls {
        let r = c.await.unwrap();
        if r.is_error == Some(true) {
            let text = failed(&r);
            assert!(text.starts_with("budget_exceeded"), "{text}");
            refused += 1;
        } else {
            let v = ok(&r);
            assert_eq!(
                (v["status"].as_u64(), v["receipt"]["paid"].as_bool()),
                (Some(200), Some(true)),
                "{v}"
            );
            paid += 1;
        }
    }
    assert_eq!((paid, refused), (K, 50 - K));

    // The books agree: the ledger's sums and the embedded wallets' balances.
    let ledger = storage.ledger();
    let (fleet, shop_totals) = (
        ledger.totals("fleet").await.unwrap(),
        ledger.totals("shop").await.unwrap(),
    );
    let spent = Msat::from_sats(K * PRICE_SATS).unwrap();
    assert_eq!((fleet.spent, fleet.reserved), (spent, Msat::ZERO));
    let books = storage.books();
    let grant = Msat::from_msat(DEMO_GRANT_MSAT);
    assert_eq!(
        books.balance("fleet").await.unwrap(),
        grant.checked_sub(spent).unwrap()
    );
    assert_eq!(
        books.balance("shop").await.unwrap(),
        grant.checked_add(spent).unwrap()
    );
    assert_eq!(
        shop_totals.received, spent,
        "each sale recorded as income once"
    );
    // Every instance reports the same, shared budget.
    for (agent, _) in &agents {
        let b = ok(&call(agent, "wallet_balance", json!({})).await);
        assert_eq!(
            b["budget"]["spent_24h_sats"].as_u64(),
            Some(K * PRICE_SATS),
            "{b}"
        );
        assert_eq!(
            b["balance_sats"].as_u64(),
            Some(grant.sats_floor() - K * PRICE_SATS)
        );
    }
}

/// An instance SIGKILLed right after the wallet paid: the embedded wallet recorded the payment
/// with its transfer. Left pending, as any other wallet leaves it (the ledger not yet told),
/// the next instance to start reconciles the payment (once) and rebuilds the credential, so
/// fetching the resource again from any instance pays nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL: tools/postgres/test.sh"]
async fn an_instance_killed_mid_payment_is_reconciled_once_by_another() {
    let db = fresh_schema("fleet_crash").await;
    let storage = Storage::connect_postgres(&db).await.unwrap();
    let here = tempfile::tempdir().unwrap();
    let clock = l402_mcp::clock::system();
    let seller = App::open_on(
        storage.clone(),
        here.path(),
        "shop",
        &BackendConfig::Embedded,
        clock,
    )
    .await
    .unwrap();
    let addr = shop(seller.seller.clone()).await;
    let config = budget(here.path(), 1_000);
    let url = format!("http://{addr}/report");

    // A live instance, and one that will stop right after paying.
    let (live, _live_dir) = instance(&db, "fleet", &config, &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("doomed.log");
    let doomed = {
        let (transport, _) = rmcp::transport::TokioChildProcess::builder(
            rmcp::transport::ConfigureCommandExt::configure(
                tokio::process::Command::new(common::agents::BIN),
                |c| {
                    c.args(["serve", "--wallet", "fleet", "--data-dir"])
                        .arg(dir.path())
                        .env("L402_MCP_FETCH_ALLOW_LOOPBACK", "1")
                        .env("L402_MCP_DATABASE_URL", &db)
                        .env("L402_MCP_CONFIG", &config)
                        .env(l402_mcp::fault::FAULT_ENV, "after-pay:pause");
                },
            ),
        )
        .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
        .spawn()
        .unwrap();
        use rmcp::ServiceExt;
        std::sync::Arc::new(().serve(transport).await.unwrap())
    };
    let stuck = {
        let (doomed, url) = (doomed.clone(), url.clone());
        tokio::spawn(async move { call(&doomed, "fetch_paid", json!({ "url": url })).await })
    };
    let mut pid = None;
    for _ in 0..200 {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| l.contains("fault injection: paused")) {
            pid = line
                .split("pid=")
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|p| p.parse::<u32>().ok());
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let pid = pid.expect("the instance never paused");
    assert!(
        std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
    stuck.abort();
    drop(doomed);

    // The money moved, and the embedded wallet recorded the payment and cached its
    // credential in the transfer's commit.
    let ledger = storage.ledger();
    let out = l402_mcp::storage::Direction::Out;
    let filter = l402_mcp::storage::PaymentFilter {
        direction: Some(out),
        ..Default::default()
    };
    let paid = ledger.list_payments("fleet", &filter, 10).await.unwrap();
    assert_eq!(paid.len(), 1, "{paid:?}");
    assert_eq!(paid[0].status, l402_mcp::storage::Status::Succeeded);
    assert!(paid[0].preimage.is_some());
    // Any other wallet is told apart from the ledger: rewind the row (and the credential) to
    // what such a wallet paying leaves, pending with nothing of the payment known.
    {
        use sqlx::Connection;
        let mut c = sqlx::PgConnection::connect(&db).await.unwrap();
        let cached: i64 =
            sqlx::query_scalar("SELECT count(*) FROM token_cache WHERE wallet = 'fleet'")
                .fetch_one(&mut c)
                .await
                .unwrap();
        assert_eq!(cached, 1, "the credential is cached with the record");
        sqlx::raw_sql(
            "UPDATE payments SET status = 'pending', preimage = NULL, settled_at = NULL,
                 reserved_msat = amount_msat + max_fee_msat WHERE wallet = 'fleet';
             DELETE FROM token_cache WHERE wallet = 'fleet'",
        )
        .execute(&mut c)
        .await
        .unwrap();
        let _ = c.close().await;
    }
    let pending = ledger.pending("fleet", out).await.unwrap();
    assert_eq!(pending.len(), 1, "{pending:?}");

    // The next instance to start reconciles it: paid, once, its credential cached again.
    let (next, _next_dir) = instance(&db, "fleet", &config, &[]).await;
    assert!(ledger.pending("fleet", out).await.unwrap().is_empty());
    for agent in [&next, &live] {
        let r = ok(&call(agent, "fetch_paid", json!({ "url": url })).await);
        assert_eq!(
            (
                r["status"].as_u64(),
                r["receipt"]["paid"].as_bool(),
                r["receipt"]["token_reused"].as_bool()
            ),
            (Some(200), Some(false), Some(true)),
            "{r}"
        );
    }
    let spent = Msat::from_sats(PRICE_SATS).unwrap();
    assert_eq!(ledger.totals("fleet").await.unwrap().spent, spent);
    let grant = Msat::from_msat(DEMO_GRANT_MSAT);
    assert_eq!(
        storage.books().balance("fleet").await.unwrap(),
        grant.checked_sub(spent).unwrap()
    );
    assert_eq!(
        storage.books().balance("shop").await.unwrap(),
        grant.checked_add(spent).unwrap()
    );
}

/// A payment held for a person on a fleet: two instances asked for the same resource hold one
/// question; two people approving it at once (two `l402-mcp approve` on the database) pay it
/// once; both instances then get the resource from the approval.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL: tools/postgres/test.sh"]
async fn an_approval_on_a_fleet_pays_once() {
    let db = fresh_schema("fleet_approval").await;
    let storage = Storage::connect_postgres(&db).await.unwrap();
    let here = tempfile::tempdir().unwrap();
    let seller = App::open_on(
        storage.clone(),
        here.path(),
        "shop",
        &BackendConfig::Embedded,
        l402_mcp::clock::system(),
    )
    .await
    .unwrap();
    let addr = shop(seller.seller.clone()).await;
    let config = budget(here.path(), 1_000);
    let held = [("L402_MCP_APPROVAL_ABOVE_SATS", "1")];
    let (a, _a_dir) = instance(&db, "fleet", &config, &held).await;
    let (b, _b_dir) = instance(&db, "fleet", &config, &held).await;
    let url = format!("http://{addr}/report");
    let id_of = |text: String| {
        assert!(text.starts_with("approval_required"), "{text}");
        text.split("(approval ")
            .nth(1)
            .and_then(|r| r.split(',').next())
            .unwrap()
            .to_owned()
    };
    let id = id_of(failed(&call(&a, "fetch_paid", json!({ "url": url })).await));
    assert_eq!(
        id_of(failed(&call(&b, "fetch_paid", json!({ "url": url })).await)),
        id,
        "one question for the fleet"
    );

    let approver = || {
        let dir = tempfile::tempdir().unwrap();
        let child = tokio::process::Command::new("setsid")
            .arg(common::agents::BIN)
            .args(["--json", "--wallet", "fleet", "--data-dir"])
            .arg(dir.path())
            .args(["approve", &id])
            .env("L402_MCP_DATABASE_URL", &db)
            .env("L402_MCP_CONFIG", &config)
            .output();
        async move {
            let out = child.await.unwrap();
            drop(dir);
            out
        }
    };
    let (one, two) = tokio::join!(approver(), approver());
    let codes: Vec<Value> = [&one, &two]
        .iter()
        .map(|o| serde_json::from_slice(&o.stdout).unwrap())
        .collect();
    let paid = codes.iter().filter(|v| v["paid"] == true).count();
    let refused = codes
        .iter()
        .filter(|v| v["code"] == "approval_not_pending")
        .count();
    assert_eq!((paid, refused), (1, 1), "{codes:?}");

    for agent in [&a, &b] {
        let r = ok(&call(agent, "fetch_paid", json!({ "url": url })).await);
        assert_eq!(
            (r["status"].as_u64(), r["receipt"]["token_reused"].as_bool()),
            (Some(200), Some(true)),
            "{r}"
        );
    }
    let spent = Msat::from_sats(PRICE_SATS).unwrap();
    let ledger = storage.ledger();
    assert_eq!(
        ledger.totals("fleet").await.unwrap().spent,
        spent,
        "paid once"
    );
    assert_eq!(
        storage.books().balance("shop").await.unwrap(),
        Msat::from_msat(DEMO_GRANT_MSAT).checked_add(spent).unwrap()
    );
}
