#!/usr/bin/env bash
# Start a throwaway LNbits 1.6.2 (FakeWallet funding source, SQLite) on a free loopback port,
# with two wallets of 100,000 sats each, and write how to reach it as JSON:
#
#   {"url", "pid", "data_dir", "log",
#    "a": {"id", "admin_key", "invoice_key"}, "b": {...}}
#
# Usage: tools/lnbits/start.sh [OUT_JSON]   (JSON to OUT_JSON, mode 0600, else to stdout)
# Stop it with tools/lnbits/stop.sh OUT_JSON (or: kill <pid>; rm -rf <data_dir>).
#
# Env: L402_PEERS_CACHE (default ~/.cache/l402-peers) holds the venv, installed on first use;
#      LNBITS_FUND_SATS (default 100000).
# FakeWallet pays only invoices made by the same LNbits (internal payments), which is what a
# buyer wallet paying a seller wallet needs. Its invoices are mainnet (lnbc).
set -euo pipefail
umask 077

OUT=${1:-}
LNBITS_VERSION=1.6.2
CACHE=${L402_PEERS_CACHE:-$HOME/.cache/l402-peers}
VENV=$CACHE/lnbits-venv
MARKER=$VENV/.l402-mcp-lnbits-$LNBITS_VERSION
FUND_SATS=${LNBITS_FUND_SATS:-100000}

log() { echo "lnbits: $*" >&2; }

pick_python() {
  local p
  for p in python3.12 python3.11 python3.10 python3; do
    if command -v "$p" >/dev/null 2>&1 &&
      "$p" -c 'import sys; sys.exit(not ((3, 10) <= sys.version_info[:2] <= (3, 12)))' 2>/dev/null; then
      echo "$p"
      return
    fi
  done
  log "LNbits $LNBITS_VERSION needs Python 3.10 to 3.12 (python3.12, python3.11 or python3.10 on PATH)"
  exit 1
}

install_venv() {
  mkdir -p "$CACHE"
  # One installer at a time; a half-built venv is never left where a later run would use it.
  exec 9>"$CACHE/lnbits-venv.lock"
  flock 9
  if [ -f "$MARKER" ]; then return; fi
  local py
  py=$(pick_python)
  tmp=$(mktemp -d "$CACHE/lnbits-venv.tmp.XXXXXX")   # global: the EXIT trap needs it
  trap 'rm -rf "$tmp"' EXIT
  log "installing LNbits $LNBITS_VERSION into $VENV (once; about a minute)"
  "$py" -m venv "$tmp"
  # bitstring 5 breaks the bolt11 package LNbits imports.
  "$tmp/bin/python" -m pip install -q --disable-pip-version-check "lnbits==$LNBITS_VERSION" 'bitstring<5' >&2
  rm -rf "$VENV"
  mv "$tmp" "$VENV"        # scripts in bin/ keep the old path: always run "$VENV/bin/python -m ..."
  touch "$MARKER"
  trap - EXIT
  flock -u 9
}

[ -f "$MARKER" ] || install_venv
PY=$VENV/bin/python
# Where the package is, without importing it (an import takes seconds).
SITE=$("$PY" -c 'import importlib.util as u; print(u.find_spec("lnbits").submodule_search_locations[0])')

# A fresh data folder per run, on tmpfs when there is one: SQLite's fsyncs dominate a first start.
if [ -d /dev/shm ] && [ -w /dev/shm ]; then
  WORK=$(mktemp -d /dev/shm/l402-lnbits.XXXXXX)
else
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/l402-lnbits.XXXXXX")
fi
# Until the JSON is written nobody else knows this LNbits: take it down on any way out.
PID=
abandon() {
  if [ -n "$PID" ] && kill "$PID" 2>/dev/null; then
    for _ in $(seq 1 100); do
      kill -0 "$PID" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap abandon EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
mkdir -p "$WORK/lnbits" "$WORK/data" "$WORK/extensions"
ln -s "$SITE/static" "$WORK/lnbits/static"   # the app mounts ./lnbits/static relative to its CWD

export LNBITS_BACKEND_WALLET_CLASS=FakeWallet
export LNBITS_DATA_FOLDER="$WORK/data"        # SQLite database and .super_user
export LNBITS_EXTENSIONS_PATH="$WORK/extensions"
export LNBITS_ADMIN_UI=true
export AUTH_HTTPS_ONLY=false
export LNBITS_RATE_LIMIT_NO=1000000           # default 200 requests/min/IP: tests would see 429
export LNBITS_PRICE_AGGREGATOR_ENABLED=false  # otherwise every invoice waits on price services
export LNBITS_EXCHANGE_RATE_PROVIDERS='[]'
export LNBITS_EXTENSIONS_MANIFESTS='[]'       # otherwise it fetches manifests from GitHub at start
export LNBITS_WASM_EXTENSIONS_MANIFESTS='[]'
export ENABLE_LOG_TO_FILE=false

free_port() {
  "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Start uvicorn itself (the `lnbits` wrapper forks a child that outlives it), in its own session
# so that it survives the caller's shell and can be stopped by its pid. A port taken between
# picking and binding is retried.
for attempt in 1 2 3; do
  PORT=$(free_port)
  URL=http://127.0.0.1:$PORT
  (cd "$WORK" && HOST=127.0.0.1 PORT=$PORT exec setsid "$PY" -m uvicorn lnbits.__main__:app \
    --host 127.0.0.1 --port "$PORT" >"$WORK/lnbits.log" 2>&1 </dev/null) &
  PID=$!
  up=
  for _ in $(seq 1 600); do
    code=$(curl -s -o /dev/null -w '%{http_code}' "$URL/api/v1/health" || true)
    if [ "$code" = 200 ] || [ "$code" = 307 ]; then up=1; break; fi
    kill -0 "$PID" 2>/dev/null || break
    sleep 0.1
  done
  [ -n "$up" ] && break
  kill "$PID" 2>/dev/null || true
  wait "$PID" 2>/dev/null || true
  if grep -qi 'address already in use' "$WORK/lnbits.log" && [ "$attempt" -lt 3 ]; then
    log "port $PORT was taken; trying another"
    continue
  fi
  log "LNbits did not start; the end of its log:"
  tail -40 "$WORK/lnbits.log" >&2
  exit 1
done

# First install (until a superuser password is set every path redirects), two wallets, funds.
if ! "$PY" - "$URL" "$PID" "$WORK" "$FUND_SATS" "$OUT" <<'EOF'
import json, os, sys, urllib.request

url, pid, work, fund, out = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5]

def call(method, path, body=None, token=None):
    req = urllib.request.Request(url + path, method=method,
                                 data=None if body is None else json.dumps(body).encode())
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", "Bearer " + token)
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.load(r)

token = call("PUT", "/api/v1/auth/first_install",
             {"username": "admin", "password": "l402-mcp-test", "password_repeat": "l402-mcp-test"})["access_token"]
wallets = {}
for name in ("a", "b"):
    w = call("POST", "/api/v1/account", {"name": "wallet-" + name})
    call("PUT", "/users/api/v1/balance", {"id": w["id"], "amount": fund}, token=token)
    wallets[name] = {"id": w["id"], "admin_key": w["adminkey"], "invoice_key": w["inkey"]}
info = {"url": url, "pid": pid, "data_dir": work, "log": os.path.join(work, "lnbits.log"), **wallets}
text = json.dumps(info, indent=2) + "\n"
if out:
    with open(out, "w") as f:
        f.write(text)
else:
    sys.stdout.write(text)
EOF
then
  log "setting LNbits up failed; the end of its log:"
  tail -40 "$WORK/lnbits.log" >&2
  exit 1
fi
trap - EXIT INT TERM
log "up at $URL (pid $PID, data $WORK)"
