//! Reads of the SQLite ledger run on the calling thread.
//!
//! Through sqlx, each statement goes to its connection's worker thread and back: two wake-ups,
//! ~25 µs with both threads on one CPU and ~50 µs on two, for reads SQLite answers in 2–3 µs
//! (BENCHMARKS.md section 4). The reads on the pay and fetch paths (the token cache, the budget
//! windows, settings, distrusted payees, a token's root key and terms) run instead on a
//! connection of this pool, inline, when one is free.
//!
//! Nothing here waits. In WAL mode a reader does not wait for writers: the committer's
//! transaction never holds it up. A connection is taken only if one is idle (or fewer than
//! [`MAX_CONNECTIONS`] are open), and the rare `SQLITE_BUSY` a reader can meet (another
//! process recovering the WAL, say) is not waited out: in both cases the caller reads through
//! sqlx as before, on its worker thread, whose connection waits as long as any other.
//!
//! The connections answer reads only (`PRAGMA query_only`). They are opened through the same
//! SQLite library as sqlx's and the committer's, so they share its knowledge of the file's
//! POSIX locks (see [`crate::fsutil::private_file`]).

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags};
use tracing::debug;

use super::StorageError;

/// Connections open at most: each serves one read at a time, and a read takes microseconds.
pub(crate) const MAX_CONNECTIONS: usize = 4;
/// Statements kept prepared on each connection.
const STATEMENT_CACHE: usize = 32;
/// Page cache per connection, in KiB (SQLite's default is 2,000): reads here are lookups by
/// index, and any other connection's commit empties the cache anyway.
const CACHE_KIB: i64 = 1024;

/// A connection out of the pool. Dropped still holding it (a read that panicked), the
/// connection closes and its place in the count is freed, so the pool does not shrink.
struct Lent<'a> {
    pool: &'a InlineReads,
    conn: Option<Connection>,
}

impl Drop for Lent<'_> {
    fn drop(&mut self) {
        if self.conn.take().is_some() {
            self.pool.forget_one();
        }
    }
}

/// The pool (see the module docs).
pub(crate) struct InlineReads {
    path: PathBuf,
    /// Idle connections, and how many are open in all (idle or in use).
    state: Mutex<(Vec<Connection>, usize)>,
}

impl std::fmt::Debug for InlineReads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InlineReads").finish_non_exhaustive()
    }
}

impl InlineReads {
    /// Reads of the ledger at `path`; connections are opened when first needed.
    pub(crate) fn new(path: PathBuf) -> InlineReads {
        InlineReads {
            path,
            state: Mutex::new((Vec::new(), 0)),
        }
    }

    /// `read`, run now on a connection of the pool; `None` when there is none to spare or
    /// SQLite answered busy: the caller then reads through sqlx.
    pub(crate) fn read<T>(
        &self,
        read: impl FnOnce(&Connection) -> Result<T, StorageError>,
    ) -> Option<Result<T, StorageError>> {
        let mut lent = Lent {
            pool: self,
            conn: Some(self.take()?),
        };
        let result = read(lent.conn.as_ref()?);
        if let Some(conn) = lent.conn.take() {
            self.give_back(conn);
        }
        match result {
            Err(StorageError::Sqlite(e)) if busy(&e) => {
                debug!("the ledger is busy; reading through the pool instead");
                None
            }
            result => Some(result),
        }
    }

    /// An idle connection, or a new one while fewer than the maximum are open.
    fn take(&self) -> Option<Connection> {
        {
            let mut state = self.state.lock().ok()?;
            if let Some(conn) = state.0.pop() {
                return Some(conn);
            }
            if state.1 >= MAX_CONNECTIONS {
                return None;
            }
            state.1 += 1;
        }
        match open(&self.path) {
            Ok(conn) => Some(conn),
            Err(e) => {
                debug!(error = %e, "cannot open an inline reader of the ledger");
                self.forget_one();
                None
            }
        }
    }

    fn give_back(&self, conn: Connection) {
        match self.state.lock() {
            Ok(mut state) => state.0.push(conn),
            // Poisoned: a read panicked while taking or returning one; this one closes.
            Err(_) => self.forget_one(),
        }
    }

    fn forget_one(&self) {
        if let Ok(mut state) = self.state.lock() {
            state.1 = state.1.saturating_sub(1);
        }
    }

    /// Connections open (idle or in use), for tests.
    #[cfg(test)]
    fn open_count(&self) -> usize {
        self.state.lock().map(|s| s.1).unwrap_or(0)
    }
}

fn open(path: &std::path::Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    // Busy is answered at once (the caller reads through sqlx instead), never waited out here.
    conn.busy_timeout(Duration::ZERO)?;
    conn.execute_batch(&format!(
        "PRAGMA query_only = ON; PRAGMA cache_size = -{CACHE_KIB};"
    ))?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

fn busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ledger(dir: &std::path::Path) -> PathBuf {
        let path = dir.join("l.sqlite");
        let c = Connection::open(&path).unwrap();
        c.execute_batch(
            "PRAGMA journal_mode = WAL; CREATE TABLE t (v INTEGER); INSERT INTO t VALUES (7);",
        )
        .unwrap();
        path
    }

    fn value(c: &Connection) -> Result<i64, StorageError> {
        Ok(c.query_row("SELECT v FROM t", [], |r| r.get(0))?)
    }

    #[test]
    fn reads_reuse_one_connection_and_refuse_writes() {
        let dir = tempfile::tempdir().unwrap();
        let reads = InlineReads::new(ledger(dir.path()));
        for _ in 0..3 {
            assert_eq!(reads.read(value).unwrap().unwrap(), 7);
        }
        assert_eq!(reads.open_count(), 1);
        let write = reads.read(|c| Ok(c.execute("INSERT INTO t VALUES (8)", [])?));
        assert!(
            matches!(write, Some(Err(StorageError::Sqlite(_)))),
            "{write:?}"
        );
        assert_eq!(reads.read(value).unwrap().unwrap(), 7);
    }

    #[test]
    fn no_connection_to_spare_is_none_and_nothing_waits() {
        let dir = tempfile::tempdir().unwrap();
        let reads = InlineReads::new(ledger(dir.path()));
        // Reads nested MAX deep hold every connection: the next one is turned away.
        fn nest(reads: &InlineReads, depth: usize) -> Option<Result<i64, StorageError>> {
            if depth == 0 {
                return reads.read(value);
            }
            reads.read(|_| Ok(nest(reads, depth - 1)))?.ok()?
        }
        assert!(nest(&reads, MAX_CONNECTIONS).is_none());
        assert_eq!(nest(&reads, MAX_CONNECTIONS - 1).unwrap().unwrap(), 7);
        assert_eq!(reads.open_count(), MAX_CONNECTIONS);
    }

    #[test]
    fn a_read_that_panics_gives_its_place_back() {
        let dir = tempfile::tempdir().unwrap();
        let reads = InlineReads::new(ledger(dir.path()));
        for _ in 0..MAX_CONNECTIONS + 1 {
            let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                reads.read(|_| -> Result<(), StorageError> { panic!("a bug in a read") })
            }));
            assert!(panicked.is_err());
            assert_eq!(reads.open_count(), 0);
        }
        assert_eq!(reads.read(value).unwrap().unwrap(), 7);
    }

    #[test]
    fn busy_is_none_so_the_caller_reads_elsewhere() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.sqlite");
        let c = Connection::open(&path).unwrap();
        // A rollback-journal database under an exclusive lock: a reader meets SQLITE_BUSY.
        c.execute_batch("CREATE TABLE t (v INTEGER); INSERT INTO t VALUES (7);")
            .unwrap();
        c.execute_batch("BEGIN EXCLUSIVE; INSERT INTO t VALUES (8);")
            .unwrap();
        let reads = InlineReads::new(path);
        assert!(reads.read(value).is_none());
        c.execute_batch("COMMIT").unwrap();
        assert_eq!(reads.read(value).unwrap().unwrap(), 7);
    }
}
