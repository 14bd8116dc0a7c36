//! Admitting a request that presents a `Payment` credential, in Aperture's order: the id (HMAC
//! of the echo, under this epoch's secret or the last one's), `expires` (present and future),
//! the request, the payload, then what the intent needs:
//!
//! - `charge`: the preimage pays the request's invoice, the amount covers this request's price,
//!   the echoed `opaque` is the one this request needs (a tool's), and the payment hash was
//!   never accepted before, on any instance (consumed atomically with the decision).
//! - `session`: `open` (the deposit's preimage; an amountless, unexpired return invoice on our
//!   network), `bearer` (the session's preimage), `topUp` (a new payment, credited once, to this
//!   session only) and `close` (the refund paid once, see [`super::refund`]). Every request
//!   served on a session costs its price, spent atomically from the deposit; a close is free.
//!
//! An invalid credential is an answer (`valid: false` with a reason code), not an error.

use serde::Serialize;
use serde_json::{Map, Value};
use tracing::info;

use super::MppSeller;
use crate::bolt11;
use crate::l402::mpp::lightning::{self, ChargeRequest, Payload, SessionRequest};
use crate::l402::mpp::{PaymentChallenge, PaymentCredential, PaymentReceipt, challenge};
use crate::l402::{MSAT_PER_SAT, Msat, PaymentHash, Preimage, TokenId};
use crate::mint::SellError;
use crate::storage::{Credit, NewSession, RefundStatus};

/// What a request must pay, and how.
#[derive(Debug, Clone, Copy)]
pub struct Access<'a> {
    /// The service sales are recorded under.
    pub service: &'a str,
    /// What this request costs.
    pub price_msat: u64,
    /// Whether one-payment charges are accepted.
    pub charge: bool,
    /// Whether sessions are accepted.
    pub session: bool,
    /// The `opaque` a charge must echo (e.g. the MCP tool it was minted for); `None`: any.
    pub opaque: Option<&'a Map<String, Value>>,
    /// Session idle timeout for sessions opened here.
    pub idle_secs: u64,
}

/// The verdict on a credential.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Verdict {
    /// Serve the request.
    pub valid: bool,
    /// Why not: `malformed`, `method_unsupported`, `intent_refused`, `invalid_challenge`,
    /// `expired`, `preimage_mismatch`, `underpaid`, `wrong_route`, `already_used`,
    /// `session_not_found`, `session_closed`, `insufficient_balance`, `invalid_return_invoice`.
    pub reason_code: Option<&'static str>,
    pub reason: Option<String>,
    pub intent: Option<String>,
    /// `charge`, `open`, `bearer`, `topUp` or `close`.
    pub action: Option<&'static str>,
    /// The charge's payment hash, or the session's id.
    pub payment_hash: Option<String>,
    pub challenge_id: Option<String>,
    /// What this credential paid now (a charge, a deposit, a top-up).
    pub amount_paid_msat: Option<u64>,
    /// What is left on the session after this request.
    pub session_balance_msat: Option<u64>,
    /// A close: what was refunded and how that went.
    pub refund_msat: Option<u64>,
    pub refund_status: Option<RefundStatus>,
    /// The receipt to send with the response (`Payment-Receipt`).
    #[serde(skip)]
    pub receipt: Option<PaymentReceipt>,
}

impl Verdict {
    fn refused(code: &'static str, reason: impl Into<String>) -> Verdict {
        Verdict {
            reason_code: Some(code),
            reason: Some(reason.into()),
            ..Verdict::default()
        }
    }

    fn about(mut self, c: &PaymentChallenge) -> Verdict {
        self.intent = Some(c.intent.clone());
        self.challenge_id = Some(c.id.clone());
        self
    }
}

impl MppSeller {
    /// Admit one request presenting `authorization` (an `Authorization: Payment ...` value).
    pub async fn admit(
        &self,
        authorization: &str,
        access: Access<'_>,
    ) -> Result<Verdict, SellError> {
        match PaymentCredential::parse_authorization(authorization) {
            Ok(c) => self.admit_credential(&c, access).await,
            Err(e) => Ok(Verdict::refused("malformed", e.to_string())),
        }
    }

    /// Admit one request presenting a parsed credential (an MCP tool call's `_meta` one).
    pub async fn admit_credential(
        &self,
        cred: &PaymentCredential,
        access: Access<'_>,
    ) -> Result<Verdict, SellError> {
        let c = &cred.challenge;
        let v = self.check(cred, access).await?.about(c);
        if let Some(code) = v.reason_code {
            info!(reason = code, intent = %c.intent, "Payment credential refused");
        }
        Ok(v)
    }

    async fn check(
        &self,
        cred: &PaymentCredential,
        access: Access<'_>,
    ) -> Result<Verdict, SellError> {
        let c = &cred.challenge;
        let now = self.now();
        if !c.method.eq_ignore_ascii_case(lightning::METHOD) {
            return Ok(Verdict::refused(
                "method_unsupported",
                format!("method {:?} is not lightning", c.method),
            ));
        }
        let charge = c.intent.eq_ignore_ascii_case(lightning::CHARGE);
        let session = c.intent.eq_ignore_ascii_case(lightning::SESSION);
        if !(charge && access.charge || session && access.session) {
            return Ok(Verdict::refused(
                "intent_refused",
                format!("intent {:?} is not accepted here", c.intent),
            ));
        }
        if !self.keys.verify(c, now).await? {
            return Ok(Verdict::refused(
                "invalid_challenge",
                "the challenge was not issued here (or was changed)",
            ));
        }
        match c.expires_at() {
            Some(Ok(t)) if t > now => {}
            Some(Ok(_)) => return Ok(Verdict::refused("expired", "the challenge has expired")),
            _ => {
                return Ok(Verdict::refused(
                    "invalid_challenge",
                    "the challenge has no readable expires",
                ));
            }
        }
        let payload = match cred.lightning_payload() {
            Ok(p) => p,
            Err(e) => return Ok(Verdict::refused("malformed", e.to_string())),
        };
        let request = match c.request_json() {
            Ok(r) => r,
            Err(e) => return Ok(Verdict::refused("malformed", e.to_string())),
        };
        if charge {
            let Payload::Charge { preimage } = payload else {
                return Ok(Verdict::refused("malformed", "not a charge payload"));
            };
            return match ChargeRequest::parse(&request) {
                Ok(r) => self.charge(c, &r, &preimage, access).await,
                Err(e) => Ok(Verdict::refused("malformed", e.to_string())),
            };
        }
        match SessionRequest::parse(&request) {
            Ok(r) => self.session(c, &r, payload, access).await,
            Err(e) => Ok(Verdict::refused("malformed", e.to_string())),
        }
    }

    async fn charge(
        &self,
        c: &PaymentChallenge,
        r: &ChargeRequest,
        preimage: &Preimage,
        access: Access<'_>,
    ) -> Result<Verdict, SellError> {
        let hash = match r.payment_hash {
            Some(h) => h,
            None => match bolt11::decode(&r.invoice) {
                Ok(inv) => inv.payment_hash,
                Err(e) => return Ok(Verdict::refused("malformed", e.to_string())),
            },
        };
        if !preimage.matches(&hash) {
            return Ok(Verdict::refused(
                "preimage_mismatch",
                "the preimage does not pay this challenge's invoice",
            ));
        }
        let paid = r.amount_sats.saturating_mul(MSAT_PER_SAT);
        if paid < access.price_msat {
            return Ok(Verdict::refused(
                "underpaid",
                format!(
                    "this request costs {} msat; the challenge was for {paid} msat",
                    access.price_msat
                ),
            ));
        }
        if let Some(want) = access.opaque
            && c.opaque.as_deref() != Some(challenge::encode_opaque(want).as_str())
        {
            return Ok(Verdict::refused(
                "wrong_route",
                "the challenge was issued for another resource",
            ));
        }
        let expires_at = c.expires_at().and_then(Result::ok).unwrap_or(0);
        if !self
            .store
            .consume_charge(&hash, &c.id, expires_at, self.now())
            .await?
        {
            return Ok(Verdict::refused(
                "already_used",
                "this payment has already bought a request",
            ));
        }
        self.record_income(&hash, paid, access.service).await?;
        info!(payment_hash = %hash, amount_msat = paid, service = access.service, "Payment charge accepted");
        Ok(Verdict {
            valid: true,
            action: Some("charge"),
            payment_hash: Some(hash.to_hex()),
            amount_paid_msat: Some(paid),
            receipt: Some(self.receipt(&hash, &c.id)),
            ..Verdict::default()
        })
    }

    fn receipt(&self, reference: &PaymentHash, challenge_id: &str) -> PaymentReceipt {
        PaymentReceipt::success(
            lightning::METHOD,
            self.now(),
            &reference.to_hex(),
            Some(challenge_id),
        )
    }

    /// The preimage proves the invoice was paid: record the income and the sale.
    async fn record_income(
        &self,
        hash: &PaymentHash,
        amount_msat: u64,
        service: &str,
    ) -> Result<(), SellError> {
        let now = self.now();
        let amount = Msat::from_msat(amount_msat);
        self.seller
            .ledger()
            .mark_incoming_settled(self.seller.wallet_name(), hash, Some(amount), now)
            .await?;
        self.seller
            .tokens()
            .record_sale(hash, &TokenId(hash.0), service, amount, now)
            .await?;
        Ok(())
    }

    async fn session(
        &self,
        c: &PaymentChallenge,
        r: &SessionRequest,
        payload: Payload,
        access: Access<'_>,
    ) -> Result<Verdict, SellError> {
        let now = self.now();
        let price = Msat::from_msat(access.price_msat);
        let (action, id, paid) = match payload {
            Payload::Open {
                preimage,
                return_invoice,
            } => {
                if !preimage.matches(&r.payment_hash) {
                    return Ok(Verdict::refused(
                        "preimage_mismatch",
                        "the preimage does not pay the deposit invoice",
                    ));
                }
                if let Err(why) = self.check_return_invoice(&return_invoice, now).await? {
                    return Ok(Verdict::refused("invalid_return_invoice", why));
                }
                let deposit = r.deposit_sats.unwrap_or(0).saturating_mul(MSAT_PER_SAT);
                let opened = self
                    .store
                    .open_session(
                        &NewSession {
                            id: r.payment_hash,
                            wallet: self.seller.wallet_name(),
                            service: access.service,
                            deposit: Msat::from_msat(deposit),
                            return_invoice: &return_invoice,
                            idle_secs: access.idle_secs,
                        },
                        now,
                    )
                    .await?;
                if !opened {
                    return Ok(Verdict::refused(
                        "already_used",
                        "this deposit has already opened a session",
                    ));
                }
                self.record_income(&r.payment_hash, deposit, access.service)
                    .await?;
                info!(session = %r.payment_hash, deposit_msat = deposit, "Payment session opened");
                ("open", r.payment_hash, Some(deposit))
            }
            Payload::Bearer {
                session_id,
                preimage,
            } => {
                if let Some(refusal) = self.session_refusal(&session_id, &preimage).await? {
                    return Ok(refusal);
                }
                ("bearer", session_id, None)
            }
            Payload::TopUp {
                session_id,
                top_up_preimage,
            } => {
                if !top_up_preimage.matches(&r.payment_hash) {
                    return Ok(Verdict::refused(
                        "preimage_mismatch",
                        "the preimage does not pay this challenge's deposit invoice",
                    ));
                }
                let amount = r.deposit_sats.unwrap_or(0).saturating_mul(MSAT_PER_SAT);
                let credit = self
                    .store
                    .credit_session(&session_id, &r.payment_hash, Msat::from_msat(amount), now)
                    .await?;
                let paid = match credit {
                    Credit::Credited => {
                        self.record_income(&r.payment_hash, amount, access.service)
                            .await?;
                        Some(amount)
                    }
                    Credit::AlreadyCredited => None,
                    Credit::Elsewhere => {
                        return Ok(Verdict::refused(
                            "already_used",
                            "this payment was credited to another session",
                        ));
                    }
                    Credit::NotOpen => {
                        return Ok(Verdict::refused(
                            "session_closed",
                            "no open session to top up",
                        ));
                    }
                };
                ("topUp", session_id, paid)
            }
            Payload::Close {
                session_id,
                preimage,
            } => {
                if let Some(refusal) = self.session_refusal(&session_id, &preimage).await? {
                    return Ok(refusal);
                }
                return self.close(c, &session_id).await;
            }
            Payload::Charge { .. } => {
                return Ok(Verdict::refused("malformed", "not a session payload"));
            }
        };
        let Some(left) = self.store.spend_session(&id, price, now).await? else {
            return Ok(Verdict::refused(
                "insufficient_balance",
                "the session's deposit does not cover this request: top up",
            ));
        };
        Ok(Verdict {
            valid: true,
            action: Some(action),
            payment_hash: Some(id.to_hex()),
            amount_paid_msat: paid,
            session_balance_msat: Some(left.msat()),
            receipt: Some(self.receipt(&id, &c.id)),
            ..Verdict::default()
        })
    }

    /// Why a session cannot be used with this preimage, if it cannot.
    async fn session_refusal(
        &self,
        id: &PaymentHash,
        preimage: &Preimage,
    ) -> Result<Option<Verdict>, SellError> {
        let Some(s) = self.store.session(id).await? else {
            return Ok(Some(Verdict::refused(
                "session_not_found",
                "no such session",
            )));
        };
        if !preimage.matches(&s.id) {
            return Ok(Some(Verdict::refused(
                "preimage_mismatch",
                "the preimage is not this session's",
            )));
        }
        if !s.open {
            return Ok(Some(Verdict::refused(
                "session_closed",
                "the session is closed",
            )));
        }
        Ok(None)
    }

    /// A return invoice must decode (signature checked), carry no amount, be for our network
    /// and still be payable: `Err(why)` otherwise.
    async fn check_return_invoice(
        &self,
        invoice: &str,
        now: u64,
    ) -> Result<Result<(), String>, SellError> {
        let inv = match bolt11::decode(invoice) {
            Ok(i) => i,
            Err(e) => return Ok(Err(format!("the return invoice does not decode: {e}"))),
        };
        if inv.amount_msat.is_some() {
            return Ok(Err("the return invoice must not have an amount".into()));
        }
        let network = self.network().await?;
        if inv.network != network {
            return Ok(Err(format!(
                "the return invoice is for {}, not {network}",
                inv.network
            )));
        }
        if inv.is_expired(now) {
            return Ok(Err("the return invoice has expired".into()));
        }
        Ok(Ok(()))
    }

    /// Close a session: the one call that closes it (on any instance) pays the refund.
    async fn close(&self, c: &PaymentChallenge, id: &PaymentHash) -> Result<Verdict, SellError> {
        let Some(owed) = self.store.close_session(id, self.now()).await? else {
            return Ok(Verdict::refused("session_closed", "the session is closed"));
        };
        crate::fault::point("mpp-after-close");
        info!(session = %id, refund_msat = owed.msat(), "Payment session closed");
        let status = if owed.is_zero() {
            RefundStatus::Skipped
        } else {
            self.refund(id).await?
        };
        let mut receipt = self.receipt(id, &c.id);
        receipt.refund_sats = Some(owed.sats_floor()).filter(|s| *s > 0);
        receipt.refund_status = Some(status.as_str().into());
        Ok(Verdict {
            valid: true,
            action: Some("close"),
            payment_hash: Some(id.to_hex()),
            refund_msat: Some(owed.msat()),
            refund_status: Some(status),
            session_balance_msat: Some(0),
            receipt: Some(receipt),
            ..Verdict::default()
        })
    }
}
