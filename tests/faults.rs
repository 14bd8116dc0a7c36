//! Wallet faults through the pay path, with the scripted fake wallet (`wallet::fake`): a
//! preimage that does not match, an answer that cannot be read (outcome unknown), a backend
//! that cannot be reached, a lookup that keeps failing, a request lost on the way, a success
//! found late. Each gives a clear error and a consistent ledger; nothing is paid twice.

mod common;

use common::buyer::Buyer;
use common::{T0, foreign_invoice};
use l402_mcp::bolt11::Network;
use l402_mcp::l402::{PaymentHash, Preimage};
use l402_mcp::pay::{PayError, PayRequest, RECONCILE_GRACE_SECS};
use l402_mcp::storage::{Direction, PaymentFilter, Status};
use l402_mcp::wallet::WalletError;
use l402_mcp::wallet::fake::{FakeWallet, Outcome};

/// A 10-sat regtest invoice from a node the fake does not know (it cannot settle it).
fn invoice() -> String {
    foreign_invoice(Network::Regtest, Some(10_000), T0, 3600)
}

/// A 10-sat regtest invoice payable with `preimage`, which `fake` is taught.
fn invoice_with(fake: &FakeWallet, preimage: [u8; 32]) -> String {
    fake.node().learn_preimage(Preimage(preimage));
    common::fixture::invoice_for(0x55, 10_000, preimage)
}

#[tokio::test]
async fn a_preimage_that_does_not_match_is_recorded_loudly_as_spent_without_proof() {
    let (b, fake) = Buyer::on_fake().await;
    fake.script([Outcome::WrongPreimage { fee_msat: 3 }]);
    let inv = invoice();
    let err = b.pay(&inv).await.unwrap_err();
    assert!(matches!(err, PayError::PreimageMismatch { .. }), "{err}");
    assert!(err.money_may_have_moved());
    let rows = b
        .ledger
        .list_payments(
            "w",
            &PaymentFilter {
                direction: Some(Direction::Out),
                ..PaymentFilter::default()
            },
            10,
        )
        .await
        .unwrap();
    assert_eq!(
        (rows[0].status, rows[0].preimage),
        (Status::Succeeded, None)
    );
    assert!(
        rows[0]
            .error
            .as_deref()
            .unwrap_or("")
            .contains("PREIMAGE MISMATCH")
    );
    // The money counts against the budget, and the invoice is never paid again.
    assert_eq!(b.totals().await.0, 10_003);
    let again = b.pay(&inv).await.unwrap_err();
    assert!(matches!(again, PayError::NoPreimage { .. }), "{again}");
    assert_eq!(fake.pay_calls(), 1);
}

#[tokio::test]
async fn an_unreadable_answer_stays_pending_until_the_lookup_resolves_it() {
    let (b, fake) = Buyer::on_fake().await;
    fake.script([Outcome::Unreadable { fee_msat: 7 }]);
    fake.fail_lookups(true);
    let inv = invoice_with(&fake, [0x10; 32]);
    let err = b.pay(&inv).await.unwrap_err();
    assert!(matches!(err, PayError::OutcomeUnknown { .. }), "{err}");
    assert!(err.to_string().contains("do not retry"));
    // Pending: the reservation (amount + max fee) holds the budget; paying again is refused.
    assert_eq!(b.totals().await, (0, 20_000));
    assert!(matches!(b.pay(&inv).await, Err(PayError::InFlight { .. })));
    // A lookup that fails keeps it pending, even long after.
    b.clock.advance(RECONCILE_GRACE_SECS * 10);
    assert_eq!(b.payer.reconcile().await.unwrap().still_pending, 1);
    // The wallet's lookup says it went through: recorded with its preimage and fee.
    fake.fail_lookups(false);
    assert_eq!(b.payer.reconcile().await.unwrap().succeeded, 1);
    let hash = PaymentHash(l402_mcp::l402::sha256(&[0x10; 32]));
    let row = b.record(&hash).await;
    assert_eq!(
        (row.status, row.preimage, row.fee.msat()),
        (Status::Succeeded, Some(Preimage([0x10; 32])), 7)
    );
    assert_eq!(b.totals().await, (10_007, 0));
    assert_eq!(fake.pay_calls(), 1);
}

#[tokio::test]
async fn an_unreachable_backend_releases_the_reservation() {
    let (b, fake) = Buyer::on_fake().await;
    fake.script([Outcome::Unreachable]);
    let err = b.pay(&invoice()).await.unwrap_err();
    assert!(
        matches!(err, PayError::Failed(WalletError::Unavailable(_))),
        "{err}"
    );
    assert!(!err.money_may_have_moved());
    assert_eq!(b.totals().await, (0, 0));
}

/// A request lost before it reached the backend: pending until the backend's lookup has had
/// its grace period to show it, then failed and its reservation released.
#[tokio::test]
async fn a_request_lost_on_the_way_is_failed_only_after_the_grace_period() {
    let (b, fake) = Buyer::on_fake().await;
    fake.script([Outcome::Dropped]);
    let inv = invoice_with(&fake, [0x12; 32]);
    assert!(matches!(
        b.pay(&inv).await,
        Err(PayError::OutcomeUnknown { .. })
    ));
    assert_eq!(b.payer.reconcile().await.unwrap().still_pending, 1);
    b.clock.advance(RECONCILE_GRACE_SECS + 1);
    assert_eq!(b.payer.reconcile().await.unwrap().failed, 1);
    assert_eq!(b.totals().await, (0, 0));
    assert_eq!(
        fake.balance_msat(),
        l402_mcp::wallet::fake::DEFAULT_BALANCE_MSAT
    );
}

/// A payment in flight when the answer timed out, completed later: the first reconcile finds
/// it in flight and keeps it, the next records it with its proof.
#[tokio::test]
async fn a_late_success_is_recorded_once_with_its_proof() {
    let (b, fake) = Buyer::on_fake().await;
    fake.script([Outcome::LateSuccess { fee_msat: 2 }]);
    let inv = invoice_with(&fake, [0x13; 32]);
    assert!(matches!(
        b.pay(&inv).await,
        Err(PayError::OutcomeUnknown { .. })
    ));
    assert_eq!(b.payer.reconcile().await.unwrap().still_pending, 1);
    assert_eq!(b.payer.reconcile().await.unwrap().succeeded, 1);
    let receipt = b.pay(&inv).await.unwrap();
    assert!(receipt.already_paid);
    assert_eq!(
        (receipt.preimage, receipt.fee_msat),
        (Preimage([0x13; 32]), 2)
    );
    assert_eq!(b.totals().await, (10_002, 0));
    assert_eq!(fake.pay_calls(), 1);
}

#[tokio::test]
async fn a_wallet_known_to_withhold_preimages_is_not_asked_to_pay_for_an_l402_credential() {
    let (b, fake) = Buyer::on_fake().await;
    fake.withhold_preimages(true);
    fake.always(Outcome::PaidWithoutPreimage { fee_msat: 0 });
    let inv = invoice();
    // An L402 payment (one that buys a credential) needs the preimage: refused before
    // anything is reserved or paid.
    let scope = l402_mcp::storage::CredentialScope {
        origin: "https://seller.example".into(),
        path_prefix: "/api".into(),
        scheme: l402_mcp::l402::Scheme::L402,
        macaroon: vec![2, 1, 4],
        expires_at: None,
    };
    let err = b
        .payer
        .pay(&PayRequest {
            invoice: &inv,
            credential: Some(&scope),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(matches!(err, PayError::PreimagesWithheld), "{err}");
    assert!(!err.money_may_have_moved());
    assert_eq!(fake.pay_calls(), 0);
    assert!(
        b.ledger
            .list_payments(
                "w",
                &PaymentFilter {
                    direction: Some(Direction::Out),
                    ..PaymentFilter::default()
                },
                10,
            )
            .await
            .unwrap()
            .is_empty()
    );
    // A plain invoice payment does not need it: paid, recorded, and reported as unprovable.
    let err = b.pay(&inv).await.unwrap_err();
    assert!(matches!(err, PayError::NoPreimage { .. }), "{err}");
    assert_eq!(fake.pay_calls(), 1);
    assert_eq!(b.totals().await.0, 10_000);
}

// The ledger's own rules (late successes counted once, the budget windows, pending holds) are
// checked on both storage engines by tests/storage_conformance.rs.
