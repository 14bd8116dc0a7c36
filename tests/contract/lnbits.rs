//! LNbits: two stand-ins for the contract (suite.rs), and LNbits' own tests.
//!
//! - [`Replay`]: a loopback server that REPLAYS the answers of LNbits 1.6.2 as read in its
//!   sources (`core/views/payment_api.py`, `core/services/payments.py`, `exceptions.py`,
//!   `decorators.py`) and checked against it: `X-Api-Key`, 404 "Wallet not found." for an
//!   unknown key, a refused payment as 520 `{"detail", "status"}`, lookups with `details`, and
//!   the cases its FakeWallet funding source cannot produce (payments that stay pending, lost
//!   answers, crashes). Always run.
//! - [`Real`]: the real LNbits 1.6.2 (FakeWallet funding, wallets A and B) that
//!   `tools/lnbits/test.sh` starts; A pays, B invoices. Its tests are ignored otherwise.
//!
//! The whole buy/sell loop through two MCP servers on LNbits, and `doctor`, are in
//! tests/lnbits.rs.

pub mod api;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use l402_mcp::bolt11::{self, Network};
use l402_mcp::wallet::lnbits::{LnbitsConfig, LnbitsWallet};
use l402_mcp::wallet::{BackendConfig, PaymentResult, Wallet, WalletError};
use serde_json::{Value, json};

use self::api::LnbitsApi;
use crate::common;
use crate::suite::{BackendFixture, NOT_JSON, Scenario, TestInvoice, timeout_secs};

const ADMIN_KEY: &str = "0d5c3b8a9e7f41a2b6c4d8e0f1a2b3c4";
const INVOICE_KEY: &str = "7e1f2a3b4c5d6e7f8091a2b3c4d5e6f7";

/// What the replayed LNbits answers: as a contract scenario plays it (answers computed from
/// the payment's hash and preimage), or given verbatim.
#[derive(Clone)]
enum Mode {
    Plays(Scenario),
    /// `pay` answers the payment request (`None`: never in time); `lookups` answer the
    /// lookups in turn, the last one repeating.
    Replays {
        pay: Option<(u16, String)>,
        lookups: Vec<(u16, String)>,
    },
}

struct Node {
    mode: Mode,
    preimages: std::collections::HashMap<String, [u8; 32]>,
    /// Hashes LNbits was asked to pay, and those settled since.
    sent: HashSet<String>,
    settled: HashSet<String>,
    pay_calls: usize,
}

type Shared = Arc<Mutex<Node>>;

/// A lookup answer as LNbits gives it to the wallet that paid.
fn lookup_answer(status: &str, preimage: Option<&str>, fee_msat: i64) -> String {
    json!({"paid": status == "success", "status": status, "preimage": preimage,
           "details": {"amount": -21000, "fee": -fee_msat, "status": status, "preimage": preimage}})
    .to_string()
}

fn not_found() -> (u16, String) {
    (404, r#"{"detail":"Payment does not exist."}"#.into())
}

impl Node {
    /// The answer to `POST /api/v1/payments {"out": true}` for `hash`.
    fn pay(&mut self, hash: &str) -> Option<(u16, String)> {
        self.pay_calls += 1;
        self.sent.insert(hash.to_owned());
        let preimage = self
            .preimages
            .get(hash)
            .map(hex::encode)
            .unwrap_or_default();
        let scenario = match &self.mode {
            Mode::Replays { pay, .. } => return pay.clone(),
            Mode::Plays(s) => *s,
        };
        Some(match scenario {
            Scenario::Paid | Scenario::AuthRefused => (
                201,
                json!({"payment_hash": hash, "checking_id": hash, "status": "success",
                       "preimage": preimage, "fee": -3000, "amount": -21000})
                .to_string(),
            ),
            Scenario::PendingThenSettled => (
                201,
                json!({"payment_hash": hash, "status": "pending", "fee": -3000}).to_string(),
            ),
            Scenario::Hang => return None,
            Scenario::Failed => (
                520,
                r#"{"detail":"Payment failed: no route","status":"failed"}"#.into(),
            ),
            Scenario::NoPreimage => (
                201,
                json!({"status": "success", "fee": -1000, "preimage": "0".repeat(64)}).to_string(),
            ),
            Scenario::ServerError => (500, r#"{"detail":"Unexpected error! ID: 1"}"#.into()),
            Scenario::NotJson => (200, NOT_JSON.into()),
        })
    }

    /// The answer to `GET /api/v1/payments/{hash}` with a valid key.
    fn lookup(&mut self, hash: &str) -> (u16, String) {
        let scenario = match &mut self.mode {
            Mode::Replays { lookups, .. } if lookups.len() > 1 => return lookups.remove(0),
            Mode::Replays { lookups, .. } => {
                return lookups.first().cloned().unwrap_or_else(not_found);
            }
            Mode::Plays(s) => *s,
        };
        if !self.sent.contains(hash) {
            return not_found();
        }
        let preimage = self.preimages.get(hash).map(hex::encode);
        let body = match scenario {
            _ if self.settled.contains(hash) => lookup_answer("success", preimage.as_deref(), 3000),
            Scenario::Paid | Scenario::AuthRefused => {
                lookup_answer("success", preimage.as_deref(), 3000)
            }
            Scenario::NoPreimage => lookup_answer("success", None, 1000),
            Scenario::Failed => lookup_answer("failed", None, 0),
            _ => lookup_answer("pending", None, 3000),
        };
        (200, body)
    }
}

fn answer((status, body): (u16, String)) -> Response {
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        body,
    )
        .into_response()
}

async fn lnbits(
    State(node): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let key = headers.get("x-api-key").and_then(|v| v.to_str().ok());
    let known = matches!(key, Some(ADMIN_KEY | INVOICE_KEY));
    let path = uri.path().to_owned();
    let wallet_not_found = || answer((404, r#"{"detail":"Wallet not found."}"#.into()));
    match (method.as_str(), path.as_str()) {
        ("GET", "/api/v1/wallet") if known => {
            let id = (key == Some(ADMIN_KEY)).then_some("a1b2c3");
            axum::Json(json!({"name": "w", "balance": 5_000_000, "id": id})).into_response()
        }
        ("POST", "/api/v1/payments") if key == Some(ADMIN_KEY) => {
            let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let hash = bolt11::decode(body["bolt11"].as_str().unwrap_or_default())
                .map(|d| hex::encode(d.payment_hash))
                .unwrap_or_default();
            let pay = node.lock().unwrap().pay(&hash);
            match pay {
                Some(a) => answer(a),
                None => {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    answer((500, "too late".into()))
                }
            }
        }
        ("POST", "/api/v1/payments") if key == Some(INVOICE_KEY) => answer((
            403,
            r#"{"detail":"Invoice (or Admin) key required."}"#.into(),
        )),
        // LNbits answers a lookup with any key or none, without `details` unless it is the
        // wallet's own.
        ("GET", p) if p.starts_with("/api/v1/payments/") && !known => {
            answer((200, r#"{"paid":false,"status":"pending"}"#.into()))
        }
        ("GET", p) if p.starts_with("/api/v1/payments/") => {
            let lookup = node.lock().unwrap().lookup(&p["/api/v1/payments/".len()..]);
            answer(lookup)
        }
        _ => wallet_not_found(),
    }
}

/// The replayed LNbits for the contract, and for LNbits' own cases below.
pub struct Replay {
    node: Shared,
    config: LnbitsConfig,
}

impl Replay {
    async fn with(mode: Mode, timeout_secs: u64) -> Replay {
        let node: Shared = Arc::new(Mutex::new(Node {
            mode,
            preimages: Default::default(),
            sent: HashSet::new(),
            settled: HashSet::new(),
            pay_calls: 0,
        }));
        let app = Router::new().fallback(lnbits).with_state(node.clone());
        let url = common::fixture::serve(app).await;
        Replay {
            node,
            config: LnbitsConfig {
                url,
                admin_key: Some(ADMIN_KEY.into()),
                invoice_key: Some(INVOICE_KEY.into()),
                network: Some(Network::Regtest),
                timeout_secs: Some(timeout_secs),
            },
        }
    }

    /// A wallet on a stand-in answering `pay` and then `lookups` verbatim.
    async fn replaying(pay: Option<(u16, String)>, lookups: Vec<(u16, String)>) -> LnbitsWallet {
        let r = Replay::with(Mode::Replays { pay, lookups }, 1).await;
        LnbitsWallet::new(&r.config).expect("LNbits wallet")
    }
}

#[async_trait]
impl BackendFixture for Replay {
    const FEE_MSAT: u64 = 3000;
    const FAILURE_REASON: &'static str = "no route";
    const CREDENTIAL: &'static str = "credentials";

    async fn start(scenario: Scenario) -> Replay {
        let timeout = if scenario == Scenario::Hang {
            1
        } else {
            timeout_secs(scenario)
        };
        let mut r = Replay::with(Mode::Plays(scenario), timeout).await;
        if scenario == Scenario::AuthRefused {
            r.config.admin_key = Some("ffffffffffffffffffffffffffffffff".into());
            r.config.invoice_key = Some("eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee".into());
        }
        r
    }

    async fn wallet(&self) -> Arc<dyn Wallet> {
        crate::suite::open(BackendConfig::Lnbits(self.config.clone())).await
    }

    async fn invoice(&self, seed: u8) -> TestInvoice {
        TestInvoice::regtest(0x61, seed).known_to(&mut self.node.lock().unwrap().preimages)
    }

    async fn settle(&self, invoice: &TestInvoice) {
        let mut n = self.node.lock().unwrap();
        n.settled.insert(hex::encode(invoice.hash));
    }

    fn pay_normally(&self) -> bool {
        self.node.lock().unwrap().mode = Mode::Plays(Scenario::Paid);
        true
    }

    async fn pay_calls(&self) -> usize {
        self.node.lock().unwrap().pay_calls
    }

    fn secret(&self) -> String {
        self.config
            .admin_key
            .as_ref()
            .map(|k| k.expose().to_owned())
            .unwrap_or_default()
    }
}

/// The real LNbits of `tools/lnbits/test.sh`: wallet A pays invoices of wallet B.
pub struct Real {
    a: LnbitsApi,
    b: LnbitsApi,
    config: LnbitsConfig,
    scenario: Scenario,
    /// Hashes of the invoices handed out, to count A's payments of them.
    hashes: Mutex<Vec<String>>,
}

/// A mainnet invoice no LNbits wallet made: FakeWallet funding pays only its own.
fn foreign_invoice(now: u64) -> TestInvoice {
    let (bolt11, preimage) = common::fixture::random_invoice(Network::Mainnet, 21_000, now);
    TestInvoice {
        bolt11,
        hash: l402_mcp::l402::PaymentHash(l402_mcp::l402::sha256(&preimage)),
        preimage: l402_mcp::l402::Preimage(preimage),
        amount_msat: 21_000,
    }
}

#[async_trait]
impl BackendFixture for Real {
    const FEE_MSAT: u64 = 0;
    const FAILURE_REASON: &'static str = "Only internal invoices";
    const CREDENTIAL: &'static str = "credentials";

    async fn start(scenario: Scenario) -> Real {
        let env = "run tools/lnbits/test.sh, which starts LNbits and sets LNBITS_TEST_*";
        let (a, b) = (
            LnbitsApi::from_env("A").expect(env),
            LnbitsApi::from_env("B").expect(env),
        );
        let (admin, invoice) = match scenario {
            Scenario::AuthRefused => ("0123456789abcdef0123456789abcdef".into(), None),
            _ => (a.admin_key.clone(), Some(a.invoice_key.clone())),
        };
        let config = LnbitsConfig {
            url: a.url.clone(),
            admin_key: Some(admin.into()),
            invoice_key: invoice.map(Into::into),
            network: None,
            timeout_secs: Some(20),
        };
        Real {
            a,
            b,
            config,
            scenario,
            hashes: Mutex::new(Vec::new()),
        }
    }

    async fn wallet(&self) -> Arc<dyn Wallet> {
        crate::suite::open(BackendConfig::Lnbits(self.config.clone())).await
    }

    async fn invoice(&self, _seed: u8) -> TestInvoice {
        let inv = if self.scenario == Scenario::Failed {
            foreign_invoice(self.now())
        } else {
            let (bolt11, hash, preimage) = self
                .b
                .create_invoice(21, "l402-mcp contract")
                .await
                .expect("an invoice from wallet B");
            TestInvoice {
                bolt11,
                hash: hash.parse().expect("a payment hash"),
                preimage: l402_mcp::l402::Preimage(
                    preimage.expect("LNbits answers an invoice with its preimage"),
                ),
                amount_msat: 21_000,
            }
        };
        self.hashes.lock().unwrap().push(hex::encode(inv.hash));
        inv
    }

    async fn settle(&self, _invoice: &TestInvoice) {
        panic!("a real LNbits on FakeWallet funding leaves no payment in flight");
    }

    fn pay_normally(&self) -> bool {
        false
    }

    async fn pay_calls(&self) -> usize {
        let hashes = self.hashes.lock().unwrap().clone();
        let mut calls = 0;
        for hash in &hashes {
            calls += self.a.outgoing_count(hash).await;
        }
        calls
    }

    fn secret(&self) -> String {
        self.config
            .admin_key
            .as_ref()
            .map(|k| k.expose().to_owned())
            .unwrap_or_default()
    }

    fn now(&self) -> u64 {
        l402_mcp::clock::Clock::now(&l402_mcp::clock::SystemClock)
    }
}

// LNbits' own answers, beyond the contract: each decides whether money may have moved.

fn unknown(r: &Result<PaymentResult, WalletError>) -> bool {
    matches!(r, Err(e @ WalletError::OutcomeUnknown(_)) if !e.definitely_not_paid())
}

fn paid_answer(preimage: &[u8; 32]) -> (u16, String) {
    let pre = hex::encode(preimage);
    (200, lookup_answer("success", Some(&pre), 3000))
}

fn pending_answer() -> (u16, String) {
    (200, lookup_answer("pending", None, 2000))
}

fn an_invoice() -> (bolt11::DecodedInvoice, [u8; 32]) {
    let inv = TestInvoice::regtest(0x62, 7);
    (
        bolt11::decode(&inv.bolt11).expect("invoice"),
        inv.preimage.0,
    )
}

/// LNbits' own "pending" refusal, and a payment accepted as pending that is still routing
/// after the polls: never definite.
#[tokio::test]
async fn pending_answers_are_never_definite() {
    let (inv, _) = an_invoice();
    let w = Replay::replaying(
        Some((
            520,
            r#"{"detail":"Payment is still pending.","status":"pending"}"#.into(),
        )),
        vec![],
    )
    .await;
    assert!(unknown(&w.pay_invoice(&inv, 0).await));
    let w = Replay::replaying(
        Some((201, r#"{"status":"pending"}"#.into())),
        vec![pending_answer()],
    )
    .await;
    assert!(unknown(&w.pay_invoice(&inv, 0).await));
}

/// A payment accepted as pending is followed through lookups while the call lasts: paid (the
/// preimage and fee come from the lookup) or failed (definite).
#[tokio::test]
async fn a_pending_payment_is_followed_to_its_end() {
    let (inv, preimage) = an_invoice();
    let w = Replay::replaying(
        Some((201, r#"{"status":"pending","fee":-2000}"#.into())),
        vec![pending_answer(), paid_answer(&preimage)],
    )
    .await;
    assert_eq!(
        w.pay_invoice(&inv, 0).await,
        Ok(PaymentResult {
            preimage: Some(l402_mcp::l402::Preimage(preimage)),
            fee_msat: 3000
        })
    );
    let w = Replay::replaying(
        Some((201, r#"{"status":"pending"}"#.into())),
        vec![(200, lookup_answer("failed", None, 0))],
    )
    .await;
    assert!(matches!(
        w.pay_invoice(&inv, 0).await,
        Err(WalletError::Rejected(_))
    ));
}

/// An older LNbits answers only with the hash: the lookup tells.
#[tokio::test]
async fn an_answer_with_only_the_hash_is_settled_by_the_lookup() {
    let (inv, preimage) = an_invoice();
    let w = Replay::replaying(
        Some((
            201,
            format!(r#"{{"payment_hash":"{}"}}"#, hex::encode(inv.payment_hash)),
        )),
        vec![paid_answer(&preimage)],
    )
    .await;
    assert_eq!(
        w.pay_invoice(&inv, 0).await.map(|r| r.preimage),
        Ok(Some(l402_mcp::l402::Preimage(preimage)))
    );
}

/// "Already paid": by someone else (this wallet has no such payment) it is definite; by this
/// wallet it is its earlier payment.
#[tokio::test]
async fn already_paid_is_definite_only_when_this_wallet_did_not_pay() {
    let (inv, preimage) = an_invoice();
    let already = || {
        Some((
            520,
            r#"{"detail":"Payment already paid.","status":"success"}"#.to_owned(),
        ))
    };
    let w = Replay::replaying(already(), vec![not_found()]).await;
    assert!(matches!(
        w.pay_invoice(&inv, 0).await,
        Err(WalletError::Rejected(_))
    ));
    let w = Replay::replaying(already(), vec![paid_answer(&preimage)]).await;
    assert_eq!(
        w.pay_invoice(&inv, 0).await.map(|r| r.preimage),
        Ok(Some(l402_mcp::l402::Preimage(preimage)))
    );
}

/// Paid, with the all-zero placeholder and no better preimage anywhere: paid, without proof
/// (the pay path records and reports that), with LNbits' fee.
#[tokio::test]
async fn the_all_zero_placeholder_is_no_preimage() {
    let (inv, _) = an_invoice();
    let w = Replay::replaying(
        Some((
            201,
            format!(
                r#"{{"status":"success","fee":-1000,"preimage":"{}"}}"#,
                "0".repeat(64)
            ),
        )),
        vec![(200, lookup_answer("success", None, 1000))],
    )
    .await;
    assert_eq!(
        w.pay_invoice(&inv, 0).await,
        Ok(PaymentResult {
            preimage: None,
            fee_msat: 1000
        })
    );
}

/// Why the LNbits backend refuses Payment sessions, checked on the real LNbits: it makes no
/// invoice without an amount, and pays none (so neither a return invoice nor a refund).
#[tokio::test]
#[ignore = "needs LNbits: tools/lnbits/test.sh"]
async fn real_lnbits_has_no_amountless_invoices() {
    let a = LnbitsApi::from_env("A").expect("run tools/lnbits/test.sh");
    let (status, answer) = a
        .request(
            Method::POST,
            "/api/v1/payments",
            &a.invoice_key,
            Some(json!({"out": false, "amount": 0, "memo": "a return invoice"})),
        )
        .await
        .unwrap();
    assert!(
        status >= 400
            && answer
                .to_string()
                .contains("Amountless invoices not supported"),
        "HTTP {status}: {answer}"
    );
    let amountless = TestInvoice::regtest_amountless(0x21, 0x67);
    let (status, answer) = a
        .request(
            Method::POST,
            "/api/v1/payments",
            &a.admin_key,
            Some(json!({"out": true, "bolt11": amountless.bolt11})),
        )
        .await
        .unwrap();
    assert!(
        status >= 400
            && answer
                .to_string()
                .contains("Amountless invoices not supported"),
        "HTTP {status}: {answer}"
    );
}
