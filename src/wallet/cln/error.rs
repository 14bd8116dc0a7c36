//! What Core Lightning's error answers mean: a refused rune, a missing method, and for `pay`
//! whether any part of the payment can be out.

use crate::wallet::WalletError;
use crate::wallet::toolkit::{RestError, json};

/// A failed call that moves no money, with CLN's message when it sent one.
pub(super) fn rpc_error(method: &str, e: RestError) -> WalletError {
    match e {
        RestError::Status {
            status: 401 | 403,
            body,
        } => WalletError::Unavailable(format!(
            "Core Lightning refused the rune for {method} (check the rune and its restrictions): {}",
            message(&body)
        )),
        RestError::Status { status: 404, body } => WalletError::Unavailable(format!(
            "Core Lightning has no method {method} (is clnrest up to date?): {}",
            message(&body)
        )),
        RestError::Status { status, body } => WalletError::Other(format!(
            "Core Lightning's {method} failed (HTTP {status}): {}",
            message(&body)
        )),
        other => other.into_wallet_error(),
    }
}

/// The `message` of a JSON-RPC error body (which `Rest` may have clipped).
pub(super) fn message(body: &str) -> String {
    json::error_fields(body)
        .1
        .unwrap_or_else(|| body.to_owned())
}

/// A failed `pay`: definite only for the error codes that say no part of the payment is out.
pub(super) fn pay_error(e: RestError) -> WalletError {
    let (status, body) = match e {
        RestError::Status { status, body } => (status, body),
        other => return other.into_payment_error(),
    };
    if matches!(status, 401 | 403 | 404) {
        return rpc_error("pay", RestError::Status { status, body });
    }
    let (code, msg) = json::error_fields(&body);
    let msg = msg.unwrap_or(body);
    match code {
        // 203 permanent failure at the destination, 205 no route, 206 route too expensive
        // (fee or delay limit), 210 timed out with no payment in progress; -32602 invalid
        // parameters (e.g. an invoice CLN cannot parse).
        Some(203) => WalletError::Rejected(format!("the payee refused the payment: {msg}")),
        Some(205) => WalletError::Rejected(format!("Core Lightning found no route: {msg}")),
        Some(206) => {
            WalletError::Rejected(format!("every route costs more than the fee limit: {msg}"))
        }
        Some(210) => WalletError::Rejected(format!("the payment timed out unsent: {msg}")),
        Some(-32602) => WalletError::Rejected(format!("Core Lightning refused the invoice: {msg}")),
        // -1 catchall, 201 already paid with this hash, 207 expired while paying, 209 xpay's
        // other error, 219 already paid, or no code at all: parts may be out.
        _ => WalletError::OutcomeUnknown(format!(
            "Core Lightning's pay failed with code {}: {msg}",
            code.map_or_else(|| "none".into(), |c| c.to_string())
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pay_errors_are_definite_only_when_nothing_is_out() {
        let status = |code: &str| {
            pay_error(RestError::Status {
                status: 500,
                body: format!(r#"{{"code":{code},"message":"m","data":{{}}}}"#),
            })
        };
        for code in ["203", "205", "206", "210", "-32602"] {
            assert!(status(code).definitely_not_paid(), "{code}");
        }
        for code in ["-1", "201", "207", "209", "219", "null"] {
            assert!(!status(code).definitely_not_paid(), "{code}");
        }
        let refused = pay_error(RestError::Status {
            status: 401,
            body: r#"{"code":1502,"message":"Rune is not valid"}"#.into(),
        });
        assert!(refused.definitely_not_paid());
        assert!(
            !pay_error(RestError::Timeout("slow".into())).definitely_not_paid(),
            "a timeout is never definite"
        );
    }
}
