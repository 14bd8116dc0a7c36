//! The buyer's pay path and the seller's mint/verify service, between two embedded wallets that
//! share one data dir, through the library's public surface.
// A failed step in a test or benchmark is a failed run: unwrapping is fine here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{T0, Trade, balance, foreign_invoice, trade};
use l402_mcp::bolt11::Network;
use l402_mcp::budget::{BudgetPolicy, BudgetRefusal};
use l402_mcp::l402::{Credential, Scheme, b64};
use l402_mcp::mint::ChallengeRequest;
use l402_mcp::pay::{PayError, PayRequest, Receipt};
use l402_mcp::storage::{Direction, PaymentFilter, Status};
use l402_mcp::wallet::WalletError;
use l402_mcp::wallet::embedded::DEMO_GRANT_MSAT;

fn pay(invoice: &str) -> PayRequest<'_> {
    PayRequest {
        invoice,
        ..Default::default()
    }
}

async fn buy(t: &Trade, req: PayRequest<'_>) -> Result<Receipt, PayError> {
    t.buyer.payer.pay(&req).await
}

/// The reason code of a verdict, or "valid".
async fn reason(
    t: &Trade,
    auth: &str,
    service: Option<&str>,
    capability: Option<&str>,
) -> &'static str {
    t.verify(auth, service, capability)
        .await
        .reason_code
        .unwrap_or("valid")
}

#[tokio::test]
async fn buy_an_l402_token_and_have_it_verified() {
    let t = trade().await;
    let request = ChallengeRequest {
        amount_msat: 21_000,
        service: Some("weather".into()),
        capabilities: vec!["forecast".into()],
        valid_for_secs: Some(600),
        ..Default::default()
    };
    let challenge = t.seller.seller.create_challenge(&request).await.unwrap();
    assert!(challenge.www_authenticate[0].starts_with("LSAT macaroon=\""));
    assert!(challenge.www_authenticate[1].starts_with("L402 macaroon=\""));
    let challenge_json = serde_json::to_string(&challenge).unwrap();

    let receipt = buy(
        &t,
        PayRequest {
            max_amount_msat: Some(21_000),
            ..pay(&challenge.invoice)
        },
    )
    .await
    .unwrap();
    assert_eq!(
        (receipt.amount_msat, receipt.fee_msat, receipt.already_paid),
        (21_000, 0, false)
    );
    assert_eq!(balance(&t.buyer).await, DEMO_GRANT_MSAT - 21_000);
    assert_eq!(balance(&t.seller).await, DEMO_GRANT_MSAT + 21_000);
    // The challenge, issued before payment, never carried the preimage of its own invoice.
    assert!(
        !challenge_json.contains(&receipt.preimage.to_hex()),
        "unpaid preimage leaked"
    );

    let macaroon = b64::decode(&challenge.macaroon).unwrap();
    let auth = Credential::format(Scheme::L402, &macaroon, &receipt.preimage);
    let v = t.verify(&auth, Some("weather"), Some("forecast")).await;
    assert!(v.valid, "{v:?}");
    assert_eq!(
        (v.amount_paid_msat, v.valid_until),
        (Some(21_000), Some(T0 + 600))
    );
    let until = format!("weather_valid_until={}", T0 + 600);
    assert_eq!(
        v.caveats,
        vec![
            "services=weather:0",
            "weather_capabilities=forecast",
            &until
        ]
    );
    // The LSAT spelling verifies the same token.
    let lsat = Credential::format(Scheme::Lsat, &macaroon, &receipt.preimage);
    assert_eq!(reason(&t, &lsat, Some("weather"), None).await, "valid");

    // Refusals, each with its reason.
    assert_eq!(reason(&t, &auth, Some("news"), None).await, "wrong_service");
    assert_eq!(
        reason(&t, &auth, Some("weather"), Some("admin")).await,
        "missing_capability"
    );
    let wrong = Credential::format(Scheme::L402, &macaroon, &l402_mcp::l402::Preimage([0; 32]));
    assert_eq!(reason(&t, &wrong, None, None).await, "preimage_mismatch");
    assert_eq!(reason(&t, "Bearer x", None, None).await, "malformed");
    t.clock.advance(601);
    assert_eq!(reason(&t, &auth, Some("weather"), None).await, "expired");

    // The seller's ledger shows the sale.
    let sold = t
        .seller
        .ledger
        .list_payments(
            "seller",
            &PaymentFilter {
                direction: Some(Direction::In),
                ..PaymentFilter::default()
            },
            10,
        )
        .await
        .unwrap();
    assert_eq!(
        (sold.len(), sold[0].status, sold[0].amount.msat()),
        (1, Status::Succeeded, 21_000)
    );
    let status = t.seller.status().await.unwrap();
    assert_eq!(status.earned_24h_msat, 21_000);
    assert!(status.demo_funds);
}

#[tokio::test]
async fn refusals_spend_nothing() {
    let t = trade().await;
    let cases = [
        (
            foreign_invoice(Network::Regtest, None, T0, 600),
            "amountless",
        ),
        (
            foreign_invoice(Network::Regtest, Some(1_000), T0 - 7200, 600),
            "expired",
        ),
        (
            foreign_invoice(Network::Mainnet, Some(1_000), T0, 600),
            "network",
        ),
        (
            foreign_invoice(Network::Regtest, Some(1_000), T0, 600),
            "not issued here",
        ),
        ("lnbcrt1garbage".to_owned(), "invalid"),
    ];
    for (invoice, what) in &cases {
        let err = buy(&t, pay(invoice)).await.unwrap_err();
        match (*what, &err) {
            ("amountless", PayError::Amountless)
            | ("expired", PayError::Expired { .. })
            | (
                "network",
                PayError::WrongNetwork {
                    invoice: Network::Mainnet,
                    wallet: Network::Regtest,
                },
            )
            | ("invalid", PayError::InvalidInvoice(_)) => {}
            ("not issued here", PayError::Failed(WalletError::NotPayable(msg))) => {
                assert!(msg.contains("configure a real wallet backend"), "{msg}");
            }
            _ => panic!("{what}: unexpected {err:?}"),
        }
        assert!(!err.money_may_have_moved(), "{what}");
    }

    // Caps: per payment (default 1000 sats), the caller's own cap, the host lists.
    let big = t.invoice(1_000_001).await;
    let err = buy(&t, pay(&big)).await.unwrap_err();
    assert!(
        matches!(err, PayError::Budget(BudgetRefusal::PerPaymentCap { .. })),
        "{err}"
    );
    let small = t.invoice(5_000).await;
    let err = buy(
        &t,
        PayRequest {
            max_amount_msat: Some(4_000),
            ..pay(&small)
        },
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, PayError::Budget(BudgetRefusal::CallerCap { .. })),
        "{err}"
    );
    let policy = BudgetPolicy {
        deny_hosts: vec!["evil.example".into()],
        ..Default::default()
    };
    t.buyer
        .ledger
        .set_budget("buyer", &policy, T0)
        .await
        .unwrap();
    let err = buy(
        &t,
        PayRequest {
            payee: Some(&l402_mcp::payee::Payee::of_host("api.evil.example")),
            ..pay(&small)
        },
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, PayError::Budget(BudgetRefusal::HostDenied(_))),
        "{err}"
    );

    assert_eq!(balance(&t.buyer).await, DEMO_GRANT_MSAT);
    let totals = t.buyer.ledger.totals("buyer").await.unwrap();
    assert_eq!((totals.spent.msat(), totals.reserved.msat()), (0, 0));
    // The "not issued here" attempt reached the wallet, was refused, and was released.
    let rows = t
        .buyer
        .ledger
        .list_payments(
            "buyer",
            &PaymentFilter {
                direction: Some(Direction::Out),
                ..PaymentFilter::default()
            },
            10,
        )
        .await
        .unwrap();
    assert!(rows.iter().all(|r| r.status == Status::Failed), "{rows:?}");
}

#[tokio::test]
async fn an_invoice_is_never_paid_twice() {
    let t = trade().await;
    let inv = t.invoice(10_000).await;
    let first = buy(&t, pay(&inv)).await.unwrap();
    let second = buy(&t, pay(&inv)).await.unwrap();
    assert!(!first.already_paid && second.already_paid);
    assert_eq!(first.preimage, second.preimage);
    assert_eq!(balance(&t.buyer).await, DEMO_GRANT_MSAT - 10_000);

    // Concurrent attempts at one invoice: one payment, the rest see it paid or in flight.
    let inv = t.invoice(10_000).await;
    let results = futures::future::join_all((0..8).map(|_| buy(&t, pay(&inv)))).await;
    let paid = results
        .iter()
        .filter(|r| matches!(r, Ok(rc) if !rc.already_paid))
        .count();
    assert_eq!(paid, 1, "{results:?}");
    assert!(
        results
            .iter()
            .all(|r| matches!(r, Ok(_) | Err(PayError::InFlight { .. }))),
        "{results:?}"
    );
    assert_eq!(balance(&t.buyer).await, DEMO_GRANT_MSAT - 20_000);
}

#[tokio::test]
async fn failures_release_the_reservation_and_windows_roll() {
    let t = trade().await;
    // Insufficient balance: refused by the wallet, reservation released.
    let roomy = BudgetPolicy {
        per_payment_msat: u64::MAX / 4,
        daily_msat: u64::MAX / 4,
        ..Default::default()
    };
    t.buyer
        .ledger
        .set_budget("buyer", &roomy, T0)
        .await
        .unwrap();
    let huge = t.invoice(DEMO_GRANT_MSAT + 1).await;
    let err = buy(&t, pay(&huge)).await.unwrap_err();
    assert!(
        matches!(err, PayError::Failed(WalletError::Rejected(ref m)) if m.contains("insufficient balance")),
        "{err}"
    );
    assert_eq!(
        t.buyer
            .ledger
            .totals("buyer")
            .await
            .unwrap()
            .reserved
            .msat(),
        0
    );

    // A daily window of 30 sats, fees included (fee limit 0 here): 3 x 10 sats, then refused,
    // then allowed again once the first payment is more than 24 h old.
    let policy = BudgetPolicy {
        daily_msat: 30_000,
        max_fee_floor_msat: 0,
        max_fee_ppm: 0,
        ..Default::default()
    };
    t.buyer
        .ledger
        .set_budget("buyer", &policy, T0)
        .await
        .unwrap();
    for i in 0..3 {
        buy(&t, pay(&t.invoice(10_000).await)).await.unwrap();
        t.clock.advance(3600 * (i + 1));
    }
    let err = buy(&t, pay(&t.invoice(10_000).await)).await.unwrap_err();
    assert!(
        matches!(
            err,
            PayError::Budget(BudgetRefusal::Window {
                remaining_msat: 0,
                ..
            })
        ),
        "{err}"
    );
    t.clock.set(T0 + 24 * 3600 + 1);
    buy(&t, pay(&t.invoice(10_000).await)).await.unwrap();
    let s = t.buyer.status().await.unwrap();
    assert_eq!(
        (s.budget.spent_24h_msat, s.budget.remaining_24h_msat),
        (30_000, 0)
    );
}

#[tokio::test]
async fn revoked_tokens_are_unknown() {
    let t = trade().await;
    let request = ChallengeRequest {
        amount_msat: 1_000,
        ..Default::default()
    };
    let c = t.seller.seller.create_challenge(&request).await.unwrap();
    let r = buy(&t, pay(&c.invoice)).await.unwrap();
    let mac = b64::decode(&c.macaroon).unwrap();
    let auth = Credential::format(Scheme::L402, &mac, &r.preimage);
    assert_eq!(reason(&t, &auth, Some("api"), None).await, "valid");
    let m = l402_mcp::l402::Macaroon::deserialize(&mac).unwrap();
    assert!(
        t.seller
            .storage
            .seller()
            .revoke(&l402_mcp::l402::sha256(m.identifier()))
            .await
            .unwrap()
    );
    assert_eq!(reason(&t, &auth, Some("api"), None).await, "unknown_token");
}

// The token cache's scopes and expiry: tests/storage_conformance.rs (both engines).

/// `[history] keep_days` in the config reaches the buyer's payer: a reconcile after the period
/// deletes the old payment, and the wallet's lifetime spend stays what it was.
#[tokio::test]
async fn history_older_than_keep_days_is_deleted_by_the_app() {
    let dir = tempfile::tempdir().unwrap();
    let clock = l402_mcp::clock::ManualClock::new(T0);
    let shared: l402_mcp::clock::SharedClock = clock.clone();
    let config = l402_mcp::config::Config::parse("[history]\nkeep_days = 2").unwrap();
    let buyer = l402_mcp::app::App::from_config(&config, dir.path(), "buyer", shared.clone())
        .await
        .unwrap();
    let seller = l402_mcp::app::App::open_embedded(dir.path(), "seller", shared)
        .await
        .unwrap();
    let (inv, _) = seller
        .seller
        .create_invoice(2_000, "old", 600)
        .await
        .unwrap();
    buyer.payer.pay(&pay(&inv.bolt11)).await.unwrap();
    let spent = buyer.ledger.totals("buyer").await.unwrap().spent;
    assert_eq!(spent.msat(), 2_000);
    let all = PaymentFilter::default();
    // Inside the period, nothing goes.
    clock.advance(86_400);
    buyer.payer.reconcile().await.unwrap();
    assert_eq!(
        buyer
            .ledger
            .list_payments("buyer", &all, 10)
            .await
            .unwrap()
            .len(),
        1
    );
    clock.advance(2 * 86_400);
    buyer.payer.reconcile().await.unwrap();
    assert!(
        buyer
            .ledger
            .list_payments("buyer", &all, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(buyer.ledger.totals("buyer").await.unwrap().spent, spent);
}
