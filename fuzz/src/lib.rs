//! The code under fuzzing: the project's own `src/l402/` and `src/bolt11.rs`, compiled here
//! through `#[path]` (the same files, not copies), without the `l402-mcp` crate around them.
//!
//! Why: the fuzz targets only exercise these parsers, which are pure (bytes in, values out) and
//! need a handful of small dependencies (see `../Cargo.toml`). Depending on `l402-mcp` itself
//! pulled in its whole tree (tokio, sqlx, rmcp, reqwest, nostr...), which takes 10-25 minutes to
//! build with coverage instrumentation on two cores; this builds in about 80 s.
//!
//! This works because those files refer to each other only through `super::` paths (their
//! `crate::` paths are in `#[cfg(test)]` modules, not compiled here, and would resolve anyway:
//! the modules are mounted at the same paths as in the project, `crate::l402` and
//! `crate::bolt11`). If they start using another module of the project, this crate stops
//! compiling: mount that module here too if it is as self-contained, else give the code under
//! test what it needs through a parameter instead of a `crate::` path.

#[path = "../../src/l402/mod.rs"]
pub mod l402;

#[path = "../../src/bolt11.rs"]
pub mod bolt11;
