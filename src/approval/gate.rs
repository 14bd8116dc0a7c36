//! The question the pay path asks before it reserves anything: does a human need to decide?

use tracing::info;

use super::{ApprovalPolicy, ApprovalSecret, ApprovalTicket, policy};
use crate::bolt11::DecodedInvoice;
use crate::pay::{PayError, PayRequest};
use crate::storage::{
    ApprovalRequest, ApprovalStore, Direction, NewApproval, Opened, SpendLedger, Status,
};

/// Why a human is asked.
pub const ABOVE_SATS: &str = "above_sats";
pub const NEW_HOST: &str = "new_host";

/// `Ok(None)`: pay. `Ok(Some(ticket))`: a human must decide first, and the question is open
/// (`ticket`). A payment the budget would refuse is refused here, before anyone is asked.
pub async fn gate(
    ledger: &dyn SpendLedger,
    store: &dyn ApprovalStore,
    wallet: &str,
    req: &PayRequest<'_>,
    inv: &DecodedInvoice,
    amount: u64,
    now: u64,
) -> Result<Option<ApprovalTicket>, PayError> {
    let policy = policy(ledger, wallet).await?;
    if !policy.enabled() {
        return Ok(None);
    }
    let reasons = reasons(&policy, store, wallet, req, amount).await?;
    if reasons.is_empty() {
        return Ok(None);
    }
    // An invoice paid (or being paid) already spends nothing new: the pay path answers it.
    if let Some(p) = ledger
        .payment_by_hash(wallet, Direction::Out, &inv.payment_hash)
        .await?
        && p.status != Status::Failed
    {
        return Ok(None);
    }
    // Nobody is asked about a payment the budget would refuse anyway.
    let (budget, used) = ledger.budget_and_use(wallet, req.payee, now).await?;
    let host = req.payee.map(|p| p.host.as_str());
    budget.check_static(amount, host)?;
    let max_fee = budget
        .max_fee_msat(amount)
        .min(req.max_fee_msat.unwrap_or(u64::MAX));
    budget.check_windows(amount.saturating_add(max_fee), &used)?;
    // An approval pays the invoice later, out of this call; only an L402 credential can be
    // rebuilt from it then. A Payment-scheme credential echoes the one challenge of this call.
    if req.needs_preimage && req.credential.is_none() {
        let reasons: Vec<String> = reasons.iter().map(|r| (*r).to_owned()).collect();
        return Err(PayError::ApprovalUnsupported(super::why(&reasons)));
    }

    let subject = subject_of(req, inv);
    let secret = ApprovalSecret::generate();
    let request = ApprovalRequest {
        max_fee_msat: req.max_fee_msat,
        max_amount_msat: req.max_amount_msat,
        expect_payment_hash: req.expect_payment_hash.map(|h| h.to_hex()),
        payee: req.payee.map(|p| (p.host.clone(), p.key_list())),
        credential: req.credential.cloned(),
    };
    let id = hex::encode(rand::random::<[u8; 8]>());
    let secret_hash = secret.hash();
    let new = NewApproval {
        id: &id,
        wallet,
        subject: &subject,
        payment_hash: inv.payment_hash,
        bolt11: &inv.bolt11,
        amount: crate::l402::Msat::from_msat(amount),
        host,
        url: req.url,
        description: inv.description.as_deref(),
        reasons: &reasons,
        request: &request,
        secret_hash: &secret_hash,
        expires_at: now
            .saturating_add(policy.timeout_secs)
            .min(inv.expires_at()),
    };
    let (approval, reused) = match store.open_approval(&new, now).await? {
        Opened::Created(a) => (a, false),
        Opened::Existing(a) => (a, true),
    };
    info!(
        approval = %approval.id,
        amount_msat = amount,
        reasons = %reasons.join(","),
        reused,
        "payment held for a human's approval; nothing paid"
    );
    Ok(Some(ApprovalTicket {
        approval,
        secret,
        reused,
    }))
}

async fn reasons(
    policy: &ApprovalPolicy,
    store: &dyn ApprovalStore,
    wallet: &str,
    req: &PayRequest<'_>,
    amount: u64,
) -> Result<Vec<&'static str>, PayError> {
    let mut reasons = Vec::new();
    if policy.above_msat.is_some_and(|cap| amount > cap) {
        reasons.push(ABOVE_SATS);
    }
    if policy.new_host {
        let known = match req.payee {
            Some(p) => store.paid_before(wallet, p).await?,
            // A bare invoice names no host: it cannot be known.
            None => false,
        };
        if !known {
            reasons.push(NEW_HOST);
        }
    }
    Ok(reasons)
}

/// What a payment buys, for finding the open question when the agent asks again: the
/// resource (origin and path, without the query) for a fetch, else the invoice.
fn subject_of(req: &PayRequest<'_>, inv: &DecodedInvoice) -> String {
    match req.url.and_then(|u| url::Url::parse(u).ok()) {
        Some(u) => format!("{}{}", u.origin().ascii_serialization(), u.path()),
        None => format!("invoice:{}", inv.payment_hash),
    }
}
