//! Hostile input against the seller, through its public surface: the `verify_l402_payment` tool
//! of `l402-mcp serve` and the `l402-mcp verify` command. Each test is a way a buyer could get
//! more than was sold. (The gateway's cases are in `tests/gateway.rs`.)
// A failed step in a test or benchmark is a failed run: unwrapping is fine here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Stdio;

use common::agents::{Agent, BIN, call, ok, spawn_agent};
use l402_mcp::l402::{Macaroon, b64};
use serde_json::{Value, json};

/// A seller and a buyer agent on one data dir.
async fn agents() -> (tempfile::TempDir, Agent, Agent) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("none.toml"), "").unwrap();
    let seller = spawn_agent(dir.path(), "seller", &[], Stdio::null()).await;
    let buyer = spawn_agent(dir.path(), "buyer", &[], Stdio::null()).await;
    (dir, seller, buyer)
}

/// Mint a token with `terms` through `create_l402_challenge` and pay it through `pay_invoice`:
/// (macaroon base64, preimage hex).
async fn buy(seller: &Agent, buyer: &Agent, terms: Value) -> (String, String) {
    let c = ok(&call(seller, "create_l402_challenge", terms).await);
    let paid = ok(&call(buyer, "pay_invoice", json!({ "bolt11": c["invoice"] })).await);
    (
        c["macaroon"].as_str().unwrap().to_owned(),
        paid["preimage"].as_str().unwrap().to_owned(),
    )
}

/// `verify_l402_payment` with the credential and `extra` arguments.
async fn verify(seller: &Agent, mac: &str, pre: &str, extra: Value) -> Value {
    let mut args = json!({ "macaroon": mac, "preimage": pre });
    for (k, v) in extra.as_object().unwrap() {
        args[k] = v.clone();
    }
    ok(&call(seller, "verify_l402_payment", args).await)
}

fn verdict(v: &Value) -> (Option<bool>, Option<&str>) {
    (v["valid"].as_bool(), v["reason_code"].as_str())
}

/// `l402-mcp --json --wallet WALLET ARGS...` on `dir` without a config file: (success, the first
/// JSON document printed).
fn cli(dir: &Path, wallet: &str, args: &[&str]) -> (bool, Value) {
    let out = std::process::Command::new(BIN)
        .args(["--json", "--data-dir"])
        .arg(dir)
        .args(["--wallet", wallet])
        .args(args)
        .env("L402_MCP_CONFIG", dir.join("none.toml"))
        .env_remove("L402_MCP_DATABASE_URL")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let first = serde_json::Deserializer::from_str(&stdout)
        .into_iter::<Value>()
        .next()
        .and_then(Result::ok)
        .unwrap_or_else(|| {
            panic!(
                "{args:?}: not JSON: {stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    (out.status.success(), first)
}

fn cli_verdict(v: &(bool, Value)) -> (bool, Option<&str>) {
    (v.0, v.1["reason_code"].as_str())
}

fn authorization(mac: &str, pre: &str) -> String {
    format!("L402 {mac}:{pre}")
}

/// The macaroon with one more caveat, as any holder can add (attenuation).
fn append_caveat(mac: &str, caveat: &str) -> String {
    let mut m = Macaroon::deserialize(&b64::decode(mac).unwrap()).unwrap();
    m.add_caveat(caveat.as_bytes());
    b64::encode(&m.serialize())
}

/// Item 5: a token sold for `read` is not accepted for `write` when the caller names no
/// service; the refusal records no sale and counts no use.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capability_is_enforced_when_no_service_is_named() {
    let (dir, seller, buyer) = agents().await;
    let (mac, pre) = buy(
        &seller,
        &buyer,
        json!({ "amount_sats": 3, "service": "data", "capabilities": ["read"], "max_uses": 2 }),
    )
    .await;
    let write = verify(&seller, &mac, &pre, json!({ "capability": "write" })).await;
    assert_eq!(
        verdict(&write),
        (Some(false), Some("missing_capability")),
        "{write}"
    );
    let auth = authorization(&mac, &pre);
    let cli_write = cli(
        dir.path(),
        "seller",
        &["verify", &auth, "--capability", "write"],
    );
    assert_eq!(
        cli_verdict(&cli_write),
        (false, Some("missing_capability")),
        "{cli_write:?}"
    );
    // Nothing was sold or used by the refusals.
    let (ok_, sales) = cli(dir.path(), "seller", &["sales"]);
    assert!(ok_, "{sales}");
    assert_eq!(sales["count"], 0, "{sales}");
    // The capability it was sold for works, without and with the service, for its two uses.
    let read = verify(&seller, &mac, &pre, json!({ "capability": "read" })).await;
    assert_eq!(verdict(&read), (Some(true), None), "{read}");
    let read = verify(
        &seller,
        &mac,
        &pre,
        json!({ "capability": "read", "service": "data" }),
    )
    .await;
    assert_eq!(verdict(&read), (Some(true), None), "{read}");
    let third = verify(&seller, &mac, &pre, json!({ "capability": "read" })).await;
    assert_eq!(verdict(&third), (Some(false), Some("used_up")), "{third}");
}

/// Item 6: a later `services` caveat may not change the tier a service was minted with; the
/// verdict reports the minted tier.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_tier_is_refused_and_the_minted_tier_is_reported() {
    let (dir, seller, buyer) = agents().await;
    let (mac, pre) = buy(
        &seller,
        &buyer,
        json!({ "amount_sats": 3, "service": "data", "tier": 2 }),
    )
    .await;
    let good = verify(&seller, &mac, &pre, json!({ "service": "data" })).await;
    assert_eq!(verdict(&good), (Some(true), None), "{good}");
    assert_eq!(good["tier"], 2, "{good}");
    let (ok_, v) = cli(
        dir.path(),
        "seller",
        &["verify", &authorization(&mac, &pre), "--service", "data"],
    );
    assert!(ok_ && v["tier"] == 2, "{v}");

    for forged in ["services=data:7", "services=data:0"] {
        let m = append_caveat(&mac, forged);
        for extra in [json!({ "service": "data" }), json!({})] {
            let v = verify(&seller, &m, &pre, extra).await;
            assert_eq!(
                verdict(&v),
                (Some(false), Some("widened_caveat")),
                "{forged}: {v}"
            );
        }
    }
    // Restating the minted tier narrows nothing and changes nothing: accepted.
    let same = append_caveat(&mac, "services=data:2");
    let v = verify(&seller, &same, &pre, json!({ "service": "data" })).await;
    assert_eq!((verdict(&v), &v["tier"]), ((Some(true), None), &json!(2)));
}

/// Item 7: a token bound to a method and a path prefix is refused (`binding_unchecked`) when
/// the caller does not say which method and path it serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_bound_to_method_and_path_is_refused_without_them() {
    let (dir, seller, buyer) = agents().await;
    let (mac, pre) = buy(
        &seller,
        &buyer,
        json!({ "amount_sats": 3, "service": "data", "methods": ["GET"], "path_prefix": "/v1/data" }),
    )
    .await;
    for extra in [
        json!({ "service": "data" }),
        json!({}),
        json!({ "service": "data", "method": "GET" }),
        json!({ "service": "data", "path": "/v1/data/7" }),
        json!({ "method": "GET" }),
    ] {
        let v = verify(&seller, &mac, &pre, extra.clone()).await;
        assert_eq!(
            verdict(&v),
            (Some(false), Some("binding_unchecked")),
            "{extra}: {v}"
        );
        assert!(
            v["reason"].as_str().unwrap().contains("method")
                || v["reason"].as_str().unwrap().contains("path"),
            "{v}"
        );
    }
    let auth = authorization(&mac, &pre);
    let refused = cli(
        dir.path(),
        "seller",
        &["verify", &auth, "--service", "data"],
    );
    assert_eq!(
        cli_verdict(&refused),
        (false, Some("binding_unchecked")),
        "{refused:?}"
    );
    // Given the request, the binding is checked as before.
    for extra in [
        json!({ "service": "data", "method": "GET", "path": "/v1/data/7" }),
        json!({ "method": "get", "path": "/v1/data" }),
    ] {
        let v = verify(&seller, &mac, &pre, extra.clone()).await;
        assert_eq!(verdict(&v), (Some(true), None), "{extra}: {v}");
    }
    let v = verify(
        &seller,
        &mac,
        &pre,
        json!({ "service": "data", "method": "POST", "path": "/v1/data/7" }),
    )
    .await;
    assert_eq!(verdict(&v), (Some(false), Some("wrong_route")), "{v}");
    let accepted = cli(
        dir.path(),
        "seller",
        &[
            "verify",
            &auth,
            "--service",
            "data",
            "--method",
            "GET",
            "--path",
            "/v1/data",
        ],
    );
    assert_eq!(cli_verdict(&accepted), (true, None), "{accepted:?}");
}

/// Item 16: `l402-mcp verify` counts a use, like the tool: a 1-use token is valid once.
#[tokio::test]
async fn the_verify_command_counts_a_use() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("none.toml"), "").unwrap();
    let d = dir.path();
    let (ok_, c) = cli(
        d,
        "seller",
        &["challenge", "4", "--service", "data", "--max-uses", "1"],
    );
    assert!(ok_, "{c}");
    let (ok_, paid) = cli(d, "buyer", &["pay", c["invoice"].as_str().unwrap()]);
    assert!(ok_, "{paid}");
    let auth = authorization(
        c["macaroon"].as_str().unwrap(),
        paid["preimage"].as_str().unwrap(),
    );
    let first = cli(d, "seller", &["verify", &auth, "--service", "data"]);
    assert_eq!(cli_verdict(&first), (true, None), "{first:?}");
    let second = cli(d, "seller", &["verify", &auth, "--service", "data"]);
    assert_eq!(cli_verdict(&second), (false, Some("used_up")), "{second:?}");
    // The tool sees the same counter.
    let seller = spawn_agent(d, "seller", &[], Stdio::null()).await;
    let v = ok(&call(
        &seller,
        "verify_l402_payment",
        json!({ "authorization": auth, "service": "data" }),
    )
    .await);
    assert_eq!(verdict(&v), (Some(false), Some("used_up")), "{v}");
    // One sale, however often it was presented.
    let (ok_, sales) = cli(d, "seller", &["sales"]);
    assert!(ok_ && sales["count"] == 1, "{sales}");
}
