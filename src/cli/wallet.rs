//! `balance`, `history`, `pay`, `decode` and `wallet …`: the wallet, for people.

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use serde_json::json;

use l402_mcp::app::App;
use l402_mcp::budget::sats;
use l402_mcp::ops::buy::{self, PayInvoiceParams};
use l402_mcp::ops::wallet::{self, DecodeInvoiceParams, ListPaymentsParams};

use super::output::print;

#[derive(Args)]
pub struct PayArgs {
    bolt11: String,
    /// Refuse if the invoice asks for more than this many sats
    #[arg(long)]
    max_sats: Option<u64>,
    /// Routing fee limit in sats (the budget's fee limit applies when lower)
    #[arg(long)]
    max_fee_sats: Option<u64>,
}

#[derive(Args)]
pub struct DecodeArgs {
    bolt11: String,
}

#[derive(Args)]
pub struct HistoryArgs {
    #[arg(long, default_value_t = 20)]
    limit: u32,
    #[arg(long, value_parser = ["in", "out"])]
    direction: Option<String>,
}

#[derive(Subcommand)]
pub enum WalletAction {
    /// Add test sats to an embedded wallet (not real bitcoin)
    Deposit { amount_sats: u64 },
    /// List the embedded wallets in the data dir
    List,
}

pub async fn balance(app: &App, json: bool) -> Result<()> {
    let s = wallet::balance(app).await?;
    print(json, &s, |s| {
        let demo = if s.demo_funds {
            "  (demo test sats, not real bitcoin)"
        } else {
            ""
        };
        let b = &s.budget;
        let opt = |v: Option<u64>| v.map_or("none".into(), |v| format!("{v} sats"));
        format!(
            "wallet   {} ({} on {})\nbalance  {}{demo}\nearned   {} sats in the last 24 h\nbudget   per payment {} sats, daily {} sats (rolling 24 h, fees included), hourly {}, per host daily {}\n         spent {} sats + reserved {} sats in the last 24 h; {} sats left",
            s.wallet,
            s.backend,
            s.network,
            sats(s.balance_msat),
            s.earned_24h_sats,
            b.per_payment_sats,
            b.daily_sats,
            opt(b.hourly_sats),
            opt(b.per_host_daily_sats),
            b.spent_24h_sats,
            b.reserved_sats,
            b.remaining_24h_sats,
        )
    })
}

pub async fn pay(app: &App, args: PayArgs, json: bool) -> Result<()> {
    let params = PayInvoiceParams {
        bolt11: args.bolt11,
        max_fee_sats: args.max_fee_sats,
        max_amount_sats: args.max_sats,
    };
    let r = buy::pay_invoice(app, params).await?;
    print(json, &r, |r| {
        let what = if r.paid {
            "paid"
        } else {
            "already paid earlier; nothing spent"
        };
        format!(
            "{what}: {} + {} fee{}\npayment hash {}\npreimage     {}",
            sats(r.amount_msat),
            sats(r.fee_msat),
            if r.demo_funds {
                " (demo test sats)"
            } else {
                ""
            },
            r.payment_hash,
            r.preimage
        )
    })
}

/// Needs no wallet and no data dir.
pub fn decode(args: DecodeArgs, now: u64, json: bool) -> Result<()> {
    let d = wallet::decode_invoice(
        &DecodeInvoiceParams {
            bolt11: args.bolt11,
        },
        now,
    )?;
    print(json, &d, |d| {
        format!(
            "network      {}\namount       {}\npayment hash {}\ndescription  {}\ncreated      {} (unix)\nexpires      {} (unix){}\npayee        {}",
            d.network,
            d.amount_msat.map_or("none (amountless)".into(), sats),
            d.payment_hash,
            d.description.as_deref().unwrap_or("-"),
            d.timestamp,
            d.expires_at,
            if d.expired { ", expired" } else { "" },
            d.payee
        )
    })
}

pub async fn history(app: &App, args: HistoryArgs, json: bool) -> Result<()> {
    let params = ListPaymentsParams {
        limit: Some(args.limit),
        direction: args.direction,
    };
    let out = wallet::list_payments(app, params).await?;
    print(json, &out, |out| {
        if out.payments.is_empty() {
            return "no payments yet".into();
        }
        out.payments
            .iter()
            .map(|p| {
                format!(
                    "#{:<5} {:<3} {:<9} {:>14} fee {:>10}  {}  {}{}",
                    p.id,
                    p.direction,
                    p.status,
                    sats(p.amount_msat),
                    sats(p.fee_msat),
                    p.payment_hash.get(..16).unwrap_or(&p.payment_hash),
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

pub async fn manage(app: &App, action: WalletAction, json: bool) -> Result<()> {
    match action {
        WalletAction::Deposit { amount_sats } => {
            let embedded = app
                .embedded
                .as_ref()
                .context("deposits are only for the embedded wallet")?;
            let deposited = l402_mcp::budget::sats_to_msat("<sats>", amount_sats)?;
            let balance = embedded
                .deposit(l402_mcp::l402::Msat::from_msat(deposited))
                .await?
                .msat();
            let out =
                json!({ "deposited_msat": deposited, "balance_msat": balance, "demo_funds": true });
            print(json, &out, |_| {
                format!(
                    "added {} of test sats (not real bitcoin); balance {}",
                    sats(deposited),
                    sats(balance)
                )
            })
        }
        WalletAction::List => {
            let names = app.storage.books().accounts().await?;
            print(json, &names, |names| names.join("\n"))
        }
    }
}
