#!/usr/bin/env python3
"""Human approval of payments, driven by the official MCP Python SDK (2.x) with an elicitation callback.

An `l402-mcp gateway` (wallet "seller") sells /joke for 21 sats; each scenario starts its own buyer
(`l402-mcp serve` over stdio, its own wallet, an approval policy: above 10 sats a human decides,
questions wait APPROVAL_TIMEOUT seconds) and checks what moved, through the tools and the CLI:

  accept      the callback approves: paid once; the next call reuses the credential, unasked
  decline     the callback declines: approval_declined, nothing paid
  silence     the callback answers only after the approval expired: nothing paid
              (2025-11-25: the server stops waiting, approval_timeout; 2026-07-28: the late retry
              is refused, approval_expired)
  no-elicit   a client without the capability: approval_required with the id; after
              `l402-mcp approve ID` the next call gets the resource, paid once
  replay      (2026-07-28) an answered retry sent again pays nothing; its requestState does not
              open another purchase

One line per check on stdout; exit 0 only if every check passed. Normally called by run.sh:
  approval.py --label "py auto approval" --mode auto --bin BIN --data-dir DIR --shop-url URL
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import traceback
from contextlib import AsyncExitStack
from typing import Any

import anyio
from mcp import Client, StdioServerParameters, types
from mcp.client.stdio import stdio_client

from buy_sell import Report, leaf, short, text_of

PRICE = 21
START_SATS = 100_000
APPROVAL_TIMEOUT = 3  # seconds a question waits
STEP_TIMEOUT = float(os.environ.get("MCP_CLIENTS_STEP_TIMEOUT", "30"))


class Human:
    """The elicitation callback: what the person does when the client's dialog asks."""

    def __init__(self, answer: str) -> None:
        self.answer = answer
        self.asked: list[Any] = []

    async def __call__(self, ctx: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        self.asked.append(params)
        if self.answer == "accept":
            return types.ElicitResult(action="accept", content={"approve": True})
        if self.answer == "decline":
            return types.ElicitResult(action="decline")
        # "silence": answers yes, but only after the question expired
        await anyio.sleep(APPROVAL_TIMEOUT + 2)
        return types.ElicitResult(action="accept", content={"approve": True})


def cli(args: argparse.Namespace, wallet: str, *rest: str) -> tuple[int, Any]:
    """`l402-mcp --json ...` as a person runs it (no terminal: setsid)."""
    p = subprocess.run(
        ["setsid", args.bin, "--json", "--data-dir", args.data_dir, "--wallet", wallet, *rest],
        capture_output=True,
        timeout=60,
        env={"PATH": os.environ.get("PATH", ""), "HOME": args.data_dir},
    )
    try:
        return p.returncode, json.loads(p.stdout or b"null")
    except ValueError:
        return p.returncode, p.stdout.decode(errors="replace") + p.stderr.decode(errors="replace")


def balance(args: argparse.Namespace, wallet: str) -> int | None:
    _, out = cli(args, wallet, "balance")
    return out.get("balance_sats") if isinstance(out, dict) else None


def approvals(args: argparse.Namespace, wallet: str) -> list[dict[str, Any]]:
    _, out = cli(args, wallet, "approvals", "--all")
    return out.get("approvals", []) if isinstance(out, dict) else []


async def buyer(stack: AsyncExitStack, args: argparse.Namespace, wallet: str, human: Human | None) -> Client:
    env = {
        "L402_MCP_DATA_DIR": args.data_dir,
        "L402_MCP_WALLET": wallet,
        "XDG_CONFIG_HOME": args.data_dir,
        "L402_MCP_FETCH_ALLOW_LOOPBACK": "1",
        "L402_MCP_APPROVAL_ABOVE_SATS": "10",
        "L402_MCP_APPROVAL_TIMEOUT_SECS": str(APPROVAL_TIMEOUT),
    }
    params = StdioServerParameters(command=args.bin, args=["serve"], env=env)
    errlog = stack.enter_context(open(os.path.join(args.log_dir or args.data_dir, f"{wallet}.stdio.log"), "w"))
    client = Client(stdio_client(params, errlog=errlog), mode=args.mode, read_timeout_seconds=STEP_TIMEOUT, elicitation_callback=human)
    await stack.enter_async_context(client)
    return client


async def fetch(client: Client, url: str) -> Any:
    with anyio.fail_after(STEP_TIMEOUT):
        return await client.call_tool("fetch_paid", {"url": url})


async def scenario(args: argparse.Namespace, rep: Report, name: str) -> None:
    wallet = f"buyer-{args.mode}-{name}"
    seller0 = balance(args, "seller")
    human = None if name == "no-elicit" else Human("accept" if name == "replay" else name)
    async with AsyncExitStack() as stack:
        client = await buyer(stack, args, wallet, human)
        modern = client.protocol_version >= "2026"
        if name == "replay":
            if modern:
                await replay(args, rep, client, wallet)
            return
        r = await fetch(client, args.shop_url)
        s, txt = r.structured_content or {}, text_of(r)
        asked = len(human.asked) if human else 0
        if name == "accept":
            rc = s.get("receipt") or {}
            q = getattr(human.asked[0], "message", "") if asked else ""
            rep.check("accept: asked once, paid", not r.is_error and s.get("status") == 200 and rc.get("paid") is True and rc.get("amount_sats") == PRICE and asked == 1, short(s or txt))
            rep.check("accept: the question says it", "21 sats" in q and "127.0.0.1" in q and "/joke" in q and getattr(human.asked[0], "mode", "form") == "form", q)
            r = await fetch(client, args.shop_url)
            rc = (r.structured_content or {}).get("receipt") or {}
            rep.check("accept: next call reuses, unasked", not r.is_error and rc.get("token_reused") is True and len(human.asked) == 1, short(r.structured_content or text_of(r)))
            rep.check("accept: paid exactly once", balance(args, wallet) == START_SATS - PRICE and balance(args, "seller") == (seller0 or 0) + PRICE, f"buyer {balance(args, wallet)} seller {balance(args, 'seller')} (was {seller0})")
        elif name == "decline":
            rep.check("decline: nothing paid", r.is_error and txt.startswith("approval_declined") and asked == 1 and balance(args, wallet) == START_SATS, short(txt))
            rep.check("decline: approval denied", [a.get("status") for a in approvals(args, wallet)] == ["denied"], short(approvals(args, wallet)))
        elif name == "silence":
            want = "approval_expired" if modern else "approval_timeout"
            rep.check(f"silence: {want}", r.is_error and txt.startswith(want) and asked == 1, short(txt))
            await anyio.sleep(1)
            rep.check("silence: nothing paid", balance(args, wallet) == START_SATS and [a.get("status") for a in approvals(args, wallet)] == ["expired"], short(approvals(args, wallet)))
        elif name == "no-elicit":
            ident = txt.split("(approval ", 1)[-1].split(",", 1)[0] if "(approval " in txt else ""
            rep.check("no-elicit: approval_required", r.is_error and txt.startswith("approval_required") and "l402-mcp approve" in txt and bool(ident), short(txt))
            rep.check("no-elicit: nothing paid yet", balance(args, wallet) == START_SATS)
            code, out = cli(args, wallet, "approve", ident)
            rep.check("no-elicit: l402-mcp approve pays", code == 0 and isinstance(out, dict) and out.get("paid") is True, short(out))
            r = await fetch(client, args.shop_url)
            s = r.structured_content or {}
            rep.check("no-elicit: next call gets it", not r.is_error and s.get("status") == 200 and (s.get("receipt") or {}).get("paid") is False, short(s or text_of(r)))
            code, out = cli(args, wallet, "approve", ident)
            rep.check("no-elicit: approve again refused", code != 0 and isinstance(out, dict) and out.get("code") == "approval_not_pending", short(out))
            rep.check("no-elicit: paid exactly once", balance(args, wallet) == START_SATS - PRICE, f"{balance(args, wallet)}")


async def replay(args: argparse.Namespace, rep: Report, client: Client, wallet: str) -> None:
    """2026-07-28 by hand: the input_required round, the answered retry, then the same retry again."""
    session = client.session
    with anyio.fail_after(STEP_TIMEOUT):
        first = await session.call_tool("fetch_paid", {"url": args.shop_url}, allow_input_required=True)
    state = getattr(first, "request_state", None)
    rep.check("replay: input_required", state is not None and "approve" in (getattr(first, "input_requests", None) or {}), short(repr(first)))
    if state is None:
        return
    yes = {"approve": {"action": "accept", "content": {"approve": True}}}
    moved_refused = False
    try:
        with anyio.fail_after(STEP_TIMEOUT):
            moved = await session.call_tool("fetch_paid", {"url": args.shop_url + "?another=1"}, allow_input_required=True, input_responses=yes, request_state=state)
        moved_refused = bool(getattr(moved, "is_error", False))
    except Exception:  # noqa: BLE001 - a JSON-RPC error is the expected refusal
        moved_refused = True
    rep.check("replay: state bound to its call", moved_refused and balance(args, wallet) == START_SATS)
    with anyio.fail_after(STEP_TIMEOUT):
        paid = await session.call_tool("fetch_paid", {"url": args.shop_url}, allow_input_required=True, input_responses=yes, request_state=state)
    rc = (getattr(paid, "structured_content", None) or {}).get("receipt") or {}
    rep.check("replay: answered retry pays", rc.get("paid") is True, short(repr(paid)))
    with anyio.fail_after(STEP_TIMEOUT):
        again = await session.call_tool("fetch_paid", {"url": args.shop_url}, allow_input_required=True, input_responses=yes, request_state=state)
    rep.check("replay: the same retry refused", bool(getattr(again, "is_error", False)) and text_of(again).startswith("approval_not_pending"), short(repr(again)))
    rep.check("replay: paid exactly once", balance(args, wallet) == START_SATS - PRICE, f"{balance(args, wallet)}")


async def run(args: argparse.Namespace, rep: Report) -> None:
    for name in ("accept", "decline", "silence", "no-elicit", "replay"):
        t0 = time.monotonic()
        try:
            with anyio.fail_after(60):
                await scenario(args, rep, name)
        except BaseException as e:  # noqa: BLE001 - one scenario's failure is reported, the others run
            cause = leaf(e)
            rep.check(f"{name}: completed", False, f"{type(cause).__name__}: {cause} after {time.monotonic() - t0:.1f} s")
            print("".join(traceback.format_exception(e))[-3000:], file=sys.stderr)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--label", required=True)
    ap.add_argument("--mode", choices=["auto", "legacy"], required=True)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--log-dir")
    ap.add_argument("--shop-url", required=True)
    args = ap.parse_args()
    rep = Report(args.label)
    asyncio.run(run(args, rep))
    return 1 if rep.failed or not rep.passed else 0


if __name__ == "__main__":
    sys.exit(main())
