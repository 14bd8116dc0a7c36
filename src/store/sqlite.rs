//! The token store on the SQLite ledger: the default, for one machine.

use async_trait::async_trait;

use super::{MintedToken, NewMintedToken, SalesSummary, StoreError, TokenStore, summarize};
use crate::ledger::{Ledger, db_int, from_db};

#[async_trait]
impl TokenStore for Ledger {
    async fn store_minted(&self, token: &NewMintedToken<'_>, now: u64) -> Result<(), StoreError> {
        Ok(Ledger::store_minted(self, token, now).await?)
    }

    async fn root_key(&self, key_id: &[u8; 32]) -> Result<Option<[u8; 32]>, StoreError> {
        Ok(Ledger::root_key(self, key_id).await?)
    }

    async fn minted_token(&self, token_id: &[u8; 32]) -> Result<Option<MintedToken>, StoreError> {
        Ok(Ledger::minted_token(self, token_id).await?)
    }

    async fn use_token(
        &self,
        token_id: &[u8; 32],
        max_uses: u64,
    ) -> Result<Option<u64>, StoreError> {
        let uses: Option<i64> = sqlx::query_scalar(
            "INSERT INTO token_uses (token_id, uses) VALUES (?1, 1)
             ON CONFLICT (token_id) DO UPDATE SET uses = uses + 1 WHERE uses < ?2
             RETURNING uses",
        )
        .bind(hex::encode(token_id))
        .bind(db_int(max_uses)?)
        .fetch_optional(self.writer())
        .await?;
        // The first use of a token limited to 0 uses slips past the WHERE: refuse it here.
        let uses = uses.map(|u| from_db("token uses", u)).transpose()?;
        Ok(uses.filter(|u| *u <= max_uses))
    }

    async fn free_tier_hit(
        &self,
        client: &str,
        route: &str,
        day: u64,
        limit: u64,
    ) -> Result<bool, StoreError> {
        if limit == 0 {
            return Ok(false);
        }
        let count: Option<i64> = sqlx::query_scalar(
            "INSERT INTO free_tier (client, route, day, count) VALUES (?1, ?2, ?3, 1)
             ON CONFLICT (client, route, day) DO UPDATE SET count = count + 1 WHERE count < ?4
             RETURNING count",
        )
        .bind(client)
        .bind(route)
        .bind(db_int(day)?)
        .bind(db_int(limit)?)
        .fetch_optional(self.writer())
        .await?;
        Ok(count.is_some())
    }

    async fn record_sale(
        &self,
        payment_hash: &[u8; 32],
        token_id: &[u8; 32],
        service: &str,
        amount_msat: u64,
        now: u64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO sales (payment_hash, token_id, service, amount_msat, sold_at) VALUES (?, ?, ?, ?, ?)
             ON CONFLICT (payment_hash) DO NOTHING",
        )
        .bind(hex::encode(payment_hash))
        .bind(hex::encode(token_id))
        .bind(service)
        .bind(db_int(amount_msat)?)
        .bind(db_int(now)?)
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn sales_since(&self, since: u64) -> Result<SalesSummary, StoreError> {
        let rows: Vec<(String, i64, i64)> = sqlx::query_as(
            "SELECT service, COUNT(*), COALESCE(SUM(amount_msat), 0) FROM sales WHERE sold_at >= ? GROUP BY service ORDER BY service",
        )
        .bind(db_int(since)?)
        .fetch_all(self.pool())
        .await?;
        summarize(rows)
    }
}
