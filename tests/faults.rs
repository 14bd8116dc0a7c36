//! Wallet faults through the pay path, with a scripted backend: a preimage that does not match,
//! an answer that cannot be read (outcome unknown), a backend that cannot be reached, a lookup
//! that keeps failing. Each gives a clear error and a consistent ledger; nothing is paid twice.
// A failed step in a test or benchmark is a failed run: unwrapping is fine here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use common::{T0, foreign_invoice};
use l402_mcp::bolt11::{DecodedInvoice, Network};
use l402_mcp::budget::BudgetPolicy;
use l402_mcp::clock::{ManualClock, SharedClock};
use l402_mcp::ledger::{Direction, Ledger, NewOutgoing, Reservation, Status};
use l402_mcp::pay::{PayError, PayRequest, Payer, RECONCILE_GRACE_SECS};
use l402_mcp::wallet::{
    Balance, CreatedInvoice, IncomingStatus, InvoiceRequest, OutgoingStatus, PaymentResult, Wallet,
    WalletError, WalletInfo,
};

/// What the scripted wallet does when asked to pay, and what its lookup says afterwards.
#[derive(Debug, Clone)]
enum Script {
    WrongPreimage,
    Unreadable,
    Unreachable,
    /// Pays, returns no preimage, and says so up front (`withholds_preimages`).
    Withholds,
}

#[derive(Debug)]
struct Scripted {
    script: Script,
    calls: Mutex<u32>,
    /// What lookup_outgoing answers (None: an error).
    lookup: Mutex<Option<OutgoingStatus>>,
}

#[async_trait]
impl Wallet for Scripted {
    async fn info(&self) -> Result<WalletInfo, WalletError> {
        Ok(WalletInfo {
            backend: "scripted",
            network: Network::Regtest,
            node_id: None,
            returns_preimages: true,
            demo_funds: false,
        })
    }
    async fn balance(&self) -> Result<Balance, WalletError> {
        Ok(Balance {
            msat: 1_000_000_000,
            demo_funds: false,
        })
    }
    async fn create_invoice(&self, _: &InvoiceRequest) -> Result<CreatedInvoice, WalletError> {
        Err(WalletError::Other("not used".into()))
    }
    async fn pay_invoice(&self, _: &DecodedInvoice, _: u64) -> Result<PaymentResult, WalletError> {
        *self.calls.lock().unwrap() += 1;
        match self.script {
            Script::WrongPreimage => Ok(PaymentResult {
                preimage: Some([0xee; 32]),
                fee_msat: 3,
            }),
            Script::Unreadable => Err(WalletError::OutcomeUnknown(
                "the answer could not be read: expected value at line 1 column 1".into(),
            )),
            Script::Unreachable => Err(WalletError::Unavailable("connection refused".into())),
            Script::Withholds => Ok(PaymentResult {
                preimage: None,
                fee_msat: 0,
            }),
        }
    }
    fn withholds_preimages(&self) -> bool {
        matches!(self.script, Script::Withholds)
    }
    async fn lookup_incoming(&self, _: &[u8; 32]) -> Result<IncomingStatus, WalletError> {
        Ok(IncomingStatus::NotFound)
    }
    async fn lookup_outgoing(&self, _: &[u8; 32]) -> Result<OutgoingStatus, WalletError> {
        self.lookup
            .lock()
            .unwrap()
            .clone()
            .ok_or_else(|| WalletError::Other("HTTP 500".into()))
    }
}

async fn setup(
    script: Script,
) -> (
    tempfile::TempDir,
    Arc<ManualClock>,
    Arc<Scripted>,
    Payer,
    Ledger,
) {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open_in(dir.path()).await.unwrap();
    let clock = ManualClock::new(T0);
    let shared: SharedClock = clock.clone();
    let wallet = Arc::new(Scripted {
        script,
        calls: Mutex::new(0),
        lookup: Mutex::new(None),
    });
    let payer = Payer::new("w", wallet.clone(), ledger.clone(), shared)
        .await
        .unwrap();
    (dir, clock, wallet, payer, ledger)
}

fn invoice() -> String {
    foreign_invoice(Network::Regtest, Some(10_000), T0, 3600)
}

#[tokio::test]
async fn a_preimage_that_does_not_match_is_recorded_loudly_as_spent_without_proof() {
    let (_d, _c, wallet, payer, ledger) = setup(Script::WrongPreimage).await;
    let inv = invoice();
    let err = payer
        .pay(&PayRequest {
            invoice: &inv,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(matches!(err, PayError::PreimageMismatch { .. }), "{err}");
    assert!(err.money_may_have_moved());
    let rows = ledger
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
    assert_eq!(ledger.totals("w").await.unwrap().spent_msat, 10_003);
    let again = payer
        .pay(&PayRequest {
            invoice: &inv,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(matches!(again, PayError::NoPreimage { .. }), "{again}");
    assert_eq!(*wallet.calls.lock().unwrap(), 1);
}

#[tokio::test]
async fn an_unreadable_answer_stays_pending_until_the_lookup_resolves_it() {
    let (_d, clock, wallet, payer, ledger) = setup(Script::Unreadable).await;
    let inv = invoice();
    let err = payer
        .pay(&PayRequest {
            invoice: &inv,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(matches!(err, PayError::OutcomeUnknown { .. }), "{err}");
    assert!(err.to_string().contains("do not retry"));
    // Pending: the reservation (amount + max fee) holds the budget; paying again is refused.
    let totals = ledger.totals("w").await.unwrap();
    assert_eq!((totals.spent_msat, totals.reserved_msat), (0, 20_000));
    assert!(matches!(
        payer
            .pay(&PayRequest {
                invoice: &inv,
                ..Default::default()
            })
            .await,
        Err(PayError::InFlight { .. })
    ));
    // A lookup that fails keeps it pending, even long after.
    clock.advance(RECONCILE_GRACE_SECS * 10);
    assert_eq!(payer.reconcile().await.unwrap().still_pending, 1);
    // The wallet's lookup says it went through: recorded with its preimage and fee.
    let preimage = [0x11; 32];
    let inv = foreign_invoice_with(preimage);
    let (_d2, _c2, wallet2, payer2, ledger2) = setup(Script::Unreadable).await;
    let _ = payer2
        .pay(&PayRequest {
            invoice: &inv,
            ..Default::default()
        })
        .await
        .unwrap_err();
    *wallet2.lookup.lock().unwrap() = Some(OutgoingStatus::Succeeded(PaymentResult {
        preimage: Some(preimage),
        fee_msat: 7,
    }));
    assert_eq!(payer2.reconcile().await.unwrap().succeeded, 1);
    let rows = ledger2
        .list_payments("w", Some(Direction::Out), 10)
        .await
        .unwrap();
    assert_eq!(
        (rows[0].status, rows[0].preimage_bytes(), rows[0].fee_msat),
        (Status::Succeeded, Some(preimage), 7)
    );
    assert_eq!(
        (
            *wallet.calls.lock().unwrap(),
            *wallet2.calls.lock().unwrap()
        ),
        (1, 1)
    );
}

#[tokio::test]
async fn an_unreachable_backend_releases_the_reservation() {
    let (_d, _c, _w, payer, ledger) = setup(Script::Unreachable).await;
    let inv = invoice();
    let err = payer
        .pay(&PayRequest {
            invoice: &inv,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(
        matches!(err, PayError::Failed(WalletError::Unavailable(_))),
        "{err}"
    );
    assert!(!err.money_may_have_moved());
    let totals = ledger.totals("w").await.unwrap();
    assert_eq!((totals.spent_msat, totals.reserved_msat), (0, 0));
}

/// A regtest invoice payable with `preimage`.
fn foreign_invoice_with(preimage: [u8; 32]) -> String {
    common::fixture::invoice_for(0x55, 10_000, preimage)
}

#[tokio::test]
async fn a_wallet_known_to_withhold_preimages_is_not_asked_to_pay_for_an_l402_credential() {
    let (_d, _c, wallet, payer, ledger) = setup(Script::Withholds).await;
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
    let err = payer
        .pay(&PayRequest {
            invoice: &inv,
            credential: Some(&scope),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(matches!(err, PayError::PreimagesWithheld), "{err}");
    assert!(!err.money_may_have_moved());
    assert_eq!(*wallet.calls.lock().unwrap(), 0);
    assert!(
        ledger
            .list_payments("w", Some(Direction::Out), 10)
            .await
            .unwrap()
            .is_empty()
    );
    // A plain invoice payment does not need it: paid, recorded, and reported as unprovable.
    let err = payer
        .pay(&PayRequest {
            invoice: &inv,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(matches!(err, PayError::NoPreimage { .. }), "{err}");
    assert_eq!(*wallet.calls.lock().unwrap(), 1);
    assert_eq!(ledger.totals("w").await.unwrap().spent_msat, 10_000);
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
