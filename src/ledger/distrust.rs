//! Sellers that took a payment and then refused the credential it bought. They are not paid
//! again for a while, under any key of their identity ([`crate::payee`]), by any process on the
//! ledger: a restart does not make a hostile seller trusted again.

use super::{Ledger, LedgerError, db_int, from_db};
use crate::payee::Payee;

/// A refusal in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Distrust {
    /// The origin that refused the credential.
    pub origin: String,
    /// Not paid again before this time (unix seconds).
    pub until: u64,
}

impl Ledger {
    /// The refusal in force against `payee` for `wallet`, if any (the longest one).
    pub async fn distrusted(
        &self,
        wallet: &str,
        payee: &Payee,
        now: u64,
    ) -> Result<Option<Distrust>, LedgerError> {
        let row: Option<(String, i64)> = sqlx::query_as(
            "SELECT origin, until FROM distrusted_payees
              WHERE wallet = ? AND until > ? AND payee_key IN (SELECT value FROM json_each(?))
              ORDER BY until DESC LIMIT 1",
        )
        .bind(wallet)
        .bind(db_int(now)?)
        .bind(payee.keys_json())
        .fetch_optional(self.pool())
        .await?;
        row.map(|(origin, until)| {
            Ok(Distrust {
                origin,
                until: from_db("distrust until", until)?,
            })
        })
        .transpose()
    }

    /// Distrust `payee` (every key of it) for `wallet` until `until`, after `origin` refused
    /// the credential bought by payment `payment_hash`.
    pub async fn distrust(
        &self,
        wallet: &str,
        payee: &Payee,
        origin: &str,
        payment_hash: &[u8; 32],
        until: u64,
        now: u64,
    ) -> Result<(), LedgerError> {
        sqlx::query(
            "INSERT INTO distrusted_payees (wallet, payee_key, until, origin, payment_hash, created_at)
             SELECT ?, value, ?, ?, ?, ? FROM json_each(?) WHERE true -- (SQLite: an upsert after SELECT needs a WHERE)
             ON CONFLICT (wallet, payee_key) DO UPDATE SET
                 until = max(until, excluded.until), origin = excluded.origin,
                 payment_hash = excluded.payment_hash, created_at = excluded.created_at",
        )
        .bind(wallet)
        .bind(db_int(until)?)
        .bind(origin)
        .bind(hex::encode(payment_hash))
        .bind(db_int(now)?)
        .bind(payee.keys_json())
        .execute(self.writer())
        .await?;
        Ok(())
    }
}
