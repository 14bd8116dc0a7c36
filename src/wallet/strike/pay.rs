//! Paying through Strike: the quote, its execution (sent once), and finding a payment again by
//! the ids kept in the storage (Strike finds payments by id only, never by payment hash).

use reqwest::Method;
use serde_json::{Value, json};
use tracing::{error, warn};

use super::api::{self, OutRef};
use super::{KIND, PAYMENT_READ, PREIMAGE_POLLS, QUOTE_CREATE, QUOTE_EXECUTE, StrikeWallet};
use crate::bolt11::DecodedInvoice;
use crate::l402::PaymentHash;
use crate::storage::Direction;
use crate::wallet::toolkit::RestError;
use crate::wallet::toolkit::node::{accepted_outcome, before_sending, follow_pending};
use crate::wallet::{OutgoingStatus, PaymentResult, WalletError};

impl StrikeWallet {
    /// A payment by its id.
    pub(super) async fn payment(
        &self,
        id: &str,
        hash: &PaymentHash,
    ) -> Result<OutgoingStatus, WalletError> {
        let v: Value = self
            .api
            .rest
            .get(&format!("v1/payments/{id}"))
            .await
            .map_err(|e| self.call_error("looking the payment up", PAYMENT_READ, e))?;
        api::outgoing(&v, hash).map_err(|e| WalletError::Other(format!("Strike answered {e}")))
    }

    /// A payment whose execution answer was lost, by its quote: `GET /v1/payment-quotes/{id}`
    /// (not in Strike's documented endpoint list; read as LNbits reads it). Without a definite
    /// answer it stays in flight: the execution may have gone through.
    pub(super) async fn by_quote(
        &self,
        out: &mut OutRef,
        hash: &PaymentHash,
    ) -> Result<OutgoingStatus, WalletError> {
        let v = match self
            .api
            .rest
            .get::<Value>(&format!("v1/payment-quotes/{}", out.quote))
            .await
        {
            Ok(v) => v,
            Err(e) => {
                warn!(error = %self.api.redact(e.to_string()), "Strike's quote could not be read; the payment stays in flight");
                return Ok(OutgoingStatus::InFlight);
            }
        };
        if let Some(id) = v.get("paymentId").and_then(Value::as_str) {
            out.payment = Some(id.to_owned());
            self.refs
                .put(KIND, Direction::Out, hash, &out.text())
                .await?;
            return self.payment(id, hash).await;
        }
        Ok(match api::outgoing(&v, hash) {
            Ok(s @ OutgoingStatus::Succeeded(_)) => s,
            _ => OutgoingStatus::InFlight,
        })
    }

    /// What Strike answered to the execution: followed while pending, with the preimage Strike
    /// may add a moment after it completed.
    pub(super) async fn executed(
        &self,
        out: &mut OutRef,
        invoice: &DecodedInvoice,
        answer: &Value,
        quoted_fee: u64,
    ) -> Result<PaymentResult, WalletError> {
        let hash = &invoice.payment_hash;
        if let Some(id) = answer.get("paymentId").and_then(Value::as_str) {
            out.payment = Some(id.to_owned());
            if let Err(e) = self.refs.put(KIND, Direction::Out, hash, &out.text()).await {
                // Money may have moved: the quote's id is kept, and leads to the payment.
                error!(error = %e, "could not keep Strike's payment id");
            }
        }
        let lookup = || async {
            let mut o = out.clone();
            self.lookup_ref(&mut o, hash).await
        };
        let outcome = match api::outgoing(answer, hash) {
            Ok(OutgoingStatus::Succeeded(r)) if r.preimage.is_some() => {
                Ok(OutgoingStatus::Succeeded(r))
            }
            Ok(OutgoingStatus::Failed(why)) => Ok(OutgoingStatus::Failed(why)),
            _ => follow_pending(lookup).await,
        };
        let mut result = accepted_outcome("Strike", outcome)?;
        for delay in PREIMAGE_POLLS {
            if result.preimage.is_some() {
                break;
            }
            tokio::time::sleep(delay).await;
            if let Ok(OutgoingStatus::Succeeded(r)) = lookup().await {
                result = r;
            }
        }
        if result.fee_msat == 0 {
            result.fee_msat = quoted_fee;
        }
        self.preimages.note(KIND, &result);
        Ok(result)
    }

    /// What the kept reference says of a payment.
    pub(super) async fn lookup_ref(
        &self,
        out: &mut OutRef,
        hash: &PaymentHash,
    ) -> Result<OutgoingStatus, WalletError> {
        if out.refused {
            return Ok(OutgoingStatus::Failed(
                "Strike refused to execute the payment quote".into(),
            ));
        }
        match out.payment.clone() {
            Some(id) => self.payment(&id, hash).await,
            None => self.by_quote(out, hash).await,
        }
    }

    /// The quote for paying `invoice`, and the fee it shows, checked: in BTC, for the
    /// invoice's amount, within the fee limit. Moves no money.
    pub(super) async fn quote(
        &self,
        invoice: &DecodedInvoice,
        amount_sats: Option<u64>,
        max_fee_msat: u64,
    ) -> Result<(String, u64), WalletError> {
        let key = api::uuid_v4();
        let mut body = json!({ "lnInvoice": invoice.bolt11, "sourceCurrency": "BTC" });
        if let Some(sats) = amount_sats {
            // "Amount to send if using zero amount invoice. Must be omitted otherwise"; the
            // fee policy defaults to EXCLUSIVE (the fee on top), so the payee gets it all.
            body["amount"] = api::btc_amount(sats);
        }
        // Retried safely: Strike answers a repeated idempotency key with the same quote.
        let q: Value = self
            .api
            .rest
            .send_with(
                Method::POST,
                "v1/payment-quotes/lightning",
                Some(&body),
                &[("idempotency-key", key.as_str())],
                true,
            )
            .await
            .map_err(|e| match e {
                RestError::Status { status: 403, .. } => {
                    WalletError::NotPayable(self.lacks(QUOTE_CREATE, "paying"))
                }
                RestError::Status {
                    status: 400 | 404 | 409 | 422,
                    body,
                } => {
                    let b = api::error_body(&body);
                    if b.code.as_deref() == Some("DUPLICATE_PAYMENT_QUOTE") {
                        return WalletError::Unavailable(
                            "Strike's answer to the payment quote was lost; nothing was paid: try again".into(),
                        );
                    }
                    WalletError::Rejected(format!(
                        "Strike will not pay this invoice ({}: {}); nothing was paid",
                        b.code.as_deref().unwrap_or("refused"),
                        b.message
                    ))
                }
                e => before_sending(self.call_error("asking for a payment quote", QUOTE_CREATE, e)),
            })?;
        let id = q
            .get("paymentQuoteId")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                WalletError::Unavailable(
                    "Strike answered the quote without its id; nothing was paid".into(),
                )
            })?;
        let quoted = |what: &str, r: Option<Result<u64, String>>| {
            r.transpose()
                .map_err(|e| {
                    WalletError::Rejected(format!(
                        "Strike quoted {what} as {e}: l402-mcp pays from the BTC balance only; nothing was paid"
                    ))
                })
        };
        let amount = quoted("the amount", api::first_btc_msat(&q, &["/amount"]))?;
        let fee = quoted("the fee", api::fee_msat(&q))?.unwrap_or(0);
        // Strike writes whole sats: the invoice's amount (or the one asked), rounded either way.
        let asked = amount_sats.map(|s| s.saturating_mul(1000));
        if let (Some(a), Some(want)) = (amount, asked.or(invoice.amount_msat))
            && a.abs_diff(want) >= 1000
        {
            return Err(WalletError::Rejected(format!(
                "Strike quoted {a} msat for an invoice of {want} msat; nothing was paid"
            )));
        }
        if fee > max_fee_msat {
            return Err(WalletError::Rejected(format!(
                "Strike's fee for this payment is {fee} msat, above the fee limit of {max_fee_msat} msat; nothing was paid"
            )));
        }
        Ok((id.to_owned(), fee))
    }

    /// What a failed execution means for the money: refused for sure (nothing moved, and the
    /// reference says so), or unknown.
    pub(super) async fn execute_failed(
        &self,
        out: &mut OutRef,
        hash: &PaymentHash,
        e: RestError,
    ) -> WalletError {
        let definite = match &e {
            RestError::NotSent(m) => Some(self.api.unreachable(m)),
            RestError::Status { status: 401, .. } => Some(self.api.key_refused(401)),
            RestError::Status { status: 403, .. } => {
                Some(WalletError::NotPayable(self.lacks(QUOTE_EXECUTE, "paying")))
            }
            RestError::Status { status: 429, .. } => Some(WalletError::Unavailable(format!(
                "Strike is rate-limiting this client ({e}); nothing was paid"
            ))),
            RestError::Status { status, body } if (400..500).contains(status) => {
                let b = api::error_body(body);
                b.code
                    .as_deref()
                    .filter(|c| api::DEFINITE_REFUSALS.contains(c) || *status == 400)
                    .map(|c| WalletError::Rejected(format!("Strike: {c}: {}", b.message)))
            }
            _ => None,
        };
        match definite {
            Some(refusal) => {
                out.refused = true;
                if let Err(e) = self.refs.put(KIND, Direction::Out, hash, &out.text()).await {
                    warn!(error = %e, "could not note the refusal; the payment is looked up by its quote");
                }
                refusal
            }
            None => WalletError::OutcomeUnknown(self.api.redact(format!(
                "{e}; the payment may have gone out, so it stays pending and is reconciled through Strike's payment lookup"
            ))),
        }
    }
}
