//! BOLT11 invoices: decoding what a seller sends, and signing invoices for the embedded wallet.
//!
//! Decoding goes through the raw signed form plus a signature check rather than
//! `Bolt11Invoice::from_str`, which rejects invoices without a features field (LNbits' FakeWallet
//! makes those).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::PaymentHash;
use bitcoin::hashes::Hash as _;
use bitcoin::hashes::sha256;
use bitcoin::secp256k1::{All, Message, PublicKey, Secp256k1, SecretKey};
use lightning_invoice::{Currency, InvoiceBuilder, PaymentSecret, SignedRawBolt11Invoice};

/// Expiry when an invoice does not say (BOLT11 default).
pub const DEFAULT_EXPIRY_SECS: u64 = 3600;
const DEFAULT_MIN_FINAL_CLTV: u64 = 18;

/// The Bitcoin network an invoice is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Network {
    Mainnet,
    Testnet,
    Signet,
    Regtest,
    Simnet,
}

impl Network {
    pub fn as_str(self) -> &'static str {
        match self {
            Network::Mainnet => "mainnet",
            Network::Testnet => "testnet",
            Network::Signet => "signet",
            Network::Regtest => "regtest",
            Network::Simnet => "simnet",
        }
    }

    fn currency(self) -> Currency {
        match self {
            Network::Mainnet => Currency::Bitcoin,
            Network::Testnet => Currency::BitcoinTestnet,
            Network::Signet => Currency::Signet,
            Network::Regtest => Currency::Regtest,
            Network::Simnet => Currency::Simnet,
        }
    }

    fn from_currency(c: &Currency) -> Network {
        match c {
            Currency::Bitcoin => Network::Mainnet,
            Currency::BitcoinTestnet => Network::Testnet,
            Currency::Signet => Network::Signet,
            Currency::Regtest => Network::Regtest,
            Currency::Simnet => Network::Simnet,
        }
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Network {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "mainnet" | "bitcoin" => Network::Mainnet,
            "testnet" => Network::Testnet,
            "signet" => Network::Signet,
            "regtest" => Network::Regtest,
            "simnet" => Network::Simnet,
            other => return Err(format!("unknown network {other:?}")),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvoiceError {
    #[error("not a BOLT11 invoice: {0}")]
    Parse(String),
    #[error("invoice signature does not match its payee")]
    BadSignature,
    #[error("invoice has no payment hash")]
    NoPaymentHash,
    #[error("invoice amount is not a whole number of millisatoshis")]
    SubMillisatoshi,
    #[error("cannot create invoice: {0}")]
    Create(String),
}

/// What a BOLT11 invoice says, decoded and signature-checked.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DecodedInvoice {
    /// The invoice, in lower case.
    pub bolt11: String,
    pub network: Network,
    /// `None` for an amountless invoice.
    pub amount_msat: Option<u64>,
    pub payment_hash: PaymentHash,
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description_hash: Option<String>,
    /// Creation time, unix seconds.
    pub timestamp: u64,
    pub expiry_secs: u64,
    /// The payee's node public key, hex.
    pub payee: String,
    pub min_final_cltv_expiry_delta: u64,
}

impl DecodedInvoice {
    /// Unix seconds at which the invoice stops being payable.
    pub fn expires_at(&self) -> u64 {
        self.timestamp.saturating_add(self.expiry_secs)
    }

    pub fn is_expired(&self, now: u64) -> bool {
        now >= self.expires_at()
    }
}

/// One secp256k1 context for the process: making one per call cost more than the check itself.
static SECP: std::sync::LazyLock<Secp256k1<All>> = std::sync::LazyLock::new(Secp256k1::new);

/// The payee of a signed invoice: its `n` field, checked against the signature, or else the key
/// the signature recovers to (one EC operation either way).
fn checked_payee(signed: &SignedRawBolt11Invoice) -> Result<PublicKey, InvoiceError> {
    let msg = Message::from_digest(*signed.signable_hash());
    let sig = &signed.signature().0;
    match signed.raw_invoice().payee_pub_key() {
        Some(pk) => SECP
            .verify_ecdsa(&msg, &sig.to_standard(), &pk.0)
            .map(|()| pk.0)
            .map_err(|_| InvoiceError::BadSignature),
        None => SECP
            .recover_ecdsa(&msg, sig)
            .map_err(|_| InvoiceError::BadSignature),
    }
}

/// Decode and signature-check a BOLT11 invoice (a `lightning:` prefix and upper case are fine).
pub fn decode(invoice: &str) -> Result<DecodedInvoice, InvoiceError> {
    let mut s = invoice.trim();
    // `get`, not `[..10]`: byte 10 may fall inside a multi-byte character (found by fuzzing).
    if s.get(..10)
        .is_some_and(|p| p.eq_ignore_ascii_case("lightning:"))
    {
        s = &s[10..];
    }
    let lower = s.to_ascii_lowercase();
    let signed =
        SignedRawBolt11Invoice::from_str(&lower).map_err(|e| InvoiceError::Parse(e.to_string()))?;
    let payee = checked_payee(&signed)?;
    let raw = signed.raw_invoice();
    let payment_hash = raw
        .payment_hash()
        .ok_or(InvoiceError::NoPaymentHash)?
        .0
        .to_byte_array()
        .into();
    let amount_msat = match raw.amount_pico_btc() {
        Some(pico) if !pico.is_multiple_of(10) => return Err(InvoiceError::SubMillisatoshi),
        Some(pico) => Some(pico / 10),
        None => None,
    };
    Ok(DecodedInvoice {
        network: Network::from_currency(&raw.currency()),
        amount_msat,
        payment_hash,
        description: raw.description().map(printable),
        description_hash: raw
            .description_hash()
            .map(|h| hex::encode(h.0.to_byte_array())),
        timestamp: raw.data.timestamp.as_unix_timestamp(),
        expiry_secs: raw
            .expiry_time()
            .map_or(DEFAULT_EXPIRY_SECS, |e| e.as_seconds()),
        // Not `to_string()`, which formats the 33 bytes one `write!` at a time.
        payee: hex::encode(payee.serialize()),
        min_final_cltv_expiry_delta: raw
            .min_final_cltv_expiry_delta()
            .map_or(DEFAULT_MIN_FINAL_CLTV, |d| d.0),
        bolt11: lower,
    })
}

/// An invoice's description as it may be shown: what its `Display` gives (control, unassigned
/// and line-separator characters replaced), without formatting it one character at a time when
/// it is printable ASCII, which that leaves as it is.
fn printable(description: &lightning_invoice::Description) -> String {
    let text = &description.as_inner().0;
    if text.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        text.clone()
    } else {
        description.to_string()
    }
}

/// What to put in a new invoice.
#[derive(Debug, Clone)]
pub struct NewInvoice<'a> {
    pub network: Network,
    /// `None` makes an amountless invoice (the embedded wallet never does; tests do).
    pub amount_msat: Option<u64>,
    pub description: &'a str,
    pub payment_hash: PaymentHash,
    pub payment_secret: [u8; 32],
    /// Creation time, unix seconds.
    pub timestamp: u64,
    pub expiry_secs: u64,
}

/// Sign a new invoice with `node_key`.
pub fn create(node_key: &SecretKey, new: &NewInvoice<'_>) -> Result<String, InvoiceError> {
    let mut builder =
        InvoiceBuilder::new(new.network.currency()).description(new.description.to_owned());
    if let Some(amount) = new.amount_msat {
        builder = builder.amount_milli_satoshis(amount);
    }
    builder
        .payment_hash(sha256::Hash::from_byte_array(new.payment_hash.0))
        .payment_secret(PaymentSecret(new.payment_secret))
        .duration_since_epoch(Duration::from_secs(new.timestamp))
        .expiry_time(Duration::from_secs(new.expiry_secs))
        .min_final_cltv_expiry_delta(DEFAULT_MIN_FINAL_CLTV)
        .build_signed(|hash| SECP.sign_ecdsa_recoverable(hash, node_key))
        .map(|inv| inv.to_string())
        .map_err(|e| InvoiceError::Create(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multibyte_text_at_the_prefix_boundary_is_an_error_not_a_panic() {
        for s in ["lnbc12345\u{412}x", "lntb1pj40\u{41a}", "lightning\u{e9}"] {
            assert!(decode(s).is_err(), "{s}");
        }
    }
    use bitcoin::secp256k1::PublicKey;
    use proptest::prelude::*;

    fn key() -> SecretKey {
        SecretKey::from_slice(&[0x11; 32]).unwrap()
    }

    fn new(amount_msat: u64) -> NewInvoice<'static> {
        NewInvoice {
            network: Network::Regtest,
            amount_msat: Some(amount_msat),
            description: "a coffee",
            payment_hash: PaymentHash([3; 32]),
            payment_secret: [4; 32],
            timestamp: 1_700_000_000,
            expiry_secs: 600,
        }
    }

    #[test]
    fn create_then_decode() {
        let s = create(&key(), &new(21_000)).unwrap();
        assert!(s.starts_with("lnbcrt210n1"), "{s}");
        let d = decode(&s).unwrap();
        assert_eq!(d.network, Network::Regtest);
        assert_eq!(d.amount_msat, Some(21_000));
        assert_eq!(d.payment_hash, PaymentHash([3; 32]));
        assert_eq!(d.description.as_deref(), Some("a coffee"));
        assert_eq!((d.timestamp, d.expiry_secs), (1_700_000_000, 600));
        assert_eq!(d.expires_at(), 1_700_000_600);
        assert!(!d.is_expired(1_700_000_599) && d.is_expired(1_700_000_600));
        let pk = PublicKey::from_secret_key(&Secp256k1::new(), &key());
        assert_eq!(d.payee, pk.to_string());
        // Upper case and a URI prefix decode the same.
        assert_eq!(
            decode(&format!("lightning:{}", s.to_uppercase())).unwrap(),
            d
        );
    }

    #[test]
    fn tampering_is_caught() {
        let s = create(&key(), &new(21_000)).unwrap();
        // Change the amount: the checksum or signature must fail.
        let tampered = s.replacen("lnbcrt210n", "lnbcrt220n", 1);
        assert!(decode(&tampered).is_err());
        assert!(matches!(
            decode("lnbc1garbage"),
            Err(InvoiceError::Parse(_))
        ));
        assert!(matches!(decode(""), Err(InvoiceError::Parse(_))));
    }

    /// An LNbits FakeWallet invoice: mainnet prefix and no features field, which
    /// `Bolt11Invoice::from_str` rejects.
    #[test]
    fn invoice_without_features_decodes() {
        use lightning_invoice::{
            PositiveTimestamp, RawBolt11Invoice, RawDataPart, RawHrp, RawTaggedField, TaggedField,
        };
        let hrp = RawHrp {
            currency: Currency::Bitcoin,
            raw_amount: None,
            si_prefix: None,
        };
        let mut fields = vec![
            RawTaggedField::KnownSemantics(TaggedField::PaymentHash(lightning_invoice::Sha256(
                sha256::Hash::from_byte_array([9; 32]),
            ))),
            RawTaggedField::KnownSemantics(TaggedField::Description(
                lightning_invoice::Description::new("fake".into()).unwrap(),
            )),
        ];
        fields.push(RawTaggedField::KnownSemantics(TaggedField::PaymentSecret(
            PaymentSecret([1; 32]),
        )));
        let raw = RawBolt11Invoice {
            hrp: RawHrp {
                raw_amount: Some(10),
                si_prefix: Some(lightning_invoice::SiPrefix::Nano),
                ..hrp
            },
            data: RawDataPart {
                timestamp: PositiveTimestamp::from_unix_timestamp(1_700_000_000).unwrap(),
                tagged_fields: fields,
            },
        };
        let secp = Secp256k1::new();
        let signed = raw
            .sign::<_, ()>(|h| Ok(secp.sign_ecdsa_recoverable(h, &key())))
            .unwrap();
        let s = signed.to_string();
        assert!(
            lightning_invoice::Bolt11Invoice::from_str(&s).is_err(),
            "the strict parser should refuse this"
        );
        let d = decode(&s).unwrap();
        assert_eq!(
            (d.network, d.amount_msat, d.payment_hash),
            (Network::Mainnet, Some(1_000), PaymentHash([9; 32]))
        );
    }

    proptest! {
        #[test]
        fn amounts_round_trip(msat in 1u64..2_100_000_000_000) {
            let s = create(&key(), &new(msat)).unwrap();
            prop_assert_eq!(decode(&s).unwrap().amount_msat, Some(msat));
        }

        #[test]
        fn never_panics(s in "(ln|lnbc|lnbcrt)[a-z0-9]{0,300}") {
            let _ = decode(&s);
        }

        /// The shortcut for printable ASCII gives what `Display` gives, whatever the text.
        #[test]
        fn descriptions_read_as_their_display(text in "(\\PC|[\\x00-\\x7f]|\u{2028}|\u{85}){0,40}") {
            let d = lightning_invoice::Description::new(text).unwrap();
            prop_assert_eq!(printable(&d), d.to_string());
        }
    }

    #[test]
    fn descriptions_lose_what_could_forge_a_line() {
        for (text, shown) in [
            ("a coffee", "a coffee"),
            ("tab\there", "tab\u{fffd}here"),
            ("two\nlines", "two\u{fffd}lines"),
            ("del\u{7f}", "del\u{fffd}"),
            ("caf\u{e9} \u{2028}x", "caf\u{e9} \u{fffd}x"),
        ] {
            let d = lightning_invoice::Description::new(text.to_owned()).unwrap();
            assert_eq!(printable(&d), shown, "{text:?}");
        }
    }
}
