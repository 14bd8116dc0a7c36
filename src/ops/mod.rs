//! The operations agents and people run: one function per operation, taking its parameters as
//! one struct and returning one result shape. The MCP tools (`crate::mcp`) and the command line's
//! `--json` print the same shapes; neither adds logic of its own.
//!
//! - [`buy`]: `fetch_paid`, `call_paid_tool`, `pay_invoice`, `discover`, `close_sessions`
//! - [`sell`]: `create_invoice`, `create_l402_challenge`, `create_payment_challenge`,
//!   `verify_l402_payment`
//! - [`wallet`]: `wallet_balance`, `list_payments`, `decode_invoice`
//! - [`approve`]: payments held for a human (`approvals`, `approve`, `deny`), and what an agent
//!   is told about one (`approval_required`)
//!
//! A business failure (over budget, a bad invoice, a refused seller) is a [`Failure`]: a stable
//! code (`budget_exceeded`, `invalid_invoice`, ...) and a message that says what happened and
//! whether anything was spent. Every library error becomes one here, in one place.

pub mod approve;
pub mod buy;
pub mod dashboard;
pub mod sell;
pub mod wallet;

use crate::app::AppError;
use crate::budget::{BudgetRefusal, MAX_SATS, MSAT_PER_SAT};
use crate::fetch::FetchError;
use crate::mint::SellError;
use crate::pay::PayError;
use crate::storage::StorageError;
use crate::wallet::WalletError;

/// Why an operation did not do what was asked: a stable, machine-readable code and a message
/// for people (and agents) that says what to do next.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Failure {
    pub code: &'static str,
    pub message: String,
}

impl Failure {
    pub fn new(code: &'static str, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
        }
    }

    /// A request that does not make sense (a value out of range, a missing argument).
    pub fn invalid(message: impl Into<String>) -> Failure {
        Failure::new("invalid_request", message)
    }
}

impl From<PayError> for Failure {
    fn from(e: PayError) -> Self {
        let code = match &e {
            PayError::ApprovalRequired(t) => {
                return approve::required(t, "make this payment again", None);
            }
            PayError::InvalidInvoice(_) => "invalid_invoice",
            PayError::Amountless => "amountless_invoice",
            PayError::Expired { .. } => "expired_invoice",
            PayError::WrongNetwork { .. } => "wrong_network",
            PayError::ChallengeMismatch { .. } => "challenge_mismatch",
            PayError::Budget(
                BudgetRefusal::PerPaymentCap { .. } | BudgetRefusal::CallerCap { .. },
            ) => "price_above_cap",
            PayError::Budget(_) => "budget_exceeded",
            PayError::InFlight { .. } => "payment_in_flight",
            PayError::Failed(_) => "payment_failed",
            PayError::OutcomeUnknown { .. } => "payment_outcome_unknown",
            PayError::NoPreimage { .. } => "no_preimage",
            PayError::PreimagesWithheld => "wallet_withholds_preimages",
            PayError::ApprovalUnsupported(_) => "approval_unsupported",
            PayError::PreimageMismatch { .. } => "preimage_mismatch",
            PayError::Storage(StorageError::Corrupt(_))
            | PayError::Wallet(WalletError::Corrupt(_)) => "ledger_corrupt",
            PayError::Storage(_) | PayError::Wallet(_) => "wallet_error",
        };
        Failure::new(code, e.to_string())
    }
}

impl From<FetchError> for Failure {
    fn from(e: FetchError) -> Self {
        let code = match e {
            FetchError::Pay(p) => return p.into(),
            FetchError::Invalid(m) => return Failure::invalid(m),
            FetchError::Http(m) => {
                return Failure::new("http_error", format!("{m}; nothing was paid"));
            }
            FetchError::Storage(s) => return storage(&s),
            FetchError::PaymentChallenge { code, .. } => code,
            FetchError::PaidButFailed { .. } => "paid_but_failed",
            FetchError::Blocked(_) => "address_refused",
            FetchError::SellerDistrusted { .. } => "seller_distrusted",
            FetchError::NotL402 { .. } => "not_l402",
            FetchError::RefusedAfterPayment { .. } => "refused_after_payment",
        };
        Failure::new(code, e.to_string())
    }
}

impl From<SellError> for Failure {
    fn from(e: SellError) -> Self {
        match e {
            SellError::Invalid(m) => Failure::invalid(m),
            SellError::Storage(s) => storage(&s),
            e @ SellError::Wallet(WalletError::Corrupt(_)) => {
                Failure::new("ledger_corrupt", e.to_string())
            }
            other => Failure::new("wallet_error", other.to_string()),
        }
    }
}

impl From<AppError> for Failure {
    fn from(e: AppError) -> Self {
        match e {
            AppError::Storage(s) => storage(&s),
            AppError::Pay(p) => p.into(),
            e @ AppError::Wallet(WalletError::Corrupt(_)) => {
                Failure::new("ledger_corrupt", e.to_string())
            }
            other => Failure::new("wallet_error", other.to_string()),
        }
    }
}

impl From<StorageError> for Failure {
    fn from(e: StorageError) -> Self {
        storage(&e)
    }
}

/// A storage failure: `ledger_corrupt` when it holds a value that cannot be right (reported,
/// never read as 0), else `wallet_error`.
fn storage(e: &StorageError) -> Failure {
    let code = match e {
        StorageError::Corrupt(_) => "ledger_corrupt",
        _ => "wallet_error",
    };
    Failure::new(code, e.to_string())
}

/// A sats argument in msat, refused (with the range) when below `min` or above every bitcoin
/// there will ever be.
pub fn sats_arg(name: &str, sats: u64, min: u64) -> Result<u64, Failure> {
    Ok(crate::mint::in_range(name, sats, min, MAX_SATS, " sats")? * MSAT_PER_SAT)
}

/// A numeric argument, refused (with the range) outside `min..=max`.
pub fn range_arg(name: &str, value: u64, min: u64, max: u64) -> Result<u64, Failure> {
    Ok(crate::mint::in_range(name, value, min, max, "")?)
}

/// Whole sats for display (msat kept alongside where precision matters).
pub fn whole_sats(msat: u64) -> u64 {
    msat / MSAT_PER_SAT
}
