//! What LNbits' error answers mean: a refused key (named, with what to fix), a URL that is
//! not LNbits, and for a payment whether any money can have moved.

use serde_json::Value;

use super::config::Key;
use super::{LnbitsWallet, WalletError};
use crate::wallet::toolkit::RestError;
use crate::wallet::toolkit::redact::clip;

/// The `{"detail", "status"}` of an error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ErrorBody {
    pub(super) detail: String,
    /// LNbits' word on the payment: failed, pending or success.
    pub(super) status: Option<String>,
    /// FastAPI's request validation (the handler never ran).
    pub(super) validation: bool,
}

impl ErrorBody {
    pub(super) fn parse(body: &str) -> ErrorBody {
        match serde_json::from_str::<Value>(body) {
            Ok(v) => {
                let (detail, validation) = match v.get("detail") {
                    Some(Value::String(s)) => (s.clone(), false),
                    Some(Value::Array(items)) => {
                        let msgs: Vec<String> = items
                            .iter()
                            .map(|i| {
                                i.get("msg")
                                    .and_then(Value::as_str)
                                    .map_or_else(|| i.to_string(), str::to_owned)
                            })
                            .collect();
                        (format!("invalid request: {}", msgs.join("; ")), true)
                    }
                    Some(other) => (other.to_string(), false),
                    None => (clip(body), false),
                };
                let status = v.get("status").and_then(Value::as_str).map(str::to_owned);
                ErrorBody {
                    detail,
                    status,
                    validation,
                }
            }
            // Not JSON, or cut short by the client: read what can be read.
            Err(_) => {
                let squeezed: String = body.chars().filter(|c| !c.is_whitespace()).collect();
                let status = ["failed", "pending", "success"]
                    .into_iter()
                    .find(|s| squeezed.contains(&format!("\"status\":\"{s}\"")))
                    .map(str::to_owned);
                let detail = body
                    .split("\"detail\"")
                    .nth(1)
                    .and_then(|rest| rest.split('"').nth(1))
                    .map_or_else(|| clip(body), str::to_owned);
                ErrorBody {
                    detail,
                    status,
                    validation: false,
                }
            }
        }
    }

    pub(super) fn wallet_not_found(&self) -> bool {
        self.detail
            .trim_end_matches('.')
            .eq_ignore_ascii_case("wallet not found")
    }
}

/// Words of LNbits' payment refusals that leave no doubt nothing was paid (for versions whose
/// answers carry no `status`; 1.6.2 raises every one of these with status "failed").
pub(super) const DEFINITE_REFUSALS: &[&str] = &[
    "insufficient balance",
    "internal invoice already paid",
    "only internal invoices can be used",
    "expired",
    "amountless invoices",
    "bolt11 decoding failed",
    "invalid bolt11",
    "invalid invoice",
    "is too high",
    "cover potential routing fees",
    "does not have permission",
    "only incoming payments allowed",
    "time limit of",
    "daily withdrawal limit",
    "not allowed to spend funds",
    "missing bolt11",
    "missig invoice amount",
    "missing invoice amount",
    "internal payment not found",
    "payment failed:",
];

/// What an error answer to `POST /api/v1/payments {"out": true}` says about the money.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Refusal {
    /// The key was refused before LNbits looked at the invoice.
    Key,
    /// The URL is not an LNbits payments endpoint.
    NotLnbits,
    /// Too many requests: refused before the handler ran.
    RateLimited,
    /// Nothing moved and nothing will.
    Definite,
    /// LNbits says the invoice was paid before, perhaps by this wallet.
    AlreadyPaid,
    /// It may have gone out, or still may.
    Unknown,
}

pub(super) fn classify_refusal(status: u16, body: &ErrorBody) -> Refusal {
    match status {
        401 | 403 => Refusal::Key,
        404 if body.wallet_not_found() => Refusal::Key,
        404 | 405 => Refusal::NotLnbits,
        429 => Refusal::RateLimited,
        _ => match body.status.as_deref() {
            Some("failed") => Refusal::Definite,
            Some("success") => Refusal::AlreadyPaid,
            Some(_) => Refusal::Unknown,
            None if body.validation => Refusal::Definite,
            None => {
                let detail = body.detail.to_ascii_lowercase();
                if DEFINITE_REFUSALS.iter().any(|w| detail.contains(w)) {
                    Refusal::Definite
                } else {
                    Refusal::Unknown
                }
            }
        },
    }
}

impl LnbitsWallet {
    /// The error for a key LNbits refused, if it refused one.
    pub(super) fn key_error(&self, key: Key, status: u16, body: &ErrorBody) -> Option<WalletError> {
        let (field, env, label) = (key.field(), key.env(), key.label());
        let msg = match status {
            403 if key == Key::Admin => format!(
                "LNbits refused the credentials: {field} is not the wallet's Admin key (HTTP 403 \"{}\"), and only the Admin key can pay; copy the Admin key from the wallet's API info into {field} ({env})",
                body.detail
            ),
            401 | 403 => format!(
                "LNbits refused the credentials (HTTP {status} \"{}\"): check {field} ({env}), the wallet's {label}",
                body.detail
            ),
            404 if body.wallet_not_found() => format!(
                "LNbits refused the credentials: no wallet on {} has this {label} (HTTP 404 \"Wallet not found.\"); copy it from the wallet's API info into {field} ({env})",
                self.url
            ),
            _ => return None,
        };
        Some(WalletError::Unavailable(self.redact(msg)))
    }

    pub(super) fn not_lnbits(&self, status: u16) -> WalletError {
        WalletError::Unavailable(self.redact(format!(
            "{} answered HTTP {status} where the LNbits API should be: check url (L402_MCP_LNBITS_URL), the LNbits base URL without /api/...",
            self.url
        )))
    }

    pub(super) fn unreachable(&self, why: &str) -> WalletError {
        WalletError::Unavailable(self.redact(format!(
            "could not reach LNbits at {} ({why}): check url (L402_MCP_LNBITS_URL) and that LNbits is running",
            self.url
        )))
    }

    /// The error of a call that moves no money.
    pub(super) fn call_error(&self, key: Key, what: &str, e: RestError) -> WalletError {
        let msg = match e {
            RestError::NotSent(m) => return self.unreachable(&m),
            RestError::Status { status, body } => {
                let b = ErrorBody::parse(&body);
                if let Some(e) = self.key_error(key, status, &b) {
                    return e;
                }
                if status == 404 {
                    return self.not_lnbits(status);
                }
                format!("{what}: LNbits answered HTTP {status}: {}", b.detail)
            }
            RestError::Timeout(m) => format!("{what}: LNbits did not answer in time ({m})"),
            RestError::Decode(m) => format!(
                "{what}: the answer from {} could not be read as LNbits' ({m})",
                self.url
            ),
        };
        WalletError::Other(self.redact(msg))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(status: u16, body: &str) -> Refusal {
        classify_refusal(status, &ErrorBody::parse(body))
    }

    #[test]
    fn payment_refusals_are_definite_only_when_lnbits_says_so() {
        // LNbits 1.6.2 answers.
        assert_eq!(
            refusal(
                520,
                r#"{"detail":"Insufficient balance.","status":"failed"}"#
            ),
            Refusal::Definite
        );
        assert_eq!(
            refusal(
                520,
                r#"{"detail":"Payment failed: Only internal invoices can be used!","status":"failed"}"#
            ),
            Refusal::Definite
        );
        assert_eq!(
            refusal(
                520,
                r#"{"detail":"Payment is still pending.","status":"pending"}"#
            ),
            Refusal::Unknown
        );
        assert_eq!(
            refusal(
                520,
                r#"{"detail":"Payment already paid.","status":"success"}"#
            ),
            Refusal::AlreadyPaid
        );
        assert_eq!(
            refusal(404, r#"{"detail":"Wallet not found."}"#),
            Refusal::Key
        );
        assert_eq!(
            refusal(403, r#"{"detail":"Invoice (or Admin) key required."}"#),
            Refusal::Key
        );
        assert_eq!(
            refusal(404, r#"{"detail":"Not Found"}"#),
            Refusal::NotLnbits
        );
        assert_eq!(
            refusal(
                400,
                r#"{"detail":[{"loc":["body","bolt11"],"msg":"str type expected"}]}"#
            ),
            Refusal::Definite
        );
        // Older versions: no status, known words.
        assert_eq!(
            refusal(520, r#"{"detail":"Insufficient balance."}"#),
            Refusal::Definite
        );
        assert_eq!(
            refusal(520, r#"{"detail":"Internal invoice already paid."}"#),
            Refusal::Definite
        );
        // Anything else may have moved money.
        assert_eq!(
            refusal(500, r#"{"detail":"Unexpected error! ID: 1234"}"#),
            Refusal::Unknown
        );
        assert_eq!(refusal(502, "Bad Gateway"), Refusal::Unknown);
        assert_eq!(
            refusal(400, r#"{"detail":"something odd"}"#),
            Refusal::Unknown
        );
        // A body the client cut short still says what it says.
        assert_eq!(
            refusal(
                520,
                r#"{"detail": "Insufficient balance.", "status": "failed"#
            ),
            Refusal::Definite
        );
    }
}
