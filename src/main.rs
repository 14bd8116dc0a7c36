//! The `l402-mcp` binary: a thin shell over the library (see `cli.rs`).

mod cli;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    l402_mcp::init_tls();
    cli::main().await
}
