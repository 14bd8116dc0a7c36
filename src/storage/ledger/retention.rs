//! History kept by policy: rows nobody needs any more are deleted in small batches, so the
//! storage (and whatever still reads across it) does not grow with the years.
//!
//! Each call deletes at most [`PRUNE_BATCH`] rows per statement, each statement its own short
//! transaction (no `BEGIN IMMEDIATE` held between round trips), found through an index, so its
//! cost does not grow with the history. What is deleted, and what never is:
//!
//! | rows | deleted when |
//! |---|---|
//! | payments (and their `payment_payees`) | older than the policy's period (at least [`MIN_KEEP_DAYS`] days, so never inside a budget window), not changed within it, not pending, and, for one we paid, its invoice expired a day ago: a paid invoice presented again is refused by its live row until it could not be paid anyway |
//! | the buyer's cached credentials (`token_cache`) | expired a day ago |
//! | distrusted payees | their distrust ended a day ago |
//! | the embedded wallet's unpaid invoices | expired a day ago, their ledger row no longer pending |
//! | free-tier counts | of days before yesterday (UTC) |
//! | spent `Payment` charges | their challenge expired a day ago (an expired challenge is refused first) |
//! | minted tokens, their root keys and use counters | expired longer ago than the period (and a day); a token without an expiry is kept |
//!
//! Totals stay exact: what a deleted payment added to its wallet's lifetime totals is carried
//! forward into `payments_carried` by a trigger of the deleting statement itself
//! (migrations/sqlite/0011), and [`super::SpendLedger::totals`] adds it back. Sales records,
//! `Payment` sessions and approvals are kept.

use std::str::FromStr;

use serde::Serialize;
use sqlx::Row;

use crate::budget::DAY_SECS;
use crate::storage::StorageError;
use crate::storage::engine::{Dialect, Engine};
use crate::storage::int;

/// The shortest period payments are kept: the budget windows read the last 24 hours.
pub const MIN_KEEP_DAYS: u64 = 2;
/// The period payments are kept unless configured otherwise: a year to look back on.
pub const DEFAULT_KEEP_DAYS: u64 = 365;
/// Rows deleted by one statement at most.
pub const PRUNE_BATCH: i64 = 500;
/// Batches of old payments one call deletes at most (while each is full).
const PAYMENT_BATCHES: usize = 4;
/// Slack for clocks that disagree: nothing is deleted until a day after it stopped mattering.
const MARGIN_SECS: u64 = DAY_SECS;

/// How long history is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Retention {
    /// `None`: payments and minted tokens are kept forever (expired credentials, invoices and
    /// counters are still deleted).
    pub keep_secs: Option<u64>,
}

impl Default for Retention {
    fn default() -> Self {
        Retention::days(DEFAULT_KEEP_DAYS)
    }
}

impl Retention {
    /// Keep `days` days of history (never fewer than [`MIN_KEEP_DAYS`]).
    pub fn days(days: u64) -> Retention {
        Retention {
            keep_secs: Some(days.max(MIN_KEEP_DAYS).saturating_mul(DAY_SECS)),
        }
    }

    /// Keep every payment and minted token.
    pub fn forever() -> Retention {
        Retention { keep_secs: None }
    }
}

/// Where the next scan of old outgoing payments starts: past rows kept for now (a paid
/// invoice not yet expired), so they cannot stall the pruning behind them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resume {
    created_at: i64,
    id: i64,
}

/// What one call deleted, and where the next one resumes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Pruned {
    pub payments: u64,
    pub credentials: u64,
    pub distrust: u64,
    pub invoices: u64,
    pub free_tier: u64,
    pub charges: u64,
    pub minted_tokens: u64,
    /// Rows were left for a later call (a batch was full).
    pub more: bool,
    #[serde(skip)]
    pub resume: Option<Resume>,
}

impl Pruned {
    /// Rows deleted, all tables.
    pub fn total(&self) -> u64 {
        self.payments
            + self.credentials
            + self.distrust
            + self.invoices
            + self.free_tier
            + self.charges
            + self.minted_tokens
    }
}

/// When a stored invoice stops being payable, read without checking its signature (it was
/// checked before it was paid); `None` when it does not parse, and so could not be paid again.
fn invoice_expiry(bolt11: &str) -> Option<u64> {
    let signed = lightning_invoice::SignedRawBolt11Invoice::from_str(bolt11).ok()?;
    let raw = signed.raw_invoice();
    let expiry = raw
        .expiry_time()
        .map_or(crate::bolt11::DEFAULT_EXPIRY_SECS, |e| e.as_seconds());
    Some(
        raw.data
            .timestamp
            .as_unix_timestamp()
            .saturating_add(expiry),
    )
}

impl Engine {
    /// One round of pruning for `wallet` (and the tables every wallet shares): see the module.
    pub(crate) async fn prune_old(
        &self,
        wallet: &str,
        keep: &Retention,
        now: u64,
        from: Option<Resume>,
    ) -> Result<Pruned, StorageError> {
        let mut pruned = Pruned::default();
        let expired = int(now.saturating_sub(MARGIN_SECS))?;
        if let Some(keep) = keep.keep_secs {
            let cutoff = int(now.saturating_sub(keep.max(MIN_KEEP_DAYS * DAY_SECS)))?;
            let mut resume = from;
            for _ in 0..PAYMENT_BATCHES {
                let (deleted, next, full) =
                    self.prune_outgoing(wallet, cutoff, expired, resume).await?;
                pruned.payments += deleted;
                resume = next;
                pruned.more = full;
                if !full {
                    break;
                }
            }
            pruned.resume = resume;
            let incoming = self.prune_incoming(wallet, cutoff).await?;
            pruned.payments += incoming;
            pruned.more |= incoming >= PRUNE_BATCH.unsigned_abs();
            // A token's expiry is after its minting: expired before the cutoff, minted before it.
            pruned.minted_tokens = self.prune_minted(wallet, cutoff.min(expired)).await?;
        }
        let batch = |sql: &'static str, cutoff: i64| async move {
            Ok::<u64, StorageError>(
                sqlx::query(sql)
                    .bind(cutoff)
                    .bind(PRUNE_BATCH)
                    .execute(self.writer())
                    .await?
                    .rows_affected(),
            )
        };
        // On PostgreSQL a batch of the committer holds the credentials it caches until it
        // commits (an embedded payment's, `SETTLE_RECORDED_AT_ONCE`), several of them in its
        // own order: rows another transaction holds are left for a later round rather than
        // waited for, which could deadlock with such a batch.
        macro_rules! expired_credentials {
            ($lock:literal) => {
                concat!(
                    "DELETE FROM token_cache WHERE (wallet, origin, path_prefix) IN (
                        SELECT wallet, origin, path_prefix FROM token_cache
                         WHERE expires_at IS NOT NULL AND expires_at < $1 LIMIT $2",
                    $lock,
                    ")"
                )
            };
        }
        let credentials = match self.dialect {
            Dialect::Sqlite => expired_credentials!(""),
            Dialect::Postgres => expired_credentials!(" FOR UPDATE SKIP LOCKED"),
        };
        pruned.credentials = batch(credentials, expired).await?;
        pruned.distrust = batch(
            "DELETE FROM distrusted_payees WHERE (wallet, payee_key) IN (
                SELECT wallet, payee_key FROM distrusted_payees WHERE until < $1 LIMIT $2)",
            expired,
        )
        .await?;
        // An invoice whose ledger row is still pending stays until the seller has seen it
        // expire (the embedded wallet says "not found" for an invoice it no longer has).
        pruned.invoices = batch(
            "DELETE FROM embedded_invoices WHERE payment_hash IN (
                SELECT payment_hash FROM embedded_invoices i
                 WHERE paid_by IS NULL AND expires_at < $1
                   AND NOT EXISTS (SELECT 1 FROM payments p
                                    WHERE p.wallet = i.wallet AND p.direction = 'in'
                                      AND p.payment_hash = i.payment_hash AND p.status = 'pending')
                 LIMIT $2)",
            expired,
        )
        .await?;
        pruned.free_tier = batch(
            "DELETE FROM free_tier WHERE (client, route, day) IN (
                SELECT client, route, day FROM free_tier WHERE day < $1 LIMIT $2)",
            int((now / DAY_SECS).saturating_sub(1))?,
        )
        .await?;
        pruned.charges = batch(
            "DELETE FROM mpp_consumed_charges WHERE payment_hash IN (
                SELECT payment_hash FROM mpp_consumed_charges WHERE expires_at < $1 LIMIT $2)",
            expired,
        )
        .await?;
        pruned.more |= [
            pruned.credentials,
            pruned.distrust,
            pruned.invoices,
            pruned.free_tier,
            pruned.charges,
            pruned.minted_tokens,
        ]
        .into_iter()
        .any(|n| n >= PRUNE_BATCH.unsigned_abs());
        Ok(pruned)
    }

    /// One batch of `wallet`'s old outgoing payments: the rows scanned from `from`, those
    /// deleted, where the next batch starts (`None`: from the oldest again), and whether the
    /// batch was full.
    async fn prune_outgoing(
        &self,
        wallet: &str,
        cutoff: i64,
        expired: i64,
        from: Option<Resume>,
    ) -> Result<(u64, Option<Resume>, bool), StorageError> {
        let from = from.unwrap_or(Resume {
            created_at: i64::MIN,
            id: i64::MIN,
        });
        let rows = sqlx::query(
            "SELECT id, created_at, status, bolt11 FROM payments
              WHERE wallet = $1 AND direction = 'out' AND created_at < $2 AND created_at >= $3
                AND (created_at > $3 OR id > $4) AND status != 'pending' AND updated_at < $2
              ORDER BY created_at, id LIMIT $5",
        )
        .bind(wallet)
        .bind(cutoff)
        .bind(from.created_at)
        .bind(from.id)
        .bind(PRUNE_BATCH)
        .fetch_all(self.reader())
        .await?;
        let mut ids = Vec::with_capacity(rows.len());
        let mut last = None;
        for row in &rows {
            let (id, created_at): (i64, i64) = (row.try_get("id")?, row.try_get("created_at")?);
            let status: String = row.try_get("status")?;
            let bolt11: String = row.try_get("bolt11")?;
            last = Some(Resume { created_at, id });
            // A paid invoice is kept while it could be presented again (never pay twice).
            let payable = status == "succeeded"
                && invoice_expiry(&bolt11)
                    .is_some_and(|t| i64::try_from(t).map_or(true, |t| t >= expired));
            if !payable {
                ids.push(id);
            }
        }
        let full = i64::try_from(rows.len()).is_ok_and(|n| n >= PRUNE_BATCH);
        let deleted = self.delete_payments(&ids, cutoff).await?;
        Ok((deleted, if full { last } else { None }, full))
    }

    /// `ids`, still settled or failed and unchanged since `cutoff` (checked again as they are
    /// deleted: a late success may have changed one since it was read).
    async fn delete_payments(&self, ids: &[i64], cutoff: i64) -> Result<u64, StorageError> {
        if ids.is_empty() {
            return Ok(0);
        }
        let list = serde_json::to_string(ids).map_err(|e| StorageError::Corrupt(e.to_string()))?;
        let sql = format!(
            "DELETE FROM payments WHERE id IN (SELECT CAST(v AS BIGINT) FROM ({}) AS ids)
               AND status != 'pending' AND updated_at < $2",
            self.dialect.json_strings(1)
        );
        Ok(sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(list)
            .bind(cutoff)
            .execute(self.writer())
            .await?
            .rows_affected())
    }

    /// One batch of `wallet`'s old incoming payments, settled or expired (an invoice we issued
    /// cannot be paid twice: nothing to keep once it is resolved).
    async fn prune_incoming(&self, wallet: &str, cutoff: i64) -> Result<u64, StorageError> {
        Ok(sqlx::query(
            "DELETE FROM payments WHERE id IN (
                SELECT id FROM payments
                 WHERE wallet = $1 AND direction = 'in' AND created_at < $2
                   AND status != 'pending' AND updated_at < $2
                 ORDER BY created_at LIMIT $3)",
        )
        .bind(wallet)
        .bind(cutoff)
        .bind(PRUNE_BATCH)
        .execute(self.writer())
        .await?
        .rows_affected())
    }

    /// One batch of tokens `wallet` minted that expired before `before`: their use counters,
    /// then their root keys (which take the tokens' terms with them). A token with no expiry
    /// can always be used, so it is kept.
    async fn prune_minted(&self, wallet: &str, before: i64) -> Result<u64, StorageError> {
        let gone: Vec<(String, String)> = sqlx::query_as(
            "SELECT token_id, key_id FROM minted_tokens
              WHERE valid_until IS NOT NULL AND valid_until < $1 AND wallet = $2 LIMIT $3",
        )
        .bind(before)
        .bind(wallet)
        .bind(PRUNE_BATCH)
        .fetch_all(self.reader())
        .await?;
        if gone.is_empty() {
            return Ok(0);
        }
        let json = |v: Vec<&String>| {
            serde_json::to_string(&v).map_err(|e| StorageError::Corrupt(e.to_string()))
        };
        let tokens = json(gone.iter().map(|(t, _)| t).collect())?;
        let keys = json(gone.iter().map(|(_, k)| k).collect())?;
        let strings = self.dialect.json_strings(1);
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM token_uses WHERE token_id IN ({strings})"
        )))
        .bind(tokens)
        .execute(self.writer())
        .await?;
        Ok(sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM root_keys WHERE key_id IN ({strings})"
        )))
        .bind(keys)
        .execute(self.writer())
        .await?
        .rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_never_reach_into_the_budget_windows() {
        assert_eq!(Retention::days(0).keep_secs, Some(2 * DAY_SECS));
        assert_eq!(Retention::days(30).keep_secs, Some(30 * DAY_SECS));
        assert_eq!(Retention::default().keep_secs, Some(365 * DAY_SECS));
        assert_eq!(Retention::forever().keep_secs, None);
    }

    #[test]
    fn a_stored_invoice_tells_when_it_expires() {
        assert_eq!(invoice_expiry("lnbc1garbage"), None);
    }
}
