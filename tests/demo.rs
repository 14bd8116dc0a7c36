//! `l402-mcp demo` as a newcomer runs it: nothing configured, offline.

#[test]
fn demo_runs_the_whole_loop_with_nothing_configured() {
    let home = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_l402-mcp"))
        .arg("demo")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
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
