//! `budget show` and `budget set`: the spending budget, for people.

use anyhow::Result;
use clap::{Args, Subcommand};

use l402_mcp::app::App;
use l402_mcp::budget::BudgetChange;

use super::output::{budget_text, print};

#[derive(Subcommand)]
pub enum BudgetAction {
    /// Show the budget and what has been spent
    Show,
    /// Change budget limits (unnamed limits are kept)
    Set(BudgetSet),
}

#[derive(Args)]
pub struct BudgetSet {
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

impl From<BudgetSet> for BudgetChange {
    /// `budget set`'s flags as a change, applied by the same rule as the config's `[budget]`.
    fn from(set: BudgetSet) -> BudgetChange {
        let cleared = set.clear_hosts.then(Vec::new);
        BudgetChange {
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
        }
    }
}

pub async fn run(app: &App, action: BudgetAction, json: bool) -> Result<()> {
    let header = match action {
        BudgetAction::Show => "",
        BudgetAction::Set(set) => {
            let mut p = app.ledger.budget(&app.wallet_name).await?;
            BudgetChange::from(set).apply(&mut p)?;
            app.ledger
                .set_budget(&app.wallet_name, &p, app.clock.now())
                .await?;
            "budget updated\n"
        }
    };
    let s = app.status().await?;
    print(json, &s.budget, |b| format!("{header}{}", budget_text(b)))
}
