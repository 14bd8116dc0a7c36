//! The HMAC secrets of challenge ids, kept in the storage port (on PostgreSQL every instance
//! shares them). One secret per epoch of [`SECRET_EPOCH_SECS`]: challenges are minted under the
//! current epoch's and verified under it and the previous one's, so a secret rotates every day
//! with a day of overlap (a challenge lives minutes). Secrets never leave this module: not in a
//! log, an error or `Debug`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rand::RngCore;

use crate::l402::mpp::PaymentChallenge;
use crate::storage::{MppStore, StorageError};

/// How long one secret mints challenges.
pub const SECRET_EPOCH_SECS: u64 = 24 * 3600;

/// The secrets, read from the storage once per epoch.
#[derive(Clone)]
pub(crate) struct KeyRing {
    store: Arc<dyn MppStore>,
    cache: Arc<Mutex<HashMap<u64, [u8; 32]>>>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing").finish_non_exhaustive()
    }
}

impl KeyRing {
    pub(crate) fn new(store: Arc<dyn MppStore>) -> KeyRing {
        KeyRing {
            store,
            cache: Arc::default(),
        }
    }

    fn cached(&self, epoch: u64) -> Option<[u8; 32]> {
        self.cache.lock().ok()?.get(&epoch).copied()
    }

    fn remember(&self, epoch: u64, secret: [u8; 32]) {
        if let Ok(mut c) = self.cache.lock() {
            c.retain(|e, _| e.saturating_add(2) > epoch);
            c.insert(epoch, secret);
        }
    }

    /// `challenge` with its id set under the current secret (made if this epoch has none yet).
    pub(crate) async fn seal(
        &self,
        challenge: PaymentChallenge,
        now: u64,
    ) -> Result<PaymentChallenge, StorageError> {
        let epoch = now / SECRET_EPOCH_SECS;
        let secret = match self.cached(epoch) {
            Some(s) => s,
            None => {
                let mut candidate = [0u8; 32];
                rand::thread_rng().fill_bytes(&mut candidate);
                let s = self.store.mpp_secret(epoch, &candidate, now).await?;
                self.remember(epoch, s);
                s
            }
        };
        Ok(challenge.sealed(&secret))
    }

    /// Whether `challenge`'s id was made by us: under this epoch's secret or the last one's.
    pub(crate) async fn verify(
        &self,
        challenge: &PaymentChallenge,
        now: u64,
    ) -> Result<bool, StorageError> {
        let epoch = now / SECRET_EPOCH_SECS;
        for e in [epoch, epoch.saturating_sub(1)] {
            let secret = match self.cached(e) {
                Some(s) => Some(s),
                None => {
                    let s = self.store.existing_mpp_secret(e).await?;
                    if let Some(s) = s {
                        self.remember(e, s);
                    }
                    s
                }
            };
            if secret.is_some_and(|s| challenge.id_matches(&s)) {
                return Ok(true);
            }
        }
        Ok(false)
    }
}
