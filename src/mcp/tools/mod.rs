//! The tools, by concern: each a thin translation from a tool call to an operation of
//! [`crate::ops`] (no business logic here), its description and its annotations.
//!
//! - [`buy`]: `fetch_paid`, `pay_invoice`, `discover`
//! - [`sell`]: `create_l402_challenge`, `verify_l402_payment`, `create_invoice`
//! - [`wallet`]: `wallet_balance`, `list_payments`, `decode_invoice`
//! - [`approve`]: `approve_payment`, the tool of the MCP App approval card

pub(crate) mod approve;
pub(crate) mod buy;
pub(crate) mod sell;
pub(crate) mod wallet;
