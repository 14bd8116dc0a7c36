//! The embedded wallet: the default, offline, for trying things out.
//!
//! Each named wallet has a node key in `<data dir>/wallets/<name>.key` (mode 0600) and signs
//! regtest (`lnbcrt`) invoices with it. Wallets that share one data dir settle with each other
//! inside the ledger database: one transaction debits the payer, credits the payee and reveals
//! the preimage. A new wallet starts with a demo grant of test sats; none of it is real bitcoin,
//! and it cannot pay invoices from the real Lightning network.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bitcoin::secp256k1::{PublicKey, Secp256k1, SecretKey};
use rand::RngCore;
use tracing::{info, instrument};

use super::{
    Balance, CreatedInvoice, IncomingStatus, InvoiceRequest, OutgoingStatus, PaymentResult, Wallet,
    WalletError, WalletInfo,
};
use crate::bolt11::{self, DecodedInvoice, Network, NewInvoice};
use crate::budget::MSAT_PER_SAT;
use crate::clock::SharedClock;
use crate::ledger::{Ledger, LedgerError, db_int, from_db};

/// Test sats a new embedded wallet starts with.
pub const DEMO_GRANT_MSAT: u64 = 100_000 * MSAT_PER_SAT;

/// What to tell someone who tries to pay a real invoice with the embedded wallet.
pub const NOT_PAYABLE_HELP: &str = "the embedded demo wallet can only pay invoices issued by embedded wallets in the same data dir (it holds test sats, not real bitcoin). To pay real Lightning invoices, configure a real wallet backend (LNbits, LND, Core Lightning, Phoenixd or Nostr Wallet Connect): see the README section \"Wallets\"";

#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("embedded wallet key {path}: {why}")]
    Key { path: String, why: String },
    #[error("wallet name {0:?} must be 1-64 characters of letters, digits, '-' or '_'")]
    BadName(String),
}

/// One named embedded wallet.
pub struct EmbeddedWallet {
    name: String,
    ledger: Ledger,
    node_key: SecretKey,
    node_id: PublicKey,
    clock: SharedClock,
}

impl std::fmt::Debug for EmbeddedWallet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedWallet")
            .field("name", &self.name)
            .field("node_id", &self.node_id.to_string())
            .finish_non_exhaustive()
    }
}

/// Where the node key of wallet `name` lives.
pub fn key_path(data_dir: &Path, name: &str) -> PathBuf {
    data_dir.join("wallets").join(format!("{name}.key"))
}

pub fn validate_name(name: &str) -> Result<(), EmbeddedError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(EmbeddedError::BadName(name.to_owned()))
    }
}

fn db(e: sqlx::Error) -> WalletError {
    WalletError::Other(format!("embedded wallet database: {e}"))
}

/// A value of the embedded wallet's books read back, as the wallet reports it.
fn books(what: &str, v: i64) -> Result<u64, WalletError> {
    from_db(what, v).map_err(|e| WalletError::Corrupt(e.to_string()))
}

impl EmbeddedWallet {
    /// Open wallet `name` in `data_dir`, creating it (key and demo grant) on first use.
    pub async fn open(
        ledger: &Ledger,
        data_dir: &Path,
        name: &str,
        clock: SharedClock,
    ) -> Result<EmbeddedWallet, EmbeddedError> {
        validate_name(name)?;
        let path = key_path(data_dir, name);
        let node_key = load_or_create_key(&path)?;
        let node_id = PublicKey::from_secret_key(&Secp256k1::signing_only(), &node_key);
        let created = sqlx::query(
            "INSERT INTO embedded_wallets (name, node_id, balance_msat, demo_granted_msat, created_at)
             VALUES (?, ?, ?, ?, ?) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(node_id.to_string())
        .bind(db_int(DEMO_GRANT_MSAT)?)
        .bind(db_int(DEMO_GRANT_MSAT)?)
        .bind(db_int(clock.now())?)
        .execute(ledger.writer())
        .await
        .map_err(LedgerError::from)?;
        if created.rows_affected() > 0 {
            info!(
                wallet = name,
                demo_grant_sats = DEMO_GRANT_MSAT / MSAT_PER_SAT,
                "created embedded wallet with a demo grant of test sats"
            );
        }
        let stored: String =
            sqlx::query_scalar("SELECT node_id FROM embedded_wallets WHERE name = ?")
                .bind(name)
                .fetch_one(ledger.pool())
                .await
                .map_err(LedgerError::from)?;
        if stored != node_id.to_string() {
            return Err(EmbeddedError::Key {
                path: path.display().to_string(),
                why: "this key does not belong to the wallet recorded in the ledger (was the key file replaced?)".into(),
            });
        }
        Ok(EmbeddedWallet {
            name: name.to_owned(),
            ledger: ledger.clone(),
            node_key,
            node_id,
            clock,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Names of the embedded wallets in this ledger.
    pub async fn list(ledger: &Ledger) -> Result<Vec<String>, LedgerError> {
        Ok(
            sqlx::query_scalar("SELECT name FROM embedded_wallets ORDER BY name")
                .fetch_all(ledger.pool())
                .await?,
        )
    }

    /// Add test sats (embedded wallet only). Returns the new balance.
    #[instrument(skip_all, fields(wallet = %self.name, amount_msat))]
    pub async fn deposit(&self, amount_msat: u64) -> Result<u64, LedgerError> {
        let max = crate::budget::MAX_SATS * crate::budget::MSAT_PER_SAT;
        let balance: Option<i64> = sqlx::query_scalar(
            "UPDATE embedded_wallets SET balance_msat = balance_msat + ?1, deposited_msat = deposited_msat + ?1
             WHERE name = ?2 AND balance_msat <= ?3 - ?1 RETURNING balance_msat",
        )
        .bind(db_int(amount_msat.min(max + 1))?)
        .bind(&self.name)
        .bind(db_int(max)?)
        .fetch_optional(self.ledger.writer())
        .await?;
        // Refused: the balance would pass every bitcoin there will ever be.
        let balance = balance.ok_or(LedgerError::TooLarge(amount_msat))?;
        info!(new_balance_msat = balance, "deposited test sats");
        from_db("embedded wallet balance", balance)
    }

    /// Test sats added to this wallet: demo grant + deposits.
    pub async fn test_sats_added(&self) -> Result<u64, LedgerError> {
        let v: i64 = sqlx::query_scalar(
            "SELECT demo_granted_msat + deposited_msat FROM embedded_wallets WHERE name = ?",
        )
        .bind(&self.name)
        .fetch_one(self.ledger.pool())
        .await?;
        from_db("embedded wallet test sats added", v)
    }
}

fn load_or_create_key(path: &Path) -> Result<SecretKey, EmbeddedError> {
    let key_err = |why: String| EmbeddedError::Key {
        path: path.display().to_string(),
        why,
    };
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let bytes = crate::l402::parse_hex32(&text)
                .ok_or_else(|| key_err("not 64 hex characters".into()))?;
            SecretKey::from_slice(&bytes).map_err(|_| key_err("not a valid secp256k1 key".into()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = SecretKey::new(&mut rand::thread_rng());
            match crate::fsutil::write_new_secret(path, hex::encode(key.secret_bytes()).as_bytes())
            {
                Ok(()) => Ok(key),
                // Another process created it first: use theirs.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => load_or_create_key(path),
                Err(e) => Err(key_err(e.to_string())),
            }
        }
        Err(e) => Err(key_err(e.to_string())),
    }
}

#[async_trait]
impl Wallet for EmbeddedWallet {
    async fn info(&self) -> Result<WalletInfo, WalletError> {
        Ok(WalletInfo {
            backend: "embedded",
            network: Network::Regtest,
            node_id: Some(self.node_id.to_string()),
            returns_preimages: true,
            demo_funds: true,
        })
    }

    async fn balance(&self) -> Result<Balance, WalletError> {
        let msat: i64 =
            sqlx::query_scalar("SELECT balance_msat FROM embedded_wallets WHERE name = ?")
                .bind(&self.name)
                .fetch_one(self.ledger.pool())
                .await
                .map_err(db)?;
        Ok(Balance {
            msat: books(&format!("embedded wallet {} balance_msat", self.name), msat)?,
            demo_funds: true,
        })
    }

    #[instrument(skip_all, fields(wallet = %self.name, amount_msat = request.amount_msat))]
    async fn create_invoice(
        &self,
        request: &InvoiceRequest,
    ) -> Result<CreatedInvoice, WalletError> {
        if request.amount_msat == 0 {
            return Err(WalletError::Rejected(
                "invoice amount must be positive".into(),
            ));
        }
        let mut preimage = [0u8; 32];
        let mut payment_secret = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut preimage);
        rand::thread_rng().fill_bytes(&mut payment_secret);
        let payment_hash = crate::l402::sha256(&preimage);
        let now = self.clock.now();
        let bolt11 = bolt11::create(
            &self.node_key,
            &NewInvoice {
                network: Network::Regtest,
                amount_msat: Some(request.amount_msat),
                description: &request.description,
                payment_hash,
                payment_secret,
                timestamp: now,
                expiry_secs: request.expiry_secs,
            },
        )
        .map_err(|e| WalletError::Rejected(e.to_string()))?;
        let expires_at = now.saturating_add(request.expiry_secs);
        let int = |v: u64| db_int(v).map_err(|e| WalletError::Other(e.to_string()));
        sqlx::query(
            "INSERT INTO embedded_invoices (payment_hash, wallet, bolt11, preimage, amount_msat, description, expires_at, created_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(hex::encode(payment_hash))
        .bind(&self.name)
        .bind(&bolt11)
        .bind(hex::encode(preimage))
        .bind(int(request.amount_msat)?)
        .bind(&request.description)
        .bind(int(expires_at)?)
        .bind(int(now)?)
        .execute(self.ledger.writer())
        .await
        .map_err(db)?;
        Ok(CreatedInvoice {
            bolt11,
            payment_hash,
            expires_at,
        })
    }

    #[instrument(skip_all, fields(wallet = %self.name, payment_hash = %hex::encode(invoice.payment_hash)))]
    async fn pay_invoice(
        &self,
        invoice: &DecodedInvoice,
        _max_fee_msat: u64,
    ) -> Result<PaymentResult, WalletError> {
        let now = self.clock.now();
        let hash = hex::encode(invoice.payment_hash);
        // One write transaction: nothing can be half-paid.
        let mut tx = self
            .ledger
            .writer()
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(|e| WalletError::Unavailable(e.to_string()))?;
        // Claim the invoice first; every check below that fails drops the transaction, which
        // rolls the claim back.
        let unavailable = |e: sqlx::Error| WalletError::Unavailable(e.to_string());
        let claimed: Option<(String, String, String, i64, i64)> = sqlx::query_as(
            "UPDATE embedded_invoices SET paid_by = ?, paid_at = ? WHERE payment_hash = ? AND paid_by IS NULL
             RETURNING wallet, bolt11, preimage, amount_msat, expires_at",
        )
        .bind(&self.name)
        .bind(i64::try_from(now).unwrap_or(i64::MAX))
        .bind(&hash)
        .fetch_optional(&mut *tx)
        .await
        .map_err(unavailable)?;
        let Some((payee, bolt11, preimage, amount, expires_at)) = claimed else {
            let known: Option<String> =
                sqlx::query_scalar("SELECT bolt11 FROM embedded_invoices WHERE payment_hash = ?")
                    .bind(&hash)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(unavailable)?;
            return Err(match known {
                Some(b) if b.eq_ignore_ascii_case(&invoice.bolt11) => {
                    WalletError::Rejected("invoice already paid".into())
                }
                _ => WalletError::NotPayable(NOT_PAYABLE_HELP.into()),
            });
        };
        if !bolt11.eq_ignore_ascii_case(&invoice.bolt11) {
            return Err(WalletError::NotPayable(NOT_PAYABLE_HELP.into()));
        }
        if payee == self.name {
            return Err(WalletError::Rejected(
                "a wallet cannot pay its own invoice".into(),
            ));
        }
        // An impossible stored amount or expiry refuses the payment (the claim rolls back):
        // a negative amount would credit the payer.
        let corrupt = |e: WalletError| WalletError::Rejected(e.to_string());
        let amount_msat = books("embedded invoice amount_msat", amount).map_err(corrupt)?;
        if books("embedded invoice expires_at", expires_at).map_err(corrupt)? <= now {
            return Err(WalletError::Rejected("invoice expired".into()));
        }
        let debited = sqlx::query("UPDATE embedded_wallets SET balance_msat = balance_msat - ?1 WHERE name = ?2 AND balance_msat >= ?1")
            .bind(amount)
            .bind(&self.name)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        if debited.rows_affected() == 0 {
            return Err(WalletError::Rejected(format!(
                "insufficient balance for {} (test sats; add more with `l402-mcp wallet deposit`)",
                crate::budget::sats(amount_msat)
            )));
        }
        let steps = async {
            sqlx::query(
                "UPDATE embedded_wallets SET balance_msat = balance_msat + ? WHERE name = ?",
            )
            .bind(amount)
            .bind(&payee)
            .execute(&mut *tx)
            .await?;
            tx.commit().await
        };
        // Until the commit returns, nothing happened; a failed commit may have landed, though.
        steps
            .await
            .map_err(|e| WalletError::OutcomeUnknown(e.to_string()))?;
        let preimage = crate::l402::parse_hex32(&preimage)
            .ok_or_else(|| WalletError::Other("stored preimage is corrupt".into()))?;
        info!(amount_msat = amount, payee = %payee, "settled internally");
        Ok(PaymentResult {
            preimage: Some(preimage),
            fee_msat: 0,
        })
    }

    async fn lookup_incoming(
        &self,
        payment_hash: &[u8; 32],
    ) -> Result<IncomingStatus, WalletError> {
        let row: Option<(i64, i64, Option<String>)> =
            sqlx::query_as("SELECT amount_msat, expires_at, paid_by FROM embedded_invoices WHERE payment_hash = ? AND wallet = ?")
                .bind(hex::encode(payment_hash))
                .bind(&self.name)
                .fetch_optional(self.ledger.pool())
                .await
                .map_err(db)?;
        Ok(match row {
            None => IncomingStatus::NotFound,
            Some((amount, _, Some(_))) => IncomingStatus::Settled {
                amount_msat: books("embedded invoice amount_msat", amount)?,
            },
            Some((_, expires_at, None)) => {
                if books("embedded invoice expires_at", expires_at)? <= self.clock.now() {
                    IncomingStatus::Expired
                } else {
                    IncomingStatus::Pending
                }
            }
        })
    }

    async fn lookup_outgoing(
        &self,
        payment_hash: &[u8; 32],
    ) -> Result<OutgoingStatus, WalletError> {
        let preimage: Option<String> = sqlx::query_scalar(
            "SELECT preimage FROM embedded_invoices WHERE payment_hash = ? AND paid_by = ?",
        )
        .bind(hex::encode(payment_hash))
        .bind(&self.name)
        .fetch_optional(self.ledger.pool())
        .await
        .map_err(db)?;
        Ok(match preimage {
            Some(p) => OutgoingStatus::Succeeded(PaymentResult {
                preimage: crate::l402::parse_hex32(&p),
                fee_msat: 0,
            }),
            // Settlement is one transaction in this database: no record means it never happened.
            None => OutgoingStatus::NotFound,
        })
    }
}
