//! A wallet service backend that is a real LNbits wallet, over LNbits' REST API: what an NWC
//! bridge in front of LNbits does. Every client key maps to the one wallet.

use async_trait::async_trait;
use nwc::nostr::PublicKey;
use serde_json::{Value, json};

use super::service::{Answer, Backend};

/// One LNbits wallet: base URL, admin key (pays), invoice key (receives, reads).
#[derive(Clone)]
pub struct LnbitsWallet {
    pub url: String,
    pub admin_key: String,
    pub invoice_key: String,
}

impl std::fmt::Debug for LnbitsWallet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LnbitsWallet")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl LnbitsWallet {
    /// From `LNBITS_TEST_URL` and `LNBITS_TEST_<WHO>_ADMIN` / `_INVOICE`.
    pub fn from_env(who: &str) -> Option<LnbitsWallet> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        Some(LnbitsWallet {
            url: var("LNBITS_TEST_URL")?.trim_end_matches('/').to_owned(),
            admin_key: var(&format!("LNBITS_TEST_{who}_ADMIN"))?,
            invoice_key: var(&format!("LNBITS_TEST_{who}_INVOICE"))?,
        })
    }

    async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        key: &str,
        body: Option<Value>,
    ) -> Result<(u16, Value), String> {
        l402_mcp::init_tls();
        let client = reqwest::Client::new();
        let mut req = client
            .request(method, format!("{}{path}", self.url))
            .header("X-Api-Key", key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let value = resp.json::<Value>().await.unwrap_or(Value::Null);
        Ok((status, value))
    }

    /// Create an invoice in this wallet: (bolt11, payment hash hex).
    pub async fn invoice(&self, amount_sats: u64, memo: &str) -> Result<(String, String), String> {
        let (status, v) = self
            .request(
                reqwest::Method::POST,
                "/api/v1/payments",
                &self.invoice_key,
                Some(json!({"out": false, "amount": amount_sats, "memo": memo})),
            )
            .await?;
        let bolt11 = v["bolt11"]
            .as_str()
            .or_else(|| v["payment_request"].as_str())
            .ok_or_else(|| format!("LNbits invoice: HTTP {status}: {v}"))?;
        let hash = v["payment_hash"].as_str().unwrap_or_default();
        Ok((bolt11.to_owned(), hash.to_owned()))
    }

    /// `GET /api/v1/payments/{hash}` with the invoice key: (HTTP status, body).
    pub async fn payment(&self, payment_hash: &str) -> Result<(u16, Value), String> {
        self.request(
            reqwest::Method::GET,
            &format!("/api/v1/payments/{payment_hash}"),
            &self.invoice_key,
            None,
        )
        .await
    }
}

/// The NIP-47 methods on top of one LNbits wallet.
#[derive(Debug)]
pub struct LnbitsBackend(pub LnbitsWallet);

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
