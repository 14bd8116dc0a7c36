//! Macaroons in the V2 binary format of `gopkg.in/macaroon.v2` (the library Aperture uses), with
//! first-party caveats only, which is all L402 uses.
//!
//! Crypto: `k = HMAC-SHA256(key = "macaroons-key-generator", msg = root_key)`, then
//! `sig = HMAC-SHA256(k, identifier)` and `sig = HMAC-SHA256(sig, caveat)` for each caveat.
//!
//! Binary: `0x02`, then fields `type | uvarint length | data` (1 location, 2 identifier,
//! 4 verification id, 6 signature, 0 end of section): `[location] identifier EOS`, per caveat
//! `[location] identifier [vid] EOS`, one more `EOS`, then the 32-byte signature field.

use std::borrow::Cow;
use std::sync::LazyLock;

use sha2::Sha256VarCore;
use sha2::digest::core_api::{Block, Buffer, UpdateCore, VariableOutputCore};
use subtle::ConstantTimeEq;

/// The location Aperture gives L402 macaroons.
pub const L402_LOCATION: &str = "lsat";

const KEY_GENERATOR: &[u8] = b"macaroons-key-generator";
const V2: u8 = 2;
const FIELD_EOS: u8 = 0;
const FIELD_LOCATION: u8 = 1;
const FIELD_IDENTIFIER: u8 = 2;
const FIELD_VID: u8 = 4;
const FIELD_SIGNATURE: u8 = 6;
/// Refuse absurd inputs early: no L402 macaroon comes anywhere near this.
const MAX_MACAROON_BYTES: usize = 64 * 1024;
const MAX_CAVEATS: usize = 256;

/// A macaroon with first-party caveats.
#[derive(Clone, PartialEq, Eq)]
pub struct Macaroon {
    /// Borrowed for the usual `lsat`, so parsing an L402 macaroon does not allocate for it.
    location: Cow<'static, str>,
    identifier: Vec<u8>,
    caveats: Vec<Vec<u8>>,
    signature: [u8; 32],
}

impl std::fmt::Debug for Macaroon {
    // The signature is a bearer credential's proof of authenticity: keep it out of debug output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Macaroon")
            .field("location", &self.location)
            .field("identifier", &hex::encode(&self.identifier))
            .field("caveats", &self.caveat_strings())
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MacaroonError {
    #[error("macaroon is empty")]
    Empty,
    #[error("macaroon is larger than {MAX_MACAROON_BYTES} bytes")]
    TooLarge,
    #[error("macaroon format version {0} is not supported (only the V2 binary format is)")]
    UnsupportedVersion(u8),
    #[error("macaroon is truncated")]
    Truncated,
    #[error("macaroon field {0} is out of place or unknown")]
    UnexpectedField(u8),
    #[error("macaroon has no identifier")]
    MissingIdentifier,
    #[error("macaroon location is not UTF-8")]
    BadLocation,
    #[error("macaroon signature must be 32 bytes, found {0}")]
    BadSignatureLength(usize),
    #[error("third-party caveats are not used by L402 and are refused")]
    ThirdPartyCaveat,
    #[error("macaroon has more than {MAX_CAVEATS} caveats")]
    TooManyCaveats,
    #[error("{0} unexpected bytes after the macaroon")]
    TrailingBytes(usize),
}

// HMAC-SHA256 and SHA-256 straight on sha2's block function (SHA-NI where the CPU has it):
// no buffering wrapper, no heap, and the generator key's pads computed once per process. The
// libmacaroons vectors below and the interop script (Go, Python, JS) pin the results.

/// A fresh SHA-256 state.
fn sha256_core() -> Sha256VarCore {
    // 32 is SHA-256's output size, so this cannot fail.
    Sha256VarCore::new(32).unwrap_or_else(|_| unreachable!())
}

/// Hash `msg` on top of `core` (which may have absorbed whole blocks already) and finish.
fn sha256_finish(mut core: Sha256VarCore, msg: &[u8]) -> [u8; 32] {
    let mut blocks = msg.chunks_exact(64);
    for block in &mut blocks {
        core.update_blocks(std::slice::from_ref(Block::<Sha256VarCore>::from_slice(
            block,
        )));
    }
    // The remainder is shorter than a block, which is what the buffer holds.
    let mut buffer = Buffer::<Sha256VarCore>::new(blocks.remainder());
    let mut out = Default::default();
    core.finalize_variable_core(&mut buffer, &mut out);
    out.into()
}

/// SHA-256 of `data`.
pub(super) fn sha256(data: &[u8]) -> [u8; 32] {
    sha256_finish(sha256_core(), data)
}

/// An HMAC-SHA256 key schedule: the hash states after the inner and outer padded key.
#[derive(Clone)]
struct HmacKey {
    inner: Sha256VarCore,
    outer: Sha256VarCore,
}

impl HmacKey {
    fn new(key: &[u8]) -> HmacKey {
        let hashed;
        let key = if key.len() > 64 {
            hashed = sha256(key);
            &hashed[..]
        } else {
            key
        };
        let mut ipad = Block::<Sha256VarCore>::from([0x36; 64]);
        let mut opad = Block::<Sha256VarCore>::from([0x5c; 64]);
        for ((i, o), k) in ipad.iter_mut().zip(opad.iter_mut()).zip(key) {
            *i ^= k;
            *o ^= k;
        }
        let mut inner = sha256_core();
        inner.update_blocks(std::slice::from_ref(&ipad));
        let mut outer = sha256_core();
        outer.update_blocks(std::slice::from_ref(&opad));
        HmacKey { inner, outer }
    }

    fn mac(&self, msg: &[u8]) -> [u8; 32] {
        let inner = sha256_finish(self.inner.clone(), msg);
        sha256_finish(self.outer.clone(), &inner)
    }
}

/// HMAC-SHA256 (also the `Payment` scheme's challenge id).
pub(crate) fn hmac(key: &[u8], msg: &[u8]) -> [u8; 32] {
    HmacKey::new(key).mac(msg)
}

/// The generator key's schedule, computed once.
static KEY_GENERATOR_HMAC: LazyLock<HmacKey> = LazyLock::new(|| HmacKey::new(KEY_GENERATOR));

/// The key the HMAC chain starts from, derived from a root key as libmacaroons and Go do.
pub fn derive_key(root_key: &[u8]) -> [u8; 32] {
    KEY_GENERATOR_HMAC.mac(root_key)
}

fn location_of(location: &str) -> Cow<'static, str> {
    if location == L402_LOCATION {
        Cow::Borrowed(L402_LOCATION)
    } else {
        Cow::Owned(location.to_owned())
    }
}

impl Macaroon {
    /// A new macaroon signed with `root_key`.
    pub fn new(root_key: &[u8], identifier: Vec<u8>, location: &str) -> Macaroon {
        let signature = hmac(&derive_key(root_key), &identifier);
        Macaroon {
            location: location_of(location),
            identifier,
            caveats: Vec::new(),
            signature,
        }
    }

    /// Append a first-party caveat and extend the signature chain.
    pub fn add_caveat(&mut self, caveat: &[u8]) {
        self.signature = hmac(&self.signature, caveat);
        self.caveats.push(caveat.to_vec());
    }

    pub fn location(&self) -> &str {
        &self.location
    }
    pub fn identifier(&self) -> &[u8] {
        &self.identifier
    }
    pub fn caveats(&self) -> &[Vec<u8>] {
        &self.caveats
    }
    pub fn signature(&self) -> &[u8; 32] {
        &self.signature
    }

    /// Caveats as text (lossy for non-UTF-8 bytes): for display only.
    pub fn caveat_strings(&self) -> Vec<String> {
        self.caveats
            .iter()
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect()
    }

    /// The signature `root_key` gives this identifier and these caveats.
    pub fn expected_signature(&self, root_key: &[u8]) -> [u8; 32] {
        let mut sig = hmac(&derive_key(root_key), &self.identifier);
        for caveat in &self.caveats {
            sig = hmac(&sig, caveat);
        }
        sig
    }

    /// Was this macaroon signed by `root_key`? Compared in constant time.
    pub fn verify_signature(&self, root_key: &[u8]) -> bool {
        ct_eq32(&self.expected_signature(root_key), &self.signature)
    }

    /// The V2 binary encoding, byte-identical with Go, Python and JS for the same inputs.
    pub fn serialize(&self) -> Vec<u8> {
        let caveat_len: usize = self.caveats.iter().map(|c| c.len() + 8).sum();
        let mut out =
            Vec::with_capacity(self.location.len() + self.identifier.len() + caveat_len + 48);
        out.push(V2);
        if !self.location.is_empty() {
            put_field(&mut out, FIELD_LOCATION, self.location.as_bytes());
        }
        put_field(&mut out, FIELD_IDENTIFIER, &self.identifier);
        out.push(FIELD_EOS);
        for caveat in &self.caveats {
            put_field(&mut out, FIELD_IDENTIFIER, caveat);
            out.push(FIELD_EOS);
        }
        out.push(FIELD_EOS);
        put_field(&mut out, FIELD_SIGNATURE, &self.signature);
        out
    }

    /// Parse the V2 binary encoding. Refuses third-party caveats and trailing bytes.
    pub fn deserialize(bytes: &[u8]) -> Result<Macaroon, MacaroonError> {
        let (&version, rest) = bytes.split_first().ok_or(MacaroonError::Empty)?;
        if bytes.len() > MAX_MACAROON_BYTES {
            return Err(MacaroonError::TooLarge);
        }
        if version != V2 {
            return Err(MacaroonError::UnsupportedVersion(version));
        }
        let mut r = Reader { rest };

        // Header section: [location] identifier EOS
        let mut field = r.field()?;
        let mut location = Cow::Borrowed("");
        if field.0 == FIELD_LOCATION {
            location =
                location_of(std::str::from_utf8(field.1).map_err(|_| MacaroonError::BadLocation)?);
            field = r.field()?;
        }
        if field.0 != FIELD_IDENTIFIER {
            return Err(MacaroonError::MissingIdentifier);
        }
        let identifier = field.1.to_vec();
        r.expect_eos()?;

        // Caveat sections, then an empty section. L402 macaroons carry two to four caveats.
        let mut caveats = Vec::with_capacity(4);
        loop {
            let mut field = r.field()?;
            if field.0 == FIELD_EOS {
                break;
            }
            if caveats.len() == MAX_CAVEATS {
                return Err(MacaroonError::TooManyCaveats);
            }
            if field.0 == FIELD_LOCATION {
                // A caveat location marks a third-party caveat in practice; first-party ones have none.
                return Err(MacaroonError::ThirdPartyCaveat);
            }
            if field.0 != FIELD_IDENTIFIER {
                return Err(MacaroonError::UnexpectedField(field.0));
            }
            caveats.push(field.1.to_vec());
            field = r.field()?;
            match field.0 {
                FIELD_EOS => {}
                FIELD_VID => return Err(MacaroonError::ThirdPartyCaveat),
                other => return Err(MacaroonError::UnexpectedField(other)),
            }
        }

        let (kind, sig) = r.field()?;
        if kind != FIELD_SIGNATURE {
            return Err(MacaroonError::UnexpectedField(kind));
        }
        let signature: [u8; 32] = sig
            .try_into()
            .map_err(|_| MacaroonError::BadSignatureLength(sig.len()))?;
        if !r.rest.is_empty() {
            return Err(MacaroonError::TrailingBytes(r.rest.len()));
        }
        Ok(Macaroon {
            location,
            identifier,
            caveats,
            signature,
        })
    }
}

/// Constant-time equality of two 32-byte values: the differences are folded without branches
/// into one word, which `subtle` compares (one optimization barrier instead of 32).
pub(super) fn ct_eq32(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let mut diff = 0u64;
    for (x, y) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
        let mut wx = [0u8; 8];
        let mut wy = [0u8; 8];
        wx.copy_from_slice(x);
        wy.copy_from_slice(y);
        diff |= u64::from_ne_bytes(wx) ^ u64::from_ne_bytes(wy);
    }
    diff.ct_eq(&0).into()
}

fn put_field(out: &mut Vec<u8>, kind: u8, data: &[u8]) {
    out.push(kind);
    let mut n = data.len() as u64;
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            break;
        }
        out.push(byte | 0x80);
    }
    out.extend_from_slice(data);
}

struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    /// One field: `(type, data)`; the end-of-section marker comes back as `(0, [])`.
    fn field(&mut self) -> Result<(u8, &'a [u8]), MacaroonError> {
        let (&kind, rest) = self.rest.split_first().ok_or(MacaroonError::Truncated)?;
        self.rest = rest;
        if kind == FIELD_EOS {
            return Ok((FIELD_EOS, &[]));
        }
        let len = self.uvarint()?;
        if len > self.rest.len() {
            return Err(MacaroonError::Truncated);
        }
        let (data, rest) = self.rest.split_at(len);
        self.rest = rest;
        Ok((kind, data))
    }

    fn expect_eos(&mut self) -> Result<(), MacaroonError> {
        match self.field()? {
            (FIELD_EOS, _) => Ok(()),
            (other, _) => Err(MacaroonError::UnexpectedField(other)),
        }
    }

    fn uvarint(&mut self) -> Result<usize, MacaroonError> {
        let mut value: u64 = 0;
        for (i, &byte) in self.rest.iter().enumerate().take(10) {
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                self.rest = &self.rest[i + 1..];
                return usize::try_from(value).map_err(|_| MacaroonError::Truncated);
            }
        }
        Err(MacaroonError::Truncated)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::b64;
    use proptest::prelude::*;

    const APERTURE: &str = "AgEEbHNhdAJCAAAwpHpumws6ufQoDwiTLNcge0QPUIWA0+tVY+tKPYAJ/zSfmEGlIpNm3VzxuzCqLhEp5KGiyPLUM9L+kcB7uzS+AAIPc2VydmljZXM9bWVtZTowAAISbWVtZV9jYXBhYmlsaXRpZXM9AAAGILA1VCEIExukt4nG+XR9tX8WJ2BVMiHG3UNt1uYJ+NRD";

    #[test]
    fn libmacaroons_vectors() {
        let key = b"this is our super secret key; only we should know it";
        let mut m = Macaroon::new(key, b"we used our secret key".to_vec(), "http://mybank/");
        assert_eq!(
            hex::encode(m.signature()),
            "e3d9e02908526c4c0039ae15114115d97fdd68bf2ba379b342aaf0f617d0552f"
        );
        m.add_caveat(b"account = 3735928559");
        assert_eq!(
            hex::encode(m.signature()),
            "1efe4763f290dbce0c1d08477367e11f4eee456a64933cf662d79772dbb82128"
        );
        assert!(m.verify_signature(key));
        assert!(!m.verify_signature(b"another key"));
        assert_eq!(Macaroon::deserialize(&m.serialize()), Ok(m));
    }

    #[test]
    fn hmac_and_sha256_vectors() {
        // RFC 4231 test cases 2 (short key) and 6 (key longer than a block), FIPS 180-2 "abc".
        assert_eq!(
            hex::encode(hmac(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            hex::encode(hmac(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
        assert_eq!(
            hex::encode(sha256(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        // Messages around the block boundaries of the final padding.
        for len in [0, 55, 56, 63, 64, 65, 119, 120, 128, 200] {
            use sha2::Digest;
            let msg = vec![0x61; len];
            assert_eq!(
                sha256(&msg),
                <[u8; 32]>::from(sha2::Sha256::digest(&msg)),
                "{len}"
            );
        }
    }

    #[test]
    fn aperture_macaroon_parses() {
        let bytes = b64::decode(APERTURE).unwrap();
        let m = Macaroon::deserialize(&bytes).unwrap();
        assert_eq!(m.location(), "lsat");
        assert_eq!(m.identifier().len(), 66);
        assert_eq!(&m.identifier()[..2], &[0, 0]);
        assert_eq!(
            m.caveat_strings(),
            vec!["services=meme:0", "meme_capabilities="]
        );
        // Our serializer reproduces Aperture's bytes exactly.
        assert_eq!(m.serialize(), bytes);
    }

    #[test]
    fn refuses_malformed() {
        assert_eq!(Macaroon::deserialize(&[]), Err(MacaroonError::Empty));
        assert_eq!(
            Macaroon::deserialize(b"MDAxY2xvY2F0aW9u"),
            Err(MacaroonError::UnsupportedVersion(b'M'))
        );
        let good = b64::decode(APERTURE).unwrap();
        for cut in 1..good.len() {
            assert!(Macaroon::deserialize(&good[..cut]).is_err(), "cut at {cut}");
        }
        let mut trailing = good.clone();
        trailing.push(0);
        assert_eq!(
            Macaroon::deserialize(&trailing),
            Err(MacaroonError::TrailingBytes(1))
        );
    }

    #[test]
    fn refuses_third_party_caveats() {
        let mut m = Macaroon::new(b"k", b"id".to_vec(), "lsat");
        m.add_caveat(b"a=b");
        let bytes = m.serialize();
        // Insert a verification-id field after the caveat identifier: [.. 2 3 'a=b' | 4 1 'x' | 0 ..]
        let pos = bytes.windows(3).position(|w| w == b"a=b").unwrap() + 3;
        let mut third = bytes.clone();
        third.splice(pos..pos, [FIELD_VID, 1, b'x']);
        assert_eq!(
            Macaroon::deserialize(&third),
            Err(MacaroonError::ThirdPartyCaveat)
        );
    }

    proptest! {
        #[test]
        fn round_trip(
            key in proptest::collection::vec(any::<u8>(), 1..64),
            id in proptest::collection::vec(any::<u8>(), 1..300),
            caveats in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 0..8),
        ) {
            let mut m = Macaroon::new(&key, id, "lsat");
            for c in &caveats {
                m.add_caveat(c);
            }
            let parsed = Macaroon::deserialize(&m.serialize()).unwrap();
            prop_assert!(parsed.verify_signature(&key));
            prop_assert_eq!(parsed, m);
        }

        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = Macaroon::deserialize(&bytes);
        }

        #[test]
        fn never_panics_on_mutations(pos in 0usize..200, byte in any::<u8>()) {
            let mut bytes = b64::decode(APERTURE).unwrap();
            let i = pos % bytes.len();
            bytes[i] = byte;
            let _ = Macaroon::deserialize(&bytes);
        }
    }
}
