//! Writes the seed corpus: `cargo run --example seeds -- [DIR]` (default `corpus`, from `fuzz/`).
//! Real inputs: Aperture's published macaroon, the libmacaroons vector, challenge and credential
//! lines in every variant the parsers accept, and invoices signed with `bolt11::create` plus an
//! LNbits-style invoice without a features field. `cargo fuzz cmin` then keeps what adds coverage.

use std::path::{Path, PathBuf};

use bitcoin::hashes::Hash as _;
use bitcoin::secp256k1::{Secp256k1, SecretKey};
use l402_mcp_fuzz::bolt11::{self, Network, NewInvoice};
use l402_mcp_fuzz::l402::caveat::{Caveat, Service};
use l402_mcp_fuzz::l402::challenge;
use l402_mcp_fuzz::l402::macaroon::L402_LOCATION;
use l402_mcp_fuzz::l402::{Credential, Identifier, Macaroon, Scheme, b64, sha256};

const APERTURE: &str = "AgEEbHNhdAJCAAAwpHpumws6ufQoDwiTLNcge0QPUIWA0+tVY+tKPYAJ/zSfmEGlIpNm3VzxuzCqLhEp5KGiyPLUM9L+kcB7uzS+AAIPc2VydmljZXM9bWVtZTowAAISbWVtZV9jYXBhYmlsaXRpZXM9AAAGILA1VCEIExukt4nG+XR9tX8WJ2BVMiHG3UNt1uYJ+NRD";
const PREIMAGE_HEX: &str = "2ca931a1c36b48f54948b898a271a53ed91ff7d0081939a5fa511249e81cba5c";
const HASH_HEX: &str = "7cef93f2c51aa65208bec1447fc38fc58d9bce1375a532edb0dcd290a2c330ae";
/// The verify target's fixed root key and preimage.
const ROOT: [u8; 32] = [42; 32];
const FUZZ_PREIMAGE: [u8; 32] = [5; 32];

struct Out(PathBuf);

impl Out {
    fn put(&self, target: &str, name: &str, data: impl AsRef<[u8]>) {
        let dir = self.0.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), data).unwrap();
    }
}

fn main() {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "corpus".into());
    let out = Out(Path::new(&dir).to_path_buf());

    let aperture = b64::decode(APERTURE).unwrap();
    let key = SecretKey::from_slice(&[0x11; 32]).unwrap();
    let payment_hash: [u8; 32] = hex::decode(HASH_HEX).unwrap().try_into().unwrap();
    let invoice = |network, amount_msat, description: &str, expiry_secs| {
        bolt11::create(
            &key,
            &NewInvoice {
                network,
                amount_msat,
                description,
                payment_hash: l402_mcp_fuzz::l402::PaymentHash(payment_hash),
                payment_secret: [4; 32],
                timestamp: 1_700_000_000,
                expiry_secs,
            },
        )
        .unwrap()
    };
    let regtest = invoice(Network::Regtest, Some(21_000), "a coffee", 600);
    let invoices = [
        ("regtest_21sat", regtest.clone()),
        (
            "mainnet_1sat",
            invoice(Network::Mainnet, Some(1_000), "l402 /thing", 3600),
        ),
        (
            "testnet_amountless",
            invoice(Network::Testnet, None, "", 86_400),
        ),
        (
            "signet_msat",
            invoice(Network::Signet, Some(1_234_567), "signet", 60),
        ),
        (
            "simnet_big",
            invoice(Network::Simnet, Some(2_100_000_000_000), "whole", 1),
        ),
        (
            "mainnet_long_description",
            invoice(Network::Mainnet, Some(10_000), &"x".repeat(300), 600),
        ),
        (
            "lnbits_fake_wallet",
            lnbits_fake_wallet(&key, &payment_hash),
        ),
    ];
    // The bolt11 target's first byte is a mode: '0' as is, '2' re-signed after mutation.
    for (name, inv) in &invoices {
        assert!(bolt11::decode(inv).is_ok(), "{name}");
        out.put("bolt11", name, format!("0{inv}"));
        out.put("bolt11", &format!("{name}_resign"), format!("2{inv}"));
    }
    out.put(
        "bolt11",
        "uri_upper",
        format!("0lightning:{}", regtest.to_uppercase()),
    );
    out.put("bolt11", "padded", format!("0  {regtest}\n"));
    // Regression: a multi-byte character across byte 10 panicked in the `lightning:` check.
    out.put("bolt11", "regression_char_boundary", "0lnbc12345\u{412}x");

    // Challenges: Aperture's lines, and every variant the parser accepts.
    let [lsat, l402] = challenge::aperture_headers(&aperture, &regtest);
    let mac = APERTURE;
    let url = mac
        .replace('+', "-")
        .replace('/', "_")
        .trim_end_matches('=')
        .to_owned();
    let inv = &regtest;
    let headers = [
        ("aperture_two_lines", format!("{lsat}\n{l402}")),
        ("aperture_folded", format!("{lsat}, {l402}")),
        ("l402", l402.clone()),
        ("lsat", lsat.clone()),
        (
            "lower_reordered",
            format!("l402 invoice=\"{inv}\", macaroon=\"{mac}\""),
        ),
        (
            "token_version",
            format!("L402 version=\"0\", token=\"{mac}\", invoice=\"{inv}\""),
        ),
        (
            "bare",
            format!("L402 version=0, token={mac}, invoice={inv}"),
        ),
        (
            "url_safe",
            format!("L402 macaroon=\"{url}\", invoice=\"{inv}\""),
        ),
        (
            "no_comma",
            format!("L402 macaroon=\"{mac}\" invoice=\"{inv}\""),
        ),
        (
            "unknown_params",
            format!("L402 foo=\"bar, baz\", macaroon=\"{mac}\", invoice=\"{inv}\", x=1"),
        ),
        (
            "other_schemes",
            format!(
                "Bearer realm=\"x\", Negotiate abc==, LSAT macaroon=\"{mac}\", invoice=\"lightning:{inv}\""
            ),
        ),
        (
            "escapes",
            format!("L402 realm=\"a\\\"b\\\\\", macaroon=\"{mac}\", invoice=\"{inv}\""),
        ),
        ("not_l402", "Payment realm=\"x402\", Bearer".to_owned()),
        ("no_invoice", format!("L402 macaroon=\"{mac}\"")),
    ];
    for (name, h) in &headers {
        out.put("challenge_headers", name, h);
    }

    let jsons = [
        (
            "invoice_macaroon",
            format!(r#"{{"invoice":"{inv}","macaroon":"{mac}"}}"#),
        ),
        (
            "lnbits",
            format!(
                r#"{{"payment_request":"{}","payment_hash":"{HASH_HEX}"}}"#,
                inv.to_uppercase()
            ),
        ),
        (
            "nested",
            format!(r#"{{"error":"payment required","l402":{{"pr":"{inv}","token":"{url}"}}}}"#),
        ),
        (
            "camel",
            format!(
                r#"{{"paymentRequest":"lightning:{inv}","paymentHash":"{HASH_HEX}","amount":21}}"#
            ),
        ),
        (
            "bolt11_key",
            format!(r#"{{"bolt11":" {inv} ","macaroon":null,"x":[1,2.5e3,true]}}"#),
        ),
        (
            "no_invoice",
            r#"{"error":"nope","detail":{"code":402}}"#.to_owned(),
        ),
    ];
    for (name, j) in &jsons {
        out.put("challenge_json", name, j);
    }

    // Credentials.
    let preimage: [u8; 32] = hex::decode(PREIMAGE_HEX).unwrap().try_into().unwrap();
    out.put(
        "credential",
        "l402",
        Credential::format(Scheme::L402, &aperture, &l402_mcp_fuzz::l402::Preimage(preimage)),
    );
    out.put(
        "credential",
        "lsat",
        Credential::format(Scheme::Lsat, &aperture, &l402_mcp_fuzz::l402::Preimage(preimage)),
    );
    out.put(
        "credential",
        "two_macaroons_upper_hex",
        format!("  lsat  {mac},{url}:{} ", PREIMAGE_HEX.to_uppercase()),
    );
    out.put(
        "credential",
        "url_safe",
        format!("L402 {url}:{PREIMAGE_HEX}"),
    );

    // Macaroons.
    out.put("macaroon", "aperture", &aperture);
    let key_lib = b"this is our super secret key; only we should know it";
    let mut lib = Macaroon::new(
        key_lib,
        b"we used our secret key".to_vec(),
        "http://mybank/",
    );
    lib.add_caveat(b"account = 3735928559");
    out.put("macaroon", "libmacaroons", lib.serialize());
    let ours = minted(&[
        &Caveat::services(&[
            Service::new("meme", 0).unwrap(),
            Service::new("news", 2).unwrap(),
        ])
        .encode(),
        &Caveat::capabilities("meme", &["read".into(), "write".into()]).encode(),
        &Caveat::valid_until("meme", 1_700_003_600).encode(),
    ]);
    out.put("macaroon", "minted", &ours);
    let mut hex_id = Macaroon::new(
        &ROOT,
        hex::encode(fuzz_identifier().encode()).into_bytes(),
        "",
    );
    hex_id.add_caveat(b"expiration=1700000000000");
    out.put("macaroon", "lsat_js_hex_identifier", hex_id.serialize());

    // Identifiers.
    let id = Macaroon::deserialize(&aperture)
        .unwrap()
        .identifier()
        .to_vec();
    out.put("identifier", "aperture", &id);
    out.put("identifier", "hex", hex::encode(&id));
    out.put("identifier", "hex_upper", hex::encode_upper(&id));

    // The verifier: mode byte (its low 4 bits pick the params), then caveat lines (or a raw
    // macaroon when bit 7 is set).
    let caveat_sets: [(&str, u8, &str); 17] = [
        (
            "std",
            3,
            "services=meme:0\nmeme_capabilities=read,write\nmeme_valid_until=1800000000",
        ),
        (
            "narrowed",
            2,
            "services=meme:0,news:0\nservices=meme:0\nmeme_valid_until=2000\nmeme_valid_until=1500",
        ),
        (
            "widened",
            4,
            "services=news:1\nservices=news:1,meme:0\nnews_capabilities=write\nnews_capabilities=write,read",
        ),
        (
            "expiration_ms",
            1,
            "expiration=1700000000000\nexpiration=1699999999999",
        ),
        (
            "aperture_empty_caps",
            3,
            "services=meme:0\nmeme_capabilities=",
        ),
        (
            "two_services",
            0,
            "services=a:0,b:1\na_valid_until=100\nb_valid_until=300",
        ),
        (
            "unknown_and_spaces",
            5,
            " services = a:0 , b:255 \ncolor=red\nnovalue\n=v",
        ),
        ("empty", 0, ""),
        // Method and path bindings, with the params that carry a method and path (8..16).
        (
            "route_bound",
            8,
            "services=meme:0\nmeme_methods=GET,HEAD\nmeme_path_prefix=/v1/data",
        ),
        (
            "route_narrowed",
            9,
            "meme_methods=GET,HEAD,POST\nmeme_methods=get\nmeme_path_prefix=/v1/\nmeme_path_prefix=/v1/data",
        ),
        (
            "methods_widened",
            10,
            "news_methods=GET\nnews_methods=GET,POST",
        ),
        ("methods_other_method", 11, "a_methods=GET\nb_methods=HEAD"),
        ("path_segment_boundary", 12, "meme_path_prefix=/v1/data"),
        (
            "path_dot_segments",
            13,
            "services=meme:0\nmeme_path_prefix=/v1/data\nmeme_capabilities=read",
        ),
        (
            "route_invalid",
            14,
            "a_path_prefix=/v1/%2e%2e/x\na_methods=GE T,\n_methods=GET\nb_path_prefix=v1",
        ),
        (
            "route_other_service",
            8,
            "news_methods=POST\nnews_path_prefix=/other\nmeme_methods= get , head ",
        ),
        (
            "path_root",
            15,
            "x_path_prefix=/\nx_path_prefix=//\nx_methods=DELETE,PUT\nx_methods=",
        ),
    ];
    for (name, mode, lines) in caveat_sets {
        let mut data = vec![mode];
        data.extend_from_slice(lines.as_bytes());
        out.put("verify", name, data);
    }
    let mut raw = vec![0x80 | 3];
    raw.extend_from_slice(&ours);
    out.put("verify", "raw_minted", raw);
    let mut raw = vec![0x80];
    raw.extend_from_slice(&aperture);
    out.put("verify", "raw_aperture", raw);
}

fn fuzz_identifier() -> Identifier {
    Identifier {
        payment_hash: l402_mcp_fuzz::l402::PaymentHash(sha256(&FUZZ_PREIMAGE)),
        token_id: l402_mcp_fuzz::l402::TokenId([1; 32]),
    }
}

/// A token as the verify target's fixed root key and preimage would accept it.
fn minted(caveats: &[&[u8]]) -> Vec<u8> {
    let mut m = Macaroon::new(&ROOT, fuzz_identifier().encode().to_vec(), L402_LOCATION);
    for c in caveats {
        m.add_caveat(c);
    }
    m.serialize()
}

/// LNbits' FakeWallet: `lnbc` prefix, and no features field.
fn lnbits_fake_wallet(key: &SecretKey, payment_hash: &[u8; 32]) -> String {
    use bitcoin::hashes::sha256;
    use lightning_invoice::{
        Currency, Description, ExpiryTime, PaymentSecret, PositiveTimestamp, RawBolt11Invoice,
        RawDataPart, RawHrp, RawTaggedField, SiPrefix, TaggedField,
    };
    let fields = vec![
        RawTaggedField::KnownSemantics(TaggedField::PaymentHash(lightning_invoice::Sha256(
            sha256::Hash::from_byte_array(*payment_hash),
        ))),
        RawTaggedField::KnownSemantics(TaggedField::Description(
            Description::new("LNbits paywall: 10 sats".into()).unwrap(),
        )),
        RawTaggedField::KnownSemantics(TaggedField::ExpiryTime(ExpiryTime::from_seconds(3600))),
        RawTaggedField::KnownSemantics(TaggedField::PaymentSecret(PaymentSecret([7; 32]))),
    ];
    let raw = RawBolt11Invoice {
        hrp: RawHrp {
            currency: Currency::Bitcoin,
            raw_amount: Some(100),
            si_prefix: Some(SiPrefix::Nano),
        },
        data: RawDataPart {
            timestamp: PositiveTimestamp::from_unix_timestamp(1_700_000_000).unwrap(),
            tagged_fields: fields,
        },
    };
    let secp = Secp256k1::new();
    raw.sign::<_, ()>(|h| Ok(secp.sign_ecdsa_recoverable(h, key)))
        .unwrap()
        .to_string()
}
