//! The GraphQL documents this backend sends to Blink, and what it reads of the answers, as in
//! Blink's public schema (`core/api/src/graphql/public/schema.graphql`) and its API docs
//! (dev.blink.sv `btc-ln-send`, `btc-ln-receive`, `error-handling`).

use serde_json::Value;

use crate::wallet::toolkit::amount;
use crate::wallet::toolkit::json::preimage as preimage_of;
use crate::wallet::{OutgoingStatus, PaymentResult};

/// The account's wallets (READ).
pub(super) const WALLETS: &str =
    "query Wallets { me { defaultAccount { wallets { id walletCurrency balance } } } }";
/// The key's scopes (READ).
pub(super) const SCOPES: &str = "query Scopes { authorization { scopes } }";
/// Network and node ids (no key needed).
pub(super) const GLOBALS: &str = "query Globals { globals { network nodesIds } }";
/// A BOLT11 invoice into a wallet (RECEIVE or WRITE).
pub(super) const CREATE: &str = "mutation LnInvoiceCreate($input: LnInvoiceCreateInput!) { lnInvoiceCreate(input: $input) { invoice { paymentRequest paymentHash paymentStatus satoshis } errors { code message path } } }";
/// What paying an invoice would cost in fees, in sats (WRITE); moves no money.
pub(super) const PROBE: &str = "mutation LnInvoiceFeeProbe($input: LnInvoiceFeeProbeInput!) { lnInvoiceFeeProbe(input: $input) { amount errors { code message path } } }";
/// Pay an invoice (WRITE). Blink takes no fee limit: the probe bounds it first.
pub(super) const PAY: &str = "mutation LnInvoicePaymentSend($input: LnInvoicePaymentInput!) { lnInvoicePaymentSend(input: $input) { status errors { code message path } transaction { id status direction settlementAmount settlementFee settlementCurrency settlementVia { __typename ... on SettlementViaLn { preImage } ... on SettlementViaIntraLedger { preImage } } } } }";
/// An invoice without an amount (the payer chooses it) into a wallet (RECEIVE or WRITE).
pub(super) const CREATE_NO_AMOUNT: &str = "mutation LnNoAmountInvoiceCreate($input: LnNoAmountInvoiceCreateInput!) { lnNoAmountInvoiceCreate(input: $input) { invoice { paymentRequest paymentHash paymentStatus } errors { code message path } } }";
/// What paying `amount` sats to an invoice without an amount would cost in fees (WRITE).
pub(super) const PROBE_NO_AMOUNT: &str = "mutation LnNoAmountInvoiceFeeProbe($input: LnNoAmountInvoiceFeeProbeInput!) { lnNoAmountInvoiceFeeProbe(input: $input) { amount errors { code message path } } }";
/// Pay `amount` sats to an invoice without an amount (WRITE), answered as `lnInvoicePaymentSend`.
pub(super) const PAY_NO_AMOUNT: &str = "mutation LnNoAmountInvoicePaymentSend($input: LnNoAmountInvoicePaymentInput!) { lnNoAmountInvoicePaymentSend(input: $input) { status errors { code message path } transaction { id status direction settlementAmount settlementFee settlementCurrency settlementVia { __typename ... on SettlementViaLn { preImage } ... on SettlementViaIntraLedger { preImage } } } } }";
/// A wallet's transactions of one payment hash (READ).
pub(super) const TX_BY_HASH: &str = "query TransactionsByPaymentHash($walletId: WalletId!, $hash: PaymentHash!) { me { defaultAccount { walletById(walletId: $walletId) { transactionsByPaymentHash(paymentHash: $hash) { id direction status settlementAmount settlementFee settlementCurrency settlementVia { __typename ... on SettlementViaLn { preImage } ... on SettlementViaIntraLedger { preImage } } } } } } }";
/// An invoice of a wallet by its payment hash (READ).
pub(super) const INVOICE_BY_HASH: &str = "query InvoiceByPaymentHash($walletId: WalletId!, $hash: PaymentHash!) { me { defaultAccount { walletById(walletId: $walletId) { invoiceByPaymentHash(paymentHash: $hash) { paymentHash paymentStatus ... on LnInvoice { satoshis } } } } } }";

/// The scopes of Blink API keys, and what each lets this backend do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Scope {
    /// Every query: the balance, the wallets, payment lookups.
    Read,
    /// Creating invoices (WRITE allows it too).
    Receive,
    /// Fee probes and payments.
    Write,
}

impl Scope {
    pub(super) fn name(self) -> &'static str {
        match self {
            Scope::Read => "Read",
            Scope::Receive => "Receive",
            Scope::Write => "Write",
        }
    }
}

/// One of the account's wallets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct AccountWallet {
    pub(super) id: String,
    /// `BTC` (sats) or `USD` (cents).
    pub(super) currency: String,
    /// In the wallet's unit, as Blink wrote it.
    pub(super) balance: Option<serde_json::Number>,
}

pub(super) fn wallets(data: &Value) -> Option<Vec<AccountWallet>> {
    let list = data
        .pointer("/me/defaultAccount/wallets")?
        .as_array()?
        .iter()
        .filter_map(|w| {
            Some(AccountWallet {
                id: w.get("id")?.as_str()?.to_owned(),
                currency: w.get("walletCurrency")?.as_str()?.to_owned(),
                balance: w.get("balance").and_then(Value::as_number).cloned(),
            })
        })
        .collect();
    Some(list)
}

/// A payload's `errors`, as `CODE: message; ...`; `None` when there are none.
pub(super) fn payload_errors(payload: &Value) -> Option<String> {
    let errors = payload.get("errors")?.as_array()?;
    let text: Vec<String> = errors
        .iter()
        .map(|e| {
            let code = e.get("code").and_then(Value::as_str).unwrap_or("ERROR");
            let message = e.get("message").and_then(Value::as_str).unwrap_or("");
            format!("{code}: {message}")
        })
        .collect();
    (!text.is_empty()).then(|| text.join("; "))
}

/// A SEND transaction as the payment and the lookup show it.
pub(super) fn outgoing(tx: &Value) -> Result<OutgoingStatus, String> {
    match tx.get("status").and_then(Value::as_str) {
        Some("SUCCESS") => Ok(OutgoingStatus::Succeeded(settled(tx)?)),
        Some("FAILURE") => Ok(OutgoingStatus::Failed(
            "Blink marked the payment failed".into(),
        )),
        Some("PENDING") => Ok(OutgoingStatus::InFlight),
        other => Err(format!("a transaction status of {other:?}")),
    }
}

/// The proof and the fee of a settled SEND transaction: `settlementFee` is in the BTC wallet's
/// sats.
fn settled(tx: &Value) -> Result<PaymentResult, String> {
    if let Some(c) = tx.get("settlementCurrency").and_then(Value::as_str)
        && c != "BTC"
    {
        return Err(format!("a payment settled in {c}, not from the BTC wallet"));
    }
    let fee_msat = match tx.get("settlementFee").and_then(Value::as_number) {
        Some(n) => amount::sats_to_msat(n)?,
        None => 0,
    };
    let preimage = tx
        .pointer("/settlementVia/preImage")
        .and_then(Value::as_str)
        .and_then(preimage_of);
    Ok(PaymentResult { preimage, fee_msat })
}

/// Of a wallet's transactions for one hash, what they say of our payment: only SEND ones
/// count (the wallet's own invoice for the hash is a RECEIVE); a success over a pending
/// attempt over a failed one.
pub(super) fn outgoing_of(list: &[Value]) -> Result<OutgoingStatus, String> {
    let sends: Vec<&Value> = list
        .iter()
        .filter(|t| t.get("direction").and_then(Value::as_str) == Some("SEND"))
        .collect();
    let mut best = OutgoingStatus::NotFound;
    for tx in sends {
        let status = outgoing(tx)?;
        let rank = |s: &OutgoingStatus| match s {
            OutgoingStatus::Succeeded(_) => 3,
            OutgoingStatus::InFlight => 2,
            OutgoingStatus::Failed(_) => 1,
            OutgoingStatus::NotFound => 0,
        };
        if rank(&status) > rank(&best) {
            best = status;
        }
    }
    Ok(best)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transactions_say_what_happened_to_our_payment() {
        let pre = "547d4f328f64b0b0991cc9119490441e642b7a84432f0b9adbb73e640bf1d870";
        let list: Vec<Value> = serde_json::from_str(&format!(
            r#"[{{"id":"a","direction":"RECEIVE","status":"SUCCESS","settlementFee":0}},
                {{"id":"b","direction":"SEND","status":"FAILURE","settlementFee":0}},
                {{"id":"c","direction":"SEND","status":"SUCCESS","settlementAmount":-1003,"settlementFee":3,
                  "settlementCurrency":"BTC","settlementVia":{{"__typename":"SettlementViaLn","preImage":"{pre}"}}}}]"#
        ))
        .unwrap();
        assert_eq!(
            outgoing_of(&list),
            Ok(OutgoingStatus::Succeeded(PaymentResult {
                preimage: crate::l402::parse_hex32(pre).map(crate::l402::Preimage),
                fee_msat: 3_000
            }))
        );
        assert_eq!(outgoing_of(&list[..1]), Ok(OutgoingStatus::NotFound));
        assert!(matches!(
            outgoing_of(&list[..2]),
            Ok(OutgoingStatus::Failed(_))
        ));
        let usd: Value = serde_json::from_str(
            r#"{"direction":"SEND","status":"SUCCESS","settlementFee":1,"settlementCurrency":"USD"}"#,
        )
        .unwrap();
        assert!(outgoing(&usd).is_err());
        let errors: Value = serde_json::from_str(
            r#"{"errors":[{"code":"INSUFFICIENT_BALANCE","message":"Payment amount '1003' sats exceeds balance '500'","path":null}]}"#,
        )
        .unwrap();
        assert_eq!(
            payload_errors(&errors).as_deref(),
            Some("INSUFFICIENT_BALANCE: Payment amount '1003' sats exceeds balance '500'")
        );
        assert_eq!(payload_errors(&serde_json::json!({"errors": []})), None);
    }
}
