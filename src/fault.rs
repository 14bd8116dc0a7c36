//! Crash points for fault tests: with `L402_MCP_FAULT=<point>` in its environment the process
//! aborts at that point, as if killed there. Points: `after-reserve` (budget reserved, wallet not
//! yet asked to pay) and `after-pay` (wallet paid, ledger not yet updated).

use std::sync::OnceLock;

pub const FAULT_ENV: &str = "L402_MCP_FAULT";

pub(crate) fn point(name: &str) {
    static CHOSEN: OnceLock<Option<String>> = OnceLock::new();
    if CHOSEN
        .get_or_init(|| std::env::var(FAULT_ENV).ok())
        .as_deref()
        == Some(name)
    {
        tracing::error!(point = name, "fault injection: aborting the process");
        std::process::abort();
    }
}
