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
/// Wrong PINs in a row taken before PIN entry locks, on every channel and in every process
/// of the wallet (the count is kept in the storage, so a new process does not start afresh).
pub const FREE_TRIES: u32 = 5;
/// The first lock; each further wrong PIN doubles it, up to [`MAX_LOCK_SECS`].
const FIRST_LOCK_SECS: u64 = 60;
const MAX_LOCK_SECS: u64 = 3600;

#[derive(Debug, thiserror::Error)]
pub enum PinError {
    #[error(
        "a PIN is set for approvals: give it (it is read from the terminal, never from arguments or the environment)"
    )]
    Required,
    #[error("wrong PIN; nothing was decided")]
    Wrong,
    #[error(
        "too many wrong PINs: PIN entry is locked until {until} (unix seconds), on every channel; nothing was decided"
    )]
    Locked { until: u64 },
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

/// Wrong PINs given in a row, and until when PIN entry is locked.
#[derive(Serialize, Deserialize, Default)]
struct Failures {
    wrong: u32,
    locked_until: u64,
}

fn key(wallet: &str) -> String {
    format!("approval_pin.{wallet}")
}

fn failures_key(wallet: &str) -> String {
    format!("approval_pin_failures.{wallet}")
}

async fn failures(ledger: &dyn SpendLedger, wallet: &str) -> Result<Failures, StorageError> {
    let key = failures_key(wallet);
    match ledger.setting(&key).await? {
        None => Ok(Failures::default()),
        Some(v) => serde_json::from_str::<Option<Failures>>(&v)
            .map(Option::unwrap_or_default)
            .map_err(|e| StorageError::Corrupt(format!("setting {key}: {e}"))),
    }
}

async fn set_failures(
    ledger: &dyn SpendLedger,
    wallet: &str,
    f: Option<&Failures>,
    now: u64,
) -> Result<(), StorageError> {
    let json = serde_json::to_string(&f).map_err(|e| StorageError::Corrupt(e.to_string()))?;
    ledger.set_setting(&failures_key(wallet), &json, now).await
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
    set_failures(ledger, wallet, None, now).await?;
    Ok(())
}

/// Remove the PIN.
pub async fn clear(ledger: &dyn SpendLedger, wallet: &str, now: u64) -> Result<(), StorageError> {
    ledger.set_setting(&key(wallet), "null", now).await
}

/// `Ok` when no PIN is set or `given` is it. Wrong PINs are counted in the storage: after
/// [`FREE_TRIES`] in a row, PIN entry locks for a minute, doubling with each further wrong one
/// (up to an hour), for every channel and process, so the PIN cannot be guessed by trying
/// (at most a couple of dozen tries a day once locked). A right PIN clears the count.
pub async fn check(
    ledger: &dyn SpendLedger,
    wallet: &str,
    given: Option<&str>,
    now: u64,
) -> Result<(), PinError> {
    let Some(s) = stored(ledger, wallet).await? else {
        return Ok(());
    };
    let mut failed = failures(ledger, wallet).await?;
    if failed.locked_until > now {
        return Err(PinError::Locked {
            until: failed.locked_until,
        });
    }
    let given = given.map(str::trim).filter(|g| !g.is_empty());
    let Some(given) = given else {
        return Err(PinError::Required);
    };
    let salt = hex::decode(&s.salt).map_err(|e| StorageError::Corrupt(format!("PIN salt: {e}")))?;
    let want = hex::decode(&s.hash).map_err(|e| StorageError::Corrupt(format!("PIN hash: {e}")))?;
    let got = derive(given, &salt, s.rounds);
    if bool::from(got.as_slice().ct_eq(&want)) {
        if failed.wrong > 0 {
            set_failures(ledger, wallet, None, now).await?;
        }
        return Ok(());
    }
    failed.wrong = failed.wrong.saturating_add(1);
    if let Some(over) = failed.wrong.checked_sub(FREE_TRIES) {
        let lock = FIRST_LOCK_SECS
            .checked_shl(over)
            .unwrap_or(MAX_LOCK_SECS)
            .min(MAX_LOCK_SECS);
        failed.locked_until = now.saturating_add(lock);
    }
    set_failures(ledger, wallet, Some(&failed), now).await?;
    Err(PinError::Wrong)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn wrong_pins_lock_entry_for_longer_and_longer_everywhere() {
        let dir = tempfile::tempdir().unwrap();
        let storage = crate::storage::Storage::open_sqlite(dir.path())
            .await
            .unwrap();
        let ledger = storage.ledger();
        let l = ledger.as_ref();
        let t0 = 1_000;
        check(l, "w", None, t0).await.unwrap(); // no PIN: nothing asked
        set(l, "w", "2468", t0).await.unwrap();
        for _ in 0..FREE_TRIES - 1 {
            assert!(matches!(
                check(l, "w", Some("0000"), t0).await,
                Err(PinError::Wrong)
            ));
        }
        // A right PIN clears the count: five more wrong ones are taken.
        check(l, "w", Some("2468"), t0).await.unwrap();
        for _ in 0..FREE_TRIES {
            assert!(matches!(
                check(l, "w", Some("0000"), t0).await,
                Err(PinError::Wrong)
            ));
        }
        // Locked for a minute, even for the right PIN (kept in the storage: every process).
        let locked = check(l, "w", Some("2468"), t0 + 59).await;
        assert!(matches!(locked, Err(PinError::Locked { until }) if until == t0 + 60));
        // The next wrong one locks for two minutes, then four...
        assert!(matches!(
            check(l, "w", Some("1111"), t0 + 60).await,
            Err(PinError::Wrong)
        ));
        assert!(matches!(
            check(l, "w", Some("2468"), t0 + 60).await,
            Err(PinError::Locked { until }) if until == t0 + 180
        ));
        let mut now = t0 + 180;
        for _ in 0..20 {
            let _ = check(l, "w", Some("1111"), now).await;
            now += MAX_LOCK_SECS;
        }
        // ... up to an hour.
        assert!(matches!(
            check(l, "w", Some("2468"), now - MAX_LOCK_SECS + 1).await,
            Err(PinError::Locked { until }) if until == now
        ));
        check(l, "w", Some("2468"), now).await.unwrap();
        // Another wallet's count is its own.
        set(l, "v", "1357", now).await.unwrap();
        check(l, "v", Some("1357"), now).await.unwrap();
    }
}
