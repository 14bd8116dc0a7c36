#!/usr/bin/env python3
"""Third-party L402 clients pay OUR gateway (`l402-mcp gateway`, selling with LNbits wallet B),
paying from LNbits wallet A:

  l402-requests  (PyPI 0.9.0)  L402Client with a WalletBase subclass that pays through LNbits'
                               REST API (LNbitsWallet below: l402-requests supports LND REST, NWC,
                               Strike or a WalletBase subclass; the subclass is its documented
                               extension point)
  l402sdk        (PyPI 0.1.0, Rust core)  L402Client.with_lnd_rest pointed at lnd_rest_shim.py,
                               which answers LND's POST /v2/router/send by paying through LNbits
                               (l402sdk speaks only LND/CLN/SwissKnife)

Per client: the first GET gets a 402 from the gateway, the client pays (the invoice's amount,
exactly once: wallet A down and wallet B up by the price) and retries with `L402 mac:preimage`;
the gateway verifies it and proxies to the upstream, whose JSON must come back. A second GET must
reuse the client's cached credential (200, nothing paid). Then a control our gateway must refuse:
the client's own credential with a wrong preimage (402 again).

One line per check: "<client> <direction> <check> PASS|FAIL [detail]"; exit 1 if any failed.
Usage: pay_gateway.py --client l402-requests|l402sdk --gateway URL --path /paid/data --price SATS
       --lnbits INFO_JSON [--shim-url URL --shim-macaroon HEX]
INTEROP_BREAK=preimage (read by lnbits_payer) makes the wallet glue return a wrong preimage.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import traceback
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lnbits_payer  # noqa: E402

DIRECTION = "client->our-gateway"
FAILED = 0
NAME = "?"  # the counterpart, for a crash report


def check(client: str, name: str, ok: bool, detail: str = "") -> bool:
    global FAILED
    FAILED += not ok
    line = f"{client:<14} {DIRECTION:<20} {name:<44} {'PASS' if ok else 'FAIL'}"
    if detail and not ok:
        line += "  " + detail[:600]
    print(line, flush=True)
    return ok


def plain_get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=15) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def wrong_preimage(auth: str) -> str:
    """`L402 mac:preimage` with the preimage's last hex digit changed."""
    head, pre = auth.rsplit(":", 1)
    return f"{head}:{pre[:-1]}{'0' if pre[-1] != '0' else '1'}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--client", required=True, choices=["l402-requests", "l402sdk"])
    ap.add_argument("--gateway", required=True)
    ap.add_argument("--path", default="/paid/data")
    ap.add_argument("--price", type=int, required=True)
    ap.add_argument("--lnbits", required=True)
    ap.add_argument("--shim-url")
    ap.add_argument("--shim-macaroon")
    args = ap.parse_args()
    global NAME
    NAME = args.client
    info = json.load(open(args.lnbits))
    lnb, a, b = info["url"], info["a"], info["b"]
    url = args.gateway.rstrip("/") + args.path
    name = args.client

    # The gateway really sells this path: an unpaid request gets the Aperture-style 402.
    status, _ = plain_get(url)
    check(name, "gateway answers 402 unpaid", status == 402, f"status {status}")

    a0, b0 = lnbits_payer.balance_msat(lnb, a["invoice_key"]), lnbits_payer.balance_msat(lnb, b["invoice_key"])
    auth = None
    if name == "l402-requests":
        from l402_requests import L402Client, WalletBase

        class LNbitsWallet(WalletBase):
            """l402-requests' wallet extension point, paying through LNbits' REST API."""

            supports_preimage = True

            async def pay_invoice(self, bolt11: str) -> str:
                return lnbits_payer.pay(lnb, a["admin_key"], bolt11)["preimage"]

            def pay_invoice_sync(self, bolt11: str) -> str:
                return lnbits_payer.pay(lnb, a["admin_key"], bolt11)["preimage"]

        client = L402Client(wallet=LNbitsWallet())  # its default budget (caps far above the price)
        r = client.get(url)
        body = r.text
        check(name, "paid request: 200 with the upstream's data",
              r.status_code == 200 and '"the answer is 42"' in body, f"status {r.status_code}: {body[:300]}")
        check(name, "credential not forwarded to the upstream", '"authorization_forwarded": null' in body, body[:300])
        cred = client._cache.get("127.0.0.1", args.path)  # noqa: SLF001  (the credential it built)
        auth = cred.authorization_header if cred else None
        check(name, "credential sent with scheme L402", bool(auth) and auth.startswith("L402 "), f"cached: {auth!r}")
        a1, b1 = lnbits_payer.balance_msat(lnb, a["invoice_key"]), lnbits_payer.balance_msat(lnb, b["invoice_key"])
        r2 = client.get(url)
        a2 = lnbits_payer.balance_msat(lnb, a["invoice_key"])
        check(name, "second request reuses the token (200, no pay)",
              r2.status_code == 200 and a2 == a1, f"status {r2.status_code}, wallet A {a1} -> {a2} msat")
    else:
        from l402 import Budget, L402Client

        client = L402Client.with_lnd_rest(args.shim_url, args.shim_macaroon, budget=Budget.unlimited())
        r = client.get(url)
        rec = r.receipt
        check(name, "paid request: 200 with the upstream's data",
              r.status == 200 and r.paid and '"the answer is 42"' in r.text(),
              f"status {r.status} paid={r.paid}: {r.text()[:300]}")
        check(name, "credential not forwarded to the upstream", '"authorization_forwarded": null' in r.text(), r.text()[:300])
        ok = rec is not None and rec.amount_sats == args.price and \
            hashlib.sha256(bytes.fromhex(rec.preimage)).hexdigest() == rec.payment_hash
        check(name, "receipt: price and preimage match", ok,
              f"receipt {rec and (rec.amount_sats, rec.payment_hash, rec.preimage)}")
        a1, b1 = lnbits_payer.balance_msat(lnb, a["invoice_key"]), lnbits_payer.balance_msat(lnb, b["invoice_key"])
        r2 = client.get(url)
        a2 = lnbits_payer.balance_msat(lnb, a["invoice_key"])
        check(name, "second request reuses the token (200, no pay)",
              r2.status == 200 and r2.cached_token and not r2.paid and a2 == a1,
              f"status {r2.status} cached={r2.cached_token} paid={r2.paid}, wallet A {a1} -> {a2} msat")
        if rec is not None:
            # l402sdk does not expose the header it sent: the refusal control pairs a fresh
            # challenge's macaroon with the receipt's preimage (which hashes to another invoice).
            _, body402 = plain_get(url)
            try:
                auth = f"L402 {json.loads(body402)['macaroon']}:{rec.preimage}"
            except (ValueError, KeyError):
                auth = None

    paid_msat = args.price * 1000
    check(name, "wallet A paid exactly the price once", a0 - a1 == paid_msat, f"wallet A {a0} -> {a1} msat")
    check(name, "wallet B (our gateway) received the price", b1 - b0 == paid_msat, f"wallet B {b0} -> {b1} msat")
    if auth:
        bad = wrong_preimage(auth) if name == "l402-requests" else auth
        status, _ = plain_get(url, {"Authorization": bad})
        check(name, "control: wrong preimage is refused (402)", status == 402, f"status {status}")


if __name__ == "__main__":
    try:
        main()
    except Exception:  # noqa: BLE001
        FAILED += 1
        print(f"{NAME:<14} {DIRECTION:<20} {'run completed':<44} FAIL  {traceback.format_exc()[-800:]}", flush=True)
    sys.exit(1 if FAILED else 0)
