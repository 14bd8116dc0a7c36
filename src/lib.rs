//! l402-mcp: a Lightning wallet for AI agents that speaks L402.
//!
//! Data flows one way: entry points (the CLI, the MCP tools in [`mcp`], the [`gateway`]) call
//! the operations in [`ops`], which use the buyer's services ([`fetch`], [`pay`]) and the
//! seller's ([`mint`]); those use the pure protocol ([`l402`], [`bolt11`]), a wallet backend
//! ([`wallet`]) and the storage port ([`storage`]). Nothing below calls back up.
//!
//! The public API, for embedding and for the integration tests:
//! - [`app::App`], opened from a [`config::Config`] by `App::from_config` (the one composition
//!   root), and the operations on it in [`ops`], each with its params and result shape;
//! - the MCP server ([`mcp::L402Server`] and its transports) and the [`gateway`] layer;
//! - the ports an embedder may implement or call: [`wallet::Wallet`], the [`storage`] traits,
//!   the services `App` holds ([`pay::Payer`], [`fetch::Fetcher`], [`mint::Seller`]);
//! - the protocol crate, re-exported as [`l402`] and [`bolt11`].
//!
//! Everything else is `pub(crate)`: the wallet toolkit, the JSON-RPC edge cases, the storage
//! engine, budget arithmetic, limits and helpers.

pub mod app;
pub mod approval;
/// BOLT11 invoices: the protocol crate's, re-exported.
pub use crate::l402::bolt11;
/// The L402 protocol: the `l402-proto` crate (pure; no I/O), re-exported.
pub use l402_proto as l402;
pub mod budget;
pub mod clock;
pub mod config;
pub mod events;
/// Crash points for the fault tests (`L402_MCP_FAULT`): a test hook, not an API.
#[doc(hidden)]
pub mod fault;
pub mod fetch;
pub mod fsutil;
pub mod gateway;
pub(crate) mod listen;
pub mod mcp;
pub mod mcp_gateway;
pub mod mint;
pub mod mpp;
pub mod pay;
pub mod secret;
pub mod wallet;
pub mod web;

/// Install the TLS crypto provider (ring) that reqwest and rustls use, once per process. reqwest
/// is built without a provider of its own, and building an HTTP client before one is installed
/// panics; everything in this crate that builds a client calls this first.
pub fn init_tls() {
    // An error only means a provider is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// An error with its causes, which say what actually went wrong (refused, TLS, DNS): an HTTP
/// client's own message is often only "error sending request".
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        msg.push_str(&format!(": {s}"));
        source = s.source();
    }
    msg
}
pub mod netguard;
pub mod ops;
pub mod payee;
pub mod storage;
