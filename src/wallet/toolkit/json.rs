//! Lenient reading of node APIs' JSON: amounts in every form they come in, 32-byte hashes and
//! preimages as hex, and the fields of an error body that the client cut short.

use serde::Deserialize;
use serde_json::Value;

/// An unsigned integer sent as a number, a string (`"1000"`, proto3 JSON) or a string with
/// an `msat` suffix (`"1000msat"`, older Core Lightning); absent or null is `None`.
pub fn de_u64<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let v = Option::<Value>::deserialize(d)?;
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .map(Some)
            .ok_or_else(|| serde::de::Error::custom(format!("{n} is not an amount"))),
        Some(Value::String(s)) => {
            let t = s.trim();
            let t = t.strip_suffix("msat").unwrap_or(t);
            t.parse()
                .map(Some)
                .map_err(|_| serde::de::Error::custom(format!("{s:?} is not an amount")))
        }
        Some(other) => Err(serde::de::Error::custom(format!(
            "{other} is not an amount"
        ))),
    }
}

/// A payment hash as hex (surrounding whitespace allowed).
pub fn hash32(s: &str) -> Option<crate::l402::PaymentHash> {
    crate::l402::parse_hex32(s.trim()).map(crate::l402::PaymentHash)
}

/// A preimage as hex; `None` when it is not 32 bytes or is the all-zero placeholder some
/// nodes and funding sources send when they have none.
pub fn preimage(s: &str) -> Option<crate::l402::Preimage> {
    crate::l402::parse_hex32(s.trim())
        .filter(|p| p != &[0u8; 32])
        .map(crate::l402::Preimage)
}

/// A preimage as hex, taken only when it is the preimage of `payment_hash` (hosted backends
/// that may withhold or garble it: anything else is no proof, and is logged).
pub fn preimage_for(
    s: &str,
    payment_hash: &crate::l402::PaymentHash,
) -> Option<crate::l402::Preimage> {
    let p = preimage(s)?;
    if p.matches(payment_hash) {
        Some(p)
    } else {
        tracing::error!(%payment_hash, "the backend's preimage does not hash to the payment hash: not taken as proof");
        None
    }
}

/// `true`/`false`, also as a string (environment variables arrive as strings); absent is
/// `None`.
pub fn de_bool<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum B {
        Bool(bool),
        Str(String),
    }
    match Option::<B>::deserialize(d)? {
        None => Ok(None),
        Some(B::Bool(b)) => Ok(Some(b)),
        Some(B::Str(s)) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "1" => Ok(Some(true)),
            "false" | "no" | "0" => Ok(Some(false)),
            other => Err(serde::de::Error::custom(format!(
                "{other:?} is not true or false"
            ))),
        },
    }
}

/// The integer after `"key":` in a JSON text that may be cut short.
pub fn scan_int(text: &str, key: &str) -> Option<i64> {
    let rest = after_key(text, key)?;
    let end = rest
        .char_indices()
        .find(|(i, c)| !(c.is_ascii_digit() || (*i == 0 && *c == '-')))
        .map_or(rest.len(), |(i, _)| i);
    rest[..end].parse().ok()
}

/// The string after `"key":` in a JSON text that may be cut short (escapes left as sent).
pub fn scan_str(text: &str, key: &str) -> Option<String> {
    let rest = after_key(text, key)?.strip_prefix('"')?;
    let mut end = rest.len();
    let mut escaped = false;
    for (i, c) in rest.char_indices() {
        match c {
            '\\' if !escaped => escaped = true,
            '"' if !escaped => {
                end = i;
                break;
            }
            _ => escaped = false,
        }
    }
    Some(rest[..end].to_owned())
}

fn after_key<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let at = text.find(&format!("\"{key}\""))?;
    let rest = text[at + key.len() + 2..].trim_start();
    Some(rest.strip_prefix(':')?.trim_start())
}

/// The `code` and `message` of a JSON error body, at its top level or under `error` (as
/// JSON-RPC and streamed errors nest them). A body cut short is scanned instead.
pub fn error_fields(body: &str) -> (Option<i64>, Option<String>) {
    if let Ok(v) = serde_json::from_str::<Value>(body) {
        let e = v.get("error").filter(|e| e.is_object()).unwrap_or(&v);
        let code = e.get("code").and_then(Value::as_i64);
        let message = e.get("message").and_then(Value::as_str).map(str::to_owned);
        if code.is_some() || message.is_some() {
            return (code, message);
        }
    }
    (scan_int(body, "code"), scan_str(body, "message"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scans_cut_json() {
        let body = r#"{"code":205,"message":"Ran out of routes to try after 3 attempts","data":{"getroute_tries":3,"sen"#;
        assert_eq!(scan_int(body, "code"), Some(205));
        assert_eq!(
            scan_str(body, "message").as_deref(),
            Some("Ran out of routes to try after 3 attempts")
        );
        assert_eq!(
            error_fields(body),
            (
                Some(205),
                Some("Ran out of routes to try after 3 attempts".into())
            )
        );
        assert_eq!(scan_int(r#"{"code": -32602, "m"#, "code"), Some(-32602));
        assert_eq!(scan_int(r#"{"failcode":16399}"#, "code"), None);
        assert_eq!(
            scan_str(r#"{"message":"cut sh"#, "message").as_deref(),
            Some("cut sh")
        );
        assert_eq!(
            error_fields(r#"{"error":{"code":5,"message":"payment isn't initiated"}}"#),
            (Some(5), Some("payment isn't initiated".into()))
        );
        assert_eq!(error_fields("Bad Gateway"), (None, None));
    }

    #[test]
    fn reads_amounts_in_every_form() {
        #[derive(Deserialize)]
        struct A {
            #[serde(default, deserialize_with = "de_u64")]
            a: Option<u64>,
        }
        let read = |s: &str| serde_json::from_str::<A>(s).map(|a| a.a).ok();
        assert_eq!(read(r#"{"a":1000}"#), Some(Some(1000)));
        assert_eq!(read(r#"{"a":"1000"}"#), Some(Some(1000)));
        assert_eq!(read(r#"{"a":"1000msat"}"#), Some(Some(1000)));
        assert_eq!(read(r#"{"a":null}"#), Some(None));
        assert_eq!(read(r#"{}"#), Some(None));
        assert_eq!(read(r#"{"a":"ten"}"#), None);
        assert_eq!(read(r#"{"a":-1}"#), None);
    }

    #[test]
    fn a_preimage_is_taken_only_for_its_hash() {
        let pre = crate::l402::Preimage([7; 32]);
        let hash = pre.payment_hash();
        assert_eq!(preimage_for(&pre.to_hex(), &hash), Some(pre));
        assert_eq!(preimage_for(&"08".repeat(32), &hash), None);
        #[derive(Deserialize)]
        struct C {
            #[serde(default, deserialize_with = "de_bool")]
            b: Option<bool>,
        }
        let read = |s: &str| toml::from_str::<C>(s).map(|c| c.b).ok();
        assert_eq!(read("b = false"), Some(Some(false)));
        assert_eq!(read("b = \"TRUE\""), Some(Some(true)));
        assert_eq!(read(""), Some(None));
        assert_eq!(read("b = \"maybe\""), None);
    }

    #[test]
    fn preimages_are_32_bytes_and_never_the_placeholder() {
        assert_eq!(preimage(&"00".repeat(32)), None);
        assert_eq!(preimage(""), None);
        assert_eq!(preimage(" ab"), None);
        assert_eq!(
            preimage(&"ab".repeat(32)),
            Some(crate::l402::Preimage([0xab; 32]))
        );
        assert_eq!(
            hash32(&"00".repeat(32)),
            Some(crate::l402::PaymentHash([0; 32]))
        );
    }
}
