//! The answers of phoenixd's API that this backend reads (amounts in sats except `fees`).

use serde::Deserialize;
use serde_json::Value;

use crate::wallet::toolkit::json::de_u64;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct NodeInfo {
    #[serde(default)]
    pub(super) node_id: Option<String>,
    #[serde(default)]
    pub(super) chain: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct GetBalance {
    #[serde(default, deserialize_with = "de_u64")]
    pub(super) balance_sat: Option<u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct GeneratedInvoice {
    pub(super) payment_hash: String,
    pub(super) serialized: String,
}

/// `payinvoice`'s answer: `PaymentSent`, or `PaymentFailed` (with `reason`).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct PayResult {
    #[serde(default)]
    pub(super) payment_hash: Option<String>,
    #[serde(default)]
    pub(super) payment_preimage: Option<String>,
    #[serde(default, deserialize_with = "de_u64")]
    pub(super) routing_fee_sat: Option<u64>,
    #[serde(default)]
    pub(super) payment_id: Option<String>,
    #[serde(default)]
    pub(super) reason: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct IncomingPayment {
    #[serde(default)]
    pub(super) is_paid: bool,
    #[serde(default)]
    pub(super) is_expired: bool,
    #[serde(default, deserialize_with = "de_u64")]
    pub(super) received_sat: Option<u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct OutgoingPayment {
    #[serde(default)]
    pub(super) is_paid: bool,
    #[serde(default)]
    pub(super) preimage: Option<String>,
    #[serde(default, deserialize_with = "de_u64")]
    pub(super) fees: Option<u64>,
    #[serde(default)]
    pub(super) completed_at: Option<Value>,
}
