//! Why an NWC request failed: the transport ([`Transport`]: could the wallet service have
//! seen it?) and the NIP-47 error codes ([`ReplyError`]: which prove that nothing was paid).

use serde::Deserialize;

use crate::wallet::WalletError;
use crate::wallet::toolkit::redact::clip;

/// Why a request got no usable answer.
#[derive(Debug)]
pub(super) enum Transport {
    /// The request never reached a relay that accepted it: the wallet service cannot have seen it.
    NotSent(String),
    /// It may have reached the wallet service.
    Unknown(String),
}

impl Transport {
    /// For calls that move no money: either way the wallet is unavailable.
    pub(super) fn unavailable(self) -> WalletError {
        match self {
            Transport::NotSent(m) | Transport::Unknown(m) => WalletError::Unavailable(m),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub(super) struct ReplyError {
    pub(super) code: String,
    #[serde(default)]
    pub(super) message: Option<String>,
}

impl ReplyError {
    pub(super) fn describe(&self) -> String {
        let message: String = self
            .message
            .as_deref()
            .unwrap_or("")
            .chars()
            .filter(|c| !c.is_control())
            .collect();
        let message = clip(&message);
        let message = if message.is_empty() {
            "no message"
        } else {
            &message
        };
        format!("{} ({message})", self.code)
    }
}

/// Codes NIP-47 defines for refusals made before a payment is attempted.
pub(super) const DEFINITE_CODES: &[&str] = &[
    "RATE_LIMITED",
    "NOT_IMPLEMENTED",
    "INSUFFICIENT_BALANCE",
    "QUOTA_EXCEEDED",
    "RESTRICTED",
    "UNAUTHORIZED",
    "UNSUPPORTED_ENCRYPTION",
];

/// Whether a pay_invoice error code proves that no payment was attempted.
pub(super) fn is_definite_refusal(code: &str) -> bool {
    DEFINITE_CODES.iter().any(|c| code.eq_ignore_ascii_case(c))
}

/// What to do about an error code, for people.
pub(super) fn advice(code: &str) -> &'static str {
    match code.to_ascii_uppercase().as_str() {
        "INSUFFICIENT_BALANCE" => {
            "the NWC wallet has too little balance for this payment and its fee reserve"
        }
        "QUOTA_EXCEEDED" => {
            "this connection's spending budget in the wallet service is used up; raise it in the wallet app"
        }
        "RESTRICTED" => {
            "this connection lacks the permission for this method; grant it in the wallet app (see the README section on NWC)"
        }
        "UNAUTHORIZED" => {
            "the wallet service does not know this connection (revoked, or a wrong URI); create a new connection"
        }
        "NOT_IMPLEMENTED" => "the wallet service does not support this method",
        "RATE_LIMITED" => "the wallet service is rate limiting this connection; try again shortly",
        "UNSUPPORTED_ENCRYPTION" => {
            "the wallet service does not accept NIP-04 encrypted requests, which this client sends"
        }
        "NOT_FOUND" => "the wallet service has no such invoice or payment",
        "PAYMENT_FAILED" => "the wallet service reports that the payment failed",
        _ => "the wallet service reported an error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definite_codes_are_the_refusals_before_paying() {
        for code in [
            "INSUFFICIENT_BALANCE",
            "QUOTA_EXCEEDED",
            "RESTRICTED",
            "UNAUTHORIZED",
            "NOT_IMPLEMENTED",
            "RATE_LIMITED",
            "UNSUPPORTED_ENCRYPTION",
        ] {
            assert!(is_definite_refusal(code), "{code}");
        }
        for code in [
            "PAYMENT_FAILED",
            "INTERNAL",
            "OTHER",
            "NOT_FOUND",
            "NEW_CODE",
        ] {
            assert!(!is_definite_refusal(code), "{code}");
        }
    }
}
