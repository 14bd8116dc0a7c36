//! NIP-47 answers as this backend reads them (leniently: empty strings are absent, states
//! may be missing), and what a `lookup_invoice` transaction says about a payment or an invoice.

use serde::{Deserialize, Deserializer};
use serde_json::Value;
use tracing::warn;

use super::error::ReplyError;
use crate::wallet::toolkit::json::preimage;
use crate::wallet::{IncomingStatus, OutgoingStatus, PaymentResult};

/// A decrypted NIP-47 response.
#[derive(Debug, Deserialize)]
pub(super) struct Reply {
    #[serde(default)]
    pub(super) result_type: Option<String>,
    #[serde(default)]
    pub(super) error: Option<ReplyError>,
    #[serde(default)]
    pub(super) result: Option<Value>,
}

/// Empty strings count as absent (several wallet services send them).
pub(super) fn nonempty<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.filter(|s| !s.trim().is_empty()))
}

#[derive(Debug, Deserialize)]
pub(super) struct PayResult {
    #[serde(default, deserialize_with = "nonempty")]
    pub(super) preimage: Option<String>,
    #[serde(default)]
    pub(super) fees_paid: Option<u64>,
}

#[derive(Debug, Deserialize)]
pub(super) struct MakeResult {
    pub(super) invoice: String,
    #[serde(default, deserialize_with = "nonempty")]
    pub(super) payment_hash: Option<String>,
}

/// A lookup_invoice result (a NIP-47 transaction).
#[derive(Debug, Default, Deserialize)]
pub(super) struct Transaction {
    #[serde(rename = "type", default, deserialize_with = "nonempty")]
    pub(super) direction: Option<String>,
    #[serde(default, deserialize_with = "nonempty")]
    pub(super) state: Option<String>,
    #[serde(default, deserialize_with = "nonempty")]
    pub(super) preimage: Option<String>,
    #[serde(default)]
    pub(super) amount: Option<u64>,
    #[serde(default)]
    pub(super) fees_paid: Option<u64>,
    #[serde(default)]
    pub(super) expires_at: Option<u64>,
    #[serde(default)]
    pub(super) settled_at: Option<u64>,
}

impl Transaction {
    pub(super) fn state(&self) -> Option<String> {
        self.state.as_deref().map(str::to_ascii_lowercase)
    }

    /// Settled per its state, or (for services that send no state) per `settled_at`/preimage.
    pub(super) fn is_settled(&self) -> bool {
        match self.state().as_deref() {
            Some(s) => s == "settled",
            None => self.settled_at.is_some_and(|t| t > 0) || self.preimage.is_some(),
        }
    }

    pub(super) fn is_direction(&self, direction: &str) -> bool {
        self.direction
            .as_deref()
            .is_none_or(|d| d.eq_ignore_ascii_case(direction))
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct BalanceResult {
    pub(super) balance: u64,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct InfoResult {
    #[serde(default, deserialize_with = "nonempty")]
    pub(super) network: Option<String>,
    #[serde(default, deserialize_with = "nonempty")]
    pub(super) pubkey: Option<String>,
    #[serde(default)]
    pub(super) methods: Option<Vec<String>>,
}

pub(super) fn parse_result<T: serde::de::DeserializeOwned>(
    method: &str,
    result: Option<Value>,
) -> Result<T, String> {
    let value = result.ok_or_else(|| format!("the wallet service sent no result for {method}"))?;
    serde_json::from_value(value)
        .map_err(|e| format!("the wallet service's {method} result is not readable: {e}"))
}

pub(super) fn describe_outgoing(status: &OutgoingStatus) -> &'static str {
    match status {
        OutgoingStatus::InFlight => "in flight",
        OutgoingStatus::Succeeded(_) => "succeeded",
        OutgoingStatus::Failed(_) => "failed",
        OutgoingStatus::NotFound => "no such payment",
    }
}

pub(super) fn payment_result(preimage_hex: Option<&str>, fee_msat: Option<u64>) -> PaymentResult {
    let parsed = preimage_hex.and_then(|p| {
        let bytes = preimage(p);
        if bytes.is_none() {
            warn!("the NWC wallet service returned a preimage that is not 32 bytes of hex");
        }
        bytes
    });
    PaymentResult {
        preimage: parsed,
        fee_msat: fee_msat.unwrap_or(0),
    }
}

/// A lookup_invoice transaction, as a payment we made.
pub(super) fn outgoing_status(tx: &Transaction) -> OutgoingStatus {
    if !tx.is_direction("outgoing") {
        return OutgoingStatus::NotFound;
    }
    if tx.is_settled() {
        return OutgoingStatus::Succeeded(payment_result(tx.preimage.as_deref(), tx.fees_paid));
    }
    match tx.state().as_deref() {
        Some("failed") => {
            OutgoingStatus::Failed("the NWC wallet service reports the payment failed".into())
        }
        // Pending, no state, or "expired" (an invoice state; an HTLC may still be out): money may
        // still move, so it stays in flight until the wallet service says settled or failed.
        _ => OutgoingStatus::InFlight,
    }
}

/// A lookup_invoice transaction, as an invoice we issued.
pub(super) fn incoming_status(tx: &Transaction, now: u64) -> IncomingStatus {
    if !tx.is_direction("incoming") {
        return IncomingStatus::NotFound;
    }
    if tx.is_settled() {
        return IncomingStatus::Settled {
            amount_msat: tx.amount.unwrap_or(0),
        };
    }
    match tx.state().as_deref() {
        Some("expired" | "failed") => IncomingStatus::Expired,
        Some("pending") => IncomingStatus::Pending,
        _ if tx.expires_at.is_some_and(|e| e > 0 && e <= now) => IncomingStatus::Expired,
        _ => IncomingStatus::Pending,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tx(json: &str) -> Transaction {
        serde_json::from_str(json).unwrap_or_default()
    }

    #[test]
    fn lookups_map_states() {
        let p = "11".repeat(32);
        let settled = tx(&format!(
            r#"{{"type":"outgoing","state":"settled","preimage":"{p}","payment_hash":"","amount":5000,"fees_paid":7,"created_at":1,"settled_at":2}}"#
        ));
        assert_eq!(
            outgoing_status(&settled),
            OutgoingStatus::Succeeded(PaymentResult {
                preimage: Some(l402_proto::Preimage([0x11; 32])),
                fee_msat: 7
            })
        );
        assert_eq!(
            incoming_status(&settled, 10),
            IncomingStatus::NotFound,
            "an outgoing record is not our invoice"
        );
        let no_state = tx(r#"{"amount":5000,"settled_at":2,"preimage":""}"#);
        assert!(matches!(
            outgoing_status(&no_state),
            OutgoingStatus::Succeeded(PaymentResult { preimage: None, .. })
        ));
        assert_eq!(
            incoming_status(&no_state, 10),
            IncomingStatus::Settled { amount_msat: 5000 }
        );
        let failed = tx(r#"{"type":"outgoing","state":"failed","amount":1}"#);
        assert!(matches!(
            outgoing_status(&failed),
            OutgoingStatus::Failed(_)
        ));
        let pending = tx(r#"{"state":"pending","amount":1,"expires_at":5}"#);
        assert_eq!(outgoing_status(&pending), OutgoingStatus::InFlight);
        assert_eq!(incoming_status(&pending, 10), IncomingStatus::Pending);
        let old = tx(r#"{"amount":1,"expires_at":5,"settled_at":null}"#);
        assert_eq!(incoming_status(&old, 10), IncomingStatus::Expired);
        assert_eq!(incoming_status(&old, 4), IncomingStatus::Pending);
        let expired = tx(r#"{"type":"outgoing","state":"expired","amount":1}"#);
        assert_eq!(outgoing_status(&expired), OutgoingStatus::InFlight);
    }
}
