//! The spend ledger on the engine: one SQL text for SQLite and PostgreSQL.
//!
//! Kept in one file (~700 lines): every statement of the spend ledger, which must agree with one
//! another and with the triggers of the spend-bucket migrations (the windows a reservation
//! checks are the ones settlements and failures update).

use std::sync::OnceLock;

use async_trait::async_trait;
use futures::future::BoxFuture;
use sqlx::Row;
use sqlx::any::AnyRow;
use tracing::{error, warn};

use super::{
    Direction, NewPayment, Payment, PaymentFilter, Pruned, Reservation, ReserveError, Resume,
    Retention, Settlement, SpendLedger, Status, Totals,
};
use crate::bolt11::DecodedInvoice;
use crate::budget::{BudgetPolicy, BudgetRefusal, DAY_SECS, HOUR_SECS, WindowUse};
use crate::l402::{Msat, PaymentHash, Preimage};
use crate::payee::Payee;
use crate::storage::engine::{Dialect, Engine, MoneyWrite};
use crate::storage::pg_group::undone_unless_ok;
use crate::storage::sync_sql::{self, Arg, Statement, bind};
use crate::storage::{StorageError, bytes32, int, uint};

const PAYMENT_COLUMNS: &str = "id, wallet, direction, status, payment_hash, bolt11, amount_msat, \
     max_fee_msat, fee_msat, reserved_msat, preimage, description, url, host, error, created_at, \
     updated_at, settled_at";

/// What a row holds in the windows: a pending one its reservation, a settled one what it cost.
const HELD: &str = "CASE status WHEN 'pending' THEN reserved_msat ELSE amount_msat + fee_msat END";

fn payment_from_row(row: &AnyRow) -> Result<Payment, StorageError> {
    let msat = |col: &str| -> Result<Msat, StorageError> {
        Ok(Msat::from_msat(uint(col, row.try_get(col)?)?))
    };
    let time = |col: &str| -> Result<u64, StorageError> { uint(col, row.try_get(col)?) };
    let preimage: Option<String> = row.try_get("preimage")?;
    Ok(Payment {
        id: row.try_get("id")?,
        wallet: row.try_get("wallet")?,
        direction: Direction::parse(row.try_get("direction")?)?,
        status: Status::parse(row.try_get("status")?)?,
        payment_hash: PaymentHash(bytes32("payment hash", row.try_get("payment_hash")?)?),
        bolt11: row.try_get("bolt11")?,
        amount: msat("amount_msat")?,
        max_fee: msat("max_fee_msat")?,
        fee: msat("fee_msat")?,
        reserved: msat("reserved_msat")?,
        preimage: preimage
            .map(|p| bytes32("preimage", &p).map(Preimage))
            .transpose()?,
        description: row.try_get("description")?,
        url: row.try_get("url")?,
        host: row.try_get("host")?,
        error: row.try_get("error")?,
        created_at: time("created_at")?,
        updated_at: time("updated_at")?,
        settled_at: row
            .try_get::<Option<i64>, _>("settled_at")?
            .map(|v| uint("settled_at", v))
            .transpose()?,
    })
}

fn budget_key(wallet: &str) -> String {
    format!("budget.{wallet}")
}

fn policy_from(key: &str, json: Option<String>) -> Result<BudgetPolicy, StorageError> {
    match json {
        Some(v) => serde_json::from_str(&v)
            .map_err(|e| StorageError::Corrupt(format!("setting {key}: {e}"))),
        None => Ok(BudgetPolicy::default()),
    }
}

/// The statement that reads what each window of `wallet` holds now, and (when asked) a
/// setting's raw value, in one statement whose cost does not grow with the history; its
/// arguments, and whether it sums a per-host window.
///
/// The daily and hourly windows are read from `spend_buckets` (kept by triggers in every
/// payment's own transaction, migrations/sqlite/0009): the rows of the window's first partial
/// minute, then minute buckets up to the first whole hour, then hour buckets. A pending payment
/// holds its reservation in every window until it is resolved, however old it is: older
/// pending ones come through the small `payments_pending_by_wallet` index (the wallet's own
/// pending outgoing rows, not a seller's unpaid invoices). The per-host window (only when `host`
/// is given: a per-host cap is set) sums every payment that shares a key with the payee (one
/// server however it is named), through `payment_payees`.
struct WindowQuery {
    sql: &'static str,
    args: Vec<Arg>,
    has_host: bool,
}

impl WindowQuery {
    fn new(
        dialect: Dialect,
        wallet: &str,
        host: Option<&Payee>,
        now: u64,
        setting: Option<&str>,
    ) -> Result<WindowQuery, StorageError> {
        // Only a report reads a setting, and only a report needs what pending payments hold
        // in all (a reservation checks the windows alone).
        let sql = WindowQuery::sql(dialect, host.is_some(), setting.is_some());
        let bounds = |span: u64| -> Result<[i64; 3], StorageError> {
            // The window's start, its first whole minute, and the first whole hour from there.
            let s = now.saturating_sub(span);
            let m1 = s.div_ceil(60) * 60;
            let h1 = m1.div_ceil(3600) * 3600;
            Ok([int(s)?, int(m1)?, int(h1)?])
        };
        let mut args = vec![Arg::Text(Some(wallet.to_owned()))];
        for v in bounds(DAY_SECS)?.into_iter().chain(bounds(HOUR_SECS)?) {
            args.push(Arg::Int(v));
        }
        args.push(Arg::Text(setting.map(str::to_owned)));
        if let Some(payee) = host {
            args.push(Arg::Text(Some(payee.keys_json())));
        }
        Ok(WindowQuery {
            sql,
            args,
            has_host: host.is_some(),
        })
    }

    /// The statement's text for `dialect`, with or without the per-host window, and with or
    /// without the sum of every pending payment (a report's): built once.
    fn sql(dialect: Dialect, host: bool, report: bool) -> &'static str {
        static SQL: [[[OnceLock<String>; 2]; 2]; 2] =
            [const { [const { [const { OnceLock::new() }; 2] }; 2] }; 2];
        let engine = match dialect {
            Dialect::Sqlite => 0,
            Dialect::Postgres => 1,
        };
        SQL[engine][usize::from(host)][usize::from(report)]
            .get_or_init(|| WindowQuery::build(dialect, host, report))
    }

    /// The sum of every pending payment of the wallet reads every entry of the pending index
    /// for it, and on PostgreSQL also the entries of rows no longer pending until a vacuum
    /// removes them (~1,500 buffer reads per statement in the fleet bench, most of the
    /// reservation's CPU): a reservation, which does not need it, reads 0 instead.
    fn build(dialect: Dialect, host: bool, report: bool) -> String {
        let pending_hint = dialect.indexed_by("payments_pending_by_wallet");
        // A failed row holds nothing. It is counted as 0 rather than filtered out by
        // `status != 'failed'`: that filter let PostgreSQL's generic plan read the window's
        // first minute through `payments_live_hash` (whose predicate it is), by wallet alone,
        // every live payment of the wallet's history filtered by time (2,632 buffers per
        // reservation after 3,000 payments, seen with auto_explain).
        let window = |s: u8| {
            let (m1, h1) = (s + 1, s + 2);
            format!(
                "(SELECT CAST(COALESCE(SUM(CASE status WHEN 'failed' THEN 0 ELSE {HELD} END), 0) AS BIGINT)
                   FROM payments WHERE wallet = $1 AND direction = 'out'
                     AND created_at >= ${s} AND created_at < ${m1})
                 + (SELECT CAST(COALESCE(SUM(held_msat), 0) AS BIGINT) FROM spend_buckets
                   WHERE wallet = $1 AND span = 60 AND start >= ${m1} AND start < ${h1})
                 + (SELECT CAST(COALESCE(SUM(held_msat), 0) AS BIGINT) FROM spend_buckets
                   WHERE wallet = $1 AND span = 3600 AND start >= ${h1})
                 + (SELECT CAST(COALESCE(SUM(reserved_msat), 0) AS BIGINT) FROM payments {pending_hint}
                   WHERE status = 'pending' AND wallet = $1 AND direction = 'out' AND created_at < ${s})"
            )
        };
        let host_sql = if host {
            let keys_in = dialect.json_strings(9);
            format!(
                    "(SELECT CAST(COALESCE(SUM(held), 0) AS BIGINT) FROM (
                        SELECT id, {HELD} AS held FROM payments
                         WHERE id IN (SELECT payment_id FROM payment_payees
                                       WHERE wallet = $1 AND created_at >= $2 AND payee_key IN ({keys_in}))
                           AND status != 'failed'
                        UNION
                        SELECT id, {HELD} AS held FROM payments {pending_hint}
                         WHERE status = 'pending' AND wallet = $1 AND direction = 'out' AND created_at < $2
                           AND EXISTS (SELECT 1 FROM payment_payees k WHERE k.payment_id = payments.id
                                         AND k.payee_key IN ({keys_in}))) AS host_rows)"
                )
        } else {
            "0".to_owned()
        };
        let pending = if report {
            format!(
                "(SELECT CAST(COALESCE(SUM(reserved_msat), 0) AS BIGINT) FROM payments {pending_hint}
                  WHERE status = 'pending' AND wallet = $1 AND direction = 'out')"
            )
        } else {
            "0".to_owned()
        };
        format!(
            "SELECT {day}, {hour}, {host_sql}, {pending}, (SELECT value FROM settings WHERE key = $8)",
            day = window(2),
            hour = window(5),
        )
    }

    /// Its row's four sums and the setting, read.
    fn result(
        &self,
        sums: [i64; 4],
        setting: Option<String>,
    ) -> Result<(WindowUse, Option<String>), StorageError> {
        let [day, hour, host, reserved] = sums;
        let used = WindowUse {
            daily_msat: uint("daily window", day)?,
            hourly_msat: uint("hourly window", hour)?,
            host_daily_msat: uint("per-host window", host)?,
            reserved_msat: uint("reserved", reserved)?,
            has_host: self.has_host,
        };
        Ok((used, setting))
    }

    /// Run through sqlx.
    async fn fetch(
        &self,
        conn: &mut sqlx::AnyConnection,
    ) -> Result<(WindowUse, Option<String>), StorageError> {
        let q = sqlx::query(self.sql);
        let row = bind(q, &self.args).fetch_one(&mut *conn).await?;
        let sum = |i: usize| row.try_get::<i64, _>(i);
        self.result([sum(0)?, sum(1)?, sum(2)?, sum(3)?], row.try_get(4)?)
    }

    /// Run on the committer's connection.
    fn fetch_sync(
        &self,
        conn: &rusqlite::Connection,
    ) -> Result<(WindowUse, Option<String>), StorageError> {
        let row = sync_sql::query_row(conn, self.sql, &sync_sql::as_sql(&self.args), |row| {
            let sum = |i: usize| row.get::<_, i64>(i);
            Ok((
                [sum(0)?, sum(1)?, sum(2)?, sum(3)?],
                row.get::<_, Option<String>>(4)?,
            ))
        })?
        .ok_or_else(|| StorageError::Corrupt("the windows' query returned no row".into()))?;
        self.result(row.0, row.1)
    }
}

impl Engine {
    async fn payments_where(
        &self,
        clause: &str,
        bind: impl FnOnce(
            sqlx::query::Query<'_, sqlx::Any, sqlx::any::AnyArguments>,
        ) -> sqlx::query::Query<'_, sqlx::Any, sqlx::any::AnyArguments>,
    ) -> Result<Vec<Payment>, StorageError> {
        let sql = format!("SELECT {PAYMENT_COLUMNS} FROM payments WHERE {clause}");
        let rows = bind(sqlx::query(sqlx::AssertSqlSafe(sql)))
            .fetch_all(self.reader())
            .await?;
        rows.iter().map(payment_from_row).collect()
    }

    /// A row marked failed (by a reconcile that found no record in time, say) has succeeded
    /// after all: money moved, so the spend must count. If the invoice has been reserved again
    /// since (a live row for the same hash), the spend is recorded on that live row instead:
    /// one invoice is one spend, and the unique index allows one live row.
    async fn succeeded_after_failing(
        &self,
        id: i64,
        s: &Settlement<'_>,
        now: u64,
    ) -> Result<(), StorageError> {
        let wallet: Option<String> =
            sqlx::query_scalar("SELECT wallet FROM payments WHERE id = $1")
                .bind(id)
                .fetch_optional(self.reader())
                .await?;
        let Some(wallet) = wallet else {
            warn!(
                payment_id = id,
                "asked to settle a payment the ledger does not have"
            );
            return Ok(());
        };
        let now_db = int(now)?;
        let mut tx = self.begin_money(&wallet).await?;
        let live: Option<(i64, String)> = sqlx::query_as(
            "SELECT id, status FROM payments WHERE status != 'failed'
               AND (wallet, direction, payment_hash) =
                   (SELECT wallet, direction, payment_hash FROM payments WHERE id = $1)",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let note = |text: String| {
            sqlx::query("UPDATE payments SET error = $1, updated_at = $2 WHERE id = $3")
                .bind(text)
                .bind(now_db)
                .bind(id)
        };
        // The row the spend is recorded on, if any.
        let spend_on = match live {
            None => {
                error!(
                    payment_id = id,
                    "a payment recorded as failed has succeeded after all; recording the spend"
                );
                Some(id)
            }
            Some((live_id, status)) if status == "pending" => {
                error!(
                    payment_id = id,
                    live_payment_id = live_id,
                    "a payment recorded as failed has succeeded after all while the invoice was being paid again; recording the spend on the newer payment"
                );
                note(format!(
                    "succeeded after all; the spend is recorded on ledger #{live_id}"
                ))
                .execute(&mut *tx)
                .await?;
                Some(live_id)
            }
            Some((live_id, _)) => {
                // Paid twice: both spends are real, but one invoice may have one live row.
                error!(
                    payment_id = id,
                    live_payment_id = live_id,
                    "PAID TWICE: a payment recorded as failed succeeded after the same invoice was paid again"
                );
                note(format!(
                    "PAID TWICE: succeeded after all, as did ledger #{live_id} for the same invoice"
                ))
                .execute(&mut *tx)
                .await?;
                None
            }
        };
        if let Some(row) = spend_on {
            succeeded(row, s, now, true)?.run(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

/// Record payment `$5` as succeeded: its preimage and actual fee, the reservation becomes
/// spend. A row marked failed is changed only when `$6` is 1. See [`succeeded`].
const SET_SUCCEEDED: &str =
    "UPDATE payments SET status = 'succeeded', preimage = $1, fee_msat = $2, reserved_msat = 0,
     error = $3, settled_at = $4, updated_at = $4 WHERE id = $5 AND ($6 = 1 OR status != 'failed')";

/// [`SET_SUCCEEDED`] for payment `id`.
fn succeeded(
    id: i64,
    s: &Settlement<'_>,
    now: u64,
    even_if_failed: bool,
) -> Result<Statement, StorageError> {
    Ok(Statement {
        sql: SET_SUCCEEDED,
        args: vec![
            Arg::Text(s.preimage.map(Preimage::to_hex)),
            Arg::Int(int(s.fee.msat())?),
            Arg::Text(s.note.map(str::to_owned)),
            Arg::Int(int(now)?),
            Arg::Int(id),
            Arg::Int(i64::from(even_if_failed)),
        ],
    })
}

/// The row of an invoice `wallet` issued, pending until it is paid (see
/// [`SpendLedger::record_incoming`]); the seller's challenge writes it with the token's root key.
pub(crate) fn incoming(
    wallet: &str,
    payment_hash: &PaymentHash,
    bolt11: &str,
    amount: Msat,
    description: Option<&str>,
    now: u64,
) -> Result<Statement, StorageError> {
    Ok(Statement {
        sql: "INSERT INTO payments (wallet, direction, status, payment_hash, bolt11, amount_msat, description, created_at, updated_at)
             VALUES ($1, 'in', 'pending', $2, $3, $4, $5, $6, $6)",
        args: vec![
            Arg::Text(Some(wallet.to_owned())),
            Arg::Text(Some(payment_hash.to_hex())),
            Arg::Text(Some(bolt11.to_owned())),
            Arg::Int(int(amount.msat())?),
            Arg::Text(description.map(str::to_owned)),
            Arg::Int(int(now)?),
        ],
    })
}

/// An invoice `wallet` issued was paid (see [`SpendLedger::mark_incoming_settled`]); the seller
/// writes it with the sale.
pub(crate) fn incoming_settled(
    wallet: &str,
    payment_hash: &PaymentHash,
    amount: Option<Msat>,
    now: u64,
) -> Result<Statement, StorageError> {
    Ok(Statement {
        sql: "UPDATE payments SET status = 'succeeded', amount_msat = COALESCE($1, amount_msat),
                 settled_at = $2, updated_at = $2
             WHERE wallet = $3 AND direction = 'in' AND payment_hash = $4 AND status = 'pending'",
        args: vec![
            Arg::MaybeInt(amount.map(|a| int(a.msat())).transpose()?),
            Arg::Int(int(now)?),
            Arg::Text(Some(wallet.to_owned())),
            Arg::Text(Some(payment_hash.to_hex())),
        ],
    })
}

/// Pending payment `id` of `wallet`, for the invoice of `payment_hash`, succeeded with
/// `preimage` and no fee (an embedded transfer), recorded in the transfer's own commit. It
/// changes no row unless that payment is in this database and still pending: the caller
/// records it the usual way then ([`SpendLedger::mark_succeeded`]).
pub(crate) fn paid_now(
    id: i64,
    wallet: &str,
    payment_hash: &PaymentHash,
    preimage: &Preimage,
    now: u64,
) -> Result<Statement, StorageError> {
    Ok(Statement {
        sql: "UPDATE payments SET status = 'succeeded', preimage = $1, fee_msat = 0, reserved_msat = 0,
             error = NULL, settled_at = $2, updated_at = $2
             WHERE id = $3 AND wallet = $4 AND direction = 'out' AND payment_hash = $5 AND status = 'pending'",
        args: vec![
            Arg::Text(Some(preimage.to_hex())),
            Arg::Int(int(now)?),
            Arg::Int(id),
            Arg::Text(Some(wallet.to_owned())),
            Arg::Text(Some(payment_hash.to_hex())),
        ],
    })
}

/// Record payment `$3` as failed, if it is still pending.
const SET_FAILED: &str =
    "UPDATE payments SET status = 'failed', reserved_msat = 0, error = $1, updated_at = $2
     WHERE id = $3 AND status = 'pending'";

/// A reservation (see `reserve`): the row, owned, and the policy it is checked against. Its
/// statements: the windows (one statement), then the row, unless the invoice already has a
/// live (pending or paid) payment, which the unique index `payments_live_hash` finds as the
/// row goes in (`ON CONFLICT`): no query plan can turn that check into a scan of the wallet's
/// history. The live payment is looked up only then, or when the windows refuse (a payment
/// made is the answer before a refusal is). On PostgreSQL the windows and the row are one
/// statement ([`reserve_sql`]).
struct Reserve {
    windows: WindowQuery,
    row: [Arg; 12],
    /// The wallet and the payment hash, for the live payment's lookup.
    live: [Arg; 2],
    needed: Msat,
    policy: BudgetPolicy,
    /// The row's creation time (its spend buckets').
    at: i64,
}

/// What a reservation's write found: the new row, or the live payment of the invoice.
enum Reserved {
    New(i64),
    Live(i64),
}

/// A reservation's row: its columns, the values of its arguments `$1`..`$12`, and the live
/// payment of its invoice it gives way to.
macro_rules! payment_row {
    (columns) => {
        "INSERT INTO payments (wallet, direction, status, payment_hash, bolt11, amount_msat, max_fee_msat,
         reserved_msat, description, url, host, credential, payee_keys, created_at, updated_at)"
    };
    (values) => {
        "$1, 'out', 'pending', $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12"
    };
    (conflict) => {
        "ON CONFLICT (wallet, direction, payment_hash) WHERE status != 'failed' DO NOTHING RETURNING id"
    };
}
const INSERT_PAYMENT: &str = concat!(
    payment_row!(columns),
    " VALUES (",
    payment_row!(values),
    ") ",
    payment_row!(conflict)
);
const LIVE_PAYMENT: &str = "SELECT id FROM payments
     WHERE wallet = $1 AND direction = 'out' AND payment_hash = $2 AND status != 'failed'";

/// PostgreSQL's reservation in one statement, one round trip inside the wallet's turn instead
/// of two: the windows' sums (the arguments of [`WindowQuery`] first), and the row (its twelve
/// arguments next), inserted only where every window with a cap leaves room for what the
/// payment needs: the test of `BudgetPolicy::check_windows` (`needed > cap - used`, saturating),
/// which then explains a refusal from the sums returned. The last four arguments: what the
/// payment needs, then the daily, hourly and per-host caps (-1 where none applies).
fn reserve_sql(host: bool) -> &'static str {
    static SQL: [OnceLock<String>; 2] = [const { OnceLock::new() }; 2];
    SQL[usize::from(host)].get_or_init(|| {
        let windows = WindowQuery::build(Dialect::Postgres, host, false);
        let before = if host { 9 } else { 8 };
        let [needed, day, hour, per_host] =
            [13, 14, 15, 16].map(|i: usize| format!("${}", before + i));
        let room = |cap: &str, used: &str| {
            format!("({cap} < 0 OR {needed} <= GREATEST({cap} - w.{used}, 0))")
        };
        format!(
            "WITH w (day, hour, host, pending, setting) AS MATERIALIZED ({windows}),
             ins AS ({columns} SELECT {values} FROM w WHERE {d} AND {h} AND {p} {conflict})
             SELECT w.day, w.hour, w.host, w.pending, w.setting, (SELECT id FROM ins) FROM w",
            columns = payment_row!(columns),
            values = renumber(payment_row!(values), before),
            conflict = payment_row!(conflict),
            d = room(&day, "day"),
            h = room(&hour, "hour"),
            p = room(&per_host, "host"),
        )
    })
}

/// `sql` with each placeholder `$N` made `$(N + by)`.
fn renumber(sql: &str, by: usize) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut rest = sql;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        match after[..digits].parse::<usize>() {
            Ok(n) => out.push_str(&format!("${}", n + by)),
            Err(_) => out.push('$'),
        }
        rest = &after[digits..];
    }
    out.push_str(rest);
    out
}

impl Reserve {
    /// [`reserve_sql`]'s statement: the windows, and the new row's id if it went in.
    async fn run_combined(self, conn: &mut sqlx::AnyConnection) -> Result<Reserved, ReserveError> {
        let sql = reserve_sql(self.windows.has_host);
        let cap = |c: Option<u64>| c.map_or(Ok(-1), int);
        let host_cap = self
            .policy
            .per_host_daily_msat
            .filter(|_| self.windows.has_host);
        let mut args = self.windows.args.clone();
        args.extend(self.row.iter().cloned());
        for v in [
            int(self.needed.msat())?,
            int(self.policy.daily_msat)?,
            cap(self.policy.hourly_msat)?,
            cap(host_cap)?,
        ] {
            args.push(Arg::Int(v));
        }
        let answer = bind(sqlx::query(sql), &args)
            .fetch_one(&mut *conn)
            .await
            .and_then(|row| Ok((row.try_get::<Option<i64>, _>(5)?, row)))
            .map_err(StorageError::from);
        // The row may have gone in: an answer that cannot be read undoes the batch.
        let (id, row) = undone_unless_ok(&mut *conn, answer).await?;
        if let Some(id) = id {
            return Ok(Reserved::New(id));
        }
        let sum = |i: usize| row.try_get::<i64, _>(i);
        let (held, _) = self
            .windows
            .result([sum(0)?, sum(1)?, sum(2)?, sum(3)?], None)?;
        let refused = self.policy.check_windows(self.needed.msat(), &held).err();
        self.after_no_row(conn, refused).await
    }

    /// No row went in: the invoice's live payment if it has one, else the windows' refusal.
    async fn after_no_row(
        &self,
        conn: &mut sqlx::AnyConnection,
        refused: Option<BudgetRefusal>,
    ) -> Result<Reserved, ReserveError> {
        let live = bind(sqlx::query(LIVE_PAYMENT), &self.live)
            .fetch_optional(&mut *conn)
            .await?
            .map(|row| row.try_get::<i64, _>(0))
            .transpose()?;
        Reserve::live_or(live, refused)
    }

    /// What the windows' refusal or the row's conflict means, given the live payment found.
    fn live_or(
        live: Option<i64>,
        refused: Option<BudgetRefusal>,
    ) -> Result<Reserved, ReserveError> {
        match (live, refused) {
            // Never pay an invoice twice: the payment made (or being made) is the answer.
            (Some(id), _) => Ok(Reserved::Live(id)),
            (None, Some(refusal)) => Err(refusal.into()),
            (None, None) => Err(StorageError::Corrupt(
                "a payment's row conflicted with no live payment of its invoice".into(),
            )
            .into()),
        }
    }
}

impl MoneyWrite for Reserve {
    type Output = Reserved;
    type Error = ReserveError;

    fn run(self, conn: &mut sqlx::AnyConnection) -> BoxFuture<'_, Result<Reserved, ReserveError>> {
        Box::pin(self.run_combined(conn))
    }

    fn run_sync(self, conn: &rusqlite::Connection) -> Result<Reserved, ReserveError> {
        let (held, _) = self.windows.fetch_sync(conn)?;
        let refused = self.policy.check_windows(self.needed.msat(), &held).err();
        if refused.is_none() {
            let id =
                sync_sql::query_row(conn, INSERT_PAYMENT, &sync_sql::as_sql(&self.row), |r| {
                    r.get::<_, i64>(0)
                })?;
            if let Some(id) = id {
                return Ok(Reserved::New(id));
            }
        }
        let live = sync_sql::query_row(conn, LIVE_PAYMENT, &sync_sql::as_sql(&self.live), |r| {
            r.get::<_, i64>(0)
        })?;
        Reserve::live_or(live, refused)
    }

    fn spends_at(&self) -> Option<i64> {
        Some(self.at)
    }

    /// It reads, then writes in its INSERT alone, whose row makes it `Ok`.
    fn needs_savepoint(&self) -> bool {
        false
    }
}

#[async_trait]
impl SpendLedger for Engine {
    async fn budget(&self, wallet: &str) -> Result<BudgetPolicy, StorageError> {
        let key = budget_key(wallet);
        policy_from(&key, self.setting(&key).await?)
    }

    async fn set_budget(
        &self,
        wallet: &str,
        policy: &BudgetPolicy,
        now: u64,
    ) -> Result<(), StorageError> {
        let json =
            serde_json::to_string(policy).map_err(|e| StorageError::Corrupt(e.to_string()))?;
        self.set_setting(&budget_key(wallet), &json, now).await
    }

    async fn budget_and_use(
        &self,
        wallet: &str,
        payee: Option<&Payee>,
        now: u64,
    ) -> Result<(BudgetPolicy, WindowUse), StorageError> {
        let key = budget_key(wallet);
        let query = WindowQuery::new(self.dialect, wallet, payee, now, Some(&key))?;
        let (used, json) = match self.read_inline(|conn| query.fetch_sync(conn)) {
            Some(read) => read?,
            None => query.fetch(&mut *self.reader().acquire().await?).await?,
        };
        Ok((policy_from(&key, json)?, used))
    }

    async fn setting(&self, key: &str) -> Result<Option<String>, StorageError> {
        let args = [Arg::Text(Some(key.to_owned()))];
        Ok(self
            .read_one("SELECT value FROM settings WHERE key = $1", &args, |row| {
                row.text_of("value")
            })
            .await?)
    }

    async fn set_setting(&self, key: &str, json: &str, now: u64) -> Result<(), StorageError> {
        sqlx::query(
            "INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        )
        .bind(key)
        .bind(json)
        .bind(int(now)?)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    async fn reserve(
        &self,
        new: &NewPayment<'_>,
        policy: &BudgetPolicy,
        now: u64,
    ) -> Result<Reservation, ReserveError> {
        let host = new.payee.map(|p| p.host.clone());
        policy.check_static(new.amount.msat(), host.as_deref())?;
        let credential = new
            .credential
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| StorageError::Corrupt(format!("credential: {e}")))?;
        // The per-host window is summed only where a per-host cap is set.
        let capped_payee = new.payee.filter(|_| policy.per_host_daily_msat.is_some());
        let hash = new.invoice.payment_hash.to_hex();
        let needed = new.amount.saturating_add(new.max_fee);
        // What the write needs, owned: it runs on the group committer's thread on SQLite.
        let write = Reserve {
            windows: WindowQuery::new(self.dialect, new.wallet, capped_payee, now, None)?,
            live: [
                Arg::Text(Some(new.wallet.to_owned())),
                Arg::Text(Some(hash.clone())),
            ],
            row: [
                Arg::Text(Some(new.wallet.to_owned())),
                Arg::Text(Some(hash)),
                Arg::Text(Some(new.invoice.bolt11.clone())),
                Arg::Int(int(new.amount.msat())?),
                Arg::Int(int(new.max_fee.msat())?),
                Arg::Int(int(needed.msat())?),
                Arg::Text(new.invoice.description.clone()),
                Arg::Text(new.url.map(str::to_owned)),
                Arg::Text(host),
                Arg::Text(credential),
                Arg::Text(new.payee.map(Payee::keys_json)),
                Arg::Int(int(now)?),
            ],
            needed,
            policy: policy.clone(),
            at: int(now)?,
        };
        let reserved = self
            .write(Some(new.wallet), write, |why| {
                ReserveError::Storage(StorageError::Unavailable(format!(
                    "the reservation could not be committed ({why}); nothing was paid"
                )))
            })
            .await?;
        let id = match reserved {
            Reserved::New(id) => {
                self.reserved(id, new.wallet, int(now)?);
                return Ok(Reservation::Reserved { id });
            }
            Reserved::Live(id) => id,
        };
        // The live payment of the invoice, as it stands now (it may have been settled since).
        let p = self
            .payments_where("id = $1", |q| q.bind(id))
            .await?
            .pop()
            .ok_or_else(|| {
                StorageError::Unavailable(format!("ledger #{id} was removed while being read"))
            })?;
        Ok(match p.status {
            Status::Succeeded => Reservation::AlreadyPaid(Box::new(p)),
            _ => Reservation::InFlight(Box::new(p)),
        })
    }

    async fn mark_succeeded(
        &self,
        id: i64,
        settlement: &Settlement<'_>,
        now: u64,
    ) -> Result<(), StorageError> {
        // One statement in the usual case, in the next group commit (see
        // `Engine::write_record`).
        let write = succeeded(id, settlement, now, false)?;
        if self
            .write_record(id, write, StorageError::Unavailable)
            .await?
            > 0
        {
            return Ok(());
        }
        self.succeeded_after_failing(id, settlement, now).await
    }

    async fn mark_failed(&self, id: i64, reason: &str, now: u64) -> Result<(), StorageError> {
        let write = Statement {
            sql: SET_FAILED,
            args: vec![
                Arg::Text(Some(reason.to_owned())),
                Arg::Int(int(now)?),
                Arg::Int(id),
            ],
        };
        let done = self
            .write_record(id, write, StorageError::Unavailable)
            .await?;
        if done == 0 {
            warn!(
                payment_id = id,
                "asked to fail a payment that is not pending; left as it is"
            );
        }
        Ok(())
    }

    async fn record_incoming(
        &self,
        wallet: &str,
        invoice: &DecodedInvoice,
        now: u64,
    ) -> Result<i64, StorageError> {
        let row = incoming(
            wallet,
            &invoice.payment_hash,
            &invoice.bolt11,
            Msat::from_msat(invoice.amount_msat.unwrap_or(0)),
            invoice.description.as_deref(),
            now,
        )?;
        let sql = format!("{} RETURNING id", row.sql);
        Ok(bind(sqlx::query(sqlx::AssertSqlSafe(sql)), &row.args)
            .fetch_one(self.writer())
            .await?
            .try_get(0)?)
    }

    async fn mark_incoming_settled(
        &self,
        wallet: &str,
        payment_hash: &PaymentHash,
        amount: Option<Msat>,
        now: u64,
    ) -> Result<bool, StorageError> {
        let s = incoming_settled(wallet, payment_hash, amount, now)?;
        let done = bind(sqlx::query(s.sql), &s.args)
            .execute(self.writer())
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn mark_incoming_expired(&self, id: i64, now: u64) -> Result<(), StorageError> {
        sqlx::query(
            "UPDATE payments SET status = 'failed', error = 'expired unpaid', updated_at = $1
             WHERE id = $2 AND status = 'pending'",
        )
        .bind(int(now)?)
        .bind(id)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    async fn payment(&self, id: i64) -> Result<Option<Payment>, StorageError> {
        Ok(self
            .payments_where("id = $1", |q| q.bind(id))
            .await?
            .into_iter()
            .next())
    }

    async fn payment_by_hash(
        &self,
        wallet: &str,
        direction: Direction,
        payment_hash: &PaymentHash,
    ) -> Result<Option<Payment>, StorageError> {
        let hash = payment_hash.to_hex();
        Ok(self
            .payments_where(
                "wallet = $1 AND direction = $2 AND payment_hash = $3
                 ORDER BY CASE WHEN status = 'failed' THEN 1 ELSE 0 END, id DESC LIMIT 1",
                |q| q.bind(wallet).bind(direction.as_str()).bind(hash),
            )
            .await?
            .into_iter()
            .next())
    }

    async fn pending(
        &self,
        wallet: &str,
        direction: Direction,
    ) -> Result<Vec<Payment>, StorageError> {
        self.payments_where(
            "wallet = $1 AND direction = $2 AND status = 'pending' ORDER BY id",
            |q| q.bind(wallet).bind(direction.as_str()),
        )
        .await
    }

    async fn list_payments(
        &self,
        wallet: &str,
        filter: &PaymentFilter,
        limit: u32,
    ) -> Result<Vec<Payment>, StorageError> {
        self.payments_where(
            "wallet = $1 AND ($2 IS NULL OR direction = $2) AND ($3 IS NULL OR status = $3)
               AND ($4 IS NULL OR host = $4) ORDER BY id DESC LIMIT $5",
            |q| {
                q.bind(wallet)
                    .bind(filter.direction.map(Direction::as_str))
                    .bind(filter.status.map(Status::as_str))
                    .bind(filter.host.clone())
                    .bind(i64::from(limit))
            },
        )
        .await
    }

    async fn totals(&self, wallet: &str) -> Result<Totals, StorageError> {
        let (spent, received, reserved): (i64, i64, i64) = sqlx::query_as(
            "SELECT
                CAST(COALESCE(SUM(CASE WHEN direction = 'out' AND status = 'succeeded' THEN amount_msat + fee_msat END), 0)
                     + COALESCE((SELECT settled_msat FROM payments_carried WHERE wallet = $1 AND direction = 'out'), 0) AS BIGINT),
                CAST(COALESCE(SUM(CASE WHEN direction = 'in' AND status = 'succeeded' THEN amount_msat END), 0)
                     + COALESCE((SELECT settled_msat FROM payments_carried WHERE wallet = $1 AND direction = 'in'), 0) AS BIGINT),
                CAST(COALESCE(SUM(CASE WHEN direction = 'out' AND status = 'pending' THEN reserved_msat END), 0) AS BIGINT)
             FROM payments WHERE wallet = $1",
        )
        .bind(wallet)
        .fetch_one(self.reader())
        .await?;
        Ok(Totals {
            spent: Msat::from_msat(uint("spent", spent)?),
            received: Msat::from_msat(uint("received", received)?),
            reserved: Msat::from_msat(uint("reserved", reserved)?),
        })
    }

    async fn earned_since(&self, wallet: &str, since: u64) -> Result<Msat, StorageError> {
        let v: i64 = sqlx::query_scalar(
            "SELECT CAST(COALESCE(SUM(amount_msat), 0) AS BIGINT) FROM payments
             WHERE wallet = $1 AND direction = 'in' AND status = 'succeeded' AND settled_at >= $2",
        )
        .bind(wallet)
        .bind(int(since)?)
        .fetch_one(self.reader())
        .await?;
        Ok(Msat::from_msat(uint("earned", v)?))
    }

    async fn wallets(&self) -> Result<Vec<String>, StorageError> {
        Ok(sqlx::query_scalar(
            "SELECT DISTINCT wallet FROM (
                SELECT wallet FROM payments
                UNION SELECT wallet FROM payments_carried
                UNION SELECT substr(key, 8) AS wallet FROM settings WHERE key LIKE 'budget.%'
                UNION SELECT name AS wallet FROM embedded_wallets
             ) AS names ORDER BY wallet",
        )
        .fetch_all(self.reader())
        .await?)
    }

    async fn prune_windows(&self, wallet: &str, now: u64) -> Result<(), StorageError> {
        sqlx::query(
            "DELETE FROM spend_buckets WHERE wallet = $1 AND span IN (60, 3600) AND start < $2",
        )
        .bind(wallet)
        .bind(int(now.saturating_sub(2 * DAY_SECS))?)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    async fn prune_history(
        &self,
        wallet: &str,
        keep: &Retention,
        now: u64,
        from: Option<Resume>,
    ) -> Result<Pruned, StorageError> {
        self.prune_old(wallet, keep, now, from).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_renumbered_whole() {
        assert_eq!(
            renumber("($1, $2, $12, $12, 'a$b', $)", 9),
            "($10, $11, $21, $21, 'a$b', $)"
        );
        // The combined reservation numbers its arguments after the windows' own.
        let sql = reserve_sql(false);
        assert!(sql.contains("$9, 'out', 'pending', $10,") && sql.contains("($22 < 0 OR $21 <="));
        assert!(sql.contains("$24 < 0") && !sql.contains("$25"));
        let sql = reserve_sql(true);
        assert!(sql.contains("$10, 'out', 'pending', $11,") && sql.contains("($25 < 0 OR $22 <="));
    }
}
