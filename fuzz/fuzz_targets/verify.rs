//! Caveats and the verifier end to end.
//!
//! First byte: its low 4 bits pick one of 16 fixed verify params (the last 8 with a request
//! method or path; a token bound to methods or a path is refused without them). Bit 7 set -> the
//! rest is a raw macaroon given to `prepare` with the fixed preimage. Otherwise the rest, split
//! at newlines, is the list of caveats of a token minted here with the fixed root key: it always
//! reaches the caveat checks.
#![no_main]

use l402_mcp_fuzz::l402::caveat::{self, Caveat};
use l402_mcp_fuzz::l402::macaroon::L402_LOCATION;
use l402_mcp_fuzz::l402::verify::{self, Prepared, Rejection, VerifiedToken, VerifyParams};
use l402_mcp_fuzz::l402::{Identifier, Macaroon, PaymentHash, Preimage, TokenId, sha256};
use libfuzzer_sys::fuzz_target;

const ROOT: [u8; 32] = [42; 32];
const PREIMAGE: Preimage = Preimage([5; 32]);

/// Indexed by the first byte (mod 16). The first 8 check no method or path.
const PARAMS: [VerifyParams<'static>; 16] = [
    VerifyParams {
        service: None,
        capability: None,
        now_unix: 0,
        method: None,
        path: None,
    },
    VerifyParams {
        service: None,
        capability: None,
        now_unix: 1_700_000_000,
        method: None,
        path: None,
    },
    VerifyParams {
        service: Some("meme"),
        capability: None,
        now_unix: 1_000,
        method: None,
        path: None,
    },
    VerifyParams {
        service: Some("meme"),
        capability: Some("read"),
        now_unix: 1_700_000_000,
        method: None,
        path: None,
    },
    VerifyParams {
        service: Some("news"),
        capability: Some("write"),
        now_unix: 5,
        method: None,
        path: None,
    },
    VerifyParams {
        service: Some("a"),
        capability: Some("b"),
        now_unix: u64::MAX,
        method: None,
        path: None,
    },
    VerifyParams {
        service: None,
        capability: Some("read"),
        now_unix: u64::MAX,
        method: None,
        path: None,
    },
    VerifyParams {
        service: Some(""),
        capability: Some(""),
        now_unix: 18_446_744_073_709_551,
        method: None,
        path: None,
    },
    // 8..: with the request method and path (the `<svc>_methods` and `<svc>_path_prefix` caveats).
    VerifyParams {
        service: Some("meme"),
        capability: None,
        now_unix: 1_000,
        method: Some("GET"),
        path: Some("/v1/data"),
    },
    VerifyParams {
        service: None,
        capability: None,
        now_unix: 0,
        method: Some("get"),
        path: Some("/v1/data/"),
    },
    VerifyParams {
        service: Some("news"),
        capability: Some("read"),
        now_unix: 1_700_000_000,
        method: Some("POST"),
        path: Some("/v1/data/x"),
    },
    VerifyParams {
        service: None,
        capability: None,
        now_unix: 1_700_000_000,
        method: Some("HEAD"),
        path: None,
    },
    VerifyParams {
        service: Some("meme"),
        capability: None,
        now_unix: 0,
        method: None,
        path: Some("/v1/datax"),
    },
    // Not a plain path: under no prefix, so no path-bound token may pass.
    VerifyParams {
        service: Some("meme"),
        capability: Some("read"),
        now_unix: 0,
        method: Some("GET"),
        path: Some("/v1/data/../admin"),
    },
    VerifyParams {
        service: Some("a"),
        capability: Some("b"),
        now_unix: u64::MAX,
        method: Some(""),
        path: Some(""),
    },
    VerifyParams {
        service: None,
        capability: Some("read"),
        now_unix: u64::MAX,
        method: Some("DELETE"),
        path: Some("/"),
    },
];

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let params = &PARAMS[usize::from(mode) % PARAMS.len()];
    if mode & 0x80 != 0 {
        raw_macaroon(rest, params);
    } else {
        minted(rest, params);
    }
});

fn raw_macaroon(bytes: &[u8], params: &VerifyParams<'_>) {
    let Ok(prepared) = verify::prepare(bytes, &PREIMAGE) else {
        return;
    };
    assert_eq!(prepared.identifier.payment_hash, PaymentHash(sha256(PREIMAGE.expose())));
    // Signed with the fixed root key (as the seeds are): the same checks as for a minted token.
    if let Ok(token) = verify::finish(&prepared, Some(&ROOT), params) {
        if let Some(until) = token.valid_until {
            assert!(params.now_unix <= until, "accepted expired token");
        }
        route_invariants(&prepared, &token, params);
    }
}

fn minted(rest: &[u8], params: &VerifyParams<'_>) {
    let raw_caveats: Vec<&[u8]> = if rest.is_empty() {
        Vec::new()
    } else {
        rest.split(|&b| b == b'\n').collect()
    };
    for raw in &raw_caveats {
        caveat_parsers(raw);
    }

    let id = Identifier {
        payment_hash: PaymentHash(sha256(PREIMAGE.expose())),
        token_id: TokenId([1; 32]),
    };
    let mut m = Macaroon::new(&ROOT, id.encode().to_vec(), L402_LOCATION);
    for raw in &raw_caveats {
        m.add_caveat(raw);
    }
    let bytes = m.serialize();
    let prepared = match verify::prepare(&bytes, &PREIMAGE) {
        Ok(p) => p,
        // Only the decoder's own limits may refuse a token minted here.
        Err(Rejection::Malformed(_)) if raw_caveats.len() > 256 || bytes.len() > 64 * 1024 => {
            return;
        }
        Err(e) => panic!("own token refused by prepare: {e}"),
    };
    assert_eq!(prepared.identifier, id);
    assert_eq!(
        verify::finish(&prepared, None, params),
        Err(Rejection::UnknownToken)
    );
    assert_eq!(
        verify::finish(&prepared, Some(&[7; 32]), params),
        Err(Rejection::BadSignature)
    );
    let result = verify::finish(&prepared, Some(&ROOT), params);
    match &result {
        Ok(token) => {
            assert_eq!(token.identifier, id);
            assert_eq!(token.caveats.len(), raw_caveats.len());
            if let Some(until) = token.valid_until {
                assert!(params.now_unix <= until, "accepted expired token");
            }
            if let (Some(wanted), Some(services)) = (params.service, &token.services) {
                assert!(
                    services.iter().any(|s| s.name == wanted),
                    "wrong service accepted"
                );
            }
            // The services in force keep the tiers of the first services caveat.
            if let Some(services) = &token.services {
                let minted = token
                    .caveats
                    .iter()
                    .find(|c| c.condition == caveat::SERVICES)
                    .and_then(|c| caveat::parse_services(&c.value).ok())
                    .expect("services in force without a services caveat");
                assert!(
                    services.iter().all(|s| minted.contains(s)),
                    "a service or tier not minted is in force"
                );
            }
            route_invariants(&prepared, token, params);
        }
        Err(e) => {
            let _ = (e.code(), e.to_string());
        }
    }
    // Parsing is deterministic: re-encoding the parsed caveats gives the same verdict's kind.
    if let Ok(token) = &result {
        let mut again = Macaroon::new(&ROOT, id.encode().to_vec(), L402_LOCATION);
        for c in &token.caveats {
            again.add_caveat(&c.encode());
        }
        let p = verify::prepare(&again.serialize(), &PREIMAGE).expect("re-minted token");
        assert_eq!(verify::finish(&p, Some(&ROOT), params).as_ref(), Ok(token));
    }
}

/// What an accepted token says about the request's method and path, checked without the
/// verifier's own code paths (only `caveat`'s validators and `path_within`, on whole chains).
fn route_invariants(prepared: &Prepared, token: &VerifiedToken, params: &VerifyParams<'_>) {
    // Every chain is checked, whatever the params: later caveats only narrow.
    for (i, later) in token.caveats.iter().enumerate() {
        if service_of(&later.condition, caveat::METHODS_SUFFIX).is_some() {
            for m in list(&later.value) {
                assert!(caveat::validate_method(m).is_ok(), "bad method in {later}");
            }
        }
        if service_of(&later.condition, caveat::PATH_PREFIX_SUFFIX).is_some() {
            assert!(
                caveat::validate_path_prefix(&later.value).is_ok(),
                "bad path prefix in {later}"
            );
        }
        for earlier in token.caveats[..i]
            .iter()
            .filter(|c| c.condition == later.condition)
        {
            if service_of(&later.condition, caveat::METHODS_SUFFIX).is_some() {
                assert!(
                    list(&later.value)
                        .all(|m| list(&earlier.value).any(|e| e.eq_ignore_ascii_case(m))),
                    "{later} widens {earlier}"
                );
            }
            if service_of(&later.condition, caveat::PATH_PREFIX_SUFFIX).is_some() {
                assert!(
                    caveat::path_within(&later.value, &earlier.value),
                    "{later} widens {earlier}"
                );
            }
        }
    }
    // The last caveat of each chain that applies (the target service's, or every one without a
    // target service) admits the request's method and path.
    let applies = |service: &str| params.service.is_none_or(|s| s == service);
    let last_of = |condition: &str| {
        token
            .caveats
            .iter()
            .rev()
            .find(|c| c.condition == condition)
    };
    for c in &token.caveats {
        // A binding that applies is never skipped: without the method or path it refuses.
        if let Some(service) = service_of(&c.condition, caveat::METHODS_SUFFIX) {
            assert!(
                params.method.is_some() || !applies(service),
                "{c} accepted without a method"
            );
        }
        if let Some(service) = service_of(&c.condition, caveat::PATH_PREFIX_SUFFIX) {
            assert!(
                params.path.is_some() || !applies(service),
                "{c} accepted without a path"
            );
        }
        if let (Some(service), Some(method)) = (
            service_of(&c.condition, caveat::METHODS_SUFFIX),
            params.method,
        ) && applies(service)
        {
            let last = last_of(&c.condition).expect("c is in the chain");
            assert!(
                list(&last.value).any(|m| m.eq_ignore_ascii_case(method)),
                "method {method:?} accepted under {last}"
            );
        }
        if let (Some(service), Some(path)) = (
            service_of(&c.condition, caveat::PATH_PREFIX_SUFFIX),
            params.path,
        ) && applies(service)
        {
            let last = last_of(&c.condition).expect("c is in the chain");
            let prefix = last.value.trim_end_matches('/');
            let rest = path.strip_prefix(prefix);
            assert!(
                rest.is_some_and(|r| r.is_empty() || r.starts_with('/')),
                "path {path:?} accepted under {last}"
            );
            assert!(
                path.starts_with('/') && !path.split('/').any(|s| s == "." || s == ".."),
                "path {path:?} is not plain, accepted under {last}"
            );
        }
    }
    // Without the method and path the same token passes with the same result when no binding
    // applies, and is refused as unchecked when one does (never accepted anywhere).
    let unbound = VerifyParams {
        method: None,
        path: None,
        ..*params
    };
    let bound = token.caveats.iter().any(|c| {
        service_of(&c.condition, caveat::METHODS_SUFFIX)
            .or_else(|| service_of(&c.condition, caveat::PATH_PREFIX_SUFFIX))
            .is_some_and(applies)
    });
    let without = verify::finish(prepared, Some(&ROOT), &unbound);
    if bound {
        assert!(
            matches!(without, Err(Rejection::BindingUnchecked { .. })),
            "a binding was skipped without the request: {without:?}"
        );
    } else {
        assert_eq!(
            without.as_ref(),
            Ok(token),
            "accepted with a method/path, not the same without"
        );
    }
    if let Some(m) = params.method {
        let other = swap_case(m);
        let swapped = VerifyParams {
            method: Some(&other),
            ..*params
        };
        assert_eq!(
            verify::finish(prepared, Some(&ROOT), &swapped).as_ref(),
            Ok(token),
            "method case mattered"
        );
    }
}

/// The service of a `<service><suffix>` condition, if it is one (as the verifier reads them, a
/// non-empty service).
fn service_of<'a>(condition: &'a str, suffix: &str) -> Option<&'a str> {
    condition.strip_suffix(suffix).filter(|s| !s.is_empty())
}

/// A comma-separated caveat value as the verifier reads it (capabilities, methods).
fn list(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|v| !v.is_empty())
}

fn swap_case(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_lowercase() {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect()
}

fn caveat_parsers(raw: &[u8]) {
    if let Ok(text) = std::str::from_utf8(raw) {
        // The value parsers on any text, not only on what follows a condition.
        services_round_trip(text);
        let _ = caveat::parse_timestamp(text);
        let _ = caveat::parse_capabilities(text);
        let _ = caveat::validate_service_name(text);
        let _ = caveat::validate_capability(text);
        let _ = caveat::validate_method(text);
        path_parsers(text);
    }
    let Ok(c) = Caveat::parse(raw) else {
        return;
    };
    assert_eq!(
        Caveat::parse(&c.encode()),
        Ok(c.clone()),
        "encode -> parse changed a caveat"
    );
    assert_eq!(c.to_string().into_bytes(), c.encode());
    services_round_trip(&c.value);
    if let Ok(t) = caveat::parse_timestamp(&c.value) {
        assert_eq!(caveat::parse_timestamp(&t.to_string()), Ok(t));
    }
}

/// `text` as a path and as a prefix, and split at its first space as a (path, prefix) pair.
fn path_parsers(text: &str) {
    let plain = caveat::is_plain_path(text);
    assert_eq!(caveat::validate_path_prefix(text).is_ok(), plain);
    assert_eq!(
        caveat::path_within(text, text),
        plain,
        "{text:?} not within itself"
    );
    assert_eq!(
        caveat::path_within(text, "/"),
        plain,
        "{text:?} not within /"
    );
    if let Some((path, prefix)) = text.split_once(' ')
        && caveat::path_within(path, prefix)
    {
        assert!(caveat::is_plain_path(path) && caveat::is_plain_path(prefix));
        let rest = path.strip_prefix(prefix.trim_end_matches('/'));
        assert!(
            rest.is_some_and(|r| r.is_empty() || r.starts_with('/')),
            "{path:?} within {prefix:?}"
        );
    }
}

fn services_round_trip(value: &str) {
    if let Ok(services) = caveat::parse_services(value) {
        assert!(!services.is_empty());
        let c = Caveat::services(&services);
        assert_eq!(
            caveat::parse_services(&c.value),
            Ok(services),
            "services round trip"
        );
    }
}
