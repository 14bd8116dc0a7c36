//! Budget-checked payments per second on PostgreSQL for a fleet: several instances (separate
//! OS processes, each with its own connection pool, as `l402-mcp serve` processes of a fleet on
//! several hosts would be) paying from one wallet against one shared budget, through the real
//! pay path (`Payer::pay` on the embedded wallet, whose books are on the same database), then
//! a check that the ledger is exact.
//!
//! Usage: L402_BENCH_DATABASE_URL=postgres://... pay_fleet [--instances 3] [--callers 16]
//!        [--payments 3000] [--rounds 3]
//!   --instances   processes paying at once (a list runs each: `--instances 1,3`)
//!   --callers     concurrent callers in each process
//!   --payments    invoices paid per run, split evenly between the processes
//!   --rounds      runs per instance count, each on a fresh schema
//! The URL's server is used, never changed: each run works in a schema of its own
//! (`pay_fleet_N`, dropped and made again). `tools/bench/run.sh fleet` starts a throwaway
//! server with the durability a production one has (fsync, synchronous_commit on) and stops it.
//! Prints a human report on stderr and one JSON line on stdout.
//!
//! Exactness, checked after every run (the process exits non-zero when one fails): the
//! ledger's committed spend equals what the callers were told was paid, nothing is left
//! pending or reserved, the embedded accounts moved by exactly that; and with a budget below
//! the demand (no fee allowance, so every reservation is exactly the price) exactly
//! budget / price payments are made and every other one is refused, never more.
//!
//! Benchmarks measure; they assert nothing about time.
// A failed step in a test or benchmark is a failed run: unwrapping is fine here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/payers.rs"]
mod payers;
// Its `fresh_schema_on`: each run in a schema of its own, as each PostgreSQL test.
#[allow(dead_code)]
#[path = "../tests/common/pg.rs"]
mod pg;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use l402_mcp::app::App;
use l402_mcp::budget::{BudgetPolicy, MSAT_PER_SAT};
use l402_mcp::l402::Msat;
use l402_mcp::storage::{Direction, Storage};
use l402_mcp::wallet::BackendConfig;
use l402_mcp::wallet::embedded::DEMO_GRANT_MSAT;
use serde_json::{Value, json};
use sqlx::{AssertSqlSafe, Connection, PgConnection};

/// Where the server is: in the environment, not on command lines (`ps` shows those).
const URL_ENV: &str = "L402_BENCH_DATABASE_URL";
const PRICE_MSAT: u64 = MSAT_PER_SAT;
const BUYER: &str = "fleet";
const SELLER: &str = "shop";

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// The server's counters for the whole database: committed and rolled-back transactions, and
/// WAL flushes (`pg_stat_wal.wal_sync`, PostgreSQL 14 to 17; none where it is absent).
async fn server_counters(url: &str) -> (i64, i64, Option<i64>) {
    let mut c = PgConnection::connect(url).await.expect("connect");
    let (commits, rollbacks): (i64, i64) = sqlx::query_as(
        "SELECT xact_commit, xact_rollback FROM pg_stat_database WHERE datname = current_database()",
    )
    .fetch_one(&mut c)
    .await
    .expect("pg_stat_database");
    let syncs: Option<i64> = sqlx::query_scalar("SELECT wal_sync FROM pg_stat_wal")
        .fetch_one(&mut c)
        .await
        .ok();
    let _ = c.close().await;
    (commits, rollbacks, syncs)
}

/// CPU seconds used by the PostgreSQL server whose postmaster is `pid` (`L402_BENCH_PG_PID`,
/// which `tools/bench/run.sh` sets): its own, its exited backends' (counted to it when
/// reaped), and its live children's.
fn server_cpu(pid: Option<u32>) -> Option<f64> {
    let pid = pid?;
    // (ppid, utime + stime, cutime + cstime) of a process, in clock ticks.
    let stat = |p: &str| -> Option<(u32, f64, f64)> {
        let s = std::fs::read_to_string(format!("/proc/{p}/stat")).ok()?;
        let f: Vec<&str> = s.rsplit_once(')')?.1.split_whitespace().collect();
        let n = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        Some((f.get(1)?.parse().ok()?, n(11) + n(12), n(13) + n(14)))
    };
    let (_, own, reaped) = stat(&pid.to_string())?;
    let mut ticks = own + reaped;
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        let name = e.file_name();
        let Some(p) = name
            .to_str()
            .filter(|p| p.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        if let Some((_, t, _)) = stat(p).filter(|s| s.0 == pid) {
            ticks += t;
        }
    }
    Some(ticks / 100.0)
}

/// Idle and total jiffies of the whole machine (/proc/stat's first line).
fn machine_jiffies() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let v: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait ...: idle and iowait are idle time.
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (idle, v.iter().sum())
}

struct Run {
    instances: usize,
    callers: usize,
    payments: usize,
    /// The wallet's daily budget; `None`: more than the run can spend.
    cap_msat: Option<u64>,
}

/// One run on a fresh schema: the shop's invoices made first (not timed), the instances
/// started and waiting, then all told to go at once; their payments per second over the span
/// from the first start to the last finish; then the exactness checks.
fn run(rt: &tokio::runtime::Runtime, server: &str, schema: &str, r: &Run) -> Value {
    let dir = tempfile::tempdir().expect("temp dir");
    let (url, storage, shop) = rt.block_on(async {
        let url = pg::fresh_schema_on(server, schema).await;
        let storage = Storage::connect_postgres(&url).await.expect("storage");
        let clock = l402_mcp::clock::system();
        let open = |name: &'static str| {
            App::open_on(
                storage.clone(),
                dir.path(),
                name,
                &BackendConfig::Embedded,
                clock.clone(),
            )
        };
        let shop = open(SELLER).await.expect("shop");
        // The buyer's account and budget exist before the instances start.
        drop(open(BUYER).await.expect("buyer"));
        let policy = match r.cap_msat {
            None => BudgetPolicy {
                daily_msat: 1_000_000 * MSAT_PER_SAT,
                ..BudgetPolicy::default()
            },
            // No fee allowance: each reservation holds exactly the price, so exactly
            // cap / price payments fit.
            Some(cap) => BudgetPolicy {
                daily_msat: cap,
                max_fee_floor_msat: 0,
                max_fee_ppm: 0,
                ..BudgetPolicy::default()
            },
        };
        storage
            .ledger()
            .set_budget(BUYER, &policy, clock.now())
            .await
            .expect("budget");
        (url, storage, shop)
    });
    let invoices: Vec<String> = rt.block_on(
        futures::stream::iter(0..r.payments)
            .map(|_| async {
                let (inv, _) = shop
                    .seller
                    .create_invoice(PRICE_MSAT, "bench", 3600)
                    .await
                    .expect("invoice");
                inv.bolt11
            })
            .buffer_unordered(8)
            .collect(),
    );
    let mut workers = Vec::new();
    for i in 0..r.instances {
        let mine: Vec<&str> = invoices
            .iter()
            .skip(i)
            .step_by(r.instances)
            .map(String::as_str)
            .collect();
        let file = dir.path().join(format!("invoices-{i}"));
        std::fs::write(&file, mine.join("\n")).expect("invoice file");
        let data = dir.path().join(format!("instance-{i}"));
        std::fs::create_dir(&data).expect("data dir");
        let mut child = Command::new(std::env::current_exe().expect("own path"))
            .arg("--worker")
            .arg(&file)
            .arg(&data)
            .arg(r.callers.to_string())
            .env(URL_ENV, &url)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start an instance");
        let mut out = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        out.read_line(&mut line).expect("instance ready");
        assert_eq!(line.trim(), "ready", "instance {i} did not start");
        workers.push((child, out));
    }
    let pg_pid = std::env::var("L402_BENCH_PG_PID")
        .ok()
        .and_then(|p| p.parse().ok());
    let before = rt.block_on(server_counters(&url));
    let jiffies0 = machine_jiffies();
    let pg_cpu0 = server_cpu(pg_pid);
    for (child, _) in &mut workers {
        writeln!(child.stdin.as_mut().expect("stdin"), "go").expect("go");
    }
    let mut results = Vec::new();
    for (mut child, mut out) in workers {
        let mut line = String::new();
        out.read_line(&mut line).expect("instance result");
        assert!(
            child.wait().expect("instance").success(),
            "an instance failed"
        );
        results.push(serde_json::from_str::<Value>(&line).expect("instance JSON"));
    }
    let jiffies1 = machine_jiffies();
    // The instances' backends end once their sessions close.
    std::thread::sleep(std::time::Duration::from_millis(500));
    let pg_cpu = server_cpu(pg_pid).zip(pg_cpu0).map(|(a, b)| a - b);
    let after = rt.block_on(server_counters(&url));

    let n = |v: &Value, k: &str| v[k].as_f64().unwrap_or(0.0);
    let sum = |k: &str| results.iter().map(|v| n(v, k)).sum::<f64>();
    let (paid, refused, other) = (
        sum("paid") as u64,
        sum("refused") as u64,
        sum("other") as u64,
    );
    let first = results
        .iter()
        .map(|v| n(v, "start"))
        .fold(f64::MAX, f64::min);
    let last = results.iter().map(|v| n(v, "end")).fold(0.0, f64::max);
    let secs = last - first;
    let rate = paid as f64 / secs;
    let (didle, dtotal) = (jiffies1.0 - jiffies0.0, jiffies1.1 - jiffies0.1);
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get()) as f64;
    let busy_cores = if dtotal == 0 {
        0.0
    } else {
        (1.0 - didle as f64 / dtotal as f64) * cores
    };
    let attempts = (paid + refused + other).max(1) as f64;
    let client_cpu = sum("cpu_user_s") + sum("cpu_sys_s");
    let cpu_ms = |s: f64| s * 1000.0 / attempts;
    let commits = (after.0 - before.0) as f64 / attempts;
    let rollbacks = (after.1 - before.1) as f64 / attempts;
    let wal_syncs = after
        .2
        .zip(before.2)
        .map(|(a, b)| (a - b) as f64 / attempts);

    let check = rt.block_on(check(&storage, r, paid, refused, other));
    eprintln!(
        "{} instances x {} callers: paid {paid}, refused {refused}, other {other} in {secs:.3} s = {rate:.0} payments/s; \
         per attempt {commits:.1} commits, {rollbacks:.2} rollbacks{}; machine busy {busy_cores:.2} of {cores} cores; \
         CPU per attempt: instances {:.3} ms{}; exact: {}",
        r.instances,
        r.callers,
        wal_syncs.map_or(String::new(), |w| format!(", {w:.2} WAL flushes")),
        cpu_ms(client_cpu),
        pg_cpu.map_or(String::new(), |c| format!(
            ", PostgreSQL {:.3} ms",
            cpu_ms(c)
        )),
        check["exact"]
    );
    json!({"instances": r.instances, "callers_per_instance": r.callers, "cap_msat": r.cap_msat,
           "paid": paid, "refused": refused, "other": other, "secs": secs, "per_sec": rate.round(),
           "commits_per_attempt": commits, "rollbacks_per_attempt": rollbacks,
           "wal_flushes_per_attempt": wal_syncs, "machine_busy_cores": busy_cores,
           "instances_cpu_ms_per_attempt": cpu_ms(client_cpu),
           "server_cpu_ms_per_attempt": pg_cpu.map(cpu_ms),
           "instances_detail": results, "check": check})
}

/// The books after a run; exits the process when they are not exact.
async fn check(storage: &Storage, r: &Run, paid: u64, refused: u64, other: u64) -> Value {
    let ledger = storage.ledger();
    let totals = ledger.totals(BUYER).await.expect("totals");
    let pending = ledger
        .pending(BUYER, Direction::Out)
        .await
        .expect("pending");
    let books = storage.books();
    let buyer = books.balance(BUYER).await.expect("balance").msat();
    let seller = books.balance(SELLER).await.expect("balance").msat();
    let spent = totals.spent.msat();
    let mut why = Vec::new();
    if spent != paid * PRICE_MSAT {
        why.push(format!(
            "ledger spent {spent} msat, callers were told {paid} payments"
        ));
    }
    if totals.reserved != Msat::ZERO || !pending.is_empty() {
        why.push(format!(
            "{} pending, {} msat still reserved",
            pending.len(),
            totals.reserved.msat()
        ));
    }
    if DEMO_GRANT_MSAT - buyer != spent || seller - DEMO_GRANT_MSAT != spent {
        why.push(format!(
            "accounts moved {} out, {} in; ledger spent {spent}",
            DEMO_GRANT_MSAT - buyer,
            seller - DEMO_GRANT_MSAT
        ));
    }
    if other != 0 {
        why.push(format!("{other} payments failed otherwise"));
    }
    match r.cap_msat {
        None if refused != 0 => why.push(format!("{refused} refused under an ample budget")),
        Some(cap) if spent > cap => why.push(format!("OVER BUDGET: spent {spent} > cap {cap}")),
        Some(cap) if paid != cap / PRICE_MSAT || refused != r.payments as u64 - paid => {
            why.push(format!(
                "paid {paid}, refused {refused}: the budget fits exactly {}",
                cap / PRICE_MSAT
            ))
        }
        _ => {}
    }
    if !why.is_empty() {
        eprintln!("EXACTNESS CHECK FAILED: {}", why.join("; "));
        std::process::exit(1);
    }
    json!({"exact": true, "spent_msat": spent, "cap_msat": r.cap_msat, "pending_left": 0,
           "buyer_account_moved_msat": DEMO_GRANT_MSAT - buyer})
}

/// An instance: its own pool and data dir, the fleet's wallet; pays its invoices when told.
fn worker(args: &[String]) {
    let (file, data, callers) = (&args[0], Path::new(&args[1]), args[2].parse().unwrap());
    let url = std::env::var(URL_ENV).expect("database URL");
    let invoices: Vec<String> = std::fs::read_to_string(file)
        .expect("invoices")
        .lines()
        .map(str::to_owned)
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let storage = Storage::connect_postgres(&url).await.expect("storage");
        let app = App::open_on(
            storage,
            data,
            BUYER,
            &BackendConfig::Embedded,
            l402_mcp::clock::system(),
        )
        .await
        .expect("instance");
        println!("ready");
        let mut go = String::new();
        std::io::stdin().read_line(&mut go).expect("go");
        let start = unix_now();
        let o = payers::pay_all(&app, Arc::new(invoices), callers).await;
        let end = unix_now();
        println!(
            "{}",
            json!({"paid": o.paid, "refused": o.refused, "other": o.other, "secs": o.secs,
                   "start": start, "end": end, "cpu_user_s": o.cpu_user, "cpu_sys_s": o.cpu_sys})
        );
    });
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--worker") {
        return worker(&args[1..]);
    }
    let Ok(server) = std::env::var(URL_ENV) else {
        eprintln!(
            "{URL_ENV} is not set: give a PostgreSQL server (tools/bench/run.sh fleet starts one)"
        );
        std::process::exit(2);
    };
    let instances: Vec<usize> = args
        .iter()
        .position(|a| a == "--instances")
        .and_then(|i| args.get(i + 1))
        .map_or("3", String::as_str)
        .split(',')
        .filter_map(|v| v.trim().parse().ok())
        .filter(|&v| v > 0)
        .collect();
    let callers = common::arg("--callers", 16);
    let payments = common::arg("--payments", 3000);
    let rounds = common::arg("--rounds", 3);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let settings: (String, String, String) = rt.block_on(async {
        let mut c = PgConnection::connect(&server).await.expect("connect");
        sqlx::query_as(
            "SELECT current_setting('server_version'), current_setting('fsync'),
                    current_setting('synchronous_commit')",
        )
        .fetch_one(&mut c)
        .await
        .expect("settings")
    });
    eprintln!(
        "PostgreSQL {}: fsync = {}, synchronous_commit = {}",
        settings.0, settings.1, settings.2
    );
    let mut out = json!({"server": {"version": settings.0, "fsync": settings.1, "synchronous_commit": settings.2},
                         "payments_per_run": payments, "callers_per_instance": callers});
    let mut runs = Vec::new();
    let mut k = 0;
    for &n in &instances {
        for _ in 0..rounds {
            k += 1;
            let r = Run {
                instances: n,
                callers,
                payments,
                cap_msat: None,
            };
            runs.push(run(&rt, &server, &format!("pay_fleet_{k}"), &r));
        }
    }
    out["throughput"] = json!(runs);

    // A budget that runs out a third of the way: the instances together never overspend it.
    let n = instances.iter().copied().max().unwrap_or(3);
    let tight = payments / 2;
    let r = Run {
        instances: n,
        callers,
        payments: tight,
        cap_msat: Some((tight / 3) as u64 * PRICE_MSAT),
    };
    out["tight_cap"] = run(&rt, &server, "pay_fleet_tight", &r);
    // Leave the server as it was found.
    rt.block_on(async {
        let mut c = PgConnection::connect(&server).await.expect("connect");
        for i in 1..=k {
            let _ = sqlx::raw_sql(AssertSqlSafe(format!(
                "DROP SCHEMA IF EXISTS pay_fleet_{i} CASCADE"
            )))
            .execute(&mut c)
            .await;
        }
        let _ = sqlx::raw_sql("DROP SCHEMA IF EXISTS pay_fleet_tight CASCADE")
            .execute(&mut c)
            .await;
    });
    println!("{out}");
}
