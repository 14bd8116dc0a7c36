//! The fake wallet on its own; the contract suite (tests/contract.rs) runs it as a backend.

use super::*;
use crate::clock::ManualClock;

const T0: u64 = 1_800_000_000;

fn pair() -> (FakeWallet, FakeWallet) {
    let node = FakeNode::new(Network::Regtest, ManualClock::new(T0));
    (node.wallet(100_000), node.wallet(0))
}

async fn invoice(w: &FakeWallet, amount_msat: u64) -> DecodedInvoice {
    let created = w
        .create_invoice(&InvoiceRequest {
            amount_msat,
            description: "t".into(),
            expiry_secs: 600,
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    bolt11::decode(&created.bolt11).unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test]
async fn a_payment_between_two_wallets_moves_the_money() {
    let (buyer, seller) = pair();
    let inv = invoice(&seller, 21_000).await;
    assert_eq!(
        seller.lookup_incoming(&inv.payment_hash).await,
        Ok(IncomingStatus::Pending)
    );
    buyer.script([Outcome::Paid { fee_msat: 7 }]);
    let paid = buyer
        .pay_invoice(&inv, 100)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        paid.preimage.map(|p| p.payment_hash()),
        Some(inv.payment_hash)
    );
    assert_eq!(
        buyer.lookup_outgoing(&inv.payment_hash).await,
        Ok(OutgoingStatus::Succeeded(paid))
    );
    assert_eq!(
        seller.lookup_incoming(&inv.payment_hash).await,
        Ok(IncomingStatus::Settled {
            amount_msat: 21_000
        })
    );
    assert_eq!(
        (buyer.balance_msat(), seller.balance_msat()),
        (100_000 - 21_007, 21_000)
    );
    assert_eq!(
        buyer.lookup_incoming(&inv.payment_hash).await,
        Ok(IncomingStatus::NotFound)
    );
}

#[tokio::test]
async fn scripted_outcomes_answer_and_record_as_a_backend_would() {
    let (buyer, seller) = pair();
    buyer.script([
        Outcome::Failed("no route".into()),
        Outcome::Pending,
        Outcome::LateSuccess { fee_msat: 3 },
        Outcome::Dropped,
        Outcome::Unreachable,
    ]);
    let a = invoice(&seller, 1_000).await;
    let failed = buyer.pay_invoice(&a, 0).await;
    assert!(matches!(&failed, Err(e @ WalletError::Rejected(_)) if e.definitely_not_paid()));
    assert!(matches!(
        buyer.lookup_outgoing(&a.payment_hash).await,
        Ok(OutgoingStatus::Failed(_))
    ));

    let b = invoice(&seller, 1_000).await;
    let pending = buyer.pay_invoice(&b, 0).await;
    assert!(matches!(pending, Err(WalletError::OutcomeUnknown(_))));
    assert_eq!(
        buyer.lookup_outgoing(&b.payment_hash).await,
        Ok(OutgoingStatus::InFlight)
    );
    buyer.settle(&b.payment_hash);
    assert!(matches!(
        buyer.lookup_outgoing(&b.payment_hash).await,
        Ok(OutgoingStatus::Succeeded(PaymentResult {
            preimage: Some(_),
            ..
        }))
    ));

    let c = invoice(&seller, 1_000).await;
    assert!(buyer.pay_invoice(&c, 0).await.is_err());
    assert_eq!(
        buyer.lookup_outgoing(&c.payment_hash).await,
        Ok(OutgoingStatus::InFlight)
    );
    assert!(matches!(
        buyer.lookup_outgoing(&c.payment_hash).await,
        Ok(OutgoingStatus::Succeeded(PaymentResult { fee_msat: 3, .. }))
    ));

    let d = invoice(&seller, 1_000).await;
    assert!(matches!(
        buyer.pay_invoice(&d, 0).await,
        Err(WalletError::OutcomeUnknown(_))
    ));
    assert_eq!(
        buyer.lookup_outgoing(&d.payment_hash).await,
        Ok(OutgoingStatus::NotFound)
    );
    assert!(matches!(
        buyer.pay_invoice(&d, 0).await,
        Err(WalletError::Unavailable(_))
    ));
    assert_eq!(buyer.pay_calls(), 5);
    assert_eq!(buyer.balance_msat(), 100_000 - 2_003);
    buyer.fail_lookups(true);
    assert!(buyer.lookup_outgoing(&d.payment_hash).await.is_err());
}

#[tokio::test]
async fn invoices_it_cannot_settle_or_afford_are_refused() {
    let (buyer, seller) = pair();
    let too_big = invoice(&seller, 200_000).await;
    assert!(matches!(
        buyer.pay_invoice(&too_big, 0).await,
        Err(WalletError::Rejected(m)) if m.contains("insufficient")
    ));
    let other_node = FakeNode::new(Network::Regtest, ManualClock::new(T0)).wallet(0);
    let elsewhere = invoice(&other_node, 1_000).await;
    assert!(matches!(
        buyer.pay_invoice(&elsewhere, 0).await,
        Err(WalletError::Rejected(m)) if m.contains("no route")
    ));
    assert_eq!(buyer.balance_msat(), 100_000);
}
