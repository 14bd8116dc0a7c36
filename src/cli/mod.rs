//! The command line, for people: the same library the MCP tools use, with readable output
//! and `--json` for scripts. Logs go to stderr (`RUST_LOG` to tune); results to stdout, except
//! under `serve`, where stdout belongs to the stdio transport.

mod demo;
mod doctor;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use serde_json::json;

use l402_mcp::app::{App, WalletStatus};
use l402_mcp::budget::{BudgetChange, BudgetPolicy, BudgetStatus, sats};
use l402_mcp::config;
use l402_mcp::mcp::L402Server;
use l402_mcp::mcp::http::HttpOptions;
use l402_mcp::mint::{ChallengeRequest, DEFAULT_INVOICE_EXPIRY_SECS};
use l402_mcp::pay::PayRequest;
use l402_mcp::storage::{Direction, PaymentFilter};
use rmcp::ServiceExt;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    name = "l402-mcp",
    version,
    about = "A Lightning wallet for AI agents that speaks L402"
)]
struct Cli {
    /// Config file [default: $L402_MCP_CONFIG, else $XDG_CONFIG_HOME/l402-mcp/config.toml if it exists]
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Folder holding the ledger and embedded wallet keys [default: $XDG_DATA_HOME/l402-mcp]
    #[arg(long, global = true, env = config::DATA_DIR_ENV)]
    data_dir: Option<PathBuf>,
    /// Wallet name within the data dir (each has its own balance and budget) [default: default]
    #[arg(long, global = true, env = config::WALLET_ENV)]
    wallet: Option<String>,
    /// Print machine-readable JSON instead of text
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the MCP server: stdio by default (for mcpServers), or HTTP with --http
    Serve(ServeArgs),
    /// Watch a buyer agent pay a seller agent through the MCP tools, offline, in a throwaway data dir
    Demo,
    /// Check the configured wallet backend and say what to fix
    Doctor,
    /// Put an HTTP API behind an L402 paywall: `--upstream URL --price SATS`, or [gateway] in the config
    Gateway(GatewayArgs),
    /// Report sales (L402 tokens paid for and accepted)
    Sales {
        /// Period to report, in hours
        #[arg(long, default_value_t = 24)]
        hours: u64,
    },
    /// Show the wallet balance, budget and earnings
    Balance,
    /// Create an invoice to receive sats
    Invoice {
        /// Amount in sats
        amount_sats: u64,
        #[arg(long, default_value = "")]
        description: String,
        /// Seconds until the invoice expires
        #[arg(long, default_value_t = DEFAULT_INVOICE_EXPIRY_SECS)]
        expiry: u64,
    },
    /// Pay a BOLT11 invoice, within the budget
    Pay {
        bolt11: String,
        /// Refuse if the invoice asks for more than this many sats
        #[arg(long)]
        max_sats: Option<u64>,
        /// Routing fee limit in sats (the budget's fee limit applies when lower)
        #[arg(long)]
        max_fee_sats: Option<u64>,
    },
    /// Decode a BOLT11 invoice without paying it
    Decode { bolt11: String },
    /// List recent payments
    History {
        #[arg(long, default_value_t = 20)]
        limit: u32,
        #[arg(long, value_parser = ["in", "out"])]
        direction: Option<String>,
    },
    /// Show or change the spending budget
    Budget {
        #[command(subcommand)]
        action: BudgetAction,
    },
    /// Embedded wallet management
    Wallet {
        #[command(subcommand)]
        action: WalletAction,
    },
    /// Sell: create an L402 challenge (invoice + macaroon)
    Challenge {
        /// Price in sats
        amount_sats: u64,
        #[arg(long)]
        service: Option<String>,
        #[arg(long)]
        tier: Option<u8>,
        /// Capability granted (repeatable)
        #[arg(long = "capability")]
        capabilities: Vec<String>,
        /// Token lifetime in seconds (default: no expiry)
        #[arg(long)]
        valid_for: Option<u64>,
        /// Requests the token pays for (default: unlimited)
        #[arg(long)]
        max_uses: Option<u64>,
        /// Bind the token to an HTTP method (repeatable; default: any); `verify` then needs --method
        #[arg(long = "method")]
        methods: Vec<String>,
        /// Bind the token to requests under this path (default: any); `verify` then needs --path
        #[arg(long)]
        path_prefix: Option<String>,
        #[arg(long)]
        description: Option<String>,
        /// Seconds until the invoice expires
        #[arg(long)]
        expiry: Option<u64>,
    },
    /// Sell: verify an L402 credential ("L402 <macaroon>:<preimage>") for one request served, counting a use
    Verify {
        authorization: String,
        /// The service being accessed (default: any the token is for)
        #[arg(long)]
        service: Option<String>,
        /// A capability the request needs (without --service: in every service the token is for)
        #[arg(long)]
        capability: Option<String>,
        /// The request's HTTP method (a token bound to methods is refused without it)
        #[arg(long)]
        method: Option<String>,
        /// The request's path (a token bound to a path prefix is refused without it)
        #[arg(long)]
        path: Option<String>,
    },
}

#[derive(Args)]
struct ServeArgs {
    /// Serve MCP over HTTP on this address (e.g. 127.0.0.1:8402): streamable HTTP at /mcp, legacy SSE at /sse
    #[arg(long, value_name = "ADDR")]
    http: Option<std::net::SocketAddr>,
    /// Bearer token HTTP clients must send (required off loopback)
    #[arg(long, env = config::HTTP_TOKEN_ENV, hide_env_values = true)]
    http_token: Option<String>,
    /// Extra Host header value to accept, e.g. mcp.example.com (repeatable)
    #[arg(long = "allowed-host")]
    allowed_hosts: Vec<String>,
    /// Extra browser Origin to accept, e.g. https://app.example.com (repeatable)
    #[arg(long = "allowed-origin")]
    allowed_origins: Vec<String>,
}

#[derive(Args)]
struct GatewayArgs {
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
    /// Where to listen [default: 127.0.0.1:8402]
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
}

#[derive(Subcommand)]
enum BudgetAction {
    /// Show the budget and what has been spent
    Show,
    /// Change budget limits (unnamed limits are kept)
    Set(BudgetSet),
}

#[derive(Args)]
struct BudgetSet {
    /// Largest invoice one payment may pay, in sats
    #[arg(long)]
    per_payment_sats: Option<u64>,
    /// Cap over a rolling 24 hours, fees included, in sats
    #[arg(long)]
    daily_sats: Option<u64>,
    /// Cap over the last hour, in sats ("none" to remove)
    #[arg(long, value_parser = optional_sats, value_name = "SATS|none")]
    hourly_sats: Option<OptionalCap>,
    /// Cap per host over 24 hours, in sats ("none" to remove)
    #[arg(long, value_parser = optional_sats, value_name = "SATS|none")]
    per_host_daily_sats: Option<OptionalCap>,
    /// Only pay these hosts (repeatable; replaces the list)
    #[arg(long = "allow-host")]
    allow_hosts: Vec<String>,
    /// Never pay these hosts (repeatable; replaces the list)
    #[arg(long = "deny-host")]
    deny_hosts: Vec<String>,
    /// Empty both host lists
    #[arg(long)]
    clear_hosts: bool,
    /// Routing fee floor in sats
    #[arg(long)]
    max_fee_sats: Option<u64>,
    /// Routing fee limit as a percentage of the amount
    #[arg(long)]
    max_fee_percent: Option<f64>,
}

#[derive(Subcommand)]
enum WalletAction {
    /// Add test sats to an embedded wallet (not real bitcoin)
    Deposit { amount_sats: u64 },
    /// List the embedded wallets in the data dir
    List,
}

/// A cap that can be removed: a number of sats, or "none". Its own type (not `Option<u64>`):
/// clap's derive reads an `Option<Option<u64>>` field as "flag with an optional value" and
/// panics when the parser hands it the inner `Option`.
#[derive(Debug, Clone, Copy)]
struct OptionalCap(Option<u64>);

fn optional_sats(s: &str) -> Result<OptionalCap, String> {
    if s.eq_ignore_ascii_case("none") {
        return Ok(OptionalCap(None));
    }
    s.parse()
        .map(|v| OptionalCap(Some(v)))
        .map_err(|_| format!("{s:?} is not a whole number or \"none\""))
}

/// A sats argument named `name` in msat: at most every bitcoin there will ever be (the rule
/// the MCP tools and the budget follow too).
fn to_msat(name: &'static str, sats: u64) -> Result<u64> {
    Ok(l402_mcp::budget::sats_to_msat(name, sats)?)
}

/// The parsed command line.
pub struct Parsed(Cli);

pub fn parse() -> Parsed {
    Parsed(Cli::parse())
}

impl Parsed {
    /// The stdio server serves one client whose requests are small and mostly wait on I/O: one
    /// thread serves them with less start-up work and fewer hand-offs between threads than a
    /// pool. Everything else (HTTP transports, the gateway, the demo's agents) gets the pool.
    pub fn wants_one_thread(&self) -> bool {
        matches!(&self.0.command, Command::Serve(args) if args.http.is_none())
    }
}

pub async fn main(Parsed(cli): Parsed) -> ExitCode {
    // The server logs its work; one-shot commands only warnings. Always to stderr, which MCP
    // clients show in their logs: no colour codes.
    let default_level = if matches!(cli.command, Command::Serve(_)) {
        "info"
    } else {
        "warn"
    };
    init_logging(default_level);
    let json = cli.json;
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if json {
                println!("{}", json!({ "error": e.to_string() }));
            } else {
                // Library errors carry their cause in their own message; `{e}` prints it once.
                eprintln!("error: {e}");
            }
            ExitCode::FAILURE
        }
    }
}

/// Libraries whose debug and trace events carry whole MCP messages: tool arguments
/// (`verify_l402_payment`'s credential) and results (`pay_invoice`'s preimage, the macaroons
/// `create_l402_challenge` sells). They log at most `info`, whatever RUST_LOG asks.
const CAPPED_TARGETS: &[&str] = &["rmcp"];

/// Logs to stderr at RUST_LOG (else `default_level`), with [`CAPPED_TARGETS`] held at `info`:
/// a secret must not reach a log at any level.
fn init_logging(default_level: &str) {
    use tracing_subscriber::Layer;
    use tracing_subscriber::filter::{LevelFilter, Targets};
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let requested = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let cap = CAPPED_TARGETS.iter().fold(
        Targets::new().with_default(LevelFilter::TRACE),
        |t, target| t.with_target(*target, LevelFilter::INFO),
    );
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_filter(requested)
        .with_filter(cap);
    tracing_subscriber::registry().with(layer).init();
}

async fn run(cli: Cli) -> Result<()> {
    if let Command::Decode { bolt11 } = &cli.command {
        // Needs no wallet and no data dir.
        let d = l402_mcp::bolt11::decode(bolt11)?;
        return print(cli.json, &d, || {
            format!(
                "network      {}\namount       {}\npayment hash {}\ndescription  {}\ncreated      {} (unix)\nexpires      {} (unix, after {} s)\npayee        {}",
                d.network,
                d.amount_msat.map_or("none (amountless)".into(), sats),
                hex::encode(d.payment_hash),
                d.description.as_deref().unwrap_or("-"),
                d.timestamp,
                d.expires_at(),
                d.expiry_secs,
                d.payee
            )
        });
    }
    if let Command::Demo = &cli.command {
        return demo::run().await;
    }
    let cfg = config::Config::load(cli.config.as_deref())?;
    let data_dir = cli
        .data_dir
        .clone()
        .or_else(|| cfg.data_dir())
        .context("no data dir: set --data-dir or L402_MCP_DATA_DIR (HOME is not set)")?;
    let wallet = cli
        .wallet
        .clone()
        .unwrap_or_else(|| cfg.wallet().to_owned());
    if let Command::Doctor = &cli.command {
        return doctor::run(&cfg, &data_dir, &wallet, cli.json).await;
    }
    let app = App::from_config(&cfg, &data_dir, &wallet, l402_mcp::clock::system()).await?;
    let j = cli.json;
    match cli.command {
        Command::Decode { .. } | Command::Demo | Command::Doctor => unreachable!("handled above"),
        Command::Gateway(args) => gateway(app, args, cfg.gateway.unwrap_or_default()).await,
        Command::Sales { hours } => {
            let since = app.clock.now().saturating_sub(hours.saturating_mul(3600));
            let summary = app.seller.tokens().sales_since(since).await?;
            print(j, &summary, || {
                let mut out = format!(
                    "{} sale(s), {} in the last {hours} h",
                    summary.count, summary.amount
                );
                for s in &summary.by_service {
                    out.push_str(&format!(
                        "\n  {:<20} {:>5} sale(s) {:>14}",
                        s.service, s.count, s.amount
                    ));
                }
                out
            })
        }
        Command::Serve(args) => serve(app, args, cfg.http, cfg.fetch).await,
        Command::Balance => {
            let s = app.status().await?;
            print(j, &s, || status_text(&s))
        }
        Command::Invoice {
            amount_sats,
            description,
            expiry,
        } => {
            let (created, _) = app
                .seller
                .create_invoice(to_msat("<sats>", amount_sats)?, &description, expiry)
                .await?;
            let out = json!({ "bolt11": created.bolt11, "payment_hash": hex::encode(created.payment_hash), "amount_msat": to_msat("<sats>", amount_sats)?, "expires_at": created.expires_at });
            print(j, &out, || created.bolt11.clone())
        }
        Command::Pay {
            bolt11,
            max_sats,
            max_fee_sats,
        } => {
            let req = PayRequest {
                invoice: &bolt11,
                max_amount_msat: max_sats.map(|s| to_msat("--max-sats", s)).transpose()?,
                max_fee_msat: max_fee_sats
                    .map(|s| to_msat("--max-fee-sats", s))
                    .transpose()?,
                ..Default::default()
            };
            let receipt = app.payer.pay(&req).await?;
            let demo = app.wallet.info().await?.demo_funds;
            let out = json!({
                "paid": !receipt.already_paid,
                "already_paid": receipt.already_paid,
                "amount_msat": receipt.amount_msat,
                "fee_msat": receipt.fee_msat,
                "payment_hash": receipt.payment_hash,
                "preimage": receipt.preimage.to_hex(),
                "demo_funds": demo,
            });
            print(j, &out, || {
                let what = if receipt.already_paid {
                    "already paid earlier; nothing spent"
                } else {
                    "paid"
                };
                format!(
                    "{what}: {} + {} fee{}\npayment hash {}\npreimage     {}",
                    sats(receipt.amount_msat),
                    sats(receipt.fee_msat),
                    if demo { " (demo test sats)" } else { "" },
                    receipt.payment_hash,
                    receipt.preimage.to_hex()
                )
            })
        }
        Command::History { limit, direction } => {
            let dir = direction.as_deref().map(|d| {
                if d == "in" {
                    Direction::In
                } else {
                    Direction::Out
                }
            });
            let rows = app
                .ledger
                .list_payments(
                    &app.wallet_name,
                    &PaymentFilter {
                        direction: dir,
                        ..PaymentFilter::default()
                    },
                    limit,
                )
                .await?;
            let amounts: Vec<_> = rows
                .iter()
                .map(|p| (p.amount.msat(), p.fee.msat()))
                .collect();
            print(j, &rows, || {
                if rows.is_empty() {
                    return "no payments yet".into();
                }
                rows.iter()
                    .zip(amounts)
                    .map(|(p, (amount, fee))| {
                        let dir = if p.direction == Direction::Out {
                            "out"
                        } else {
                            "in "
                        };
                        format!(
                            "#{:<5} {dir:<3} {:<9} {:>14} fee {:>10}  {}  {}{}",
                            p.id,
                            p.status.as_str(),
                            sats(amount),
                            sats(fee),
                            &p.payment_hash.to_hex()[..16],
                            p.description.as_deref().or(p.url.as_deref()).unwrap_or(""),
                            p.error
                                .as_deref()
                                .map(|e| format!("  [{e}]"))
                                .unwrap_or_default()
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            })
        }
        Command::Budget {
            action: BudgetAction::Show,
        } => {
            let s = app.status().await?;
            print(j, &s.budget, || budget_text(&s.budget))
        }
        Command::Budget {
            action: BudgetAction::Set(set),
        } => {
            let mut p = app.ledger.budget(&app.wallet_name).await?;
            apply_budget(&mut p, set)?;
            app.ledger
                .set_budget(&app.wallet_name, &p, app.clock.now())
                .await?;
            let s = app.status().await?;
            print(j, &s.budget, || {
                format!("budget updated\n{}", budget_text(&s.budget))
            })
        }
        Command::Wallet {
            action: WalletAction::Deposit { amount_sats },
        } => {
            let embedded = app
                .embedded
                .as_ref()
                .context("deposits are only for the embedded wallet")?;
            let deposited = to_msat("<sats>", amount_sats)?;
            let balance = embedded
                .deposit(l402_mcp::l402::Msat::from_msat(deposited))
                .await?
                .msat();
            let out =
                json!({ "deposited_msat": deposited, "balance_msat": balance, "demo_funds": true });
            print(j, &out, || {
                format!(
                    "added {} of test sats (not real bitcoin); balance {}",
                    sats(deposited),
                    sats(balance)
                )
            })
        }
        Command::Wallet {
            action: WalletAction::List,
        } => {
            let names = app.storage.books().accounts().await?;
            print(j, &names, || names.join("\n"))
        }
        Command::Challenge {
            amount_sats,
            max_uses,
            service,
            tier,
            capabilities,
            valid_for,
            methods,
            path_prefix,
            description,
            expiry,
        } => {
            let c = app
                .seller
                .create_challenge(&ChallengeRequest {
                    amount_msat: to_msat("<sats>", amount_sats)?,
                    description,
                    expiry_secs: expiry,
                    service,
                    tier,
                    capabilities,
                    valid_for_secs: valid_for,
                    max_uses,
                    methods,
                    path_prefix,
                })
                .await?;
            print(j, &c, || {
                format!(
                    "invoice   {}\nmacaroon  {}\nWWW-Authenticate: {}\nWWW-Authenticate: {}",
                    c.invoice, c.macaroon, c.www_authenticate[0], c.www_authenticate[1]
                )
            })
        }
        Command::Verify {
            authorization,
            service,
            capability,
            method,
            path,
        } => {
            let access = l402_mcp::mint::Access {
                service: service.as_deref(),
                capability: capability.as_deref(),
                method: method.as_deref(),
                path: path.as_deref(),
                price_msat: None,
            };
            // Admitted as every entry point admits a request: a valid verdict counts a use.
            let v = app.seller.admit(&authorization, access).await?;
            print(j, &v, || {
                if v.valid {
                    format!(
                        "valid: token {} for payment {}{}{}",
                        v.token_id.as_deref().unwrap_or("?"),
                        v.payment_hash.as_deref().unwrap_or("?"),
                        v.amount_paid_msat
                            .map(|a| format!(" ({} paid)", sats(a)))
                            .unwrap_or_default(),
                        match (&v.service, v.tier) {
                            (Some(s), Some(t)) => format!(", service {s} tier {t}"),
                            _ => String::new(),
                        }
                    )
                } else {
                    format!("invalid: {}", v.reason.as_deref().unwrap_or("?"))
                }
            })?;
            if v.valid {
                Ok(())
            } else {
                bail!(
                    "credential refused ({})",
                    v.reason_code.unwrap_or("invalid")
                )
            }
        }
    }
}

async fn serve(
    app: App,
    args: ServeArgs,
    http: config::HttpConfig,
    fetch: config::FetchConfig,
) -> Result<()> {
    let server = L402Server::new(std::sync::Arc::new(app), fetch)?;
    let Some(bind) = args.http else {
        tracing::info!("MCP over stdio");
        let running = server
            .serve(l402_mcp::mcp::stdio::transport())
            .await
            .context("MCP handshake over stdio failed")?;
        running
            .waiting()
            .await
            .context("MCP stdio session failed")?;
        return Ok(());
    };
    // Validated when the config was loaded.
    let defaults = l402_mcp::mcp::sessions::SessionLimits::default();
    let sessions = l402_mcp::mcp::sessions::SessionLimits {
        max_sessions: http.max_sessions.unwrap_or(defaults.max_sessions),
        idle: http
            .session_idle_secs
            .map_or(defaults.idle, std::time::Duration::from_secs),
    };
    let mut allowed_hosts = http.allowed_hosts;
    allowed_hosts.extend(args.allowed_hosts);
    let mut allowed_origins = http.allowed_origins;
    allowed_origins.extend(args.allowed_origins);
    let opts = HttpOptions {
        sessions,
        bind,
        bearer_token: args.http_token.or(http.bearer_token),
        allowed_hosts,
        allowed_origins,
    };
    let shutdown = CancellationToken::new();
    let on_signal = shutdown.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        on_signal.cancel();
    });
    l402_mcp::mcp::http::serve(server, opts, shutdown).await?;
    Ok(())
}

async fn gateway(
    app: App,
    args: GatewayArgs,
    mut cfg: l402_mcp::gateway::GatewayConfig,
) -> Result<()> {
    use l402_mcp::gateway::{self, RouteConfig};
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
    let paywall = gateway::Paywall::new(app.seller.clone(), routes)
        .trust_forwarded_for(cfg.trust_forwarded_for)
        .pass_unmatched(cfg.passes_unmatched()?);
    let network = app
        .wallet
        .info()
        .await
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
    let router = gateway::router(paywall, &upstream, about, &cfg.cors_origins)?;
    let listen = args
        .listen
        .or(cfg.listen)
        .unwrap_or(std::net::SocketAddr::from(([127, 0, 0, 1], 8402)));
    let shutdown = CancellationToken::new();
    let on_signal = shutdown.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        on_signal.cancel();
    });
    gateway::serve(router, listen, shutdown).await?;
    Ok(())
}

async fn shutdown_signal() {
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

/// `budget set`'s flags as a change, applied by the same rule as the config file's `[budget]`.
fn apply_budget(p: &mut BudgetPolicy, set: BudgetSet) -> Result<()> {
    let cleared = set.clear_hosts.then(Vec::new);
    let change = BudgetChange {
        per_payment_sats: set.per_payment_sats,
        daily_sats: set.daily_sats,
        hourly_sats: set.hourly_sats.map(|OptionalCap(v)| v),
        per_host_daily_sats: set.per_host_daily_sats.map(|OptionalCap(v)| v),
        allow_hosts: (!set.allow_hosts.is_empty())
            .then_some(set.allow_hosts)
            .or(cleared.clone()),
        deny_hosts: (!set.deny_hosts.is_empty())
            .then_some(set.deny_hosts)
            .or(cleared),
        max_fee_sats: set.max_fee_sats,
        max_fee_percent: set.max_fee_percent,
    };
    change.apply(p)?;
    Ok(())
}

fn status_text(s: &WalletStatus) -> String {
    let demo = if s.demo_funds {
        "  (demo test sats, not real bitcoin)"
    } else {
        ""
    };
    format!(
        "wallet   {} ({} on {})\nbalance  {}{demo}\nearned   {} in the last 24 h\n{}",
        s.wallet,
        s.backend,
        s.network,
        sats(s.balance_msat),
        sats(s.earned_24h_msat),
        budget_text(&s.budget)
    )
}

fn budget_text(b: &BudgetStatus) -> String {
    let p = &b.policy;
    let opt = |v: Option<u64>| v.map_or("none".into(), sats);
    let list = |v: &[String]| {
        if v.is_empty() {
            "-".to_owned()
        } else {
            v.join(", ")
        }
    };
    format!(
        "budget   per payment {}, daily {} (rolling 24 h, fees included), hourly {}, per host daily {}\n         spent {} + reserved {} in the last 24 h; {} left\n         fee limit max({}, {}% of amount); allow hosts {}; deny hosts {}",
        sats(p.per_payment_msat),
        sats(p.daily_msat),
        opt(p.hourly_msat),
        opt(p.per_host_daily_msat),
        sats(b.spent_24h_msat),
        sats(b.reserved_msat),
        sats(b.remaining_24h_msat),
        sats(p.max_fee_floor_msat),
        p.max_fee_ppm as f64 / 10_000.0,
        list(&p.allow_hosts),
        list(&p.deny_hosts)
    )
}

fn print<T: serde::Serialize>(json: bool, value: &T, text: impl FnOnce() -> String) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(value)?);
    } else {
        println!("{}", text());
    }
    Ok(())
}
