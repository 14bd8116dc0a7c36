//! Verification of an L402 credential, in Aperture's order:
//! (1) decode the identifier and check `sha256(preimage) == payment_hash`;
//! (2) find the root key by `sha256(identifier)` and check the signature;
//! (3) check the caveats.
//!
//! Step (2) needs the seller's root-key store, so verification comes in two pure halves:
//! [`prepare`] (decode, preimage) and [`finish`] (signature, caveats), with the lookup between.
//!
//! Over 600 lines with its tests: the verifier itself is ~480 lines; the rest are vectors.

use super::caveat::{self, Caveat, Service};
use super::identifier::Identifier;
use super::macaroon::Macaroon;
use super::{Preimage, preimage_matches, sha256};

/// Why a credential was refused. Every failure has one; `code()` is a stable name for programs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("malformed credential: {0}")]
    Malformed(String),
    #[error("unknown token: no root key for this identifier (not minted here, or revoked)")]
    UnknownToken,
    #[error("bad signature: the macaroon was not minted with this root key or was altered")]
    BadSignature,
    #[error("preimage does not hash to the payment hash in the token")]
    PreimageMismatch,
    #[error("token expired at {valid_until} (unix seconds)")]
    Expired { valid_until: u64 },
    #[error("token is not valid for service {wanted:?} (it allows: {allowed})")]
    WrongService { wanted: String, allowed: String },
    #[error("token lacks capability {wanted:?} for service {service:?} (it allows: {allowed:?})")]
    MissingCapability {
        service: String,
        wanted: String,
        allowed: String,
    },
    #[error("token is not valid for {request} (it allows: {allowed})")]
    WrongRoute { request: String, allowed: String },
    #[error(
        "token is bound by caveat {caveat:?}, which cannot be checked without the request's {needs}: give the {needs} of the request being served"
    )]
    BindingUnchecked { caveat: String, needs: &'static str },
    #[error("caveat {0:?} is not understood; this verifier refuses what it cannot check")]
    UnknownCaveat(String),
    #[error("caveat {caveat:?} widens an earlier one; later caveats may only narrow")]
    WidenedCaveat { caveat: String },
    #[error("caveat {caveat:?} is invalid: {why}")]
    InvalidCaveat { caveat: String, why: String },
}

impl Rejection {
    /// A stable, machine-readable name for the reason.
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::Malformed(_) => "malformed",
            Rejection::UnknownToken => "unknown_token",
            Rejection::BadSignature => "bad_signature",
            Rejection::PreimageMismatch => "preimage_mismatch",
            Rejection::Expired { .. } => "expired",
            Rejection::WrongService { .. } => "wrong_service",
            Rejection::MissingCapability { .. } => "missing_capability",
            Rejection::WrongRoute { .. } => "wrong_route",
            Rejection::BindingUnchecked { .. } => "binding_unchecked",
            Rejection::UnknownCaveat(_) => "unknown_caveat",
            Rejection::WidenedCaveat { .. } => "widened_caveat",
            Rejection::InvalidCaveat { .. } => "invalid_caveat",
        }
    }
}

/// What the verifier is asked to authorize.
#[derive(Debug, Clone, Copy, Default)]
pub struct VerifyParams<'a> {
    /// The service being accessed. `None`: the request may be for any service the token is
    /// for, so whatever applies per service applies for each of them (every expiry, every
    /// method and path binding, and `capability` must be granted for every service in force).
    pub service: Option<&'a str>,
    /// A capability the request needs, within `service` (within every service in force when
    /// `service` is `None`).
    pub capability: Option<&'a str>,
    /// Current time, unix seconds.
    pub now_unix: u64,
    /// The request's HTTP method, for `<service>_methods` caveats. A token with such a caveat
    /// that applies (the service's, or any when `service` is `None`) is refused without it
    /// ([`Rejection::BindingUnchecked`]): a binding is never skipped.
    pub method: Option<&'a str>,
    /// The request's path (no query), for `<service>_path_prefix` caveats; refused without it
    /// when one applies, as for `method`.
    pub path: Option<&'a str>,
}

/// A credential decoded and matched against its preimage, waiting for its root key.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub macaroon: Macaroon,
    pub identifier: Identifier,
    /// `sha256(identifier bytes)`: the root key's name in the store.
    pub key_id: [u8; 32],
}

/// A credential that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    pub identifier: Identifier,
    pub caveats: Vec<Caveat>,
    /// The services caveat in force, if any, each service with the tier it was minted with
    /// (a later caveat may not change a tier).
    pub services: Option<Vec<Service>>,
    /// The earliest expiry in force (unix seconds), if any.
    pub valid_until: Option<u64>,
}

/// Step (1): decode the macaroon and identifier, check the preimage against the payment hash.
pub fn prepare(macaroon_bytes: &[u8], preimage: &Preimage) -> Result<Prepared, Rejection> {
    let macaroon =
        Macaroon::deserialize(macaroon_bytes).map_err(|e| Rejection::Malformed(e.to_string()))?;
    let identifier = Identifier::decode(macaroon.identifier())
        .map_err(|e| Rejection::Malformed(e.to_string()))?;
    if !preimage_matches(preimage, &identifier.payment_hash) {
        return Err(Rejection::PreimageMismatch);
    }
    let key_id = sha256(macaroon.identifier());
    Ok(Prepared {
        macaroon,
        identifier,
        key_id,
    })
}

/// Steps (2) and (3): the signature with the root key found (or not) for `prepared.key_id`,
/// then the caveats.
pub fn finish(
    prepared: &Prepared,
    root_key: Option<&[u8]>,
    params: &VerifyParams<'_>,
) -> Result<VerifiedToken, Rejection> {
    let root_key = root_key.ok_or(Rejection::UnknownToken)?;
    if !prepared.macaroon.verify_signature(root_key) {
        return Err(Rejection::BadSignature);
    }
    let caveats = prepared
        .macaroon
        .caveats()
        .iter()
        .map(|raw| {
            Caveat::parse(raw)
                .map_err(|_| Rejection::UnknownCaveat(String::from_utf8_lossy(raw).into_owned()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let (services, valid_until) = check_caveats(&caveats, params)?;
    Ok(VerifiedToken {
        identifier: prepared.identifier,
        caveats,
        services,
        valid_until,
    })
}

/// Step (3) alone: `caveats` (parsed from a macaroon whose signature was checked) against this
/// request. For a verifier that remembers credentials it has checked: the signature and the
/// caveats' parsing depend only on the bytes and the root key, this on the request and the
/// time. Answers what [`finish`] would for the same credential: the services caveat in force
/// and the earliest expiry, or the same refusal.
pub fn authorize(
    caveats: &[Caveat],
    params: &VerifyParams<'_>,
) -> Result<CaveatOutcome, Rejection> {
    check_caveats(caveats, params)
}

/// The conditions this verifier understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Condition<'a> {
    Services,
    Capabilities(&'a str),
    ValidUntil(&'a str),
    Methods(&'a str),
    PathPrefix(&'a str),
    ExpirationMillis,
}

fn classify(condition: &str) -> Option<Condition<'_>> {
    if condition == caveat::SERVICES {
        return Some(Condition::Services);
    }
    if condition == caveat::EXPIRATION {
        return Some(Condition::ExpirationMillis);
    }
    if let Some(service) = condition.strip_suffix(caveat::CAPABILITIES_SUFFIX)
        && !service.is_empty()
    {
        return Some(Condition::Capabilities(service));
    }
    if let Some(service) = condition.strip_suffix(caveat::VALID_UNTIL_SUFFIX)
        && !service.is_empty()
    {
        return Some(Condition::ValidUntil(service));
    }
    if let Some(service) = condition.strip_suffix(caveat::METHODS_SUFFIX)
        && !service.is_empty()
    {
        return Some(Condition::Methods(service));
    }
    if let Some(service) = condition.strip_suffix(caveat::PATH_PREFIX_SUFFIX)
        && !service.is_empty()
    {
        return Some(Condition::PathPrefix(service));
    }
    None
}

/// The services caveat in force (each service with its tier), if any, and the earliest expiry
/// in force (unix seconds), if any.
pub type CaveatOutcome = (Option<Vec<Service>>, Option<u64>);

/// How many caveats are classified on the stack; more go to the heap.
const INLINE_CAVEATS: usize = 8;

/// Aperture's rule: caveats of one condition form a chain, each may only narrow the one before,
/// and the last decides. Unknown conditions are refused (fail-closed).
///
/// Chains are checked in order of their first caveat, on borrowed text: only the services list
/// in force is allocated, for the result.
fn check_caveats(
    caveats: &[Caveat],
    params: &VerifyParams<'_>,
) -> Result<CaveatOutcome, Rejection> {
    fn classified(c: &Caveat) -> Result<Condition<'_>, Rejection> {
        classify(&c.condition).ok_or_else(|| Rejection::UnknownCaveat(c.to_string()))
    }
    let mut inline = [Condition::Services; INLINE_CAVEATS];
    let heap: Vec<Condition<'_>>;
    let conds: &[Condition<'_>] = if caveats.len() <= INLINE_CAVEATS {
        for (slot, c) in inline.iter_mut().zip(caveats) {
            *slot = classified(c)?;
        }
        &inline[..caveats.len()]
    } else {
        heap = caveats.iter().map(classified).collect::<Result<_, _>>()?;
        &heap
    };

    let mut services_in_force = None;
    let mut earliest_expiry: Option<u64> = None;
    for (i, cond) in conds.iter().enumerate() {
        if conds[..i].contains(cond) {
            continue; // this chain was checked at its first caveat
        }
        let chain = || {
            conds[i..]
                .iter()
                .zip(&caveats[i..])
                .filter(move |(k, _)| *k == cond)
                .map(|(_, c)| c)
        };
        match cond {
            Condition::Services => {
                let (last, services) = services_chain(chain())?;
                if let Some(wanted) = params.service
                    && !services.iter().any(|s| s.name == wanted)
                {
                    return Err(Rejection::WrongService {
                        wanted: wanted.to_owned(),
                        allowed: last.value.clone(),
                    });
                }
                services_in_force = Some(services);
            }
            Condition::Capabilities(service) => {
                let last = capabilities_chain(chain())?;
                // Without a target service, checked below against the services in force.
                if params.service == Some(*service)
                    && let Some(wanted) = params.capability
                {
                    grants(service, last, wanted)?;
                }
            }
            Condition::ValidUntil(service) => {
                let valid_until = timestamp_chain(chain())?;
                // With a target service, only its expiry applies (as in Aperture); without one,
                // every expiry does.
                if params.service.is_none_or(|s| s == *service) {
                    if params.now_unix > valid_until {
                        return Err(Rejection::Expired { valid_until });
                    }
                    earliest_expiry =
                        Some(earliest_expiry.map_or(valid_until, |e| e.min(valid_until)));
                }
            }
            Condition::Methods(service) => {
                let last = methods_chain(chain())?;
                // Like expiries: with a target service only its binding applies, without one
                // every binding does. A binding that applies is checked or the token refused.
                if params.service.is_none_or(|s| s == *service) {
                    let method = params.method.ok_or_else(|| unchecked(last, "method"))?;
                    if !caveat::methods(&last.value).any(|m| m.eq_ignore_ascii_case(method)) {
                        return Err(wrong_route(params, last));
                    }
                }
            }
            Condition::PathPrefix(service) => {
                let last = path_chain(chain())?;
                if params.service.is_none_or(|s| s == *service) {
                    let path = params.path.ok_or_else(|| unchecked(last, "path"))?;
                    if !caveat::path_within(path, &last.value) {
                        return Err(wrong_route(params, last));
                    }
                }
            }
            Condition::ExpirationMillis => {
                let millis = timestamp_chain(chain())?;
                let valid_until = millis / 1000;
                if u128::from(params.now_unix) * 1000 > u128::from(millis) {
                    return Err(Rejection::Expired { valid_until });
                }
                earliest_expiry = Some(earliest_expiry.map_or(valid_until, |e| e.min(valid_until)));
            }
        }
    }
    if params.service.is_none()
        && let Some(wanted) = params.capability
    {
        capability_for_every_service(conds, caveats, services_in_force.as_deref(), wanted)?;
    }
    Ok((services_in_force, earliest_expiry))
}

/// With no target service the request may be for any service the token is for, so a requested
/// capability must be granted for each of them: by the capabilities chain of every service in
/// force (of every service named in a capabilities caveat, when no services caveat limits the
/// token). A service without a capabilities caveat is not limited by one. The chains were
/// checked already; the last caveat of each decides.
fn capability_for_every_service(
    conds: &[Condition<'_>],
    caveats: &[Caveat],
    services: Option<&[Service]>,
    wanted: &str,
) -> Result<(), Rejection> {
    for (i, cond) in conds.iter().enumerate() {
        let Condition::Capabilities(service) = cond else {
            continue;
        };
        if conds[..i].contains(cond)
            || services.is_some_and(|s| !s.iter().any(|s| s.name == *service))
        {
            continue;
        }
        if let Some((_, last)) = conds.iter().zip(caveats).rev().find(|(k, _)| *k == cond) {
            grants(service, last, wanted)?;
        }
    }
    Ok(())
}

/// Does the last caveat of `service`'s capabilities chain grant `wanted`?
fn grants(service: &str, last: &Caveat, wanted: &str) -> Result<(), Rejection> {
    if caveat::capabilities(&last.value).any(|c| c == wanted) {
        return Ok(());
    }
    Err(Rejection::MissingCapability {
        service: service.to_owned(),
        wanted: wanted.to_owned(),
        allowed: caveat::parse_capabilities(&last.value).join(","),
    })
}

fn invalid(c: &Caveat, why: impl ToString) -> Rejection {
    Rejection::InvalidCaveat {
        caveat: c.to_string(),
        why: why.to_string(),
    }
}

fn widened(c: &Caveat) -> Rejection {
    Rejection::WidenedCaveat {
        caveat: c.to_string(),
    }
}

fn unchecked(caveat: &Caveat, needs: &'static str) -> Rejection {
    Rejection::BindingUnchecked {
        caveat: caveat.to_string(),
        needs,
    }
}

fn wrong_route(params: &VerifyParams<'_>, caveat: &Caveat) -> Rejection {
    Rejection::WrongRoute {
        request: format!(
            "{} {}",
            params.method.unwrap_or("*"),
            params.path.unwrap_or("*")
        ),
        allowed: caveat.to_string(),
    }
}

/// The last caveat of a methods chain: every method valid, each caveat no wider than the one
/// before.
fn methods_chain<'a>(chain: impl Iterator<Item = &'a Caveat>) -> Result<&'a Caveat, Rejection> {
    let mut prev: Option<&Caveat> = None;
    for c in chain {
        for m in caveat::methods(&c.value) {
            caveat::validate_method(m).map_err(|e| invalid(c, e))?;
        }
        if let Some(p) = prev
            && !caveat::methods(&c.value)
                .all(|m| caveat::methods(&p.value).any(|q| q.eq_ignore_ascii_case(m)))
        {
            return Err(widened(c));
        }
        prev = Some(c);
    }
    prev.ok_or_else(empty_chain)
}

/// The last caveat of a path chain: each prefix valid and within the one before.
fn path_chain<'a>(chain: impl Iterator<Item = &'a Caveat>) -> Result<&'a Caveat, Rejection> {
    let mut prev: Option<&Caveat> = None;
    for c in chain {
        caveat::validate_path_prefix(&c.value).map_err(|e| invalid(c, e))?;
        if let Some(p) = prev
            && !caveat::path_within(&c.value, &p.value)
        {
            return Err(widened(c));
        }
        prev = Some(c);
    }
    prev.ok_or_else(empty_chain)
}

fn empty_chain() -> Rejection {
    Rejection::Malformed("empty caveat chain".into())
}

/// The last caveat of a services chain and its services, each caveat valid and no wider than
/// the one before: it names a subset of the services before it, each with the same tier, so the
/// services in force keep the tiers they were minted with (Aperture compares only names; a
/// seller reading the tier from the caveats must not be fooled by `services=<name>:7`).
/// Earlier caveats are checked on borrowed text; only the last is parsed.
fn services_chain<'a>(
    chain: impl Iterator<Item = &'a Caveat>,
) -> Result<(&'a Caveat, Vec<Service>), Rejection> {
    let mut chain = chain.peekable();
    let mut prev: Option<&Caveat> = None;
    while let Some(c) = chain.next() {
        let parsed = if chain.peek().is_none() {
            Some(caveat::parse_services(&c.value).map_err(|e| invalid(c, e))?)
        } else if caveat::services_valid(&c.value) {
            None
        } else {
            let why = caveat::parse_services(&c.value)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            return Err(invalid(c, why));
        };
        if let Some(p) = prev
            && !caveat::service_entries(&c.value)
                .all(|s| caveat::service_entries(&p.value).any(|q| q == s))
        {
            return Err(widened(c));
        }
        if let Some(services) = parsed {
            return Ok((c, services));
        }
        prev = Some(c);
    }
    Err(empty_chain())
}

/// The last caveat of a capabilities chain, each one no wider than the one before.
fn capabilities_chain<'a>(
    chain: impl Iterator<Item = &'a Caveat>,
) -> Result<&'a Caveat, Rejection> {
    let mut prev: Option<&Caveat> = None;
    for c in chain {
        if let Some(p) = prev
            && !caveat::capabilities(&c.value)
                .all(|cap| caveat::capabilities(&p.value).any(|q| q == cap))
        {
            return Err(widened(c));
        }
        prev = Some(c);
    }
    prev.ok_or_else(empty_chain)
}

fn timestamp_chain<'a>(chain: impl Iterator<Item = &'a Caveat>) -> Result<u64, Rejection> {
    let mut prev: Option<u64> = None;
    for c in chain {
        let cur = caveat::parse_timestamp(&c.value).map_err(|e| invalid(c, e))?;
        if prev.is_some_and(|p| cur > p) {
            return Err(widened(c));
        }
        prev = Some(cur);
    }
    prev.ok_or_else(empty_chain)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::macaroon::L402_LOCATION;

    const ROOT: [u8; 32] = [42; 32];
    const PREIMAGE: crate::Preimage = crate::Preimage([5; 32]);

    fn mint(caveats: &[&str]) -> Vec<u8> {
        let id = Identifier {
            payment_hash: crate::PaymentHash(sha256(PREIMAGE.expose())),
            token_id: crate::TokenId([1; 32]),
        };
        let mut m = Macaroon::new(&ROOT, id.encode().to_vec(), L402_LOCATION);
        for c in caveats {
            m.add_caveat(c.as_bytes());
        }
        m.serialize()
    }

    fn check(caveats: &[&str], params: VerifyParams<'_>) -> Result<VerifiedToken, Rejection> {
        let p = prepare(&mint(caveats), &PREIMAGE)?;
        finish(&p, Some(&ROOT), &params)
    }

    fn svc(
        service: &'static str,
        capability: Option<&'static str>,
        now: u64,
    ) -> VerifyParams<'static> {
        VerifyParams {
            service: Some(service),
            capability,
            now_unix: now,
            ..Default::default()
        }
    }

    const STD: &[&str] = &[
        "services=meme:0",
        "meme_capabilities=read,write",
        "meme_valid_until=1000",
    ];

    #[test]
    fn accepts_a_good_token() {
        let t = check(STD, svc("meme", Some("read"), 999)).unwrap();
        assert_eq!(t.valid_until, Some(1000));
        assert_eq!(t.services, Some(vec![Service::new("meme", 0).unwrap()]));
        assert_eq!(t.caveats.len(), 3);
        // No target: signature, preimage and expiry only.
        check(
            STD,
            VerifyParams {
                now_unix: 5,
                ..Default::default()
            },
        )
        .unwrap();
    }

    #[test]
    fn each_failure_has_its_reason() {
        assert_eq!(
            check(STD, svc("meme", None, 1001)),
            Err(Rejection::Expired { valid_until: 1000 })
        );
        assert_eq!(
            check(STD, svc("news", None, 1)).unwrap_err().code(),
            "wrong_service"
        );
        assert_eq!(
            check(STD, svc("meme", Some("admin"), 1))
                .unwrap_err()
                .code(),
            "missing_capability"
        );
        assert_eq!(
            check(&["color=red"], svc("meme", None, 1))
                .unwrap_err()
                .code(),
            "unknown_caveat"
        );
        assert_eq!(
            check(&["services=meme:x"], svc("meme", None, 1))
                .unwrap_err()
                .code(),
            "invalid_caveat"
        );
        assert_eq!(
            check(&["novalue"], svc("meme", None, 1))
                .unwrap_err()
                .code(),
            "unknown_caveat"
        );

        let p = prepare(&mint(STD), &PREIMAGE).unwrap();
        assert_eq!(
            finish(&p, None, &svc("meme", None, 1)),
            Err(Rejection::UnknownToken)
        );
        assert_eq!(
            finish(&p, Some(&[0; 32]), &svc("meme", None, 1)),
            Err(Rejection::BadSignature)
        );
        assert_eq!(
            prepare(&mint(STD), &crate::Preimage([6; 32])).unwrap_err(),
            Rejection::PreimageMismatch
        );
        assert_eq!(prepare(b"junk", &PREIMAGE).unwrap_err().code(), "malformed");
    }

    #[test]
    fn chains_may_only_narrow_and_the_last_decides() {
        // Narrowing is fine; the last caveat decides.
        let narrowed = ["services=meme:0,news:0", "services=news:0"];
        assert!(check(&narrowed, svc("news", None, 1)).is_ok());
        assert_eq!(
            check(&narrowed, svc("meme", None, 1)).unwrap_err().code(),
            "wrong_service"
        );
        // Widening is refused.
        let widened = ["services=meme:0", "services=meme:0,news:0"];
        assert_eq!(
            check(&widened, svc("news", None, 1)).unwrap_err().code(),
            "widened_caveat"
        );
        // So is a changed tier, up or down, for the service asked for or another one; the same
        // tier again is fine, and the services in force keep their minted tiers.
        for changed in [
            &["services=meme:0", "services=meme:7"][..],
            &["services=meme:3,news:1", "services=meme:0"],
            &["services=meme:3,news:1", "services=meme:3,news:2"],
            &["services=meme:0", "services=meme:0", "services=meme:1"],
        ] {
            for params in [svc("meme", None, 1), VerifyParams::default()] {
                assert_eq!(
                    check(changed, params).unwrap_err().code(),
                    "widened_caveat",
                    "{changed:?}"
                );
            }
        }
        let same = [
            "services=meme:3,news:1",
            "services=news:1",
            "services=news:01",
        ];
        assert_eq!(
            check(&same, svc("news", None, 1)).unwrap().services,
            Some(vec![Service::new("news", 1).unwrap()])
        );
        let caps = ["meme_capabilities=read", "meme_capabilities=read,write"];
        assert_eq!(
            check(&caps, svc("meme", Some("read"), 1))
                .unwrap_err()
                .code(),
            "widened_caveat"
        );
        let later = ["meme_valid_until=100", "meme_valid_until=200"];
        assert_eq!(
            check(&later, svc("meme", None, 1)).unwrap_err().code(),
            "widened_caveat"
        );
        let earlier = ["meme_valid_until=200", "meme_valid_until=100"];
        assert_eq!(
            check(&earlier, svc("meme", None, 150)),
            Err(Rejection::Expired { valid_until: 100 })
        );
    }

    #[test]
    fn method_and_path_bindings() {
        let bound = [
            "services=api:0",
            "api_methods=GET,HEAD",
            "api_path_prefix=/v1/data",
        ];
        let req = |method, path| VerifyParams {
            service: Some("api"),
            method: Some(method),
            path: Some(path),
            now_unix: 1,
            ..Default::default()
        };
        assert!(check(&bound, req("GET", "/v1/data")).is_ok());
        assert!(check(&bound, req("head", "/v1/data/x")).is_ok());
        for (method, path) in [
            ("POST", "/v1/data"),
            ("GET", "/v1/other"),
            ("GET", "/v1/datax"),
            ("GET", "/v1/data/../admin"),
        ] {
            assert_eq!(
                check(&bound, req(method, path)).unwrap_err().code(),
                "wrong_route",
                "{method} {path}"
            );
        }
        // Without the request's method or path a binding that applies is not skipped: refused.
        for (method, path) in [(None, None), (Some("GET"), None), (None, Some("/v1/data"))] {
            for service in [Some("api"), None] {
                let p = VerifyParams {
                    service,
                    method,
                    path,
                    now_unix: 1,
                    ..Default::default()
                };
                assert_eq!(
                    check(&bound, p).unwrap_err().code(),
                    "binding_unchecked",
                    "{p:?}"
                );
            }
        }
        // For another service it does not apply; without a service every binding does.
        let other = ["services=a:0,b:0", "a_methods=GET"];
        let mut p = req("POST", "/");
        p.service = Some("b");
        assert!(check(&other, p).is_ok());
        p.method = None;
        assert!(check(&other, p).is_ok());
        p.service = None;
        assert_eq!(check(&other, p).unwrap_err().code(), "binding_unchecked");
        p.method = Some("POST");
        assert_eq!(check(&other, p).unwrap_err().code(), "wrong_route");

        // Chains may only narrow.
        let narrowed = ["api_path_prefix=/v1", "api_path_prefix=/v1/data"];
        assert!(check(&narrowed, req("GET", "/v1/data/1")).is_ok());
        assert_eq!(
            check(&narrowed, req("GET", "/v1/other"))
                .unwrap_err()
                .code(),
            "wrong_route"
        );
        for widening in [
            &["api_path_prefix=/v1/data", "api_path_prefix=/v1"][..],
            &["api_path_prefix=/v1/data", "api_path_prefix=/"],
            &["api_methods=GET", "api_methods=GET,POST"],
        ] {
            assert_eq!(
                check(widening, req("GET", "/v1/data")).unwrap_err().code(),
                "widened_caveat"
            );
        }
        assert!(
            check(
                &["api_methods=GET,POST", "api_methods=get"],
                req("GET", "/")
            )
            .is_ok()
        );
        // Values the verifier cannot check safely are refused.
        for bad in [
            "api_path_prefix=v1",
            "api_path_prefix=/a/../b",
            "api_methods=G T",
        ] {
            assert_eq!(
                check(&[bad], req("GET", "/v1")).unwrap_err().code(),
                "invalid_caveat",
                "{bad}"
            );
        }
    }

    #[test]
    fn expiry_of_other_services_and_lsat_js_expiration() {
        let two = ["services=a:0,b:0", "a_valid_until=100", "b_valid_until=300"];
        assert!(check(&two, svc("b", None, 200)).is_ok());
        assert_eq!(
            check(&two, svc("a", None, 200)).unwrap_err().code(),
            "expired"
        );
        // No target service: every expiry applies.
        let none = VerifyParams {
            now_unix: 200,
            ..Default::default()
        };
        assert_eq!(check(&two, none).unwrap_err().code(), "expired");
        // lsat-js's `expiration` is in milliseconds.
        assert!(check(&["expiration=5000"], svc("x", None, 4)).is_ok());
        assert_eq!(
            check(&["expiration=5000"], svc("x", None, 6))
                .unwrap_err()
                .code(),
            "expired"
        );
    }

    #[test]
    fn without_a_service_a_capability_must_be_granted_for_every_service_in_force() {
        let any = |capability| VerifyParams {
            capability: Some(capability),
            now_unix: 1,
            ..Default::default()
        };
        assert!(check(STD, any("write")).is_ok());
        assert_eq!(
            check(STD, any("admin")).unwrap_err().code(),
            "missing_capability"
        );
        // Two services, one limited: the request may be for either, so the limit applies.
        let two = ["services=a:0,b:0", "a_capabilities=read"];
        assert!(check(&two, any("read")).is_ok());
        assert_eq!(
            check(&two, any("write")).unwrap_err().code(),
            "missing_capability"
        );
        // Narrowed to b, which no capabilities caveat limits: a's caveat no longer applies.
        let narrowed = ["services=a:0,b:0", "a_capabilities=read", "services=b:0"];
        assert!(check(&narrowed, any("write")).is_ok());
        // No services caveat: every capabilities chain applies; the last of each decides.
        let chains = [
            "a_capabilities=read,write",
            "b_capabilities=write",
            "a_capabilities=write",
        ];
        assert!(check(&chains, any("write")).is_ok());
        assert_eq!(
            check(&chains, any("read")).unwrap_err().code(),
            "missing_capability"
        );
        // No capabilities caveat at all restricts nothing.
        assert!(check(&["services=a:0"], any("anything")).is_ok());
    }

    #[test]
    fn empty_capabilities_grant_nothing_but_absence_restricts_nothing() {
        assert_eq!(
            check(
                &["services=meme:0", "meme_capabilities="],
                svc("meme", Some("read"), 1)
            )
            .unwrap_err()
            .code(),
            "missing_capability"
        );
        assert!(check(&["services=meme:0"], svc("meme", Some("read"), 1)).is_ok());
    }
}
