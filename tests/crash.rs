//! A process killed in the middle of a payment: on the next start the payment is reconciled
//! through the wallet's lookup, nothing is paid twice, and budgets stay consistent.
//!
//! `L402_MCP_FAULT=<point>` makes the real binary abort at a point of the pay path (see
//! `src/fault.rs`), as a SIGKILL there would.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use l402_mcp::app::App;
use l402_mcp::clock::{ManualClock, SharedClock};
use l402_mcp::ledger::{Direction, Status};
use l402_mcp::pay::{PayRequest, RECONCILE_GRACE_SECS};
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
async fn crashed_while_paying(point: &str) -> (tempfile::TempDir, String, [u8; 32]) {
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

async fn out_payment(app: &App) -> l402_mcp::ledger::PaymentRecord {
    let rows = app
        .ledger
        .list_payments("buyer", Some(Direction::Out), 10)
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    rows.into_iter().next().unwrap()
}

#[tokio::test]
async fn killed_after_paying_is_recorded_as_paid_on_restart() {
    let (dir, bolt11, payment_hash) = crashed_while_paying("after-pay").await;
    let clock = l402_mcp::clock::system();

    // The money moved, but the dead process never recorded it.
    let buyer = App::open_embedded(dir.path(), "buyer", clock.clone())
        .await
        .unwrap(); // this start reconciles
    let p = out_payment(&buyer).await;
    assert_eq!(p.status, Status::Succeeded, "{p:?}");
    let preimage = p
        .preimage_bytes()
        .expect("preimage recovered through lookup");
    assert!(l402_mcp::l402::preimage_matches(&preimage, &payment_hash));
    assert_eq!(common::balance(&buyer).await, DEMO_GRANT_MSAT - 50_000);
    assert_eq!(
        buyer.ledger.totals("buyer").await.unwrap().spent_msat,
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
        buyer.ledger.totals("buyer").await.unwrap().reserved_msat,
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
    assert_eq!((totals.spent_msat, totals.reserved_msat), (0, 0));
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
