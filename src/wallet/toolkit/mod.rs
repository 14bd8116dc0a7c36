//! What every remote backend is built from, so that each behaves the same where it should and
//! a new backend writes only what is its own (its API's shapes and what its errors mean):
//!
//! - [`http`]: the HTTP client ([`Rest`]) and its failure classes ([`RestError`]): a timeout on
//!   every request, retries only for idempotent ones, and a failure classified by whether the
//!   request can have reached the backend (a payment then fails for sure, or stays pending);
//! - [`stream`]: answers read as a stream of JSON values (LND's payment updates);
//! - [`tls`]: trusting a node's own certificate ([`Tls`]), read from a PEM file;
//! - [`amount`]: amounts as hosted APIs write them (BTC decimal strings, sat numbers), to msat
//!   exactly, never through a float;
//! - [`dates`]: RFC 3339 timestamps and `Retry-After`, to unix seconds;
//! - [`hosted`]: a hosted wallet's API and its key ([`HostedApi`]: Blink, Strike, OpenNode, ln.bot);
//! - [`json`]: lenient reading of node APIs' JSON: amounts in every form, 32-byte hashes and
//!   preimages, fields of an error body the client cut short;
//! - [`redact`]: quoting a backend's answer in an error without the secrets it may hold;
//! - [`refs`]: where a hosted backend keeps its ids for our payments ([`RefStore`]);
//! - [`node`]: the network a node reports, the invoices it creates, timeouts and whole sats.

pub mod amount;
pub mod dates;
pub mod hosted;
pub mod http;
pub mod json;
pub mod node;
pub mod redact;
pub mod refs;
pub mod stream;
pub mod tls;

pub use hosted::{HostedApi, PreimagePolicy};
pub use http::{Rest, RestError};
pub use refs::RefStore;
pub use tls::Tls;
