//! `Authorization` parsing; a parsed single-macaroon credential survives format -> parse.
#![no_main]

use l402_mcp_fuzz::l402::Credential;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(c) = Credential::parse(text) else {
        return;
    };
    assert!(!c.macaroons.is_empty());
    let _ = format!("{c:?}");
    if let [mac] = c.macaroons.as_slice()
        && !mac.is_empty()
    {
        let line = Credential::format(c.scheme, mac, &c.preimage);
        assert_eq!(
            Credential::parse(&line).as_ref(),
            Ok(&c),
            "format -> parse changed {line:?}"
        );
    }
});
