//! Reading a 402: the challenge it carries (header or JSON body), what its token is for, and
//! the bodies of servers that check a payment by its hash.

use reqwest::header::{HeaderMap, WWW_AUTHENTICATE};

use super::FetchError;
use crate::l402::caveat::{self, Caveat};
use crate::l402::{Identifier, Macaroon, PaymentHash, Scheme, challenge};

/// A challenge found in a 402 response.
pub(super) enum Found {
    /// Header (or JSON) challenge with a macaroon.
    L402 {
        scheme: Scheme,
        macaroon: Vec<u8>,
        invoice: String,
    },
    /// JSON body with an invoice and no macaroon: pay, then resend with `payment_hash` in the body.
    PaymentHashBody {
        invoice: String,
        payment_hash: Option<PaymentHash>,
    },
}

impl Found {
    /// The payment hash the invoice must have: the one the credential is for, when it can be
    /// read: a V2 macaroon's L402 identifier, the `hash` of a JSON token (l402kit's), or the
    /// hash a JSON body states. A credential built for another invoice could never work.
    /// A token that says nothing readable (an identifier of an unknown version) is presented
    /// as it is: nothing shows it is for another invoice.
    pub(super) fn expected_payment_hash(&self) -> Option<PaymentHash> {
        match self {
            Found::L402 { macaroon, .. } => token_payment_hash(macaroon),
            Found::PaymentHashBody { payment_hash, .. } => *payment_hash,
        }
    }

    pub(super) fn invoice(&self) -> &str {
        match self {
            Found::L402 { invoice, .. } | Found::PaymentHashBody { invoice, .. } => invoice,
        }
    }
}

/// Read the challenge of a 402: headers first, then a JSON body.
pub(super) fn find_challenge(headers: &HeaderMap, body: &[u8]) -> Result<Found, FetchError> {
    let values: Vec<&str> = headers
        .get_all(WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let header_result = challenge::parse_headers(values.iter().copied());
    if let Ok(all) = &header_result
        && let Some(c) = challenge::preferred(all)
    {
        return Ok(Found::L402 {
            scheme: c.scheme,
            macaroon: c.macaroon.clone(),
            invoice: c.invoice.clone(),
        });
    }
    if let Some(json) = challenge::parse_json_body(body) {
        return Ok(match json.macaroon {
            Some(macaroon) => Found::L402 {
                scheme: Scheme::L402,
                macaroon,
                invoice: json.invoice,
            },
            None => Found::PaymentHashBody {
                invoice: json.invoice,
                payment_hash: json.payment_hash,
            },
        });
    }
    let mut detail = match header_result {
        Err(e) => e.to_string(),
        Ok(_) => "no usable challenge".into(),
    };
    if headers.contains_key("x-payment-required")
        || headers.contains_key("payment-required")
        || looks_like_x402(body)
    {
        detail.push_str("; it looks like x402, which this wallet does not pay");
    }
    Err(FetchError::NotL402 { detail })
}

fn looks_like_x402(body: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("x402Version").cloned())
        .is_some()
}

/// The request body with `payment_hash` added (a JSON object), for servers in the LNbits-tutorial
/// style that check the payment by its hash.
pub(super) fn with_payment_hash(body: Option<&str>, hash: &PaymentHash) -> String {
    let mut obj = body
        .and_then(|b| serde_json::from_str::<serde_json::Value>(b).ok())
        .and_then(|v| v.as_object().cloned())
        .unwrap_or_default();
    obj.insert(
        "payment_hash".into(),
        serde_json::Value::String(hash.to_hex()),
    );
    serde_json::Value::Object(obj).to_string()
}

/// The payment hash a challenge's token is for, when it says: a V2 macaroon's version-0
/// identifier, or a JSON token's `hash` / `payment_hash` (l402kit mints base64 of
/// `{"hash": ..., "exp": ...}`).
pub(super) fn token_payment_hash(token: &[u8]) -> Option<PaymentHash> {
    if let Ok(m) = Macaroon::deserialize(token) {
        return Identifier::decode(m.identifier())
            .ok()
            .map(|id| id.payment_hash);
    }
    let json: serde_json::Value = serde_json::from_slice(token).ok()?;
    ["hash", "payment_hash", "paymentHash"]
        .iter()
        .find_map(|k| json.get(*k)?.as_str()?.parse().ok())
}

/// When a macaroon stops being accepted: its earliest `_valid_until` or `expiration` caveat.
pub(super) fn token_expiry(macaroon: &[u8]) -> Option<u64> {
    let m = Macaroon::deserialize(macaroon).ok()?;
    m.caveats()
        .iter()
        .filter_map(|raw| Caveat::parse(raw).ok())
        .filter_map(|c| {
            if c.condition.ends_with(caveat::VALID_UNTIL_SUFFIX) {
                caveat::parse_timestamp(&c.value).ok()
            } else if c.condition == caveat::EXPIRATION {
                caveat::parse_timestamp(&c.value).ok().map(|ms| ms / 1000)
            } else {
                None
            }
        })
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payment_hash_body() {
        let h = PaymentHash([0xab; 32]);
        let v: serde_json::Value =
            serde_json::from_str(&with_payment_hash(Some(r#"{"q":"x"}"#), &h)).unwrap_or_default();
        assert_eq!(v["q"], "x");
        assert_eq!(v["payment_hash"], hex::encode(h));
        let v: serde_json::Value =
            serde_json::from_str(&with_payment_hash(None, &h)).unwrap_or_default();
        assert_eq!(v["payment_hash"], hex::encode(h));
    }

    #[test]
    fn the_hash_a_token_is_for() {
        let hash = PaymentHash([7; 32]);
        let id = Identifier {
            payment_hash: hash,
            token_id: crate::l402::TokenId([1; 32]),
        };
        let mac = Macaroon::new(&[9; 32], id.encode().to_vec(), "lsat").serialize();
        assert_eq!(token_payment_hash(&mac), Some(hash));
        // l402kit: base64 of {"hash": <hex>, "exp": <ms>}.
        let kit = format!("{{\"hash\":\"{hash}\",\"exp\":1}}");
        assert_eq!(token_payment_hash(kit.as_bytes()), Some(hash));
        // Says nothing readable: presented as it is.
        assert_eq!(token_payment_hash(b"opaque"), None);
        let odd = Macaroon::new(&[9; 32], vec![0, 1, 2], "lsat").serialize();
        assert_eq!(token_payment_hash(&odd), None);
    }
}
