#!/usr/bin/env python3
"""Write tools/startup-order/symbols.txt: the functions `l402-mcp serve` runs from spawn to an idle
session, in the order the linker should place them (BENCHMARKS.md section 2).

Why: the kernel maps a binary's code in 64 KiB windows (fault-around) or whole large folios around
each page it touches. Start-up runs ~1,600 functions (~2.3 MiB of code) spread over the whole
20 MiB `.text`, so ~11 MiB of code ended up resident after `tools/list`. build.rs hands this list
to the linker (`--symbol-ordering-file`), which puts these functions first and together. Nothing
else changes: same code, same work, fewer pages.

How: runs the binary under `valgrind --tool=callgrind --dump-instr=yes`, drives it as an MCP client
(initialize, notifications/initialized, tools/list; dump; then ping, create_invoice,
decode_invoice, wallet_balance; dump), maps every executed instruction address to its symbol with
`nm`, and writes the symbols: those of start-up first, then those the first calls add, each group
in the address order of the binary it traced.

The names are mangled with hashes that change with the compiler and the dependencies' versions:
regenerate after a toolchain or Cargo.lock change, from the binary the benchmark builds:
    cargo bench --bench mcp_stdio --no-run
    python3 tools/startup-order/generate.py target/release/l402-mcp
A stale list does no harm: names the linker does not find are skipped (the code is then placed
where it would have been without the list). `generate.py --check BINARY` says how many of the
listed functions a binary has, and over how many bytes of its code they are spread.
Needs valgrind (Debian: valgrind) and nm (binutils). Not run by CI.
"""

import bisect
import json
import os
import re
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "symbols.txt")


def drive(binary, out_prefix, data_dir):
    """Run the server under callgrind; dump after tools/list and again after a few calls."""
    cmd = [
        "valgrind",
        "--tool=callgrind",
        "--dump-instr=yes",
        f"--callgrind-out-file={out_prefix}",
        binary,
        "serve",
        "--data-dir",
        data_dir,
    ]
    p = subprocess.Popen(
        cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    next_id = [0]

    def send(msg):
        p.stdin.write((json.dumps(msg) + "\n").encode())
        p.stdin.flush()

    def request(method, params):
        next_id[0] += 1
        send({"jsonrpc": "2.0", "id": next_id[0], "method": method, "params": params})
        while True:
            line = p.stdout.readline()
            if not line:
                sys.exit(f"the server closed stdout during {method}")
            v = json.loads(line)
            if v.get("id") == next_id[0]:
                if "error" in v:
                    sys.exit(f"{method}: {v['error']}")
                return v["result"]

    def dump():
        time.sleep(1)
        subprocess.run(["callgrind_control", "-d", str(p.pid)], check=True, capture_output=True)
        time.sleep(1)

    request(
        "initialize",
        {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "startup-order", "version": "0"},
        },
    )
    send({"jsonrpc": "2.0", "method": "notifications/initialized"})
    request("tools/list", {})
    dump()
    request("ping", {})
    inv = request(
        "tools/call",
        {"name": "create_invoice", "arguments": {"amount_sats": 21, "description": "order"}},
    )
    bolt11 = inv["structuredContent"]["bolt11"]
    request("tools/call", {"name": "decode_invoice", "arguments": {"bolt11": bolt11}})
    request("tools/call", {"name": "wallet_balance", "arguments": {}})
    dump()
    p.stdin.close()
    p.wait(timeout=120)


def executed(path, obj):
    """Executed instruction addresses (object-relative) in `obj`, from a callgrind dump."""
    addrs = set()
    objects = {}
    cur = None
    last = 0
    for line in open(path):
        if line.startswith(("ob=", "cob=")):
            m = re.match(r"c?ob=\((\d+)\)(?: (.*))?", line.rstrip("\n"))
            if m.group(2):
                objects[m.group(1)] = m.group(2)
            if line.startswith("ob="):
                cur = objects.get(m.group(1))
            continue
        if not line or line[0] not in "0123456789+-*":
            continue
        tok = line.split()[0]
        if tok == "*":
            a = last
        elif tok[0] == "+":
            a = last + int(tok[1:], 0)
        elif tok[0] == "-":
            a = last - int(tok[1:], 0)
        else:
            a = int(tok, 0)
        last = a
        if cur is not None and os.path.realpath(cur) == obj:
            addrs.add(a)
    return addrs


def symbols(binary):
    """(start, size, mangled name) of every function of `binary`, sorted by address."""
    out = subprocess.run(
        ["nm", "--defined-only", "-S", binary], capture_output=True, text=True, check=True
    ).stdout
    syms = []
    for line in out.splitlines():
        f = line.split(" ", 3)
        if len(f) == 4 and f[2] in "tTwW" and int(f[1], 16) > 0:
            syms.append((int(f[0], 16), int(f[1], 16), f[3]))
    syms.sort()
    return syms


def check(binary):
    """How many listed functions `binary` has, and how far apart the linker put them."""
    names = [n for n in open(OUT).read().splitlines() if n]
    have = {s[2]: s for s in symbols(binary)}
    found = [have[n] for n in names if n in have]
    if not found:
        print(f"{binary}: none of the {len(names)} listed functions")
        return
    lo = min(s[0] for s in found)
    hi = max(s[0] + s[1] for s in found)
    size = sum(s[1] for s in found)
    print(
        f"{binary}: {len(found)} of {len(names)} listed functions ({size / 1048576:.2f} MiB), "
        f"spread over {(hi - lo) / 1048576:.2f} MiB of code"
    )


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--check":
        check(os.path.realpath(sys.argv[2]))
        return
    if len(sys.argv) != 2:
        sys.exit("usage: generate.py PATH/TO/l402-mcp | generate.py --check PATH/TO/l402-mcp")
    binary = os.path.realpath(sys.argv[1])
    syms = symbols(binary)
    starts = [s[0] for s in syms]
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "data")
        # The first start creates the data dir and the wallet (and fails the handshake on the
        # closed stdin); the traced one is a later start, like every start after the first.
        subprocess.run(
            [binary, "serve", "--data-dir", data],
            stdin=subprocess.DEVNULL,
            capture_output=True,
        )
        prefix = os.path.join(tmp, "callgrind.out")
        drive(binary, prefix, data)
        parts = sorted(
            (f for f in os.listdir(tmp) if f.startswith("callgrind.out.")),
            key=lambda f: int(f.rsplit(".", 1)[1]),
        )
        if len(parts) < 2:
            sys.exit(f"expected two callgrind dumps, found {parts}")
        seen = set()
        groups = []
        for part in parts[:2]:
            hit = set()
            for a in executed(os.path.join(tmp, part), binary):
                i = bisect.bisect_right(starts, a) - 1
                if i >= 0 and a < syms[i][0] + syms[i][1]:
                    hit.add(i)
            groups.append(sorted(hit - seen))
            seen |= hit
    names = [syms[i][2] for g in groups for i in g]
    size = [sum(syms[i][1] for i in g) for g in groups]
    with open(OUT, "w") as f:
        f.writelines(n + "\n" for n in names)
    print(
        f"{OUT}: {len(groups[0])} start-up functions ({size[0] / 1048576:.2f} MiB), "
        f"then {len(groups[1])} more for the first calls ({size[1] / 1048576:.2f} MiB)"
    )


if __name__ == "__main__":
    main()
