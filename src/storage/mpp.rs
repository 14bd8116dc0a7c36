//! What a seller of the `Payment` scheme must remember, shared by every instance on the storage:
//! the HMAC secrets of challenge ids (one per epoch, so they rotate with overlap), the charges
//! already accepted (a payment hash buys one request, on any instance), and sessions (deposit,
//! spent, the refund paid once).
//!
//! Every write that decides something is one atomic statement (`INSERT ... ON CONFLICT DO
//! NOTHING`, `UPDATE ... WHERE <condition> RETURNING`): two instances cannot both accept one
//! charge, spend past a deposit, credit one top-up twice or close one session twice.

use async_trait::async_trait;
use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::engine::Engine;
use super::{StorageError, bytes32, int, uint};
use crate::l402::{Msat, PaymentHash};

/// What a session is opened with.
#[derive(Debug, Clone)]
pub struct NewSession<'a> {
    /// The deposit's payment hash.
    pub id: PaymentHash,
    pub wallet: &'a str,
    pub service: &'a str,
    pub deposit: Msat,
    /// The buyer's amountless invoice, for the refund.
    pub return_invoice: &'a str,
    pub idle_secs: u64,
}

/// A session as the seller keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SellerSession {
    pub id: PaymentHash,
    pub wallet: String,
    pub service: String,
    #[serde(rename = "deposit_msat")]
    pub deposit: Msat,
    #[serde(rename = "spent_msat")]
    pub spent: Msat,
    pub return_invoice: String,
    pub idle_secs: u64,
    pub open: bool,
    #[serde(rename = "refund_msat")]
    pub refund: Option<Msat>,
    pub refund_status: Option<RefundStatus>,
    pub refund_error: Option<String>,
    pub opened_at: u64,
    pub last_used_at: u64,
    pub closed_at: Option<u64>,
}

/// Where a session's refund stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RefundStatus {
    /// Owed and not yet known paid: the refunder pays it (once).
    Pending,
    Succeeded,
    /// Could not be paid (the return invoice expired, say); kept for the operator.
    Failed,
    /// Nothing was left to refund.
    Skipped,
}

impl RefundStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RefundStatus::Pending => "pending",
            RefundStatus::Succeeded => "succeeded",
            RefundStatus::Failed => "failed",
            RefundStatus::Skipped => "skipped",
        }
    }

    fn parse(s: &str) -> Result<RefundStatus, StorageError> {
        Ok(match s {
            "pending" => RefundStatus::Pending,
            "succeeded" => RefundStatus::Succeeded,
            "failed" => RefundStatus::Failed,
            "skipped" => RefundStatus::Skipped,
            other => return Err(StorageError::Corrupt(format!("refund status {other:?}"))),
        })
    }
}

/// What crediting a top-up did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credit {
    /// Added to the session's deposit now.
    Credited,
    /// This payment was credited to this session before (its deposit or a top-up): nothing
    /// added.
    AlreadyCredited,
    /// This payment was credited to another session (or opened one): refused.
    Elsewhere,
    /// No such open session.
    NotOpen,
}

/// The seller's `Payment` state. Every method is atomic across instances.
#[async_trait]
pub trait MppStore: Send + Sync + std::fmt::Debug {
    /// The HMAC secret of `epoch`: the stored one, else `candidate` stored now (the first
    /// instance to ask decides).
    async fn mpp_secret(
        &self,
        epoch: u64,
        candidate: &[u8; 32],
        now: u64,
    ) -> Result<[u8; 32], StorageError>;
    /// The secret of `epoch`, if one was made (verifying never makes one).
    async fn existing_mpp_secret(&self, epoch: u64) -> Result<Option<[u8; 32]>, StorageError>;
    /// Accept a charge: `true` the first time `payment_hash` is presented, on any instance.
    async fn consume_charge(
        &self,
        payment_hash: &PaymentHash,
        challenge_id: &str,
        expires_at: u64,
        now: u64,
    ) -> Result<bool, StorageError>;
    /// Open a session on its deposit; `false` when that payment was credited before.
    async fn open_session(&self, session: &NewSession<'_>, now: u64) -> Result<bool, StorageError>;
    async fn session(&self, id: &PaymentHash) -> Result<Option<SellerSession>, StorageError>;
    /// Spend `amount` of an open session: the balance left, or `None` when it is not open or
    /// has less than `amount` left.
    async fn spend_session(
        &self,
        id: &PaymentHash,
        amount: Msat,
        now: u64,
    ) -> Result<Option<Msat>, StorageError>;
    /// Credit a top-up payment to an open session, once.
    async fn credit_session(
        &self,
        id: &PaymentHash,
        payment_hash: &PaymentHash,
        amount: Msat,
        now: u64,
    ) -> Result<Credit, StorageError>;
    /// Close an open session: what is owed back (deposit - spent), with its refund recorded as
    /// `pending` (or `skipped` when nothing is owed). `None` when it was not open: only one
    /// caller, on any instance, closes a session.
    async fn close_session(&self, id: &PaymentHash, now: u64)
    -> Result<Option<Msat>, StorageError>;
    /// Record where a closed session's refund stands.
    async fn set_refund(
        &self,
        id: &PaymentHash,
        status: RefundStatus,
        error: Option<&str>,
    ) -> Result<(), StorageError>;
    /// Closed sessions whose refund is still `pending`.
    async fn pending_refunds(&self) -> Result<Vec<SellerSession>, StorageError>;
    /// Open sessions unused for longer than their idle timeout at `now`.
    async fn idle_sessions(&self, now: u64) -> Result<Vec<PaymentHash>, StorageError>;
}

const SESSION_COLUMNS: &str = "session_id, wallet, service, deposit_msat, spent_msat, return_invoice, \
     idle_secs, status, refund_msat, refund_status, refund_error, opened_at, last_used_at, closed_at";

fn session_from_row(row: &AnyRow) -> Result<SellerSession, StorageError> {
    let opt = |col: &str| -> Result<Option<u64>, StorageError> {
        row.try_get::<Option<i64>, _>(col)?
            .map(|v| uint(col, v))
            .transpose()
    };
    let status: String = row.try_get("status")?;
    Ok(SellerSession {
        id: PaymentHash(bytes32("session id", row.try_get("session_id")?)?),
        wallet: row.try_get("wallet")?,
        service: row.try_get("service")?,
        deposit: Msat::from_msat(uint("deposit", row.try_get("deposit_msat")?)?),
        spent: Msat::from_msat(uint("spent", row.try_get("spent_msat")?)?),
        return_invoice: row.try_get("return_invoice")?,
        idle_secs: uint("idle_secs", row.try_get("idle_secs")?)?,
        open: match status.as_str() {
            "open" => true,
            "closed" => false,
            other => return Err(StorageError::Corrupt(format!("session status {other:?}"))),
        },
        refund: opt("refund_msat")?.map(Msat::from_msat),
        refund_status: row
            .try_get::<Option<String>, _>("refund_status")?
            .as_deref()
            .map(RefundStatus::parse)
            .transpose()?,
        refund_error: row.try_get("refund_error")?,
        opened_at: uint("opened_at", row.try_get("opened_at")?)?,
        last_used_at: uint("last_used_at", row.try_get("last_used_at")?)?,
        closed_at: opt("closed_at")?,
    })
}

#[async_trait]
impl MppStore for Engine {
    async fn mpp_secret(
        &self,
        epoch: u64,
        candidate: &[u8; 32],
        now: u64,
    ) -> Result<[u8; 32], StorageError> {
        sqlx::query(
            "INSERT INTO mpp_secrets (epoch, secret, created_at) VALUES ($1, $2, $3)
             ON CONFLICT (epoch) DO NOTHING",
        )
        .bind(int(epoch)?)
        .bind(hex::encode(candidate))
        .bind(int(now)?)
        .execute(self.writer())
        .await?;
        // Read through the writer: the row another instance won with is there now.
        let secret: String = sqlx::query_scalar("SELECT secret FROM mpp_secrets WHERE epoch = $1")
            .bind(int(epoch)?)
            .fetch_one(self.writer())
            .await?;
        bytes32("challenge secret", &secret)
    }

    async fn existing_mpp_secret(&self, epoch: u64) -> Result<Option<[u8; 32]>, StorageError> {
        let secret: Option<String> =
            sqlx::query_scalar("SELECT secret FROM mpp_secrets WHERE epoch = $1")
                .bind(int(epoch)?)
                .fetch_optional(self.reader())
                .await?;
        secret.map(|s| bytes32("challenge secret", &s)).transpose()
    }

    async fn consume_charge(
        &self,
        payment_hash: &PaymentHash,
        challenge_id: &str,
        expires_at: u64,
        now: u64,
    ) -> Result<bool, StorageError> {
        let done = sqlx::query(
            "INSERT INTO mpp_consumed_charges (payment_hash, challenge_id, expires_at, consumed_at)
             VALUES ($1, $2, $3, $4) ON CONFLICT (payment_hash) DO NOTHING",
        )
        .bind(payment_hash.to_hex())
        .bind(challenge_id)
        .bind(int(expires_at)?)
        .bind(int(now)?)
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn open_session(&self, s: &NewSession<'_>, now: u64) -> Result<bool, StorageError> {
        let mut tx = self.writer().begin().await?;
        let claimed = sqlx::query(
            "INSERT INTO mpp_session_credits (payment_hash, session_id, amount_msat, credited_at)
             VALUES ($1, $1, $2, $3) ON CONFLICT (payment_hash) DO NOTHING",
        )
        .bind(s.id.to_hex())
        .bind(int(s.deposit.msat())?)
        .bind(int(now)?)
        .execute(&mut *tx)
        .await?;
        if claimed.rows_affected() == 0 {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO mpp_sessions (session_id, wallet, service, deposit_msat, spent_msat, return_invoice,
                 idle_secs, status, opened_at, last_used_at)
             VALUES ($1, $2, $3, $4, 0, $5, $6, 'open', $7, $7)",
        )
        .bind(s.id.to_hex())
        .bind(s.wallet)
        .bind(s.service)
        .bind(int(s.deposit.msat())?)
        .bind(s.return_invoice)
        .bind(int(s.idle_secs)?)
        .bind(int(now)?)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn session(&self, id: &PaymentHash) -> Result<Option<SellerSession>, StorageError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SESSION_COLUMNS} FROM mpp_sessions WHERE session_id = $1"
        )))
        .bind(id.to_hex())
        .fetch_optional(self.reader())
        .await?;
        row.as_ref().map(session_from_row).transpose()
    }

    async fn spend_session(
        &self,
        id: &PaymentHash,
        amount: Msat,
        now: u64,
    ) -> Result<Option<Msat>, StorageError> {
        let left: Option<i64> = sqlx::query_scalar(
            "UPDATE mpp_sessions SET spent_msat = spent_msat + $1, last_used_at = $2
              WHERE session_id = $3 AND status = 'open' AND deposit_msat - spent_msat >= $1
              RETURNING deposit_msat - spent_msat",
        )
        .bind(int(amount.msat())?)
        .bind(int(now)?)
        .bind(id.to_hex())
        .fetch_optional(self.writer())
        .await?;
        left.map(|l| uint("session balance", l).map(Msat::from_msat))
            .transpose()
    }

    async fn credit_session(
        &self,
        id: &PaymentHash,
        payment_hash: &PaymentHash,
        amount: Msat,
        now: u64,
    ) -> Result<Credit, StorageError> {
        let mut tx = self.writer().begin().await?;
        let claimed = sqlx::query(
            "INSERT INTO mpp_session_credits (payment_hash, session_id, amount_msat, credited_at)
             VALUES ($1, $2, $3, $4) ON CONFLICT (payment_hash) DO NOTHING",
        )
        .bind(payment_hash.to_hex())
        .bind(id.to_hex())
        .bind(int(amount.msat())?)
        .bind(int(now)?)
        .execute(&mut *tx)
        .await?;
        if claimed.rows_affected() == 0 {
            let owner: Option<String> = sqlx::query_scalar(
                "SELECT session_id FROM mpp_session_credits WHERE payment_hash = $1",
            )
            .bind(payment_hash.to_hex())
            .fetch_optional(&mut *tx)
            .await?;
            let is_open =
                sqlx::query("SELECT 1 FROM mpp_sessions WHERE session_id = $1 AND status = 'open'")
                    .bind(id.to_hex())
                    .fetch_optional(&mut *tx)
                    .await?
                    .is_some();
            return Ok(match owner {
                Some(o) if o == id.to_hex() && is_open => Credit::AlreadyCredited,
                _ if !is_open => Credit::NotOpen,
                _ => Credit::Elsewhere,
            });
        }
        let credited = sqlx::query(
            "UPDATE mpp_sessions SET deposit_msat = deposit_msat + $1, last_used_at = $2
              WHERE session_id = $3 AND status = 'open'",
        )
        .bind(int(amount.msat())?)
        .bind(int(now)?)
        .bind(id.to_hex())
        .execute(&mut *tx)
        .await?;
        if credited.rows_affected() == 0 {
            // Dropped, so the claim rolls back: the payment stays free for an open session.
            return Ok(Credit::NotOpen);
        }
        tx.commit().await?;
        Ok(Credit::Credited)
    }

    async fn close_session(
        &self,
        id: &PaymentHash,
        now: u64,
    ) -> Result<Option<Msat>, StorageError> {
        let owed: Option<i64> = sqlx::query_scalar(
            "UPDATE mpp_sessions SET status = 'closed', closed_at = $1, last_used_at = $1,
                    refund_msat = deposit_msat - spent_msat,
                    refund_status = CASE WHEN deposit_msat > spent_msat THEN 'pending' ELSE 'skipped' END
              WHERE session_id = $2 AND status = 'open'
              RETURNING deposit_msat - spent_msat",
        )
        .bind(int(now)?)
        .bind(id.to_hex())
        .fetch_optional(self.writer())
        .await?;
        owed.map(|o| uint("refund", o).map(Msat::from_msat))
            .transpose()
    }

    async fn set_refund(
        &self,
        id: &PaymentHash,
        status: RefundStatus,
        error: Option<&str>,
    ) -> Result<(), StorageError> {
        sqlx::query(
            "UPDATE mpp_sessions SET refund_status = $1, refund_error = $2 WHERE session_id = $3",
        )
        .bind(status.as_str())
        .bind(error)
        .bind(id.to_hex())
        .execute(self.writer())
        .await?;
        Ok(())
    }

    async fn pending_refunds(&self) -> Result<Vec<SellerSession>, StorageError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SESSION_COLUMNS} FROM mpp_sessions WHERE refund_status = 'pending' ORDER BY closed_at"
        )))
        .fetch_all(self.reader())
        .await?;
        rows.iter().map(session_from_row).collect()
    }

    async fn idle_sessions(&self, now: u64) -> Result<Vec<PaymentHash>, StorageError> {
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT session_id FROM mpp_sessions WHERE status = 'open' AND last_used_at + idle_secs <= $1",
        )
        .bind(int(now)?)
        .fetch_all(self.reader())
        .await?;
        ids.iter()
            .map(|i| bytes32("session id", i).map(PaymentHash))
            .collect()
    }
}
