//! The buyer's credentials, reused for later requests to the same origin and path scope, and
//! the sellers that took a payment and refused what it bought (not paid again for a while,
//! under any key of their identity, by any process on the storage).

use async_trait::async_trait;

use super::engine::Engine;
use super::sync_sql::{Arg, Columns, Statement, bind};
use super::{StorageError, bytes32, int, uint};
use crate::l402::{PaymentHash, Preimage, Scheme};
use crate::payee::Payee;

/// A credential bought earlier: what it buys, and the payment that proves it.
/// `Debug` leaves the preimage and the macaroon out: together they are a bearer credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedToken {
    pub scope: CredentialScope,
    pub preimage: Preimage,
    pub payment_hash: PaymentHash,
    /// The seller has accepted it at least once. A credential refused before it was ever
    /// honoured was never worth its payment, and is not bought again.
    pub honoured: bool,
}

impl CachedToken {
    /// The `Authorization` value to send.
    pub fn authorization(&self) -> String {
        crate::l402::Credential::format(self.scope.scheme, &self.scope.macaroon, &self.preimage)
    }
}

/// What an L402 payment buys, known before paying: where the credential applies and its
/// macaroon. With the payment's preimage it becomes a [`CachedToken`]. Stored with the payment's
/// reservation, so a credential paid for survives a crash before it was cached.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CredentialScope {
    pub origin: String,
    pub path_prefix: String,
    pub scheme: Scheme,
    #[serde(with = "b64_bytes")]
    pub macaroon: Vec<u8>,
    pub expires_at: Option<u64>,
}

impl std::fmt::Debug for CredentialScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialScope")
            .field("origin", &self.origin)
            .field("path_prefix", &self.path_prefix)
            .field("scheme", &self.scheme)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl CredentialScope {
    /// The credential, once the payment's preimage is known.
    pub fn with_proof(&self, preimage: Preimage, payment_hash: PaymentHash) -> CachedToken {
        CachedToken {
            scope: self.clone(),
            preimage,
            payment_hash,
            honoured: false,
        }
    }
}

mod b64_bytes {
    pub fn serialize<S: serde::Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&crate::l402::b64::encode(bytes))
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text: String = serde::Deserialize::deserialize(d)?;
        crate::l402::b64::decode(&text)
            .ok_or_else(|| serde::de::Error::custom("macaroon is not base64"))
    }
}

/// A refusal in force against a seller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Distrust {
    /// The origin that refused the credential.
    pub origin: String,
    /// Not paid again before this time (unix seconds).
    pub until: u64,
}

/// The buyer's credentials and the sellers it no longer pays.
#[async_trait]
pub trait TokenCache: Send + Sync + std::fmt::Debug {
    /// Cache a credential for `origin` and every path under `path_prefix` (replacing one there).
    async fn put_token(
        &self,
        wallet: &str,
        token: &CachedToken,
        now: u64,
    ) -> Result<(), StorageError>;
    /// The unexpired credential with the longest path prefix covering `path` on `origin`
    /// (`/api` covers `/api` and `/api/x`, not `/apix`), found by key: the origin's other
    /// credentials are not read.
    async fn find_token(
        &self,
        wallet: &str,
        origin: &str,
        path: &str,
        now: u64,
    ) -> Result<Option<CachedToken>, StorageError>;
    /// Whether `token` is still cached and, if so, whether it has been honoured (as written
    /// by any process since it was read).
    async fn token_state(
        &self,
        wallet: &str,
        token: &CachedToken,
    ) -> Result<Option<bool>, StorageError>;
    /// The seller accepted `token`: remember it was honoured (once; later uses write nothing).
    async fn mark_token_honoured(
        &self,
        wallet: &str,
        token: &CachedToken,
        now: u64,
    ) -> Result<(), StorageError>;
    /// Forget a credential (e.g. the server refused it).
    async fn drop_token(
        &self,
        wallet: &str,
        origin: &str,
        path_prefix: &str,
    ) -> Result<(), StorageError>;
    /// After payment `payment_id` was found paid (reconciled after a crash, say): cache the
    /// credential it bought, from the scope stored with its reservation and its preimage.
    /// Whether there was one to cache.
    async fn restore_token(&self, payment_id: i64, now: u64) -> Result<bool, StorageError>;

    /// The refusal in force against `payee` for `wallet`, if any (the longest one).
    async fn distrusted(
        &self,
        wallet: &str,
        payee: &Payee,
        now: u64,
    ) -> Result<Option<Distrust>, StorageError>;
    /// Distrust `payee` (every key of it) for `wallet` until `until`, after `origin` refused
    /// the credential bought by payment `payment_hash`.
    async fn distrust(
        &self,
        wallet: &str,
        payee: &Payee,
        origin: &str,
        payment_hash: &PaymentHash,
        until: u64,
        now: u64,
    ) -> Result<(), StorageError>;
}

/// The path prefixes that could cover `path`, as a JSON array: each of its ancestors, with and
/// without a trailing slash, and the root.
fn covering_prefixes(path: &str) -> String {
    let trimmed = path.trim_end_matches('/');
    let mut prefixes = vec![path.to_owned()];
    let mut push = |p: &str| {
        prefixes.push(p.to_owned());
        prefixes.push(format!("{p}/"));
    };
    push(trimmed);
    for (i, _) in trimmed.match_indices('/').filter(|(i, _)| *i > 0) {
        push(&trimmed[..i]);
    }
    push("");
    serde_json::Value::from(prefixes).to_string()
}

fn token_from_row(row: &dyn Columns) -> Result<CachedToken, StorageError> {
    let corrupt = |what: &str| StorageError::Corrupt(format!("token cache {what}"));
    let scheme = row.text_of("scheme")?;
    let macaroon = row.text_of("macaroon")?;
    Ok(CachedToken {
        scope: CredentialScope {
            origin: row.text_of("origin")?,
            path_prefix: row.text_of("path_prefix")?,
            scheme: scheme.parse().map_err(|_| corrupt("scheme"))?,
            macaroon: crate::l402::b64::decode(&macaroon).ok_or_else(|| corrupt("macaroon"))?,
            expires_at: row
                .int("expires_at")?
                .map(|v| uint("token expiry", v))
                .transpose()?,
        },
        preimage: Preimage(bytes32("token preimage", &row.text_of("preimage")?)?),
        payment_hash: PaymentHash(bytes32(
            "token payment hash",
            &row.text_of("payment_hash")?,
        )?),
        honoured: row.int_of("honoured")? != 0,
    })
}

/// A credential cached for `wallet` (see [`TokenCache::put_token`]); an embedded payment writes
/// it in the commit that records the payment.
pub(crate) fn token_row(
    wallet: &str,
    token: &CachedToken,
    now: u64,
) -> Result<Statement, StorageError> {
    Ok(Statement {
        sql: "INSERT INTO token_cache (wallet, origin, path_prefix, scheme, macaroon, preimage, payment_hash, expires_at, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             ON CONFLICT (wallet, origin, path_prefix) DO UPDATE SET scheme = excluded.scheme, macaroon = excluded.macaroon,
                 preimage = excluded.preimage, payment_hash = excluded.payment_hash, expires_at = excluded.expires_at,
                 created_at = excluded.created_at, honoured_at = NULL",
        args: vec![
            Arg::Text(Some(wallet.to_owned())),
            Arg::Text(Some(token.scope.origin.clone())),
            Arg::Text(Some(token.scope.path_prefix.clone())),
            Arg::Text(Some(token.scope.scheme.as_str().to_owned())),
            Arg::Text(Some(crate::l402::b64::encode(&token.scope.macaroon))),
            Arg::Text(Some(token.preimage.to_hex())),
            Arg::Text(Some(token.payment_hash.to_hex())),
            Arg::MaybeInt(token.scope.expires_at.map(int).transpose()?),
            Arg::Int(int(now)?),
        ],
    })
}

#[async_trait]
impl TokenCache for Engine {
    async fn put_token(
        &self,
        wallet: &str,
        token: &CachedToken,
        now: u64,
    ) -> Result<(), StorageError> {
        let row = token_row(wallet, token, now)?;
        bind(sqlx::query(row.sql), &row.args)
            .execute(self.writer())
            .await?;
        Ok(())
    }

    async fn find_token(
        &self,
        wallet: &str,
        origin: &str,
        path: &str,
        now: u64,
    ) -> Result<Option<CachedToken>, StorageError> {
        let sql = format!(
            "SELECT origin, path_prefix, scheme, macaroon, preimage, payment_hash, expires_at,
                    CASE WHEN honoured_at IS NULL THEN 0 ELSE 1 END AS honoured
               FROM token_cache
              WHERE wallet = $1 AND origin = $2 AND path_prefix IN ({})
                AND (expires_at IS NULL OR expires_at > $4)
              ORDER BY length(path_prefix) DESC LIMIT 1",
            self.dialect.json_strings(3)
        );
        let args = [
            Arg::Text(Some(wallet.to_owned())),
            Arg::Text(Some(origin.to_owned())),
            Arg::Text(Some(covering_prefixes(path))),
            Arg::Int(int(now)?),
        ];
        self.read_one(&sql, &args, token_from_row).await
    }

    async fn token_state(
        &self,
        wallet: &str,
        token: &CachedToken,
    ) -> Result<Option<bool>, StorageError> {
        let v: Option<i64> = sqlx::query_scalar(
            "SELECT CASE WHEN honoured_at IS NULL THEN 0 ELSE 1 END FROM token_cache
              WHERE wallet = $1 AND origin = $2 AND path_prefix = $3 AND payment_hash = $4",
        )
        .bind(wallet)
        .bind(&token.scope.origin)
        .bind(&token.scope.path_prefix)
        .bind(token.payment_hash.to_hex())
        .fetch_optional(self.reader())
        .await?;
        Ok(v.map(|h| h != 0))
    }

    async fn mark_token_honoured(
        &self,
        wallet: &str,
        token: &CachedToken,
        now: u64,
    ) -> Result<(), StorageError> {
        if token.honoured {
            return Ok(());
        }
        // A note, not money: lost in a power cut, a later refusal of the credential counts as
        // "refused after payment" and nothing is bought again (see `Durability::Deferred`).
        self.write_deferred(Statement {
            sql: "UPDATE token_cache SET honoured_at = $1
                   WHERE wallet = $2 AND origin = $3 AND path_prefix = $4 AND payment_hash = $5 AND honoured_at IS NULL",
            args: vec![
                Arg::Int(int(now)?),
                Arg::Text(Some(wallet.to_owned())),
                Arg::Text(Some(token.scope.origin.clone())),
                Arg::Text(Some(token.scope.path_prefix.clone())),
                Arg::Text(Some(token.payment_hash.to_hex())),
            ],
        })
        .await?;
        Ok(())
    }

    async fn drop_token(
        &self,
        wallet: &str,
        origin: &str,
        path_prefix: &str,
    ) -> Result<(), StorageError> {
        sqlx::query(
            "DELETE FROM token_cache WHERE wallet = $1 AND origin = $2 AND path_prefix = $3",
        )
        .bind(wallet)
        .bind(origin)
        .bind(path_prefix)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    async fn restore_token(&self, payment_id: i64, now: u64) -> Result<bool, StorageError> {
        let row: Option<(String, Option<String>, Option<String>, String)> = sqlx::query_as(
            "SELECT wallet, credential, preimage, payment_hash FROM payments WHERE id = $1 AND status = 'succeeded'",
        )
        .bind(payment_id)
        .fetch_optional(self.reader())
        .await?;
        let Some((wallet, Some(credential), Some(preimage), hash)) = row else {
            return Ok(false);
        };
        let scope: CredentialScope = serde_json::from_str(&credential)
            .map_err(|_| StorageError::Corrupt(format!("payment #{payment_id} credential")))?;
        let token = scope.with_proof(
            Preimage(bytes32("payment preimage", &preimage)?),
            PaymentHash(bytes32("payment hash", &hash)?),
        );
        self.put_token(&wallet, &token, now).await?;
        Ok(true)
    }

    async fn distrusted(
        &self,
        wallet: &str,
        payee: &Payee,
        now: u64,
    ) -> Result<Option<Distrust>, StorageError> {
        let sql = format!(
            "SELECT origin, until FROM distrusted_payees
              WHERE wallet = $1 AND until > $2 AND payee_key IN ({})
              ORDER BY until DESC LIMIT 1",
            self.dialect.json_strings(3)
        );
        let args = [
            Arg::Text(Some(wallet.to_owned())),
            Arg::Int(int(now)?),
            Arg::Text(Some(payee.keys_json())),
        ];
        self.read_one(&sql, &args, |row| {
            Ok(Distrust {
                origin: row.text_of("origin")?,
                until: uint("distrust", row.int_of("until")?)?,
            })
        })
        .await
    }

    async fn distrust(
        &self,
        wallet: &str,
        payee: &Payee,
        origin: &str,
        payment_hash: &PaymentHash,
        until: u64,
        now: u64,
    ) -> Result<(), StorageError> {
        // `WHERE true`: SQLite reads an upsert after a SELECT only with a WHERE.
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO distrusted_payees (wallet, payee_key, until, origin, payment_hash, created_at)
             SELECT $1, keys.v, $2, $3, $4, $5 FROM ({}) AS keys WHERE true
             ON CONFLICT (wallet, payee_key) DO UPDATE SET
                 until = CASE WHEN distrusted_payees.until > excluded.until
                              THEN distrusted_payees.until ELSE excluded.until END,
                 origin = excluded.origin, payment_hash = excluded.payment_hash,
                 created_at = excluded.created_at",
            self.dialect.json_strings(6)
        )))
        .bind(wallet)
        .bind(int(until)?)
        .bind(origin)
        .bind(payment_hash.to_hex())
        .bind(int(now)?)
        .bind(payee.keys_json())
        .execute(self.writer())
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::covering_prefixes;

    #[test]
    fn prefixes_that_cover_a_path() {
        let v: Vec<String> =
            serde_json::from_str(&covering_prefixes("/api/x/")).unwrap_or_default();
        for p in ["/api/x/", "/api/x", "/api", "/api/", "", "/"] {
            assert!(v.iter().any(|q| q == p), "{p} missing from {v:?}");
        }
        assert!(!v.iter().any(|q| q == "/apix"));
        let root: Vec<String> = serde_json::from_str(&covering_prefixes("/")).unwrap_or_default();
        assert!(root.iter().any(|q| q == "/") && root.iter().any(|q| q.is_empty()));
    }
}
