//! The code under fuzzing: the project's pure protocol crate (`crates/l402-proto`), mounted at
//! the paths the fuzz targets use (`l402_mcp_fuzz::l402`, `l402_mcp_fuzz::bolt11`), which are
//! also its paths inside `l402-mcp`.

pub use l402_proto as l402;
pub use l402_proto::bolt11;
