//! The `Payment-Receipt` header: base64url (unpadded) of
//! `{"status":"success","method":..,"timestamp":..,"reference":..,"challengeId"?:..}`; a session's
//! close adds `refundSats` (a number) and `refundStatus` (`succeeded`, `failed` or `skipped`).
//! For lightning `reference` is the payment hash (or the session id), never a preimage.

use serde_json::{Map, Value};

use super::{MppError, b64url, jcs, time};

/// The response header.
pub const HEADER: &str = "Payment-Receipt";

/// A receipt we write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentReceipt {
    pub method: String,
    /// RFC 3339.
    pub timestamp: String,
    pub reference: String,
    pub challenge_id: Option<String>,
    pub refund_sats: Option<u64>,
    pub refund_status: Option<String>,
}

impl PaymentReceipt {
    /// A success receipt at `now` (unix seconds).
    pub fn success(
        method: &str,
        now: u64,
        reference: &str,
        challenge_id: Option<&str>,
    ) -> PaymentReceipt {
        PaymentReceipt {
            method: method.to_owned(),
            timestamp: time::format(now),
            reference: reference.to_owned(),
            challenge_id: challenge_id.map(str::to_owned),
            refund_sats: None,
            refund_status: None,
        }
    }

    /// The JSON text, members in the order `status, method, timestamp, reference, challengeId,
    /// refundSats, refundStatus`.
    pub fn to_json_text(&self) -> String {
        let mut out = String::from("{\"status\":\"success\",\"method\":");
        jcs::write_str(&mut out, &self.method);
        out.push_str(",\"timestamp\":");
        jcs::write_str(&mut out, &self.timestamp);
        out.push_str(",\"reference\":");
        jcs::write_str(&mut out, &self.reference);
        if let Some(id) = &self.challenge_id {
            out.push_str(",\"challengeId\":");
            jcs::write_str(&mut out, id);
        }
        if let Some(n) = self.refund_sats {
            out.push_str(&format!(",\"refundSats\":{n}"));
        }
        if let Some(s) = &self.refund_status {
            out.push_str(",\"refundStatus\":");
            jcs::write_str(&mut out, s);
        }
        out.push('}');
        out
    }

    /// The receipt as a JSON value (the MCP form, `_meta["org.paymentauth/receipt"]`).
    pub fn to_json(&self) -> Value {
        serde_json::from_str(&self.to_json_text()).unwrap_or(Value::Null)
    }

    /// The header value.
    pub fn to_header(&self) -> String {
        b64url::encode(self.to_json_text().as_bytes())
    }
}

/// Read a receipt header (from any server): the JSON object it holds. Nothing in it is a
/// secret, but a receipt that names a preimage would be a broken server's.
pub fn parse_header(value: &str) -> Result<Map<String, Value>, MppError> {
    let bad = || MppError::MalformedReceipt("not base64url JSON".into());
    let bytes = b64url::decode(value.trim()).ok_or_else(bad)?;
    match serde_json::from_slice(&bytes).map_err(|_| bad())? {
        Value::Object(map) => Ok(map),
        _ => Err(MppError::MalformedReceipt("not a JSON object".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::super::vectors::*;
    use super::*;

    #[test]
    fn charge_receipt_is_byte_exact() {
        let r = PaymentReceipt::success("lightning", 1_767_225_660, CHARGE_HASH, Some(CHARGE_ID));
        assert_eq!(
            r.to_json_text(),
            format!(
                "{{\"status\":\"success\",\"method\":\"lightning\",\"timestamp\":\"2026-01-01T00:01:00Z\",\"reference\":\"{CHARGE_HASH}\",\"challengeId\":\"{CHARGE_ID}\"}}"
            )
        );
        let h = r.to_header();
        assert_eq!(h.len(), 287);
        assert_eq!(
            hex::encode(crate::sha256(h.as_bytes())),
            "5dfb51d5b2a649a7cb0e9afaca2e7c7dacb0621cb55a6690909f6dabf83f1dda"
        );
        let back = parse_header(&h).unwrap();
        assert_eq!(back["reference"], CHARGE_HASH);
        assert_eq!(back["challengeId"], CHARGE_ID);
    }

    #[test]
    fn close_receipt_and_aperture_order() {
        let mut r = PaymentReceipt::success("lightning", 1_767_226_200, DEPOSIT_HASH, None);
        r.refund_sats = Some(1400);
        r.refund_status = Some("failed".into());
        let back = parse_header(&r.to_header()).unwrap();
        assert_eq!(
            (back["refundSats"].as_u64(), back["refundStatus"].as_str()),
            (Some(1400), Some("failed"))
        );
        // Aperture's close receipt, in its own member order, reads the same.
        let aperture = format!(
            "{{\"method\":\"lightning\",\"reference\":\"{DEPOSIT_HASH}\",\"status\":\"success\",\"timestamp\":\"2026-01-01T00:10:00Z\",\"refundSats\":1400,\"refundStatus\":\"failed\"}}"
        );
        let back = parse_header(&b64url::encode(aperture.as_bytes())).unwrap();
        assert_eq!(back["refundSats"], 1400);
        assert!(parse_header("!!").is_err());
        assert!(parse_header(&b64url::encode(b"[]")).is_err());
    }
}
