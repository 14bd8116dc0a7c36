//! Crash points for fault tests: with `L402_MCP_FAULT=<point>` in its environment the process
//! aborts at that point, as if killed there; with `L402_MCP_FAULT=<point>:pause` it logs
//! `fault injection: paused` (with its pid) and stops there, for a test to SIGKILL it. Points:
//! `after-reserve` (budget reserved, wallet not yet asked to pay) and `after-pay` (wallet paid,
//! ledger not yet updated); for a `Payment` session's refund, `mpp-after-close` (closed, refund
//! owed, not yet reserved), `refund-after-reserve` and `refund-after-pay`.

use std::sync::OnceLock;

pub const FAULT_ENV: &str = "L402_MCP_FAULT";

pub(crate) fn point(name: &str) {
    static CHOSEN: OnceLock<Option<String>> = OnceLock::new();
    match CHOSEN
        .get_or_init(|| std::env::var(FAULT_ENV).ok())
        .as_deref()
        .and_then(|chosen| chosen.strip_prefix(name))
    {
        Some("") => {
            tracing::error!(point = name, "fault injection: aborting the process");
            std::process::abort();
        }
        Some(":pause") => {
            tracing::error!(
                point = name,
                pid = std::process::id(),
                "fault injection: paused"
            );
            loop {
                std::thread::sleep(std::time::Duration::from_secs(3600));
            }
        }
        _ => {}
    }
}
