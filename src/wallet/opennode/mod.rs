//! OpenNode (opennode.com) as a seller's backend: charges (BOLT11 invoices), their paid status,
//! the balance. OpenNode's withdrawals return no preimage, so this backend never pays: an L402
//! credential could not be shown for the payment. Read in OpenNode's API docs
//! (developers.opennode.com) and its official SDK (npm `opennode`); not run against OpenNode
//! here (see docs/wallets/opennode.md for what is verified).
//!
//! - `Authorization: <key>` (no scheme). Keys have permissions: Invoice (create and read
//!   charges), Read (also list charges and withdrawals), Withdrawals.
//! - `POST /v1/charges` `{amount (sats), description, ttl (minutes, 10..1440)}` answers
//!   `{"data": {id, status, lightning_invoice: {payreq, expires_at}}}`: no payment hash, and a
//!   charge is found only by its id, so the id is kept by payment hash (the storage's
//!   `WalletRefs`) before the invoice is handed out.
//! - `GET /v1/charge/{id}`: `status` unpaid, processing, paid, expired (and refunded,
//!   underpaid on chain).
//! - `GET /v1/account/balance`: `{"data": {"balance": {"BTC": sats, ...}}}`.

mod config;

use async_trait::async_trait;
use serde_json::{Value, json};
use tracing::{info, instrument};

pub use self::config::{DEFAULT_URL, OpennodeConfig};
use super::toolkit::json::error_fields;
use super::toolkit::node::{self, check_created};
use super::toolkit::redact::clip_chars;
use super::toolkit::{HostedApi, RefStore, RestError, amount};
use super::{
    AccessCheck, Balance, CreatedInvoice, IncomingStatus, InvoiceRequest, Level, OutgoingStatus,
    PaymentResult, Wallet, WalletError, WalletInfo,
};
use crate::bolt11::{DecodedInvoice, Network};
use crate::storage::Direction;

/// The kind, as references are kept under it.
const KIND: &str = "opennode";
/// A charge id no charge has: asking for it checks the key without touching anything.
const NO_CHARGE: &str = "00000000-0000-4000-8000-000000000000";
/// OpenNode's bounds on a charge's `ttl`, in minutes.
const TTL_MINUTES: std::ops::RangeInclusive<u64> = 10..=1440;

/// Why OpenNode is never asked to pay.
pub const SELLER_ONLY: &str = "OpenNode is a seller's backend: its payments return no preimage, so l402-mcp never pays through it (an L402 credential needs the preimage as proof); it sells (invoices, challenges, the gateway). Pay from a wallet that returns preimages (see docs/wallets/opennode.md)";

/// The OpenNode backend.
#[derive(Debug)]
pub struct OpennodeWallet {
    api: HostedApi,
    network: Network,
    refs: RefStore,
}

impl OpennodeWallet {
    pub fn new(config: &OpennodeConfig, refs: RefStore) -> Result<OpennodeWallet, WalletError> {
        Ok(OpennodeWallet {
            api: HostedApi::new(
                "OpenNode",
                "OPENNODE",
                &config.url,
                &config.url,
                &config.api_key,
                |key| ("Authorization", key.to_owned()),
                node::timeout(config.timeout_secs),
            )?,
            network: config.network.unwrap_or(Network::Mainnet),
            refs,
        })
    }

    /// The error of a call; `what` says what it was for.
    fn call_error(&self, what: &str, e: RestError) -> WalletError {
        let msg = match e {
            RestError::NotSent(m) => return self.api.unreachable(&m),
            RestError::Status {
                status: status @ (401 | 403),
                body,
            } => {
                let said = error_fields(&body).1.unwrap_or_default();
                return WalletError::Unavailable(self.api.redact(format!(
                    "OpenNode refused the API key {what} (HTTP {status} {said:?}): check api_key (L402_MCP_OPENNODE_API_KEY); reading the balance needs a key with the Read permission"
                )));
            }
            e if e.is_rate_limited() => return e.into_wallet_error(),
            RestError::Status { status, body } => format!(
                "{what}: OpenNode answered HTTP {status}: {}",
                error_fields(&body).1.unwrap_or(body)
            ),
            other => format!("{what}: {other}"),
        };
        WalletError::Other(self.api.redact(msg))
    }

    /// A charge by id (`None`: OpenNode has none).
    async fn charge(&self, id: &str) -> Result<Option<Value>, WalletError> {
        match self.api.rest.get::<Value>(&format!("v1/charge/{id}")).await {
            Ok(v) => Ok(Some(v.get("data").cloned().unwrap_or(v))),
            Err(RestError::Status { status: 404, .. }) => Ok(None),
            Err(e) => Err(self.call_error("looking the charge up", e)),
        }
    }
}

#[async_trait]
impl Wallet for OpennodeWallet {
    async fn info(&self) -> Result<WalletInfo, WalletError> {
        // Any key may read a charge: asking for one nobody has checks the key and the URL.
        self.charge(NO_CHARGE).await?;
        Ok(self.api.info(KIND, self.network, false))
    }

    async fn balance(&self) -> Result<Balance, WalletError> {
        let v: Value = self
            .api
            .rest
            .get("v1/account/balance")
            .await
            .map_err(|e| self.call_error("reading the balance", e))?;
        let btc = v
            .pointer("/data/balance/BTC")
            .and_then(Value::as_number)
            .ok_or_else(|| {
                WalletError::Other("OpenNode answered the balance without a BTC amount".into())
            })?;
        Ok(Balance {
            msat: amount::sats_to_msat(btc)
                .map_err(|e| WalletError::Other(format!("OpenNode's balance: {e}")))?,
            demo_funds: false,
        })
    }

    #[instrument(skip_all, fields(backend = "opennode", amount_msat = request.amount_msat))]
    async fn create_invoice(
        &self,
        request: &InvoiceRequest,
    ) -> Result<CreatedInvoice, WalletError> {
        let sats = node::whole_sats("OpenNode", request.amount_msat)?;
        let minutes = request.expiry_secs.div_ceil(60);
        let body = json!({
            "amount": sats,
            "description": clip_chars(&request.description, 640),
            "ttl": minutes.clamp(*TTL_MINUTES.start(), *TTL_MINUTES.end()),
            "auto_settle": false,
        });
        // Not retried: a retry could make a second charge.
        let v: Value = self
            .api
            .rest
            .post("v1/charges", &body, false)
            .await
            .map_err(|e| match e {
                RestError::Status { status: 400, body } => WalletError::Rejected(format!(
                    "OpenNode refused to create the charge: {}",
                    error_fields(&body).1.unwrap_or(body)
                )),
                e => self.call_error("creating a charge", e),
            })?;
        let charge = v.get("data").unwrap_or(&v);
        let (Some(id), Some(bolt11)) = (
            charge.get("id").and_then(Value::as_str),
            charge
                .pointer("/lightning_invoice/payreq")
                .and_then(Value::as_str),
        ) else {
            return Err(WalletError::Other(
                "OpenNode answered the charge without its id or its Lightning invoice".into(),
            ));
        };
        let created = check_created("OpenNode", bolt11, None, request)?;
        // The charge is found only by its id: kept before the invoice is handed out.
        self.refs
            .put(KIND, Direction::In, &created.payment_hash, id)
            .await?;
        info!(payment_hash = %created.payment_hash, charge = id, "OpenNode charge created");
        Ok(created)
    }

    async fn pay_invoice(
        &self,
        _invoice: &DecodedInvoice,
        _max_fee_msat: u64,
    ) -> Result<PaymentResult, WalletError> {
        Err(WalletError::NotPayable(SELLER_ONLY.into()))
    }

    /// An OpenNode charge is always for an amount.
    async fn create_amountless_invoice(
        &self,
        _description: &str,
        _expiry_secs: u64,
    ) -> Result<CreatedInvoice, WalletError> {
        Err(node::unsupported(
            "OpenNode",
            "create amountless invoices (a Payment session's return invoice, to buy sessions)",
            "an OpenNode charge always states its amount",
        ))
    }

    async fn pay_amountless(
        &self,
        _invoice: &DecodedInvoice,
        _amount_msat: u64,
        _max_fee_msat: u64,
    ) -> Result<PaymentResult, WalletError> {
        Err(node::unsupported(
            "OpenNode",
            "pay amountless invoices (a Payment session's refund, to sell sessions)",
            SELLER_ONLY,
        ))
    }

    async fn lookup_incoming(
        &self,
        payment_hash: &crate::l402::PaymentHash,
    ) -> Result<IncomingStatus, WalletError> {
        let Some(id) = self.refs.get(KIND, Direction::In, payment_hash).await? else {
            return Ok(IncomingStatus::NotFound);
        };
        let Some(charge) = self.charge(&id).await? else {
            return Ok(IncomingStatus::NotFound);
        };
        Ok(match charge.get("status").and_then(Value::as_str) {
            Some("paid") => IncomingStatus::Settled {
                amount_msat: match charge.get("amount").and_then(Value::as_number) {
                    Some(n) => amount::sats_to_msat(n)
                        .map_err(|e| WalletError::Other(format!("OpenNode's charge: {e}")))?,
                    None => 0,
                },
            },
            // A refunded charge was paid on chain and given back: not income.
            Some("expired" | "refunded") => IncomingStatus::Expired,
            Some("unpaid" | "processing" | "underpaid") => IncomingStatus::Pending,
            other => {
                return Err(WalletError::Other(format!(
                    "OpenNode answered a charge status of {other:?}"
                )));
            }
        })
    }

    async fn lookup_outgoing(
        &self,
        _payment_hash: &crate::l402::PaymentHash,
    ) -> Result<OutgoingStatus, WalletError> {
        // Nothing is ever paid through OpenNode.
        Ok(OutgoingStatus::NotFound)
    }

    fn withholds_preimages(&self) -> bool {
        true
    }

    async fn access(&self) -> Vec<AccessCheck> {
        vec![AccessCheck {
            check: "preimages",
            level: Level::Warn,
            detail: format!(
                "{SELLER_ONLY}. fetch_paid and pay_invoice are refused before anything moves"
            ),
            fix: Some(
                "fine for a seller; a buying agent needs a backend that returns preimages (Blink, LNbits, LND, ...)".into(),
            ),
        }]
    }
}
