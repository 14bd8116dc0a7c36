//! The worked examples of the protocol document (`mpp-protocol.md` sections 2, 6 and 7), as
//! test vectors: secret, invoices, preimages, hashes and ids, byte for byte.
#![allow(clippy::unwrap_used)]

use super::challenge::PaymentChallenge;
use super::lightning::ChargeRequest;
use crate::{PaymentHash, Preimage, parse_hex32};

/// The vector secret (ASCII `mpp-test-vector-secret`).
pub const SECRET: &[u8] = b"mpp-test-vector-secret";

pub const CHARGE_INVOICE: &str = "lnbc1u1p54twgqdqh2ajkzargv4ezqun9wphhyaqpp5jnw5md68tvvl9tgpk76z494rhn2kvjmqu4sqag90ue86ntdq7cussp5l3fuda3qhp7gyttw66cq7sdmrql0gjhqm7hjqd5mr9aa78ljwttq9qrsgqxqrrsscqzzs9xsgxf00f80v6dus4ja0ckckv8r03ltwdf3p0ppy3k0zdmnzu55jw4j8g034dg5wuk4d5cvd8rslm5qclgsv0eaqgsxjut655s8mgxgpesl8nh";
pub const CHARGE_PREIMAGE: &str =
    "be4167decd74ed7bfe7fb0d8d8bcec904cf3483a1eb52fe022af9bb54f1c4495";
pub const CHARGE_HASH: &str = "94dd4db7475b19f2ad01b7b42a96a3bcd5664b60e5600ea0afe64fa9ada0f639";
pub const CHARGE_ID: &str = "2x10kcXhp2OL985DfZArNXuEcyKpMGXFcQqzMY1lIQE";

/// Section 7's deposit invoice (label `mpp-doc/deposit`, 2000 sat, memo `Session deposit`).
pub const DEPOSIT_INVOICE: &str = "lnbc20u1p54twgqdqc2djhxumfdahzqer9wphhx6t5pp5wt7p572e72yzedrws4xakyk73mt4tecdg3myz359c37gs63ehcmssp5a02px5vkhd06r9khgrmdz6e3083x57q5u328uv6ew7v6vrch0kjq9qrsgqxqrrsscqzzsq9j2hnk7h9pnlkqackn6kk4emn5qlegrvf89ctrqdq7xjyfvkjfswp5cfn7gnh6496lddhdxgvy5raemal7lxlwfaqn0y7czg6u0mjspd4sqew";
pub const DEPOSIT_PREIMAGE: &str =
    "957693f5ef4da913744a7a4a9a4f2edc435075d3d6c4f613ef141d8f9144a6a9";
pub const DEPOSIT_HASH: &str = "72fc1a7959f2882cb46e854ddb12de8ed755e70d4476414685c47c886a39be37";
pub const SESSION_REQUEST_JCS: &str = concat!(
    r#"{"amount":"100","currency":"sat","depositAmount":"2000","depositInvoice":""#,
    "lnbc20u1p54twgqdqc2djhxumfdahzqer9wphhx6t5pp5wt7p572e72yzedrws4xakyk73mt4tecdg3myz359c37gs63ehcmssp5a02px5vkhd06r9khgrmdz6e3083x57q5u328uv6ew7v6vrch0kjq9qrsgqxqrrsscqzzsq9j2hnk7h9pnlkqackn6kk4emn5qlegrvf89ctrqdq7xjyfvkjfswp5cfn7gnh6496lddhdxgvy5raemal7lxlwfaqn0y7czg6u0mjspd4sqew",
    r#"","idleTimeout":"300","paymentHash":"72fc1a7959f2882cb46e854ddb12de8ed755e70d4476414685c47c886a39be37"}"#
);

pub const TOPUP_PREIMAGE: &str = "88bb8919d972e8365887602e2b594e48d9faed12c65dd674543b71911cf23154";
pub const TOPUP_HASH: &str = "e7752d26aa5b81c99f24f094fa6e46ef8c0dc2067c9184a35eb4e14bbdaf35f6";

pub fn charge_preimage() -> Preimage {
    Preimage(parse_hex32(CHARGE_PREIMAGE).unwrap())
}

pub fn charge_request() -> ChargeRequest {
    ChargeRequest {
        amount_sats: 100,
        currency: "sat".into(),
        description: Some("Weather report".into()),
        recipient: None,
        external_id: None,
        invoice: CHARGE_INVOICE.into(),
        payment_hash: Some(PaymentHash(parse_hex32(CHARGE_HASH).unwrap())),
        network: Some("mainnet".into()),
    }
}

/// Section 6's challenge, sealed with the vector secret.
pub fn charge_challenge() -> PaymentChallenge {
    PaymentChallenge {
        realm: "api.example.com".into(),
        method: "lightning".into(),
        intent: "charge".into(),
        request: charge_request().encode(),
        expires: Some("2026-01-01T00:15:00Z".into()),
        ..PaymentChallenge::default()
    }
    .sealed(SECRET)
}

/// A section 7 session challenge for a request given as JCS text.
pub fn session_challenge(request_jcs: &str, expires: &str) -> PaymentChallenge {
    PaymentChallenge {
        realm: "api.example.com".into(),
        method: "lightning".into(),
        intent: "session".into(),
        request: super::b64url::encode(request_jcs.as_bytes()),
        expires: Some(expires.into()),
        ..PaymentChallenge::default()
    }
    .sealed(SECRET)
}

/// The document's example invoice for label `label`: preimage sha256(label), payment secret
/// sha256(label + "/secret"), timestamp 1767225600, expiry 3600, min_final_cltv 80, mainnet,
/// signed with the BOLT11 test key (RFC 6979, so reproducible).
pub fn doc_invoice(label: &str, amount_sats: u64, memo: &str) -> String {
    use bitcoin::hashes::Hash as _;
    use lightning_invoice::{Currency, InvoiceBuilder, PaymentSecret};
    use std::time::Duration;
    let key = bitcoin::secp256k1::SecretKey::from_slice(
        &hex::decode("e126f68f7eafcc8b74f54d269fe206be715000f94dac067d1c04a8ca3b2db734").unwrap(),
    )
    .unwrap();
    let preimage = crate::sha256(label.as_bytes());
    let secret = crate::sha256(format!("{label}/secret").as_bytes());
    let secp = bitcoin::secp256k1::Secp256k1::new();
    InvoiceBuilder::new(Currency::Bitcoin)
        .description(memo.into())
        .amount_milli_satoshis(amount_sats * 1000)
        .payment_hash(bitcoin::hashes::sha256::Hash::from_byte_array(
            crate::sha256(&preimage),
        ))
        .payment_secret(PaymentSecret(secret))
        .duration_since_epoch(Duration::from_secs(1_767_225_600))
        .expiry_time(Duration::from_secs(3600))
        .min_final_cltv_expiry_delta(80)
        .build_signed(|h| secp.sign_ecdsa_recoverable(h, &key))
        .unwrap()
        .to_string()
}

/// The top-up request: section 7's request with the top-up invoice (label `mpp-doc/topup`,
/// 2000 sat; the document does not print it: memo `Session deposit` reproduces its id).
pub fn topup_request_jcs() -> String {
    let invoice = doc_invoice("mpp-doc/topup", 2000, "Session deposit");
    SESSION_REQUEST_JCS
        .replace(DEPOSIT_INVOICE, &invoice)
        .replace(DEPOSIT_HASH, TOPUP_HASH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_invoices_reproduce() {
        assert_eq!(
            doc_invoice("mpp-doc/charge", 100, "Weather report"),
            CHARGE_INVOICE
        );
        for (pre, hash) in [
            (CHARGE_PREIMAGE, CHARGE_HASH),
            (DEPOSIT_PREIMAGE, DEPOSIT_HASH),
            (TOPUP_PREIMAGE, TOPUP_HASH),
        ] {
            assert_eq!(hex::encode(crate::sha256(&hex::decode(pre).unwrap())), hash);
        }
        assert_eq!(hex::encode(crate::sha256(b"mpp-doc/topup")), TOPUP_PREIMAGE);
        let decoded = crate::bolt11::decode(CHARGE_INVOICE).unwrap();
        assert_eq!(decoded.payment_hash.to_hex(), CHARGE_HASH);
        // The deposit invoice reproduces too, and verifies (signed by the test key).
        assert_eq!(
            doc_invoice("mpp-doc/deposit", 2000, "Session deposit"),
            DEPOSIT_INVOICE
        );
        let deposit = crate::bolt11::decode(DEPOSIT_INVOICE).unwrap();
        assert_eq!(
            (deposit.payee, deposit.payment_hash.to_hex()),
            (decoded.payee, DEPOSIT_HASH.into())
        );
    }
}
