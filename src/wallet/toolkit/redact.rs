//! Quoting what a backend answered, in an error or a log, without the secrets an answer may
//! hold: LNbits answers an invoice request with its preimage, an error may echo a key, and
//! serde's messages quote the value they could not read.

/// Longest quote of a backend's answer, in characters.
const MAX_QUOTE_CHARS: usize = 300;

/// A backend's answer as quoted in a message: redacted (see [`redact_long_tokens`]) and kept
/// short.
pub fn clip(s: &str) -> String {
    let s = redact_long_tokens(s.trim());
    match s.char_indices().nth(MAX_QUOTE_CHARS) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s,
    }
}

/// At most `max` characters of `s` (for fields a backend limits, e.g. a description).
pub fn clip_chars(s: &str, max: usize) -> &str {
    s.char_indices().nth(max).map_or(s, |(i, _)| &s[..i])
}

/// `text` with every run of 32 or more hex or base64 characters (a preimage, hash, key or
/// macaroon) replaced by `<redacted N chars>`, for quoting a backend's answer in an error.
pub fn redact_long_tokens(text: &str) -> String {
    let is_token = |c: char| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=' | '-' | '_');
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if run.len() >= 32 {
            out.push_str(&format!("<redacted {} chars>", run.len()));
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in text.chars() {
        if is_token(c) {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

/// The configured secrets of a backend (keys, passwords), scrubbed from any message that
/// might quote them: a URL or an answer echoing a key is shorter than a long token at times.
#[derive(Clone, Default)]
pub struct Secrets(Vec<String>);

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secrets(<{} hidden>)", self.0.len())
    }
}

impl Secrets {
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a str>) -> Secrets {
        Secrets(
            secrets
                .into_iter()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
        )
    }

    /// `msg` with every secret replaced by `<key>`.
    pub fn scrub(&self, msg: impl Into<String>) -> String {
        let mut msg = msg.into();
        for s in &self.0 {
            msg = msg.replace(s.as_str(), "<key>");
        }
        msg
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_tokens_are_redacted_and_words_kept() {
        let preimage = "ab".repeat(32);
        let b64 = "q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=";
        let text = format!(
            r#"invalid type: string "{preimage}", expected u64 in {{"preimage":"{preimage}","r_preimage":"{b64}","status":"SUCCEEDED"}}"#
        );
        let r = redact_long_tokens(&text);
        assert!(!r.contains(&preimage) && !r.contains(b64), "{r}");
        assert!(r.contains("<redacted 64 chars>") && r.contains("<redacted 44 chars>"));
        assert!(r.contains("invalid type") && r.contains("\"status\":\"SUCCEEDED\""));
        assert!(!clip(&text).contains(&preimage));
        assert!(clip(&"word ".repeat(100)).ends_with("..."));
    }

    #[test]
    fn secrets_are_scrubbed_and_never_shown() {
        let s = Secrets::new(["adm1n", " ", "1nv"]);
        assert_eq!(s.scrub("keys adm1n and 1nv"), "keys <key> and <key>");
        assert!(!format!("{s:?}").contains("adm1n"));
        assert_eq!(clip_chars("héllo", 2), "hé");
    }
}
