//! What a person watching the wallet sees (the dashboard page and the MCP App wallet view):
//! balance, budget gauges, spending and earning over time, payments, sales, pending approvals;
//! and the settings only a person may change (budget and approval policy), behind the PIN.

use std::collections::BTreeMap;

use serde::Serialize;

use super::approve::{ApprovalOutput, ApprovalPolicyOutput};
use super::wallet::PaymentOutput;
use super::{Failure, whole_sats};
use crate::app::App;
use crate::approval::{ApprovalChange, pin};
use crate::budget::{BudgetChange, DAY_SECS, HOUR_SECS};
use crate::storage::{ApprovalStatus, Direction, Payment, PaymentFilter, Status};

/// Days in the spending and earning chart.
pub const CHART_DAYS: u64 = 14;
/// Payments the chart and the per-host gauges read (the newest).
const SCAN: u32 = 2_000;

/// Which payments the table shows.
#[derive(Debug, Clone, Default)]
pub struct PaymentsShown {
    pub direction: Option<Direction>,
    pub status: Option<Status>,
    pub host: Option<String>,
    pub limit: u32,
}

/// One budget window: its cap, what is spent and held in it, what is left.
#[derive(Debug, Clone, Serialize)]
pub struct Gauge {
    /// `per payment`, `hourly`, `daily`, `host <name>`.
    pub name: String,
    pub cap_sats: Option<u64>,
    pub spent_sats: u64,
    pub reserved_sats: u64,
    pub left_sats: Option<u64>,
}

/// One day of the chart (UTC days).
#[derive(Debug, Clone, Serialize)]
pub struct Day {
    /// Unix seconds of the day's start.
    pub start: u64,
    pub spent_sats: u64,
    pub earned_sats: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct PaymentRow {
    #[serde(flatten)]
    pub payment: PaymentOutput,
    pub host: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SaleRow {
    pub service: String,
    pub count: u64,
    pub amount_sats: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct DashboardOutput {
    pub wallet: String,
    pub backend: String,
    pub network: String,
    pub balance_sats: u64,
    /// True when the balance is test sats, not real bitcoin.
    pub demo_funds: bool,
    pub earned_24h_sats: u64,
    pub per_payment_sats: u64,
    pub daily_sats: u64,
    pub hourly_sats: Option<u64>,
    pub per_host_daily_sats: Option<u64>,
    pub gauges: Vec<Gauge>,
    pub days: Vec<Day>,
    pub payments: Vec<PaymentRow>,
    /// Sales of the last 30 days, per service.
    pub sales: Vec<SaleRow>,
    pub approvals: Vec<ApprovalOutput>,
    pub approval: ApprovalPolicyOutput,
    /// Unix seconds.
    pub now: u64,
}

/// Everything the dashboard shows.
pub async fn dashboard(app: &App, shown: &PaymentsShown) -> Result<DashboardOutput, Failure> {
    let now = app.clock.now();
    let wallet = &app.wallet_name;
    let table = PaymentFilter {
        direction: shown.direction,
        status: shown.status,
        host: shown.host.clone().filter(|h| !h.is_empty()),
    };
    let (status, recent, rows, sales, approvals, policy, pin_set) = tokio::try_join!(
        async { Ok::<_, Failure>(app.status().await?) },
        async {
            Ok(app
                .ledger
                .list_payments(wallet, &PaymentFilter::default(), SCAN)
                .await?)
        },
        async {
            Ok(app
                .ledger
                .list_payments(wallet, &table, shown.limit.clamp(1, 500))
                .await?)
        },
        async {
            Ok(app
                .seller
                .tokens()
                .sales_since(now.saturating_sub(30 * DAY_SECS))
                .await?)
        },
        async {
            Ok(app
                .approvals
                .list(Some(ApprovalStatus::Pending), 100)
                .await?)
        },
        async { Ok(app.approvals.policy().await?) },
        async { Ok(pin::is_set(app.ledger.as_ref(), wallet).await?) },
    )?;
    let b = &status.budget;
    let p = &b.policy;
    let hour: u64 = recent
        .iter()
        .filter(|r| r.direction == Direction::Out && r.created_at + HOUR_SECS > now)
        .map(held)
        .sum();
    let mut gauges = vec![
        Gauge {
            name: "per payment".into(),
            cap_sats: Some(whole_sats(p.per_payment_msat)),
            spent_sats: 0,
            reserved_sats: 0,
            left_sats: Some(whole_sats(p.per_payment_msat)),
        },
        Gauge {
            name: "hourly".into(),
            cap_sats: p.hourly_msat.map(whole_sats),
            spent_sats: whole_sats(b.used_1h_msat.unwrap_or(hour)),
            reserved_sats: 0,
            left_sats: p
                .hourly_msat
                .map(|c| whole_sats(c.saturating_sub(b.used_1h_msat.unwrap_or(hour)))),
        },
        Gauge {
            name: "daily".into(),
            cap_sats: Some(whole_sats(p.daily_msat)),
            spent_sats: whole_sats(b.spent_24h_msat),
            reserved_sats: whole_sats(b.reserved_msat),
            left_sats: Some(whole_sats(b.remaining_24h_msat)),
        },
    ];
    // Per host, as the ledger writes them (the cap itself counts every name of one server).
    let mut hosts: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for r in recent.iter().filter(|r| {
        r.direction == Direction::Out && r.status != Status::Failed && r.created_at + DAY_SECS > now
    }) {
        let Some(host) = r.host.as_deref() else {
            continue;
        };
        let e = hosts.entry(host).or_default();
        match r.status {
            Status::Pending => e.1 += r.reserved.msat(),
            _ => e.0 += held(r),
        }
    }
    for (host, (spent, reserved)) in hosts {
        gauges.push(Gauge {
            name: format!("host {host}"),
            cap_sats: p.per_host_daily_msat.map(whole_sats),
            spent_sats: whole_sats(spent),
            reserved_sats: whole_sats(reserved),
            left_sats: p
                .per_host_daily_msat
                .map(|c| whole_sats(c.saturating_sub(spent + reserved))),
        });
    }
    Ok(DashboardOutput {
        wallet: status.wallet.clone(),
        backend: status.backend.to_owned(),
        network: status.network.to_string(),
        balance_sats: whole_sats(status.balance_msat),
        demo_funds: status.demo_funds,
        earned_24h_sats: whole_sats(status.earned_24h_msat),
        per_payment_sats: whole_sats(p.per_payment_msat),
        daily_sats: whole_sats(p.daily_msat),
        hourly_sats: p.hourly_msat.map(whole_sats),
        per_host_daily_sats: p.per_host_daily_msat.map(whole_sats),
        gauges,
        days: days(&recent, now),
        payments: rows
            .into_iter()
            .map(|r| PaymentRow {
                host: r.host.clone(),
                payment: PaymentOutput::from(r),
            })
            .collect(),
        sales: sales
            .by_service
            .iter()
            .map(|s| SaleRow {
                service: s.service.clone(),
                count: s.count,
                amount_sats: s.amount.sats_floor(),
            })
            .collect(),
        approvals: approvals.iter().map(ApprovalOutput::from).collect(),
        approval: ApprovalPolicyOutput::new(&policy, pin_set),
        now,
    })
}

/// What a payment counts in a window: its reservation while pending, else amount and fee.
fn held(p: &Payment) -> u64 {
    match p.status {
        Status::Pending => p.reserved.msat(),
        Status::Succeeded => p.amount.msat() + p.fee.msat(),
        Status::Failed => 0,
    }
}

/// Spending (settled, out) and earning (settled, in) per UTC day, the last [`CHART_DAYS`].
fn days(payments: &[Payment], now: u64) -> Vec<Day> {
    let today = now - now % DAY_SECS;
    let first = today.saturating_sub((CHART_DAYS - 1) * DAY_SECS);
    let mut days: Vec<Day> = (0..CHART_DAYS)
        .map(|i| Day {
            start: first + i * DAY_SECS,
            spent_sats: 0,
            earned_sats: 0,
        })
        .collect();
    let mut msat = vec![(0u64, 0u64); days.len()];
    for p in payments.iter().filter(|p| p.status == Status::Succeeded) {
        let at = p.settled_at.unwrap_or(p.created_at);
        if at < first {
            continue;
        }
        let i = usize::try_from((at - first) / DAY_SECS).unwrap_or(usize::MAX);
        if let Some(slot) = msat.get_mut(i) {
            match p.direction {
                Direction::Out => slot.0 += p.amount.msat() + p.fee.msat(),
                Direction::In => slot.1 += p.amount.msat(),
            }
        }
    }
    for (d, (spent, earned)) in days.iter_mut().zip(msat) {
        d.spent_sats = whole_sats(spent);
        d.earned_sats = whole_sats(earned);
    }
    days
}

/// A change to the settings a person may make, from the dashboard: the budget and the approval
/// policy. Asks the PIN when one is set. Never reachable from a tool.
pub async fn change_settings(
    app: &App,
    budget: &BudgetChange,
    approval: &ApprovalChange,
    given_pin: Option<&str>,
) -> Result<(), Failure> {
    pin::check(
        app.ledger.as_ref(),
        &app.wallet_name,
        given_pin,
        app.clock.now(),
    )
    .await
    .map_err(crate::approval::ApprovalError::from)?;
    let now = app.clock.now();
    if *budget != BudgetChange::default() {
        let mut p = app.ledger.budget(&app.wallet_name).await?;
        budget
            .apply(&mut p)
            .map_err(|e| Failure::invalid(e.to_string()))?;
        app.ledger.set_budget(&app.wallet_name, &p, now).await?;
    }
    if !approval.is_empty() {
        let mut p = app.approvals.policy().await?;
        approval
            .apply(&mut p)
            .map_err(|e| Failure::invalid(e.to_string()))?;
        app.approvals.set_policy(&p).await?;
    }
    Ok(())
}
