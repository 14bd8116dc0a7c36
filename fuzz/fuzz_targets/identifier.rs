//! The version-0 token identifier, binary (66 bytes) or hex text (132 bytes).
#![no_main]

use l402_mcp_fuzz::l402::Identifier;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(id) = Identifier::decode(data) else {
        return;
    };
    assert!(
        data.len() == 66 || data.len() == 132,
        "accepted {} bytes",
        data.len()
    );
    let bin = id.encode();
    assert_eq!(Identifier::decode(&bin), Ok(id), "binary round trip");
    assert_eq!(
        Identifier::decode(hex::encode(bin).as_bytes()),
        Ok(id),
        "hex round trip"
    );
    if data.len() == 66 {
        assert_eq!(&bin[..], data, "binary form is not canonical");
    }
});
