//! The V2 binary macaroon decoder: whatever it accepts, `serialize()` gives bytes that decode to
//! the same macaroon, and serializing is then a fixed point.
#![no_main]

use l402_mcp_fuzz::l402::Macaroon;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(m) = Macaroon::deserialize(data) else {
        return;
    };
    let bytes = m.serialize();
    let again = Macaroon::deserialize(&bytes).expect("serialize() output must deserialize");
    assert_eq!(again, m, "serialize -> deserialize changed the macaroon");
    assert_eq!(again.serialize(), bytes, "serialize is not a fixed point");
    // Accepted input is never shorter than its canonical form (no field can be dropped).
    assert!(data.len() >= bytes.len() || m.location().is_empty());
    let _ = format!("{m:?}");
    let _ = m.caveat_strings();
    let _ = m.verify_signature(b"fuzz root key");
});
