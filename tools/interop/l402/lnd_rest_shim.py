#!/usr/bin/env python3
"""GLUE, not a counterpart: the smallest LND REST server l402sdk needs, paying through LNbits.

l402sdk (PyPI, Rust core) pays only through LND (REST/gRPC), CLN or SwissKnife; there is no LND
here. Its LND REST backend makes one call to pay: POST /v2/router/send
{"payment_request", "timeout_seconds", "fee_limit_sat"} with the header Grpc-Metadata-macaroon,
and reads LND's newline-delimited stream of {"result": Payment} objects (status "SUCCEEDED",
payment_preimage as hex, as LND's REST gateway renders routerrpc.Payment). This shim answers that
call by paying the invoice from an LNbits wallet (lnbits_payer.pay) and answering one final
Payment object; any other path is 404. It checks the macaroon header against --macaroon so a
misconfigured client fails. Everything l402sdk does with the 402, the invoice, the credential and
the retry is its own code, unchanged.

It runs as its own process: l402sdk's Rust core holds the Python GIL while it waits for the
payment, so a shim thread inside the client's interpreter would never get to answer.

Usage: lnd_rest_shim.py --port P --lnbits-url URL --admin-key KEY --macaroon HEX
Prints "ready" on stdout once listening; one line per payment on stderr.
"""

import argparse
import http.server
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lnbits_payer  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--port", type=int, required=True)
ap.add_argument("--lnbits-url", required=True)
ap.add_argument("--admin-key", required=True)
ap.add_argument("--macaroon", required=True)
args = ap.parse_args()


def bolt11_msat(bolt11: str) -> int:
    """Amount of a BOLT11 invoice in msat, from its human-readable part (enough for value_sat)."""
    hrp = bolt11[: bolt11.rfind("1")].lower()
    i = 0
    while i < len(hrp) and not hrp[i].isdigit():
        i += 1
    amount = hrp[i:]
    if not amount:
        return 0
    mult = {"m": 10**8, "u": 10**5, "n": 100, "p": 0.1}.get(amount[-1])
    return int(int(amount[:-1]) * mult) if mult else int(amount) * 10**11


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def reply(self, code: int, obj: dict) -> None:
        data = (json.dumps(obj) + "\n").encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path != "/v2/router/send":
            return self.reply(404, {"code": 5, "message": f"shim: {self.path} not implemented"})
        if self.headers.get("Grpc-Metadata-macaroon") != args.macaroon:
            return self.reply(401, {"code": 2, "message": "verification failed: signature mismatch"})
        req = json.loads(body or b"{}")
        bolt11 = req.get("payment_request", "")
        try:
            paid = lnbits_payer.pay(args.lnbits_url, args.admin_key, bolt11)
        except Exception as e:  # noqa: BLE001  (reported to the client as LND would: a FAILED payment)
            print(f"lnd-shim: payment failed: {e}", file=sys.stderr, flush=True)
            return self.reply(200, {"result": {"status": "FAILED", "failure_reason": "FAILURE_REASON_ERROR",
                                               "payment_request": bolt11}})
        msat = bolt11_msat(bolt11)
        now = time.time_ns()
        payment = {
            "payment_hash": paid["payment_hash"],
            "value": str(msat // 1000),
            "creation_date": str(now // 10**9),
            "fee": str(paid["fee_msat"] // 1000),
            "payment_preimage": paid["preimage"],
            "value_sat": str(msat // 1000),
            "value_msat": str(msat),
            "payment_request": bolt11,
            "status": "SUCCEEDED",
            "fee_sat": str(paid["fee_msat"] // 1000),
            "fee_msat": str(paid["fee_msat"]),
            "creation_time_ns": str(now),
            "htlcs": [],
            "payment_index": "1",
            "failure_reason": "FAILURE_REASON_NONE",
        }
        print(f"lnd-shim: paid {paid['payment_hash']} ({msat} msat) through LNbits", file=sys.stderr, flush=True)
        self.reply(200, {"result": payment})

    def do_GET(self) -> None:
        self.reply(404, {"code": 5, "message": f"shim: {self.path} not implemented"})

    def log_message(self, *a) -> None:
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
print("ready", flush=True)
server.serve_forever()
