//! A session's refund across a crash of the gateway: the real binary (`l402-mcp gateway`)
//! aborts right after closing a session (refund owed, not paid) or right after its wallet paid
//! the refund (the ledger not told); restarted, it pays the refund exactly once.
//!
//! `L402_MCP_FAULT=<point>` makes the process abort there, as a SIGKILL would (src/fault.rs).
// A failed step in a test is a failed test: unwrapping is fine here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use axum::Router;
use axum::routing::any;
use l402_mcp::app::App;
use l402_mcp::fetch::{FetchRequest, Fetcher, SchemePreference};
use l402_mcp::netguard::NetPolicy;
use l402_mcp::storage::{Direction, PaymentFilter, Status};

async fn upstream() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new().fallback(any(|| async { "the data" }));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

/// `l402-mcp gateway` selling /paid at 10 sats through Payment (charge and sessions), as
/// wallet "seller" of `dir`, on `port`.
fn gateway(dir: &Path, upstream: SocketAddr, port: u16, fault: Option<&str>) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_l402-mcp"));
    cmd.args([
        "--data-dir",
        dir.to_str().unwrap(),
        "--wallet",
        "seller",
        "gateway",
    ])
    .args(["--upstream", &format!("http://{upstream}")])
    .args([
        "--price",
        "10",
        "--path",
        "/paid",
        "--auth",
        "mpp",
        "--sessions",
    ])
    .args(["--listen", &format!("127.0.0.1:{port}")])
    .env_remove("L402_MCP_CONFIG")
    .env_remove("L402_MCP_BACKEND")
    .env("XDG_CONFIG_HOME", dir)
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    if let Some(point) = fault {
        cmd.env(l402_mcp::fault::FAULT_ENV, point);
    }
    cmd.spawn().unwrap()
}

async fn refunds(seller: &App) -> Vec<l402_mcp::storage::Payment> {
    seller
        .ledger
        .list_payments(
            "seller",
            &PaymentFilter {
                direction: Some(Direction::Out),
                ..Default::default()
            },
            10,
        )
        .await
        .unwrap()
}

async fn refund_after_crash_at(point: &str) {
    let dir = tempfile::tempdir().unwrap();
    let clock = l402_mcp::clock::system();
    let buyer = App::open_embedded(dir.path(), "buyer", clock.clone())
        .await
        .unwrap();
    let seller = App::open_embedded(dir.path(), "seller", clock.clone())
        .await
        .unwrap();
    let up = upstream().await;
    let port = common::free_port();
    let url = format!("http://127.0.0.1:{port}/paid");
    let mut first = gateway(dir.path(), up, port, Some(point));
    common::http_when_up(&url).await;

    let fetcher = Fetcher::new(
        buyer.payer.clone(),
        buyer.storage.tokens(),
        clock.clone(),
        NetPolicy::loopback(),
    )
    .unwrap()
    .with_sessions(buyer.storage.buyer_sessions())
    .prefer(SchemePreference::Session);
    let b0 = common::balance(&buyer).await;
    for _ in 0..3 {
        let r = fetcher.fetch(&FetchRequest::get(&url)).await.unwrap();
        assert_eq!(r.status, 200, "{:?}", r.body);
    }
    // Deposit 20 requests (200 sats), 3 served: 170 owed back.
    assert_eq!(common::balance(&buyer).await, b0 - 200_000);
    // The close reaches the gateway, which dies at the fault point.
    assert!(fetcher.close_sessions(None, None).await.is_err());
    let status = first.wait().unwrap();
    assert!(!status.success(), "the gateway should have died at {point}");
    let paid_before_restart = common::balance(&buyer).await;

    // Restarted: its first sweep pays what is owed, once.
    let mut second = gateway(dir.path(), up, port, None);
    common::http_when_up(&url).await;
    let mut settled = false;
    for _ in 0..100 {
        if common::balance(&buyer).await == b0 - 30_000 {
            settled = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        settled,
        "refund not paid after restart (buyer balance {})",
        common::balance(&buyer).await
    );
    if point == "refund-after-pay" {
        assert_eq!(
            paid_before_restart,
            b0 - 30_000,
            "the money moved before the crash"
        );
    } else {
        assert_eq!(
            paid_before_restart,
            b0 - 200_000,
            "nothing moved before the crash"
        );
    }
    // Exactly one refund in the seller's ledger, recorded as paid.
    let out = refunds(&seller).await;
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(
        (out[0].amount.msat(), out[0].status),
        (170_000, Status::Succeeded)
    );
    // A later sweep (the gateway runs one every half-minute) pays nothing more.
    let report = seller.mpp.settle_refunds().await.unwrap();
    assert_eq!(report, l402_mcp::mpp::RefundReport::default());
    assert_eq!(common::balance(&buyer).await, b0 - 30_000);
    // The buyer closes its side: the seller says closed; the refund is recorded as received.
    let closed = fetcher.close_sessions(None, None).await.unwrap();
    assert_eq!(closed.len(), 1);
    assert_eq!(closed[0].refund_received_msat, Some(170_000));
    assert_eq!(closed[0].spent_msat, Some(30_000));
    second.kill().unwrap();
    second.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refund_owed_when_the_gateway_died_is_paid_on_restart() {
    refund_after_crash_at("mpp-after-close").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refund_paid_when_the_gateway_died_is_not_paid_again() {
    refund_after_crash_at("refund-after-pay").await;
}
