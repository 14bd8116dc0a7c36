//! Numbers at the edges, through MCP: every numeric tool argument out of its range is an
//! `invalid_request` that names the range (not a wallet or ledger error, not a token that can
//! never be used), and a value in the ledger that cannot be right fails loudly instead of
//! reading as 0.
// A failed step in a test or benchmark is a failed run: unwrapping is fine here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Stdio;

use common::agents::{call, failed, ok, spawn_agent};
use common::foreign_invoice;
use l402_mcp::bolt11::Network;
use serde_json::{Value, json};

const MAX: u64 = u64::MAX;
const TOO_MANY_SATS: u64 = 10_000_000_000_000_000; // above 21 million BTC

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numbers_out_of_range_are_invalid_requests_naming_the_range() {
    let dir = tempfile::tempdir().unwrap();
    let agent = spawn_agent(dir.path(), "seller", &[], Stdio::null()).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let bolt11 = foreign_invoice(Network::Regtest, Some(1_000), now, 600);
    let sats_range = "from 1 to 2100000000000000";
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "create_l402_challenge",
            json!({ "amount_sats": 5, "max_uses": 0 }),
            "max_uses must be from 1 to 1000000000",
        ),
        (
            "create_l402_challenge",
            json!({ "amount_sats": 5, "max_uses": MAX }),
            "max_uses must be from 1 to 1000000000",
        ),
        (
            "create_l402_challenge",
            json!({ "amount_sats": TOO_MANY_SATS }),
            sats_range,
        ),
        (
            "create_l402_challenge",
            json!({ "amount_sats": 5, "expiry_secs": MAX }),
            "expiry_secs must be from 1 to 31536000",
        ),
        (
            "create_l402_challenge",
            json!({ "amount_sats": 5, "valid_for_secs": MAX }),
            "valid_for_secs must be from 1 to 315360000",
        ),
        (
            "create_l402_challenge",
            json!({ "amount_sats": 5, "valid_for_secs": 0 }),
            "valid_for_secs must be from 1 to 315360000",
        ),
        (
            "create_invoice",
            json!({ "amount_sats": TOO_MANY_SATS }),
            sats_range,
        ),
        ("create_invoice", json!({ "amount_sats": MAX }), sats_range),
        (
            "create_invoice",
            json!({ "amount_sats": 1, "expiry_secs": MAX }),
            "expiry_secs must be from 1 to 31536000",
        ),
        (
            "create_invoice",
            json!({ "amount_sats": 1, "expiry_secs": 0 }),
            "expiry_secs must be from 1 to 31536000",
        ),
        (
            "fetch_paid",
            json!({ "url": "http://127.0.0.1:1/", "max_price_sats": MAX }),
            "max_price_sats must be from 0 to 2100000000000000",
        ),
        (
            "fetch_paid",
            json!({ "url": "http://127.0.0.1:1/", "timeout_secs": 301 }),
            "timeout_secs must be from 1 to 300",
        ),
        (
            "fetch_paid",
            json!({ "url": "http://127.0.0.1:1/", "max_response_bytes": 0 }),
            "max_response_bytes must be from 1 to 16777216",
        ),
        (
            "pay_invoice",
            json!({ "bolt11": bolt11, "max_fee_sats": MAX }),
            "max_fee_sats must be from 0 to 2100000000000000",
        ),
        (
            "list_payments",
            json!({ "limit": 0 }),
            "limit must be from 1 to 200",
        ),
        (
            "list_payments",
            json!({ "limit": 201 }),
            "limit must be from 1 to 200",
        ),
    ];
    for (tool, args, range) in cases {
        let msg = failed(&call(&agent, tool, args.clone()).await);
        assert!(
            msg.starts_with("invalid_request") && msg.contains(range),
            "{tool} {args}: expected invalid_request with {range:?}, got {msg}"
        );
    }
    // Refused before anything was made: no invoice, no payment.
    let payments = ok(&call(&agent, "list_payments", json!({})).await);
    assert_eq!(payments["payments"], json!([]), "{payments}");
}

/// The ledger file edited by hand (or damaged): negative amounts and balances.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_ledger_value_fails_loudly_instead_of_reading_as_zero() {
    let dir = tempfile::tempdir().unwrap();
    let seller = spawn_agent(dir.path(), "seller", &[], Stdio::null()).await;
    let buyer = spawn_agent(dir.path(), "buyer", &[], Stdio::null()).await;
    let inv = ok(&call(&seller, "create_invoice", json!({ "amount_sats": 7 })).await);
    ok(&call(&buyer, "pay_invoice", json!({ "bolt11": inv["bolt11"] })).await);

    // The schema's CHECK constraints stop this; a damaged file or a hand edit does not ask.
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(dir.path().join("ledger.sqlite"))
        .pragma("ignore_check_constraints", "ON");
    let db = sqlx::SqlitePool::connect_with(options).await.unwrap();
    sqlx::query("UPDATE payments SET amount_msat = -7000 WHERE wallet = 'buyer'")
        .execute(&db)
        .await
        .unwrap();
    let msg = failed(&call(&buyer, "list_payments", json!({})).await);
    assert!(
        msg.starts_with("ledger_corrupt") && msg.contains("-7000"),
        "{msg}"
    );

    sqlx::query("UPDATE embedded_wallets SET balance_msat = -1 WHERE name = 'seller'")
        .execute(&db)
        .await
        .unwrap();
    let msg = failed(&call(&seller, "wallet_balance", json!({})).await);
    assert!(msg.starts_with("ledger_corrupt"), "{msg}");
    db.close().await;
}
