//! The paywall's `Payment` scheme (MPP): which schemes a route speaks ([`AuthMode`]), its
//! `Payment` challenges (a charge, and a session when the route offers them), and the admission
//! of `Authorization: Payment` credentials through [`crate::mpp::MppSeller::admit`], answered
//! with a `Payment-Receipt` (and `Cache-Control: private`) on the response it lets through.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use serde::Serialize;
use tracing::{info, warn};

use super::paywall::{Decision, Paywall, Route, plain};
use crate::l402::mpp::{SCHEME, accept, lightning, receipt};
use crate::mint::SellError;
use crate::mpp::{Access, ChargeTerms, DEFAULT_SESSION_IDLE_SECS, SessionTerms};

/// The schemes a route offers and accepts (`auth = "l402" | "mpp" | "l402+mpp"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub enum AuthMode {
    #[serde(rename = "l402")]
    L402,
    #[serde(rename = "mpp")]
    Mpp,
    #[default]
    #[serde(rename = "l402+mpp")]
    Both,
}

impl AuthMode {
    pub fn l402(self) -> bool {
        matches!(self, AuthMode::L402 | AuthMode::Both)
    }

    pub fn mpp(self) -> bool {
        matches!(self, AuthMode::Mpp | AuthMode::Both)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AuthMode::L402 => "l402",
            AuthMode::Mpp => "mpp",
            AuthMode::Both => "l402+mpp",
        }
    }
}

impl std::str::FromStr for AuthMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "l402" => Ok(AuthMode::L402),
            "mpp" | "payment" => Ok(AuthMode::Mpp),
            "l402+mpp" | "mpp+l402" | "both" => Ok(AuthMode::Both),
            other => Err(format!(
                "auth {other:?} must be \"l402\", \"mpp\" or \"l402+mpp\""
            )),
        }
    }
}

/// Whether an `Authorization` value is of the `Payment` scheme.
pub fn is_payment(authorization: &str) -> bool {
    authorization
        .trim_start()
        .split(' ')
        .next()
        .is_some_and(|s| s.eq_ignore_ascii_case(SCHEME))
}

impl Paywall {
    /// The `Payment` challenges of a route at `price_msat`: a charge, then a session when the
    /// route offers sessions (Aperture's order). None when the route or the paywall does not
    /// sell through `Payment`.
    pub(super) async fn payment_lines(
        &self,
        route: &Route,
        price_msat: u64,
        description: &str,
        accept_payment: Option<&str>,
    ) -> Result<Vec<String>, SellError> {
        let Some(mpp) = self.mpp().filter(|_| route.auth.mpp()) else {
            return Ok(Vec::new());
        };
        let mut offers = vec![(lightning::METHOD, lightning::CHARGE)];
        if route.sessions {
            offers.push((lightning::METHOD, lightning::SESSION));
        }
        // Ranked by the buyer's Accept-Payment, as mppx's sellers do: unwanted offers are not
        // made (no invoice for them); when it wants none, or does not parse, all are.
        let ranked = accept_payment
            .and_then(|h| accept::parse(h).ok())
            .map(|prefs| accept::rank(&offers, &prefs))
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| (0..offers.len()).collect());
        let mut lines = Vec::with_capacity(ranked.len());
        for i in ranked {
            let (_, intent) = offers[i];
            let line = if intent == lightning::CHARGE {
                mpp.charge_challenge(&ChargeTerms {
                    amount_msat: price_msat,
                    description: Some(description.to_owned()),
                    ..ChargeTerms::default()
                })
                .await?
                .www_authenticate
            } else {
                let price_sats = crate::mpp::price_sats(price_msat);
                mpp.session_challenge(&SessionTerms {
                    price_msat,
                    deposit_msat: route
                        .session_deposit_requests
                        .map(|n| n.saturating_mul(price_sats).saturating_mul(1000)),
                    idle_secs: route.session_idle_secs,
                    description: Some(description.to_owned()),
                    expiry_secs: None,
                })
                .await?
                .www_authenticate
            };
            lines.push(line);
        }
        Ok(lines)
    }

    /// A request presenting `Authorization: Payment ...`: admitted (served, with a receipt) or
    /// answered with a fresh challenge.
    pub(super) async fn decide_payment(
        &self,
        route: &Route,
        parts: &axum::http::request::Parts,
        authorization: &str,
    ) -> Decision {
        let Some(mpp) = self.mpp().filter(|_| route.auth.mpp()) else {
            return Decision::Respond(self.challenge(route, parts).await);
        };
        let price = match self.price_msat(route, parts).await {
            Ok(p) => p,
            Err(e) => {
                warn!(route = %route.path, error = %e, "no price");
                return Decision::Respond(plain(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "pricing is unavailable; try again later",
                ));
            }
        };
        let access = Access {
            service: &route.service,
            price_msat: price,
            charge: true,
            session: route.sessions,
            opaque: None,
            idle_secs: route.session_idle_secs.unwrap_or(DEFAULT_SESSION_IDLE_SECS),
        };
        match mpp.admit(authorization, access).await {
            Ok(v) if v.valid => {
                let mut extra = HeaderMap::new();
                if let Some(r) = &v.receipt
                    && let Ok(value) = HeaderValue::from_str(&r.to_header())
                {
                    extra.insert(receipt::HEADER, value);
                    extra.insert(header::CACHE_CONTROL, HeaderValue::from_static("private"));
                }
                Decision::Pass(Some(extra))
            }
            Ok(v) => {
                info!(route = %route.path, reason = v.reason_code.unwrap_or("invalid"), "Payment credential refused; sending a fresh challenge");
                Decision::Respond(self.challenge_priced(route, parts, Ok(price)).await)
            }
            Err(e) => {
                warn!(error = %e, "Payment credential check failed");
                Decision::Respond(plain(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "payment verification is unavailable; try again",
                ))
            }
        }
    }
}
