//! The `l402-mcp` binary: a thin shell over the library (see `cli/`).

mod cli;

fn main() -> std::process::ExitCode {
    l402_mcp::init_tls();
    let parsed = cli::parse();
    let mut builder = if parsed.wants_one_thread() {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    match builder.enable_all().build() {
        Ok(runtime) => runtime.block_on(cli::main(parsed)),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
