"""table.py OUT_DIR: the table of tools/bench/run.sh, from the raw JSON its benchmarks wrote.
Targets are compared here for the report only; nothing fails on a time."""
import json
import os
import statistics
import sys

out = sys.argv[1]
rows = []  # (section, what, value, target, verdict)


def load_lines(name):
    path = os.path.join(out, name)
    if not os.path.exists(path):
        return []
    res = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("{"):
                res.append(json.loads(line))
    return res


def verdict(ok):
    return "met" if ok else "NOT met"


# 1. verification rate
v = load_lines("verify.jsonl")
if v:
    by = {}
    for d in v:
        by.setdefault(d["impl"], []).extend(d["rates"])
    med = {k: statistics.median(r) for k, r in by.items()}
    ours = next((m for k, m in med.items() if k.startswith("rust")), None)
    go = next((m for k, m in med.items() if k.startswith("go")), None)
    for k, m in sorted(med.items(), key=lambda kv: -kv[1]):
        rng = "%.0f-%.0f" % (min(by[k]), max(by[k]))
        target, ok = "", None
        rows.append(("1 verify/s, 1 core", k, "%s/s (median of %d rounds; %s)" % (f"{m:,.0f}", len(by[k]), rng),
                     target, "" if ok is None else verdict(ok)))
    if ours and go:
        rows.append(("1 verify/s, 1 core", "ours / Go", "%.2fx" % (ours / go), ">= 4x", verdict(ours / go >= 4)))
    best_c = max((m for k, m in med.items() if k.startswith("c openssl")), default=None)
    for k, m in med.items():
        if k.startswith("c openssl"):
            best = m == best_c
            rows.append(("1 verify/s, 1 core", "ours / " + k.split(" (")[0], "%.2fx" % (ours / m),
                         ">= 1.0x the best C" if best else "", verdict(ours / m >= 1.0) if best else ""))

# 2. MCP (the second file: the same client and our server, both on one CPU)
for one_cpu, d in [(False, d) for d in load_lines("mcp.jsonl")] + [(True, d) for d in load_lines("mcp-one-cpu.jsonl")]:
    name = d["server"] + (" (client and server on one CPU)" if one_cpu else "")
    ours = name.startswith("l402")
    s = d["spawn_to_initialize"]
    rows.append(("2 MCP stdio", name + ": spawn -> initialize reply",
                 "p50 %.2f ms, min %.2f ms (first start %.2f ms)" % (s["p50_ms"], s["min_ms"], d["spawn_to_initialize_first_ms"]),
                 "<= 10 ms" if ours else "", verdict(s["p50_ms"] <= 10) if ours else ""))
    rss = d["idle_rss_kib_after_tools_list"] / 1024
    rows.append(("2 MCP stdio", name + ": idle RSS after tools/list",
                 "%.1f MiB (peak %.1f MiB)" % (rss, d["peak_rss_kib_after_tools_list"] / 1024),
                 "<= 12 MiB" if ours else "", verdict(rss <= 12) if ours else ""))
    if "ping" in d:
        rows.append(("2 MCP stdio", name + ": ping round trip (no tool work)",
                     "p50 %.3f ms, p99 %.3f ms" % (d["ping"]["p50_ms"], d["ping"]["p99_ms"]), "", ""))
    for key, lat in d.items():
        if not key.startswith("call_"):
            continue
        tool = key[5:]
        target, ok = "", None
        if tool == "decode_invoice":
            target, ok = "p50 <= 0.05 ms, p99 <= 0.2 ms", lat["p50_ms"] <= 0.05 and lat["p99_ms"] <= 0.2
        rows.append(("2 MCP stdio", "%s: %s round trip" % (name, tool),
                     "p50 %.3f ms, p99 %.3f ms (n=%d)" % (lat["p50_ms"], lat["p99_ms"], lat["n"]),
                     target, "" if ok is None else verdict(ok)))

# 3. payments
p = load_lines("pay.json")
if p:
    p = p[0]
    for b in p["throughput"]:
        first = b["batch"] == 0
        rows.append(("3 payments/s", "%d callers, batch %d (%d earlier payments in the window)" % (p["callers"], b["batch"], b["history_before"]),
                     f"{b['per_sec']:,.0f}/s", ">= 5,000/s" if first else "", verdict(b["per_sec"] >= 5000) if first else ""))
    c = p["throughput_budget_check"]
    rows.append(("3 payments/s", "budget after the run", "spent %d msat <= cap %d: %s" % (c["spent_msat"], c["cap_msat"], c["within_budget"]), "never over", verdict(c["within_budget"])))
    t = p["tight_cap"]
    rows.append(("3 payments/s", "tight cap (runs out mid-run)", "paid %d, refused %d; spent %d <= cap %d msat" % (t["paid"], t["refused"], t["check"]["spent_msat"], t["check"]["cap_msat"]), "never over", verdict(t["check"]["within_budget"])))
    hist = p.get("history") or []
    fresh = next((h["per_sec"] for h in hist if h["history"] == 0), None)
    for h in hist:
        if h["history"] == 0:
            rows.append(("3 payments/s", "%d callers, fresh ledger (history runs)" % p["callers"], f"{h['per_sec']:,.0f}/s", "", ""))
            continue
        ratio = h["per_sec"] / fresh if fresh else 0
        last = h["history"] == max(x["history"] for x in hist)
        rows.append(("3 payments/s", "with %s payments in the last 24 h" % f"{h['history']:,}",
                     f"{h['per_sec']:,.0f}/s (x{ratio:.2f} of fresh)",
                     "within 10 % of fresh at 1M" if last else "", verdict(ratio >= 0.9) if last else ""))
    for s in p["scaling"]:
        rows.append(("3 payments/s", "%d callers (fresh ledger)" % s["callers"], f"{s['per_sec']:,.0f}/s", "", ""))
    b = p["breakdown_1_caller"]
    if "decode_one_recovery_shared_context_ms" in b:
        rows.append(("3 payments/s", "decode alone (ms)", "bolt11::decode %.3f; parse + 1 recovery, shared context %.3f; Secp256k1::new() %.3f" % (
            b["decode_ms"], b["decode_one_recovery_shared_context_ms"], b["secp256k1_new_context_ms"]), "", ""))
    rows.append(("3 payments/s", "one payment step by step (ms)",
                 "decode %.3f, reconcile %.3f, budget %.3f, reserve %.3f, settle %.3f, mark %.3f = %.3f" % (
                     b["decode_ms"], b["reconcile_ms"], b["budget_ms"], b["reserve_ms"], b["embedded_settle_ms"], b["mark_succeeded_ms"], b["sum_ms"]), "", ""))

c = load_lines("commit.json")
if c:
    c = c[0]
    rows.append(("3 payments/s", "one SQLite commit (WAL), this disk",
                 "synchronous=FULL %.1f us (%s/s), NORMAL %.1f us (%s/s): fsync ~%.0f us" % (
                     c["FULL"]["us_per_commit"], f"{c['FULL']['commits_per_s']:,}", c["NORMAL"]["us_per_commit"],
                     f"{c['NORMAL']['commits_per_s']:,}", c["fsync_us"]), "", ""))

# 3. payments on PostgreSQL, a fleet of instances
fl = load_lines("fleet.json")
if fl:
    fl = fl[0]
    srv = fl["server"]
    sec = "3 payments/s, PostgreSQL fleet"
    rows.append((sec, "server", "PostgreSQL %s, fsync=%s, synchronous_commit=%s; %d payments per run, %d callers per instance" % (
        srv["version"].split()[0], srv["fsync"], srv["synchronous_commit"], fl["payments_per_run"], fl["callers_per_instance"]), "", ""))
    by = {}
    for r in fl["throughput"]:
        by.setdefault(r["instances"], []).append(r)
    for n, runs in sorted(by.items()):
        rates = [r["per_sec"] for r in runs]
        med = statistics.median(rates)
        cpu = statistics.median(r["instances_cpu_ms_per_attempt"] for r in runs)
        srv_cpu = [r["server_cpu_ms_per_attempt"] for r in runs if r.get("server_cpu_ms_per_attempt") is not None]
        detail = "%s/s (median of %d runs: %s); per payment %.1f commits, %s WAL flushes; CPU %.2f ms instances%s; machine busy %.2f cores" % (
            f"{med:,.0f}", len(rates), ", ".join(f"{x:,.0f}" for x in rates),
            statistics.median(r["commits_per_attempt"] for r in runs),
            "%.2f" % statistics.median(r["wal_flushes_per_attempt"] for r in runs) if runs[0].get("wal_flushes_per_attempt") is not None else "?",
            cpu, ", %.2f ms PostgreSQL" % statistics.median(srv_cpu) if srv_cpu else "",
            statistics.median(r["machine_busy_cores"] for r in runs))
        goal = n == 3
        rows.append((sec, "%d instance%s x %d callers, one wallet and budget" % (n, "" if n == 1 else "s", fl["callers_per_instance"]), detail,
                     ">= 1,000/s over 3 instances, exact" if goal else "", verdict(med >= 1000 and all(r["check"]["exact"] for r in runs)) if goal else ""))
    exact = all(r["check"]["exact"] for r in fl["throughput"])
    rows.append((sec, "ledger after every run", "committed spend = payments made, nothing pending, accounts moved by it: %s" % exact, "exact", verdict(exact)))
    t = fl["tight_cap"]
    rows.append((sec, "budget below the demand (%d instances)" % t["instances"],
                 "paid %d, refused %d of %d; spent %d msat, cap %d" % (t["paid"], t["refused"], t["paid"] + t["refused"] + t["other"], t["check"]["spent_msat"], t["cap_msat"]),
                 "exactly cap/price paid, never over", verdict(t["check"]["exact"])))

# 4. fetch
f = load_lines("fetch.json")
if f:
    f = f[0]
    for key, label in (("free", "free endpoint"), ("cached_token", "cached token")):
        d = f[key]
        rows.append(("4 fetch_paid", label + ": reqwest GET", "p50 %.3f ms, p99 %.3f ms" % (d["reqwest"]["p50_ms"], d["reqwest"]["p99_ms"]), "", ""))
        rows.append(("4 fetch_paid", label + ": Fetcher::fetch", "p50 %.3f ms, p99 %.3f ms" % (d["fetcher"]["p50_ms"], d["fetcher"]["p99_ms"]), "", ""))
        ok = d["added_p50_ms"] <= 0.2
        rows.append(("4 fetch_paid", label + ": added by fetch_paid", "p50 +%.3f ms (mean +%.3f ms)" % (d["added_p50_ms"], d["added_mean_ms"]),
                     "<= 0.2 ms" if key == "cached_token" else "", verdict(ok) if key == "cached_token" else ""))
    base = f["cached_token"]["added_p50_ms"]
    sc = f.get("cached_token_scaling") or []
    for d in sc:
        last = d["tokens"] == max(x["tokens"] for x in sc)
        more = d["added_p50_ms"] - base
        rows.append(("4 fetch_paid", "cached token, %s tokens for the origin: added" % f"{d['tokens']:,}",
                     "p50 +%.3f ms (%+.3f ms over one token)" % (d["added_p50_ms"], more),
                     "<= +0.1 ms at 100k" if last else "", verdict(more <= 0.1) if last else ""))
    for d in sc:
        if "rss_kib" in d:
            grew = (d["rss_kib"] - d["rss_kib_with_one_token"]) / 1024
            tenk = d["tokens"] == 10_000
            rows.append(("4 fetch_paid", "bench process RSS, %s tokens cached" % f"{d['tokens']:,}",
                         "%.1f MiB (%+.1f MiB over one token)" % (d["rss_kib"] / 1024, grew),
                         "<= 20 MiB" if tenk else "", verdict(d["rss_kib"] / 1024 <= 20) if tenk else ""))
    for d in f.get("cached_token_history") or []:
        more = d["added_p50_ms"] - base
        rows.append(("4 fetch_paid", "cached token, %s payments in the day: added" % f"{d['payments']:,}",
                     "p50 +%.3f ms (%+.3f ms over none)" % (d["added_p50_ms"], more), "<= +0.1 ms", verdict(more <= 0.1)))
    if "paid_round_trip_parts" in f:
        pr = f["paid_round_trip_parts"]
        rows.append(("4 fetch_paid", "round trip parts, direct calls (p50)",
                     "create_challenge %.3f ms, pay %.3f ms, verify %.3f ms" % (pr["create_challenge"]["p50_ms"], pr["pay"]["p50_ms"], pr["verify"]["p50_ms"]), "", ""))
    if "paid_round_trip_by_hand" in f:
        m = f["paid_round_trip_by_hand"]
        rows.append(("4 fetch_paid", "same round trip by hand (reqwest + Payer::pay)", "p50 %.3f ms, p99 %.3f ms (n=%d)" % (m["p50_ms"], m["p99_ms"], m["n"]), "", ""))
    r = f["paid_round_trip"]
    rows.append(("4 fetch_paid", "full paid round trip (402, pay, resend, verify)", "p50 %.3f ms, p99 %.3f ms (n=%d)" % (r["p50_ms"], r["p99_ms"], r["n"]),
                 "<= 1.0 ms", verdict(r["p50_ms"] <= 1.0)))

# 5. gateway
g = load_lines("gateway.jsonl")
if g:
    setup = next((d for d in g if d.get("kind") == "setup"), {})
    summ = next((d for d in g if d.get("kind") == "summary"), None)
    parts = next((d for d in g if d.get("kind") == "parts"), None)
    labels = (("upstream", "upstream directly"), ("gateway_token", "gateway, valid L402 token"),
              ("gateway_free", "gateway, free route (proxy only)"), ("nginx", "nginx reverse proxy (reference)"))
    if summ:
        for key in sorted((k for k in summ if k.startswith("c") and k[1:].isdigit()), key=lambda k: -int(k[1:])):
            by = summ[key]
            for name, label in labels:
                d = by.get(name)
                if not d:
                    continue
                val = "%s req/s (%s-%s); p50 %.3f ms, p99 %.3f ms; server CPU %.1f us/req" % (
                    f"{d['rps']:,.0f}", f"{d['rps_min']:,.0f}", f"{d['rps_max']:,.0f}",
                    d["p50_us"] / 1000, d["p99_us"] / 1000, d["server_cpu_us_per_req"])
                if d.get("errors"):
                    val += "; %d ERRORS (non-2xx or socket)" % d["errors"]
                rows.append(("5 gateway, wrk -t1 -%s" % key, label, val, "", ""))
            for name, label in labels[1:]:
                d = by.get(name)
                if not d or "added_p50_us" not in d:
                    continue
                rows.append(("5 gateway, wrk -t1 -%s" % key, "added by the " + (label[len("gateway, "):] if label.startswith("gateway, ") else label),
                             "p50 %+.3f ms, p99 %+.3f ms; CPU %+.1f us/req; req/s x%.3f" % (
                                 d["added_p50_us"] / 1000, d["added_p99_us"] / 1000,
                                 d["added_cpu_us_per_req"], d["rps_ratio"]), "", ""))
            tok, free, ngx = by.get("gateway_token"), by.get("gateway_free"), by.get("nginx")
            if tok and free:
                more = tok["server_cpu_us_per_req"] - free["server_cpu_us_per_req"]
                rows.append(("5 gateway, wrk -t1 -%s" % key, "token check over the free route (CPU)", "%+.1f us/req" % more,
                             "<= 3 us", verdict(more <= 3)))
            if free and ngx:
                rows.append(("5 gateway, wrk -t1 -%s" % key, "free route vs nginx (server CPU per request)",
                             "%.1f vs %.1f us/req" % (free["server_cpu_us_per_req"], ngx["server_cpu_us_per_req"]),
                             "<= nginx's", verdict(free["server_cpu_us_per_req"] <= ngx["server_cpu_us_per_req"])))
        rows.append(("5 gateway", "medians of", "%d rounds x %d s per run; servers on CPUs %s, wrk on CPU %s" % (
            summ["rounds"], summ["duration_s"], setup.get("server_cpus", "?"), setup.get("wrk_cpu") or "any"), "", ""))
    if parts:
        p50 = lambda k: parts[k]["p50_us"]
        rows.append(("5 gateway", "verification per request, direct calls (p50 us)",
                     "verify+consume %.1f: parse %.1f, prepare %.1f, finish %.1f | SQL: root_key %.1f, minted_token %.1f, record_sale %.1f, mark_settled %.1f" % (
                         p50("verify_and_consume"), p50("credential_parse"), p50("prepare"), p50("finish"),
                         p50("root_key_select"), p50("minted_token_select"), p50("record_sale_insert"),
                         p50("mark_incoming_settled_update")), "", ""))
        if "admit_verdict" in parts:
            rows.append(("5 gateway", "what the paywall calls per request: admit_verdict (p50 us)",
                         "%.1f (admit, with the token's ids and caveats: %.1f)" % (
                             p50("admit_verdict"), p50("verify_and_consume")), "", ""))
        if "root_key_and_terms_select" in parts:
            rows.append(("5 gateway", "what admit reads per request: root key and terms, one SELECT (p50 us)",
                         "%.1f" % p50("root_key_and_terms_select"), "", ""))
        ap = parts.get("root_key_by_access_path")
        if ap:
            rows.append(("5 gateway", "root-key SELECT by access path (p50 us)",
                         "ledger's pool %.1f, pool without ping %.1f, one connection %.1f, in-memory map %.2f" % (
                             ap["pool_default"]["p50_us"], ap["pool_no_ping"]["p50_us"],
                             ap["one_connection"]["p50_us"], ap["memory_map"]["p50_us"]), "", ""))

machine = open(os.path.join(out, "machine.txt")).read().strip() if os.path.exists(os.path.join(out, "machine.txt")) else ""
print(machine)
w = [max(len(str(r[i])) for r in rows) if rows else 0 for i in range(5)]
hdr = ("section", "what", "measured", "target", "verdict")
w = [max(w[i], len(hdr[i])) for i in range(5)]
fmt = "| " + " | ".join("%%-%ds" % x for x in w) + " |"
print(fmt % hdr)
print("|" + "|".join("-" * (x + 2) for x in w) + "|")
for r in rows:
    print(fmt % r)
