//! Budget-checked payments per second through `Payer::pay` on the embedded wallet, with many
//! concurrent callers, then a check that the budget held. Also a breakdown of one payment into
//! the ledger and wallet calls it makes, timed one at a time, to show where the time goes.
//!
//! Also: payments per second on a ledger that already holds 1k, 10k, 100k and 1M payments in the
//! last 24 hours (the costs that must not grow with history).
//!
//! Usage: pay_concurrent [--payments N] [--callers N] [--batches N] [--history 1000,10000,...]
//!        (`--history 0` skips the history runs; `--only-history` runs nothing else)
//! Prints a human report on stderr and one JSON line on stdout.
//!
//! Benchmarks measure; they assert nothing about time. The budget checks are real checks
//! (the process exits non-zero if a cap was exceeded).
// A failed step in a test or benchmark is a failed run: unwrapping is fine here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/payers.rs"]
mod payers;

use std::sync::Arc;
use std::time::Instant;

use std::str::FromStr;

use bitcoin::secp256k1::{Message, Secp256k1};
use l402_mcp::app::App;
use l402_mcp::bolt11;
use l402_mcp::budget::{BudgetPolicy, MSAT_PER_SAT};
use l402_mcp::clock::{ManualClock, SharedClock};
use l402_mcp::l402::Msat;
use l402_mcp::storage::{Direction, NewPayment, Reservation, Settlement};
use lightning_invoice::SignedRawBolt11Invoice;
use payers::pay_all;
use serde_json::{Value, json};

const T0: u64 = 1_800_000_000;
const PRICE_MSAT: u64 = MSAT_PER_SAT;

struct Pair {
    _dir: tempfile::TempDir,
    buyer: App,
    seller: App,
}

async fn pair(daily_msat: u64) -> Pair {
    let dir = tempfile::tempdir().expect("temp dir");
    let clock: SharedClock = ManualClock::new(T0);
    let buyer = App::open_embedded(dir.path(), "buyer", clock.clone())
        .await
        .expect("buyer");
    let seller = App::open_embedded(dir.path(), "seller", clock)
        .await
        .expect("seller");
    let policy = BudgetPolicy {
        daily_msat,
        ..BudgetPolicy::default()
    };
    buyer
        .ledger
        .set_budget("buyer", &policy, T0)
        .await
        .expect("budget");
    Pair {
        _dir: dir,
        buyer,
        seller,
    }
}

async fn invoices(seller: &App, n: usize) -> Vec<String> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let (inv, _) = seller
            .seller
            .create_invoice(PRICE_MSAT, "bench", 3600)
            .await
            .expect("invoice");
        out.push(inv.bolt11);
    }
    out
}

/// Spent (settled out, with fees) and still reserved by the buyer; balance moved.
async fn check_budget(p: &Pair, cap_msat: u64, paid: usize) -> Value {
    let totals = p.buyer.ledger.totals("buyer").await.expect("totals");
    let balance = p.buyer.wallet.balance().await.expect("balance").msat;
    let grant = l402_mcp::wallet::embedded::DEMO_GRANT_MSAT;
    let pending = p
        .buyer
        .ledger
        .pending("buyer", Direction::Out)
        .await
        .expect("pending")
        .len();
    let ok = totals.spent.msat() <= cap_msat
        && totals.spent.msat() == paid as u64 * PRICE_MSAT
        && grant - balance == totals.spent.msat()
        && pending == 0;
    if !ok {
        eprintln!(
            "BUDGET CHECK FAILED: spent {} msat, cap {cap_msat}, paid {paid}, balance moved {}, pending {pending}",
            totals.spent.msat(),
            grant - balance
        );
        std::process::exit(1);
    }
    json!({"spent_msat": totals.spent.msat(), "cap_msat": cap_msat, "within_budget": ok, "pending_left": pending})
}

fn secs_per(n: usize, f: f64) -> f64 {
    f / n as f64 * 1000.0
}

/// One caller, each step of a payment timed alone (ms per call), in the order `Payer::pay` runs
/// them: decode, reconcile (a query for pending payments), budget (settings row + JSON), reserve
/// (BEGIN IMMEDIATE: duplicate check, window sums, insert), the embedded wallet's settlement
/// (BEGIN IMMEDIATE: 4 statements), mark_succeeded (a select + an update).
async fn breakdown(n: usize) -> Value {
    let p = pair(u64::MAX / 4).await;
    let invs = invoices(&p.seller, n).await;
    let ledger = &p.buyer.ledger;
    let wallet = &p.buyer.wallet;
    let payer = &p.buyer.payer;

    let t = Instant::now();
    let decoded: Vec<_> = invs
        .iter()
        .map(|i| bolt11::decode(i).expect("decode"))
        .collect();
    let decode = secs_per(n, t.elapsed().as_secs_f64());

    let t = Instant::now();
    for _ in 0..n {
        payer.reconcile().await.expect("reconcile");
    }
    let reconcile = secs_per(n, t.elapsed().as_secs_f64());

    let t = Instant::now();
    let mut policy = BudgetPolicy::default();
    for _ in 0..n {
        policy = ledger.budget("buyer").await.expect("budget");
    }
    let budget = secs_per(n, t.elapsed().as_secs_f64());

    let max_fee = policy.max_fee_msat(PRICE_MSAT);
    let mut ids = Vec::with_capacity(n);
    let t = Instant::now();
    for inv in &decoded {
        let new = NewPayment {
            wallet: "buyer",
            invoice: inv,
            amount: Msat::from_msat(PRICE_MSAT),
            max_fee: Msat::from_msat(max_fee),
            url: None,
            payee: Some(&l402_mcp::payee::Payee::of_host("bench.example")),
            credential: None,
        };
        match ledger.reserve(&new, &policy, T0).await.expect("reserve") {
            Reservation::Reserved { id } => ids.push(id),
            other => panic!("unexpected {other:?}"),
        }
    }
    let reserve = secs_per(n, t.elapsed().as_secs_f64());

    let mut preimages = Vec::with_capacity(n);
    let t = Instant::now();
    for inv in &decoded {
        let r = wallet.pay_invoice(inv, max_fee).await.expect("settle");
        preimages.push(r.preimage.expect("preimage"));
    }
    let settle = secs_per(n, t.elapsed().as_secs_f64());

    let t = Instant::now();
    for (id, pre) in ids.iter().zip(&preimages) {
        ledger
            .mark_succeeded(
                *id,
                &Settlement {
                    preimage: Some(pre),
                    fee: Msat::ZERO,
                    note: None,
                },
                T0,
            )
            .await
            .expect("mark");
    }
    let mark = secs_per(n, t.elapsed().as_secs_f64());

    // What decode would cost with one signature recovery on a shared context: `bolt11::decode`
    // recovers the payee twice (`check_signature`, then `recover_payee_pub_key`), each time on
    // a new `Secp256k1::new()` context (randomized: one more EC multiplication).
    let ctx = Secp256k1::verification_only();
    let t = Instant::now();
    for i in &invs {
        let signed = SignedRawBolt11Invoice::from_str(&i.to_ascii_lowercase()).expect("parse");
        let msg = Message::from_digest(*signed.signable_hash());
        let payee = ctx
            .recover_ecdsa(&msg, &signed.signature().0)
            .expect("recover");
        std::hint::black_box(payee);
    }
    let decode_one_recovery = secs_per(n, t.elapsed().as_secs_f64());
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(Secp256k1::new());
    }
    let new_context = secs_per(n, t.elapsed().as_secs_f64());
    eprintln!(
        "decode alone: bolt11::decode {decode:.3} ms; parse + one recovery on a shared context {decode_one_recovery:.3} ms; Secp256k1::new() {new_context:.3} ms"
    );

    let sum = decode + reconcile + budget + reserve + settle + mark;
    eprintln!(
        "one payment, step by step (1 caller, ms): decode {decode:.3}, reconcile {reconcile:.3}, budget {budget:.3}, reserve {reserve:.3}, settle {settle:.3}, mark_succeeded {mark:.3}; sum {sum:.3} ms = {:.0}/s",
        1000.0 / sum
    );
    json!({"decode_ms": decode, "decode_one_recovery_shared_context_ms": decode_one_recovery, "secp256k1_new_context_ms": new_context, "reconcile_ms": reconcile, "budget_ms": budget, "reserve_ms": reserve,
           "embedded_settle_ms": settle, "mark_succeeded_ms": mark, "sum_ms": sum})
}

/// `rows` settled payments of 1 msat each (to one host, as a busy agent's would be) written
/// straight into the buyer's ledger, spread over the 24 hours before `T0`, through SQL: the
/// ledger's own triggers and indexes apply, as they would to payments made one by one.
async fn fill_history(dir: &std::path::Path, rows: usize) {
    use sqlx::Connection;
    let path = dir.join(l402_mcp::storage::LEDGER_FILE);
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .expect("open the ledger");
    let mut tx = conn.begin().await.expect("begin");
    sqlx::query(
        "INSERT INTO payments (wallet, direction, status, payment_hash, bolt11, amount_msat,
             fee_msat, reserved_msat, host, created_at, updated_at, settled_at)
         WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < $1)
         SELECT 'buyer', 'out', 'succeeded', printf('%064x', i), 'history', 1, 0, 0,
                'bench.example', $2 - 1 - (i % 86000), $2 - 1 - (i % 86000), $2 - 1 - (i % 86000)
           FROM seq",
    )
    .bind(rows as i64)
    .bind(T0 as i64)
    .execute(&mut *tx)
    .await
    .expect("history payments");
    sqlx::query(
        "INSERT INTO payment_payees (payment_id, wallet, payee_key, created_at)
         SELECT id, wallet, 'dns:bench.example', created_at FROM payments WHERE bolt11 = 'history'",
    )
    .execute(&mut *tx)
    .await
    .expect("history payees");
    tx.commit().await.expect("commit");
    let _ = conn.close().await;
}

/// Payments per second with `rows` payments already in the day's window.
async fn with_history(rows: usize, payments: usize, callers: usize) -> Value {
    let p = pair(1_000_000 * MSAT_PER_SAT).await;
    let t = Instant::now();
    if rows > 0 {
        fill_history(p._dir.path(), rows).await;
    }
    let fill = t.elapsed().as_secs_f64();
    let invs = Arc::new(invoices(&p.seller, payments).await);
    let o = pay_all(&p.buyer, invs, callers).await;
    assert_eq!(o.other + o.refused, 0, "unexpected failures: {o:?}");
    let rate = o.paid as f64 / o.secs;
    let totals = p.buyer.ledger.totals("buyer").await.expect("totals");
    let expected = rows as u64 + o.paid as u64 * PRICE_MSAT;
    if totals.spent.msat() != expected {
        eprintln!(
            "HISTORY CHECK FAILED: spent {} msat, expected {expected}",
            totals.spent.msat()
        );
        std::process::exit(1);
    }
    eprintln!(
        "history {rows:>8} payments in the day (written in {fill:.1} s): {callers} callers paid {} in {:.3} s = {rate:.0} payments/s; CPU {:.2} s user + {:.2} s system",
        o.paid, o.secs, o.cpu_user, o.cpu_sys
    );
    json!({"history": rows, "paid": o.paid, "secs": o.secs, "per_sec": rate.round(),
           "cpu_user_s": o.cpu_user, "cpu_sys_s": o.cpu_sys})
}

/// A fresh ledger, then one with each amount of history.
async fn history_runs(history: &[usize], payments: usize, callers: usize) -> Value {
    let mut runs = vec![with_history(0, payments, callers).await];
    for &rows in history {
        runs.push(with_history(rows, payments, callers).await);
    }
    json!(runs)
}

fn main() {
    let opt = common::arg;
    let history: Vec<usize> = {
        let args: Vec<String> = std::env::args().collect();
        args.iter()
            .position(|a| a == "--history")
            .and_then(|i| args.get(i + 1))
            .map_or("1000,10000,100000,1000000", String::as_str)
            .split(',')
            .filter_map(|v| v.trim().parse().ok())
            .filter(|&v| v > 0)
            .collect()
    };
    let only_history = std::env::args().any(|a| a == "--only-history");
    let payments = opt("--payments", 2000);
    let callers = opt("--callers", 32);
    let batches = opt("--batches", 2);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut out = json!({"callers": callers, "payments_per_batch": payments});
        if only_history {
            out["history"] = history_runs(&history, payments, callers).await;
            println!("{out}");
            return;
        }

        // A: throughput with a budget that allows everything; batches run one after the other
        // on the same ledger, so later ones pay with more history in the 24 h window.
        let cap = 1_000_000 * MSAT_PER_SAT;
        let p = pair(cap).await;
        let mut rates = Vec::new();
        let mut paid = 0;
        for b in 0..batches {
            let invs = Arc::new(invoices(&p.seller, payments).await);
            let o = pay_all(&p.buyer, invs, callers).await;
            assert_eq!(o.other + o.refused, 0, "unexpected failures: {o:?}");
            paid += o.paid;
            let rate = o.paid as f64 / o.secs;
            eprintln!(
                "batch {b}: {callers} callers paid {} invoices in {:.3} s = {rate:.0} payments/s (history before: {} payments); CPU {:.2} s user + {:.2} s system",
                o.paid,
                o.secs,
                paid - o.paid,
                o.cpu_user,
                o.cpu_sys
            );
            rates.push(json!({"batch": b, "history_before": paid - o.paid, "paid": o.paid, "secs": o.secs, "per_sec": rate.round(),
                "cpu_user_s": o.cpu_user, "cpu_sys_s": o.cpu_sys}));
        }
        out["throughput"] = json!(rates);
        out["throughput_budget_check"] = check_budget(&p, cap, paid).await;

        // B: a cap that runs out part-way: concurrent callers must never overspend it.
        let cap = (payments as u64 / 4) * PRICE_MSAT;
        let p = pair(cap).await;
        let invs = Arc::new(invoices(&p.seller, payments / 2).await);
        let o = pay_all(&p.buyer, invs, callers).await;
        let check = check_budget(&p, cap, o.paid).await;
        eprintln!(
            "tight cap {} sats: paid {}, refused {}, other {}; spent {} msat <= cap {cap} msat: ok; {:.0} attempts/s",
            cap / MSAT_PER_SAT,
            o.paid,
            o.refused,
            o.other,
            check["spent_msat"],
            (o.paid + o.refused + o.other) as f64 / o.secs
        );
        out["tight_cap"] = json!({"paid": o.paid, "refused": o.refused, "other": o.other, "secs": o.secs, "check": check});

        // C: scaling with the number of callers, and the step-by-step breakdown.
        let mut scaling = Vec::new();
        for c in [1, 4, 32] {
            let p = pair(1_000_000 * MSAT_PER_SAT).await;
            let invs = Arc::new(invoices(&p.seller, payments / 2).await);
            let o = pay_all(&p.buyer, invs, c).await;
            let rate = o.paid as f64 / o.secs;
            eprintln!(
                "{c:>2} callers: {rate:.0} payments/s; CPU {:.2} s user + {:.2} s system in {:.2} s",
                o.cpu_user, o.cpu_sys, o.secs
            );
            scaling.push(json!({"callers": c, "per_sec": rate.round(), "secs": o.secs, "cpu_user_s": o.cpu_user, "cpu_sys_s": o.cpu_sys}));
        }
        out["scaling"] = json!(scaling);
        out["breakdown_1_caller"] = breakdown(payments / 2).await;

        // D: the same throughput with history in the day's window: flat is the goal.
        if !history.is_empty() {
            out["history"] = history_runs(&history, payments, callers).await;
        }
        println!("{out}");
    });
}
