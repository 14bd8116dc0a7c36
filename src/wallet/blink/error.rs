//! What Blink's failures mean: a refused API key (HTTP 401 from its gateway), a key without
//! the scope an operation needs (a GraphQL error naming an `AuthorizationError`), a rate
//! limit, and for a payment whether any money can have moved.

use serde_json::Value;

use super::BlinkWallet;
use super::api::Scope;
use crate::wallet::WalletError;
use crate::wallet::toolkit::RestError;
use crate::wallet::toolkit::redact::clip;

/// Why a GraphQL call failed.
#[derive(Debug)]
pub(super) enum Failure {
    /// The HTTP request failed, or its answer was not JSON.
    Http(RestError),
    /// The key is valid but lacks the scope the operation needs.
    Scope(Scope),
    /// Blink answered with top-level GraphQL errors (`extensions.code`, message).
    Graphql {
        code: Option<String>,
        message: String,
    },
}

impl Failure {
    /// The failure of an answer: its top-level `errors`, if it has any.
    pub(super) fn of_answer(answer: &Value, needs: Scope) -> Option<Failure> {
        let first = answer.get("errors")?.as_array()?.first()?;
        let message = first
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        if message.contains("AuthorizationError") || message.contains("not authorized") {
            return Some(Failure::Scope(needs));
        }
        let code = first
            .pointer("/extensions/code")
            .and_then(Value::as_str)
            .map(str::to_owned);
        Some(Failure::Graphql { code, message })
    }

    /// Blink says it has no invoice or transaction for this hash.
    pub(super) fn is_not_found(&self) -> bool {
        matches!(self, Failure::Graphql { message, .. } if message.contains("does not exist"))
    }
}

impl BlinkWallet {
    pub(super) fn lacks(&self, scope: Scope, what: &str) -> String {
        format!(
            "the Blink API key lacks the {} scope, which {what} needs: create a key with Read + Receive to sell, or Read + Write to buy and sell (dashboard.blink.sv, API Keys)",
            scope.name()
        )
    }

    /// The error of a call that moves no money; `what` says what it was for.
    pub(super) fn call_error(&self, what: &str, f: Failure) -> WalletError {
        let msg = match f {
            Failure::Http(RestError::NotSent(m)) => return self.api.unreachable(&m),
            Failure::Http(RestError::Status {
                status: status @ (401 | 403),
                ..
            }) => return self.api.key_refused(status),
            Failure::Http(e) if e.is_rate_limited() => {
                return WalletError::Unavailable(format!(
                    "Blink is rate-limiting this client ({what}: {e}); try again later"
                ));
            }
            Failure::Scope(s) => return WalletError::Unavailable(self.lacks(s, what)),
            Failure::Http(RestError::Status { status: 404, .. }) => {
                return WalletError::Unavailable(self.api.redact(format!(
                    "{} answered HTTP 404 where Blink's GraphQL API should be: check url (L402_MCP_BLINK_URL), e.g. {}",
                    self.api.url,
                    super::DEFAULT_URL
                )));
            }
            Failure::Http(e) => format!("{what}: {e}"),
            Failure::Graphql { code, message } => format!(
                "{what}: Blink answered {}: {message}",
                code.as_deref().unwrap_or("an error")
            ),
        };
        WalletError::Other(self.api.redact(msg))
    }

    /// The error of `lnInvoicePaymentSend`: definite only when the request cannot have been
    /// acted on (never sent, key or scope refused, rate-limited, malformed); otherwise the
    /// payment may be under way and stays pending.
    pub(super) fn pay_error(&self, f: Failure) -> WalletError {
        match f {
            Failure::Http(RestError::NotSent(m)) => self.api.unreachable(&m),
            Failure::Http(RestError::Status {
                status: status @ (401 | 403),
                ..
            }) => self.api.key_refused(status),
            Failure::Http(RestError::Status { status: 429, body }) => {
                WalletError::Unavailable(format!(
                    "Blink is rate-limiting this client (HTTP 429 {}); nothing was paid",
                    clip(&body)
                ))
            }
            Failure::Http(RestError::Status { status: 400, body }) => {
                WalletError::Rejected(format!("Blink refused the request (HTTP 400 {body})"))
            }
            Failure::Scope(s) => WalletError::NotPayable(self.lacks(s, "paying")),
            Failure::Http(e) => WalletError::OutcomeUnknown(self.api.redact(format!(
                "{e}; the payment may have gone out, so it stays pending and is reconciled through Blink's transactions by payment hash"
            ))),
            Failure::Graphql { code, message } => WalletError::OutcomeUnknown(self.api.redact(format!(
                "Blink answered {}: {message}; the payment may have gone out, so it stays pending and is reconciled",
                code.as_deref().unwrap_or("an error")
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_refusals_are_told_from_other_errors() {
        let denied: Value = serde_json::from_str(
            r#"{"data":null,"errors":[{"message":"Unexpected error occurred, please try again or contact support if it persists (code: AuthorizationError: not authorized to execute mutations)","path":["lnInvoicePaymentSend"],"extensions":{"code":"UNEXPECTED_CLIENT_ERROR"}}]}"#,
        )
        .unwrap();
        assert!(matches!(
            Failure::of_answer(&denied, Scope::Write),
            Some(Failure::Scope(Scope::Write))
        ));
        let missing: Value = serde_json::from_str(
            r#"{"data":{"me":null},"errors":[{"message":"User tried to pay invoice with hash 6555, but it does not exist","path":["me"],"extensions":{"code":"LIGHTNING_PAYMENT_ERROR"}}]}"#,
        )
        .unwrap();
        let f = Failure::of_answer(&missing, Scope::Read).unwrap();
        assert!(f.is_not_found());
        assert!(
            matches!(f, Failure::Graphql { code: Some(c), .. } if c == "LIGHTNING_PAYMENT_ERROR")
        );
        assert!(Failure::of_answer(&serde_json::json!({"data": {}}), Scope::Read).is_none());
    }
}
