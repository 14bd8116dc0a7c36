//! The L402 credential: `Authorization: <scheme> <base64 macaroon>[,<base64 macaroon>...]:<hex preimage>`.
//! We send one macaroon and a lower-case preimage (Aperture's regex is `[a-f0-9]{64}`); we accept
//! one or several macaroons, and either case.

use super::{Preimage, Scheme, b64};

/// A parsed `Authorization` value.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    pub scheme: Scheme,
    /// One or more macaroons, decoded from base64.
    pub macaroons: Vec<Vec<u8>>,
    pub preimage: Preimage,
}

impl std::fmt::Debug for Credential {
    // The preimage is the proof of payment: a bearer secret. Never in debug output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("scheme", &self.scheme)
            .field("macaroons", &self.macaroons.len())
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    #[error("credential is empty")]
    Empty,
    #[error("authorization scheme {0:?} is not L402 or LSAT")]
    NotL402(String),
    #[error("credential must be '<scheme> <base64 macaroon>:<64 hex preimage>'")]
    Shape,
    #[error("credential macaroon #{0} is not base64")]
    BadMacaroon(usize),
    #[error("credential preimage must be 64 hexadecimal characters")]
    BadPreimage,
}

impl Credential {
    /// `<scheme> <b64>:<lowercase hex>`, the scheme chosen by the caller (answer with the server's).
    pub fn format(scheme: Scheme, macaroon: &[u8], preimage: &Preimage) -> String {
        format!("{scheme} {}:{}", b64::encode(macaroon), preimage.to_hex())
    }

    /// Parse an `Authorization` header value.
    pub fn parse(value: &str) -> Result<Credential, CredentialError> {
        let value = value.trim();
        if value.is_empty() {
            return Err(CredentialError::Empty);
        }
        let (scheme, rest) = value
            .split_once(char::is_whitespace)
            .ok_or(CredentialError::Shape)?;
        let scheme = Scheme::from_token(scheme)
            .ok_or_else(|| CredentialError::NotL402(scheme.chars().take(20).collect()))?;
        let (macs, preimage) = rest.trim().rsplit_once(':').ok_or(CredentialError::Shape)?;
        let preimage = preimage.trim();
        if preimage.len() != 64 {
            return Err(CredentialError::BadPreimage);
        }
        let preimage = super::parse_hex32(preimage).ok_or(CredentialError::BadPreimage)?;
        let macaroons = if macs.contains(',') {
            macs.split(',')
                .enumerate()
                .map(|(i, m)| b64::decode(m).ok_or(CredentialError::BadMacaroon(i + 1)))
                .collect::<Result<Vec<_>, _>>()?
        } else {
            vec![b64::decode(macs).ok_or(CredentialError::BadMacaroon(1))?]
        };
        Ok(Credential {
            scheme,
            macaroons,
            preimage: Preimage(preimage),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn formats_lowercase_and_parses_back() {
        let s = Credential::format(Scheme::L402, &[1, 2, 3], &Preimage([0xab; 32]));
        assert_eq!(s, format!("L402 AQID:{}", "ab".repeat(32)));
        let c = Credential::parse(&s).unwrap();
        assert_eq!(
            (c.scheme, c.macaroons.clone(), c.preimage),
            (Scheme::L402, vec![vec![1, 2, 3]], Preimage([0xab; 32]))
        );
    }

    #[test]
    fn accepts_variants() {
        let hex = "AB".repeat(32);
        let c = Credential::parse(&format!("  lsat  AQID,BAU:{hex} ")).unwrap();
        assert_eq!(c.scheme, Scheme::Lsat);
        assert_eq!(c.macaroons, vec![vec![1, 2, 3], vec![4, 5]]);
        assert_eq!(c.preimage, Preimage([0xab; 32]));
    }

    #[test]
    fn errors() {
        let hex = "ab".repeat(32);
        assert_eq!(Credential::parse(""), Err(CredentialError::Empty));
        assert_eq!(
            Credential::parse(&format!("Bearer AQID:{hex}")),
            Err(CredentialError::NotL402("Bearer".into()))
        );
        assert_eq!(Credential::parse("L402"), Err(CredentialError::Shape));
        assert_eq!(Credential::parse("L402 AQID"), Err(CredentialError::Shape));
        assert_eq!(
            Credential::parse("L402 AQID:abcd"),
            Err(CredentialError::BadPreimage)
        );
        assert_eq!(
            Credential::parse(&format!("L402 AQID:{}", "zz".repeat(32))),
            Err(CredentialError::BadPreimage)
        );
        assert_eq!(
            Credential::parse(&format!("L402 !!:{hex}")),
            Err(CredentialError::BadMacaroon(1))
        );
        assert_eq!(
            Credential::parse(&format!("L402 AQID,:{hex}")),
            Err(CredentialError::BadMacaroon(2))
        );
    }

    #[test]
    fn debug_hides_the_preimage() {
        let c = Credential::parse(&format!("L402 AQID:{}", "ab".repeat(32))).unwrap();
        assert!(!format!("{c:?}").contains("abab"));
    }

    proptest! {
        #[test]
        fn round_trip(mac in proptest::collection::vec(any::<u8>(), 1..300), pre in any::<[u8; 32]>(), lsat in any::<bool>()) {
            let scheme = if lsat { Scheme::Lsat } else { Scheme::L402 };
            let c = Credential::parse(&Credential::format(scheme, &mac, &Preimage(pre))).unwrap();
            prop_assert_eq!(c, Credential { scheme, macaroons: vec![mac], preimage: crate::Preimage(pre) });
        }

        #[test]
        fn never_panics(s in ".{0,200}") {
            let _ = Credential::parse(&s);
        }
    }
}
