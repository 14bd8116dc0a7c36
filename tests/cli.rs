//! The command line's view of settings: what `doctor` reports is what the other commands use,
//! and every way of setting a limit follows one rule.
// A failed step in a test or benchmark is a failed run: unwrapping is fine here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_l402-mcp");

/// `l402-mcp` in `dir` with nothing from this machine's environment or config, plus `env`.
fn run(home: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("L402_MCP_DATA_DIR", home.join("data"))
        .envs(env.iter().copied())
        .output()
        .expect("run l402-mcp")
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn budget_check(doctor: &Value) -> Value {
    doctor["checks"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["check"] == "budget")
        .cloned()
        .unwrap_or_else(|| panic!("no budget check in {doctor}"))
}

#[test]
fn doctor_shows_the_budget_the_other_commands_use() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let stored = run(h, &["--json", "budget", "set", "--daily-sats", "2000"], &[]);
    assert!(stored.status.success());
    let config = h.join("budget.toml");
    std::fs::write(
        &config,
        "[budget]\nper_payment_sats = 55\nhourly_sats = 300\n",
    )
    .unwrap();
    let cfg = config.to_str().unwrap();
    let env = [("L402_MCP_DAILY_SATS", "777")];

    let doctor = json(&run(h, &["--json", "--config", cfg, "doctor"], &env));
    let check = budget_check(&doctor);
    let detail = check["detail"].as_str().unwrap_or_default();
    for expected in ["per payment 55 sats", "daily 777 sats", "hourly 300 sats"] {
        assert!(detail.contains(expected), "{expected:?} not in {check}");
    }
    assert_eq!(check["data"]["policy"]["daily_msat"], 777_000, "{check}");
    // The same budget every other command runs with.
    let shown = json(&run(
        h,
        &["--json", "--config", cfg, "budget", "show"],
        &env,
    ));
    assert_eq!(shown["policy"], check["data"]["policy"]);
}

#[test]
fn the_fee_percent_follows_one_rule_everywhere() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let config = h.join("fee.toml");
    std::fs::write(&config, "[budget]\nmax_fee_percent = 150\n").unwrap();
    let cfg = config.to_str().unwrap();
    let from_file = run(h, &["--config", cfg, "balance"], &[]);
    let from_flag = run(h, &["budget", "set", "--max-fee-percent", "150"], &[]);
    for (what, out) in [("config file", &from_file), ("budget set", &from_flag)] {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{what}: 150% was accepted");
        assert!(
            stderr.contains("max_fee_percent must be from 0 to 100"),
            "{what}: {stderr}"
        );
    }
    // In range, both say the same.
    std::fs::write(&config, "[budget]\nmax_fee_percent = 0.5\n").unwrap();
    let a = json(&run(h, &["--json", "--config", cfg, "budget", "show"], &[]));
    let b = json(&run(
        h,
        &["--json", "budget", "set", "--max-fee-percent", "0.5"],
        &[],
    ));
    assert_eq!(a["policy"]["max_fee_ppm"], 5_000);
    assert_eq!(b["policy"]["max_fee_ppm"], 5_000);
}

#[test]
fn numbers_out_of_range_are_refused_with_the_range() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let max = u64::MAX.to_string();
    for (args, range) in [
        (
            vec!["challenge", "5", "--max-uses", "0"],
            "max_uses must be from 1 to 1000000000",
        ),
        (
            vec!["challenge", "5", "--valid-for", max.as_str()],
            "valid_for_secs must be from 1 to 315360000",
        ),
        (
            vec!["invoice", "5", "--expiry", max.as_str()],
            "expiry_secs must be from 1 to 31536000",
        ),
        (
            vec!["invoice", "10000000000000000"],
            "amount_sats must be from 1 to 2100000000000000 sats",
        ),
        (
            vec!["wallet", "deposit", max.as_str()],
            "must be from 0 to 2100000000000000 sats",
        ),
        (
            vec![
                "gateway",
                "--upstream",
                "http://127.0.0.1:9",
                "--price",
                "5",
                "--max-uses",
                "0",
            ],
            "max_uses must be from 1 to 1000000000",
        ),
    ] {
        let out = run(h, &args, &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(range), "{args:?}: {stderr}");
    }
}

/// `serve --http` with the dashboard prints a login link naming its port: port 0 (any free
/// port) would print a link that goes nowhere, so it is refused before anything starts.
#[test]
fn the_dashboard_needs_a_fixed_port() {
    let home = tempfile::tempdir().unwrap();
    let out = run(
        home.path(),
        &["serve", "--http", "127.0.0.1:0", "--dashboard"],
        &[],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("needs a fixed port"), "{err}");
    assert!(out.stdout.is_empty(), "no login link printed");
}

#[test]
fn history_keep_days_comes_from_the_environment_too() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    // Below the two days the budget windows read: refused, and the variable is named.
    let short = run(h, &["balance"], &[("L402_MCP_HISTORY_KEEP_DAYS", "1")]);
    let err = String::from_utf8_lossy(&short.stderr);
    assert!(!short.status.success(), "{err}");
    assert!(
        err.contains("L402_MCP_HISTORY_KEEP_DAYS") && err.contains("keep_days"),
        "{err}"
    );
    let bad = run(h, &["balance"], &[("L402_MCP_HISTORY_KEEP_DAYS", "a year")]);
    assert!(!bad.status.success());
    for ok in ["0", "30"] {
        let out = run(h, &["balance"], &[("L402_MCP_HISTORY_KEEP_DAYS", ok)]);
        assert!(
            out.status.success(),
            "{ok}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
