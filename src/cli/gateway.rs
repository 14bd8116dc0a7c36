//! `l402-mcp gateway`: an L402 paywall in front of an HTTP API.

use anyhow::{Context, Result, bail};
use clap::Args;

use l402_mcp::app::App;
use l402_mcp::gateway::{self, GatewayConfig, RouteConfig};

#[derive(Args)]
pub struct GatewayArgs {
    /// The service to put behind the paywall, e.g. http://127.0.0.1:3000
    #[arg(long)]
    upstream: Option<String>,
    /// Price in sats of every request under --path (a quick single-route gateway)
    #[arg(long)]
    price: Option<u64>,
    /// Path prefix the price applies to
    #[arg(long, default_value = "/")]
    path: String,
    /// Service name in the tokens
    #[arg(long)]
    service: Option<String>,
    /// Token lifetime in seconds
    #[arg(long)]
    valid_for: Option<u64>,
    /// Requests one token pays for (default: unlimited until it expires)
    #[arg(long)]
    max_uses: Option<u64>,
    /// Tokens work only with the method of the request that was challenged
    #[arg(long)]
    bind_method: bool,
    /// Tokens work only under --path
    #[arg(long)]
    bind_path: bool,
    /// Schemes offered and accepted under --path: l402, mpp (the Payment scheme) or l402+mpp
    #[arg(long)]
    auth: Option<String>,
    /// Send only the `L402` challenge line, not the legacy `LSAT` one
    #[arg(long)]
    no_lsat: bool,
    /// Offer Payment sessions under --path (a deposit spent per request, refunded at close)
    #[arg(long)]
    sessions: bool,
    /// Where to listen [default: 127.0.0.1:8402]
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
}

pub async fn run(app: App, args: GatewayArgs, mut cfg: GatewayConfig) -> Result<()> {
    if let Some(u) = args.upstream {
        cfg.upstream = Some(u);
    }
    if let Some(price) = args.price {
        cfg.routes.push(RouteConfig {
            path: args.path.clone(),
            price_sats: Some(price),
            pricing_hook: None,
            free: false,
            service: args.service.clone(),
            tier: None,
            capabilities: Vec::new(),
            valid_for_secs: args.valid_for,
            max_uses: args.max_uses,
            free_per_day: 0,
            bind_method: args.bind_method,
            bind_path: args.bind_path,
            description: None,
            auth: args.auth.clone(),
            send_lsat: args.no_lsat.then_some(false),
            sessions: args.sessions,
            session_deposit_requests: None,
            session_idle_secs: None,
        });
    }
    let upstream = cfg
        .upstream
        .clone()
        .context("no upstream: give --upstream URL or [gateway] upstream in the config")?;
    let routes = gateway::routes_from(&cfg)?;
    if routes.is_empty() {
        bail!("no routes: give --price SATS (with --path) or [[gateway.routes]] in the config");
    }
    let info = app.wallet.info().await;
    let backend = info.as_ref().map_or("configured", |i| i.backend);
    gateway::check_sessions(&routes, app.wallet.as_ref(), backend).map_err(anyhow::Error::msg)?;
    let listen = args
        .listen
        .or(cfg.listen)
        .unwrap_or(std::net::SocketAddr::from(([127, 0, 0, 1], 8402)));
    let mpp = app
        .mpp
        .clone()
        .with_realm(&gateway::mpp_realm(&cfg, listen))?;
    let paywall = gateway::Paywall::new(app.seller.clone(), routes)
        .with_mpp(mpp.clone())
        .trust_forwarded_for(cfg.trust_forwarded_for)
        .pass_unmatched(cfg.passes_unmatched()?);
    let network = info
        .map(|i| i.network.to_string())
        .unwrap_or_else(|_| "unknown".into());
    let about = gateway::discovery::About {
        name: cfg.name.clone().unwrap_or_else(|| "L402 API".into()),
        description: cfg
            .description
            .clone()
            .unwrap_or_else(|| format!("{upstream} behind an L402 paywall")),
        base_url: cfg.public_url.clone(),
        network,
    };
    let app = gateway::app(paywall, &upstream, about, &cfg.cors_origins)?;
    let shutdown = super::serve::until_signalled();
    gateway::spawn_refunds(mpp, shutdown.clone());
    gateway::serve(app, listen, shutdown).await?;
    Ok(())
}
