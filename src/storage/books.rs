//! The embedded wallet's books: named accounts holding test sats, their node keys, and the
//! invoices they issued. Accounts on one storage pay each other inside it: one transaction
//! claims the invoice, debits the payer and credits the payee. On PostgreSQL an account is one
//! wallet for every instance (its key is kept here, not in a data dir), so a fleet can be tried
//! offline.

use async_trait::async_trait;
use sqlx::Row;

use super::engine::{Dialect, Engine};
use super::{StorageError, bytes32, int, uint};
use crate::l402::{Msat, PaymentHash, Preimage};

/// An account as opened.
pub struct EmbeddedAccount {
    /// The node key that signs its invoices (a secret).
    pub node_key: [u8; 32],
    /// True when this call created the account (and granted its demo sats).
    pub created: bool,
}

impl std::fmt::Debug for EmbeddedAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedAccount")
            .field("created", &self.created)
            .finish_non_exhaustive()
    }
}

/// An invoice an account issued.
#[derive(Debug)]
pub struct EmbeddedInvoice<'a> {
    pub payment_hash: &'a PaymentHash,
    pub wallet: &'a str,
    pub bolt11: &'a str,
    pub preimage: &'a Preimage,
    pub amount: Msat,
    pub description: &'a str,
    pub expires_at: u64,
}

/// A payment settled between two accounts.
#[derive(Debug)]
pub struct Settled {
    pub preimage: Preimage,
    pub payee: String,
    pub amount: Msat,
}

/// Why an account could not pay an invoice. Nothing moved, except for `OutcomeUnknown`.
#[derive(Debug, thiserror::Error)]
pub enum SettleError {
    #[error("invoice already paid")]
    AlreadyPaid,
    /// Not an invoice of an account here.
    #[error("not an invoice of this storage")]
    Unknown,
    #[error("a wallet cannot pay its own invoice")]
    OwnInvoice,
    #[error("invoice expired")]
    Expired,
    #[error("insufficient balance for {0} (test sats)")]
    Insufficient(Msat),
    /// An amount was given for an invoice that has one, or none for an amountless invoice.
    #[error(
        "the amount does not fit the invoice (amountless invoices need one, others take theirs)"
    )]
    AmountMismatch,
    /// The storage failed before committing: nothing happened.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The commit failed: it may have landed.
    #[error("commit outcome unknown: {0}")]
    OutcomeUnknown(String),
}

impl From<sqlx::Error> for SettleError {
    fn from(e: sqlx::Error) -> Self {
        SettleError::Storage(StorageError::Db(e))
    }
}

/// An invoice as its issuer sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IssuedInvoice {
    pub amount: Msat,
    pub expires_at: u64,
    pub paid: bool,
}

/// The embedded wallet's accounts and invoices.
#[async_trait]
pub trait EmbeddedBooks: Send + Sync + std::fmt::Debug {
    /// Open account `name`, creating it with `candidate_key` (whose public key is `node_id`)
    /// and `demo_grant` on first use. The key stored wins: another process may have created
    /// the account first. An account recorded before keys were kept here takes the candidate
    /// when its node id matches.
    async fn open_account(
        &self,
        name: &str,
        candidate_key: &[u8; 32],
        node_id: &str,
        demo_grant: Msat,
        now: u64,
    ) -> Result<EmbeddedAccount, StorageError>;
    /// Names of the accounts.
    async fn accounts(&self) -> Result<Vec<String>, StorageError>;
    /// Add test sats; the new balance.
    async fn deposit(&self, name: &str, amount: Msat) -> Result<Msat, StorageError>;
    async fn balance(&self, name: &str) -> Result<Msat, StorageError>;
    /// Test sats added: demo grant + deposits.
    async fn test_sats_added(&self, name: &str) -> Result<Msat, StorageError>;
    async fn add_invoice(
        &self,
        invoice: &EmbeddedInvoice<'_>,
        now: u64,
    ) -> Result<(), StorageError>;
    /// Pay invoice `bolt11` (of hash `payment_hash`) from `payer`, in one transaction.
    async fn settle(
        &self,
        payer: &str,
        bolt11: &str,
        payment_hash: &PaymentHash,
        now: u64,
    ) -> Result<Settled, SettleError>;
    /// Pay `amount` to an amountless invoice (issued with amount 0) from `payer`, in one
    /// transaction; the invoice then records what it received.
    async fn settle_amountless(
        &self,
        payer: &str,
        bolt11: &str,
        payment_hash: &PaymentHash,
        amount: Msat,
        now: u64,
    ) -> Result<Settled, SettleError>;
    /// An invoice `name` issued, if it did.
    async fn issued(
        &self,
        name: &str,
        payment_hash: &PaymentHash,
    ) -> Result<Option<IssuedInvoice>, StorageError>;
    /// The preimage of an invoice `name` paid, if it paid it.
    async fn paid_preimage(
        &self,
        name: &str,
        payment_hash: &PaymentHash,
    ) -> Result<Option<Preimage>, StorageError>;
}

impl Engine {
    /// Settle an invoice between two accounts: `amount` is what an amountless invoice (issued
    /// with amount 0) is paid; an invoice with an amount takes its own (and refuses another).
    async fn settle_with(
        &self,
        payer: &str,
        bolt11: &str,
        payment_hash: &PaymentHash,
        amount: Option<Msat>,
        now: u64,
    ) -> Result<Settled, SettleError> {
        let (payer, bolt11) = (payer.to_owned(), bolt11.to_owned());
        let (hash, now_db) = (payment_hash.to_hex(), int(now)?);
        let dialect = self.dialect;
        // One write: nothing can be half-paid. Every check below that fails undoes it, which
        // rolls the claim back. It needs no turn of the payer's (the advisory lock its
        // reservations take): the claim is a conditional update of the invoice's row, and the
        // two accounts' rows are locked before they change (`settle_in`), which serialises
        // transfers of one account on any number of instances without holding up its
        // reservations meanwhile.
        self.write(
            None,
            move |tx| {
                Box::pin(async move {
                    let claim = Claim {
                        payer: &payer,
                        bolt11: &bolt11,
                        hash: &hash,
                        amount,
                    };
                    settle_in(tx, dialect, claim, now, now_db).await
                })
            },
            // Until the commit returns, nothing happened; a failed commit may have landed, though.
            SettleError::OutcomeUnknown,
        )
        .await
    }

    /// An amount of account `name`: `expr` over its row (a fixed column expression).
    async fn account_amount(
        &self,
        name: &str,
        expr: &'static str,
        what: &str,
    ) -> Result<Msat, StorageError> {
        let sql = format!("SELECT {expr} FROM embedded_wallets WHERE name = $1");
        let v: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(name)
            .fetch_one(self.reader())
            .await?;
        Ok(Msat::from_msat(uint(what, v)?))
    }
}

#[async_trait]
impl EmbeddedBooks for Engine {
    async fn open_account(
        &self,
        name: &str,
        candidate_key: &[u8; 32],
        node_id: &str,
        demo_grant: Msat,
        now: u64,
    ) -> Result<EmbeddedAccount, StorageError> {
        let created = sqlx::query(
            "INSERT INTO embedded_wallets (name, node_id, node_key, balance_msat, demo_granted_msat, created_at)
             VALUES ($1, $2, $3, $4, $4, $5) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(node_id)
        .bind(hex::encode(candidate_key))
        .bind(int(demo_grant.msat())?)
        .bind(int(now)?)
        .execute(self.writer())
        .await?
        .rows_affected()
            > 0;
        if !created {
            // Kept in a key file by an older version: the file's key, if it is this account's.
            sqlx::query(
                "UPDATE embedded_wallets SET node_key = $1 WHERE name = $2 AND node_key IS NULL AND node_id = $3",
            )
            .bind(hex::encode(candidate_key))
            .bind(name)
            .bind(node_id)
            .execute(self.writer())
            .await?;
        }
        let stored: Option<String> =
            sqlx::query_scalar("SELECT node_key FROM embedded_wallets WHERE name = $1")
                .bind(name)
                .fetch_one(self.reader())
                .await?;
        let stored = stored.ok_or_else(|| {
            StorageError::Corrupt(format!(
                "embedded wallet {name} has no node key (its old key file is missing or another wallet's)"
            ))
        })?;
        Ok(EmbeddedAccount {
            node_key: bytes32("embedded wallet key", &stored)?,
            created,
        })
    }

    async fn accounts(&self) -> Result<Vec<String>, StorageError> {
        Ok(
            sqlx::query_scalar("SELECT name FROM embedded_wallets ORDER BY name")
                .fetch_all(self.reader())
                .await?,
        )
    }

    async fn deposit(&self, name: &str, amount: Msat) -> Result<Msat, StorageError> {
        let balance: i64 = sqlx::query_scalar(
            "UPDATE embedded_wallets SET balance_msat = balance_msat + $1, deposited_msat = deposited_msat + $1
             WHERE name = $2 RETURNING balance_msat",
        )
        .bind(int(amount.msat())?)
        .bind(name)
        .fetch_one(self.writer())
        .await?;
        Ok(Msat::from_msat(uint("balance", balance)?))
    }

    async fn balance(&self, name: &str) -> Result<Msat, StorageError> {
        self.account_amount(name, "balance_msat", "balance").await
    }

    async fn test_sats_added(&self, name: &str) -> Result<Msat, StorageError> {
        self.account_amount(
            name,
            "demo_granted_msat + deposited_msat",
            "test sats added",
        )
        .await
    }

    async fn add_invoice(&self, inv: &EmbeddedInvoice<'_>, now: u64) -> Result<(), StorageError> {
        sqlx::query(
            "INSERT INTO embedded_invoices (payment_hash, wallet, bolt11, preimage, amount_msat, description, expires_at, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(inv.payment_hash.to_hex())
        .bind(inv.wallet)
        .bind(inv.bolt11)
        .bind(inv.preimage.to_hex())
        .bind(int(inv.amount.msat())?)
        .bind(inv.description)
        .bind(int(inv.expires_at)?)
        .bind(int(now)?)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    async fn settle(
        &self,
        payer: &str,
        bolt11: &str,
        payment_hash: &PaymentHash,
        now: u64,
    ) -> Result<Settled, SettleError> {
        self.settle_with(payer, bolt11, payment_hash, None, now)
            .await
    }

    async fn settle_amountless(
        &self,
        payer: &str,
        bolt11: &str,
        payment_hash: &PaymentHash,
        amount: Msat,
        now: u64,
    ) -> Result<Settled, SettleError> {
        self.settle_with(payer, bolt11, payment_hash, Some(amount), now)
            .await
    }

    async fn issued(
        &self,
        name: &str,
        payment_hash: &PaymentHash,
    ) -> Result<Option<IssuedInvoice>, StorageError> {
        let row: Option<(i64, i64, Option<String>)> = sqlx::query_as(
            "SELECT amount_msat, expires_at, paid_by FROM embedded_invoices WHERE payment_hash = $1 AND wallet = $2",
        )
        .bind(payment_hash.to_hex())
        .bind(name)
        .fetch_optional(self.reader())
        .await?;
        row.map(|(amount, expires_at, paid_by)| {
            Ok(IssuedInvoice {
                amount: Msat::from_msat(uint("invoice amount", amount)?),
                expires_at: uint("invoice expiry", expires_at)?,
                paid: paid_by.is_some(),
            })
        })
        .transpose()
    }

    async fn paid_preimage(
        &self,
        name: &str,
        payment_hash: &PaymentHash,
    ) -> Result<Option<Preimage>, StorageError> {
        let preimage: Option<String> = sqlx::query_scalar(
            "SELECT preimage FROM embedded_invoices WHERE payment_hash = $1 AND paid_by = $2",
        )
        .bind(payment_hash.to_hex())
        .bind(name)
        .fetch_optional(self.reader())
        .await?;
        preimage
            .map(|p| bytes32("invoice preimage", &p).map(Preimage))
            .transpose()
    }
}

/// The settlement's statements, on the write's connection (see [`EmbeddedBooks::settle`]).
/// What a settlement claims: invoice `bolt11` of hash `hash`, paid by `payer`; `amount` only for
/// an amountless invoice.
struct Claim<'a> {
    payer: &'a str,
    bolt11: &'a str,
    hash: &'a str,
    amount: Option<Msat>,
}

async fn settle_in(
    tx: &mut sqlx::AnyConnection,
    dialect: Dialect,
    claim: Claim<'_>,
    now: u64,
    now_db: i64,
) -> Result<Settled, SettleError> {
    let Claim {
        payer,
        bolt11,
        hash,
        amount,
    } = claim;
    let claimed = sqlx::query(
            "UPDATE embedded_invoices SET paid_by = $1, paid_at = $2 WHERE payment_hash = $3 AND paid_by IS NULL
             RETURNING wallet, bolt11, preimage, amount_msat, expires_at",
        )
        .bind(payer)
        .bind(now_db)
        .bind(hash)
        .fetch_optional(&mut *tx)
        .await?;
    let Some(row) = claimed else {
        let known: Option<String> =
            sqlx::query_scalar("SELECT bolt11 FROM embedded_invoices WHERE payment_hash = $1")
                .bind(hash)
                .fetch_optional(&mut *tx)
                .await?;
        return Err(match known {
            Some(b) if b.eq_ignore_ascii_case(bolt11) => SettleError::AlreadyPaid,
            _ => SettleError::Unknown,
        });
    };
    let payee: String = row.try_get("wallet")?;
    let stored_bolt11: String = row.try_get("bolt11")?;
    let preimage: String = row.try_get("preimage")?;
    let stored = uint("invoice amount", row.try_get("amount_msat")?)?;
    let expires_at = uint("invoice expiry", row.try_get("expires_at")?)?;
    if !stored_bolt11.eq_ignore_ascii_case(bolt11) {
        return Err(SettleError::Unknown);
    }
    let amount = match (stored, amount) {
        (0, Some(a)) if !a.is_zero() => a.msat(),
        (s, None) if s > 0 => s,
        _ => return Err(SettleError::AmountMismatch),
    };
    if stored == 0 {
        sqlx::query("UPDATE embedded_invoices SET amount_msat = $1 WHERE payment_hash = $2")
            .bind(int(amount)?)
            .bind(hash)
            .execute(&mut *tx)
            .await?;
    }
    if payee == payer {
        return Err(SettleError::OwnInvoice);
    }
    if expires_at <= now {
        return Err(SettleError::Expired);
    }
    if dialect == Dialect::Postgres {
        // Both accounts locked in name order: two accounts paying each other at once wait
        // for each other instead of deadlocking. `NO KEY UPDATE` (what the update below takes
        // anyway), not `UPDATE`: the claim above took a key-share lock on the payer's row (the
        // invoice's `paid_by` references it), and so does every concurrent settlement of the
        // payer; `FOR UPDATE` would wait for those and they for it: a deadlock.
        sqlx::query(
            "SELECT name FROM embedded_wallets WHERE name IN ($1, $2) ORDER BY name FOR NO KEY UPDATE",
        )
        .bind(payer)
        .bind(&payee)
        .fetch_all(&mut *tx)
        .await?;
    }
    // Debit and credit in one statement: both rows change, or the payer had too little
    // and the transaction is dropped (rolled back) with the payee's credit in it.
    let moved = sqlx::query(
        "UPDATE embedded_wallets
                SET balance_msat = balance_msat + CASE WHEN name = $2 THEN -$1 ELSE $1 END
              WHERE name IN ($2, $3) AND (name != $2 OR balance_msat >= $1)",
    )
    .bind(int(amount)?)
    .bind(payer)
    .bind(&payee)
    .execute(&mut *tx)
    .await?;
    if moved.rows_affected() != 2 {
        return Err(SettleError::Insufficient(Msat::from_msat(amount)));
    }
    let preimage = Preimage(bytes32("invoice preimage", &preimage)?);
    Ok(Settled {
        preimage,
        payee,
        amount: Msat::from_msat(amount),
    })
}
