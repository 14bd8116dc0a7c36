//! LNbits' REST API as the tests use it directly, beside the backend under test: to make
//! invoices in another wallet, see LNbits' own records, and bridge NWC to LNbits.

use serde_json::{Value, json};

/// One LNbits wallet: base URL, admin key (pays), invoice key (receives, reads).
#[derive(Clone)]
pub struct LnbitsApi {
    pub url: String,
    pub admin_key: String,
    pub invoice_key: String,
}

impl std::fmt::Debug for LnbitsApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LnbitsApi")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl LnbitsApi {
    /// From `LNBITS_TEST_URL` and `LNBITS_TEST_<WHO>_ADMIN` / `_INVOICE`.
    pub fn from_env(who: &str) -> Option<LnbitsApi> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        Some(LnbitsApi {
            url: var("LNBITS_TEST_URL")?.trim_end_matches('/').to_owned(),
            admin_key: var(&format!("LNBITS_TEST_{who}_ADMIN"))?,
            invoice_key: var(&format!("LNBITS_TEST_{who}_INVOICE"))?,
        })
    }

    pub async fn request(
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
        self.create_invoice(amount_sats, memo)
            .await
            .map(|(bolt11, hash, _)| (bolt11, hash))
    }

    /// Create an invoice in this wallet: (bolt11, payment hash hex, its preimage when LNbits
    /// answers with it, as 1.6.2 does).
    pub async fn create_invoice(
        &self,
        amount_sats: u64,
        memo: &str,
    ) -> Result<(String, String, Option<[u8; 32]>), String> {
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
        let preimage = v["preimage"].as_str().and_then(l402_mcp::l402::parse_hex32);
        Ok((bolt11.to_owned(), hash.to_owned(), preimage))
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

    /// How many outgoing payments of `payment_hash` LNbits lists for this wallet (failed ones
    /// included: the plain list leaves them out, the paginated one has them all).
    pub async fn outgoing_count(&self, payment_hash: &str) -> usize {
        let path = "/api/v1/payments/paginated?limit=10000";
        let Ok((_, page)) = self
            .request(reqwest::Method::GET, path, &self.invoice_key, None)
            .await
        else {
            return 0;
        };
        page["data"].as_array().map_or(0, |list| {
            list.iter()
                .filter(|p| p["payment_hash"] == payment_hash)
                .filter(|p| p["amount"].as_i64().is_some_and(|a| a < 0))
                .count()
        })
    }
}
