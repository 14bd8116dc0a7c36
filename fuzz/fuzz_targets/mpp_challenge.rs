//! `WWW-Authenticate: Payment` parsing; every challenge read survives format -> parse, and its
//! JSON form (the MCP transport's) reads back to it when its request is JSON.
#![no_main]

use l402_mcp_fuzz::l402::mpp::{PaymentChallenge, challenge};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let offers = challenge::parse_headers(text.split('\n'));
    for c in &offers.challenges {
        let _ = c.binding_input();
        let _ = c.expires_at();
        let line = c.header_value();
        let again = challenge::parse_headers([line.as_str()]);
        // Quoting drops control bytes; a challenge without any survives unchanged.
        if !line.contains(|ch: char| ch.is_control() && ch != '\t')
            && [&c.id, &c.realm, &c.method, &c.intent, &c.request]
                .iter()
                .all(|v| !v.contains(|ch: char| ch.is_control() && ch != '\t'))
        {
            assert!(!again.challenges.is_empty(), "format -> parse lost {line:?}");
        }
        if let Ok(json) = c.to_json()
            && let Ok(back) = PaymentChallenge::from_json(&json)
        {
            assert_eq!(back.realm, c.realm);
        }
    }
});
