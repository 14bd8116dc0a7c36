//! The ledger's files when one process opens the ledger twice (the demo's two agents, a server
//! and a gateway in one process) while other processes write to it: the process keeps its
//! locks, nothing is lost, and the files stay private.
//!
//! On Linux, closing any descriptor of a file drops every POSIX lock the process holds on it,
//! SQLite's included. A process whose locks are gone looks absent to the others: the last of
//! them to close believes it is alone, checkpoints and deletes the WAL and shared-memory files
//! under the first process, whose later writes then go to a deleted file. (The SQLite built
//! into l402-mcp double-checks through the -shm file before deleting; the `sqlite3` shell and
//! other programs with an older SQLite do not.)
// A failed step in a test or benchmark is a failed run: unwrapping is fine here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

use l402_mcp::app::App;
use l402_mcp::clock::system;

const BIN: &str = env!("CARGO_BIN_EXE_l402-mcp");
const WRITER_ENV: &str = "LEDGER_FILES_TEST_WRITER";

fn l402(dir: &Path, args: &[&str]) -> serde_json::Value {
    let out = Command::new(BIN)
        .arg("--data-dir")
        .arg(dir)
        .arg("--json")
        .args(args)
        .env_remove("L402_MCP_CONFIG")
        .env("XDG_CONFIG_HOME", dir.join("no-config"))
        .output()
        .expect("run l402-mcp");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}

fn balance_msat(dir: &Path, wallet: &str) -> u64 {
    l402(dir, &["--wallet", wallet, "balance"])["balance_msat"]
        .as_u64()
        .expect("balance")
}

/// Run [`writer_process`] in a process of its own (this test binary again) on `dir`'s ledger.
fn other_process_writes(dir: &Path, wallet: &str, msat: u64) {
    let status = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "writer_process",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(WRITER_ENV, format!("{}|{wallet}|{msat}", dir.display()))
        .stdout(std::process::Stdio::null())
        .status()
        .expect("spawn the writer");
    assert!(status.success(), "the writer process failed");
}

/// Add `msat` to a wallet with the `sqlite3` shell (its own, usually older, SQLite), if this
/// machine has one. Returns whether it ran.
fn sqlite_shell_writes(dir: &Path, wallet: &str, msat: u64) -> bool {
    let sql = format!(
        "PRAGMA busy_timeout = 30000; UPDATE embedded_wallets SET balance_msat = balance_msat + {msat} WHERE name = '{wallet}';"
    );
    match Command::new("sqlite3")
        .arg(dir.join("ledger.sqlite"))
        .arg(sql)
        .output()
    {
        Ok(out) => {
            assert!(
                out.status.success(),
                "sqlite3: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            true
        }
        Err(_) => false,
    }
}

/// Not a test on its own: the other process of the test below. Adds `msat` to a wallet's
/// balance through SQLite directly and closes its connection properly.
#[tokio::test]
async fn writer_process() {
    let Ok(spec) = std::env::var(WRITER_ENV) else {
        return;
    };
    let mut parts = spec.split('|');
    let (Some(dir), Some(wallet), Some(msat)) = (parts.next(), parts.next(), parts.next()) else {
        panic!("bad {WRITER_ENV}: {spec}");
    };
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(Path::new(dir).join("ledger.sqlite"))
        .busy_timeout(std::time::Duration::from_secs(30));
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .unwrap();
    let done =
        sqlx::query("UPDATE embedded_wallets SET balance_msat = balance_msat + ? WHERE name = ?")
            .bind(msat.parse::<i64>().unwrap())
            .bind(wallet)
            .execute(&pool)
            .await
            .unwrap();
    assert_eq!(done.rows_affected(), 1);
    pool.close().await;
}

/// The POSIX locks this process holds on `file`, from /proc/locks (Linux); `None` where the
/// kernel does not list them.
#[cfg(target_os = "linux")]
fn my_locks_on(file: &Path) -> Option<usize> {
    use std::os::unix::fs::MetadataExt;
    let inode = std::fs::metadata(file).ok()?.ino().to_string();
    let pid = std::process::id().to_string();
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    Some(
        locks
            .lines()
            .filter(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                // "1: POSIX  ADVISORY  READ 7707 fe:00:10127089 1073741826 1073742335"
                f.get(1) == Some(&"POSIX")
                    && f.get(4) == Some(&pid.as_str())
                    && f.get(5).and_then(|d| d.rsplit(':').next()) == Some(inode.as_str())
            })
            .count(),
    )
}

#[cfg(unix)]
fn mode(path: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .ok()
        .map(|m| m.permissions().mode() & 0o777)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ledger_opened_twice_in_one_process_keeps_its_locks_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let db = d.join("ledger.sqlite");
    let grant = 100_000_000; // the demo grant, msat
    let a = App::open_embedded(d, "a", system()).await.unwrap();
    let a_wallet = a.embedded.clone().unwrap();
    a_wallet
        .deposit(l402_mcp::l402::Msat::from_msat(1_000))
        .await
        .unwrap();
    #[cfg(target_os = "linux")]
    let before = my_locks_on(&db);
    // The second open of the same ledger in this process.
    let b = App::open_embedded(d, "b", system()).await.unwrap();
    let b_wallet = b.embedded.clone().unwrap();
    #[cfg(target_os = "linux")]
    if let (Some(before), Some(after)) = (before, my_locks_on(&db)) {
        assert!(
            before > 0,
            "SQLite holds no lock on the ledger in WAL mode?"
        );
        assert_eq!(
            after, before,
            "opening the ledger again dropped this process's locks on ledger.sqlite"
        );
    }

    let mut expected_a = grant + 1_000;
    let mut expected_b = grant;
    let mut expected_c = grant;
    let mut shell = false;
    for round in 0..3u64 {
        // Other processes write: the binary; a writer that closes its connection (the last
        // one, it believes); the sqlite3 shell, whose SQLite trusts the locks alone.
        l402(d, &["--wallet", "c", "wallet", "deposit", "1"]);
        other_process_writes(d, "c", 7);
        expected_c += 1_000 + 7;
        if sqlite_shell_writes(d, "c", 3) {
            shell = true;
            expected_c += 3;
        }
        // This process writes after them, through both of its ledgers.
        a_wallet
            .deposit(l402_mcp::l402::Msat::from_msat(10 + round))
            .await
            .unwrap();
        b_wallet
            .deposit(l402_mcp::l402::Msat::from_msat(20 + round))
            .await
            .unwrap();
        expected_a += 10 + round;
        expected_b += 20 + round;
        // A new process reads everything.
        assert_eq!(
            balance_msat(d, "a"),
            expected_a,
            "round {round}: a's deposit lost"
        );
        assert_eq!(
            balance_msat(d, "b"),
            expected_b,
            "round {round}: b's deposit lost"
        );
        assert_eq!(
            balance_msat(d, "c"),
            expected_c,
            "round {round}: c's deposit lost"
        );
    }
    if !shell {
        eprintln!("no sqlite3 shell on this machine: that writer was left out");
    }
    // And this process still reads what the others wrote.
    assert_eq!(a.wallet.balance().await.unwrap().msat, expected_a);

    #[cfg(unix)]
    {
        assert_eq!(mode(&db), Some(0o600), "ledger.sqlite");
        for name in ["ledger.sqlite-wal", "ledger.sqlite-shm", "ledger.lock"] {
            let m = mode(&d.join(name));
            assert!(
                m.is_none() || m == Some(0o600),
                "{name} has mode {:o}, not 600",
                m.unwrap_or(0)
            );
        }
    }
}
