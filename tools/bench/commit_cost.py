"""commit_cost.py [DIR] [N]: what one SQLite commit costs in WAL mode with synchronous = FULL
(the ledger's setting: the WAL is fsynced at every commit) and with NORMAL (fsynced only at
checkpoints), on the filesystem of DIR (default: a temp dir, as the benches use). Each commit
inserts one row, as a reservation does. Prints one JSON line; measures, asserts nothing."""
import json
import os
import sqlite3
import sys
import tempfile
import time


def rate(path, sync, n):
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = %s" % sync)
    db.execute("CREATE TABLE IF NOT EXISTS t (i INTEGER PRIMARY KEY, v TEXT)")
    t = time.perf_counter()
    for i in range(n):
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO t (v) VALUES (?)", ("x" * 64,))
        db.execute("COMMIT")
    secs = time.perf_counter() - t
    db.close()
    return n / secs


base = sys.argv[1] if len(sys.argv) > 1 else None
n = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
with tempfile.TemporaryDirectory(dir=base) as d:
    out = {}
    # Alternate, so that load on the machine hits both alike; the median of three.
    runs = {"FULL": [], "NORMAL": []}
    for r in range(3):
        for sync in ("FULL", "NORMAL"):
            runs[sync].append(rate(os.path.join(d, "%s-%d.db" % (sync, r)), sync, n))
    for sync, rates in runs.items():
        m = sorted(rates)[1]
        out[sync] = {"commits_per_s": round(m), "us_per_commit": round(1e6 / m, 1)}
    out["fsync_us"] = round(out["FULL"]["us_per_commit"] - out["NORMAL"]["us_per_commit"], 1)
    print(json.dumps(out))
