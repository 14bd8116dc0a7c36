//! `approvals`, `approve ID`, `deny ID`: payments held for a human, decided at a terminal.
//! When a PIN is set, it is read from the terminal itself (`/dev/tty`, echo off), never from
//! arguments, the environment or stdin: a program without a terminal cannot give it.

use std::io::{BufRead, Write};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};

use l402_mcp::app::App;
use l402_mcp::approval::{ApprovalChange, Channel, Grant, pin};
use l402_mcp::budget::sats;
use l402_mcp::ops::approve::{self, ApprovalOutput, ApprovalsOutput, DecisionOutput};

use super::output::print;

#[derive(Args)]
pub struct ApprovalsArgs {
    #[command(subcommand)]
    action: Option<ApprovalsAction>,
    /// List every approval, not only the pending ones
    #[arg(long)]
    all: bool,
    #[arg(long, default_value_t = 50)]
    limit: u32,
}

#[derive(Subcommand)]
enum ApprovalsAction {
    /// Change which payments need a human (unnamed settings are kept)
    Set(SetArgs),
    /// Set or change the PIN asked when approving here, on the page or the dashboard
    Pin {
        /// Remove the PIN
        #[arg(long)]
        clear: bool,
    },
}

#[derive(Args)]
struct SetArgs {
    /// Payments above this many sats need a human ("none" removes the threshold)
    #[arg(long, value_name = "SATS|none")]
    above_sats: Option<String>,
    /// The first payment to a payee never paid before needs a human
    #[arg(long, value_name = "true|false")]
    new_host: Option<bool>,
    /// How long a question waits for an answer, in seconds
    #[arg(long)]
    timeout_secs: Option<u64>,
}

#[derive(Args)]
pub struct DecideArgs {
    /// The approval's id (from `l402-mcp approvals` or the agent's approval_required message)
    id: String,
}

pub async fn list(app: &App, args: ApprovalsArgs, json: bool) -> Result<()> {
    match args.action {
        None => {}
        Some(ApprovalsAction::Set(set)) => {
            let above_sats = match set.above_sats.as_deref() {
                None => None,
                Some(v) if v.eq_ignore_ascii_case("none") => Some(None),
                Some(v) => Some(Some(v.trim().parse().with_context(|| {
                    format!("--above-sats {v:?} is not a whole number or \"none\"")
                })?)),
            };
            let change = ApprovalChange {
                above_sats,
                new_host: set.new_host,
                timeout_secs: set.timeout_secs,
            };
            pin_if_set(app, "Approvals PIN (to change the approval settings): ").await?;
            let mut policy = app.approvals.policy().await?;
            change.apply(&mut policy)?;
            app.approvals.set_policy(&policy).await?;
        }
        Some(ApprovalsAction::Pin { clear }) => {
            pin_if_set(app, "Current approvals PIN: ").await?;
            let now = app.clock.now();
            if clear {
                pin::clear(app.ledger.as_ref(), &app.wallet_name, now).await?;
                eprintln!("PIN removed");
            } else {
                let new = read_secret("New approvals PIN: ")?;
                if read_secret("Once more: ")? != new {
                    bail!("the two PINs differ; nothing was changed");
                }
                pin::set(app.ledger.as_ref(), &app.wallet_name, &new, now).await?;
                eprintln!(
                    "PIN set: approving at a terminal, on the page or the dashboard asks for it"
                );
            }
        }
    }
    let out = approve::list(app, args.all, args.limit).await?;
    print(json, &out, listing)
}

pub async fn approve(app: &App, args: DecideArgs, json: bool) -> Result<()> {
    decide(app, args, json, true).await
}

pub async fn deny(app: &App, args: DecideArgs, json: bool) -> Result<()> {
    decide(app, args, json, false).await
}

async fn decide(app: &App, args: DecideArgs, json: bool, yes: bool) -> Result<()> {
    let pin = pin_if_set(app, "Approvals PIN: ").await?;
    let grant = Grant {
        pin: pin.as_deref(),
        ..Grant::by(Channel::Cli)
    };
    if yes {
        let out = approve::approve(app, &args.id, grant).await?;
        print(json, &out, |d| decision(d, "approved"))
    } else {
        let out = approve::deny(app, &args.id, grant).await?;
        print(json, &out, |d| decision(d, "denied"))
    }
}

/// The PIN from the terminal, when one is set.
async fn pin_if_set(app: &App, prompt: &str) -> Result<Option<String>> {
    if !pin::is_set(app.ledger.as_ref(), &app.wallet_name).await? {
        return Ok(None);
    }
    let given = read_secret(prompt)?;
    // Checked here too, so a wrong PIN changes nothing before anything else is asked.
    pin::check(
        app.ledger.as_ref(),
        &app.wallet_name,
        Some(&given),
        app.clock.now(),
    )
    .await?;
    Ok(Some(given))
}

/// A line read from the controlling terminal with echo off.
fn read_secret(prompt: &str) -> Result<String> {
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .context("a PIN is asked at a terminal, and this process has none (run the command yourself, in a terminal)")?;
    let stty = |arg: &str| {
        std::process::Command::new("stty")
            .arg(arg)
            .stdin(
                tty.try_clone()
                    .map(std::process::Stdio::from)
                    .unwrap_or(std::process::Stdio::null()),
            )
            .status()
    };
    let mut out = tty.try_clone()?;
    write!(out, "{prompt}")?;
    out.flush()?;
    let _ = stty("-echo");
    let mut line = String::new();
    let read = std::io::BufReader::new(tty.try_clone()?).read_line(&mut line);
    let _ = stty("echo");
    writeln!(out)?;
    read?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

fn one(a: &ApprovalOutput) -> String {
    format!(
        "{}  {:<8} {:>10}  {}  {}{}",
        a.id,
        a.status,
        sats(a.amount_msat),
        a.host.as_deref().unwrap_or("-"),
        a.url.as_deref().or(a.description.as_deref()).unwrap_or("-"),
        if a.reasons.is_empty() {
            String::new()
        } else {
            format!("  ({})", a.reasons.join(", "))
        }
    )
}

fn listing(o: &ApprovalsOutput) -> String {
    let p = &o.policy;
    let mut text = format!(
        "policy   above {}; first payment to a new payee: {}; questions wait {} s; PIN {}\n",
        p.above_sats
            .map_or("no threshold".to_owned(), |s| format!("{s} sats")),
        if p.new_host { "asks" } else { "does not ask" },
        p.timeout_secs,
        if p.pin_set { "set" } else { "not set" },
    );
    if o.approvals.is_empty() {
        text.push_str("no payments waiting for approval");
    } else {
        for a in &o.approvals {
            text.push_str(&one(a));
            text.push('\n');
        }
        text.push_str("approve with `l402-mcp approve ID`, deny with `l402-mcp deny ID`");
    }
    text
}

fn decision(d: &DecisionOutput, what: &str) -> String {
    let mut text = format!("{what}: {}", one(&d.approval));
    if d.paid {
        text.push_str(&format!(
            "\npaid {} + {} fee (payment hash {})",
            sats(d.amount_msat),
            sats(d.fee_msat),
            d.payment_hash
        ));
    } else if what == "denied" {
        text.push_str("\nnothing was paid");
    }
    text
}
