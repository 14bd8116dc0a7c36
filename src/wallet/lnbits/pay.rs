//! What LNbits' answer to a payment request means for the money: an error answer refused it
//! for sure or not ([`LnbitsWallet::refused`]); an accepted payment is settled, or followed
//! through lookups while LNbits says it is pending ([`LnbitsWallet::accepted`]). Tested against
//! a replay of LNbits' answers in tests/contract/lnbits.rs.

use std::time::Duration;

use serde_json::Value;
use tracing::info;

use super::api::fee_of;
use super::error::{ErrorBody, Refusal, classify_refusal};
use super::{Client, LnbitsWallet};
use crate::wallet::toolkit::json::preimage as preimage_of;
use crate::wallet::{OutgoingStatus, PaymentResult, Wallet, WalletError};

/// How long to keep asking about a payment LNbits accepted as pending before calling its
/// outcome unknown (it is then reconciled later).
const PENDING_POLLS: [Duration; 3] = [
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_secs(2),
];

impl LnbitsWallet {
    /// What an error answer to the payment request means for the money.
    pub(super) async fn refused(
        &self,
        client: &Client,
        payment_hash: &crate::l402::PaymentHash,
        status: u16,
        body: &str,
    ) -> Result<PaymentResult, WalletError> {
        let b = ErrorBody::parse(body);
        let detail = self.redact(b.detail.clone());
        match classify_refusal(status, &b) {
            Refusal::Key => Err(self
                .key_error(client.key, status, &b)
                .unwrap_or_else(|| self.not_lnbits(status))),
            Refusal::NotLnbits => Err(self.not_lnbits(status)),
            Refusal::RateLimited => Err(WalletError::Unavailable(format!(
                "LNbits is rate-limiting this client (HTTP 429 {detail}); nothing was paid"
            ))),
            Refusal::Definite => Err(WalletError::Rejected(format!("LNbits: {detail}"))),
            Refusal::AlreadyPaid => match self.lookup_outgoing(payment_hash).await {
                Ok(OutgoingStatus::Succeeded(r)) => {
                    info!("LNbits says this wallet paid the invoice before");
                    Ok(r)
                }
                Ok(OutgoingStatus::NotFound) => Err(WalletError::Rejected(format!(
                    "LNbits: {detail} (the invoice was paid already, not by this wallet)"
                ))),
                _ => Err(WalletError::OutcomeUnknown(format!(
                    "LNbits: {detail}; this wallet's part could not be confirmed, so the payment stays pending and is reconciled"
                ))),
            },
            Refusal::Unknown => Err(WalletError::OutcomeUnknown(format!(
                "LNbits answered HTTP {status} {detail}; the payment may have gone out, so it stays pending and is reconciled through LNbits' payment lookup"
            ))),
        }
    }

    /// LNbits accepted the payment: settle what it answered, asking it when the answer has no
    /// preimage or the payment is still under way.
    pub(super) async fn accepted(
        &self,
        payment_hash: &crate::l402::PaymentHash,
        answer: &Value,
    ) -> Result<PaymentResult, WalletError> {
        let status = answer.get("status").and_then(Value::as_str);
        let preimage = answer
            .get("preimage")
            .and_then(Value::as_str)
            .and_then(preimage_of);
        let fee_msat = fee_of(answer);
        match (status, preimage) {
            (Some("success"), Some(_)) => return Ok(PaymentResult { preimage, fee_msat }),
            (Some("failed"), _) => {
                return Err(WalletError::Rejected(
                    "LNbits marked the payment failed".into(),
                ));
            }
            _ => {}
        }
        // Paid without a preimage, pending, or an older LNbits answering only with the hash.
        let mut outcome = self.lookup_outgoing(payment_hash).await;
        for delay in PENDING_POLLS {
            if !matches!(outcome, Ok(OutgoingStatus::InFlight)) {
                break;
            }
            tokio::time::sleep(delay).await;
            outcome = self.lookup_outgoing(payment_hash).await;
        }
        match outcome {
            Ok(OutgoingStatus::Succeeded(r)) => Ok(PaymentResult {
                preimage: r.preimage.or(preimage),
                fee_msat: if r.fee_msat > 0 { r.fee_msat } else { fee_msat },
            }),
            Ok(OutgoingStatus::Failed(why)) => Err(WalletError::Rejected(why)),
            // LNbits said paid: money moved. A missing preimage is the pay path's to report.
            _ if status == Some("success") => Ok(PaymentResult { preimage, fee_msat }),
            Ok(OutgoingStatus::InFlight) => Err(WalletError::OutcomeUnknown(
                "LNbits reports the payment as still pending; it stays pending here and is reconciled through LNbits' payment lookup".into(),
            )),
            Ok(OutgoingStatus::NotFound) => Err(WalletError::OutcomeUnknown(
                "LNbits accepted the payment but shows no record of it yet; it stays pending and is reconciled".into(),
            )),
            Err(e) => Err(WalletError::OutcomeUnknown(format!(
                "LNbits accepted the payment, but its status could not be read ({e}); it stays pending and is reconciled"
            ))),
        }
    }
}
