//! The storage's [`WalletRefs`] kept in memory, for a backend opened outside an `App` (the
//! contract suite's wallets): the engines' own are checked in tests/storage_conformance.rs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use l402_mcp::storage::{RefKey, StorageError, WalletRefs};
use l402_mcp::wallet::RefStore;

#[derive(Debug, Default)]
pub struct MemoryRefs(Mutex<HashMap<String, String>>);

fn name(key: &RefKey<'_>) -> String {
    format!(
        "{}/{}/{}/{}",
        key.backend,
        key.wallet,
        key.direction.as_str(),
        key.payment_hash
    )
}

#[async_trait]
impl WalletRefs for MemoryRefs {
    async fn put_ref(&self, key: &RefKey<'_>, id: &str, _now: u64) -> Result<(), StorageError> {
        self.0.lock().unwrap().insert(name(key), id.to_owned());
        Ok(())
    }

    async fn get_ref(&self, key: &RefKey<'_>) -> Result<Option<String>, StorageError> {
        Ok(self.0.lock().unwrap().get(&name(key)).cloned())
    }
}

/// Fresh references in memory for wallet "w".
pub fn in_memory() -> RefStore {
    RefStore::new(Arc::new(MemoryRefs::default()), "w")
}
