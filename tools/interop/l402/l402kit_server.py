#!/usr/bin/env python3
"""An l402kit seller (PyPI `l402kit`, FastAPI decorator) selling GET /premium through LNbits.

This is l402kit exactly as its README shows it: `@l402_required(price_sats=..., lightning=
LNbitsProvider(api_key, base_url))`, the provider pointed at the local LNbits (wallet B's invoice
key). l402kit answers 402 with `WWW-Authenticate: L402 macaroon="<base64 JSON {hash, exp}>",
invoice="<bolt11>"` and the same challenge in a JSON body; it accepts only the `L402` scheme, checks
sha256(preimage) == hash and the expiry (its "macaroon" is not a real macaroon), and accepts each
preimage once (a second use answers 401 "Token already used").

Usage: l402kit_server.py --port P --lnbits-url URL --invoice-key KEY [--price SATS]
Prints "ready" on stdout once listening.
INTEROP_BREAK=scheme rewrites the challenge's scheme to LSAT (sabotage: a buyer that answers in the
scheme it was challenged with is then refused, since l402kit takes only "L402 ").
"""

import argparse
import os
import sys

import uvicorn
from fastapi import FastAPI, Request
from l402kit import LNbitsProvider, l402_required

ap = argparse.ArgumentParser()
ap.add_argument("--port", type=int, required=True)
ap.add_argument("--lnbits-url", required=True)
ap.add_argument("--invoice-key", required=True)
ap.add_argument("--price", type=int, default=13)
args = ap.parse_args()

app = FastAPI()
provider = LNbitsProvider(api_key=args.invoice_key, base_url=args.lnbits_url)


@app.get("/premium")
@l402_required(price_sats=args.price, lightning=provider)
async def premium(request: Request):
    return {"data": "l402kit premium content", "seller": "l402kit"}


if os.environ.get("INTEROP_BREAK") == "scheme":
    @app.middleware("http")
    async def lsat_scheme(request: Request, call_next):
        response = await call_next(request)
        if response.status_code == 402:
            response.headers["WWW-Authenticate"] = response.headers["WWW-Authenticate"].replace("L402 ", "LSAT ", 1)
        return response


@app.get("/health")
async def health():
    return {"ok": True}


config = uvicorn.Config(app, host="127.0.0.1", port=args.port, log_level="warning")
server = uvicorn.Server(config)
print("ready", flush=True)
sys.exit(0 if server.run() is None else 1)
