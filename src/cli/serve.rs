//! `l402-mcp serve`: the MCP server over stdio (for `mcpServers`) or HTTP.

use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;
use rmcp::ServiceExt;
use tokio_util::sync::CancellationToken;

use l402_mcp::app::App;
use l402_mcp::config::{self, Config, SecretString};
use l402_mcp::mcp::L402Server;
use l402_mcp::mcp::http::HttpOptions;
use l402_mcp::mcp::sessions::SessionLimits;
use l402_mcp::web::Web;

#[derive(Args)]
pub struct ServeArgs {
    /// Serve MCP over HTTP on this address (e.g. 127.0.0.1:8402): streamable HTTP at /mcp, legacy SSE at /sse
    #[arg(long, value_name = "ADDR")]
    pub http: Option<std::net::SocketAddr>,
    /// Bearer token HTTP clients must send (required off loopback)
    #[arg(long, env = config::HTTP_TOKEN_ENV, hide_env_values = true)]
    http_token: Option<SecretString>,
    /// Extra Host header value to accept, e.g. mcp.example.com (repeatable)
    #[arg(long = "allowed-host")]
    allowed_hosts: Vec<String>,
    /// Extra browser Origin to accept, e.g. https://app.example.com (repeatable)
    #[arg(long = "allowed-origin")]
    allowed_origins: Vec<String>,
    /// With --http on a loopback address: also serve the dashboard at /dashboard/ (prints a one-time login link)
    #[arg(long, requires = "http")]
    dashboard: bool,
}

pub async fn run(app: App, args: ServeArgs, config: Config) -> Result<()> {
    let app = Arc::new(app);
    let server = L402Server::new(app.clone(), config.fetch)?;
    // Payment sessions are closed when idle, and at the end (their deposits come back).
    let stop = CancellationToken::new();
    let tending = server.tend_sessions(stop.clone());
    let Some(bind) = args.http else {
        tracing::info!("MCP over stdio");
        let running = server
            .serve(l402_mcp::mcp::stdio::transport())
            .await
            .context("MCP handshake over stdio failed")?;
        let ended = running.waiting().await;
        stop.cancel();
        let _ = tending.await;
        ended.context("MCP stdio session failed")?;
        return Ok(());
    };
    let http = config.http;
    // Validated when the config was loaded.
    let defaults = SessionLimits::default();
    let sessions = SessionLimits {
        max_sessions: http.max_sessions.unwrap_or(defaults.max_sessions),
        idle: http
            .session_idle_secs
            .map_or(defaults.idle, std::time::Duration::from_secs),
    };
    let mut allowed_hosts = http.allowed_hosts;
    allowed_hosts.extend(args.allowed_hosts);
    let mut allowed_origins = http.allowed_origins;
    allowed_origins.extend(args.allowed_origins);
    let pages = if args.dashboard {
        if !bind.ip().is_loopback() {
            anyhow::bail!(
                "--dashboard is served on loopback only: bind --http to 127.0.0.1 or ::1"
            );
        }
        if bind.port() == 0 {
            anyhow::bail!(
                "--dashboard needs a fixed port for --http (its login link names it), not 0"
            );
        }
        let web = Web::new(app, "/dashboard");
        // The link is a credential: to this terminal (stdout is free under --http), never a log.
        println!(
            "dashboard at http://{bind}/dashboard/ ; one-time login link (works once, for ten minutes):\n{}",
            web.login_link(&format!("http://{bind}"))
        );
        Some(l402_mcp::web::router(web))
    } else {
        None
    };
    let opts = HttpOptions {
        sessions,
        bind,
        bearer_token: args.http_token.or(http.bearer_token),
        allowed_hosts,
        allowed_origins,
        pages,
    };
    let served = l402_mcp::mcp::http::serve(server, opts, until_signalled()).await;
    stop.cancel();
    let _ = tending.await;
    served?;
    Ok(())
}

/// A token cancelled on SIGINT or SIGTERM, for servers to stop gracefully.
pub fn until_signalled() -> CancellationToken {
    let shutdown = CancellationToken::new();
    let on_signal = shutdown.clone();
    tokio::spawn(async move {
        signalled().await;
        on_signal.cancel();
    });
    shutdown
}

async fn signalled() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        if let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = ctrl_c.await;
}
