//! Group commit for SQLite: concurrent money writes share one transaction, and so one fsync.
//!
//! The ledger runs `synchronous = FULL`: a committed reservation is on disk before the payment
//! it reserves leaves. An fsync costs ~0.15–0.4 ms here, three per payment (reservation,
//! settlement, record), which alone capped a ledger near 800 payments/s. Writers therefore hand
//! their work to one committer, which takes every write waiting (up to [`MAX_BATCH`]), runs
//! them in order in one `BEGIN IMMEDIATE` transaction, each inside its own savepoint (a write
//! that fails is rolled back alone), commits once, and only then answers each writer.
//! Exactness holds: the writes of a batch run one after the other and each sees the ones
//! before it, as they would in separate transactions; durability holds: nobody hears "done"
//! before the commit that makes it so has returned.
//!
//! A write may instead be a [`Durability::Deferred`] note (the mark that a seller honoured a
//! credential), whose loss in a power cut cannot move money: a batch of such notes alone is
//! committed with `synchronous = NORMAL` (in the WAL, not waited on; durable with the next
//! synced commit), and a note that shares a batch with money writes is synced with them.
//!
//! The batch runs on a thread of the committer's own, on a SQLite connection of its own
//! (`rusqlite`), statement after statement with no hop between threads: through sqlx each
//! statement went to sqlx's worker thread and back (two wake-ups), which was most of the
//! committer's time. While a batch runs, the committer holds this process's sqlx writer
//! connection (the engine's other writes), so those queue behind the batch as before instead
//! of meeting it in SQLite's busy handler; other processes on the file still meet there.
//!
//! PostgreSQL has a committer of its own for reservations ([`super::pg_group`]): there the
//! server runs the statements, and instances are serialised per wallet by an advisory lock.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use sqlx::AnyPool;
use tokio::sync::{mpsc, oneshot};
use tracing::error;

use super::StorageError;

/// Writes per transaction at most.
pub(crate) const MAX_BATCH: usize = 64;

/// A write's statements, run on the committer's connection; `true` when they stand, and the
/// write's result, type-erased.
pub(crate) type Run = Box<dyn FnOnce(&Connection) -> (bool, Box<dyn Any + Send>) + Send>;

/// What became of a write handed to the committer.
pub(crate) enum Outcome {
    /// Never run (or run and rolled back): the message says why.
    NotRun(String),
    /// Run; its result, and whether the batch's commit went through.
    Ran {
        result: Box<dyn Any + Send>,
        commit: Result<(), String>,
    },
}

struct Job {
    run: Run,
    /// Whether the write must be on disk before its writer hears "done" (see [`Durability`]).
    durability: Durability,
    answer: oneshot::Sender<Outcome>,
}

/// When a write must reach the disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Durability {
    /// Before its writer hears "done": the commit waits for the fsync (`synchronous = FULL`).
    /// Every write of money.
    Synced,
    /// With the next synced commit or checkpoint: committed to the WAL (a crash of the process
    /// loses nothing) but not waited on (a power cut may lose it, with nothing after it). Only
    /// for a note whose loss can never make money move: the mark that a seller honoured a
    /// credential (its loss makes a later refusal count as "refused after payment", which
    /// pays nobody). A batch is written this way only when all its writes are such notes.
    Deferred,
}

/// A batch for the committer's thread, and how it says the batch is done.
struct Batch {
    jobs: Vec<Job>,
    done: oneshot::Sender<()>,
}

/// The handle writers send their writes through; the committer stops when every handle is
/// gone.
#[derive(Clone)]
pub(crate) struct Committer {
    jobs: mpsc::UnboundedSender<Job>,
}

/// How long the committer's connection waits for another process's write to end.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);
/// Statements kept prepared on the committer's connection.
const STATEMENT_CACHE: usize = 64;

impl Committer {
    /// Open the committer's connection to the ledger at `path` (created and migrated already)
    /// and start it; `turn` is the engine's sqlx writer pool (one connection), held while a
    /// batch runs.
    pub(crate) fn start(path: &Path, turn: AnyPool) -> Result<Committer, StorageError> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        // As every connection of the engine (`SQLITE_PRAGMAS`): see there for why FULL.
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        let (to_thread, batches) = std::sync::mpsc::channel::<Batch>();
        std::thread::Builder::new()
            .name("l402-ledger-commit".into())
            .spawn(move || {
                let mut level = Durability::Synced;
                while let Ok(batch) = batches.recv() {
                    run_batch(&conn, &mut level, batch.jobs);
                    let _ = batch.done.send(());
                }
            })
            .map_err(|source| StorageError::Io {
                path: path.display().to_string(),
                source,
            })?;
        let (jobs, rx) = mpsc::unbounded_channel();
        tokio::spawn(gather(turn, rx, to_thread));
        Ok(Committer { jobs })
    }

    /// Run `run` in the next batch; what became of it once the batch is committed (and, for
    /// a [`Durability::Synced`] write, on disk).
    pub(crate) async fn submit(&self, run: Run, durability: Durability) -> Outcome {
        let (answer, outcome) = oneshot::channel();
        let job = Job {
            run,
            durability,
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

/// Gather the writes waiting into batches and hand them to the thread one at a time, each
/// while holding the process's sqlx writer.
async fn gather(
    turn: AnyPool,
    mut jobs: mpsc::UnboundedReceiver<Job>,
    thread: std::sync::mpsc::Sender<Batch>,
) {
    while let Some(first) = jobs.recv().await {
        let batch = waiting(first, &mut jobs, MAX_BATCH);
        let held = match turn.acquire().await {
            Ok(c) => c,
            Err(e) => {
                not_run(batch, &StorageError::from(e).to_string());
                continue;
            }
        };
        let (done, finished) = oneshot::channel();
        if let Err(returned) = thread.send(Batch { jobs: batch, done }) {
            not_run(returned.0.jobs, "the ledger's writer thread has stopped");
            return;
        }
        // The thread answers every writer before it says the batch is done.
        let _ = finished.await;
        drop(held);
    }
}

/// Set the connection's `synchronous` for a batch that needs `wanted`; `level` is what it is
/// now. A batch with any synced write runs only once the connection is back at `FULL`.
fn sync_level(
    conn: &Connection,
    level: &mut Durability,
    wanted: Durability,
) -> rusqlite::Result<()> {
    if *level != wanted {
        statement(
            conn,
            match wanted {
                Durability::Synced => "PRAGMA synchronous = FULL",
                Durability::Deferred => "PRAGMA synchronous = NORMAL",
            },
        )?;
        *level = wanted;
    }
    Ok(())
}

fn run_batch(conn: &Connection, level: &mut Durability, batch: Vec<Job>) {
    let wanted = if batch.iter().all(|j| j.durability == Durability::Deferred) {
        Durability::Deferred
    } else {
        Durability::Synced
    };
    if let Err(e) = sync_level(conn, level, wanted) {
        return not_run(batch, &StorageError::from(e).to_string());
    }
    if let Err(e) = statement(conn, "BEGIN IMMEDIATE") {
        return not_run(batch, &e.to_string());
    }
    let mut ran: Vec<(oneshot::Sender<Outcome>, Box<dyn Any + Send>)> =
        Vec::with_capacity(batch.len());
    let mut jobs = batch.into_iter();
    let mut broken: Option<String> = None;
    for job in jobs.by_ref() {
        if let Err(e) = statement(conn, "SAVEPOINT write") {
            let why = StorageError::from(e).to_string();
            let _ = job.answer.send(Outcome::NotRun(why.clone()));
            broken = Some(why);
            break;
        }
        // A write that panics is rolled back like one that failed, and the batch goes on.
        let (keep, result) = match catch_unwind(AssertUnwindSafe(|| (job.run)(conn))) {
            Ok((keep, result)) => (keep, Some(result)),
            Err(_) => {
                error!("a ledger write panicked; it was rolled back");
                (false, None)
            }
        };
        let end = if keep {
            statement(conn, "RELEASE write")
        } else {
            statement(conn, "ROLLBACK TO write").and_then(|()| statement(conn, "RELEASE write"))
        };
        match result {
            Some(result) => ran.push((job.answer, result)),
            None => {
                let _ = job
                    .answer
                    .send(Outcome::NotRun("the write failed and was undone".into()));
            }
        }
        if let Err(e) = end {
            broken = Some(StorageError::from(e).to_string());
            break;
        }
    }
    let commit = match broken {
        Some(why) => {
            if !conn.is_autocommit() {
                let _ = statement(conn, "ROLLBACK");
            }
            not_run(jobs.collect(), &why);
            Err(why)
        }
        None => match statement(conn, "COMMIT") {
            Ok(()) => Ok(()),
            Err(e) => {
                let why = StorageError::from(e).to_string();
                error!(error = %why, writes = ran.len(), "the ledger could not commit a batch of writes");
                // Whatever SQLite left of the transaction is undone.
                if !conn.is_autocommit() {
                    let _ = statement(conn, "ROLLBACK");
                }
                Err(why)
            }
        },
    };
    for (answer, result) in ran {
        let _ = answer.send(Outcome::Ran {
            result,
            commit: commit.clone(),
        });
    }
}

/// `first` and what else is waiting in `jobs` now, `max` at most: a batch.
pub(crate) fn waiting<T>(first: T, jobs: &mut mpsc::UnboundedReceiver<T>, max: usize) -> Vec<T> {
    let mut batch = vec![first];
    batch.extend(more_waiting(jobs, max.saturating_sub(1)));
    batch
}

/// Up to `max` jobs waiting now.
pub(crate) fn more_waiting<T>(jobs: &mut mpsc::UnboundedReceiver<T>, max: usize) -> Vec<T> {
    let mut more = Vec::new();
    while more.len() < max
        && let Ok(job) = jobs.try_recv()
    {
        more.push(job);
    }
    more
}

/// One of the batch's own statements, prepared once.
fn statement(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

fn not_run(batch: Vec<Job>, why: &str) {
    answer_not_run(batch.into_iter().map(|job| job.answer).collect(), why);
}

/// Tell the writers of a batch that could not run why (a committer's, SQLite's or
/// PostgreSQL's).
pub(crate) fn answer_not_run(answers: Vec<oneshot::Sender<Outcome>>, why: &str) {
    if answers.is_empty() {
        return;
    }
    error!(error = %why, writes = answers.len(), "the ledger could not run a batch of writes");
    for answer in answers {
        let _ = answer.send(Outcome::NotRun(why.to_owned()));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::storage::sync_sql;

    /// A write that inserts `v`, then stands (`0`), fails (`1`) or panics (`2`).
    fn insert(v: i64, end: u8) -> Run {
        Box::new(move |conn| {
            sync_sql::execute(conn, "INSERT INTO t (v) VALUES ($1)", &[&v]).unwrap();
            match end {
                0 => (true, Box::new(v)),
                1 => (false, Box::new(v)),
                _ => panic!("a write that panics (expected by this test)"),
            }
        })
    }

    /// A ledger file with a table `t`, its sqlx writer, and a committer on it.
    async fn ledger(dir: &Path) -> (AnyPool, Committer) {
        let path = dir.join("ledger.sqlite");
        Connection::open(&path)
            .unwrap()
            .execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (v INTEGER PRIMARY KEY);")
            .unwrap();
        sqlx::any::install_default_drivers();
        let turn = sqlx::any::AnyPoolOptions::new()
            .max_connections(1)
            .connect(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        let committer = Committer::start(&path, turn.clone()).unwrap();
        (turn, committer)
    }

    /// A write that inserts `v` and answers the `synchronous` its batch runs at (2: FULL,
    /// 1: NORMAL).
    fn insert_seeing_sync(v: i64) -> Run {
        Box::new(move |conn| {
            sync_sql::execute(conn, "INSERT INTO t (v) VALUES ($1)", &[&v]).unwrap();
            let level: i64 = conn
                .query_row("PRAGMA synchronous", [], |r| r.get(0))
                .unwrap();
            (true, Box::new(level))
        })
    }

    fn level(o: Outcome) -> i64 {
        match o {
            Outcome::Ran { result, commit } => {
                assert!(commit.is_ok());
                *result.downcast::<i64>().unwrap()
            }
            Outcome::NotRun(why) => panic!("not run: {why}"),
        }
    }

    #[tokio::test]
    async fn only_a_batch_of_deferred_writes_skips_the_fsync() {
        let dir = tempfile::tempdir().unwrap();
        let (turn, committer) = ledger(dir.path()).await;
        let alone = committer
            .submit(insert_seeing_sync(1), Durability::Deferred)
            .await;
        assert_eq!(level(alone), 1, "a deferred write alone: NORMAL");
        let next = committer
            .submit(insert_seeing_sync(2), Durability::Synced)
            .await;
        assert_eq!(level(next), 2, "the next money write: FULL again");
        // A deferred write that shares a batch with a synced one is synced with it.
        let (a, b) = tokio::join!(
            committer.submit(insert_seeing_sync(3), Durability::Deferred),
            committer.submit(insert_seeing_sync(4), Durability::Synced),
        );
        assert_eq!((level(a), level(b)), (2, 2));
        let kept: Vec<i64> = sqlx::query_scalar("SELECT v FROM t ORDER BY v")
            .fetch_all(&turn)
            .await
            .unwrap();
        assert_eq!(kept, vec![1, 2, 3, 4]);
    }

    #[tokio::test]
    async fn a_failed_write_of_a_batch_is_undone_alone() {
        let dir = tempfile::tempdir().unwrap();
        let (turn, committer) = ledger(dir.path()).await;
        // Queued together, so they share a batch (the committer runs when this task waits).
        let (a, b, c, d) = tokio::join!(
            committer.submit(insert(1, 0), Durability::Synced),
            committer.submit(insert(2, 1), Durability::Synced),
            committer.submit(insert(3, 2), Durability::Synced),
            committer.submit(insert(4, 0), Durability::Synced),
        );
        let stood = |o: Outcome| match o {
            Outcome::Ran { result, commit } => {
                assert!(commit.is_ok());
                Some(*result.downcast::<i64>().unwrap())
            }
            Outcome::NotRun(_) => None,
        };
        assert_eq!(stood(a), Some(1));
        // A failed write is answered with its own result (and its statements are undone).
        assert_eq!(stood(b), Some(2));
        assert_eq!(
            stood(c),
            None,
            "a write that panicked is answered as not run"
        );
        assert_eq!(stood(d), Some(4));
        let kept: Vec<i64> = sqlx::query_scalar("SELECT v FROM t ORDER BY v")
            .fetch_all(&turn)
            .await
            .unwrap();
        assert_eq!(kept, vec![1, 4]);
    }
}
