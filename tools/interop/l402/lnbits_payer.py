"""Paying from an LNbits wallet over its REST API (the glue between the L402 clients and LNbits).

The L402 clients under test cannot talk to LNbits themselves (l402-requests: LND REST, NWC, Strike
or a WalletBase subclass; l402sdk: LND/CLN REST). This module is the one place that pays:
POST /api/v1/payments {"out": true, "bolt11"} with the wallet's admin key, then the preimage from
the answer or from GET /api/v1/payments/{hash}. Standard library only, so it runs in any venv.

INTEROP_BREAK=preimage makes it hand back a wrong preimage (after paying): the L402 client then
sends a credential our gateway must refuse, which shows the check can fail.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request


class LNbitsError(Exception):
    pass


def _call(url: str, key: str, method: str, path: str, body: dict | None = None) -> dict:
    req = urllib.request.Request(url.rstrip("/") + path, method=method,
                                 data=None if body is None else json.dumps(body).encode())
    req.add_header("X-Api-Key", key)
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.load(r)
    except urllib.error.HTTPError as e:
        raise LNbitsError(f"LNbits {method} {path}: HTTP {e.code}: {e.read().decode(errors='replace')[:300]}") from None


def pay(url: str, admin_key: str, bolt11: str) -> dict:
    """Pay `bolt11`; returns {"payment_hash", "preimage" (hex), "fee_msat"}."""
    r = _call(url, admin_key, "POST", "/api/v1/payments", {"out": True, "bolt11": bolt11})
    ph = r.get("payment_hash") or r.get("checking_id")
    preimage = r.get("preimage") or r.get("payment_preimage")
    if not preimage and ph:
        preimage = _call(url, admin_key, "GET", f"/api/v1/payments/{ph}").get("preimage")
    if not preimage or len(preimage) != 64:
        raise LNbitsError(f"LNbits paid but returned no usable preimage: {r}")
    if os.environ.get("INTEROP_BREAK") == "preimage":
        preimage = preimage[:-1] + ("0" if preimage[-1] != "0" else "1")
    return {"payment_hash": ph, "preimage": preimage.lower(), "fee_msat": abs(int(r.get("fee") or 0))}


def balance_msat(url: str, key: str) -> int:
    return int(_call(url, key, "GET", "/api/v1/wallet")["balance"])
