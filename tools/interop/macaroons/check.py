"""check.py: the Python side of the macaroon interop check, on pymacaroons 0.13.

Same command line as check.go (hex lowercase, base64 standard and padded):

  vector                         libmacaroons' classic vector (key derivation)
  mint   --root-key HEX (--id-hex HEX | --id-text S) [--location L] [--caveat C]...
  verify --root-key HEX --macaroon B64 [--id-hex HEX] [--location L] [--caveat C]...
         asserts: location (default lsat) and identifier (if given); verifies with the root key and a checker accepting exactly the
         given caveats (seen in that order); fails with a wrong root key; fails
         when the checker refuses the last caveat; re-serializes to the same bytes.

pymacaroons notes: `Macaroon(key=...)` and `Verifier.verify(m, key)` both derive
the key as HMAC-SHA256("macaroons-key-generator", key) (libmacaroons style);
`serialize()` gives URL-safe base64, so we serialize raw bytes and encode them
ourselves. An unmet first-party caveat makes `verify` raise (signature mismatch).
"""

import argparse
import base64
import binascii
import sys

from pymacaroons import Macaroon, Verifier
from pymacaroons.macaroon import MACAROON_V2
from pymacaroons.serializers.binary_serializer import BinarySerializer


def fail(msg):
    print("python: " + msg, file=sys.stderr)
    sys.exit(1)


def mint(root_key, identifier, location, caveats):
    m = Macaroon(location=location, identifier=identifier, key=root_key, version=MACAROON_V2)
    for c in caveats:
        m.add_first_party_caveat(c)
    return m


def verify_with(m, root_key, expected, refuse=None):
    """Library verify with a checker accepting exactly `expected`.
    Returns (ok, error, conditions seen in order)."""
    seen = []

    def checker(cond):
        seen.append(cond)
        return cond != refuse and cond in expected

    v = Verifier()
    v.satisfy_general(checker)
    try:
        return bool(v.verify(m, root_key)), None, seen
    except Exception as e:  # MacaroonInvalidSignatureException and friends
        return False, e, seen


def cmd_vector():
    m = mint(b"this is our super secret key; only we should know it",
             b"we used our secret key", "http://mybank/", [])
    want = "e3d9e02908526c4c0039ae15114115d97fdd68bf2ba379b342aaf0f617d0552f"
    if m.signature != want:
        fail("libmacaroons vector: signature %s, want %s" % (m.signature, want))
    m.add_first_party_caveat("account = 3735928559")
    want2 = "1efe4763f290dbce0c1d08477367e11f4eee456a64933cf662d79772dbb82128"
    if m.signature != want2:
        fail("libmacaroons vector with caveat: signature %s, want %s" % (m.signature, want2))
    print("python: libmacaroons vector ok")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("cmd", choices=["vector", "mint", "verify"])
    p.add_argument("--root-key")
    p.add_argument("--id-hex")
    p.add_argument("--id-text")
    p.add_argument("--location", default="lsat")
    p.add_argument("--macaroon")
    p.add_argument("--caveat", action="append", default=[])
    a = p.parse_args()

    if a.cmd == "vector":
        return cmd_vector()

    root_key = bytes.fromhex(a.root_key)
    if a.cmd == "mint":
        ident = bytes.fromhex(a.id_hex) if a.id_hex else a.id_text.encode()
        m = mint(root_key, ident, a.location, a.caveat)
        print(base64.b64encode(BinarySerializer().serialize_raw(m)).decode())
        return

    # verify: our side promises standard padded base64, decode strictly...
    try:
        raw = base64.b64decode(a.macaroon, validate=True)
    except binascii.Error as e:
        fail("not standard padded base64: %s" % e)
    # ...then let the library parse the base64 string itself.
    m = Macaroon.deserialize(a.macaroon)
    if m.version != MACAROON_V2:
        fail("version %s, want V2" % m.version)
    if m.location != a.location:
        fail("location %r, want %r" % (m.location, a.location))
    if a.id_hex and m.identifier_bytes.hex() != a.id_hex:
        fail("identifier %s, want %s" % (m.identifier_bytes.hex(), a.id_hex))
    ok, err, seen = verify_with(m, root_key, a.caveat)
    if not ok:
        fail("does not verify with the right root key: %s" % err)
    if seen != a.caveat:
        fail("caveats %r, want %r" % (seen, a.caveat))
    wrong = root_key[:-1] + bytes([root_key[-1] ^ 1])
    if verify_with(m, wrong, a.caveat)[0]:
        fail("verifies with a WRONG root key")
    if a.caveat and verify_with(m, root_key, a.caveat, refuse=a.caveat[-1])[0]:
        fail("verifies although the checker refused a caveat")
    again = BinarySerializer().serialize_raw(m)
    if again != raw:
        fail("re-serialized bytes differ:\n in  %s\n out %s" % (raw.hex(), again.hex()))
    print("python: ok, id %s, %d caveats, signature %s"
          % (m.identifier_bytes.hex(), len(seen), m.signature))


if __name__ == "__main__":
    main()
