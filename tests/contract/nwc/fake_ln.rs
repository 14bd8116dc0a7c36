//! The test wallet service's Lightning side: one fake node (`wallet::fake`), one fake wallet
//! per client key. NIP-47 requests become `Wallet` calls, and their results NIP-47 answers,
//! so what a payment does is scripted on the client's [`FakeWallet`] like anywhere else; only
//! what is NIP-47's own (error codes, the shape of a missing preimage, a garbled answer) is
//! set here, per client ([`Quirks`]).

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use l402_mcp::bolt11::{self, Network};
use l402_mcp::clock::ManualClock;
use l402_mcp::wallet::fake::{FakeNode, FakeWallet};
use l402_mcp::wallet::{IncomingStatus, InvoiceRequest, OutgoingStatus, Wallet, WalletError};
use nwc::nostr::PublicKey;
use serde_json::{Value, json};

use super::service::{Answer, Backend};
use crate::common::T0;

/// How a `pay_invoice` answer without a preimage is written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PreimageMode {
    /// No `preimage` field at all.
    #[default]
    Omit,
    /// `"preimage": ""`.
    Empty,
}

/// What the service does to one client's `pay_invoice` answers, whatever its wallet did.
#[derive(Debug, Clone, Default)]
pub struct Quirks {
    pub preimage: PreimageMode,
    /// Answer with this error code (after the wallet was asked).
    pub error_code: Option<&'static str>,
    /// Answer with content that is not a NIP-47 response.
    pub garbage: bool,
}

/// The fake node behind the service, and each client's wallet on it.
#[derive(Debug)]
pub struct FakeLn {
    node: FakeNode,
    clients: Mutex<HashMap<PublicKey, (FakeWallet, Quirks)>>,
}

impl FakeLn {
    /// A regtest node whose invoices are dated [`T0`], as the contract's buyers see time.
    pub fn new() -> FakeLn {
        FakeLn {
            node: FakeNode::new(Network::Regtest, ManualClock::new(T0)),
            clients: Mutex::new(HashMap::new()),
        }
    }

    pub fn node(&self) -> &FakeNode {
        &self.node
    }

    /// Open an account for the client key `client`; its wallet, for scripting.
    pub fn account(&self, client: PublicKey, balance_msat: u64, quirks: Quirks) -> FakeWallet {
        let wallet = self.node.wallet(balance_msat);
        self.clients
            .lock()
            .unwrap()
            .insert(client, (wallet.clone(), quirks));
        wallet
    }

    pub fn set_quirks(&self, client: &PublicKey, quirks: Quirks) {
        if let Some(c) = self.clients.lock().unwrap().get_mut(client) {
            c.1 = quirks;
        }
    }

    pub fn balance(&self, client: &PublicKey) -> u64 {
        self.client(client).map_or(0, |(w, _)| w.balance_msat())
    }

    /// An invoice of `owner`'s wallet, as if made by another wallet service user.
    pub async fn invoice_for(
        &self,
        owner: &PublicKey,
        amount_msat: u64,
        expiry_secs: u64,
    ) -> String {
        let (wallet, _) = self.client(owner).expect("an account for the owner");
        wallet
            .create_invoice(&InvoiceRequest {
                amount_msat,
                description: "a test".into(),
                expiry_secs,
            })
            .await
            .expect("invoice")
            .bolt11
    }

    fn client(&self, client: &PublicKey) -> Option<(FakeWallet, Quirks)> {
        self.clients.lock().unwrap().get(client).cloned()
    }
}

/// `hash` from a request's `payment_hash`.
fn hash_of(params: &Value) -> Option<l402_mcp::l402::PaymentHash> {
    params["payment_hash"].as_str().and_then(|h| h.parse().ok())
}

async fn pay(wallet: &FakeWallet, quirks: &Quirks, params: &Value) -> Answer {
    let Some(invoice) = params["invoice"]
        .as_str()
        .and_then(|i| bolt11::decode(i).ok())
    else {
        return Answer::Error("OTHER", "bad invoice".into());
    };
    // NIP-47's optional `amount` (msat): what to send to an invoice without an amount.
    let paid = match params["amount"].as_u64() {
        Some(amount) => wallet.pay_amountless(&invoice, amount, u64::MAX).await,
        None => wallet.pay_invoice(&invoice, u64::MAX).await,
    };
    if quirks.garbage {
        return Answer::Garbage;
    }
    if let Some(code) = quirks.error_code {
        return Answer::Error(code, format!("fake {code}"));
    }
    match paid {
        Ok(r) => Answer::Result(match (r.preimage, quirks.preimage) {
            (Some(p), _) => json!({"preimage": p.to_hex(), "fees_paid": r.fee_msat}),
            (None, PreimageMode::Omit) => json!({"fees_paid": r.fee_msat}),
            (None, PreimageMode::Empty) => json!({"preimage": "", "fees_paid": r.fee_msat}),
        }),
        Err(WalletError::Rejected(m)) if m.contains("insufficient balance") => {
            Answer::Error("INSUFFICIENT_BALANCE", m)
        }
        Err(WalletError::Rejected(m)) => Answer::Error("PAYMENT_FAILED", m),
        Err(WalletError::OutcomeUnknown(_)) => Answer::Silence,
        Err(e) => Answer::Error("INTERNAL", e.to_string()),
    }
}

/// A NIP-47 transaction for `hash`: the client's payment, else its invoice.
async fn lookup(wallet: &FakeWallet, params: &Value) -> Answer {
    let Some(hash) = hash_of(params) else {
        return Answer::Error("OTHER", "payment_hash needed".into());
    };
    let hash_hex = hex::encode(hash);
    let outgoing = |state: &str, r: Option<&l402_mcp::wallet::PaymentResult>| {
        json!({"type": "outgoing", "state": state, "payment_hash": hash_hex,
               "preimage": r.and_then(|r| r.preimage).map(|p| p.to_hex()),
               "fees_paid": r.map_or(0, |r| r.fee_msat), "created_at": T0})
    };
    match wallet.lookup_outgoing(&hash).await {
        Ok(OutgoingStatus::Succeeded(r)) => return Answer::Result(outgoing("settled", Some(&r))),
        Ok(OutgoingStatus::InFlight) => return Answer::Result(outgoing("pending", None)),
        Ok(OutgoingStatus::Failed(_)) => return Answer::Result(outgoing("failed", None)),
        Ok(OutgoingStatus::NotFound) => {}
        Err(e) => return Answer::Error("INTERNAL", e.to_string()),
    }
    let incoming = |state: &str, amount: u64| {
        json!({"type": "incoming", "state": state, "payment_hash": hash_hex, "amount": amount,
               "created_at": T0})
    };
    match wallet.lookup_incoming(&hash).await {
        Ok(IncomingStatus::Settled { amount_msat }) => {
            Answer::Result(incoming("settled", amount_msat))
        }
        Ok(IncomingStatus::Pending) => Answer::Result(incoming("pending", 0)),
        Ok(IncomingStatus::Expired) => Answer::Result(incoming("expired", 0)),
        Ok(IncomingStatus::NotFound) => Answer::Error("NOT_FOUND", "no such invoice".into()),
        Err(e) => Answer::Error("INTERNAL", e.to_string()),
    }
}

#[async_trait]
impl Backend for FakeLn {
    async fn handle(&self, client: &PublicKey, method: &str, params: &Value) -> Answer {
        let Some((wallet, quirks)) = self.client(client) else {
            return Answer::Error("UNAUTHORIZED", "no wallet for this key".into());
        };
        match method {
            "get_info" => Answer::Result(json!({
                "alias": "fake",
                "color": "",
                "pubkey": self.node.node_id(),
                "network": "regtest",
                "block_height": 100,
                "block_hash": "",
                // sign_message is a method nwc 0.44 does not know: it must not matter.
                "methods": ["pay_invoice", "make_invoice", "lookup_invoice", "get_balance", "get_info", "sign_message"],
                "notifications": [],
            })),
            "get_balance" => Answer::Result(json!({"balance": wallet.balance_msat()})),
            "make_invoice" => {
                let request = InvoiceRequest {
                    amount_msat: params["amount"].as_u64().unwrap_or(0),
                    description: params["description"].as_str().unwrap_or_default().into(),
                    expiry_secs: params["expiry"].as_u64().unwrap_or(3600),
                };
                match wallet.create_invoice(&request).await {
                    Ok(c) => Answer::Result(json!({
                        "type": "incoming",
                        "state": "pending",
                        "invoice": c.bolt11,
                        "description": request.description,
                        "payment_hash": hex::encode(c.payment_hash),
                        "amount": request.amount_msat,
                        "created_at": T0,
                        "expires_at": c.expires_at,
                    })),
                    Err(e) => Answer::Error("OTHER", e.to_string()),
                }
            }
            "pay_invoice" => pay(&wallet, &quirks, params).await,
            "lookup_invoice" => lookup(&wallet, params).await,
            _ => Answer::Error("NOT_IMPLEMENTED", format!("{method} is not supported")),
        }
    }
}
