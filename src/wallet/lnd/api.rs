//! The request and answer shapes of LND's REST API that this backend reads, and what they
//! say (64-bit integers may come as strings; `bytes` fields as base64).

use base64::Engine as _;
use serde::Deserialize;
use serde_json::Value;

use crate::wallet::PaymentResult;
use crate::wallet::toolkit::json::{self, de_u64};

/// The 32 bytes of a hash or preimage that LND sends as base64 (`bytes` fields).
pub(super) fn base64_32(s: &str) -> Option<[u8; 32]> {
    let s = s.trim();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(s)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(s))
        .ok()?;
    bytes.try_into().ok()
}

/// A `Payment` message of LND (routerrpc streams, `/v1/payments`).
#[derive(Debug, Deserialize)]
pub(super) struct LndPayment {
    #[serde(default)]
    pub(super) payment_hash: String,
    #[serde(default)]
    pub(super) payment_preimage: String,
    #[serde(default)]
    pub(super) status: Value,
    #[serde(default, deserialize_with = "de_u64")]
    pub(super) fee_msat: Option<u64>,
    #[serde(default, deserialize_with = "de_u64")]
    pub(super) fee_sat: Option<u64>,
    #[serde(default)]
    pub(super) failure_reason: Value,
}

#[derive(Debug, PartialEq, Eq)]
pub(super) enum PaymentState {
    /// INITIATED, IN_FLIGHT (or UNKNOWN, never sent by current LND): money may still move.
    Pending,
    Succeeded,
    Failed,
}

impl LndPayment {
    pub(super) fn state(&self) -> PaymentState {
        // Enum names, or their numbers: UNKNOWN 0, IN_FLIGHT 1, SUCCEEDED 2, FAILED 3, INITIATED 4.
        match (&self.status, self.status.as_str()) {
            (_, Some("SUCCEEDED")) => PaymentState::Succeeded,
            (_, Some("FAILED")) => PaymentState::Failed,
            (v, None) if v.as_i64() == Some(2) => PaymentState::Succeeded,
            (v, None) if v.as_i64() == Some(3) => PaymentState::Failed,
            _ => PaymentState::Pending,
        }
    }

    pub(super) fn result(&self) -> PaymentResult {
        PaymentResult {
            preimage: json::preimage(&self.payment_preimage),
            fee_msat: self
                .fee_msat
                .or(self.fee_sat.map(|s| s.saturating_mul(1000)))
                .unwrap_or(0),
        }
    }

    pub(super) fn failure(&self) -> String {
        let reason = match &self.failure_reason {
            Value::String(s) => s.clone(),
            Value::Number(n) => format!("failure reason {n}"),
            _ => String::new(),
        };
        let reason = reason
            .trim_start_matches("FAILURE_REASON_")
            .to_ascii_lowercase();
        match reason.as_str() {
            "" | "none" => "LND reports the payment failed".into(),
            "no_route" => "LND found no route to the payee within the fee limit".into(),
            "insufficient_balance" => "insufficient balance in LND's channels".into(),
            "incorrect_payment_details" => {
                "the payee rejected the payment (unknown or already paid invoice)".into()
            }
            "timeout" => "LND gave up finding a route in time".into(),
            other => format!("LND reports the payment failed: {other}"),
        }
    }

    pub(super) fn is_for(&self, hash: &crate::l402::PaymentHash) -> bool {
        self.payment_hash.is_empty() || self.payment_hash.eq_ignore_ascii_case(&hash.to_hex())
    }
}

/// One message of an LND stream.
pub(super) enum StreamMessage {
    Payment(LndPayment),
    Error(String),
}

pub(super) fn stream_message(v: Value) -> Result<StreamMessage, String> {
    if let Some(e) = v.get("error").filter(|e| !e.is_null()) {
        let message = e
            .get("message")
            .and_then(Value::as_str)
            .map_or_else(|| e.to_string(), str::to_owned);
        return Ok(StreamMessage::Error(message));
    }
    let payment = v.get("result").cloned().unwrap_or(v);
    serde_json::from_value(payment)
        .map(StreamMessage::Payment)
        .map_err(|e| format!("an update of LND could not be read: {e}"))
}

#[derive(Deserialize)]
pub(super) struct GetInfo {
    #[serde(default)]
    pub(super) identity_pubkey: Option<String>,
    #[serde(default)]
    pub(super) chains: Vec<Chain>,
    #[serde(default)]
    pub(super) testnet: bool,
}

#[derive(Deserialize)]
pub(super) struct Chain {
    #[serde(default)]
    pub(super) network: String,
}

#[derive(Deserialize)]
pub(super) struct ChannelBalance {
    #[serde(default)]
    pub(super) local_balance: Option<Amount>,
    #[serde(default, deserialize_with = "de_u64")]
    pub(super) balance: Option<u64>,
}

#[derive(Deserialize)]
pub(super) struct Amount {
    #[serde(default, deserialize_with = "de_u64")]
    pub(super) msat: Option<u64>,
    #[serde(default, deserialize_with = "de_u64")]
    pub(super) sat: Option<u64>,
}

#[derive(Deserialize)]
pub(super) struct AddInvoiceResponse {
    pub(super) r_hash: String,
    pub(super) payment_request: String,
}

#[derive(Deserialize)]
pub(super) struct Invoice {
    #[serde(default)]
    pub(super) state: Value,
    #[serde(default)]
    pub(super) settled: bool,
    #[serde(default, deserialize_with = "de_u64")]
    pub(super) amt_paid_msat: Option<u64>,
    #[serde(default, deserialize_with = "de_u64")]
    pub(super) amt_paid_sat: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_lnd_byte_fields() {
        let hash = [7u8; 32];
        let std = base64::engine::general_purpose::STANDARD.encode(hash);
        let url = base64::engine::general_purpose::URL_SAFE.encode([0xfbu8; 32]);
        assert_eq!(base64_32(&std), Some(hash));
        assert_eq!(base64_32(&url), Some([0xfb; 32]));
        assert_eq!(base64_32("AAAA"), None);
    }
}
