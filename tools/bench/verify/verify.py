"""verify.py: L402 credential verification on pymacaroons 0.13, the same work as
benches/l402_verify.rs on the same token: split "L402 <b64>:<hex>", base64 decode and V2 parse
(Macaroon.deserialize), identifier decode (66 bytes, version 0), sha256(preimage) == payment
hash, sha256(identifier), Verifier().verify with the root key and a general checker for
services / capabilities / valid_until.

Run: python verify.py HEADER ROOT_KEY_HEX NOW SECS ROUNDS   -> one JSON line
Rates are per second of process CPU time (time.process_time); wall_rates per elapsed second.
"""
import hashlib
import hmac
import json
import sys
import time

from pymacaroons import Macaroon, Verifier

SERVICE = "demo"
CAPABILITY = "read"


def make_checker(now):
    def checker(caveat):
        cond, eq, value = caveat.partition("=")
        if not eq:
            return False
        cond, value = cond.strip(), value.strip()
        if cond == "services":
            for s in value.split(","):
                name, colon, tier = s.strip().partition(":")
                if not colon or not tier.isdigit() or int(tier) > 255:
                    return False
                if name == SERVICE:
                    return True
            return False
        if cond == SERVICE + "_capabilities":
            return CAPABILITY in (c.strip() for c in value.split(","))
        if cond == SERVICE + "_valid_until":
            return value.isdigit() and now <= int(value)
        return False
    return checker


def verify(header, root_key, now):
    scheme, _, rest = header.strip().partition(" ")
    if scheme.upper() not in ("L402", "LSAT"):
        raise ValueError("scheme")
    mac_b64, _, pre_hex = rest.strip().rpartition(":")
    preimage = bytes.fromhex(pre_hex)
    if len(preimage) != 32:
        raise ValueError("preimage")
    m = Macaroon.deserialize(mac_b64)
    ident = m.identifier_bytes
    if len(ident) != 66 or ident[0] != 0 or ident[1] != 0:
        raise ValueError("identifier")
    payment_hash = ident[2:34]
    if not hmac.compare_digest(hashlib.sha256(preimage).digest(), payment_hash):
        raise ValueError("preimage mismatch")
    hashlib.sha256(ident).digest()  # the root key's name
    v = Verifier()
    v.satisfy_general(make_checker(now))
    return v.verify(m, root_key)


def main():
    header, key_hex, now, secs, rounds = sys.argv[1:6]
    root_key, now, secs, rounds = bytes.fromhex(key_hex), int(now), float(secs), int(rounds)
    verify(header, root_key, now)
    rates, wall = [], []
    for rnd in range(rounds + 1):
        budget = 0.2 if rnd == 0 else secs
        start, cpu0 = time.perf_counter(), time.process_time()
        n = 0
        while True:
            for _ in range(64):
                if not verify(header, root_key, now):
                    raise SystemExit("verification failed")
            n += 64
            if time.process_time() - cpu0 >= budget:
                break
        if rnd > 0:
            rates.append(n / (time.process_time() - cpu0))
            wall.append(n / (time.perf_counter() - start))
    s = sorted(rates)
    print(json.dumps({"impl": "python pymacaroons 0.13 (CPython %d.%d)" % sys.version_info[:2],
                      "rates": [round(r) for r in rates], "median": round(s[len(s) // 2]),
                      "best": round(s[-1]), "wall_rates": [round(r) for r in wall]}))


if __name__ == "__main__":
    main()
