//! Budgets hold under concurrency: any number of payers, in one process or many, can never
//! exceed a cap together, and the ledger's sums match the wallets' balances afterwards.
// A failed step in a test or benchmark is a failed run: unwrapping is fine here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;
use std::sync::Arc;

use common::{balance, trade};
use l402_mcp::budget::{BudgetPolicy, BudgetRefusal};
use l402_mcp::pay::{PayError, PayRequest};
use l402_mcp::wallet::embedded::DEMO_GRANT_MSAT;

const PRICE_MSAT: u64 = 100_000; // 100 sats
const MAX_FEE_MSAT: u64 = 10_000; // the default fee floor: 10 sats

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_payments_against_a_budget_for_ten() {
    let t = trade().await;
    // Each payment holds price + max fee; the daily cap allows exactly ten of them.
    let policy = BudgetPolicy {
        daily_msat: 10 * (PRICE_MSAT + MAX_FEE_MSAT),
        ..Default::default()
    };
    assert_eq!(policy.max_fee_msat(PRICE_MSAT), MAX_FEE_MSAT);
    t.buyer
        .ledger
        .set_budget("buyer", &policy, common::T0)
        .await
        .unwrap();

    let mut invoices = Vec::new();
    for i in 0..50 {
        let (inv, _) = t
            .seller
            .seller
            .create_invoice(PRICE_MSAT, &format!("item {i}"), 600)
            .await
            .unwrap();
        invoices.push(inv.bolt11);
    }
    let buyer = Arc::new(t.buyer);
    let tasks: Vec<_> = invoices
        .into_iter()
        .map(|inv| {
            let buyer = buyer.clone();
            tokio::spawn(async move {
                buyer
                    .payer
                    .pay(&PayRequest {
                        invoice: &inv,
                        ..Default::default()
                    })
                    .await
            })
        })
        .collect();
    let mut paid = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => paid += 1,
            Err(PayError::Budget(BudgetRefusal::Window { .. })) => {}
            Err(e) => panic!("unexpected failure: {e}"),
        }
    }
    assert_eq!(paid, 10);

    // The ledger agrees with both wallets.
    let spent = buyer.ledger.totals("buyer").await.unwrap();
    assert_eq!(
        (spent.spent.msat(), spent.reserved.msat()),
        (10 * PRICE_MSAT, 0)
    );
    assert_eq!(balance(&buyer).await, DEMO_GRANT_MSAT - spent.spent.msat());
    assert_eq!(t.seller.seller.refresh_incoming().await.unwrap(), 10);
    let earned = t.seller.ledger.totals("seller").await.unwrap();
    assert_eq!(earned.received.msat(), 10 * PRICE_MSAT);
    assert_eq!(
        balance(&t.seller).await,
        DEMO_GRANT_MSAT + earned.received.msat()
    );
}

/// Twenty `l402-mcp pay` processes at once on one ledger file, budget for five.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_processes_against_a_budget_for_five() {
    let dir = tempfile::tempdir().unwrap();
    let clock = l402_mcp::clock::system();
    let seller = l402_mcp::app::App::open_embedded(dir.path(), "seller", clock.clone())
        .await
        .unwrap();
    let buyer = l402_mcp::app::App::open_embedded(dir.path(), "buyer", clock.clone())
        .await
        .unwrap();
    let policy = BudgetPolicy {
        daily_msat: 5 * (PRICE_MSAT + MAX_FEE_MSAT),
        ..Default::default()
    };
    buyer
        .ledger
        .set_budget("buyer", &policy, clock.now())
        .await
        .unwrap();

    let mut children = Vec::new();
    for i in 0..20 {
        let (inv, _) = seller
            .seller
            .create_invoice(PRICE_MSAT, &format!("item {i}"), 600)
            .await
            .unwrap();
        children.push(
            Command::new(env!("CARGO_BIN_EXE_l402-mcp"))
                .args([
                    "--data-dir",
                    dir.path().to_str().unwrap(),
                    "--wallet",
                    "buyer",
                    "--json",
                    "pay",
                    &inv.bolt11,
                ])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap(),
        );
    }
    let mut paid = 0;
    let mut refused = 0;
    for child in children {
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        if out.status.success() {
            paid += 1;
        } else if stdout.contains("budget exceeded") {
            refused += 1;
        } else {
            panic!(
                "unexpected: {stdout} {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    assert_eq!((paid, refused), (5, 15));
    let spent = buyer.ledger.totals("buyer").await.unwrap();
    assert_eq!(spent.spent.msat(), 5 * PRICE_MSAT);
    assert_eq!(balance(&buyer).await, DEMO_GRANT_MSAT - spent.spent.msat());
}

/// Several servers started at the same moment on a new data dir (an agent host starting two
/// MCP servers): every one comes up. Without the lock around creating and migrating the ledger
/// about a quarter of them died with "table payments already exists" or "database is locked".
#[test]
fn processes_starting_together_on_a_new_data_dir_all_come_up() {
    for _round in 0..8 {
        let dir = tempfile::tempdir().unwrap();
        let children: Vec<_> = ["a", "b", "c", "d"]
            .iter()
            .map(|w| {
                Command::new(env!("CARGO_BIN_EXE_l402-mcp"))
                    .args([
                        "--data-dir",
                        dir.path().to_str().unwrap(),
                        "--wallet",
                        w,
                        "balance",
                    ])
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for child in children {
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

/// Thirty parallel `fetch_paid` calls for thirty different paid resources of one seller, with a
/// budget for eight: exactly eight are bought, the others are refused by the budget, and the
/// ledger, the buyer's balance and the seller's sales agree.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_fetches_of_different_resources_never_exceed_the_budget() {
    use axum::http::{HeaderMap, header};
    use axum::response::IntoResponse;
    use l402_mcp::fetch::{FetchError, FetchRequest, Fetcher};

    let t = trade().await;
    let policy = BudgetPolicy {
        daily_msat: 8 * (PRICE_MSAT + MAX_FEE_MSAT),
        ..Default::default()
    };
    t.buyer
        .ledger
        .set_budget("buyer", &policy, common::T0)
        .await
        .unwrap();
    let seller = t.seller.seller.clone();
    let app = axum::Router::new().route(
        "/item/{n}",
        axum::routing::get(move |headers: HeaderMap| {
            let seller = seller.clone();
            async move {
                if let Some(auth) = headers
                    .get(header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    && seller
                        .verify_authorization(auth, None, None)
                        .await
                        .unwrap()
                        .valid
                {
                    return "item".into_response();
                }
                common::challenge_402(&seller, PRICE_MSAT).await
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let fetcher = Arc::new(
        Fetcher::new(
            t.buyer.payer.clone(),
            t.buyer.storage.tokens(),
            t.clock.clone(),
            l402_mcp::netguard::NetPolicy::loopback(),
        )
        .unwrap(),
    );
    let tasks: Vec<_> = (0..30)
        .map(|n| {
            let f = fetcher.clone();
            tokio::spawn(async move {
                f.fetch(&FetchRequest::get(&format!("http://{addr}/item/{n}")))
                    .await
            })
        })
        .collect();
    let (mut paid, mut refused) = (0, 0);
    for task in tasks {
        match task.await.unwrap() {
            Ok(r) => {
                assert_eq!((r.status, r.body.content.as_str()), (200, "item"));
                assert!(r.receipt.paid);
                paid += 1;
            }
            Err(FetchError::Pay(PayError::Budget(BudgetRefusal::Window { .. }))) => refused += 1,
            Err(e) => panic!("unexpected failure: {e}"),
        }
    }
    assert_eq!((paid, refused), (8, 22));
    let spent = t.buyer.ledger.totals("buyer").await.unwrap();
    assert_eq!(
        (spent.spent.msat(), spent.reserved.msat()),
        (8 * PRICE_MSAT, 0)
    );
    assert_eq!(balance(&t.buyer).await, DEMO_GRANT_MSAT - 8 * PRICE_MSAT);
    let sales = t.seller.seller.tokens().sales_since(0).await.unwrap();
    assert_eq!((sales.count, sales.amount.msat()), (8, 8 * PRICE_MSAT));
}
