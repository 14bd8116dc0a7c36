//! An in-memory Lightning wallet behind the test wallet service: real BOLT11 invoices signed
//! with a test key, settled internally between the service's accounts (one per client key).
// A failed step in a test or benchmark is a failed run: unwrapping is fine here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use bitcoin::secp256k1::{PublicKey as NodeKey, Secp256k1, SecretKey};
use l402_mcp::bolt11::{self, Network, NewInvoice};
use nwc::nostr::{PublicKey, Timestamp};
use rand::RngCore;
use serde_json::{Value, json};

use super::{Answer, Backend};

/// How the service answers pay_invoice for one account.
#[derive(Debug, Clone, Default)]
pub struct Behaviour {
    pub preimage: PreimageMode,
    /// Answer with this error code; `settle` says whether the payment goes through anyway
    /// (true) or is recorded as failed (false), or nothing is recorded (None).
    pub pay_error: Option<(&'static str, Option<bool>)>,
    /// Pay, but never answer.
    pub pay_silently: bool,
    /// Neither pay nor answer.
    pub ignore_pay: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PreimageMode {
    #[default]
    Return,
    /// No `preimage` field at all.
    Omit,
    /// `"preimage": ""`.
    Empty,
}

#[derive(Debug, Clone)]
struct Invoice {
    owner: PublicKey,
    bolt11: String,
    preimage: [u8; 32],
    amount_msat: u64,
    description: String,
    created_at: u64,
    expires_at: u64,
    settled_at: Option<u64>,
}

#[derive(Debug, Clone)]
struct Payment {
    bolt11: String,
    amount_msat: u64,
    preimage: [u8; 32],
    state: &'static str,
    created_at: u64,
    settled_at: Option<u64>,
}

#[derive(Debug, Default)]
struct Account {
    balance_msat: u64,
    behaviour: Behaviour,
    payments: HashMap<[u8; 32], Payment>,
}

#[derive(Debug, Default)]
struct State {
    accounts: HashMap<PublicKey, Account>,
    invoices: HashMap<[u8; 32], Invoice>,
}

/// The fake Lightning node behind the service.
#[derive(Debug)]
pub struct FakeLn {
    node_key: SecretKey,
    state: Mutex<State>,
}

fn now() -> u64 {
    Timestamp::now().as_secs()
}

fn random32() -> [u8; 32] {
    let mut b = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut b);
    b
}

impl FakeLn {
    pub fn new() -> FakeLn {
        FakeLn {
            node_key: SecretKey::from_slice(&[0x5a; 32]).expect("test key"),
            state: Mutex::new(State::default()),
        }
    }

    pub fn node_id(&self) -> String {
        NodeKey::from_secret_key(&Secp256k1::new(), &self.node_key).to_string()
    }

    /// Open an account for the client key `client`.
    pub fn account(&self, client: PublicKey, balance_msat: u64, behaviour: Behaviour) {
        self.state.lock().expect("state").accounts.insert(
            client,
            Account {
                balance_msat,
                behaviour,
                payments: HashMap::new(),
            },
        );
    }

    pub fn balance(&self, client: &PublicKey) -> u64 {
        self.state
            .lock()
            .expect("state")
            .accounts
            .get(client)
            .map_or(0, |a| a.balance_msat)
    }

    /// An invoice of the fake node, as if from another wallet (owned by `owner`).
    pub fn invoice_for(&self, owner: PublicKey, amount_msat: u64, expiry_secs: u64) -> String {
        let mut state = self.state.lock().expect("state");
        self.make_invoice(&mut state, owner, amount_msat, "a test", expiry_secs)
            .0
            .bolt11
    }

    fn make_invoice(
        &self,
        state: &mut State,
        owner: PublicKey,
        amount_msat: u64,
        description: &str,
        expiry_secs: u64,
    ) -> (Invoice, [u8; 32]) {
        let preimage = random32();
        let payment_hash = l402_mcp::l402::sha256(&preimage);
        let created_at = now();
        let bolt11 = bolt11::create(
            &self.node_key,
            &NewInvoice {
                network: Network::Regtest,
                amount_msat: Some(amount_msat),
                description,
                payment_hash,
                payment_secret: random32(),
                timestamp: created_at,
                expiry_secs,
            },
        )
        .expect("invoice");
        let invoice = Invoice {
            owner,
            bolt11,
            preimage,
            amount_msat,
            description: description.to_owned(),
            created_at,
            expires_at: created_at + expiry_secs,
            settled_at: None,
        };
        state.invoices.insert(payment_hash, invoice.clone());
        (invoice, payment_hash)
    }

    fn pay(&self, client: &PublicKey, params: &Value) -> Answer {
        let mut state = self.state.lock().expect("state");
        let Some(behaviour) = state.accounts.get(client).map(|a| a.behaviour.clone()) else {
            return Answer::Error("UNAUTHORIZED", "no wallet for this key".into());
        };
        if behaviour.ignore_pay {
            return Answer::Silence;
        }
        let Some(bolt11) = params["invoice"].as_str() else {
            return Answer::Error("OTHER", "no invoice".into());
        };
        let Ok(decoded) = bolt11::decode(bolt11) else {
            return Answer::Error("OTHER", "bad invoice".into());
        };
        let hash = decoded.payment_hash;
        let Some(invoice) = state.invoices.get(&hash).cloned() else {
            return Answer::Error("PAYMENT_FAILED", "no route".into());
        };
        let settle = match behaviour.pay_error {
            Some((_, Some(settle))) => settle,
            Some((code, None)) => return Answer::Error(code, format!("fake {code}")),
            None => true,
        };
        if invoice.settled_at.is_some() {
            return Answer::Error("PAYMENT_FAILED", "invoice already paid".into());
        }
        let payer = state.accounts.get_mut(client).expect("account");
        if payer.balance_msat < invoice.amount_msat {
            return Answer::Error("INSUFFICIENT_BALANCE", "not enough sats".into());
        }
        let t = now();
        let mut payment = Payment {
            bolt11: invoice.bolt11.clone(),
            amount_msat: invoice.amount_msat,
            preimage: invoice.preimage,
            state: "failed",
            created_at: t,
            settled_at: None,
        };
        if settle {
            payer.balance_msat -= invoice.amount_msat;
            payment.state = "settled";
            payment.settled_at = Some(t);
        }
        payer.payments.insert(hash, payment);
        if settle {
            if let Some(payee) = state.accounts.get_mut(&invoice.owner) {
                payee.balance_msat += invoice.amount_msat;
            }
            if let Some(inv) = state.invoices.get_mut(&hash) {
                inv.settled_at = Some(t);
            }
        }
        if let Some((code, _)) = behaviour.pay_error {
            return Answer::Error(code, format!("fake {code}"));
        }
        if behaviour.pay_silently {
            return Answer::Silence;
        }
        Answer::Result(match behaviour.preimage {
            PreimageMode::Return => {
                json!({"preimage": hex::encode(invoice.preimage), "fees_paid": 0})
            }
            PreimageMode::Omit => json!({"fees_paid": 0}),
            PreimageMode::Empty => json!({"preimage": "", "fees_paid": 0}),
        })
    }

    fn lookup(&self, client: &PublicKey, params: &Value) -> Answer {
        let state = self.state.lock().expect("state");
        let Some(hash) = params["payment_hash"]
            .as_str()
            .and_then(l402_mcp::l402::parse_hex32)
        else {
            return Answer::Error("OTHER", "payment_hash needed".into());
        };
        let Some(account) = state.accounts.get(client) else {
            return Answer::Error("UNAUTHORIZED", "no wallet for this key".into());
        };
        if let Some(p) = account.payments.get(&hash) {
            let preimage = (p.state == "settled"
                && account.behaviour.preimage == PreimageMode::Return)
                .then(|| hex::encode(p.preimage));
            return Answer::Result(json!({
                "type": "outgoing",
                "state": p.state,
                "invoice": p.bolt11,
                "payment_hash": hex::encode(hash),
                "preimage": preimage,
                "amount": p.amount_msat,
                "fees_paid": 0,
                "created_at": p.created_at,
                "settled_at": p.settled_at,
            }));
        }
        match state.invoices.get(&hash) {
            Some(inv) if inv.owner == *client => {
                let state = if inv.settled_at.is_some() {
                    "settled"
                } else if inv.expires_at <= now() {
                    "expired"
                } else {
                    "pending"
                };
                Answer::Result(json!({
                    "type": "incoming",
                    "state": state,
                    "invoice": inv.bolt11,
                    "description": inv.description,
                    "payment_hash": hex::encode(hash),
                    "preimage": inv.settled_at.map(|_| hex::encode(inv.preimage)),
                    "amount": inv.amount_msat,
                    "fees_paid": 0,
                    "created_at": inv.created_at,
                    "expires_at": inv.expires_at,
                    "settled_at": inv.settled_at,
                }))
            }
            _ => Answer::Error("NOT_FOUND", "no such invoice".into()),
        }
    }
}

#[async_trait]
impl Backend for FakeLn {
    async fn handle(&self, client: &PublicKey, method: &str, params: &Value) -> Answer {
        match method {
            "get_info" => Answer::Result(json!({
                "alias": "fake",
                "color": "",
                "pubkey": self.node_id(),
                "network": "regtest",
                "block_height": 100,
                "block_hash": "",
                // sign_message is a method nwc 0.44 does not know: it must not matter.
                "methods": ["pay_invoice", "make_invoice", "lookup_invoice", "get_balance", "get_info", "sign_message"],
                "notifications": [],
            })),
            "get_balance" => Answer::Result(json!({"balance": self.balance(client)})),
            "make_invoice" => {
                let Some(amount) = params["amount"].as_u64() else {
                    return Answer::Error("OTHER", "amount needed".into());
                };
                let description = params["description"].as_str().unwrap_or_default();
                let expiry = params["expiry"].as_u64().unwrap_or(3600);
                let mut state = self.state.lock().expect("state");
                let (inv, hash) =
                    self.make_invoice(&mut state, *client, amount, description, expiry);
                Answer::Result(json!({
                    "type": "incoming",
                    "state": "pending",
                    "invoice": inv.bolt11,
                    "description": inv.description,
                    "payment_hash": hex::encode(hash),
                    "amount": amount,
                    "created_at": inv.created_at,
                    "expires_at": inv.expires_at,
                }))
            }
            "pay_invoice" => self.pay(client, params),
            "lookup_invoice" => self.lookup(client, params),
            _ => Answer::Error("NOT_IMPLEMENTED", format!("{method} is not supported")),
        }
    }
}
