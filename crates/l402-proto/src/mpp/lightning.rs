//! The `lightning` method: what its `charge` and `session` requests say, and the payloads a
//! credential carries for each.
//!
//! `charge` request: `amount` (decimal sats), `currency` (`sat`), `description` (the invoice's
//! memo), `recipient`, `externalId`, `methodDetails: {invoice, paymentHash, network}`.
//! `session` request: `amount` (sats per request), `currency`, `description`, `unitType`,
//! `depositInvoice`, `paymentHash` (of the deposit; the session's id), `depositAmount`,
//! `idleTimeout` (seconds).

use serde_json::{Map, Value};

use super::MppError;
use crate::{PaymentHash, Preimage, parse_hex32};

/// The method name.
pub const METHOD: &str = "lightning";
/// The one-payment intent.
pub const CHARGE: &str = "charge";
/// The deposit-and-bearer intent.
pub const SESSION: &str = "session";
/// The only currency of the lightning method.
pub const CURRENCY: &str = "sat";

/// A `lightning`/`charge` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChargeRequest {
    pub amount_sats: u64,
    pub currency: String,
    /// The invoice's memo.
    pub description: Option<String>,
    pub recipient: Option<String>,
    pub external_id: Option<String>,
    /// The BOLT11 invoice to pay (authoritative).
    pub invoice: String,
    /// The invoice's payment hash, as the request states it.
    pub payment_hash: Option<PaymentHash>,
    /// `mainnet` (the default when absent), `regtest`, `signet`, ...
    pub network: Option<String>,
}

/// A `lightning`/`session` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRequest {
    /// Sats per request (per unit).
    pub amount_sats: u64,
    pub currency: String,
    pub description: Option<String>,
    pub unit_type: Option<String>,
    /// The invoice that pays the deposit.
    pub deposit_invoice: String,
    /// The deposit's payment hash: the session's id once opened.
    pub payment_hash: PaymentHash,
    pub deposit_sats: Option<u64>,
    pub idle_timeout_secs: Option<u64>,
}

fn obj(value: &Value) -> Result<&Map<String, Value>, MppError> {
    value
        .as_object()
        .ok_or_else(|| MppError::MalformedRequest("request is not an object".into()))
}

fn text(o: &Map<String, Value>, k: &str) -> Result<Option<String>, MppError> {
    match o.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(MppError::MalformedRequest(format!("{k} is not a string"))),
    }
}

/// A decimal amount: a string of digits (as sent) or a JSON integer (read leniently).
fn amount(o: &Map<String, Value>, k: &str) -> Result<Option<u64>, MppError> {
    let bad = || MppError::MalformedRequest(format!("{k} is not a whole number of sats"));
    match o.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            s.parse().map(Some).map_err(|_| bad())
        }
        Some(Value::Number(n)) => n.as_u64().map(Some).ok_or_else(bad),
        Some(_) => Err(bad()),
    }
}

fn hash(s: &str, what: &str) -> Result<PaymentHash, MppError> {
    parse_hex32(s)
        .map(PaymentHash)
        .ok_or_else(|| MppError::MalformedRequest(format!("{what} is not 64 hex characters")))
}

fn put_opt(map: &mut Map<String, Value>, k: &str, v: &Option<String>) {
    if let Some(v) = v {
        map.insert(k.into(), Value::String(v.clone()));
    }
}

impl ChargeRequest {
    pub fn parse(value: &Value) -> Result<ChargeRequest, MppError> {
        let o = obj(value)?;
        let amount_sats = amount(o, "amount")?
            .filter(|a| *a > 0)
            .ok_or_else(|| MppError::MalformedRequest("amount must be at least 1 sat".into()))?;
        let details = o
            .get("methodDetails")
            .and_then(Value::as_object)
            .ok_or_else(|| MppError::MalformedRequest("no methodDetails".into()))?;
        let invoice = text(details, "invoice")?
            .filter(|i| !i.is_empty())
            .ok_or_else(|| MppError::MalformedRequest("no methodDetails.invoice".into()))?;
        Ok(ChargeRequest {
            amount_sats,
            currency: text(o, "currency")?.unwrap_or_else(|| CURRENCY.into()),
            description: text(o, "description")?,
            recipient: text(o, "recipient")?,
            external_id: text(o, "externalId")?,
            invoice,
            payment_hash: text(details, "paymentHash")?
                .map(|h| hash(&h, "methodDetails.paymentHash"))
                .transpose()?,
            network: text(details, "network")?,
        })
    }

    pub fn to_json(&self) -> Value {
        let mut details = Map::new();
        details.insert("invoice".into(), Value::String(self.invoice.clone()));
        if let Some(h) = &self.payment_hash {
            details.insert("paymentHash".into(), Value::String(h.to_hex()));
        }
        put_opt(&mut details, "network", &self.network);
        let mut map = Map::new();
        map.insert("amount".into(), Value::String(self.amount_sats.to_string()));
        map.insert("currency".into(), Value::String(self.currency.clone()));
        put_opt(&mut map, "description", &self.description);
        put_opt(&mut map, "recipient", &self.recipient);
        put_opt(&mut map, "externalId", &self.external_id);
        map.insert("methodDetails".into(), Value::Object(details));
        Value::Object(map)
    }

    /// The `request` parameter: base64url of the JCS JSON.
    pub fn encode(&self) -> String {
        super::challenge::encode_json(&self.to_json())
    }
}

impl SessionRequest {
    pub fn parse(value: &Value) -> Result<SessionRequest, MppError> {
        let o = obj(value)?;
        Ok(SessionRequest {
            amount_sats: amount(o, "amount")?
                .ok_or_else(|| MppError::MalformedRequest("no amount".into()))?,
            currency: text(o, "currency")?.unwrap_or_else(|| CURRENCY.into()),
            description: text(o, "description")?,
            unit_type: text(o, "unitType")?,
            deposit_invoice: text(o, "depositInvoice")?
                .filter(|i| !i.is_empty())
                .ok_or_else(|| MppError::MalformedRequest("no depositInvoice".into()))?,
            payment_hash: hash(
                &text(o, "paymentHash")?
                    .ok_or_else(|| MppError::MalformedRequest("no paymentHash".into()))?,
                "paymentHash",
            )?,
            deposit_sats: amount(o, "depositAmount")?,
            idle_timeout_secs: amount(o, "idleTimeout")?,
        })
    }

    pub fn to_json(&self) -> Value {
        let mut map = Map::new();
        map.insert("amount".into(), Value::String(self.amount_sats.to_string()));
        map.insert("currency".into(), Value::String(self.currency.clone()));
        put_opt(&mut map, "description", &self.description);
        put_opt(&mut map, "unitType", &self.unit_type);
        map.insert(
            "depositInvoice".into(),
            Value::String(self.deposit_invoice.clone()),
        );
        map.insert(
            "paymentHash".into(),
            Value::String(self.payment_hash.to_hex()),
        );
        if let Some(d) = self.deposit_sats {
            map.insert("depositAmount".into(), Value::String(d.to_string()));
        }
        if let Some(i) = self.idle_timeout_secs {
            map.insert("idleTimeout".into(), Value::String(i.to_string()));
        }
        Value::Object(map)
    }

    pub fn encode(&self) -> String {
        super::challenge::encode_json(&self.to_json())
    }
}

/// What a `lightning` credential proves. `Debug` shows no preimage.
#[derive(Clone, PartialEq, Eq)]
pub enum Payload {
    /// `charge`: the invoice's preimage.
    Charge { preimage: Preimage },
    /// `session` open: the deposit's preimage and an amountless invoice for the refund.
    Open {
        preimage: Preimage,
        return_invoice: String,
    },
    /// `session` bearer: the session (deposit hash) and its deposit preimage.
    Bearer {
        session_id: PaymentHash,
        preimage: Preimage,
    },
    /// `session` top-up: the preimage of the fresh challenge's deposit invoice.
    TopUp {
        session_id: PaymentHash,
        top_up_preimage: Preimage,
    },
    /// `session` close: the session and its deposit preimage.
    Close {
        session_id: PaymentHash,
        preimage: Preimage,
    },
}

impl std::fmt::Debug for Payload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (action, session) = match self {
            Payload::Charge { .. } => ("charge", None),
            Payload::Open { .. } => ("open", None),
            Payload::Bearer { session_id, .. } => ("bearer", Some(session_id)),
            Payload::TopUp { session_id, .. } => ("topUp", Some(session_id)),
            Payload::Close { session_id, .. } => ("close", Some(session_id)),
        };
        f.debug_struct("Payload")
            .field("action", &action)
            .field("session_id", &session)
            .finish_non_exhaustive()
    }
}

impl Payload {
    /// The intent this payload answers.
    pub fn intent(&self) -> &'static str {
        match self {
            Payload::Charge { .. } => CHARGE,
            _ => SESSION,
        }
    }

    /// The JSON object, members in the order the spec's examples use. It holds a preimage:
    /// only for the credential that carries it.
    pub fn to_json(&self) -> Value {
        let mut text = String::new();
        self.write_json(&mut text);
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    /// Write the JSON object, byte for byte as [`Payload::to_json`] orders it.
    pub(crate) fn write_json(&self, out: &mut String) {
        out.push('{');
        for (i, (k, v)) in self.members().into_iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            super::jcs::write_str(out, k);
            out.push(':');
            out.push_str(&v);
        }
        out.push('}');
    }

    /// The payload's members as ordered `(name, JSON)` pairs, for writing it byte for byte.
    fn members(&self) -> Vec<(&'static str, String)> {
        let s = |v: &str| {
            let mut o = String::new();
            super::jcs::write_str(&mut o, v);
            o
        };
        match self {
            Payload::Charge { preimage } => vec![("preimage", s(&preimage.to_hex()))],
            Payload::Open {
                preimage,
                return_invoice,
            } => vec![
                ("action", s("open")),
                ("preimage", s(&preimage.to_hex())),
                ("returnInvoice", s(return_invoice)),
            ],
            Payload::Bearer {
                session_id,
                preimage,
            } => vec![
                ("action", s("bearer")),
                ("sessionId", s(&session_id.to_hex())),
                ("preimage", s(&preimage.to_hex())),
            ],
            Payload::TopUp {
                session_id,
                top_up_preimage,
            } => vec![
                ("action", s("topUp")),
                ("sessionId", s(&session_id.to_hex())),
                ("topUpPreimage", s(&top_up_preimage.to_hex())),
            ],
            Payload::Close {
                session_id,
                preimage,
            } => vec![
                ("action", s("close")),
                ("sessionId", s(&session_id.to_hex())),
                ("preimage", s(&preimage.to_hex())),
            ],
        }
    }

    /// Read a payload for `intent` (hex in either case).
    pub fn parse(intent: &str, payload: &Map<String, Value>) -> Result<Payload, MppError> {
        let bad = |why: String| MppError::MalformedCredential(why);
        let get = |k: &str| -> Result<&str, MppError> {
            payload
                .get(k)
                .and_then(Value::as_str)
                .ok_or_else(|| bad(format!("payload has no {k}")))
        };
        let hex = |k: &str| -> Result<[u8; 32], MppError> {
            parse_hex32(get(k)?).ok_or_else(|| bad(format!("payload {k} is not 64 hex characters")))
        };
        if intent.eq_ignore_ascii_case(CHARGE) {
            return Ok(Payload::Charge {
                preimage: Preimage(hex("preimage")?),
            });
        }
        if !intent.eq_ignore_ascii_case(SESSION) {
            return Err(bad(format!("intent {intent:?} is not charge or session")));
        }
        Ok(match get("action")? {
            "open" => Payload::Open {
                preimage: Preimage(hex("preimage")?),
                return_invoice: get("returnInvoice")?.to_owned(),
            },
            "bearer" => Payload::Bearer {
                session_id: PaymentHash(hex("sessionId")?),
                preimage: Preimage(hex("preimage")?),
            },
            "topUp" => Payload::TopUp {
                session_id: PaymentHash(hex("sessionId")?),
                top_up_preimage: Preimage(hex("topUpPreimage")?),
            },
            "close" => Payload::Close {
                session_id: PaymentHash(hex("sessionId")?),
                preimage: Preimage(hex("preimage")?),
            },
            other => return Err(bad(format!("unknown session action {other:?}"))),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::vectors::*;
    use super::*;
    use serde_json::json;

    #[test]
    fn charge_request_vector() {
        let r = charge_request();
        let encoded = r.encode();
        assert_eq!(encoded.len(), 631);
        assert_eq!(
            hex::encode(crate::sha256(encoded.as_bytes())),
            "47ecedf588b2af71f5a7775503bbc3fb0478d5cbc29e1e07e3f3aee89ccb5274"
        );
        let decoded = super::super::challenge::decode_json(&encoded).unwrap();
        assert_eq!(ChargeRequest::parse(&decoded).unwrap(), r);
    }

    #[test]
    fn session_request_vector() {
        let v: Value = serde_json::from_str(SESSION_REQUEST_JCS).unwrap();
        let r = SessionRequest::parse(&v).unwrap();
        assert_eq!(
            (r.amount_sats, r.deposit_sats, r.idle_timeout_secs),
            (100, Some(2000), Some(300))
        );
        assert_eq!(r.payment_hash.to_hex(), DEPOSIT_HASH);
        assert_eq!(
            super::super::jcs::to_string(&r.to_json()),
            SESSION_REQUEST_JCS
        );
    }

    #[test]
    fn payloads_round_trip() {
        let pre = Preimage([0xab; 32]);
        let sid = PaymentHash([0xcd; 32]);
        for p in [
            Payload::Charge { preimage: pre },
            Payload::Open {
                preimage: pre,
                return_invoice: "lnbcrt1x".into(),
            },
            Payload::Bearer {
                session_id: sid,
                preimage: pre,
            },
            Payload::TopUp {
                session_id: sid,
                top_up_preimage: pre,
            },
            Payload::Close {
                session_id: sid,
                preimage: pre,
            },
        ] {
            let json = p.to_json();
            let back = Payload::parse(p.intent(), json.as_object().unwrap()).unwrap();
            assert_eq!(back, p);
            assert!(!format!("{p:?}").contains("abab"));
        }
        let upper = json!({"preimage": "AB".repeat(32)});
        assert_eq!(
            Payload::parse("charge", upper.as_object().unwrap()).unwrap(),
            Payload::Charge { preimage: pre }
        );
        assert!(Payload::parse("session", json!({"action": "pay"}).as_object().unwrap()).is_err());
        assert!(Payload::parse("charge", json!({"preimage": "zz"}).as_object().unwrap()).is_err());
    }

    #[test]
    fn lenient_amounts_strict_shapes() {
        let mut v = charge_request().to_json();
        v["amount"] = json!(100);
        assert_eq!(ChargeRequest::parse(&v).unwrap().amount_sats, 100);
        for bad in [
            json!("0"),
            json!("1.5"),
            json!("-1"),
            json!(""),
            json!(true),
        ] {
            v["amount"] = bad.clone();
            assert!(ChargeRequest::parse(&v).is_err(), "{bad}");
        }
        assert!(ChargeRequest::parse(&json!({"amount": "1"})).is_err());
    }
}
