//! A hosted backend end to end, as a user runs it: `l402-mcp serve` driven through rmcp's
//! client, and the command line (`balance`, `invoice`, `pay`, `doctor`), configured by the
//! environment alone (`L402_MCP_BACKEND=<kind>`, `L402_MCP_<KIND>_...`) and pointed at the
//! backend's stand-in. Everything is logged, and no log line, answer or message may show the
//! key.

use std::path::Path;
use std::process::Stdio;

use l402_mcp::bolt11::Network;
use serde_json::{Value, json};

use crate::common;
use crate::common::agents::{BIN, call, failed, ok, spawn_agent};

/// What `pay_invoice` must do.
pub enum Pays {
    /// Pay, proving it with this preimage (hex), at this fee.
    Yes { preimage: String, fee_msat: u64 },
    /// Refuse before anything moves, saying these words.
    Refused(&'static str),
}

/// The environment of a process on this backend: `env`, no config file of the machine's, every
/// log line.
fn full_env<'a>(env: &[(&'a str, &'a str)], config_home: &'a str) -> Vec<(&'a str, &'a str)> {
    let mut all = env.to_vec();
    all.push(("XDG_CONFIG_HOME", config_home));
    all.push(("RUST_LOG", "trace"));
    all
}

/// A fresh regtest invoice for 21 sats (dated now, as `serve`'s clock is this machine's), and
/// its preimage.
pub fn fresh_invoice() -> (String, [u8; 32]) {
    common::fixture::random_invoice(Network::Regtest, 21_000, l402_mcp::clock::system().now())
}

fn assert_no_secret(what: &str, text: &str, secret: &str) {
    assert!(!text.contains(secret), "{what} shows the key: {text}");
}

/// `wallet_balance`, `create_invoice` and `pay_invoice bolt11` through `l402-mcp serve`.
pub async fn through_mcp(
    kind: &str,
    env: &[(&str, &str)],
    secret: &str,
    balance_sats: u64,
    bolt11: &str,
    pays: Pays,
) {
    let dir = tempfile::tempdir().expect("dir");
    let home = dir.path().display().to_string();
    let log = dir.path().join("serve.log");
    let agent = spawn_agent(
        dir.path(),
        "w",
        &full_env(env, &home),
        Stdio::from(std::fs::File::create(&log).expect("log")),
    )
    .await;
    let status = ok(&call(&agent, "wallet_balance", json!({})).await);
    assert_eq!(status["backend"], kind, "{status}");
    assert_eq!(status["balance_sats"], balance_sats, "{status}");
    assert_eq!(status["demo_funds"], false);

    let created = ok(&call(
        &agent,
        "create_invoice",
        json!({ "amount_sats": 21, "description": "end to end" }),
    )
    .await);
    let decoded = l402_mcp::bolt11::decode(created["bolt11"].as_str().expect("bolt11"))
        .expect("a BOLT11 invoice");
    assert_eq!(decoded.amount_msat, Some(21_000));
    assert_eq!(created["payment_hash"], decoded.payment_hash.to_hex());

    let paid = call(&agent, "pay_invoice", json!({ "bolt11": bolt11 })).await;
    match pays {
        Pays::Yes { preimage, fee_msat } => {
            let paid = ok(&paid);
            assert_eq!(paid["paid"], true, "{paid}");
            assert_eq!(paid["preimage"], preimage);
            assert_eq!(paid["amount_msat"], 21_000);
            assert_eq!(paid["fee_msat"], fee_msat);
        }
        Pays::Refused(words) => {
            let text = failed(&paid);
            assert!(text.contains(words), "says why: {text}");
            assert_no_secret("the refusal", &text, secret);
        }
    }
    if let Ok(agent) = std::sync::Arc::try_unwrap(agent) {
        let _ = agent.cancel().await;
    }
    let logged = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(!logged.is_empty(), "serve logged nothing");
    assert_no_secret("serve's log", &logged, secret);
}

/// `l402-mcp <args>` on this backend: whether it succeeded, and everything it printed. (Not
/// blocking: the stand-in answers on this test's runtime.)
pub async fn cli(env: &[(&str, &str)], data_dir: &Path, args: &[&str]) -> (bool, String) {
    let home = data_dir.display().to_string();
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.args(args).arg("--data-dir").arg(data_dir);
    for (k, v) in full_env(env, &home) {
        cmd.env(k, v);
    }
    let out = cmd.output().await.expect("run l402-mcp");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// `balance`, `invoice 21` and `pay bolt11` on the command line, each with `--json`; the
/// answers of `balance` and `invoice`, and whether `pay` succeeded with what it printed.
pub async fn through_cli(
    env: &[(&str, &str)],
    secret: &str,
    bolt11: &str,
) -> (Value, Value, bool, String) {
    let dir = tempfile::tempdir().expect("dir");
    let json_of = async |args: &[&str]| {
        let (passed, text) = cli(env, dir.path(), args).await;
        assert!(passed, "l402-mcp {args:?}: {text}");
        assert_no_secret("the command line", &text, secret);
        let start = text.find('{').expect("JSON");
        serde_json::Deserializer::from_str(&text[start..])
            .into_iter::<Value>()
            .next()
            .expect("JSON")
            .expect("JSON")
    };
    let balance = json_of(&["balance", "--json"]).await;
    let invoice = json_of(&["invoice", "21", "--json"]).await;
    let (paid, text) = cli(env, dir.path(), &["pay", bolt11, "--json"]).await;
    assert_no_secret("pay", &text, secret);
    (balance, invoice, paid, text)
}

/// `l402-mcp doctor`: whether it passed, and what it printed (never the key).
pub async fn doctor(env: &[(&str, &str)], secret: &str) -> (bool, String) {
    let dir = tempfile::tempdir().expect("dir");
    let (passed, text) = cli(env, dir.path(), &["doctor"]).await;
    assert_no_secret("doctor", &text, secret);
    (passed, text)
}

/// `doctor` with a key the stand-in does not know (`env[key_at]` replaced by `bad_key`), and
/// with a URL nobody listens on (`env[url_at]`): both fail, saying what to fix.
pub async fn doctor_refuses(
    env: &[(&str, &str)],
    (url_at, key_at): (usize, usize),
    bad_key: &str,
    name: &str,
) {
    let mut wrong = env.to_vec();
    wrong[key_at].1 = bad_key;
    let (passed, text) = doctor(&wrong, bad_key).await;
    assert!(!passed && text.contains("refused the API key"), "{text}");
    let gone = format!("http://127.0.0.1:{}/graphql", common::free_port());
    let mut unreachable = env.to_vec();
    unreachable[url_at].1 = &gone;
    let (passed, text) = doctor(&unreachable, env[key_at].1).await;
    assert!(
        !passed && text.contains(&format!("could not reach {name}")),
        "{text}"
    );
}
