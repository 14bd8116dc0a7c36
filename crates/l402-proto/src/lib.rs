//! The L402 protocol, as deployed: challenges, credentials, identifiers, macaroons, caveats and
//! their verification, and BOLT11 invoices.
//!
//! Everything here is pure: bytes and strings in, values out. No I/O and no clock; where time
//! matters (caveat expiry), `now` is passed in. The `l402-mcp` crate's seller service (`mint`)
//! and buyer's pay path (`pay`) put these pieces together with a wallet and the ledger; the fuzz
//! targets, the interop oracle and the verify benchmark use this crate alone.

pub mod b64;
pub mod bolt11;
pub mod caveat;
pub mod challenge;
pub mod credential;
pub mod identifier;
pub mod macaroon;
pub mod mpp;
pub mod types;
pub mod verify;

pub use caveat::{Caveat, CaveatError, Service};
pub use challenge::{Challenge, ChallengeError, JsonChallenge};
pub use credential::{Credential, CredentialError};
pub use identifier::{Identifier, IdentifierError};
pub use macaroon::{Macaroon, MacaroonError};
pub use types::{HexError, MSAT_PER_SAT, Msat, PaymentHash, Preimage, RootKey, TokenId};
pub use verify::{Rejection, VerifiedToken, VerifyParams};

use std::fmt;
use std::str::FromStr;

/// The authentication scheme name a server used. Answer with the one the server used: boltwall
/// accepts only `LSAT`, newer servers only `L402`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Scheme {
    #[serde(rename = "L402")]
    L402,
    #[serde(rename = "LSAT")]
    Lsat,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::L402 => "L402",
            Scheme::Lsat => "LSAT",
        }
    }

    /// Case-insensitive match of an auth-scheme token.
    pub fn from_token(token: &str) -> Option<Scheme> {
        if token.eq_ignore_ascii_case("L402") {
            Some(Scheme::L402)
        } else if token.eq_ignore_ascii_case("LSAT") {
            Some(Scheme::Lsat)
        } else {
            None
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scheme {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scheme::from_token(s).ok_or_else(|| format!("unknown scheme {s:?} (expected L402 or LSAT)"))
    }
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    macaroon::sha256(data)
}

/// Does `preimage` hash to `payment_hash`? Compared in constant time.
pub fn preimage_matches(preimage: &Preimage, payment_hash: &PaymentHash) -> bool {
    macaroon::ct_eq32(&sha256(preimage.expose()), payment_hash.as_bytes())
}

/// Parse 64 hex characters (either case) into 32 bytes.
pub fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    let s = s.trim().as_bytes();
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    let mut bad = 0u8;
    for (byte, pair) in out.iter_mut().zip(s.chunks_exact(2)) {
        let (hi, lo) = (
            HEX_VALUES[usize::from(pair[0])],
            HEX_VALUES[usize::from(pair[1])],
        );
        bad |= hi | lo;
        *byte = hi << 4 | lo;
    }
    // Every hex digit is below 16; a non-digit sets the high bit.
    (bad < 16).then_some(out)
}

/// Hex digit values (either case), 0xff for anything else.
static HEX_VALUES: [u8; 256] = {
    let mut table = [0xff; 256];
    let mut i = 0;
    while i < 10 {
        table[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        table[b'a' as usize + i] = 10 + i as u8;
        table[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    table
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_preimage_hash_pair() {
        let pre = parse_hex32("2ca931a1c36b48f54948b898a271a53ed91ff7d0081939a5fa511249e81cba5c")
            .unwrap();
        let hash = parse_hex32("7cef93f2c51aa65208bec1447fc38fc58d9bce1375a532edb0dcd290a2c330ae")
            .unwrap();
        assert!(preimage_matches(&Preimage(pre), &PaymentHash(hash)));
        let mut other = pre;
        other[0] ^= 1;
        assert!(!preimage_matches(&Preimage(other), &PaymentHash(hash)));
    }

    #[test]
    fn scheme_tokens() {
        assert_eq!(Scheme::from_token("l402"), Some(Scheme::L402));
        assert_eq!(Scheme::from_token("Lsat"), Some(Scheme::Lsat));
        assert_eq!(Scheme::from_token("Bearer"), None);
    }
}
