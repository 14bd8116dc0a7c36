//! Caveats with Aperture's semantics.
//!
//! Minted in this order: `services=<name>:<tier>[,...]`, `<name>_capabilities=<a,b>`,
//! `<name>_valid_until=<unix seconds>`. Caveats with the same condition form a chain in which each
//! later one may only narrow the earlier, and the last one decides. A macaroon without a caveat for
//! a condition is not restricted by it (macaroon semantics, as in Aperture).
//!
//! Unlike Aperture, which skips caveats it does not know, we are fail-closed: a caveat we do not
//! understand is refused (see [`super::verify`]).

use std::fmt;

/// The condition of the services caveat.
pub const SERVICES: &str = "services";
/// Suffix of a service's capabilities condition (`<service>_capabilities`).
pub const CAPABILITIES_SUFFIX: &str = "_capabilities";
/// Suffix of a service's expiry condition (`<service>_valid_until`).
pub const VALID_UNTIL_SUFFIX: &str = "_valid_until";
/// lsat-js's expiry caveat, in unix **milliseconds**.
pub const EXPIRATION: &str = "expiration";
/// Suffix of a service's method binding (`<service>_methods=GET,HEAD`). Our extension, as is
/// [`PATH_PREFIX_SUFFIX`]: Aperture skips conditions it does not know, so it would accept such a
/// token without the binding; our verifier enforces it.
pub const METHODS_SUFFIX: &str = "_methods";
/// Suffix of a service's path binding (`<service>_path_prefix=/v1/data`): the request path must
/// be the prefix or lie under it, on a segment boundary.
pub const PATH_PREFIX_SUFFIX: &str = "_path_prefix";

/// A first-party caveat, `condition=value`, split at the first `=` and trimmed as Aperture does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caveat {
    pub condition: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaveatError {
    #[error("caveat is not UTF-8 text")]
    NotUtf8,
    #[error("caveat {0:?} has no '='")]
    NoEquals(String),
    #[error("caveat {0:?} has an empty condition")]
    EmptyCondition(String),
    #[error("services caveat value {0:?} is not a list of name:tier")]
    BadServices(String),
    #[error("caveat value {0:?} is not a unix timestamp")]
    BadTimestamp(String),
    #[error("service name {0:?} must be non-empty and hold no ',', ':', '=' or spaces")]
    BadServiceName(String),
    #[error("capability {0:?} must be non-empty and hold no ',', '=' or spaces")]
    BadCapability(String),
    #[error("HTTP method {0:?} must be a non-empty token of letters, digits, '-' or '_'")]
    BadMethod(String),
    #[error(
        "path prefix {0:?} must start with '/' and hold no spaces, '?', '#', ';', '\\', '//', escapes of letters, digits or '-._~/\\;%', or '.'/'..' segments"
    )]
    BadPathPrefix(String),
}

impl Caveat {
    pub fn new(condition: impl Into<String>, value: impl Into<String>) -> Caveat {
        Caveat {
            condition: condition.into(),
            value: value.into(),
        }
    }

    /// Parse the raw bytes of a first-party caveat.
    pub fn parse(raw: &[u8]) -> Result<Caveat, CaveatError> {
        let text = std::str::from_utf8(raw).map_err(|_| CaveatError::NotUtf8)?;
        let (condition, value) = text
            .split_once('=')
            .ok_or_else(|| CaveatError::NoEquals(text.to_owned()))?;
        let condition = condition.trim();
        if condition.is_empty() {
            return Err(CaveatError::EmptyCondition(text.to_owned()));
        }
        Ok(Caveat::new(condition, value.trim()))
    }

    /// The bytes that go into the macaroon.
    pub fn encode(&self) -> Vec<u8> {
        format!("{}={}", self.condition, self.value).into_bytes()
    }

    /// `services=<name>:<tier>,...`
    pub fn services(services: &[Service]) -> Caveat {
        let value = services
            .iter()
            .map(|s| format!("{}:{}", s.name, s.tier))
            .collect::<Vec<_>>()
            .join(",");
        Caveat::new(SERVICES, value)
    }

    /// `<service>_capabilities=<a,b>`; an empty list is written as Aperture does (`x_capabilities=`).
    pub fn capabilities(service: &str, capabilities: &[String]) -> Caveat {
        Caveat::new(
            format!("{service}{CAPABILITIES_SUFFIX}"),
            capabilities.join(","),
        )
    }

    /// `<service>_methods=<GET,HEAD>`, upper-cased.
    pub fn methods(service: &str, methods: &[String]) -> Caveat {
        let value = methods
            .iter()
            .map(|m| m.to_ascii_uppercase())
            .collect::<Vec<_>>()
            .join(",");
        Caveat::new(format!("{service}{METHODS_SUFFIX}"), value)
    }

    /// `<service>_path_prefix=</a/b>`
    pub fn path_prefix(service: &str, prefix: &str) -> Caveat {
        Caveat::new(format!("{service}{PATH_PREFIX_SUFFIX}"), prefix)
    }

    /// `<service>_valid_until=<unix seconds>`
    pub fn valid_until(service: &str, unix_secs: u64) -> Caveat {
        Caveat::new(
            format!("{service}{VALID_UNTIL_SUFFIX}"),
            unix_secs.to_string(),
        )
    }
}

impl fmt::Display for Caveat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.condition, self.value)
    }
}

/// One entry of a services caveat.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Service {
    pub name: String,
    /// Pricing tier; Aperture's base tier is 0.
    pub tier: u8,
}

impl Service {
    pub fn new(name: &str, tier: u8) -> Result<Service, CaveatError> {
        validate_service_name(name)?;
        Ok(Service {
            name: name.to_owned(),
            tier,
        })
    }
}

/// Names end up inside `services=a:0,b:1` and `<name>_capabilities`: keep them unambiguous.
pub fn validate_service_name(name: &str) -> Result<(), CaveatError> {
    if !service_name_ok(name) {
        return Err(CaveatError::BadServiceName(name.to_owned()));
    }
    Ok(())
}

fn service_name_ok(name: &str) -> bool {
    !name.is_empty() && !name.contains([',', ':', '=']) && !name.contains(char::is_whitespace)
}

pub fn validate_capability(capability: &str) -> Result<(), CaveatError> {
    if capability.is_empty()
        || capability.contains([',', '='])
        || capability.contains(char::is_whitespace)
    {
        return Err(CaveatError::BadCapability(capability.to_owned()));
    }
    Ok(())
}

/// An HTTP method for a methods caveat: an RFC 9110 token, restricted to what methods look like.
pub fn validate_method(method: &str) -> Result<(), CaveatError> {
    if method.is_empty()
        || !method
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(CaveatError::BadMethod(method.to_owned()));
    }
    Ok(())
}

/// A path prefix for a path caveat: absolute, and plain enough that a prefix match on the raw
/// request path means what it says.
pub fn validate_path_prefix(prefix: &str) -> Result<(), CaveatError> {
    if !is_plain_path(prefix) {
        return Err(CaveatError::BadPathPrefix(prefix.to_owned()));
    }
    Ok(())
}

/// Is this an absolute path that means the same to every reader? No whitespace or control
/// characters, no query or fragment, no backslash, no `;` (path parameters, which some routers
/// strip), no empty segment (`//`, which some routers merge), no `.` or `..` segment, and no
/// escape an upstream may decode into something a prefix match would read differently: escapes
/// of unreserved characters (`%61` is `a`: RFC 3986 says they mean the same as the character),
/// of `.`, `/`, `\` and `;`, and `%25`, which a second decoding turns into any of them. A router
/// may resolve `/free/../paid` to `/paid`, `//paid` or `/%70aid` to `/paid`: paths like those are
/// refused rather than matched as written.
pub fn is_plain_path(path: &str) -> bool {
    let risky_escape = |w: &[u8]| {
        w[0] == b'%'
            && match (hex_digit(w[1]), hex_digit(w[2])) {
                (Some(hi), Some(lo)) => {
                    let c = hi << 4 | lo;
                    c.is_ascii_alphanumeric()
                        || matches!(c, b'-' | b'.' | b'_' | b'~' | b'/' | b'\\' | b';' | b'%')
                }
                // Not an escape at all: a reader may take it literally or refuse it.
                _ => true,
            }
    };
    path.starts_with('/')
        && !path
            .bytes()
            .any(|b| b <= b' ' || b == 0x7f || matches!(b, b'?' | b'#' | b'\\' | b';'))
        && !path.as_bytes().windows(3).any(risky_escape)
        // A '%' too close to the end for two hex digits.
        && !path.bytes().rev().take(2).any(|b| b == b'%')
        && !path.contains("//")
        && !path.split('/').any(|seg| seg == "." || seg == "..")
}

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The methods of a methods caveat value (an empty value allows none).
pub(crate) fn methods(value: &str) -> impl Iterator<Item = &str> {
    capabilities(value)
}

/// Is `path` the path `prefix` names, or under it? Segment-wise: `/api` covers `/api`, `/api/`
/// and `/api/x`, not `/apix`. A path that is not plain (see [`is_plain_path`]) is under no
/// prefix, so a path-bound token never passes on a path an upstream could read differently.
pub fn path_within(path: &str, prefix: &str) -> bool {
    if !is_plain_path(path) || !is_plain_path(prefix) {
        return false;
    }
    let prefix = prefix.trim_end_matches('/');
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// Parse a services caveat value, `name:tier[,name:tier]`. An empty list is an error, as in Aperture.
pub fn parse_services(value: &str) -> Result<Vec<Service>, CaveatError> {
    let bad = || CaveatError::BadServices(value.to_owned());
    if value.trim().is_empty() {
        return Err(bad());
    }
    value
        .split(',')
        .map(|entry| {
            let (name, tier) = service_entry(entry).ok_or_else(bad)?;
            Ok(Service {
                name: name.to_owned(),
                tier,
            })
        })
        .collect()
}

/// Is this a valid services value? The same rules as [`parse_services`], without allocating.
pub(crate) fn services_valid(value: &str) -> bool {
    !value.trim().is_empty() && value.split(',').all(|e| service_entry(e).is_some())
}

/// The `(name, tier)` entries of a value that [`services_valid`] accepted, names borrowed.
pub(crate) fn service_entries(value: &str) -> impl Iterator<Item = (&str, u8)> {
    value.split(',').filter_map(service_entry)
}

/// One `name:tier` entry of a services value.
fn service_entry(entry: &str) -> Option<(&str, u8)> {
    let (name, tier) = entry.trim().split_once(':')?;
    let tier: u8 = tier.trim().parse().ok()?;
    let name = name.trim();
    service_name_ok(name).then_some((name, tier))
}

/// Capabilities as Aperture reads them: a comma-separated list (an empty value grants none).
pub fn parse_capabilities(value: &str) -> Vec<&str> {
    capabilities(value).collect()
}

/// [`parse_capabilities`] without collecting.
pub fn capabilities(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|c| !c.is_empty())
}

/// A unix timestamp value (seconds for `_valid_until`, milliseconds for `expiration`).
pub fn parse_timestamp(value: &str) -> Result<u64, CaveatError> {
    value
        .trim()
        .parse()
        .map_err(|_| CaveatError::BadTimestamp(value.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parse_split_at_first_equals() {
        assert_eq!(Caveat::parse(b"a=b=c"), Ok(Caveat::new("a", "b=c")));
        assert_eq!(
            Caveat::parse(b"account = 3735928559"),
            Ok(Caveat::new("account", "3735928559"))
        );
        assert_eq!(
            Caveat::parse(b"x_capabilities="),
            Ok(Caveat::new("x_capabilities", ""))
        );
        assert!(matches!(
            Caveat::parse(b"novalue"),
            Err(CaveatError::NoEquals(_))
        ));
        assert!(matches!(
            Caveat::parse(b"=v"),
            Err(CaveatError::EmptyCondition(_))
        ));
        assert_eq!(Caveat::parse(&[0xff, b'=']), Err(CaveatError::NotUtf8));
    }

    #[test]
    fn services_values() {
        let s = parse_services("meme:0,news:2").unwrap();
        assert_eq!(
            s,
            vec![
                Service::new("meme", 0).unwrap(),
                Service::new("news", 2).unwrap()
            ]
        );
        assert_eq!(Caveat::services(&s).to_string(), "services=meme:0,news:2");
        for bad in ["", "meme", "meme:x", ":0", "meme:0,", "meme:256"] {
            assert!(parse_services(bad).is_err(), "{bad}");
        }
        assert!(Service::new("a b", 0).is_err());
        assert!(Service::new("a:b", 0).is_err());
    }

    #[test]
    fn capability_lists() {
        assert_eq!(parse_capabilities(""), Vec::<&str>::new());
        assert_eq!(parse_capabilities("read,write"), vec!["read", "write"]);
        assert_eq!(
            Caveat::capabilities("svc", &[]).to_string(),
            "svc_capabilities="
        );
    }

    #[test]
    fn path_prefixes_match_on_segments() {
        for (path, prefix, within) in [
            ("/api", "/api", true),
            ("/api/", "/api", true),
            ("/api/x/y", "/api", true),
            ("/api/x", "/api/", true),
            ("/apix", "/api", false),
            ("/ap", "/api", false),
            ("/anything", "/", true),
            ("/", "/", true),
            ("/api/../admin", "/api", false),
            ("/api/./x", "/api", false),
            ("/api/%2e%2e/admin", "/api", false),
            ("/api/..%2fadmin", "/api", false),
            ("/api\\..\\admin", "/api", false),
            ("api/x", "api", false),
            ("", "/", false),
            // Spellings a router may read as /api/x: never under /api, nor under / either.
            ("//api/x", "/", false),
            ("/api//x", "/api", false),
            ("/%61pi/x", "/", false),
            ("/api/%78", "/api", false),
            ("/api;v=1/x", "/api", false),
            ("/api%3bx", "/api", false),
            ("/api/%7e", "/api", false),
            ("/api/%zz", "/api", false),
            ("/api/x%", "/api", false),
            ("/api/x%4", "/api", false),
        ] {
            assert_eq!(path_within(path, prefix), within, "{path} under {prefix}");
        }
        validate_path_prefix("/v1/data").unwrap();
        validate_path_prefix("/").unwrap();
        assert!(path_within("/v1/hello%20world", "/v1"));
        for bad in [
            "", "v1", "/v1/../x", "/v1?x", "/a b", "/a%2f", "/a%2E", "/a%252e", "/a/.", "//v1",
            "/%76%31", "/v1;x",
        ] {
            assert!(validate_path_prefix(bad).is_err(), "{bad}");
        }
        validate_method("GET").unwrap();
        validate_method("M-SEARCH").unwrap();
        for bad in ["", "GET,POST", "G T", "GET=", "GÉT"] {
            assert!(validate_method(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Caveat::methods("svc", &["get".into(), "HEAD".into()]).to_string(),
            "svc_methods=GET,HEAD"
        );
    }

    proptest! {
        #[test]
        fn round_trip(cond in "[a-z_]{1,20}", value in "[a-z0-9:,_]{0,40}") {
            let c = Caveat::new(cond, value);
            prop_assert_eq!(Caveat::parse(&c.encode()), Ok(c));
        }

        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
            if let Ok(c) = Caveat::parse(&bytes) {
                let _ = parse_services(&c.value);
                let _ = parse_timestamp(&c.value);
            }
        }
    }
}
