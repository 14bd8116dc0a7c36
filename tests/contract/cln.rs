//! Core Lightning: its stand-in for the contract (suite.rs), and its own tests.
//!
//! Core Lightning cannot run here (it is in no registry this machine reaches), so each test
//! starts a local HTTP stand-in that REPLAYS the request and response shapes of the public
//! documentation: clnrest (<https://docs.corelightning.org/docs/rest>; `POST /v1/<method>` with
//! a `Rune` header and a JSON object of parameters, `201` with the result, `401`/`403` for a
//! refused rune, `500` with the JSON-RPC error `{"code", "message", "data"}`, as in
//! `plugins/rest-plugin/src/handlers.rs`) and the JSON-RPC reference
//! (<https://docs.corelightning.org/reference>, `doc/schemas/*.json`: `getinfo`, `listfunds`,
//! `invoice`, `pay` with its error codes, `listinvoices`, `listpays`). Amounts are numbers, and
//! `"NNNmsat"` strings as versions before 23.x wrote them.
//!
//! The invoices the fixture hands out are real BOLT11, signed with a test key.
// A failed step in a test or benchmark is a failed run: unwrapping is fine here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use l402_mcp::bolt11::{self, Network};
use l402_mcp::pay::PayError;
use l402_mcp::storage::Status;
use l402_mcp::wallet::cln::{ClnConfig, ClnWallet};
use l402_mcp::wallet::{
    BackendConfig, IncomingStatus, InvoiceRequest, OutgoingStatus, Wallet, WalletError,
};
use serde_json::{Value, json};

use crate::common;
use crate::common::T0;
use crate::common::buyer::Buyer;
use crate::sessions::SessionFixture;
use crate::suite::{BackendFixture, NOT_JSON, PROXY_502, Scenario, TestInvoice, timeout_secs};

const RUNE: &str = "tU-RLjMiDpY2U0o3W1oFowar36RFGpWloPbW9-RuZdo9MyZpZD0wMjRiOWExZmE4ZTAwNmYxZTM5MzdmNjVmNjZjNDA4ZTZkYThlMWNhNzI4ZWE0MzIyMmE3MzgxZGYxY2M0NDk2MDUmbWV0aG9kPWxpc3RwZWVycyZwbnVtPTEmcG5hbWVpZF4wMjRiOWExZmE4ZTAwNmYxZTM5MyZwYXJyMF4wMjRiOWExZmE4ZTAwNmYxZTM5MyZ0aW1lPDE2NTY5MjA1MzgmcmF0ZT0y";
const NODE_ID: &str = "024b9a1fa8e006f1e3937f65f66c408e6da8e1ca728ea43222a7381df1cc449605";

/// A real regtest invoice for `amount_msat`, payable with `preimage`.
fn invoice(amount_msat: u64, preimage: [u8; 32]) -> String {
    common::fixture::invoice_for(0x31, amount_msat, preimage)
}

/// How the stand-in answers `pay`.
#[derive(Clone, Default)]
enum Pay {
    #[default]
    Complete,
    /// A success without `payment_preimage`.
    CompleteWithoutPreimage,
    /// `status: "pending"`: the payment goes on.
    Pending,
    /// HTTP 500 with this JSON-RPC error code.
    Error(i64),
    /// HTTP 401, the rune refused.
    RuneRefused,
    /// No answer in time.
    Hang,
    /// Not clnrest's answer (a proxy's page, HTML) with this status, while the payment goes on.
    Raw(u16, &'static str),
}

/// Error codes of `pay` after which no part of the payment is out.
const DEFINITE: [i64; 4] = [203, 205, 206, 210];

#[derive(Default)]
struct Node {
    seen: Vec<(String, Option<String>, Value)>,
    pay: Pay,
    preimages: HashMap<String, [u8; 32]>,
    /// `listpays` entries by hex hash.
    pays: HashMap<String, Vec<Value>>,
    invoices: HashMap<String, Value>,
}

type Shared = Arc<Mutex<Node>>;

impl Node {
    fn calls(&self, method: &str) -> usize {
        self.seen.iter().filter(|s| s.0 == method).count()
    }
}

fn rpc_error(status: StatusCode, code: i64, message: &str) -> Response {
    (
        status,
        axum::Json(json!({ "code": code, "message": message, "data": {"getroute_tries": 1} })),
    )
        .into_response()
}

async fn clnrest(
    State(node): State<Shared>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let params: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let method = uri.path().trim_start_matches("/v1/").to_owned();
    let rune = headers
        .get("rune")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let pay_mode = {
        let mut n = node.lock().unwrap();
        n.seen.push((method.clone(), rune.clone(), params.clone()));
        n.pay.clone()
    };
    if rune.as_deref() != Some(RUNE) {
        return rpc_error(StatusCode::UNAUTHORIZED, 1502, "Rune is not valid");
    }
    if method == "pay" {
        return pay(&node, &params, pay_mode).await;
    }
    let mut n = node.lock().unwrap();
    let result = match method.as_str() {
        "getinfo" => json!({
            "id": NODE_ID, "alias": "fixture", "color": "024b9a", "num_peers": 1,
            "num_pending_channels": 0, "num_active_channels": 1, "num_inactive_channels": 0,
            "address": [], "binding": [], "version": "v25.05", "blockheight": 500,
            "network": "regtest", "fees_collected_msat": 0,
            "lightning-dir": "/home/cln/.lightning/regtest", "our_features": {}
        }),
        "listfunds" => json!({
            "outputs": [{"txid": "59d7273c7dde3b2786f7325da08a303779ee718443aaa25d03db19c9e909591b",
                         "output": 0, "amount_msat": 1000000, "scriptpubkey": "0014", "status": "confirmed",
                         "blockheight": 141, "reserved": false}],
            "channels": [
                {"peer_id": NODE_ID, "connected": true, "state": "CHANNELD_NORMAL",
                 "short_channel_id": "124x1x1", "our_amount_msat": "5000msat", "amount_msat": "1000000msat",
                 "funding_txid": "148a", "funding_output": 1, "channel_id": "ecab"},
                {"peer_id": NODE_ID, "connected": true, "state": "CHANNELD_NORMAL",
                 "short_channel_id": "110x1x0", "our_amount_msat": 7000, "amount_msat": 1000000,
                 "funding_txid": "63f7", "funding_output": 0, "channel_id": "252d"},
                {"peer_id": NODE_ID, "connected": false, "state": "ONCHAIN",
                 "our_amount_msat": 500000, "amount_msat": 1000000,
                 "funding_txid": "1c86", "funding_output": 1, "channel_id": "f4e1"}
            ]
        }),
        "invoice" => {
            // `"any"`: an invoice without an amount.
            let amount = params["amount_msat"].as_u64();
            let preimage = [0x6b; 32];
            let hash = hex::encode(l402_mcp::l402::sha256(&preimage));
            let bolt11 = match amount {
                Some(a) => invoice(a, preimage),
                None if params["amount_msat"] == "any" => {
                    common::fixture::amountless_invoice_for(0x31, preimage)
                }
                None => {
                    return rpc_error(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        -32602,
                        "amount_msat: should be a millisatoshi amount or 'any'",
                    );
                }
            };
            let amount = amount.unwrap_or(0);
            n.invoices.insert(
                hash.clone(),
                json!({"label": params["label"], "payment_hash": hash, "status": "paid",
                       "amount_msat": format!("{amount}msat"), "amount_received_msat": format!("{amount}msat"),
                       "paid_at": T0, "expires_at": T0 + 600, "payment_preimage": hex::encode(preimage)}),
            );
            json!({"payment_hash": hash, "expires_at": T0 + 600, "bolt11": bolt11,
                   "payment_secret": hex::encode([8u8; 32]), "created_index": 1})
        }
        "listinvoices" => {
            let hash = params["payment_hash"].as_str().unwrap();
            json!({ "invoices": n.invoices.get(hash).into_iter().cloned().collect::<Vec<_>>() })
        }
        "listpays" => {
            let hash = params["payment_hash"].as_str().unwrap();
            json!({ "pays": n.pays.get(hash).cloned().unwrap_or_default() })
        }
        _ => return rpc_error(StatusCode::NOT_FOUND, -32601, "Unknown command"),
    };
    (StatusCode::CREATED, axum::Json(result)).into_response()
}

/// `pay`: the attempt is recorded as `listpays` will show it, then answered as told.
async fn pay(node: &Shared, params: &Value, mode: Pay) -> Response {
    let decoded = bolt11::decode(params["bolt11"].as_str().unwrap()).unwrap();
    let hash = hex::encode(decoded.payment_hash);
    // `amount_msat` is for an invoice without an amount, and only for one (as `pay` checks).
    let amount = match (decoded.amount_msat, params["amount_msat"].as_u64()) {
        (Some(a), None) | (None, Some(a)) => a,
        (Some(_), Some(_)) => {
            return rpc_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                -32602,
                "amount_msat parameter unnecessary",
            );
        }
        (None, None) => {
            return rpc_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                -32602,
                "amount_msat parameter required",
            );
        }
    };
    let preimage = hex::encode(node.lock().unwrap().preimages[&hash]);
    let attempt = |status: &str| {
        json!({"payment_hash": hash, "status": status, "created_at": T0, "created_index": 1,
               "amount_msat": amount, "amount_sent_msat": amount + 5})
    };
    let record = match &mode {
        Pay::Complete => {
            let mut a = attempt("complete");
            a["preimage"] = json!(preimage);
            Some(a)
        }
        Pay::CompleteWithoutPreimage => Some(attempt("complete")),
        Pay::Error(code) if DEFINITE.contains(code) => Some(attempt("failed")),
        Pay::Error(-32602) | Pay::RuneRefused => None,
        _ => Some(attempt("pending")),
    };
    if let Some(r) = record {
        node.lock()
            .unwrap()
            .pays
            .entry(hash.clone())
            .or_default()
            .push(r);
    }
    let mut answer = json!({
        "destination": NODE_ID, "payment_hash": hash, "created_at": T0, "parts": 1,
        "amount_msat": amount, "amount_sent_msat": amount + 5,
        "payment_preimage": preimage, "status": "complete"
    });
    let created = |v: Value| (StatusCode::CREATED, axum::Json(v)).into_response();
    match mode {
        Pay::Complete => created(answer),
        Pay::CompleteWithoutPreimage => {
            answer.as_object_mut().unwrap().remove("payment_preimage");
            created(answer)
        }
        Pay::Pending => {
            answer.as_object_mut().unwrap().remove("payment_preimage");
            answer["status"] = json!("pending");
            created(answer)
        }
        Pay::Error(code) => rpc_error(StatusCode::INTERNAL_SERVER_ERROR, code, "failed"),
        Pay::RuneRefused => rpc_error(StatusCode::UNAUTHORIZED, 1502, "Rune is not valid"),
        Pay::Hang => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            rpc_error(StatusCode::INTERNAL_SERVER_ERROR, -1, "too late")
        }
        Pay::Raw(status, body) => (
            StatusCode::from_u16(status).unwrap(),
            [("content-type", "text/html")],
            body,
        )
            .into_response(),
    }
}

async fn start() -> (Shared, String) {
    let node: Shared = Arc::default();
    let app = Router::new().fallback(clnrest).with_state(node.clone());
    (node, common::fixture::serve(app).await)
}

fn config(url: &str, timeout_secs: u64) -> ClnConfig {
    ClnConfig {
        url: url.into(),
        rune: RUNE.into(),
        tls_cert_path: None,
        network: None,
        timeout_secs: Some(timeout_secs),
    }
}

/// The stand-in for the contract: a node that answers `pay` as the scenario says.
pub struct Fixture {
    node: Shared,
    config: ClnConfig,
}

impl Fixture {
    async fn with(pay: Pay, timeout_secs: u64) -> Fixture {
        let (node, url) = start().await;
        node.lock().unwrap().pay = pay;
        Fixture {
            node,
            config: config(&url, timeout_secs),
        }
    }

    async fn buyer(&self) -> Buyer {
        Buyer::on(self.wallet().await).await
    }

    fn set_pays(&self, hash: &l402_mcp::l402::PaymentHash, pays: Value) {
        let pays = pays.as_array().unwrap().clone();
        self.node
            .lock()
            .unwrap()
            .pays
            .insert(hex::encode(hash), pays);
    }
}

#[async_trait]
impl BackendFixture for Fixture {
    const FEE_MSAT: u64 = 5;
    const FAILURE_REASON: &'static str = "no route";
    const CREDENTIAL: &'static str = "rune";

    async fn start(scenario: Scenario) -> Fixture {
        let pay = match scenario {
            Scenario::Paid | Scenario::AuthRefused => Pay::Complete,
            Scenario::PendingThenSettled => Pay::Pending,
            Scenario::Hang => Pay::Hang,
            Scenario::Failed => Pay::Error(205),
            Scenario::NoPreimage => Pay::CompleteWithoutPreimage,
            Scenario::ServerError => Pay::Raw(502, PROXY_502),
            Scenario::NotJson => Pay::Raw(201, NOT_JSON),
        };
        let mut f = Fixture::with(pay, timeout_secs(scenario)).await;
        if scenario == Scenario::AuthRefused {
            f.config.rune = "wrong-rune-0123456789".into();
        }
        f
    }

    async fn wallet(&self) -> Arc<dyn Wallet> {
        crate::suite::open(BackendConfig::Cln(self.config.clone())).await
    }

    async fn invoice(&self, seed: u8) -> TestInvoice {
        TestInvoice::regtest(0x31, seed).known_to(&mut self.node.lock().unwrap().preimages)
    }

    async fn settle(&self, invoice: &TestInvoice) {
        self.set_pays(
            &invoice.hash,
            json!([{"payment_hash": hex::encode(invoice.hash), "status": "complete",
                    "created_at": T0, "created_index": 1, "completed_at": T0,
                    "amount_msat": invoice.amount_msat, "amount_sent_msat": invoice.amount_msat + 3,
                    "preimage": invoice.preimage.to_hex()}]),
        );
    }

    fn pay_normally(&self) -> bool {
        self.node.lock().unwrap().pay = Pay::Complete;
        true
    }

    async fn pay_calls(&self) -> usize {
        self.node.lock().unwrap().calls("pay")
    }

    fn secret(&self) -> String {
        self.config.rune.expose().to_owned()
    }
}

#[async_trait]
impl SessionFixture for Fixture {
    async fn amountless_invoice(&self, seed: u8) -> TestInvoice {
        TestInvoice::regtest_amountless(0x31, seed)
            .known_to(&mut self.node.lock().unwrap().preimages)
    }

    async fn amount_sent_msat(&self) -> Option<u64> {
        let n = self.node.lock().unwrap();
        let pay = n.seen.iter().rev().find(|s| s.0 == "pay")?;
        pay.2["amount_msat"].as_u64()
    }

    async fn invoice_request_had_amount(&self) -> bool {
        let n = self.node.lock().unwrap();
        let inv = n.seen.iter().rev().find(|s| s.0 == "invoice").unwrap();
        inv.2["amount_msat"] != "any"
    }
}

/// What a refund sends: `pay` with the invoice, `amount_msat` (a number, msat) and the same
/// fee and retry limits as any payment; a return invoice is `invoice` with `amount_msat: "any"`.
#[tokio::test]
async fn amountless_requests_follow_the_json_rpc_reference() {
    let f = Fixture::start(Scenario::Paid).await;
    let inv = crate::sessions::refund_and_return_invoice(&f).await;
    let n = f.node.lock().unwrap();
    let pay = n.seen.iter().find(|s| s.0 == "pay").unwrap();
    assert_eq!(
        pay.2,
        json!({"bolt11": inv.bolt11, "amount_msat": 7000, "maxfee": 10000, "retry_for": 1})
    );
    let created = n.seen.iter().find(|s| s.0 == "invoice").unwrap();
    assert_eq!(created.2["amount_msat"], "any");
    assert_eq!(
        (&created.2["description"], &created.2["expiry"]),
        (&json!("a refund"), &json!(600))
    );
}

#[tokio::test]
async fn requests_and_answers_follow_the_clnrest_reference() {
    let (node, url) = start().await;
    let wallet = ClnWallet::new(&config(&url, 5)).unwrap();

    let info = wallet.info().await.unwrap();
    assert_eq!(info.network, Network::Regtest);
    assert_eq!(info.node_id.as_deref(), Some(NODE_ID));
    // Our side of the normal channels, from "5000msat" and 7000; the closed channel is not.
    assert_eq!(wallet.balance().await.unwrap().msat, 12_000);

    let created = wallet
        .create_invoice(&InvoiceRequest {
            amount_msat: 21_500,
            description: "a coffee".into(),
            expiry_secs: 600,
        })
        .await
        .unwrap();
    assert_eq!(
        created.payment_hash,
        l402_mcp::l402::PaymentHash(l402_mcp::l402::sha256(&[0x6b; 32]))
    );
    assert_eq!(
        wallet.lookup_incoming(&created.payment_hash).await.unwrap(),
        IncomingStatus::Settled {
            amount_msat: 21_500
        },
        "amount_received_msat as an msat string"
    );
    assert_eq!(
        wallet
            .lookup_incoming(&l402_mcp::l402::PaymentHash([3; 32]))
            .await
            .unwrap(),
        IncomingStatus::NotFound
    );
    assert_eq!(
        wallet
            .lookup_outgoing(&l402_mcp::l402::PaymentHash([3; 32]))
            .await
            .unwrap(),
        OutgoingStatus::NotFound
    );

    let n = node.lock().unwrap();
    let methods: Vec<&str> = n.seen.iter().map(|s| s.0.as_str()).collect();
    assert_eq!(
        methods,
        [
            "getinfo",
            "listfunds",
            "invoice",
            "listinvoices",
            "listinvoices",
            "listpays"
        ]
    );
    assert!(n.seen.iter().all(|s| s.1.as_deref() == Some(RUNE)));
    let inv = &n.seen[2].2;
    assert_eq!(inv["amount_msat"], 21_500);
    assert_eq!(inv["description"], "a coffee");
    assert_eq!(inv["expiry"], 600);
    let label = inv["label"].as_str().unwrap();
    assert!(
        label.starts_with("l402-mcp-") && label.len() > 20,
        "{label}"
    );
    assert_eq!(
        n.seen[3].2,
        json!({"payment_hash": hex::encode(created.payment_hash)})
    );
}

#[tokio::test]
async fn labels_are_unique_per_invoice() {
    let (node, url) = start().await;
    let wallet = ClnWallet::new(&config(&url, 5)).unwrap();
    let req = InvoiceRequest {
        amount_msat: 1000,
        description: "x".into(),
        expiry_secs: 60,
    };
    wallet.create_invoice(&req).await.unwrap();
    wallet.create_invoice(&req).await.unwrap();
    let n = node.lock().unwrap();
    assert_ne!(n.seen[0].2["label"], n.seen[1].2["label"]);
}

/// What `pay` is sent: the invoice, the budget's fee limit, and a retry limit a little under
/// our timeout.
#[tokio::test]
async fn the_pay_request_follows_the_json_rpc_reference() {
    let f = Fixture::start(Scenario::Paid).await;
    let b = f.buyer().await;
    let inv = f.invoice(0x21).await;
    b.pay(&inv.bolt11).await.unwrap();
    let n = f.node.lock().unwrap();
    let pay = &n.seen.iter().find(|s| s.0 == "pay").unwrap().2;
    assert_eq!(
        pay,
        &json!({"bolt11": inv.bolt11, "maxfee": 10_000, "retry_for": 1})
    );
}

#[tokio::test]
async fn route_failures_release_the_reservation_and_others_do_not() {
    let f = Fixture::with(Pay::Complete, 5).await;
    let b = f.buyer().await;
    for (seed, code) in [(0x22u8, 205), (0x23, 206), (0x24, 210), (0x25, 203)] {
        let inv = f.invoice(seed).await;
        f.node.lock().unwrap().pay = Pay::Error(code);
        assert!(
            matches!(
                b.pay(&inv.bolt11).await,
                Err(PayError::Failed(WalletError::Rejected(_)))
            ),
            "{code}"
        );
        assert_eq!(b.status(&inv.hash).await, Status::Failed, "{code}");
    }
    for (seed, code) in [(0x26u8, -1), (0x27, 207), (0x28, 209)] {
        let inv = f.invoice(seed).await;
        f.node.lock().unwrap().pay = Pay::Error(code);
        assert!(
            matches!(
                b.pay(&inv.bolt11).await,
                Err(PayError::OutcomeUnknown { .. })
            ),
            "{code}"
        );
        assert_eq!(b.status(&inv.hash).await, Status::Pending, "{code}");
    }
    // A refused rune: nothing was sent.
    let inv = f.invoice(0x29).await;
    f.node.lock().unwrap().pay = Pay::RuneRefused;
    assert!(matches!(
        b.pay(&inv.bolt11).await,
        Err(PayError::Failed(WalletError::Unavailable(_)))
    ));
    assert_eq!(b.status(&inv.hash).await, Status::Failed);
}

/// `listpays` shows one entry per attempt, amounts as numbers or "NNNmsat": any success wins,
/// then anything still under way.
#[tokio::test]
async fn attempts_are_read_from_listpays_in_every_form() {
    let f = Fixture::start(Scenario::Hang).await;
    let b = f.buyer().await;
    let inv = f.invoice(0x2a).await;
    assert!(matches!(
        b.pay(&inv.bolt11).await,
        Err(PayError::OutcomeUnknown { .. })
    ));
    let hash_hex = hex::encode(inv.hash);
    // An earlier failed attempt and the one under way.
    f.set_pays(
        &inv.hash,
        json!([
            {"payment_hash": hash_hex, "status": "failed", "created_at": T0, "created_index": 1,
             "amount_sent_msat": "21000msat"},
            {"payment_hash": hash_hex, "status": "pending", "created_at": T0, "created_index": 2,
             "amount_sent_msat": "21003msat"}
        ]),
    );
    assert!(matches!(
        b.pay(&inv.bolt11).await,
        Err(PayError::InFlight { .. })
    ));
    f.set_pays(
        &inv.hash,
        json!([
            {"payment_hash": hash_hex, "status": "failed", "created_at": T0, "created_index": 1,
             "amount_sent_msat": 21000},
            {"payment_hash": hash_hex, "status": "complete", "created_at": T0, "created_index": 2,
             "completed_at": T0, "amount_msat": 21000, "amount_sent_msat": 21003,
             "preimage": inv.preimage.to_hex()}
        ]),
    );
    assert_eq!(b.payer.reconcile().await.unwrap().succeeded, 1);
    let receipt = b.pay(&inv.bolt11).await.unwrap();
    assert!(receipt.already_paid);
    assert_eq!((receipt.preimage, receipt.fee_msat), (inv.preimage, 3));
    assert_eq!(f.pay_calls().await, 1, "never sent twice");
}

#[tokio::test]
async fn a_failed_attempt_is_reconciled_as_failed() {
    let f = Fixture::with(Pay::Error(-1), 5).await;
    let b = f.buyer().await;
    let inv = f.invoice(0x2b).await;
    assert!(matches!(
        b.pay(&inv.bolt11).await,
        Err(PayError::OutcomeUnknown { .. })
    ));
    f.set_pays(
        &inv.hash,
        json!([{"payment_hash": hex::encode(inv.hash), "status": "failed", "created_at": T0,
                "created_index": 1, "amount_sent_msat": 21000}]),
    );
    assert_eq!(b.payer.reconcile().await.unwrap().failed, 1);
    assert_eq!(b.status(&inv.hash).await, Status::Failed);
}

#[tokio::test]
async fn a_refused_rune_says_so_without_the_rune() {
    let (_node, url) = start().await;
    let wallet = ClnWallet::new(&ClnConfig {
        rune: "wrong-rune".into(),
        ..config(&url, 5)
    })
    .unwrap();
    match wallet.info().await {
        Err(e @ WalletError::Unavailable(_)) => {
            assert!(e.to_string().contains("rune"), "{e}");
            assert!(!e.to_string().contains("wrong-rune"));
        }
        other => panic!("{other:?}"),
    }
    assert!(!format!("{wallet:?}").contains("wrong-rune"));
    assert!(
        ClnWallet::new(&ClnConfig {
            rune: " ".into(),
            ..config(&url, 5)
        })
        .is_err()
    );
}

#[test]
fn the_documented_config_is_read() {
    match crate::suite::documented_backend(include_str!("../../docs/wallets/cln.md")) {
        BackendConfig::Cln(c) => {
            assert!(c.tls_cert_path.is_some() && c.url.starts_with("https://"))
        }
        other => panic!("{other:?}"),
    }
}
