//! Paying a 402 of the `Payment` scheme (MPP, method `lightning`) beside L402.
//!
//! A 402 may offer L402, a `Payment` charge and a `Payment` session at once (Aperture sends all
//! three). One is chosen by preference ([`SchemePreference`]: L402 first by default, as lnget
//! does; `payment` puts the charge first, `session` the session), skipping offers that cannot be
//! paid within the caller's cap or that this wallet cannot use; an open session with the
//! service is always used first (its deposit is paid already). One invoice is paid per 402.
//!
//! A charge is checked before anything is reserved: the invoice's amount must be the
//! request's `amount` sats, its payment hash the request's `paymentHash`, its network the
//! request's `network` (and the wallet's), and the challenge unexpired. It is then paid through
//! the pay path (budget, caps, reservation, crash recovery) and the request is sent again with
//! `Authorization: Payment <credential>` echoing the challenge byte for byte. The credential is
//! single use: never cached. A refusal right after payment is "refused after payment", as for
//! L402: one payment at most, and the seller distrusted.

use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderName, WWW_AUTHENTICATE};
use serde::Serialize;

use super::challenge::Found;
use super::judge::refuses;
use super::transport::Present;
use super::{FetchError, FetchRequest, FetchResponse, Fetcher, Resource};
use crate::bolt11::{self, DecodedInvoice, Network};
use crate::l402::MSAT_PER_SAT;
use crate::l402::mpp::lightning::{self, ChargeRequest, Payload, SessionRequest};
use crate::l402::mpp::{PaymentChallenge, accept, challenge, credential, receipt};
use crate::pay::PayRequest;
use crate::payee::Payee;

/// Which offer of a 402 to pay when several are made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SchemePreference {
    /// L402, then a `Payment` charge, then a session (lnget's default).
    #[default]
    L402,
    /// A `Payment` charge, then a session, then L402.
    Payment,
    /// A `Payment` session, then a charge, then L402.
    Session,
}

impl std::str::FromStr for SchemePreference {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "l402" | "lsat" => Ok(SchemePreference::L402),
            "payment" | "mpp" | "charge" => Ok(SchemePreference::Payment),
            "session" => Ok(SchemePreference::Session),
            other => Err(format!(
                "scheme preference {other:?} must be \"l402\", \"payment\" or \"session\""
            )),
        }
    }
}

/// What a `Payment` offer was used for, for the receipt.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PaymentUse {
    /// `charge` or `session`.
    pub intent: &'static str,
    /// `charge`, `open`, `bearer`, `topUp` or `close`.
    pub action: &'static str,
    /// The seller's `Payment-Receipt`, decoded.
    pub receipt: Option<serde_json::Value>,
    /// The session used (its deposit's payment hash).
    pub session_id: Option<String>,
}

/// The offers of a 402, in the order they would be tried.
pub(super) enum Offer {
    L402(Found),
    Charge(PaymentChallenge),
    Session(PaymentChallenge),
}

/// The lightning `Payment` offers of a 402's headers (others are ignored), and why any offer
/// could not be read.
pub(super) fn payment_offers(headers: &HeaderMap) -> (Vec<PaymentChallenge>, Vec<String>) {
    let values: Vec<&str> = headers
        .get_all(WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let offers = challenge::parse_headers(values);
    let usable = offers
        .challenges
        .into_iter()
        .filter(|c| {
            c.is(lightning::METHOD, lightning::CHARGE)
                || c.is(lightning::METHOD, lightning::SESSION)
        })
        .collect();
    (usable, offers.skipped)
}

/// Order the offers by preference; an offer of a session already open goes first.
pub(super) fn ordered(
    preference: SchemePreference,
    l402: Option<Found>,
    payment: Vec<PaymentChallenge>,
    open_session_realm: Option<&str>,
) -> Vec<Offer> {
    let mut l402 = l402.map(Offer::L402);
    let (mut charges, mut sessions) = (Vec::new(), Vec::new());
    for c in payment {
        if c.is(lightning::METHOD, lightning::CHARGE) {
            charges.push(Offer::Charge(c));
        } else {
            sessions.push(Offer::Session(c));
        }
    }
    let mut out = Vec::new();
    if let Some(realm) = open_session_realm
        && let Some(i) = sessions
            .iter()
            .position(|o| matches!(o, Offer::Session(c) if c.realm == realm))
    {
        out.push(sessions.remove(i));
    }
    let order: [u8; 3] = match preference {
        SchemePreference::L402 => [0, 1, 2],
        SchemePreference::Payment => [1, 2, 0],
        SchemePreference::Session => [2, 1, 0],
    };
    for kind in order {
        match kind {
            0 => out.extend(l402.take()),
            1 => out.append(&mut charges),
            _ => out.append(&mut sessions),
        }
    }
    out
}

/// A refusal before paying: what was wrong with the offer.
pub(super) fn refuse(code: &'static str, detail: impl Into<String>) -> FetchError {
    FetchError::PaymentChallenge {
        code,
        detail: detail.into(),
    }
}

/// The network a request names (`mainnet` when it names none).
fn request_network(name: Option<&str>) -> Result<Network, FetchError> {
    name.unwrap_or("mainnet")
        .parse()
        .map_err(|e: String| refuse("invalid_challenge", e))
}

/// A challenge still answerable at `now`.
pub(super) fn check_expires(c: &PaymentChallenge, now: u64) -> Result<(), FetchError> {
    match c.expires_at() {
        None => Ok(()),
        Some(Ok(t)) if t > now => Ok(()),
        Some(Ok(t)) => Err(refuse(
            "challenge_expired",
            format!(
                "the Payment challenge expired at {} (unix {t}); ask again",
                c.expires.as_deref().unwrap_or_default()
            ),
        )),
        Some(Err(e)) => Err(refuse("invalid_challenge", e.to_string())),
    }
}

/// An invoice a request states: it must decode, ask for exactly `amount_sats`, have the stated
/// hash and be for the stated network (when one is stated; the wallet's is checked anyway).
pub(super) fn check_invoice(
    invoice: &str,
    amount_sats: u64,
    stated_hash: Option<crate::l402::PaymentHash>,
    network: Option<&str>,
) -> Result<DecodedInvoice, FetchError> {
    let inv = bolt11::decode(invoice).map_err(|e| refuse("invalid_invoice", e.to_string()))?;
    let want = amount_sats.saturating_mul(MSAT_PER_SAT);
    if inv.amount_msat != Some(want) {
        return Err(refuse(
            "challenge_mismatch",
            format!(
                "the Payment challenge says {amount_sats} sats but its invoice asks for {}",
                inv.amount_msat
                    .map_or("an amount of the payer's choosing".into(), |m| format!(
                        "{m} msat"
                    ))
            ),
        ));
    }
    if let Some(h) = stated_hash
        && h != inv.payment_hash
    {
        return Err(refuse(
            "challenge_mismatch",
            format!(
                "the Payment challenge names payment hash {h} but its invoice's is {}",
                inv.payment_hash
            ),
        ));
    }
    let Some(network) = network else {
        return Ok(inv);
    };
    let stated = request_network(Some(network))?;
    if stated != inv.network {
        return Err(refuse(
            "challenge_mismatch",
            format!(
                "the Payment challenge says network {stated} but its invoice is for {}",
                inv.network
            ),
        ));
    }
    Ok(inv)
}

/// A challenge bound to a request body (`digest`) must be bound to this request's: otherwise
/// the credential would be refused after paying. A digest of an algorithm other than
/// `sha-256` cannot be checked here, so it is refused too.
pub(super) fn check_digest(c: &PaymentChallenge, req: &FetchRequest) -> Result<(), FetchError> {
    let Some(digest) = &c.digest else {
        return Ok(());
    };
    let body = req.body.as_deref().unwrap_or_default().as_bytes();
    match accept::digest_matches(digest, body) {
        Some(true) => Ok(()),
        Some(false) => Err(refuse(
            "challenge_mismatch",
            "the Payment challenge is bound (digest) to another request body than this request's",
        )),
        None => Err(refuse(
            "invalid_challenge",
            format!("the Payment challenge's digest {digest:?} has no sha-256 member to check"),
        )),
    }
}

/// The `Accept-Payment` a buyer sends: the offers it can pay, in its order of preference.
pub(super) fn accept_payment(preference: SchemePreference, sessions: bool) -> &'static str {
    match (preference, sessions) {
        (_, false) => "lightning/charge",
        (SchemePreference::Session, true) => "lightning/session, lightning/charge;q=0.5",
        (_, true) => "lightning/charge, lightning/session;q=0.5",
    }
}

/// A charge ready to pay.
pub(super) struct ChargePlan {
    pub(super) challenge: PaymentChallenge,
    pub(super) request: ChargeRequest,
    pub(super) invoice: DecodedInvoice,
}

/// Check a charge offer before anything is reserved.
pub(super) fn plan_charge(
    c: &PaymentChallenge,
    cap_msat: Option<u64>,
    now: u64,
) -> Result<ChargePlan, FetchError> {
    check_expires(c, now)?;
    let request = c
        .request_json()
        .and_then(|v| ChargeRequest::parse(&v))
        .map_err(|e| refuse("invalid_challenge", e.to_string()))?;
    if !request.currency.eq_ignore_ascii_case(lightning::CURRENCY) {
        return Err(refuse(
            "invalid_challenge",
            format!("currency {:?} is not sat", request.currency),
        ));
    }
    let invoice = check_invoice(
        &request.invoice,
        request.amount_sats,
        request.payment_hash,
        Some(request.network.as_deref().unwrap_or("mainnet")),
    )?;
    if let Some(cap) = cap_msat
        && request.amount_sats.saturating_mul(MSAT_PER_SAT) > cap
    {
        return Err(FetchError::Pay(crate::pay::PayError::Budget(
            crate::budget::BudgetRefusal::CallerCap {
                amount_msat: request.amount_sats.saturating_mul(MSAT_PER_SAT),
                cap_msat: cap,
            },
        )));
    }
    if invoice.is_expired(now) {
        return Err(refuse(
            "challenge_expired",
            "the Payment challenge's invoice has expired; ask again",
        ));
    }
    Ok(ChargePlan {
        challenge: c.clone(),
        request,
        invoice,
    })
}

/// Check a session offer's request (the deposit itself is checked when the session opens).
pub(super) fn session_request(
    c: &PaymentChallenge,
    now: u64,
) -> Result<SessionRequest, FetchError> {
    check_expires(c, now)?;
    let r = c
        .request_json()
        .and_then(|v| SessionRequest::parse(&v))
        .map_err(|e| refuse("invalid_challenge", e.to_string()))?;
    if !r.currency.eq_ignore_ascii_case(lightning::CURRENCY) {
        return Err(refuse(
            "invalid_challenge",
            format!("currency {:?} is not sat", r.currency),
        ));
    }
    Ok(r)
}

/// The request header a challenge's credential goes in (mppx may name another).
pub(super) fn credential_header(c: &PaymentChallenge) -> HeaderName {
    c.header
        .as_deref()
        .and_then(|h| HeaderName::from_bytes(h.as_bytes()).ok())
        .unwrap_or(AUTHORIZATION)
}

/// What to present: a `Payment` credential answering `c`.
pub(super) fn present<'a>(c: &PaymentChallenge, payload: &Payload) -> Present<'a> {
    Present::Payment {
        header: credential_header(c),
        value: credential::authorization(c, payload),
    }
}

/// The `Payment-Receipt` of a response, decoded (as the caller sees it).
pub(super) fn receipt_of(resp: &FetchResponse) -> Option<serde_json::Value> {
    resp.headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(receipt::HEADER))
        .and_then(|(_, v)| receipt::parse_header(v).ok())
        .map(serde_json::Value::Object)
}

impl Fetcher {
    /// A `Payment` credential refused right after its payment: as for L402, the seller is
    /// distrusted and the call says what was paid.
    pub(super) async fn refused_paid(
        &self,
        resource: &Resource,
        payee: &Payee,
        receipt: &crate::pay::Receipt,
        status: reqwest::StatusCode,
    ) -> Result<FetchError, FetchError> {
        self.refused_after_payment(
            &resource.origin,
            None,
            payee,
            receipt.payment_hash,
            receipt.amount_msat,
            status,
        )
        .await
    }

    /// Pay a charge and send the request again with its credential.
    pub(super) async fn buy_charge(
        &self,
        req: &FetchRequest,
        resource: &Resource,
        payee: &Payee,
        plan: ChargePlan,
    ) -> Result<FetchResponse, FetchError> {
        let receipt = self
            .payer
            .pay(&PayRequest {
                invoice: &plan.request.invoice,
                max_amount_msat: req.max_price_msat,
                max_fee_msat: None,
                url: Some(resource.url.as_str()),
                payee: Some(payee),
                expect_payment_hash: Some(plan.invoice.payment_hash),
                credential: None,
                needs_preimage: true,
            })
            .await?;
        let payload = Payload::Charge {
            preimage: receipt.preimage,
        };
        let answer = async {
            let paid = self
                .exchange(
                    req,
                    resource.url.clone(),
                    present(&plan.challenge, &payload),
                )
                .await?;
            let status = paid.response.status();
            if refuses(status) || status == reqwest::StatusCode::PAYMENT_REQUIRED {
                return Err(self.refused_paid(resource, payee, &receipt, status).await?);
            }
            let mut out = self.finish(paid, req, Some(&receipt)).await?;
            out.receipt.payment = Some(PaymentUse {
                intent: lightning::CHARGE,
                action: "charge",
                receipt: receipt_of(&out),
                session_id: None,
            });
            Ok(out)
        };
        answer.await.map_err(|e| match e {
            e @ (FetchError::RefusedAfterPayment { .. } | FetchError::PaidButFailed { .. }) => e,
            e => FetchError::PaidButFailed {
                amount_msat: receipt.amount_msat,
                fee_msat: receipt.fee_msat,
                payment_hash: receipt.payment_hash.to_hex(),
                next: "a Payment charge is single use: calling fetch_paid again would pay again; the payment hash is the proof of payment to show the seller",
                cause: Box::new(e),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(intent: &str, realm: &str) -> PaymentChallenge {
        PaymentChallenge {
            id: "x".into(),
            realm: realm.into(),
            method: "lightning".into(),
            intent: intent.into(),
            request: "e30".into(),
            ..PaymentChallenge::default()
        }
    }

    fn kinds(offers: &[Offer]) -> Vec<&'static str> {
        offers
            .iter()
            .map(|o| match o {
                Offer::L402(_) => "l402",
                Offer::Charge(_) => "charge",
                Offer::Session(_) => "session",
            })
            .collect()
    }

    #[test]
    fn preference_orders_the_offers() {
        let l402 = || {
            Some(Found::PaymentHashBody {
                invoice: "lnbc1".into(),
                payment_hash: None,
            })
        };
        let both = || vec![offer("session", "r"), offer("charge", "r")];
        let cases = [
            (
                SchemePreference::L402,
                None,
                vec!["l402", "charge", "session"],
            ),
            (
                SchemePreference::Payment,
                None,
                vec!["charge", "session", "l402"],
            ),
            (
                SchemePreference::Session,
                None,
                vec!["session", "charge", "l402"],
            ),
            // A session already open with this realm goes first.
            (
                SchemePreference::L402,
                Some("r"),
                vec!["session", "l402", "charge"],
            ),
            (
                SchemePreference::L402,
                Some("other"),
                vec!["l402", "charge", "session"],
            ),
        ];
        for (pref, open, want) in cases {
            assert_eq!(
                kinds(&ordered(pref, l402(), both(), open)),
                want,
                "{pref:?} {open:?}"
            );
        }
        assert_eq!(
            kinds(&ordered(SchemePreference::L402, None, both(), None)),
            ["charge", "session"]
        );
        assert_eq!("MPP".parse(), Ok(SchemePreference::Payment));
        assert!("x402".parse::<SchemePreference>().is_err());
    }
}
