//! `WWW-Authenticate` parsing: the input is one header value, and also, split at newlines,
//! several header lines. Whatever parses must survive format -> parse unchanged.
#![no_main]

use l402_mcp_fuzz::l402::challenge::{self, Challenge};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    check(std::iter::once(text));
    if text.contains('\n') {
        check(text.split('\n'));
    }
});

fn check<'a>(values: impl Iterator<Item = &'a str>) {
    let Ok(found) = challenge::parse_headers(values) else {
        return;
    };
    assert!(!found.is_empty(), "Ok with no challenge");
    assert!(challenge::preferred(&found).is_some());
    for c in &found {
        assert!(!c.invoice.is_empty(), "empty invoice accepted");
        // Our own formatting of a challenge must parse back to it. Only for values our formatter
        // can carry (it does not quote-escape), which is every real invoice and macaroon.
        if !c.macaroon.is_empty() && c.invoice.bytes().all(|b| b.is_ascii_alphanumeric()) {
            let line = challenge::format(c.scheme, &c.macaroon, &c.invoice);
            let again = challenge::parse_headers([line.as_str()]).expect("own format parses");
            let want = Challenge {
                version: None,
                ..c.clone()
            };
            assert_eq!(again, vec![want], "format -> parse changed {line:?}");
        }
    }
}
