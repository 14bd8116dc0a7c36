//! Budget policy: what an agent may spend without asking a human.
//!
//! - a per-payment cap on the invoice amount;
//! - a daily cap over a rolling 24 h window, an optional hourly cap and an optional per-host daily cap,
//!   all counting fees: a pending payment holds `amount + max fee` until it is resolved, a settled
//!   one counts `amount + actual fee`;
//! - a host allowlist (when non-empty, only those hosts) and denylist;
//! - the largest routing fee a payment may pay.
//!
//! The windows are enforced in the ledger (`Ledger::reserve`) inside one write transaction, so
//! concurrent payers can never exceed a cap together.

use serde::{Deserialize, Serialize};

pub(crate) const DAY_SECS: u64 = 24 * 3600;
pub(crate) const HOUR_SECS: u64 = 3600;

/// Millisatoshis in a satoshi.
pub const MSAT_PER_SAT: u64 = 1000;

/// Spending limits of one wallet. Amounts in millisatoshis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BudgetPolicy {
    /// Largest invoice amount one payment may have.
    pub per_payment_msat: u64,
    /// Cap over the last 24 hours, fees included.
    pub daily_msat: u64,
    /// Cap over the last hour, fees included.
    pub hourly_msat: Option<u64>,
    /// Cap per host over the last 24 hours, fees included (payments without a host are not counted).
    pub per_host_daily_msat: Option<u64>,
    /// When non-empty, only these hosts may be paid (payments with no host are refused).
    pub allow_hosts: Vec<String>,
    /// These hosts are never paid.
    pub deny_hosts: Vec<String>,
    /// Routing fee limit: the larger of this floor ...
    pub max_fee_floor_msat: u64,
    /// ... and this share of the amount, in parts per million.
    pub max_fee_ppm: u64,
}

impl Default for BudgetPolicy {
    fn default() -> Self {
        BudgetPolicy {
            per_payment_msat: 1_000 * MSAT_PER_SAT,
            daily_msat: 10_000 * MSAT_PER_SAT,
            hourly_msat: None,
            per_host_daily_msat: None,
            allow_hosts: Vec::new(),
            deny_hosts: Vec::new(),
            max_fee_floor_msat: 10 * MSAT_PER_SAT,
            max_fee_ppm: 10_000,
        }
    }
}

/// Why the budget refused a payment. Nothing was spent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BudgetRefusal {
    #[error("price {} is above the per-payment cap of {}", sats(*amount_msat), sats(*cap_msat))]
    PerPaymentCap { amount_msat: u64, cap_msat: u64 },
    #[error("price {} is above this call's limit of {}", sats(*amount_msat), sats(*cap_msat))]
    CallerCap { amount_msat: u64, cap_msat: u64 },
    #[error("{window} budget exceeded: this payment needs up to {} (fees included) but only {} of {} is left; wait for the window to roll or raise the budget", sats(*needed_msat), sats(*remaining_msat), sats(*cap_msat))]
    Window {
        window: Window,
        needed_msat: u64,
        remaining_msat: u64,
        cap_msat: u64,
    },
    #[error("host {0:?} is on the deny list")]
    HostDenied(String),
    #[error("host {0:?} is not on the allow list")]
    HostNotAllowed(String),
}

/// A budget window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Window {
    Daily,
    Hourly,
    HostDaily,
}

impl std::fmt::Display for Window {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Window::Daily => "daily (rolling 24 h)",
            Window::Hourly => "hourly",
            Window::HostDaily => "per-host daily",
        })
    }
}

/// The most sats any amount may be: every bitcoin there will ever be (21 million BTC). Larger
/// numbers are typing mistakes or attacks, and would not fit the ledger's integers as msat.
pub(crate) const MAX_SATS: u64 = 2_100_000_000_000_000;

/// A limit given by a person (config file, environment, command line, tool argument) that is
/// out of range. Nothing was changed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LimitError {
    #[error("{name} must be from 0 to {MAX_SATS} sats, not {value}")]
    Sats { name: &'static str, value: u64 },
    #[error("{name} must be from 0 to 100 (a percentage of the amount), not {value}")]
    FeePercent { name: &'static str, value: f64 },
}

/// Whole sats to msat, for an amount named `name`; at most `MAX_SATS` (every bitcoin there will ever be).
pub fn sats_to_msat(name: &'static str, value: u64) -> Result<u64, LimitError> {
    if value > MAX_SATS {
        return Err(LimitError::Sats { name, value });
    }
    Ok(value * MSAT_PER_SAT)
}

/// A fee limit as a percentage of the amount, to parts per million; 0 to 100.
pub(crate) fn fee_percent_to_ppm(name: &'static str, value: f64) -> Result<u64, LimitError> {
    if !(0.0..=100.0).contains(&value) {
        return Err(LimitError::FeePercent { name, value });
    }
    Ok((value * 10_000.0).round() as u64)
}

/// A change to a budget in the units people write (sats, percent), from the config file, the
/// environment or `budget set`: one rule for all of them. Unset fields keep the policy's value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BudgetChange {
    pub per_payment_sats: Option<u64>,
    pub daily_sats: Option<u64>,
    /// `Some(None)` removes the hourly cap.
    pub hourly_sats: Option<Option<u64>>,
    /// `Some(None)` removes the per-host cap.
    pub per_host_daily_sats: Option<Option<u64>>,
    pub allow_hosts: Option<Vec<String>>,
    pub deny_hosts: Option<Vec<String>>,
    pub max_fee_sats: Option<u64>,
    pub max_fee_percent: Option<f64>,
}

impl BudgetChange {
    /// Apply the change to `policy`: all of it, or (when a value is out of range) none of it.
    pub fn apply(&self, policy: &mut BudgetPolicy) -> Result<(), LimitError> {
        let mut p = policy.clone();
        if let Some(v) = self.per_payment_sats {
            p.per_payment_msat = sats_to_msat("per_payment_sats", v)?;
        }
        if let Some(v) = self.daily_sats {
            p.daily_msat = sats_to_msat("daily_sats", v)?;
        }
        if let Some(v) = self.hourly_sats {
            p.hourly_msat = v.map(|v| sats_to_msat("hourly_sats", v)).transpose()?;
        }
        if let Some(v) = self.per_host_daily_sats {
            p.per_host_daily_msat = v
                .map(|v| sats_to_msat("per_host_daily_sats", v))
                .transpose()?;
        }
        if let Some(v) = &self.allow_hosts {
            p.allow_hosts = v.clone();
        }
        if let Some(v) = &self.deny_hosts {
            p.deny_hosts = v.clone();
        }
        if let Some(v) = self.max_fee_sats {
            p.max_fee_floor_msat = sats_to_msat("max_fee_sats", v)?;
        }
        if let Some(v) = self.max_fee_percent {
            p.max_fee_ppm = fee_percent_to_ppm("max_fee_percent", v)?;
        }
        *policy = p;
        Ok(())
    }
}

/// Format millisatoshis for people: whole sats, or sats with decimals when there are leftover msat.
pub fn sats(msat: u64) -> String {
    if msat.is_multiple_of(MSAT_PER_SAT) {
        format!("{} sats", msat / MSAT_PER_SAT)
    } else {
        format!("{}.{:03} sats", msat / MSAT_PER_SAT, msat % MSAT_PER_SAT)
    }
}

/// A host as budgets count it: lower case, without a trailing dot (`Example.COM.` and
/// `example.com` are one host, with one per-host cap).
pub(crate) fn normalize_host(host: &str) -> String {
    host.trim_end_matches('.').to_ascii_lowercase()
}

impl BudgetPolicy {
    /// The routing fee limit for a payment of `amount_msat`.
    pub fn max_fee_msat(&self, amount_msat: u64) -> u64 {
        let share = (u128::from(amount_msat) * u128::from(self.max_fee_ppm) / 1_000_000) as u64;
        share.max(self.max_fee_floor_msat)
    }

    /// The checks that need no ledger: per-payment cap and host lists.
    pub(crate) fn check_static(
        &self,
        amount_msat: u64,
        host: Option<&str>,
    ) -> Result<(), BudgetRefusal> {
        if amount_msat > self.per_payment_msat {
            return Err(BudgetRefusal::PerPaymentCap {
                amount_msat,
                cap_msat: self.per_payment_msat,
            });
        }
        let host = host.map(normalize_host);
        if let Some(h) = &host
            && self.deny_hosts.iter().any(|d| host_matches(h, d))
        {
            return Err(BudgetRefusal::HostDenied(h.clone()));
        }
        if !self.allow_hosts.is_empty()
            && !host
                .as_ref()
                .is_some_and(|h| self.allow_hosts.iter().any(|a| host_matches(h, a)))
        {
            return Err(BudgetRefusal::HostNotAllowed(host.unwrap_or_default()));
        }
        Ok(())
    }

    /// Check what a payment needing `needed_msat` (amount + max fee) would do to each window,
    /// given what is already held in each.
    pub(crate) fn check_windows(
        &self,
        needed_msat: u64,
        held: &WindowUse,
    ) -> Result<(), BudgetRefusal> {
        let windows = [
            (Window::Daily, Some(self.daily_msat), held.daily_msat),
            (Window::Hourly, self.hourly_msat, held.hourly_msat),
            (
                Window::HostDaily,
                self.per_host_daily_msat.filter(|_| held.has_host),
                held.host_daily_msat,
            ),
        ];
        for (window, cap, used) in windows {
            if let Some(cap) = cap {
                let remaining = cap.saturating_sub(used);
                if needed_msat > remaining {
                    return Err(BudgetRefusal::Window {
                        window,
                        needed_msat,
                        remaining_msat: remaining,
                        cap_msat: cap,
                    });
                }
            }
        }
        Ok(())
    }
}

/// `h` is `pattern` or a subdomain of it (`api.example.com` matches `example.com`).
fn host_matches(h: &str, pattern: &str) -> bool {
    let p = pattern.trim_end_matches('.').to_ascii_lowercase();
    let p = p.strip_prefix("*.").unwrap_or(&p);
    h == p || h.strip_suffix(p).is_some_and(|rest| rest.ends_with('.'))
}

/// Where a wallet stands against its budget.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BudgetStatus {
    pub policy: BudgetPolicy,
    /// Settled spending (amount + fee) in the last 24 hours.
    pub spent_24h_msat: u64,
    /// Held by pending payments.
    pub reserved_msat: u64,
    /// What may still be spent in the daily window.
    pub remaining_24h_msat: u64,
    /// Settled + reserved in the last hour, when an hourly cap is set.
    pub used_1h_msat: Option<u64>,
}

impl BudgetStatus {
    pub fn new(policy: BudgetPolicy, used: &WindowUse) -> BudgetStatus {
        BudgetStatus {
            spent_24h_msat: used.daily_msat.saturating_sub(used.reserved_msat),
            reserved_msat: used.reserved_msat,
            remaining_24h_msat: policy.daily_msat.saturating_sub(used.daily_msat),
            used_1h_msat: policy.hourly_msat.map(|_| used.hourly_msat),
            policy,
        }
    }
}

/// What is already held in each window: settled payments (amount + fee) plus pending
/// reservations (amount + max fee).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct WindowUse {
    pub daily_msat: u64,
    pub hourly_msat: u64,
    pub host_daily_msat: u64,
    /// The part of `daily_msat` held by pending payments (read for reports only: a
    /// reservation, which checks the windows alone, leaves it 0).
    pub reserved_msat: u64,
    /// Whether the payment has a host (the per-host cap applies only then).
    #[serde(skip)]
    pub has_host: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_checks() {
        let p = BudgetPolicy {
            allow_hosts: vec!["example.com".into()],
            deny_hosts: vec!["bad.example.com".into()],
            ..Default::default()
        };
        assert!(p.check_static(1_000_000, Some("api.example.com")).is_ok());
        assert!(p.check_static(1_000_000, Some("Example.COM.")).is_ok());
        assert!(matches!(
            p.check_static(1_000_001, Some("example.com")),
            Err(BudgetRefusal::PerPaymentCap { .. })
        ));
        assert!(matches!(
            p.check_static(1, Some("bad.example.com")),
            Err(BudgetRefusal::HostDenied(_))
        ));
        assert!(matches!(
            p.check_static(1, Some("notexample.com")),
            Err(BudgetRefusal::HostNotAllowed(_))
        ));
        assert!(matches!(
            p.check_static(1, None),
            Err(BudgetRefusal::HostNotAllowed(_))
        ));
        assert!(BudgetPolicy::default().check_static(1, None).is_ok());
    }

    #[test]
    fn windows_count_everything_held() {
        let p = BudgetPolicy {
            daily_msat: 100,
            hourly_msat: Some(50),
            per_host_daily_msat: Some(30),
            ..Default::default()
        };
        let held = WindowUse {
            daily_msat: 60,
            hourly_msat: 10,
            ..Default::default()
        };
        assert!(p.check_windows(40, &held).is_ok());
        assert!(matches!(
            p.check_windows(41, &held),
            Err(BudgetRefusal::Window {
                window: Window::Daily,
                remaining_msat: 40,
                ..
            })
        ));
        let held = WindowUse {
            hourly_msat: 45,
            ..Default::default()
        };
        assert!(matches!(
            p.check_windows(6, &held),
            Err(BudgetRefusal::Window {
                window: Window::Hourly,
                ..
            })
        ));
        let held = WindowUse {
            has_host: true,
            host_daily_msat: 25,
            ..Default::default()
        };
        assert!(matches!(
            p.check_windows(6, &held),
            Err(BudgetRefusal::Window {
                window: Window::HostDaily,
                ..
            })
        ));
    }

    #[test]
    fn fee_limit_and_display() {
        let p = BudgetPolicy::default();
        assert_eq!(p.max_fee_msat(100_000), 10_000); // floor
        assert_eq!(p.max_fee_msat(10_000_000), 100_000); // 1 %
        assert_eq!(sats(21_000), "21 sats");
        assert_eq!(sats(21_500), "21.500 sats");
    }

    #[test]
    fn a_change_applies_whole_or_not_at_all() {
        let mut p = BudgetPolicy::default();
        let bad = BudgetChange {
            daily_sats: Some(5),
            max_fee_percent: Some(150.0),
            ..Default::default()
        };
        assert!(matches!(
            bad.apply(&mut p),
            Err(LimitError::FeePercent { .. })
        ));
        assert_eq!(p, BudgetPolicy::default());
        for pct in [f64::NAN, -0.1, 100.1] {
            assert!(fee_percent_to_ppm("max_fee_percent", pct).is_err(), "{pct}");
        }
        assert!(sats_to_msat("x", MAX_SATS + 1).is_err());
        let ok = BudgetChange {
            hourly_sats: Some(Some(7)),
            max_fee_percent: Some(100.0),
            ..Default::default()
        };
        assert!(ok.apply(&mut p).is_ok());
        assert_eq!((p.hourly_msat, p.max_fee_ppm), (Some(7_000), 1_000_000));
        let remove = BudgetChange {
            hourly_sats: Some(None),
            ..Default::default()
        };
        assert!(remove.apply(&mut p).is_ok());
        assert_eq!(p.hourly_msat, None);
    }
}
