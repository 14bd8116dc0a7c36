//! One wrapper for every configured secret: wallet keys and macaroons, runes, passwords, NWC
//! URIs, bearer tokens, database URLs with their password, proxy URLs with theirs.
//!
//! A [`SecretString`] shows only that it is set (`Debug` prints `<secret>`), has no `Display`
//! and no `Serialize`, so it cannot reach a log, an error or a tool result by accident: reading
//! it takes a call to [`SecretString::expose`], at the one place that sends it. Its memory is
//! wiped when it is dropped.

use serde::de::{self, Deserialize, Deserializer, Visitor};
use zeroize::Zeroize;

/// A configured secret; see the module docs.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretString(String);

impl<'de> Deserialize<'de> for SecretString {
    /// A string. Anything else is refused without quoting it: a secret written as a number is
    /// still a secret.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<SecretString, D::Error> {
        d.deserialize_any(SecretVisitor)
    }
}

struct SecretVisitor;

impl SecretVisitor {
    fn refuse<E: de::Error>() -> E {
        E::custom("a secret must be a string in quotes (its value is not shown)")
    }
}

impl Visitor<'_> for SecretVisitor {
    type Value = SecretString;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a string")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<SecretString, E> {
        Ok(SecretString::new(v))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<SecretString, E> {
        Ok(SecretString(v))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<SecretString, E> {
        Err(Self::refuse())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<SecretString, E> {
        Err(Self::refuse())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<SecretString, E> {
        Err(Self::refuse())
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<SecretString, E> {
        Err(Self::refuse())
    }
    fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<SecretString, E> {
        Err(Self::refuse())
    }
}

impl SecretString {
    pub fn new(value: impl Into<String>) -> SecretString {
        SecretString(value.into())
    }

    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for SecretString {
    fn from(value: String) -> SecretString {
        SecretString(value)
    }
}

impl From<&str> for SecretString {
    fn from(value: &str) -> SecretString {
        SecretString(value.to_owned())
    }
}

impl std::str::FromStr for SecretString {
    type Err = std::convert::Infallible;
    /// For command-line flags (`--http-token`).
    fn from_str(s: &str) -> Result<SecretString, Self::Err> {
        Ok(SecretString::new(s))
    }
}

impl std::fmt::Debug for SecretString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<secret>")
    }
}

impl Drop for SecretString {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_secret() {
        let s = SecretString::new("hunter2");
        assert_eq!(format!("{s:?}"), "<secret>");
        assert_eq!(format!("{:?}", Some(&s)), "Some(<secret>)");
        assert_eq!(s.expose(), "hunter2");
        let parsed: SecretString =
            serde_json::from_str("\"k\"").unwrap_or_else(|_| SecretString::new(""));
        assert_eq!(parsed.expose(), "k");
    }
}
