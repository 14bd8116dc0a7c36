//! The `Payment` HTTP authentication scheme ("MPP", IETF draft-httpauth-payment) with the
//! `lightning` method, as Aperture, lnget and mppx speak it: challenges and their HMAC ids,
//! credentials, receipts, and the `charge` and `session` requests and payloads.
//!
//! Pure, like the rest of the crate: strings in, values out; the HMAC secret and the time are
//! passed in. The seller (`l402_mcp::mpp`) keeps the secret, the spent charges and the
//! sessions; the buyer (`l402_mcp::fetch`) pays through the ledger.

pub mod accept;
pub mod b64url;
pub mod challenge;
pub mod credential;
pub mod jcs;
pub mod lightning;
pub mod receipt;
pub mod time;

#[cfg(test)]
pub(crate) mod vectors;

pub use challenge::{Offers, PaymentChallenge, SCHEME};
pub use credential::PaymentCredential;
pub use lightning::{ChargeRequest, Payload, SessionRequest};
pub use receipt::PaymentReceipt;

/// The problem type URI prefix of the scheme's errors.
pub const PROBLEM_BASE: &str = "https://paymentauth.org/problems/";

/// The body Aperture sends with every 402 that carries a `Payment` challenge
/// (`Content-Type: application/problem+json`).
pub const PAYMENT_REQUIRED_PROBLEM: &str = r#"{"type":"https://paymentauth.org/problems/payment-required","title":"Payment Required","status":402,"detail":"Payment required for access."}"#;

/// The `_meta` keys of the MCP transport.
pub const MCP_CREDENTIAL_META: &str = "org.paymentauth/credential";
pub const MCP_RECEIPT_META: &str = "org.paymentauth/receipt";
/// mppx also takes a tool result that carries its challenges here.
pub const MCP_PAYMENT_REQUIRED_META: &str = "org.paymentauth/payment-required";
/// JSON-RPC errors of the MCP transport: payment required (also MCP's URL-elicitation error:
/// told apart by `data.challenges`), verification failed.
pub const MCP_PAYMENT_REQUIRED: i32 = -32042;
pub const MCP_VERIFICATION_FAILED: i32 = -32043;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MppError {
    #[error("malformed Payment challenge: {0}")]
    MalformedChallenge(String),
    #[error("malformed Payment credential: {0}")]
    MalformedCredential(String),
    #[error("malformed payment request: {0}")]
    MalformedRequest(String),
    #[error("malformed Payment-Receipt: {0}")]
    MalformedReceipt(String),
}
