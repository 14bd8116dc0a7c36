//! The buyer's `Payment` sessions: open with a deposit and an amountless return invoice from
//! our own wallet, use the deposit's preimage as a bearer credential for later requests to that
//! service, top up when the deposit runs out (within the caller's cap and the budget), and close
//! so the unspent deposit comes back (on demand, when idle, at shutdown).
//!
//! The ledger shows the deposit (and top-ups) as payments out and the refund as a payment in,
//! to the return invoice; what the seller kept is the difference.
//!
//! A 402 answering a bearer credential says nothing of why (Aperture's never does): when the
//! deposit is spent (by the requests counted here), the fresh challenge's invoice tops it up.
//! When it should still cover the request, or the bearer is refused outright (401-403), the
//! seller no longer takes the session: it is closed (so what is left comes back). A seller that
//! gave back what was left (it dropped the session when idle, say) is taken at its word and a
//! new session opened; one that kept it is "refused after payment": distrusted for a day, no
//! new deposit (else a seller could take a deposit per call).
//!
//! A top-up is written down (`pending_top_up`) before it is paid and cleared once the seller
//! has answered it: a stop in between leaves it to be presented again before the session is
//! next used or closed, so a paid top-up is not forgotten.

use serde::Serialize;
use tracing::{info, warn};

use super::judge::refuses;
use super::payment::{
    PaymentUse, check_invoice, payment_offers, present, receipt_of, refuse, session_request,
};
use super::transport::{Exchange, Present, read_body};
use super::{FetchError, FetchRequest, FetchResponse, Fetcher, Resource};
use crate::l402::mpp::lightning::{self, Payload, SessionRequest};
use crate::l402::mpp::{PaymentChallenge, receipt};
use crate::l402::{MSAT_PER_SAT, Msat, Preimage};
use crate::pay::PayRequest;
use crate::payee::Payee;
use crate::storage::{BuyerSession, BuyerSessionStatus, Direction, Status};
use crate::wallet::IncomingStatus;

/// How long a return invoice stays payable (the spec advises 30 days).
pub const RETURN_INVOICE_SECS: u64 = 30 * 24 * 3600;
/// How often a server looks for idle sessions to close.
pub const IDLE_CHECK_SECS: u64 = 60;
/// How long closing the open sessions at shutdown may take.
pub const SHUTDOWN_CLOSE_SECS: u64 = 10;

/// A session closed, as the buyer sees it.
#[derive(Debug, Clone, Serialize)]
pub struct ClosedSession {
    pub session_id: String,
    pub origin: String,
    pub deposit_msat: u64,
    /// What came back to the return invoice (as the wallet saw it), if it has.
    pub refund_received_msat: Option<u64>,
    /// What the seller said it refunds.
    pub refund_msat: Option<u64>,
    /// The seller's word: `succeeded`, `failed`, `skipped`; `unknown` when it did not say.
    pub refund_status: String,
    /// Deposit minus what came back, once it has.
    pub spent_msat: Option<u64>,
}

fn challenge_text(c: &PaymentChallenge) -> String {
    c.to_json()
        .map(|v| v.to_string())
        .unwrap_or_else(|_| "{}".into())
}

/// How many times (200 ms apart) a refund the seller says it paid is looked for in our wallet
/// before the seller is taken to have kept the deposit.
const REFUND_POLLS: u32 = 10;

/// How old a session left `opening` must be before it is taken up ([`Fetcher::closable`]).
const OPENING_GRACE_SECS: u64 = 120;

fn stored_challenge(s: &BuyerSession) -> Option<PaymentChallenge> {
    serde_json::from_str(&s.challenge)
        .ok()
        .and_then(|v| PaymentChallenge::from_json(&v).ok())
}

fn answered(status: reqwest::StatusCode) -> bool {
    !(refuses(status) || status == reqwest::StatusCode::PAYMENT_REQUIRED)
}

impl Fetcher {
    /// The open session to present first for `url` among `live` (this wallet's live sessions):
    /// one used for this very origin and path, whose last challenge is still answerable (then
    /// no 402 round trip is needed).
    pub(super) fn session_to_present(
        &self,
        url: &reqwest::Url,
        live: &[BuyerSession],
    ) -> Option<(BuyerSession, PaymentChallenge)> {
        let here = Resource::of(url);
        let now = self.clock.now();
        live.iter().find_map(|s| {
            let same = s.status == BuyerSessionStatus::Open
                && s.pending_top_up.is_none()
                && s.origin == here.origin
                && reqwest::Url::parse(&s.url).is_ok_and(|u| u.path() == here.path);
            let c = stored_challenge(s)
                .filter(|c| c.expires_at().and_then(Result::ok).is_some_and(|t| t > now))?;
            same.then(|| (s.clone(), c))
        })
    }

    /// Present an open session's bearer credential with its last challenge, before any 402.
    pub(super) async fn presend_bearer(
        &self,
        req: &FetchRequest,
        url: &reqwest::Url,
        mut s: BuyerSession,
        c: PaymentChallenge,
    ) -> Result<Presented, FetchError> {
        let ex = self
            .exchange(req, url.clone(), present(&c, &bearer(&s)))
            .await?;
        let status = ex.response.status();
        if answered(status) {
            return Ok(Presented::Served(
                self.served(req, &mut s, None, None, ex, "bearer").await?,
            ));
        }
        // A 402 may only mean the deposit is spent: its fresh challenge decides (top up or
        // not), without asking again.
        if status == reqwest::StatusCode::PAYMENT_REQUIRED {
            return Ok(Presented::Challenged(
                ex,
                Seen {
                    id: s.id,
                    deposit: s.deposit,
                    requests: s.requests,
                },
            ));
        }
        let payee = self.payee_of(&ex).await;
        let _ = read_body(ex.response, 1024).await;
        let lock = self.lock_for(&session_key(&s.origin, &s.realm));
        let _held = lock.lock().await;
        // As it stands now: a parallel call may have counted requests, topped it up or closed it.
        let now_open = match &self.sessions {
            Some(store) => store.buyer_session(&self.wallet, &s.id).await?,
            None => None,
        };
        let Some(mut s) = now_open.filter(|n| n.status == BuyerSessionStatus::Open) else {
            return Ok(Presented::Abandoned);
        };
        match self.abandon(&mut s, None, &payee, status).await? {
            Some(refused) => Err(refused),
            None => Ok(Presented::Abandoned),
        }
    }

    /// Pay through a session: bearer on the open one with this service (topped up when its
    /// deposit runs out), else open one. `just_402`: the open session whose bearer this very
    /// 402 answered, as it was then (it is not presented again unless it changed since: a
    /// parallel call topped it up, say).
    pub(super) async fn use_session(
        &self,
        req: &FetchRequest,
        resource: &Resource,
        payee: &Payee,
        c: PaymentChallenge,
        r: SessionRequest,
        just_402: Option<Seen>,
    ) -> Result<FetchResponse, FetchError> {
        let Some(store) = self.sessions.clone() else {
            return Err(refuse(
                "sessions_unsupported",
                "this wallet keeps no Payment sessions here",
            ));
        };
        let lock = self.lock_for(&session_key(&resource.origin, &c.realm));
        let _held = lock.lock().await;
        match store
            .open_buyer_session(&self.wallet, &resource.origin, &c.realm)
            .await?
        {
            Some(mut s) => {
                let pending = s.pending_top_up.is_some();
                self.resume_top_up(&mut s).await?;
                // The 402 answered this session's bearer, and nothing has changed since.
                let unchanged = just_402.is_some_and(|seen| {
                    seen.id == s.id && seen.deposit == s.deposit && seen.requests == s.requests
                });
                let refused =
                    (unchanged && !pending).then_some(reqwest::StatusCode::PAYMENT_REQUIRED);
                self.bearer_or_top_up(req, resource, payee, s, c, refused)
                    .await
            }
            None => self.open_session(req, resource, payee, c, r).await,
        }
    }

    /// Present the bearer of the open session `s` (unless `refused`: its bearer was just
    /// answered with that status, by the 402 that made `c`), and decide on a refusal: top up
    /// when its deposit is spent, else the seller no longer takes it ([`Self::abandon`]).
    async fn bearer_or_top_up(
        &self,
        req: &FetchRequest,
        resource: &Resource,
        payee: &Payee,
        mut s: BuyerSession,
        c: PaymentChallenge,
        refused: Option<reqwest::StatusCode>,
    ) -> Result<FetchResponse, FetchError> {
        let (status, fresh) = match refused {
            Some(status) => (status, Some(c)),
            None => {
                let ex = self
                    .exchange(req, resource.url.clone(), present(&c, &bearer(&s)))
                    .await?;
                let status = ex.response.status();
                if answered(status) {
                    return self.served(req, &mut s, Some(&c), None, ex, "bearer").await;
                }
                // Refused: the fresh session challenge of that 402, if it is one.
                let fresh = if status == reqwest::StatusCode::PAYMENT_REQUIRED {
                    let (offers, _) = payment_offers(ex.response.headers());
                    offers
                        .into_iter()
                        .find(|o| o.is(lightning::METHOD, lightning::SESSION) && o.realm == s.realm)
                } else {
                    None
                };
                let _ = read_body(ex.response, 1024).await;
                (status, fresh)
            }
        };
        let Some(fresh) = fresh else {
            if let Some(refused) = self.abandon(&mut s, None, payee, status).await? {
                return Err(refused);
            }
            return Err(refuse(
                "session_refused",
                format!(
                    "{} refused the open session (HTTP {}); it is closed here and what was left of its deposit came back",
                    s.origin,
                    status.as_u16()
                ),
            ));
        };
        let r = session_request(&fresh, self.clock.now())?;
        if unspent(&s) < r.amount_sats.saturating_mul(MSAT_PER_SAT) {
            return self.top_up(req, resource, payee, s, fresh, r).await;
        }
        info!(session = %s.id, "the seller no longer takes this session although its deposit should cover the request");
        if let Some(refused) = self.abandon(&mut s, Some(&fresh), payee, status).await? {
            return Err(refused);
        }
        self.open_session(req, resource, payee, fresh, r).await
    }

    /// The seller no longer takes the open session `s` (it answered its bearer with
    /// `status`): close it (with `fresh`, the challenge of that answer, if any) so what is
    /// left comes back. A seller that gave it back (all but at most one request's price, for
    /// a request counted on one side only) is taken at its word: `None`. One that kept it is
    /// refused after payment: distrusted for a day, and the error says what it kept.
    async fn abandon(
        &self,
        s: &mut BuyerSession,
        fresh: Option<&PaymentChallenge>,
        payee: &Payee,
        status: reqwest::StatusCode,
    ) -> Result<Option<FetchError>, FetchError> {
        warn!(session = %s.id, origin = %s.origin, status = status.as_u16(), "the seller no longer takes this session; closing it");
        let left = unspent(s);
        let now = self.clock.now();
        let challenge = fresh.cloned().or_else(|| {
            stored_challenge(s)
                .filter(|c| c.expires_at().and_then(Result::ok).is_some_and(|t| t > now))
        });
        let closed = self.send_close(s, challenge).await?;
        let mut back = closed.refund_received_msat.unwrap_or(0);
        // The seller says it refunded: give the payment a moment to be seen by our wallet.
        if closed.refund_received_msat.is_none() && closed.refund_status == "succeeded" {
            for _ in 0..REFUND_POLLS {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                self.note_refund(s).await?;
                if let Some(r) = s.refund {
                    self.save(s).await?;
                    back = r.msat();
                    break;
                }
            }
        }
        if back.saturating_add(s.price.msat()) >= left {
            return Ok(None);
        }
        let kept = left.saturating_sub(back);
        Ok(Some(
            self.refused_after_payment(&s.origin, None, payee, s.id, kept, status)
                .await?,
        ))
    }

    /// Pay the fresh challenge's deposit invoice and present it as a top-up. The top-up is
    /// written down before it is paid, and cleared once the seller has answered it.
    async fn top_up(
        &self,
        req: &FetchRequest,
        resource: &Resource,
        payee: &Payee,
        mut s: BuyerSession,
        c: PaymentChallenge,
        r: SessionRequest,
    ) -> Result<FetchResponse, FetchError> {
        self.deposit_sats(&r)?;
        if s.pending_top_up.is_some() {
            return Err(refuse(
                "session_top_up_pending",
                "a top-up of this session is still in flight (see the ledger); another is not paid until it settles. Try again shortly",
            ));
        }
        s.pending_top_up = Some(r.payment_hash);
        s.challenge = challenge_text(&c);
        self.save(&s).await?;
        let receipt = match self.pay_deposit(req, resource, payee, &r).await {
            Ok(receipt) => receipt,
            Err(e) => {
                if !e.money_may_have_moved() {
                    s.pending_top_up = None;
                    self.save(&s).await?;
                }
                return Err(e);
            }
        };
        info!(session = %s.id, amount_msat = receipt.amount_msat, "session topped up");
        let answer = async {
            let payload = Payload::TopUp {
                session_id: s.id,
                top_up_preimage: receipt.preimage,
            };
            let ex = self
                .exchange(req, resource.url.clone(), present(&c, &payload))
                .await?;
            let status = ex.response.status();
            s.pending_top_up = None;
            if !answered(status) {
                self.save(&s).await?;
                let _ = read_body(ex.response, 1024).await;
                // What is left of the deposit comes back, if the seller still gives it.
                if let Err(e) = self.send_close(&mut s, Some(c.clone())).await {
                    warn!(session = %s.id, error = %e, "could not close the session after its top-up was refused");
                }
                return Err(self.refused_paid(resource, payee, &receipt, status).await?);
            }
            s.deposit = s
                .deposit
                .saturating_add(Msat::from_msat(receipt.amount_msat));
            self.save(&s).await?;
            self.served(req, &mut s, None, Some(&receipt), ex, "topUp")
                .await
        };
        // A top-up left pending (no answer heard) is presented again before the session is
        // next used or closed.
        answer.await.map_err(|e| paid_but_failed(e, &receipt))
    }

    /// A top-up left pending by a stop (or an answer never heard): paid -> presented again
    /// with the last challenge and, once the seller answers, added to the deposit; not paid ->
    /// cleared; still in flight -> left. A paid top-up that cannot be presented (no answerable
    /// challenge left, or refused) is cleared with a warning: the seller holds it.
    async fn resume_top_up(&self, s: &mut BuyerSession) -> Result<(), FetchError> {
        let Some(hash) = s.pending_top_up else {
            return Ok(());
        };
        let paid = self
            .ledger
            .payment_by_hash(&self.wallet, Direction::Out, &hash)
            .await?;
        let (preimage, amount) = match paid {
            Some(p) if p.status == Status::Pending => return Ok(()),
            Some(p) if p.status == Status::Succeeded => (p.preimage, p.amount),
            _ => {
                s.pending_top_up = None;
                return self.save(s).await;
            }
        };
        let now = self.clock.now();
        let challenge = stored_challenge(s)
            .filter(|c| c.expires_at().and_then(Result::ok).is_some_and(|t| t > now));
        let taken = match (preimage, challenge) {
            (Some(preimage), Some(c)) => {
                let payload = Payload::TopUp {
                    session_id: s.id,
                    top_up_preimage: preimage,
                };
                let req = FetchRequest::get(&s.url);
                let url = super::parse_url(&s.url)?;
                let ex = self.exchange(&req, url, present(&c, &payload)).await?;
                let status = ex.response.status();
                let _ = read_body(ex.response, 1024).await;
                answered(status)
            }
            _ => false,
        };
        s.pending_top_up = None;
        if !taken {
            warn!(session = %s.id, payment_hash = %hash, "a paid top-up could not be presented again; the seller holds it (see the payment in the ledger)");
            return self.save(s).await;
        }
        info!(session = %s.id, "a top-up left unanswered was presented again and taken");
        s.deposit = s.deposit.saturating_add(amount);
        self.save(s).await?;
        self.count(s, None).await
    }

    /// Pay a session challenge's deposit invoice (a deposit or a top-up), after checking it
    /// is for the stated amount and hash.
    async fn pay_deposit(
        &self,
        req: &FetchRequest,
        resource: &Resource,
        payee: &Payee,
        r: &SessionRequest,
    ) -> Result<crate::pay::Receipt, FetchError> {
        let deposit_sats = self.deposit_sats(r)?;
        check_invoice(&r.deposit_invoice, deposit_sats, Some(r.payment_hash), None)?;
        Ok(self
            .payer
            .pay(&PayRequest {
                invoice: &r.deposit_invoice,
                max_amount_msat: req.max_price_msat,
                url: Some(resource.url.as_str()),
                payee: Some(payee),
                expect_payment_hash: Some(r.payment_hash),
                needs_preimage: true,
                ..PayRequest::default()
            })
            .await?)
    }

    fn deposit_sats(&self, r: &SessionRequest) -> Result<u64, FetchError> {
        match r.deposit_sats {
            Some(d) if d > 0 => Ok(d),
            _ => crate::bolt11::decode(&r.deposit_invoice)
                .ok()
                .and_then(|i| i.amount_msat)
                .filter(|m| *m > 0 && m.is_multiple_of(MSAT_PER_SAT))
                .map(|m| m / MSAT_PER_SAT)
                .ok_or_else(|| refuse("invalid_challenge", "the session names no deposit")),
        }
    }

    /// Open a session: a return invoice from our wallet, the deposit paid, then `open`.
    async fn open_session(
        &self,
        req: &FetchRequest,
        resource: &Resource,
        payee: &Payee,
        c: PaymentChallenge,
        r: SessionRequest,
    ) -> Result<FetchResponse, FetchError> {
        // A deposit already paid (or in flight) for a session with this service that never
        // heard its answer: another one would be paid for the same thing.
        if let Some(store) = &self.sessions
            && let Some(stuck) = store
                .live_buyer_sessions(&self.wallet)
                .await?
                .into_iter()
                .find(|o| {
                    o.status == BuyerSessionStatus::Opening
                        && o.origin == resource.origin
                        && o.realm == c.realm
                })
        {
            return Err(refuse(
                "session_opening",
                format!(
                    "a session with this service (deposit {}) is still being opened: its deposit is paid or in flight and the seller's answer was not heard; it is opened and closed on its own after about {OPENING_GRACE_SECS} s, so its deposit comes back. Nothing was paid now; try again after",
                    stuck.id
                ),
            ));
        }
        let deposit_sats = self.deposit_sats(&r)?;
        check_invoice(&r.deposit_invoice, deposit_sats, Some(r.payment_hash), None)?;
        let deposit_msat = deposit_sats.saturating_mul(MSAT_PER_SAT);
        if let Some(cap) = req.max_price_msat
            && deposit_msat > cap
        {
            return Err(FetchError::Pay(crate::pay::PayError::Budget(
                crate::budget::BudgetRefusal::CallerCap {
                    amount_msat: deposit_msat,
                    cap_msat: cap,
                },
            )));
        }
        let now = self.clock.now();
        let wallet = self.payer.wallet();
        let returns = wallet
            .create_amountless_invoice(
                &format!("refund of a Payment session with {}", resource.origin),
                RETURN_INVOICE_SECS,
            )
            .await
            .map_err(|e| refuse("sessions_unsupported", e.to_string()))?;
        let decoded = crate::bolt11::decode(&returns.bolt11)
            .map_err(|e| refuse("sessions_unsupported", e.to_string()))?;
        self.ledger
            .record_incoming(&self.wallet, &decoded, now)
            .await?;
        let mut s = BuyerSession {
            wallet: self.wallet.clone(),
            id: r.payment_hash,
            origin: resource.origin.clone(),
            realm: c.realm.clone(),
            url: resource.url.to_string(),
            // Replaced by the deposit's preimage once paid.
            preimage: Preimage([0; 32]),
            challenge: challenge_text(&c),
            deposit: Msat::from_msat(deposit_msat),
            price: Msat::from_msat(r.amount_sats.saturating_mul(MSAT_PER_SAT)),
            requests: 0,
            return_hash: returns.payment_hash,
            return_invoice: returns.bolt11.clone(),
            idle_secs: r.idle_timeout_secs.unwrap_or(300),
            status: BuyerSessionStatus::Opening,
            refund: None,
            refund_status: None,
            opened_at: now,
            last_used_at: now,
            closed_at: None,
            pending_top_up: None,
        };
        self.save(&s).await?;
        let receipt = match self.pay_deposit(req, resource, payee, &r).await {
            Ok(r) => r,
            Err(e) => {
                if !e.money_may_have_moved() {
                    s.status = BuyerSessionStatus::Failed;
                    self.save(&s).await?;
                }
                return Err(e);
            }
        };
        info!(session = %s.id, deposit_msat, origin = %s.origin, "Payment session deposit paid");
        let answer = async {
            s.preimage = receipt.preimage;
            self.save(&s).await?;
            let payload = Payload::Open {
                preimage: receipt.preimage,
                return_invoice: returns.bolt11,
            };
            let ex = self
                .exchange(req, resource.url.clone(), present(&c, &payload))
                .await?;
            let status = ex.response.status();
            if !answered(status) {
                s.status = BuyerSessionStatus::Failed;
                self.save(&s).await?;
                return Err(self.refused_paid(resource, payee, &receipt, status).await?);
            }
            s.status = BuyerSessionStatus::Open;
            self.save(&s).await?;
            self.served(req, &mut s, None, Some(&receipt), ex, "open")
                .await
        };
        // A session whose open went unanswered stays `opening`: it is taken up later
        // (`closable`) and its deposit comes back; calling again must not pay another.
        answer.await.map_err(|e| paid_but_failed(e, &receipt))
    }

    /// A request the session paid for: counted (with `challenge`, the one it answered, when it
    /// is not the stored one), and answered with its receipt.
    async fn served(
        &self,
        req: &FetchRequest,
        s: &mut BuyerSession,
        challenge: Option<&PaymentChallenge>,
        paid: Option<&crate::pay::Receipt>,
        ex: Exchange,
        action: &'static str,
    ) -> Result<FetchResponse, FetchError> {
        s.url = ex.url.to_string();
        self.count(s, challenge).await?;
        let mut out = self.finish(ex, req, paid).await?;
        out.receipt.payment_hash = Some(s.id.to_hex());
        out.receipt.payment = Some(PaymentUse {
            intent: lightning::SESSION,
            action,
            receipt: receipt_of(&out),
            session_id: Some(s.id.to_hex()),
        });
        Ok(out)
    }

    /// Count one request on `s` (at its `url`) in place, so parallel requests are all counted.
    async fn count(
        &self,
        s: &mut BuyerSession,
        challenge: Option<&PaymentChallenge>,
    ) -> Result<(), FetchError> {
        let now = self.clock.now();
        if let Some(c) = challenge {
            s.challenge = challenge_text(c);
        }
        s.last_used_at = now;
        if let Some(store) = &self.sessions
            && let Some(n) = store
                .count_buyer_session_request(
                    &self.wallet,
                    &s.id,
                    &s.url,
                    challenge.map(|_| s.challenge.as_str()),
                    now,
                )
                .await?
        {
            s.requests = n;
        }
        Ok(())
    }

    async fn save(&self, s: &BuyerSession) -> Result<(), FetchError> {
        if let Some(store) = &self.sessions {
            store.save_buyer_session(s).await?;
        }
        Ok(())
    }

    /// Record the refund if the return invoice has been paid.
    async fn note_refund(&self, s: &mut BuyerSession) -> Result<(), FetchError> {
        match self.payer.wallet().lookup_incoming(&s.return_hash).await {
            Ok(IncomingStatus::Settled { amount_msat }) => {
                self.ledger
                    .mark_incoming_settled(
                        &self.wallet,
                        &s.return_hash,
                        Some(Msat::from_msat(amount_msat)),
                        self.clock.now(),
                    )
                    .await?;
                s.refund = Some(Msat::from_msat(amount_msat));
            }
            Ok(_) => {}
            Err(e) => warn!(error = %e, "cannot ask the wallet about the return invoice"),
        }
        Ok(())
    }

    /// Close this wallet's open sessions (all, or those with `origin`, or the one `session_id`)
    /// so the unspent deposits come back. A session the seller will not close is marked closed
    /// here; its refund is recorded whenever the return invoice is paid.
    pub async fn close_sessions(
        &self,
        origin: Option<&str>,
        session_id: Option<&str>,
    ) -> Result<Vec<ClosedSession>, FetchError> {
        self.close_where(|s, _| {
            origin.is_none_or(|o| s.origin == o.trim_end_matches('/'))
                && session_id.is_none_or(|id| s.id.to_hex().eq_ignore_ascii_case(id.trim()))
        })
        .await
    }

    /// Close open sessions unused for their idle timeout (less a margin, so the seller has not
    /// dropped them yet), and take up those left opening.
    pub async fn close_idle_sessions(&self) -> Result<Vec<ClosedSession>, FetchError> {
        self.close_where(|s, now| {
            let idle_at = s
                .last_used_at
                .saturating_add(s.idle_secs.saturating_sub(s.idle_secs / 5));
            // A session left opening is taken up here too (the first tick is at start).
            match s.status {
                BuyerSessionStatus::Open => idle_at <= now,
                BuyerSessionStatus::Opening => true,
                _ => false,
            }
        })
        .await
    }

    /// Close the live sessions `wanted` picks, each under its service's session lock and as it
    /// stands once the lock is held (a request in flight finishes first).
    async fn close_where(
        &self,
        wanted: impl Fn(&BuyerSession, u64) -> bool,
    ) -> Result<Vec<ClosedSession>, FetchError> {
        let Some(store) = &self.sessions else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for s in store.live_buyer_sessions(&self.wallet).await? {
            if !wanted(&s, self.clock.now()) {
                continue;
            }
            let lock = self.lock_for(&session_key(&s.origin, &s.realm));
            let _held = lock.lock().await;
            let now = self.clock.now();
            let Some(mut s) = store
                .buyer_session(&self.wallet, &s.id)
                .await?
                .filter(|s| wanted(s, now))
            else {
                continue;
            };
            if self.closable(&mut s, now).await? {
                out.push(self.close_one(&mut s).await?);
            }
        }
        Ok(out)
    }

    /// Whether `s` can be closed now: an open session can; one left `opening` (the process
    /// stopped between paying the deposit and hearing the seller's answer to `open`) is taken
    /// up first, once it is older than [`OPENING_GRACE_SECS`] (so a live open is never raced):
    /// its deposit not paid -> closed here, nothing owed; still pending -> left to the
    /// reconciliation; paid -> `open` is sent again with the stored challenge while it is
    /// valid (the seller refuses a second open of a deposit it already took), and the session
    /// is then closed like an open one, so the unspent deposit comes back.
    async fn closable(&self, s: &mut BuyerSession, now: u64) -> Result<bool, FetchError> {
        match s.status {
            BuyerSessionStatus::Open => {
                // A top-up paid and not yet taken counts in what comes back.
                if let Err(e) = self.resume_top_up(s).await {
                    warn!(session = %s.id, error = %e, "a pending top-up could not be taken up before closing");
                }
                return Ok(true);
            }
            BuyerSessionStatus::Opening
                if s.opened_at.saturating_add(OPENING_GRACE_SECS) <= now => {}
            _ => return Ok(false),
        }
        let deposit = self
            .ledger
            .payment_by_hash(&self.wallet, Direction::Out, &s.id)
            .await?;
        let preimage = match deposit {
            Some(p) if p.status == Status::Pending => return Ok(false),
            Some(p) if p.status == Status::Succeeded => match p.preimage {
                Some(preimage) => Some(preimage),
                None => {
                    // Paid, but nothing proves it to the seller: kept for a person to see.
                    warn!(session = %s.id, origin = %s.origin, "a Payment session left opening: its deposit was paid without a preimage; it cannot be opened or closed from here");
                    return Ok(false);
                }
            },
            _ => None,
        };
        let Some(preimage) = preimage else {
            warn!(session = %s.id, origin = %s.origin, "a Payment session left opening: its deposit was not paid; closed, nothing owed");
            s.status = BuyerSessionStatus::Closed;
            s.closed_at = Some(now);
            s.refund_status = Some("not_paid".into());
            self.save(s).await?;
            return Ok(false);
        };
        warn!(session = %s.id, origin = %s.origin, "a Payment session left opening after its deposit was paid: opening it again to close it");
        s.preimage = preimage;
        if let Some(c) = stored_challenge(s)
            .filter(|c| c.expires_at().and_then(Result::ok).is_some_and(|t| t > now))
        {
            let url = super::parse_url(&s.url)?;
            let payload = Payload::Open {
                preimage,
                return_invoice: s.return_invoice.clone(),
            };
            let req = FetchRequest::get(&s.url);
            match self.exchange(&req, url, present(&c, &payload)).await {
                Ok(ex) => {
                    let status = ex.response.status();
                    let _ = read_body(ex.response, 1024).await;
                    if !answered(status) {
                        info!(session = %s.id, status = status.as_u16(), "open refused (opened before the stop?); closing it");
                    }
                }
                Err(e) => {
                    warn!(session = %s.id, error = %e, "could not send open again; closing it")
                }
            }
        }
        s.status = BuyerSessionStatus::Open;
        self.save(s).await?;
        Ok(true)
    }

    /// Close idle sessions every [`IDLE_CHECK_SECS`] until `shutdown`, then every open one (so
    /// the unspent deposits come back before the process ends; at most [`SHUTDOWN_CLOSE_SECS`]).
    pub async fn tend_sessions(&self, shutdown: tokio_util::sync::CancellationToken) {
        if self.sessions.is_none() {
            return;
        }
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(IDLE_CHECK_SECS));
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => {}
            }
            if let Err(e) = self.close_idle_sessions().await {
                warn!(error = %e, "closing idle Payment sessions failed");
            }
        }
        self.close_all_before_exit().await;
    }

    /// Close every open session, within [`SHUTDOWN_CLOSE_SECS`].
    pub async fn close_all_before_exit(&self) {
        let closing = self.close_sessions(None, None);
        match tokio::time::timeout(std::time::Duration::from_secs(SHUTDOWN_CLOSE_SECS), closing)
            .await
        {
            Ok(Ok(closed)) if !closed.is_empty() => {
                info!(
                    sessions = closed.len(),
                    "Payment sessions closed at shutdown"
                );
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => warn!(error = %e, "closing Payment sessions at shutdown failed"),
            Err(_) => warn!("closing Payment sessions at shutdown took too long; they stay open"),
        }
    }

    /// Close `s` with a fresh challenge of the service (a bare request gets one), else the
    /// last one seen. The caller holds the session lock.
    async fn close_one(&self, s: &mut BuyerSession) -> Result<ClosedSession, FetchError> {
        let req = FetchRequest::get(&s.url);
        let url = super::parse_url(&s.url)?;
        let mut challenge = None;
        let bare = self.exchange(&req, url, Present::Cached).await;
        if let Ok(ex) = bare {
            if ex.response.status() == reqwest::StatusCode::PAYMENT_REQUIRED {
                let (offers, _) = payment_offers(ex.response.headers());
                challenge = offers
                    .into_iter()
                    .find(|o| o.is(lightning::METHOD, lightning::SESSION) && o.realm == s.realm);
            }
            let _ = read_body(ex.response, 1024).await;
        }
        let now = self.clock.now();
        let challenge = challenge.or_else(|| {
            stored_challenge(s)
                .filter(|c| c.expires_at().and_then(Result::ok).is_some_and(|t| t > now))
        });
        self.send_close(s, challenge).await
    }

    /// Send `close` answering `challenge` (when there is one), mark `s` closed and record what
    /// came back. The caller holds the session lock.
    async fn send_close(
        &self,
        s: &mut BuyerSession,
        challenge: Option<PaymentChallenge>,
    ) -> Result<ClosedSession, FetchError> {
        let mut said = None;
        if let Some(c) = challenge {
            let req = FetchRequest::get(&s.url);
            let url = super::parse_url(&s.url)?;
            let payload = Payload::Close {
                session_id: s.id,
                preimage: s.preimage,
            };
            let ex = self.exchange(&req, url, present(&c, &payload)).await?;
            let status = ex.response.status();
            said = ex
                .response
                .headers()
                .get(receipt::HEADER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| receipt::parse_header(v).ok());
            let _ = read_body(ex.response, 1024).await;
            if !answered(status) {
                warn!(session = %s.id, status = status.as_u16(), "the seller refused to close the session (closed already?)");
            }
        } else {
            warn!(session = %s.id, "no session challenge to close with; marked closed here");
        }
        s.status = BuyerSessionStatus::Closed;
        s.closed_at = Some(self.clock.now());
        let said_sats = said
            .as_ref()
            .and_then(|r| r.get("refundSats"))
            .and_then(serde_json::Value::as_u64);
        s.refund_status = Some(
            said.as_ref()
                .and_then(|r| r.get("refundStatus"))
                .and_then(serde_json::Value::as_str)
                .unwrap_or("unknown")
                .to_owned(),
        );
        self.note_refund(s).await?;
        self.save(s).await?;
        info!(session = %s.id, refund_msat = s.refund.map(|r| r.msat()), "Payment session closed");
        Ok(ClosedSession {
            session_id: s.id.to_hex(),
            origin: s.origin.clone(),
            deposit_msat: s.deposit.msat(),
            refund_received_msat: s.refund.map(|r| r.msat()),
            refund_msat: said_sats
                .map(|n| n.saturating_mul(MSAT_PER_SAT))
                .or_else(|| (s.refund_status.as_deref() == Some("skipped")).then_some(0)),
            refund_status: s.refund_status.clone().unwrap_or_default(),
            spent_msat: s.refund.map(|r| s.deposit.msat().saturating_sub(r.msat())),
        })
    }
}

/// An error after a deposit or top-up was paid: said as paid, so nobody pays it again.
fn paid_but_failed(e: FetchError, receipt: &crate::pay::Receipt) -> FetchError {
    match e {
        e @ (FetchError::RefusedAfterPayment { .. } | FetchError::PaidButFailed { .. }) => e,
        e => FetchError::PaidButFailed {
            amount_msat: receipt.amount_msat,
            fee_msat: receipt.fee_msat,
            payment_hash: receipt.payment_hash.to_hex(),
            next: "a session deposit or top-up was paid (see the payment hash in the ledger): a session left opening is opened and closed on its own later, and close_sessions gets back what the seller holds; do not pay it again",
            cause: Box::new(e),
        },
    }
}

/// What presenting an open session's bearer before any 402 came to.
pub(super) enum Presented {
    /// Honoured: the answer.
    Served(FetchResponse),
    /// A 402 (the deposit may be spent): the exchange, with the session's id.
    Challenged(Exchange, Seen),
    /// Refused; the seller gave back what was left and the session is closed: ask again bare.
    Abandoned,
}

/// A session as a request saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Seen {
    id: crate::l402::PaymentHash,
    deposit: Msat,
    requests: u64,
}

/// The lock a service's sessions are used, topped up and closed under.
fn session_key(origin: &str, realm: &str) -> String {
    format!("session {origin} {realm}")
}

/// What is left of a session's deposit by the requests counted here.
fn unspent(s: &BuyerSession) -> u64 {
    s.deposit
        .msat()
        .saturating_sub(s.price.msat().saturating_mul(s.requests))
}

fn bearer(s: &BuyerSession) -> Payload {
    Payload::Bearer {
        session_id: s.id,
        preimage: s.preimage,
    }
}
