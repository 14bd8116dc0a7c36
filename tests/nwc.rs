//! The Nostr Wallet Connect backend against a relay on loopback (nostr-relay-builder's
//! `LocalRelay`, in process) and a NIP-47 wallet service that THIS TEST RUNS ITSELF: no NWC
//! wallet service is packaged in any registry. The service (tests/nwc_support) speaks real
//! NIP-47 over the relay; behind it is either an in-memory fake Lightning wallet (the always-on
//! tests) or a real LNbits wallet over its REST API (the ignored test; tools/lnbits/test.sh).
// A failed step in a test or benchmark is a failed run: unwrapping is fine here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod nwc_support;

use std::sync::Arc;
use std::time::Duration;

use l402_mcp::app::App;
use l402_mcp::bolt11::{self, Network};
use l402_mcp::clock::{ManualClock, SharedClock};
use l402_mcp::config::Config;
use l402_mcp::ledger::{Direction, Status};
use l402_mcp::pay::{PayError, PayRequest, RECONCILE_GRACE_SECS};
use l402_mcp::wallet::nwc::{NwcConfig, NwcWallet};
use l402_mcp::wallet::{
    BackendConfig, IncomingStatus, InvoiceRequest, OutgoingStatus, Wallet, WalletError,
};
use nwc::nostr::{Keys, Timestamp};
use nwc_support::fake::{Behaviour, FakeLn, PreimageMode};
use nwc_support::lnbits::{LnbitsBackend, LnbitsWallet};
use nwc_support::{Service, start_relay};

const SAT: u64 = 1000;

fn config(uri: String, timeout_secs: u64) -> NwcConfig {
    NwcConfig {
        uri,
        network: None,
        timeout_secs: Some(timeout_secs),
        returns_preimages: None,
    }
}

/// A fake Lightning wallet service with a seller account, and a buyer account behaving as told.
struct Setup {
    fake: Arc<FakeLn>,
    service: Service,
    buyer: Keys,
    seller: Keys,
}

async fn setup(buyer_msat: u64, behaviour: Behaviour) -> Setup {
    let fake = Arc::new(FakeLn::new());
    let (buyer, seller) = (Keys::generate(), Keys::generate());
    fake.account(buyer.public_key(), buyer_msat, behaviour);
    fake.account(seller.public_key(), 0, Behaviour::default());
    let service = Service::start(fake.clone()).await;
    Setup {
        fake,
        service,
        buyer,
        seller,
    }
}

impl Setup {
    async fn wallet(&self, keys: &Keys, timeout_secs: u64) -> NwcWallet {
        NwcWallet::new(&config(self.service.uri(keys).await, timeout_secs))
            .await
            .expect("wallet")
    }

    /// A fresh invoice of the seller account, valid for 10 minutes.
    fn invoice(&self, amount_msat: u64) -> String {
        self.fake
            .invoice_for(self.seller.public_key(), amount_msat, 600)
    }

    /// The buyer's app: ledger and budget in a temp dir, wallet over NWC.
    async fn app(&self, timeout_secs: u64) -> (tempfile::TempDir, Arc<ManualClock>, App) {
        let dir = tempfile::tempdir().expect("temp dir");
        let clock = ManualClock::new(Timestamp::now().as_secs());
        let shared: SharedClock = clock.clone();
        let backend = BackendConfig::Nwc(config(self.service.uri(&self.buyer).await, timeout_secs));
        let app = App::open(dir.path(), "w", &backend, shared)
            .await
            .expect("app");
        (dir, clock, app)
    }
}

fn pay(invoice: &str) -> PayRequest<'_> {
    PayRequest {
        invoice,
        ..Default::default()
    }
}

async fn record(app: &App, invoice: &str) -> l402_mcp::ledger::PaymentRecord {
    let hash = bolt11::decode(invoice).expect("invoice").payment_hash;
    app.ledger
        .payment_by_hash("w", Direction::Out, &hash)
        .await
        .expect("ledger")
        .expect("a ledger row")
}

async fn reserved(app: &App) -> u64 {
    app.ledger
        .window_use("w", None, app.clock.now())
        .await
        .expect("window")
        .reserved_msat
}

#[tokio::test]
async fn invoices_payments_lookups_and_balance_over_nwc() {
    let s = setup(100_000 * SAT, Behaviour::default()).await;
    let buyer = s.wallet(&s.buyer, 10).await;
    let seller = s.wallet(&s.seller, 10).await;

    let info = buyer.info().await.expect("info");
    assert_eq!(info.backend, "nwc");
    assert_eq!(info.network, Network::Regtest, "from get_info");
    assert_eq!(info.node_id.as_deref(), Some(s.fake.node_id().as_str()));
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
    assert_eq!(l402_mcp::l402::sha256(&preimage), created.payment_hash);
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
        seller.lookup_incoming(&[9; 32]).await.unwrap(),
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
    let s = setup(5 * SAT, Behaviour::default()).await;
    let (_dir, _clock, app) = s.app(10).await;
    let invoice = s.invoice(21 * SAT);
    let err = app.payer.pay(&pay(&invoice)).await.expect_err("refused");
    assert!(
        matches!(&err, PayError::Failed(WalletError::Rejected(m)) if m.contains("INSUFFICIENT_BALANCE")),
        "{err}"
    );
    assert!(!err.money_may_have_moved());
    assert_eq!(record(&app, &invoice).await.status, Status::Failed);
    assert_eq!(reserved(&app).await, 0);
    assert_eq!(s.fake.balance(&s.buyer.public_key()), 5 * SAT);
}

#[tokio::test]
async fn error_codes_are_classified() {
    // (code, settles?) -> definite refusal?
    let cases: [(&'static str, Option<bool>, bool); 9] = [
        ("QUOTA_EXCEEDED", None, true),
        ("RESTRICTED", None, true),
        ("UNAUTHORIZED", None, true),
        ("NOT_IMPLEMENTED", None, true),
        ("RATE_LIMITED", None, true),
        // PAYMENT_FAILED may be a timeout: a lookup decides.
        ("PAYMENT_FAILED", Some(false), true),
        ("PAYMENT_FAILED", None, false),
        ("INTERNAL", None, false),
        ("SOMETHING_NEW", None, false),
    ];
    for (code, settle, definite) in cases {
        let s = setup(
            100 * SAT,
            Behaviour {
                pay_error: Some((code, settle)),
                ..Default::default()
            },
        )
        .await;
        let wallet = s.wallet(&s.buyer, 10).await;
        let invoice = bolt11::decode(&s.invoice(SAT)).unwrap();
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
        Behaviour {
            pay_error: Some(("PAYMENT_FAILED", Some(true))),
            ..Default::default()
        },
    )
    .await;
    let wallet = s.wallet(&s.buyer, 10).await;
    let invoice = bolt11::decode(&s.invoice(SAT)).unwrap();
    let paid = wallet
        .pay_invoice(&invoice, 0)
        .await
        .expect("paid after all");
    assert_eq!(
        paid.preimage.map(|p| l402_mcp::l402::sha256(&p)),
        Some(invoice.payment_hash)
    );
}

#[tokio::test]
async fn a_service_that_never_answers_leaves_the_payment_pending() {
    // It pays but never says so: reconcile finds the payment through lookup_invoice.
    let s = setup(
        100 * SAT,
        Behaviour {
            pay_silently: true,
            ..Default::default()
        },
    )
    .await;
    let (_dir, _clock, app) = s.app(1).await;
    let invoice = s.invoice(21 * SAT);
    let err = app.payer.pay(&pay(&invoice)).await.expect_err("no answer");
    assert!(matches!(err, PayError::OutcomeUnknown { .. }), "{err}");
    assert!(err.money_may_have_moved());
    assert_eq!(record(&app, &invoice).await.status, Status::Pending);
    assert!(
        reserved(&app).await >= 21 * SAT,
        "amount and fee reserve stay reserved"
    );
    let report = app.payer.reconcile().await.expect("reconcile");
    assert_eq!(report.succeeded, 1);
    let row = record(&app, &invoice).await;
    assert_eq!(row.status, Status::Succeeded);
    assert!(row.preimage_bytes().is_some());
    assert_eq!(reserved(&app).await, 0);

    // It neither pays nor answers: pending, and failed only after the grace period.
    let s = setup(
        100 * SAT,
        Behaviour {
            ignore_pay: true,
            ..Default::default()
        },
    )
    .await;
    let (_dir, clock, app) = s.app(1).await;
    let invoice = s.invoice(21 * SAT);
    let err = app.payer.pay(&pay(&invoice)).await.expect_err("no answer");
    assert!(matches!(err, PayError::OutcomeUnknown { .. }), "{err}");
    assert_eq!(app.payer.reconcile().await.unwrap().still_pending, 1);
    assert_eq!(record(&app, &invoice).await.status, Status::Pending);
    // Past the usual grace period the request is still valid at the relay (its expiration is
    // the timeout plus slack): a wallet service could still pay it, so it stays pending.
    clock.advance(RECONCILE_GRACE_SECS + 1);
    assert_eq!(app.payer.reconcile().await.unwrap().still_pending, 1);
    assert_eq!(record(&app, &invoice).await.status, Status::Pending);
    clock.advance(app.wallet.late_start_window_secs());
    assert_eq!(app.payer.reconcile().await.unwrap().failed, 1);
    assert_eq!(record(&app, &invoice).await.status, Status::Failed);
    assert_eq!(reserved(&app).await, 0);
    assert_eq!(s.fake.balance(&s.buyer.public_key()), 100 * SAT);
}

#[tokio::test]
async fn a_payment_without_a_preimage_is_recorded_and_reported() {
    for mode in [PreimageMode::Omit, PreimageMode::Empty] {
        let s = setup(
            100 * SAT,
            Behaviour {
                preimage: mode,
                ..Default::default()
            },
        )
        .await;
        let (_dir, _clock, app) = s.app(10).await;
        assert!(app.wallet.info().await.unwrap().returns_preimages);
        let invoice = s.invoice(21 * SAT);
        let err = app
            .payer
            .pay(&pay(&invoice))
            .await
            .expect_err("no preimage");
        assert!(
            matches!(err, PayError::NoPreimage { amount_msat, .. } if amount_msat == 21 * SAT),
            "{mode:?}: {err}"
        );
        let row = record(&app, &invoice).await;
        assert_eq!(row.status, Status::Succeeded, "money moved: {mode:?}");
        assert!(row.preimage.is_none());
        assert_eq!(s.fake.balance(&s.buyer.public_key()), 79 * SAT);
        assert!(
            !app.wallet.info().await.unwrap().returns_preimages,
            "known now"
        );
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
    let invoice = bolt11::decode(&FakeLn::new().invoice_for(keys.public_key(), SAT, 600)).unwrap();
    let started = std::time::Instant::now();
    let err = wallet.pay_invoice(&invoice, 0).await.expect_err("no relay");
    assert!(matches!(err, WalletError::Unavailable(_)), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(matches!(
        wallet.info().await,
        Err(WalletError::Unavailable(_))
    ));

    // The relay answers OK false to the request.
    let fake = Arc::new(FakeLn::new());
    let buyer = Keys::generate();
    fake.account(buyer.public_key(), 100 * SAT, Behaviour::default());
    let service = Service::start_on(start_relay(true).await, fake.clone()).await;
    let wallet = NwcWallet::new(&config(service.uri(&buyer).await, 10))
        .await
        .unwrap();
    let invoice =
        bolt11::decode(&fake.invoice_for(Keys::generate().public_key(), SAT, 600)).unwrap();
    let err = wallet.pay_invoice(&invoice, 0).await.expect_err("refused");
    assert!(
        matches!(&err, WalletError::Unavailable(m) if m.contains("no wallet requests here")),
        "{err}"
    );
    assert!(service.seen().is_empty());
}

#[tokio::test]
async fn the_connection_uri_stays_secret() {
    let s = setup(SAT, Behaviour::default()).await;
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
    let (Some(a), Some(b)) = (LnbitsWallet::from_env("A"), LnbitsWallet::from_env("B")) else {
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
    assert_eq!(l402_mcp::l402::sha256(&preimage), invoice.payment_hash);

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
