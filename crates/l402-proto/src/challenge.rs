//! The L402 challenge: `WWW-Authenticate: L402 macaroon="<b64>", invoice="<bolt11>"`.
//!
//! We send exactly what Aperture sends (two lines, `LSAT` first, `macaroon=` before `invoice=`),
//! and accept every variant seen in the wild: `L402`/`LSAT` in any case, `macaroon=` or `token=`,
//! an optional `version=`, unknown parameters, any order, quoted or bare values, several header
//! lines or one comma-folded line, standard or URL-safe base64 with or without padding, and
//! challenges carried only in a JSON body.

use super::{PaymentHash, Scheme, b64, parse_hex32};

/// One L402 challenge from a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// The scheme the server used; answer with the same one.
    pub scheme: Scheme,
    /// The macaroon, decoded from base64.
    pub macaroon: Vec<u8>,
    /// The BOLT11 invoice to pay, as sent.
    pub invoice: String,
    /// The `version=` parameter, when present.
    pub version: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChallengeError {
    #[error("no WWW-Authenticate header in the 402 response")]
    NoHeader,
    #[error("the 402 response is not an L402 challenge (schemes offered: {0})")]
    NotL402(String),
    #[error("malformed L402 challenge: {0}")]
    Malformed(String),
}

/// The challenge value for one scheme, formatted exactly as Aperture does.
pub fn format(scheme: Scheme, macaroon: &[u8], invoice: &str) -> String {
    format!(
        "{scheme} macaroon=\"{}\", invoice=\"{invoice}\"",
        b64::encode(macaroon)
    )
}

/// The two `WWW-Authenticate` values a seller sends, legacy `LSAT` first: old clients read only
/// the first line.
pub fn aperture_headers(macaroon: &[u8], invoice: &str) -> [String; 2] {
    [
        format(Scheme::Lsat, macaroon, invoice),
        format(Scheme::L402, macaroon, invoice),
    ]
}

/// Every L402/LSAT challenge in a set of `WWW-Authenticate` header values (one value may fold
/// several challenges). Errors only when none is usable; other schemes are ignored.
pub fn parse_headers<'a, I>(values: I) -> Result<Vec<Challenge>, ChallengeError>
where
    I: IntoIterator<Item = &'a str>,
{
    let mut found = Vec::new();
    let mut other_schemes: Vec<String> = Vec::new();
    let mut problems: Vec<String> = Vec::new();
    let mut any_header = false;
    for value in values {
        any_header = true;
        for raw in split_challenges(value) {
            match Scheme::from_token(raw.scheme) {
                Some(scheme) => match raw.into_challenge(scheme) {
                    Ok(c) => found.push(c),
                    Err(why) => problems.push(why),
                },
                None => other_schemes.push(raw.scheme.to_owned()),
            }
        }
    }
    if !found.is_empty() {
        return Ok(found);
    }
    if let Some(why) = problems.into_iter().next() {
        return Err(ChallengeError::Malformed(why));
    }
    if !any_header {
        return Err(ChallengeError::NoHeader);
    }
    if other_schemes.is_empty() {
        return Err(ChallengeError::NotL402("none".into()));
    }
    Err(ChallengeError::NotL402(other_schemes.join(", ")))
}

/// The challenge to answer when a server offers several: `L402` over `LSAT` (Aperture takes both).
pub fn preferred(challenges: &[Challenge]) -> Option<&Challenge> {
    challenges
        .iter()
        .find(|c| c.scheme == Scheme::L402)
        .or_else(|| challenges.first())
}

/// A challenge carried in a JSON response body:
/// `{"invoice"|"payment_request"|"pr"|"bolt11": .., "macaroon"|"token": .., "payment_hash": ..}`,
/// at the top level or one object down. Without a macaroon it is the LNbits-tutorial style: pay,
/// then resend the request with `payment_hash` in the JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonChallenge {
    pub invoice: String,
    pub macaroon: Option<Vec<u8>>,
    pub payment_hash: Option<PaymentHash>,
}

/// Look for a challenge in a JSON body. `None` when the body holds no invoice.
pub fn parse_json_body(body: &[u8]) -> Option<JsonChallenge> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let top = value.as_object()?;
    json_challenge(top).or_else(|| {
        top.values()
            .filter_map(|v| v.as_object())
            .find_map(json_challenge)
    })
}

fn json_challenge(obj: &serde_json::Map<String, serde_json::Value>) -> Option<JsonChallenge> {
    let field = |names: &[&str]| {
        names
            .iter()
            .find_map(|n| obj.get(*n).and_then(|v| v.as_str()))
            .map(str::trim)
            .filter(|s| !s.is_empty())
    };
    let invoice = field(&[
        "invoice",
        "payment_request",
        "paymentRequest",
        "pr",
        "bolt11",
    ])?;
    let invoice = strip_lightning_prefix(invoice);
    if !invoice.get(..2)?.eq_ignore_ascii_case("ln") {
        return None;
    }
    Some(JsonChallenge {
        invoice: invoice.to_owned(),
        macaroon: field(&["macaroon", "token"]).and_then(b64::decode),
        payment_hash: field(&["payment_hash", "paymentHash"])
            .and_then(parse_hex32)
            .map(PaymentHash),
    })
}

fn strip_lightning_prefix(s: &str) -> &str {
    match s.get(..10) {
        Some(p) if p.eq_ignore_ascii_case("lightning:") => &s[10..],
        _ => s,
    }
}

/// One challenge as written: a scheme and its parameters, nothing interpreted yet.
#[derive(Debug)]
pub(crate) struct RawChallenge<'a> {
    pub(crate) scheme: &'a str,
    pub(crate) params: Vec<(&'a str, String)>,
}

impl RawChallenge<'_> {
    /// The first parameter of any of these names (case-insensitive): a duplicate is ignored.
    pub(crate) fn param(&self, names: &[&str]) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| names.iter().any(|n| k.eq_ignore_ascii_case(n)))
            .map(|(_, v)| v.as_str())
    }

    fn into_challenge(self, scheme: Scheme) -> Result<Challenge, String> {
        let mac = self
            .param(&["macaroon", "token"])
            .ok_or_else(|| format!("{scheme} challenge has no macaroon= or token= parameter"))?;
        let macaroon =
            b64::decode(mac).ok_or_else(|| format!("{scheme} challenge macaroon is not base64"))?;
        let invoice = self
            .param(&["invoice"])
            .ok_or_else(|| format!("{scheme} challenge has no invoice= parameter"))?;
        let invoice = strip_lightning_prefix(invoice.trim());
        if invoice.is_empty() {
            return Err(format!("{scheme} challenge has an empty invoice"));
        }
        Ok(Challenge {
            scheme,
            macaroon,
            invoice: invoice.to_owned(),
            version: self.param(&["version"]).map(str::to_owned),
        })
    }
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Split one header value into challenges (RFC 9110 §11.6.1, liberally: commas between
/// parameters may be missing, and a bare value runs to the next comma or space).
pub(crate) fn split_challenges(value: &str) -> Vec<RawChallenge<'_>> {
    let mut p = Cursor { s: value, pos: 0 };
    let mut out = Vec::new();
    loop {
        p.skip(|b| b == b',' || b.is_ascii_whitespace());
        if p.at_end() {
            break;
        }
        let scheme = p.token();
        if scheme.is_empty() {
            p.pos += p.rest().chars().next().map_or(1, char::len_utf8); // junk: step over it
            continue;
        }
        let mut raw = RawChallenge {
            scheme,
            params: Vec::new(),
        };
        loop {
            let save = p.pos;
            p.skip(|b| b.is_ascii_whitespace());
            let name = p.token();
            p.skip(|b| b == b' ' || b == b'\t');
            if name.is_empty() || !p.eat(b'=') {
                p.pos = save; // not `name=`: the next challenge (or a token68) starts here
                break;
            }
            p.skip(|b| b == b' ' || b == b'\t');
            let value = if p.eat(b'"') {
                p.quoted()
            } else {
                p.bare().to_owned()
            };
            raw.params.push((name, value));
            p.skip(|b| b.is_ascii_whitespace());
            p.eat(b',');
        }
        out.push(raw);
    }
    out
}

struct Cursor<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn at_end(&self) -> bool {
        self.pos >= self.s.len()
    }
    fn rest(&self) -> &'a str {
        &self.s[self.pos..]
    }
    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.pos).copied()
    }
    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    fn skip(&mut self, f: impl Fn(u8) -> bool) {
        while self.peek().is_some_and(&f) {
            self.pos += 1;
        }
    }
    fn token(&mut self) -> &'a str {
        let start = self.pos;
        self.skip(is_tchar);
        &self.s[start..self.pos]
    }
    fn bare(&mut self) -> &'a str {
        let start = self.pos;
        self.skip(|b| b != b',' && !b.is_ascii_whitespace());
        &self.s[start..self.pos]
    }
    /// A quoted string after its opening quote, with `\` escapes; an unterminated one runs to the end.
    fn quoted(&mut self) -> String {
        let mut out = String::new();
        let mut chars = self.rest().char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    self.pos += i + 1;
                    return out;
                }
                '\\' => {
                    if let Some((_, e)) = chars.next() {
                        out.push(e);
                    }
                }
                c => out.push(c),
            }
        }
        self.pos = self.s.len();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MAC: &[u8] = &[0xfb, 0xff, 0x01, 0x02, 0x03];
    const INV: &str = "lnbcrt10n1pexample";

    fn one(values: &[&str]) -> Challenge {
        let all = parse_headers(values.iter().copied()).unwrap();
        preferred(&all).unwrap().clone()
    }

    #[test]
    fn formats_exactly_as_aperture() {
        let [lsat, l402] = aperture_headers(MAC, INV);
        assert_eq!(
            lsat,
            "LSAT macaroon=\"+/8BAgM=\", invoice=\"lnbcrt10n1pexample\""
        );
        assert_eq!(
            l402,
            "L402 macaroon=\"+/8BAgM=\", invoice=\"lnbcrt10n1pexample\""
        );
    }

    #[test]
    fn accepts_every_variant() {
        let cases: &[(&[&str], Scheme)] = &[
            (
                &["L402 macaroon=\"+/8BAgM=\", invoice=\"lnbcrt10n1pexample\""],
                Scheme::L402,
            ),
            (
                &["LSAT macaroon=\"+/8BAgM=\", invoice=\"lnbcrt10n1pexample\""],
                Scheme::Lsat,
            ),
            (
                &["l402 invoice=\"lnbcrt10n1pexample\", macaroon=\"+/8BAgM=\""],
                Scheme::L402,
            ),
            (
                &["L402 version=\"0\", token=\"+/8BAgM=\", invoice=\"lnbcrt10n1pexample\""],
                Scheme::L402,
            ),
            (
                &["L402 macaroon=+/8BAgM=, invoice=lnbcrt10n1pexample"],
                Scheme::L402,
            ),
            (
                &["L402 macaroon=\"-_8BAgM\", invoice=\"lnbcrt10n1pexample\""],
                Scheme::L402,
            ),
            (
                &["L402 macaroon=\"+/8BAgM=\" invoice=\"lnbcrt10n1pexample\""],
                Scheme::L402,
            ),
            (
                &[
                    "L402 foo=\"bar, baz\", macaroon=\"+/8BAgM=\", invoice=\"lnbcrt10n1pexample\", x=1",
                ],
                Scheme::L402,
            ),
            // Aperture's two lines, and the same folded into one.
            (
                &[
                    "LSAT macaroon=\"+/8BAgM=\", invoice=\"lnbcrt10n1pexample\"",
                    "L402 macaroon=\"+/8BAgM=\", invoice=\"lnbcrt10n1pexample\"",
                ],
                Scheme::L402,
            ),
            (
                &[
                    "LSAT macaroon=\"+/8BAgM=\", invoice=\"lnbcrt10n1pexample\", L402 macaroon=\"+/8BAgM=\", invoice=\"lnbcrt10n1pexample\"",
                ],
                Scheme::L402,
            ),
            // Another scheme before ours, and a token68 scheme.
            (
                &["Bearer realm=\"x\", LSAT macaroon=\"+/8BAgM=\", invoice=\"lnbcrt10n1pexample\""],
                Scheme::Lsat,
            ),
            (
                &[
                    "Negotiate abc==, LSAT macaroon=\"+/8BAgM=\", invoice=\"lightning:lnbcrt10n1pexample\"",
                ],
                Scheme::Lsat,
            ),
        ];
        for (values, scheme) in cases {
            let c = one(values);
            assert_eq!(c.scheme, *scheme, "{values:?}");
            assert_eq!(c.macaroon, MAC, "{values:?}");
            assert_eq!(c.invoice, INV, "{values:?}");
        }
        assert_eq!(
            one(&["L402 version=0, token=+/8BAgM=, invoice=lnbcrt10n1pexample"])
                .version
                .as_deref(),
            Some("0")
        );
    }

    #[test]
    fn clear_errors() {
        assert_eq!(parse_headers([]), Err(ChallengeError::NoHeader));
        assert_eq!(
            parse_headers(["Payment realm=\"x402\", Bearer"]),
            Err(ChallengeError::NotL402("Payment, Bearer".into()))
        );
        assert!(matches!(
            parse_headers(["L402 invoice=\"lnbc1\""]),
            Err(ChallengeError::Malformed(_))
        ));
        assert!(matches!(
            parse_headers(["L402 macaroon=\"!!\", invoice=\"lnbc1\""]),
            Err(ChallengeError::Malformed(_))
        ));
        assert!(matches!(
            parse_headers(["L402 macaroon=\"AA==\""]),
            Err(ChallengeError::Malformed(_))
        ));
    }

    #[test]
    fn json_bodies() {
        let c =
            parse_json_body(br#"{"invoice":"lnbcrt10n1pexample","macaroon":"+/8BAgM="}"#).unwrap();
        assert_eq!(
            (c.invoice.as_str(), c.macaroon.as_deref()),
            (INV, Some(MAC))
        );
        let hash = "7cef93f2c51aa65208bec1447fc38fc58d9bce1375a532edb0dcd290a2c330ae";
        let lnbits =
            format!(r#"{{"payment_request":"LNBCRT10N1PEXAMPLE","payment_hash":"{hash}"}}"#);
        let c = parse_json_body(lnbits.as_bytes()).unwrap();
        assert_eq!(c.macaroon, None);
        assert_eq!(c.payment_hash, parse_hex32(hash).map(PaymentHash));
        let nested =
            br#"{"error":"payment required","l402":{"pr":"lnbcrt10n1pexample","token":"-_8BAgM"}}"#;
        assert_eq!(
            parse_json_body(nested).unwrap().macaroon.as_deref(),
            Some(MAC)
        );
        assert_eq!(parse_json_body(br#"{"error":"nope"}"#), None);
        assert_eq!(parse_json_body(br#"{"invoice":"not an invoice"}"#), None);
        assert_eq!(parse_json_body(b"<html>"), None);
    }

    proptest! {
        #[test]
        fn parse_of_format_round_trips(mac in proptest::collection::vec(any::<u8>(), 1..300), inv in "ln[a-z0-9]{1,100}", lsat in any::<bool>()) {
            let scheme = if lsat { Scheme::Lsat } else { Scheme::L402 };
            let header = format(scheme, &mac, &inv);
            let parsed = parse_headers([header.as_str()]).unwrap();
            prop_assert_eq!(parsed, vec![Challenge { scheme, macaroon: mac, invoice: inv, version: None }]);
        }

        #[test]
        fn never_panics(s in ".{0,200}") {
            let _ = parse_headers([s.as_str()]);
            let _ = parse_json_body(s.as_bytes());
        }

        #[test]
        fn never_panics_near_valid(s in "(L402|LSAT|[a-z]+)?[ ,=\"\\\\a-zA-Z0-9+/_-]{0,80}") {
            let _ = parse_headers([s.as_str()]);
        }
    }
}
