//! The `Payment` credential: `Authorization: Payment <base64url JSON>`, the JSON being
//! `{"challenge": <the challenge echoed byte for byte>, "source"?: "..", "payload": {..}}`.
//!
//! We write the echo in the order `id, realm, method, intent, request, expires, description,
//! opaque, digest` (lnget's), with every parameter that was sent; we read any order. Decoding is
//! strict (see [`super::b64url`]) and bounded, as Aperture's is; `source` is never required.

use serde_json::{Map, Value};

use super::challenge::PaymentChallenge;
use super::lightning::Payload;
use super::{MppError, b64url};

/// The largest decoded credential read (64 KiB), and its encoded length with padding.
pub const MAX_CREDENTIAL_BYTES: usize = 64 * 1024;
const MAX_TOKEN_CHARS: usize = MAX_CREDENTIAL_BYTES.div_ceil(3) * 4;

/// A credential as received. `Debug` shows no payload (it holds preimages).
#[derive(Clone, PartialEq, Eq)]
pub struct PaymentCredential {
    /// The echoed challenge.
    pub challenge: PaymentChallenge,
    pub source: Option<String>,
    /// The method's payload, as sent (see [`Payload::parse`]).
    pub payload: Map<String, Value>,
}

impl std::fmt::Debug for PaymentCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PaymentCredential")
            .field("challenge", &self.challenge)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

/// The credential's JSON text for `challenge` and `payload`: the HTTP form (`request` as the
/// string sent) or the MCP form (`request` decoded).
fn json_text(
    challenge: &PaymentChallenge,
    payload: &Payload,
    mcp: bool,
) -> Result<String, MppError> {
    let mut out = String::from("{\"challenge\":");
    challenge.write_json(&mut out, mcp)?;
    out.push_str(",\"payload\":");
    payload.write_json(&mut out);
    out.push('}');
    Ok(out)
}

/// The token (base64url, unpadded) answering `challenge` with `payload`.
pub fn token(challenge: &PaymentChallenge, payload: &Payload) -> String {
    // The HTTP form writes `request` as the string it was: nothing to decode, nothing to fail.
    let text = json_text(challenge, payload, false).unwrap_or_default();
    b64url::encode(text.as_bytes())
}

/// The `Authorization` value: `Payment <token>`.
pub fn authorization(challenge: &PaymentChallenge, payload: &Payload) -> String {
    format!("{} {}", super::SCHEME, token(challenge, payload))
}

/// The credential as a JSON object for `_meta["org.paymentauth/credential"]` (the MCP form:
/// `request` decoded).
pub fn to_mcp_json(challenge: &PaymentChallenge, payload: &Payload) -> Result<Value, MppError> {
    serde_json::from_str(&json_text(challenge, payload, true)?)
        .map_err(|e| MppError::MalformedRequest(e.to_string()))
}

impl PaymentCredential {
    /// Read an `Authorization` value of the `Payment` scheme (the scheme in any case).
    pub fn parse_authorization(value: &str) -> Result<PaymentCredential, MppError> {
        let bad = |why: &str| MppError::MalformedCredential(why.into());
        let (scheme, token) = value
            .trim()
            .split_once(' ')
            .ok_or_else(|| bad("expected 'Payment <token>'"))?;
        if !scheme.eq_ignore_ascii_case(super::SCHEME) {
            return Err(bad("not the Payment scheme"));
        }
        let token = token.trim();
        if token.is_empty() {
            return Err(bad("empty token"));
        }
        if token.len() > MAX_TOKEN_CHARS {
            return Err(bad("credential too large"));
        }
        let bytes = b64url::decode(token).ok_or_else(|| bad("token is not base64url"))?;
        let value: Value = serde_json::from_slice(&bytes).map_err(|_| bad("token is not JSON"))?;
        Self::from_json(&value)
    }

    /// Read a credential object (the decoded token, or `_meta["org.paymentauth/credential"]`).
    pub fn from_json(value: &Value) -> Result<PaymentCredential, MppError> {
        let bad = |why: &str| MppError::MalformedCredential(why.into());
        let obj = value
            .as_object()
            .ok_or_else(|| bad("credential is not an object"))?;
        let challenge = PaymentChallenge::from_json(
            obj.get("challenge")
                .ok_or_else(|| bad("credential has no challenge"))?,
        )
        .map_err(|e| MppError::MalformedCredential(e.to_string()))?;
        let payload = obj
            .get("payload")
            .and_then(Value::as_object)
            .filter(|p| !p.is_empty())
            .ok_or_else(|| bad("credential has no payload"))?
            .clone();
        let source = match obj.get("source") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(bad("source is not a string")),
        };
        Ok(PaymentCredential {
            challenge,
            source,
            payload,
        })
    }

    /// The payload read for the echoed intent.
    pub fn lightning_payload(&self) -> Result<Payload, MppError> {
        Payload::parse(&self.challenge.intent, &self.payload)
    }
}

#[cfg(test)]
mod tests {
    use super::super::vectors::*;
    use super::*;

    #[test]
    fn charge_credential_is_byte_exact() {
        let c = charge_challenge();
        let payload = Payload::Charge {
            preimage: charge_preimage(),
        };
        let t = token(&c, &payload);
        let json = String::from_utf8(b64url::decode(&t).unwrap()).unwrap();
        assert_eq!(
            json,
            format!(
                "{{\"challenge\":{{\"id\":\"{CHARGE_ID}\",\"realm\":\"api.example.com\",\"method\":\"lightning\",\"intent\":\"charge\",\"request\":\"{}\",\"expires\":\"2026-01-01T00:15:00Z\"}},\"payload\":{{\"preimage\":\"{CHARGE_PREIMAGE}\"}}}}",
                c.request
            )
        );
        assert_eq!(t.len(), 1198);
        assert_eq!(
            hex::encode(crate::sha256(t.as_bytes())),
            "627be9961a6e651cddf487dc32b9fca5b620bd44fea02b2fb826769d6ac19b90"
        );
        let parsed = PaymentCredential::parse_authorization(&authorization(&c, &payload)).unwrap();
        assert_eq!(parsed.challenge, c);
        assert!(parsed.challenge.id_matches(SECRET));
        assert_eq!(parsed.lightning_payload().unwrap(), payload);
    }

    #[test]
    fn any_member_order_and_padding() {
        let c = charge_challenge();
        // mppx's order (alphabetical), padded, scheme in lower case.
        let json = format!(
            "{{\"challenge\":{{\"expires\":\"2026-01-01T00:15:00Z\",\"id\":\"{CHARGE_ID}\",\"intent\":\"charge\",\"method\":\"lightning\",\"realm\":\"api.example.com\",\"request\":\"{}\"}},\"payload\":{{\"preimage\":\"{CHARGE_PREIMAGE}\"}},\"source\":\"did:x\"}}",
            c.request
        );
        let mut t = b64url::encode(json.as_bytes());
        while !t.len().is_multiple_of(4) {
            t.push('=');
        }
        let parsed = PaymentCredential::parse_authorization(&format!("payment {t}")).unwrap();
        assert_eq!(parsed.challenge, c);
        assert_eq!(parsed.source.as_deref(), Some("did:x"));
    }

    #[test]
    fn mcp_form_carries_the_request_object() {
        let c = charge_challenge();
        let payload = Payload::Charge {
            preimage: charge_preimage(),
        };
        let v = to_mcp_json(&c, &payload).unwrap();
        assert_eq!(v["challenge"]["request"]["amount"], "100");
        let back = PaymentCredential::from_json(&v).unwrap();
        assert_eq!(back.challenge, c);
        assert!(back.challenge.id_matches(SECRET));
    }

    #[test]
    fn refusals() {
        let c = charge_challenge();
        let ok = token(
            &c,
            &Payload::Charge {
                preimage: charge_preimage(),
            },
        );
        for bad in [
            String::new(),
            "Payment".into(),
            format!("L402 {ok}"),
            "Payment !!!".into(),
            format!("Payment +{}", &ok[1..]),
            format!("Payment {}", b64url::encode(b"[1]")),
            format!(
                "Payment {}",
                b64url::encode(b"{\"payload\":{\"preimage\":\"00\"}}")
            ),
            format!(
                "Payment {}",
                b64url::encode(br#"{"challenge":{"id":"x"},"payload":{}}"#)
            ),
            format!("Payment {}", "A".repeat(MAX_TOKEN_CHARS + 4)),
        ] {
            assert!(
                PaymentCredential::parse_authorization(&bad).is_err(),
                "{bad:.60}"
            );
        }
    }
}
