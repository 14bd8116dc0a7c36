//! The buyer's `Payment` sessions: a deposit paid to a service, used with bearer credentials for
//! later requests, closed so the unspent part comes back to the return invoice. The deposit's
//! preimage is the bearer secret: kept as a cached credential's is, never shown.

use async_trait::async_trait;
use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::engine::Engine;
use super::{StorageError, bytes32, int, uint};
use crate::l402::{Msat, PaymentHash, Preimage};

/// Where a buyer's session stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BuyerSessionStatus {
    /// The deposit is being paid, the session not yet opened.
    Opening,
    Open,
    Closed,
    /// The deposit was paid but the seller would not open the session.
    Failed,
}

impl BuyerSessionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            BuyerSessionStatus::Opening => "opening",
            BuyerSessionStatus::Open => "open",
            BuyerSessionStatus::Closed => "closed",
            BuyerSessionStatus::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Result<Self, StorageError> {
        Ok(match s {
            "opening" => BuyerSessionStatus::Opening,
            "open" => BuyerSessionStatus::Open,
            "closed" => BuyerSessionStatus::Closed,
            "failed" => BuyerSessionStatus::Failed,
            other => return Err(StorageError::Corrupt(format!("session status {other:?}"))),
        })
    }
}

/// A session this wallet opened (or is opening). `Debug` leaves the preimage out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuyerSession {
    pub wallet: String,
    /// The deposit's payment hash.
    pub id: PaymentHash,
    pub origin: String,
    pub realm: String,
    /// The last URL used: a close is sent there.
    pub url: String,
    /// The deposit's preimage: the bearer secret.
    pub preimage: Preimage,
    /// The last session challenge seen (its JSON form), echoed by later credentials.
    pub challenge: String,
    /// Deposit and top-ups paid.
    pub deposit: Msat,
    /// What one request costs, as the challenge says.
    pub price: Msat,
    /// Requests served on the session. Only [`BuyerSessions::count_buyer_session_request`]
    /// changes it once the row exists (so parallel requests are all counted).
    pub requests: u64,
    pub return_hash: PaymentHash,
    pub return_invoice: String,
    pub idle_secs: u64,
    pub status: BuyerSessionStatus,
    /// What the seller said it refunded, once closed.
    pub refund: Option<Msat>,
    pub refund_status: Option<String>,
    pub opened_at: u64,
    pub last_used_at: u64,
    pub closed_at: Option<u64>,
    /// A top-up being paid, or paid and not yet answered by the seller (its payment hash).
    pub pending_top_up: Option<PaymentHash>,
}

/// The buyer's sessions.
#[async_trait]
pub trait BuyerSessions: Send + Sync + std::fmt::Debug {
    /// Write a session (replacing the one of the same wallet and id).
    async fn save_buyer_session(&self, session: &BuyerSession) -> Result<(), StorageError>;
    /// The open session of `wallet` with `origin` in `realm`, if any (the newest).
    async fn open_buyer_session(
        &self,
        wallet: &str,
        origin: &str,
        realm: &str,
    ) -> Result<Option<BuyerSession>, StorageError>;
    /// One session by id.
    async fn buyer_session(
        &self,
        wallet: &str,
        id: &PaymentHash,
    ) -> Result<Option<BuyerSession>, StorageError>;
    /// `wallet`'s sessions that are not closed (opening, open, failed), newest first.
    async fn live_buyer_sessions(&self, wallet: &str) -> Result<Vec<BuyerSession>, StorageError>;
    /// Count one request served on a session, at `url` and `now`, with the challenge it
    /// answered (when it changed), in one statement: parallel requests are all counted.
    /// The number of requests now; `None` when there is no such session.
    async fn count_buyer_session_request(
        &self,
        wallet: &str,
        id: &PaymentHash,
        url: &str,
        challenge: Option<&str>,
        now: u64,
    ) -> Result<Option<u64>, StorageError>;
}

const COLUMNS: &str = "wallet, session_id, origin, realm, url, preimage, challenge, deposit_msat, \
     price_msat, requests, return_hash, return_invoice, idle_secs, status, refund_msat, refund_status, \
     opened_at, last_used_at, closed_at, pending_top_up";

fn from_row(row: &AnyRow) -> Result<BuyerSession, StorageError> {
    let n = |col: &str| -> Result<u64, StorageError> { uint(col, row.try_get(col)?) };
    let opt = |col: &str| -> Result<Option<u64>, StorageError> {
        row.try_get::<Option<i64>, _>(col)?
            .map(|v| uint(col, v))
            .transpose()
    };
    Ok(BuyerSession {
        wallet: row.try_get("wallet")?,
        id: PaymentHash(bytes32("session id", row.try_get("session_id")?)?),
        origin: row.try_get("origin")?,
        realm: row.try_get("realm")?,
        url: row.try_get("url")?,
        preimage: Preimage(bytes32("session preimage", row.try_get("preimage")?)?),
        challenge: row.try_get("challenge")?,
        deposit: Msat::from_msat(n("deposit_msat")?),
        price: Msat::from_msat(n("price_msat")?),
        requests: n("requests")?,
        return_hash: PaymentHash(bytes32("return hash", row.try_get("return_hash")?)?),
        return_invoice: row.try_get("return_invoice")?,
        idle_secs: n("idle_secs")?,
        status: BuyerSessionStatus::parse(&row.try_get::<String, _>("status")?)?,
        refund: opt("refund_msat")?.map(Msat::from_msat),
        refund_status: row.try_get("refund_status")?,
        opened_at: n("opened_at")?,
        last_used_at: n("last_used_at")?,
        closed_at: opt("closed_at")?,
        pending_top_up: row
            .try_get::<Option<String>, _>("pending_top_up")?
            .map(|h| bytes32("pending top-up", &h).map(PaymentHash))
            .transpose()?,
    })
}

#[async_trait]
impl BuyerSessions for Engine {
    async fn save_buyer_session(&self, s: &BuyerSession) -> Result<(), StorageError> {
        sqlx::query(
            "INSERT INTO mpp_buyer_sessions (wallet, session_id, origin, realm, url, preimage, challenge,
                 deposit_msat, price_msat, requests, return_hash, return_invoice, idle_secs, status,
                 refund_msat, refund_status, opened_at, last_used_at, closed_at, pending_top_up)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)
             ON CONFLICT (wallet, session_id) DO UPDATE SET url = excluded.url, preimage = excluded.preimage,
                 challenge = excluded.challenge,
                 deposit_msat = excluded.deposit_msat, price_msat = excluded.price_msat,
                 status = excluded.status, refund_msat = excluded.refund_msat,
                 refund_status = excluded.refund_status, last_used_at = excluded.last_used_at,
                 closed_at = excluded.closed_at, pending_top_up = excluded.pending_top_up",
        )
        .bind(&s.wallet)
        .bind(s.id.to_hex())
        .bind(&s.origin)
        .bind(&s.realm)
        .bind(&s.url)
        .bind(s.preimage.to_hex())
        .bind(&s.challenge)
        .bind(int(s.deposit.msat())?)
        .bind(int(s.price.msat())?)
        .bind(int(s.requests)?)
        .bind(s.return_hash.to_hex())
        .bind(&s.return_invoice)
        .bind(int(s.idle_secs)?)
        .bind(s.status.as_str())
        .bind(s.refund.map(|r| int(r.msat())).transpose()?)
        .bind(&s.refund_status)
        .bind(int(s.opened_at)?)
        .bind(int(s.last_used_at)?)
        .bind(s.closed_at.map(int).transpose()?)
        .bind(s.pending_top_up.map(|h| h.to_hex()))
        .execute(self.writer())
        .await?;
        Ok(())
    }

    async fn open_buyer_session(
        &self,
        wallet: &str,
        origin: &str,
        realm: &str,
    ) -> Result<Option<BuyerSession>, StorageError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM mpp_buyer_sessions
              WHERE wallet = $1 AND origin = $2 AND realm = $3 AND status = 'open'
              ORDER BY opened_at DESC LIMIT 1"
        )))
        .bind(wallet)
        .bind(origin)
        .bind(realm)
        .fetch_optional(self.reader())
        .await?;
        row.as_ref().map(from_row).transpose()
    }

    async fn buyer_session(
        &self,
        wallet: &str,
        id: &PaymentHash,
    ) -> Result<Option<BuyerSession>, StorageError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM mpp_buyer_sessions WHERE wallet = $1 AND session_id = $2"
        )))
        .bind(wallet)
        .bind(id.to_hex())
        .fetch_optional(self.reader())
        .await?;
        row.as_ref().map(from_row).transpose()
    }

    async fn live_buyer_sessions(&self, wallet: &str) -> Result<Vec<BuyerSession>, StorageError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM mpp_buyer_sessions WHERE wallet = $1 AND status != 'closed'
              ORDER BY opened_at DESC"
        )))
        .bind(wallet)
        .fetch_all(self.reader())
        .await?;
        rows.iter().map(from_row).collect()
    }

    async fn count_buyer_session_request(
        &self,
        wallet: &str,
        id: &PaymentHash,
        url: &str,
        challenge: Option<&str>,
        now: u64,
    ) -> Result<Option<u64>, StorageError> {
        let n: Option<i64> = sqlx::query_scalar(
            "UPDATE mpp_buyer_sessions
                SET requests = requests + 1, url = $3, last_used_at = $4,
                    challenge = COALESCE($5, challenge)
              WHERE wallet = $1 AND session_id = $2
             RETURNING requests",
        )
        .bind(wallet)
        .bind(id.to_hex())
        .bind(url)
        .bind(int(now)?)
        .bind(challenge)
        .fetch_optional(self.writer())
        .await?;
        n.map(|n| uint("requests", n)).transpose()
    }
}
