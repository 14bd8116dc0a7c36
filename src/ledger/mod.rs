//! The spend ledger: one SQLite file (WAL mode) per data dir, shared by every wallet and process
//! that uses that dir. It holds payments and budget reservations ([`payments`]), the token cache
//! ([`tokens`]), minted tokens and their root keys ([`root_keys`]), settings, and the embedded
//! wallet's books.
//!
//! The file holds secrets (root keys, preimages), so it is created mode 0600 in a 0700 folder.

pub mod distrust;
pub mod payments;
pub mod root_keys;
pub mod tokens;

pub use payments::{Direction, NewOutgoing, PaymentRecord, Reservation, ReserveError, Status};

use std::path::Path;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

/// The name of the ledger file in a data dir.
pub const LEDGER_FILE: &str = "ledger.sqlite";

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("ledger database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("ledger migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("cannot prepare the ledger file {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("ledger holds an invalid value: {0}")]
    Corrupt(String),
    #[error("{0} is too large to be kept in the ledger")]
    TooLarge(u64),
}

/// A handle on the ledger; cheap to clone.
///
/// Reads go to a pool of connections; writes to one connection of their own, so writers in
/// this process queue in order instead of meeting in SQLite's busy handler, which sleeps
/// (milliseconds at a time) while another connection holds the write lock. Other processes on
/// the same file still meet there: correctness never depends on the queue (write transactions
/// that read first start with `BEGIN IMMEDIATE`).
#[derive(Debug, Clone)]
pub struct Ledger {
    pool: SqlitePool,
    writer: SqlitePool,
}

impl Ledger {
    /// Open (creating if needed) the ledger in `data_dir`, and bring its schema up to date.
    pub async fn open_in(data_dir: &Path) -> Result<Ledger, LedgerError> {
        crate::fsutil::private_dir(data_dir).map_err(|source| LedgerError::Io {
            path: data_dir.display().to_string(),
            source,
        })?;
        Self::open(&data_dir.join(LEDGER_FILE)).await
    }

    /// Open (creating if needed) the ledger file at `path`.
    ///
    /// Several processes may start on one new data dir at once (an agent host starting two
    /// servers): creating the file, switching it to WAL and migrating happen under an exclusive
    /// lock on `<path>.lock`, so exactly one of them does it and the others wait.
    pub async fn open(path: &Path) -> Result<Ledger, LedgerError> {
        let io = |source| LedgerError::Io {
            path: path.display().to_string(),
            source,
        };
        let lock_path = path.with_extension("lock");
        crate::fsutil::private_file(&lock_path).map_err(io)?;
        // The lock is flock(2)-style (per open file, not per process): closing this
        // descriptor later releases only it, never SQLite's POSIX locks.
        let lock = std::fs::OpenOptions::new()
            .write(true)
            .open(&lock_path)
            .map_err(io)?;
        // Blocking wait on the lock, off the async runtime's worker threads.
        let lock = tokio::task::spawn_blocking(move || lock.lock().map(|()| lock))
            .await
            .map_err(|e| io(std::io::Error::other(e)))?
            .map_err(io)?;
        // The database is 0600 from the first byte: created here (under the lock, so no
        // connection of this process can have it open) when missing, else changed by path
        // only. This process may already have it open through another Ledger, and closing
        // any descriptor of it would drop that Ledger's SQLite locks. SQLite gives the WAL and
        // shared-memory files the database's mode; older ones are made private by path too.
        crate::fsutil::private_file(path).map_err(io)?;
        for suffix in ["-wal", "-shm"] {
            let mut side = path.as_os_str().to_owned();
            side.push(suffix);
            crate::fsutil::private_if_exists(Path::new(&side)).map_err(io)?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(30))
            .foreign_keys(true);
        // A connection to a local file does not go stale: no ping before each use (by default
        // sqlx spends one round trip to the connection's thread on it, per query).
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .connect_with(options.clone())
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&writer).await?;
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .test_before_acquire(false)
            .connect_with(options)
            .await?;
        drop(lock); // closing the file releases the lock
        Ok(Ledger { pool, writer })
    }

    /// Connections for reads.
    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// The connection for writes (see [`Ledger`]).
    pub(crate) fn writer(&self) -> &SqlitePool {
        &self.writer
    }

    /// A setting, or `None` when unset.
    pub async fn setting<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, LedgerError> {
        let value: Option<String> = sqlx::query_scalar("SELECT value FROM settings WHERE key = ?")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        value
            .map(|v| {
                serde_json::from_str(&v)
                    .map_err(|e| LedgerError::Corrupt(format!("setting {key}: {e}")))
            })
            .transpose()
    }

    pub async fn set_setting<T: Serialize>(
        &self,
        key: &str,
        value: &T,
        now: u64,
    ) -> Result<(), LedgerError> {
        let json = serde_json::to_string(value).map_err(|e| LedgerError::Corrupt(e.to_string()))?;
        sqlx::query(
            "INSERT INTO settings (key, value, updated_at) VALUES (?, ?, ?)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        )
        .bind(key)
        .bind(json)
        .bind(db_int(now)?)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// The budget policy of `wallet` (the default policy until one is set).
    pub async fn budget(&self, wallet: &str) -> Result<crate::budget::BudgetPolicy, LedgerError> {
        Ok(self.setting(&budget_key(wallet)).await?.unwrap_or_default())
    }

    pub async fn set_budget(
        &self,
        wallet: &str,
        policy: &crate::budget::BudgetPolicy,
        now: u64,
    ) -> Result<(), LedgerError> {
        self.set_setting(&budget_key(wallet), policy, now).await
    }
}

pub(crate) fn budget_key(wallet: &str) -> String {
    format!("budget.{wallet}")
}

/// SQLite integers are i64; money and time here always fit (entry points check their ranges).
pub(crate) fn db_int(v: u64) -> Result<i64, LedgerError> {
    i64::try_from(v).map_err(|_| LedgerError::TooLarge(v))
}

/// Back from the database: amounts, counts and times are never negative. A negative one means
/// the file was damaged or edited by hand; it is reported, never read as 0 (a payment of 0, a
/// balance of 0) and acted on.
pub(crate) fn from_db(what: &str, v: i64) -> Result<u64, LedgerError> {
    u64::try_from(v).map_err(|_| {
        LedgerError::Corrupt(format!(
            "{what} is {v}, which cannot be; the ledger file was damaged or edited: restore it from a backup"
        ))
    })
}
