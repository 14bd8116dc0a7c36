//! Amounts as hosted wallet APIs write them, converted to msat exactly: BTC as decimal strings
//! (Strike: `"0.00001003"`), sats as JSON numbers (Blink, OpenNode, ln.bot). Never through a
//! float: a decimal is read digit by digit, and one that is not a whole number of msat, is
//! negative, or does not fit is refused rather than rounded.

use serde_json::Number;

/// Msat per BTC, as a power of ten.
const BTC_DIGITS: u32 = 11;
/// Msat per sat, as a power of ten.
const SAT_DIGITS: u32 = 3;

/// A non-negative decimal (`"12"`, `"0.5"`, `".5"`, `"5."`) times `10^digits`, when that is a
/// whole number that fits; extra fraction digits must be zeros.
fn scaled(text: &str, digits: u32) -> Result<u64, String> {
    let t = text.trim();
    let (whole, fraction) = t.split_once('.').unwrap_or((t, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() && fraction.is_empty() || !all_digits(whole) || !all_digits(fraction) {
        return Err(format!("{text:?} is not a non-negative decimal amount"));
    }
    let width = digits as usize;
    let (kept, rest) = fraction.split_at(fraction.len().min(width));
    if rest.bytes().any(|b| b != b'0') {
        return Err(format!(
            "{text:?} is finer than a millisatoshi: it cannot be paid exactly"
        ));
    }
    let too_large = || format!("{text:?} is too large an amount");
    let whole: u64 = match whole.trim_start_matches('0') {
        "" => 0,
        w => w.parse().map_err(|_| too_large())?,
    };
    let kept: u64 = format!("{kept:0<width$}")
        .parse()
        .map_err(|_| too_large())?;
    whole
        .checked_mul(10u64.pow(digits))
        .and_then(|w| w.checked_add(kept))
        .ok_or_else(too_large)
}

/// A BTC amount written as a decimal string, in msat.
pub fn btc_to_msat(text: &str) -> Result<u64, String> {
    scaled(text, BTC_DIGITS)
}

/// A sat amount written as a decimal string, in msat.
pub fn sats_text_to_msat(text: &str) -> Result<u64, String> {
    scaled(text, SAT_DIGITS)
}

/// A sat amount sent as a JSON number (`2100`, or `2100.5` from an API that keeps msat in
/// fractions), in msat: read from the number's own digits, never as a float's value.
pub fn sats_to_msat(n: &Number) -> Result<u64, String> {
    match n.as_u64() {
        Some(sats) => sats
            .checked_mul(1000)
            .ok_or_else(|| format!("{n} sats is too large an amount")),
        None if n.is_i64() => Err(format!("{n} is a negative amount")),
        // A float: its shortest decimal form, which is what the backend wrote.
        None => sats_text_to_msat(&n.to_string()).map_err(|e| format!("{e} (sats)")),
    }
}

/// Whole sats as a BTC decimal string with eight decimals (`2100` -> `"0.00002100"`).
pub fn sats_to_btc(sats: u64) -> String {
    format!("{}.{:08}", sats / 100_000_000, sats % 100_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn btc_strings_are_read_exactly() {
        assert_eq!(btc_to_msat("0.00001003"), Ok(1_003_000));
        assert_eq!(btc_to_msat("0.00000001"), Ok(1_000));
        assert_eq!(btc_to_msat("0.00000000001"), Ok(1));
        assert_eq!(btc_to_msat("0.000010030000"), Ok(1_003_000));
        assert_eq!(btc_to_msat("21"), Ok(2_100_000_000_000));
        assert_eq!(btc_to_msat(" 0 "), Ok(0));
        assert_eq!(btc_to_msat(".5"), Ok(50_000_000_000));
        assert_eq!(btc_to_msat("5."), Ok(500_000_000_000));
        // 0.1 + 0.2 in floats is 0.30000000000000004: never here.
        assert_eq!(btc_to_msat("0.3"), Ok(30_000_000_000));
        assert_eq!(btc_to_msat("0.12345678"), Ok(12_345_678_000));
        for bad in [
            "",
            ".",
            "-0.1",
            "+1",
            "1e-8",
            "0.000000000001",
            "0,1",
            "NaN",
            "1.2.3",
            "184467440737.09551616",
        ] {
            assert!(btc_to_msat(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sats_numbers_are_read_exactly() {
        let n = |s: &str| serde_json::from_str::<Number>(s).unwrap();
        assert_eq!(sats_to_msat(&n("2100")), Ok(2_100_000));
        assert_eq!(sats_to_msat(&n("2100.5")), Ok(2_100_500));
        assert_eq!(sats_to_msat(&n("93.125")), Ok(93_125));
        assert_eq!(sats_to_msat(&n("0")), Ok(0));
        assert!(sats_to_msat(&n("-3")).is_err());
        assert!(sats_to_msat(&n("0.0001")).is_err());
        assert!(sats_to_msat(&n("1e30")).is_err());
        assert!(sats_to_msat(&n("18446744073709551615")).is_err());
        assert_eq!(sats_text_to_msat("21"), Ok(21_000));
        assert_eq!(sats_to_btc(2_100), "0.00002100");
        assert_eq!(sats_to_btc(2_100_000_000_000_000), "21000000.00000000");
        assert_eq!(btc_to_msat(&sats_to_btc(123_456_789)), Ok(123_456_789_000));
    }
}
