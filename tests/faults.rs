//! Wallet faults through the pay path, with the scripted fake wallet (`wallet::fake`): a
//! preimage that does not match, an answer that cannot be read (outcome unknown), a backend
//! that cannot be reached, a lookup that keeps failing, a request lost on the way, a success
//! found late. Each gives a clear error and a consistent ledger; nothing is paid twice.
// A failed step in a test or benchmark is a failed run: unwrapping is fine here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::buyer::Buyer;
use common::{T0, foreign_invoice};
use l402_mcp::bolt11::Network;
use l402_mcp::budget::BudgetPolicy;
use l402_mcp::ledger::{Direction, Ledger, NewOutgoing, Reservation, Status};
use l402_mcp::pay::{PayError, PayRequest, RECONCILE_GRACE_SECS};
use l402_mcp::wallet::WalletError;
use l402_mcp::wallet::fake::{FakeWallet, Outcome};

/// A 10-sat regtest invoice from a node the fake does not know (it cannot settle it).
fn invoice() -> String {
    foreign_invoice(Network::Regtest, Some(10_000), T0, 3600)
}

/// A 10-sat regtest invoice payable with `preimage`, which `fake` is taught.
fn invoice_with(fake: &FakeWallet, preimage: [u8; 32]) -> String {
    fake.node().learn_preimage(preimage);
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
        .list_payments("w", Some(Direction::Out), 10)
        .await
        .unwrap();
    assert_eq!(
        (rows[0].status, rows[0].preimage.as_deref()),
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
    let hash = l402_mcp::l402::sha256(&[0x10; 32]);
    let row = b.record(&hash).await;
    assert_eq!(
        (row.status, row.preimage_bytes(), row.fee_msat),
        (Status::Succeeded, Some([0x10; 32]), 7)
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
    assert_eq!((receipt.preimage, receipt.fee_msat), ([0x13; 32], 2));
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
    let scope = l402_mcp::ledger::tokens::CredentialScope {
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
            .list_payments("w", Some(Direction::Out), 10)
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

/// A payment failed by a reconcile that found no record, then reserved again, and then the
/// first attempt turns out to have succeeded: the spend is recorded once (on the live row), the
/// budget counts it, and nothing breaks on the one-live-row-per-invoice index.
#[tokio::test]
async fn a_failed_payment_that_succeeds_after_the_invoice_was_reserved_again_counts_once() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open_in(dir.path()).await.unwrap();
    let decoded = l402_mcp::bolt11::decode(&invoice()).unwrap();
    let policy = BudgetPolicy::default();
    let new = NewOutgoing {
        wallet: "w",
        invoice: &decoded,
        amount_msat: 10_000,
        max_fee_msat: 1_000,
        url: None,
        payee: Some(&l402_mcp::payee::Payee::of_host("seller.example")),
        credential: None,
    };
    let reserve = async || match ledger.reserve(&new, &policy, T0).await.unwrap() {
        Reservation::Reserved { id } => id,
        other => panic!("{other:?}"),
    };
    let first = reserve().await;
    ledger
        .mark_failed(first, "reconciled: no record", T0)
        .await
        .unwrap();
    let second = reserve().await;
    ledger
        .mark_succeeded(first, Some(&[0x11; 32]), 5, None, T0 + 1)
        .await
        .unwrap();
    let rows = ledger
        .list_payments("w", Some(Direction::Out), 10)
        .await
        .unwrap();
    let row = |id: i64| rows.iter().find(|r| r.id == id).unwrap();
    assert_eq!(row(second).status, Status::Succeeded);
    assert_eq!(row(second).fee_msat, 5);
    assert_eq!(row(first).status, Status::Failed);
    assert!(
        row(first)
            .error
            .as_deref()
            .unwrap_or("")
            .contains(&format!("#{second}"))
    );
    let totals = ledger.totals("w").await.unwrap();
    assert_eq!((totals.spent_msat, totals.reserved_msat), (10_005, 0));
    // The second attempt's own answer changes nothing: failing it is refused (not pending).
    ledger
        .mark_failed(second, "late failure", T0 + 2)
        .await
        .unwrap();
    assert_eq!(ledger.totals("w").await.unwrap().spent_msat, 10_005);
}

/// Budget windows in SQL: the hourly window, the per-host window (one host however it is
/// spelled), and a pending payment that keeps its hold after its day has passed.
#[tokio::test]
async fn windows_hold_what_they_should() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open_in(dir.path()).await.unwrap();
    let invoices: Vec<_> = (0u8..6)
        .map(|i| {
            l402_mcp::bolt11::decode(&common::fixture::invoice_for(0x60 + i, 10_000, [i; 32]))
                .unwrap()
        })
        .collect();
    let policy = BudgetPolicy {
        per_payment_msat: 100_000,
        daily_msat: 1_000_000,
        hourly_msat: Some(25_000),
        per_host_daily_msat: Some(15_000),
        max_fee_floor_msat: 0,
        max_fee_ppm: 0,
        ..BudgetPolicy::default()
    };
    let reserve = async |i: usize, host: &str, now: u64| {
        let new = NewOutgoing {
            wallet: "w",
            invoice: &invoices[i],
            amount_msat: 10_000,
            max_fee_msat: 0,
            url: None,
            payee: Some(&l402_mcp::payee::Payee::of_host(host)),
            credential: None,
        };
        ledger.reserve(&new, &policy, now).await
    };
    let reserved = |r: Result<Reservation, _>| match r {
        Ok(Reservation::Reserved { id }) => id,
        other => panic!("{other:?}"),
    };
    // Per host: 10 sats at a.example, then 10 more at "A.Example." is the same host: refused.
    let a = reserved(reserve(0, "a.example", T0).await);
    let err = reserve(1, "A.Example.", T0).await.unwrap_err();
    assert!(err.to_string().contains("per-host"), "{err}");
    // Hourly: 10 + 10 at another host fits 25; a third in the same hour does not.
    let b = reserved(reserve(1, "b.example", T0).await);
    let err = reserve(2, "c.example", T0 + 60).await.unwrap_err();
    assert!(err.to_string().contains("hourly"), "{err}");
    // Settled, they leave the hourly window when the hour has passed.
    for id in [a, b] {
        ledger
            .mark_succeeded(id, Some(&[9; 32]), 0, None, T0)
            .await
            .unwrap();
    }
    let _c = reserved(reserve(2, "c.example", T0 + 3_601).await);
    // Two days later the settled payments have left every window, but the one still pending
    // holds its reservation in each, the hourly one included.
    let later = T0 + 2 * 86_400;
    let used = ledger
        .window_use(
            "w",
            Some(&l402_mcp::payee::Payee::of_host("c.example")),
            later,
        )
        .await
        .unwrap();
    assert_eq!(
        (
            used.daily_msat,
            used.hourly_msat,
            used.host_daily_msat,
            used.reserved_msat
        ),
        (10_000, 10_000, 10_000, 10_000)
    );
    let used = ledger
        .window_use(
            "w",
            Some(&l402_mcp::payee::Payee::of_host("a.example")),
            later,
        )
        .await
        .unwrap();
    assert_eq!(used.host_daily_msat, 0);
    reserved(reserve(3, "d.example", later).await);
    let err = reserve(4, "e.example", later).await.unwrap_err();
    assert!(err.to_string().contains("hourly"), "{err}");
}
