//! The answers of the JSON-RPC methods this backend calls, as clnrest returns them.

use serde::Deserialize;

use crate::wallet::toolkit::json::de_u64;

#[derive(Deserialize)]
pub(super) struct GetInfo {
    #[serde(default)]
    pub(super) id: Option<String>,
    #[serde(default)]
    pub(super) network: String,
}

#[derive(Deserialize)]
pub(super) struct ListFunds {
    #[serde(default)]
    pub(super) channels: Vec<FundChannel>,
}

#[derive(Deserialize)]
pub(super) struct FundChannel {
    #[serde(default)]
    pub(super) state: String,
    #[serde(default, deserialize_with = "de_u64")]
    pub(super) our_amount_msat: Option<u64>,
}

#[derive(Deserialize)]
pub(super) struct NewInvoice {
    pub(super) bolt11: String,
    pub(super) payment_hash: String,
}

#[derive(Deserialize)]
pub(super) struct Pay {
    #[serde(default)]
    pub(super) payment_preimage: Option<String>,
    #[serde(default)]
    pub(super) status: Option<String>,
    #[serde(default, deserialize_with = "de_u64")]
    pub(super) amount_msat: Option<u64>,
    #[serde(default, deserialize_with = "de_u64")]
    pub(super) amount_sent_msat: Option<u64>,
}

#[derive(Deserialize)]
pub(super) struct ListInvoices {
    #[serde(default)]
    pub(super) invoices: Vec<ListedInvoice>,
}

#[derive(Deserialize)]
pub(super) struct ListedInvoice {
    #[serde(default)]
    pub(super) status: String,
    #[serde(default, deserialize_with = "de_u64")]
    pub(super) amount_received_msat: Option<u64>,
    #[serde(default, deserialize_with = "de_u64")]
    pub(super) amount_msat: Option<u64>,
}

#[derive(Deserialize)]
pub(super) struct ListPays {
    #[serde(default)]
    pub(super) pays: Vec<ListedPay>,
}

#[derive(Deserialize)]
pub(super) struct ListedPay {
    #[serde(default)]
    pub(super) status: String,
    #[serde(default)]
    pub(super) preimage: Option<String>,
    #[serde(default, deserialize_with = "de_u64")]
    pub(super) amount_msat: Option<u64>,
    #[serde(default, deserialize_with = "de_u64")]
    pub(super) amount_sent_msat: Option<u64>,
}

/// Fee of a payment: what was sent beyond what the payee received.
pub(super) fn fee(sent: Option<u64>, received: Option<u64>) -> u64 {
    match (sent, received) {
        (Some(s), Some(r)) => s.saturating_sub(r),
        _ => 0,
    }
}
