//! Base64 as L402 peers really send it: standard or URL-safe alphabet, padded or not.
//! We always *send* standard padded base64 (what Aperture's Go parser requires).

use base64::Engine;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

const LENIENT_CONFIG: GeneralPurposeConfig = GeneralPurposeConfig::new()
    .with_decode_padding_mode(DecodePaddingMode::Indifferent)
    .with_decode_allow_trailing_bits(true);
const LENIENT: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::STANDARD, LENIENT_CONFIG);
const LENIENT_URL_SAFE: GeneralPurpose =
    GeneralPurpose::new(&base64::alphabet::URL_SAFE, LENIENT_CONFIG);

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
    // Canonical standard base64 (what Aperture and we send) takes a table-driven path; anything
    // else goes to the lenient engines, which give the same bytes for canonical input.
    if let Some(bytes) = decode_canonical(s.as_bytes()) {
        return Some(bytes);
    }
    // The standard alphabet without canonical padding; a string with '-' or '_' fails there and
    // is read as URL-safe, unless it also holds '+' or '/'.
    if let Ok(bytes) = LENIENT.decode(s) {
        return Some(bytes);
    }
    let bytes = s.as_bytes();
    if !bytes.iter().any(|&b| b == b'-' || b == b'_')
        || bytes.iter().any(|&b| b == b'+' || b == b'/')
    {
        return None; // not base64, or a mix of both alphabets, which is no base64 anyone sends
    }
    LENIENT_URL_SAFE.decode(s).ok()
}

/// Standard alphabet values, `INVALID` elsewhere (`=` included).
const INVALID: u8 = 0xff;
static STANDARD_VALUES: [u8; 256] = {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut table = [INVALID; 256];
    let mut i = 0;
    while i < alphabet.len() {
        table[alphabet[i] as usize] = i as u8;
        i += 1;
    }
    table
};

/// Decode standard base64 with canonical padding (length a multiple of 4, at most two `=` at
/// the end); `None` for anything else, which the caller hands to the lenient engines. Trailing
/// bits are ignored, as the lenient engine does.
fn decode_canonical(s: &[u8]) -> Option<Vec<u8>> {
    if s.is_empty() || !s.len().is_multiple_of(4) {
        return None;
    }
    let pad = s.iter().rev().take(2).take_while(|&&b| b == b'=').count();
    let body = &s[..s.len() - pad];
    let full = body.len() / 4;
    // Not `vec![0; n]`: that is calloc, which glibc serves without its per-thread cache.
    let mut out = Vec::with_capacity(full * 3 + 2);
    out.resize(full * 3 + [0, 2, 1][pad], 0);
    let value = |c: u8| u32::from(STANDARD_VALUES[usize::from(c)]);
    let mut bad = 0u32;
    let (head, tail) = out.split_at_mut(full * 3);
    for (dst, src) in head.chunks_exact_mut(3).zip(body.chunks_exact(4)) {
        let (a, b, c, d) = (value(src[0]), value(src[1]), value(src[2]), value(src[3]));
        bad |= a | b | c | d;
        let n = a << 18 | b << 12 | c << 6 | d;
        dst[0] = (n >> 16) as u8;
        dst[1] = (n >> 8) as u8;
        dst[2] = n as u8;
    }
    let rest = &body[full * 4..];
    if let [a, b, rest @ ..] = rest {
        let (a, b) = (value(*a), value(*b));
        let c = rest.first().map_or(0, |&c| value(c));
        bad |= a | b | c;
        let n = a << 18 | b << 12 | c << 6;
        let bytes = n.to_be_bytes();
        tail.copy_from_slice(&bytes[1..1 + tail.len()]);
    }
    // Every valid value is below 64; `INVALID` sets the high bits.
    (bad < 64).then_some(out)
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

    #[test]
    fn canonical_fast_path_agrees_with_the_engine() {
        for s in [
            "AQ==", "AQI=", "AQID", "AQIDBA==", "////", "+/8+AQ==", "AR==", "AQJ=",
        ] {
            assert_eq!(
                decode_canonical(s.as_bytes()),
                LENIENT.decode(s).ok(),
                "{s}"
            );
        }
        for s in [
            "", "A", "AQ", "AQ=", "A===", "====", "AQ=A", "-_8-", "AQ\nI=", "AQ==AQ==",
        ] {
            assert_eq!(decode_canonical(s.as_bytes()), None, "{s}");
        }
    }

    proptest! {
        #[test]
        fn canonical_matches_engine(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let s = encode(&bytes);
            prop_assert_eq!(decode_canonical(s.as_bytes()), LENIENT.decode(&s).ok().filter(|_| !s.is_empty()));
        }

        #[test]
        fn fast_path_never_disagrees(s in "[A-Za-z0-9+/=]{0,24}") {
            if let Some(fast) = decode_canonical(s.as_bytes()) {
                prop_assert_eq!(Some(fast), LENIENT.decode(&s).ok());
            }
        }

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
