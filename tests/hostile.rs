//! Hostile input: prompt-injected URLs, hostile 402 responses and forged credentials.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
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
        t.buyer.ledger.clone(),
        t.clock.clone(),
        policy,
    )
    .unwrap()
}

async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

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
    let c = shop
        .seller
        .create_challenge(&ChallengeRequest {
            amount_msat: 10_000,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut r = StatusCode::PAYMENT_REQUIRED.into_response();
    for line in c.www_authenticate {
        r.headers_mut().append(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_str(&line).unwrap(),
        );
    }
    r
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
    let verdict = async |m: &Macaroon, pre: &[u8; 32]| {
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
                let c = seller
                    .create_challenge(&ChallengeRequest {
                        amount_msat: 3_000,
                        ..Default::default()
                    })
                    .await
                    .unwrap();
                let mut r = StatusCode::PAYMENT_REQUIRED.into_response();
                for line in c.www_authenticate {
                    r.headers_mut().append(
                        header::WWW_AUTHENTICATE,
                        HeaderValue::from_str(&line).unwrap(),
                    );
                }
                r
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
