//! The `Payment` challenge: `WWW-Authenticate: Payment id="..", realm="..", method="..",
//! intent="..", request="..", expires=".."`, and its id, the HMAC that binds it.
//!
//! Sent exactly as Aperture sends it: every value quoted (`\` and `"` as quoted-pairs, control
//! bytes other than tab dropped), in the order `id, realm, method, intent, request, expires,
//! digest, description, opaque` (and mppx's `header` last). Read as Aperture reads it: header
//! lines and comma-joined lists alike, a token followed by `=` is a parameter and anything else
//! starts a new challenge, other schemes' parameters are dropped, the first of a duplicated
//! parameter wins, unknown parameters are ignored and an offer missing a required parameter is
//! skipped (with a reason).

use serde_json::{Map, Value};

use super::{MppError, b64url, jcs, time};
use crate::challenge::split_challenges;

/// The auth-scheme name.
pub const SCHEME: &str = "Payment";

/// One `Payment` challenge, every parameter as sent (the echo must be byte for byte).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PaymentChallenge {
    /// The HMAC of the other parameters (see [`PaymentChallenge::binding_input`]).
    pub id: String,
    pub realm: String,
    /// Lower-case method name, e.g. `lightning`.
    pub method: String,
    /// `charge` or `session`.
    pub intent: String,
    /// Base64url (unpadded) of the JCS JSON request, as sent.
    pub request: String,
    /// RFC 3339 deadline.
    pub expires: Option<String>,
    /// RFC 9530 digest of the request body the paid retry must carry.
    pub digest: Option<String>,
    /// For display only; not bound by the id.
    pub description: Option<String>,
    /// Base64url of a JCS string map, echoed unchanged.
    pub opaque: Option<String>,
    /// mppx: the request header the credential goes in, when not `Authorization`.
    pub header: Option<String>,
}

/// The challenges of a 402, and the offers that could not be read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Offers {
    pub challenges: Vec<PaymentChallenge>,
    /// Why each skipped `Payment` offer was skipped.
    pub skipped: Vec<String>,
}

impl PaymentChallenge {
    /// What the id binds: `realm|method|intent|request|expires|digest|opaque`, absent slots
    /// empty; with mppx's `header` parameter, an eighth slot before `opaque`.
    pub fn binding_input(&self) -> String {
        let opt = |v: &Option<String>| v.clone().unwrap_or_default();
        let mut slots = vec![
            self.realm.clone(),
            self.method.clone(),
            self.intent.clone(),
            self.request.clone(),
            opt(&self.expires),
            opt(&self.digest),
        ];
        if let Some(h) = &self.header {
            slots.push(h.clone());
        }
        slots.push(opt(&self.opaque));
        slots.join("|")
    }

    /// The id this challenge has under `secret`: base64url(HMAC-SHA256(secret, binding input)).
    pub fn compute_id(&self, secret: &[u8]) -> String {
        b64url::encode(&crate::macaroon::hmac(
            secret,
            self.binding_input().as_bytes(),
        ))
    }

    /// This challenge with its id set under `secret`.
    pub fn sealed(mut self, secret: &[u8]) -> PaymentChallenge {
        self.id = self.compute_id(secret);
        self
    }

    /// Whether the id is the HMAC of the other parameters under `secret` (constant time).
    pub fn id_matches(&self, secret: &[u8]) -> bool {
        let mac = crate::macaroon::hmac(secret, self.binding_input().as_bytes());
        match b64url::decode(&self.id).map(<[u8; 32]>::try_from) {
            Some(Ok(id)) => crate::macaroon::ct_eq32(&mac, &id),
            _ => false,
        }
    }

    /// Whether this is an offer of `method`/`intent` (case-insensitive).
    pub fn is(&self, method: &str, intent: &str) -> bool {
        self.method.eq_ignore_ascii_case(method) && self.intent.eq_ignore_ascii_case(intent)
    }

    /// The `expires` deadline in unix seconds: `None` when absent, `Some(Err)` when unreadable.
    pub fn expires_at(&self) -> Option<Result<u64, MppError>> {
        self.expires.as_deref().map(|e| {
            time::parse(e).ok_or_else(|| {
                MppError::MalformedChallenge(format!("expires {e:?} is not an RFC 3339 time"))
            })
        })
    }

    /// The decoded `request`.
    pub fn request_json(&self) -> Result<Value, MppError> {
        decode_json(&self.request)
            .ok_or_else(|| MppError::MalformedRequest("request is not base64url JSON".into()))
    }

    /// The `WWW-Authenticate` value, exactly as Aperture writes it.
    pub fn header_value(&self) -> String {
        let mut parts = vec![
            ("id", Some(&self.id)),
            ("realm", Some(&self.realm)),
            ("method", Some(&self.method)),
            ("intent", Some(&self.intent)),
            ("request", Some(&self.request)),
            ("expires", self.expires.as_ref()),
            ("digest", self.digest.as_ref()),
            ("description", self.description.as_ref()),
            ("opaque", self.opaque.as_ref()),
            ("header", self.header.as_ref()),
        ];
        parts.retain(|(_, v)| v.is_some());
        let params: Vec<String> = parts
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| format!("{k}={}", quote(v))))
            .collect();
        format!("{SCHEME} {}", params.join(", "))
    }

    /// The challenge as a JSON object, `request` decoded (the MCP transport's form: its id is
    /// the same, since `request` is base64url of the JCS of that object). Members in the
    /// header's order.
    pub fn to_json(&self) -> Result<Value, MppError> {
        let mut out = String::new();
        self.write_json(&mut out, true)?;
        serde_json::from_str(&out).map_err(|e| MppError::MalformedRequest(e.to_string()))
    }

    /// Write the challenge as a JSON object (the echo inside a credential): `request` as the
    /// string sent, or decoded (`request_as_object`, the MCP form). Members in the order
    /// `id, realm, method, intent, request, expires, description, opaque, digest, header`.
    pub(crate) fn write_json(
        &self,
        out: &mut String,
        request_as_object: bool,
    ) -> Result<(), MppError> {
        out.push('{');
        let mut first = true;
        let mut member = |out: &mut String, k: &str, raw: Option<String>| {
            if let Some(raw) = raw {
                if !first {
                    out.push(',');
                }
                first = false;
                jcs::write_str(out, k);
                out.push(':');
                out.push_str(&raw);
            }
        };
        let s = |v: &str| {
            let mut o = String::new();
            jcs::write_str(&mut o, v);
            o
        };
        member(out, "id", Some(s(&self.id)));
        member(out, "realm", Some(s(&self.realm)));
        member(out, "method", Some(s(&self.method)));
        member(out, "intent", Some(s(&self.intent)));
        let request = if request_as_object {
            jcs::to_string(&self.request_json()?)
        } else {
            s(&self.request)
        };
        member(out, "request", Some(request));
        member(out, "expires", self.expires.as_deref().map(s));
        member(out, "description", self.description.as_deref().map(s));
        member(out, "opaque", self.opaque.as_deref().map(s));
        member(out, "digest", self.digest.as_deref().map(s));
        member(out, "header", self.header.as_deref().map(s));
        out.push('}');
        Ok(())
    }

    /// A challenge from a JSON object: an echo inside a credential, or an offer in a JSON-RPC
    /// error's `data.challenges`. `request` may be the base64url string or the decoded object
    /// (which is put back as base64url of its JCS, as mppx does).
    pub fn from_json(value: &Value) -> Result<PaymentChallenge, MppError> {
        let obj = value
            .as_object()
            .ok_or_else(|| MppError::MalformedChallenge("challenge is not an object".into()))?;
        let required = |k: &str| -> Result<String, MppError> {
            match obj.get(k) {
                Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
                _ => Err(MppError::MalformedChallenge(format!(
                    "challenge has no {k} string"
                ))),
            }
        };
        let optional = |k: &str| -> Result<Option<String>, MppError> {
            match obj.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(MppError::MalformedChallenge(format!(
                    "challenge {k} is not a string"
                ))),
            }
        };
        let request = match obj.get("request") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            Some(v @ Value::Object(_)) => b64url::encode(jcs::to_string(v).as_bytes()),
            _ => {
                return Err(MppError::MalformedChallenge(
                    "challenge has no request".into(),
                ));
            }
        };
        Ok(PaymentChallenge {
            id: required("id")?,
            realm: required("realm")?,
            method: required("method")?,
            intent: required("intent")?,
            request,
            expires: optional("expires")?,
            digest: optional("digest")?,
            description: optional("description")?,
            opaque: optional("opaque")?,
            header: optional("header")?,
        })
    }
}

/// Base64url of the JCS form of `value`: how `request` and `opaque` are written.
pub fn encode_json(value: &Value) -> String {
    b64url::encode(jcs::to_string(value).as_bytes())
}

/// `opaque` for a flat string map.
pub fn encode_opaque(map: &Map<String, Value>) -> String {
    encode_json(&Value::Object(map.clone()))
}

/// JSON from base64url.
pub fn decode_json(s: &str) -> Option<Value> {
    serde_json::from_slice(&b64url::decode(s)?).ok()
}

/// Every `Payment` challenge in a set of `WWW-Authenticate` values (each may hold several
/// challenges of any scheme, comma-joined).
pub fn parse_headers<'a, I>(values: I) -> Offers
where
    I: IntoIterator<Item = &'a str>,
{
    let mut offers = Offers::default();
    for value in values {
        for raw in split_challenges(value) {
            if !raw.scheme.eq_ignore_ascii_case(SCHEME) {
                continue;
            }
            let get = |name: &str| raw.param(&[name]).map(str::to_owned);
            let missing: Vec<&str> = ["id", "realm", "method", "intent", "request"]
                .into_iter()
                .filter(|k| get(k).is_none_or(|v| v.is_empty()))
                .collect();
            if !missing.is_empty() {
                offers.skipped.push(format!(
                    "a Payment offer without {} was skipped",
                    missing.join(", ")
                ));
                continue;
            }
            offers.challenges.push(PaymentChallenge {
                id: get("id").unwrap_or_default(),
                realm: get("realm").unwrap_or_default(),
                method: get("method").unwrap_or_default(),
                intent: get("intent").unwrap_or_default(),
                request: get("request").unwrap_or_default(),
                expires: get("expires"),
                digest: get("digest"),
                description: get("description"),
                opaque: get("opaque"),
                header: get("header"),
            });
        }
    }
    offers
}

/// An RFC 9110 quoted-string: `\` and `"` as quoted-pairs, tab and visible bytes as they are,
/// other control bytes dropped (they could split a header).
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\\' | '"' => {
                out.push('\\');
                out.push(c);
            }
            '\t' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {}
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::super::vectors::*;
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn aperture_id_vector() {
        let c = PaymentChallenge {
            realm: "api.example.com".into(),
            method: "lightning".into(),
            intent: "charge".into(),
            request: "eyJhbW91bnQiOiIxMDAifQ".into(),
            ..PaymentChallenge::default()
        };
        assert_eq!(
            c.binding_input(),
            "api.example.com|lightning|charge|eyJhbW91bnQiOiIxMDAifQ|||"
        );
        assert_eq!(
            c.compute_id(SECRET),
            "_9D0WlPoPRltxAd6AdpQd6auVOOeQGJ_J8BkGeBE_bU"
        );
        let sealed = c.sealed(SECRET);
        assert!(sealed.id_matches(SECRET));
        assert!(!sealed.id_matches(b"another secret"));
    }

    #[test]
    fn charge_header_is_byte_exact() {
        let c = charge_challenge();
        assert_eq!(c.id, CHARGE_ID);
        let header = c.header_value();
        assert_eq!(header.len(), 793);
        assert_eq!(
            header,
            format!(
                "Payment id=\"{CHARGE_ID}\", realm=\"api.example.com\", method=\"lightning\", intent=\"charge\", request=\"{}\", expires=\"2026-01-01T00:15:00Z\"",
                c.request
            )
        );
        let parsed = parse_headers([header.as_str()]);
        assert_eq!(parsed.challenges, vec![c]);
    }

    #[test]
    fn reads_lines_and_lists_like_aperture() {
        let c = charge_challenge();
        let payment = c.header_value();
        let lsat = "LSAT macaroon=\"AGIAJEemVQUTEyNCR0exk7ek90Cg==\", invoice=\"lnbc1\"";
        let l402 = lsat.replacen("LSAT", "L402", 1);
        // Aperture's lines, and the same joined by fetch().
        for values in [
            vec![lsat.to_owned(), l402.clone(), payment.clone()],
            vec![format!("{lsat}, {l402}, {payment}")],
        ] {
            let offers = parse_headers(values.iter().map(String::as_str));
            assert_eq!(offers.challenges, vec![c.clone()], "{values:?}");
        }
        // Bare values, other case, unknown parameters, a duplicate (the first wins).
        let loose = format!(
            "payment ID={}, Realm=api.example.com, method=lightning, intent=charge, foo=\"a, b\", request={}, realm=\"other\", expires=\"2026-01-01T00:15:00Z\"",
            c.id, c.request
        );
        assert_eq!(parse_headers([loose.as_str()]).challenges, vec![c.clone()]);
        // An incomplete offer is skipped, the rest kept.
        let two = format!("Payment id=\"x\", realm=\"r\", method=\"lightning\", {payment}");
        let offers = parse_headers([two.as_str()]);
        assert_eq!(offers.challenges, vec![c]);
        assert_eq!(offers.skipped.len(), 1, "{offers:?}");
    }

    #[test]
    fn quoting_escapes_and_drops() {
        let c = PaymentChallenge {
            id: "i".into(),
            realm: "a\"b\\c\td\r\ne\u{7f}".into(),
            method: "lightning".into(),
            intent: "charge".into(),
            request: "e30".into(),
            ..PaymentChallenge::default()
        };
        let h = c.header_value();
        assert!(h.contains("realm=\"a\\\"b\\\\c\tde\""), "{h}");
        assert_eq!(
            parse_headers([h.as_str()]).challenges[0].realm,
            "a\"b\\c\tde"
        );
    }

    #[test]
    fn json_form_keeps_the_id() {
        let c = charge_challenge();
        let obj = c.to_json().unwrap();
        assert_eq!(obj["request"]["methodDetails"]["paymentHash"], CHARGE_HASH);
        let back = PaymentChallenge::from_json(&obj).unwrap();
        assert_eq!(back, c);
        assert!(back.id_matches(SECRET));
    }

    #[test]
    fn session_and_topup_ids() {
        let s = session_challenge(SESSION_REQUEST_JCS, "2026-01-01T00:15:00Z");
        assert_eq!(s.request.len(), 608);
        assert_eq!(
            hex::encode(crate::sha256(s.request.as_bytes())),
            "1100afa11c397fa3e3a3408c12898031682b2cc57a3bda48bb8a8f6123d8cb84"
        );
        assert_eq!(s.id, "tHKFXfjIXv4gVVeJzBaYRRuvQy014BxR84c85o4EIKk");
        let t = session_challenge(&topup_request_jcs(), "2026-01-01T00:20:00Z");
        assert_eq!(t.id, "9FkjXnLn1V6Kw-5lCa4f6U8ZRl7zCa2f76jTO2HljTc");
    }

    #[test]
    fn mppx_header_slot() {
        let mut c = charge_challenge();
        c.header = Some("Payment-Authorization".into());
        assert!(
            c.binding_input()
                .ends_with("|2026-01-01T00:15:00Z||Payment-Authorization|")
        );
        assert!(!c.id_matches(SECRET));
    }

    proptest! {
        #[test]
        fn format_parse_round_trip(realm in "[ -~\t]{1,40}", desc in proptest::option::of("[ -~]{0,40}")) {
            let c = PaymentChallenge {
                id: "x".into(), realm, method: "lightning".into(), intent: "charge".into(),
                request: "e30".into(), description: desc, ..PaymentChallenge::default()
            };
            let h = c.header_value();
            let back = parse_headers([h.as_str()]).challenges;
            prop_assert_eq!(back, vec![c]);
        }

        #[test]
        fn never_panics(s in ".{0,200}") {
            let _ = parse_headers([s.as_str()]);
            if let Ok(v) = serde_json::from_str::<Value>(&s) {
                let _ = PaymentChallenge::from_json(&v);
            }
        }
    }
}
