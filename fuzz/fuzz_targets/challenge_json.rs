//! Challenges carried in a JSON response body.
#![no_main]

use l402_mcp_fuzz::l402::challenge;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(c) = challenge::parse_json_body(data) {
        assert!(
            c.invoice.len() >= 2 && c.invoice[..2].eq_ignore_ascii_case("ln"),
            "accepted a non-invoice {:?}",
            c.invoice
        );
        assert_eq!(c.invoice.trim(), c.invoice);
    }
});
