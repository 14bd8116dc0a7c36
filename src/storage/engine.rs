//! The SQL engine behind every storage trait: SQLite (the embedded default, one file per data
//! dir, WAL) or PostgreSQL (shared by any number of instances on any number of hosts).
//!
//! Both run the same statements through sqlx's `Any` driver: SQL is written once, with `$N`
//! placeholders (SQLite takes them too), `CAST(... AS BIGINT)` around sums (PostgreSQL sums
//! BIGINT to NUMERIC), integers for truth values, and [`Dialect`] for the few fragments the two
//! spell differently. The exception is SQLite's money writes ([`MoneyWrite`]): the group
//! committer runs the same SQL texts on a `rusqlite` connection of its own ([`super::group`]).
//!
//! Writers of one wallet's money are serialised by the database, never by a process lock: on
//! SQLite a write transaction taken up front (`BEGIN IMMEDIATE`, one writer at a time for the
//! whole file); on PostgreSQL a transaction-scoped advisory lock named after the wallet, so
//! instances on several hosts reserve one budget in turn.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{Any, AnyPool, Connection, Executor, Transaction};

use super::StorageError;
use super::group::{Committer, Durability, Outcome};
use super::inline::InlineReads;
use super::pg_group::{self, PgCommitter, Turn};
use super::sync_sql::{self, Arg, Columns, Statement};
use super::verify_cache::{self, VerifyCache};

/// The ledger file in a data dir.
pub const LEDGER_FILE: &str = "ledger.sqlite";

/// The two engines' differences in SQL text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// A subquery yielding, as column `v`, the strings of the JSON array bound at `$n` (no rows
    /// for NULL).
    pub(crate) fn json_strings(self, n: u8) -> String {
        match self {
            Dialect::Sqlite => format!("SELECT value AS v FROM json_each(${n})"),
            Dialect::Postgres => format!("SELECT jsonb_array_elements_text(${n}::jsonb) AS v"),
        }
    }

    /// `INDEXED BY index` where the engine takes index hints (SQLite's planner needs one to
    /// read old pending rows through their small partial index); nothing elsewhere.
    pub(crate) fn indexed_by(self, index: &str) -> String {
        match self {
            Dialect::Sqlite => format!("INDEXED BY {index}"),
            Dialect::Postgres => String::new(),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Dialect::Sqlite => "sqlite",
            Dialect::Postgres => "postgresql",
        }
    }
}

/// Connections to one database: a pool for reads and one for writes (on SQLite a single
/// connection, so writers of this process queue in order instead of sleeping in SQLite's busy
/// handler; other processes on the file still meet there, and correctness never depends on
/// the queue). On SQLite the hot reads run first on connections of their own on the calling
/// thread ([`super::inline`]), and money writes go to the group committer.
#[derive(Clone)]
pub struct Engine {
    pub dialect: Dialect,
    reader: AnyPool,
    writer: AnyPool,
    /// SQLite's group committer (see [`super::group`]); none on PostgreSQL.
    committer: Option<Committer>,
    /// PostgreSQL's group committer of money writes (see [`super::pg_group`]); none on SQLite.
    pg_committer: Option<PgCommitter>,
    /// SQLite's reads on the calling thread (see [`super::inline`]); none on PostgreSQL.
    inline: Option<Arc<InlineReads>>,
    /// Where the data is, fit for messages (a PostgreSQL password replaced by `***`).
    pub target: String,
    /// The engine's own version (`sqlite_version()`, `server_version`).
    pub version: String,
    /// Root keys and terms of tokens verified lately (see [`super::verify_cache`]).
    pub(crate) verify_cache: Arc<VerifyCache>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("dialect", &self.dialect)
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

/// PostgreSQL connections per instance: every query is short, so a few serve many requests,
/// and ten instances stay within PostgreSQL's default of 100 connections.
const PG_MAX_CONNECTIONS: u32 = 10;
/// How long connecting (at start, and later while every connection is busy) may take.
const PG_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Idle PostgreSQL connections are closed after this long, so a quiet instance holds none.
const PG_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// SQLite readers per process.
const SQLITE_READERS: u32 = 8;

/// The pragmas every SQLite connection runs with. `synchronous = FULL`: a committed row (a
/// budget reservation, written before money moves) is on disk before the commit returns, so a
/// power cut after paying cannot make the payment look unmade.
const SQLITE_PRAGMAS: &str = "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
     PRAGMA busy_timeout = 30000; PRAGMA foreign_keys = ON;";

impl Engine {
    /// Open (creating if needed) the SQLite ledger of `data_dir` and bring its schema up to date.
    ///
    /// Several processes may start on one new data dir at once: creating the file, switching it
    /// to WAL and migrating happen under an exclusive lock on `ledger.lock`, so one of them does
    /// it and the others wait. The database is 0600 from its first byte, and it is never opened
    /// outside SQLite: closing any descriptor of it would drop every POSIX lock this process
    /// holds on it, SQLite's included (see [`crate::fsutil::private_file`]).
    pub async fn open_sqlite(data_dir: &Path) -> Result<Engine, StorageError> {
        sqlx::any::install_default_drivers();
        let io = |source| StorageError::Io {
            path: data_dir.display().to_string(),
            source,
        };
        crate::fsutil::private_dir(data_dir).map_err(io)?;
        let path = data_dir.join(LEDGER_FILE);
        let lock_path = path.with_extension("lock");
        crate::fsutil::private_file(&lock_path).map_err(io)?;
        let lock = std::fs::OpenOptions::new()
            .write(true)
            .open(&lock_path)
            .map_err(io)?;
        // flock(2)-style (per open file, not per process): closing it later releases only it.
        let lock = tokio::task::spawn_blocking(move || lock.lock().map(|()| lock))
            .await
            .map_err(|e| io(std::io::Error::other(e)))?
            .map_err(io)?;
        crate::fsutil::private_file(&path).map_err(io)?;
        for suffix in ["-wal", "-shm"] {
            let mut side = path.as_os_str().to_owned();
            side.push(suffix);
            crate::fsutil::private_if_exists(Path::new(&side)).map_err(io)?;
        }
        let url = sqlite_url(&path)?;
        let options: AnyConnectOptions = url.parse()?;
        let pool = |max: u32| {
            AnyPoolOptions::new()
                .max_connections(max)
                // A local file does not go stale: no ping before each use.
                .test_before_acquire(false)
                .after_connect(|conn, _| {
                    Box::pin(async move {
                        conn.execute(SQLITE_PRAGMAS).await?;
                        Ok(())
                    })
                })
        };
        let writer = pool(1).connect_with(options.clone()).await?;
        sqlx::migrate!("./migrations/sqlite").run(&writer).await?;
        let reader = pool(SQLITE_READERS).connect_with(options).await?;
        drop(lock); // closing the lock file releases the lock
        let version: String = sqlx::query_scalar("SELECT sqlite_version()")
            .fetch_one(&reader)
            .await?;
        Ok(Engine {
            dialect: Dialect::Sqlite,
            reader,
            committer: Some(Committer::start(&path, writer.clone())?),
            pg_committer: None,
            inline: Some(Arc::new(InlineReads::new(path.clone()))),
            writer,
            target: path.display().to_string(),
            version,
            verify_cache: VerifyCache::local(verify_cache::SQLITE_TTL),
        })
    }

    /// Connect to PostgreSQL at `url` (`postgres://USER:PASSWORD@HOST:PORT/DB`) and bring the
    /// schema up to date, under the advisory lock sqlx takes, so instances starting together
    /// migrate once. Errors name the server with the password replaced by `***`.
    pub async fn connect_postgres(url: &str) -> Result<Engine, StorageError> {
        sqlx::any::install_default_drivers();
        let redacted = Redacted::new(url);
        let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
        if !matches!(scheme.as_deref(), Some("postgres" | "postgresql")) {
            return Err(redacted.error(
                &format!("database_url {} is not usable", redacted.url),
                &"it does not start with postgres://",
                "write it as postgres://USER:PASSWORD@HOST:PORT/DATABASE",
            ));
        }
        let mut parsed = url::Url::parse(url).map_err(|e| {
            redacted.error(
                &format!("database_url {} is not usable", redacted.url),
                &e,
                "write it as postgres://USER:PASSWORD@HOST:PORT/DATABASE",
            )
        })?;
        if !parsed.query_pairs().any(|(k, _)| k == "application_name") {
            // Shown in pg_stat_activity, so an operator can tell whose connections these are.
            parsed
                .query_pairs_mut()
                .append_pair("application_name", "l402-mcp");
        }
        let options: AnyConnectOptions = parsed.as_str().parse()?;
        // A first connection of our own says why a server cannot be reached (the pool would
        // only say that it timed out).
        let probe = connect_once(&options).await.map_err(|e| {
            redacted.error(
                &format!("cannot connect to PostgreSQL at {}", redacted.url),
                &e,
                "check database_url (or L402_MCP_DATABASE_URL) and that the server is up",
            )
        })?;
        let _ = probe.close().await;
        let pool = AnyPoolOptions::new()
            .max_connections(PG_MAX_CONNECTIONS)
            .acquire_timeout(PG_CONNECT_TIMEOUT)
            .idle_timeout(PG_IDLE_TIMEOUT)
            .connect_lazy_with(options);
        if let Err(e) = sqlx::migrate!("./migrations/postgres").run(&pool).await {
            // sqlx releases its advisory lock only after a run that succeeds: closing the
            // sessions releases it for the other instances.
            pool.close().await;
            return Err(e.into());
        }
        let version: String = sqlx::query_scalar("SELECT current_setting('server_version')")
            .fetch_one(&pool)
            .await?;
        tracing::info!(database = %redacted.url, "storage on PostgreSQL");
        Ok(Engine {
            dialect: Dialect::Postgres,
            committer: None,
            pg_committer: Some(PgCommitter::start(pool.clone())),
            inline: None,
            reader: pool.clone(),
            writer: pool,
            target: redacted.url,
            version,
            verify_cache: VerifyCache::listening(parsed.into(), verify_cache::POSTGRES_TTL),
        })
    }

    pub(crate) fn reader(&self) -> &AnyPool {
        &self.reader
    }

    pub(crate) fn writer(&self) -> &AnyPool {
        &self.writer
    }

    /// SQLite: `read` run now, on the calling thread (see [`super::inline`]). `None` on
    /// PostgreSQL, or when SQLite has no connection to spare or is busy: then read through
    /// [`Engine::reader`].
    pub(crate) fn read_inline<T>(
        &self,
        read: impl FnOnce(&rusqlite::Connection) -> Result<T, StorageError>,
    ) -> Option<Result<T, StorageError>> {
        self.inline.as_ref()?.read(read)
    }

    /// The same engine with no inline reads: every read through the pool (tests).
    pub(crate) fn without_inline_reads(mut self) -> Engine {
        self.inline = None;
        self
    }

    /// The first row `sql` returns with `args`, turned into a value by `read`: inline on
    /// SQLite when it can be ([`Engine::read_inline`]), else through the reader pool.
    pub(crate) async fn read_one<T>(
        &self,
        sql: &str,
        args: &[Arg],
        read: impl Fn(&dyn Columns) -> Result<T, StorageError>,
    ) -> Result<Option<T>, StorageError> {
        if let Some(found) = self.read_inline(|conn| sync_sql::read_row(conn, sql, args, &read)) {
            return found;
        }
        let row = sync_sql::bind(sqlx::query(sqlx::AssertSqlSafe(sql)), args)
            .fetch_optional(self.reader())
            .await?;
        row.as_ref().map(|row| read(row)).transpose()
    }

    /// A write transaction in which `wallet`'s money may be read and changed with no other
    /// writer of it in between, on this host or any other: see the module docs.
    pub(crate) async fn begin_money(
        &self,
        wallet: &str,
    ) -> Result<Transaction<'static, Any>, StorageError> {
        match self.dialect {
            Dialect::Sqlite => Ok(self.writer.begin_with("BEGIN IMMEDIATE").await?),
            Dialect::Postgres => {
                let mut tx = self.writer.begin().await?;
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(advisory_key(wallet))
                    .execute(&mut *tx)
                    .await?;
                Ok(tx)
            }
        }
    }
}

/// A write of money, as each engine runs it: on PostgreSQL through sqlx on a transaction's
/// connection; on SQLite by the group committer's thread, synchronously, on its own
/// connection (see [`super::group`]). Both run the same SQL text, except where PostgreSQL
/// does in one statement what SQLite's committer does in several (a reservation, an embedded
/// transfer: fewer round trips inside a wallet's turn); the value owns what the write needs.
pub(crate) trait MoneyWrite: Send + 'static {
    type Output: Send + 'static;
    type Error: From<StorageError> + Send + 'static;
    /// The statements through sqlx: PostgreSQL's (SQLite's always go through its committer,
    /// `run_sync`).
    fn run(
        self,
        conn: &mut sqlx::AnyConnection,
    ) -> BoxFuture<'_, Result<Self::Output, Self::Error>>;
    /// The statements on the SQLite committer's connection.
    fn run_sync(self, conn: &rusqlite::Connection) -> Result<Self::Output, Self::Error>;
    /// The creation time of the outgoing payment this write inserts, whose spend buckets its
    /// statements update (PostgreSQL's committer locks them first: see [`super::pg_group`]).
    fn spends_at(&self) -> Option<i64> {
        None
    }
    /// An embedded transfer's payer account and the payment hash of the invoice it pays
    /// (PostgreSQL's committer locks both accounts first: see [`super::pg_group`]).
    fn transfer(&self) -> Option<(String, String)> {
        None
    }
    /// Whether a failure of this write could leave changes of its own to undo. `false` only
    /// for a write that changes nothing unless it returns `Ok`: it only reads before one last
    /// statement that writes. PostgreSQL's committer runs such a write without a savepoint of
    /// its own (a round trip fewer inside the wallet's turn), and after an `Err` checks that
    /// the batch's transaction is still usable (a statement that failed on the server aborts
    /// it: see [`super::pg_group`]). Such a write that cannot read the answer of a statement
    /// that changed rows passes its error through [`super::pg_group::undone_unless_ok`].
    fn needs_savepoint(&self) -> bool {
        true
    }
}

/// A [`MoneyWrite`] for PostgreSQL's committer: its statements, and whether they stand.
fn pg_run<W: MoneyWrite>(op: W) -> pg_group::Run {
    Box::new(move |conn| {
        Box::pin(async move {
            let result = op.run(conn).await;
            let keep = result.is_ok();
            (keep, Box::new(result) as Box<dyn std::any::Any + Send>)
        })
    })
}

/// A [`MoneyWrite`] for SQLite's committer: its statements, and whether they stand.
fn sync_run<W: MoneyWrite>(op: W) -> super::group::Run {
    Box::new(move |conn| {
        let result = op.run_sync(conn);
        let keep = result.is_ok();
        (keep, Box::new(result) as Box<dyn std::any::Any + Send>)
    })
}

/// What became of a write handed to a committer, as the write's own result.
fn answered<W: MoneyWrite>(
    outcome: Outcome,
    commit_failed: fn(String) -> W::Error,
) -> Result<W::Output, W::Error> {
    match outcome {
        Outcome::NotRun(why) => Err(StorageError::Unavailable(why).into()),
        Outcome::Ran { result, commit } => {
            let result = *result
                .downcast::<Result<W::Output, W::Error>>()
                .map_err(|_| {
                    W::Error::from(StorageError::Corrupt(
                        "a grouped write answered with another type".into(),
                    ))
                })?;
            match (result, commit) {
                (Ok(_), Err(why)) => Err(commit_failed(why)),
                (result, _) => result,
            }
        }
    }
}

impl Engine {
    /// Run `op`, a write of `wallet`'s money, as [`Engine::begin_money`] would (no other writer
    /// of the wallet in between; `None`: a write whose statements need no such turn, as a
    /// settlement's, which only adds to totals), and answer once it is committed. On SQLite it
    /// shares its transaction and its fsync with the writes waiting beside it
    /// ([`super::group`]); on PostgreSQL, one with a wallet (or an embedded transfer) shares
    /// its transaction, the wallet's lock and the commit's flush with this instance's writes
    /// waiting beside it ([`super::pg_group`]), any other is a transaction of its own. An
    /// `Err` from `op`
    /// undoes its statements alone; a commit that fails turns an `Ok` into
    /// `commit_failed(why)`.
    pub(crate) async fn write<W: MoneyWrite>(
        &self,
        wallet: Option<&str>,
        op: W,
        commit_failed: fn(String) -> W::Error,
    ) -> Result<W::Output, W::Error> {
        if self.pg_committer.is_some() {
            let turn = wallet.map_or_else(Turn::default, |w| Turn::of(w, op.spends_at()));
            if turn.wallet.is_some() || op.transfer().is_some() {
                return self.write_in_turn(turn, op, commit_failed).await;
            }
        }
        let Some(committer) = &self.committer else {
            let mut tx = match wallet {
                Some(w) => self.begin_money(w).await?,
                None => self.writer.begin().await.map_err(StorageError::from)?,
            };
            let result = op.run(&mut tx).await;
            if result.is_ok() {
                tx.commit()
                    .await
                    .map_err(|e| commit_failed(StorageError::from(e).to_string()))?;
            }
            return result;
        };
        answered::<W>(
            committer.submit(sync_run(op), Durability::Synced).await,
            commit_failed,
        )
    }

    /// Run `note`, a write whose loss in a power cut could never make money move (see
    /// [`Durability::Deferred`]), and answer once it is committed, without waiting for the disk
    /// on its account: on SQLite it joins the group commit, and a batch of such notes alone is
    /// committed to the WAL without an fsync (made durable by the next synced commit or
    /// checkpoint); on PostgreSQL it is one statement on its own.
    pub(crate) async fn write_deferred(&self, note: Statement) -> Result<u64, StorageError> {
        let Some(committer) = &self.committer else {
            let mut conn = self.writer.acquire().await?;
            return note.run(&mut conn).await;
        };
        answered::<Statement>(
            committer.submit(sync_run(note), Durability::Deferred).await,
            StorageError::Unavailable,
        )
    }

    /// The record of payment `id` (its settlement or failure): exactly one statement. On
    /// SQLite it joins the group commit. On PostgreSQL it runs in the committer's next batch,
    /// holding its wallet's turn and the spend buckets it updates (one flush for many, with
    /// the batch's reservations): for a payment this instance reserved, from what it noted
    /// then; for any other (reserved by another instance, or before a restart), from the
    /// payment's row. A record that took the payment's row before asking for buckets a batch
    /// holds could close a cycle with that batch (see [`super::pg_group`]'s docs on
    /// deadlocks). `op` must run one statement on PostgreSQL: two would not be one transaction.
    pub(crate) async fn write_record<W: MoneyWrite>(
        &self,
        id: i64,
        op: W,
        commit_failed: fn(String) -> W::Error,
    ) -> Result<W::Output, W::Error> {
        if self.committer.is_some() {
            return self.write(None, op, commit_failed).await;
        }
        if let Some(turn) = self.record_turn(id) {
            return self.write_in_turn(turn, op, commit_failed).await;
        }
        if self.pg_committer.is_some() {
            let row: Option<(String, i64)> =
                sqlx::query_as("SELECT wallet, created_at FROM payments WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&self.writer)
                    .await
                    .map_err(StorageError::from)?;
            if let Some((wallet, at)) = row {
                let turn = Turn::of(&wallet, Some(at));
                return self.write_in_turn(turn, op, commit_failed).await;
            }
        }
        // No such payment: the statement finds nothing to change.
        let mut conn = self.writer.acquire().await.map_err(StorageError::from)?;
        op.run(&mut conn).await
    }

    /// PostgreSQL: the turn the record of payment `id` needs, if this instance reserved it and
    /// has not recorded it yet (see [`Engine::write_record`]); taken, so asked once per
    /// payment. `None` on SQLite.
    pub(crate) fn record_turn(&self, id: i64) -> Option<Turn> {
        self.pg_committer.as_ref()?.record_turn(id)
    }

    /// PostgreSQL: run `op` in the committer's next batch, holding `turn` and the accounts of
    /// `op`'s transfer, if any (see [`super::pg_group`]). There is no turn to hold without
    /// that committer (SQLite): an error, and nothing runs.
    pub(crate) async fn write_in_turn<W: MoneyWrite>(
        &self,
        turn: Turn,
        op: W,
        commit_failed: fn(String) -> W::Error,
    ) -> Result<W::Output, W::Error> {
        let Some(pg) = &self.pg_committer else {
            return Err(StorageError::Unavailable("no PostgreSQL committer".into()).into());
        };
        let turn = Turn {
            transfer: op.transfer(),
            ..turn
        };
        let savepoint = op.needs_savepoint();
        answered::<W>(pg.submit(turn, savepoint, pg_run(op)).await, commit_failed)
    }

    /// Payment `id` of `wallet`, created at `at`, was reserved here (see
    /// [`Engine::write_record`]).
    pub(crate) fn reserved(&self, id: i64, wallet: &str, at: i64) {
        if let Some(pg) = &self.pg_committer {
            pg.reserved(id, wallet, at);
        }
    }
}

/// The advisory lock of a wallet: 64 bits of SHA-256 of its name, in a namespace of our own
/// (on PostgreSQL, the key `pg_advisory_xact_lock` takes for a wallet's turn).
pub fn advisory_key(wallet: &str) -> i64 {
    let digest = crate::l402::sha256(format!("l402-mcp wallet {wallet}").as_bytes());
    let mut eight = [0u8; 8];
    eight.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(eight)
}

/// `sqlite://` URL of a file path, which may hold any character.
fn sqlite_url(path: &Path) -> Result<String, StorageError> {
    let text = path.to_str().ok_or_else(|| StorageError::Io {
        path: path.display().to_string(),
        source: std::io::Error::other("the data dir's path is not UTF-8"),
    })?;
    let mut url = String::from("sqlite://");
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"/-_.~".contains(&b) {
            url.push(char::from(b));
        } else {
            url.push_str(&format!("%{b:02X}"));
        }
    }
    url.push_str("?mode=rwc");
    Ok(url)
}

/// One connection, waiting up to [`PG_CONNECT_TIMEOUT`] for a server that refuses connections
/// (still starting, as when instances and database start together).
async fn connect_once(options: &AnyConnectOptions) -> Result<sqlx::AnyConnection, sqlx::Error> {
    use sqlx::ConnectOptions;
    let deadline = Instant::now() + PG_CONNECT_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, options.connect()).await {
            Ok(Ok(conn)) => return Ok(conn),
            Ok(Err(sqlx::Error::Io(e)))
                if e.kind() == std::io::ErrorKind::ConnectionRefused
                    && deadline.saturating_duration_since(Instant::now())
                        > Duration::from_millis(200) =>
            {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                return Err(sqlx::Error::Io(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no answer within {} s", PG_CONNECT_TIMEOUT.as_secs()),
                )));
            }
        }
    }
}

/// A database URL fit for messages, and the secrets it held.
pub(crate) struct Redacted {
    pub url: String,
    secrets: Vec<String>,
}

impl Redacted {
    pub(crate) fn new(raw: &str) -> Redacted {
        let Ok(mut url) = url::Url::parse(raw) else {
            // Nothing of an unparseable URL is shown: it may be all password.
            return Redacted {
                url: "(a URL that does not parse)".into(),
                secrets: vec![raw.to_owned()],
            };
        };
        let mut secrets = Vec::new();
        if let Some(p) = url.password() {
            secrets.push(p.to_owned());
            secrets.push(percent_decode(p));
            let _ = url.set_password(Some("***"));
        }
        let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        if pairs.iter().any(|(k, _)| k == "password") {
            let shown: Vec<(String, String)> = pairs
                .into_iter()
                .map(|(k, v)| {
                    if k == "password" {
                        secrets.push(v);
                        (k, "***".to_owned())
                    } else {
                        (k, v)
                    }
                })
                .collect();
            url.query_pairs_mut().clear().extend_pairs(shown);
        }
        secrets.retain(|s| !s.is_empty());
        Redacted {
            url: url.to_string(),
            secrets,
        }
    }

    /// `what: why; hint`, with any secret in `why` replaced.
    fn error(&self, what: &str, why: &dyn std::fmt::Display, hint: &str) -> StorageError {
        StorageError::Unavailable(format!("{what}: {}; {hint}", self.scrub(why)))
    }

    /// `why` as text, with any secret of the URL replaced.
    pub(crate) fn scrub(&self, why: &dyn std::fmt::Display) -> String {
        let mut why = why.to_string();
        for s in &self.secrets {
            why = why.replace(s.as_str(), "***");
        }
        why
    }
}

/// `%XX` escapes decoded, as the server sees the password.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_in_messages_hide_passwords() {
        let r = Redacted::new("postgres://l402:s3cr%40t@db.example:5433/l402?sslmode=require");
        assert_eq!(
            r.url,
            "postgres://l402:***@db.example:5433/l402?sslmode=require"
        );
        let e = r.error("failed", &"auth s3cr%40t / s3cr@t", "").to_string();
        assert!(!e.contains("s3cr"), "{e}");
        let r =
            Redacted::new("postgres://db.example/l402?user=l402&password=hunter22&sslmode=disable");
        assert!(
            !r.url.contains("hunter22") && r.url.contains("password=***"),
            "{}",
            r.url
        );
        assert!(
            !r.error("x", &"hunter22", "")
                .to_string()
                .contains("hunter22")
        );
        let r = Redacted::new("not a url with hunter22");
        assert!(!r.url.contains("hunter22"));
        assert_eq!(
            Redacted::new("postgres://l402@db/l402").url,
            "postgres://l402@db/l402"
        );
    }

    #[test]
    fn file_paths_become_urls() {
        let url = sqlite_url(Path::new("/tmp/a b/c#d?e")).unwrap_or_default();
        assert_eq!(url, "sqlite:///tmp/a%20b/c%23d%3Fe?mode=rwc");
        assert_ne!(advisory_key("a"), advisory_key("b"));
    }
}
