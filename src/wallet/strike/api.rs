//! What this backend reads of Strike's answers, as Strike's API docs (docs.strike.me) describe
//! them: amounts as `{"amount": "<BTC decimal>", "currency": "BTC"}`, payments with a `state`,
//! error bodies `{"traceId", "data": {"status", "code", "message", "values"}}`; and what it keeps
//! in the storage for a payment (its quote's id, then its own).

use serde_json::{Value, json};

use crate::l402::PaymentHash;
use crate::wallet::toolkit::amount;
use crate::wallet::toolkit::json::preimage_for;
use crate::wallet::{OutgoingStatus, PaymentResult};

/// Whole sats as Strike's amount object.
pub(super) fn btc_amount(sats: u64) -> Value {
    json!({ "amount": amount::sats_to_btc(sats), "currency": "BTC" })
}

/// A Strike amount object in msat, exactly; an error when it is not in BTC (the account then
/// pays or receives in its fiat currency, which l402-mcp does not do).
pub(super) fn btc_msat(v: &Value) -> Result<u64, String> {
    match v.get("currency").and_then(Value::as_str) {
        Some("BTC") => {}
        Some(other) => return Err(format!("an amount in {other}, not BTC")),
        None => return Err(format!("an amount without a currency: {v}")),
    }
    let text = v
        .get("amount")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("an amount that is not a decimal string: {v}"))?;
    amount::btc_to_msat(text)
}

/// The first of `fields` of `v` that is there, in msat.
pub(super) fn first_btc_msat(v: &Value, fields: &[&str]) -> Option<Result<u64, String>> {
    fields
        .iter()
        .find_map(|f| v.pointer(f).filter(|a| a.is_object()))
        .map(btc_msat)
}

/// The fee of a quote or a payment: everything Strike charges on top of the amount
/// (`totalFee`, which may include more than the network fee), else the network fee.
pub(super) fn fee_msat(v: &Value) -> Option<Result<u64, String>> {
    first_btc_msat(
        v,
        &["/totalFee", "/lightningNetworkFee", "/lightning/networkFee"],
    )
}

/// What an error answer says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ErrorBody {
    pub(super) code: Option<String>,
    pub(super) message: String,
    /// The original quote of a `DUPLICATE_PAYMENT_QUOTE`.
    pub(super) quote_id: Option<String>,
}

pub(super) fn error_body(body: &str) -> ErrorBody {
    let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let data = v.get("data").filter(|d| d.is_object()).unwrap_or(&v);
    let text = |k: &str| {
        data.get(k)
            .or_else(|| v.get(k))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let quote_id = ["/values/paymentQuoteId", "/paymentQuoteId"]
        .iter()
        .find_map(|p| data.pointer(p).and_then(Value::as_str))
        .map(str::to_owned);
    ErrorBody {
        code: text("code"),
        message: text("message").unwrap_or_else(|| crate::wallet::toolkit::redact::clip(body)),
        quote_id,
    }
}

/// Refusals of `PATCH /v1/payment-quotes/{id}/execute` after which nothing moved and nothing
/// will.
pub(super) const DEFINITE_REFUSALS: &[&str] = &[
    "BALANCE_TOO_LOW",
    "INVALID_LN_INVOICE",
    "INVALID_STATE_FOR_INVOICE_EXPIRED",
    "LN_INVOICE_PROCESSED",
    "LN_ROUTE_NOT_FOUND",
    "PAYMENT_QUOTE_EXPIRED",
    "SELF_PAYMENT_NOT_ALLOWED",
    "AMOUNT_TOO_HIGH",
    "AMOUNT_TOO_LOW",
    "TOO_MANY_TRANSACTIONS",
    "ACCOUNT_NOT_READY",
    "INVALID_DATA",
    "NOT_FOUND",
];

/// A payment as the execute answer and `GET /v1/payments/{id}` show it: `state` PENDING,
/// COMPLETED or FAILED; the preimage (`lightning.preImage`) only "if available", and taken
/// only when it is the invoice's.
pub(super) fn outgoing(v: &Value, payment_hash: &PaymentHash) -> Result<OutgoingStatus, String> {
    let state = v.get("state").and_then(Value::as_str);
    Ok(match state {
        Some("COMPLETED") => OutgoingStatus::Succeeded(PaymentResult {
            preimage: [
                "/lightning/preImage",
                "/lightning/preimage",
                "/preImage",
                "/preimage",
            ]
            .iter()
            .find_map(|p| v.pointer(p).and_then(Value::as_str))
            .and_then(|p| preimage_for(p, payment_hash)),
            fee_msat: fee_msat(v).transpose()?.unwrap_or(0),
        }),
        Some("FAILED") => OutgoingStatus::Failed("Strike marked the payment failed".into()),
        Some("PENDING") => OutgoingStatus::InFlight,
        other => return Err(format!("a payment state of {other:?}")),
    })
}

/// What is kept in the storage for a payment: its quote, then the payment's id once Strike
/// gave it, or that Strike refused to execute the quote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct OutRef {
    pub(super) quote: String,
    pub(super) payment: Option<String>,
    pub(super) refused: bool,
}

impl OutRef {
    pub(super) fn parse(text: &str) -> Option<OutRef> {
        let mut r = OutRef {
            quote: String::new(),
            payment: None,
            refused: false,
        };
        for part in text.split(';') {
            match part.split_once('=') {
                Some(("quote", q)) => r.quote = q.to_owned(),
                Some(("payment", p)) => r.payment = Some(p.to_owned()),
                None if part == "refused" => r.refused = true,
                _ => return None,
            }
        }
        (!r.quote.is_empty()).then_some(r)
    }

    pub(super) fn text(&self) -> String {
        let mut t = format!("quote={}", self.quote);
        if let Some(p) = &self.payment {
            t.push_str(&format!(";payment={p}"));
        }
        if self.refused {
            t.push_str(";refused");
        }
        t
    }
}

/// A random UUID (version 4), as Strike's idempotency keys are.
pub(super) fn uuid_v4() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_btc_strings_read_exactly() {
        assert_eq!(
            btc_amount(2_100),
            json!({"amount": "0.00002100", "currency": "BTC"})
        );
        assert_eq!(
            btc_msat(&json!({"amount": "0.00001003", "currency": "BTC"})),
            Ok(1_003_000)
        );
        assert!(btc_msat(&json!({"amount": "12.50", "currency": "USD"})).is_err());
        assert!(btc_msat(&json!({"amount": 0.00001, "currency": "BTC"})).is_err());
        let quote = json!({"totalFee": {"amount": "0.00000003", "currency": "BTC"},
                           "lightningNetworkFee": {"amount": "0.00000001", "currency": "BTC"}});
        assert_eq!(fee_msat(&quote), Some(Ok(3_000)), "totalFee first");
        assert_eq!(fee_msat(&json!({})), None);
    }

    #[test]
    fn error_bodies_and_payments() {
        let e = error_body(
            r#"{"traceId":"0HN8Q3J5K2L1M:00000001","data":{"status":422,"code":"BALANCE_TOO_LOW","message":"Balance is too low.","values":{},"validationErrors":{}}}"#,
        );
        assert_eq!(
            (e.code.as_deref(), e.message.as_str()),
            (Some("BALANCE_TOO_LOW"), "Balance is too low.")
        );
        let dup = error_body(
            r#"{"data":{"status":422,"code":"DUPLICATE_PAYMENT_QUOTE","message":"Duplicate.","values":{"paymentQuoteId":"c9a7"}}}"#,
        );
        assert_eq!(dup.quote_id.as_deref(), Some("c9a7"));
        let top = error_body(
            r#"{"code":"DUPLICATE_PAYMENT_QUOTE","message":"x","data":{"paymentQuoteId":"c9a8"}}"#,
        );
        assert_eq!(top.quote_id.as_deref(), Some("c9a8"));
        assert_eq!(error_body("Bad Gateway").code, None);

        let pre = crate::l402::Preimage([9; 32]);
        let hash = pre.payment_hash();
        let done = json!({"paymentId": "5e3b", "state": "COMPLETED",
            "totalFee": {"amount": "0.00000003", "currency": "BTC"},
            "lightning": {"paymentHash": hash.to_hex(), "preImage": pre.to_hex()}});
        assert_eq!(
            outgoing(&done, &hash),
            Ok(OutgoingStatus::Succeeded(PaymentResult {
                preimage: Some(pre),
                fee_msat: 3_000
            }))
        );
        let other = PaymentHash([1; 32]);
        assert!(
            matches!(
                outgoing(&done, &other),
                Ok(OutgoingStatus::Succeeded(PaymentResult {
                    preimage: None,
                    ..
                }))
            ),
            "a preimage of another payment is no proof"
        );
        assert_eq!(
            outgoing(&json!({"state": "PENDING"}), &hash),
            Ok(OutgoingStatus::InFlight)
        );
        assert!(outgoing(&json!({}), &hash).is_err());
    }

    #[test]
    fn references_and_keys() {
        let r = OutRef {
            quote: "c9a7".into(),
            payment: Some("5e3b".into()),
            refused: false,
        };
        assert_eq!(OutRef::parse(&r.text()), Some(r));
        assert_eq!(
            OutRef::parse("quote=c9a7;refused").map(|r| r.refused),
            Some(true)
        );
        assert_eq!(OutRef::parse("nonsense"), None);
        let k = uuid_v4();
        assert_eq!(k.len(), 36);
        assert_eq!(&k[14..15], "4");
        assert_ne!(k, uuid_v4());
    }
}
