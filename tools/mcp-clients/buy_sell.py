#!/usr/bin/env python3
"""One full L402 buy/sell loop between two l402-mcp servers, driven by the official MCP Python SDK (2.x).

Agent B (seller) and agent A (buyer) are two MCP client sessions to `l402-mcp serve` processes over
one shared data dir (wallets "seller" and "buyer"). This script runs a small HTTP endpoint on
127.0.0.1 that sells /joke through B's tools (create_l402_challenge, verify_l402_payment); A buys
it with fetch_paid. One line per check on stdout; exit 0 only if every check passed.

Normally called by run.sh, which creates the data dir and, for HTTP, starts the servers:
  buy_sell.py --label "py auto stdio" --mode auto --transport stdio --bin BIN --data-dir DIR
  buy_sell.py ... --transport http --seller-url http://127.0.0.1:P/mcp --buyer-url http://127.0.0.1:Q/mcp [--token T]
  buy_sell.py ... --transport sse  --seller-url http://127.0.0.1:P/sse --buyer-url ... (legacy HTTP+SSE)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import traceback
import urllib.error
import urllib.request
from contextlib import AsyncExitStack
from typing import Any

import anyio
import httpx2  # the HTTP client mcp 2.x is built on
from mcp import Client, StdioServerParameters
from mcp.client.sse import sse_client
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client

EXPECTED_TOOLS = {
    "fetch_paid",
    "create_l402_challenge",
    "verify_l402_payment",
    "wallet_balance",
    "pay_invoice",
    "create_invoice",
    "decode_invoice",
    "list_payments",
}
START_SATS = 100_000
PRICE = 21  # /joke, /joke-two
EXPENSIVE = 5_000  # /expensive: above the default per-payment cap (1000)
STEP_TIMEOUT = float(os.environ.get("MCP_CLIENTS_STEP_TIMEOUT", "30"))  # seconds per MCP request
JOKE = {"joke": "Why did the Lightning node cross the channel? To get to the other side of the HTLC."}


class Report:
    def __init__(self, label: str) -> None:
        self.client, self.mode, self.transport = (label.split() + ["-", "-", "-"])[:3]
        self.failed = 0
        self.passed = 0

    def check(self, name: str, ok: bool, detail: str = "") -> bool:
        verdict = "PASS" if ok else "FAIL"
        if ok:
            self.passed += 1
        else:
            self.failed += 1
        line = f"{self.client:<3} {self.mode:<7} {self.transport:<11} {name:<30} {verdict}"
        if detail and not ok:
            line += f"  {detail}"
        print(line, flush=True)
        return ok


# ------------------------------------------------------------------ the seller's HTTP endpoint


class JokeShop:
    """GET /joke (and /joke-two, /expensive): 402 with B's challenge, 200 with B's approval."""

    def __init__(self, seller: Client) -> None:
        self.seller = seller
        self.challenges: list[dict[str, Any]] = []  # structuredContent of each create_l402_challenge
        self.verifications: list[dict[str, Any]] = []  # structuredContent of each verify_l402_payment
        self.errors: list[str] = []
        self.server: asyncio.base_events.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            lines = head.decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            headers: dict[str, str] = {}
            for line in lines[1:]:
                if ":" in line:
                    k, v = line.split(":", 1)
                    headers[k.strip().lower()] = v.strip()
            length = int(headers.get("content-length", "0") or 0)
            if length:
                await reader.readexactly(length)
            status, extra, body = await self._route(method, target.split("?", 1)[0], headers.get("authorization"))
        except Exception as e:  # the endpoint must answer something; the buyer's checks will fail
            self.errors.append(f"{type(e).__name__}: {e}")
            status, extra, body = 500, [], json.dumps({"error": str(e)}).encode()
        reason = {200: "OK", 402: "Payment Required", 404: "Not Found", 500: "Internal Server Error"}[status]
        out = [f"HTTP/1.1 {status} {reason}", "Content-Type: application/json", f"Content-Length: {len(body)}", "Connection: close"]
        out += [f"{k}: {v}" for k, v in extra]
        writer.write(("\r\n".join(out) + "\r\n\r\n").encode() + body)
        try:
            await writer.drain()
        finally:
            writer.close()

    async def _route(self, method: str, path: str, authorization: str | None) -> tuple[int, list[tuple[str, str]], bytes]:
        prices = {"/joke": PRICE, "/joke-two": PRICE, "/expensive": EXPENSIVE}
        if method != "GET" or path not in prices:
            return 404, [], b'{"error":"not found"}'
        if authorization:
            r = await self.seller.call_tool("verify_l402_payment", {"authorization": authorization, "service": "jokes"})
            if r.is_error:
                raise RuntimeError(f"verify_l402_payment failed: {text_of(r)}")
            v = r.structured_content or {}
            self.verifications.append(v)
            if v.get("valid") is True:
                return 200, [], json.dumps(JOKE).encode()
        r = await self.seller.call_tool(
            "create_l402_challenge",
            {"amount_sats": prices[path], "description": f"joke {path}", "service": "jokes"},
        )
        if r.is_error:
            raise RuntimeError(f"create_l402_challenge failed: {text_of(r)}")
        c = r.structured_content or {}
        self.challenges.append(c)
        extra = [("WWW-Authenticate", line) for line in c.get("www_authenticate", [])]
        extra.append(("Cache-Control", "no-store"))
        return 402, extra, b'{"error":"payment required"}'


# ------------------------------------------------------------------ helpers


def text_of(result: Any) -> str:
    return " ".join(getattr(c, "text", "") for c in (result.content or []))


def leaf(e: BaseException) -> BaseException:
    """The first real error inside (nested) exception groups, as anyio task groups raise them."""
    while getattr(e, "exceptions", None):  # BaseExceptionGroup (3.11+, or the backport on 3.10)
        e = e.exceptions[0]  # type: ignore[attr-defined]
    return e


def short(value: Any, n: int = 400) -> str:
    s = value if isinstance(value, str) else json.dumps(value, default=str, sort_keys=True)
    return s if len(s) <= n else s[:n] + "..."


async def call(client: Client, name: str, args: dict[str, Any]) -> Any:
    with anyio.fail_after(STEP_TIMEOUT):
        return await client.call_tool(name, args)


def raw_get(url: str, authorization: str | None = None) -> tuple[int, list[tuple[str, str]], str]:
    req = urllib.request.Request(url, headers={"Authorization": authorization} if authorization else {})
    try:
        with urllib.request.urlopen(req, timeout=15) as r:
            return r.status, list(r.headers.items()), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, list(e.headers.items()), e.read().decode()


def raw_post(url: str, body: dict[str, Any], headers: dict[str, str]) -> tuple[int, dict[str, str], str]:
    data = json.dumps(body).encode()
    h = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"} | headers
    req = urllib.request.Request(url, data=data, headers=h, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=15) as r:
            return r.status, dict(r.headers.items()), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers.items()), e.read().decode()


async def transport_for(
    args: argparse.Namespace, wallet: str, url: str | None, token: str | None, stack: AsyncExitStack, logdir: str, statuses: list[int] | None = None
) -> Any:
    """A Transport (async context manager) for one server; `token=None` sends no Authorization.
    `statuses` (streamable HTTP) collects the HTTP status of every response the SDK receives."""
    if args.transport == "stdio":
        env = {"L402_MCP_DATA_DIR": args.data_dir, "L402_MCP_WALLET": wallet, "XDG_CONFIG_HOME": args.data_dir}
        # fetch_paid refuses loopback addresses by default; the buyer must reach the shop on
        # 127.0.0.1. The seller keeps the default (checked below).
        env["L402_MCP_FETCH_ALLOW_LOOPBACK"] = "1" if wallet == "buyer" else "0"
        if os.environ.get("INTEROP_BREAK") == "budget":  # sabotage: no payment can pass the cap
            env["L402_MCP_PER_PAYMENT_SATS"] = "1"
        params = StdioServerParameters(command=args.bin, args=["serve", "--data-dir", args.data_dir, "--wallet", wallet], env=env)
        errlog = stack.enter_context(open(os.path.join(logdir, f"{wallet}.stdio.log"), "w"))
        return stdio_client(params, errlog=errlog)
    assert url is not None
    headers = {"Authorization": f"Bearer {token}"} if token else None
    if args.transport == "sse":
        return sse_client(url, headers=headers)
    # Headers go on an httpx2 client of our own, as streamable_http_client's docs say (with the
    # SDK's default timeouts); it does not close a client it is given: the stack does.
    async def record(response: httpx2.Response) -> None:
        if statuses is not None:
            statuses.append(response.status_code)

    http_client = httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=300), event_hooks={"response": [record]})
    await stack.enter_async_context(http_client)
    return streamable_http_client(url, http_client=http_client)


async def connect(
    stack: AsyncExitStack, args: argparse.Namespace, wallet: str, url: str | None, token: str | None, logdir: str, statuses: list[int] | None = None
) -> Client:
    transport = await transport_for(args, wallet, url, token, stack, logdir, statuses)
    # No timeout wrapper here: the SDK's task groups outlive this call and must nest inside the
    # caller's scopes. read_timeout_seconds bounds the handshake and every request instead.
    client = Client(transport, mode=args.mode, read_timeout_seconds=STEP_TIMEOUT)
    await stack.enter_async_context(client)
    return client


# ------------------------------------------------------------------ the loop


async def run(args: argparse.Namespace, rep: Report) -> None:
    logdir = args.log_dir or args.data_dir
    expect_modern = args.mode == "auto"

    if args.token:
        await check_token_refused(args, rep, logdir)

    async with AsyncExitStack() as stack:
        seller = await connect(stack, args, "seller", args.seller_url, args.token, logdir)
        buyer = await connect(stack, args, "buyer", args.buyer_url, args.token, logdir)
        for who, c in (("seller", seller), ("buyer", buyer)):
            v = c.protocol_version
            ok = (v >= "2026") if expect_modern else (v < "2026")
            rep.check(f"connect {who} ({v})", ok, f"negotiated {v}, expected {'2026-07-28 (modern)' if expect_modern else 'a handshake-era version'}")

        for who, c in (("buyer", buyer), ("seller", seller)):
            with anyio.fail_after(STEP_TIMEOUT):
                tools = await c.list_tools()
            names = {t.name for t in tools.tools}
            rep.check(f"tools/list {who}", EXPECTED_TOOLS <= names, f"missing {sorted(EXPECTED_TOOLS - names)} (listed: {sorted(names)})")

        bal = {}
        for who, c in (("buyer", buyer), ("seller", seller)):
            r = await call(c, "wallet_balance", {})
            s = r.structured_content or {}
            bal[who] = s
            ok = (
                not r.is_error
                and s.get("wallet") == who
                and s.get("balance_sats") == START_SATS
                and s.get("balance_msat") == START_SATS * 1000
                and s.get("demo_funds") is True
                and isinstance(s.get("budget"), dict)
            )
            rep.check(f"wallet_balance {who}", ok, f"isError={r.is_error} {short(s or text_of(r))}")
        per_payment = bal["buyer"].get("budget", {}).get("per_payment_sats")
        daily = bal["buyer"].get("budget", {}).get("daily_sats")

        shop = JokeShop(seller)
        await shop.start()
        try:
            await buy(args, rep, buyer, seller, shop, per_payment, daily)
        finally:
            await shop.stop()
        rep.check("endpoint without internal errors", not shop.errors, short(shop.errors))


async def buy(args: argparse.Namespace, rep: Report, buyer: Client, seller: Client, shop: JokeShop, per_payment: Any, daily: Any) -> None:
    # 0. by default fetch_paid does not reach loopback addresses: the seller has the default policy
    r = await call(seller, "fetch_paid", {"url": shop.url("/joke")})
    txt = text_of(r)
    rep.check(
        "loopback refused by default",
        r.is_error and txt.startswith("address_refused") and not shop.challenges,
        f"isError={r.is_error} challenges={len(shop.challenges)} {short(r.structured_content or txt)}",
    )

    # 1. the first purchase
    r = await call(buyer, "fetch_paid", {"url": shop.url("/joke"), "max_price_sats": 100})
    s = r.structured_content or {}
    rc = s.get("receipt") or {}
    challenge = shop.challenges[0] if shop.challenges else {}
    try:
        body_ok = json.loads(s.get("body", "")) == JOKE
    except ValueError:
        body_ok = False
    ok = (
        not r.is_error
        and s.get("status") == 200
        and body_ok
        and s.get("body_encoding") == "text"
        and rc.get("paid") is True
        and rc.get("amount_sats") == PRICE
        and rc.get("amount_msat") == PRICE * 1000
        and rc.get("token_reused") is False
        and rc.get("scheme") == "L402"
        and rc.get("payment_hash") == challenge.get("payment_hash")
        and len(shop.challenges) == 1
    )
    rep.check("fetch_paid pays and gets 200", ok, f"isError={r.is_error} challenges={len(shop.challenges)} {short(s or text_of(r), 700)}")
    fee = rc.get("fee_sats") or 0
    paid_hash = rc.get("payment_hash")
    v = shop.verifications[-1] if shop.verifications else {}
    rep.check(
        "seller verified the credential",
        v.get("valid") is True and v.get("amount_paid_sats") == PRICE and v.get("payment_hash") == paid_hash,
        short(shop.verifications),
    )
    if isinstance(daily, int):
        rep.check("receipt budget_remaining", rc.get("budget_remaining_sats") == daily - PRICE - fee, f"daily={daily} receipt={short(rc)}")

    # 2. the same URL again: the cached credential, nothing paid
    n_challenges = len(shop.challenges)
    r = await call(buyer, "fetch_paid", {"url": shop.url("/joke"), "max_price_sats": 100})
    s = r.structured_content or {}
    rc = s.get("receipt") or {}
    ok = (
        not r.is_error
        and s.get("status") == 200
        and rc.get("paid") is False
        and rc.get("token_reused") is True
        and len(shop.challenges) == n_challenges
        and (shop.verifications[-1].get("valid") if shop.verifications else False) is True
    )
    rep.check("fetch_paid again reuses token", ok, f"isError={r.is_error} new challenges={len(shop.challenges) - n_challenges} {short(s or text_of(r), 700)}")

    # 3. a forged credential (right macaroon, wrong preimage) gets a fresh 402 from the seller
    mac = challenge.get("macaroon", "")
    n_challenges = len(shop.challenges)
    status, headers, _ = await asyncio.to_thread(raw_get, shop.url("/joke"), f"L402 {mac}:{'00' * 32}")
    www = [v for k, v in headers if k.lower() == "www-authenticate"]
    v = shop.verifications[-1] if shop.verifications else {}
    ok = (
        status == 402
        and v.get("valid") is False
        and v.get("reason_code") == "preimage_mismatch"
        and len(www) == 2
        and www[0].startswith("LSAT macaroon=")
        and www[1].startswith("L402 macaroon=")
        and len(shop.challenges) == n_challenges + 1
    )
    rep.check("wrong preimage -> fresh 402", ok, f"status={status} www={short(www, 200)} verify={short(v)}")

    # 4. refusals: nothing may be paid
    r = await call(buyer, "fetch_paid", {"url": shop.url("/joke-two"), "max_price_sats": PRICE - 1})
    txt = text_of(r)
    rep.check("max_price_sats below price refused", r.is_error and txt.startswith("price_above_cap"), f"isError={r.is_error} {short(r.structured_content or txt)}")
    r = await call(buyer, "fetch_paid", {"url": shop.url("/expensive")})
    txt = text_of(r)
    rep.check(
        f"price above per-payment cap ({per_payment}) refused",
        r.is_error and txt.startswith("price_above_cap"),
        f"isError={r.is_error} {short(r.structured_content or txt)}",
    )

    # 5. money moved by exactly the price, once
    rb = await call(buyer, "wallet_balance", {})
    rs = await call(seller, "wallet_balance", {})
    b, sl = rb.structured_content or {}, rs.structured_content or {}
    rep.check(
        "buyer balance down by price",
        b.get("balance_sats") == START_SATS - PRICE - fee and b.get("budget", {}).get("spent_24h_sats") == PRICE + fee,
        f"fee={fee} {short(b)}",
    )
    rep.check(
        "seller balance up by price",
        sl.get("balance_sats") == START_SATS + PRICE and sl.get("earned_24h_sats") == PRICE,
        short(sl),
    )

    r = await call(buyer, "list_payments", {"direction": "out"})
    out = (r.structured_content or {}).get("payments", [])
    ok = (
        not r.is_error
        and len(out) == 1
        and out[0].get("direction") == "out"
        and out[0].get("status") == "succeeded"
        and out[0].get("amount_sats") == PRICE
        and out[0].get("payment_hash") == paid_hash
    )
    rep.check("list_payments buyer: one out", ok, short(r.structured_content or text_of(r), 700))
    r = await call(seller, "list_payments", {"direction": "in"})
    inc = (r.structured_content or {}).get("payments", [])
    settled = [p for p in inc if p.get("status") == "succeeded"]
    ok = (
        not r.is_error
        and len(settled) == 1
        and settled[0].get("direction") == "in"
        and settled[0].get("amount_sats") == PRICE
        and settled[0].get("payment_hash") == paid_hash
    )
    rep.check("list_payments seller: one in", ok, short(r.structured_content or text_of(r), 700))


async def check_token_refused(args: argparse.Namespace, rep: Report, logdir: str) -> None:
    """--http-token: a client without the token is refused with 401, before the real run."""
    url = args.buyer_url
    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "probe", "version": "0"}},
    }
    status, headers, body = await asyncio.to_thread(raw_post, url, init, {})
    www = {k.lower(): v for k, v in headers.items()}.get("www-authenticate", "")
    rep.check("no token: raw POST -> 401", status == 401 and www.lower().startswith("bearer"), f"status={status} www-authenticate={www!r} body={short(body, 200)}")
    status, _, body = await asyncio.to_thread(raw_post, url, init, {"Authorization": "Bearer wrong-token"})
    rep.check("wrong token: raw POST -> 401", status == 401, f"status={status} body={short(body, 200)}")

    # The Python SDK turns any HTTP 4xx but 404 into a generic MCPError ("Server returned an error
    # response"), so the statuses it received are recorded to see that it was a 401.
    refused, detail, statuses = False, "connected without a token", []
    try:
        async with AsyncExitStack() as stack:
            await connect(stack, args, "buyer", url, None, logdir, statuses)
    except TimeoutError:
        detail = "SDK client hung instead of failing"
    except Exception as e:  # noqa: BLE001 - a failure to connect is the expected outcome
        cause = leaf(e)
        refused = bool(statuses) and set(statuses) == {401}
        detail = f"HTTP statuses seen by the SDK: {statuses}; {type(cause).__name__}: {cause}"
    rep.check("no token: SDK client refused", refused, detail)


async def run_with_deadline(args: argparse.Namespace, rep: Report) -> None:
    with anyio.fail_after(120):
        await run(args, rep)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--label", required=True, help='"client mode transport", for the report lines')
    ap.add_argument("--mode", choices=["auto", "legacy"], required=True)
    ap.add_argument("--transport", choices=["stdio", "http", "sse"], required=True)
    ap.add_argument("--bin", default=os.environ.get("L402_MCP_BIN", "l402-mcp"))
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--log-dir")
    ap.add_argument("--seller-url")
    ap.add_argument("--buyer-url")
    ap.add_argument("--token")
    args = ap.parse_args()
    rep = Report(args.label)
    try:
        asyncio.run(run_with_deadline(args, rep))
    except BaseException as e:  # noqa: BLE001 - report, never hang or die silently
        detail = "".join(traceback.format_exception(e)).strip().splitlines()
        cause = leaf(e)
        rep.check("run completed", False, f"{type(cause).__name__}: {cause}")
        print("\n".join("    " + line for line in detail[-25:]), file=sys.stderr)
    return 1 if rep.failed or not rep.passed else 0


if __name__ == "__main__":
    sys.exit(main())
