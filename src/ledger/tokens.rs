//! The buyer's token cache: credentials bought, reused for later requests to the same origin
//! within the same path scope.

use super::{Ledger, LedgerError, db_int, from_db};
use crate::l402::Scheme;

/// A credential bought earlier.
#[derive(Clone, PartialEq, Eq)]
pub struct CachedToken {
    pub origin: String,
    pub path_prefix: String,
    pub scheme: Scheme,
    pub macaroon: Vec<u8>,
    pub preimage: [u8; 32],
    pub payment_hash: [u8; 32],
    pub expires_at: Option<u64>,
    /// The seller has accepted it at least once. A credential refused before it was ever
    /// honoured was never worth its payment, and is not bought again.
    pub honoured: bool,
}

impl std::fmt::Debug for CachedToken {
    // Macaroon + preimage is a bearer credential: never in debug output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedToken")
            .field("origin", &self.origin)
            .field("path_prefix", &self.path_prefix)
            .field("scheme", &self.scheme)
            .field("expires_at", &self.expires_at)
            .field("honoured", &self.honoured)
            .finish_non_exhaustive()
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
    pub fn with_proof(&self, preimage: [u8; 32], payment_hash: [u8; 32]) -> CachedToken {
        CachedToken {
            origin: self.origin.clone(),
            path_prefix: self.path_prefix.clone(),
            scheme: self.scheme,
            macaroon: self.macaroon.clone(),
            preimage,
            payment_hash,
            expires_at: self.expires_at,
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

impl CachedToken {
    /// The `Authorization` value to send.
    pub fn authorization(&self) -> String {
        crate::l402::Credential::format(self.scheme, &self.macaroon, &self.preimage)
    }
}

type Row = (
    String,
    String,
    String,
    String,
    String,
    String,
    Option<i64>,
    bool,
);

impl Ledger {
    /// Cache a credential for `origin` and every path under `path_prefix` (replacing one there).
    pub async fn put_token(
        &self,
        wallet: &str,
        token: &CachedToken,
        now: u64,
    ) -> Result<(), LedgerError> {
        sqlx::query(
            "INSERT INTO token_cache (wallet, origin, path_prefix, scheme, macaroon, preimage, payment_hash, expires_at, created_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (wallet, origin, path_prefix) DO UPDATE SET scheme = excluded.scheme, macaroon = excluded.macaroon,
                 preimage = excluded.preimage, payment_hash = excluded.payment_hash, expires_at = excluded.expires_at,
                 created_at = excluded.created_at, honoured_at = NULL",
        )
        .bind(wallet)
        .bind(&token.origin)
        .bind(&token.path_prefix)
        .bind(token.scheme.as_str())
        .bind(crate::l402::b64::encode(&token.macaroon))
        .bind(hex::encode(token.preimage))
        .bind(hex::encode(token.payment_hash))
        .bind(token.expires_at.map(db_int).transpose()?)
        .bind(db_int(now)?)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    /// The unexpired credential with the longest path prefix covering `path` on `origin`.
    pub async fn find_token(
        &self,
        wallet: &str,
        origin: &str,
        path: &str,
        now: u64,
    ) -> Result<Option<CachedToken>, LedgerError> {
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT origin, path_prefix, scheme, macaroon, preimage, payment_hash, expires_at, honoured_at IS NOT NULL
             FROM token_cache
             WHERE wallet = ? AND origin = ? AND (expires_at IS NULL OR expires_at > ?)
             ORDER BY length(path_prefix) DESC",
        )
        .bind(wallet)
        .bind(origin)
        .bind(db_int(now)?)
        .fetch_all(self.pool())
        .await?;
        for row in rows {
            if path_in_scope(path, &row.1) {
                return decode_row(row).map(Some);
            }
        }
        Ok(None)
    }

    /// After payment `payment_id` was found paid (reconciled after a crash, say): cache the
    /// credential it bought, from the scope stored with its reservation and its preimage.
    /// Returns whether there was one to cache.
    pub async fn restore_token(&self, payment_id: i64, now: u64) -> Result<bool, LedgerError> {
        let row: Option<(String, Option<String>, Option<String>, String)> = sqlx::query_as(
            "SELECT wallet, credential, preimage, payment_hash FROM payments WHERE id = ? AND status = 'succeeded'",
        )
        .bind(payment_id)
        .fetch_optional(self.pool())
        .await?;
        let Some((wallet, Some(credential), Some(preimage), hash)) = row else {
            return Ok(false);
        };
        let corrupt = |what: &str| LedgerError::Corrupt(format!("payment #{payment_id} {what}"));
        let scope: CredentialScope =
            serde_json::from_str(&credential).map_err(|_| corrupt("credential"))?;
        let token = scope.with_proof(
            crate::l402::parse_hex32(&preimage).ok_or_else(|| corrupt("preimage"))?,
            crate::l402::parse_hex32(&hash).ok_or_else(|| corrupt("payment hash"))?,
        );
        self.put_token(&wallet, &token, now).await?;
        Ok(true)
    }

    /// The seller accepted `token`: remember it was honoured (once; later uses write nothing).
    pub async fn mark_token_honoured(
        &self,
        wallet: &str,
        token: &CachedToken,
        now: u64,
    ) -> Result<(), LedgerError> {
        if token.honoured {
            return Ok(());
        }
        sqlx::query(
            "UPDATE token_cache SET honoured_at = ?
              WHERE wallet = ? AND origin = ? AND path_prefix = ? AND payment_hash = ? AND honoured_at IS NULL",
        )
        .bind(db_int(now)?)
        .bind(wallet)
        .bind(&token.origin)
        .bind(&token.path_prefix)
        .bind(hex::encode(token.payment_hash))
        .execute(self.writer())
        .await?;
        Ok(())
    }

    /// Whether `token` is still cached and, if so, whether it has been honoured (as written by
    /// any process since it was read).
    pub async fn token_state(
        &self,
        wallet: &str,
        token: &CachedToken,
    ) -> Result<Option<bool>, LedgerError> {
        Ok(sqlx::query_scalar(
            "SELECT honoured_at IS NOT NULL FROM token_cache
              WHERE wallet = ? AND origin = ? AND path_prefix = ? AND payment_hash = ?",
        )
        .bind(wallet)
        .bind(&token.origin)
        .bind(&token.path_prefix)
        .bind(hex::encode(token.payment_hash))
        .fetch_optional(self.pool())
        .await?)
    }

    /// Forget a credential (e.g. the server refused it).
    pub async fn drop_token(
        &self,
        wallet: &str,
        origin: &str,
        path_prefix: &str,
    ) -> Result<(), LedgerError> {
        sqlx::query("DELETE FROM token_cache WHERE wallet = ? AND origin = ? AND path_prefix = ?")
            .bind(wallet)
            .bind(origin)
            .bind(path_prefix)
            .execute(self.writer())
            .await?;
        Ok(())
    }
}

/// `path` is `prefix` or below it (`/api` covers `/api` and `/api/x`, not `/apix`).
fn path_in_scope(path: &str, prefix: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/') || prefix.is_empty())
}

fn decode_row(
    (origin, path_prefix, scheme, macaroon, preimage, payment_hash, expires_at, honoured): Row,
) -> Result<CachedToken, LedgerError> {
    let corrupt = |what: &str| LedgerError::Corrupt(format!("token cache {what}"));
    Ok(CachedToken {
        origin,
        path_prefix,
        scheme: scheme.parse().map_err(|_| corrupt("scheme"))?,
        macaroon: crate::l402::b64::decode(&macaroon).ok_or_else(|| corrupt("macaroon"))?,
        preimage: crate::l402::parse_hex32(&preimage).ok_or_else(|| corrupt("preimage"))?,
        payment_hash: crate::l402::parse_hex32(&payment_hash)
            .ok_or_else(|| corrupt("payment hash"))?,
        expires_at: expires_at
            .map(|t| from_db("token cache expires_at", t))
            .transpose()?,
        honoured,
    })
}

#[cfg(test)]
mod tests {
    use super::path_in_scope;

    #[test]
    fn scopes() {
        assert!(path_in_scope("/api", "/api"));
        assert!(path_in_scope("/api/x", "/api"));
        assert!(path_in_scope("/api/x", "/api/"));
        assert!(!path_in_scope("/apix", "/api"));
        assert!(path_in_scope("/anything", "/"));
        assert!(path_in_scope("/anything", ""));
    }
}
