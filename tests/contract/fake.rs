//! The fake wallet (`wallet::fake`) as a backend: scripted to play each scenario, so that the
//! tests built on it rest on a wallet that keeps the contract.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use l402_mcp::bolt11::Network;
use l402_mcp::clock::ManualClock;
use l402_mcp::wallet::Wallet;
use l402_mcp::wallet::fake::{FakeNode, FakeWallet, Outcome};

use crate::common::T0;
use crate::sessions::SessionFixture;
use crate::suite::{BackendFixture, Scenario, TestInvoice};

const BALANCE_MSAT: u64 = 1_000_000;

pub struct Fixture {
    wallet: FakeWallet,
}

#[async_trait]
impl BackendFixture for Fixture {
    const FEE_MSAT: u64 = 11;
    const FAILURE_REASON: &'static str = "no route";
    const CREDENTIAL: &'static str = "none";

    async fn start(scenario: Scenario) -> Fixture {
        let wallet = FakeNode::new(Network::Regtest, ManualClock::new(T0)).wallet(BALANCE_MSAT);
        wallet.set_timeout(Duration::from_millis(300));
        wallet.always(match scenario {
            Scenario::Paid => Outcome::Paid {
                fee_msat: Self::FEE_MSAT,
            },
            Scenario::PendingThenSettled => Outcome::Pending,
            Scenario::Hang => Outcome::Hang,
            Scenario::Failed => Outcome::Failed("no route (scripted)".into()),
            Scenario::NoPreimage => Outcome::PaidWithoutPreimage {
                fee_msat: Self::FEE_MSAT,
            },
            other => panic!("the fake wallet does not play {other:?}"),
        });
        Fixture { wallet }
    }

    async fn wallet(&self) -> Arc<dyn Wallet> {
        Arc::new(self.wallet.clone())
    }

    async fn invoice(&self, seed: u8) -> TestInvoice {
        let inv = TestInvoice::regtest(0x71, seed);
        self.wallet.node().learn_preimage(inv.preimage);
        inv
    }

    async fn settle(&self, invoice: &TestInvoice) {
        self.wallet.settle(&invoice.hash);
    }

    fn pay_normally(&self) -> bool {
        self.wallet.always(Outcome::Paid {
            fee_msat: Self::FEE_MSAT,
        });
        true
    }

    async fn pay_calls(&self) -> usize {
        self.wallet.pay_calls()
    }

    fn secret(&self) -> String {
        String::new()
    }
}

#[async_trait]
impl SessionFixture for Fixture {
    async fn amountless_invoice(&self, seed: u8) -> TestInvoice {
        let inv = TestInvoice::regtest_amountless(0x71, seed);
        self.wallet.node().learn_preimage(inv.preimage);
        inv
    }

    /// What left the account, less the fee: the fake wallet debits what it sends.
    async fn amount_sent_msat(&self) -> Option<u64> {
        let debited = BALANCE_MSAT - self.wallet.balance_msat();
        (debited > 0).then(|| debited - Self::FEE_MSAT)
    }
}
