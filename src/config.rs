//! Where things live. The data dir holds the ledger and the embedded wallets' keys; it defaults
//! to the XDG data dir (`$XDG_DATA_HOME/l402-mcp`, else `~/.local/share/l402-mcp`).

use std::path::PathBuf;

/// Environment variable naming the data dir.
pub const DATA_DIR_ENV: &str = "L402_MCP_DATA_DIR";
/// Environment variable naming the wallet.
pub const WALLET_ENV: &str = "L402_MCP_WALLET";
/// The wallet used when none is named.
pub const DEFAULT_WALLET: &str = "default";

/// The default data dir, or `None` when neither `XDG_DATA_HOME` nor `HOME` is set.
pub fn default_data_dir() -> Option<PathBuf> {
    let xdg = std::env::var_os("XDG_DATA_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    let base = xdg.or_else(|| {
        std::env::var_os("HOME")
            .filter(|v| !v.is_empty())
            .map(|h| PathBuf::from(h).join(".local").join("share"))
    })?;
    Some(base.join("l402-mcp"))
}
