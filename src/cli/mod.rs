//! The command line, for people: the same library the MCP tools use, with readable output
//! and `--json` for scripts. Logs go to stderr (`RUST_LOG` to tune); results to stdout, except
//! under `serve`, where stdout belongs to the stdio transport.

mod approvals;
mod budget;
mod dashboard;
mod demo;
mod doctor;
mod gateway;
mod mcp_gateway;
mod output;
mod sell;
mod serve;
mod wallet;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use serde_json::json;

use l402_mcp::app::App;
use l402_mcp::config;
use l402_mcp::ops::Failure;

use approvals::{ApprovalsArgs, DecideArgs};
use budget::BudgetAction;
use dashboard::DashboardArgs;
use gateway::GatewayArgs;
use mcp_gateway::McpGatewayArgs;
use sell::{ChallengeArgs, InvoiceArgs, SalesArgs, VerifyArgs};
use serve::ServeArgs;
use wallet::{DecodeArgs, HistoryArgs, PayArgs, WalletAction};

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
    /// Watch and steer the money in a browser: balance, budgets, payments, sales, approvals (loopback; prints a one-time login link)
    Dashboard(DashboardArgs),
    /// Put an HTTP API behind an L402 paywall: `--upstream URL --price SATS`, or [gateway] in the config
    Gateway(GatewayArgs),
    /// Put prices on another MCP server's tools (Payment scheme over MCP): `--upstream-cmd CMD --price TOOL=SATS`
    McpGateway(McpGatewayArgs),
    /// Report sales (L402 tokens paid for and accepted)
    Sales(SalesArgs),
    /// Show the wallet balance, budget and earnings
    Balance,
    /// Create an invoice to receive sats
    Invoice(InvoiceArgs),
    /// Pay a BOLT11 invoice, within the budget
    Pay(PayArgs),
    /// Decode a BOLT11 invoice without paying it
    Decode(DecodeArgs),
    /// List recent payments
    History(HistoryArgs),
    /// Show or change the spending budget
    Budget {
        #[command(subcommand)]
        action: BudgetAction,
    },
    /// List payments waiting for a human's approval; `approvals set` / `approvals pin` change the policy and PIN
    Approvals(ApprovalsArgs),
    /// Approve a held payment, and pay it (asks the PIN at the terminal when one is set)
    Approve(DecideArgs),
    /// Deny a held payment: nothing is paid
    Deny(DecideArgs),
    /// Embedded wallet management
    Wallet {
        #[command(subcommand)]
        action: WalletAction,
    },
    /// Sell: create an L402 challenge (invoice + macaroon), or with --mpp a Payment (MPP) one
    Challenge(ChallengeArgs),
    /// Sell: verify an L402 ("L402 <macaroon>:<preimage>") or Payment ("Payment <credential>") credential for one request served
    Verify(VerifyArgs),
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
                // A failed operation keeps its stable code, for scripts to branch on.
                let out = match e.downcast_ref::<Failure>() {
                    Some(f) => json!({ "error": f.message, "code": f.code }),
                    None => json!({ "error": e.to_string() }),
                };
                println!("{out}");
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

/// One handler per command; every command but `decode`, `demo` and `doctor` runs on the app
/// [`App::from_config`] opens (one composition root: engine, seller store, budget applied once).
async fn run(cli: Cli) -> Result<()> {
    let json = cli.json;
    match cli.command {
        Command::Decode(args) => {
            return wallet::decode(args, l402_mcp::clock::system().now(), json);
        }
        Command::Demo => return demo::run().await,
        _ => {}
    }
    let cfg = config::Config::load(cli.config.as_deref())?;
    let data_dir = cli
        .data_dir
        .or_else(|| cfg.data_dir())
        .context("no data dir: set --data-dir or L402_MCP_DATA_DIR (HOME is not set)")?;
    let wallet_name = cli.wallet.unwrap_or_else(|| cfg.wallet().to_owned());
    if let Command::Doctor = cli.command {
        return doctor::run(&cfg, &data_dir, &wallet_name, json).await;
    }
    let app = App::from_config(&cfg, &data_dir, &wallet_name, l402_mcp::clock::system()).await?;
    match cli.command {
        // Handled above, before the app is opened.
        Command::Decode(_) | Command::Demo | Command::Doctor => Ok(()),
        Command::Serve(args) => serve::run(app, args, cfg).await,
        Command::Dashboard(args) => dashboard::run(app, args, json).await,
        Command::Gateway(args) => gateway::run(app, args, cfg.gateway.unwrap_or_default()).await,
        Command::McpGateway(args) => {
            mcp_gateway::run(app, args, cfg.mcp_gateway.unwrap_or_default()).await
        }
        Command::Balance => wallet::balance(&app, json).await,
        Command::Pay(args) => wallet::pay(&app, args, json).await,
        Command::History(args) => wallet::history(&app, args, json).await,
        Command::Wallet { action } => wallet::manage(&app, action, json).await,
        Command::Budget { action } => budget::run(&app, action, json).await,
        Command::Approvals(args) => approvals::list(&app, args, json).await,
        Command::Approve(args) => approvals::approve(&app, args, json).await,
        Command::Deny(args) => approvals::deny(&app, args, json).await,
        Command::Invoice(args) => sell::invoice(&app, args, json).await,
        Command::Challenge(args) => sell::challenge(&app, args, json).await,
        Command::Verify(args) => sell::verify(&app, args, json).await,
        Command::Sales(args) => sell::sales(&app, args, json).await,
    }
}
