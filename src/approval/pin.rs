//! The approvals PIN: a second factor the human sets at a terminal, asked by every channel a
//! program could drive (the CLI, the approval page, the dashboard), so that an agent with a
//! shell or a browser tool cannot approve its own payments. Stored per wallet as a salted
//! PBKDF2-HMAC-SHA256 hash (setting `approval_pin.<wallet>`), never the PIN itself.

use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::storage::{SpendLedger, StorageError};

pub const MIN_LEN: usize = 4;
pub const MAX_LEN: usize = 64;
const ROUNDS: u32 = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum PinError {
    #[error(
        "a PIN is set for approvals: give it (it is read from the terminal, never from arguments or the environment)"
    )]
    Required,
    #[error("wrong PIN; nothing was decided")]
    Wrong,
    #[error("a PIN must be {MIN_LEN} to {MAX_LEN} characters")]
    Length,
    #[error(transparent)]
    Storage(#[from] StorageError),
}

#[derive(Serialize, Deserialize)]
struct Stored {
    salt: String,
    hash: String,
    rounds: u32,
}

fn key(wallet: &str) -> String {
    format!("approval_pin.{wallet}")
}

fn derive(pin: &str, salt: &[u8], rounds: u32) -> [u8; 32] {
    let mut out = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<sha2::Sha256>(pin.as_bytes(), salt, rounds, &mut out);
    out
}

async fn stored(ledger: &dyn SpendLedger, wallet: &str) -> Result<Option<Stored>, StorageError> {
    let key = key(wallet);
    match ledger.setting(&key).await? {
        None => Ok(None),
        Some(v) => serde_json::from_str::<Option<Stored>>(&v)
            .map_err(|e| StorageError::Corrupt(format!("setting {key}: {e}"))),
    }
}

/// Whether `wallet` has a PIN.
pub async fn is_set(ledger: &dyn SpendLedger, wallet: &str) -> Result<bool, StorageError> {
    Ok(stored(ledger, wallet).await?.is_some())
}

/// Set (or replace) the PIN.
pub async fn set(
    ledger: &dyn SpendLedger,
    wallet: &str,
    pin: &str,
    now: u64,
) -> Result<(), PinError> {
    let pin = pin.trim();
    if !(MIN_LEN..=MAX_LEN).contains(&pin.chars().count()) {
        return Err(PinError::Length);
    }
    let salt = rand::random::<[u8; 16]>();
    let s = Stored {
        salt: hex::encode(salt),
        hash: hex::encode(derive(pin, &salt, ROUNDS)),
        rounds: ROUNDS,
    };
    let json = serde_json::to_string(&s).map_err(|e| StorageError::Corrupt(e.to_string()))?;
    ledger.set_setting(&key(wallet), &json, now).await?;
    Ok(())
}

/// Remove the PIN.
pub async fn clear(ledger: &dyn SpendLedger, wallet: &str, now: u64) -> Result<(), StorageError> {
    ledger.set_setting(&key(wallet), "null", now).await
}

/// `Ok` when no PIN is set or `given` is it.
pub async fn check(
    ledger: &dyn SpendLedger,
    wallet: &str,
    given: Option<&str>,
) -> Result<(), PinError> {
    let Some(s) = stored(ledger, wallet).await? else {
        return Ok(());
    };
    let given = given.map(str::trim).filter(|g| !g.is_empty());
    let Some(given) = given else {
        return Err(PinError::Required);
    };
    let salt = hex::decode(&s.salt).map_err(|e| StorageError::Corrupt(format!("PIN salt: {e}")))?;
    let want = hex::decode(&s.hash).map_err(|e| StorageError::Corrupt(format!("PIN hash: {e}")))?;
    let got = derive(given, &salt, s.rounds);
    if bool::from(got.as_slice().ct_eq(&want)) {
        Ok(())
    } else {
        Err(PinError::Wrong)
    }
}
