//! What LNbits' answer to a payment request means for the money: an error answer refused it
//! for sure or not ([`LnbitsWallet::refused`]); an accepted payment is settled, or followed
//! through lookups while LNbits says it is pending ([`LnbitsWallet::accepted`]).

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
        payment_hash: &[u8; 32],
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
        payment_hash: &[u8; 32],
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bolt11::{DecodedInvoice, Network};
    use crate::wallet::lnbits::LnbitsConfig;

    /// A stand-in answering as LNbits 1.6.2 does in the cases its FakeWallet cannot produce
    /// (payments that stay pending, lost answers, crashes). `pay` answers the payment request
    /// (status 0: never in time); `lookups` answer the lookups in turn, the last one repeating.
    async fn replay(pay: (u16, String), lookups: Vec<(u16, String)>) -> LnbitsWallet {
        use axum::extract::State;
        use axum::http::StatusCode;
        use axum::routing::{get, post};
        use std::sync::{Arc, Mutex};

        type Answers = Arc<(Mutex<Vec<(u16, String)>>, (u16, String))>;
        fn answer((status, body): (u16, String)) -> (StatusCode, String) {
            (
                StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                body,
            )
        }
        let state: Answers = Arc::new((Mutex::new(lookups), pay));
        let app = axum::Router::new()
            .route(
                "/api/v1/payments",
                post(|State(s): State<Answers>| async move {
                    if s.1.0 == 0 {
                        tokio::time::sleep(Duration::from_secs(5)).await;
                    }
                    answer(s.1.clone())
                }),
            )
            .route(
                "/api/v1/payments/{hash}",
                get(|State(s): State<Answers>| async move {
                    let mut queue = s.0.lock().unwrap_or_else(|e| e.into_inner());
                    let next = if queue.len() > 1 {
                        queue.remove(0)
                    } else {
                        queue.first().cloned().unwrap_or((404, String::new()))
                    };
                    answer(next)
                }),
            )
            .route(
                "/api/v1/wallet",
                get(|| async { r#"{"name":"w","balance":5000000,"id":"x"}"#.to_owned() }),
            )
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let url = format!(
            "http://{}",
            listener.local_addr().unwrap_or_else(|e| panic!("{e}"))
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        LnbitsWallet::new(&LnbitsConfig {
            url,
            admin_key: Some("admin".into()),
            invoice_key: Some("invoice".into()),
            network: None,
            timeout_secs: Some(1),
        })
        .unwrap_or_else(|e| panic!("{e}"))
    }

    fn an_invoice() -> (DecodedInvoice, [u8; 32]) {
        let preimage = [7u8; 32];
        let key = bitcoin::secp256k1::SecretKey::from_slice(&[0x42; 32])
            .unwrap_or_else(|e| panic!("{e}"));
        let bolt11 = crate::bolt11::create(
            &key,
            &crate::bolt11::NewInvoice {
                network: Network::Mainnet,
                amount_msat: Some(1_000),
                description: "replay",
                payment_hash: crate::l402::sha256(&preimage),
                payment_secret: [1; 32],
                timestamp: 1_800_000_000,
                expiry_secs: 600,
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
        (
            crate::bolt11::decode(&bolt11).unwrap_or_else(|e| panic!("{e}")),
            preimage,
        )
    }

    #[tokio::test]
    async fn the_pay_path_keeps_payments_pending_unless_lnbits_is_sure() {
        let (inv, preimage) = an_invoice();
        let pre = hex::encode(preimage);
        let paid = format!(
            r#"{{"paid":true,"preimage":"{pre}","details":{{"amount":-1000,"fee":-3000,"status":"success","preimage":"{pre}"}}}}"#
        );
        let pending = r#"{"paid":false,"status":"pending","details":{"amount":-1000,"fee":-2000,"status":"pending"}}"#.to_owned();
        let unknown = |r: &Result<PaymentResult, WalletError>| matches!(r, Err(e @ WalletError::OutcomeUnknown(_)) if !e.definitely_not_paid());

        // A crash inside LNbits, a lost answer, LNbits' own "pending": never definite.
        let w = replay(
            (500, r#"{"detail":"Unexpected error! ID: 1"}"#.into()),
            vec![],
        )
        .await;
        assert!(unknown(&w.pay_invoice(&inv, 0).await));
        let w = replay((0, String::new()), vec![]).await;
        assert!(unknown(&w.pay_invoice(&inv, 0).await));
        let w = replay(
            (
                520,
                r#"{"detail":"Payment is still pending.","status":"pending"}"#.into(),
            ),
            vec![],
        )
        .await;
        assert!(unknown(&w.pay_invoice(&inv, 0).await));
        // Accepted but still routing after the polls: unknown, to be reconciled.
        let w = replay(
            (201, r#"{"status":"pending"}"#.into()),
            vec![(200, pending.clone())],
        )
        .await;
        assert!(unknown(&w.pay_invoice(&inv, 0).await));

        // Accepted as pending, then paid: the preimage and fee come from the lookup.
        let w = replay(
            (201, r#"{"status":"pending","fee":-2000}"#.into()),
            vec![(200, pending.clone()), (200, paid.clone())],
        )
        .await;
        assert_eq!(
            w.pay_invoice(&inv, 0).await,
            Ok(PaymentResult {
                preimage: Some(preimage),
                fee_msat: 3000
            })
        );
        // Accepted as pending, then failed: definite.
        let w = replay(
            (201, r#"{"status":"pending"}"#.into()),
            vec![(
                200,
                r#"{"paid":false,"status":"failed","details":{"amount":-1000,"status":"failed"}}"#
                    .into(),
            )],
        )
        .await;
        assert!(matches!(
            w.pay_invoice(&inv, 0).await,
            Err(WalletError::Rejected(_))
        ));
        // An older LNbits answers only with the hash: the lookup tells.
        let w = replay(
            (
                201,
                format!(r#"{{"payment_hash":"{}"}}"#, hex::encode(inv.payment_hash)),
            ),
            vec![(200, paid.clone())],
        )
        .await;
        assert_eq!(
            w.pay_invoice(&inv, 0).await.map(|r| r.preimage),
            Ok(Some(preimage))
        );
        // Paid, with the all-zero placeholder and no better preimage anywhere: paid, without
        // proof (the pay path records and reports that).
        let w = replay(
            (
                201,
                format!(r#"{{"status":"success","fee":-1000,"preimage":"{}"}}"#, "0".repeat(64)),
            ),
            vec![(
                200,
                r#"{"paid":true,"preimage":null,"details":{"amount":-1000,"fee":-1000,"status":"success"}}"#
                    .into(),
            )],
        )
        .await;
        assert_eq!(
            w.pay_invoice(&inv, 0).await,
            Ok(PaymentResult {
                preimage: None,
                fee_msat: 1000
            })
        );
        // "Already paid", by someone else (this wallet has no such payment): definite.
        let w = replay(
            (
                520,
                r#"{"detail":"Payment already paid.","status":"success"}"#.into(),
            ),
            vec![(404, r#"{"detail":"Payment does not exist."}"#.into())],
        )
        .await;
        assert!(matches!(
            w.pay_invoice(&inv, 0).await,
            Err(WalletError::Rejected(_))
        ));
        // ... and by this wallet: its earlier payment.
        let w = replay(
            (
                520,
                r#"{"detail":"Payment already paid.","status":"success"}"#.into(),
            ),
            vec![(200, paid)],
        )
        .await;
        assert_eq!(
            w.pay_invoice(&inv, 0).await.map(|r| r.preimage),
            Ok(Some(preimage))
        );
    }
}
