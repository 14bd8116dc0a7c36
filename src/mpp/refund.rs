//! A session's refund, paid exactly once, even across a crash.
//!
//! Closing is one atomic update that marks the refund `pending` (only one caller, on any
//! instance, gets to close). The payment then goes through the ledger like any other: a
//! `pending` row for the return invoice is written before the wallet is asked to pay, and the
//! ledger allows one live payment per invoice. So:
//!
//! - died after closing, before reserving: the sweep finds the refund pending and pays it;
//! - died after reserving (or paying), before the ledger knew: the pay path's reconcile asks
//!   the wallet what became of it (paid: recorded; never sent: released), and the next sweep
//!   finds the payment already made, or pays it now;
//! - a payment whose outcome is unknown stays pending and is never sent again blind.
//!
//! [`MppSeller::settle_refunds`] is the sweep: the gateway runs it at start and every
//! half-minute, closing idle sessions on the way.

use serde::Serialize;
use tracing::{Instrument, info, info_span, warn};

use super::MppSeller;
use crate::bolt11;
use crate::budget::BudgetPolicy;
use crate::l402::{Msat, PaymentHash};
use crate::mint::SellError;
use crate::storage::{NewPayment, RefundStatus, Reservation, ReserveError, Settlement};
use crate::wallet::WalletError;

/// What a sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RefundReport {
    /// Idle sessions closed.
    pub closed_idle: u32,
    pub refunded: u32,
    pub failed: u32,
    /// Refunds still owed (their payment under way, or to be retried).
    pub pending: u32,
}

/// Refunds are owed money going back, not spending decisions: the wallet's budget does not
/// hold them back (they are recorded in the ledger like every payment).
fn refund_policy() -> BudgetPolicy {
    BudgetPolicy {
        per_payment_msat: Msat::MAX_SUPPLY.msat(),
        daily_msat: Msat::MAX_SUPPLY.msat(),
        hourly_msat: None,
        per_host_daily_msat: None,
        allow_hosts: Vec::new(),
        deny_hosts: Vec::new(),
        ..BudgetPolicy::default()
    }
}

impl MppSeller {
    /// Pay a closed session's pending refund, once: where it stands afterwards.
    pub async fn refund(&self, id: &PaymentHash) -> Result<RefundStatus, SellError> {
        let span = info_span!("refund", session = %id);
        self.refund_once(id).instrument(span).await
    }

    async fn refund_once(&self, id: &PaymentHash) -> Result<RefundStatus, SellError> {
        let Some(s) = self.store.session(id).await? else {
            return Err(SellError::Invalid(format!("no session {id}")));
        };
        let (Some(RefundStatus::Pending), Some(amount)) = (s.refund_status, s.refund) else {
            return Ok(s.refund_status.unwrap_or(RefundStatus::Skipped));
        };
        let now = self.now();
        let fail = async |why: String| -> Result<RefundStatus, SellError> {
            warn!(reason = %why, "refund cannot be paid");
            self.store
                .set_refund(id, RefundStatus::Failed, Some(&why))
                .await?;
            Ok(RefundStatus::Failed)
        };
        let inv = match bolt11::decode(&s.return_invoice) {
            Ok(i) => i,
            Err(e) => return fail(format!("the return invoice does not decode: {e}")).await,
        };
        if inv.is_expired(now) {
            return fail("the return invoice expired before the refund was paid".into()).await;
        }
        let ledger = self.seller.ledger();
        let policy = ledger.budget(self.seller.wallet_name()).await?;
        let max_fee = policy.max_fee_msat(amount.msat());
        let new = NewPayment {
            wallet: self.seller.wallet_name(),
            invoice: &inv,
            amount,
            max_fee: Msat::from_msat(max_fee),
            url: None,
            payee: None,
            credential: None,
        };
        let payment_id = match ledger.reserve(&new, &refund_policy(), now).await {
            Ok(Reservation::Reserved { id }) => id,
            Ok(Reservation::AlreadyPaid(_)) => {
                info!("the refund was paid before; recording it");
                self.store
                    .set_refund(id, RefundStatus::Succeeded, None)
                    .await?;
                return Ok(RefundStatus::Succeeded);
            }
            Ok(Reservation::InFlight(_)) => return Ok(RefundStatus::Pending),
            Err(ReserveError::Storage(e)) => return Err(e.into()),
            Err(ReserveError::Refused(r)) => {
                return Err(SellError::Invalid(format!(
                    "cannot reserve the refund: {r}"
                )));
            }
        };
        crate::fault::point("refund-after-reserve");
        let outcome = self
            .seller
            .wallet()
            .pay_amountless(&inv, amount.msat(), max_fee)
            .await;
        crate::fault::point("refund-after-pay");
        match outcome {
            Ok(result) => {
                let preimage = result.preimage.filter(|p| p.matches(&inv.payment_hash));
                ledger
                    .mark_succeeded(
                        payment_id,
                        &Settlement {
                            preimage: preimage.as_ref(),
                            fee: Msat::from_msat(result.fee_msat),
                            note: None,
                        },
                        self.now(),
                    )
                    .await?;
                self.store
                    .set_refund(id, RefundStatus::Succeeded, None)
                    .await?;
                info!(amount_msat = amount.msat(), "refund paid");
                Ok(RefundStatus::Succeeded)
            }
            Err(e) if e.definitely_not_paid() => {
                ledger
                    .mark_failed(payment_id, &e.to_string(), self.now())
                    .await?;
                if matches!(e, WalletError::NotPayable(_)) {
                    return fail(e.to_string()).await;
                }
                // Maybe a passing failure (no route, the wallet down): tried again next sweep.
                warn!(error = %e, "refund not paid now; will retry");
                self.store
                    .set_refund(id, RefundStatus::Pending, Some(&e.to_string()))
                    .await?;
                Ok(RefundStatus::Pending)
            }
            Err(e) => {
                warn!(error = %e, "refund outcome unknown; left pending for reconciliation");
                Ok(RefundStatus::Pending)
            }
        }
    }

    /// Close idle sessions and pay every refund still owed (after resolving payments left
    /// pending by a crash).
    pub async fn settle_refunds(&self) -> Result<RefundReport, SellError> {
        let mut report = RefundReport::default();
        if let Err(e) = self.payer.reconcile().await {
            warn!(error = %e, "could not reconcile pending payments before refunds");
        }
        let now = self.now();
        for id in self.store.idle_sessions(now).await? {
            if self.store.close_session(&id, now).await?.is_some() {
                info!(session = %id, "idle Payment session closed");
                report.closed_idle += 1;
            }
        }
        for s in self.store.pending_refunds().await? {
            match self.refund(&s.id).await? {
                RefundStatus::Succeeded => report.refunded += 1,
                RefundStatus::Failed => report.failed += 1,
                RefundStatus::Pending => report.pending += 1,
                RefundStatus::Skipped => {}
            }
        }
        Ok(report)
    }
}
