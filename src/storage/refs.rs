//! What a hosted wallet backend calls a payment of ours. Strike finds an outgoing payment only by
//! its own payment id, OpenNode an invoice only by its charge id: the backend keeps the id here,
//! by payment hash, before the call that creates the invoice or moves the money returns, so a
//! crash or a lost answer can still be looked up (and reconciled) later.

use async_trait::async_trait;

use super::engine::Engine;
use super::ledger::Direction;
use super::{StorageError, int};
use crate::l402::PaymentHash;

/// Which payment a reference is for: a backend's, of one l402-mcp wallet, one way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefKey<'a> {
    /// The backend kind, e.g. `strike`.
    pub backend: &'a str,
    /// The l402-mcp wallet name.
    pub wallet: &'a str,
    /// `Out` for a payment we made, `In` for an invoice we issued.
    pub direction: Direction,
    pub payment_hash: &'a PaymentHash,
}

/// Backends' ids for payments, by payment hash.
#[async_trait]
pub trait WalletRefs: Send + Sync + std::fmt::Debug {
    /// Keep `external_id` for `key`, replacing what was kept (a payment quote id is followed
    /// by the payment's id once the payment exists).
    async fn put_ref(
        &self,
        key: &RefKey<'_>,
        external_id: &str,
        now: u64,
    ) -> Result<(), StorageError>;
    /// What was kept for `key`, if anything.
    async fn get_ref(&self, key: &RefKey<'_>) -> Result<Option<String>, StorageError>;
}

#[async_trait]
impl WalletRefs for Engine {
    async fn put_ref(
        &self,
        key: &RefKey<'_>,
        external_id: &str,
        now: u64,
    ) -> Result<(), StorageError> {
        sqlx::query(
            "INSERT INTO wallet_refs (backend, wallet, direction, payment_hash, external_id, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $6)
             ON CONFLICT (backend, wallet, direction, payment_hash)
             DO UPDATE SET external_id = excluded.external_id, updated_at = excluded.updated_at",
        )
        .bind(key.backend)
        .bind(key.wallet)
        .bind(key.direction.as_str())
        .bind(key.payment_hash.to_hex())
        .bind(external_id)
        .bind(int(now)?)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    async fn get_ref(&self, key: &RefKey<'_>) -> Result<Option<String>, StorageError> {
        Ok(sqlx::query_scalar(
            "SELECT external_id FROM wallet_refs
              WHERE backend = $1 AND wallet = $2 AND direction = $3 AND payment_hash = $4",
        )
        .bind(key.backend)
        .bind(key.wallet)
        .bind(key.direction.as_str())
        .bind(key.payment_hash.to_hex())
        .fetch_optional(self.reader())
        .await?)
    }
}
