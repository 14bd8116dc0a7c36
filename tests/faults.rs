//! Wallet faults through the pay path, with a scripted backend: a preimage that does not match,
//! an answer that cannot be read (outcome unknown), a backend that cannot be reached, a lookup
//! that keeps failing. Each gives a clear error and a consistent ledger; nothing is paid twice.

mod common;

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use common::{T0, foreign_invoice};
use l402_mcp::bolt11::{DecodedInvoice, Network};
use l402_mcp::clock::{ManualClock, SharedClock};
use l402_mcp::ledger::{Direction, Ledger, Status};
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
        }
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
