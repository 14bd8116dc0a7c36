//! Everything stored, behind small traits that speak domain types, with two engines.
//!
//! | trait | what it keeps | used by |
//! |---|---|---|
//! | [`SpendLedger`] | payments both ways, budget reservations and windows, budget policies | the pay path, the seller's income, reports |
//! | [`TokenCache`] | the buyer's credentials, and the sellers it no longer trusts | `fetch_paid` |
//! | [`SellerStore`] | root keys and terms of minted tokens, use counters, free-tier counts, sales | the seller and the gateway |
//! | [`EmbeddedBooks`] | the embedded wallet's accounts, keys and invoices | the embedded wallet |
//! | [`MppStore`] | `Payment` challenge secrets, spent charges, sessions and their refunds | the seller (`crate::mpp`) |
//! | [`BuyerSessions`] | the buyer's `Payment` sessions | `fetch_paid` |
//! | [`WalletRefs`] | hosted backends' ids for our payments, by payment hash | Strike, OpenNode |
//! | [`ApprovalStore`] | payments waiting for a human, and their decisions | the pay path, approval channels |
//!
//! One `Engine` implements them all, on SQLite (the default: one file per data dir) or on
//! PostgreSQL (`database_url`: every instance on it shares budgets, tokens and wallets). The
//! SQL is written once for both; `tests/storage_conformance.rs` runs one suite against each
//! (and against SQLite a second time with every read through sqlx's pool: see `inline`).
//! [`Storage`] hands the traits out.

mod approvals;
mod books;
mod engine;
mod group;
mod inline;
mod ledger;
mod mpp;
mod mpp_buyer;
mod pg_group;
mod refs;
mod seller;
mod sync_sql;
mod tokens;
mod verify_cache;

pub use approvals::{
    Approval, ApprovalRequest, ApprovalStatus, ApprovalStore, Decided, Decision, NewApproval,
    Opened,
};
pub use books::{
    EmbeddedAccount, EmbeddedBooks, EmbeddedInvoice, IssuedInvoice, SettleError, Settled,
};
pub(crate) use engine::Engine;
pub use engine::LEDGER_FILE;
#[doc(hidden)]
pub use engine::advisory_key;
pub use ledger::{
    DEFAULT_KEEP_DAYS, Direction, MIN_KEEP_DAYS, NewPayment, PRUNE_BATCH, PaidRecord, Payment,
    PaymentFilter, Pruned, Reservation, ReserveError, Resume, Retention, Settlement, SpendLedger,
    Status, Totals,
};
pub use mpp::{Credit, MppStore, NewSession, RefundStatus, SellerSession};
pub use mpp_buyer::{BuyerSession, BuyerSessionStatus, BuyerSessions};
pub use refs::{RefKey, WalletRefs};
pub use seller::{
    Income, MintedToken, NewChallenge, NewMintedToken, SalesSummary, SellerStore, ServiceSales,
};
pub use tokens::{CachedToken, CredentialScope, Distrust, TokenCache};

use std::path::Path;
use std::sync::Arc;

use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("storage error: {0}")]
    Db(#[from] sqlx::Error),
    /// From the SQLite ledger's committer, which runs its statements without sqlx.
    #[error("storage error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("storage migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("cannot prepare {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Unavailable(String),
    #[error("{0} is too large to be stored")]
    TooLarge(u64),
    /// A stored value that cannot be: the data was damaged or edited by hand. Reported, never
    /// read as something else (a negative amount as 0, say) and acted on.
    #[error(
        "stored data is invalid ({0}); the database was damaged or edited: restore it from a backup"
    )]
    Corrupt(String),
}

/// What the storage is, for `doctor` and logs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EngineInfo {
    /// `sqlite` or `postgresql`.
    pub engine: &'static str,
    pub version: String,
    /// The file, or the server with its password replaced.
    pub location: String,
}

/// The storage of one data dir or one shared database; cheap to clone.
#[derive(Clone)]
pub struct Storage {
    engine: Arc<Engine>,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.engine.fmt(f)
    }
}

impl Storage {
    /// The SQLite ledger of `data_dir` (created when missing).
    pub async fn open_sqlite(data_dir: &Path) -> Result<Storage, StorageError> {
        Ok(Storage::from_engine(Engine::open_sqlite(data_dir).await?))
    }

    /// The SQLite ledger of `data_dir` with every read through sqlx's pool, as when no
    /// inline connection is free ([`inline`]): for tests of that path.
    #[doc(hidden)]
    pub async fn open_sqlite_pool_reads(data_dir: &Path) -> Result<Storage, StorageError> {
        let engine = Engine::open_sqlite(data_dir).await?;
        Ok(Storage::from_engine(engine.without_inline_reads()))
    }

    /// PostgreSQL at `url`, shared with every instance pointed at it.
    pub async fn connect_postgres(url: &str) -> Result<Storage, StorageError> {
        Ok(Storage::from_engine(Engine::connect_postgres(url).await?))
    }

    /// PostgreSQL when `database_url` is given, else the SQLite ledger of `data_dir`.
    pub async fn open(
        data_dir: &Path,
        database_url: Option<&str>,
    ) -> Result<Storage, StorageError> {
        match database_url {
            Some(url) => Self::connect_postgres(url).await,
            None => Self::open_sqlite(data_dir).await,
        }
    }

    fn from_engine(engine: Engine) -> Storage {
        Storage {
            engine: Arc::new(engine),
        }
    }

    pub fn info(&self) -> EngineInfo {
        EngineInfo {
            engine: self.engine.dialect.name(),
            version: self.engine.version.clone(),
            location: self.engine.target.clone(),
        }
    }

    /// Whether tokens verified lately are checked from memory now (see `verify_cache.rs`):
    /// always on SQLite; on PostgreSQL while the listener for revocations is connected.
    pub fn verify_cache_live(&self) -> bool {
        self.engine.verify_cache.is_live()
    }

    pub fn ledger(&self) -> Arc<dyn SpendLedger> {
        self.engine.clone()
    }

    pub fn tokens(&self) -> Arc<dyn TokenCache> {
        self.engine.clone()
    }

    pub fn seller(&self) -> Arc<dyn SellerStore> {
        self.engine.clone()
    }

    pub fn books(&self) -> Arc<dyn EmbeddedBooks> {
        self.engine.clone()
    }

    pub fn mpp(&self) -> Arc<dyn MppStore> {
        self.engine.clone()
    }

    pub fn buyer_sessions(&self) -> Arc<dyn BuyerSessions> {
        self.engine.clone()
    }

    pub fn refs(&self) -> Arc<dyn WalletRefs> {
        self.engine.clone()
    }

    pub fn approvals(&self) -> Arc<dyn ApprovalStore> {
        self.engine.clone()
    }
}

/// Money, counts and times go into the database as BIGINT.
pub(crate) fn int(v: u64) -> Result<i64, StorageError> {
    i64::try_from(v).map_err(|_| StorageError::TooLarge(v))
}

/// Back from the database: amounts, counts and times are never negative.
pub(crate) fn uint(what: &str, v: i64) -> Result<u64, StorageError> {
    u64::try_from(v).map_err(|_| StorageError::Corrupt(format!("{what} is {v}")))
}

/// 32 bytes stored as hex text. A value that is not is never quoted in the error: many of
/// these are secrets (wallet keys, unpaid invoices' preimages, challenge secrets), and a
/// damaged one is still most of the secret.
pub(crate) fn bytes32(what: &str, hex: &str) -> Result<[u8; 32], StorageError> {
    crate::l402::parse_hex32(hex).ok_or_else(|| {
        StorageError::Corrupt(format!(
            "{what} is not 64 hex digits ({} characters stored)",
            hex.chars().count()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_damaged_secret_is_not_quoted_in_the_error() {
        let damaged = "ab".repeat(31) + "zz";
        let e = bytes32("embedded wallet key", &damaged)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            e.contains("embedded wallet key") && e.contains("64 characters"),
            "{e}"
        );
        assert!(!e.contains("abab"), "{e}");
        assert_eq!(bytes32("x", &"0a".repeat(32)).ok(), Some([0x0a; 32]));
    }
}
