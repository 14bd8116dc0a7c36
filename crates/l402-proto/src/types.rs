//! Domain types where bare integers and byte arrays could be swapped: an amount, a payment hash,
//! a preimage, a root key, a token id.
//!
//! Secrets ([`Preimage`], [`RootKey`]) show no bytes in `Debug` and have no `Serialize`: writing
//! one out takes an explicit call ([`Preimage::to_hex`], [`RootKey::expose`]).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Millisatoshis in a satoshi.
pub const MSAT_PER_SAT: u64 = 1000;

/// An amount of bitcoin in millisatoshis: the unit of every amount inside; people see sats
/// (`Display`: `21 sats`, `21.500 sats`). Arithmetic is checked or saturating, never wrapping.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Msat(u64);

impl Msat {
    pub const ZERO: Msat = Msat(0);
    /// 21 million bitcoin: no real amount is larger.
    pub const MAX_SUPPLY: Msat = Msat(21_000_000 * 100_000_000 * MSAT_PER_SAT);

    pub const fn from_msat(msat: u64) -> Msat {
        Msat(msat)
    }

    /// `sats` whole satoshis, or `None` when that does not fit.
    pub const fn from_sats(sats: u64) -> Option<Msat> {
        match sats.checked_mul(MSAT_PER_SAT) {
            Some(m) => Some(Msat(m)),
            None => None,
        }
    }

    pub const fn msat(self) -> u64 {
        self.0
    }

    /// Whole satoshis, rounded down.
    pub const fn sats_floor(self) -> u64 {
        self.0 / MSAT_PER_SAT
    }

    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }

    pub fn checked_add(self, other: Msat) -> Option<Msat> {
        self.0.checked_add(other.0).map(Msat)
    }

    pub fn checked_sub(self, other: Msat) -> Option<Msat> {
        self.0.checked_sub(other.0).map(Msat)
    }

    pub fn saturating_add(self, other: Msat) -> Msat {
        Msat(self.0.saturating_add(other.0))
    }

    pub fn saturating_sub(self, other: Msat) -> Msat {
        Msat(self.0.saturating_sub(other.0))
    }
}

impl fmt::Display for Msat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (sats, rest) = (self.0 / MSAT_PER_SAT, self.0 % MSAT_PER_SAT);
        if rest == 0 {
            write!(f, "{sats} sats")
        } else {
            write!(f, "{sats}.{rest:03} sats")
        }
    }
}

impl std::iter::Sum for Msat {
    fn sum<I: Iterator<Item = Msat>>(iter: I) -> Msat {
        iter.fold(Msat::ZERO, Msat::saturating_add)
    }
}

/// Writes 32 bytes as lower-case hex, in one write (a formatted write per byte cost about a
/// microsecond per value on the gateway's path).
fn hex32(bytes: &[u8; 32], f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let mut buf = [0u8; 64];
    hex::encode_to_slice(bytes, &mut buf).map_err(|_| fmt::Error)?;
    f.write_str(std::str::from_utf8(&buf).map_err(|_| fmt::Error)?)
}

/// A 32-byte value that is public, written as hex (`Display`, `Debug`, serde).
macro_rules! public_bytes32 {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub [u8; 32]);

        impl $name {
            pub const fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }
            /// Lower-case hex.
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                hex32(&self.0, f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}(", stringify!($name))?;
                hex32(&self.0, f)?;
                f.write_str(")")
            }
        }

        impl FromStr for $name {
            type Err = HexError;
            fn from_str(s: &str) -> Result<Self, HexError> {
                crate::parse_hex32(s).map($name).ok_or(HexError)
            }
        }

        impl AsRef<[u8]> for $name {
            fn as_ref(&self) -> &[u8] {
                &self.0
            }
        }

        impl From<[u8; 32]> for $name {
            fn from(b: [u8; 32]) -> Self {
                $name(b)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

/// Not 64 hex characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("expected 64 hex characters")]
pub struct HexError;

public_bytes32!(
    /// SHA-256 of a preimage; names an invoice and the payment that settles it.
    PaymentHash
);

public_bytes32!(
    /// The random half of an L402 identifier: names one minted token.
    TokenId
);

/// The 32-byte secret whose SHA-256 is an invoice's payment hash. Before the invoice is paid it
/// is the seller's secret; after, it is the buyer's proof of payment and, with its macaroon, a
/// bearer credential. Never in `Debug`, never serialized without asking.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Preimage(pub [u8; 32]);

impl Preimage {
    /// Its payment hash.
    pub fn payment_hash(&self) -> PaymentHash {
        PaymentHash(crate::sha256(&self.0))
    }

    /// Does it hash to `hash`? Compared in constant time.
    pub fn matches(&self, hash: &PaymentHash) -> bool {
        crate::preimage_matches(self, hash)
    }

    pub const fn expose(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lower-case hex, for the places that must hand it over (a receipt to the payer).
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Debug for Preimage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Preimage(<redacted>)")
    }
}

impl FromStr for Preimage {
    type Err = HexError;
    fn from_str(s: &str) -> Result<Self, HexError> {
        crate::parse_hex32(s).map(Preimage).ok_or(HexError)
    }
}

/// A macaroon's root key: whoever holds it mints tokens. Never in `Debug`, never serialized.
#[derive(Clone, PartialEq, Eq)]
pub struct RootKey(pub [u8; 32]);

impl RootKey {
    pub const fn expose(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for RootKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RootKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_values_are_lower_case_hex() {
        let mut bytes = [0u8; 32];
        bytes[0] = 0xab;
        bytes[31] = 0x0f;
        let hex = format!("ab{}0f", "00".repeat(30));
        let h = PaymentHash(bytes);
        assert_eq!((h.to_string(), h.to_hex()), (hex.clone(), hex.clone()));
        assert_eq!(format!("{h:?}"), format!("PaymentHash({hex})"));
        assert_eq!(hex.parse::<PaymentHash>().ok(), Some(h));
    }

    #[test]
    fn amounts() {
        assert_eq!(Msat::from_msat(21_000).to_string(), "21 sats");
        assert_eq!(Msat::from_msat(21_500).to_string(), "21.500 sats");
        assert_eq!(Msat::from_msat(5).to_string(), "0.005 sats");
        assert_eq!(Msat::from_sats(u64::MAX), None);
        assert_eq!(Msat::from_sats(2).map(Msat::msat), Some(2000));
        assert_eq!(Msat::from_msat(1).checked_sub(Msat::from_msat(2)), None);
        assert_eq!(
            Msat::from_msat(u64::MAX).saturating_add(Msat::from_msat(1)),
            Msat::from_msat(u64::MAX)
        );
        assert_eq!(Msat::from_msat(1999).sats_floor(), 1);
        assert_eq!(
            serde_json::to_string(&Msat::from_msat(7)).ok().as_deref(),
            Some("7")
        );
    }

    #[test]
    fn hashes_and_secrets() {
        let pre: Preimage = "2ca931a1c36b48f54948b898a271a53ed91ff7d0081939a5fa511249e81cba5c"
            .parse()
            .unwrap();
        let hash: PaymentHash = "7cef93f2c51aa65208bec1447fc38fc58d9bce1375a532edb0dcd290a2c330ae"
            .parse()
            .unwrap();
        assert!(pre.matches(&hash));
        assert_eq!(pre.payment_hash(), hash);
        assert_eq!(format!("{pre:?}"), "Preimage(<redacted>)");
        assert_eq!(format!("{:?}", RootKey([7; 32])), "RootKey(<redacted>)");
        assert_eq!(
            serde_json::to_string(&hash).unwrap(),
            "\"7cef93f2c51aa65208bec1447fc38fc58d9bce1375a532edb0dcd290a2c330ae\""
        );
        assert_eq!(
            serde_json::from_str::<PaymentHash>(&serde_json::to_string(&hash).unwrap()).unwrap(),
            hash
        );
        assert!("xyz".parse::<TokenId>().is_err());
    }
}
