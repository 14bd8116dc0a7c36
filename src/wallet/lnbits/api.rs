//! The answers of LNbits' API that this backend reads, and what a payment lookup says.

use serde::Deserialize;
use serde_json::Value;

use crate::wallet::toolkit::json::preimage as preimage_of;

/// `GET /api/v1/wallet`.
#[derive(Debug, Deserialize)]
pub(super) struct WalletAnswer {
    #[serde(default)]
    pub(super) name: Option<String>,
    /// msat.
    pub(super) balance: i64,
    /// Only shown to the admin key.
    #[serde(default)]
    pub(super) id: Option<String>,
}

/// A payment as `GET /api/v1/payments/{hash}` shows it to its own wallet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Found {
    pub(super) state: State,
    /// msat: positive for an invoice, negative for a payment.
    pub(super) amount_msat: Option<i64>,
    pub(super) fee_msat: Option<i64>,
    /// Only once the payment succeeded.
    pub(super) preimage: Option<crate::l402::Preimage>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum State {
    Pending,
    Succeeded,
    Failed,
}

impl Found {
    /// From the lookup answer's top level (`paid`, `status`, `preimage`) and its `details`.
    pub(super) fn read(top: &Value, details: &Value) -> Found {
        let status = top
            .get("status")
            .or_else(|| details.get("status"))
            .and_then(Value::as_str);
        let state = if top.get("paid").and_then(Value::as_bool) == Some(true)
            || details.get("status").and_then(Value::as_str) == Some("success")
        {
            State::Succeeded
        } else if status == Some("failed") {
            State::Failed
        } else {
            State::Pending
        };
        let preimage = (state == State::Succeeded)
            .then(|| {
                top.get("preimage")
                    .and_then(Value::as_str)
                    .and_then(preimage_of)
                    .or_else(|| {
                        details
                            .get("preimage")
                            .and_then(Value::as_str)
                            .and_then(preimage_of)
                    })
            })
            .flatten();
        Found {
            state,
            amount_msat: details.get("amount").and_then(Value::as_i64),
            fee_msat: details.get("fee").and_then(Value::as_i64),
            preimage,
        }
    }
}

pub(super) fn fee_of(v: &Value) -> u64 {
    v.get("fee")
        .and_then(Value::as_i64)
        .map_or(0, i64::unsigned_abs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_read_status_preimage_and_amounts() {
        let pre = "838d4177dc4c79052cededbf78f6f1b7c2a4148b950762feeb605d77a79c5954";
        let paid: Value = serde_json::from_str(&format!(
            r#"{{"paid":true,"preimage":"{pre}","details":{{"amount":-21000,"fee":-1000,"status":"success","preimage":"{pre}"}}}}"#
        ))
        .unwrap_or_default();
        let f = Found::read(&paid, &paid["details"]);
        assert_eq!(f.state, State::Succeeded);
        assert_eq!(
            f.preimage,
            crate::l402::parse_hex32(pre).map(crate::l402::Preimage)
        );
        assert_eq!((f.amount_msat, f.fee_msat), (Some(-21000), Some(-1000)));

        let zero: Value = serde_json::from_str(&format!(
            r#"{{"paid":true,"preimage":"{}","details":{{"amount":-1000,"status":"success"}}}}"#,
            "0".repeat(64)
        ))
        .unwrap_or_default();
        assert_eq!(Found::read(&zero, &zero["details"]).preimage, None);

        // An unpaid invoice's preimage (LNbits keeps it in details) is never taken.
        let pending: Value = serde_json::from_str(&format!(
            r#"{{"paid":false,"status":"pending","preimage":null,"details":{{"amount":21000,"status":"pending","preimage":"{pre}"}}}}"#
        ))
        .unwrap_or_default();
        let f = Found::read(&pending, &pending["details"]);
        assert_eq!((f.state, f.preimage), (State::Pending, None));

        let failed: Value = serde_json::from_str(
            r#"{"paid":false,"status":"failed","details":{"amount":21000,"status":"failed"}}"#,
        )
        .unwrap_or_default();
        assert_eq!(
            Found::read(&failed, &failed["details"]).state,
            State::Failed
        );
    }
}
