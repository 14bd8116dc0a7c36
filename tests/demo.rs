//! `l402-mcp demo` as a newcomer runs it: nothing configured, offline.
// A failed step in a test or benchmark is a failed run: unwrapping is fine here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

/// `l402-mcp demo` with an empty environment but `HOME` and `env`; its stdout (it must succeed).
fn run_demo(home: &Path, env: &[(&str, &str)]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_l402-mcp"))
        .arg("demo")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn demo_runs_the_whole_loop_with_nothing_configured() {
    let home = tempfile::tempdir().unwrap();
    let stdout = run_demo(home.path(), &[]);
    for expected in [
        "receipt: paid 21 sats",
        "nothing paid, token reused: true",
        "refused, nothing paid: price_above_cap",
        "buyer  balance   99979 sats (demo test sats)",
        "seller balance  100021 sats (demo test sats)",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
    // The throwaway data dir is gone, and nothing was written under HOME.
    assert_eq!(std::fs::read_dir(home.path()).unwrap().count(), 0);
}

/// A user who has configured a real wallet and a budget still gets the offline demo: their
/// settings never reach the demo's agents (and their wallet is never touched).
#[test]
fn demo_ignores_the_users_wallet_and_budget_settings() {
    let home = tempfile::tempdir().unwrap();
    let cfg_dir = home.path().join(".config").join("l402-mcp");
    std::fs::create_dir_all(&cfg_dir).unwrap();
    std::fs::write(
        cfg_dir.join("config.toml"),
        "[backend]\nkind = \"lnbits\"\nurl = \"http://127.0.0.1:1\"\nadmin_key = \"a\"\ninvoice_key = \"i\"\n[budget]\nper_payment_sats = 1\n",
    )
    .unwrap();
    let stdout = run_demo(
        home.path(),
        &[
            ("L402_MCP_BACKEND", "lnbits"),
            ("L402_MCP_LNBITS_URL", "http://127.0.0.1:1"),
            ("L402_MCP_LNBITS_ADMIN_KEY", "a"),
            ("L402_MCP_LNBITS_INVOICE_KEY", "i"),
            ("L402_MCP_DAILY_SATS", "2"),
        ],
    );
    assert!(stdout.contains("receipt: paid 21 sats"), "{stdout}");
    assert!(stdout.contains("(demo test sats)"), "{stdout}");
}
