//! Nostr Wallet Connect: its stand-in for the contract (suite.rs), and its own tests.
//!
//! The NWC backend talks to a relay on loopback (nostr-relay-builder's `LocalRelay`, in
//! process) and a NIP-47 wallet service that THIS TEST RUNS ITSELF (nwc/service.rs): no NWC
//! wallet service is packaged in any registry. The service speaks real NIP-47 over the relay;
//! behind it is either the fake wallet (nwc/fake_ln.rs, the always-on tests) or a real LNbits
//! wallet over its REST API (nwc/lnbits_ln.rs, the ignored test; tools/lnbits/test.sh).

mod fake_ln;
mod lnbits_ln;
mod service;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use l402_mcp::bolt11::{self, Network};
use l402_mcp::config::Config;
use l402_mcp::pay::{PayError, RECONCILE_GRACE_SECS};
use l402_mcp::storage::Status;
use l402_mcp::wallet::fake::{FakeWallet, Outcome};
use l402_mcp::wallet::nwc::{NwcConfig, NwcWallet};
use l402_mcp::wallet::{
    BackendConfig, IncomingStatus, InvoiceRequest, OutgoingStatus, Wallet, WalletError,
};
use nwc::nostr::Keys;

use self::fake_ln::{FakeLn, PreimageMode, Quirks};
use self::lnbits_ln::LnbitsBackend;
use self::service::{Service, start_relay};
use crate::common::buyer::Buyer;
use crate::lnbits::api::LnbitsApi;
use crate::sessions::SessionFixture;
use crate::suite::{BackendFixture, Scenario, TestInvoice};

const SAT: u64 = 1000;

fn config(uri: String, timeout_secs: u64) -> NwcConfig {
    NwcConfig {
        uri: uri.into(),
        network: None,
        timeout_secs: Some(timeout_secs),
        returns_preimages: None,
    }
}

/// A wallet service on the fake node with a seller account, and a buyer account.
struct Setup {
    ln: Arc<FakeLn>,
    service: Service,
    buyer: Keys,
    seller: Keys,
    /// The buyer's wallet at the service, for scripting its payments.
    buyer_wallet: FakeWallet,
}

async fn setup(buyer_msat: u64, quirks: Quirks) -> Setup {
    let ln = Arc::new(FakeLn::new());
    let (buyer, seller) = (Keys::generate(), Keys::generate());
    let buyer_wallet = ln.account(buyer.public_key(), buyer_msat, quirks);
    ln.account(seller.public_key(), 0, Quirks::default());
    let service = Service::start(ln.clone()).await;
    Setup {
        ln,
        service,
        buyer,
        seller,
        buyer_wallet,
    }
}

impl Setup {
    async fn wallet(&self, keys: &Keys, timeout_secs: u64) -> NwcWallet {
        NwcWallet::new(&config(self.service.uri(keys).await, timeout_secs))
            .await
            .expect("wallet")
    }

    /// A fresh invoice of the seller account, valid for 10 minutes.
    async fn invoice(&self, amount_msat: u64) -> String {
        self.ln
            .invoice_for(&self.seller.public_key(), amount_msat, 600)
            .await
    }

    /// The buyer on the pay path, its wallet over NWC.
    async fn buyer(&self, timeout_secs: u64) -> Buyer {
        Buyer::on(Arc::new(self.wallet(&self.buyer, timeout_secs).await)).await
    }
}

/// The stand-in for the contract: the buyer's wallet at the service plays the scenario, the
/// service adds what is NIP-47's own (an error code, a garbled answer).
pub struct Fixture {
    setup: Setup,
    client: Keys,
    timeout_secs: u64,
}

#[async_trait]
impl BackendFixture for Fixture {
    const FEE_MSAT: u64 = 9;
    const FAILURE_REASON: &'static str = "PAYMENT_FAILED";
    const CREDENTIAL: &'static str = "connection";

    async fn start(scenario: Scenario) -> Fixture {
        let quirks = |error_code, garbage| Quirks {
            error_code,
            garbage,
            ..Quirks::default()
        };
        let (outcome, quirks) = match scenario {
            Scenario::Paid | Scenario::AuthRefused => {
                (Outcome::Paid { fee_msat: 9 }, quirks(None, false))
            }
            // NIP-47: PAYMENT_FAILED "may be due to a timeout"; the lookup says pending.
            Scenario::PendingThenSettled => {
                (Outcome::Pending, quirks(Some("PAYMENT_FAILED"), false))
            }
            Scenario::Hang => (Outcome::Hang, quirks(None, false)),
            Scenario::Failed => (Outcome::Failed("no route".into()), quirks(None, false)),
            Scenario::NoPreimage => (
                Outcome::PaidWithoutPreimage { fee_msat: 9 },
                quirks(None, false),
            ),
            Scenario::ServerError => (Outcome::Pending, quirks(Some("INTERNAL"), false)),
            Scenario::NotJson => (Outcome::Pending, quirks(None, true)),
        };
        let setup = setup(1_000 * SAT, quirks).await;
        setup.buyer_wallet.always(outcome);
        // A client the service does not know, for a refused connection.
        let client = if scenario == Scenario::AuthRefused {
            Keys::generate()
        } else {
            setup.buyer.clone()
        };
        Fixture {
            setup,
            client,
            timeout_secs: if scenario == Scenario::Hang { 1 } else { 10 },
        }
    }

    async fn wallet(&self) -> Arc<dyn Wallet> {
        let uri = self.setup.service.uri(&self.client).await;
        crate::suite::open(BackendConfig::Nwc(config(uri, self.timeout_secs))).await
    }

    async fn invoice(&self, seed: u8) -> TestInvoice {
        let inv = TestInvoice::regtest(0x51, seed);
        self.setup.ln.node().learn_preimage(inv.preimage);
        inv
    }

    async fn settle(&self, invoice: &TestInvoice) {
        self.setup.buyer_wallet.settle(&invoice.hash);
    }

    fn pay_normally(&self) -> bool {
        let s = &self.setup;
        s.ln.set_quirks(&s.buyer.public_key(), Quirks::default());
        s.buyer_wallet.always(Outcome::Paid { fee_msat: 9 });
        true
    }

    async fn pay_calls(&self) -> usize {
        self.setup.buyer_wallet.pay_calls()
    }

    fn secret(&self) -> String {
        self.client.secret_key().to_secret_hex()
    }
}

#[async_trait]
impl SessionFixture for Fixture {
    async fn amountless_invoice(&self, seed: u8) -> TestInvoice {
        let inv = TestInvoice::regtest_amountless(0x51, seed);
        self.setup.ln.node().learn_preimage(inv.preimage);
        inv
    }

    async fn amount_sent_msat(&self) -> Option<u64> {
        let seen = self.setup.service.seen();
        let pay = seen.iter().rev().find(|s| s.method == "pay_invoice")?;
        pay.params["amount"].as_u64()
    }
}

/// What a refund sends: `pay_invoice` with the invoice and `amount` in msat, nothing else.
#[tokio::test]
async fn an_amountless_payment_names_its_amount_in_msat() {
    let f = Fixture::start(Scenario::Paid).await;
    let inv = f.amountless_invoice(0x66).await;
    f.wallet()
        .await
        .pay_amountless(&bolt11::decode(&inv.bolt11).unwrap(), 7_000, 10_000)
        .await
        .unwrap();
    let seen = f.setup.service.seen();
    let pay = seen.iter().find(|s| s.method == "pay_invoice").unwrap();
    assert_eq!(
        pay.params,
        serde_json::json!({"invoice": inv.bolt11, "amount": 7000})
    );
}

#[tokio::test]
async fn invoices_payments_lookups_and_balance_over_nwc() {
    let s = setup(100_000 * SAT, Quirks::default()).await;
    let buyer = s.wallet(&s.buyer, 10).await;
    let seller = s.wallet(&s.seller, 10).await;

    let info = buyer.info().await.expect("info");
    assert_eq!(info.backend, "nwc");
    assert_eq!(info.network, Network::Regtest, "from get_info");
    assert_eq!(
        info.node_id.as_deref(),
        Some(s.ln.node().node_id().as_str())
    );
    assert!(info.returns_preimages && !info.demo_funds);

    let created = seller
        .create_invoice(&InvoiceRequest {
            amount_msat: 21 * SAT,
            description: "a coffee".into(),
            expiry_secs: 600,
        })
        .await
        .expect("invoice");
    let decoded = bolt11::decode(&created.bolt11).expect("decodes");
    assert_eq!(decoded.payment_hash, created.payment_hash);
    assert_eq!(decoded.amount_msat, Some(21 * SAT));
    assert_eq!(decoded.description.as_deref(), Some("a coffee"));
    assert_eq!(created.expires_at, decoded.timestamp + 600);
    assert_eq!(
        seller.lookup_incoming(&created.payment_hash).await.unwrap(),
        IncomingStatus::Pending
    );
    assert_eq!(
        buyer.lookup_outgoing(&created.payment_hash).await.unwrap(),
        OutgoingStatus::NotFound
    );

    let paid = buyer.pay_invoice(&decoded, 100).await.expect("paid");
    let preimage = paid.preimage.expect("a preimage");
    assert_eq!(preimage.payment_hash(), created.payment_hash);
    assert_eq!(
        seller.lookup_incoming(&created.payment_hash).await.unwrap(),
        IncomingStatus::Settled {
            amount_msat: 21 * SAT
        }
    );
    assert_eq!(
        buyer.lookup_outgoing(&created.payment_hash).await.unwrap(),
        OutgoingStatus::Succeeded(paid)
    );
    assert_eq!(
        buyer.lookup_incoming(&created.payment_hash).await.unwrap(),
        IncomingStatus::NotFound,
        "the buyer's record is a payment, not an invoice"
    );
    assert_eq!(
        seller
            .lookup_incoming(&l402_mcp::l402::PaymentHash([9; 32]))
            .await
            .unwrap(),
        IncomingStatus::NotFound
    );
    assert_eq!(buyer.balance().await.unwrap().msat, (100_000 - 21) * SAT);
    let b = seller.balance().await.unwrap();
    assert_eq!((b.msat, b.demo_funds), (21 * SAT, false));

    // Every request carried an expiration, so a late delivery is not acted on.
    let seen = s.service.seen();
    assert!(seen.iter().any(|r| r.method == "pay_invoice"));
    assert!(seen.iter().all(|r| r.expiration.is_some()), "{seen:?}");
}

#[tokio::test]
async fn insufficient_balance_is_rejected_and_the_budget_released() {
    let s = setup(5 * SAT, Quirks::default()).await;
    let b = s.buyer(10).await;
    let invoice = s.invoice(21 * SAT).await;
    let hash = bolt11::decode(&invoice).unwrap().payment_hash;
    let err = b.pay(&invoice).await.expect_err("refused");
    assert!(
        matches!(&err, PayError::Failed(WalletError::Rejected(m)) if m.contains("INSUFFICIENT_BALANCE")),
        "{err}"
    );
    assert!(!err.money_may_have_moved());
    assert_eq!(b.status(&hash).await, Status::Failed);
    assert_eq!(b.totals().await, (0, 0));
    assert_eq!(s.ln.balance(&s.buyer.public_key()), 5 * SAT);
}

#[tokio::test]
async fn error_codes_are_classified() {
    // (code, what the payment did) -> definite refusal?
    let cases: [(&'static str, Outcome, bool); 9] = [
        ("QUOTA_EXCEEDED", Outcome::Dropped, true),
        ("RESTRICTED", Outcome::Dropped, true),
        ("UNAUTHORIZED", Outcome::Dropped, true),
        ("NOT_IMPLEMENTED", Outcome::Dropped, true),
        ("RATE_LIMITED", Outcome::Dropped, true),
        // PAYMENT_FAILED may be a timeout: a lookup decides.
        ("PAYMENT_FAILED", Outcome::Failed("no route".into()), true),
        ("PAYMENT_FAILED", Outcome::Dropped, false),
        ("INTERNAL", Outcome::Dropped, false),
        ("SOMETHING_NEW", Outcome::Dropped, false),
    ];
    for (code, outcome, definite) in cases {
        let s = setup(
            100 * SAT,
            Quirks {
                error_code: Some(code),
                ..Quirks::default()
            },
        )
        .await;
        s.buyer_wallet.always(outcome);
        let wallet = s.wallet(&s.buyer, 10).await;
        let invoice = bolt11::decode(&s.invoice(SAT).await).unwrap();
        let err = wallet.pay_invoice(&invoice, 0).await.expect_err(code);
        assert_eq!(err.definitely_not_paid(), definite, "{code}: {err}");
        let expected = if definite {
            "Rejected"
        } else {
            "OutcomeUnknown"
        };
        assert!(format!("{err:?}").starts_with(expected), "{code}: {err:?}");
        assert!(err.to_string().contains(code), "{err}");
    }

    // An error answer for a payment that went through after all: the lookup shows it.
    let s = setup(
        100 * SAT,
        Quirks {
            error_code: Some("PAYMENT_FAILED"),
            ..Quirks::default()
        },
    )
    .await;
    let wallet = s.wallet(&s.buyer, 10).await;
    let invoice = bolt11::decode(&s.invoice(SAT).await).unwrap();
    let paid = wallet
        .pay_invoice(&invoice, 0)
        .await
        .expect("paid after all");
    assert_eq!(
        paid.preimage.map(|p| p.payment_hash()),
        Some(invoice.payment_hash)
    );
}

/// A service that neither pays nor answers: pending, and failed only once the request can no
/// longer be acted on (its `expiration` at the relay, past the usual grace period).
#[tokio::test]
async fn a_request_nobody_answers_is_failed_only_after_it_expired_at_the_relay() {
    let s = setup(100 * SAT, Quirks::default()).await;
    s.buyer_wallet.always(Outcome::Dropped);
    let b = s.buyer(1).await;
    let invoice = s.invoice(21 * SAT).await;
    let hash = bolt11::decode(&invoice).unwrap().payment_hash;
    let err = b.pay(&invoice).await.expect_err("no answer");
    assert!(matches!(err, PayError::OutcomeUnknown { .. }), "{err}");
    assert_eq!(b.payer.reconcile().await.unwrap().still_pending, 1);
    // Past the usual grace period the request is still valid at the relay (its expiration is
    // the timeout plus slack): a wallet service could still pay it, so it stays pending.
    b.clock.advance(RECONCILE_GRACE_SECS + 1);
    assert_eq!(b.payer.reconcile().await.unwrap().still_pending, 1);
    assert_eq!(b.status(&hash).await, Status::Pending);
    b.clock.advance(b.wallet.late_start_window_secs());
    assert_eq!(b.payer.reconcile().await.unwrap().failed, 1);
    assert_eq!(b.status(&hash).await, Status::Failed);
    assert_eq!(b.totals().await, (0, 0));
    assert_eq!(s.ln.balance(&s.buyer.public_key()), 100 * SAT);
}

/// Without a preimage, as a missing field or an empty string: the wallet says from then on
/// that it does not return preimages.
#[tokio::test]
async fn a_missing_preimage_in_either_form_is_remembered() {
    for mode in [PreimageMode::Omit, PreimageMode::Empty] {
        let s = setup(
            100 * SAT,
            Quirks {
                preimage: mode,
                ..Quirks::default()
            },
        )
        .await;
        s.buyer_wallet
            .always(Outcome::PaidWithoutPreimage { fee_msat: 0 });
        let b = s.buyer(10).await;
        assert!(b.wallet.info().await.unwrap().returns_preimages);
        let invoice = s.invoice(21 * SAT).await;
        let err = b.pay(&invoice).await.expect_err("no preimage");
        assert!(
            matches!(err, PayError::NoPreimage { amount_msat, .. } if amount_msat == 21 * SAT),
            "{mode:?}: {err}"
        );
        assert_eq!(s.ln.balance(&s.buyer.public_key()), 79 * SAT);
        assert!(
            !b.wallet.info().await.unwrap().returns_preimages,
            "known now"
        );
        assert!(b.wallet.withholds_preimages());
    }
}

#[tokio::test]
async fn unreachable_or_refusing_relays_mean_nothing_was_sent() {
    // Nothing listens on the relay's port.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let keys = Keys::generate();
    let uri = format!(
        "nostr+walletconnect://{}?relay=ws%3A%2F%2F127.0.0.1%3A{port}&secret={}",
        Keys::generate().public_key().to_hex(),
        keys.secret_key().to_secret_hex()
    );
    let wallet = NwcWallet::new(&config(uri, 1))
        .await
        .expect("no contact yet");
    let invoice = bolt11::decode(&TestInvoice::regtest(0x52, 1).bolt11).unwrap();
    let started = std::time::Instant::now();
    let err = wallet.pay_invoice(&invoice, 0).await.expect_err("no relay");
    assert!(matches!(err, WalletError::Unavailable(_)), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(matches!(
        wallet.info().await,
        Err(WalletError::Unavailable(_))
    ));

    // The relay answers OK false to the request.
    let ln = Arc::new(FakeLn::new());
    let buyer = Keys::generate();
    ln.account(buyer.public_key(), 100 * SAT, Quirks::default());
    let service = Service::start_on(start_relay(true).await, ln.clone()).await;
    let wallet = NwcWallet::new(&config(service.uri(&buyer).await, 10))
        .await
        .unwrap();
    let err = wallet.pay_invoice(&invoice, 0).await.expect_err("refused");
    assert!(
        matches!(&err, WalletError::Unavailable(m) if m.contains("no wallet requests here")),
        "{err}"
    );
    assert!(service.seen().is_empty());
}

#[tokio::test]
async fn the_connection_uri_stays_secret() {
    let s = setup(SAT, Quirks::default()).await;
    let uri = s.service.uri(&s.buyer).await;
    let secret = s.buyer.secret_key().to_secret_hex();
    assert!(uri.contains(&secret));
    let cfg = config(uri.clone(), 10);
    let wallet = NwcWallet::new(&cfg).await.unwrap();
    assert!(!format!("{cfg:?}").contains(&secret));
    assert!(!format!("{wallet:?}").contains(&secret));

    let broken = uri.replace("nostr+walletconnect://", "nostr+walletconnect://zz");
    let err = NwcWallet::new(&config(broken, 10))
        .await
        .expect_err("bad uri");
    assert!(!err.to_string().contains(&secret), "{err}");
    assert!(err.to_string().contains("nostr+walletconnect://"), "{err}");

    // And the config file form.
    let parsed = Config::parse(&format!(
        "[backend]\nkind = \"nwc\"\nuri = \"{uri}\"\ntimeout_secs = 5\nnetwork = \"signet\""
    ))
    .expect("config");
    match parsed.backend().expect("backend") {
        BackendConfig::Nwc(c) => {
            assert_eq!(
                (c.timeout_secs, c.network),
                (Some(5), Some(Network::Signet))
            );
        }
        other => panic!("{other:?}"),
    }
}

/// The wallet service in front of real LNbits (FakeWallet funding): an invoice from wallet B,
/// paid over NWC by a service backed by wallet A.
#[tokio::test]
#[ignore = "needs LNbits: tools/lnbits/test.sh"]
async fn pays_an_lnbits_invoice_over_nwc() {
    let (Some(a), Some(b)) = (LnbitsApi::from_env("A"), LnbitsApi::from_env("B")) else {
        panic!(
            "set LNBITS_TEST_URL, LNBITS_TEST_A_ADMIN/_INVOICE and LNBITS_TEST_B_ADMIN/_INVOICE (tools/lnbits/test.sh does)"
        );
    };
    let service = Service::start(Arc::new(LnbitsBackend(a))).await;
    let client = Keys::generate();
    let wallet = NwcWallet::new(&config(service.uri(&client).await, 30))
        .await
        .unwrap();
    assert_eq!(wallet.info().await.unwrap().network, Network::Mainnet);
    let before = wallet.balance().await.expect("balance").msat;

    let (bolt11, hash_hex) = b
        .invoice(21, "l402-mcp nwc test")
        .await
        .expect("invoice from B");
    let invoice = bolt11::decode(&bolt11).expect("FakeWallet invoice decodes");
    assert_eq!(hex::encode(invoice.payment_hash), hash_hex);
    let paid = wallet.pay_invoice(&invoice, 1000).await.expect("paid");
    let preimage = paid.preimage.expect("LNbits returns preimages");
    assert_eq!(preimage.payment_hash(), invoice.payment_hash);

    let (_, seen_by_b) = b.payment(&hash_hex).await.expect("B's view");
    assert_eq!(seen_by_b["paid"], true, "{seen_by_b}");
    assert!(matches!(
        wallet.lookup_outgoing(&invoice.payment_hash).await.unwrap(),
        OutgoingStatus::Succeeded(r) if r.preimage == Some(preimage)
    ));
    assert_eq!(
        wallet.balance().await.unwrap().msat,
        before - 21 * SAT - paid.fee_msat
    );

    // And an invoice made over NWC, paid from B directly.
    let created = wallet
        .create_invoice(&InvoiceRequest {
            amount_msat: 5 * SAT,
            description: "back".into(),
            expiry_secs: 600,
        })
        .await
        .expect("make_invoice");
    assert_eq!(
        wallet.lookup_incoming(&created.payment_hash).await.unwrap(),
        IncomingStatus::Pending
    );
}
