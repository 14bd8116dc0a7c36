#!/usr/bin/env bash
# All the benchmarks of BENCHMARKS.md, side by side, then one table.
#
#   1 verify   L402 credential verifications per second on ONE core (taskset -c 0), the same
#              token for every implementation: ours (benches/l402_verify.rs), Go
#              gopkg.in/macaroon.v2, pymacaroons, js-macaroon, and a C reference on OpenSSL
#              (tools/bench/verify/). Rounds alternate between implementations, so load on the
#              machine hits them alike; the median round of each is reported.
#   2 mcp      MCP over stdio through one client (benches/mcp_stdio.rs): spawn to initialize
#              reply, idle RSS after tools/list, ping and tool round trips p50/p99; ours
#              (`l402-mcp serve`, built with release settings) vs
#              @modelcontextprotocol/server-everything (node).
#   3 pay      budget-checked payments per second, 32 concurrent callers, Payer::pay on the
#              embedded wallet, budget checked after (benches/pay_concurrent.rs), with 1k to 1M
#              payments already in the day's window; and what one SQLite commit costs with
#              synchronous = FULL (the ledger's) and NORMAL (tools/bench/commit_cost.py).
#   fleet      the same on PostgreSQL for a fleet (benches/pay_fleet.rs): 1 and 3 instances (OS
#              processes, a connection pool each) paying from one wallet against one shared
#              budget, on a throwaway server as durable as a production one
#              (tools/postgres/start.sh with L402_PG_DURABLE=1: fsync and synchronous_commit
#              on, on disk), stopped (by its PID, tools/postgres/stop.sh) when done; exactness
#              checked after every run, and with a budget below the demand.
#   4 fetch    fetch_paid overhead over reqwest GET, and a full paid round trip on loopback
#              (benches/fetch_paid.rs).
#   5 gateway  requests/s and added latency through the L402 gateway with a valid token (and
#              through its free route) vs the upstream directly, on loopback, load from wrk
#              (benches/gateway.rs). Servers on core 0 (taskset -c 0), wrk on core 1; targets
#              alternate in every round, medians reported. nginx (Debian) proxying the same
#              upstream is the reference for the proxy's own cost.
#
# Usage: tools/bench/run.sh [verify] [mcp] [pay] [fleet] [fetch] [gateway]     (default: all)
# Env:   L402_PEERS_CACHE=dir  caches (default ~/.cache/l402-peers; shared with the interop script)
#        BENCH_SECS=0.5 BENCH_ROUNDS=5 verify: CPU seconds per round, rounds per implementation
#        CARGO_TARGET_DIR      honoured as cargo does
#        BENCH_OUT=dir         where raw JSON lines go (default: a temp dir, printed)
#        GATEWAY_ROUNDS=5 GATEWAY_SECS=5 GATEWAY_CONNS=16,1  gateway: rounds, seconds per wrk run,
#                              connection counts (each is one wrk run per target per round)
#        FLEET_PAYMENTS=3000 FLEET_CALLERS=16 FLEET_ROUNDS=3  fleet: payments per run, callers per
#                              instance, runs per instance count
# Installs what it needs: the interop script's peers (Go + macaroon.v2, pymacaroons, js-macaroon),
# libssl-dev, util-linux (taskset), wrk, nginx-light and postgresql from Debian,
# server-everything from npm.
# Benchmarks measure; nothing here fails on a time. It exits non-zero only when something
# could not run or a budget check failed.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
CACHE=${L402_PEERS_CACHE:-$HOME/.cache/l402-peers}
SECS=${BENCH_SECS:-0.5}
ROUNDS=${BENCH_ROUNDS:-5}
OUT=${BENCH_OUT:-$(mktemp -d /tmp/l402-bench.XXXXXX)}
EVERYTHING_VERSION=2026.8.31
mkdir -p "$OUT" "$CACHE"
WHAT=("$@")
[ ${#WHAT[@]} -eq 0 ] && WHAT=(verify mcp pay fleet fetch gateway)
want() { local w; for w in "${WHAT[@]}"; do [ "$w" = "$1" ] && return 0; done; return 1; }

log() { echo "[bench] $*" >&2; }
die() { log "ERROR: $*"; exit 2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

# ---------------------------------------------------------------- install ---
apt_pkgs=()
want verify && ! installed libssl-dev && apt_pkgs+=(libssl-dev)
command -v taskset >/dev/null || apt_pkgs+=(util-linux)
command -v cc >/dev/null || apt_pkgs+=(gcc libc6-dev)
want gateway && ! command -v wrk >/dev/null && apt_pkgs+=(wrk)
want gateway && [ ! -x /usr/sbin/nginx ] && apt_pkgs+=(nginx-light)
want fleet && ! ls -d /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && apt_pkgs+=(postgresql)
if [ ${#apt_pkgs[@]} -gt 0 ]; then
  log "apt-get install ${apt_pkgs[*]}"
  { as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive \
      apt-get install -y -qq --no-install-recommends "${apt_pkgs[@]}"; } >"$OUT/apt.log" 2>&1 \
    || { cat "$OUT/apt.log" >&2; die "apt-get failed"; }
fi
if want verify; then
  # Go + macaroon.v2, pymacaroons and js-macaroon, exactly as the interop check installs them.
  L402_PEERS_CACHE=$CACHE "$ROOT/tools/interop/macaroons/run.sh" --install-only >&2 \
    || die "installing the macaroon peers failed"
fi
if want mcp; then
  EV_DIR=$CACHE/server-everything
  EV_JS=$EV_DIR/node_modules/@modelcontextprotocol/server-everything/dist/index.js
  ev_ok() { [ "$(node -p 'require(process.argv[1]).version' \
      "$EV_DIR/node_modules/@modelcontextprotocol/server-everything/package.json" 2>/dev/null)" \
      = "$EVERYTHING_VERSION" ]; }
  if ! ev_ok; then
    log "installing @modelcontextprotocol/server-everything@$EVERYTHING_VERSION into $EV_DIR"
    mkdir -p "$EV_DIR"
    printf '{"private": true, "dependencies": {"@modelcontextprotocol/server-everything": "%s"}}\n' \
      "$EVERYTHING_VERSION" >"$EV_DIR/package.json"
    (cd "$EV_DIR" && npm install --no-audit --no-fund --silent >/dev/null) || die "npm install failed"
  fi
fi

# ------------------------------------------------------------------ build ---
# cargo's JSON messages name each bench executable; benches build with the release profile.
bench_exe() {  # bench_exe NAME -> path of the built bench executable
  (cd "$ROOT" && cargo bench --bench "$1" --no-run --message-format=json 2>"$OUT/build-$1.log") \
    | python3 -c 'import json, sys
for line in sys.stdin:
    try: d = json.loads(line)
    except ValueError: continue
    if d.get("reason") == "compiler-artifact" and d.get("executable") and d["target"]["kind"] == ["bench"]:
        print(d["executable"])' | tail -n1
}
declare -A EXE
for b in verify mcp pay fleet fetch gateway; do
  want "$b" || continue
  case $b in verify) name=l402_verify ;; mcp) name=mcp_stdio ;; pay) name=pay_concurrent ;; fleet) name=pay_fleet ;; fetch) name=fetch_paid ;; gateway) name=gateway ;; esac
  log "cargo bench --bench $name --no-run"
  EXE[$b]=$(bench_exe "$name")
  [ -n "${EXE[$b]}" ] && [ -x "${EXE[$b]}" ] || { cat "$OUT/build-$name.log" >&2; die "building $name failed"; }
done

machine() {
  local cpu; cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
  local sha=no; grep -qw sha_ni /proc/cpuinfo && sha=yes
  echo "machine: $cpu, $(nproc) cores, SHA-NI $sha, $(uname -r), load average $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "date: $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(cd "$ROOT" && git rev-parse --short HEAD)$( (cd "$ROOT" && git diff --quiet HEAD -- src) || echo ' + uncommitted changes')"
}
machine | tee "$OUT/machine.txt" >&2
FAILED=0

# ----------------------------------------------------------------- verify ---
if want verify; then
  log "1. verification rate on one core (taskset -c 0), ${ROUNDS} rounds x ${SECS} CPU-s each"
  read -r HDR_SCHEME HDR_CRED KEY NOW < <(taskset -c 0 "${EXE[verify]}" --token)
  HEADER="$HDR_SCHEME $HDR_CRED"
  echo "$HEADER" >"$OUT/token.txt"
  GO_BIN=$CACHE/verify-go-$(cat "$HERE/verify/verify.go" "$HERE/verify/goversion.go" | sha256sum | cut -c1-16)
  if [ ! -x "$GO_BIN" ]; then
    (cd "$HERE/verify" && CGO_ENABLED=0 GO111MODULE=off GOPATH=/usr/share/gocode \
      go build -o "$GO_BIN" verify.go goversion.go) || die "go build failed"
  fi
  C_BIN=$OUT/verify-c
  cc -O2 -o "$C_BIN" "$HERE/verify/verify.c" -lcrypto || die "cc verify.c failed"
  export JS_MACAROON_DIR=$CACHE/js-macaroon
  PY=$CACHE/pymacaroons-venv/bin/python
  run_impl() {  # run_impl NAME: one round, one JSON line per variant
    local args=("$HEADER" "$KEY" "$NOW" "$SECS" 1)
    case $1 in
      rust) taskset -c 0 "${EXE[verify]}" --rate "${args[@]}" ;;
      go) GOMAXPROCS=1 taskset -c 0 "$GO_BIN" "${args[@]}" ;;
      c) taskset -c 0 "$C_BIN" "${args[@]}" ;;
      python) taskset -c 0 "$PY" "$HERE/verify/verify.py" "${args[@]}" ;;
      js) taskset -c 0 node "$HERE/verify/verify.mjs" "${args[@]}" ;;
    esac
  }
  : >"$OUT/verify.jsonl"
  for ((r = 1; r <= ROUNDS; r++)); do
    for impl in rust go c python js; do
      run_impl "$impl" >>"$OUT/verify.jsonl" || { log "$impl failed"; FAILED=1; }
    done
  done
fi

# -------------------------------------------------------------------- mcp ---
if want mcp; then
  log "2. MCP over stdio: ours vs server-everything, same client"
  # Ours: the l402-mcp binary cargo built with the bench (bench profile = release settings).
  "${EXE[mcp]}" --everything "$EV_JS" >"$OUT/mcp.jsonl" \
    || { log "mcp bench failed"; FAILED=1; }
  # Again with the client and our server on one CPU: on this 2-vCPU VM a round trip whose two
  # ends the scheduler put on different CPUs pays two cross-CPU wake-ups (~30 µs each), so the
  # unpinned p50 is either ~0.06 or ~0.12 ms for decode_invoice depending on placement alone.
  taskset -c 0 "${EXE[mcp]}" --everything /nonexistent --spawns 5 >"$OUT/mcp-one-cpu.jsonl" \
    || { log "mcp bench on one CPU failed"; FAILED=1; }
fi

# -------------------------------------------------------------------- pay ---
if want pay; then
  log "3. concurrent payments through Payer::pay"
  "${EXE[pay]}" --payments 2000 --callers 32 >"$OUT/pay.json" || { log "pay bench failed"; FAILED=1; }
  # What one commit costs with the ledger's durability (synchronous = FULL) and without.
  python3 "$HERE/commit_cost.py" >"$OUT/commit.json" || { log "commit cost failed"; FAILED=1; }
fi

# ------------------------------------------------------------------ fleet ---
if want fleet; then
  log "3. payments on PostgreSQL: a fleet of instances sharing one wallet and budget"
  PG_INFO=$(mktemp "${TMPDIR:-/tmp}/l402-bench-pg.XXXXXX")
  stop_pg() {
    local dir
    dir=$(sed -n 's/^PGDIR=//p' "$PG_INFO" 2>/dev/null || true)
    [ -z "$dir" ] || "$ROOT/tools/postgres/stop.sh" "$dir" >&2 || true
    rm -f "$PG_INFO"
  }
  trap stop_pg EXIT
  if L402_PG_DURABLE=1 "$ROOT/tools/postgres/start.sh" "$PG_INFO" >/dev/null; then
    L402_BENCH_DATABASE_URL=$(sed -n 's/^DATABASE_URL=//p' "$PG_INFO") \
      L402_BENCH_PG_PID=$(sed -n 's/^PGPID=//p' "$PG_INFO") \
      "${EXE[fleet]}" --instances 1,3 --payments "${FLEET_PAYMENTS:-3000}" \
      --callers "${FLEET_CALLERS:-16}" --rounds "${FLEET_ROUNDS:-3}" >"$OUT/fleet.json" \
      || { log "fleet bench failed"; FAILED=1; }
  else
    log "PostgreSQL did not start"; FAILED=1
  fi
  stop_pg
  trap - EXIT
fi

# ------------------------------------------------------------------ fetch ---
if want fetch; then
  log "4. fetch_paid overhead and full paid round trip"
  "${EXE[fetch]}" >"$OUT/fetch.json" || { log "fetch bench failed"; FAILED=1; }
fi

# ---------------------------------------------------------------- gateway ---
if want gateway; then
  # Upstream and gateway (one process, their threads and SQLite's) on core 0; the bench starts
  # wrk under `taskset -c 1`. On a machine with one core nothing is pinned.
  G_ROUNDS=${GATEWAY_ROUNDS:-5} G_SECS=${GATEWAY_SECS:-5} G_CONNS=${GATEWAY_CONNS:-16,1}
  log "5. gateway vs upstream on loopback, wrk: $G_ROUNDS rounds x ${G_SECS}s, connections $G_CONNS"
  if [ "$(nproc)" -ge 2 ]; then
    g_pin=(taskset -c 0) g_wrk=(--wrk-cpu 1)
  else
    g_pin=() g_wrk=(--wrk-cpu none)
  fi
  "${g_pin[@]}" "${EXE[gateway]}" --rounds "$G_ROUNDS" --duration "$G_SECS" --conns "$G_CONNS" \
    "${g_wrk[@]}" --nginx /usr/sbin/nginx >"$OUT/gateway.jsonl" || { log "gateway bench failed"; FAILED=1; }
fi

# ------------------------------------------------------------------ table ---
python3 "$HERE/table.py" "$OUT"
log "raw results in $OUT"
exit "$FAILED"
