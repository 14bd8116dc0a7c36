//! How results reach people: the operation's result shape as JSON with `--json`, else a few
//! lines of text made from the same value.

use anyhow::Result;

use l402_mcp::budget::{BudgetStatus, sats};

/// Print `value` as JSON, or as the text `text` makes of it.
pub fn print<T: serde::Serialize>(
    json: bool,
    value: &T,
    text: impl FnOnce(&T) -> String,
) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(value)?);
    } else {
        println!("{}", text(value));
    }
    Ok(())
}

/// The budget in force and what each window holds, for people.
pub fn budget_text(b: &BudgetStatus) -> String {
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
