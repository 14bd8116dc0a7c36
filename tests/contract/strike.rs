//! Strike: its stand-in for the contract (suite.rs), and its own tests.
//!
//! Strike cannot be reached from here, so a loopback server REPLAYS its REST API as its docs
//! (docs.strike.me: introduction, create-lightning-payment-quote, get-payment-by-id,
//! create-a-receive-request, find-receive-request-by-id, get-receives-for-all-receive-requests,
//! rate-limits) describe it: `Authorization: Bearer`, a 403 for a scope the key lacks, amounts as
//! `{"amount": "<BTC decimal>", "currency": "BTC"}`, `GET /v1/balances` (an array), receive
//! requests and their receives by `$paymentHash`, a payment quote (`idempotency-key`) then its
//! execution (`PATCH .../execute`) answering a payment `PENDING` / `COMPLETED` / `FAILED`,
//! `GET /v1/payments/{id}`, errors as `{"traceId", "data": {"status", "code", "message"}}`.
//! Not verified in those sources, and replayed as the notes and other clients guess them:
//! `lightning.preImage` on a payment (documented "if available" per a third party), the bodies
//! of 401/403, `Retry-After` on a 429, and `GET /v1/payment-quotes/{id}` (used by LNbits, not in
//! Strike's endpoint list) answering with the payment's id, which recovers a payment whose
//! execution answer was lost.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use l402_mcp::bolt11::{self, Network};
use l402_mcp::config::SecretString;
use l402_mcp::l402::PaymentHash;
use l402_mcp::pay::{PayError, PayRequest};
use l402_mcp::storage::CredentialScope;
use l402_mcp::wallet::strike::StrikeConfig;
use l402_mcp::wallet::{
    BackendConfig, IncomingStatus, InvoiceRequest, Level, OutgoingStatus, Wallet, WalletError,
};
use serde_json::{Value, json};

use crate::common;
use crate::common::buyer::Buyer;
use crate::e2e::{self, Pays};
use crate::sessions::SessionFixture;
use crate::suite::{BackendFixture, NOT_JSON, PROXY_502, Scenario, TestInvoice, timeout_secs};

const API_KEY: &str = "9F1C2B7A4E6D8C0B3A5F7E9D1C3B5A7F9E1D3C5B7A9F1E3D5C7B9A1F3E5D7C9B";
/// The BTC balance as Strike writes it, and in msat.
const BALANCE_BTC: &str = "0.00125430";
const BALANCE_MSAT: u64 = 125_430_000;
const FEE: &str = "0.00000003";
const FEE_MSAT: u64 = 3_000;
const ALL_SCOPES: [&str; 6] = [
    "partner.balances.read",
    "partner.receive-request.create",
    "partner.receive-request.read",
    "partner.payment-quote.lightning.create",
    "partner.payment-quote.execute",
    "partner.payment.read",
];

/// Whole sats of a BTC amount Strike was sent (`"0.00002100"`: eight decimals).
fn sats_of(amount: &Value) -> u64 {
    assert_eq!(amount["currency"], "BTC", "{amount}");
    let text = amount["amount"].as_str().expect("a decimal string");
    let (whole, fraction) = text.split_once('.').expect("eight decimals");
    assert_eq!(fraction.len(), 8, "{text}");
    whole.parse::<u64>().unwrap() * 100_000_000 + fraction.parse::<u64>().unwrap()
}

fn btc(sats: u64) -> Value {
    json!({"amount": format!("{}.{:08}", sats / 100_000_000, sats % 100_000_000), "currency": "BTC"})
}

#[derive(Clone)]
struct Payment {
    hash: String,
    bolt11: String,
    state: &'static str,
    preimage: Option<String>,
    /// GETs to answer before the preimage shows.
    preimage_after: usize,
}

struct Node {
    scenario: Scenario,
    scopes: Vec<&'static str>,
    preimages: HashMap<String, [u8; 32]>,
    /// Quotes: id -> (bolt11, payment id once executed).
    quotes: HashMap<String, (String, Option<String>)>,
    payments: HashMap<String, Payment>,
    /// Receive requests: id -> (bolt11, hash, sats, expires).
    requests: HashMap<String, (String, String, u64, u64)>,
    /// Hashes of invoices paid to us.
    received: Vec<String>,
    /// Requests seen: route, body, idempotency key.
    seen: Vec<(String, Value, Option<String>)>,
    quote_fee: &'static str,
    quote_currency: &'static str,
    preimage_after: usize,
    wrong_preimage: bool,
    quote_lookup: bool,
    limit_balance: bool,
    limit_pay: bool,
}

type Shared = Arc<Mutex<Node>>;

impl Node {
    fn calls(&self, route: &str) -> usize {
        self.seen.iter().filter(|(r, _, _)| r == route).count()
    }

    fn payment_json(&self, id: &str, p: &Payment) -> Value {
        let mut v = json!({"paymentId": id, "state": p.state,
            "result": match p.state { "COMPLETED" => "SUCCESS", "FAILED" => "FAILURE", _ => "PENDING" },
            "amount": btc(21), "totalFee": {"amount": FEE, "currency": "BTC"},
            "lightningNetworkFee": {"amount": FEE, "currency": "BTC"}, "totalAmount": btc(24),
            "lightning": {"networkFee": {"amount": FEE, "currency": "BTC"},
                          "paymentHash": p.hash, "paymentRequest": p.bolt11}});
        if p.state == "COMPLETED" {
            v["completed"] = json!(common::fixture::rfc3339(1_800_000_100));
            if let Some(pre) = p.preimage.as_ref().filter(|_| p.preimage_after == 0) {
                v["lightning"]["preImage"] = json!(pre);
            }
        }
        v
    }
}

fn error(status: u16, code: &str, message: &str) -> Response {
    (
        StatusCode::from_u16(status).unwrap(),
        axum::Json(json!({"traceId": "0HN8Q3J5K2L1M:00000001",
            "data": {"status": status, "code": code, "message": message, "values": {}, "validationErrors": {}}})),
    )
        .into_response()
}

/// The scope each route needs.
fn scope_of(method: &str, path: &str) -> Option<&'static str> {
    Some(match (method, path) {
        ("GET", "/v1/balances") => "partner.balances.read",
        ("POST", "/v1/receive-requests") => "partner.receive-request.create",
        ("GET", p) if p.starts_with("/v1/receive-requests") => "partner.receive-request.read",
        ("POST", "/v1/payment-quotes/lightning") => "partner.payment-quote.lightning.create",
        ("PATCH", p) if p.ends_with("/execute") => "partner.payment-quote.execute",
        ("GET", p) if p.starts_with("/v1/payments/") => "partner.payment.read",
        _ => return None,
    })
}

async fn strike(
    State(node): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let expected = format!("Bearer {API_KEY}");
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
        return error(401, "UNAUTHORIZED", "Unauthorized");
    }
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let path = uri.path().to_owned();
    let method = method.as_str().to_owned();
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let route = if path.ends_with("/execute") {
        "PATCH execute".to_owned()
    } else {
        format!("{method} {path}")
    };
    let hangs = {
        let mut n = node.lock().unwrap();
        n.seen.push((route.clone(), body.clone(), key));
        if let Some(scope) = scope_of(&method, &path)
            && !n.scopes.contains(&scope)
        {
            return error(403, "FORBIDDEN", "Forbidden");
        }
        route == "PATCH execute" && n.scenario == Scenario::Hang && !n.limit_pay
    };
    let answer = answer(&node, &method, &path, uri.query().unwrap_or(""), &body);
    if hangs {
        tokio::time::sleep(Duration::from_secs(30)).await;
    }
    answer
}

fn answer(node: &Shared, method: &str, path: &str, query: &str, body: &Value) -> Response {
    let mut n = node.lock().unwrap();
    let now = l402_mcp::clock::system().now();
    match (method, path) {
        ("GET", "/v1/balances") if n.limit_balance => {
            n.limit_balance = false;
            common::fixture::too_many_requests(
                json!({"data": {"status": 429, "code": "RATE_LIMIT_EXCEEDED", "message": "Too many requests."}}),
            )
        }
        ("GET", "/v1/balances") => axum::Json(json!([
            {"currency": "BTC", "current": BALANCE_BTC, "pending": "0", "outgoing": "0",
             "reserved": "0", "available": BALANCE_BTC, "total": BALANCE_BTC},
            {"currency": "USD", "current": "12.50", "pending": "0", "outgoing": "0",
             "reserved": "0", "available": "12.50", "total": "12.50"}
        ]))
        .into_response(),
        ("POST", "/v1/receive-requests") => {
            assert_eq!(body["targetCurrency"], "BTC");
            // No bolt11.amount: the payer chooses it.
            let sats = body["bolt11"].get("amount").map(sats_of);
            let expiry = body["bolt11"]["expiryInSeconds"].as_u64().unwrap_or(3600);
            let (invoice, preimage) = match sats {
                Some(sats) => common::fixture::random_invoice(Network::Regtest, sats * 1000, now),
                None => {
                    let preimage: [u8; 32] = rand::random();
                    (
                        common::fixture::amountless_invoice_for(0x74, preimage),
                        preimage,
                    )
                }
            };
            let sats = sats.unwrap_or(0);
            let hash = hex::encode(l402_mcp::l402::sha256(&preimage));
            let id = format!("3f1c2a9e-7d4b-4e21-9a0c-{:012x}", n.requests.len() + 1);
            n.requests.insert(
                id.clone(),
                (invoice.clone(), hash.clone(), sats, now + expiry),
            );
            (StatusCode::CREATED, axum::Json(json!({"receiveRequestId": id,
                "created": common::fixture::rfc3339(now), "targetCurrency": "BTC",
                "bolt11": {"invoice": invoice, "requestedAmount": btc(sats), "btcAmount": btc(sats)["amount"],
                           "description": body["bolt11"]["description"], "paymentHash": hash,
                           "expires": common::fixture::rfc3339(now + expiry)}})))
                .into_response()
        }
        ("GET", "/v1/receive-requests/receives") => {
            let hash = query.strip_prefix("$paymentHash=").unwrap_or_default();
            let items: Vec<Value> = n
                .requests
                .iter()
                .filter(|(_, (_, h, _, _))| h == hash && n.received.contains(h))
                .map(|(id, (invoice, h, sats, _))| json!({"receiveId": "8b2e4c6a", "receiveRequestId": id,
                    "type": "LIGHTNING", "state": "COMPLETED", "amountReceived": btc(*sats),
                    "amountCredited": btc(*sats), "created": common::fixture::rfc3339(now), "completed": common::fixture::rfc3339(now),
                    "lightning": {"invoice": invoice, "preimage": "00".repeat(32), "paymentHash": h}}))
                .collect();
            axum::Json(json!({"items": items, "count": items.len()})).into_response()
        }
        ("GET", p) if p.starts_with("/v1/receive-requests/") => {
            match n.requests.get(&p["/v1/receive-requests/".len()..]) {
                Some((invoice, hash, sats, expires)) => axum::Json(json!({
                    "receiveRequestId": &p["/v1/receive-requests/".len()..], "targetCurrency": "BTC",
                    "bolt11": {"invoice": invoice, "requestedAmount": btc(*sats), "paymentHash": hash,
                               "expires": common::fixture::rfc3339(*expires)}}))
                .into_response(),
                None => error(404, "NOT_FOUND", "Receive request not found."),
            }
        }
        ("POST", "/v1/payment-quotes/lightning") => {
            let bolt11 = body["lnInvoice"].as_str().unwrap_or_default();
            let Ok(decoded) = bolt11::decode(bolt11) else {
                return error(422, "INVALID_LN_INVOICE", "Invalid lightning invoice.");
            };
            assert_eq!(body["sourceCurrency"], "BTC");
            // `amount`: "Amount to send if using zero amount invoice. Must be omitted otherwise."
            let sats = match (decoded.amount_msat, body.get("amount")) {
                (Some(msat), None) => msat / 1000,
                (None, Some(amount)) => sats_of(amount),
                _ => {
                    return error(
                        400,
                        "INVALID_AMOUNT",
                        "Amount must be set for a zero amount invoice only.",
                    );
                }
            };
            let id = format!("c9a7e5d3-b1f2-4e6a-8c0d-{:012x}", n.quotes.len() + 1);
            n.quotes.insert(id.clone(), (bolt11.to_owned(), None));
            let fee = json!({"amount": n.quote_fee, "currency": n.quote_currency});
            axum::Json(
                json!({"paymentQuoteId": id, "validUntil": common::fixture::rfc3339(now + 30),
                "amount": {"amount": btc(sats)["amount"], "currency": n.quote_currency},
                "lightningNetworkFee": fee, "totalFee": fee, "totalAmount": btc(sats + 3)}),
            )
            .into_response()
        }
        ("PATCH", p) if p.ends_with("/execute") => {
            if n.limit_pay {
                n.limit_pay = false;
                return common::fixture::too_many_requests(
                    json!({"data": {"status": 429, "code": "RATE_LIMIT_EXCEEDED", "message": "Too many requests."}}),
                );
            }
            let qid = p["/v1/payment-quotes/".len()..p.len() - "/execute".len()].to_owned();
            let Some((bolt11, executed)) = n.quotes.get(&qid).cloned() else {
                return error(404, "NOT_FOUND", "Payment quote not found.");
            };
            if executed.is_some() {
                return error(
                    422,
                    "PAYMENT_PROCESSED",
                    "Payment quote has already been processed.",
                );
            }
            let hash = hex::encode(bolt11::decode(&bolt11).unwrap().payment_hash);
            let preimage = n.preimages.get(&hash).map(|p| {
                if n.wrong_preimage {
                    "11".repeat(32)
                } else {
                    hex::encode(p)
                }
            });
            let state = match n.scenario {
                Scenario::Failed => return error(422, "BALANCE_TOO_LOW", "Balance is too low."),
                Scenario::Paid | Scenario::AuthRefused | Scenario::NoPreimage => "COMPLETED",
                _ => "PENDING",
            };
            let payment = Payment {
                hash,
                bolt11,
                state,
                preimage: preimage.filter(|_| n.scenario != Scenario::NoPreimage),
                preimage_after: n.preimage_after,
            };
            let pid = format!("5e3b1d9f-7a2c-4e8b-b6d4-{:012x}", n.payments.len() + 1);
            n.quotes
                .insert(qid, (payment.bolt11.clone(), Some(pid.clone())));
            n.payments.insert(pid.clone(), payment.clone());
            let mut shown = n.payment_json(&pid, &payment);
            shown.as_object_mut().unwrap().remove("completed");
            shown["lightning"]
                .as_object_mut()
                .unwrap()
                .remove("preImage");
            match n.scenario {
                Scenario::ServerError => (StatusCode::BAD_GATEWAY, PROXY_502).into_response(),
                Scenario::NotJson => (StatusCode::OK, NOT_JSON).into_response(),
                Scenario::Hang => (StatusCode::INTERNAL_SERVER_ERROR, "too late").into_response(),
                _ => axum::Json(shown).into_response(),
            }
        }
        ("GET", p) if p.starts_with("/v1/payments/") => {
            let id = &p["/v1/payments/".len()..];
            let Some(mut payment) = n.payments.get(id).cloned() else {
                return error(404, "NOT_FOUND", "Payment not found.");
            };
            let shown = n.payment_json(id, &payment);
            if payment.state == "COMPLETED" && payment.preimage_after > 0 {
                payment.preimage_after -= 1;
                n.payments.insert(id.to_owned(), payment);
            }
            axum::Json(shown).into_response()
        }
        ("GET", p) if p.starts_with("/v1/payment-quotes/") && n.quote_lookup => {
            match n.quotes.get(&p["/v1/payment-quotes/".len()..]) {
                Some((_, executed)) => {
                    let state = executed
                        .as_ref()
                        .and_then(|id| n.payments.get(id))
                        .map(|p| p.state);
                    axum::Json(json!({"paymentQuoteId": &p["/v1/payment-quotes/".len()..],
                        "paymentId": executed, "state": state, "amount": btc(21)}))
                    .into_response()
                }
                None => error(404, "NOT_FOUND", "Payment quote not found."),
            }
        }
        _ => error(404, "NOT_FOUND", "Not found."),
    }
}

pub struct Fixture {
    node: Shared,
    url: String,
    config: StrikeConfig,
}

impl Fixture {
    async fn start_with(scenario: Scenario, timeout: u64) -> Fixture {
        let node: Shared = Arc::new(Mutex::new(Node {
            scenario,
            scopes: ALL_SCOPES.to_vec(),
            preimages: HashMap::new(),
            quotes: HashMap::new(),
            payments: HashMap::new(),
            requests: HashMap::new(),
            received: Vec::new(),
            seen: Vec::new(),
            quote_fee: FEE,
            quote_currency: "BTC",
            preimage_after: 0,
            wrong_preimage: false,
            quote_lookup: true,
            limit_balance: false,
            limit_pay: false,
        }));
        let app = Router::new().fallback(strike).with_state(node.clone());
        let url = common::fixture::serve(app).await;
        Fixture {
            node,
            config: StrikeConfig {
                url: url.clone(),
                api_key: SecretString::new(API_KEY),
                network: Some(Network::Regtest),
                timeout_secs: Some(timeout),
                returns_preimages: None,
            },
            url,
        }
    }

    fn set(&self, f: impl FnOnce(&mut Node)) {
        f(&mut self.node.lock().unwrap());
    }

    fn seen(&self, route: &str) -> Vec<(Value, Option<String>)> {
        let n = self.node.lock().unwrap();
        n.seen
            .iter()
            .filter(|(r, _, _)| r == route)
            .map(|(_, b, k)| (b.clone(), k.clone()))
            .collect()
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("L402_MCP_BACKEND", "strike".into()),
            ("L402_MCP_STRIKE_URL", self.url.clone()),
            ("L402_MCP_STRIKE_API_KEY", API_KEY.into()),
            ("L402_MCP_NETWORK", "regtest".into()),
        ]
    }
}

#[async_trait]
impl BackendFixture for Fixture {
    const FEE_MSAT: u64 = FEE_MSAT;
    const FAILURE_REASON: &'static str = "Balance is too low";
    const CREDENTIAL: &'static str = "API key";
    const BALANCE_MSAT: u64 = BALANCE_MSAT;

    async fn start(scenario: Scenario) -> Fixture {
        let mut f = Fixture::start_with(scenario, timeout_secs(scenario)).await;
        if scenario == Scenario::AuthRefused {
            f.config.api_key = SecretString::new("0".repeat(64));
        }
        f
    }

    async fn wallet(&self) -> Arc<dyn Wallet> {
        crate::suite::open(BackendConfig::Strike(self.config.clone())).await
    }

    async fn invoice(&self, seed: u8) -> TestInvoice {
        TestInvoice::regtest(0x73, seed).known_to(&mut self.node.lock().unwrap().preimages)
    }

    async fn settle(&self, invoice: &TestInvoice) {
        self.set(|n| {
            for p in n.payments.values_mut() {
                if p.hash == invoice.hash.to_hex() {
                    p.state = "COMPLETED";
                    p.preimage = Some(invoice.preimage.to_hex());
                }
            }
        });
    }

    fn pay_normally(&self) -> bool {
        self.set(|n| n.scenario = Scenario::Paid);
        true
    }

    async fn pay_calls(&self) -> usize {
        self.node.lock().unwrap().calls("PATCH execute")
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
        self.set(|n| n.received.push(payment_hash.to_hex()));
    }
}

fn scope() -> CredentialScope {
    CredentialScope {
        origin: "https://seller.example".into(),
        path_prefix: "/".into(),
        scheme: l402_mcp::l402::Scheme::L402,
        macaroon: vec![1, 2, 3],
        expires_at: None,
    }
}

#[async_trait]
impl SessionFixture for Fixture {
    async fn amountless_invoice(&self, seed: u8) -> TestInvoice {
        TestInvoice::regtest_amountless(0x73, seed)
            .known_to(&mut self.node.lock().unwrap().preimages)
    }

    async fn amount_sent_msat(&self) -> Option<u64> {
        let (quote, _) = self.seen("POST /v1/payment-quotes/lightning").pop()?;
        quote.get("amount").map(|a| sats_of(a) * 1000)
    }

    async fn invoice_request_had_amount(&self) -> bool {
        let (receive, _) = self.seen("POST /v1/receive-requests").pop().unwrap();
        receive["bolt11"].get("amount").is_some()
    }
}

/// What a refund sends: a payment quote with `amount` in BTC beside the invoice (with an
/// idempotency key, as always), then its execution; a return invoice is a receive request
/// without `bolt11.amount`.
#[tokio::test]
async fn amountless_requests_follow_the_api_reference() {
    let f = Fixture::start(Scenario::Paid).await;
    let inv = crate::sessions::refund_and_return_invoice(&f).await;
    let (quote, key) = f.seen("POST /v1/payment-quotes/lightning").remove(0);
    assert_eq!(
        quote,
        json!({"lnInvoice": inv.bolt11, "sourceCurrency": "BTC",
               "amount": {"amount": "0.00000007", "currency": "BTC"}})
    );
    assert!(key.is_some(), "an idempotency key");
    assert_eq!(f.pay_calls().await, 1);
    let (receive, _) = f.seen("POST /v1/receive-requests").remove(0);
    assert_eq!(
        receive,
        json!({"targetCurrency": "BTC", "bolt11": {"expiryInSeconds": 600, "description": "a refund"}})
    );
}

#[tokio::test]
async fn requests_are_as_strike_documents_them() {
    let f = Fixture::start(Scenario::Paid).await;
    let w = f.wallet().await;
    w.create_invoice(&InvoiceRequest {
        amount_msat: 2_100_000,
        description: "x".repeat(300),
        expiry_secs: 600,
    })
    .await
    .unwrap();
    let b = Buyer::on(w).await;
    let inv = f.invoice(0x31).await;
    b.pay(&inv.bolt11).await.unwrap();

    let (receive, _) = f.seen("POST /v1/receive-requests").remove(0);
    assert_eq!(
        receive["bolt11"]["amount"],
        json!({"amount": "0.00002100", "currency": "BTC"})
    );
    assert_eq!(receive["bolt11"]["expiryInSeconds"], 600);
    assert_eq!(
        receive["bolt11"]["description"].as_str().unwrap().len(),
        250
    );
    assert_eq!(receive["targetCurrency"], "BTC", "received as bitcoin");
    let (quote, key) = f.seen("POST /v1/payment-quotes/lightning").remove(0);
    assert_eq!(
        quote,
        json!({"lnInvoice": inv.bolt11, "sourceCurrency": "BTC"})
    );
    assert_eq!(key.map(|k| k.len()), Some(36), "an idempotency key");
    assert_eq!(f.seen("PATCH execute").len(), 1);
}

#[tokio::test]
async fn a_key_that_may_not_pay_is_refused_before_anything_moves() {
    let f = Fixture::start(Scenario::Paid).await;
    f.set(|n| {
        n.scopes = vec![
            "partner.balances.read",
            "partner.receive-request.create",
            "partner.receive-request.read",
        ]
    });
    let b = Buyer::on(f.wallet().await).await;
    let inv = f.invoice(0x32).await;
    match b.pay(&inv.bolt11).await {
        Err(PayError::Failed(e @ WalletError::NotPayable(_))) => assert!(
            e.to_string()
                .contains("lacks the scope partner.payment-quote.lightning.create"),
            "{e}"
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(f.pay_calls().await, 0);
    let access = b.wallet.access().await;
    let pay = access.iter().find(|a| a.check == "pay").unwrap();
    assert_eq!(pay.level, Level::Warn);
    assert!(
        pay.detail.contains("partner.payment-quote.execute"),
        "{pay:?}"
    );
}

#[tokio::test]
async fn a_quote_above_the_fee_limit_or_not_in_btc_is_never_executed() {
    let f = Fixture::start(Scenario::Paid).await;
    f.set(|n| n.quote_fee = "0.00000500");
    let b = Buyer::on(f.wallet().await).await;
    let inv = f.invoice(0x33).await;
    match b.pay(&inv.bolt11).await {
        Err(PayError::Failed(WalletError::Rejected(m))) => assert!(m.contains("fee limit"), "{m}"),
        other => panic!("{other:?}"),
    }
    f.set(|n| {
        n.quote_fee = FEE;
        n.quote_currency = "USD";
    });
    match b.pay(&inv.bolt11).await {
        Err(PayError::Failed(WalletError::Rejected(m))) => {
            assert!(m.contains("USD") && m.contains("BTC balance"), "{m}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(f.pay_calls().await, 0);
    assert_eq!(b.totals().await, (0, 0));
}

#[tokio::test]
async fn a_payment_without_preimage_turns_l402_buying_off() {
    let f = Fixture::start(Scenario::NoPreimage).await;
    let b = Buyer::on(f.wallet().await).await;
    assert!(!b.wallet.withholds_preimages());
    let inv = f.invoice(0x34).await;
    assert!(matches!(
        b.pay(&inv.bolt11).await,
        Err(PayError::NoPreimage { .. })
    ));
    assert!(b.wallet.withholds_preimages());
    assert!(!b.wallet.info().await.unwrap().returns_preimages);
    let next = f.invoice(0x35).await;
    let l402 = b
        .payer
        .pay(&PayRequest {
            invoice: &next.bolt11,
            credential: Some(&scope()),
            ..Default::default()
        })
        .await;
    assert!(matches!(l402, Err(PayError::PreimagesWithheld)), "{l402:?}");
    assert_eq!(f.pay_calls().await, 1, "refused before anything was sent");

    // Configured so, it is refused from the start.
    let mut config = f.config.clone();
    config.returns_preimages = Some(false);
    let w = crate::suite::open(BackendConfig::Strike(config)).await;
    assert!(w.withholds_preimages());
}

#[tokio::test]
async fn a_preimage_is_taken_only_when_it_is_the_invoices() {
    let f = Fixture::start(Scenario::Paid).await;
    f.set(|n| n.wrong_preimage = true);
    let b = Buyer::on(f.wallet().await).await;
    let inv = f.invoice(0x36).await;
    assert!(matches!(
        b.pay(&inv.bolt11).await,
        Err(PayError::NoPreimage { .. })
    ));
    assert!(b.wallet.withholds_preimages());
}

#[tokio::test]
async fn a_preimage_strike_adds_a_moment_later_is_waited_for() {
    let f = Fixture::start(Scenario::Paid).await;
    f.set(|n| n.preimage_after = 2);
    let b = Buyer::on(f.wallet().await).await;
    let inv = f.invoice(0x37).await;
    let receipt = b.pay(&inv.bolt11).await.unwrap();
    assert_eq!(receipt.preimage, inv.preimage);
    assert!(!b.wallet.withholds_preimages());
}

/// Without the quote lookup, a payment whose execution answer was lost stays in flight: never
/// called failed (it may have gone through).
#[tokio::test]
async fn a_lost_execution_is_never_taken_for_not_paid() {
    let f = Fixture::start(Scenario::ServerError).await;
    f.set(|n| n.quote_lookup = false);
    let b = Buyer::on(f.wallet().await).await;
    let inv = f.invoice(0x38).await;
    assert!(matches!(
        b.pay(&inv.bolt11).await,
        Err(PayError::OutcomeUnknown { .. })
    ));
    assert_eq!(
        b.wallet.lookup_outgoing(&inv.hash).await,
        Ok(OutgoingStatus::InFlight)
    );
    b.clock.advance(3600);
    assert_eq!(b.payer.reconcile().await.unwrap().still_pending, 1);
}

#[tokio::test]
async fn an_invoice_past_its_expiry_is_expired() {
    let f = Fixture::start(Scenario::Paid).await;
    let w = f.wallet().await;
    let created = w
        .create_invoice(&InvoiceRequest {
            amount_msat: 21_000,
            description: String::new(),
            expiry_secs: 600,
        })
        .await
        .unwrap();
    assert_eq!(
        w.lookup_incoming(&created.payment_hash).await,
        Ok(IncomingStatus::Pending)
    );
    f.set(|n| {
        for r in n.requests.values_mut() {
            r.3 = 1_000_000_000;
        }
    });
    assert_eq!(
        w.lookup_incoming(&created.payment_hash).await,
        Ok(IncomingStatus::Expired)
    );
}

#[test]
fn the_documented_config_is_read() {
    match crate::suite::documented_backend(include_str!("../../docs/wallets/strike.md")) {
        BackendConfig::Strike(c) => assert_eq!(c.url, "https://api.strike.me"),
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
    let env = f.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (bolt11, preimage) = fresh();
    e2e::through_mcp(
        "strike",
        &env,
        API_KEY,
        BALANCE_MSAT / 1000,
        &bolt11,
        Pays::Yes {
            preimage: hex::encode(preimage),
            fee_msat: FEE_MSAT,
        },
    )
    .await;

    let (again, _) = fresh();
    let (balance, invoice, paid, text) = e2e::through_cli(&env, API_KEY, &again).await;
    assert_eq!(balance["balance_msat"], BALANCE_MSAT);
    assert_eq!(invoice["amount_sats"], 21);
    assert!(paid, "{text}");

    let (passed, text) = e2e::doctor(&env, API_KEY).await;
    assert!(passed && text.contains("the key may pay"), "{text}");
    e2e::doctor_refuses(&env, (1, 2), &"f".repeat(64), "Strike").await;
    // A seller's key: doctor passes, and says it cannot pay.
    f.set(|n| {
        n.scopes = vec![
            "partner.balances.read",
            "partner.receive-request.create",
            "partner.receive-request.read",
        ]
    });
    let (passed, text) = e2e::doctor(&env, API_KEY).await;
    assert!(passed && text.contains("it cannot pay"), "{text}");
    // A key that cannot see its invoices paid: doctor fails.
    f.set(|n| n.scopes = vec!["partner.balances.read", "partner.receive-request.create"]);
    let (passed, text) = e2e::doctor(&env, API_KEY).await;
    assert!(!passed && text.contains("never seen paid"), "{text}");
}
