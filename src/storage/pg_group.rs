//! Group commit for PostgreSQL: an instance's concurrent money writes (reservations, their
//! records, embedded transfers) share one transaction, one turn of the wallet's advisory lock
//! and one WAL flush.
//!
//! A wallet's reservations are serialised across the fleet by a transaction-scoped advisory
//! lock ([`super::Engine::begin_money`]). Taken per reservation, the lock is held through
//! BEGIN, the lock's grant, the windows' read, the row's INSERT and the COMMIT with its WAL
//! flush: the wallet's payments formed one serial chain of ~2.4 ms each, whatever the number
//! of instances (BENCHMARKS §3b). The records of settlements and failures formed a second one:
//! each updates the same spend-bucket rows (a trigger, migrations/postgres/0006) and holds them
//! through its own flush; embedded transfers a third, on the payer's account row. Here the
//! writes an instance has waiting at one moment (up to
//! [`MAX_BATCH`]) run in one transaction instead: the lock is granted once, each write that
//! could leave changes to undo runs inside a savepoint of its own (one that fails is rolled
//! back alone), the batch commits once, and only then is each writer answered. Exactness
//! holds as on SQLite: the writes run one after the other and each sees those before it.
//! Writes that arrive while a batch waits for its turn or runs join it before its COMMIT
//! when the locks it took already cover them (a reservation or record of the same wallet
//! in the same minute: see `Late`), as if they had been in it from the start; others wait
//! for the next batch.
//!
//! The writes on PostgreSQL today (a reservation, a record, an embedded transfer) change
//! nothing unless they succeed, so they need no savepoint (`MoneyWrite::needs_savepoint`: a
//! round trip fewer each). The price: a write that fails *on the server* (a deadlock victim,
//! a timeout, a constraint) aborts the batch's transaction, and every write of the batch is
//! then answered as not committed: a reservation as "nothing was paid", a transfer as an
//! unknown outcome (the payer reconciles it), a record left for reconciliation. Refusals
//! (a budget's, an expired invoice's) are decided in SQL and Rust without failing a statement,
//! and cost their batch nothing.
//!
//! **Deadlocks.** A payment's statements update its spend buckets: the minute bucket, then the
//! hour bucket. A batch that held the hour bucket from its first write and then waited for a
//! minute bucket another writer holds (while that writer waits for the hour) would deadlock.
//! So before its writes the batch takes the wallets' advisory locks in key order, then locks
//! every bucket row its writes will touch, at once, in the one order every statement follows
//! (start descending, minute before hour at the same start), then the accounts of its
//! transfers in name order (transfers run only in batches, so every one takes its accounts
//! this way), all in one round trip (`l402_take_turns`, migrations/postgres/0011): it does not
//! wait for a bucket or an account while holding one another writer could want next.
//! `instances_race_reservations_and_records` and `instances_cross_pay_embedded_accounts` in the
//! conformance suite deadlock without it.
//! Every record runs in a batch too, also one of a payment another instance reserved (or this
//! one reserved before a restart), with the turn read from the payment's row
//! ([`super::Engine::write_record`]). Run on its own, such a record held its payment's row
//! before its trigger asked for the buckets, so a reservation of the same invoice in a batch
//! holding those buckets (waiting on the unique index for that row) deadlocked with it;
//! `a_record_of_a_payment_reserved_elsewhere_waits_for_the_wallets_turn` in the conformance
//! suite shows it now waits for the turn instead. The credentials an embedded payment caches
//! are held until the batch commits, so the pruner skips rows it would have to wait for
//! (`SKIP LOCKED`, `Engine::prune_old`).

use std::any::Any;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};

use futures::FutureExt;
use futures::future::BoxFuture;
use serde_json::json;
use sqlx::{AnyConnection, AnyPool, Connection};
use tokio::sync::{mpsc, oneshot};
use tracing::error;

use super::StorageError;
use super::group::{Outcome, answer_not_run, more_waiting};

/// Writes per transaction at most: each savepoint that writes is a subtransaction, and
/// PostgreSQL keeps up to 64 of them per transaction in shared memory before it spills.
pub(crate) const MAX_BATCH: usize = 32;

/// A write's statements on the batch's connection; `true` when they stand, and the write's
/// result, type-erased.
pub(crate) type Run = Box<
    dyn for<'c> FnOnce(&'c mut AnyConnection) -> BoxFuture<'c, (bool, Box<dyn Any + Send>)> + Send,
>;

/// What a batch must hold before a write runs.
#[derive(Default)]
pub(crate) struct Turn {
    /// A wallet whose advisory lock the write needs, and the lock's key.
    pub wallet: Option<(String, i64)>,
    /// The creation time (clock seconds) of the wallet's outgoing payment whose spend buckets
    /// the write updates.
    pub spends_at: Option<i64>,
    /// An embedded transfer: the payer's account and the payment hash of the invoice it pays
    /// (whose account is the payee's).
    pub transfer: Option<(String, String)>,
}

impl Turn {
    /// The turn of a write of `wallet`'s money.
    pub(crate) fn of(wallet: &str, spends_at: Option<i64>) -> Turn {
        Turn {
            wallet: Some((wallet.to_owned(), super::engine::advisory_key(wallet))),
            spends_at,
            transfer: None,
        }
    }
}

struct Job {
    turn: Turn,
    /// Whether the write runs in a savepoint of its own (see `MoneyWrite::needs_savepoint`).
    savepoint: bool,
    run: Run,
    answer: oneshot::Sender<Outcome>,
}

/// The handle writers send their writes through; the committer stops when every handle is
/// gone.
#[derive(Clone)]
pub(crate) struct PgCommitter {
    jobs: mpsc::UnboundedSender<Job>,
    /// The wallet and creation time of each payment this instance reserved and has not
    /// recorded yet: its record joins a batch, whose turn it then knows.
    unrecorded: Arc<Mutex<HashMap<i64, (String, i64)>>>,
}

/// Reservations remembered for their records at most (those never recorded, as after an
/// unknown outcome, are recorded outside the batches).
const UNRECORDED_MAX: usize = 100_000;

impl PgCommitter {
    /// Start the committer on `pool` (a connection is taken from it for each batch).
    pub(crate) fn start(pool: AnyPool) -> PgCommitter {
        let (jobs, rx) = mpsc::unbounded_channel();
        tokio::spawn(gather(pool, rx));
        PgCommitter {
            jobs,
            unrecorded: Arc::default(),
        }
    }

    /// Payment `id` of `wallet`, created at `at`, was reserved by this instance.
    pub(crate) fn reserved(&self, id: i64, wallet: &str, at: i64) {
        if let Ok(mut map) = self.unrecorded.lock()
            && map.len() < UNRECORDED_MAX
        {
            map.insert(id, (wallet.to_owned(), at));
        }
    }

    /// The turn the record of payment `id` needs, if this instance reserved it (and forgets
    /// it: a payment is recorded once, and one recorded again is recorded outside a batch).
    pub(crate) fn record_turn(&self, id: i64) -> Option<Turn> {
        let (wallet, at) = self.unrecorded.lock().ok()?.remove(&id)?;
        Some(Turn::of(&wallet, Some(at)))
    }

    /// Run `run` in the next batch, holding `turn`, in a savepoint of its own if `savepoint`;
    /// what became of it.
    pub(crate) async fn submit(&self, turn: Turn, savepoint: bool, run: Run) -> Outcome {
        let (answer, outcome) = oneshot::channel();
        let job = Job {
            turn,
            savepoint,
            run,
            answer,
        };
        if self.jobs.send(job).is_err() {
            return Outcome::NotRun("the ledger's writer has stopped".into());
        }
        outcome
            .await
            .unwrap_or_else(|_| Outcome::NotRun("the ledger's writer stopped mid-write".into()))
    }
}

async fn gather(pool: AnyPool, mut jobs: mpsc::UnboundedReceiver<Job>) {
    // Writes taken from the channel by a batch that could not run them (see `Late`): first in
    // the next batch.
    let mut carried: VecDeque<Job> = VecDeque::new();
    loop {
        let first = match carried.pop_front() {
            Some(job) => job,
            None => match jobs.recv().await {
                Some(job) => job,
                None => break,
            },
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH
            && let Some(job) = carried.pop_front()
        {
            batch.push(job);
        }
        if batch.len() < MAX_BATCH {
            batch.extend(more_waiting(&mut jobs, MAX_BATCH - batch.len()));
        }
        let mut conn = match pool.acquire().await {
            Ok(c) => c,
            Err(e) => {
                not_run(batch, &StorageError::from(e).to_string());
                continue;
            }
        };
        let late = Late {
            jobs: &mut jobs,
            carried: &mut carried,
        };
        if let Err(why) = run_batch(&mut conn, batch, late).await {
            // The connection's state is unknown (a write panicked, or the server went away
            // mid-batch): it does not go back to the pool.
            error!(error = %why, "a batch of ledger writes broke off; its connection is closed");
            let _ = conn.detach().close().await;
        }
    }
}

/// Where a batch finds writes that arrived after it took its locks: those its locks already
/// cover join it before it commits (the wallet's turn is the fleet's bottleneck, and a batch
/// waits for it while its instance's writers answered by the batch before submit their next
/// writes); any other is carried to the next batch.
struct Late<'a> {
    jobs: &'a mut mpsc::UnboundedReceiver<Job>,
    carried: &'a mut VecDeque<Job>,
}

/// Run `batch` in one transaction and answer every writer; `Err` when the connection must not
/// be used again.
async fn run_batch(
    conn: &mut AnyConnection,
    batch: Vec<Job>,
    late: Late<'_>,
) -> Result<(), String> {
    let mut tx = match conn.begin().await {
        Ok(tx) => tx,
        Err(e) => {
            not_run(batch, &StorageError::from(e).to_string());
            return Ok(());
        }
    };
    let held = turns(&batch);
    if let Err(e) = take_turns(&mut tx, &held).await {
        // Dropping the transaction rolls it back.
        not_run(batch, &e.to_string());
        return Ok(());
    }
    let mut ran: Vec<(oneshot::Sender<Outcome>, Box<dyn Any + Send>)> =
        Vec::with_capacity(MAX_BATCH);
    let mut jobs = batch.into_iter();
    let mut broken: Option<Broken> = None;
    for job in jobs.by_ref() {
        if let Err(b) = run_one(&mut tx, job, &mut ran).await {
            broken = Some(b);
            break;
        }
    }
    // Writes that came since, whose locks the batch holds already: in this transaction too.
    while broken.is_none() && ran.len() < MAX_BATCH {
        let Ok(job) = late.jobs.try_recv() else {
            break;
        };
        if !held.covers(&job.turn) {
            late.carried.push_back(job);
            continue;
        }
        if let Err(b) = run_one(&mut tx, job, &mut ran).await {
            broken = Some(b);
        }
    }
    let (broken, mut unusable) = match broken {
        Some(b) => (Some(b.why), b.unusable),
        None => (None, false),
    };
    let commit = match broken {
        Some(why) => {
            not_run(jobs.collect(), &why);
            if !unusable && tx.rollback().await.is_err() {
                unusable = true;
            }
            Err(why)
        }
        None => tx.commit().await.map_err(|e| {
            let why = StorageError::from(e).to_string();
            error!(error = %why, writes = ran.len(), "the ledger could not commit a batch of writes");
            why
        }),
    };
    for (answer, result) in ran {
        let _ = answer.send(Outcome::Ran {
            result,
            commit: commit.clone(),
        });
    }
    if unusable {
        return Err("the batch's connection is in an unknown state".into());
    }
    Ok(())
}

/// Why a batch stopped running its writes; `unusable` when its connection's state is unknown.
struct Broken {
    why: String,
    unusable: bool,
}

/// Run `job` in the batch's transaction `tx` (in a savepoint of its own if it asks for one),
/// its result kept in `ran` to be answered once the batch commits; `Err` when the batch can
/// run no more (the job is answered already then, if it did not run).
async fn run_one(
    tx: &mut AnyConnection,
    job: Job,
    ran: &mut Vec<(oneshot::Sender<Outcome>, Box<dyn Any + Send>)>,
) -> Result<(), Broken> {
    if job.savepoint
        && let Err(e) = simple(tx, "SAVEPOINT write").await
    {
        let why = e.to_string();
        let _ = job.answer.send(Outcome::NotRun(why.clone()));
        return Err(Broken {
            why,
            unusable: false,
        });
    }
    let outcome = AssertUnwindSafe((job.run)(tx)).catch_unwind().await;
    let Ok((keep, result)) = outcome else {
        error!("a ledger write panicked; its batch was rolled back");
        let why = "the write failed and was undone".to_owned();
        let _ = job.answer.send(Outcome::NotRun(why.clone()));
        return Err(Broken {
            why,
            unusable: true,
        });
    };
    ran.push((job.answer, result));
    if keep {
        return Ok(());
    }
    let undone = if job.savepoint {
        simple(tx, "ROLLBACK TO SAVEPOINT write").await
    } else {
        // The write changed nothing, but a statement of it that failed on the server has
        // aborted the transaction: then nothing more may run in it, and its COMMIT would roll
        // back what the writes before this one were told stands.
        simple(tx, "SELECT 1").await
    };
    undone.map_err(|e| Broken {
        why: e.to_string(),
        unusable: false,
    })
}

/// What a batch must hold: by advisory-lock key, the wallet and the creation times of the
/// outgoing payments its writes insert or record; and the transfers it makes, by payer and
/// payment hash.
#[derive(Default)]
struct Turns {
    wallets: BTreeMap<i64, (String, BTreeSet<i64>)>,
    transfers: Vec<(String, String)>,
}

impl Turns {
    /// Whether a batch holding these turns holds every lock `turn` needs: the wallet's turn
    /// and the spend buckets of the payment it inserts or records. A transfer is never
    /// covered: the payee's account is found by the server as the batch takes its locks.
    fn covers(&self, turn: &Turn) -> bool {
        let Some((_, key)) = &turn.wallet else {
            return false;
        };
        turn.transfer.is_none()
            && self.wallets.get(key).is_some_and(|(_, times)| {
                // The same minute is the same hour too.
                let minute = |t: i64| t - t.rem_euclid(60);
                turn.spends_at
                    .is_none_or(|at| times.iter().any(|t| minute(*t) == minute(at)))
            })
    }
}

fn turns(batch: &[Job]) -> Turns {
    let mut all = Turns::default();
    for job in batch {
        let turn = &job.turn;
        if let Some((wallet, key)) = &turn.wallet {
            let entry = all
                .wallets
                .entry(*key)
                .or_insert_with(|| (wallet.clone(), BTreeSet::new()));
            entry.1.extend(turn.spends_at);
        }
        all.transfers.extend(turn.transfer.clone());
    }
    all
}

/// Everything the batch's writes will lock, before any of them runs, in one round trip
/// (`l402_take_turns`, migrations/postgres/0011): the wallets' advisory locks; then each
/// wallet's spend buckets its writes update; then the accounts of the embedded transfers (a
/// transfer runs only in a batch on PostgreSQL and takes no lock of its own: `Settle` in
/// books.rs). Each kind in one order that every other writer follows too (see the module docs
/// and the function's). Accounts are locked `FOR NO KEY UPDATE`, what the transfer's UPDATE
/// takes anyway, not `FOR UPDATE`: a claim takes a key-share lock on the payer's row (the
/// invoice's `paid_by` references it), which `FOR UPDATE` would conflict with.
async fn take_turns(conn: &mut AnyConnection, turns: &Turns) -> Result<(), StorageError> {
    let mut buckets = Vec::new();
    for (wallet, times) in turns.wallets.values() {
        for at in times {
            for span in [60, 3600] {
                buckets.push(
                    json!({"wallet": wallet, "span": span, "start": at - at.rem_euclid(span)}),
                );
            }
        }
    }
    let arg = json!({
        "locks": turns.wallets.keys().collect::<Vec<_>>(),
        "buckets": buckets,
        "payers": turns.transfers.iter().map(|t| &t.0).collect::<Vec<_>>(),
        "hashes": turns.transfers.iter().map(|t| &t.1).collect::<Vec<_>>(),
    });
    sqlx::query("SELECT l402_take_turns($1::JSONB)")
        .bind(arg.to_string())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// `result` of a write whose statement has changed rows; when it is an `Err` (the statement's
/// answer could not be read), the batch's transaction is made to fail first, so that the
/// change is rolled back with the batch instead of committed behind an error: a write without
/// a savepoint must change nothing unless it returns `Ok` (`MoneyWrite::needs_savepoint`).
pub(crate) async fn undone_unless_ok<T, E>(
    conn: &mut AnyConnection,
    result: Result<T, E>,
) -> Result<T, E> {
    if result.is_err() {
        // A division by zero: an error on the server aborts the transaction, which the batch
        // then finds out before anything else runs in it.
        let _ = sqlx::query("SELECT 1 / 0").execute(&mut *conn).await;
    }
    result
}

/// A statement of the batch's own, with no arguments.
async fn simple(conn: &mut AnyConnection, sql: &'static str) -> Result<(), StorageError> {
    sqlx::query(sql).execute(&mut *conn).await?;
    Ok(())
}

fn not_run(batch: Vec<Job>, why: &str) {
    answer_not_run(batch.into_iter().map(|job| job.answer).collect(), why);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(turn: Turn) -> Job {
        let (answer, _) = oneshot::channel();
        Job {
            turn,
            savepoint: false,
            run: Box::new(|_| Box::pin(async { (true, Box::new(()) as Box<dyn Any + Send>) })),
            answer,
        }
    }

    /// A late write joins a batch only where the batch's locks already cover it: the same
    /// wallet's turn and the same minute's (so hour's) spend buckets; never a transfer.
    #[test]
    fn late_writes_join_only_under_the_locks_held() {
        let t0: i64 = 1_800_000_000 + 120; // two minutes into an hour
        let held = turns(&[
            job(Turn::of("a", Some(t0))),
            job(Turn {
                transfer: Some(("a".into(), "hash".into())),
                ..Turn::of("a", Some(t0 + 5))
            }),
        ]);
        assert!(held.covers(&Turn::of("a", Some(t0 + 59))));
        assert!(held.covers(&Turn::of("a", None)));
        assert!(
            !held.covers(&Turn::of("a", Some(t0 + 60))),
            "another minute"
        );
        assert!(!held.covers(&Turn::of("a", Some(t0 - 1))), "another minute");
        assert!(!held.covers(&Turn::of("b", Some(t0))), "another wallet");
        assert!(!held.covers(&Turn::default()), "no wallet");
        let transfer = Turn {
            transfer: Some(("a".into(), "hash".into())),
            ..Turn::of("a", Some(t0))
        };
        assert!(
            !held.covers(&transfer),
            "a transfer's payee is found by the server"
        );
    }
}
