//! Hostile input: prompt-injected URLs, hostile 402 responses and forged credentials.
// A failed step in a test or benchmark is a failed run: unwrapping is fine here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use common::{T0, balance, trade};
use l402_mcp::fetch::{FetchError, FetchRequest, Fetcher};
use l402_mcp::l402::{Credential, Macaroon, Scheme, b64};
use l402_mcp::mint::{ChallengeRequest, Seller};
use l402_mcp::netguard::NetPolicy;
use l402_mcp::wallet::embedded::DEMO_GRANT_MSAT;

fn fetcher(t: &common::Trade, policy: NetPolicy) -> Fetcher {
    Fetcher::new(
        t.buyer.payer.clone(),
        t.buyer.storage.tokens(),
        t.clock.clone(),
        policy,
    )
    .unwrap()
}

use common::fixture::listen as serve;

#[derive(Clone)]
struct Shop {
    seller: Seller,
    /// Where a paid request is redirected (another origin), if anywhere.
    redirect_to: Option<String>,
    /// Answer 402 even to a valid credential.
    always_402: bool,
}

async fn paywall(State(shop): State<Shop>, headers: HeaderMap) -> Response {
    if let Some(auth) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let v = shop
            .seller
            .verify_authorization(auth, None, None)
            .await
            .unwrap();
        if v.valid && !shop.always_402 {
            if let Some(to) = &shop.redirect_to {
                return (StatusCode::FOUND, [(header::LOCATION, to.clone())]).into_response();
            }
            return "paid content".into_response();
        }
    }
    common::challenge_402(&shop.seller, 10_000).await
}

fn shop(t: &common::Trade, redirect_to: Option<String>, always_402: bool) -> Router {
    Router::new().route("/r", get(paywall)).with_state(Shop {
        seller: t.seller.seller.clone(),
        redirect_to,
        always_402,
    })
}

#[tokio::test]
async fn private_loopback_and_metadata_addresses_are_refused_by_default() {
    let t = trade().await;
    let addr = serve(shop(&t, None, false)).await;
    let f = fetcher(&t, NetPolicy::default());
    for url in [
        format!("http://{addr}/r"),
        format!("http://localhost:{}/r", addr.port()),
        format!("http://[::ffff:127.0.0.1]:{}/r", addr.port()),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "http://10.0.0.1/".to_owned(),
        "http://[fd00:ec2::254]/".to_owned(),
        "http://0.0.0.0/".to_owned(),
    ] {
        let err = f.fetch(&FetchRequest::get(&url)).await.unwrap_err();
        assert!(matches!(err, FetchError::Blocked(_)), "{url}: {err}");
        assert!(
            err.to_string().contains("nothing was fetched or paid"),
            "{err}"
        );
    }
    // A public site that redirects to a private address is refused at the hop: simulated with a
    // loopback-allowed fetcher redirected to the metadata address.
    let bouncer = Router::new().route(
        "/",
        get(|| async {
            (
                StatusCode::FOUND,
                [(header::LOCATION, "http://169.254.169.254/")],
            )
        }),
    );
    let b = serve(bouncer).await;
    let err = fetcher(&t, NetPolicy::loopback())
        .fetch(&FetchRequest::get(&format!("http://{b}/")))
        .await
        .unwrap_err();
    assert!(matches!(err, FetchError::Blocked(_)), "{err}");
    assert_eq!(balance(&t.buyer).await, DEMO_GRANT_MSAT);
}

#[tokio::test]
async fn a_credential_never_follows_a_redirect_to_another_origin() {
    let t = trade().await;
    let seen: Arc<Mutex<Vec<Option<String>>>> = Arc::default();
    let capture = {
        let seen = seen.clone();
        Router::new().route(
            "/capture",
            get(move |headers: HeaderMap| {
                let seen = seen.clone();
                async move {
                    seen.lock().unwrap().push(
                        headers
                            .get(header::AUTHORIZATION)
                            .map(|v| v.to_str().unwrap_or("?").to_owned()),
                    );
                    "captured"
                }
            }),
        )
    };
    let other = serve(capture).await;
    // `localhost` vs `127.0.0.1` with another port: a different origin.
    let addr = serve(shop(
        &t,
        Some(format!("http://localhost:{}/capture", other.port())),
        false,
    ))
    .await;
    let f = fetcher(&t, NetPolicy::loopback());
    let r = f
        .fetch(&FetchRequest::get(&format!("http://{addr}/r")))
        .await
        .unwrap();
    assert_eq!(
        (r.status, r.body.content.as_str(), r.receipt.paid),
        (200, "captured", true)
    );
    assert_eq!(
        *seen.lock().unwrap(),
        vec![None],
        "the credential went to another origin"
    );
}

#[tokio::test]
async fn a_seller_that_answers_402_after_payment_is_not_paid_again() {
    let t = trade().await;
    let addr = serve(shop(&t, None, true)).await;
    let f = fetcher(&t, NetPolicy::loopback());
    let url = format!("http://{addr}/r");
    let err = f.fetch(&FetchRequest::get(&url)).await.unwrap_err();
    assert!(
        matches!(
            err,
            FetchError::RefusedAfterPayment {
                amount_msat: 10_000,
                ..
            }
        ),
        "{err}"
    );
    // Neither in this call nor in the next ones.
    for _ in 0..3 {
        let err = f.fetch(&FetchRequest::get(&url)).await.unwrap_err();
        assert!(matches!(err, FetchError::SellerDistrusted { .. }), "{err}");
    }
    assert_eq!(balance(&t.buyer).await, DEMO_GRANT_MSAT - 10_000);
}

#[tokio::test]
async fn response_bodies_are_cut_at_the_limit() {
    let t = trade().await;
    let big = Router::new().route("/big", get(|| async { "x".repeat(5 << 20) }));
    let addr = serve(big).await;
    let mut req = FetchRequest::get(&format!("http://{addr}/big"));
    req.max_response_bytes = 1000;
    let r = fetcher(&t, NetPolicy::loopback())
        .fetch(&req)
        .await
        .unwrap();
    assert_eq!(
        (r.body.bytes, r.body.truncated, r.body.content.len()),
        (1000, true, 1000)
    );
}

#[tokio::test]
async fn forged_credentials_of_every_kind_are_refused() {
    let t = trade().await;
    let seller = &t.seller.seller;
    let mint = |valid_for| ChallengeRequest {
        amount_msat: 1_000,
        service: Some("api".into()),
        capabilities: vec!["read".into()],
        valid_for_secs: valid_for,
        ..Default::default()
    };
    let a = seller.create_challenge(&mint(Some(60))).await.unwrap();
    let b = seller.create_challenge(&mint(None)).await.unwrap();
    let payer = &t.buyer.payer;
    let pay = async |inv: String| {
        payer
            .pay(&l402_mcp::pay::PayRequest {
                invoice: &inv,
                ..Default::default()
            })
            .await
            .unwrap()
            .preimage
    };
    let (pa, pb) = (pay(a.invoice.clone()).await, pay(b.invoice.clone()).await);
    let mac_a = Macaroon::deserialize(&b64::decode(&a.macaroon).unwrap()).unwrap();
    let mac_b = Macaroon::deserialize(&b64::decode(&b.macaroon).unwrap()).unwrap();
    let verdict = async |m: &Macaroon, pre: &l402_mcp::l402::Preimage| {
        let auth = Credential::format(Scheme::L402, &m.serialize(), pre);
        seller
            .verify_authorization(&auth, Some("api"), Some("read"))
            .await
            .unwrap()
            .reason_code
            .unwrap_or("valid")
    };
    assert_eq!(verdict(&mac_a, &pa).await, "valid");

    // Anyone holding a macaroon can add caveats (the chain extends from its signature): narrowing
    // is fine, widening, or a caveat we do not understand, is refused.
    let extend = |m: &Macaroon, caveat: &str| {
        let mut m = m.clone();
        m.add_caveat(caveat.as_bytes());
        m
    };
    assert_eq!(
        verdict(&extend(&mac_a, "api_capabilities=read"), &pa).await,
        "valid"
    );
    assert_eq!(
        verdict(&extend(&mac_a, "services=api:0,admin:0"), &pa).await,
        "widened_caveat"
    );
    assert_eq!(
        verdict(&extend(&mac_a, "api_capabilities=read,write"), &pa).await,
        "widened_caveat"
    );
    assert_eq!(
        verdict(
            &extend(&mac_a, &format!("api_valid_until={}", T0 + 10_000)),
            &pa
        )
        .await,
        "widened_caveat"
    );
    assert_eq!(
        verdict(&extend(&mac_a, "admin=true"), &pa).await,
        "unknown_caveat"
    );

    // Tampering with the bytes breaks the signature.
    let mut bytes = mac_a.serialize();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    let auth = Credential::format(Scheme::L402, &bytes, &pa);
    assert_eq!(
        seller
            .verify_authorization(&auth, None, None)
            .await
            .unwrap()
            .reason_code,
        Some("bad_signature")
    );
    // Dropping a caveat (rebuilding without it keeps a stale signature) breaks it too.
    let stripped = strip_last_caveat(&mac_a);
    assert_eq!(verdict(&stripped, &pa).await, "bad_signature");

    // Swapped identifiers and preimages.
    assert_eq!(verdict(&mac_a, &pb).await, "preimage_mismatch");
    let swapped = swap_identifier(&mac_a, &mac_b);
    assert_eq!(verdict(&swapped, &pb).await, "bad_signature");

    // Expired.
    t.clock.advance(61);
    assert_eq!(verdict(&mac_a, &pa).await, "expired");
    assert_eq!(verdict(&mac_b, &pb).await, "valid");
}

/// The V2 bytes of `m` without its last caveat, signature unchanged.
fn strip_last_caveat(m: &Macaroon) -> Macaroon {
    let caveats = m.caveats();
    rebuild(m.identifier(), &caveats[..caveats.len() - 1], m.signature())
}

/// `m`'s caveats and signature under `other`'s identifier.
fn swap_identifier(m: &Macaroon, other: &Macaroon) -> Macaroon {
    rebuild(other.identifier(), m.caveats(), m.signature())
}

/// Assemble V2 bytes by hand (as an attacker would) and parse them.
fn rebuild(identifier: &[u8], caveats: &[Vec<u8>], signature: &[u8; 32]) -> Macaroon {
    fn field(out: &mut Vec<u8>, kind: u8, data: &[u8]) {
        out.push(kind);
        out.push(u8::try_from(data.len()).unwrap());
        out.extend_from_slice(data);
    }
    let mut out = vec![2];
    field(&mut out, 1, b"lsat");
    field(&mut out, 2, identifier);
    out.push(0);
    for c in caveats {
        field(&mut out, 2, c);
        out.push(0);
    }
    out.push(0);
    field(&mut out, 6, signature);
    Macaroon::deserialize(&out).unwrap()
}

/// A seller with single-use tokens (l402kit) answers 401 to a token already used: the cached
/// credential is dropped and the next call pays once more, instead of failing forever.
#[tokio::test]
async fn a_single_use_token_refused_with_401_is_dropped_and_paid_again() {
    let t = trade().await;
    let used: Arc<Mutex<Vec<String>>> = Arc::default();
    let seller = t.seller.seller.clone();
    let app = Router::new().route(
        "/once",
        get(move |headers: HeaderMap| {
            let (used, seller) = (used.clone(), seller.clone());
            async move {
                if let Some(auth) = headers
                    .get(header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                {
                    if used.lock().unwrap().iter().any(|a| a == auth) {
                        return (StatusCode::UNAUTHORIZED, "Token already used").into_response();
                    }
                    if seller
                        .verify_authorization(auth, None, None)
                        .await
                        .unwrap()
                        .valid
                    {
                        used.lock().unwrap().push(auth.to_owned());
                        return "data".into_response();
                    }
                }
                common::challenge_402(&seller, 3_000).await
            }
        }),
    );
    let addr = serve(app).await;
    let f = fetcher(&t, NetPolicy::loopback());
    let url = format!("http://{addr}/once");
    for _ in 0..3 {
        let r = f.fetch(&FetchRequest::get(&url)).await.unwrap();
        assert_eq!(
            (r.status, r.body.content.as_str(), r.receipt.paid),
            (200, "data", true)
        );
    }
    assert_eq!(balance(&t.buyer).await, DEMO_GRANT_MSAT - 9_000);
}

/// The caller's own credentials (Authorization, Cookie) are for the origin they asked for: a
/// redirect to another origin does not carry them; other headers, and same-origin hops, do.
#[tokio::test]
async fn the_callers_own_credentials_do_not_follow_a_redirect_to_another_origin() {
    let t = trade().await;
    type Seen = Arc<Mutex<Vec<(Option<String>, Option<String>, Option<String>)>>>;
    let seen: Seen = Arc::default();
    let capture = |seen: Seen| {
        get(move |headers: HeaderMap| {
            let seen = seen.clone();
            async move {
                let h = |n: header::HeaderName| {
                    headers.get(n).map(|v| v.to_str().unwrap_or("?").to_owned())
                };
                seen.lock().unwrap().push((
                    h(header::AUTHORIZATION),
                    h(header::COOKIE),
                    h(header::HeaderName::from_static("x-custom")),
                ));
                "captured"
            }
        })
    };
    let other = serve(Router::new().route("/capture", capture(seen.clone()))).await;
    let foreign = format!("http://localhost:{}/capture", other.port());
    let app = Router::new()
        .route(
            "/away",
            get(move || {
                let to = foreign.clone();
                async move { (StatusCode::FOUND, [(header::LOCATION, to)]) }
            }),
        )
        .route(
            "/here",
            get(|| async { (StatusCode::FOUND, [(header::LOCATION, "/capture")]) }),
        )
        .route("/capture", capture(seen.clone()));
    let addr = serve(app).await;
    let f = fetcher(&t, NetPolicy::loopback());
    let mut req = FetchRequest::get(&format!("http://{addr}/away"));
    req.headers = vec![
        ("Authorization".into(), "Bearer user-secret".into()),
        ("Cookie".into(), "session=abc".into()),
        ("X-Custom".into(), "kept".into()),
    ];
    assert_eq!(f.fetch(&req).await.unwrap().body.content, "captured");
    req.url = format!("http://{addr}/here");
    assert_eq!(f.fetch(&req).await.unwrap().body.content, "captured");
    assert_eq!(
        *seen.lock().unwrap(),
        vec![
            (None, None, Some("kept".to_owned())),
            (
                Some("Bearer user-secret".to_owned()),
                Some("session=abc".to_owned()),
                Some("kept".to_owned())
            ),
        ]
    );
}

/// Paid, then the resend fails (here: the seller redirects the paid request to the cloud
/// metadata address): the error says money moved, with the amount and hash, and the next call
/// presents the kept credential instead of paying again.
#[tokio::test]
async fn a_failure_after_paying_says_what_was_paid_and_the_next_call_does_not_pay_again() {
    let t = trade().await;
    let addr = serve(shop(
        &t,
        Some("http://169.254.169.254/latest/meta-data".into()),
        false,
    ))
    .await;
    let f = fetcher(&t, NetPolicy::loopback());
    let url = format!("http://{addr}/r");
    let err = f.fetch(&FetchRequest::get(&url)).await.unwrap_err();
    assert!(
        matches!(
            &err,
            FetchError::PaidButFailed {
                amount_msat: 10_000,
                cause,
                ..
            } if matches!(**cause, FetchError::Blocked(_))
        ),
        "{err}"
    );
    assert!(err.money_may_have_moved());
    let text = err.to_string();
    assert!(
        text.contains("paid 10000 msat") && text.contains("without paying again"),
        "{text}"
    );
    let err = f.fetch(&FetchRequest::get(&url)).await.unwrap_err();
    assert!(matches!(err, FetchError::Blocked(_)), "{err}");
    assert_eq!(balance(&t.buyer).await, DEMO_GRANT_MSAT - 10_000);
}

/// A 402 despite a cached credential (the seller rotated its keys): the credential is dropped
/// and the new challenge is paid once; the call after that reuses the new credential.
#[tokio::test]
async fn a_402_despite_a_cached_credential_pays_once_more_and_never_loops() {
    let t = trade().await;
    let addr = serve(shop(&t, None, false)).await;
    let f = fetcher(&t, NetPolicy::loopback());
    let url = format!("http://{addr}/r");
    let r = f.fetch(&FetchRequest::get(&url)).await.unwrap();
    assert!(r.receipt.paid && !r.receipt.token_reused);
    let r = f.fetch(&FetchRequest::get(&url)).await.unwrap();
    assert!(!r.receipt.paid && r.receipt.token_reused);
    // The seller forgets every root key it minted: the cached credential now gets a 402.
    sqlx::query("DELETE FROM root_keys")
        .execute(
            &sqlx::SqlitePool::connect(&format!(
                "sqlite://{}",
                t.dir.path().join(l402_mcp::storage::LEDGER_FILE).display()
            ))
            .await
            .unwrap(),
        )
        .await
        .unwrap();
    // Deleted behind the seller's back (not through its store): its verification cache
    // trusts what it read for up to a second on SQLite (src/storage/verify_cache.rs).
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    let r = f.fetch(&FetchRequest::get(&url)).await.unwrap();
    assert_eq!(
        (
            r.status,
            r.body.content.as_str(),
            r.receipt.paid,
            r.receipt.token_reused
        ),
        (200, "paid content", true, false)
    );
    let r = f.fetch(&FetchRequest::get(&url)).await.unwrap();
    assert!(!r.receipt.paid && r.receipt.token_reused);
    assert_eq!(balance(&t.buyer).await, DEMO_GRANT_MSAT - 20_000);
}

/// The LNbits-tutorial style: a JSON body with an invoice and no macaroon; pay it, then resend
/// the request with `payment_hash` in the JSON body. Paid under the same rules, once.
#[tokio::test]
async fn a_json_body_challenge_without_a_macaroon_is_paid_and_resent_with_the_payment_hash() {
    let t = trade().await;
    let seller = t.seller.seller.clone();
    let wallet = t.seller.wallet.clone();
    let bodies: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = bodies.clone();
    let app = Router::new().route(
        "/tutorial",
        axum::routing::post(move |body: String| {
            let (seller, wallet, seen) = (seller.clone(), wallet.clone(), seen.clone());
            async move {
                seen.lock().unwrap().push(body.clone());
                let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
                if let Some(hash) = v["payment_hash"].as_str() {
                    // The seller checks its own invoice was paid.
                    let hash = l402_mcp::l402::PaymentHash(l402_mcp::l402::parse_hex32(hash).unwrap_or_default());
                    let paid = matches!(
                        wallet.lookup_incoming(&hash).await,
                        Ok(l402_mcp::wallet::IncomingStatus::Settled { .. })
                    );
                    return if paid {
                        axum::Json(serde_json::json!({"answer": 42, "q": v["q"]})).into_response()
                    } else {
                        StatusCode::BAD_REQUEST.into_response()
                    };
                }
                let (inv, _) = seller.create_invoice(7_000, "tutorial", 600).await.unwrap();
                (
                    StatusCode::PAYMENT_REQUIRED,
                    axum::Json(serde_json::json!({"payment_request": inv.bolt11, "payment_hash": hex::encode(inv.payment_hash)})),
                )
                    .into_response()
            }
        }),
    );
    let addr = serve(app).await;
    let f = fetcher(&t, NetPolicy::loopback());
    let mut req = FetchRequest::get(&format!("http://{addr}/tutorial"));
    req.method = "POST".into();
    req.body = Some(r#"{"q":"life"}"#.into());
    // Above the caller's cap: refused, nothing paid.
    req.max_price_msat = Some(6_000);
    let err = f.fetch(&req).await.unwrap_err();
    assert!(err.to_string().contains("above this call's limit"), "{err}");
    assert_eq!(balance(&t.buyer).await, DEMO_GRANT_MSAT);
    req.max_price_msat = None;
    let r = f.fetch(&req).await.unwrap();
    assert_eq!(r.status, 200);
    assert!(r.receipt.paid && r.receipt.amount_msat == 7_000);
    let answer: serde_json::Value = serde_json::from_str(&r.body.content).unwrap();
    assert_eq!(
        (answer["answer"].as_u64(), answer["q"].as_str()),
        (Some(42), Some("life"))
    );
    let last = bodies.lock().unwrap().last().cloned().unwrap();
    let last: serde_json::Value = serde_json::from_str(&last).unwrap();
    assert_eq!(
        last["payment_hash"].as_str(),
        r.receipt.payment_hash.as_deref()
    );
    assert_eq!(last["q"], "life");
    assert_eq!(balance(&t.buyer).await, DEMO_GRANT_MSAT - 7_000);
}
