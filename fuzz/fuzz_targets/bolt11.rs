//! BOLT11 decoding (raw parse, signature check, no features field required).
//!
//! Mutated invoices almost never keep a valid bech32 checksum, let alone a valid signature, so
//! the first byte picks how far in to reach: 0 as is; 1 with the checksum recomputed (the raw
//! parser sees every field); 2 also re-signed with a fixed key (decode runs to the end).
#![no_main]

use std::str::FromStr;
use std::sync::LazyLock;

use bitcoin::secp256k1::{All, Secp256k1, SecretKey};
use l402_mcp_fuzz::bolt11;
use libfuzzer_sys::fuzz_target;
use lightning_invoice::SignedRawBolt11Invoice;

static SECP: LazyLock<Secp256k1<All>> = LazyLock::new(Secp256k1::new);
static KEY: LazyLock<SecretKey> =
    LazyLock::new(|| SecretKey::from_slice(&[0x11; 32]).expect("valid key"));

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    match mode % 3 {
        0 => check(text),
        1 => check(&fix_checksum(text)),
        _ => {
            let fixed = fix_checksum(text);
            check(&fixed);
            if let Ok(signed) = SignedRawBolt11Invoice::from_str(&fixed.to_ascii_lowercase()) {
                let resigned = signed
                    .raw_invoice()
                    .clone()
                    .sign::<_, ()>(|msg| Ok(SECP.sign_ecdsa_recoverable(msg, &KEY)))
                    .expect("signing cannot fail");
                check(&resigned.to_string());
            }
        }
    }
});

fn check(text: &str) {
    let Ok(d) = bolt11::decode(text) else {
        return;
    };
    // The normalized form decodes to the same invoice.
    assert_eq!(
        bolt11::decode(&d.bolt11).as_ref(),
        Ok(&d),
        "decode(bolt11) differs"
    );
    let _ = d.expires_at();
    let _ = d.is_expired(u64::MAX);
}

const CHARSET: &[u8; 32] = b"qpzry9x8gf2tvdw0s3jn54khce6mua7l";

/// `text` with its last six data characters replaced by the right bech32 checksum, when it has
/// the shape `hrp 1 data` (else unchanged). Case is kept as given.
fn fix_checksum(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let Some(sep) = lower.rfind('1') else {
        return text.to_owned();
    };
    let (hrp, data) = (&lower[..sep], &lower[sep + 1..]);
    if hrp.is_empty()
        || data.len() < 6
        || !data.is_ascii()
        || !hrp.bytes().all(|b| (33..=126).contains(&b))
    {
        return text.to_owned();
    }
    let Some(values) = data[..data.len() - 6]
        .bytes()
        .map(|c| CHARSET.iter().position(|&x| x == c).map(|v| v as u8))
        .collect::<Option<Vec<u8>>>()
    else {
        return text.to_owned();
    };
    let mut pre: Vec<u8> = hrp.bytes().map(|b| b >> 5).collect();
    pre.push(0);
    pre.extend(hrp.bytes().map(|b| b & 31));
    pre.extend(&values);
    pre.extend([0; 6]);
    let pm = polymod(&pre) ^ 1;
    let mut out = text[..text.len() - 6].to_owned();
    for i in 0..6 {
        out.push(CHARSET[((pm >> (5 * (5 - i))) & 31) as usize] as char);
    }
    out
}

fn polymod(values: &[u8]) -> u32 {
    const GEN: [u32; 5] = [0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3];
    let mut chk: u32 = 1;
    for &v in values {
        let top = chk >> 25;
        chk = ((chk & 0x1ffffff) << 5) ^ u32::from(v);
        for (i, g) in GEN.iter().enumerate() {
            if (top >> i) & 1 == 1 {
                chk ^= g;
            }
        }
    }
    chk
}
