//! The `Payment` scheme (MPP) over HTTP, end to end and offline: our buyer (`fetch_paid`'s
//! fetcher) pays our gateway (the paywall in front of a reverse proxy) with two embedded
//! wallets of one data dir, in each mode: a charge, a session topped up and closed with its
//! refund, a route that speaks only `Payment`, one that speaks only L402, and both offered.
//! Then what a buyer must refuse before paying (an invoice that does not match its challenge,
//! another network, an expired challenge) and what a seller must refuse (a replay, a tampered
//! echo, a credential for a cheaper route).
// A failed step in a test is a failed test: unwrapping is fine here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::any;
use common::fixture::listen_gateway;
use common::{T0, Trade, balance, trade};
use l402_mcp::fetch::{FetchError, FetchRequest, Fetcher, SchemePreference};
use l402_mcp::gateway::discovery::About;
use l402_mcp::gateway::{self, AuthMode, Paywall, Price, Route};
use l402_mcp::l402::mpp::lightning::{ChargeRequest, Payload};
use l402_mcp::l402::mpp::{
    PAYMENT_REQUIRED_PROBLEM, PaymentChallenge, PaymentCredential, accept, challenge, credential,
    receipt,
};
use l402_mcp::l402::{MSAT_PER_SAT, PaymentHash};
use l402_mcp::netguard::NetPolicy;
use l402_mcp::storage::{Direction, PaymentFilter, Status};
use serde_json::Value;

async fn listen(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await;
    });
    addr
}

/// A route at `/paid` for `sats`, speaking `auth`.
fn route(sats: u64, auth: AuthMode, sessions: bool) -> Route {
    let mut r = Route::new(
        "/paid",
        Price::Fixed {
            msat: sats * MSAT_PER_SAT,
        },
    );
    r.service = "weather".into();
    r.auth = auth;
    r.sessions = sessions;
    r.session_deposit_requests = Some(5);
    r.description = Some("Weather report".into());
    r
}

/// The gateway in front of an upstream that says which path it served, and whether a
/// credential reached it.
async fn gateway(t: &Trade, routes: Vec<Route>) -> SocketAddr {
    let up = listen(Router::new().fallback(any(
        |headers: axum::http::HeaderMap, uri: axum::http::Uri| async move {
            format!(
                "served {} (credential forwarded: {})",
                uri.path(),
                headers.contains_key(header::AUTHORIZATION)
            )
        },
    )))
    .await;
    let mpp = t.seller.mpp.clone().with_realm("api.test").unwrap();
    let paywall = Paywall::new(t.seller.seller.clone(), routes).with_mpp(mpp);
    let about = About {
        name: "Test".into(),
        description: "things".into(),
        base_url: None,
        network: "regtest".into(),
    };
    listen_gateway(gateway::app(paywall, &format!("http://{up}"), about, &[]).unwrap()).await
}

fn fetcher(t: &Trade) -> Fetcher {
    Fetcher::new(
        t.buyer.payer.clone(),
        t.buyer.storage.tokens(),
        t.clock.clone(),
        NetPolicy::loopback(),
    )
    .unwrap()
    .with_sessions(t.buyer.storage.buyer_sessions())
}

fn get(addr: SocketAddr, prefer: Option<SchemePreference>) -> FetchRequest {
    let mut r = FetchRequest::get(&format!("http://{addr}/paid"));
    r.prefer = prefer;
    r
}

async fn payments(
    t: &Trade,
    wallet: &str,
    direction: Direction,
) -> Vec<l402_mcp::storage::Payment> {
    let app = if wallet == "buyer" {
        &t.buyer
    } else {
        &t.seller
    };
    app.ledger
        .list_payments(
            wallet,
            &PaymentFilter {
                direction: Some(direction),
                ..Default::default()
            },
            100,
        )
        .await
        .unwrap()
        .into_iter()
        .filter(|p| p.status != Status::Failed)
        .collect()
}

fn www_authenticate(resp: &reqwest::Response) -> Vec<String> {
    resp.headers()
        .get_all(header::WWW_AUTHENTICATE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_charge_pays_for_one_request_with_a_receipt() {
    let t = trade().await;
    let addr = gateway(&t, vec![route(21, AuthMode::Mpp, false)]).await;
    let f = fetcher(&t);
    let (b0, s0) = (balance(&t.buyer).await, balance(&t.seller).await);
    let r = f.fetch(&get(addr, None)).await.unwrap();
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert!(
        r.body
            .content
            .contains("served /paid (credential forwarded: false)"),
        "{:?}",
        r.body
    );
    assert!(r.receipt.paid);
    assert_eq!(r.receipt.amount_msat, 21_000);
    let used = r.receipt.payment.clone().unwrap();
    assert_eq!((used.intent, used.action), ("charge", "charge"));
    let rc = used.receipt.unwrap();
    assert_eq!(rc["status"], "success");
    assert_eq!(rc["method"], "lightning");
    assert_eq!(
        rc["reference"],
        r.receipt.payment_hash.clone().unwrap().as_str()
    );
    assert!(
        rc["challengeId"].as_str().is_some_and(|id| id.len() == 43),
        "{rc}"
    );
    assert!(
        r.headers
            .iter()
            .any(|(k, v)| k == "cache-control" && v == "private"),
        "{:?}",
        r.headers
    );
    assert_eq!(balance(&t.buyer).await, b0 - 21_000);
    assert_eq!(balance(&t.seller).await, s0 + 21_000);
    // Single use: never cached, so the next request pays again.
    let again = f.fetch(&get(addr, None)).await.unwrap();
    assert!(again.receipt.paid && !again.receipt.token_reused);
    assert_ne!(again.receipt.payment_hash, r.receipt.payment_hash);
    assert_eq!(balance(&t.buyer).await, b0 - 42_000);
    assert_eq!(payments(&t, "buyer", Direction::Out).await.len(), 2);
    // The seller recorded both as income and sales.
    let income: Vec<_> = payments(&t, "seller", Direction::In)
        .await
        .into_iter()
        .filter(|p| p.status == Status::Succeeded)
        .collect();
    assert_eq!(income.len(), 2);
    assert_eq!(
        t.seller.seller.tokens().sales_since(0).await.unwrap().count,
        2
    );
}

#[tokio::test]
async fn the_402_is_apertures() {
    let t = trade().await;
    let addr = gateway(&t, vec![route(5, AuthMode::Both, true)]).await;
    let resp = reqwest::get(format!("http://{addr}/paid")).await.unwrap();
    assert_eq!(resp.status(), 402);
    let lines = www_authenticate(&resp);
    let schemes: Vec<&str> = lines.iter().map(|l| l.split(' ').next().unwrap()).collect();
    assert_eq!(schemes, ["LSAT", "L402", "Payment", "Payment"], "{lines:?}");
    assert_eq!(resp.headers()[header::CACHE_CONTROL], "no-store");
    assert_eq!(
        resp.headers()[header::CONTENT_TYPE],
        "application/problem+json"
    );
    let offers = challenge::parse_headers(lines.iter().map(String::as_str)).challenges;
    assert_eq!(
        offers.iter().map(|c| c.intent.as_str()).collect::<Vec<_>>(),
        ["charge", "session"]
    );
    for (c, line) in offers.iter().zip(&lines[2..]) {
        // Every value quoted, in Aperture's order, and written back byte for byte.
        assert_eq!(&c.header_value(), line);
        assert!(line.starts_with("Payment id=\""), "{line}");
        assert_eq!(c.realm, "api.test");
        let expires = l402_mcp::l402::mpp::time::parse(c.expires.as_deref().unwrap()).unwrap();
        assert_eq!(expires, T0 + 900);
    }
    let request = ChargeRequest::parse(&offers[0].request_json().unwrap()).unwrap();
    assert_eq!(
        (request.amount_sats, request.network.as_deref()),
        (5, Some("regtest"))
    );
    assert_eq!(request.description.as_deref(), Some("Weather report"));
    // The request is JCS: re-encoding its JSON gives the same string (what the id binds).
    assert_eq!(
        challenge::encode_json(&offers[0].request_json().unwrap()),
        offers[0].request
    );
    assert_eq!(resp.text().await.unwrap(), PAYMENT_REQUIRED_PROBLEM);

    // Without the LSAT line, for clients that refuse a 402 whose first challenge is LSAT.
    let mut r = route(5, AuthMode::Both, false);
    r.send_lsat = false;
    let addr = gateway(&t, vec![r]).await;
    let resp = reqwest::get(format!("http://{addr}/paid")).await.unwrap();
    let lines = www_authenticate(&resp);
    assert!(
        lines[0].starts_with("L402 ") && lines[1].starts_with("Payment "),
        "{lines:?}"
    );
    assert_eq!(lines.len(), 2);
}

/// The gateway ranks its Payment offers by the buyer's `Accept-Payment` (as mppx's sellers
/// do), and does not make (nor invoice) those the buyer does not take; our buyer says what it
/// takes, best first.
#[tokio::test]
async fn offers_follow_accept_payment() {
    let t = trade().await;
    let addr = gateway(&t, vec![route(5, AuthMode::Both, true)]).await;
    let cases = [
        (
            "lightning/session, lightning/charge;q=0.5",
            vec!["session", "charge"],
        ),
        ("lightning/session", vec!["session"]),
        ("*/*, lightning/charge;q=0", vec!["session"]),
        (
            "lightning/charge, lightning/session;q=0.5",
            vec!["charge", "session"],
        ),
        // Wants none, or does not parse: every offer.
        ("tempo/charge", vec!["charge", "session"]),
        ("Lightning/Charge;q=9", vec!["charge", "session"]),
    ];
    for (accept, want) in cases {
        let resp = reqwest::Client::new()
            .get(format!("http://{addr}/paid"))
            .header("accept-payment", accept)
            .send()
            .await
            .unwrap();
        let lines = www_authenticate(&resp);
        assert!(lines[0].starts_with("LSAT ") && lines[1].starts_with("L402 "));
        let offers = challenge::parse_headers(lines.iter().map(String::as_str)).challenges;
        let intents: Vec<&str> = offers.iter().map(|c| c.intent.as_str()).collect();
        assert_eq!(intents, want, "{accept}");
    }
    // What our buyer sends: by its preference, sessions only when it keeps them.
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    let echo = listen(
        Router::new().fallback(any(move |headers: axum::http::HeaderMap| {
            let log = log.clone();
            async move {
                let v = headers
                    .get("accept-payment")
                    .map(|v| v.to_str().unwrap().to_owned());
                log.lock().unwrap().push(v);
                "free"
            }
        })),
    )
    .await;
    let url = format!("http://{echo}/");
    let mut session_first = FetchRequest::get(&url);
    session_first.prefer = Some(SchemePreference::Session);
    let mut own = FetchRequest::get(&url);
    own.headers = vec![("Accept-Payment".into(), "lightning/charge;q=0.2".into())];
    let without_sessions = Fetcher::new(
        t.buyer.payer.clone(),
        t.buyer.storage.tokens(),
        t.clock.clone(),
        NetPolicy::loopback(),
    )
    .unwrap();
    fetcher(&t).fetch(&FetchRequest::get(&url)).await.unwrap();
    fetcher(&t).fetch(&session_first).await.unwrap();
    fetcher(&t).fetch(&own).await.unwrap();
    without_sessions
        .fetch(&FetchRequest::get(&url))
        .await
        .unwrap();
    let seen: Vec<String> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|v| v.clone().unwrap())
        .collect();
    assert_eq!(
        seen,
        [
            "lightning/charge, lightning/session;q=0.5",
            "lightning/session, lightning/charge;q=0.5",
            "lightning/charge;q=0.2",
            "lightning/charge",
        ]
    );
}

#[tokio::test]
async fn each_scheme_alone_and_both_offered() {
    let t = trade().await;
    // L402 only: no Payment line, the L402 JSON body, and fetch_paid pays L402.
    let l402 = gateway(&t, vec![route(3, AuthMode::L402, false)]).await;
    let resp = reqwest::get(format!("http://{l402}/paid")).await.unwrap();
    assert!(
        www_authenticate(&resp)
            .iter()
            .all(|l| !l.starts_with("Payment"))
    );
    assert_eq!(resp.headers()[header::CONTENT_TYPE], "application/json");
    let f = fetcher(&t);
    let r = f
        .fetch(&get(l402, Some(SchemePreference::Payment)))
        .await
        .unwrap();
    assert_eq!((r.status, r.receipt.payment.is_none()), (200, true));
    assert_eq!(r.receipt.scheme, Some(l402_mcp::l402::Scheme::L402));
    // A Payment credential is refused where only L402 is sold.
    let mpp_only = gateway(&t, vec![route(3, AuthMode::Mpp, false)]).await;
    let resp = reqwest::get(format!("http://{mpp_only}/paid"))
        .await
        .unwrap();
    let lines = www_authenticate(&resp);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let offer = challenge::parse_headers(lines.iter().map(String::as_str))
        .challenges
        .remove(0);
    let preimage = pay_offer(&t, &offer).await;
    let auth = credential::authorization(&offer, &Payload::Charge { preimage });
    let at_l402 = reqwest::Client::new()
        .get(format!("http://{l402}/paid"))
        .header(header::AUTHORIZATION, &auth)
        .send()
        .await
        .unwrap();
    assert_eq!(
        at_l402.status(),
        402,
        "an L402-only route takes no Payment credential"
    );
    // ... and taken where Payment is sold (the same credential, not yet used).
    let ok = reqwest::Client::new()
        .get(format!("http://{mpp_only}/paid"))
        .header(header::AUTHORIZATION, &auth)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert!(ok.headers().contains_key(receipt::HEADER));

    // Both offered: L402 by default (as lnget), the charge when preferred.
    let both = gateway(&t, vec![route(4, AuthMode::Both, false)]).await;
    let r = f.fetch(&get(both, None)).await.unwrap();
    assert_eq!(r.receipt.scheme, Some(l402_mcp::l402::Scheme::L402));
    // (A fresh gateway: the L402 token just bought would be presented again here.)
    let both = gateway(&t, vec![route(4, AuthMode::Both, false)]).await;
    let r = f
        .fetch(&get(both, Some(SchemePreference::Payment)))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.receipt.payment.unwrap().intent, "charge");
}

/// Pay a charge offer's invoice from the buyer's wallet: its preimage.
async fn pay_offer(t: &Trade, c: &PaymentChallenge) -> l402_mcp::l402::Preimage {
    let r = ChargeRequest::parse(&c.request_json().unwrap()).unwrap();
    t.buyer
        .payer
        .pay(&l402_mcp::pay::PayRequest {
            invoice: &r.invoice,
            ..Default::default()
        })
        .await
        .unwrap()
        .preimage
}

#[tokio::test]
async fn the_seller_refuses_replays_tampering_and_cheaper_challenges() {
    let t = trade().await;
    let addr = gateway(
        &t,
        vec![route(2, AuthMode::Mpp, false), {
            let mut r = route(50, AuthMode::Mpp, false);
            r.path = "/dear".into();
            r
        }],
    )
    .await;
    let http = reqwest::Client::new();
    let offer = |path: &'static str| {
        let http = http.clone();
        async move {
            let resp = http
                .get(format!("http://{addr}{path}"))
                .send()
                .await
                .unwrap();
            let lines = www_authenticate(&resp);
            challenge::parse_headers(lines.iter().map(String::as_str))
                .challenges
                .remove(0)
        }
    };
    let send = |path: &'static str, auth: String| {
        let http = http.clone();
        async move {
            http.get(format!("http://{addr}{path}"))
                .header(header::AUTHORIZATION, auth)
                .send()
                .await
                .unwrap()
        }
    };
    let c = offer("/paid").await;
    let preimage = pay_offer(&t, &c).await;
    let good = credential::authorization(&c, &Payload::Charge { preimage });

    // A credential for the 2-sat route does not buy the 50-sat one.
    let cheap = send("/dear", good.clone()).await;
    assert_eq!(cheap.status(), 402);
    assert!(
        !www_authenticate(&cheap).is_empty(),
        "a refusal comes with a fresh challenge"
    );
    // Tampered echoes: another expiry, another amount, another realm.
    for tamper in [
        PaymentChallenge {
            expires: Some("2099-01-01T00:00:00Z".into()),
            ..c.clone()
        },
        PaymentChallenge {
            realm: "elsewhere".into(),
            ..c.clone()
        },
        PaymentChallenge {
            request: {
                let mut v = c.request_json().unwrap();
                v["amount"] = "1".into();
                challenge::encode_json(&v)
            },
            ..c.clone()
        },
    ] {
        let auth = credential::authorization(&tamper, &Payload::Charge { preimage });
        assert_eq!(send("/paid", auth).await.status(), 402);
    }
    // A wrong preimage.
    let wrong = credential::authorization(
        &c,
        &Payload::Charge {
            preimage: l402_mcp::l402::Preimage([9; 32]),
        },
    );
    assert_eq!(send("/paid", wrong).await.status(), 402);
    // Malformed tokens.
    assert_eq!(send("/paid", "Payment !!!".into()).await.status(), 402);
    // The good one, once; a replay is refused.
    let ok = send("/paid", good.clone()).await;
    assert_eq!(ok.status(), 200);
    let rc = receipt::parse_header(ok.headers()[receipt::HEADER].to_str().unwrap()).unwrap();
    assert_eq!(rc["challengeId"], c.id.as_str());
    assert_eq!(
        send("/paid", good.clone()).await.status(),
        402,
        "a charge buys one request"
    );
    // An expired challenge, even paid and untampered.
    let late = offer("/paid").await;
    let late_pre = pay_offer(&t, &late).await;
    t.clock.advance(901);
    let auth = credential::authorization(&late, &Payload::Charge { preimage: late_pre });
    assert_eq!(send("/paid", auth).await.status(), 402);
    // Case and padding do not matter to a valid credential (Aperture reads both).
    t.clock.set(T0);
    let c2 = offer("/paid").await;
    let p2 = pay_offer(&t, &c2).await;
    let token = credential::token(&c2, &Payload::Charge { preimage: p2 });
    let padded = format!("payment {token}{}", "=".repeat((4 - token.len() % 4) % 4));
    assert_eq!(send("/paid", padded).await.status(), 200);
    let parsed = PaymentCredential::parse_authorization(&good).unwrap();
    assert_eq!(parsed.challenge, c);
}

/// A seller that answers 402 with a crafted Payment challenge (whatever `craft` makes of a
/// real invoice of the seller's wallet), then honours nothing.
async fn crafted_seller(
    t: &Trade,
    craft: impl Fn(ChargeRequest) -> PaymentChallenge + Send + Sync + 'static,
) -> SocketAddr {
    let (created, _) = t
        .seller
        .seller
        .create_invoice(7_000, "crafted", 600)
        .await
        .unwrap();
    let base = ChargeRequest {
        amount_sats: 7,
        currency: "sat".into(),
        description: None,
        recipient: None,
        external_id: None,
        invoice: created.bolt11,
        payment_hash: Some(created.payment_hash),
        network: Some("regtest".into()),
    };
    let c = craft(base);
    listen(Router::new().fallback(any(move || {
        let line = c.header_value();
        async move {
            (
                StatusCode::PAYMENT_REQUIRED,
                [(header::WWW_AUTHENTICATE, line)],
                "pay",
            )
                .into_response()
        }
    })))
    .await
}

fn challenge_for(r: &ChargeRequest, expires: u64) -> PaymentChallenge {
    PaymentChallenge {
        id: "not-checked-by-buyers".into(),
        realm: "crafted".into(),
        method: "lightning".into(),
        intent: "charge".into(),
        request: r.encode(),
        expires: Some(l402_mcp::l402::mpp::time::format(expires)),
        ..PaymentChallenge::default()
    }
}

/// What a test seller makes of a real invoice.
type Craft = dyn Fn(ChargeRequest) -> PaymentChallenge + Send + Sync;

#[tokio::test]
async fn the_buyer_refuses_before_paying_what_does_not_match() {
    let t = trade().await;
    let f = fetcher(&t);
    let b0 = balance(&t.buyer).await;
    let cases: Vec<(&str, Box<Craft>)> = vec![
        (
            "challenge_mismatch",
            Box::new(|mut r| {
                r.amount_sats = 1; // the invoice asks for 7
                challenge_for(&r, T0 + 600)
            }),
        ),
        (
            "challenge_mismatch",
            Box::new(|mut r| {
                r.payment_hash = Some(PaymentHash([7; 32]));
                challenge_for(&r, T0 + 600)
            }),
        ),
        (
            "challenge_mismatch",
            Box::new(|mut r| {
                r.network = Some("mainnet".into()); // a regtest invoice
                challenge_for(&r, T0 + 600)
            }),
        ),
        (
            "challenge_mismatch",
            Box::new(|mut r| {
                r.network = None; // absent means mainnet
                challenge_for(&r, T0 + 600)
            }),
        ),
        ("challenge_expired", Box::new(|r| challenge_for(&r, T0))),
        ("price_above_cap", Box::new(|r| challenge_for(&r, T0 + 600))),
        (
            "challenge_mismatch",
            Box::new(|r| PaymentChallenge {
                // Bound to a body this GET does not carry.
                digest: Some(accept::body_digest(b"{\"rows\":10000}")),
                ..challenge_for(&r, T0 + 600)
            }),
        ),
        (
            "invalid_challenge",
            Box::new(|r| PaymentChallenge {
                digest: Some("sha-512=:AAAA:".into()),
                ..challenge_for(&r, T0 + 600)
            }),
        ),
    ];
    for (code, craft) in cases {
        let addr = crafted_seller(&t, craft).await;
        let mut req = FetchRequest::get(&format!("http://{addr}/x"));
        if code == "price_above_cap" {
            req.max_price_msat = Some(6_000);
        }
        let err = f.fetch(&req).await.unwrap_err();
        assert!(!err.money_may_have_moved(), "{err}");
        assert_eq!(l402_mcp::ops::Failure::from(err).code, code);
    }
    assert_eq!(balance(&t.buyer).await, b0, "nothing was paid");
    assert!(payments(&t, "buyer", Direction::Out).await.is_empty());
}

#[tokio::test]
async fn a_seller_that_refuses_what_it_was_paid_is_paid_once_and_distrusted() {
    let t = trade().await;
    let f = fetcher(&t);
    // Always 402 with a valid (payable, matching) challenge.
    let addr = crafted_seller(&t, |r| challenge_for(&r, T0 + 600)).await;
    let b0 = balance(&t.buyer).await;
    let req = FetchRequest::get(&format!("http://{addr}/x"));
    let err = f.fetch(&req).await.unwrap_err();
    assert!(
        matches!(
            err,
            FetchError::RefusedAfterPayment {
                amount_msat: 7_000,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(balance(&t.buyer).await, b0 - 7_000);
    let err = f.fetch(&req).await.unwrap_err();
    assert!(matches!(err, FetchError::SellerDistrusted { .. }), "{err}");
    assert_eq!(balance(&t.buyer).await, b0 - 7_000, "paid once");
}

#[tokio::test]
async fn a_session_is_opened_spent_topped_up_and_refunded() {
    let t = trade().await;
    // 10 sats a request, a deposit of 5 requests.
    let addr = gateway(&t, vec![route(10, AuthMode::Mpp, true)]).await;
    let f = fetcher(&t);
    let (b0, s0) = (balance(&t.buyer).await, balance(&t.seller).await);
    let session = Some(SchemePreference::Session);
    let first = f.fetch(&get(addr, session)).await.unwrap();
    assert_eq!(first.status, 200, "{:?}", first.body);
    let used = first.receipt.payment.clone().unwrap();
    assert_eq!((used.intent, used.action), ("session", "open"));
    assert_eq!(first.receipt.amount_msat, 50_000, "the deposit");
    let id = used.session_id.clone().unwrap();
    assert_eq!(used.receipt.unwrap()["reference"], id.as_str());
    // wallet_balance shows the open session.
    let bal = l402_mcp::ops::wallet::balance(&t.buyer).await.unwrap();
    assert_eq!(bal.sessions.len(), 1);
    assert_eq!(
        (
            bal.sessions[0].deposit_sats,
            bal.sessions[0].requests,
            bal.sessions[0].estimated_left_sats
        ),
        (50, 1, 40)
    );
    // Four more requests: bearer, no payment (the session is presented at once, no 402).
    for _ in 0..4 {
        let r = f.fetch(&get(addr, None)).await.unwrap();
        assert_eq!(r.status, 200);
        assert!(!r.receipt.paid);
        assert_eq!(r.receipt.payment.as_ref().unwrap().action, "bearer");
    }
    assert_eq!(balance(&t.buyer).await, b0 - 50_000);
    // The deposit is spent: the sixth request tops up (50 more) and is served.
    let sixth = f.fetch(&get(addr, None)).await.unwrap();
    assert_eq!(sixth.status, 200);
    assert_eq!(sixth.receipt.payment.as_ref().unwrap().action, "topUp");
    assert_eq!(sixth.receipt.amount_msat, 50_000);
    assert_eq!(balance(&t.buyer).await, b0 - 100_000);
    // Closed on demand: 6 requests cost 60 of the 100 deposited; 40 come back.
    let closed = f.close_sessions(None, None).await.unwrap();
    assert_eq!(closed.len(), 1);
    let c = &closed[0];
    assert_eq!(
        (c.session_id.as_str(), c.deposit_msat),
        (id.as_str(), 100_000)
    );
    assert_eq!(
        (c.refund_msat, c.refund_status.as_str()),
        (Some(40_000), "succeeded")
    );
    assert_eq!(
        (c.refund_received_msat, c.spent_msat),
        (Some(40_000), Some(60_000))
    );
    assert_eq!(balance(&t.buyer).await, b0 - 60_000);
    assert_eq!(balance(&t.seller).await, s0 + 60_000);
    // The ledger shows the deposits out and the refund in; the seller paid the refund once.
    let outs = payments(&t, "buyer", Direction::Out).await;
    assert_eq!(
        outs.iter().map(|p| p.amount.msat()).collect::<Vec<_>>(),
        [50_000, 50_000]
    );
    let ins: Vec<_> = payments(&t, "buyer", Direction::In)
        .await
        .into_iter()
        .filter(|p| p.status == Status::Succeeded)
        .collect();
    assert_eq!(
        ins.iter().map(|p| p.amount.msat()).collect::<Vec<_>>(),
        [40_000]
    );
    let refunds = payments(&t, "seller", Direction::Out).await;
    assert_eq!(
        refunds.iter().map(|p| p.amount.msat()).collect::<Vec<_>>(),
        [40_000]
    );
    assert!(
        l402_mcp::ops::wallet::balance(&t.buyer)
            .await
            .unwrap()
            .sessions
            .is_empty()
    );
    // A closed session is not used again: the next request opens a new one.
    let next = f.fetch(&get(addr, session)).await.unwrap();
    assert_eq!(next.receipt.payment.unwrap().action, "open");
    // A sweep pays nothing more.
    let report = t.seller.mpp.settle_refunds().await.unwrap();
    assert_eq!(report.refunded, 0);
}

#[tokio::test]
async fn an_idle_session_is_closed_and_refunded_by_the_seller() {
    let t = trade().await;
    let addr = gateway(&t, vec![route(10, AuthMode::Mpp, true)]).await;
    let f = fetcher(&t);
    let b0 = balance(&t.buyer).await;
    f.fetch(&get(addr, Some(SchemePreference::Session)))
        .await
        .unwrap();
    t.clock.advance(301);
    let report = t.seller.mpp.settle_refunds().await.unwrap();
    assert_eq!((report.closed_idle, report.refunded), (1, 1));
    assert_eq!(balance(&t.buyer).await, b0 - 10_000);
    // The buyer's next request finds the session gone: it is marked closed, its refund
    // recorded, and a new one opened.
    let r = f
        .fetch(&get(addr, Some(SchemePreference::Session)))
        .await
        .unwrap();
    assert_eq!(r.receipt.payment.unwrap().action, "open");
    let closed = f.close_sessions(None, None).await.unwrap();
    assert_eq!(closed.len(), 1, "only the new one was open");
}

#[tokio::test]
async fn discovery_serves_openapi_with_payment_info() {
    let t = trade().await;
    let mut free = Route::new("/free", Price::Free);
    free.service = "free".into();
    let addr = gateway(&t, vec![route(7, AuthMode::Both, true), free]).await;
    let resp = reqwest::get(format!("http://{addr}/openapi.json"))
        .await
        .unwrap();
    assert_eq!(resp.headers()[header::CACHE_CONTROL], "max-age=300");
    let doc: Value = resp.json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let paid = &doc["paths"]["/paid"]["get"];
    assert!(paid["responses"]["402"].is_object());
    let offers = paid["x-payment-info"]["offers"].as_array().unwrap();
    assert_eq!(offers[0]["intent"], "charge");
    assert_eq!(offers[0]["amount"], "7");
    assert_eq!(offers[0]["currency"], "sat");
    assert_eq!(offers[1]["intent"], "session");
    assert!(doc["paths"]["/free"]["get"].get("x-payment-info").is_none());
    // `discover` reads it.
    let out = l402_mcp::ops::buy::discover(
        &fetcher(&t),
        l402_mcp::ops::buy::DiscoverParams {
            url: format!("http://{addr}/"),
        },
    )
    .await
    .unwrap();
    assert_eq!(
        out.openapi.unwrap()["paths"]["/paid"]["get"]["x-payment-info"]["offers"][0]["amount"],
        "7"
    );
}

#[tokio::test]
async fn the_buyer_closes_idle_sessions_and_the_rest_at_shutdown() {
    let t = trade().await;
    let addr = gateway(&t, vec![route(10, AuthMode::Mpp, true)]).await;
    let f = std::sync::Arc::new(fetcher(&t));
    let b0 = balance(&t.buyer).await;
    f.fetch(&get(addr, Some(SchemePreference::Session)))
        .await
        .unwrap();
    // Not idle yet (the seller's idle timeout is 300 s; the buyer closes a fifth earlier).
    t.clock.advance(200);
    assert!(f.close_idle_sessions().await.unwrap().is_empty());
    t.clock.advance(41);
    let closed = f.close_idle_sessions().await.unwrap();
    assert_eq!(closed.len(), 1);
    assert_eq!(closed[0].refund_received_msat, Some(40_000));
    assert_eq!(balance(&t.buyer).await, b0 - 10_000);
    // A new session, still open when the server stops: closed on the way out.
    f.fetch(&get(addr, Some(SchemePreference::Session)))
        .await
        .unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let tending = {
        let f = f.clone();
        let stop = stop.clone();
        tokio::spawn(async move { f.tend_sessions(stop).await })
    };
    stop.cancel();
    tending.await.unwrap();
    assert!(
        l402_mcp::ops::wallet::balance(&t.buyer)
            .await
            .unwrap()
            .sessions
            .is_empty()
    );
    assert_eq!(balance(&t.buyer).await, b0 - 20_000);
}

/// A Payment-scheme charge the approval policy would hold is refused before anything happens:
/// an approval pays later, out of this call, and could not rebuild the charge's credential (it
/// echoes this call's one challenge), so approving it would pay for nothing.
#[tokio::test]
async fn a_charge_that_needs_approval_is_refused_and_nothing_is_held() {
    let t = trade().await;
    t.buyer
        .approvals
        .set_policy(&l402_mcp::approval::ApprovalPolicy {
            above_msat: Some(1_000),
            new_host: false,
            timeout_secs: 300,
        })
        .await
        .unwrap();
    let addr = gateway(&t, vec![route(21, AuthMode::Mpp, false)]).await;
    let (b0, s0) = (balance(&t.buyer).await, balance(&t.seller).await);
    let e = fetcher(&t).fetch(&get(addr, None)).await.unwrap_err();
    let f = l402_mcp::ops::Failure::from(e);
    assert_eq!(f.code, "approval_unsupported", "{f}");
    assert!(f.message.contains("nothing was spent"), "{f}");
    assert_eq!(balance(&t.buyer).await, b0);
    assert_eq!(balance(&t.seller).await, s0);
    assert!(payments(&t, "buyer", Direction::Out).await.is_empty());
    assert!(
        t.buyer.approvals.list(None, 10).await.unwrap().is_empty(),
        "no question a person could approve is left open"
    );
}

/// One credential per request: several `Authorization` headers, or one `Payment` value listing
/// two credentials, are a 400, and the charge they carry is not spent by it.
#[tokio::test]
async fn several_credentials_in_one_request_are_a_400_and_spend_nothing() {
    let t = trade().await;
    let addr = gateway(&t, vec![route(2, AuthMode::Both, false)]).await;
    let http = reqwest::Client::new();
    let url = format!("http://{addr}/paid");
    let resp = http.get(&url).send().await.unwrap();
    let lines = www_authenticate(&resp);
    let c = challenge::parse_headers(lines.iter().map(String::as_str))
        .challenges
        .into_iter()
        .find(|c| c.method == "lightning")
        .unwrap();
    let preimage = pay_offer(&t, &c).await;
    let good = credential::authorization(&c, &Payload::Charge { preimage });
    let token = good.split_once(' ').unwrap().1.to_owned();

    let two_headers = http
        .get(&url)
        .header(header::AUTHORIZATION, good.clone())
        .header(header::AUTHORIZATION, good.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(two_headers.status(), 400);
    let listed = http
        .get(&url)
        .header(
            header::AUTHORIZATION,
            format!("Payment {token}, Payment {token}"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), 400);
    // Neither spent the charge: presented alone, it buys the request once.
    let alone = http
        .get(&url)
        .header(header::AUTHORIZATION, good.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(alone.status(), 200);
    let again = http
        .get(&url)
        .header(header::AUTHORIZATION, good)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 402, "a charge buys one request");
}

/// The buyer's sessions that are not closed.
async fn live_sessions(t: &Trade) -> Vec<l402_mcp::storage::BuyerSession> {
    t.buyer
        .storage
        .buyer_sessions()
        .live_buyer_sessions("buyer")
        .await
        .unwrap()
}

/// The session offer of a bare request to the gateway at `addr`.
async fn session_offer(
    addr: SocketAddr,
) -> (
    PaymentChallenge,
    l402_mcp::l402::mpp::lightning::SessionRequest,
) {
    let resp = reqwest::get(format!("http://{addr}/paid")).await.unwrap();
    let c = challenge::parse_headers(www_authenticate(&resp).iter().map(String::as_str))
        .challenges
        .into_iter()
        .find(|c| c.intent == "session")
        .unwrap();
    let r =
        l402_mcp::l402::mpp::lightning::SessionRequest::parse(&c.request_json().unwrap()).unwrap();
    (c, r)
}

/// Pay a session offer's deposit invoice as a process would before it stopped (the ledger
/// records it, with its preimage), without telling the seller.
async fn pay_deposit_by_hand(t: &Trade, r: &l402_mcp::l402::mpp::lightning::SessionRequest) {
    t.buyer
        .payer
        .pay(&l402_mcp::pay::PayRequest {
            invoice: &r.deposit_invoice,
            ..Default::default()
        })
        .await
        .unwrap();
}

/// A buyer that stopped in the middle of opening a session leaves it `opening`. Taken up after
/// its grace (at the next start's first tick, or any close): (1) the deposit paid but `open`
/// never sent: opened again with the stored challenge (the open is a request: its price is
/// spent) and closed, the rest refunded;
/// (2) `open` accepted but the answer lost: the second open is refused, the session closed,
/// the unspent rest refunded; (3) a deposit never paid: closed here, nothing owed.
#[tokio::test]
async fn a_session_left_opening_by_a_stop_is_taken_up_and_refunded() {
    use l402_mcp::storage::{BuyerSession, BuyerSessionStatus};
    let t = trade().await;
    // 10 sats a request, a deposit of 5 requests.
    let addr = gateway(&t, vec![route(10, AuthMode::Mpp, true)]).await;
    let f = fetcher(&t);
    let store = t.buyer.storage.buyer_sessions();
    let (b0, s0) = (balance(&t.buyer).await, balance(&t.seller).await);

    // (2) Opened normally, then marked opening as a stop before saving the answer leaves it.
    let first = f
        .fetch(&get(addr, Some(SchemePreference::Session)))
        .await
        .unwrap();
    assert_eq!(first.status, 200);
    let id2 = first.receipt.payment.unwrap().session_id.unwrap();
    let mut s2 = store.live_buyer_sessions("buyer").await.unwrap().remove(0);
    assert_eq!(s2.id.to_hex(), id2);
    s2.status = BuyerSessionStatus::Opening;
    store.save_buyer_session(&s2).await.unwrap();

    // (1) The deposit paid, `open` never sent: the row as open_session writes it before paying.
    let (c, r) = session_offer(addr).await;
    let returns = t
        .buyer
        .payer
        .wallet()
        .create_amountless_invoice("refund", 3600)
        .await
        .unwrap();
    let opening = |preimage| BuyerSession {
        wallet: "buyer".into(),
        id: r.payment_hash,
        origin: format!("http://{addr}"),
        realm: c.realm.clone(),
        url: format!("http://{addr}/paid"),
        preimage,
        challenge: c.to_json().unwrap().to_string(),
        deposit: l402_mcp::l402::Msat::from_msat(50_000),
        price: l402_mcp::l402::Msat::from_msat(10_000),
        requests: 0,
        return_hash: returns.payment_hash,
        return_invoice: returns.bolt11.clone(),
        idle_secs: 300,
        status: BuyerSessionStatus::Opening,
        refund: None,
        refund_status: None,
        opened_at: T0,
        last_used_at: T0,
        closed_at: None,
        pending_top_up: None,
    };
    store
        .save_buyer_session(&opening(l402_mcp::l402::Preimage([0; 32])))
        .await
        .unwrap();
    pay_deposit_by_hand(&t, &r).await;

    // (3) A deposit never paid.
    let unpaid = PaymentHash([7; 32]);
    store
        .save_buyer_session(&BuyerSession {
            id: unpaid,
            ..opening(l402_mcp::l402::Preimage([0; 32]))
        })
        .await
        .unwrap();
    assert_eq!(balance(&t.buyer).await, b0 - 100_000, "two deposits paid");

    // Meanwhile no third deposit: the call takes the route's other offer, a 10-sat charge.
    let meanwhile = f
        .fetch(&get(addr, Some(SchemePreference::Session)))
        .await
        .unwrap();
    assert_eq!(meanwhile.receipt.payment.unwrap().intent, "charge");
    assert_eq!(
        balance(&t.buyer).await,
        b0 - 110_000,
        "a charge, not a deposit"
    );
    // Within the grace nothing is touched: an open may still be under way.
    assert!(f.close_idle_sessions().await.unwrap().is_empty());
    t.clock.advance(121);
    let mut closed = f.close_idle_sessions().await.unwrap();
    closed.sort_by(|a, b| a.session_id.cmp(&b.session_id));
    let got: Vec<_> = closed
        .iter()
        .map(|c| (c.session_id.clone(), c.refund_msat, c.refund_status.clone()))
        .collect();
    let mut want = vec![
        (id2.clone(), Some(40_000), "succeeded".to_owned()),
        (
            r.payment_hash.to_hex(),
            Some(40_000),
            "succeeded".to_owned(),
        ),
    ];
    want.sort();
    assert_eq!(got, want);
    // One request in each session and the charge, 10 sats each; the rest of both deposits back.
    assert_eq!(balance(&t.buyer).await, b0 - 30_000);
    assert_eq!(balance(&t.seller).await, s0 + 30_000);
    let left = store.live_buyer_sessions("buyer").await.unwrap();
    assert!(left.is_empty(), "{left:?}");
    let never = store
        .buyer_session("buyer", &unpaid)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (never.status, never.refund_status.as_deref()),
        (BuyerSessionStatus::Closed, Some("not_paid"))
    );
}

/// A seller in front of the real gateway at `gw` that honours the first credential (a
/// session's `open`) and keeps the deposit: every later credential (bearer, close) is answered
/// `refuse` (401, say), or, with `None`, passed on without it, so the gateway answers 402 with
/// a fresh challenge as if the session were spent.
async fn keeps_deposits(gw: SocketAddr, refuse: Option<StatusCode>) -> SocketAddr {
    let credentials = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    listen(Router::new().fallback(any(
        move |headers: axum::http::HeaderMap, uri: axum::http::Uri| {
            let credentials = credentials.clone();
            async move {
                let mut ask = reqwest::Client::new().get(format!("http://{gw}{}", uri.path()));
                if let Some(a) = headers.get(header::AUTHORIZATION) {
                    let n = credentials.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    match refuse {
                        _ if n == 0 => ask = ask.header(header::AUTHORIZATION, a.as_bytes()),
                        Some(status) => return (status, "no").into_response(),
                        None => {}
                    }
                }
                let got = ask.send().await.unwrap();
                let status = StatusCode::from_u16(got.status().as_u16()).unwrap();
                let challenges: Vec<String> = www_authenticate(&got);
                let body = got.bytes().await.unwrap();
                let mut resp = (status, body).into_response();
                for c in challenges {
                    resp.headers_mut()
                        .append(header::WWW_AUTHENTICATE, c.parse().unwrap());
                }
                resp
            }
        },
    )))
    .await
}

/// A seller that takes a session's deposit and then will not serve it (refusing the bearer
/// outright, or answering 402 while the deposit should still cover the request) and keeps
/// what is left: the buyer closes the session, finds nothing came back, and treats it as
/// refused after payment: one deposit lost at most, no new deposit, the seller distrusted.
#[tokio::test]
async fn a_seller_that_keeps_a_session_deposit_gets_one_deposit_only() {
    for refuse in [Some(StatusCode::UNAUTHORIZED), None] {
        let t = trade().await;
        let gw = gateway(&t, vec![route(10, AuthMode::Mpp, true)]).await;
        let addr = keeps_deposits(gw, refuse).await;
        let f = fetcher(&t);
        let b0 = balance(&t.buyer).await;
        let session = Some(SchemePreference::Session);
        let first = f.fetch(&get(addr, session)).await.unwrap();
        assert_eq!(first.receipt.payment.unwrap().action, "open", "{refuse:?}");
        assert_eq!(balance(&t.buyer).await, b0 - 50_000);
        let err = f.fetch(&get(addr, session)).await.unwrap_err();
        assert!(
            matches!(
                err,
                FetchError::RefusedAfterPayment {
                    amount_msat: 40_000,
                    ..
                }
            ),
            "{refuse:?}: {err}"
        );
        let err = f.fetch(&get(addr, session)).await.unwrap_err();
        assert!(
            matches!(err, FetchError::SellerDistrusted { .. }),
            "{refuse:?}: {err}"
        );
        assert_eq!(
            balance(&t.buyer).await,
            b0 - 50_000,
            "{refuse:?}: one deposit"
        );
        let live = live_sessions(&t).await;
        assert!(live.is_empty(), "{refuse:?}: {live:?}");
    }
}

/// A top-up paid whose answer was never heard (the process stopped in between) is written
/// down before it is paid; the next use of the session presents it again, so the seller
/// credits it and it comes back with the rest at close, instead of being lost.
#[tokio::test]
async fn a_top_up_left_unanswered_by_a_stop_is_presented_again() {
    let t = trade().await;
    // 10 sats a request, a deposit (and a top-up) of 5 requests.
    let addr = gateway(&t, vec![route(10, AuthMode::Mpp, true)]).await;
    let f = fetcher(&t);
    let store = t.buyer.storage.buyer_sessions();
    let b0 = balance(&t.buyer).await;
    for _ in 0..5 {
        f.fetch(&get(addr, Some(SchemePreference::Session)))
            .await
            .unwrap();
    }
    assert_eq!(balance(&t.buyer).await, b0 - 50_000, "the deposit, spent");
    // What top_up leaves when the process stops after paying: the fresh challenge and the
    // top-up written down, the invoice paid, the seller never told.
    let (c, r) = session_offer(addr).await;
    let mut s = store.live_buyer_sessions("buyer").await.unwrap().remove(0);
    s.pending_top_up = Some(r.payment_hash);
    s.challenge = c.to_json().unwrap().to_string();
    store.save_buyer_session(&s).await.unwrap();
    pay_deposit_by_hand(&t, &r).await;
    assert_eq!(balance(&t.buyer).await, b0 - 100_000);
    // The next request presents the top-up first (a request: 10 sats), then is served by
    // the bearer, with no new payment.
    let next = f.fetch(&get(addr, None)).await.unwrap();
    assert_eq!(next.status, 200);
    assert!(!next.receipt.paid, "{:?}", next.receipt);
    assert_eq!(balance(&t.buyer).await, b0 - 100_000, "nothing paid again");
    let s = store.buyer_session("buyer", &s.id).await.unwrap().unwrap();
    assert_eq!(
        (s.deposit.msat(), s.requests, s.pending_top_up),
        (100_000, 7, None)
    );
    // Seven requests of the 100 deposited: 30 come back.
    let closed = f.close_sessions(None, None).await.unwrap();
    assert_eq!(closed[0].refund_received_msat, Some(30_000));
    assert_eq!(balance(&t.buyer).await, b0 - 70_000);
}

/// Two calls at once on a session whose deposit is spent: both are answered 402; one tops it
/// up, the other (waiting for the session's lock) finds it topped up and uses the bearer, so
/// the session is neither topped up twice nor taken for refused and replaced.
#[tokio::test]
async fn parallel_calls_on_a_spent_session_top_it_up_once() {
    let t = trade().await;
    let addr = gateway(&t, vec![route(10, AuthMode::Mpp, true)]).await;
    let f = fetcher(&t);
    let b0 = balance(&t.buyer).await;
    for _ in 0..5 {
        f.fetch(&get(addr, Some(SchemePreference::Session)))
            .await
            .unwrap();
    }
    let req = get(addr, None);
    let (a, b) = tokio::join!(f.fetch(&req), f.fetch(&req));
    let mut actions = [a, b].map(|r| r.unwrap().receipt.payment.unwrap().action);
    actions.sort_unstable();
    assert_eq!(actions, ["bearer", "topUp"]);
    assert_eq!(
        balance(&t.buyer).await,
        b0 - 100_000,
        "one deposit, one top-up"
    );
    let live = live_sessions(&t).await;
    assert_eq!(live.len(), 1);
    assert_eq!((live[0].deposit.msat(), live[0].requests), (100_000, 7));
}
