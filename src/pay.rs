//! The buyer's pay path: decode -> policy check -> reserve -> pay -> record preimage -> commit.
//!
//! - A definite failure releases the reservation; an unknown outcome leaves the payment pending,
//!   to be resolved by [`Payer::reconcile`] through the wallet's lookup. It is never retried blind.
//! - Amountless and expired invoices, invoices for another network, and amounts above any cap
//!   are refused before anything is reserved.
//! - A preimage that does not hash to the invoice's payment hash is recorded loudly: money moved,
//!   but there is no proof of payment.
//!
//! Kept in one file (~690 lines): the pay path is one sequence whose crash safety (what is
//! reserved, paid, recorded and reconciled, in which order) is reviewed as a whole; the approval
//! gate lives in `approval/`, the money events in `events.rs`.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tracing::{Instrument, error, info, info_span, warn};

use crate::approval::ApprovalTicket;
use crate::bolt11::{self, DecodedInvoice, InvoiceError, Network};
use crate::budget::{BudgetRefusal, sats};
use crate::clock::SharedClock;
use crate::events::{Events, MoneyEvent};
use crate::l402::{Msat, PaymentHash, Preimage};
use crate::payee::Payee;
use crate::storage::{
    ApprovalStore, CredentialScope, Direction, NewPayment, PaidRecord, Payment, Reservation,
    ReserveError, Resume, Retention, Settlement, SpendLedger, Status, StorageError, TokenCache,
};
use crate::wallet::{OutgoingStatus, PaymentResult, Wallet, WalletError};

/// A payment with no answer from the wallet is only declared failed after this long, so a
/// payment another process is making right now is never mistaken for a dead one.
pub const RECONCILE_GRACE_SECS: u64 = 60;

/// Before a payment, pending payments are reconciled when this process left one unresolved, or
/// when the last look is older than this (another process on the data dir may have left one).
/// A pending payment's reservation counts against the budget until then: waiting is safe.
pub(crate) const RECONCILE_EVERY_SECS: u64 = 30;

/// What to pay, and the caller's own limits.
#[derive(Debug, Clone, Default)]
pub struct PayRequest<'a> {
    pub invoice: &'a str,
    /// The caller's cap on the invoice amount (e.g. a tool call's `max_price_sats`).
    pub max_amount_msat: Option<u64>,
    /// The caller's routing-fee limit; the policy's limit applies when it is lower.
    pub max_fee_msat: Option<u64>,
    /// What the payment is for, for the ledger.
    pub url: Option<&'a str>,
    /// Who is paid: the host lists and the per-host cap count one server however it is named
    /// ([`crate::payee`]). Payments without one are not counted per host.
    pub payee: Option<&'a Payee>,
    /// The payment hash the invoice must have (the one in the L402 macaroon's identifier, or
    /// a challenge's stated hash): a credential built on another invoice could never work, so
    /// a mismatch is refused before anything is reserved.
    pub expect_payment_hash: Option<PaymentHash>,
    /// The L402 credential the payment buys, kept with the reservation so that it is cached
    /// even if this process dies before it could (restored when the payment is reconciled).
    /// A credential needs the preimage: with one, a wallet known not to return preimages is
    /// not asked to pay.
    pub credential: Option<&'a CredentialScope>,
    /// The payment's proof is shown to the seller (a `Payment` credential carries the
    /// preimage): a wallet known not to return preimages is not asked to pay.
    pub needs_preimage: bool,
}

/// A payment that went through.
/// `Debug` shows the preimage as `<redacted>` (its own type says so).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Receipt {
    pub payment_id: i64,
    pub payment_hash: PaymentHash,
    pub amount_msat: u64,
    pub fee_msat: u64,
    /// Proof of payment. Not serialized: with its macaroon it is a bearer credential.
    #[serde(skip)]
    pub preimage: Preimage,
    /// True when this invoice had been paid before and nothing new was spent.
    pub already_paid: bool,
    /// The credential of the request ([`PayRequest::credential`]) was cached, for this
    /// payer's wallet, in the ledger's database in the commit that recorded the payment.
    #[serde(skip)]
    pub credential_cached: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum PayError {
    #[error("invalid invoice: {0}")]
    InvalidInvoice(#[from] InvoiceError),
    #[error(
        "the invoice has no amount; amountless invoices are refused because the price cannot be checked"
    )]
    Amountless,
    #[error("the invoice expired at {expired_at} (unix seconds); ask the seller for a new one")]
    Expired { expired_at: u64 },
    #[error("the invoice is for {invoice} but this wallet is on {wallet}")]
    WrongNetwork { invoice: Network, wallet: Network },
    #[error(
        "the challenge does not match its invoice: the credential is for payment hash {expected} but the invoice's payment hash is {invoice}, so paying it could never buy access; nothing was paid"
    )]
    ChallengeMismatch { expected: String, invoice: String },
    #[error("refused by the budget, nothing was spent: {0}")]
    Budget(#[from] BudgetRefusal),
    #[error(
        "a payment of this invoice (ledger #{payment_id}) is already under way or its outcome is unknown; it will not be paid again"
    )]
    InFlight { payment_id: i64 },
    #[error("payment failed, nothing was spent: {0}")]
    Failed(WalletError),
    #[error(
        "payment outcome unknown (ledger #{payment_id}, left pending and reconciled later; do not retry): {detail}"
    )]
    OutcomeUnknown { payment_id: i64, detail: String },
    #[error("paid {} (ledger #{payment_id}) but the wallet returned no preimage, so no L402 credential can be shown; use a wallet that returns preimages", sats(*amount_msat))]
    NoPreimage { payment_id: i64, amount_msat: u64 },
    #[error(
        "paid (ledger #{payment_id}) but the wallet's preimage does not match the invoice's payment hash: the payment has no valid proof"
    )]
    PreimageMismatch { payment_id: i64 },
    #[error(
        "not paid: this wallet does not return payment preimages (configured so, or seen so), and an L402 credential needs one; use a wallet backend that returns preimages"
    )]
    PreimagesWithheld,
    #[error(
        "not paid: a payment of {} to {} needs a human's approval (approval {}); nothing was spent", sats(.0.approval.amount.msat()), .0.approval.host.as_deref().unwrap_or("this invoice's payee"), .0.approval.id
    )]
    ApprovalRequired(Box<ApprovalTicket>),
    /// A payment the approval policy holds whose credential an approval could not rebuild
    /// later (a `Payment`-scheme charge or session echoes its one challenge): refused, so that
    /// nothing is approved and paid for a resource the agent would then never get.
    #[error(
        "not paid: this Payment-scheme (MPP) payment needs a human's approval ({0}), and an approved MPP payment cannot be resumed yet; nothing was spent. Pay an L402 offer of the service, or have a person change the approval policy"
    )]
    ApprovalUnsupported(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("wallet error: {0}")]
    Wallet(WalletError),
}

impl PayError {
    /// True when money may have left the wallet.
    pub fn money_may_have_moved(&self) -> bool {
        matches!(
            self,
            PayError::OutcomeUnknown { .. }
                | PayError::NoPreimage { .. }
                | PayError::PreimageMismatch { .. }
                | PayError::InFlight { .. }
        )
    }
}

impl From<ReserveError> for PayError {
    fn from(e: ReserveError) -> Self {
        match e {
            ReserveError::Refused(r) => PayError::Budget(r),
            ReserveError::Storage(l) => PayError::Storage(l),
        }
    }
}

/// What [`Payer::reconcile`] resolved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ReconcileReport {
    pub succeeded: u32,
    pub failed: u32,
    pub still_pending: u32,
}

/// Pays invoices from one wallet under that wallet's budget.
#[derive(Debug)]
pub struct Payer {
    wallet_name: String,
    wallet: Arc<dyn Wallet>,
    /// Asked of the wallet on first use, so a backend that is down does not stop a start.
    network: tokio::sync::OnceCell<Network>,
    ledger: Arc<dyn SpendLedger>,
    /// Where a credential paid for is cached again when its payment is reconciled as paid.
    tokens: Arc<dyn TokenCache>,
    clock: SharedClock,
    /// Ledger ids this process is paying right now: reconcile leaves them alone.
    in_flight: Mutex<HashSet<i64>>,
    /// This process left a payment pending since the last reconcile.
    unresolved: AtomicBool,
    /// When the last reconcile started (clock seconds; 0: never).
    last_reconcile: AtomicU64,
    /// Where payments held for a human are kept; without it no payment is ever held.
    approvals: Option<Arc<dyn ApprovalStore>>,
    /// Where money events go ([`crate::events`]).
    events: Events,
    /// How long history is kept, and where the next pruning resumes; none: nothing pruned
    /// (see [`Payer::keep_history`]).
    history: Mutex<Option<(Retention, Option<Resume>)>>,
}

/// Removes a payment from the in-flight set however the pay call ends.
struct InFlightGuard<'a> {
    set: &'a Mutex<HashSet<i64>>,
    id: i64,
}

impl Drop for InFlightGuard<'_> {
    fn drop(&mut self) {
        if let Ok(mut set) = self.set.lock() {
            set.remove(&self.id);
        }
    }
}

impl Payer {
    /// A payer for `wallet`, named `wallet_name` in the ledger (budgets are per name).
    pub async fn new(
        wallet_name: &str,
        wallet: Arc<dyn Wallet>,
        ledger: Arc<dyn SpendLedger>,
        tokens: Arc<dyn TokenCache>,
        clock: SharedClock,
    ) -> Result<Payer, PayError> {
        Ok(Payer {
            wallet_name: wallet_name.to_owned(),
            wallet,
            network: tokio::sync::OnceCell::new(),
            ledger,
            tokens,
            clock,
            in_flight: Mutex::new(HashSet::new()),
            unresolved: AtomicBool::new(false),
            last_reconcile: AtomicU64::new(0),
            approvals: None,
            events: Events::default(),
            history: Mutex::new(None),
        })
    }

    /// Delete history older than `keep` as part of every reconcile, a batch at a time
    /// ([`SpendLedger::prune_history`]). Until this is called nothing is deleted.
    pub fn keep_history(&self, keep: Retention) {
        if let Ok(mut h) = self.history.lock() {
            *h = Some((keep, None));
        }
    }

    /// Where this payer's money events go.
    pub fn events(&self) -> &Events {
        &self.events
    }

    /// Hold payments the wallet's approval policy ([`crate::approval`]) says need a human.
    pub fn with_approvals(mut self, store: Arc<dyn ApprovalStore>) -> Payer {
        self.approvals = Some(store);
        self
    }

    pub fn wallet_name(&self) -> &str {
        &self.wallet_name
    }
    pub fn wallet(&self) -> &Arc<dyn Wallet> {
        &self.wallet
    }
    pub fn ledger(&self) -> &Arc<dyn SpendLedger> {
        &self.ledger
    }

    /// The wallet's network (asked once).
    pub async fn network(&self) -> Result<Network, PayError> {
        self.network
            .get_or_try_init(|| async {
                self.wallet
                    .info()
                    .await
                    .map(|i| i.network)
                    .map_err(PayError::Wallet)
            })
            .await
            .copied()
    }

    /// Decode and check an invoice without paying it: the checks that need no ledger.
    pub(crate) async fn precheck(
        &self,
        invoice: &str,
        now: u64,
    ) -> Result<(DecodedInvoice, u64), PayError> {
        let inv = bolt11::decode(invoice)?;
        let amount = inv
            .amount_msat
            .filter(|a| *a > 0)
            .ok_or(PayError::Amountless)?;
        if inv.is_expired(now) {
            return Err(PayError::Expired {
                expired_at: inv.expires_at(),
            });
        }
        let network = self.network().await?;
        if inv.network != network {
            return Err(PayError::WrongNetwork {
                invoice: inv.network,
                wallet: network,
            });
        }
        Ok((inv, amount))
    }

    /// Pay an invoice under the budget. See the module docs for the sequence. A payment the
    /// approval policy holds for a human is not made: [`PayError::ApprovalRequired`].
    pub async fn pay(&self, req: &PayRequest<'_>) -> Result<Receipt, PayError> {
        self.pay_asking(req, true).await
    }

    /// Pay an invoice a human has approved ([`crate::approval::Approvals::approve`]): the same
    /// path and checks, without asking again.
    pub async fn pay_approved(&self, req: &PayRequest<'_>) -> Result<Receipt, PayError> {
        self.pay_asking(req, false).await
    }

    async fn pay_asking(&self, req: &PayRequest<'_>, ask: bool) -> Result<Receipt, PayError> {
        let now = self.clock.now();
        let (inv, amount) = self.precheck(req.invoice, now).await?;
        if let Some(expected) = req.expect_payment_hash
            && expected != inv.payment_hash
        {
            return Err(PayError::ChallengeMismatch {
                expected: hex::encode(expected),
                invoice: inv.payment_hash.to_hex(),
            });
        }
        let span = info_span!("pay", wallet = %self.wallet_name, payment_hash = %inv.payment_hash, amount_msat = amount, host = req.payee.map(|p| p.host.as_str()));
        let hash = inv.payment_hash;
        let result = self
            .pay_decoded(req, inv, amount, now, ask)
            .instrument(span)
            .await;
        self.tell(&result, &hash, amount, req.payee);
        result
    }

    /// A money event about a payment asked for.
    fn event(
        &self,
        event: &'static str,
        hash: &PaymentHash,
        amount: u64,
        payee: Option<&Payee>,
    ) -> MoneyEvent {
        MoneyEvent {
            amount_msat: Some(amount),
            host: payee.map(|p| p.host.clone()),
            payment_hash: Some(hash.to_hex()),
            ..MoneyEvent::new(event, &self.wallet_name)
        }
    }

    /// Tell listeners how a payment asked for ended.
    fn tell(
        &self,
        result: &Result<Receipt, PayError>,
        hash: &PaymentHash,
        amount: u64,
        payee: Option<&Payee>,
    ) {
        let e = |event| self.event(event, hash, amount, payee);
        let event = match result {
            Ok(r) if r.already_paid => return,
            Ok(r) => MoneyEvent {
                payment_id: Some(r.payment_id),
                ..e("paid")
            },
            Err(PayError::ApprovalRequired(t)) => MoneyEvent {
                approval: Some(t.approval.id.clone()),
                detail: Some(crate::approval::why(&t.approval.reasons)),
                ..e("held")
            },
            Err(PayError::Budget(r)) => MoneyEvent {
                detail: Some(r.to_string()),
                ..e("refused")
            },
            Err(PayError::Failed(w)) => MoneyEvent {
                detail: Some(w.to_string()),
                ..e("failed")
            },
            Err(PayError::OutcomeUnknown { payment_id, .. }) => MoneyEvent {
                payment_id: Some(*payment_id),
                ..e("pending")
            },
            Err(_) => return,
        };
        self.events.emit(event);
    }

    async fn pay_decoded(
        &self,
        req: &PayRequest<'_>,
        inv: DecodedInvoice,
        amount: u64,
        now: u64,
        ask: bool,
    ) -> Result<Receipt, PayError> {
        if let Some(cap) = req.max_amount_msat
            && amount > cap
        {
            return Err(BudgetRefusal::CallerCap {
                amount_msat: amount,
                cap_msat: cap,
            }
            .into());
        }
        if (req.credential.is_some() || req.needs_preimage) && self.wallet.withholds_preimages() {
            return Err(PayError::PreimagesWithheld);
        }
        if ask
            && let Some(store) = &self.approvals
            && let Some(ticket) = crate::approval::gate(
                self.ledger.as_ref(),
                store.as_ref(),
                &self.wallet_name,
                req,
                &inv,
                amount,
                now,
            )
            .await?
        {
            return Err(PayError::ApprovalRequired(Box::new(ticket)));
        }
        let last = self.last_reconcile.load(Ordering::Relaxed);
        let due = self.unresolved.load(Ordering::Relaxed)
            || last == 0
            || now.saturating_sub(last) >= RECONCILE_EVERY_SECS;
        if due && let Err(e) = self.reconcile().await {
            warn!(error = %e, "could not reconcile pending payments before paying");
        }
        let policy = self.ledger.budget(&self.wallet_name).await?;
        let max_fee = policy
            .max_fee_msat(amount)
            .min(req.max_fee_msat.unwrap_or(u64::MAX));
        let new = NewPayment {
            wallet: &self.wallet_name,
            invoice: &inv,
            amount: Msat::from_msat(amount),
            max_fee: Msat::from_msat(max_fee),
            url: req.url,
            payee: req.payee,
            credential: req.credential,
        };
        let id = match self.ledger.reserve(&new, &policy, now).await? {
            Reservation::Reserved { id } => id,
            Reservation::AlreadyPaid(rec) => return already_paid(&rec),
            Reservation::InFlight(rec) => return Err(PayError::InFlight { payment_id: rec.id }),
        };
        info!(
            payment_id = id,
            max_fee_msat = max_fee,
            "budget reserved; paying"
        );
        self.events.emit(MoneyEvent {
            payment_id: Some(id),
            ..self.event("reserved", &inv.payment_hash, amount, req.payee)
        });
        if let Ok(mut set) = self.in_flight.lock() {
            set.insert(id);
        }
        let _guard = InFlightGuard {
            set: &self.in_flight,
            id,
        };
        crate::fault::point("after-reserve");

        // An embedded wallet on this ledger's database records the payment (and caches the
        // credential it buys) in the commit that moves the money: one fsync, not three.
        let record = PaidRecord {
            payment_id: id,
            wallet: &self.wallet_name,
            credential: req.credential,
        };
        let outcome = self
            .wallet
            .pay_invoice_recorded(&inv, max_fee, &record)
            .await;
        crate::fault::point("after-pay");
        match outcome {
            Ok((result, recorded)) => {
                if result.fee_msat > max_fee {
                    warn!(
                        fee_msat = result.fee_msat,
                        max_fee_msat = max_fee,
                        "wallet paid more fee than allowed"
                    );
                }
                if recorded
                    && let Some(preimage) = result.preimage.filter(|p| p.matches(&inv.payment_hash))
                {
                    let cached = req.credential.is_some();
                    return Ok(paid(id, &inv, amount, result.fee_msat, preimage, cached));
                }
                self.record_success(id, &inv, amount, result).await
            }
            Err(e) if e.definitely_not_paid() => {
                info!(payment_id = id, error = %e, "payment failed; reservation released");
                self.ledger
                    .mark_failed(id, &e.to_string(), self.clock.now())
                    .await?;
                Err(PayError::Failed(e))
            }
            Err(e) => {
                self.unresolved.store(true, Ordering::Relaxed);
                warn!(payment_id = id, error = %e, "payment outcome unknown; left pending for reconciliation");
                Err(PayError::OutcomeUnknown {
                    payment_id: id,
                    detail: e.to_string(),
                })
            }
        }
    }

    async fn record_success(
        &self,
        id: i64,
        inv: &DecodedInvoice,
        amount: u64,
        result: PaymentResult,
    ) -> Result<Receipt, PayError> {
        // Money has moved: a ledger that cannot record it leaves the payment pending, for the
        // reconciliation to record from the wallet, and the caller must not read it as unpaid.
        let proof = match self.record_proof(id, &inv.payment_hash, &result).await {
            Ok(proof) => proof,
            Err(e) => {
                self.unresolved.store(true, Ordering::Relaxed);
                error!(payment_id = id, error = %e, "paid, but the ledger could not record it; left pending for reconciliation");
                return Err(PayError::OutcomeUnknown {
                    payment_id: id,
                    detail: format!("paid, but the ledger could not record it: {e}"),
                });
            }
        };
        match proof {
            Proof::Missing => Err(PayError::NoPreimage {
                payment_id: id,
                amount_msat: amount,
            }),
            Proof::Mismatch => Err(PayError::PreimageMismatch { payment_id: id }),
            Proof::Valid(preimage) => Ok(paid(id, inv, amount, result.fee_msat, preimage, false)),
        }
    }

    /// Record a payment the wallet made, with its preimage only when it proves the payment.
    async fn record_proof(
        &self,
        id: i64,
        payment_hash: &PaymentHash,
        result: &PaymentResult,
    ) -> Result<Proof, PayError> {
        let now = self.clock.now();
        let proof = match result.preimage {
            None => Proof::Missing,
            Some(p) if p.matches(payment_hash) => Proof::Valid(p),
            Some(_) => Proof::Mismatch,
        };
        let (preimage, note) = match &proof {
            Proof::Valid(p) => (Some(p), None),
            Proof::Missing => {
                error!(
                    payment_id = id,
                    "wallet paid but returned no preimage: no L402 credential can be shown"
                );
                (None, Some("wallet returned no preimage"))
            }
            Proof::Mismatch => {
                error!(
                    payment_id = id,
                    "PREIMAGE MISMATCH: the wallet's preimage does not hash to the invoice's payment hash; money moved without proof of payment"
                );
                (
                    None,
                    Some(
                        "PREIMAGE MISMATCH: wallet returned a preimage that does not hash to the payment hash",
                    ),
                )
            }
        };
        let settlement = Settlement {
            preimage,
            fee: Msat::from_msat(result.fee_msat),
            note,
        };
        self.ledger.mark_succeeded(id, &settlement, now).await?;
        Ok(proof)
    }

    /// Resolve pending payments through the wallet's lookup: those left by a crash, or whose
    /// outcome was unknown. Payments this process is making right now are left alone, and a
    /// payment the wallet has no record of is only failed after [`RECONCILE_GRACE_SECS`] or the
    /// wallet's [`Wallet::late_start_window_secs`], whichever is longer.
    pub async fn reconcile(&self) -> Result<ReconcileReport, PayError> {
        self.unresolved.store(false, Ordering::Relaxed);
        self.last_reconcile
            .store(self.clock.now().max(1), Ordering::Relaxed);
        let result = self.reconcile_pending().await;
        let now = self.clock.now();
        if let Err(e) = self.ledger.prune_windows(&self.wallet_name, now).await {
            warn!(error = %e, "could not prune old budget window totals");
        }
        self.prune_history(now).await;
        if result.as_ref().map_or(true, |r| r.still_pending > 0) {
            // Look again before the next payment.
            self.unresolved.store(true, Ordering::Relaxed);
        }
        result
    }

    /// One round of pruning by the history policy, if one is set.
    async fn prune_history(&self, now: u64) {
        let Some((keep, from)) = self.history.lock().ok().and_then(|h| *h) else {
            return;
        };
        match self
            .ledger
            .prune_history(&self.wallet_name, &keep, now, from)
            .await
        {
            Ok(pruned) => {
                if let Ok(mut h) = self.history.lock() {
                    *h = Some((keep, pruned.resume));
                }
                if pruned.total() > 0 {
                    info!(?pruned, "old history deleted by the retention policy");
                }
            }
            Err(e) => warn!(error = %e, "could not prune old history"),
        }
    }

    async fn reconcile_pending(&self) -> Result<ReconcileReport, PayError> {
        let mut report = ReconcileReport::default();
        for p in self
            .ledger
            .pending(&self.wallet_name, Direction::Out)
            .await?
        {
            if self.in_flight.lock().is_ok_and(|s| s.contains(&p.id)) {
                continue;
            }
            let span = info_span!("reconcile", payment_id = p.id, payment_hash = %p.payment_hash);
            match self.reconcile_one(&p).instrument(span).await? {
                Some(Status::Succeeded) => report.succeeded += 1,
                Some(Status::Failed) => report.failed += 1,
                _ => report.still_pending += 1,
            }
        }
        Ok(report)
    }

    /// Resolve one pending payment; returns its new status, `None` while unresolved.
    async fn reconcile_one(&self, p: &Payment) -> Result<Option<Status>, PayError> {
        let hash = p.payment_hash;
        let now = self.clock.now();
        match self.wallet.lookup_outgoing(&hash).await {
            Ok(OutgoingStatus::Succeeded(r)) => {
                if let Proof::Valid(_) = self.record_proof(p.id, &hash, &r).await?
                    && self.tokens.restore_token(p.id, now).await?
                {
                    info!("the credential this payment bought is cached again");
                }
                info!(amount_msat = p.amount.msat(), "reconciled: paid");
                self.reconciled(p, "paid");
                Ok(Some(Status::Succeeded))
            }
            Ok(OutgoingStatus::Failed(why)) => {
                self.ledger
                    .mark_failed(p.id, &format!("reconciled: {why}"), now)
                    .await?;
                info!("reconciled: failed, reservation released");
                self.reconciled(p, "failed");
                Ok(Some(Status::Failed))
            }
            Ok(OutgoingStatus::NotFound)
                if p.created_at
                    + self
                        .wallet
                        .late_start_window_secs()
                        .max(RECONCILE_GRACE_SECS)
                    <= now =>
            {
                self.ledger
                    .mark_failed(
                        p.id,
                        "reconciled: the wallet has no record of this payment",
                        now,
                    )
                    .await?;
                info!("reconciled: never sent, reservation released");
                self.reconciled(p, "never sent");
                Ok(Some(Status::Failed))
            }
            Ok(_) => Ok(None),
            Err(e) => {
                warn!(error = %e, "lookup failed; payment stays pending");
                Ok(None)
            }
        }
    }

    fn reconciled(&self, p: &Payment, outcome: &str) {
        self.events.emit(MoneyEvent {
            amount_msat: Some(p.amount.msat()),
            host: p.host.clone(),
            payment_hash: Some(p.payment_hash.to_hex()),
            payment_id: Some(p.id),
            detail: Some(outcome.to_owned()),
            ..MoneyEvent::new("reconciled", &self.wallet_name)
        });
    }

    /// Look a past payment up in the ledger.
    pub async fn find(&self, payment_hash: &PaymentHash) -> Result<Option<Payment>, PayError> {
        Ok(self
            .ledger
            .payment_by_hash(&self.wallet_name, Direction::Out, payment_hash)
            .await?)
    }
}

/// What a wallet's answer proves.
enum Proof {
    Valid(Preimage),
    Missing,
    Mismatch,
}

/// The receipt of payment `id`, just made and recorded.
fn paid(
    id: i64,
    inv: &DecodedInvoice,
    amount: u64,
    fee_msat: u64,
    preimage: Preimage,
    credential_cached: bool,
) -> Receipt {
    info!(payment_id = id, fee_msat, "paid");
    Receipt {
        payment_id: id,
        payment_hash: inv.payment_hash,
        amount_msat: amount,
        fee_msat,
        preimage,
        already_paid: false,
        credential_cached,
    }
}

fn already_paid(rec: &Payment) -> Result<Receipt, PayError> {
    debug_assert_eq!(rec.status, Status::Succeeded);
    let Some(preimage) = rec.preimage else {
        return Err(PayError::NoPreimage {
            payment_id: rec.id,
            amount_msat: rec.amount.msat(),
        });
    };
    Ok(Receipt {
        payment_id: rec.id,
        payment_hash: rec.payment_hash,
        amount_msat: rec.amount.msat(),
        fee_msat: rec.fee.msat(),
        preimage,
        already_paid: true,
        credential_cached: false,
    })
}
