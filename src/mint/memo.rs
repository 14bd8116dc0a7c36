//! Credentials this seller has verified lately, so that one presented again (a buyer's token
//! on its every request through the gateway) skips what depends only on its bytes: the base64
//! and hex, the macaroon's decoding, the preimage's hash, the HMAC chain and the caveats'
//! parsing (issue 16: most of what a token costs over the free route).
//!
//! What stays on every request, memo or not:
//! - the root key and the token's terms are asked of the store
//!   ([`SellerStore::root_key_and_terms`], itself served from memory until a revocation), and
//!   the remembered credential counts only if the same root key is still there: a revoked
//!   token is refused as before;
//! - the caveats are checked against this request and the clock ([`verify::authorize`]): an
//!   expired token, a wrong service, capability, method or path are refused as before;
//! - the sale is recorded once and a use is counted, as for any credential.
//!
//! An entry is keyed by the SHA-256 of the exact `Authorization` value, so a credential is
//! remembered only after that exact value verified in full, and the value itself (a bearer
//! secret) is not kept. Only credentials of one macaroon are remembered (with several, which one
//! verifies first may depend on the request), and only small ones: at most
//! [`MAX_REMEMBERED_LEN`] bytes and [`MAX_REMEMBERED_CAVEATS`] caveats. A buyer may attenuate a
//! token it paid for with caveats of any size, up to a macaroon's 64 KiB; kept, a few thousand
//! of those would hold hundreds of MiB, so those are verified in full every time, as before.
//! Tokens minted here carry two to five caveats in a few hundred bytes.
//!
//! A remembered credential refused for this request gets the refusal the full path would give
//! from the same check on the same caveats; one whose root key is gone or changed is forgotten
//! and verified in full.
//!
//! [`SellerStore::root_key_and_terms`]: crate::storage::SellerStore::root_key_and_terms
//! [`verify::authorize`]: crate::l402::verify::authorize

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use subtle::ConstantTimeEq;

use crate::l402::caveat::Caveat;
use crate::l402::{Identifier, RootKey};

/// Credentials remembered at most; a new one beyond that replaces one of them.
pub(super) const CAPACITY: usize = 2_048;
/// The longest `Authorization` value remembered, in bytes.
pub(super) const MAX_REMEMBERED_LEN: usize = 1_024;
/// The most caveats a remembered credential may carry.
pub(super) const MAX_REMEMBERED_CAVEATS: usize = 8;

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
    /// The key an `Authorization` value is remembered under; `None` for a value too long to
    /// be remembered.
    pub fn key(authorization: &str) -> Option<[u8; 32]> {
        (authorization.len() <= MAX_REMEMBERED_LEN)
            .then(|| crate::l402::sha256(authorization.as_bytes()))
    }

    pub fn get(&self, key: &[u8; 32]) -> Option<Arc<Remembered>> {
        self.entries.lock().ok()?.get(key).cloned()
    }

    /// Remember a credential (unless it has too many caveats). When the memo is full, one
    /// entry makes room: whichever the map yields first, in an order its random hash keys make
    /// arbitrary. Not everything at once, so that one buyer presenting its token spelt many
    /// ways (preimage case, spacing, attenuations) cannot make every other buyer's token pay
    /// its cryptography again at a stroke.
    pub fn keep(&self, key: [u8; 32], remembered: Remembered) {
        if remembered.caveats.len() > MAX_REMEMBERED_CAVEATS {
            return;
        }
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        if entries.len() >= CAPACITY
            && !entries.contains_key(&key)
            && let Some(other) = entries.keys().next().copied()
        {
            entries.remove(&other);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::l402::{PaymentHash, TokenId};

    fn remembered(caveats: usize) -> Remembered {
        let identifier = Identifier {
            payment_hash: PaymentHash([1; 32]),
            token_id: TokenId([2; 32]),
        };
        let caveats = (0..caveats)
            .map(|i| Caveat::parse(format!("c{i}=v").as_bytes()).unwrap())
            .collect();
        Remembered::new([3; 32], identifier, caveats, Vec::new(), RootKey([4; 32]))
    }

    #[test]
    fn the_memo_stays_within_its_capacity_and_keeps_the_newest() {
        let memo = Memo::default();
        for i in 0..CAPACITY + 10 {
            let key = Memo::key(&format!("L402 {i}")).unwrap();
            memo.keep(key, remembered(2));
            assert!(memo.get(&key).is_some(), "{i}");
        }
        assert_eq!(memo.len(), CAPACITY);
    }

    #[test]
    fn large_credentials_are_not_remembered() {
        let memo = Memo::default();
        assert!(Memo::key(&"x".repeat(MAX_REMEMBERED_LEN)).is_some());
        assert!(Memo::key(&"x".repeat(MAX_REMEMBERED_LEN + 1)).is_none());
        let key = [9; 32];
        memo.keep(key, remembered(MAX_REMEMBERED_CAVEATS + 1));
        assert!(memo.get(&key).is_none());
        memo.keep(key, remembered(MAX_REMEMBERED_CAVEATS));
        assert!(memo.get(&key).is_some());
    }
}
