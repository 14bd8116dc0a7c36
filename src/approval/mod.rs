//! The human in control: payments the approval policy holds for a person to decide.
//!
//! - The policy ([`ApprovalPolicy`], `[approval]` in the config, stored per wallet like the
//!   budget): payments above `above_sats`, and (with `new_host`) the first payment to a payee
//!   never paid before, need a human. Off unless set.
//! - The pay path asks [`gate`] before reserving anything: a payment that needs a human is not
//!   made; an [`Approval`] is opened instead (the exact invoice, what it buys, an expiry, and the
//!   SHA-256 of a one-time secret the model never sees) and the caller gets an
//!   [`ApprovalTicket`]. Asking again for the same resource finds the open question.
//! - A person decides through [`Approvals`]: the CLI, the approval page, the dashboard, an MCP
//!   client's own dialog (elicitation), or an MCP App card (which must show the secret).
//!   Approving claims the approval once (one conditional write, whoever races) and makes the
//!   payment through the pay path, which re-checks the budget atomically; the credential it
//!   buys is cached, so the agent's next call for the resource uses it. Denying, or nobody
//!   deciding before the expiry, pays nothing.
//! - An optional PIN ([`pin`]), set by the human at a terminal, is asked by every channel a
//!   program could drive (CLI, page, dashboard), so an agent with a shell or a browser cannot
//!   approve for itself.

mod gate;
pub mod pin;

pub use gate::{ABOVE_SATS, NEW_HOST, gate};

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tracing::{Instrument, info, info_span, warn};

use crate::budget::{LimitError, sats_to_msat};
use crate::clock::SharedClock;
use crate::l402::PaymentHash;
use crate::pay::{PayError, PayRequest, Payer, Receipt};
use crate::storage::{
    Approval, ApprovalStatus, ApprovalStore, Decided, Decision, SpendLedger, StorageError,
    TokenCache,
};

/// How long a question waits for a human unless configured.
pub const DEFAULT_TIMEOUT_SECS: u64 = 300;
/// The longest a question may wait: a day.
pub const MAX_TIMEOUT_SECS: u64 = 24 * 3600;

/// When a payment needs a human. Stored per wallet (setting `approval.<wallet>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApprovalPolicy {
    /// Payments of more than this (the invoice amount) need a human; `None`: no threshold.
    pub above_msat: Option<u64>,
    /// The first payment to a payee never paid before needs a human (a payment that names no
    /// host, `pay_invoice`'s, always does).
    pub new_host: bool,
    /// How long a question waits for an answer.
    pub timeout_secs: u64,
}

impl Default for ApprovalPolicy {
    fn default() -> Self {
        ApprovalPolicy {
            above_msat: None,
            new_host: false,
            timeout_secs: DEFAULT_TIMEOUT_SECS,
        }
    }
}

impl ApprovalPolicy {
    /// Whether any payment can need a human.
    pub fn enabled(&self) -> bool {
        self.above_msat.is_some() || self.new_host
    }
}

/// Why a human is asked, in words (`reasons`: [`ABOVE_SATS`], [`NEW_HOST`]).
pub fn why(reasons: &[String]) -> String {
    reasons
        .iter()
        .map(|r| match r.as_str() {
            ABOVE_SATS => "it is above the approval threshold",
            NEW_HOST => "it is the first payment to this payee",
            _ => "the approval policy holds it",
        })
        .collect::<Vec<_>>()
        .join(" and ")
}

/// A change to the approval policy in the units people write; unset fields are kept.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalChange {
    /// `Some(None)` removes the threshold.
    #[serde(default, deserialize_with = "some_option")]
    pub above_sats: Option<Option<u64>>,
    pub new_host: Option<bool>,
    pub timeout_secs: Option<u64>,
}

fn some_option<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<u64>>, D::Error> {
    Option::<u64>::deserialize(d).map(Some)
}

impl ApprovalChange {
    pub fn is_empty(&self) -> bool {
        *self == ApprovalChange::default()
    }

    /// Apply the change: all of it, or (when a value is out of range) none of it.
    pub fn apply(&self, policy: &mut ApprovalPolicy) -> Result<(), PolicyError> {
        let mut p = policy.clone();
        if let Some(v) = self.above_sats {
            p.above_msat = v.map(|s| sats_to_msat("above_sats", s)).transpose()?;
        }
        if let Some(v) = self.new_host {
            p.new_host = v;
        }
        if let Some(v) = self.timeout_secs {
            if !(1..=MAX_TIMEOUT_SECS).contains(&v) {
                return Err(PolicyError::Timeout(v));
            }
            p.timeout_secs = v;
        }
        *policy = p;
        Ok(())
    }
}

/// An approval setting out of range. Nothing was changed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PolicyError {
    #[error(transparent)]
    Limit(#[from] LimitError),
    #[error("timeout_secs must be from 1 to {MAX_TIMEOUT_SECS}, not {0}")]
    Timeout(u64),
}

fn policy_key(wallet: &str) -> String {
    format!("approval.{wallet}")
}

/// `wallet`'s approval policy (the default, off, until one is set).
pub async fn policy(
    ledger: &dyn SpendLedger,
    wallet: &str,
) -> Result<ApprovalPolicy, StorageError> {
    let key = policy_key(wallet);
    match ledger.setting(&key).await? {
        Some(v) => serde_json::from_str(&v)
            .map_err(|e| StorageError::Corrupt(format!("setting {key}: {e}"))),
        None => Ok(ApprovalPolicy::default()),
    }
}

pub async fn set_policy(
    ledger: &dyn SpendLedger,
    wallet: &str,
    policy: &ApprovalPolicy,
    now: u64,
) -> Result<(), StorageError> {
    let json = serde_json::to_string(policy).map_err(|e| StorageError::Corrupt(e.to_string()))?;
    ledger.set_setting(&policy_key(wallet), &json, now).await
}

/// The one-time secret of an approval: shown only to a channel that must prove it speaks for
/// the human (an MCP App card), never to the model, never logged (`Debug` hides it).
#[derive(Clone, PartialEq, Eq)]
pub struct ApprovalSecret(String);

impl std::fmt::Debug for ApprovalSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApprovalSecret(<redacted>)")
    }
}

impl ApprovalSecret {
    /// 128 random bits, as hex.
    pub(crate) fn generate() -> ApprovalSecret {
        ApprovalSecret(hex::encode(rand::random::<[u8; 16]>()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// What is stored: the SHA-256 of the secret, hex.
    pub fn hash(&self) -> String {
        secret_hash(&self.0)
    }
}

/// The stored form of a secret someone shows.
pub fn secret_hash(secret: &str) -> String {
    hex::encode(crate::l402::sha256(secret.trim().as_bytes()))
}

/// A payment held for a human: the question, and its secret (for an App card).
#[derive(Debug, Clone)]
pub struct ApprovalTicket {
    pub approval: Approval,
    pub secret: ApprovalSecret,
    /// True when the question was already open (asked again for the same resource).
    pub reused: bool,
}

/// Why a decision was not taken.
#[derive(Debug, thiserror::Error)]
pub enum ApprovalError {
    #[error("no approval {0} for this wallet")]
    Unknown(String),
    #[error("approval {id} was already {status}; nothing was paid by this request")]
    NotPending { id: String, status: &'static str },
    #[error("approval {0} expired before anyone decided; nothing was paid")]
    Expired(String),
    #[error(
        "that secret does not open approval {0}: a wrong secret, or an older card (asking again for the same payment makes a new card, and only the newest one works); nothing was paid. Use the newest card, the approval page or `l402-mcp approve {0}`"
    )]
    WrongSecret(String),
    #[error(transparent)]
    Pin(#[from] pin::PinError),
    #[error("approved, but the payment was not made: {0}")]
    Pay(#[from] PayError),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// An approved payment, made.
#[derive(Debug, Clone)]
pub struct Approved {
    pub approval: Approval,
    pub receipt: Receipt,
}

/// The human's side of approvals for one wallet: decide, list.
#[derive(Debug, Clone)]
pub struct Approvals {
    wallet: String,
    store: Arc<dyn ApprovalStore>,
    ledger: Arc<dyn SpendLedger>,
    tokens: Arc<dyn TokenCache>,
    payer: Arc<Payer>,
    clock: SharedClock,
}

/// Where a human decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// `l402-mcp approve` / `deny` at a terminal.
    Cli,
    /// The loopback approval page.
    Page,
    /// The dashboard.
    Dashboard,
    /// The MCP client's own dialog (form elicitation).
    Elicitation,
    /// An MCP App card, which must show the one-time secret.
    App,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Cli => "cli",
            Channel::Page => "page",
            Channel::Dashboard => "dashboard",
            Channel::Elicitation => "elicitation",
            Channel::App => "app",
        }
    }

    /// Channels a program could drive (a shell, a browser tool) ask for the PIN when one is set.
    pub fn asks_pin(self) -> bool {
        matches!(self, Channel::Cli | Channel::Page | Channel::Dashboard)
    }
}

/// Who decides, and what they show.
#[derive(Debug, Clone, Copy)]
pub struct Grant<'a> {
    pub channel: Channel,
    /// The one-time secret (required from an App card).
    pub secret: Option<&'a str>,
    /// The PIN, when the channel asks for it.
    pub pin: Option<&'a str>,
}

impl<'a> Grant<'a> {
    pub fn by(channel: Channel) -> Grant<'a> {
        Grant {
            channel,
            secret: None,
            pin: None,
        }
    }
}

impl Approvals {
    pub fn new(
        payer: Arc<Payer>,
        store: Arc<dyn ApprovalStore>,
        tokens: Arc<dyn TokenCache>,
        clock: SharedClock,
    ) -> Approvals {
        Approvals {
            wallet: payer.wallet_name().to_owned(),
            ledger: payer.ledger().clone(),
            store,
            tokens,
            payer,
            clock,
        }
    }

    pub fn wallet(&self) -> &str {
        &self.wallet
    }

    pub async fn policy(&self) -> Result<ApprovalPolicy, StorageError> {
        policy(self.ledger.as_ref(), &self.wallet).await
    }

    pub async fn set_policy(&self, p: &ApprovalPolicy) -> Result<(), StorageError> {
        set_policy(self.ledger.as_ref(), &self.wallet, p, self.clock.now()).await
    }

    /// The newest approvals (pending ones past their expiry are expired first).
    pub async fn list(
        &self,
        status: Option<ApprovalStatus>,
        limit: u32,
    ) -> Result<Vec<Approval>, StorageError> {
        self.store
            .expire_approvals(&self.wallet, self.clock.now())
            .await?;
        self.store.approvals(&self.wallet, status, limit).await
    }

    pub async fn get(&self, id: &str) -> Result<Option<Approval>, StorageError> {
        self.store.approval(&self.wallet, id.trim()).await
    }

    /// Approve and pay, once. The payment goes through the pay path (the budget is checked
    /// again, atomically, and one invoice is never paid twice); the credential it buys is
    /// cached for the agent's next call.
    pub async fn approve(&self, id: &str, grant: Grant<'_>) -> Result<Approved, ApprovalError> {
        let id = id.trim();
        let span = info_span!("approve", wallet = %self.wallet, approval = %id, by = grant.channel.as_str());
        async {
            let approval = self.decide(id, true, grant).await?;
            info!(
                amount_msat = approval.amount.msat(),
                "approved by a human; paying"
            );
            self.tell("approved", &approval, grant);
            let receipt = self.pay(&approval).await;
            let now = self.clock.now();
            match &receipt {
                Ok(r) => {
                    self.store
                        .settle_approval(id, Ok(r.payment_id), now)
                        .await?;
                }
                Err(e) => {
                    warn!(error = %e, "the approved payment was not made");
                    let why = e.to_string();
                    self.store.settle_approval(id, Err(&why), now).await?;
                }
            }
            let approval = self.get(id).await?.unwrap_or(approval);
            Ok(Approved {
                approval,
                receipt: receipt?,
            })
        }
        .instrument(span)
        .await
    }

    /// Deny: nothing is paid, and the question is closed.
    pub async fn deny(&self, id: &str, grant: Grant<'_>) -> Result<Approval, ApprovalError> {
        let a = self.decide(id.trim(), false, grant).await?;
        info!(wallet = %self.wallet, approval = %a.id, by = grant.channel.as_str(), "denied by a human; nothing paid");
        self.tell("denied", &a, grant);
        Ok(a)
    }

    fn tell(&self, event: &'static str, a: &Approval, grant: Grant<'_>) {
        self.payer.events().emit(crate::events::MoneyEvent {
            amount_msat: Some(a.amount.msat()),
            host: a.host.clone(),
            payment_hash: Some(a.payment_hash.to_hex()),
            approval: Some(a.id.clone()),
            detail: Some(format!("by {}", grant.channel.as_str())),
            ..crate::events::MoneyEvent::new(event, &self.wallet)
        });
    }

    async fn decide(
        &self,
        id: &str,
        approve: bool,
        grant: Grant<'_>,
    ) -> Result<Approval, ApprovalError> {
        if grant.channel.asks_pin() {
            pin::check(
                self.ledger.as_ref(),
                &self.wallet,
                grant.pin,
                self.clock.now(),
            )
            .await?;
        }
        if grant.channel == Channel::App && grant.secret.is_none() {
            return Err(ApprovalError::WrongSecret(id.to_owned()));
        }
        let hash = grant.secret.map(secret_hash);
        let decision = Decision {
            approve,
            by: grant.channel.as_str(),
            secret_hash: hash.as_deref(),
        };
        match self
            .store
            .decide_approval(&self.wallet, id, decision, self.clock.now())
            .await?
        {
            Decided::Taken(a) => Ok(a),
            Decided::NotPending(a) => Err(ApprovalError::NotPending {
                id: a.id,
                status: a.status.as_str(),
            }),
            Decided::Expired(a) => Err(ApprovalError::Expired(a.id)),
            Decided::WrongSecret => Err(ApprovalError::WrongSecret(id.to_owned())),
            Decided::Unknown => Err(ApprovalError::Unknown(id.to_owned())),
        }
    }

    async fn pay(&self, a: &Approval) -> Result<Receipt, PayError> {
        let payee = a.request.payee();
        let expect = a
            .request
            .expect_payment_hash
            .as_deref()
            .and_then(crate::l402::parse_hex32)
            .map(PaymentHash);
        let receipt = self
            .payer
            .pay_approved(&PayRequest {
                invoice: &a.bolt11,
                max_amount_msat: a.request.max_amount_msat,
                max_fee_msat: a.request.max_fee_msat,
                url: a.url.as_deref(),
                payee: payee.as_ref(),
                expect_payment_hash: expect,
                credential: a.request.credential.as_ref(),
                // Only L402 payments (and bare invoices) are ever held: see `gate`.
                needs_preimage: false,
            })
            .await?;
        if let Some(scope) = &a.request.credential {
            let token = scope.with_proof(receipt.preimage, receipt.payment_hash);
            if let Err(e) = self
                .tokens
                .put_token(&self.wallet, &token, self.clock.now())
                .await
            {
                // Paid; the credential is rebuilt from the ledger if this fails (see reconcile).
                warn!(error = %e, "paid, but the credential could not be cached");
            }
        }
        Ok(receipt)
    }
}
