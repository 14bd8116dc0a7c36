//! `l402-mcp mcp-gateway`: prices on another MCP server's tools (the Payment scheme's MCP
//! transport), served over streamable HTTP.

use anyhow::{Context, Result, bail};
use clap::Args;
use rmcp::ServiceExt;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};

use l402_mcp::app::App;
use l402_mcp::mcp_gateway::{self, McpGatewayConfig, PaidTools};

#[derive(Args)]
pub struct McpGatewayArgs {
    /// The upstream MCP server to run over stdio, as one command line (e.g. "node server.js")
    #[arg(long, value_name = "COMMAND")]
    upstream_cmd: Option<String>,
    /// Or the upstream's streamable HTTP URL (e.g. http://127.0.0.1:3001/mcp)
    #[arg(long, value_name = "URL")]
    upstream_url: Option<String>,
    /// A tool's price per call, TOOL=SATS (repeatable; tools not named are free)
    #[arg(long = "price", value_name = "TOOL=SATS")]
    prices: Vec<String>,
    /// Where to listen [default: 127.0.0.1:8404]
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
    /// The Payment realm bound into challenge ids [default: the listen address]
    #[arg(long)]
    realm: Option<String>,
    /// Answer an unpaid call with HTTP 402 and L402 + Payment challenges (for clients that pay 402s)
    #[arg(long)]
    http_402: bool,
    /// A Host buyers reach the gateway by, besides loopback names (repeatable), e.g. tools.example.com
    #[arg(long = "allowed-host", value_name = "HOST")]
    allowed_hosts: Vec<String>,
    /// A browser Origin served besides loopback pages (repeatable), e.g. https://app.example.com
    #[arg(long = "allowed-origin", value_name = "ORIGIN")]
    allowed_origins: Vec<String>,
}

pub async fn run(app: App, args: McpGatewayArgs, mut cfg: McpGatewayConfig) -> Result<()> {
    if let Some(cmd) = args.upstream_cmd {
        cfg.upstream_command = Some(cmd.split_whitespace().map(str::to_owned).collect());
    }
    if args.upstream_url.is_some() {
        cfg.upstream_url = args.upstream_url;
    }
    for p in args.prices {
        let (tool, sats) = p
            .split_once('=')
            .with_context(|| format!("--price {p:?}: write TOOL=SATS"))?;
        let sats: u64 = sats
            .trim()
            .parse()
            .with_context(|| format!("--price {p:?}: {sats:?} is not a whole number of sats"))?;
        cfg.prices.insert(tool.trim().to_owned(), sats);
    }
    cfg.listen = args.listen.or(cfg.listen);
    cfg.realm = args.realm.or(cfg.realm);
    cfg.http_402 |= args.http_402;
    cfg.allowed_hosts.extend(args.allowed_hosts);
    cfg.allowed_origins.extend(args.allowed_origins);
    if cfg.prices.is_empty() {
        bail!("no prices: give --price TOOL=SATS or [mcp_gateway.prices] in the config");
    }
    let upstream = match (&cfg.upstream_command, &cfg.upstream_url) {
        (Some(cmd), None) if !cmd.is_empty() => {
            let mut command = tokio::process::Command::new(&cmd[0]);
            command.args(&cmd[1..]);
            let transport = TokioChildProcess::new(command)
                .with_context(|| format!("cannot start the upstream {:?}", cmd[0]))?;
            ().serve(transport)
                .await
                .context("MCP handshake with the upstream (stdio) failed")?
        }
        (None, Some(url)) => {
            l402_mcp::init_tls();
            ().serve(StreamableHttpClientTransport::from_uri(url.as_str()))
                .await
                .with_context(|| format!("MCP handshake with the upstream at {url} failed"))?
        }
        _ => bail!(
            "give exactly one upstream: --upstream-cmd COMMAND or --upstream-url URL (or upstream_command / upstream_url in [mcp_gateway])"
        ),
    };
    let listen = cfg
        .listen
        .unwrap_or(std::net::SocketAddr::from(([127, 0, 0, 1], 8404)));
    let realm = cfg.realm.clone().unwrap_or_else(|| listen.to_string());
    let mpp = app.mpp.clone().with_realm(&realm)?;
    let tools = PaidTools::new(upstream, &cfg.prices, mpp, app.seller.clone())?;
    let shutdown = super::serve::until_signalled();
    if !listen.ip().is_loopback() && cfg.allowed_hosts.is_empty() {
        tracing::warn!(
            %listen,
            "only requests naming a loopback host are answered (403 for others): give the names buyers use with --allowed-host or allowed_hosts in [mcp_gateway]"
        );
    }
    let router = mcp_gateway::http::router(
        tools,
        cfg.http_402,
        &cfg.allowed_hosts,
        &cfg.allowed_origins,
        shutdown.clone(),
    );
    mcp_gateway::http::serve(router, listen, shutdown)
        .await
        .with_context(|| format!("cannot serve on {listen}"))?;
    Ok(())
}
