//! The token store on PostgreSQL, for several gateway instances. NOT IMPLEMENTED YET.

use std::sync::Arc;

use super::{StoreError, TokenStore};

/// Connect to `url` (`postgres://...`) and bring the schema up to date.
pub async fn connect(url: &str) -> Result<Arc<dyn TokenStore>, StoreError> {
    let _ = url;
    Err(StoreError::Corrupt(
        "PostgreSQL support is not implemented yet".into(),
    ))
}
