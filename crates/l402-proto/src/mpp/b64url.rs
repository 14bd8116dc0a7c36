//! Base64url (RFC 4648 section 5) as the `Payment` scheme uses it: sent without padding; read
//! strictly, as Aperture reads it (padding allowed, nothing else): the encoded forms are hashed
//! and compared as strings, so no two strings may stand for one payload.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Unpadded base64url.
pub fn encode(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Strict base64url: the URL-safe alphabet only (no `+`, `/`, whitespace or line breaks),
/// optional padding that makes the length a multiple of four, and zero trailing bits.
pub fn decode(s: &str) -> Option<Vec<u8>> {
    let unpadded = s.trim_end_matches('=');
    let padding = s.len() - unpadded.len();
    if padding > 2 || (padding > 0 && !s.len().is_multiple_of(4)) {
        return None;
    }
    if !unpadded
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return None;
    }
    // The no-pad engine refuses non-zero trailing bits and impossible lengths.
    URL_SAFE_NO_PAD.decode(unpadded).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn strict_like_aperture() {
        assert_eq!(decode("eyJhIjoxfQ").as_deref(), Some(&b"{\"a\":1}"[..]));
        assert_eq!(decode("eyJhIjoxfQ==").as_deref(), Some(&b"{\"a\":1}"[..]));
        assert_eq!(decode("-_8"), Some(vec![0xfb, 0xff]));
        for bad in [
            "+/8",           // standard alphabet
            "eyJhIjoxfQ=",   // padding that does not complete a quantum
            "eyJhIjoxfQ===", // three pad characters
            "eyJh\nIjoxfQ",  // a line break
            "eyJhIjoxfR",    // non-zero trailing bits
            "A",             // an impossible length
            "eyJh IjoxfQ",
        ] {
            assert_eq!(decode(bad), None, "{bad:?}");
        }
        assert_eq!(decode(""), Some(Vec::new()));
    }

    proptest! {
        #[test]
        fn round_trip(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            prop_assert_eq!(decode(&encode(&bytes)), Some(bytes));
        }

        #[test]
        fn never_panics(s in ".{0,80}") {
            let _ = decode(&s);
        }
    }
}
