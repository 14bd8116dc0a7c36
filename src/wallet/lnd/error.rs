//! What LND's error answers mean: for a payment, whether it was refused before any money
//! moved; for any call, whether the macaroon was refused.

use crate::wallet::WalletError;
use crate::wallet::toolkit::{RestError, json, redact};

/// What an error body of LND's REST proxy says: gRPC `code` and `message`, at the top level or
/// under `error` (streams). The body may be clipped, so a lenient scan backs up the parse.
pub(super) fn grpc_status(body: &str) -> (Option<i64>, String) {
    let (code, message) = json::error_fields(body);
    (code, message.unwrap_or_else(|| redact::clip(body)))
}

/// True when LND's answer is about the macaroon rather than the request.
fn credentials_refused(status: u16, code: Option<i64>, message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    matches!(status, 401 | 403)
        || matches!(code, Some(7 | 16))
        || m.contains("macaroon")
        || m.contains("permission denied")
        || m.contains("verification failed")
}

/// A failed call that moves no money; LND sends macaroon errors as HTTP 500.
pub(super) fn read_error(e: RestError) -> WalletError {
    if let RestError::Status { status, body } = &e {
        let (code, message) = grpc_status(body);
        if credentials_refused(*status, code, &message) {
            return WalletError::Unavailable(format!(
                "LND refused the macaroon (check it, and its permissions: see docs/wallets/lnd.md): {message}"
            ));
        }
    }
    e.into_wallet_error()
}

/// An HTTP error answer to SendPaymentV2. The stream had not started (LND writes the first
/// update as soon as the payment is registered), so the payment was refused before any HTLC,
/// except when LND says a payment for this hash exists already or the answer is not LND's.
pub(super) fn payment_refusal(status: u16, body: &str) -> WalletError {
    let (code, message) = grpc_status(body);
    if credentials_refused(status, code, &message) {
        return WalletError::Unavailable(format!(
            "LND refused the macaroon (it needs offchain:write to pay): {message}"
        ));
    }
    match code {
        // AlreadyExists: paid, or in flight, under this hash already. The lookup settles it.
        Some(6) => WalletError::OutcomeUnknown(format!(
            "LND already has a payment for this invoice ({message}); its outcome is looked up"
        )),
        // Unknown (plain errors: invalid or expired invoice, fee limit...), InvalidArgument,
        // NotFound, FailedPrecondition, OutOfRange, Unimplemented: refused up front.
        Some(2 | 3 | 5 | 9 | 11 | 12) => {
            WalletError::Rejected(format!("LND refused the payment: {message}"))
        }
        _ => WalletError::OutcomeUnknown(format!("LND answered HTTP {status}: {message}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_before_the_stream_are_classified() {
        let r = |status, body: &str| payment_refusal(status, body);
        assert!(matches!(
            r(
                500,
                r#"{"code":2,"message":"invoice expired","details":[]}"#
            ),
            WalletError::Rejected(_)
        ));
        assert!(matches!(
            r(409, r#"{"code":6,"message":"payment is in transition"}"#),
            WalletError::OutcomeUnknown(_)
        ));
        assert!(matches!(
            r(
                500,
                r#"{"code":2,"message":"verification failed: signature mismatch after caveat verification"}"#
            ),
            WalletError::Unavailable(_)
        ));
        assert!(matches!(
            r(502, "Bad Gateway"),
            WalletError::OutcomeUnknown(_)
        ));
        assert!(matches!(
            r(503, r#"{"code":14,"message":"unavailable"}"#),
            WalletError::OutcomeUnknown(_)
        ));
    }
}
