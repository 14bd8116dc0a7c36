//! The MCP face of the library: the tool server, and its transports (stdio, streamable HTTP,
//! and the legacy HTTP+SSE transport for older clients).

pub(crate) mod approval;
pub(crate) mod apps;
pub mod http;
pub(crate) mod jsonrpc;
pub(crate) mod notify;
mod server;
pub mod sessions;
pub mod sse;
pub mod stdio;
pub(crate) mod tools;

pub use server::L402Server;
