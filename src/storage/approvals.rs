//! Payments waiting for a human: the approvals the policy asked for ([`crate::approval`]).
//!
//! An approval is opened `pending` with the exact invoice it would pay and the SHA-256 of a
//! one-time secret; one question per resource is open at a time (asking again finds it). It is
//! decided once, by one conditional write that any number of instances may race: `approved`
//! (then `paid` or `failed` when the payment is made) or `denied`; past its expiry it is
//! `expired`. Nothing here holds budget: the payment re-checks it when it is made.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::engine::Engine;
use super::tokens::CredentialScope;
use super::{StorageError, bytes32, int, uint};
use crate::l402::{Msat, PaymentHash};
use crate::payee::Payee;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApprovalStatus {
    /// Waiting for a human.
    Pending,
    /// Approved; the payment is being made.
    Approved,
    /// Approved and paid (`payment_id` is the ledger's payment).
    Paid,
    /// Approved, but the payment did not go through (`error` says why).
    Failed,
    Denied,
    /// Nobody decided in time.
    Expired,
}

impl ApprovalStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalStatus::Pending => "pending",
            ApprovalStatus::Approved => "approved",
            ApprovalStatus::Paid => "paid",
            ApprovalStatus::Failed => "failed",
            ApprovalStatus::Denied => "denied",
            ApprovalStatus::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Result<ApprovalStatus, StorageError> {
        Ok(match s {
            "pending" => ApprovalStatus::Pending,
            "approved" => ApprovalStatus::Approved,
            "paid" => ApprovalStatus::Paid,
            "failed" => ApprovalStatus::Failed,
            "denied" => ApprovalStatus::Denied,
            "expired" => ApprovalStatus::Expired,
            other => return Err(StorageError::Corrupt(format!("approval status {other:?}"))),
        })
    }
}

/// What the pay path needs, besides the invoice, to make an approved payment exactly as it
/// would have been made without asking.
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct ApprovalRequest {
    /// The caller's routing-fee limit.
    pub max_fee_msat: Option<u64>,
    /// The caller's cap on the amount (already checked; checked again when paying).
    pub max_amount_msat: Option<u64>,
    /// The payment hash the credential is for (hex).
    pub expect_payment_hash: Option<String>,
    /// Who is paid: the host and every key it is known by ([`Payee`]).
    pub payee: Option<(String, Vec<String>)>,
    /// The L402 credential the payment buys (cached when it is paid).
    pub credential: Option<CredentialScope>,
}

impl std::fmt::Debug for ApprovalRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApprovalRequest")
            .field("max_fee_msat", &self.max_fee_msat)
            .field("payee", &self.payee)
            .field("credential", &self.credential)
            .finish_non_exhaustive()
    }
}

impl ApprovalRequest {
    pub fn payee(&self) -> Option<Payee> {
        self.payee
            .as_ref()
            .map(|(host, keys)| Payee::from_parts(host, keys))
    }
}

/// One question to a human. Serialization leaves out how it would be paid (the credential's
/// macaroon); the secret is never stored, only its hash, and never read back.
#[derive(Debug, Clone, Serialize)]
pub struct Approval {
    pub id: String,
    pub wallet: String,
    pub status: ApprovalStatus,
    /// What it buys: a resource (origin + path), or `invoice:<payment hash>`.
    pub subject: String,
    pub payment_hash: PaymentHash,
    pub bolt11: String,
    #[serde(rename = "amount_msat")]
    pub amount: Msat,
    pub host: Option<String>,
    pub url: Option<String>,
    pub description: Option<String>,
    /// Why a human is asked: `above_sats`, `new_host`.
    pub reasons: Vec<String>,
    #[serde(skip)]
    pub request: ApprovalRequest,
    pub created_at: u64,
    pub expires_at: u64,
    pub decided_at: Option<u64>,
    /// Who decided: `cli`, `page`, `dashboard`, `elicitation`, `app`.
    pub decided_by: Option<String>,
    /// The ledger's payment, once paid.
    pub payment_id: Option<i64>,
    pub error: Option<String>,
}

/// An approval to open.
#[derive(Debug, Clone)]
pub struct NewApproval<'a> {
    pub id: &'a str,
    pub wallet: &'a str,
    pub subject: &'a str,
    pub payment_hash: PaymentHash,
    pub bolt11: &'a str,
    pub amount: Msat,
    pub host: Option<&'a str>,
    pub url: Option<&'a str>,
    pub description: Option<&'a str>,
    pub reasons: &'a [&'a str],
    pub request: &'a ApprovalRequest,
    /// SHA-256 (hex) of the one-time secret.
    pub secret_hash: &'a str,
    pub expires_at: u64,
}

/// What opening an approval found.
#[derive(Debug)]
pub enum Opened {
    /// A new question.
    Created(Approval),
    /// The open question for the same resource; its secret is now the new one.
    Existing(Approval),
}

/// A human's decision.
#[derive(Debug, Clone, Copy)]
pub struct Decision<'a> {
    pub approve: bool,
    /// The channel: `cli`, `page`, `dashboard`, `elicitation`, `app`.
    pub by: &'a str,
    /// The SHA-256 (hex) of the one-time secret, when the channel must show it.
    pub secret_hash: Option<&'a str>,
}

/// What deciding found.
#[derive(Debug)]
pub enum Decided {
    /// This decision was taken; the approval as it now is.
    Taken(Approval),
    /// It had been decided already (or it was paid): nothing changed.
    NotPending(Approval),
    /// It expired before anyone decided.
    Expired(Approval),
    /// The secret shown is not this approval's.
    WrongSecret,
    Unknown,
}

const COLUMNS: &str = "id, wallet, status, subject, payment_hash, bolt11, amount_msat, host, url, \
     description, reasons, request, created_at, expires_at, decided_at, decided_by, payment_id, error";

fn from_row(row: &AnyRow) -> Result<Approval, StorageError> {
    let time = |col: &str| -> Result<u64, StorageError> { uint(col, row.try_get(col)?) };
    let opt_time = |col: &str| -> Result<Option<u64>, StorageError> {
        row.try_get::<Option<i64>, _>(col)?
            .map(|v| uint(col, v))
            .transpose()
    };
    let reasons: String = row.try_get("reasons")?;
    let request: String = row.try_get("request")?;
    Ok(Approval {
        id: row.try_get("id")?,
        wallet: row.try_get("wallet")?,
        status: ApprovalStatus::parse(row.try_get("status")?)?,
        subject: row.try_get("subject")?,
        payment_hash: PaymentHash(bytes32("payment hash", row.try_get("payment_hash")?)?),
        bolt11: row.try_get("bolt11")?,
        amount: Msat::from_msat(uint("amount_msat", row.try_get("amount_msat")?)?),
        host: row.try_get("host")?,
        url: row.try_get("url")?,
        description: row.try_get("description")?,
        reasons: reasons
            .split(',')
            .filter(|r| !r.is_empty())
            .map(str::to_owned)
            .collect(),
        request: serde_json::from_str(&request)
            .map_err(|e| StorageError::Corrupt(format!("approval request: {e}")))?,
        created_at: time("created_at")?,
        expires_at: time("expires_at")?,
        decided_at: opt_time("decided_at")?,
        decided_by: row.try_get("decided_by")?,
        payment_id: row.try_get("payment_id")?,
        error: row.try_get("error")?,
    })
}

/// Approvals: opened by the pay path, decided by people, settled by the payment.
#[async_trait]
pub trait ApprovalStore: Send + Sync + std::fmt::Debug {
    /// Open a question, or find the open one for the same wallet and subject (then its secret
    /// becomes `new.secret_hash`, so the newest card shown is the one that works). A pending
    /// one past its expiry is expired first.
    async fn open_approval(&self, new: &NewApproval<'_>, now: u64) -> Result<Opened, StorageError>;
    async fn approval(&self, wallet: &str, id: &str) -> Result<Option<Approval>, StorageError>;
    /// The newest approvals of `wallet` (of one status when given), newest first.
    async fn approvals(
        &self,
        wallet: &str,
        status: Option<ApprovalStatus>,
        limit: u32,
    ) -> Result<Vec<Approval>, StorageError>;
    /// Mark `wallet`'s pending approvals past their expiry as expired; how many.
    async fn expire_approvals(&self, wallet: &str, now: u64) -> Result<u64, StorageError>;
    /// Decide a pending approval, once: of any number of deciders at once, one wins.
    async fn decide_approval(
        &self,
        wallet: &str,
        id: &str,
        decision: Decision<'_>,
        now: u64,
    ) -> Result<Decided, StorageError>;
    /// An approved payment was made (`Ok(ledger payment id)`) or not (`Err(why)`).
    async fn settle_approval(
        &self,
        id: &str,
        outcome: Result<i64, &str>,
        now: u64,
    ) -> Result<(), StorageError>;
    /// Whether `wallet` has paid (or is paying) `payee`, under any of its names, before.
    async fn paid_before(&self, wallet: &str, payee: &Payee) -> Result<bool, StorageError>;
}

impl Engine {
    async fn approval_where(
        &self,
        conn: &mut sqlx::AnyConnection,
        wallet: &str,
        id: &str,
    ) -> Result<Option<Approval>, StorageError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM approvals WHERE wallet = $1 AND id = $2"
        )))
        .bind(wallet)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
        row.as_ref().map(from_row).transpose()
    }
}

#[async_trait]
impl ApprovalStore for Engine {
    async fn open_approval(&self, new: &NewApproval<'_>, now: u64) -> Result<Opened, StorageError> {
        let now_db = int(now)?;
        let mut tx = self.begin_money(new.wallet).await?;
        sqlx::query(
            "UPDATE approvals SET status = 'expired' WHERE wallet = $1 AND subject = $2
               AND status = 'pending' AND expires_at <= $3",
        )
        .bind(new.wallet)
        .bind(new.subject)
        .bind(now_db)
        .execute(&mut *tx)
        .await?;
        let open: Option<String> = sqlx::query_scalar(
            "SELECT id FROM approvals WHERE wallet = $1 AND subject = $2 AND status = 'pending'",
        )
        .bind(new.wallet)
        .bind(new.subject)
        .fetch_optional(&mut *tx)
        .await?;
        let opened = match open {
            Some(id) => {
                sqlx::query("UPDATE approvals SET secret_hash = $1 WHERE id = $2")
                    .bind(new.secret_hash)
                    .bind(&id)
                    .execute(&mut *tx)
                    .await?;
                let a = self.approval_where(&mut tx, new.wallet, &id).await?;
                Opened::Existing(
                    a.ok_or_else(|| StorageError::Corrupt("approval vanished".into()))?,
                )
            }
            None => {
                let request = serde_json::to_string(new.request)
                    .map_err(|e| StorageError::Corrupt(format!("approval request: {e}")))?;
                sqlx::query(
                    "INSERT INTO approvals (id, wallet, status, subject, payment_hash, bolt11,
                         amount_msat, host, url, description, reasons, request, secret_hash,
                         created_at, expires_at)
                     VALUES ($1, $2, 'pending', $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
                )
                .bind(new.id)
                .bind(new.wallet)
                .bind(new.subject)
                .bind(new.payment_hash.to_hex())
                .bind(new.bolt11)
                .bind(int(new.amount.msat())?)
                .bind(new.host)
                .bind(new.url)
                .bind(new.description)
                .bind(new.reasons.join(","))
                .bind(request)
                .bind(new.secret_hash)
                .bind(now_db)
                .bind(int(new.expires_at)?)
                .execute(&mut *tx)
                .await?;
                let a = self.approval_where(&mut tx, new.wallet, new.id).await?;
                Opened::Created(a.ok_or_else(|| StorageError::Corrupt("approval vanished".into()))?)
            }
        };
        tx.commit().await?;
        Ok(opened)
    }

    async fn approval(&self, wallet: &str, id: &str) -> Result<Option<Approval>, StorageError> {
        let mut conn = self.reader().acquire().await?;
        self.approval_where(&mut conn, wallet, id).await
    }

    async fn approvals(
        &self,
        wallet: &str,
        status: Option<ApprovalStatus>,
        limit: u32,
    ) -> Result<Vec<Approval>, StorageError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM approvals WHERE wallet = $1 AND ($2 IS NULL OR status = $2)
              ORDER BY created_at DESC, id LIMIT $3"
        )))
        .bind(wallet)
        .bind(status.map(ApprovalStatus::as_str))
        .bind(i64::from(limit))
        .fetch_all(self.reader())
        .await?;
        rows.iter().map(from_row).collect()
    }

    async fn expire_approvals(&self, wallet: &str, now: u64) -> Result<u64, StorageError> {
        let done = sqlx::query(
            "UPDATE approvals SET status = 'expired'
              WHERE wallet = $1 AND status = 'pending' AND expires_at <= $2",
        )
        .bind(wallet)
        .bind(int(now)?)
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected())
    }

    async fn decide_approval(
        &self,
        wallet: &str,
        id: &str,
        decision: Decision<'_>,
        now: u64,
    ) -> Result<Decided, StorageError> {
        let now_db = int(now)?;
        let status = if decision.approve {
            ApprovalStatus::Approved
        } else {
            ApprovalStatus::Denied
        };
        // One conditional write: of any number of deciders, on any number of instances, the
        // first to commit changes the row and every other finds it decided.
        let done = sqlx::query(
            "UPDATE approvals SET status = $1, decided_at = $2, decided_by = $3
              WHERE wallet = $4 AND id = $5 AND status = 'pending' AND expires_at > $2
                AND ($6 IS NULL OR secret_hash = $6)",
        )
        .bind(status.as_str())
        .bind(now_db)
        .bind(decision.by)
        .bind(wallet)
        .bind(id)
        .bind(decision.secret_hash)
        .execute(self.writer())
        .await?;
        let mut conn = self.writer().acquire().await?;
        let Some(a) = self.approval_where(&mut conn, wallet, id).await? else {
            return Ok(Decided::Unknown);
        };
        if done.rows_affected() > 0 {
            return Ok(Decided::Taken(a));
        }
        Ok(match a.status {
            ApprovalStatus::Pending if a.expires_at <= now => {
                sqlx::query(
                    "UPDATE approvals SET status = 'expired' WHERE id = $1 AND status = 'pending'",
                )
                .bind(id)
                .execute(&mut *conn)
                .await?;
                Decided::Expired(Approval {
                    status: ApprovalStatus::Expired,
                    ..a
                })
            }
            ApprovalStatus::Expired => Decided::Expired(a),
            ApprovalStatus::Pending => Decided::WrongSecret,
            _ => Decided::NotPending(a),
        })
    }

    async fn settle_approval(
        &self,
        id: &str,
        outcome: Result<i64, &str>,
        now: u64,
    ) -> Result<(), StorageError> {
        let (status, payment_id, error) = match outcome {
            Ok(pid) => ("paid", Some(pid), None),
            Err(why) => ("failed", None, Some(why)),
        };
        sqlx::query(
            "UPDATE approvals SET status = $1, payment_id = $2, error = $3, decided_at = COALESCE(decided_at, $4)
              WHERE id = $5 AND status = 'approved'",
        )
        .bind(status)
        .bind(payment_id)
        .bind(error)
        .bind(int(now)?)
        .bind(id)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    async fn paid_before(&self, wallet: &str, payee: &Payee) -> Result<bool, StorageError> {
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM (
                SELECT 1 AS one FROM payment_payees k JOIN payments p ON p.id = k.payment_id
                 WHERE k.wallet = $1 AND k.payee_key IN ({}) AND p.direction = 'out'
                   AND p.status != 'failed' LIMIT 1) AS found",
            self.dialect.json_strings(2)
        )))
        .bind(wallet)
        .bind(payee.keys_json())
        .fetch_one(self.reader())
        .await?;
        Ok(n > 0)
    }
}
