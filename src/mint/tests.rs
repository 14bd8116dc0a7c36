//! The memo of verified credentials (`memo.rs`): a credential presented again gets the answer a
//! full verification would give, request after request, refusals included.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::app::App;
use crate::clock::{ManualClock, SharedClock};
use crate::l402::{Scheme, b64};
use crate::pay::PayRequest;

const T0: u64 = 1_800_000_000;

struct Sold {
    _dir: tempfile::TempDir,
    clock: Arc<ManualClock>,
    seller: App,
    /// The `Authorization` value of the token bought.
    auth: String,
    key_id: [u8; 32],
}

/// A token of `request`'s terms, bought by an embedded wallet from another in one data dir.
async fn sold(request: ChallengeRequest) -> Sold {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let shared: SharedClock = clock.clone();
    let buyer = App::open_embedded(dir.path(), "buyer", shared.clone())
        .await
        .unwrap();
    let seller = App::open_embedded(dir.path(), "seller", shared)
        .await
        .unwrap();
    let c = seller.seller.create_challenge(&request).await.unwrap();
    let paid = buyer
        .payer
        .pay(&PayRequest {
            invoice: &c.invoice,
            ..Default::default()
        })
        .await
        .unwrap();
    let mac = b64::decode(&c.macaroon).unwrap();
    let key_id = crate::l402::sha256(Macaroon::deserialize(&mac).unwrap().identifier());
    Sold {
        _dir: dir,
        clock,
        seller,
        auth: Credential::format(Scheme::L402, &mac, &paid.preimage),
        key_id,
    }
}

/// A token of 1 sat with no terms, bought and admitted once (so remembered).
async fn admitted() -> Sold {
    let t = sold(ChallengeRequest {
        amount_msat: 1_000,
        ..Default::default()
    })
    .await;
    assert!(
        t.seller
            .seller
            .admit(&t.auth, Access::default())
            .await
            .unwrap()
            .valid
    );
    t
}

fn key_of(authorization: &str) -> [u8; 32] {
    Memo::key(authorization).unwrap()
}

/// The verdict as JSON, remembered or not.
async fn verdict(s: &Seller, auth: &str, access: Access<'_>, remembered: bool) -> String {
    if !remembered {
        s.memo.forget(&key_of(auth));
    }
    let v = s.admit(auth, access).await.unwrap();
    serde_json::to_string(&v).unwrap()
}

fn access<'a>(service: &'a str, method: &'a str, path: &'a str) -> Access<'a> {
    Access {
        service: Some(service),
        method: Some(method),
        path: Some(path),
        ..Access::default()
    }
}

#[tokio::test]
async fn a_remembered_credential_gets_the_full_verdict_on_every_request() {
    let t = sold(ChallengeRequest {
        amount_msat: 2_000,
        service: Some("weather".into()),
        capabilities: vec!["forecast".into()],
        valid_for_secs: Some(600),
        methods: vec!["GET".into()],
        path_prefix: Some("/api".into()),
        ..Default::default()
    })
    .await;
    let s = &t.seller.seller;
    let ok = access("weather", "GET", "/api/today");
    let first = verdict(s, &t.auth, ok, false).await;
    assert!(first.contains(r#""valid":true"#), "{first}");
    assert_eq!(s.memo.len(), 1, "a valid credential is remembered");

    let requests = [
        ok,
        access("news", "GET", "/api/today"),
        access("weather", "POST", "/api/today"),
        access("weather", "GET", "/other"),
        Access {
            capability: Some("admin"),
            ..ok
        },
        Access {
            capability: Some("forecast"),
            ..ok
        },
        Access {
            price_msat: Some(3_000),
            ..ok
        },
        Access::default(),
    ];
    for a in requests {
        let remembered = verdict(s, &t.auth, a, true).await;
        let full = verdict(s, &t.auth, a, false).await;
        assert_eq!(remembered, full, "{a:?}");
        // The full path remembers the credential again when it is valid.
        verdict(s, &t.auth, ok, true).await;
    }
    // Refused requests did not make it forget; the clock still counts.
    assert_eq!(s.memo.len(), 1);
    t.clock.advance(601);
    let expired = verdict(s, &t.auth, ok, true).await;
    assert!(expired.contains(r#""reason_code":"expired""#), "{expired}");
    assert_eq!(expired, verdict(s, &t.auth, ok, false).await);
}

#[tokio::test]
async fn a_revoked_token_is_refused_and_forgotten() {
    let t = admitted().await;
    let s = &t.seller.seller;
    let any = Access::default();
    assert_eq!(s.memo.len(), 1);
    assert!(t.seller.storage.seller().revoke(&t.key_id).await.unwrap());
    let after = verdict(s, &t.auth, any, true).await;
    assert!(
        after.contains(r#""reason_code":"unknown_token""#),
        "{after}"
    );
    assert_eq!(s.memo.len(), 0);
}

#[tokio::test]
async fn a_remembered_n_use_token_counts_every_use() {
    let t = sold(ChallengeRequest {
        amount_msat: 1_000,
        max_uses: Some(3),
        ..Default::default()
    })
    .await;
    let s = &t.seller.seller;
    for _ in 0..3 {
        let v = s.admit(&t.auth, Access::default()).await.unwrap();
        assert!(v.valid, "{v:?}");
    }
    assert_eq!(s.memo.len(), 1);
    let v = s.admit(&t.auth, Access::default()).await.unwrap();
    assert_eq!(v.reason_code, Some("used_up"));
}

#[tokio::test]
async fn only_the_exact_value_verified_is_remembered() {
    let t = admitted().await;
    let s = &t.seller.seller;
    // The same token with another preimage, and a value that does not parse, are refused
    // (the full path) and not remembered.
    let (mac, _) = t.auth["L402 ".len()..].split_once(':').unwrap();
    let wrong = format!("L402 {mac}:{}", "00".repeat(32));
    let v = s.admit(&wrong, Access::default()).await.unwrap();
    assert_eq!(v.reason_code, Some("preimage_mismatch"));
    let v = s.admit("L402 x", Access::default()).await.unwrap();
    assert_eq!(v.reason_code, Some("malformed"));
    assert_eq!(s.memo.len(), 1);
    // A root key that is not the one the signature was checked with voids the memory.
    let key = key_of(&t.auth);
    let m = s.memo.get(&key).unwrap();
    s.memo.keep(key, with_root_key(&m, RootKey([7; 32])));
    assert!(s.admit(&t.auth, Access::default()).await.unwrap().valid);
    let root_key = real_root_key(s, &m).await;
    assert!(s.memo.get(&key).unwrap().signed_with(&root_key));
}

fn with_root_key(m: &Remembered, root_key: RootKey) -> Remembered {
    let (caveats, strings) = (m.caveats.clone(), m.caveat_strings.clone());
    Remembered::new(m.key_id, m.identifier, caveats, strings, root_key)
}

async fn real_root_key(s: &Seller, m: &Remembered) -> RootKey {
    let (root_key, _) = s
        .tokens
        .root_key_and_terms(&m.key_id, &m.identifier.token_id)
        .await
        .unwrap();
    root_key.unwrap()
}

#[tokio::test]
async fn a_remembered_value_is_answered_from_memory() {
    let t = admitted().await;
    let s = &t.seller.seller;
    // What was remembered for the real value, filed under a value that does not even parse:
    // the answer can only have come from the memo.
    let m = s.memo.get(&key_of(&t.auth)).unwrap();
    let copy = with_root_key(&m, real_root_key(s, &m).await);
    s.memo.keep(key_of("L402 unparsable"), copy);
    assert!(
        s.admit("L402 unparsable", Access::default())
            .await
            .unwrap()
            .valid
    );
}

#[tokio::test]
async fn a_token_attenuated_past_the_size_limit_is_verified_in_full_every_time() {
    let t = sold(ChallengeRequest {
        amount_msat: 1_000,
        ..Default::default()
    })
    .await;
    let s = &t.seller.seller;
    // The buyer adds a caveat for a service it does not use: still valid, and too big to keep.
    let (mac, preimage) = t.auth["L402 ".len()..].split_once(':').unwrap();
    let mut m = Macaroon::deserialize(&b64::decode(mac).unwrap()).unwrap();
    m.add_caveat(format!("zz_capabilities={}", "x".repeat(1_000)).as_bytes());
    let long = format!("L402 {}:{preimage}", b64::encode(&m.serialize()));
    for _ in 0..2 {
        let v = s.admit(&long, Access::default()).await.unwrap();
        assert!(v.valid, "{v:?}");
    }
    assert_eq!(s.memo.len(), 0);
}
