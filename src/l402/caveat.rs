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
    if name.is_empty() || name.contains([',', ':', '=']) || name.contains(char::is_whitespace) {
        return Err(CaveatError::BadServiceName(name.to_owned()));
    }
    Ok(())
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

/// Parse a services caveat value, `name:tier[,name:tier]`. An empty list is an error, as in Aperture.
pub fn parse_services(value: &str) -> Result<Vec<Service>, CaveatError> {
    let bad = || CaveatError::BadServices(value.to_owned());
    if value.trim().is_empty() {
        return Err(bad());
    }
    value
        .split(',')
        .map(|entry| {
            let (name, tier) = entry.trim().split_once(':').ok_or_else(bad)?;
            let tier: u8 = tier.trim().parse().map_err(|_| bad())?;
            Service::new(name.trim(), tier).map_err(|_| bad())
        })
        .collect()
}

/// Capabilities as Aperture reads them: a comma-separated list (an empty value grants none).
pub fn parse_capabilities(value: &str) -> Vec<&str> {
    value
        .split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect()
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
