//! A buyer on any wallet backend: wallet "w" with its ledger in a temp dir, the pay path
//! ([`Payer`]) and a clock the test moves. The contract suite, the fault tests and the
//! backends' own tests pay through it, so every backend is driven the same way.

use std::sync::Arc;

use l402_mcp::bolt11::Network;
use l402_mcp::clock::{ManualClock, SharedClock};
use l402_mcp::l402::PaymentHash;
use l402_mcp::pay::{PayError, PayRequest, Payer, Receipt};
use l402_mcp::storage::{Payment, SpendLedger, Status, Storage};
use l402_mcp::wallet::fake::DEFAULT_BALANCE_MSAT;
use l402_mcp::wallet::{FakeNode, FakeWallet, Wallet};

use super::T0;

pub struct Buyer {
    pub dir: tempfile::TempDir,
    pub clock: Arc<ManualClock>,
    pub storage: Storage,
    pub ledger: Arc<dyn SpendLedger>,
    pub wallet: Arc<dyn Wallet>,
    pub payer: Payer,
}

impl Buyer {
    /// A buyer paying with `wallet`, at time [`T0`].
    pub async fn on(wallet: Arc<dyn Wallet>) -> Buyer {
        Buyer::with_clock(wallet, ManualClock::new(T0)).await
    }

    /// A buyer paying with `wallet`, its time read from `clock`.
    pub async fn with_clock(wallet: Arc<dyn Wallet>, clock: Arc<ManualClock>) -> Buyer {
        let dir = tempfile::tempdir().expect("temp dir");
        let storage = Storage::open_sqlite(dir.path()).await.expect("storage");
        let ledger = storage.ledger();
        let shared: SharedClock = clock.clone();
        let payer = Payer::new(
            "w",
            wallet.clone(),
            ledger.clone(),
            storage.tokens(),
            shared,
        )
        .await
        .expect("payer");
        Buyer {
            dir,
            clock,
            storage,
            ledger,
            wallet,
            payer,
        }
    }

    /// A buyer on a fresh [`FakeWallet`] (regtest, on this buyer's clock), and the wallet's
    /// handle for scripting it.
    pub async fn on_fake() -> (Buyer, FakeWallet) {
        let clock = ManualClock::new(T0);
        let node = FakeNode::new(Network::Regtest, clock.clone());
        let fake = node.wallet(DEFAULT_BALANCE_MSAT);
        (Buyer::with_clock(Arc::new(fake.clone()), clock).await, fake)
    }

    /// Pay `bolt11` through the pay path, with the default budget.
    pub async fn pay(&self, bolt11: &str) -> Result<Receipt, PayError> {
        self.payer
            .pay(&PayRequest {
                invoice: bolt11,
                ..Default::default()
            })
            .await
    }

    /// The ledger's row for the payment of `hash`.
    pub async fn record(&self, hash: &PaymentHash) -> Payment {
        self.payer
            .find(hash)
            .await
            .expect("ledger")
            .expect("a ledger row for this payment")
    }

    pub async fn status(&self, hash: &PaymentHash) -> Status {
        self.record(hash).await.status
    }

    /// (spent, reserved) msat, as the budget sees them.
    pub async fn totals(&self) -> (u64, u64) {
        let t = self.ledger.totals("w").await.expect("totals");
        (t.spent.msat(), t.reserved.msat())
    }
}
