//! Credentials this seller has verified lately, so that one presented again (a buyer's token
//! on its every request through the gateway) skips what depends only on its bytes: the base64
//! and hex, the macaroon's decoding, the preimage's hash, the HMAC chain and the caveats'
//! parsing (issue 16: most of what a token costs over the free route).
//!
//! What stays on every request, memo or not:
//! - the root key and the token's terms are asked of the store ([`SellerStore::root_key_and_terms`],
//!   itself served from memory until a revocation), and the remembered credential counts only if
//!   the same root key is still there: a revoked token is refused as before;
//! - the caveats are checked against this request and the clock ([`verify::authorize`]): an
//!   expired token, a wrong service, capability, method or path are refused as before;
//! - the sale is recorded once and a use is counted, as for any credential.
//!
//! An entry is keyed by the SHA-256 of the exact `Authorization` value, so a credential is
//! remembered only after that exact value verified in full, and the value itself (a bearer
//! secret) is not kept. Only credentials of one macaroon are remembered: with several, which one
//! verifies first may depend on the request. A remembered credential that is refused for this
//! request is verified again in full, so every refusal is the full path's, word for word.
//!
//! [`SellerStore::root_key_and_terms`]: crate::storage::SellerStore::root_key_and_terms
//! [`verify::authorize`]: crate::l402::verify::authorize

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use subtle::ConstantTimeEq;

use crate::l402::caveat::Caveat;
use crate::l402::{Identifier, RootKey};

/// Credentials remembered before the map is emptied (each is a few hundred bytes).
pub(super) const CAPACITY: usize = 4_096;

/// What a full verification of one credential established.
pub(super) struct Remembered {
    /// `sha256(identifier)`: the root key's name in the store.
    pub key_id: [u8; 32],
    pub identifier: Identifier,
    /// The macaroon's caveats, parsed.
    pub caveats: Vec<Caveat>,
    /// The caveats as the macaroon spells them (a full verdict lists them).
    pub caveat_strings: Vec<String>,
    /// The root key the signature was checked with.
    root_key: RootKey,
}

impl Remembered {
    pub fn new(
        key_id: [u8; 32],
        identifier: Identifier,
        caveats: Vec<Caveat>,
        caveat_strings: Vec<String>,
        root_key: RootKey,
    ) -> Remembered {
        Remembered {
            key_id,
            identifier,
            caveats,
            caveat_strings,
            root_key,
        }
    }

    /// Whether `key` is the root key this credential's signature was checked with.
    pub fn signed_with(&self, key: &RootKey) -> bool {
        self.root_key.expose().ct_eq(key.expose()).into()
    }
}

/// The memo: shared by the clones of one seller.
#[derive(Clone, Default)]
pub(super) struct Memo {
    entries: Arc<Mutex<HashMap<[u8; 32], Arc<Remembered>>>>,
}

impl std::fmt::Debug for Memo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let len = self.entries.lock().map_or(0, |e| e.len());
        f.debug_struct("Memo").field("entries", &len).finish()
    }
}

impl Memo {
    /// The key an `Authorization` value is remembered under.
    pub fn key(authorization: &str) -> [u8; 32] {
        crate::l402::sha256(authorization.as_bytes())
    }

    pub fn get(&self, key: &[u8; 32]) -> Option<Arc<Remembered>> {
        self.entries.lock().ok()?.get(key).cloned()
    }

    pub fn keep(&self, key: [u8; 32], remembered: Remembered) {
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        if entries.len() >= CAPACITY && !entries.contains_key(&key) {
            entries.clear();
        }
        entries.insert(key, Arc::new(remembered));
    }

    pub fn forget(&self, key: &[u8; 32]) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(key);
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.lock().map_or(0, |e| e.len())
    }
}
