//! The embedded wallet: the default, offline, for trying things out.
//!
//! Each named wallet is an account of the storage's embedded books ([`EmbeddedBooks`]): its node
//! key (which signs regtest `lnbcrt` invoices) and balance live there, so on PostgreSQL a named
//! wallet is one wallet for every instance. Wallets on one storage settle with each other inside
//! it: one transaction debits the payer, credits the payee and reveals the preimage. A new wallet
//! starts with a demo grant of test sats; none of it is real bitcoin, and it cannot pay invoices
//! from the real Lightning network.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use bitcoin::secp256k1::{PublicKey, Secp256k1, SecretKey};
use rand::RngCore;
use tracing::{info, instrument};

use super::{
    Balance, CreatedInvoice, IncomingStatus, InvoiceRequest, OutgoingStatus, PaymentResult, Wallet,
    WalletError, WalletInfo,
};
use crate::bolt11::{self, DecodedInvoice, Network, NewInvoice};
use crate::clock::SharedClock;
use crate::l402::{Msat, PaymentHash, Preimage};
use crate::storage::{EmbeddedBooks, EmbeddedInvoice, PaidRecord, SettleError, StorageError};

/// Test sats a new embedded wallet starts with.
pub const DEMO_GRANT_MSAT: u64 = 100_000 * crate::l402::MSAT_PER_SAT;

/// What to tell someone who tries to pay a real invoice with the embedded wallet.
pub(crate) const NOT_PAYABLE_HELP: &str = "the embedded demo wallet can only pay invoices issued by embedded wallets on the same storage (it holds test sats, not real bitcoin). To pay real Lightning invoices, configure a real wallet backend (LNbits, LND, Core Lightning, Phoenixd or Nostr Wallet Connect): see the README section \"Wallets\"";

#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("embedded wallet key {path}: {why}")]
    Key { path: String, why: String },
    #[error("wallet name {0:?} must be 1-64 characters of letters, digits, '-' or '_'")]
    BadName(String),
}

/// One named embedded wallet.
pub struct EmbeddedWallet {
    name: String,
    books: Arc<dyn EmbeddedBooks>,
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

/// Where an older version kept the node key of wallet `name` (taken into the storage when the
/// wallet is next opened).
pub(crate) fn legacy_key_path(data_dir: &Path, name: &str) -> PathBuf {
    data_dir.join("wallets").join(format!("{name}.key"))
}

pub(crate) fn validate_name(name: &str) -> Result<(), EmbeddedError> {
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

fn storage(e: StorageError) -> WalletError {
    match e {
        StorageError::Corrupt(_) => WalletError::Corrupt(e.to_string()),
        other => WalletError::Other(format!("embedded wallet storage: {other}")),
    }
}

impl EmbeddedWallet {
    /// Open wallet `name` on `books`, creating it (key and demo grant) on first use. `data_dir`,
    /// when given, is searched for the key file an older version kept.
    pub async fn open(
        books: Arc<dyn EmbeddedBooks>,
        data_dir: Option<&Path>,
        name: &str,
        clock: SharedClock,
    ) -> Result<EmbeddedWallet, EmbeddedError> {
        validate_name(name)?;
        let candidate = match data_dir.map(|d| legacy_key_path(d, name)) {
            Some(path) if path.exists() => read_key(&path)?,
            _ => SecretKey::new(&mut rand::thread_rng()),
        };
        let secp = Secp256k1::signing_only();
        let candidate_id = PublicKey::from_secret_key(&secp, &candidate);
        let account = books
            .open_account(
                name,
                &candidate.secret_bytes(),
                &candidate_id.to_string(),
                Msat::from_msat(DEMO_GRANT_MSAT),
                clock.now(),
            )
            .await?;
        if account.created {
            info!(
                wallet = name,
                demo_grant_sats = DEMO_GRANT_MSAT / crate::l402::MSAT_PER_SAT,
                "created embedded wallet with a demo grant of test sats"
            );
        }
        let node_key = SecretKey::from_slice(&account.node_key).map_err(|_| {
            EmbeddedError::Storage(StorageError::Corrupt(format!(
                "embedded wallet {name}'s node key"
            )))
        })?;
        Ok(EmbeddedWallet {
            name: name.to_owned(),
            node_id: PublicKey::from_secret_key(&secp, &node_key),
            books,
            node_key,
            clock,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Add test sats (embedded wallet only). Returns the new balance.
    #[instrument(skip_all, fields(wallet = %self.name, amount_msat = amount.msat()))]
    pub async fn deposit(&self, amount: Msat) -> Result<Msat, StorageError> {
        let balance = self.books.deposit(&self.name, amount).await?;
        info!(new_balance_msat = balance.msat(), "deposited test sats");
        Ok(balance)
    }

    /// Test sats added to this wallet: demo grant + deposits.
    pub async fn test_sats_added(&self) -> Result<Msat, StorageError> {
        self.books.test_sats_added(&self.name).await
    }
}

fn read_key(path: &Path) -> Result<SecretKey, EmbeddedError> {
    let key_err = |why: String| EmbeddedError::Key {
        path: path.display().to_string(),
        why,
    };
    let text = std::fs::read_to_string(path).map_err(|e| key_err(e.to_string()))?;
    let bytes =
        crate::l402::parse_hex32(&text).ok_or_else(|| key_err("not 64 hex characters".into()))?;
    SecretKey::from_slice(&bytes).map_err(|_| key_err("not a valid secp256k1 key".into()))
}

/// What a failed internal settlement means for the money.
fn settle_error(e: SettleError) -> WalletError {
    match e {
        SettleError::AlreadyPaid => WalletError::Rejected("invoice already paid".into()),
        SettleError::Unknown => WalletError::NotPayable(NOT_PAYABLE_HELP.into()),
        SettleError::OwnInvoice | SettleError::Expired | SettleError::AmountMismatch => {
            WalletError::Rejected(e.to_string())
        }
        SettleError::Insufficient(amount) => WalletError::Rejected(format!(
            "insufficient balance for {amount} (test sats; add more with `l402-mcp wallet deposit`)"
        )),
        // Rolled back before the commit: nothing moved.
        SettleError::Storage(StorageError::Corrupt(c)) => WalletError::Corrupt(c),
        SettleError::Storage(s) => WalletError::Unavailable(s.to_string()),
        SettleError::OutcomeUnknown(why) => WalletError::OutcomeUnknown(why),
    }
}

/// An invoice signed by an embedded wallet and not yet kept in its books: the caller writes its
/// row ([`SignedInvoice::row`]) before anyone may pay it.
pub(crate) struct SignedInvoice {
    pub created: CreatedInvoice,
    preimage: Preimage,
    pub amount: Msat,
    pub description: String,
}

impl SignedInvoice {
    /// The invoice's row in the books of `wallet`.
    pub(crate) fn row<'a>(&'a self, wallet: &'a str) -> EmbeddedInvoice<'a> {
        EmbeddedInvoice {
            payment_hash: &self.created.payment_hash,
            wallet,
            bolt11: &self.created.bolt11,
            preimage: &self.preimage,
            amount: self.amount,
            description: &self.description,
            expires_at: self.created.expires_at,
        }
    }
}

impl EmbeddedWallet {
    /// The books this wallet's account, keys and invoices are kept in.
    pub(crate) fn books(&self) -> &Arc<dyn EmbeddedBooks> {
        &self.books
    }

    /// Sign an invoice without recording it; `None`: amountless (recorded with amount 0 until
    /// paid).
    pub(crate) fn sign(
        &self,
        amount_msat: Option<u64>,
        description: &str,
        expiry_secs: u64,
    ) -> Result<SignedInvoice, WalletError> {
        let mut preimage = [0u8; 32];
        let mut payment_secret = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut preimage);
        rand::thread_rng().fill_bytes(&mut payment_secret);
        let preimage = Preimage(preimage);
        let payment_hash = preimage.payment_hash();
        let now = self.clock.now();
        let bolt11 = bolt11::create(
            &self.node_key,
            &NewInvoice {
                network: Network::Regtest,
                amount_msat,
                description,
                payment_hash,
                payment_secret,
                timestamp: now,
                expiry_secs,
            },
        )
        .map_err(|e| WalletError::Rejected(e.to_string()))?;
        Ok(SignedInvoice {
            created: CreatedInvoice {
                bolt11,
                payment_hash,
                expires_at: now.saturating_add(expiry_secs),
            },
            preimage,
            amount: Msat::from_msat(amount_msat.unwrap_or(0)),
            description: description.to_owned(),
        })
    }

    /// Sign and record an invoice; `None`: amountless (recorded with amount 0 until paid).
    async fn issue(
        &self,
        amount_msat: Option<u64>,
        description: &str,
        expiry_secs: u64,
    ) -> Result<CreatedInvoice, WalletError> {
        let signed = self.sign(amount_msat, description, expiry_secs)?;
        self.books
            .add_invoice(&signed.row(&self.name), self.clock.now())
            .await
            .map_err(storage)?;
        Ok(signed.created)
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
        Ok(Balance {
            msat: self
                .books
                .balance(&self.name)
                .await
                .map_err(storage)?
                .msat(),
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
        self.issue(
            Some(request.amount_msat),
            &request.description,
            request.expiry_secs,
        )
        .await
    }

    #[instrument(skip_all, fields(wallet = %self.name, payment_hash = %invoice.payment_hash))]
    async fn pay_invoice(
        &self,
        invoice: &DecodedInvoice,
        _max_fee_msat: u64,
    ) -> Result<PaymentResult, WalletError> {
        let settled = self
            .books
            .settle(
                &self.name,
                &invoice.bolt11,
                &invoice.payment_hash,
                self.clock.now(),
            )
            .await
            .map_err(settle_error)?;
        info!(amount_msat = settled.amount.msat(), payee = %settled.payee, "settled internally");
        Ok(PaymentResult {
            preimage: Some(settled.preimage),
            fee_msat: 0,
        })
    }

    #[instrument(skip_all, fields(wallet = %self.name, payment_hash = %invoice.payment_hash))]
    async fn pay_invoice_recorded(
        &self,
        invoice: &DecodedInvoice,
        _max_fee_msat: u64,
        record: &PaidRecord<'_>,
    ) -> Result<(PaymentResult, bool), WalletError> {
        let (settled, recorded) = self
            .books
            .settle_recorded(
                &self.name,
                &invoice.bolt11,
                &invoice.payment_hash,
                self.clock.now(),
                record,
            )
            .await
            .map_err(settle_error)?;
        info!(amount_msat = settled.amount.msat(), payee = %settled.payee, recorded, "settled internally");
        Ok((
            PaymentResult {
                preimage: Some(settled.preimage),
                fee_msat: 0,
            },
            recorded,
        ))
    }

    #[instrument(skip_all, fields(wallet = %self.name))]
    async fn create_amountless_invoice(
        &self,
        description: &str,
        expiry_secs: u64,
    ) -> Result<CreatedInvoice, WalletError> {
        self.issue(None, description, expiry_secs).await
    }

    fn pays_amountless(&self) -> bool {
        true
    }

    #[instrument(skip_all, fields(wallet = %self.name, payment_hash = %invoice.payment_hash, amount_msat))]
    async fn pay_amountless(
        &self,
        invoice: &DecodedInvoice,
        amount_msat: u64,
        _max_fee_msat: u64,
    ) -> Result<PaymentResult, WalletError> {
        if invoice.amount_msat.is_some() || amount_msat == 0 {
            return Err(WalletError::Rejected(
                "only an amountless invoice is paid an amount of the payer's choosing".into(),
            ));
        }
        let settled = self
            .books
            .settle_amountless(
                &self.name,
                &invoice.bolt11,
                &invoice.payment_hash,
                Msat::from_msat(amount_msat),
                self.clock.now(),
            )
            .await
            .map_err(settle_error)?;
        info!(payee = %settled.payee, "settled an amountless invoice internally");
        Ok(PaymentResult {
            preimage: Some(settled.preimage),
            fee_msat: 0,
        })
    }

    async fn lookup_incoming(
        &self,
        payment_hash: &PaymentHash,
    ) -> Result<IncomingStatus, WalletError> {
        let issued = self
            .books
            .issued(&self.name, payment_hash)
            .await
            .map_err(storage)?;
        Ok(match issued {
            None => IncomingStatus::NotFound,
            Some(i) if i.paid => IncomingStatus::Settled {
                amount_msat: i.amount.msat(),
            },
            Some(i) if i.expires_at <= self.clock.now() => IncomingStatus::Expired,
            Some(_) => IncomingStatus::Pending,
        })
    }

    async fn lookup_outgoing(
        &self,
        payment_hash: &PaymentHash,
    ) -> Result<OutgoingStatus, WalletError> {
        let preimage = self
            .books
            .paid_preimage(&self.name, payment_hash)
            .await
            .map_err(storage)?;
        Ok(match preimage {
            Some(p) => OutgoingStatus::Succeeded(PaymentResult {
                preimage: Some(p),
                fee_msat: 0,
            }),
            // Settlement is one transaction in this storage: no record means it never happened.
            None => OutgoingStatus::NotFound,
        })
    }
}
