//! Blink: its stand-in for the contract (suite.rs), and its own tests.
//!
//! Blink cannot be reached from here, so a loopback server REPLAYS its GraphQL API as
//! documented in its public schema and server code (blinkbitcoin/blink:
//! `core/api/src/graphql/public/schema.graphql`, `servers/middlewares/scope.ts`,
//! `graphql/error-map.ts`, `root/mutation/ln-invoice-payment-send.ts`) and its API docs
//! (dev.blink.sv: `btc-ln-send`, `btc-ln-receive`, `error-handling`, `auth`): `X-API-KEY`,
//! `POST /graphql` with `{query, variables}`, the BTC and USD wallets of an account with
//! balances in sats and cents, scopes READ / RECEIVE / WRITE refused with an
//! `AuthorizationError` GraphQL error, `lnInvoiceFeeProbe` in sats, `lnInvoicePaymentSend`
//! answering SUCCESS / FAILURE / PENDING / ALREADY_PAID with the SEND transaction and
//! `settlementVia.preImage`, `transactionsByPaymentHash`, `invoiceByPaymentHash` (an unknown
//! hash is a `LIGHTNING_PAYMENT_ERROR` "... does not exist"). Not verified in those sources,
//! and replayed as the notes guess them: the body of the gateway's 401 for an unknown key, and
//! `Retry-After` on a 429.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use l402_mcp::bolt11;
use l402_mcp::bolt11::Network;
use l402_mcp::config::SecretString;
use l402_mcp::l402::PaymentHash;
use l402_mcp::pay::PayError;
use l402_mcp::wallet::blink::BlinkConfig;
use l402_mcp::wallet::{
    BackendConfig, IncomingStatus, InvoiceRequest, Level, OutgoingStatus, Wallet, WalletError,
};
use serde_json::{Value, json};

use crate::common;
use crate::common::buyer::Buyer;
use crate::e2e::{self, Pays};
use crate::sessions::SessionFixture;
use crate::suite::{BackendFixture, NOT_JSON, PROXY_502, Scenario, TestInvoice, timeout_secs};

const API_KEY: &str = "blink_9kXq2vR7tL4mN8pW3sY6uZ1aB5cD0eF2gH7jK";
const BTC_WALLET: &str = "21087d73-80d8-4556-a73a-e1b6b0657784";
const USD_WALLET: &str = "a0f2c7b1-3d6e-4f0a-9b8c-5e4d3c2b1a09";
const NODE_ID: &str = "03ca1f5dbb2d1a8f9ab4f2a1c0f2c5d7e6b5a49382716e5f4d3c2b1a09f8e7d6c5";
/// The BTC wallet's balance, in sats as Blink writes it.
const BALANCE_SATS: u64 = 125_430;
const FEE_SATS: u64 = 3;

/// A SEND transaction of ours, as Blink keeps it.
#[derive(Clone)]
struct Sent {
    status: &'static str,
    preimage: Option<String>,
}

struct Node {
    scenario: Scenario,
    scopes: Vec<&'static str>,
    usd_only: bool,
    probe_sats: u64,
    preimages: HashMap<String, [u8; 32]>,
    sends: HashMap<String, Sent>,
    /// Invoices Blink made: hash -> (status, sats).
    invoices: HashMap<String, (&'static str, u64)>,
    /// Operations asked, with their variables.
    seen: Vec<(String, Value)>,
    limit_balance: bool,
    limit_pay: bool,
}

type Shared = Arc<Mutex<Node>>;

impl Node {
    fn calls(&self, op: &str) -> usize {
        self.seen.iter().filter(|(o, _)| o == op).count()
    }
}

fn data(v: Value) -> Response {
    axum::Json(json!({ "data": v })).into_response()
}

fn raw(status: u16, body: &str) -> Response {
    (StatusCode::from_u16(status).unwrap(), body.to_owned()).into_response()
}

fn too_many() -> Response {
    common::fixture::too_many_requests(
        json!({"errors": [{"message": "Too many requests from your account or IP"}]}),
    )
}

/// What Blink's scope middleware answers a valid key without the scope.
fn not_authorized(op: &str, mutation: bool) -> Response {
    let what = if mutation {
        "execute mutations"
    } else {
        "read data"
    };
    axum::Json(json!({"data": null, "errors": [{
        "message": format!("Unexpected error occurred, please try again or contact support if it persists (code: AuthorizationError: not authorized to {what})"),
        "path": [op], "extensions": {"code": "UNEXPECTED_CLIENT_ERROR"}}]}))
    .into_response()
}

fn transaction(hash: &str, sent: &Sent) -> Value {
    json!({"id": "6940a7c2e5b1f30012ab34cd", "direction": "SEND", "status": sent.status,
           "settlementAmount": -(21 + FEE_SATS as i64), "settlementFee": FEE_SATS,
           "settlementCurrency": "BTC", "initiationVia": {"paymentHash": hash},
           "settlementVia": {"__typename": "SettlementViaLn", "preImage": sent.preimage}})
}

/// The operation a GraphQL document runs, by the field it selects.
fn operation(query: &str) -> (&'static str, Option<&'static str>, bool) {
    // (operation, scope it needs, mutation)
    for (field, scope, mutation) in [
        ("lnNoAmountInvoicePaymentSend", Some("WRITE"), true),
        ("lnNoAmountInvoiceFeeProbe", Some("WRITE"), true),
        ("lnNoAmountInvoiceCreate", Some("RECEIVE"), true),
        ("lnInvoicePaymentSend", Some("WRITE"), true),
        ("lnInvoiceFeeProbe", Some("WRITE"), true),
        ("lnInvoiceCreate", Some("RECEIVE"), true),
        ("transactionsByPaymentHash", Some("READ"), false),
        ("invoiceByPaymentHash", Some("READ"), false),
        ("authorization", Some("READ"), false),
        ("globals", None, false),
        ("wallets", Some("READ"), false),
    ] {
        if query.contains(field) {
            return (field, scope, mutation);
        }
    }
    ("unknown", None, false)
}

async fn blink(State(node): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    if headers.get("x-api-key").and_then(|v| v.to_str().ok()) != Some(API_KEY) {
        return raw(
            401,
            r#"{"error":{"code":401,"status":"Unauthorized","message":"Access credentials are invalid"}}"#,
        );
    }
    let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let query = req["query"].as_str().unwrap_or_default();
    let vars = req["variables"].clone();
    let (op, scope, mutation) = operation(query);
    let mut n = node.lock().unwrap();
    n.seen.push((op.to_owned(), vars.clone()));
    if let Some(s) = scope {
        // WRITE allows what RECEIVE does.
        let granted = n.scopes.contains(&s) || (s == "RECEIVE" && n.scopes.contains(&"WRITE"));
        if !granted {
            return not_authorized(op, mutation);
        }
    }
    match op {
        "globals" => data(json!({"globals": {"network": "regtest", "nodesIds": [NODE_ID]}})),
        "authorization" => data(json!({"authorization": {"scopes": n.scopes}})),
        "wallets" if n.limit_balance => {
            n.limit_balance = false;
            too_many()
        }
        "wallets" => {
            let mut wallets =
                vec![json!({"id": USD_WALLET, "walletCurrency": "USD", "balance": 1999})];
            if !n.usd_only {
                wallets.push(
                    json!({"id": BTC_WALLET, "walletCurrency": "BTC", "balance": BALANCE_SATS}),
                );
            }
            data(json!({"me": {"defaultAccount": {"id": "1580f7f2", "wallets": wallets}}}))
        }
        "lnInvoiceCreate" => {
            let input = &vars["input"];
            let sats = input["amount"].as_u64().unwrap();
            let now = l402_mcp::clock::system().now();
            let (bolt11, preimage) =
                common::fixture::random_invoice(Network::Regtest, sats * 1000, now);
            let hash = hex::encode(l402_mcp::l402::sha256(&preimage));
            n.invoices.insert(hash.clone(), ("PENDING", sats));
            data(json!({"lnInvoiceCreate": {"errors": [], "invoice": {
                "paymentRequest": bolt11, "paymentHash": hash, "paymentStatus": "PENDING",
                "satoshis": sats, "createdAt": now, "externalId": null}}}))
        }
        "lnNoAmountInvoiceCreate" => {
            let preimage: [u8; 32] = rand::random();
            let bolt11 = common::fixture::amountless_invoice_for(0x63, preimage);
            let hash = hex::encode(l402_mcp::l402::sha256(&preimage));
            n.invoices.insert(hash.clone(), ("PENDING", 0));
            // LnNoAmountInvoice: no `satoshis`.
            data(
                json!({"lnNoAmountInvoiceCreate": {"errors": [], "invoice": {
                "paymentRequest": bolt11, "paymentHash": hash, "paymentStatus": "PENDING",
                "createdAt": crate::common::T0, "externalId": null}}}),
            )
        }
        "lnInvoiceFeeProbe" | "lnNoAmountInvoiceFeeProbe" => {
            data(json!({ op: {"amount": n.probe_sats, "errors": []} }))
        }
        "invoiceByPaymentHash" => {
            let hash = vars["hash"].as_str().unwrap_or_default();
            match n.invoices.get(hash) {
                Some((status, sats)) => data(json!({"me": {"defaultAccount": {"walletById": {
                    "invoiceByPaymentHash": {"paymentHash": hash, "paymentStatus": status, "satoshis": sats}}}}})),
                None => axum::Json(json!({"data": {"me": null}, "errors": [{
                    "message": format!("User tried to pay invoice with hash {hash}, but it does not exist"),
                    "locations": [{"line": 1, "column": 36}], "path": ["me"],
                    "extensions": {"code": "LIGHTNING_PAYMENT_ERROR"}}]}))
                .into_response(),
            }
        }
        "transactionsByPaymentHash" => {
            let hash = vars["hash"].as_str().unwrap_or_default();
            let list: Vec<Value> = n
                .sends
                .get(hash)
                .map(|s| transaction(hash, s))
                .into_iter()
                .collect();
            data(
                json!({"me": {"defaultAccount": {"walletById": {"transactionsByPaymentHash": list}}}}),
            )
        }
        // The same payload for both (PaymentSendPayload).
        "lnInvoicePaymentSend" | "lnNoAmountInvoicePaymentSend" => {
            if n.limit_pay {
                n.limit_pay = false;
                return too_many();
            }
            let bolt11 = vars["input"]["paymentRequest"].as_str().unwrap_or_default();
            let hash = hex::encode(bolt11::decode(bolt11).unwrap().payment_hash);
            let preimage = n.preimages.get(&hash).map(hex::encode);
            let answer = |status: &str, sent: Option<&Sent>| {
                data(json!({ op: {"status": status, "errors": [],
                    "transaction": sent.map(|s| transaction(&hash, s))}}))
            };
            if let Some(before) = n.sends.get(&hash).cloned() {
                let status = if before.status == "SUCCESS" {
                    "ALREADY_PAID"
                } else {
                    before.status
                };
                return answer(status, Some(&before));
            }
            let pending = Sent {
                status: "PENDING",
                preimage: None,
            };
            match n.scenario {
                Scenario::Paid | Scenario::AuthRefused | Scenario::NoPreimage => {
                    let sent = Sent {
                        status: "SUCCESS",
                        preimage: preimage.filter(|_| n.scenario != Scenario::NoPreimage),
                    };
                    n.sends.insert(hash.clone(), sent.clone());
                    answer("SUCCESS", Some(&sent))
                }
                Scenario::PendingThenSettled => {
                    n.sends.insert(hash.clone(), pending.clone());
                    answer("PENDING", Some(&pending))
                }
                Scenario::Failed => data(json!({ op: {"status": "FAILURE",
                    "errors": [{"code": "ROUTE_FINDING_ERROR", "message": "Unable to find a route for payment.", "path": null}],
                    "transaction": null}})),
                // blink_or_hang holds this answer back past every timeout.
                Scenario::Hang => {
                    n.sends.insert(hash, pending);
                    raw(500, "too late")
                }
                Scenario::ServerError => {
                    n.sends.insert(hash, pending);
                    raw(502, PROXY_502)
                }
                Scenario::NotJson => {
                    n.sends.insert(hash, pending);
                    raw(200, NOT_JSON)
                }
            }
        }
        _ => raw(
            400,
            r#"{"errors":[{"message":"Must provide query string."}]}"#,
        ),
    }
}

pub struct Fixture {
    node: Shared,
    url: String,
    config: BlinkConfig,
}

impl Fixture {
    async fn start_with(scenario: Scenario, timeout: u64) -> Fixture {
        let node: Shared = Arc::new(Mutex::new(Node {
            scenario,
            scopes: vec!["READ", "RECEIVE", "WRITE"],
            usd_only: false,
            probe_sats: FEE_SATS,
            preimages: HashMap::new(),
            sends: HashMap::new(),
            invoices: HashMap::new(),
            seen: Vec::new(),
            limit_balance: false,
            limit_pay: false,
        }));
        let app = Router::new()
            .fallback(blink_or_hang)
            .with_state(node.clone());
        let url = format!("{}/graphql", common::fixture::serve(app).await);
        Fixture {
            node,
            config: BlinkConfig {
                url: url.clone(),
                api_key: SecretString::new(API_KEY),
                wallet_id: None,
                network: None,
                timeout_secs: Some(timeout),
            },
            url,
        }
    }

    fn set(&self, f: impl FnOnce(&mut Node)) {
        f(&mut self.node.lock().unwrap());
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("L402_MCP_BACKEND", "blink".into()),
            ("L402_MCP_BLINK_URL", self.url.clone()),
            ("L402_MCP_BLINK_API_KEY", API_KEY.into()),
        ]
    }
}

/// The stand-in's handler; a payment in the Hang scenario sleeps past every timeout.
async fn blink_or_hang(state: State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let hangs = {
        let n = state.lock().unwrap();
        n.scenario == Scenario::Hang
            && std::str::from_utf8(&body).is_ok_and(|b| b.contains("InvoicePaymentSend"))
    };
    let answer = blink(state, headers, body).await;
    if hangs {
        tokio::time::sleep(Duration::from_secs(30)).await;
    }
    answer
}

#[async_trait]
impl BackendFixture for Fixture {
    const FEE_MSAT: u64 = FEE_SATS * 1000;
    const FAILURE_REASON: &'static str = "Unable to find a route";
    const CREDENTIAL: &'static str = "API key";
    const BALANCE_MSAT: u64 = BALANCE_SATS * 1000;

    async fn start(scenario: Scenario) -> Fixture {
        let mut f = Fixture::start_with(scenario, timeout_secs(scenario)).await;
        if scenario == Scenario::AuthRefused {
            f.config.api_key = SecretString::new("blink_revokedrevokedrevokedrevoked00");
        }
        f
    }

    async fn wallet(&self) -> Arc<dyn Wallet> {
        crate::suite::open(BackendConfig::Blink(self.config.clone())).await
    }

    async fn invoice(&self, seed: u8) -> TestInvoice {
        TestInvoice::regtest(0x62, seed).known_to(&mut self.node.lock().unwrap().preimages)
    }

    async fn settle(&self, invoice: &TestInvoice) {
        self.set(|n| {
            n.sends.insert(
                invoice.hash.to_hex(),
                Sent {
                    status: "SUCCESS",
                    preimage: Some(invoice.preimage.to_hex()),
                },
            );
        });
    }

    fn pay_normally(&self) -> bool {
        self.set(|n| n.scenario = Scenario::Paid);
        true
    }

    async fn pay_calls(&self) -> usize {
        let n = self.node.lock().unwrap();
        n.calls("lnInvoicePaymentSend") + n.calls("lnNoAmountInvoicePaymentSend")
    }

    fn secret(&self) -> String {
        self.config.api_key.expose().to_owned()
    }

    fn rate_limit_next(&self) {
        self.set(|n| {
            n.limit_balance = true;
            n.limit_pay = true;
        });
    }

    async fn settle_incoming(&self, payment_hash: &PaymentHash) {
        self.set(|n| {
            if let Some(inv) = n.invoices.get_mut(&payment_hash.to_hex()) {
                inv.0 = "PAID";
            }
        });
    }
}

#[async_trait]
impl SessionFixture for Fixture {
    async fn amountless_invoice(&self, seed: u8) -> TestInvoice {
        TestInvoice::regtest_amountless(0x62, seed)
            .known_to(&mut self.node.lock().unwrap().preimages)
    }

    async fn amount_sent_msat(&self) -> Option<u64> {
        let n = self.node.lock().unwrap();
        let (_, vars) = n
            .seen
            .iter()
            .rev()
            .find(|(o, _)| o == "lnNoAmountInvoicePaymentSend")?;
        vars["input"]["amount"].as_u64().map(|sats| sats * 1000)
    }

    async fn invoice_request_had_amount(&self) -> bool {
        let n = self.node.lock().unwrap();
        let (op, vars) = n
            .seen
            .iter()
            .rev()
            .find(|(o, _)| o.ends_with("InvoiceCreate"))
            .unwrap();
        op != "lnNoAmountInvoiceCreate" || vars["input"].get("amount").is_some()
    }
}

/// What a refund sends: `lnNoAmountInvoiceFeeProbe`, then (the fee within the limit)
/// `lnNoAmountInvoicePaymentSend`, both with the BTC wallet, the invoice and `amount` in sats;
/// a return invoice is `lnNoAmountInvoiceCreate` with the memo and expiry in minutes.
#[tokio::test]
async fn amountless_requests_follow_the_schema() {
    let f = Fixture::start(Scenario::Paid).await;
    let inv = crate::sessions::refund_and_return_invoice(&f).await;
    let n = f.node.lock().unwrap();
    let vars = |op: &str| n.seen.iter().find(|(o, _)| o == op).unwrap().1.clone();
    let input = json!({"walletId": BTC_WALLET, "paymentRequest": inv.bolt11, "amount": 7});
    assert_eq!(vars("lnNoAmountInvoiceFeeProbe"), json!({ "input": input }));
    assert_eq!(
        vars("lnNoAmountInvoicePaymentSend"),
        json!({ "input": input })
    );
    assert_eq!(
        vars("lnNoAmountInvoiceCreate"),
        json!({"input": {"walletId": BTC_WALLET, "memo": "a refund", "expiresIn": 10}})
    );
    assert_eq!(
        n.calls("lnInvoiceFeeProbe") + n.calls("lnInvoicePaymentSend"),
        0
    );
}

#[tokio::test]
async fn a_usd_only_account_is_refused_clearly_and_nothing_is_paid() {
    let f = Fixture::start(Scenario::Paid).await;
    f.set(|n| n.usd_only = true);
    let b = Buyer::on(f.wallet().await).await;
    for e in [
        b.wallet.info().await.unwrap_err(),
        b.wallet.balance().await.unwrap_err(),
    ] {
        assert!(
            matches!(&e, WalletError::Unavailable(m) if m.contains("only a USD") && m.contains("BTC wallet")),
            "{e}"
        );
    }
    let inv = f.invoice(0x21).await;
    assert!(b.pay(&inv.bolt11).await.is_err());
    assert_eq!(f.pay_calls().await, 0);
    assert_eq!(b.totals().await, (0, 0));
}

#[tokio::test]
async fn a_wallet_id_of_the_usd_wallet_is_refused() {
    let mut f = Fixture::start(Scenario::Paid).await;
    f.config.wallet_id = Some(USD_WALLET.into());
    let e = f.wallet().await.balance().await.unwrap_err();
    assert!(
        matches!(&e, WalletError::Unavailable(m) if m.contains("USD wallet") && m.contains("L402_MCP_BLINK_WALLET_ID")),
        "{e}"
    );
    f.config.wallet_id = Some(BTC_WALLET.into());
    assert_eq!(
        f.wallet().await.balance().await.unwrap().msat,
        BALANCE_SATS * 1000
    );
}

#[tokio::test]
async fn a_key_without_write_is_refused_before_paying_and_doctor_says_so() {
    let f = Fixture::start(Scenario::Paid).await;
    f.set(|n| n.scopes = vec!["READ", "RECEIVE"]);
    let b = Buyer::on(f.wallet().await).await;
    let inv = f.invoice(0x22).await;
    match b.pay(&inv.bolt11).await {
        Err(PayError::Failed(e @ WalletError::NotPayable(_))) => {
            assert!(e.to_string().contains("lacks the Write scope"), "{e}")
        }
        other => panic!("{other:?}"),
    }
    let asked = {
        let n = f.node.lock().unwrap();
        (
            n.calls("lnInvoiceFeeProbe"),
            n.calls("lnInvoicePaymentSend"),
        )
    };
    assert_eq!(asked, (0, 0), "nothing was asked of Blink");
    // It still sells.
    b.wallet
        .create_invoice(&InvoiceRequest {
            amount_msat: 21_000,
            description: "x".into(),
            expiry_secs: 600,
        })
        .await
        .unwrap();
    let access = b.wallet.access().await;
    let pay = access.iter().find(|a| a.check == "pay").unwrap();
    assert_eq!(pay.level, Level::Warn);
    assert!(pay.detail.contains("no Write scope"), "{pay:?}");
}

#[tokio::test]
async fn a_read_only_key_cannot_invoice_and_is_told_which_scope() {
    let f = Fixture::start(Scenario::Paid).await;
    f.set(|n| n.scopes = vec!["READ"]);
    let e = f
        .wallet()
        .await
        .create_invoice(&InvoiceRequest {
            amount_msat: 21_000,
            description: "x".into(),
            expiry_secs: 600,
        })
        .await
        .unwrap_err();
    assert!(e.to_string().contains("lacks the Receive scope"), "{e}");
}

#[tokio::test]
async fn a_fee_above_the_limit_is_refused_before_paying() {
    let f = Fixture::start(Scenario::Paid).await;
    f.set(|n| n.probe_sats = 50);
    let b = Buyer::on(f.wallet().await).await;
    let inv = f.invoice(0x23).await;
    match b.pay(&inv.bolt11).await {
        Err(PayError::Failed(WalletError::Rejected(m))) => assert!(m.contains("fee"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(f.pay_calls().await, 0);
}

#[tokio::test]
async fn an_invoice_this_wallet_paid_before_is_not_paid_twice() {
    let f = Fixture::start(Scenario::Paid).await;
    let inv = f.invoice(0x24).await;
    let first = Buyer::on(f.wallet().await).await;
    first.pay(&inv.bolt11).await.unwrap();
    // Another ledger (a lost data dir) pays it again: Blink answers ALREADY_PAID.
    let second = Buyer::on(f.wallet().await).await;
    let receipt = second.pay(&inv.bolt11).await.unwrap();
    assert_eq!(receipt.preimage, inv.preimage);
    assert_eq!(
        f.node.lock().unwrap().sends.len(),
        1,
        "one payment at Blink"
    );
}

#[tokio::test]
async fn requests_are_as_blink_documents_them() {
    let f = Fixture::start(Scenario::Paid).await;
    let w = f.wallet().await;
    let created = w
        .create_invoice(&InvoiceRequest {
            amount_msat: 2_100_000,
            description: "é".repeat(400),
            expiry_secs: 601,
        })
        .await
        .unwrap();
    assert_eq!(
        w.lookup_incoming(&created.payment_hash).await,
        Ok(IncomingStatus::Pending)
    );
    let b = Buyer::on(w.clone()).await;
    let inv = f.invoice(0x25).await;
    b.pay(&inv.bolt11).await.unwrap();
    assert!(matches!(
        w.lookup_outgoing(&inv.hash).await,
        Ok(OutgoingStatus::Succeeded(_))
    ));
    let n = f.node.lock().unwrap();
    let (_, create) = n.seen.iter().find(|(o, _)| o == "lnInvoiceCreate").unwrap();
    let input = &create["input"];
    assert_eq!(
        input["walletId"], BTC_WALLET,
        "the BTC wallet, never the USD one"
    );
    assert_eq!(input["amount"], 2_100, "sats");
    assert_eq!(input["expiresIn"], 11, "minutes, rounded up");
    assert!(
        input["memo"].as_str().unwrap().len() <= 639,
        "Blink's memo limit"
    );
    let (_, pay) = n
        .seen
        .iter()
        .find(|(o, _)| o == "lnInvoicePaymentSend")
        .unwrap();
    assert_eq!(pay["input"]["walletId"], BTC_WALLET);
    assert_eq!(pay["input"]["paymentRequest"], inv.bolt11.as_str());
    let ops: Vec<&str> = n.seen.iter().map(|(o, _)| o.as_str()).collect();
    let probe = ops.iter().position(|o| *o == "lnInvoiceFeeProbe").unwrap();
    let send = ops
        .iter()
        .position(|o| *o == "lnInvoicePaymentSend")
        .unwrap();
    assert!(probe < send, "the fee is bounded before paying: {ops:?}");
}

#[test]
fn the_documented_config_is_read() {
    match crate::suite::documented_backend(include_str!("../../docs/wallets/blink.md")) {
        BackendConfig::Blink(c) => assert_eq!(c.url, "https://api.blink.sv/graphql"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn through_mcp_and_the_command_line() {
    let f = Fixture::start(Scenario::Paid).await;
    let fresh = || {
        let (bolt11, preimage) = e2e::fresh_invoice();
        f.set(|n| {
            n.preimages
                .insert(hex::encode(l402_mcp::l402::sha256(&preimage)), preimage);
        });
        (bolt11, preimage)
    };
    let (bolt11, preimage) = fresh();
    let env = f.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    e2e::through_mcp(
        "blink",
        &env,
        API_KEY,
        BALANCE_SATS,
        &bolt11,
        Pays::Yes {
            preimage: hex::encode(preimage),
            fee_msat: FEE_SATS * 1000,
        },
    )
    .await;

    let (again, _) = fresh();
    let (balance, invoice, paid, text) = e2e::through_cli(&env, API_KEY, &again).await;
    assert_eq!(balance["balance_msat"], BALANCE_SATS * 1000);
    assert_eq!(invoice["amount_sats"], 21);
    assert!(paid, "{text}");

    let (passed, text) = e2e::doctor(&env, API_KEY).await;
    assert!(passed, "{text}");
    assert!(text.contains("Read + Receive + Write"), "{text}");

    // A key Blink does not know, and a Blink that is not there.
    e2e::doctor_refuses(&env, (1, 2), "blink_notakeynotakeynotakey0000000", "Blink").await;
    // An account with only a USD wallet.
    f.set(|n| n.usd_only = true);
    let (passed, text) = e2e::doctor(&env, API_KEY).await;
    assert!(!passed && text.contains("only a USD"), "{text}");
    // A key that may not pay: doctor passes, and says so.
    f.set(|n| {
        n.usd_only = false;
        n.scopes = vec!["READ", "RECEIVE"];
    });
    let (passed, text) = e2e::doctor(&env, API_KEY).await;
    assert!(passed && text.contains("no Write scope"), "{text}");
}
