//! `l402-mcp dashboard`: the wallet's page for people, on loopback, until Ctrl-C. It prints a
//! one-time login link (to this terminal only: the link is a credential, never logged).

use std::io::Write;
use std::sync::Arc;

use anyhow::Result;
use clap::Args;

use l402_mcp::app::App;
use l402_mcp::web::{self, Web};

#[derive(Args)]
pub struct DashboardArgs {
    /// Where to listen; loopback only (port 0: any free port)
    #[arg(long, default_value = "127.0.0.1:8403")]
    listen: std::net::SocketAddr,
}

pub async fn run(app: App, args: DashboardArgs, json: bool) -> Result<()> {
    let (listener, addr) = web::bind(args.listen).await?;
    let web = Web::new(Arc::new(app), "");
    let origin = format!("http://{addr}");
    let login = web.login_link(&origin);
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(
            out,
            "{}",
            serde_json::json!({ "url": format!("{origin}/"), "login": login })
        )?;
    } else {
        writeln!(
            out,
            "dashboard of wallet {} at {origin}/\nopen this one-time login link (it works once, for ten minutes):\n{login}",
            web.wallet()
        )?;
    }
    out.flush()?;
    drop(out);
    web::serve(web, listener, super::serve::until_signalled()).await;
    Ok(())
}
