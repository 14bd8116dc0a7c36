//! The spend ledger: payments both ways, budget reservations and their windows, budget policies.
//!
//! An outgoing payment is reserved by inserting it as `pending` inside one write transaction
//! that first sums what every window already holds (`Engine::begin_money` serialises the
//! writers of one wallet, on SQLite and across PostgreSQL instances alike), so concurrent
//! payers can never exceed a cap together. The pending row is written before the wallet is
//! asked to pay; it stays counted until it is resolved to `succeeded` or `failed`, and at most
//! one live (pending or succeeded) row exists per invoice: never pay twice.

mod retention;
mod sql;

pub(crate) use sql::{incoming, incoming_settled, paid_now};

use async_trait::async_trait;
use serde::Serialize;

use super::StorageError;
use super::tokens::CredentialScope;
use crate::bolt11::DecodedInvoice;
use crate::budget::{BudgetPolicy, BudgetRefusal, WindowUse};
use crate::l402::{Msat, PaymentHash, Preimage};
use crate::payee::Payee;

pub use retention::{DEFAULT_KEEP_DAYS, MIN_KEEP_DAYS, PRUNE_BATCH, Pruned, Resume, Retention};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Out,
    In,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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

    fn parse(s: &str) -> Result<Direction, StorageError> {
        match s {
            "out" => Ok(Direction::Out),
            "in" => Ok(Direction::In),
            other => Err(StorageError::Corrupt(format!("direction {other:?}"))),
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

    fn parse(s: &str) -> Result<Status, StorageError> {
        match s {
            "pending" => Ok(Status::Pending),
            "succeeded" => Ok(Status::Succeeded),
            "failed" => Ok(Status::Failed),
            other => Err(StorageError::Corrupt(format!("status {other:?}"))),
        }
    }
}

/// One payment, either way. Serialization leaves the preimage out; `Debug` shows it redacted.
#[derive(Debug, Clone, Serialize)]
pub struct Payment {
    pub id: i64,
    pub wallet: String,
    pub direction: Direction,
    pub status: Status,
    pub payment_hash: PaymentHash,
    pub bolt11: String,
    #[serde(rename = "amount_msat")]
    pub amount: Msat,
    #[serde(rename = "max_fee_msat")]
    pub max_fee: Msat,
    #[serde(rename = "fee_msat")]
    pub fee: Msat,
    /// What a pending payment holds in the budget windows (amount + max fee).
    #[serde(rename = "reserved_msat")]
    pub reserved: Msat,
    /// Proof of payment; with its macaroon a bearer secret, so never serialized.
    #[serde(skip)]
    pub preimage: Option<Preimage>,
    pub description: Option<String>,
    pub url: Option<String>,
    pub host: Option<String>,
    pub error: Option<String>,
    pub created_at: u64,
    pub updated_at: u64,
    pub settled_at: Option<u64>,
}

/// An outgoing payment about to be made.
#[derive(Debug, Clone)]
pub struct NewPayment<'a> {
    pub wallet: &'a str,
    pub invoice: &'a DecodedInvoice,
    pub amount: Msat,
    pub max_fee: Msat,
    pub url: Option<&'a str>,
    /// Who is paid (the host lists and the per-host cap), when known.
    pub payee: Option<&'a Payee>,
    /// The L402 credential this payment buys, kept with the reservation: if the process dies
    /// after paying, the credential is cached again when the payment is reconciled.
    pub credential: Option<&'a CredentialScope>,
}

/// The result of asking to reserve budget for a payment.
#[derive(Debug)]
pub enum Reservation {
    /// Budget is held by the new pending payment `id`: go ahead and pay.
    Reserved { id: i64 },
    /// This invoice was already paid from this wallet: do not pay again.
    AlreadyPaid(Box<Payment>),
    /// A payment of this invoice is under way or its outcome is unknown: do not pay again.
    InFlight(Box<Payment>),
}

#[derive(Debug, thiserror::Error)]
pub enum ReserveError {
    #[error(transparent)]
    Refused(#[from] BudgetRefusal),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl From<sqlx::Error> for ReserveError {
    fn from(e: sqlx::Error) -> Self {
        ReserveError::Storage(StorageError::Db(e))
    }
}

impl From<rusqlite::Error> for ReserveError {
    fn from(e: rusqlite::Error) -> Self {
        ReserveError::Storage(StorageError::Sqlite(e))
    }
}

/// What a payment's success records.
#[derive(Debug, Clone, Copy)]
pub struct Settlement<'a> {
    /// `None` when the wallet did not reveal it (or it did not match: see the pay path).
    pub preimage: Option<&'a Preimage>,
    pub fee: Msat,
    /// Something to say about it (a missing or mismatched preimage).
    pub note: Option<&'a str>,
}

/// A payment's success, written in the same commit as the embedded transfer that makes it
/// (see [`crate::storage::EmbeddedBooks::settle_recorded`]).
#[derive(Debug, Clone, Copy)]
pub struct PaidRecord<'a> {
    /// The pending outgoing payment (its ledger id), of `wallet`.
    pub payment_id: i64,
    pub wallet: &'a str,
    /// The credential the payment buys: cached for `wallet` in the same commit.
    pub credential: Option<&'a CredentialScope>,
}

/// Which payments to list.
#[derive(Debug, Clone, Default)]
pub struct PaymentFilter {
    pub direction: Option<Direction>,
    pub status: Option<Status>,
    /// Payments to this host only (as written in the ledger).
    pub host: Option<String>,
}

/// All-time sums of one wallet's ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Totals {
    #[serde(rename = "spent_msat")]
    pub spent: Msat,
    #[serde(rename = "received_msat")]
    pub received: Msat,
    #[serde(rename = "reserved_msat")]
    pub reserved: Msat,
}

/// Payments, reservations, windows and budget policies of any number of wallets.
#[async_trait]
pub trait SpendLedger: Send + Sync + std::fmt::Debug {
    /// The budget policy of `wallet` (the default policy until one is set).
    async fn budget(&self, wallet: &str) -> Result<BudgetPolicy, StorageError>;
    async fn set_budget(
        &self,
        wallet: &str,
        policy: &BudgetPolicy,
        now: u64,
    ) -> Result<(), StorageError>;
    /// `wallet`'s policy and what each window holds now, in one snapshot; the per-host window
    /// counts every payment sharing a key with `payee`.
    async fn budget_and_use(
        &self,
        wallet: &str,
        payee: Option<&Payee>,
        now: u64,
    ) -> Result<(BudgetPolicy, WindowUse), StorageError>;
    /// A setting's JSON, or `None` when unset.
    async fn setting(&self, key: &str) -> Result<Option<String>, StorageError>;
    async fn set_setting(&self, key: &str, json: &str, now: u64) -> Result<(), StorageError>;

    /// Check the budget and reserve it for an outgoing payment, atomically.
    async fn reserve(
        &self,
        new: &NewPayment<'_>,
        policy: &BudgetPolicy,
        now: u64,
    ) -> Result<Reservation, ReserveError>;
    /// The payment succeeded: its reservation becomes spend. A row marked failed by mistake
    /// (money moved after all) counts too, once per invoice.
    async fn mark_succeeded(
        &self,
        id: i64,
        settlement: &Settlement<'_>,
        now: u64,
    ) -> Result<(), StorageError>;
    /// The payment definitely did not happen: release its reservation.
    async fn mark_failed(&self, id: i64, reason: &str, now: u64) -> Result<(), StorageError>;

    /// An invoice we issued, waiting to be paid.
    async fn record_incoming(
        &self,
        wallet: &str,
        invoice: &DecodedInvoice,
        now: u64,
    ) -> Result<i64, StorageError>;
    /// An invoice we issued was paid; whether a pending row changed.
    async fn mark_incoming_settled(
        &self,
        wallet: &str,
        payment_hash: &PaymentHash,
        amount: Option<Msat>,
        now: u64,
    ) -> Result<bool, StorageError>;
    /// An invoice we issued expired unpaid.
    async fn mark_incoming_expired(&self, id: i64, now: u64) -> Result<(), StorageError>;

    async fn payment(&self, id: i64) -> Result<Option<Payment>, StorageError>;
    /// The live (not failed) payment of `payment_hash` in one direction, else the newest one.
    async fn payment_by_hash(
        &self,
        wallet: &str,
        direction: Direction,
        payment_hash: &PaymentHash,
    ) -> Result<Option<Payment>, StorageError>;
    /// Pending payments in one direction, oldest first.
    async fn pending(
        &self,
        wallet: &str,
        direction: Direction,
    ) -> Result<Vec<Payment>, StorageError>;
    /// The newest payments, newest first.
    async fn list_payments(
        &self,
        wallet: &str,
        filter: &PaymentFilter,
        limit: u32,
    ) -> Result<Vec<Payment>, StorageError>;
    /// Sums over all time: settled out (amount + fee), settled in, pending out (reserved);
    /// payments deleted by [`SpendLedger::prune_history`] still count.
    async fn totals(&self, wallet: &str) -> Result<Totals, StorageError>;
    /// Income settled since `since` (exact for any `since` within the history kept: at least
    /// the last [`MIN_KEEP_DAYS`] days).
    async fn earned_since(&self, wallet: &str, since: u64) -> Result<Msat, StorageError>;
    /// The wallets this storage keeps: every name with payments, a budget or an embedded
    /// account (on PostgreSQL, shared by every instance).
    async fn wallets(&self) -> Result<Vec<String>, StorageError>;
    /// Forget the window totals of `wallet` older than any window reads (two days before
    /// `now`); the payments themselves are kept.
    async fn prune_windows(&self, wallet: &str, now: u64) -> Result<(), StorageError>;
    /// Delete old history by `keep` (see [`Retention`]), in batches of at most
    /// [`PRUNE_BATCH`] rows per statement: `wallet`'s payments (their part of the lifetime
    /// totals carried forward), and expired rows of the tables every wallet shares. A call
    /// resumes the scan of old payments where the previous one said (`from`).
    async fn prune_history(
        &self,
        wallet: &str,
        keep: &Retention,
        now: u64,
        from: Option<Resume>,
    ) -> Result<Pruned, StorageError>;
}
