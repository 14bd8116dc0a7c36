//! The wallet: balance and budget, the ledger's payments, what an invoice says.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Failure, range_arg, whole_sats};
use crate::app::App;
use crate::bolt11;
use crate::storage::{Direction, Payment, PaymentFilter};

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
pub struct NoParams {}

#[derive(Debug, Serialize, JsonSchema)]
pub struct BalanceOutput {
    pub wallet: String,
    /// Wallet backend, e.g. "embedded".
    pub backend: String,
    /// mainnet, testnet, signet or regtest.
    pub network: String,
    pub balance_sats: u64,
    pub balance_msat: u64,
    /// True when the balance is test sats (the embedded demo wallet), not real bitcoin.
    pub demo_funds: bool,
    /// False when the wallet does not return payment preimages: fetch_paid then refuses to pay L402 challenges (no credential could be shown).
    pub returns_preimages: bool,
    pub budget: BudgetOutput,
    /// Income received in the last 24 hours, in sats.
    pub earned_24h_sats: u64,
    /// Payment (MPP) sessions not closed: deposits held by sellers (close_sessions gets the unspent part back).
    pub sessions: Vec<SessionOutput>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct SessionOutput {
    /// The deposit's payment hash.
    pub session_id: String,
    /// The service (origin) holding the deposit.
    pub origin: String,
    /// open, opening (deposit being paid) or failed (paid, not opened).
    pub status: String,
    /// Deposit and top-ups paid, in sats.
    pub deposit_sats: u64,
    /// Requests served on the session.
    pub requests: u64,
    /// What one request costs, in sats.
    pub price_sats: u64,
    /// Deposit minus requests times price: what should come back at close, in sats.
    pub estimated_left_sats: u64,
    /// Unix seconds.
    pub last_used_at: u64,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct BudgetOutput {
    pub per_payment_sats: u64,
    /// Cap over a rolling 24 hours, fees included.
    pub daily_sats: u64,
    pub hourly_sats: Option<u64>,
    pub per_host_daily_sats: Option<u64>,
    pub spent_24h_sats: u64,
    /// Held by payments in flight.
    pub reserved_sats: u64,
    /// What may still be spent in the daily window.
    pub remaining_24h_sats: u64,
}

/// Balance, budget and income of the last 24 hours.
pub async fn balance(app: &App) -> Result<BalanceOutput, Failure> {
    let s = app.status().await?;
    let sessions = app
        .storage
        .buyer_sessions()
        .live_buyer_sessions(&app.wallet_name)
        .await?
        .into_iter()
        .map(|s| {
            let spent = s.price.msat().saturating_mul(s.requests);
            SessionOutput {
                session_id: s.id.to_hex(),
                origin: s.origin,
                status: s.status.as_str().to_owned(),
                deposit_sats: whole_sats(s.deposit.msat()),
                requests: s.requests,
                price_sats: whole_sats(s.price.msat()),
                estimated_left_sats: whole_sats(s.deposit.msat().saturating_sub(spent)),
                last_used_at: s.last_used_at,
            }
        })
        .collect();
    let b = &s.budget;
    Ok(BalanceOutput {
        wallet: s.wallet,
        backend: s.backend.to_owned(),
        network: s.network.to_string(),
        balance_sats: whole_sats(s.balance_msat),
        balance_msat: s.balance_msat,
        demo_funds: s.demo_funds,
        returns_preimages: s.returns_preimages,
        budget: BudgetOutput {
            per_payment_sats: whole_sats(b.policy.per_payment_msat),
            daily_sats: whole_sats(b.policy.daily_msat),
            hourly_sats: b.policy.hourly_msat.map(whole_sats),
            per_host_daily_sats: b.policy.per_host_daily_msat.map(whole_sats),
            spent_24h_sats: whole_sats(b.spent_24h_msat),
            reserved_sats: whole_sats(b.reserved_msat),
            remaining_24h_sats: whole_sats(b.remaining_24h_msat),
        },
        earned_24h_sats: whole_sats(s.earned_24h_msat),
        sessions,
    })
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
pub struct ListPaymentsParams {
    /// How many (newest first); default 20, 1 to 200.
    #[serde(default)]
    #[schemars(range(min = 1, max = 200))]
    pub limit: Option<u32>,
    /// "in" (received) or "out" (sent); default both.
    #[serde(default)]
    pub direction: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ListPaymentsOutput {
    pub payments: Vec<PaymentOutput>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct PaymentOutput {
    pub id: i64,
    /// "in" or "out".
    pub direction: String,
    /// pending, succeeded or failed.
    pub status: String,
    pub amount_sats: u64,
    pub fee_sats: u64,
    pub amount_msat: u64,
    pub fee_msat: u64,
    pub payment_hash: String,
    pub description: Option<String>,
    pub url: Option<String>,
    pub error: Option<String>,
    /// Unix seconds.
    pub created_at: u64,
    pub settled_at: Option<u64>,
}

impl From<Payment> for PaymentOutput {
    fn from(r: Payment) -> PaymentOutput {
        let (amount, fee) = (r.amount.msat(), r.fee.msat());
        PaymentOutput {
            id: r.id,
            direction: r.direction.as_str().to_owned(),
            status: r.status.as_str().to_owned(),
            amount_sats: whole_sats(amount),
            fee_sats: whole_sats(fee),
            amount_msat: amount,
            fee_msat: fee,
            payment_hash: r.payment_hash.to_hex(),
            description: r.description,
            url: r.url,
            error: r.error,
            created_at: r.created_at,
            settled_at: r.settled_at,
        }
    }
}

/// `in`, `out`, or both (`all`, empty or none).
pub(crate) fn direction(text: Option<&str>) -> Result<Option<Direction>, Failure> {
    match text.map(str::to_ascii_lowercase).as_deref() {
        None | Some("") | Some("all") => Ok(None),
        Some("in") => Ok(Some(Direction::In)),
        Some("out") => Ok(Some(Direction::Out)),
        Some(other) => Err(Failure::invalid(format!(
            "direction must be \"in\" or \"out\", not {other:?}"
        ))),
    }
}

/// The newest payments of the ledger, newest first.
pub async fn list_payments(
    app: &App,
    p: ListPaymentsParams,
) -> Result<ListPaymentsOutput, Failure> {
    let limit = range_arg("limit", u64::from(p.limit.unwrap_or(20)), 1, 200)?;
    let filter = PaymentFilter {
        direction: direction(p.direction.as_deref())?,
        ..PaymentFilter::default()
    };
    let rows = app
        .ledger
        .list_payments(
            &app.wallet_name,
            &filter,
            u32::try_from(limit).unwrap_or(200),
        )
        .await?;
    let payments = rows.into_iter().map(PaymentOutput::from).collect();
    Ok(ListPaymentsOutput { payments })
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct DecodeInvoiceParams {
    /// The BOLT11 invoice to decode.
    pub bolt11: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct DecodeInvoiceOutput {
    pub network: String,
    /// Null for an amountless invoice (which this wallet refuses to pay).
    pub amount_sats: Option<u64>,
    pub amount_msat: Option<u64>,
    pub payment_hash: String,
    pub description: Option<String>,
    /// Creation time, unix seconds.
    pub timestamp: u64,
    /// Unix seconds.
    pub expires_at: u64,
    /// True when it can no longer be paid.
    pub expired: bool,
    /// Payee node public key.
    pub payee: String,
}

/// What an invoice says, at time `now`; needs no wallet.
pub fn decode_invoice(p: &DecodeInvoiceParams, now: u64) -> Result<DecodeInvoiceOutput, Failure> {
    let d =
        bolt11::decode(&p.bolt11).map_err(|e| Failure::new("invalid_invoice", e.to_string()))?;
    let (expires_at, expired) = (d.expires_at(), d.is_expired(now));
    Ok(DecodeInvoiceOutput {
        network: d.network.to_string(),
        amount_sats: d.amount_msat.map(whole_sats),
        amount_msat: d.amount_msat,
        payment_hash: d.payment_hash.to_hex(),
        description: d.description,
        timestamp: d.timestamp,
        expires_at,
        expired,
        payee: d.payee,
    })
}
