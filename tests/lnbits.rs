//! The LNbits backend against a real LNbits 1.6.2 (FakeWallet funding source, two funded
//! wallets A and B) that `tools/lnbits/test.sh` starts: the `Wallet` trait directly, the whole
//! buy/sell loop between two `l402-mcp serve` agents, failures, and `l402-mcp doctor`.
//!
//! Ignored in a plain `cargo test`; `tools/lnbits/test.sh` runs them one at a time (they share
//! the two wallets, so every check is relative to what a test saw when it started).
// A failed step in a test or benchmark is a failed run: unwrapping is fine here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Stdio;

use common::agents::{BIN, JOKE_SATS, call, failed, ok, seller_api, spawn_agent};
use l402_mcp::bolt11::{self, DecodedInvoice, Network};
use l402_mcp::wallet::lnbits::{LnbitsConfig, LnbitsWallet};
use l402_mcp::wallet::{IncomingStatus, InvoiceRequest, OutgoingStatus, Wallet, WalletError};
use serde_json::{Value, json};

/// One LNbits wallet's keys.
#[derive(Clone)]
struct Keys {
    admin: String,
    invoice: String,
}

/// Where the LNbits of `tools/lnbits/test.sh` is.
struct Lnbits {
    url: String,
    a: Keys,
    b: Keys,
}

fn env(name: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| {
            panic!("{name} is not set: run tools/lnbits/test.sh, which starts LNbits and sets it")
        })
}

fn lnbits() -> Lnbits {
    l402_mcp::init_tls();
    Lnbits {
        url: env("LNBITS_TEST_URL"),
        a: Keys {
            admin: env("LNBITS_TEST_A_ADMIN"),
            invoice: env("LNBITS_TEST_A_INVOICE"),
        },
        b: Keys {
            admin: env("LNBITS_TEST_B_ADMIN"),
            invoice: env("LNBITS_TEST_B_INVOICE"),
        },
    }
}

fn config(url: &str, admin: Option<&str>, invoice: Option<&str>) -> LnbitsConfig {
    let mut t = toml::Table::new();
    t.insert("url".into(), url.into());
    if let Some(k) = admin {
        t.insert("admin_key".into(), k.into());
    }
    if let Some(k) = invoice {
        t.insert("invoice_key".into(), k.into());
    }
    t.insert("timeout_secs".into(), 20.into());
    // As the `[backend]` section gives it.
    serde::Deserialize::deserialize(toml::Value::Table(t)).expect("lnbits config")
}

fn wallet(url: &str, keys: &Keys) -> LnbitsWallet {
    LnbitsWallet::new(&config(url, Some(&keys.admin), Some(&keys.invoice))).expect("wallet")
}

/// LNbits' own answer to a GET, with `key`.
async fn lnbits_get(url: &str, key: &str, path: &str) -> Value {
    let resp = reqwest::Client::new()
        .get(format!("{url}{path}"))
        .header("X-Api-Key", key)
        .send()
        .await
        .expect("LNbits GET");
    assert!(resp.status().is_success(), "GET {path}: {}", resp.status());
    resp.json().await.expect("LNbits JSON")
}

/// The wallet's balance in msat, as LNbits itself says.
async fn lnbits_balance(url: &str, keys: &Keys) -> u64 {
    lnbits_get(url, &keys.invoice, "/api/v1/wallet").await["balance"]
        .as_u64()
        .expect("balance")
}

/// LNbits' own list of the wallet's outgoing payments: (checking id, hash, msat, status).
async fn lnbits_outgoing(url: &str, keys: &Keys) -> Vec<(String, String, u64, String)> {
    // The plain list leaves failed payments out; the paginated one has them all.
    let page = lnbits_get(url, &keys.invoice, "/api/v1/payments/paginated?limit=10000").await;
    page["data"]
        .as_array()
        .expect("payment list")
        .iter()
        .filter(|p| p["amount"].as_i64().is_some_and(|a| a < 0))
        .map(|p| {
            (
                p["checking_id"].as_str().unwrap_or_default().to_owned(),
                p["payment_hash"].as_str().unwrap_or_default().to_owned(),
                p["amount"].as_i64().unwrap_or_default().unsigned_abs(),
                p["status"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

async fn invoice(w: &LnbitsWallet, sats: u64, memo: &str) -> DecodedInvoice {
    let created = w
        .create_invoice(&InvoiceRequest {
            amount_msat: sats * 1000,
            description: memo.into(),
            expiry_secs: 600,
        })
        .await
        .expect("create invoice");
    let d = bolt11::decode(&created.bolt11).expect("LNbits invoice decodes");
    assert_eq!(d.payment_hash, created.payment_hash);
    assert_eq!(d.expires_at(), created.expires_at);
    d
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// A mainnet invoice signed by a random key: no LNbits wallet made it.
fn foreign_invoice(sats: u64) -> String {
    common::fixture::random_invoice(Network::Mainnet, sats * 1000, now()).0
}

/// Env for an `l402-mcp` process on LNbits with these keys (no config file from the machine).
fn agent_env<'a>(
    lnb: &'a Lnbits,
    config_home: &'a Path,
    admin: Option<&'a str>,
    invoice: &'a str,
) -> Vec<(&'a str, String)> {
    let mut env = vec![
        ("L402_MCP_BACKEND", "lnbits".to_owned()),
        ("L402_MCP_LNBITS_URL", lnb.url.clone()),
        ("L402_MCP_LNBITS_INVOICE_KEY", invoice.to_owned()),
        ("L402_MCP_NETWORK", "mainnet".to_owned()),
        ("L402_MCP_FETCH_ALLOW_LOOPBACK", "1".to_owned()),
        ("XDG_CONFIG_HOME", config_home.display().to_string()),
        // Everything is logged, so the key checks below look at every line there is.
        ("RUST_LOG", "trace".to_owned()),
    ];
    if let Some(a) = admin {
        env.push(("L402_MCP_LNBITS_ADMIN_KEY", a.to_owned()));
    }
    env
}

fn borrowed<'a>(env: &'a [(&'a str, String)]) -> Vec<(&'a str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

fn log_file(path: &Path) -> Stdio {
    Stdio::from(std::fs::File::create(path).expect("log file"))
}

fn assert_no_keys(what: &str, text: &str, keys: &[&str]) {
    for k in keys {
        assert!(!text.contains(k), "{what} shows a key:\n{text}");
    }
}

#[tokio::test]
#[ignore = "needs LNbits: tools/lnbits/test.sh"]
async fn the_wallet_trait_pays_between_two_lnbits_wallets() {
    let lnb = lnbits();
    let (wa, wb) = (wallet(&lnb.url, &lnb.a), wallet(&lnb.url, &lnb.b));

    let info = wa.info().await.expect("info");
    assert_eq!(
        (info.backend, info.network, info.node_id.as_deref()),
        ("lnbits", Network::Mainnet, None)
    );
    assert!(info.returns_preimages && !info.demo_funds);

    let (a0, b0) = (
        wa.balance().await.expect("balance").msat,
        wb.balance().await.expect("balance").msat,
    );
    assert_eq!(a0, lnbits_balance(&lnb.url, &lnb.a).await);
    assert!(a0 > 21_000, "wallet A is not funded");

    let inv = invoice(&wb, 21, "trait test").await;
    assert_eq!(
        (inv.network, inv.amount_msat),
        (Network::Mainnet, Some(21_000))
    );
    assert_eq!(inv.description.as_deref(), Some("trait test"));
    assert_eq!(
        wb.lookup_incoming(&inv.payment_hash).await,
        Ok(IncomingStatus::Pending)
    );
    assert_eq!(
        wa.lookup_outgoing(&inv.payment_hash).await,
        Ok(OutgoingStatus::NotFound)
    );

    let paid = wa.pay_invoice(&inv, 1_000).await.expect("pay");
    let preimage = paid.preimage.expect("LNbits returns the preimage");
    assert!(l402_mcp::l402::preimage_matches(
        &preimage,
        &inv.payment_hash
    ));
    assert_eq!(paid.fee_msat, 0, "internal payments cost nothing");

    match wa.lookup_outgoing(&inv.payment_hash).await {
        Ok(OutgoingStatus::Succeeded(r)) => assert_eq!(r.preimage, Some(preimage)),
        other => panic!("outgoing lookup: {other:?}"),
    }
    assert_eq!(
        wb.lookup_incoming(&inv.payment_hash).await,
        Ok(IncomingStatus::Settled {
            amount_msat: 21_000
        })
    );
    // Each side sees only its own part.
    assert_eq!(
        wb.lookup_outgoing(&inv.payment_hash).await,
        Ok(OutgoingStatus::NotFound)
    );
    assert_eq!(
        wa.lookup_incoming(&inv.payment_hash).await,
        Ok(IncomingStatus::NotFound)
    );
    assert_eq!(wa.balance().await.expect("balance").msat, a0 - 21_000);
    assert_eq!(wb.balance().await.expect("balance").msat, b0 + 21_000);
    assert_eq!(
        lnbits_balance(&lnb.url, &lnb.b).await,
        b0 + 21_000,
        "LNbits' own balance"
    );

    // Paying it again is refused for sure, and nothing moves.
    let again = wa.pay_invoice(&inv, 1_000).await;
    assert!(
        matches!(&again, Err(e @ WalletError::Rejected(m)) if e.definitely_not_paid() && m.contains("already paid")),
        "{again:?}"
    );
    assert_eq!(wa.balance().await.expect("balance").msat, a0 - 21_000);

    // Unknown hashes, both ways.
    assert_eq!(
        wa.lookup_outgoing(&l402_mcp::l402::PaymentHash([0x5a; 32]))
            .await,
        Ok(OutgoingStatus::NotFound)
    );
    assert_eq!(
        wa.lookup_incoming(&l402_mcp::l402::PaymentHash([0x5a; 32]))
            .await,
        Ok(IncomingStatus::NotFound)
    );

    // Sub-sat amounts are refused before LNbits is asked.
    let sub_sat = wb
        .create_invoice(&InvoiceRequest {
            amount_msat: 21_500,
            description: String::new(),
            expiry_secs: 600,
        })
        .await;
    assert!(
        matches!(&sub_sat, Err(WalletError::Rejected(m)) if m.contains("whole sats")),
        "{sub_sat:?}"
    );
}

#[tokio::test]
#[ignore = "needs LNbits: tools/lnbits/test.sh"]
async fn each_key_does_its_part_and_misconfigured_keys_are_named() {
    let lnb = lnbits();
    // The invoice key alone receives and reads, and says plainly that it cannot pay.
    let receive_only = LnbitsWallet::new(&config(&lnb.url, None, Some(&lnb.b.invoice))).expect("w");
    receive_only.info().await.expect("info");
    let inv = invoice(&receive_only, 5, "receive only").await;
    assert_eq!(
        receive_only.lookup_incoming(&inv.payment_hash).await,
        Ok(IncomingStatus::Pending)
    );
    let other = invoice(&wallet(&lnb.url, &lnb.a), 5, "for b").await;
    let refused = receive_only.pay_invoice(&other, 0).await;
    assert!(
        matches!(&refused, Err(e @ WalletError::NotPayable(m)) if e.definitely_not_paid() && m.contains("admin_key")),
        "{refused:?}"
    );
    // The admin key alone does everything.
    let admin_only = LnbitsWallet::new(&config(&lnb.url, Some(&lnb.a.admin), None)).expect("w");
    admin_only.info().await.expect("info");
    assert_eq!(
        admin_only.balance().await.expect("balance").msat,
        lnbits_balance(&lnb.url, &lnb.a).await
    );

    // The invoice key where the admin key belongs: named, and a payment is refused for sure.
    let swapped = LnbitsWallet::new(&config(
        &lnb.url,
        Some(&lnb.a.invoice),
        Some(&lnb.a.invoice),
    ))
    .expect("w");
    let e = swapped.info().await.expect_err("swapped keys");
    assert!(e.to_string().contains("admin_key"), "{e}");
    let paid = swapped.pay_invoice(&inv, 0).await;
    assert!(
        matches!(&paid, Err(e @ WalletError::Unavailable(m)) if e.definitely_not_paid() && m.contains("Admin key")),
        "{paid:?}"
    );
    // Keys of two different wallets.
    let mixed =
        LnbitsWallet::new(&config(&lnb.url, Some(&lnb.a.admin), Some(&lnb.b.invoice))).expect("w");
    let e = mixed.info().await.expect_err("mixed keys");
    assert!(e.to_string().contains("different LNbits wallets"), "{e}");

    // A key no wallet has, and nobody listening: errors say what to fix, never the key.
    let bogus = "0123456789abcdef0123456789abcdef";
    let wrong = LnbitsWallet::new(&config(&lnb.url, Some(bogus), Some(bogus))).expect("w");
    for e in [
        wrong.info().await.expect_err("wrong key"),
        wrong.balance().await.expect_err("wrong key"),
        wrong.pay_invoice(&inv, 0).await.expect_err("wrong key"),
        wrong
            .lookup_outgoing(&inv.payment_hash)
            .await
            .expect_err("a lookup with a wrong key must not say NotFound"),
    ] {
        let text = e.to_string();
        assert!(
            e.definitely_not_paid() && text.contains("credentials") && !text.contains(bogus),
            "{text}"
        );
    }
    // The payment lookup answers a wrong key too (about anyone's payment): it must not count.
    let settled = wrong.lookup_incoming(&other.payment_hash).await;
    assert!(settled.is_err(), "{settled:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs LNbits: tools/lnbits/test.sh"]
async fn two_agents_buy_and_sell_through_mcp_on_lnbits() {
    let lnb = lnbits();
    let (seller_dir, buyer_dir) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    let before: BTreeSet<String> = lnbits_outgoing(&lnb.url, &lnb.a)
        .await
        .into_iter()
        .map(|p| p.0)
        .collect();
    let (a0, b0) = (
        lnbits_balance(&lnb.url, &lnb.a).await,
        lnbits_balance(&lnb.url, &lnb.b).await,
    );

    // The seller needs only its invoice key: it receives.
    let seller_env = agent_env(&lnb, seller_dir.path(), None, &lnb.b.invoice);
    let buyer_env = agent_env(&lnb, buyer_dir.path(), Some(&lnb.a.admin), &lnb.a.invoice);
    let (seller_log, buyer_log) = (
        seller_dir.path().join("stderr.log"),
        buyer_dir.path().join("stderr.log"),
    );
    let seller = spawn_agent(
        seller_dir.path(),
        "seller",
        &borrowed(&seller_env),
        log_file(&seller_log),
    )
    .await;
    let buyer = spawn_agent(
        buyer_dir.path(),
        "buyer",
        &borrowed(&buyer_env),
        log_file(&buyer_log),
    )
    .await;
    let addr = seller_api(seller.clone()).await;

    let shown = ok(&call(&buyer, "wallet_balance", json!({})).await);
    assert_eq!(
        (&shown["backend"], &shown["network"], &shown["demo_funds"]),
        (&json!("lnbits"), &json!("mainnet"), &json!(false))
    );
    assert_eq!(shown["balance_msat"].as_u64(), Some(a0), "{shown}");

    let url = format!("http://{addr}/joke");
    let first = ok(&call(
        &buyer,
        "fetch_paid",
        json!({ "url": url, "max_price_sats": 50 }),
    )
    .await);
    assert_eq!(first["status"], 200, "{first}");
    assert_eq!(first["body"], r#"{"joke":"knock knock"}"#);
    assert_eq!(
        (
            first["receipt"]["paid"].as_bool(),
            first["receipt"]["amount_sats"].as_u64()
        ),
        (Some(true), Some(JOKE_SATS))
    );
    let hash = first["receipt"]["payment_hash"]
        .as_str()
        .expect("hash")
        .to_owned();
    let second = ok(&call(&buyer, "fetch_paid", json!({ "url": url })).await);
    assert_eq!(
        (
            second["status"].as_u64(),
            second["receipt"]["token_reused"].as_bool()
        ),
        (Some(200), Some(true))
    );

    // The money moved in LNbits, and both agents show LNbits' balances.
    let fee = first["receipt"]["fee_msat"].as_u64().expect("fee");
    let (a1, b1) = (
        lnbits_balance(&lnb.url, &lnb.a).await,
        lnbits_balance(&lnb.url, &lnb.b).await,
    );
    assert_eq!(a1, a0 - JOKE_SATS * 1000 - fee);
    assert_eq!(b1, b0 + JOKE_SATS * 1000);
    let shown = ok(&call(&buyer, "wallet_balance", json!({})).await);
    assert_eq!(shown["balance_msat"].as_u64(), Some(a1));
    assert_eq!(shown["budget"]["spent_24h_sats"].as_u64(), Some(JOKE_SATS));
    let sold = ok(&call(&seller, "wallet_balance", json!({})).await);
    assert_eq!(sold["balance_msat"].as_u64(), Some(b1));
    assert_eq!(sold["earned_24h_sats"].as_u64(), Some(JOKE_SATS));
    let income = ok(&call(&seller, "list_payments", json!({ "direction": "in" })).await);
    assert!(
        income["payments"]
            .as_array()
            .expect("payments")
            .iter()
            .any(|p| p["payment_hash"] == json!(hash) && p["status"] == "succeeded"),
        "{income}"
    );

    // The buyer's ledger is LNbits' own list of wallet A's payments (those made in this test).
    let ledger = ok(&call(
        &buyer,
        "list_payments",
        json!({ "direction": "out", "limit": 200 }),
    )
    .await);
    let ours: BTreeSet<(String, u64, String)> = ledger["payments"]
        .as_array()
        .expect("payments")
        .iter()
        .map(|p| {
            let status = match p["status"].as_str() {
                Some("succeeded") => "success",
                Some(s) => s,
                None => "",
            };
            (
                p["payment_hash"].as_str().unwrap_or_default().to_owned(),
                p["amount_msat"].as_u64().unwrap_or_default(),
                status.to_owned(),
            )
        })
        .collect();
    let theirs: BTreeSet<(String, u64, String)> = lnbits_outgoing(&lnb.url, &lnb.a)
        .await
        .into_iter()
        .filter(|p| !before.contains(&p.0))
        .map(|p| (p.1, p.2, p.3))
        .collect();
    assert_eq!(ours, theirs);
    assert_eq!(
        ours,
        BTreeSet::from([(hash, JOKE_SATS * 1000, "success".to_owned())])
    );

    drop((buyer, seller));
    let keys = [
        lnb.a.admin.as_str(),
        lnb.a.invoice.as_str(),
        lnb.b.invoice.as_str(),
    ];
    for log in [&buyer_log, &seller_log] {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        assert!(text.len() > 1000, "trace logs say nothing:\n{text}");
        assert_no_keys("an agent's log", &text, &keys);
    }
    for output in [&first, &second, &shown, &sold, &income, &ledger] {
        assert_no_keys("a tool result", &output.to_string(), &keys);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs LNbits: tools/lnbits/test.sh"]
async fn failed_payments_are_clear_and_release_the_budget() {
    let lnb = lnbits();
    let dir = tempfile::tempdir().expect("dir");
    let mut env = agent_env(&lnb, dir.path(), Some(&lnb.a.admin), &lnb.a.invoice);
    // A budget far above the balance, so that LNbits is what refuses.
    env.push(("L402_MCP_PER_PAYMENT_SATS", "10000000".into()));
    env.push(("L402_MCP_DAILY_SATS", "10000000".into()));
    let log = dir.path().join("stderr.log");
    let buyer = spawn_agent(dir.path(), "buyer", &borrowed(&env), log_file(&log)).await;
    let wb = wallet(&lnb.url, &lnb.b);
    let a0 = lnbits_balance(&lnb.url, &lnb.a).await;

    // More than wallet A holds.
    let too_big = invoice(&wb, a0 / 1000 + 1_000, "too big").await;
    let e = failed(&call(&buyer, "pay_invoice", json!({ "bolt11": too_big.bolt11 })).await);
    assert!(
        e.starts_with("payment_failed")
            && e.contains("Insufficient balance")
            && e.contains("nothing was spent"),
        "{e}"
    );
    // Unknown to this LNbits: FakeWallet pays only its own invoices.
    let foreign = foreign_invoice(10);
    let e = failed(&call(&buyer, "pay_invoice", json!({ "bolt11": foreign })).await);
    assert!(
        e.starts_with("payment_failed") && e.contains("Only internal invoices"),
        "{e}"
    );

    let shown = ok(&call(&buyer, "wallet_balance", json!({})).await);
    assert_eq!(
        (
            shown["budget"]["spent_24h_sats"].as_u64(),
            shown["budget"]["reserved_sats"].as_u64()
        ),
        (Some(0), Some(0)),
        "{shown}"
    );
    assert_eq!(lnbits_balance(&lnb.url, &lnb.a).await, a0);
    let listed = ok(&call(&buyer, "list_payments", json!({ "direction": "out" })).await);
    let statuses: Vec<_> = listed["payments"]
        .as_array()
        .expect("payments")
        .iter()
        .map(|p| p["status"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(statuses, ["failed", "failed"], "{listed}");
    // LNbits recorded the foreign attempt as failed, and the one over the balance not at all.
    let foreign_hash = hex::encode(bolt11::decode(&foreign).expect("decode").payment_hash);
    let too_big_hash = hex::encode(too_big.payment_hash);
    let theirs: Vec<_> = lnbits_outgoing(&lnb.url, &lnb.a)
        .await
        .into_iter()
        .filter(|p| p.1 == foreign_hash || p.1 == too_big_hash)
        .map(|p| (p.1, p.3))
        .collect();
    assert_eq!(theirs, [(foreign_hash, "failed".to_owned())]);

    // A wrong admin key: a clear error that does not show it, and nothing spent.
    let bogus = "fedcba9876543210fedcba9876543210";
    let wrong_dir = tempfile::tempdir().expect("dir");
    let wrong_env = agent_env(&lnb, wrong_dir.path(), Some(bogus), &lnb.a.invoice);
    let wrong_log = wrong_dir.path().join("stderr.log");
    let wrong = spawn_agent(
        wrong_dir.path(),
        "buyer",
        &borrowed(&wrong_env),
        log_file(&wrong_log),
    )
    .await;
    let fine = invoice(&wb, 3, "wrong key").await;
    let e = failed(&call(&wrong, "pay_invoice", json!({ "bolt11": fine.bolt11 })).await);
    assert!(
        e.contains("credentials") && e.contains("admin_key") && !e.contains(bogus),
        "{e}"
    );
    assert_eq!(lnbits_balance(&lnb.url, &lnb.a).await, a0);
    assert_eq!(
        wb.lookup_incoming(&fine.payment_hash).await,
        Ok(IncomingStatus::Pending)
    );

    drop((buyer, wrong));
    for l in [&log, &wrong_log] {
        let text = std::fs::read_to_string(l).unwrap_or_default();
        assert_no_keys(
            "an agent's log",
            &text,
            &[bogus, &lnb.a.admin, &lnb.a.invoice],
        );
    }
}

/// `l402-mcp doctor` with these LNbits settings: exit success, and everything it printed.
fn doctor(url: &str, admin: &str, invoice: &str) -> (bool, String) {
    let dir = tempfile::tempdir().expect("dir");
    let out = std::process::Command::new(BIN)
        .arg("doctor")
        .arg("--data-dir")
        .arg(dir.path())
        .env("XDG_CONFIG_HOME", dir.path())
        .env("L402_MCP_BACKEND", "lnbits")
        .env("L402_MCP_LNBITS_URL", url)
        .env("L402_MCP_LNBITS_ADMIN_KEY", admin)
        .env("L402_MCP_LNBITS_INVOICE_KEY", invoice)
        .output()
        .expect("run doctor");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test]
#[ignore = "needs LNbits: tools/lnbits/test.sh"]
async fn doctor_says_what_to_fix_and_never_prints_keys() {
    let lnb = lnbits();
    let keys = [lnb.a.admin.as_str(), lnb.a.invoice.as_str()];

    let (passed, text) = doctor(&lnb.url, &lnb.a.admin, &lnb.a.invoice);
    assert!(passed && text.contains("all checks passed"), "{text}");
    assert!(
        text.contains("lnbits answered") && text.contains("mainnet"),
        "{text}"
    );
    assert_no_keys("doctor", &text, &keys);

    let bogus = "00112233445566778899aabbccddeeff";
    let (passed, text) = doctor(&lnb.url, bogus, bogus);
    assert!(!passed, "{text}");
    assert!(
        text.contains("[fail]") && text.contains("credentials") && text.contains("invoice_key"),
        "{text}"
    );
    assert_no_keys("doctor", &text, &[bogus]);

    // Nobody listens on a port just given back.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let (passed, text) = doctor(
        &format!("http://127.0.0.1:{port}"),
        &lnb.a.admin,
        &lnb.a.invoice,
    );
    assert!(!passed, "{text}");
    assert!(
        text.contains("could not reach LNbits") && text.contains("url"),
        "{text}"
    );
    assert_no_keys("doctor", &text, &keys);

    // Somewhere that answers, but is not the LNbits API.
    let (passed, text) = doctor(
        &format!("{}/not-lnbits", lnb.url),
        &lnb.a.admin,
        &lnb.a.invoice,
    );
    assert!(!passed && text.contains("check url"), "{text}");
    assert_no_keys("doctor", &text, &keys);
}
