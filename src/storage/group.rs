//! Group commit for SQLite: concurrent money writes share one transaction, and so one fsync.
//!
//! The ledger runs `synchronous = FULL`: a committed reservation is on disk before the payment
//! it reserves leaves. An fsync costs ~0.4 ms here, three per payment (reservation, settlement,
//! record), which alone capped a ledger near 800 payments/s. Writers therefore hand their work
//! to one committer task, which takes every write waiting (up to [`MAX_BATCH`]), runs them in
//! order in one `BEGIN IMMEDIATE` transaction, each inside its own savepoint (a write that
//! fails is rolled back alone), commits once, and only then answers each writer. Exactness
//! holds: the writes of a batch run one after the other and each sees the ones before it, as
//! they would in separate transactions; durability holds: nobody hears "done" before the
//! commit that makes it so has returned.
//!
//! PostgreSQL needs none of this (its own group commit, and instances serialised per wallet by
//! an advisory lock): there a write is a transaction of its own ([`super::Engine::write`]).

use std::any::Any;

use futures::future::BoxFuture;
use sqlx::{AnyConnection, AnyPool, Executor};
use tokio::sync::{mpsc, oneshot};
use tracing::error;

use super::StorageError;

/// Writes per transaction at most.
pub(crate) const MAX_BATCH: usize = 64;

/// A write's statements, run on the batch's connection; `true` when they stand, and the
/// write's result, type-erased.
pub(crate) type Run = Box<
    dyn for<'c> FnOnce(&'c mut AnyConnection) -> BoxFuture<'c, (bool, Box<dyn Any + Send>)> + Send,
>;

/// What became of a write handed to the committer.
pub(crate) enum Outcome {
    /// Never run: the batch could not start (the message says why).
    NotRun(String),
    /// Run; its result, and whether the batch's commit went through.
    Ran {
        result: Box<dyn Any + Send>,
        commit: Result<(), String>,
    },
}

struct Job {
    run: Run,
    answer: oneshot::Sender<Outcome>,
}

/// The handle writers send their writes through; the task stops when every handle is gone.
#[derive(Clone)]
pub(crate) struct Committer {
    jobs: mpsc::UnboundedSender<Job>,
}

impl Committer {
    /// Start the committer task on `writer` (a pool of one connection).
    pub(crate) fn start(writer: AnyPool) -> Committer {
        let (jobs, rx) = mpsc::unbounded_channel();
        tokio::spawn(commit_loop(writer, rx));
        Committer { jobs }
    }

    /// Run `run` in the next batch; what became of it.
    pub(crate) async fn submit(&self, run: Run) -> Outcome {
        let (answer, outcome) = oneshot::channel();
        if self.jobs.send(Job { run, answer }).is_err() {
            return Outcome::NotRun("the ledger's writer has stopped".into());
        }
        outcome
            .await
            .unwrap_or_else(|_| Outcome::NotRun("the ledger's writer stopped mid-write".into()))
    }
}

async fn commit_loop(writer: AnyPool, mut jobs: mpsc::UnboundedReceiver<Job>) {
    while let Some(first) = jobs.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        run_batch(&writer, batch).await;
    }
}

async fn run_batch(writer: &AnyPool, batch: Vec<Job>) {
    let mut conn = match writer.acquire().await {
        Ok(c) => c,
        Err(e) => return not_run(batch, &StorageError::from(e)),
    };
    if let Err(e) = conn.execute("BEGIN IMMEDIATE").await {
        return not_run(batch, &StorageError::from(e));
    }
    let mut ran: Vec<(oneshot::Sender<Outcome>, Box<dyn Any + Send>)> =
        Vec::with_capacity(batch.len());
    let mut jobs = batch.into_iter();
    let mut broken: Option<String> = None;
    for job in jobs.by_ref() {
        if let Err(e) = conn.execute("SAVEPOINT write").await {
            broken = Some(StorageError::from(e).to_string());
            let _ = job
                .answer
                .send(Outcome::NotRun(broken.clone().unwrap_or_default()));
            break;
        }
        let (keep, result) = (job.run)(&mut conn).await;
        let end = if keep {
            "RELEASE write"
        } else {
            "ROLLBACK TO write; RELEASE write"
        };
        ran.push((job.answer, result));
        if let Err(e) = conn.execute(end).await {
            broken = Some(StorageError::from(e).to_string());
            break;
        }
    }
    let commit = match broken {
        Some(why) => {
            let _ = conn.execute("ROLLBACK").await;
            let rest: Vec<Job> = jobs.collect();
            for job in rest {
                let _ = job.answer.send(Outcome::NotRun(why.clone()));
            }
            Err(why)
        }
        None => match conn.execute("COMMIT").await {
            Ok(_) => Ok(()),
            Err(e) => {
                let why = StorageError::from(e).to_string();
                error!(error = %why, writes = ran.len(), "the ledger could not commit a batch of writes");
                // Whatever SQLite left of the transaction is undone.
                let _ = conn.execute("ROLLBACK").await;
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

fn not_run(batch: Vec<Job>, e: &StorageError) {
    let why = e.to_string();
    error!(error = %why, writes = batch.len(), "the ledger could not start a batch of writes");
    for job in batch {
        let _ = job.answer.send(Outcome::NotRun(why.clone()));
    }
}
