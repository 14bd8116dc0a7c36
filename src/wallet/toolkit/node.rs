//! What backends in front of a Lightning node share: the network it reports, checked against
//! the configured one; the invoices it creates, checked before anyone is asked to pay them;
//! request timeouts; amounts in whole sats.

use std::time::Duration;

use crate::bolt11::{DecodedInvoice, Network};
use crate::budget::MSAT_PER_SAT;
use crate::wallet::{CreatedInvoice, InvoiceRequest, OutgoingStatus, PaymentResult, WalletError};

/// How long a hosted backend's payment that it accepted as pending is followed (the waits
/// between lookups) before its outcome is called unknown and left to reconciliation.
pub const PENDING_POLLS: [Duration; 3] = [
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_secs(2),
];

/// Follow a payment the backend accepted as under way: `lookup` again after each of
/// [`PENDING_POLLS`] while it says in flight; the last answer.
pub async fn follow_pending<F, Fut>(mut lookup: F) -> Result<OutgoingStatus, WalletError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<OutgoingStatus, WalletError>>,
{
    let mut outcome = lookup().await;
    for delay in PENDING_POLLS {
        if !matches!(outcome, Ok(OutgoingStatus::InFlight)) {
            break;
        }
        tokio::time::sleep(delay).await;
        outcome = lookup().await;
    }
    outcome
}

/// What a hosted backend's last word on a payment it accepted means for the pay path: paid,
/// failed for good, or (under way, no record yet, unreadable) unknown, to be reconciled.
pub fn accepted_outcome(
    backend: &str,
    outcome: Result<OutgoingStatus, WalletError>,
) -> Result<PaymentResult, WalletError> {
    match outcome {
        Ok(OutgoingStatus::Succeeded(r)) => Ok(r),
        Ok(OutgoingStatus::Failed(why)) => Err(WalletError::Rejected(why)),
        Ok(OutgoingStatus::InFlight) => Err(WalletError::OutcomeUnknown(format!(
            "{backend} reports the payment as still pending; it stays pending here and is reconciled through {backend}'s payment lookup"
        ))),
        Ok(OutgoingStatus::NotFound) => Err(WalletError::OutcomeUnknown(format!(
            "{backend} accepted the payment but shows no record of it yet; it stays pending and is reconciled"
        ))),
        Err(e) => Err(WalletError::OutcomeUnknown(format!(
            "{backend} accepted the payment, but its status could not be read ({e}); it stays pending and is reconciled"
        ))),
    }
}

/// `result` of a backend's payment, logged (the fee and whether a preimage came, or the error
/// and whether it was definite) and handed back.
pub fn logged(
    backend: &'static str,
    result: Result<PaymentResult, WalletError>,
) -> Result<PaymentResult, WalletError> {
    match &result {
        Ok(r) => tracing::info!(
            backend,
            fee_msat = r.fee_msat,
            has_preimage = r.preimage.is_some(),
            "paid"
        ),
        Err(e) => tracing::warn!(
            backend,
            error = %e,
            definite = e.definitely_not_paid(),
            "payment did not go through"
        ),
    }
    result
}

/// An error met before a payment was sent, as the pay path must take it: nothing moved.
pub fn before_sending(e: WalletError) -> WalletError {
    if e.definitely_not_paid() {
        e
    } else {
        WalletError::Unavailable(format!("{e}; nothing was paid"))
    }
}

/// Seconds per request when a backend's `timeout_secs` is not set.
pub const DEFAULT_TIMEOUT_SECS: u64 = 30;

/// The time limit of one request: `timeout_secs` as configured (at least a second), or the
/// default.
pub fn timeout(timeout_secs: Option<u64>) -> Duration {
    Duration::from_secs(timeout_secs.unwrap_or(DEFAULT_TIMEOUT_SECS).max(1))
}

/// How long a node may spend on a payment: a little under our own limit, so that the node
/// gives up first and answers, rather than leaving us without an answer.
pub fn payment_time_limit_secs(timeout: Duration) -> u64 {
    timeout.as_secs().saturating_sub(5).max(1)
}

/// A network as nodes name it (`bitcoin` is Core Lightning's and LND's mainnet, `testnet3`
/// and `testnet4` are testnet); `None` for a name this wallet does not know.
pub fn network_from_name(name: &str) -> Option<Network> {
    Some(match name.trim().to_ascii_lowercase().as_str() {
        "mainnet" | "bitcoin" => Network::Mainnet,
        "testnet" | "testnet3" | "testnet4" => Network::Testnet,
        "signet" => Network::Signet,
        "regtest" => Network::Regtest,
        "simnet" => Network::Simnet,
        _ => return None,
    })
}

/// The network a node named: `None` when it named none, an error when it named one this
/// wallet does not support.
pub fn reported_network(backend: &str, name: &str) -> Result<Option<Network>, WalletError> {
    if name.trim().is_empty() {
        return Ok(None);
    }
    network_from_name(name).map(Some).ok_or_else(|| {
        WalletError::Other(format!(
            "{backend} is on network {name:?}, which this wallet does not support"
        ))
    })
}

/// The network the node reports, checked against the configured one.
pub fn settle_network(
    backend: &str,
    reported: Option<Network>,
    configured: Option<Network>,
) -> Result<Network, WalletError> {
    match (reported, configured) {
        (Some(r), Some(c)) if r != c => Err(WalletError::Other(format!(
            "the {backend} node is on {} but the config says network = \"{}\"; fix the config or point it at the right node",
            r.as_str(),
            c.as_str()
        ))),
        (Some(n), _) | (None, Some(n)) => Ok(n),
        (None, None) => Err(WalletError::Other(format!(
            "the {backend} node did not say which network it is on; set network in the [backend] config"
        ))),
    }
}

/// Check an invoice a backend created for `request`: it decodes, it is for the amount asked,
/// and its payment hash is the one the backend reported (when it reported one). Its expiry is
/// read from the invoice itself.
pub fn check_created(
    backend: &str,
    bolt11: &str,
    reported_hash: Option<crate::l402::PaymentHash>,
    request: &InvoiceRequest,
) -> Result<CreatedInvoice, WalletError> {
    checked_invoice(backend, bolt11, reported_hash, Some(request.amount_msat))
}

/// Check an amountless invoice a backend created ([`crate::wallet::Wallet::create_amountless_invoice`]):
/// it decodes, states no amount (the payer chooses it) and has the payment hash the backend
/// reported (when it reported one).
pub fn check_created_amountless(
    backend: &str,
    bolt11: &str,
    reported_hash: Option<crate::l402::PaymentHash>,
) -> Result<CreatedInvoice, WalletError> {
    checked_invoice(backend, bolt11, reported_hash, None)
}

fn checked_invoice(
    backend: &str,
    bolt11: &str,
    reported_hash: Option<crate::l402::PaymentHash>,
    amount_msat: Option<u64>,
) -> Result<CreatedInvoice, WalletError> {
    let decoded = crate::bolt11::decode(bolt11).map_err(|e| {
        WalletError::Other(format!(
            "the invoice {backend} created could not be read: {e}"
        ))
    })?;
    if reported_hash.is_some_and(|h| h != decoded.payment_hash) {
        return Err(WalletError::Other(format!(
            "{backend} returned an invoice whose payment hash differs from the one it reported"
        )));
    }
    if decoded.amount_msat != amount_msat {
        return Err(WalletError::Other(format!(
            "{backend} created an invoice for {} instead of {}",
            describe_amount(decoded.amount_msat),
            describe_amount(amount_msat)
        )));
    }
    Ok(CreatedInvoice {
        bolt11: decoded.bolt11.clone(),
        payment_hash: decoded.payment_hash,
        expires_at: decoded.expires_at(),
    })
}

fn describe_amount(amount_msat: Option<u64>) -> String {
    match amount_msat {
        Some(m) => format!("{m} msat"),
        None => "no amount".into(),
    }
}

/// The amount to send to an amountless invoice ([`crate::wallet::Wallet::pay_amountless`]),
/// checked before the backend is asked: the invoice must state no amount of its own (one that
/// does is paid with `pay_invoice`, at its amount) and the amount must be positive.
pub fn amountless_amount(
    backend: &str,
    invoice: &DecodedInvoice,
    amount_msat: u64,
) -> Result<u64, WalletError> {
    if let Some(own) = invoice.amount_msat {
        return Err(WalletError::NotPayable(format!(
            "this invoice asks for {own} msat itself: {backend} is asked to pay an amount of our choosing only to an invoice without one"
        )));
    }
    if amount_msat == 0 {
        return Err(WalletError::NotPayable(format!(
            "nothing to pay: {backend} is never asked to send 0 msat"
        )));
    }
    Ok(amount_msat)
}

/// An amount to send in whole sats, for a backend whose API takes only sats: the sats, or a
/// refusal (nothing sent) for an amount that is not a whole number of them.
pub fn send_whole_sats(backend: &str, amount_msat: u64) -> Result<u64, WalletError> {
    if !amount_msat.is_multiple_of(MSAT_PER_SAT) {
        return Err(WalletError::NotPayable(format!(
            "{backend} sends whole sats: {amount_msat} msat is not a whole number of sats, and rounding would pay a different amount"
        )));
    }
    Ok(amount_msat / MSAT_PER_SAT)
}

/// A backend's refusal of an operation its API does not have, made before anything is asked
/// or moved; `why` names what in the backend's API is missing.
pub fn unsupported(backend: &str, operation: &str, why: &str) -> WalletError {
    WalletError::NotPayable(format!("{backend} cannot {operation}: {why}"))
}

/// Refuse an invoice for nothing before a backend is asked (L402 prices are never zero).
pub fn positive_amount(amount_msat: u64) -> Result<u64, WalletError> {
    match amount_msat {
        0 => Err(WalletError::Rejected(
            "invoice amount must be positive".into(),
        )),
        n => Ok(n),
    }
}

/// An invoice amount for a backend that makes invoices in whole sats: the sats, or a refusal
/// made before the backend is asked.
pub fn whole_sats(backend: &str, amount_msat: u64) -> Result<u64, WalletError> {
    positive_amount(amount_msat)?;
    if !amount_msat.is_multiple_of(MSAT_PER_SAT) {
        return Err(WalletError::Rejected(format!(
            "{backend} makes invoices in whole sats: {amount_msat} msat is not a whole number of sats"
        )));
    }
    Ok(amount_msat / MSAT_PER_SAT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_are_read_and_checked() {
        assert_eq!(network_from_name(" Bitcoin "), Some(Network::Mainnet));
        assert_eq!(network_from_name("testnet4"), Some(Network::Testnet));
        assert_eq!(reported_network("x", ""), Ok(None));
        assert!(reported_network("x", "liquid").is_err());
        assert_eq!(
            settle_network("x", Some(Network::Regtest), None),
            Ok(Network::Regtest)
        );
        assert!(settle_network("x", Some(Network::Regtest), Some(Network::Mainnet)).is_err());
        assert!(settle_network("x", None, None).is_err());
    }

    #[test]
    fn amounts_are_whole_sats() {
        assert_eq!(whole_sats("x", 21_000), Ok(21));
        assert!(matches!(whole_sats("x", 0), Err(WalletError::Rejected(_))));
        assert!(
            matches!(whole_sats("x", 1_500), Err(WalletError::Rejected(m)) if m.contains("whole sats"))
        );
        assert_eq!(timeout(None), Duration::from_secs(30));
        assert_eq!(timeout(Some(0)), Duration::from_secs(1));
        assert_eq!(payment_time_limit_secs(Duration::from_secs(5)), 1);
    }
}
