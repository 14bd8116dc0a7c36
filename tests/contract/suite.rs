//! The wallet contract, written once: what the pay path relies on from every backend, checked
//! scenario by scenario through `Payer` on a backend's stand-in ([`BackendFixture`]).
//!
//! - paid: the preimage and the fee are reported, recorded once, and the backend's lookup
//!   agrees;
//! - outcome unknown (pending, hang, 5xx, an answer that is not JSON): never called a failure,
//!   the payment stays pending with its reservation, is never sent again, `lookup_outgoing`
//!   says in flight, and once the backend settles it reconcile records it with its proof;
//! - failed: a definite refusal ([`WalletError::definitely_not_paid`]), the reservation
//!   released, the reason given;
//! - no preimage: the payment is recorded as spent, and reported as unprovable;
//! - credentials refused: nothing paid, the backend's error names the credential and never
//!   shows it;
//! - rate-limited (429 with `Retry-After`): a balance read waits it out, a payment is never
//!   sent again (a definite refusal), and goes through once the limit is lifted;
//! - sells (hosted backends): the balance and an invoice's amount in the API's own units,
//!   converted exactly; the invoice pending, then settled, as the backend's lookup says;
//! - refuses to buy (seller-only backends): an L402 payment is refused before anything is
//!   reserved, any other payment before anything is sent, and the agent is told why.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use l402_mcp::clock::ManualClock;
use l402_mcp::l402::PaymentHash;
use l402_mcp::pay::{PayError, PayRequest};
use l402_mcp::storage::{CredentialScope, Status};
use l402_mcp::wallet::{
    BackendConfig, IncomingStatus, InvoiceRequest, OutgoingStatus, PaymentResult, Wallet,
    WalletError,
};

use crate::common::T0;
use crate::common::buyer::Buyer;

/// What a backend's stand-in is set up to do when asked to pay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// Pays, with the preimage and [`BackendFixture::fee_msat`].
    Paid,
    /// Answers that the payment is still under way.
    PendingThenSettled,
    /// Takes the payment and does not answer within the wallet's timeout.
    Hang,
    /// Refuses the payment for good (no route, insufficient balance...).
    Failed,
    /// Pays, but answers without the preimage.
    NoPreimage,
    /// Refuses the configured key, macaroon, rune, password or connection.
    AuthRefused,
    /// Answers the payment with a 5xx (or the protocol's internal error), while it goes on.
    ServerError,
    /// Answers the payment with something that is not the JSON expected, while it goes on.
    NotJson,
}

/// What a reverse proxy answers when the node behind it failed: a 5xx that is not the node's.
pub const PROXY_502: &str = "<html><head><title>502 Bad Gateway</title></head></html>";
/// A 200 that is not the node's JSON: a web server's default page where the API should be.
pub const NOT_JSON: &str = "<html><body>Welcome to nginx!</body></html>";

/// The wallet's per-request timeout for a scenario: short when the stand-in will not answer.
pub fn timeout_secs(scenario: Scenario) -> u64 {
    if scenario == Scenario::Hang { 2 } else { 5 }
}

/// A 21-sat invoice a fixture's backend can pay.
#[derive(Debug, Clone)]
pub struct TestInvoice {
    pub bolt11: String,
    pub hash: l402_mcp::l402::PaymentHash,
    /// What paying it reveals.
    pub preimage: l402_mcp::l402::Preimage,
    pub amount_msat: u64,
}

impl TestInvoice {
    /// This invoice, its preimage added to a stand-in's `preimages` (by hex hash), so that the
    /// stand-in can pay it.
    pub fn known_to(self, preimages: &mut HashMap<String, [u8; 32]>) -> TestInvoice {
        preimages.insert(self.hash.to_hex(), self.preimage.0);
        self
    }

    /// A regtest invoice without an amount (a Payment session's return invoice), signed by the
    /// test key `[key_byte; 32]`, payable with `[seed; 32]`.
    pub fn regtest_amountless(key_byte: u8, seed: u8) -> TestInvoice {
        let preimage = [seed; 32];
        TestInvoice {
            bolt11: crate::common::fixture::amountless_invoice_for(key_byte, preimage),
            hash: l402_mcp::l402::PaymentHash(l402_mcp::l402::sha256(&preimage)),
            preimage: l402_mcp::l402::Preimage(preimage),
            amount_msat: 0,
        }
    }

    /// A regtest invoice signed by the test key `[key_byte; 32]`, payable with `[seed; 32]`.
    pub fn regtest(key_byte: u8, seed: u8) -> TestInvoice {
        let preimage = [seed; 32];
        TestInvoice {
            bolt11: crate::common::fixture::invoice_for(key_byte, 21_000, preimage),
            hash: l402_mcp::l402::PaymentHash(l402_mcp::l402::sha256(&preimage)),
            preimage: l402_mcp::l402::Preimage(preimage),
            amount_msat: 21_000,
        }
    }
}

/// A backend's stand-in, as the contract drives it. Each backend's module implements it: a
/// loopback replay of its documented API (LND, CLN, Phoenixd, LNbits), a NIP-47 wallet service
/// on an in-process relay (NWC), a real LNbits, or the fake wallet.
#[async_trait]
pub trait BackendFixture: Sized + Send + Sync + 'static {
    /// The fee a payment in [`Scenario::Paid`] reports.
    const FEE_MSAT: u64;
    /// Words the backend's definite refusal in [`Scenario::Failed`] gives as its reason.
    const FAILURE_REASON: &'static str;
    /// The credential's name, as the backend's errors about it say it.
    const CREDENTIAL: &'static str;
    /// False for a seller's backend, which never pays (see [`refuses_to_buy`]).
    const PAYS: bool = true;
    /// The balance the stand-in answers (in its API's own units), in msat.
    const BALANCE_MSAT: u64 = 0;

    /// Start a stand-in that answers payments as `scenario` says.
    async fn start(scenario: Scenario) -> Self;
    /// The wallet under test, reaching the stand-in as a user's configuration would.
    async fn wallet(&self) -> Arc<dyn Wallet>;
    /// An invoice the backend can pay; `seed` makes it distinct.
    async fn invoice(&self, seed: u8) -> TestInvoice;
    /// Complete at the backend the payment of `invoice` left in flight.
    async fn settle(&self, invoice: &TestInvoice);
    /// Answer payments as in [`Scenario::Paid`] from now on; false when it cannot (a real
    /// LNbits refusing an invoice keeps refusing it).
    fn pay_normally(&self) -> bool;
    /// Payment requests that reached the backend.
    async fn pay_calls(&self) -> usize;
    /// The credential's value: never shown.
    fn secret(&self) -> String;
    /// The time of the buyer's clock (the fixtures' invoices are dated [`T0`]).
    fn now(&self) -> u64 {
        T0
    }
    /// Answer the next balance read, and the next payment (or invoice, for a backend that
    /// does not pay), with `429 Too Many Requests` and `Retry-After: 1`.
    fn rate_limit_next(&self) {
        panic!("this stand-in does not rate-limit")
    }
    /// Mark paid the invoice the backend created with `payment_hash`.
    async fn settle_incoming(&self, _payment_hash: &PaymentHash) {
        panic!("this stand-in does not settle invoices it made")
    }
    /// Requests to create an invoice that reached the backend.
    async fn create_calls(&self) -> usize {
        panic!("this stand-in does not count invoice requests")
    }
}

/// The wallet a user's `[backend]` configuration opens.
pub async fn open(config: BackendConfig) -> Arc<dyn Wallet> {
    l402_mcp::wallet::open_remote(&config, crate::common::refs::in_memory())
        .await
        .unwrap_or_else(|e| panic!("{} wallet: {e}", config.kind()))
}

/// The `[backend]` of the first TOML block of a backend's docs page, as the config reads it.
pub fn documented_backend(page: &str) -> BackendConfig {
    let block = page
        .split("```toml\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("a ```toml block on the page");
    let config = l402_mcp::config::Config::parse(block).unwrap_or_else(|e| panic!("{e}"));
    config.backend().unwrap_or_else(|e| panic!("{e}"))
}

async fn buyer<F: BackendFixture>(f: &F) -> Buyer {
    Buyer::with_clock(f.wallet().await, ManualClock::new(f.now())).await
}

pub async fn paid<F: BackendFixture>() {
    let f = F::start(Scenario::Paid).await;
    let b = buyer(&f).await;
    let inv = f.invoice(1).await;
    let receipt = b.pay(&inv.bolt11).await.expect("paid");
    assert_eq!(receipt.preimage, inv.preimage, "the preimage is reported");
    assert_eq!(
        (receipt.amount_msat, receipt.fee_msat),
        (inv.amount_msat, F::FEE_MSAT),
        "the fee is reported"
    );
    assert_eq!(b.status(&inv.hash).await, Status::Succeeded);
    assert_eq!(b.totals().await, (inv.amount_msat + F::FEE_MSAT, 0));
    assert_eq!(
        b.wallet.lookup_outgoing(&inv.hash).await,
        Ok(OutgoingStatus::Succeeded(PaymentResult {
            preimage: Some(inv.preimage),
            fee_msat: F::FEE_MSAT
        })),
        "the backend's record agrees"
    );
    let again = b.pay(&inv.bolt11).await.expect("already paid");
    assert!(again.already_paid);
    assert_eq!(f.pay_calls().await, 1, "paid once");
}

pub async fn pending_then_settled<F: BackendFixture>() {
    unknown_then_settled::<F>(Scenario::PendingThenSettled).await;
}

pub async fn hang<F: BackendFixture>() {
    unknown_then_settled::<F>(Scenario::Hang).await;
}

pub async fn server_error<F: BackendFixture>() {
    unknown_then_settled::<F>(Scenario::ServerError).await;
}

pub async fn not_json<F: BackendFixture>() {
    unknown_then_settled::<F>(Scenario::NotJson).await;
}

async fn unknown_then_settled<F: BackendFixture>(scenario: Scenario) {
    unknown_then_settled_on(&F::start(scenario).await, &format!("{scenario:?}")).await;
}

/// Any answer that leaves the outcome open: pending, never sent again, resolved by the lookup.
/// For a backend's own variants too (e.g. a stream cut mid-message), on a started fixture.
pub async fn unknown_then_settled_on<F: BackendFixture>(f: &F, scenario: &str) {
    let b = buyer(f).await;
    let inv = f.invoice(2).await;
    let started = Instant::now();
    let err = b.pay(&inv.bolt11).await.expect_err("no definite answer");
    assert!(
        matches!(err, PayError::OutcomeUnknown { .. }),
        "{scenario}: {err}"
    );
    assert!(err.money_may_have_moved());
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{scenario}: the call gave up within its timeout"
    );
    assert_eq!(b.status(&inv.hash).await, Status::Pending);
    let (spent, reserved) = b.totals().await;
    assert!(
        spent == 0 && reserved >= inv.amount_msat,
        "the reservation holds"
    );
    assert!(
        matches!(b.pay(&inv.bolt11).await, Err(PayError::InFlight { .. })),
        "never sent again while unresolved"
    );
    assert_eq!(
        b.wallet.lookup_outgoing(&inv.hash).await,
        Ok(OutgoingStatus::InFlight)
    );
    assert_eq!(
        b.payer.reconcile().await.expect("reconcile").still_pending,
        1
    );

    f.settle(&inv).await;
    assert_eq!(b.payer.reconcile().await.expect("reconcile").succeeded, 1);
    let receipt = b.pay(&inv.bolt11).await.expect("recorded as paid");
    assert!(receipt.already_paid);
    assert_eq!(receipt.preimage, inv.preimage, "recorded with its proof");
    let Ok(OutgoingStatus::Succeeded(looked_up)) = b.wallet.lookup_outgoing(&inv.hash).await else {
        panic!("{scenario}: the backend says it succeeded");
    };
    assert_eq!(receipt.fee_msat, looked_up.fee_msat, "the fee it reports");
    assert_eq!(b.totals().await, (inv.amount_msat + receipt.fee_msat, 0));
    assert_eq!(f.pay_calls().await, 1, "never sent twice");
}

pub async fn failed<F: BackendFixture>() {
    let f = F::start(Scenario::Failed).await;
    let b = buyer(&f).await;
    let inv = f.invoice(3).await;
    match b.pay(&inv.bolt11).await {
        Err(PayError::Failed(e @ WalletError::Rejected(_))) => {
            assert!(e.definitely_not_paid());
            assert!(
                e.to_string().contains(F::FAILURE_REASON),
                "the reason is given: {e}"
            );
        }
        other => panic!("a definite refusal: {other:?}"),
    }
    assert_eq!(b.status(&inv.hash).await, Status::Failed);
    assert_eq!(b.totals().await, (0, 0), "the reservation is released");
    assert!(
        matches!(
            b.wallet.lookup_outgoing(&inv.hash).await,
            Ok(OutgoingStatus::Failed(_) | OutgoingStatus::NotFound)
        ),
        "the backend's record agrees"
    );
    if f.pay_normally() {
        let receipt = b.pay(&inv.bolt11).await.expect("paid on a second try");
        assert_eq!(receipt.preimage, inv.preimage);
        assert_eq!(f.pay_calls().await, 2);
    }
}

pub async fn no_preimage<F: BackendFixture>() {
    let f = F::start(Scenario::NoPreimage).await;
    let b = buyer(&f).await;
    let inv = f.invoice(4).await;
    match b.pay(&inv.bolt11).await {
        Err(PayError::NoPreimage { amount_msat, .. }) => {
            assert_eq!(amount_msat, inv.amount_msat)
        }
        other => panic!("paid without a preimage: {other:?}"),
    }
    let row = b.record(&inv.hash).await;
    assert_eq!(row.status, Status::Succeeded, "money moved");
    assert!(row.preimage.is_none());
    let (spent, reserved) = b.totals().await;
    assert!(
        spent >= inv.amount_msat && reserved == 0,
        "counted as spent"
    );
    assert!(matches!(
        b.pay(&inv.bolt11).await,
        Err(PayError::NoPreimage { .. })
    ));
    assert_eq!(f.pay_calls().await, 1, "not paid again");
}

pub async fn auth_refused<F: BackendFixture>() {
    let f = F::start(Scenario::AuthRefused).await;
    let b = buyer(&f).await;
    let (name, secret) = (F::CREDENTIAL, f.secret());
    let shows_nothing = |text: String| {
        assert!(!text.contains(&secret), "{text}");
        text
    };
    let balance = b
        .wallet
        .balance()
        .await
        .expect_err("no balance without a key");
    let text = shows_nothing(balance.to_string());
    assert!(text.contains(name), "the credential is named: {text}");

    let inv = f.invoice(5).await;
    let decoded = l402_mcp::bolt11::decode(&inv.bolt11).expect("invoice");
    let refused = b.wallet.pay_invoice(&decoded, 10_000).await;
    match refused {
        Err(e) => {
            assert!(e.definitely_not_paid(), "{e:?}");
            shows_nothing(format!("{e:?}"));
        }
        Ok(r) => panic!("paid with a refused credential: {r:?}"),
    }
    let err = b.pay(&inv.bolt11).await.expect_err("not paid");
    assert!(!err.money_may_have_moved(), "{err}");
    shows_nothing(err.to_string());
    assert_eq!(b.totals().await, (0, 0));
    shows_nothing(format!("{:?}", b.wallet));
}

/// The invoice request of [`sells`] and [`rate_limited`]: 21 sats.
fn invoice_request(amount_msat: u64) -> InvoiceRequest {
    InvoiceRequest {
        amount_msat,
        description: "contract test".into(),
        expiry_secs: 600,
    }
}

pub async fn rate_limited<F: BackendFixture>() {
    let f = F::start(Scenario::Paid).await;
    let b = buyer(&f).await;
    f.rate_limit_next();
    let started = Instant::now();
    let balance = b
        .wallet
        .balance()
        .await
        .expect("a balance read waits out a 429");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After is honoured"
    );
    assert_eq!(balance.msat, F::BALANCE_MSAT);
    if !F::PAYS {
        let refused = b.wallet.create_invoice(&invoice_request(21_000)).await;
        assert!(refused.is_err(), "an invoice request is not retried");
        assert_eq!(f.create_calls().await, 1, "sent once");
        b.wallet
            .create_invoice(&invoice_request(21_000))
            .await
            .expect("created once the limit is lifted");
        return;
    }
    let inv = f.invoice(6).await;
    match b.pay(&inv.bolt11).await {
        Err(PayError::Failed(e)) => assert!(e.definitely_not_paid(), "{e}"),
        other => panic!("a 429 refuses the payment: {other:?}"),
    }
    assert_eq!(f.pay_calls().await, 1, "a payment is never sent again");
    assert_eq!(b.totals().await, (0, 0), "the reservation is released");
    let receipt = b
        .pay(&inv.bolt11)
        .await
        .expect("paid once the limit is lifted");
    assert_eq!(receipt.preimage, inv.preimage);
    assert_eq!(f.pay_calls().await, 2);
}

pub async fn sells<F: BackendFixture>() {
    let f = F::start(Scenario::Paid).await;
    let w = f.wallet().await;
    assert_eq!(
        w.balance().await.expect("balance").msat,
        F::BALANCE_MSAT,
        "the balance in the API's units, converted exactly"
    );
    let created = w
        .create_invoice(&invoice_request(21_000))
        .await
        .expect("invoice");
    let decoded = l402_mcp::bolt11::decode(&created.bolt11).expect("a BOLT11 invoice");
    assert_eq!(decoded.amount_msat, Some(21_000), "for the amount asked");
    assert_eq!(decoded.payment_hash, created.payment_hash);
    assert_eq!(
        w.lookup_incoming(&created.payment_hash).await,
        Ok(IncomingStatus::Pending)
    );
    f.settle_incoming(&created.payment_hash).await;
    assert_eq!(
        w.lookup_incoming(&created.payment_hash).await,
        Ok(IncomingStatus::Settled {
            amount_msat: 21_000
        })
    );
    assert_eq!(
        w.lookup_incoming(&PaymentHash([0x5a; 32])).await,
        Ok(IncomingStatus::NotFound),
        "an invoice it never made"
    );
    assert!(
        matches!(
            w.create_invoice(&invoice_request(21_500)).await,
            Err(WalletError::Rejected(_))
        ),
        "a part of a sat is refused before the backend is asked"
    );
}

pub async fn refuses_to_buy<F: BackendFixture>() {
    let f = F::start(Scenario::Paid).await;
    let b = buyer(&f).await;
    assert!(b.wallet.withholds_preimages());
    assert!(!b.wallet.info().await.expect("info").returns_preimages);
    let inv = f.invoice(7).await;
    let scope = CredentialScope {
        origin: "https://seller.example".into(),
        path_prefix: "/".into(),
        scheme: l402_mcp::l402::Scheme::L402,
        macaroon: vec![1, 2, 3],
        expires_at: None,
    };
    let l402 = b
        .payer
        .pay(&PayRequest {
            invoice: &inv.bolt11,
            credential: Some(&scope),
            ..Default::default()
        })
        .await;
    assert!(matches!(l402, Err(PayError::PreimagesWithheld)), "{l402:?}");
    assert!(
        b.payer.find(&inv.hash).await.expect("ledger").is_none(),
        "refused before anything was reserved"
    );
    match b.pay(&inv.bolt11).await {
        Err(PayError::Failed(e)) => {
            assert!(e.definitely_not_paid());
            assert!(e.to_string().contains("seller"), "says why: {e}");
        }
        other => panic!("refused: {other:?}"),
    }
    assert_eq!(b.totals().await, (0, 0));
    assert_eq!(f.pay_calls().await, 0, "nothing reached the backend");
}

/// Tests of `scenarios` for one backend: `contract_tests!(module, Fixture, [paid, ...])`, or
/// `all` of the paying ones, or `hosted` (all, rate limits and selling); optionally `ignore = "why"` after the list. Each scenario is a function of
/// this module.
macro_rules! contract_tests {
    ($backend:ident, $fixture:ty, hosted) => {
        contract_tests!($backend, $fixture, [
            paid, pending_then_settled, hang, failed, no_preimage, auth_refused, server_error,
            not_json, rate_limited, sells
        ]);
    };
    ($backend:ident, $fixture:ty, all) => {
        contract_tests!($backend, $fixture, [
            paid, pending_then_settled, hang, failed, no_preimage, auth_refused, server_error,
            not_json
        ]);
    };
    ($backend:ident, $fixture:ty, [$($scenario:ident),* $(,)?]) => {
        mod $backend {
            $(
                #[tokio::test]
                async fn $scenario() {
                    $crate::suite::$scenario::<$fixture>().await;
                }
            )*
        }
    };
    ($backend:ident, $fixture:ty, [$($scenario:ident),* $(,)?], ignore = $why:literal) => {
        mod $backend {
            $(
                #[tokio::test]
                #[ignore = $why]
                async fn $scenario() {
                    $crate::suite::$scenario::<$fixture>().await;
                }
            )*
        }
    };
}
pub(crate) use contract_tests;
