//! Where a hosted backend keeps its ids for our payments ([`crate::storage::WalletRefs`]),
//! for backends that cannot look a payment up by its hash (Strike's payments, OpenNode's
//! charges): the id is kept before the call that creates the invoice or moves the money
//! returns, so a lost answer or a crash leaves nothing that cannot be looked up.

use std::sync::Arc;

use crate::l402::PaymentHash;
use crate::storage::{Direction, RefKey, WalletRefs};
use crate::wallet::WalletError;

/// The storage's references, under one l402-mcp wallet name; cheap to clone.
#[derive(Clone, Debug)]
pub struct RefStore {
    pub refs: Arc<dyn WalletRefs>,
    /// The l402-mcp wallet name the references go under.
    pub wallet: String,
}

impl RefStore {
    pub fn new(refs: Arc<dyn WalletRefs>, wallet: &str) -> RefStore {
        RefStore {
            refs,
            wallet: wallet.to_owned(),
        }
    }

    fn key<'a>(
        &'a self,
        backend: &'a str,
        direction: Direction,
        payment_hash: &'a PaymentHash,
    ) -> RefKey<'a> {
        RefKey {
            backend,
            wallet: &self.wallet,
            direction,
            payment_hash,
        }
    }

    /// Keep `backend`'s `id` for the payment `payment_hash`, replacing an earlier one. An error
    /// says the id could not be kept: the caller must not go on with what it is for.
    pub async fn put(
        &self,
        backend: &str,
        direction: Direction,
        payment_hash: &PaymentHash,
        id: &str,
    ) -> Result<(), WalletError> {
        let now = super::dates::unix_now();
        self.refs
            .put_ref(&self.key(backend, direction, payment_hash), id, now)
            .await
            .map_err(|e| {
                WalletError::Unavailable(format!(
                    "could not keep {backend}'s id for payment {payment_hash} in the storage ({e}), so nothing was done with it"
                ))
            })
    }

    /// What `backend` keeps for the payment `payment_hash`.
    pub async fn get(
        &self,
        backend: &str,
        direction: Direction,
        payment_hash: &PaymentHash,
    ) -> Result<Option<String>, WalletError> {
        self.refs
            .get_ref(&self.key(backend, direction, payment_hash))
            .await
            .map_err(|e| {
                WalletError::Other(format!(
                    "could not read {backend}'s id for payment {payment_hash} from the storage: {e}"
                ))
            })
    }
}
