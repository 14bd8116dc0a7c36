#!/usr/bin/env python3
"""OUR buyer (fetch_paid, through the official MCP Python SDK over stdio) pays third-party L402
servers. The buyer is `l402-mcp serve` with L402_MCP_BACKEND=lnbits on LNbits wallet A and
L402_MCP_FETCH_ALLOW_LOOPBACK=1; the sellers sell through LNbits wallet B.

  l402kit   (PyPI, FastAPI decorator): `L402` only, "macaroon" = base64 JSON {hash, exp}, the
            challenge also in a JSON body, single-use tokens (a reused preimage gets 401)
  boltwall  (npm, Express): `LSAT` only, URL-safe unpadded base64 macaroons, 132-character hex
            identifiers, its own Lightning calls glued to LNbits (see ../boltwall/server.cjs)

Per seller: fetch_paid gets the 402, pays the invoice (wallet A down and wallet B up by exactly the
price, the receipt says so, with the scheme the seller used) and returns the seller's 200 body.
Then a second fetch_paid of the same URL must return the content again: boltwall accepts the
cached token (no new payment); l402kit's tokens are single-use, so the buyer has to notice the
refusal of its cached token and pay again (exactly one more payment).

One line per check: "<seller> <direction> <check> PASS|FAIL [detail]"; exit 1 if any failed.
Usage: fetch_paid.py --seller l402kit|boltwall --url URL --price SATS --lnbits INFO_JSON --bin L402_MCP
       --data-dir DIR [--reuse single-use|cached]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lnbits_payer  # noqa: E402
from mcp import Client, StdioServerParameters  # noqa: E402
from mcp.client.stdio import stdio_client  # noqa: E402

DIRECTION = "fetch_paid->seller"
FAILED = 0
NAME = "?"  # the counterpart, for a crash report


def check(seller: str, name: str, ok: bool, detail: str = "") -> bool:
    global FAILED
    FAILED += not ok
    line = f"{seller:<14} {DIRECTION:<20} {name:<44} {'PASS' if ok else 'FAIL'}"
    if detail and not ok:
        line += "  " + detail[:900]
    print(line, flush=True)
    return ok


def brief(s: dict | None) -> str:
    if not s:
        return "no structuredContent"
    return json.dumps({k: s.get(k) for k in ("status", "receipt", "body", "headers")})


async def run(args: argparse.Namespace) -> None:
    info = json.load(open(args.lnbits))
    lnb, a, b = info["url"], info["a"], info["b"]
    env = {
        "L402_MCP_DATA_DIR": args.data_dir,
        "XDG_CONFIG_HOME": args.data_dir,
        "L402_MCP_FETCH_ALLOW_LOOPBACK": "1",
        "L402_MCP_BACKEND": "lnbits",
        "L402_MCP_LNBITS_URL": lnb,
        "L402_MCP_LNBITS_ADMIN_KEY": a["admin_key"],
        "L402_MCP_LNBITS_INVOICE_KEY": a["invoice_key"],
        "L402_MCP_NETWORK": "mainnet",
    }
    params = StdioServerParameters(command=args.bin, args=["serve"], env=env)
    seller, price = args.seller, args.price * 1000
    with open(os.path.join(args.data_dir, "buyer.stdio.log"), "w") as errlog:
        async with Client(stdio_client(params, errlog=errlog), read_timeout_seconds=60) as c:
            a0, b0 = lnbits_payer.balance_msat(lnb, a["invoice_key"]), lnbits_payer.balance_msat(lnb, b["invoice_key"])
            r = await c.call_tool("fetch_paid", {"url": args.url, "max_price_sats": args.price})
            s = r.structured_content or {}
            rec = s.get("receipt") or {}
            check(seller, "first call: 200 with the seller's data",
                  not r.is_error and s.get("status") == 200 and seller in (s.get("body") or ""),
                  f"isError={r.is_error} {brief(s)} {'' if s else r.content}")
            check(seller, f"receipt: paid {args.price} sats, scheme {args.scheme}",
                  rec.get("paid") is True and rec.get("amount_msat") == price and rec.get("scheme") == args.scheme,
                  brief(s))
            a1, b1 = lnbits_payer.balance_msat(lnb, a["invoice_key"]), lnbits_payer.balance_msat(lnb, b["invoice_key"])
            check(seller, "wallet A paid exactly the price once", a0 - a1 == price, f"wallet A {a0} -> {a1} msat")
            check(seller, "the seller's wallet B received it", b1 - b0 == price, f"wallet B {b0} -> {b1} msat")

            r2 = await c.call_tool("fetch_paid", {"url": args.url, "max_price_sats": args.price})
            s2 = r2.structured_content or {}
            rec2 = s2.get("receipt") or {}
            a2 = lnbits_payer.balance_msat(lnb, a["invoice_key"])
            got = not r2.is_error and s2.get("status") == 200 and seller in (s2.get("body") or "")
            if args.reuse == "cached":
                check(seller, "second call: cached token reused, no payment",
                      got and rec2.get("token_reused") is True and rec2.get("paid") is False and a2 == a1,
                      f"isError={r2.is_error} {brief(s2)}; wallet A {a1} -> {a2} msat")
            else:
                check(seller, "second call (single-use token): data again",
                      got, f"isError={r2.is_error} {brief(s2)} {'' if s2 else r2.content}")
                check(seller, "second call: paid exactly once more",
                      rec2.get("paid") is True and a1 - a2 == price, f"receipt {rec2}; wallet A {a1} -> {a2} msat")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seller", required=True)
    ap.add_argument("--url", required=True)
    ap.add_argument("--price", type=int, required=True)
    ap.add_argument("--scheme", required=True, help="the scheme the seller uses: L402 or LSAT")
    ap.add_argument("--reuse", choices=["cached", "single-use"], required=True)
    ap.add_argument("--lnbits", required=True)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--data-dir", required=True)
    args = ap.parse_args()
    global NAME
    NAME = args.seller
    asyncio.run(run(args))


if __name__ == "__main__":
    try:
        main()
    except BaseException:  # noqa: BLE001
        FAILED += 1
        print(f"{NAME:<14} {DIRECTION:<20} {'run completed':<44} FAIL  {traceback.format_exc()[-900:]}", flush=True)
    sys.exit(1 if FAILED else 0)
