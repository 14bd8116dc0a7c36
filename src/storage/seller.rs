//! What sellers keep, and what several gateway instances must agree on: one random root key per
//! minted token (named by `sha256(identifier)`, as in Aperture; deleting it revokes the token),
//! the terms each token was sold for, use counters (the replay guard of N-use tokens),
//! free-tier counts and sales.
//!
//! Every counter is one `INSERT ... ON CONFLICT DO UPDATE ... WHERE ... RETURNING` statement: the
//! database locks the row for the statement and re-checks the `WHERE` against the latest value,
//! so any number of instances never exceed a limit between them.

use async_trait::async_trait;
use serde::Serialize;

use super::books::invoice_row;
use super::engine::Engine;
use super::ledger::{incoming, incoming_settled};
use super::sync_sql::{Arg, Columns, Statement, Statements, bind};
use super::{EmbeddedInvoice, StorageError, bytes32, int, uint};
use crate::l402::{Msat, PaymentHash, RootKey, TokenId};

/// What a minted token was sold for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MintedToken {
    pub token_id: TokenId,
    /// The wallet that sold it (its income is recorded there).
    pub wallet: String,
    pub payment_hash: PaymentHash,
    #[serde(rename = "amount_msat")]
    pub amount: Msat,
    pub service: String,
    pub tier: u8,
    pub capabilities: Vec<String>,
    pub valid_until: Option<u64>,
    pub created_at: u64,
    /// Uses allowed (N-use tokens); `None` for unlimited.
    pub max_uses: Option<u64>,
}

/// A new token's root key and sale terms. Its `Debug` leaves the root key out.
#[derive(Debug)]
pub struct NewMintedToken<'a> {
    /// `sha256(identifier)`: the root key's name.
    pub key_id: [u8; 32],
    pub root_key: &'a RootKey,
    pub token_id: TokenId,
    pub wallet: &'a str,
    pub payment_hash: PaymentHash,
    pub amount: Msat,
    pub service: &'a str,
    pub tier: u8,
    pub capabilities: &'a [String],
    pub valid_until: Option<u64>,
    /// Uses allowed (N-use tokens); `None` for unlimited.
    pub max_uses: Option<u64>,
}

/// An invoice a seller issued, as its pending income.
#[derive(Debug, Clone, Copy)]
pub struct Income<'a> {
    /// The wallet the income is recorded under.
    pub wallet: &'a str,
    pub payment_hash: &'a PaymentHash,
    pub bolt11: &'a str,
    pub amount: Msat,
    pub description: Option<&'a str>,
}

/// What a seller keeps of a challenge (or an invoice) before it is sent, written in one
/// transaction (see [`SellerStore::store_challenge`]).
#[derive(Debug)]
pub struct NewChallenge<'a> {
    /// The invoice's row in the embedded wallet's books, when that wallet issued it on this
    /// storage (else the wallet has kept it already).
    pub embedded: Option<&'a EmbeddedInvoice<'a>>,
    pub income: Income<'a>,
    /// The token minted for the invoice, if any.
    pub minted: Option<&'a NewMintedToken<'a>>,
}

/// Sales over a period, per service.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SalesSummary {
    pub count: u64,
    #[serde(rename = "amount_msat")]
    pub amount: Msat,
    pub by_service: Vec<ServiceSales>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceSales {
    pub service: String,
    pub count: u64,
    #[serde(rename = "amount_msat")]
    pub amount: Msat,
}

/// Root keys, token terms and the counters around them. Every counter method is atomic: any
/// number of instances can call it at once and a limit is never exceeded.
#[async_trait]
pub trait SellerStore: Send + Sync + std::fmt::Debug {
    /// Keep a new token's root key and terms.
    async fn store_minted(&self, token: &NewMintedToken<'_>, now: u64) -> Result<(), StorageError>;
    /// Keep what a challenge needs before it is sent, in one transaction (one fsync on SQLite):
    /// the embedded wallet's invoice row, the pending income, the token's root key and terms.
    /// The income goes into the spend ledger of this same storage.
    async fn store_challenge(&self, c: &NewChallenge<'_>, now: u64) -> Result<(), StorageError>;
    /// The root key named `key_id`, if minted here and not revoked.
    async fn root_key(&self, key_id: &[u8; 32]) -> Result<Option<RootKey>, StorageError>;
    /// Revoke a token by deleting its root key; whether there was one. Refused by this storage
    /// from the moment this returns; on PostgreSQL, by other instances once the notification
    /// of the change reaches them (see `verify_cache.rs`).
    async fn revoke(&self, key_id: &[u8; 32]) -> Result<bool, StorageError>;
    /// The terms a token was minted with.
    async fn minted_token(&self, token_id: &TokenId) -> Result<Option<MintedToken>, StorageError>;
    /// What verifying a credential needs, read at once: the root key named `key_id` and, when
    /// there is one, the terms of token `token_id` (the gateway asks on every request: a known
    /// token's answer is kept in memory, see `verify_cache.rs`).
    async fn root_key_and_terms(
        &self,
        key_id: &[u8; 32],
        token_id: &TokenId,
    ) -> Result<(Option<RootKey>, Option<MintedToken>), StorageError>;
    /// Count one use of a token limited to `max_uses`; `Some(uses so far)` when allowed, `None`
    /// when the token is used up.
    async fn use_token(
        &self,
        token_id: &TokenId,
        max_uses: u64,
    ) -> Result<Option<u64>, StorageError>;
    /// Count one free request of `client` on `route` on `day`; `true` while within `limit`.
    async fn free_tier_hit(
        &self,
        client: &str,
        route: &str,
        day: u64,
        limit: u64,
    ) -> Result<bool, StorageError>;
    /// Record a sale once per payment; `true` the first time.
    async fn record_sale(
        &self,
        payment_hash: &PaymentHash,
        token_id: &TokenId,
        service: &str,
        amount: Msat,
        now: u64,
    ) -> Result<bool, StorageError>;
    /// [`SellerStore::record_sale`] and, in the same transaction, the income it settles in the
    /// spend ledger of this same storage (`income_wallet`'s pending invoice of `payment_hash`,
    /// as [`crate::storage::SpendLedger::mark_incoming_settled`]); `true` when the sale is new.
    async fn record_sale_and_income(
        &self,
        payment_hash: &PaymentHash,
        token_id: &TokenId,
        service: &str,
        amount: Msat,
        income_wallet: &str,
        now: u64,
    ) -> Result<bool, StorageError>;
    /// Sales since `since` (unix seconds).
    async fn sales_since(&self, since: u64) -> Result<SalesSummary, StorageError>;
}

#[async_trait]
impl SellerStore for Engine {
    async fn store_minted(&self, t: &NewMintedToken<'_>, now: u64) -> Result<(), StorageError> {
        self.write(
            None,
            Statements(minted_rows(t, now)?.into()),
            StorageError::Unavailable,
        )
        .await?;
        Ok(())
    }

    async fn store_challenge(&self, c: &NewChallenge<'_>, now: u64) -> Result<(), StorageError> {
        let mut rows = Vec::with_capacity(4);
        if let Some(inv) = c.embedded {
            rows.push(invoice_row(inv, now)?);
        }
        let i = &c.income;
        rows.push(incoming(
            i.wallet,
            i.payment_hash,
            i.bolt11,
            i.amount,
            i.description,
            now,
        )?);
        if let Some(t) = c.minted {
            rows.extend(minted_rows(t, now)?);
        }
        self.write(None, Statements(rows), StorageError::Unavailable)
            .await?;
        Ok(())
    }

    async fn root_key(&self, key_id: &[u8; 32]) -> Result<Option<RootKey>, StorageError> {
        let key: Option<Vec<u8>> =
            sqlx::query_scalar("SELECT root_key FROM root_keys WHERE key_id = $1")
                .bind(hex::encode(key_id))
                .fetch_optional(self.reader())
                .await?;
        key.map(|k| {
            <[u8; 32]>::try_from(k.as_slice())
                .map(RootKey)
                .map_err(|_| StorageError::Corrupt("a root key is not 32 bytes".into()))
        })
        .transpose()
    }

    async fn revoke(&self, key_id: &[u8; 32]) -> Result<bool, StorageError> {
        let done = sqlx::query("DELETE FROM root_keys WHERE key_id = $1")
            .bind(hex::encode(key_id))
            .execute(self.writer())
            .await?;
        // Refused here from now on; other instances hear it from PostgreSQL.
        self.verify_cache.invalidate(key_id);
        Ok(done.rows_affected() > 0)
    }

    async fn minted_token(&self, token_id: &TokenId) -> Result<Option<MintedToken>, StorageError> {
        let sql = format!("SELECT {MINTED_COLUMNS} FROM minted_tokens m WHERE token_id = $1");
        let args = [Arg::Text(Some(token_id.to_hex()))];
        Ok(self.read_one(&sql, &args, minted_from_row).await?.flatten())
    }

    async fn root_key_and_terms(
        &self,
        key_id: &[u8; 32],
        token_id: &TokenId,
    ) -> Result<(Option<RootKey>, Option<MintedToken>), StorageError> {
        let cache = &self.verify_cache;
        if let Some((key, terms)) = cache.get(key_id, token_id) {
            return Ok((Some(key), terms));
        }
        let epoch = cache.epoch();
        let (key, terms) = self.read_root_key_and_terms(key_id, token_id).await?;
        if let (Some(key), Some(epoch)) = (&key, epoch) {
            cache.keep(key_id, token_id, (key, &terms), epoch);
        }
        Ok((key, terms))
    }

    async fn use_token(
        &self,
        token_id: &TokenId,
        max_uses: u64,
    ) -> Result<Option<u64>, StorageError> {
        let uses: Option<i64> = sqlx::query_scalar(
            "INSERT INTO token_uses (token_id, uses) VALUES ($1, 1)
             ON CONFLICT (token_id) DO UPDATE SET uses = token_uses.uses + 1 WHERE token_uses.uses < $2
             RETURNING uses",
        )
        .bind(token_id.to_hex())
        .bind(int(max_uses)?)
        .fetch_optional(self.writer())
        .await?;
        // The first use of a token limited to 0 uses slips past the WHERE: refuse it here.
        match uses {
            Some(u) => Ok(Some(uint("token uses", u)?).filter(|u| *u <= max_uses)),
            None => Ok(None),
        }
    }

    async fn free_tier_hit(
        &self,
        client: &str,
        route: &str,
        day: u64,
        limit: u64,
    ) -> Result<bool, StorageError> {
        if limit == 0 {
            return Ok(false);
        }
        let count: Option<i64> = sqlx::query_scalar(
            "INSERT INTO free_tier (client, route, day, count) VALUES ($1, $2, $3, 1)
             ON CONFLICT (client, route, day) DO UPDATE SET count = free_tier.count + 1 WHERE free_tier.count < $4
             RETURNING count",
        )
        .bind(client)
        .bind(route)
        .bind(int(day)?)
        .bind(int(limit)?)
        .fetch_optional(self.writer())
        .await?;
        Ok(count.is_some())
    }

    async fn record_sale(
        &self,
        payment_hash: &PaymentHash,
        token_id: &TokenId,
        service: &str,
        amount: Msat,
        now: u64,
    ) -> Result<bool, StorageError> {
        let s = sale(payment_hash, token_id, service, amount, now)?;
        let done = bind(sqlx::query(s.sql), &s.args)
            .execute(self.writer())
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn record_sale_and_income(
        &self,
        payment_hash: &PaymentHash,
        token_id: &TokenId,
        service: &str,
        amount: Msat,
        income_wallet: &str,
        now: u64,
    ) -> Result<bool, StorageError> {
        let rows = vec![
            sale(payment_hash, token_id, service, amount, now)?,
            incoming_settled(income_wallet, payment_hash, Some(amount), now)?,
        ];
        let changed = self
            .write(None, Statements(rows), StorageError::Unavailable)
            .await?;
        Ok(changed.first().is_some_and(|n| *n > 0))
    }

    async fn sales_since(&self, since: u64) -> Result<SalesSummary, StorageError> {
        let rows: Vec<(String, i64, i64)> = sqlx::query_as(
            "SELECT service, COUNT(*), CAST(COALESCE(SUM(amount_msat), 0) AS BIGINT) FROM sales
              WHERE sold_at >= $1 GROUP BY service ORDER BY service",
        )
        .bind(int(since)?)
        .fetch_all(self.reader())
        .await?;
        let by_service = rows
            .into_iter()
            .map(|(service, count, amount)| {
                Ok(ServiceSales {
                    service,
                    count: uint("sales count", count)?,
                    amount: Msat::from_msat(uint("sales amount", amount)?),
                })
            })
            .collect::<Result<Vec<_>, StorageError>>()?;
        Ok(SalesSummary {
            count: by_service.iter().map(|s| s.count).sum(),
            amount: by_service.iter().map(|s| s.amount).sum(),
            by_service,
        })
    }
}

impl Engine {
    /// [`SellerStore::root_key_and_terms`] from the database, past the cache.
    async fn read_root_key_and_terms(
        &self,
        key_id: &[u8; 32],
        token_id: &TokenId,
    ) -> Result<(Option<RootKey>, Option<MintedToken>), StorageError> {
        let sql = format!(
            "SELECT r.root_key, {MINTED_COLUMNS}
               FROM root_keys r LEFT JOIN minted_tokens m ON m.token_id = $2
              WHERE r.key_id = $1"
        );
        let args = [
            Arg::Text(Some(hex::encode(key_id))),
            Arg::Text(Some(token_id.to_hex())),
        ];
        let found = self
            .read_one(&sql, &args, |row| {
                let key = row.blob("root_key")?.unwrap_or_default();
                let key = <[u8; 32]>::try_from(key.as_slice())
                    .map(RootKey)
                    .map_err(|_| StorageError::Corrupt("a root key is not 32 bytes".into()))?;
                Ok((key, minted_from_row(row)?))
            })
            .await?;
        Ok(found.map_or((None, None), |(key, terms)| (Some(key), terms)))
    }
}

/// A new token's root key and terms: two rows.
fn minted_rows(t: &NewMintedToken<'_>, now: u64) -> Result<[Statement; 2], StorageError> {
    let key_id = hex::encode(t.key_id);
    Ok([
        Statement {
            sql: "INSERT INTO root_keys (key_id, root_key, created_at) VALUES ($1, $2, $3)",
            args: vec![
                Arg::Text(Some(key_id.clone())),
                Arg::Blob(t.root_key.expose().to_vec()),
                Arg::Int(int(now)?),
            ],
        },
        Statement {
            sql: "INSERT INTO minted_tokens (token_id, key_id, wallet, payment_hash, amount_msat, service, tier,
                 capabilities, valid_until, created_at, max_uses) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            args: vec![
                Arg::Text(Some(t.token_id.to_hex())),
                Arg::Text(Some(key_id)),
                Arg::Text(Some(t.wallet.to_owned())),
                Arg::Text(Some(t.payment_hash.to_hex())),
                Arg::Int(int(t.amount.msat())?),
                Arg::Text(Some(t.service.to_owned())),
                Arg::Int(i64::from(t.tier)),
                Arg::Text(Some(t.capabilities.join(","))),
                Arg::MaybeInt(t.valid_until.map(int).transpose()?),
                Arg::Int(int(now)?),
                Arg::MaybeInt(t.max_uses.map(int).transpose()?),
            ],
        },
    ])
}

/// A sale, once per payment (see [`SellerStore::record_sale`]).
fn sale(
    payment_hash: &PaymentHash,
    token_id: &TokenId,
    service: &str,
    amount: Msat,
    now: u64,
) -> Result<Statement, StorageError> {
    Ok(Statement {
        sql: "INSERT INTO sales (payment_hash, token_id, service, amount_msat, sold_at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (payment_hash) DO NOTHING",
        args: vec![
            Arg::Text(Some(payment_hash.to_hex())),
            Arg::Text(Some(token_id.to_hex())),
            Arg::Text(Some(service.to_owned())),
            Arg::Int(int(amount.msat())?),
            Arg::Int(int(now)?),
        ],
    })
}

/// The columns of a minted token, from `minted_tokens m`.
const MINTED_COLUMNS: &str = "m.token_id, m.wallet, m.payment_hash, m.amount_msat, m.service, m.tier, \
     m.capabilities, m.valid_until, m.created_at, m.max_uses";

/// A minted token from a row of [`MINTED_COLUMNS`]; `None` when they are NULL (an outer join
/// that found none).
fn minted_from_row(row: &dyn Columns) -> Result<Option<MintedToken>, StorageError> {
    let Some(token_id) = row.text("token_id")? else {
        return Ok(None);
    };
    let optional = |col: &str| -> Result<Option<u64>, StorageError> {
        row.int(col)?.map(|v| uint(col, v)).transpose()
    };
    let capabilities = row.text_of("capabilities")?;
    let tier = uint("tier", row.int_of("tier")?)?;
    Ok(Some(MintedToken {
        token_id: TokenId(bytes32("token id", &token_id)?),
        wallet: row.text_of("wallet")?,
        payment_hash: PaymentHash(bytes32("payment hash", &row.text_of("payment_hash")?)?),
        amount: Msat::from_msat(uint("amount", row.int_of("amount_msat")?)?),
        service: row.text_of("service")?,
        tier: u8::try_from(tier).map_err(|_| StorageError::Corrupt(format!("tier {tier}")))?,
        capabilities: crate::l402::caveat::capabilities(&capabilities)
            .map(str::to_owned)
            .collect(),
        valid_until: optional("valid_until")?,
        created_at: uint("created_at", row.int_of("created_at")?)?,
        max_uses: optional("max_uses")?,
    }))
}
