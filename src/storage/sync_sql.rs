//! Statements on a plain SQLite connection: the group committer's (see [`super::group`]), which
//! runs the ledger's money writes on a thread of its own. They are the same SQL texts as the
//! sqlx statements beside them, `$N` placeholders included: an argument is bound to the
//! placeholder of its position by name (`$1` is the first), wherever in the text it first
//! appears, as sqlx does. Statements are prepared once per connection and kept.

use futures::future::BoxFuture;
use rusqlite::types::ToSqlOutput;
use rusqlite::{CachedStatement, Connection, Row, ToSql};
use sqlx::any::AnyArguments;
use sqlx::query::Query;

use super::StorageError;
use super::engine::MoneyWrite;

/// An argument of a statement that both paths run (sqlx's and the committer's): the values go
/// into one list, bound the same way by [`bind`] and as [`ToSql`]. Its `Debug` shows no text
/// or bytes: arguments carry root keys and the preimages of unpaid invoices.
#[derive(Clone)]
pub(crate) enum Arg {
    Int(i64),
    /// An integer that may be NULL.
    MaybeInt(Option<i64>),
    Text(Option<String>),
    Blob(Vec<u8>),
}

impl std::fmt::Debug for Arg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Arg::Int(v) => write!(f, "Int({v})"),
            Arg::MaybeInt(v) => write!(f, "MaybeInt({v:?})"),
            Arg::Text(None) => f.write_str("Text(NULL)"),
            Arg::Text(Some(t)) => write!(f, "Text({} bytes)", t.len()),
            Arg::Blob(b) => write!(f, "Blob({} bytes)", b.len()),
        }
    }
}

impl ToSql for Arg {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        match self {
            Arg::Int(v) => v.to_sql(),
            Arg::MaybeInt(v) => v.to_sql(),
            Arg::Text(t) => t.to_sql(),
            Arg::Blob(b) => b.to_sql(),
        }
    }
}

/// `args` bound in order to a sqlx query.
pub(crate) fn bind<'q>(
    mut q: Query<'q, sqlx::Any, AnyArguments>,
    args: &'q [Arg],
) -> Query<'q, sqlx::Any, AnyArguments> {
    for arg in args {
        q = match arg {
            Arg::Int(v) => q.bind(*v),
            Arg::MaybeInt(v) => q.bind(*v),
            Arg::Text(t) => q.bind(t.as_deref()),
            Arg::Blob(b) => q.bind(b.as_slice()),
        };
    }
    q
}

/// A write of one statement, on either path: how many rows it changed.
pub(crate) struct Statement {
    pub sql: &'static str,
    pub args: Vec<Arg>,
}

impl MoneyWrite for Statement {
    type Output = u64;
    type Error = StorageError;

    fn run(self, conn: &mut sqlx::AnyConnection) -> BoxFuture<'_, Result<u64, StorageError>> {
        Box::pin(async move {
            let done = bind(sqlx::query(self.sql), &self.args)
                .execute(&mut *conn)
                .await?;
            Ok(done.rows_affected())
        })
    }

    fn run_sync(self, conn: &Connection) -> Result<u64, StorageError> {
        let n = execute(conn, self.sql, &as_sql(&self.args))?;
        Ok(u64::try_from(n).unwrap_or(u64::MAX))
    }

    /// One statement: it either stands or changed nothing.
    fn needs_savepoint(&self) -> bool {
        false
    }
}

/// Several statements written together, in order, in one transaction (on SQLite, in the group
/// committer's batch: one fsync for all of them): how many rows each changed.
pub(crate) struct Statements(pub Vec<Statement>);

impl MoneyWrite for Statements {
    type Output = Vec<u64>;
    type Error = StorageError;

    fn run(self, conn: &mut sqlx::AnyConnection) -> BoxFuture<'_, Result<Vec<u64>, StorageError>> {
        Box::pin(async move {
            let mut changed = Vec::with_capacity(self.0.len());
            for s in self.0 {
                changed.push(s.run(&mut *conn).await?);
            }
            Ok(changed)
        })
    }

    fn run_sync(self, conn: &Connection) -> Result<Vec<u64>, StorageError> {
        self.0.into_iter().map(|s| s.run_sync(conn)).collect()
    }
}

/// `args` as the committer's statements take them.
pub(crate) fn as_sql(args: &[Arg]) -> Vec<&dyn ToSql> {
    args.iter().map(|a| a as &dyn ToSql).collect()
}

/// `$1`..`$16`: the placeholder names of the first arguments, without formatting them.
const NAMES: [&str; 16] = [
    "$1", "$2", "$3", "$4", "$5", "$6", "$7", "$8", "$9", "$10", "$11", "$12", "$13", "$14", "$15",
    "$16",
];

/// `sql`, prepared (or taken from the connection's cache) with `args` bound. Every placeholder
/// of the text must have its argument: a missing one is an error, never a silent NULL.
fn prepare<'c>(
    conn: &'c Connection,
    sql: &str,
    args: &[&dyn ToSql],
) -> rusqlite::Result<CachedStatement<'c>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let mut bound = 0;
    for (i, arg) in args.iter().enumerate() {
        let formatted;
        let name = match NAMES.get(i) {
            Some(n) => *n,
            None => {
                formatted = format!("${}", i + 1);
                formatted.as_str()
            }
        };
        if let Some(index) = stmt.parameter_index(name)? {
            stmt.raw_bind_parameter(index, *arg)?;
            bound += 1;
        }
    }
    if bound != stmt.parameter_count() {
        return Err(rusqlite::Error::InvalidParameterCount(
            bound,
            stmt.parameter_count(),
        ));
    }
    Ok(stmt)
}

/// Run a statement that returns no rows; how many rows it changed.
pub(crate) fn execute(
    conn: &Connection,
    sql: &str,
    args: &[&dyn ToSql],
) -> rusqlite::Result<usize> {
    prepare(conn, sql, args)?.raw_execute()
}

/// Run a statement and read its first row, if it returns one.
pub(crate) fn query_row<T>(
    conn: &Connection,
    sql: &str,
    args: &[&dyn ToSql],
    read: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<Option<T>> {
    let mut stmt = prepare(conn, sql, args)?;
    let mut rows = stmt.raw_query();
    match rows.next()? {
        Some(row) => read(row).map(Some),
        None => Ok(None),
    }
}

/// The first row `sql` returns with `args`, read by `read`; `None` when there is none.
pub(crate) fn read_row<T>(
    conn: &Connection,
    sql: &str,
    args: &[Arg],
    read: impl FnOnce(&dyn Columns) -> Result<T, StorageError>,
) -> Result<Option<T>, StorageError> {
    query_row(conn, sql, &as_sql(args), |row| Ok(read(row)))?.transpose()
}

/// A row of either path (sqlx's, or an inline read's: [`super::inline`]) read by column
/// name, so that one function turns both into a value.
pub(crate) trait Columns {
    fn int(&self, name: &str) -> Result<Option<i64>, StorageError>;
    fn text(&self, name: &str) -> Result<Option<String>, StorageError>;
    fn blob(&self, name: &str) -> Result<Option<Vec<u8>>, StorageError>;

    /// An integer column that is never NULL.
    fn int_of(&self, name: &str) -> Result<i64, StorageError> {
        self.int(name)?.ok_or_else(|| null(name))
    }

    /// A text column that is never NULL.
    fn text_of(&self, name: &str) -> Result<String, StorageError> {
        self.text(name)?.ok_or_else(|| null(name))
    }
}

fn null(name: &str) -> StorageError {
    StorageError::Corrupt(format!("{name} is NULL"))
}

impl Columns for sqlx::any::AnyRow {
    fn int(&self, name: &str) -> Result<Option<i64>, StorageError> {
        Ok(sqlx::Row::try_get(self, name)?)
    }
    fn text(&self, name: &str) -> Result<Option<String>, StorageError> {
        Ok(sqlx::Row::try_get(self, name)?)
    }
    fn blob(&self, name: &str) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(sqlx::Row::try_get(self, name)?)
    }
}

impl Columns for Row<'_> {
    fn int(&self, name: &str) -> Result<Option<i64>, StorageError> {
        Ok(self.get(name)?)
    }
    fn text(&self, name: &str) -> Result<Option<String>, StorageError> {
        Ok(self.get(name)?)
    }
    fn blob(&self, name: &str) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.get(name)?)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn placeholders_are_bound_by_name_in_any_order() {
        let conn = Connection::open_in_memory().unwrap();
        let row = query_row(
            &conn,
            "SELECT $2 || '-' || $1, $10 + 0",
            &[
                &"a", &"b", &0i64, &0i64, &0i64, &0i64, &0i64, &0i64, &0i64, &7i64,
            ],
            |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)),
        )
        .unwrap();
        assert_eq!(row, Some(("b-a".to_owned(), 7)));
        // A placeholder without its argument is refused, not bound to NULL.
        assert!(query_row(&conn, "SELECT $1, $2", &[&1i64], |r| r.get::<_, i64>(0)).is_err());
        assert_eq!(
            execute(&conn, "CREATE TABLE t (v INTEGER)", &[]).unwrap(),
            0
        );
        assert_eq!(
            execute(&conn, "INSERT INTO t VALUES ($1), ($1)", &[&3i64]).unwrap(),
            2
        );
        let none = query_row(&conn, "SELECT v FROM t WHERE v = $1", &[&4i64], |r| {
            r.get::<_, i64>(0)
        });
        assert_eq!(none.unwrap(), None);
    }
}
