//! OpenNode: its stand-in for the contract (suite.rs; a seller's backend, it plays the selling,
//! refusing and rate-limit scenarios), and its own tests.
//!
//! OpenNode cannot be reached from here, so a loopback server REPLAYS its REST API as its docs
//! (developers.opennode.com: authorization, creating a charge, charge webhooks) and its official
//! SDK (npm `opennode` 1.5.0: `src/client.ts`, `src/types/v1.ts`) document it: `Authorization:
//! <key>` without a scheme, answers wrapped in `{"data": ...}`, `POST /v1/charges` answering the
//! charge with `lightning_invoice.payreq` and no payment hash, `GET /v1/charge/{id}` with
//! `status` unpaid / paid / expired, `GET /v1/account/balance`. Not verified in those sources,
//! and replayed as the notes guess them: HTTP codes per error (401 for a bad key, 404 for an
//! unknown charge), the balance's `BTC` in sats, rate limits and `Retry-After`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use l402_mcp::bolt11::Network;
use l402_mcp::clock::{ManualClock, SharedClock};
use l402_mcp::config::SecretString;
use l402_mcp::l402::PaymentHash;
use l402_mcp::wallet::opennode::OpennodeConfig;
use l402_mcp::wallet::{BackendConfig, IncomingStatus, InvoiceRequest, Wallet};
use serde_json::{Value, json};

use crate::common;
use crate::e2e::{self, Pays};
use crate::suite::{BackendFixture, Scenario, TestInvoice};

const API_KEY: &str = "3c9d7a1e-5b2f-4c8d-9e0a-1f2b3c4d5e6f";
const BALANCE_SATS: u64 = 125_430;

#[derive(Default)]
struct Node {
    /// Charges by id.
    charges: HashMap<String, Value>,
    /// Requests seen: "METHOD /path" and the body.
    seen: Vec<(String, Value)>,
    limit_balance: bool,
    limit_create: bool,
}

type Shared = Arc<Mutex<Node>>;

impl Node {
    fn calls(&self, what: &str) -> usize {
        self.seen.iter().filter(|(s, _)| s == what).count()
    }
}

fn error(status: u16, message: &str) -> Response {
    (
        StatusCode::from_u16(status).unwrap(),
        axum::Json(json!({"success": false, "message": message})),
    )
        .into_response()
}

async fn opennode(
    State(node): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(API_KEY) {
        return error(401, "Failed to authenticate token");
    }
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let path = uri.path().to_owned();
    let mut n = node.lock().unwrap();
    let route = format!("{method} {path}");
    n.seen.push((
        if path.starts_with("/v1/charge/") {
            "GET /v1/charge".into()
        } else {
            route.clone()
        },
        body.clone(),
    ));
    match route.as_str() {
        "GET /v1/account/balance" if n.limit_balance => {
            n.limit_balance = false;
            common::fixture::too_many_requests(
                json!({"success": false, "message": "Too many requests"}),
            )
        }
        "GET /v1/account/balance" => {
            axum::Json(json!({"data": {"balance": {"BTC": BALANCE_SATS, "USD": 93.12}}}))
                .into_response()
        }
        "POST /v1/charges" if n.limit_create => {
            n.limit_create = false;
            common::fixture::too_many_requests(
                json!({"success": false, "message": "Too many requests"}),
            )
        }
        "POST /v1/charges" => {
            let sats = body["amount"].as_u64().unwrap();
            let now = l402_mcp::clock::system().now();
            let (bolt11, _) = common::fixture::random_invoice(Network::Regtest, sats * 1000, now);
            let id = format!("b7f1e2d3-c4a5-4b6c-8d7e-{:012x}", n.charges.len() + 1);
            let charge = json!({"id": id, "description": body["description"], "amount": sats,
                "status": "unpaid", "fiat_value": 1.98, "source_fiat_value": 1.98, "currency": "USD",
                "created_at": now, "order_id": null, "auto_settle": false, "ttl": body["ttl"],
                "address": "bcrt1qxy2kgdygjrsqtzq2n0yrf2493p83kkfjhx0wlh",
                "lightning_invoice": {"expires_at": now + 600, "payreq": bolt11}});
            n.charges.insert(id, charge.clone());
            (StatusCode::CREATED, axum::Json(json!({"data": charge}))).into_response()
        }
        _ if route.starts_with("GET /v1/charge/") => {
            match n.charges.get(&path["/v1/charge/".len()..]) {
                Some(c) => axum::Json(json!({"data": c})).into_response(),
                None => error(404, "Charge not found"),
            }
        }
        // Withdrawals exist, but this backend must never reach them.
        "POST /v2/withdrawals" | "POST /v1/withdrawals" => {
            error(500, "the stand-in does not withdraw")
        }
        _ => error(404, "Not found"),
    }
}

pub struct Fixture {
    node: Shared,
    url: String,
    config: OpennodeConfig,
}

impl Fixture {
    fn set(&self, f: impl FnOnce(&mut Node)) {
        f(&mut self.node.lock().unwrap());
    }

    /// Mark the charge of the invoice `payment_hash` with this status.
    fn charge_status(&self, payment_hash: &PaymentHash, status: &str) {
        self.set(|n| {
            for c in n.charges.values_mut() {
                let payreq = c["lightning_invoice"]["payreq"].as_str().unwrap();
                if l402_mcp::bolt11::decode(payreq).unwrap().payment_hash == *payment_hash {
                    c["status"] = json!(status);
                }
            }
        });
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("L402_MCP_BACKEND", "opennode".into()),
            ("L402_MCP_OPENNODE_URL", self.url.clone()),
            ("L402_MCP_OPENNODE_API_KEY", API_KEY.into()),
            ("L402_MCP_NETWORK", "regtest".into()),
        ]
    }
}

#[async_trait]
impl BackendFixture for Fixture {
    const FEE_MSAT: u64 = 0;
    const FAILURE_REASON: &'static str = "seller's backend";
    const CREDENTIAL: &'static str = "API key";
    const PAYS: bool = false;
    const BALANCE_MSAT: u64 = BALANCE_SATS * 1000;

    async fn start(scenario: Scenario) -> Fixture {
        let node: Shared = Arc::default();
        let app = Router::new().fallback(opennode).with_state(node.clone());
        let url = common::fixture::serve(app).await;
        let key = if scenario == Scenario::AuthRefused {
            "ffffffff-ffff-4fff-8fff-ffffffffffff"
        } else {
            API_KEY
        };
        Fixture {
            node,
            config: OpennodeConfig {
                url: url.clone(),
                api_key: SecretString::new(key),
                network: Some(Network::Regtest),
                timeout_secs: Some(5),
            },
            url,
        }
    }

    async fn wallet(&self) -> Arc<dyn Wallet> {
        crate::suite::open(BackendConfig::Opennode(self.config.clone())).await
    }

    async fn invoice(&self, seed: u8) -> TestInvoice {
        TestInvoice::regtest(0x6f, seed)
    }

    async fn settle(&self, _invoice: &TestInvoice) {
        panic!("OpenNode never pays")
    }

    fn pay_normally(&self) -> bool {
        false
    }

    async fn pay_calls(&self) -> usize {
        let n = self.node.lock().unwrap();
        n.calls("POST /v2/withdrawals") + n.calls("POST /v1/withdrawals")
    }

    fn secret(&self) -> String {
        self.config.api_key.expose().to_owned()
    }

    fn rate_limit_next(&self) {
        self.set(|n| {
            n.limit_balance = true;
            n.limit_create = true;
        });
    }

    async fn settle_incoming(&self, payment_hash: &PaymentHash) {
        self.charge_status(payment_hash, "paid");
    }

    async fn create_calls(&self) -> usize {
        self.node.lock().unwrap().calls("POST /v1/charges")
    }
}

#[tokio::test]
async fn charges_are_asked_as_documented_and_found_by_the_id_kept() {
    let f = Fixture::start(Scenario::Paid).await;
    let w = f.wallet().await;
    let short = w
        .create_invoice(&InvoiceRequest {
            amount_msat: 2_100_000,
            description: "l402: /api/forecast".into(),
            expiry_secs: 60,
        })
        .await
        .unwrap();
    w.create_invoice(&InvoiceRequest {
        amount_msat: 21_000,
        description: String::new(),
        expiry_secs: 7_201,
    })
    .await
    .unwrap();
    {
        let n = f.node.lock().unwrap();
        let creates: Vec<&Value> = n
            .seen
            .iter()
            .filter(|(s, _)| s == "POST /v1/charges")
            .map(|(_, b)| b)
            .collect();
        assert_eq!(creates[0]["amount"], 2_100, "sats");
        assert_eq!(creates[0]["ttl"], 10, "OpenNode's shortest ttl, in minutes");
        assert_eq!(creates[0]["auto_settle"], false, "kept in bitcoin");
        assert_eq!(creates[1]["ttl"], 121, "minutes, rounded up");
    }
    f.charge_status(&short.payment_hash, "expired");
    assert_eq!(
        w.lookup_incoming(&short.payment_hash).await,
        Ok(IncomingStatus::Expired)
    );
    f.charge_status(&short.payment_hash, "processing");
    assert_eq!(
        w.lookup_incoming(&short.payment_hash).await,
        Ok(IncomingStatus::Pending)
    );
}

/// The charge id is kept in the storage before the invoice is handed out: a restart still finds
/// the charge.
#[tokio::test]
async fn an_invoice_is_found_again_after_a_restart() {
    let f = Fixture::start(Scenario::Paid).await;
    let dir = tempfile::tempdir().unwrap();
    let backend = BackendConfig::Opennode(f.config.clone());
    let clock: SharedClock = ManualClock::new(l402_mcp::clock::system().now());
    let app = l402_mcp::app::App::open(dir.path(), "w", &backend, clock.clone())
        .await
        .unwrap();
    let (created, _) = app
        .seller
        .create_invoice(21_000, "restart", 600)
        .await
        .unwrap();
    drop(app);
    f.settle_incoming(&created.payment_hash).await;
    let again = l402_mcp::app::App::open(dir.path(), "w", &backend, clock)
        .await
        .unwrap();
    assert_eq!(
        again.wallet.lookup_incoming(&created.payment_hash).await,
        Ok(IncomingStatus::Settled {
            amount_msat: 21_000
        })
    );
    assert_eq!(again.status().await.unwrap().earned_24h_msat, 21_000);
}

#[test]
fn the_documented_config_is_read() {
    match crate::suite::documented_backend(include_str!("../../docs/wallets/opennode.md")) {
        BackendConfig::Opennode(c) => assert_eq!(c.url, "https://api.opennode.com"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn through_mcp_and_the_command_line() {
    let f = Fixture::start(Scenario::Paid).await;
    let env = f.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (bolt11, _) = e2e::fresh_invoice();
    e2e::through_mcp(
        "opennode",
        &env,
        API_KEY,
        BALANCE_SATS,
        &bolt11,
        Pays::Refused("seller's backend"),
    )
    .await;

    let (balance, invoice, paid, text) = e2e::through_cli(&env, API_KEY, &bolt11).await;
    assert_eq!(balance["balance_msat"], BALANCE_SATS * 1000);
    assert_eq!(balance["returns_preimages"], false);
    assert_eq!(invoice["amount_sats"], 21);
    assert!(!paid && text.contains("seller's backend"), "{text}");
    assert_eq!(f.pay_calls().await, 0);

    // Doctor passes (it sells), and says it will not buy.
    let (passed, text) = e2e::doctor(&env, API_KEY).await;
    assert!(passed, "{text}");
    assert!(
        text.contains("[warn] preimages") && text.contains("seller's backend"),
        "{text}"
    );
    e2e::doctor_refuses(
        &env,
        (1, 2),
        "00000000-bad0-4bad-8bad-000000000bad",
        "OpenNode",
    )
    .await;
}
