//! A process killed in the middle of a payment: on the next start the payment is reconciled
//! through the wallet's lookup, nothing is paid twice, and budgets stay consistent.
//!
//! `L402_MCP_FAULT=<point>` makes the real binary abort at a point of the pay path (see
//! `src/fault.rs`), as a SIGKILL there would.
// A failed step in a test or benchmark is a failed run: unwrapping is fine here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::{Command, Output};

use l402_mcp::app::App;
use l402_mcp::clock::{ManualClock, SharedClock};
use l402_mcp::pay::{PayRequest, RECONCILE_GRACE_SECS};
use l402_mcp::storage::{Direction, Status};
use l402_mcp::wallet::embedded::DEMO_GRANT_MSAT;

fn cli(dir: &Path, fault: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_l402-mcp"));
    cmd.args(["--data-dir", dir.to_str().unwrap(), "--wallet", "buyer"])
        .args(args);
    if let Some(point) = fault {
        cmd.env(l402_mcp::fault::FAULT_ENV, point);
    }
    cmd.output().unwrap()
}

/// A seller's invoice for 50 sats, and a buyer process that died at `point` while paying it.
async fn crashed_while_paying(
    point: &str,
) -> (tempfile::TempDir, String, l402_mcp::l402::PaymentHash) {
    let dir = tempfile::tempdir().unwrap();
    let seller = App::open_embedded(dir.path(), "seller", l402_mcp::clock::system())
        .await
        .unwrap();
    let (inv, _) = seller
        .seller
        .create_invoice(50_000, "crash", 600)
        .await
        .unwrap();
    let out = cli(dir.path(), Some(point), &["pay", &inv.bolt11]);
    assert!(
        !out.status.success(),
        "the process should have died at {point}"
    );
    (dir, inv.bolt11, inv.payment_hash)
}

async fn out_payment(app: &App) -> l402_mcp::storage::Payment {
    let rows = app
        .ledger
        .list_payments(
            "buyer",
            &l402_mcp::storage::PaymentFilter {
                direction: Some(Direction::Out),
                ..Default::default()
            },
            10,
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    rows.into_iter().next().unwrap()
}

/// The embedded wallet records a payment in the commit that moves the money: a process killed
/// right after paying left it recorded, with nothing to reconcile.
#[tokio::test]
async fn an_embedded_payment_is_recorded_with_its_transfer() {
    let (dir, _, payment_hash) = crashed_while_paying("after-pay").await;
    // The ledger as the dead process left it: opened without reconciling.
    let storage = l402_mcp::storage::Storage::open_sqlite(dir.path())
        .await
        .unwrap();
    let p = storage
        .ledger()
        .payment_by_hash("buyer", Direction::Out, &payment_hash)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(p.status, Status::Succeeded, "{p:?}");
    assert!(l402_mcp::l402::preimage_matches(
        &p.preimage.unwrap(),
        &payment_hash
    ));
    assert_eq!(p.reserved.msat(), 0);
}

#[tokio::test]
async fn killed_after_paying_is_recorded_as_paid_on_restart() {
    let (dir, bolt11, payment_hash) = crashed_while_paying("after-pay").await;
    let clock = l402_mcp::clock::system();

    // The money moved (and the embedded wallet recorded it with the transfer: see above).
    let buyer = App::open_embedded(dir.path(), "buyer", clock.clone())
        .await
        .unwrap(); // this start reconciles
    let p = out_payment(&buyer).await;
    assert_eq!(p.status, Status::Succeeded, "{p:?}");
    let preimage = p.preimage.expect("preimage recovered through lookup");
    assert!(l402_mcp::l402::preimage_matches(&preimage, &payment_hash));
    assert_eq!(common::balance(&buyer).await, DEMO_GRANT_MSAT - 50_000);
    assert_eq!(
        buyer.ledger.totals("buyer").await.unwrap().spent.msat(),
        50_000
    );

    // Paying the same invoice again spends nothing.
    let again = cli(dir.path(), None, &["--json", "pay", &bolt11]);
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("\"already_paid\": true"),
        "{again:?}"
    );
    assert_eq!(common::balance(&buyer).await, DEMO_GRANT_MSAT - 50_000);
}

#[tokio::test]
async fn killed_after_reserving_is_released_on_restart() {
    let (dir, bolt11, _) = crashed_while_paying("after-reserve").await;
    let system = l402_mcp::clock::system();

    // Restarted at once: the wallet has no record yet, and another process could still be
    // paying it, so the reservation is held for the grace period.
    let buyer = App::open_embedded(dir.path(), "buyer", system.clone())
        .await
        .unwrap();
    let p = out_payment(&buyer).await;
    assert_eq!(p.status, Status::Pending);
    assert_eq!(
        buyer.ledger.totals("buyer").await.unwrap().reserved.msat(),
        50_000 + 10_000
    );
    drop(buyer);

    // Started again after the grace period: released, and nothing was paid.
    let later = ManualClock::new(system.now() + RECONCILE_GRACE_SECS + 1);
    let later: SharedClock = later;
    let buyer = App::open_embedded(dir.path(), "buyer", later)
        .await
        .unwrap();
    let p = out_payment(&buyer).await;
    assert_eq!(p.status, Status::Failed, "{p:?}");
    let totals = buyer.ledger.totals("buyer").await.unwrap();
    assert_eq!((totals.spent.msat(), totals.reserved.msat()), (0, 0));
    assert_eq!(common::balance(&buyer).await, DEMO_GRANT_MSAT);

    // The invoice can now be paid, once.
    let r = buyer
        .payer
        .pay(&PayRequest {
            invoice: &bolt11,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(!r.already_paid);
    assert_eq!(common::balance(&buyer).await, DEMO_GRANT_MSAT - 50_000);
}

/// `l402-mcp serve` killed with SIGKILL in the middle of a `fetch_paid`, then started again.
/// After paying (the wallet settled, the ledger not yet told): the restart reconciles the
/// payment as paid and rebuilds the credential it bought, so the next `fetch_paid` gets the
/// data without paying again. After reserving (nothing paid): the reservation holds until the
/// grace period, the next `fetch_paid` pays once, and nothing is ever paid twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_killed_with_sigkill_mid_payment_is_reconciled_on_restart() {
    use common::agents::{JOKE_SATS, balance_sats, call, ok, seller_api, spawn_agent};
    use serde_json::json;
    use std::process::Stdio;

    for point in ["after-pay", "after-reserve"] {
        let dir = tempfile::tempdir().unwrap();
        let seller = spawn_agent(dir.path(), "seller", &[], Stdio::null()).await;
        let addr = seller_api(seller.clone()).await;
        let url = format!("http://{addr}/joke");
        let log = dir.path().join("buyer.log");
        let fault = format!("{point}:pause");
        let buyer = spawn_agent(
            dir.path(),
            "buyer",
            &[(l402_mcp::fault::FAULT_ENV, fault.as_str())],
            Stdio::from(std::fs::File::create(&log).unwrap()),
        )
        .await;
        let stuck = {
            let (buyer, url) = (buyer.clone(), url.clone());
            tokio::spawn(async move { call(&buyer, "fetch_paid", json!({ "url": url })).await })
        };
        // Wait for the pause, then SIGKILL the process where it stands.
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
        let pid = pid.unwrap_or_else(|| panic!("{point}: the buyer never paused"));
        let killed = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        stuck.abort();
        drop(buyer);

        // Started again (no fault): the start reconciles what the dead process left.
        let buyer = spawn_agent(dir.path(), "buyer", &[], Stdio::null()).await;
        let r = ok(&call(&buyer, "fetch_paid", json!({ "url": url })).await);
        assert_eq!(r["status"], 200, "{point}: {r}");
        let out = ok(&call(&buyer, "list_payments", json!({ "direction": "out" })).await);
        let payments = out["payments"].as_array().unwrap().clone();
        match point {
            "after-pay" => {
                assert_eq!(
                    (
                        r["receipt"]["paid"].as_bool(),
                        r["receipt"]["token_reused"].as_bool()
                    ),
                    (Some(false), Some(true)),
                    "{r}"
                );
                assert_eq!(payments.len(), 1, "{out}");
                assert_eq!(payments[0]["status"], "succeeded");
            }
            _ => {
                // Nothing was paid before the kill: paid now, once; the dead reservation is
                // still held (it may still be paid by someone else until the grace period).
                assert_eq!(r["receipt"]["paid"], true, "{r}");
                let statuses: Vec<&str> = payments
                    .iter()
                    .map(|p| p["status"].as_str().unwrap())
                    .collect();
                assert_eq!(statuses, ["succeeded", "pending"], "{out}");
            }
        }
        // Money moved exactly once, and the buyer's budget shows the spend.
        assert_eq!(balance_sats(&buyer).await, 100_000 - JOKE_SATS, "{point}");
        assert_eq!(balance_sats(&seller).await, 100_000 + JOKE_SATS, "{point}");
        let b = ok(&call(&buyer, "wallet_balance", json!({})).await);
        assert_eq!(
            b["budget"]["spent_24h_sats"].as_u64(),
            Some(JOKE_SATS),
            "{b}"
        );
    }
}
