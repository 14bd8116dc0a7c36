//! A wallet service backend that is a real LNbits wallet, over LNbits' REST API: what an NWC
//! bridge in front of LNbits does. Every client key maps to the one wallet.
// A failed step in a test or benchmark is a failed run: unwrapping is fine here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use async_trait::async_trait;
use nwc::nostr::PublicKey;
use serde_json::{Value, json};

use super::service::{Answer, Backend};
use crate::lnbits::api::LnbitsApi;

/// The NIP-47 methods on top of one LNbits wallet.
#[derive(Debug)]
pub struct LnbitsBackend(pub LnbitsApi);

fn pay_error(status: u16, v: &Value) -> Answer {
    let detail = v["detail"].as_str().unwrap_or("payment failed").to_owned();
    if detail.to_ascii_lowercase().contains("insufficient balance") {
        Answer::Error("INSUFFICIENT_BALANCE", detail)
    } else {
        Answer::Error("PAYMENT_FAILED", format!("HTTP {status}: {detail}"))
    }
}

#[async_trait]
impl Backend for LnbitsBackend {
    async fn handle(&self, _client: &PublicKey, method: &str, params: &Value) -> Answer {
        let w = &self.0;
        match method {
            "get_info" => Answer::Result(json!({
                "alias": "lnbits",
                "network": "mainnet", // FakeWallet invoices are lnbc
                "methods": ["pay_invoice", "make_invoice", "lookup_invoice", "get_balance", "get_info"],
            })),
            "get_balance" => {
                match w
                    .request(reqwest::Method::GET, "/api/v1/wallet", &w.invoice_key, None)
                    .await
                {
                    Ok((200, v)) => Answer::Result(json!({"balance": v["balance"]})),
                    Ok((s, v)) => Answer::Error("INTERNAL", format!("HTTP {s}: {v}")),
                    Err(e) => Answer::Error("INTERNAL", e),
                }
            }
            "make_invoice" => {
                let sats = params["amount"].as_u64().unwrap_or(0) / 1000;
                let memo = params["description"].as_str().unwrap_or_default();
                match w.invoice(sats, memo).await {
                    Ok((bolt11, hash)) => Answer::Result(json!({
                        "type": "incoming", "state": "pending",
                        "invoice": bolt11, "payment_hash": hash, "amount": sats * 1000,
                    })),
                    Err(e) => Answer::Error("INTERNAL", e),
                }
            }
            "pay_invoice" => {
                let bolt11 = params["invoice"].as_str().unwrap_or_default();
                let paid = w
                    .request(
                        reqwest::Method::POST,
                        "/api/v1/payments",
                        &w.admin_key,
                        Some(json!({"out": true, "bolt11": bolt11})),
                    )
                    .await;
                let (status, v) = match paid {
                    Ok(r) => r,
                    Err(e) => return Answer::Error("INTERNAL", e),
                };
                if !(200..300).contains(&status) {
                    return pay_error(status, &v);
                }
                let mut preimage = v["preimage"].as_str().unwrap_or_default().to_owned();
                if preimage.is_empty()
                    && let Some(hash) = v["payment_hash"].as_str()
                    && let Ok((_, p)) = w.payment(hash).await
                {
                    preimage = p["preimage"].as_str().unwrap_or_default().to_owned();
                }
                let fee = v["fee"].as_i64().unwrap_or(0).unsigned_abs();
                Answer::Result(json!({"preimage": preimage, "fees_paid": fee}))
            }
            "lookup_invoice" => {
                let hash = params["payment_hash"].as_str().unwrap_or_default();
                match w.payment(hash).await {
                    Ok((404, _)) => Answer::Error("NOT_FOUND", "no such payment".into()),
                    Ok((200, v)) => {
                        let d = &v["details"];
                        let amount = d["amount"].as_i64().unwrap_or(0);
                        let paid = v["paid"].as_bool().unwrap_or(false);
                        let state = if paid {
                            "settled"
                        } else if d["status"].as_str() == Some("failed") {
                            "failed"
                        } else {
                            "pending"
                        };
                        Answer::Result(json!({
                            "type": if amount < 0 { "outgoing" } else { "incoming" },
                            "state": state,
                            "invoice": d["bolt11"],
                            "payment_hash": hash,
                            "preimage": if paid { v["preimage"].clone() } else { Value::Null },
                            "amount": amount.unsigned_abs(),
                            "fees_paid": d["fee"].as_i64().unwrap_or(0).unsigned_abs(),
                            "created_at": 0,
                        }))
                    }
                    Ok((s, v)) => Answer::Error("INTERNAL", format!("HTTP {s}: {v}")),
                    Err(e) => Answer::Error("INTERNAL", e),
                }
            }
            _ => Answer::Error("NOT_IMPLEMENTED", format!("{method} is not supported")),
        }
    }
}
