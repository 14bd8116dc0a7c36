//! ln.bot: its stand-in for the contract (suite.rs), and its own tests.
//!
//! ln.bot cannot be reached from here, so a loopback server REPLAYS its wallet API as its SDKs
//! (PyPI and crates `lnbot` 1.2.0: `client`, `types`, `errors`; the TypeScript SDK's types and
//! integration test) and API docs (ln.bot/docs) describe it: `Authorization: Bearer wk_...`,
//! `/v1/wallets/current` and `/v1/wallets/{walletId}/...`, camelCase JSON, amounts in sats,
//! RFC 3339 dates, invoices without a payment hash (the BOLT11 has it) looked up by number or
//! hash, asynchronous payments (`pending`, `processing`, `settled` with `preimage`,
//! `actualFee`, `serviceFee`; `failed` with `failureReason`), `payments/resolve` pricing a
//! payment, errors as `{"message"}`. Not verified in those sources, and replayed as the notes
//! guess them: that `preimage` is filled for external payments, the exact error bodies and
//! codes, a 429's `Retry-After` on authenticated routes, and that a wallet key works on
//! `/v1/wallets/{walletId}/...` paths.

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
use l402_mcp::pay::PayError;
use l402_mcp::wallet::lnbot::LnbotConfig;
use l402_mcp::wallet::{BackendConfig, IncomingStatus, InvoiceRequest, Level, Wallet, WalletError};
use serde_json::{Value, json};

use crate::common;
use crate::common::buyer::Buyer;
use crate::e2e::{self, Pays};
use crate::suite::{BackendFixture, NOT_JSON, PROXY_502, Scenario, TestInvoice, timeout_secs};

const WALLET_KEY: &str = "wk_7Hq2Lm9Xp4Rt8Vw1Zc6Nb3Kd5Fg0Js2Ya";
const WALLET_ID: &str = "wal_c7i0hnuoxxupuwej";
/// `available` (balance less what is on hold), in sats.
const AVAILABLE_SATS: u64 = 12_300;
const ACTUAL_FEE_SATS: u64 = 2;
const SERVICE_FEE_SATS: u64 = 1;

#[derive(Clone)]
struct Paying {
    number: u64,
    bolt11: String,
    status: &'static str,
    preimage: Option<String>,
    failure: Option<&'static str>,
}

struct Node {
    scenario: Scenario,
    preimages: HashMap<String, [u8; 32]>,
    /// Payments by hash (the latest attempt).
    payments: HashMap<String, Paying>,
    /// Invoices by hash: (number, bolt11, sats, status, expires).
    invoices: HashMap<String, (u64, String, u64, &'static str, u64)>,
    seen: Vec<(String, Value)>,
    estimate_sats: u64,
    limit_balance: bool,
    limit_pay: bool,
}

type Shared = Arc<Mutex<Node>>;

impl Node {
    fn calls(&self, route: &str) -> usize {
        self.seen.iter().filter(|(r, _)| r == route).count()
    }

    fn payment_json(&self, p: &Paying) -> Value {
        let settled = p.status == "settled";
        json!({"number": p.number, "status": p.status, "amount": 21, "maxFee": 20,
            "serviceFee": SERVICE_FEE_SATS, "actualFee": if settled { Some(ACTUAL_FEE_SATS) } else { None },
            "address": p.bolt11, "reference": "l402-mcp", "preimage": p.preimage.as_ref().filter(|_| settled),
            "txNumber": if settled { Some(88) } else { None }, "failureReason": p.failure,
            "createdAt": common::fixture::rfc3339(1_800_000_000), "settledAt": if settled { Some(common::fixture::rfc3339(1_800_000_002)) } else { None },
            "stage": p.status, "statusDetail": null, "retryUntil": null})
    }
}

fn error(status: u16, message: &str) -> Response {
    (
        StatusCode::from_u16(status).unwrap(),
        axum::Json(json!({"message": message})),
    )
        .into_response()
}

async fn lnbot(
    State(node): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let expected = format!("Bearer {WALLET_KEY}");
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
        return error(401, "Unauthorized");
    }
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let path = uri.path().to_owned();
    let wallet = format!("/v1/wallets/{WALLET_ID}");
    let tail = path.strip_prefix(&wallet).map(str::to_owned);
    let route = format!("{method} {}", tail.as_deref().unwrap_or(&path));
    let hangs = {
        let mut n = node.lock().unwrap();
        let named = if route.starts_with("GET /payments/") && !route.contains("resolve") {
            "GET /payments/{hash}".to_owned()
        } else {
            route.clone()
        };
        n.seen.push((named, body.clone()));
        route == "POST /payments" && n.scenario == Scenario::Hang && !n.limit_pay
    };
    let answer = answer(&node, &route, uri.query().unwrap_or(""), &body);
    if hangs {
        tokio::time::sleep(Duration::from_secs(30)).await;
    }
    answer
}

fn answer(node: &Shared, route: &str, query: &str, body: &Value) -> Response {
    let mut n = node.lock().unwrap();
    let now = l402_mcp::clock::system().now();
    let wallet = || {
        axum::Json(
            json!({"walletId": WALLET_ID, "name": "my-agent", "balance": AVAILABLE_SATS + 200,
            "onHold": 200, "available": AVAILABLE_SATS}),
        )
        .into_response()
    };
    match route {
        "GET /v1/wallets/current" => wallet(),
        "GET " if n.limit_balance => {
            n.limit_balance = false;
            common::fixture::too_many_requests(json!({"message": "Too many requests"}))
        }
        "GET " => wallet(),
        "POST /invoices" => {
            let sats = body["amount"].as_u64().unwrap();
            let (bolt11, preimage) =
                common::fixture::random_invoice(Network::Regtest, sats * 1000, now);
            let hash = hex::encode(l402_mcp::l402::sha256(&preimage));
            let number = n.invoices.len() as u64 + 17;
            n.invoices
                .insert(hash, (number, bolt11.clone(), sats, "pending", now + 3600));
            axum::Json(json!({"number": number, "status": "pending", "amount": sats, "bolt11": bolt11,
                "reference": null, "memo": body["memo"], "preimage": null, "txNumber": null,
                "createdAt": common::fixture::rfc3339(now), "settledAt": null, "expiresAt": common::fixture::rfc3339(now + 3600)}))
            .into_response()
        }
        r if r.starts_with("GET /invoices/") => match n.invoices.get(&r["GET /invoices/".len()..]) {
            Some((number, bolt11, sats, status, expires)) => {
                axum::Json(json!({"number": number, "status": status, "amount": sats, "bolt11": bolt11,
                    "expiresAt": common::fixture::rfc3339(*expires), "createdAt": common::fixture::rfc3339(now)}))
                .into_response()
            }
            None => error(404, "Invoice not found."),
        },
        "GET /payments/resolve" => {
            let target = url::form_urlencoded::parse(query.as_bytes())
                .find(|(k, _)| k == "target")
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default();
            let Ok(decoded) = bolt11::decode(&target) else {
                return error(400, "Could not resolve target.");
            };
            let sats = decoded.amount_msat.unwrap() / 1000;
            axum::Json(json!({"type": "bolt11", "amount": sats, "fixed": true, "internal": false,
                "networkFeeEstimate": n.estimate_sats, "serviceFee": SERVICE_FEE_SATS, "maxFee": 20,
                "total": sats + n.estimate_sats + SERVICE_FEE_SATS, "feeWarning": null}))
            .into_response()
        }
        "POST /payments" => {
            if n.limit_pay {
                n.limit_pay = false;
                return common::fixture::too_many_requests(json!({"message": "Too many requests"}));
            }
            let bolt11 = body["target"].as_str().unwrap_or_default().to_owned();
            let hash = hex::encode(bolt11::decode(&bolt11).unwrap().payment_hash);
            let preimage = n.preimages.get(&hash).map(hex::encode);
            let (status, failure) = match n.scenario {
                Scenario::Paid | Scenario::AuthRefused | Scenario::NoPreimage => ("settled", None),
                Scenario::Failed => ("failed", Some("No route found to the destination.")),
                Scenario::PendingThenSettled => ("processing", None),
                _ => ("pending", None),
            };
            let paying = Paying {
                number: n.payments.len() as u64 + 42,
                bolt11,
                status,
                preimage: preimage.filter(|_| n.scenario != Scenario::NoPreimage),
                failure,
            };
            n.payments.insert(hash, paying.clone());
            // Asynchronous: the answer comes before the payment is made.
            let mut shown = n.payment_json(&paying);
            for k in ["status", "stage"] {
                shown[k] = json!("pending");
            }
            for k in ["preimage", "actualFee", "failureReason", "settledAt", "txNumber"] {
                shown[k] = Value::Null;
            }
            match n.scenario {
                Scenario::ServerError => (StatusCode::BAD_GATEWAY, PROXY_502).into_response(),
                Scenario::NotJson => (StatusCode::OK, NOT_JSON).into_response(),
                Scenario::Hang => (StatusCode::INTERNAL_SERVER_ERROR, "too late").into_response(),
                _ => (StatusCode::CREATED, axum::Json(shown)).into_response(),
            }
        }
        r if r.starts_with("GET /payments/") => match n.payments.get(&r["GET /payments/".len()..]) {
            Some(p) => axum::Json(n.payment_json(p)).into_response(),
            None => error(404, "Payment not found."),
        },
        _ => error(404, "Not found."),
    }
}

pub struct Fixture {
    node: Shared,
    url: String,
    config: LnbotConfig,
}

impl Fixture {
    fn set(&self, f: impl FnOnce(&mut Node)) {
        f(&mut self.node.lock().unwrap());
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("L402_MCP_BACKEND", "lnbot".into()),
            ("L402_MCP_LNBOT_URL", self.url.clone()),
            ("L402_MCP_LNBOT_API_KEY", WALLET_KEY.into()),
            ("L402_MCP_NETWORK", "regtest".into()),
        ]
    }
}

#[async_trait]
impl BackendFixture for Fixture {
    const FEE_MSAT: u64 = (ACTUAL_FEE_SATS + SERVICE_FEE_SATS) * 1000;
    const FAILURE_REASON: &'static str = "No route found";
    const CREDENTIAL: &'static str = "API key";
    const BALANCE_MSAT: u64 = AVAILABLE_SATS * 1000;

    async fn start(scenario: Scenario) -> Fixture {
        let node: Shared = Arc::new(Mutex::new(Node {
            scenario,
            preimages: HashMap::new(),
            payments: HashMap::new(),
            invoices: HashMap::new(),
            seen: Vec::new(),
            estimate_sats: ACTUAL_FEE_SATS,
            limit_balance: false,
            limit_pay: false,
        }));
        let app = Router::new().fallback(lnbot).with_state(node.clone());
        let url = common::fixture::serve(app).await;
        let key = if scenario == Scenario::AuthRefused {
            "wk_revokedrevokedrevokedrevoked0"
        } else {
            WALLET_KEY
        };
        Fixture {
            node,
            config: LnbotConfig {
                url: url.clone(),
                api_key: SecretString::new(key),
                wallet_id: None,
                network: Some(Network::Regtest),
                timeout_secs: Some(timeout_secs(scenario)),
                returns_preimages: None,
            },
            url,
        }
    }

    async fn wallet(&self) -> Arc<dyn Wallet> {
        crate::suite::open(BackendConfig::Lnbot(self.config.clone())).await
    }

    async fn invoice(&self, seed: u8) -> TestInvoice {
        TestInvoice::regtest(0x6c, seed).known_to(&mut self.node.lock().unwrap().preimages)
    }

    async fn settle(&self, invoice: &TestInvoice) {
        self.set(|n| {
            if let Some(p) = n.payments.get_mut(&invoice.hash.to_hex()) {
                p.status = "settled";
                p.preimage = Some(invoice.preimage.to_hex());
            }
        });
    }

    fn pay_normally(&self) -> bool {
        self.set(|n| n.scenario = Scenario::Paid);
        true
    }

    async fn pay_calls(&self) -> usize {
        self.node.lock().unwrap().calls("POST /payments")
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
                inv.3 = "settled";
            }
        });
    }
}

#[tokio::test]
async fn requests_are_as_lnbot_documents_them() {
    let f = Fixture::start(Scenario::Paid).await;
    let b = Buyer::on(f.wallet().await).await;
    let inv = f.invoice(0x41).await;
    b.pay(&inv.bolt11).await.unwrap();
    let n = f.node.lock().unwrap();
    let (_, pay) = n.seen.iter().find(|(r, _)| r == "POST /payments").unwrap();
    assert_eq!(pay["target"], inv.bolt11.as_str());
    // The budget's fee limit (10 sats) less ln.bot's service fee (1 sat): 9 sats of routing.
    assert_eq!(pay["maxFee"], 9, "sats, the service fee counted in");
    assert!(
        pay["idempotencyKey"]
            .as_str()
            .unwrap()
            .starts_with("l402mcp-")
    );
    assert!(pay.get("amount").is_none(), "the invoice's own amount");
    let routes: Vec<&str> = n.seen.iter().map(|(r, _)| r.as_str()).collect();
    assert_eq!(
        routes[0], "GET /v1/wallets/current",
        "the wallet key's wallet"
    );
    let resolve = routes
        .iter()
        .position(|r| *r == "GET /payments/resolve")
        .unwrap();
    let pay = routes.iter().position(|r| *r == "POST /payments").unwrap();
    assert!(resolve < pay, "priced before paying: {routes:?}");
}

#[tokio::test]
async fn fees_that_do_not_fit_the_limit_are_refused_before_paying() {
    let f = Fixture::start(Scenario::Paid).await;
    f.set(|n| n.estimate_sats = 15);
    let b = Buyer::on(f.wallet().await).await;
    let inv = f.invoice(0x42).await;
    match b.pay(&inv.bolt11).await {
        Err(PayError::Failed(WalletError::Rejected(m))) => assert!(m.contains("fee limit"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(f.pay_calls().await, 0);
}

#[tokio::test]
async fn a_user_key_needs_a_wallet_and_doctor_warns_about_keys() {
    let f = Fixture::start(Scenario::Paid).await;
    let mut config = f.config.clone();
    config.api_key = SecretString::new("uk_accountwideaccountwide000");
    let e = l402_mcp::wallet::open_remote(
        &BackendConfig::Lnbot(config),
        crate::common::refs::in_memory(),
    )
    .await
    .unwrap_err();
    assert!(
        e.to_string().contains("wk_") && !e.to_string().contains("accountwide"),
        "{e}"
    );
    let access = f.wallet().await.access().await;
    let key = access.iter().find(|a| a.check == "key").unwrap();
    assert_eq!(key.level, Level::Warn);
    assert!(key.detail.contains("no read-only"), "{key:?}");
}

#[tokio::test]
async fn an_invoice_just_expired_may_still_settle() {
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
    let now = l402_mcp::clock::system().now();
    let expire = |at: u64| {
        f.set(|n| {
            let inv = n.invoices.get_mut(&created.payment_hash.to_hex()).unwrap();
            inv.3 = "expired";
            inv.4 = at;
        })
    };
    expire(now - 10);
    assert_eq!(
        w.lookup_incoming(&created.payment_hash).await,
        Ok(IncomingStatus::Pending),
        "a moment after its expiry it may still turn settled"
    );
    expire(now - 3600);
    assert_eq!(
        w.lookup_incoming(&created.payment_hash).await,
        Ok(IncomingStatus::Expired)
    );
}

#[tokio::test]
async fn a_payment_without_preimage_turns_l402_buying_off() {
    let f = Fixture::start(Scenario::NoPreimage).await;
    let b = Buyer::on(f.wallet().await).await;
    let inv = f.invoice(0x43).await;
    assert!(matches!(
        b.pay(&inv.bolt11).await,
        Err(PayError::NoPreimage { .. })
    ));
    assert!(b.wallet.withholds_preimages());
}

#[test]
fn the_documented_config_is_read() {
    match crate::suite::documented_backend(include_str!("../../docs/wallets/lnbot.md")) {
        BackendConfig::Lnbot(c) => assert_eq!(c.url, "https://api.ln.bot"),
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
        "lnbot",
        &env,
        WALLET_KEY,
        AVAILABLE_SATS,
        &bolt11,
        Pays::Yes {
            preimage: hex::encode(preimage),
            fee_msat: Fixture::FEE_MSAT,
        },
    )
    .await;

    let (again, _) = fresh();
    let (balance, invoice, paid, text) = e2e::through_cli(&env, WALLET_KEY, &again).await;
    assert_eq!(balance["balance_msat"], AVAILABLE_SATS * 1000);
    assert_eq!(invoice["amount_sats"], 21);
    assert!(paid, "{text}");

    let (passed, text) = e2e::doctor(&env, WALLET_KEY).await;
    assert!(passed && text.contains("no read-only"), "{text}");
    e2e::doctor_refuses(&env, (1, 2), "wk_notakeynotakeynotakey00000", "ln.bot").await;
}
