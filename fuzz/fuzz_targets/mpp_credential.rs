//! `Authorization: Payment` parsing (strict base64url, bounded JSON), the lightning payloads and
//! `Payment-Receipt` values: no input may panic; a credential read writes back to one that reads
//! the same.
#![no_main]

use l402_mcp_fuzz::l402::mpp::{PaymentCredential, credential, receipt};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = receipt::parse_header(text);
    let Ok(c) = PaymentCredential::parse_authorization(text) else {
        return;
    };
    let _ = format!("{c:?}");
    if let Ok(payload) = c.lightning_payload() {
        let again = credential::authorization(&c.challenge, &payload);
        let back = PaymentCredential::parse_authorization(&again).expect("our own credential reads");
        assert_eq!(back.challenge, c.challenge);
        assert_eq!(back.lightning_payload().ok(), Some(payload));
    }
});
