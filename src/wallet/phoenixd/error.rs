//! What phoenixd's error answers mean: a refused password, and for `payinvoice` whether the
//! request itself was refused.

use crate::wallet::WalletError;
use crate::wallet::toolkit::RestError;

/// A failed call that moves no money.
pub(super) fn refused_or(e: RestError) -> WalletError {
    match e {
        RestError::Status {
            status: 401 | 403,
            body,
        } => WalletError::Unavailable(format!(
            "phoenixd refused the password (use http-password from phoenix.conf; the limited-access password cannot pay): {body}"
        )),
        other => other.into_wallet_error(),
    }
}

/// A failed `payinvoice` call. A 4xx answer is a refusal of the request itself (bad invoice,
/// bad parameter, wrong password); anything else may have left a payment under way.
pub(super) fn pay_error(e: RestError) -> WalletError {
    match e {
        RestError::Status {
            status: 401 | 403, ..
        } => refused_or(e),
        RestError::Status { status, body } if (400..500).contains(&status) => {
            WalletError::Rejected(format!(
                "phoenixd refused the payment (HTTP {status}): {body}"
            ))
        }
        other => other.into_payment_error(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pay_refusals() {
        let e = |status, body: &str| {
            pay_error(RestError::Status {
                status,
                body: body.into(),
            })
        };
        assert!(matches!(
            e(400, "Invalid invoice"),
            WalletError::Rejected(_)
        ));
        assert!(matches!(
            e(401, "Invalid authentication"),
            WalletError::Unavailable(_)
        ));
        assert!(matches!(e(500, "boom"), WalletError::OutcomeUnknown(_)));
    }
}
