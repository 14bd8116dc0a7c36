//! Base64 as L402 peers really send it: standard or URL-safe alphabet, padded or not.
//! We always *send* standard padded base64 (what Aperture's Go parser requires).

use base64::Engine;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// Standard alphabet, padded: the form Aperture sends and parses.
pub fn encode(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Decode standard or URL-safe base64, with or without padding. `None` when it is not base64.
pub fn decode(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if s.contains(['-', '_']) {
        if s.contains(['+', '/']) {
            return None; // a mix of both alphabets is no base64 anyone sends
        }
        let mapped: String = s
            .chars()
            .map(|c| match c {
                '-' => '+',
                '_' => '/',
                c => c,
            })
            .collect();
        LENIENT.decode(mapped).ok()
    } else {
        LENIENT.decode(s).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn all_four_forms() {
        let bytes = [0xfbu8, 0xff, 0x3e, 0x01];
        for s in ["+/8+AQ==", "+/8+AQ", "-_8-AQ==", "-_8-AQ"] {
            assert_eq!(decode(s).as_deref(), Some(&bytes[..]), "{s}");
        }
        assert_eq!(decode("+_8-AQ"), None);
        assert_eq!(decode(""), None);
        assert_eq!(decode("!!"), None);
    }

    proptest! {
        #[test]
        fn round_trip(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let s = encode(&bytes);
            if !bytes.is_empty() {
                prop_assert_eq!(decode(&s), Some(bytes.clone()));
                let url = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&bytes);
                prop_assert_eq!(decode(&url), Some(bytes));
            }
        }

        #[test]
        fn never_panics(s in ".{0,100}") {
            let _ = decode(&s);
        }
    }
}
