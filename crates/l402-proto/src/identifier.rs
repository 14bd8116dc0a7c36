//! The macaroon identifier of an L402 token, version 0 (66 bytes, big-endian):
//! `uint16 version | payment_hash [32] | token_id [32]`.
//!
//! lsat-js and boltwall put the ASCII hex of those 66 bytes in the macaroon instead (132 bytes);
//! [`Identifier::decode`] reads both.

use super::{PaymentHash, TokenId};

/// Length of a version-0 identifier in binary form.
pub const V0_LEN: usize = 66;

/// A decoded L402 token identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identifier {
    pub payment_hash: PaymentHash,
    /// 32 random bytes naming the token.
    pub token_id: TokenId,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentifierError {
    #[error("token identifier version {0} is not supported (only version 0 is defined)")]
    UnknownVersion(u16),
    #[error("token identifier has {0} bytes; a version-0 identifier has 66 (or 132 as hex text)")]
    BadLength(usize),
}

impl Identifier {
    /// The 66-byte binary form, as Aperture mints it.
    pub fn encode(&self) -> [u8; V0_LEN] {
        let mut out = [0u8; V0_LEN];
        // bytes 0..2 hold version 0
        out[2..34].copy_from_slice(self.payment_hash.as_bytes());
        out[34..66].copy_from_slice(self.token_id.as_bytes());
        out
    }

    /// Read the binary form, or the 132-character hex-text form.
    pub fn decode(bytes: &[u8]) -> Result<Identifier, IdentifierError> {
        if bytes.len() == 2 * V0_LEN
            && let Ok(text) = std::str::from_utf8(bytes)
        {
            let mut raw = [0u8; V0_LEN];
            if hex::decode_to_slice(text, &mut raw).is_ok() {
                return Self::decode_binary(&raw);
            }
        }
        Self::decode_binary(bytes)
    }

    fn decode_binary(bytes: &[u8]) -> Result<Identifier, IdentifierError> {
        if bytes.len() < 2 {
            return Err(IdentifierError::BadLength(bytes.len()));
        }
        let version = u16::from_be_bytes([bytes[0], bytes[1]]);
        if version != 0 {
            return Err(IdentifierError::UnknownVersion(version));
        }
        if bytes.len() != V0_LEN {
            return Err(IdentifierError::BadLength(bytes.len()));
        }
        let mut payment_hash = [0u8; 32];
        let mut token_id = [0u8; 32];
        payment_hash.copy_from_slice(&bytes[2..34]);
        token_id.copy_from_slice(&bytes[34..66]);
        Ok(Identifier {
            payment_hash: PaymentHash(payment_hash),
            token_id: TokenId(token_id),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn hex_form_and_errors() {
        let id = Identifier {
            payment_hash: crate::PaymentHash([7; 32]),
            token_id: crate::TokenId([9; 32]),
        };
        let bin = id.encode();
        assert_eq!(&bin[..2], &[0, 0]);
        assert_eq!(Identifier::decode(&bin), Ok(id));
        assert_eq!(Identifier::decode(hex::encode(bin).as_bytes()), Ok(id));
        assert_eq!(
            Identifier::decode(hex::encode_upper(bin).as_bytes()),
            Ok(id)
        );
        let mut v1 = bin;
        v1[1] = 1;
        assert_eq!(
            Identifier::decode(&v1),
            Err(IdentifierError::UnknownVersion(1))
        );
        assert_eq!(
            Identifier::decode(&bin[..65]),
            Err(IdentifierError::BadLength(65))
        );
        assert_eq!(Identifier::decode(&[]), Err(IdentifierError::BadLength(0)));
    }

    proptest! {
        #[test]
        fn round_trip(h in any::<[u8; 32]>(), t in any::<[u8; 32]>()) {
            let id = Identifier { payment_hash: crate::PaymentHash(h), token_id: crate::TokenId(t) };
            prop_assert_eq!(Identifier::decode(&id.encode()), Ok(id));
        }

        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = Identifier::decode(&bytes);
        }
    }
}
