//! The two wallet operations a `Payment` session needs, held to one contract on every
//! backend's stand-in that has them: the buyer's amountless return invoice
//! (`create_amountless_invoice`) and the seller's refund to it (`pay_amountless`). The refund is
//! a payment like any other, so the pay path's rules hold for it: a definite refusal only when
//! nothing moved, an unknown outcome left to the backend's lookup by payment hash (which then
//! resolves it with its proof), an invoice that states its own amount refused before anything
//! is sent. A backend whose API has neither refuses both, naming itself and why, before any
//! request.

use l402_mcp::bolt11;
use l402_mcp::wallet::{OutgoingStatus, PaymentResult, WalletError};

use crate::suite::{BackendFixture, Scenario, TestInvoice};

/// A stand-in whose backend can pay (and maybe create) amountless invoices.
#[async_trait::async_trait]
pub trait SessionFixture: BackendFixture {
    /// An invoice without an amount the backend can pay; `seed` makes it distinct.
    async fn amountless_invoice(&self, seed: u8) -> TestInvoice;
    /// The amount, in msat, the last payment request told the backend to send (read from
    /// the request in the API's own field and units), if it named one.
    async fn amount_sent_msat(&self) -> Option<u64>;
    /// Whether the last request to create an invoice named an amount (panics for a stand-in
    /// whose backend cannot create amountless invoices).
    async fn invoice_request_had_amount(&self) -> bool {
        panic!("this backend does not create amountless invoices")
    }
}

/// What a refund pays: 7 sats back of a deposit, within a 10-sat fee limit.
const REFUND_MSAT: u64 = 7_000;
const MAX_FEE_MSAT: u64 = 10_000;

fn decoded(inv: &TestInvoice) -> bolt11::DecodedInvoice {
    bolt11::decode(&inv.bolt11).expect("a test invoice decodes")
}

/// Paid: the amount chosen is the one sent, the preimage proves it, the backend's lookup
/// agrees; an invoice with its own amount is refused before anything is sent.
pub async fn pays_amountless<F: SessionFixture>() {
    let f = F::start(Scenario::Paid).await;
    let wallet = f.wallet().await;
    assert!(wallet.pays_amountless(), "it says it can sell sessions");
    let inv = f.amountless_invoice(0x61).await;
    let paid = wallet
        .pay_amountless(&decoded(&inv), REFUND_MSAT, MAX_FEE_MSAT)
        .await
        .expect("paid");
    assert_eq!(
        paid.preimage,
        Some(inv.preimage),
        "the preimage is reported"
    );
    assert_eq!(paid.fee_msat, F::FEE_MSAT, "the fee is reported");
    assert_eq!(
        f.amount_sent_msat().await,
        Some(REFUND_MSAT),
        "the backend was told the amount"
    );
    assert!(matches!(
        wallet.lookup_outgoing(&inv.hash).await,
        Ok(OutgoingStatus::Succeeded(PaymentResult { preimage: Some(p), .. })) if p == inv.preimage
    ));
    assert_eq!(f.pay_calls().await, 1);

    let priced = f.invoice(0x62).await;
    let refused = wallet
        .pay_amountless(&decoded(&priced), REFUND_MSAT, MAX_FEE_MSAT)
        .await;
    assert!(
        matches!(&refused, Err(WalletError::NotPayable(m)) if m.contains("asks for")),
        "{refused:?}"
    );
    let nothing = wallet.pay_amountless(&decoded(&inv), 0, MAX_FEE_MSAT).await;
    assert!(
        matches!(nothing, Err(WalletError::NotPayable(_))),
        "{nothing:?}"
    );
    assert_eq!(f.pay_calls().await, 1, "nothing sent for either");
}

/// A definite refusal from the backend: nothing moved, and the reason is given.
pub async fn amountless_refused<F: SessionFixture>() {
    let f = F::start(Scenario::Failed).await;
    let inv = f.amountless_invoice(0x63).await;
    let err = f
        .wallet()
        .await
        .pay_amountless(&decoded(&inv), REFUND_MSAT, MAX_FEE_MSAT)
        .await
        .expect_err("refused");
    assert!(err.definitely_not_paid(), "{err}");
    assert!(
        err.to_string()
            .to_lowercase()
            .contains(&F::FAILURE_REASON.to_lowercase()),
        "{err}"
    );
}

/// No answer: the outcome is unknown (never called a refusal), and the backend's lookup by
/// payment hash resolves it with its proof once the payment completes.
pub async fn amountless_unknown<F: SessionFixture>() {
    let f = F::start(Scenario::Hang).await;
    let wallet = f.wallet().await;
    let inv = f.amountless_invoice(0x64).await;
    let err = wallet
        .pay_amountless(&decoded(&inv), REFUND_MSAT, MAX_FEE_MSAT)
        .await
        .expect_err("no answer");
    assert!(matches!(err, WalletError::OutcomeUnknown(_)), "{err:?}");
    assert!(!err.definitely_not_paid());
    assert_eq!(
        wallet.lookup_outgoing(&inv.hash).await,
        Ok(OutgoingStatus::InFlight)
    );
    f.settle(&inv).await;
    assert!(matches!(
        wallet.lookup_outgoing(&inv.hash).await,
        Ok(OutgoingStatus::Succeeded(PaymentResult { preimage: Some(p), .. })) if p == inv.preimage
    ));
}

/// The return invoice: asked for without an amount, and checked to have none.
pub async fn creates_amountless<F: SessionFixture>() {
    let f = F::start(Scenario::Paid).await;
    let created = f
        .wallet()
        .await
        .create_amountless_invoice("refund of a Payment session", 3600)
        .await
        .expect("created");
    let d = bolt11::decode(&created.bolt11).expect("decodes");
    assert_eq!(d.amount_msat, None, "the payer chooses the amount");
    assert_eq!(d.payment_hash, created.payment_hash);
    assert!(
        !f.invoice_request_had_amount().await,
        "no amount was asked for"
    );
}

/// A backend whose API cannot make an amountless invoice says so, naming itself, before any
/// request.
pub async fn refuses_to_create<F: BackendFixture>(backend: &str) {
    let f = F::start(Scenario::Paid).await;
    let err = f
        .wallet()
        .await
        .create_amountless_invoice("refund of a Payment session", 3600)
        .await
        .expect_err("refused");
    assert!(
        matches!(&err, WalletError::NotPayable(m) if m.starts_with(backend) && m.contains("amountless")),
        "{err:?}"
    );
}

/// A backend whose API cannot pay an amountless invoice says so, naming itself, before any
/// payment request.
pub async fn refuses_to_pay<F: BackendFixture>(backend: &str) {
    let f = F::start(Scenario::Paid).await;
    let inv = TestInvoice::regtest_amountless(0x21, 0x65);
    let wallet = f.wallet().await;
    assert!(!wallet.pays_amountless(), "it says it cannot sell sessions");
    let err = wallet
        .pay_amountless(&decoded(&inv), REFUND_MSAT, MAX_FEE_MSAT)
        .await
        .expect_err("refused");
    assert!(
        matches!(&err, WalletError::NotPayable(m) if m.starts_with(backend) && m.contains("amountless")),
        "{err:?}"
    );
    assert!(err.definitely_not_paid());
    if F::PAYS {
        assert_eq!(f.pay_calls().await, 0, "nothing sent");
    }
}

/// Pay a 7-sat refund to an amountless invoice and make a return invoice ("a refund", 600 s),
/// for a backend's own test of the requests its API was sent: the invoice paid.
pub async fn refund_and_return_invoice<F: SessionFixture>(f: &F) -> TestInvoice {
    let wallet = f.wallet().await;
    let inv = f.amountless_invoice(0x66).await;
    wallet
        .pay_amountless(&decoded(&inv), REFUND_MSAT, MAX_FEE_MSAT)
        .await
        .expect("paid");
    wallet
        .create_amountless_invoice("a refund", 600)
        .await
        .expect("created");
    inv
}

macro_rules! session_tests {
    ($backend:ident, $fixture:ty, [$($scenario:ident),* $(,)?]) => {
        mod $backend {
            $(
                #[tokio::test]
                async fn $scenario() {
                    $crate::sessions::$scenario::<$fixture>().await;
                }
            )*
        }
    };
}
pub(crate) use session_tests;
