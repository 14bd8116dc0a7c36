//! Root keys of minted tokens, named by `sha256(identifier)`, and what each token was sold for.

use super::{Ledger, LedgerError, db_int, from_db};

/// What a minted token was sold for.
#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow)]
pub struct MintedToken {
    pub token_id: String,
    pub wallet: String,
    pub payment_hash: String,
    pub amount_msat: i64,
    pub service: String,
    pub tier: i64,
    pub capabilities: String,
    pub valid_until: Option<i64>,
    pub created_at: i64,
    pub max_uses: Option<i64>,
}

/// A new token's root key and sale terms. Its `Debug` leaves the root key out.
pub struct NewMintedToken<'a> {
    pub key_id: [u8; 32],
    pub root_key: &'a [u8; 32],
    pub token_id: [u8; 32],
    pub wallet: &'a str,
    pub payment_hash: [u8; 32],
    pub amount_msat: u64,
    pub service: &'a str,
    pub tier: u8,
    pub capabilities: &'a [String],
    pub valid_until: Option<u64>,
    /// Uses allowed (N-use tokens); `None` for unlimited.
    pub max_uses: Option<u64>,
}

impl std::fmt::Debug for NewMintedToken<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewMintedToken")
            .field("key_id", &hex::encode(self.key_id))
            .field("token_id", &hex::encode(self.token_id))
            .field("wallet", &self.wallet)
            .field("payment_hash", &hex::encode(self.payment_hash))
            .field("amount_msat", &self.amount_msat)
            .field("service", &self.service)
            .field("max_uses", &self.max_uses)
            .finish_non_exhaustive()
    }
}

impl Ledger {
    /// Store a new token's root key and terms, in one transaction.
    pub async fn store_minted(&self, t: &NewMintedToken<'_>, now: u64) -> Result<(), LedgerError> {
        let mut tx = self.writer().begin().await?;
        sqlx::query("INSERT INTO root_keys (key_id, root_key, created_at) VALUES (?, ?, ?)")
            .bind(hex::encode(t.key_id))
            .bind(&t.root_key[..])
            .bind(db_int(now)?)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO minted_tokens (token_id, key_id, wallet, payment_hash, amount_msat, service, tier,
                 capabilities, valid_until, created_at, max_uses) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(hex::encode(t.token_id))
        .bind(hex::encode(t.key_id))
        .bind(t.wallet)
        .bind(hex::encode(t.payment_hash))
        .bind(db_int(t.amount_msat)?)
        .bind(t.service)
        .bind(i64::from(t.tier))
        .bind(t.capabilities.join(","))
        .bind(t.valid_until.map(db_int).transpose()?)
        .bind(db_int(now)?)
        .bind(t.max_uses.map(db_int).transpose()?)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The root key named `key_id`, if this data dir minted it and has not revoked it.
    pub async fn root_key(&self, key_id: &[u8; 32]) -> Result<Option<[u8; 32]>, LedgerError> {
        let key: Option<Vec<u8>> =
            sqlx::query_scalar("SELECT root_key FROM root_keys WHERE key_id = ?")
                .bind(hex::encode(key_id))
                .fetch_optional(self.pool())
                .await?;
        key.map(|k| {
            <[u8; 32]>::try_from(k.as_slice())
                .map_err(|_| LedgerError::Corrupt("root key is not 32 bytes".into()))
        })
        .transpose()
    }

    /// Revoke a token by deleting its root key. Returns whether there was one.
    pub async fn revoke_root_key(&self, key_id: &[u8; 32]) -> Result<bool, LedgerError> {
        let done = sqlx::query("DELETE FROM root_keys WHERE key_id = ?")
            .bind(hex::encode(key_id))
            .execute(self.writer())
            .await?;
        Ok(done.rows_affected() > 0)
    }

    pub async fn minted_token(
        &self,
        token_id: &[u8; 32],
    ) -> Result<Option<MintedToken>, LedgerError> {
        Ok(sqlx::query_as("SELECT token_id, wallet, payment_hash, amount_msat, service, tier, capabilities, valid_until, created_at, max_uses FROM minted_tokens WHERE token_id = ?")
            .bind(hex::encode(token_id))
            .fetch_optional(self.pool())
            .await?)
    }
}

impl MintedToken {
    /// What the token sold for; an error if the store holds an impossible (negative) amount.
    pub fn amount_msat(&self) -> Result<u64, LedgerError> {
        from_db("minted token amount_msat", self.amount_msat)
    }

    /// Uses the token was sold for, if limited; an error if the store holds a negative count.
    pub fn uses_allowed(&self) -> Result<Option<u64>, LedgerError> {
        self.max_uses
            .map(|n| from_db("minted token max_uses", n))
            .transpose()
    }
}
