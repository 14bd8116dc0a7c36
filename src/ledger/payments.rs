//! Payments and budget reservations.
//!
//! An outgoing payment is reserved by inserting it as `pending` inside one `BEGIN IMMEDIATE`
//! transaction that first sums what every window already holds: SQLite lets one writer in at a
//! time, so concurrent payers (threads or processes) see each other's reservations and can never
//! exceed a cap together.

use serde::Serialize;
use tracing::{error, warn};

use super::{Ledger, LedgerError, db_int, from_db};
use crate::bolt11::DecodedInvoice;
use crate::budget::{BudgetPolicy, BudgetRefusal, DAY_SECS, HOUR_SECS, WindowUse};
use crate::payee::Payee;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, sqlx::Type)]
#[sqlx(type_name = "TEXT", rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Out,
    In,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, sqlx::Type)]
#[sqlx(type_name = "TEXT", rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pending,
    Succeeded,
    Failed,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Out => "out",
            Direction::In => "in",
        }
    }
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Succeeded => "succeeded",
            Status::Failed => "failed",
        }
    }
}

/// One row of the ledger. Its `Debug` leaves the preimage out.
#[derive(Clone, Serialize, sqlx::FromRow)]
pub struct PaymentRecord {
    pub id: i64,
    pub wallet: String,
    pub direction: Direction,
    pub status: Status,
    pub payment_hash: String,
    pub bolt11: String,
    pub amount_msat: i64,
    pub max_fee_msat: i64,
    pub fee_msat: i64,
    pub reserved_msat: i64,
    /// Proof of payment; a bearer secret together with its macaroon, so it is never serialized.
    #[serde(skip)]
    pub preimage: Option<String>,
    pub description: Option<String>,
    pub url: Option<String>,
    pub host: Option<String>,
    pub error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub settled_at: Option<i64>,
}

impl std::fmt::Debug for PaymentRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PaymentRecord")
            .field("id", &self.id)
            .field("wallet", &self.wallet)
            .field("direction", &self.direction)
            .field("status", &self.status)
            .field("payment_hash", &self.payment_hash)
            .field("amount_msat", &self.amount_msat)
            .field("fee_msat", &self.fee_msat)
            .field("reserved_msat", &self.reserved_msat)
            .field("has_preimage", &self.preimage.is_some())
            .field("host", &self.host)
            .field("error", &self.error)
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}

impl PaymentRecord {
    /// The amount; an error if the ledger holds an impossible (negative) one.
    pub fn amount(&self) -> Result<u64, LedgerError> {
        from_db(
            &format!("payment #{} amount_msat", self.id),
            self.amount_msat,
        )
    }

    /// The routing fee paid; an error if the ledger holds an impossible (negative) one.
    pub fn fee(&self) -> Result<u64, LedgerError> {
        from_db(&format!("payment #{} fee_msat", self.id), self.fee_msat)
    }

    /// When it was created (unix seconds); an error if the ledger holds a negative time.
    pub fn created(&self) -> Result<u64, LedgerError> {
        from_db(&format!("payment #{} created_at", self.id), self.created_at)
    }

    pub fn preimage_bytes(&self) -> Option<[u8; 32]> {
        self.preimage.as_deref().and_then(crate::l402::parse_hex32)
    }
}

/// An outgoing payment about to be made.
#[derive(Debug, Clone)]
pub struct NewOutgoing<'a> {
    pub wallet: &'a str,
    pub invoice: &'a DecodedInvoice,
    pub amount_msat: u64,
    pub max_fee_msat: u64,
    pub url: Option<&'a str>,
    /// Who is paid (for the host lists and the per-host cap), when known.
    pub payee: Option<&'a Payee>,
    /// The L402 credential this payment buys (kept with the reservation; see
    /// [`Ledger::restore_token`]).
    pub credential: Option<&'a super::tokens::CredentialScope>,
}

/// The result of asking to reserve budget for a payment.
#[derive(Debug)]
pub enum Reservation {
    /// Budget is held by the new pending payment `id`: go ahead and pay.
    Reserved { id: i64 },
    /// This invoice was already paid from this wallet: do not pay again.
    AlreadyPaid(Box<PaymentRecord>),
    /// A payment of this invoice is under way or its outcome is unknown: do not pay again.
    InFlight(Box<PaymentRecord>),
}

#[derive(Debug, thiserror::Error)]
pub enum ReserveError {
    #[error(transparent)]
    Refused(#[from] BudgetRefusal),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

impl From<sqlx::Error> for ReserveError {
    fn from(e: sqlx::Error) -> Self {
        ReserveError::Ledger(LedgerError::Db(e))
    }
}

const HELD: &str = "CASE status WHEN 'pending' THEN reserved_msat ELSE amount_msat + fee_msat END";

impl Ledger {
    /// Check the budget and reserve it for an outgoing payment, atomically.
    pub async fn reserve(
        &self,
        new: &NewOutgoing<'_>,
        policy: &BudgetPolicy,
        now: u64,
    ) -> Result<Reservation, ReserveError> {
        let host = new.payee.map(|p| p.host.as_str());
        policy.check_static(new.amount_msat, host)?;
        let hash = hex::encode(new.invoice.payment_hash);
        let needed = new.amount_msat.saturating_add(new.max_fee_msat);

        let mut tx = self.writer().begin_with("BEGIN IMMEDIATE").await?;
        let existing: Option<PaymentRecord> = sqlx::query_as(
            "SELECT * FROM payments WHERE wallet = ? AND direction = 'out' AND payment_hash = ? AND status != 'failed'",
        )
        .bind(new.wallet)
        .bind(&hash)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(p) = existing {
            return Ok(match p.status {
                Status::Succeeded => Reservation::AlreadyPaid(Box::new(p)),
                _ => Reservation::InFlight(Box::new(p)),
            });
        }

        let held = window_use(&mut tx, new.wallet, new.payee, now).await?;
        policy.check_windows(needed, &held)?;

        let id: i64 = sqlx::query_scalar(
            "INSERT INTO payments (wallet, direction, status, payment_hash, bolt11, amount_msat, max_fee_msat,
                 reserved_msat, description, url, host, credential, created_at, updated_at)
             VALUES (?, 'out', 'pending', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(new.wallet)
        .bind(&hash)
        .bind(&new.invoice.bolt11)
        .bind(db_int(new.amount_msat)?)
        .bind(db_int(new.max_fee_msat)?)
        .bind(db_int(needed)?)
        .bind(&new.invoice.description)
        .bind(new.url)
        .bind(host)
        .bind(
            new.credential
                .map(serde_json::to_string)
                .transpose()
                .map_err(|e| LedgerError::Corrupt(format!("credential: {e}")))?,
        )
        .bind(db_int(now)?)
        .bind(db_int(now)?)
        .fetch_one(&mut *tx)
        .await?;
        if let Some(payee) = new.payee {
            sqlx::query(
                "INSERT INTO payment_payees (payment_id, wallet, payee_key, created_at)
                 SELECT ?, ?, value, ? FROM json_each(?)",
            )
            .bind(id)
            .bind(new.wallet)
            .bind(db_int(now)?)
            .bind(payee.keys_json())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(Reservation::Reserved { id })
    }

    /// What each window of `wallet` holds now (settled + reserved); the per-host window for
    /// `payee` (every payment sharing a key with it).
    pub async fn window_use(
        &self,
        wallet: &str,
        payee: Option<&Payee>,
        now: u64,
    ) -> Result<WindowUse, LedgerError> {
        let mut conn = self.pool().acquire().await?;
        window_use(&mut conn, wallet, payee, now).await
    }

    /// `wallet`'s budget policy and what each window holds now, read in one statement (one
    /// consistent snapshot, one round trip).
    pub async fn budget_and_use(
        &self,
        wallet: &str,
        payee: Option<&Payee>,
        now: u64,
    ) -> Result<(BudgetPolicy, WindowUse), LedgerError> {
        let mut conn = self.pool().acquire().await?;
        let key = super::budget_key(wallet);
        let (used, value) =
            window_use_and_setting(&mut conn, wallet, payee, now, Some(&key)).await?;
        let policy = match value {
            Some(v) => serde_json::from_str(&v)
                .map_err(|e| LedgerError::Corrupt(format!("setting {key}: {e}")))?,
            None => BudgetPolicy::default(),
        };
        Ok((policy, used))
    }

    /// The payment succeeded: record the preimage and actual fee; the reservation becomes spend.
    /// Also applies to a row that was marked failed by mistake (money moved after all).
    pub async fn mark_succeeded(
        &self,
        id: i64,
        preimage: Option<&[u8; 32]>,
        fee_msat: u64,
        note: Option<&str>,
        now: u64,
    ) -> Result<(), LedgerError> {
        let proof = Proof {
            preimage,
            fee_msat,
            note,
            now,
        };
        // One statement in the usual case.
        if set_succeeded(self.writer(), id, &proof, false).await? {
            return Ok(());
        }
        self.succeeded_after_failing(id, &proof).await
    }

    /// A row marked failed (e.g. by a reconcile that found no record in time) has succeeded
    /// after all: money moved, so the spend must count. If the invoice has been reserved again
    /// since (a live row for the same hash), the spend is recorded on that live row instead:
    /// one invoice is one spend, and the unique index allows one live row.
    async fn succeeded_after_failing(&self, id: i64, proof: &Proof<'_>) -> Result<(), LedgerError> {
        let mut tx = self.writer().begin_with("BEGIN IMMEDIATE").await?;
        let live: Option<(i64, Status)> = sqlx::query_as(
            "SELECT id, status FROM payments WHERE status != 'failed'
               AND (wallet, direction, payment_hash) =
                   (SELECT wallet, direction, payment_hash FROM payments WHERE id = ?)",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let now = db_int(proof.now)?;
        let note = |text: String| {
            sqlx::query("UPDATE payments SET error = ?, updated_at = ? WHERE id = ?")
                .bind(text)
                .bind(now)
                .bind(id)
        };
        match live {
            None => {
                error!(
                    payment_id = id,
                    "a payment recorded as failed has succeeded after all; recording the spend"
                );
                set_succeeded(&mut *tx, id, proof, true).await?;
            }
            Some((live_id, Status::Pending)) => {
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
                set_succeeded(&mut *tx, live_id, proof, true).await?;
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
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// The payment definitely did not happen: release its reservation.
    pub async fn mark_failed(&self, id: i64, reason: &str, now: u64) -> Result<(), LedgerError> {
        let done = sqlx::query(
            "UPDATE payments SET status = 'failed', reserved_msat = 0, error = ?, updated_at = ?
             WHERE id = ? AND status = 'pending'",
        )
        .bind(reason)
        .bind(db_int(now)?)
        .bind(id)
        .execute(self.writer())
        .await?;
        if done.rows_affected() == 0 {
            warn!(
                payment_id = id,
                "asked to fail a payment that is not pending; left as it is"
            );
        }
        Ok(())
    }

    /// Record an invoice we issued, waiting to be paid.
    pub async fn record_incoming(
        &self,
        wallet: &str,
        invoice: &DecodedInvoice,
        now: u64,
    ) -> Result<i64, LedgerError> {
        let id = sqlx::query_scalar(
            "INSERT INTO payments (wallet, direction, status, payment_hash, bolt11, amount_msat, description, created_at, updated_at)
             VALUES (?, 'in', 'pending', ?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(wallet)
        .bind(hex::encode(invoice.payment_hash))
        .bind(&invoice.bolt11)
        .bind(db_int(invoice.amount_msat.unwrap_or(0))?)
        .bind(&invoice.description)
        .bind(db_int(now)?)
        .bind(db_int(now)?)
        .fetch_one(self.writer())
        .await?;
        Ok(id)
    }

    /// An invoice we issued was paid. Returns whether a pending row changed.
    pub async fn mark_incoming_settled(
        &self,
        wallet: &str,
        payment_hash: &[u8; 32],
        amount_msat: Option<u64>,
        now: u64,
    ) -> Result<bool, LedgerError> {
        let done = sqlx::query(
            "UPDATE payments SET status = 'succeeded', amount_msat = COALESCE(?, amount_msat), settled_at = ?, updated_at = ?
             WHERE wallet = ? AND direction = 'in' AND payment_hash = ? AND status = 'pending'",
        )
        .bind(amount_msat.map(db_int).transpose()?)
        .bind(db_int(now)?)
        .bind(db_int(now)?)
        .bind(wallet)
        .bind(hex::encode(payment_hash))
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// An invoice we issued expired unpaid.
    pub async fn mark_incoming_expired(&self, id: i64, now: u64) -> Result<(), LedgerError> {
        sqlx::query("UPDATE payments SET status = 'failed', error = 'expired unpaid', updated_at = ? WHERE id = ? AND status = 'pending'")
            .bind(db_int(now)?)
            .bind(id)
            .execute(self.writer())
            .await?;
        Ok(())
    }

    pub async fn payment(&self, id: i64) -> Result<Option<PaymentRecord>, LedgerError> {
        Ok(sqlx::query_as("SELECT * FROM payments WHERE id = ?")
            .bind(id)
            .fetch_optional(self.pool())
            .await?)
    }

    /// The live (not failed) payment of `payment_hash` in one direction.
    pub async fn payment_by_hash(
        &self,
        wallet: &str,
        direction: Direction,
        payment_hash: &[u8; 32],
    ) -> Result<Option<PaymentRecord>, LedgerError> {
        Ok(sqlx::query_as(
            "SELECT * FROM payments WHERE wallet = ? AND direction = ? AND payment_hash = ?
             ORDER BY status = 'failed', id DESC LIMIT 1",
        )
        .bind(wallet)
        .bind(direction)
        .bind(hex::encode(payment_hash))
        .fetch_optional(self.pool())
        .await?)
    }

    /// Pending payments of `wallet` in one direction, oldest first.
    pub async fn pending(
        &self,
        wallet: &str,
        direction: Direction,
    ) -> Result<Vec<PaymentRecord>, LedgerError> {
        Ok(sqlx::query_as("SELECT * FROM payments WHERE wallet = ? AND direction = ? AND status = 'pending' ORDER BY id")
            .bind(wallet)
            .bind(direction)
            .fetch_all(self.pool())
            .await?)
    }

    /// The newest payments of `wallet`, newest first.
    pub async fn list_payments(
        &self,
        wallet: &str,
        direction: Option<Direction>,
        limit: u32,
    ) -> Result<Vec<PaymentRecord>, LedgerError> {
        Ok(sqlx::query_as(
            "SELECT * FROM payments WHERE wallet = ? AND (? IS NULL OR direction = ?) ORDER BY id DESC LIMIT ?",
        )
        .bind(wallet)
        .bind(direction)
        .bind(direction)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?)
    }

    /// Sums over all time: settled out (amount + fee), settled in, pending out (reserved).
    pub async fn totals(&self, wallet: &str) -> Result<Totals, LedgerError> {
        let (spent, received, reserved): (i64, i64, i64) = sqlx::query_as(
            "SELECT
                COALESCE(SUM(CASE WHEN direction = 'out' AND status = 'succeeded' THEN amount_msat + fee_msat END), 0),
                COALESCE(SUM(CASE WHEN direction = 'in' AND status = 'succeeded' THEN amount_msat END), 0),
                COALESCE(SUM(CASE WHEN direction = 'out' AND status = 'pending' THEN reserved_msat END), 0)
             FROM payments WHERE wallet = ?",
        )
        .bind(wallet)
        .fetch_one(self.pool())
        .await?;
        Ok(Totals {
            spent_msat: from_db("total spent", spent)?,
            received_msat: from_db("total received", received)?,
            reserved_msat: from_db("total reserved", reserved)?,
        })
    }

    /// Incoming payments settled since `since`.
    pub async fn earned_since(&self, wallet: &str, since: u64) -> Result<u64, LedgerError> {
        let v: i64 = sqlx::query_scalar(
            "SELECT COALESCE(SUM(amount_msat), 0) FROM payments
             WHERE wallet = ? AND direction = 'in' AND status = 'succeeded' AND settled_at >= ?",
        )
        .bind(wallet)
        .bind(db_int(since)?)
        .fetch_one(self.pool())
        .await?;
        from_db("income of the window", v)
    }
}

/// All-time sums of one wallet's ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Totals {
    pub spent_msat: u64,
    pub received_msat: u64,
    pub reserved_msat: u64,
}

/// What a payment's success records.
struct Proof<'a> {
    preimage: Option<&'a [u8; 32]>,
    fee_msat: u64,
    note: Option<&'a str>,
    now: u64,
}

/// Record payment `id` as succeeded: its preimage and actual fee, the reservation becomes spend.
/// A row marked failed is changed only when `even_if_failed`. Whether a row changed.
async fn set_succeeded(
    exec: impl sqlx::SqliteExecutor<'_>,
    id: i64,
    proof: &Proof<'_>,
    even_if_failed: bool,
) -> Result<bool, LedgerError> {
    let done = sqlx::query(
        "UPDATE payments SET status = 'succeeded', preimage = ?, fee_msat = ?, reserved_msat = 0,
             error = ?, settled_at = ?, updated_at = ? WHERE id = ? AND (? OR status != 'failed')",
    )
    .bind(proof.preimage.map(hex::encode))
    .bind(db_int(proof.fee_msat)?)
    .bind(proof.note)
    .bind(db_int(proof.now)?)
    .bind(db_int(proof.now)?)
    .bind(id)
    .bind(even_if_failed)
    .execute(exec)
    .await?;
    Ok(done.rows_affected() > 0)
}

async fn window_use(
    conn: &mut sqlx::SqliteConnection,
    wallet: &str,
    payee: Option<&Payee>,
    now: u64,
) -> Result<WindowUse, LedgerError> {
    Ok(window_use_and_setting(conn, wallet, payee, now, None)
        .await?
        .0)
}

/// [`window_use`], and in the same statement the raw value of setting `setting` (when asked).
async fn window_use_and_setting(
    conn: &mut sqlx::SqliteConnection,
    wallet: &str,
    payee: Option<&Payee>,
    now: u64,
    setting: Option<&str>,
) -> Result<(WindowUse, Option<String>), LedgerError> {
    let day_start = db_int(now.saturating_sub(DAY_SECS))?;
    let hour_start = db_int(now.saturating_sub(HOUR_SECS))?;
    let keys = payee.map(Payee::keys_json);
    // A pending payment holds its reservation in every window until it is resolved, however
    // old it is: its money may still move. The day's rows come by range on `payments_window`,
    // older pending ones through the small `payments_pending` index: the statement never walks
    // the wallet's whole history. The per-host window sums every payment that shares a key
    // with the payee (one server however it is named), found through `payment_payees`.
    let sql = format!(
        "SELECT
            COALESCE(SUM(held), 0),
            COALESCE(SUM(CASE WHEN created_at >= ?2 OR status = 'pending' THEN held END), 0),
            (SELECT COALESCE(SUM(held), 0) FROM (
                SELECT id, {HELD} AS held FROM payments
                 WHERE id IN (SELECT payment_id FROM payment_payees
                               WHERE wallet = ?4 AND created_at >= ?1
                                 AND payee_key IN (SELECT value FROM json_each(?3)))
                   AND status != 'failed'
                UNION
                SELECT id, {HELD} FROM payments INDEXED BY payments_pending
                 WHERE status = 'pending' AND wallet = ?4 AND direction = 'out' AND created_at < ?1
                   AND EXISTS (SELECT 1 FROM payment_payees k WHERE k.payment_id = payments.id
                                 AND k.payee_key IN (SELECT value FROM json_each(?3))))),
            COALESCE(SUM(CASE WHEN status = 'pending' THEN reserved_msat END), 0),
            (SELECT value FROM settings WHERE key = ?5)
         FROM (
            SELECT status, created_at, reserved_msat, {HELD} AS held FROM payments
             WHERE wallet = ?4 AND direction = 'out' AND status != 'failed' AND created_at >= ?1
            UNION ALL
            SELECT status, created_at, reserved_msat, {HELD} FROM payments
             INDEXED BY payments_pending
             WHERE status = 'pending' AND wallet = ?4 AND direction = 'out' AND created_at < ?1
         )"
    );
    let (daily, hourly, host_daily, reserved, value): (i64, i64, i64, i64, Option<String>) =
        sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(day_start)
            .bind(hour_start)
            .bind(keys.as_deref())
            .bind(wallet)
            .bind(setting)
            .fetch_one(&mut *conn)
            .await?;
    let used = WindowUse {
        daily_msat: from_db("spending of the day", daily)?,
        hourly_msat: from_db("spending of the hour", hourly)?,
        host_daily_msat: from_db("spending at the host", host_daily)?,
        reserved_msat: from_db("reserved", reserved)?,
        has_host: payee.is_some(),
    };
    Ok((used, value))
}
