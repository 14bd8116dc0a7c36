//! What the seller and several gateway instances must share: root keys and terms of minted
//! tokens, token use counters (the replay guard of N-use tokens), free-tier counts and sales.
//!
//! The SQLite ledger holds them by default ([`sqlite`]); PostgreSQL ([`postgres`]) lets several
//! gateway instances on different machines honour the same tokens and counters.

pub mod postgres;
pub mod sqlite;

use async_trait::async_trait;
use serde::Serialize;

pub use crate::ledger::root_keys::{MintedToken, NewMintedToken};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("token store: {0}")]
    Db(#[from] sqlx::Error),
    #[error("token store migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("token store holds an invalid value: {0}")]
    Corrupt(String),
}

impl From<crate::ledger::LedgerError> for StoreError {
    fn from(e: crate::ledger::LedgerError) -> Self {
        match e {
            crate::ledger::LedgerError::Db(d) => StoreError::Db(d),
            crate::ledger::LedgerError::Migrate(m) => StoreError::Migrate(m),
            other => StoreError::Corrupt(other.to_string()),
        }
    }
}

/// Sales over a period, per service.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SalesSummary {
    pub count: u64,
    pub amount_msat: u64,
    pub by_service: Vec<ServiceSales>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceSales {
    pub service: String,
    pub count: u64,
    pub amount_msat: u64,
}

/// Storage for minted tokens and the counters around them. Every counter method is atomic:
/// any number of instances can call it at once and a limit is never exceeded.
#[async_trait]
pub trait TokenStore: Send + Sync + std::fmt::Debug {
    /// Keep a new token's root key (by `sha256(identifier)`) and terms.
    async fn store_minted(&self, token: &NewMintedToken<'_>, now: u64) -> Result<(), StoreError>;
    /// The root key named `key_id`, if minted here and not revoked.
    async fn root_key(&self, key_id: &[u8; 32]) -> Result<Option<[u8; 32]>, StoreError>;
    /// The terms a token was minted with.
    async fn minted_token(&self, token_id: &[u8; 32]) -> Result<Option<MintedToken>, StoreError>;
    /// Count one use of a token limited to `max_uses`; `Some(uses so far)` when allowed, `None`
    /// when the token is used up.
    async fn use_token(
        &self,
        token_id: &[u8; 32],
        max_uses: u64,
    ) -> Result<Option<u64>, StoreError>;
    /// Count one free request of `client` on `route` on `day`; `true` while within `limit`.
    async fn free_tier_hit(
        &self,
        client: &str,
        route: &str,
        day: u64,
        limit: u64,
    ) -> Result<bool, StoreError>;
    /// Record a sale once per payment; `true` the first time.
    async fn record_sale(
        &self,
        payment_hash: &[u8; 32],
        token_id: &[u8; 32],
        service: &str,
        amount_msat: u64,
        now: u64,
    ) -> Result<bool, StoreError>;
    /// Sales since `since` (unix seconds).
    async fn sales_since(&self, since: u64) -> Result<SalesSummary, StoreError>;
}

/// Fold (service, count, amount) rows into a summary.
pub(crate) fn summarize(rows: Vec<(String, i64, i64)>) -> Result<SalesSummary, StoreError> {
    let by_service = rows
        .into_iter()
        .map(|(service, count, amount)| {
            Ok(ServiceSales {
                count: crate::ledger::from_db(&format!("sales count of {service}"), count)?,
                amount_msat: crate::ledger::from_db(&format!("sales of {service}"), amount)?,
                service,
            })
        })
        .collect::<Result<Vec<ServiceSales>, crate::ledger::LedgerError>>()?;
    Ok(SalesSummary {
        count: by_service.iter().map(|s| s.count).sum(),
        amount_msat: by_service.iter().map(|s| s.amount_msat).sum(),
        by_service,
    })
}
