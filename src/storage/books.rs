//! The embedded wallet's books: named accounts holding test sats, their node keys, and the
//! invoices they issued. Accounts on one storage pay each other inside it: one transaction
//! claims the invoice, debits the payer and credits the payee. On PostgreSQL an account is one
//! wallet for every instance (its key is kept here, not in a data dir), so a fleet can be tried
//! offline.

use async_trait::async_trait;
use futures::future::BoxFuture;
use sqlx::Row;

use super::engine::{Dialect, Engine, MoneyWrite};
use super::ledger::{PaidRecord, paid_now};
use super::pg_group::undone_unless_ok;
use super::sync_sql::{self, Arg, Statement, bind};
use super::tokens::{CredentialScope, token_row};
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

impl From<rusqlite::Error> for SettleError {
    fn from(e: rusqlite::Error) -> Self {
        SettleError::Storage(StorageError::Sqlite(e))
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
    /// [`EmbeddedBooks::settle`], and in the same commit the payment recorded as succeeded in
    /// the spend ledger of this storage, with the credential it buys cached (`record`): `true`
    /// when it was recorded so (when that pending payment is in this database and, on
    /// PostgreSQL, was reserved by this instance, whose committer then knows the locks the
    /// record needs); else the caller records it. One commit for the transfer and its record;
    /// on PostgreSQL one statement too.
    async fn settle_recorded(
        &self,
        payer: &str,
        bolt11: &str,
        payment_hash: &PaymentHash,
        now: u64,
        record: &PaidRecord<'_>,
    ) -> Result<(Settled, bool), SettleError>;
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
        // One write: nothing can be half-paid. Every check below that fails undoes it, which
        // rolls the claim back. It needs no turn of the payer's (the advisory lock its
        // reservations take): the claim is a conditional update of the invoice's row, and the
        // two accounts' rows are locked before they change (`Settle`; on PostgreSQL by the
        // committer's batch, see `pg_group`), which serialises transfers of one account on any
        // number of instances.
        let write = Settle {
            payer: payer.to_owned(),
            bolt11: bolt11.to_owned(),
            hash: payment_hash.to_hex(),
            amount,
            now,
            now_db: int(now)?,
        };
        // Until the commit returns, nothing happened; a failed commit may have landed, though.
        self.write(None, write, SettleError::OutcomeUnknown).await
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
        let row = invoice_row(inv, now)?;
        bind(sqlx::query(row.sql), &row.args)
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

    async fn settle_recorded(
        &self,
        payer: &str,
        bolt11: &str,
        payment_hash: &PaymentHash,
        now: u64,
        record: &PaidRecord<'_>,
    ) -> Result<(Settled, bool), SettleError> {
        // PostgreSQL's committer takes the locks of a batch's writes before they run
        // (`pg_group`): the record's (the wallet's turn, the payment's spend buckets) it knows
        // only for a payment this instance reserved; any other is recorded the usual way.
        let turn = match self.dialect {
            Dialect::Sqlite => None,
            Dialect::Postgres => match self.record_turn(record.payment_id) {
                Some(turn) => Some(turn),
                None => {
                    let settled = self.settle(payer, bolt11, payment_hash, now).await?;
                    return Ok((settled, false));
                }
            },
        };
        let write = SettleRecorded {
            settle: Settle {
                payer: payer.to_owned(),
                bolt11: bolt11.to_owned(),
                hash: payment_hash.to_hex(),
                amount: None,
                now,
                now_db: int(now)?,
            },
            payment_id: record.payment_id,
            wallet: record.wallet.to_owned(),
            payment_hash: *payment_hash,
            credential: record.credential.cloned(),
        };
        match turn {
            Some(turn) => {
                self.write_in_turn(turn, write, SettleError::OutcomeUnknown)
                    .await
            }
            None => self.write(None, write, SettleError::OutcomeUnknown).await,
        }
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

/// The row of an invoice an account issued (see [`EmbeddedBooks::add_invoice`]); a seller's
/// challenge writes it with its own records.
pub(crate) fn invoice_row(inv: &EmbeddedInvoice<'_>, now: u64) -> Result<Statement, StorageError> {
    Ok(Statement {
        sql: "INSERT INTO embedded_invoices (payment_hash, wallet, bolt11, preimage, amount_msat, description, expires_at, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        args: vec![
            Arg::Text(Some(inv.payment_hash.to_hex())),
            Arg::Text(Some(inv.wallet.to_owned())),
            Arg::Text(Some(inv.bolt11.to_owned())),
            Arg::Text(Some(inv.preimage.to_hex())),
            Arg::Int(int(inv.amount.msat())?),
            Arg::Text(Some(inv.description.to_owned())),
            Arg::Int(int(inv.expires_at)?),
            Arg::Int(int(now)?),
        ],
    })
}

/// A settlement between two embedded accounts (see [`EmbeddedBooks::settle`]): invoice
/// `bolt11` of hash `hash`, paid by `payer`; `amount` only for an amountless invoice.
#[derive(Clone)]
struct Settle {
    payer: String,
    bolt11: String,
    hash: String,
    amount: Option<Msat>,
    now: u64,
    now_db: i64,
}

/// A settlement and the record of the payment it makes, in one write (see
/// [`EmbeddedBooks::settle_recorded`]).
struct SettleRecorded {
    settle: Settle,
    payment_id: i64,
    wallet: String,
    payment_hash: PaymentHash,
    credential: Option<CredentialScope>,
}

impl SettleRecorded {
    /// The record's statements once the transfer is made: the payment's success, then (when it
    /// changed a row) the credential it bought.
    fn record(
        &self,
        settled: &Settled,
    ) -> Result<Option<(Statement, Option<Statement>)>, StorageError> {
        if !settled.preimage.matches(&self.payment_hash) {
            // No proof of payment: the pay path records that itself, loudly.
            return Ok(None);
        }
        let paid = paid_now(
            self.payment_id,
            &self.wallet,
            &self.payment_hash,
            &settled.preimage,
            self.settle.now,
        )?;
        let token = self
            .credential
            .as_ref()
            .map(|c| {
                let token = c.with_proof(settled.preimage, self.payment_hash);
                token_row(&self.wallet, &token, self.settle.now)
            })
            .transpose()?;
        Ok(Some((paid, token)))
    }

    /// [`SETTLE_RECORDED_AT_ONCE`], and why it did not settle if it did not.
    async fn run_at_once(
        self,
        tx: &mut sqlx::AnyConnection,
    ) -> Result<(Settled, bool), SettleError> {
        let token = self.credential.as_ref();
        let text = |f: fn(&CredentialScope) -> String| token.map(f);
        let answer = self
            .settle
            .bind_at_once(sqlx::query(SETTLE_RECORDED_AT_ONCE))?
            .bind(self.payment_id)
            .bind(&self.wallet)
            .bind(text(|t| t.origin.clone()))
            .bind(text(|t| t.path_prefix.clone()))
            .bind(text(|t| t.scheme.as_str().to_owned()))
            .bind(text(|t| crate::l402::b64::encode(&t.macaroon)))
            .bind(token.and_then(|t| t.expires_at).map(int).transpose()?)
            .fetch_optional(&mut *tx)
            .await
            .map_err(SettleError::from)
            .and_then(|row| {
                row.map(|row| {
                    let recorded: i64 = row.try_get("recorded")?;
                    Ok((Settle::read_paid(&row)?, recorded == 1))
                })
                .transpose()
            });
        // Money may have moved: an answer that cannot be read undoes the batch.
        match undone_unless_ok(&mut *tx, answer).await? {
            Some(done) => Ok(done),
            None => Err(self.settle.unsettled(tx).await),
        }
    }
}

impl MoneyWrite for SettleRecorded {
    type Output = (Settled, bool);
    type Error = SettleError;

    fn run(
        self,
        tx: &mut sqlx::AnyConnection,
    ) -> BoxFuture<'_, Result<(Settled, bool), SettleError>> {
        Box::pin(self.run_at_once(tx))
    }

    fn run_sync(self, conn: &rusqlite::Connection) -> Result<(Settled, bool), SettleError> {
        let settled = self.settle.clone().run_sync(conn)?;
        let Some((paid, token)) = self.record(&settled)? else {
            return Ok((settled, false));
        };
        if paid.run_sync(conn)? != 1 {
            return Ok((settled, false));
        }
        if let Some(token) = token {
            token.run_sync(conn)?;
        }
        Ok((settled, true))
    }

    fn transfer(&self) -> Option<(String, String)> {
        self.settle.transfer()
    }

    /// Through sqlx (PostgreSQL) it is one statement, which settles or changes nothing.
    fn needs_savepoint(&self) -> bool {
        false
    }
}

/// The invoice's row as the claim returned it.
struct Claimed {
    payee: String,
    bolt11: String,
    preimage: String,
    amount: i64,
    expires_at: i64,
}

/// The claim: the invoice marked paid by the payer, if nobody paid it yet.
const CLAIM: &str = "UPDATE embedded_invoices SET paid_by = $1, paid_at = $2 WHERE payment_hash = $3 AND paid_by IS NULL
     RETURNING wallet, bolt11, preimage, amount_msat, expires_at";
/// An unclaimed invoice's text, to tell one paid already from one never issued.
const KNOWN: &str = "SELECT bolt11 FROM embedded_invoices WHERE payment_hash = $1";
/// What an amountless invoice received.
const SET_AMOUNT: &str = "UPDATE embedded_invoices SET amount_msat = $1 WHERE payment_hash = $2";
/// Debit and credit in one statement: both rows change, or the payer had too little and the
/// write is undone with the payee's credit in it.
const TRANSFER: &str = "UPDATE embedded_wallets
        SET balance_msat = balance_msat + CASE WHEN name = $2 THEN -$1 ELSE $1 END
      WHERE name IN ($2, $3) AND (name != $2 OR balance_msat >= $1)";
/// PostgreSQL: the claim and the transfer in one statement, one round trip inside a batch
/// instead of three (a savepoint, the claim, the transfer), which changes nothing unless it
/// settles. The invoice is claimed only where `Settle::judge` would let it move money and the
/// payer holds enough; both accounts are locked already (`pg_group::take_turns`), so the
/// balance read stands until the transfer. `$4` is the amount given for an amountless
/// invoice, -1 where none was. No row: nothing changed, and the invoice's row tells why. The
/// column `whole` divides by zero, failing the statement and with it the batch's transaction,
/// should the transfer ever move other than both accounts. (A macro, so that
/// [`SETTLE_RECORDED_AT_ONCE`] can start with the same text.)
macro_rules! settle_at_once {
    () => {
        "WITH c AS (
        UPDATE embedded_invoices i
           SET paid_by = $1, paid_at = $2,
               amount_msat = CASE WHEN i.amount_msat = 0 THEN $4 ELSE i.amount_msat END
         WHERE i.payment_hash = $3 AND i.paid_by IS NULL
           AND lower(i.bolt11 COLLATE \"C\") = lower($5 COLLATE \"C\")
           AND ((i.amount_msat > 0 AND $4 = -1) OR (i.amount_msat = 0 AND $4 > 0))
           AND i.wallet != $1 AND i.expires_at > $6
           AND (SELECT w.balance_msat FROM embedded_wallets w WHERE w.name = $1)
               >= CASE WHEN i.amount_msat = 0 THEN $4 ELSE i.amount_msat END
        RETURNING i.wallet, i.preimage, i.amount_msat),
     t AS (
        UPDATE embedded_wallets w
           SET balance_msat = w.balance_msat + CASE WHEN w.name = $1 THEN -c.amount_msat ELSE c.amount_msat END
          FROM c WHERE w.name IN ($1, c.wallet)
        RETURNING 1)"
    };
}
/// The settlement's answer: the claimed invoice's payee, preimage and amount, and the check
/// that both accounts moved.
macro_rules! settled_columns {
    () => {
        "SELECT c.wallet, c.preimage, c.amount_msat,
            1 / CASE WHEN (SELECT count(*) FROM t) = 2 THEN 1 ELSE 0 END AS whole"
    };
}
const SETTLE_AT_ONCE: &str = concat!(settle_at_once!(), "\n     ", settled_columns!(), " FROM c");
/// PostgreSQL: [`SETTLE_AT_ONCE`], and in the same statement the payment's record (`p`, what
/// `ledger::paid_now` writes: payment `$7` of wallet `$8`, if still pending, with the
/// invoice's preimage, which must hash to the payment hash) and the credential it buys
/// (`k`, what `tokens::token_row` writes, where `$9` names an origin). One round trip and one
/// batch inside the wallet's turn instead of two each; `recorded` is 1 when the record was
/// written.
const SETTLE_RECORDED_AT_ONCE: &str = concat!(
    settle_at_once!(),
    ",
     p AS (
        UPDATE payments
           SET status = 'succeeded', preimage = c.preimage, fee_msat = 0, reserved_msat = 0,
               error = NULL, settled_at = $2, updated_at = $2
          FROM c
         WHERE payments.id = $7 AND payments.wallet = $8 AND payments.direction = 'out'
           AND payments.payment_hash = $3 AND payments.status = 'pending'
           AND encode(sha256(decode(c.preimage, 'hex')), 'hex') = $3
        RETURNING 1),
     k AS (
        INSERT INTO token_cache (wallet, origin, path_prefix, scheme, macaroon, preimage, payment_hash, expires_at, created_at)
        SELECT $8, $9, $10, $11, $12, c.preimage, $3, $13, $2 FROM c
         WHERE $9 IS NOT NULL AND EXISTS (SELECT 1 FROM p)
        ON CONFLICT (wallet, origin, path_prefix) DO UPDATE SET scheme = excluded.scheme, macaroon = excluded.macaroon,
            preimage = excluded.preimage, payment_hash = excluded.payment_hash, expires_at = excluded.expires_at,
            created_at = excluded.created_at, honoured_at = NULL)
     ",
    settled_columns!(),
    ", (SELECT count(*) FROM p) AS recorded FROM c"
);
/// Why an invoice was not settled at once: its row, if it was issued.
const INVOICE_ROW: &str = "SELECT wallet, bolt11, preimage, amount_msat, expires_at, paid_by
     FROM embedded_invoices WHERE payment_hash = $1";

impl Settle {
    fn claim_args(&self) -> [Arg; 3] {
        [
            Arg::Text(Some(self.payer.clone())),
            Arg::Int(self.now_db),
            Arg::Text(Some(self.hash.clone())),
        ]
    }

    /// Why an invoice could not be claimed, from its text if it was issued.
    fn unclaimed(&self, known: Option<String>) -> SettleError {
        match known {
            Some(b) if b.eq_ignore_ascii_case(&self.bolt11) => SettleError::AlreadyPaid,
            _ => SettleError::Unknown,
        }
    }

    /// The amount the claimed invoice lets move, or why none may.
    fn judge(&self, c: &Claimed) -> Result<u64, SettleError> {
        let stored = uint("invoice amount", c.amount)?;
        let expires_at = uint("invoice expiry", c.expires_at)?;
        if !c.bolt11.eq_ignore_ascii_case(&self.bolt11) {
            return Err(SettleError::Unknown);
        }
        let amount = match (stored, self.amount) {
            (0, Some(a)) if !a.is_zero() => a.msat(),
            (s, None) if s > 0 => s,
            _ => return Err(SettleError::AmountMismatch),
        };
        if c.payee == self.payer {
            return Err(SettleError::OwnInvoice);
        }
        if expires_at <= self.now {
            return Err(SettleError::Expired);
        }
        Ok(amount)
    }

    fn transfer_args(&self, c: &Claimed, amount: u64) -> Result<[Arg; 3], SettleError> {
        Ok([
            Arg::Int(int(amount)?),
            Arg::Text(Some(self.payer.clone())),
            Arg::Text(Some(c.payee.clone())),
        ])
    }

    /// [`SETTLE_AT_ONCE`]'s (and [`SETTLE_RECORDED_AT_ONCE`]'s) first arguments.
    fn bind_at_once<'q>(
        &'q self,
        query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    ) -> Result<sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>, SettleError> {
        let given = match self.amount {
            Some(a) => int(a.msat())?,
            None => -1,
        };
        Ok(query
            .bind(&self.payer)
            .bind(self.now_db)
            .bind(&self.hash)
            .bind(given)
            .bind(&self.bolt11)
            .bind(int(self.now)?))
    }

    /// [`SETTLE_AT_ONCE`], and why it did not settle if it did not.
    async fn run_at_once(self, tx: &mut sqlx::AnyConnection) -> Result<Settled, SettleError> {
        let answer = self
            .bind_at_once(sqlx::query(SETTLE_AT_ONCE))?
            .fetch_optional(&mut *tx)
            .await
            .map_err(SettleError::from)
            .and_then(|row| row.map(|row| Settle::read_paid(&row)).transpose());
        // Money may have moved: an answer that cannot be read undoes the batch.
        match undone_unless_ok(&mut *tx, answer).await? {
            Some(settled) => Ok(settled),
            None => Err(self.unsettled(tx).await),
        }
    }

    /// Why the one statement settled nothing, from the invoice's row.
    async fn unsettled(&self, tx: &mut sqlx::AnyConnection) -> SettleError {
        let row = match sqlx::query(INVOICE_ROW)
            .bind(&self.hash)
            .fetch_optional(&mut *tx)
            .await
        {
            Ok(Some(row)) => row,
            Ok(None) => return SettleError::Unknown,
            Err(e) => return e.into(),
        };
        self.refusal(&row).unwrap_or_else(|e| e)
    }

    /// Why an unpaid invoice of row `row` was not settled (or the row could not be read).
    fn refusal(&self, row: &sqlx::any::AnyRow) -> Result<SettleError, SettleError> {
        let bolt11: String = row.try_get("bolt11")?;
        if row.try_get::<Option<String>, _>("paid_by")?.is_some() {
            return Ok(self.unclaimed(Some(bolt11)));
        }
        let c = Claimed {
            payee: row.try_get("wallet")?,
            bolt11,
            preimage: row.try_get("preimage")?,
            amount: row.try_get("amount_msat")?,
            expires_at: row.try_get("expires_at")?,
        };
        // Everything else let it through: the payer held too little.
        Ok(match self.judge(&c) {
            Ok(amount) => SettleError::Insufficient(Msat::from_msat(amount)),
            Err(e) => e,
        })
    }

    /// The settlement's answer, once `moved` rows of the transfer changed.
    fn settled(c: Claimed, amount: u64, moved: u64) -> Result<Settled, SettleError> {
        if moved != 2 {
            return Err(SettleError::Insufficient(Msat::from_msat(amount)));
        }
        Settle::paid(c.payee, &c.preimage, amount)
    }

    /// [`SETTLE_AT_ONCE`]'s row, read.
    fn read_paid(row: &sqlx::any::AnyRow) -> Result<Settled, SettleError> {
        let preimage: String = row.try_get("preimage")?;
        let amount = uint("invoice amount", row.try_get("amount_msat")?)?;
        Settle::paid(row.try_get("wallet")?, &preimage, amount)
    }

    /// What a settlement that moved `amount` to `payee` answers.
    fn paid(payee: String, preimage: &str, amount: u64) -> Result<Settled, SettleError> {
        Ok(Settled {
            preimage: Preimage(bytes32("invoice preimage", preimage)?),
            payee,
            amount: Msat::from_msat(amount),
        })
    }
}

impl MoneyWrite for Settle {
    type Output = Settled;
    type Error = SettleError;

    fn run(self, tx: &mut sqlx::AnyConnection) -> BoxFuture<'_, Result<Settled, SettleError>> {
        Box::pin(self.run_at_once(tx))
    }

    fn run_sync(self, conn: &rusqlite::Connection) -> Result<Settled, SettleError> {
        let claimed =
            sync_sql::query_row(conn, CLAIM, &sync_sql::as_sql(&self.claim_args()), |r| {
                Ok(Claimed {
                    payee: r.get("wallet")?,
                    bolt11: r.get("bolt11")?,
                    preimage: r.get("preimage")?,
                    amount: r.get("amount_msat")?,
                    expires_at: r.get("expires_at")?,
                })
            })?;
        let Some(c) = claimed else {
            let known = sync_sql::query_row(conn, KNOWN, &[&self.hash], |r| r.get::<_, String>(0))?;
            return Err(self.unclaimed(known));
        };
        let amount = self.judge(&c)?;
        if c.amount == 0 {
            sync_sql::execute(conn, SET_AMOUNT, &[&int(amount)?, &self.hash])?;
        }
        let args = self.transfer_args(&c, amount)?;
        let moved = sync_sql::execute(conn, TRANSFER, &sync_sql::as_sql(&args))?;
        Settle::settled(c, amount, u64::try_from(moved).unwrap_or(0))
    }

    fn transfer(&self) -> Option<(String, String)> {
        Some((self.payer.clone(), self.hash.clone()))
    }

    /// Through sqlx (PostgreSQL) it is one statement, which settles or changes nothing.
    fn needs_savepoint(&self) -> bool {
        false
    }
}
