//! Content negotiation of the scheme: the `Accept-Payment` request header
//! (`lightning/charge, lightning/session;q=0.5`), which ranks the offers a 402 makes, and the
//! RFC 9530 `digest` a challenge binds the request body with.
//!
//! Ranking follows mppx's server: each offer takes its most specific matching entry
//! (`method/intent` before `method/*` before `*/*`, then the higher q, then the earlier entry);
//! offers without a match, or matched at `q=0`, are left out; the rest go by q, then by the
//! order they were made in. A header that does not parse ranks nothing (every offer is made,
//! as if it were absent).

use base64::Engine as _;
use sha2::Digest as _;

/// The request header.
pub const HEADER: &str = "accept-payment";

/// One entry of an `Accept-Payment` header. `q` is in thousandths (0..=1000).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preference {
    /// A method name, or `*`.
    pub method: String,
    /// An intent, or `*`.
    pub intent: String,
    pub q: u16,
}

/// Why an `Accept-Payment` header does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Accept-Payment: {0}")]
pub struct AcceptError(String);

/// Parse an `Accept-Payment` value: comma-separated `method/intent[;q=v]`, unknown parameters
/// ignored, q an HTTP qvalue (at most three decimals).
pub fn parse(header: &str) -> Result<Vec<Preference>, AcceptError> {
    let mut out = Vec::new();
    for part in header.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let mut params = part.split(';').map(str::trim);
        let key = params.next().unwrap_or_default();
        let (method, intent) = key
            .split_once('/')
            .map(|(m, i)| (m.trim(), i.trim()))
            .filter(|(m, i)| token(m) && token(i))
            .ok_or_else(|| AcceptError(format!("{part:?} is not method/intent")))?;
        let mut q = 1000;
        for p in params.filter(|p| !p.is_empty()) {
            let (name, value) = p
                .split_once('=')
                .ok_or_else(|| AcceptError(format!("parameter {p:?} has no value")))?;
            if name.trim() == "q" {
                q = qvalue(value.trim())
                    .ok_or_else(|| AcceptError(format!("q={value:?} is not a qvalue")))?;
            }
        }
        out.push(Preference {
            method: method.to_owned(),
            intent: intent.to_owned(),
            q,
        });
    }
    if out.is_empty() {
        return Err(AcceptError("empty".into()));
    }
    Ok(out)
}

fn token(s: &str) -> bool {
    s == "*"
        || (!s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'))
}

/// `0`, `0.5`, `1.000`... in thousandths.
fn qvalue(v: &str) -> Option<u16> {
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths = format!("{frac:0<3}").parse::<u16>().ok()?;
    match int {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// The order to make `offers` (`(method, intent)` pairs) in for `prefs`: indices into
/// `offers`, best first, without those refused (`q=0`) or not asked for. Empty when none is
/// wanted: the caller then makes them all, rather than none.
pub fn rank(offers: &[(&str, &str)], prefs: &[Preference]) -> Vec<usize> {
    let mut ranked: Vec<(usize, u16)> = offers
        .iter()
        .enumerate()
        .filter_map(|(i, (method, intent))| {
            prefs
                .iter()
                .enumerate()
                .filter(|(_, p)| {
                    (p.method == "*" || p.method == *method)
                        && (p.intent == "*" || p.intent == *intent)
                })
                .max_by_key(|(at, p)| {
                    let specific = u8::from(p.method != "*") + u8::from(p.intent != "*");
                    (specific, p.q, std::cmp::Reverse(*at))
                })
                .map(|(_, p)| (i, p.q))
                .filter(|(_, q)| *q > 0)
        })
        .collect();
    ranked.sort_by_key(|(i, q)| (std::cmp::Reverse(*q), *i));
    ranked.into_iter().map(|(i, _)| i).collect()
}

/// Write preferences as a header value (`q` omitted when 1).
pub fn serialize(prefs: &[Preference]) -> String {
    prefs
        .iter()
        .map(|p| match p.q {
            1000 => format!("{}/{}", p.method, p.intent),
            q => {
                let frac = format!("{:03}", q % 1000);
                format!(
                    "{}/{};q={}.{}",
                    p.method,
                    p.intent,
                    q / 1000,
                    frac.trim_end_matches('0')
                )
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The RFC 9530 `sha-256` digest of a body, as a challenge's `digest` carries it.
pub fn body_digest(body: &[u8]) -> String {
    let sum = sha2::Sha256::digest(body);
    format!(
        "sha-256=:{}:",
        base64::engine::general_purpose::STANDARD.encode(sum)
    )
}

/// Whether a challenge's `digest` (a dictionary of algorithm = byte sequence) holds for
/// `body`: its `sha-256` member must equal the body's. `None`: it names no `sha-256` (the
/// only algorithm read), so it cannot be checked.
pub fn digest_matches(digest: &str, body: &[u8]) -> Option<bool> {
    let want = body_digest(body);
    let want = want.trim_start_matches("sha-256=");
    digest.split(',').find_map(|member| {
        let (alg, value) = member.split_once('=')?;
        alg.trim()
            .eq_ignore_ascii_case("sha-256")
            .then(|| value.trim() == want)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_mppx_headers() {
        let p = parse("lightning/charge, lightning/session;q=0.5").unwrap();
        assert_eq!(
            p,
            [
                Preference {
                    method: "lightning".into(),
                    intent: "charge".into(),
                    q: 1000
                },
                Preference {
                    method: "lightning".into(),
                    intent: "session".into(),
                    q: 500
                },
            ]
        );
        assert_eq!(serialize(&p), "lightning/charge, lightning/session;q=0.5");
        assert_eq!(parse("*/*;q=0.125;x=y").unwrap()[0].q, 125);
        for bad in [
            "",
            "lightning",
            "Lightning/charge",
            "a/b;q=2",
            "a/b;q=0.1234",
            "a/b;q",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ranks_like_mppx() {
        let offers = [
            ("lightning", "charge"),
            ("lightning", "session"),
            ("tempo", "charge"),
        ];
        let rank_of = |h: &str| rank(&offers, &parse(h).unwrap());
        assert_eq!(rank_of("lightning/session, lightning/charge;q=0.5"), [1, 0]);
        assert_eq!(rank_of("lightning/*"), [0, 1]);
        // The more specific entry wins, even with a lower q: an explicit opt-out holds.
        assert_eq!(rank_of("*/*, lightning/session;q=0"), [0, 2]);
        assert_eq!(rank_of("tempo/charge;q=0.9, */*;q=0.1"), [2, 0, 1]);
        assert!(rank_of("bitcoin/charge").is_empty());
    }

    #[test]
    fn digests_bind_the_body() {
        // RFC 9530's example: {"hello": "world"}
        let d = body_digest(b"{\"hello\": \"world\"}\n");
        assert_eq!(d, "sha-256=:RK/0qy18MlBSVnWgjwz6lZEWjP/lF5HF9bvEF8FabDg=:");
        assert_eq!(digest_matches(&d, b"{\"hello\": \"world\"}\n"), Some(true));
        assert_eq!(digest_matches(&d, b"{}"), Some(false));
        let both = format!("sha-512=:AAAA:, {d}");
        assert_eq!(
            digest_matches(&both, b"{\"hello\": \"world\"}\n"),
            Some(true)
        );
        assert_eq!(digest_matches("sha-512=:AAAA:", b""), None);
    }
}
