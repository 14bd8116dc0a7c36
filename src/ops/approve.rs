//! The human's operations on payments held for approval: list them, approve (which pays),
//! deny; and what an agent is told when a payment is held (`approval_required`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Failure, whole_sats};
use crate::app::App;
use crate::approval::{ApprovalError, ApprovalPolicy, ApprovalTicket, Channel, Grant, pin};
use crate::budget::sats;
use crate::storage::{Approval, ApprovalStatus};

/// One payment held for a human, as people and agents see it.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ApprovalOutput {
    /// The approval's id (give it to `l402-mcp approve`).
    pub id: String,
    /// pending, approved, paid, failed, denied or expired.
    pub status: String,
    pub amount_sats: u64,
    pub amount_msat: u64,
    /// Who would be paid.
    pub host: Option<String>,
    /// What it buys.
    pub url: Option<String>,
    /// The invoice's description.
    pub description: Option<String>,
    pub payment_hash: String,
    /// Why a human is asked: above_sats, new_host.
    pub reasons: Vec<String>,
    pub created_at: u64,
    /// Unix seconds after which nobody can approve it.
    pub expires_at: u64,
    pub decided_at: Option<u64>,
    /// cli, page, dashboard, elicitation or app.
    pub decided_by: Option<String>,
    /// The ledger's payment, once paid.
    pub payment_id: Option<i64>,
    pub error: Option<String>,
}

impl From<&Approval> for ApprovalOutput {
    fn from(a: &Approval) -> ApprovalOutput {
        ApprovalOutput {
            id: a.id.clone(),
            status: a.status.as_str().to_owned(),
            amount_sats: whole_sats(a.amount.msat()),
            amount_msat: a.amount.msat(),
            host: a.host.clone(),
            url: a.url.clone(),
            description: a.description.clone(),
            payment_hash: a.payment_hash.to_hex(),
            reasons: a.reasons.clone(),
            created_at: a.created_at,
            expires_at: a.expires_at,
            decided_at: a.decided_at,
            decided_by: a.decided_by.clone(),
            payment_id: a.payment_id,
            error: a.error.clone(),
        }
    }
}

/// The approval policy, in sats.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ApprovalPolicyOutput {
    /// Payments above this many sats need a human; null: no threshold.
    pub above_sats: Option<u64>,
    /// The first payment to a payee never paid before needs a human.
    pub new_host: bool,
    /// How long a question waits, in seconds.
    pub timeout_secs: u64,
    /// Whether a PIN is asked when approving at a terminal, the page or the dashboard.
    pub pin_set: bool,
}

impl ApprovalPolicyOutput {
    pub fn new(p: &ApprovalPolicy, pin_set: bool) -> ApprovalPolicyOutput {
        ApprovalPolicyOutput {
            above_sats: p.above_msat.map(whole_sats),
            new_host: p.new_host,
            timeout_secs: p.timeout_secs,
            pin_set,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ApprovalsOutput {
    pub policy: ApprovalPolicyOutput,
    pub approvals: Vec<ApprovalOutput>,
}

/// The approval policy and the newest approvals (`pending` only, unless `all`).
pub async fn list(app: &App, all: bool, limit: u32) -> Result<ApprovalsOutput, Failure> {
    let status = (!all).then_some(ApprovalStatus::Pending);
    let (policy, pin_set, approvals) = tokio::try_join!(
        async { Ok::<_, Failure>(app.approvals.policy().await?) },
        async { Ok(pin::is_set(app.ledger.as_ref(), &app.wallet_name).await?) },
        async { Ok(app.approvals.list(status, limit).await?) },
    )?;
    Ok(ApprovalsOutput {
        policy: ApprovalPolicyOutput::new(&policy, pin_set),
        approvals: approvals.iter().map(ApprovalOutput::from).collect(),
    })
}

/// A decision taken.
#[derive(Debug, Clone, Serialize)]
pub struct DecisionOutput {
    pub approval: ApprovalOutput,
    /// True when the approved payment was made now.
    pub paid: bool,
    pub amount_sats: u64,
    pub fee_sats: u64,
    pub amount_msat: u64,
    pub fee_msat: u64,
    pub payment_hash: String,
}

/// Approve a held payment, and pay it.
pub async fn approve(app: &App, id: &str, grant: Grant<'_>) -> Result<DecisionOutput, Failure> {
    let done = app.approvals.approve(id, grant).await?;
    Ok(DecisionOutput {
        approval: ApprovalOutput::from(&done.approval),
        paid: !done.receipt.already_paid,
        amount_sats: whole_sats(done.receipt.amount_msat),
        fee_sats: whole_sats(done.receipt.fee_msat),
        amount_msat: done.receipt.amount_msat,
        fee_msat: done.receipt.fee_msat,
        payment_hash: done.receipt.payment_hash.to_hex(),
    })
}

/// Deny a held payment: nothing is paid.
pub async fn deny(app: &App, id: &str, grant: Grant<'_>) -> Result<DecisionOutput, Failure> {
    let a = app.approvals.deny(id, grant).await?;
    Ok(DecisionOutput {
        paid: false,
        amount_sats: 0,
        fee_sats: 0,
        amount_msat: 0,
        fee_msat: 0,
        payment_hash: a.payment_hash.to_hex(),
        approval: ApprovalOutput::from(&a),
    })
}

impl From<ApprovalError> for Failure {
    fn from(e: ApprovalError) -> Self {
        let message = e.to_string();
        let code = match e {
            ApprovalError::Unknown(_) => "approval_unknown",
            ApprovalError::NotPending { .. } => "approval_not_pending",
            ApprovalError::Expired(_) => "approval_expired",
            ApprovalError::WrongSecret(_) => "approval_wrong_secret",
            ApprovalError::Pin(pin::PinError::Required) => "pin_required",
            ApprovalError::Pin(pin::PinError::Wrong) => "pin_wrong",
            ApprovalError::Pin(pin::PinError::Locked { .. }) => "pin_locked",
            ApprovalError::Pin(pin::PinError::Length) => "invalid_request",
            ApprovalError::Pin(pin::PinError::Storage(s)) | ApprovalError::Storage(s) => {
                return Failure::from(s);
            }
            ApprovalError::Pay(p) => Failure::from(p).code,
        };
        Failure::new(code, message)
    }
}

/// What an agent is told when a payment is held for a human: the code `approval_required`,
/// the approval's id, who decides where, and what to do next (`retry`: the call to make again
/// once it is approved). `page`: the approval page's URL, when one is served.
pub fn required(t: &ApprovalTicket, retry: &str, page: Option<&str>) -> Failure {
    let a = &t.approval;
    let payee = a.host.as_deref().unwrap_or("this invoice's payee");
    let why = crate::approval::why(&a.reasons);
    let page = page
        .map(|u| format!(", or open {u} in a browser"))
        .unwrap_or_default();
    Failure::new(
        "approval_required",
        format!(
            "nothing was paid: {} to {payee} needs a human's approval because {why} (approval {id}, pending until {expires} unix seconds). A person approves it with `l402-mcp approve {id}` in a terminal{page}; you cannot approve it yourself. Once approved, {retry}: it is paid once, from the approval.",
            sats(a.amount.msat()),
            id = a.id,
            expires = a.expires_at,
        ),
    )
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct ApprovePaymentParams {
    /// The approval's id.
    pub approval_id: String,
    /// The approval's one-time secret, as the approval card received it.
    pub secret: String,
    /// true approves (and pays); false denies.
    pub approve: bool,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ApprovePaymentOutput {
    pub approval_id: String,
    /// paid, failed or denied.
    pub status: String,
    /// True when this call paid.
    pub paid: bool,
    pub amount_sats: u64,
    pub fee_sats: u64,
    pub payment_hash: String,
}

/// A decision from an approval card (MCP Apps): it must show the approval's one-time secret.
pub async fn decide_in_card(
    app: &App,
    p: ApprovePaymentParams,
) -> Result<ApprovePaymentOutput, Failure> {
    let grant = Grant {
        secret: Some(&p.secret),
        ..Grant::by(Channel::App)
    };
    let d = if p.approve {
        approve(app, &p.approval_id, grant).await?
    } else {
        deny(app, &p.approval_id, grant).await?
    };
    Ok(ApprovePaymentOutput {
        approval_id: d.approval.id,
        status: d.approval.status,
        paid: d.paid,
        amount_sats: d.amount_sats,
        fee_sats: d.fee_sats,
        payment_hash: d.payment_hash,
    })
}
