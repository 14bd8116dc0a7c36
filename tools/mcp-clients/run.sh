#!/usr/bin/env bash
# MCP client interop: the official MCP SDKs drive a full L402 buy/sell loop between two
# l402-mcp servers (wallets "seller" and "buyer" in one fresh data dir per run).
#
#   py  auto    stdio        Python SDK (mcp 2.x), mode="auto": server/discover, stateless 2026-07-28
#   py  legacy  stdio        Python SDK, mode="legacy": classic initialize
#   py  auto    http         the same over streamable HTTP (serve --http, /mcp)
#   py  legacy  http
#   ts  -       stdio        TypeScript SDK (@modelcontextprotocol/sdk 1.x), StdioClientTransport
#   ts  -       http         StreamableHTTPClientTransport
#   py  auto    http+token   serve --http-token: no/wrong token -> 401, the SDK client is refused,
#   ts  -       http+token   and with the token the whole loop works
#   py  legacy  sse          the legacy HTTP+SSE transport (/sse + /messages)
#   py  auto    sse          (auto over the legacy transport: the SDK still negotiates 2026-07-28)
#   ts  -       sse          SSEClientTransport
#   srv -       first-start  no client: two servers started at the same moment on a fresh data
#                            dir must both come up (6 rounds; it is a race)
#   py  auto    approval     payments a human must approve (approval.py / approval.mjs): the
#   py  legacy  approval     SDK's elicitation callback accepts (paid once), declines or stays
#   ts  v1      approval     silent (nothing paid); a client without elicitation gets
#   ts  v2      approval     approval_required and pays after `l402-mcp approve`; py auto also
#                            replays an answered 2026-07-28 retry (nothing more paid). ts v1 is
#                            @modelcontextprotocol/sdk (2025-11-25: elicitation/create), ts v2
#                            @modelcontextprotocol/client with versionNegotiation auto
#                            (2026-07-28: input_required and the retry). The seller is an
#                            `l402-mcp gateway` in front of a static file.
#
# Each run: the client program (buy_sell.py / buy_sell.mjs) connects agent B (seller) and agent A
# (buyer), serves GET /joke on 127.0.0.1 through B's create_l402_challenge / verify_l402_payment,
# and has A buy it with fetch_paid: pay once, reuse the token, refusals that pay nothing, balances
# moved by exactly the price on both sides, list_payments. One line per check
# ("client  mode  transport  check  PASS|FAIL"), then a matrix; exit 1 if anything failed.
#
# Usage: tools/mcp-clients/run.sh [--only S]... [--skip S]... [--install-only] [--keep]
#   --only S      run only the cells whose "client mode transport" contains S (repeatable)
#   --skip S      leave out the cells whose "client mode transport" contains S (repeatable)
#   --keep        keep the temp dir (data dirs, server and client logs) even when all passed
# Env:   L402_MCP_BIN=path      the server binary (else: cargo build, target/debug/l402-mcp)
#        L402_PEERS_CACHE=dir   cache for the venv and node_modules (default ~/.cache/l402-peers)
#        MCP_PY_VERSION, MCP_TS_VERSION, MCP_TS2_VERSION   SDK versions (default 2.3.0, 1.32.2
#                               and 2.4.0 of @modelcontextprotocol/client)
#        MCP_CLIENTS_STEP_TIMEOUT=s  limit per MCP request in the clients (default 30)
# Installs what it needs into the cache (pip and npm); reruns only check.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
CACHE=${L402_PEERS_CACHE:-$HOME/.cache/l402-peers}
MCP_PY_VERSION=${MCP_PY_VERSION:-2.3.0}
MCP_TS_VERSION=${MCP_TS_VERSION:-1.32.2}
MCP_TS2_VERSION=${MCP_TS2_VERSION:-2.4.0}
ONLY=() SKIP=() INSTALL_ONLY=0 KEEP=0
while [ $# -gt 0 ]; do
  case $1 in
    --only) [ $# -ge 2 ] || { echo "--only needs a value" >&2; exit 2; }; ONLY+=("$2"); shift ;;
    --skip) [ $# -ge 2 ] || { echo "--skip needs a value" >&2; exit 2; }; SKIP+=("$2"); shift ;;
    --install-only) INSTALL_ONLY=1 ;;
    --keep) KEEP=1 ;;
    -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
  shift
done

log() { echo "[mcp-clients] $*" >&2; }
die() { log "ERROR: $*"; exit 2; }

# ---------------------------------------------------------------- install ---
t_install=$SECONDS
mkdir -p "$CACHE" || die "cannot create $CACHE"
VENV=$CACHE/mcp-py-venv
PY=$VENV/bin/python
TS_DIR=$CACHE/mcp-ts
TS2_DIR=$CACHE/mcp-ts2
py_ok() { [ "$(cat "$VENV/.l402-installed" 2>/dev/null)" = "mcp==$MCP_PY_VERSION" ] && [ -x "$PY" ] && [ -d "$VENV/lib" ]; }
ts_ok() {
  [ "$(cat "$TS_DIR/.l402-installed" 2>/dev/null)" = "@modelcontextprotocol/sdk@$MCP_TS_VERSION" ] &&
    grep -q "\"version\": *\"$MCP_TS_VERSION\"" "$TS_DIR/node_modules/@modelcontextprotocol/sdk/package.json" 2>/dev/null
}
ts2_ok() {
  [ "$(cat "$TS2_DIR/.l402-installed" 2>/dev/null)" = "@modelcontextprotocol/client@$MCP_TS2_VERSION" ] &&
    grep -q "\"version\": *\"$MCP_TS2_VERSION\"" "$TS2_DIR/node_modules/@modelcontextprotocol/client/package.json" 2>/dev/null
}

if ! py_ok || ! ts_ok || ! ts2_ok; then
  # One installer at a time per cache (parallel CI jobs may share it).
  exec 9>"$CACHE/.mcp-clients.lock"
  command -v flock >/dev/null && flock 9
fi

if ! py_ok; then
  as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
  PY3=
  for c in python3 python3.13 python3.12 python3.11 python3.10; do
    if command -v "$c" >/dev/null && "$c" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then PY3=$(command -v "$c"); break; fi
  done
  if [ -z "$PY3" ] || ! "$PY3" -c 'import venv, ensurepip' 2>/dev/null; then
    log "installing python3-venv (apt)"
    as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv >/dev/null ||
      die "need Python >= 3.10 with venv"
    PY3=$(command -v python3)
  fi
  log "installing mcp==$MCP_PY_VERSION into $VENV"
  rm -rf "$VENV"
  "$PY3" -m venv "$VENV" || die "python -m venv failed"
  "$VENV/bin/pip" install -q --disable-pip-version-check "mcp==$MCP_PY_VERSION" || die "pip install mcp==$MCP_PY_VERSION failed"
  echo "mcp==$MCP_PY_VERSION" >"$VENV/.l402-installed"
  "$PY" -c 'import mcp' || die "mcp does not import from $VENV"
fi

command -v node >/dev/null || die "node (>= 18) is required"
node -e 'process.exit(Number(process.versions.node.split(".")[0]) < 18 ? 1 : 0)' || die "node >= 18 is required, found $(node --version)"
# npm_install DIR PACKAGE VERSION CHECK: PACKAGE@VERSION alone in DIR, unless CHECK says it is there.
npm_install() {
  local dir=$1 pkg=$2 version=$3 ok=$4
  "$ok" && return 0
  log "installing $pkg@$version into $dir"
  rm -rf "$dir" && mkdir -p "$dir"
  printf '{"name":"l402-mcp-clients","private":true,"dependencies":{"%s":"%s"}}\n' "$pkg" "$version" >"$dir/package.json"
  (cd "$dir" && npm install --no-audit --no-fund --loglevel=error >/dev/null) || die "npm install $pkg@$version failed"
  echo "$pkg@$version" >"$dir/.l402-installed"
  "$ok" || die "$pkg $version not found in $dir"
}
npm_install "$TS_DIR" @modelcontextprotocol/sdk "$MCP_TS_VERSION" ts_ok
npm_install "$TS2_DIR" @modelcontextprotocol/client "$MCP_TS2_VERSION" ts2_ok
INSTALL_SECS=$((SECONDS - t_install))
log "SDKs ready: mcp $MCP_PY_VERSION (Python), @modelcontextprotocol/sdk $MCP_TS_VERSION and @modelcontextprotocol/client $MCP_TS2_VERSION (node $(node --version)) in $INSTALL_SECS s"

if [ -n "${L402_MCP_BIN:-}" ]; then
  BIN=$L402_MCP_BIN
else
  log "cargo build (the l402-mcp binary)"
  (cd "$ROOT" && cargo build --quiet --bin l402-mcp) || die "cargo build failed"
  BIN=${CARGO_TARGET_DIR:-$ROOT/target}/debug/l402-mcp
fi
[ -x "$BIN" ] || die "no server binary at $BIN"
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
[ $INSTALL_ONLY = 1 ] && exit 0

# ------------------------------------------------------------------- runs ---
RUN_TMP=$(mktemp -d "${TMPDIR:-/tmp}/l402-mcp-clients.XXXXXX") || die "mktemp failed"
PIDS=()
cleanup() {
  local pid
  for pid in ${PIDS[@]+"${PIDS[@]}"}; do kill -TERM "$pid" 2>/dev/null; done
  for pid in ${PIDS[@]+"${PIDS[@]}"}; do
    for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  PIDS=()
}
finish() {
  cleanup
  if [ $KEEP = 1 ] || [ "${FAILED_CELLS:-1}" != 0 ]; then log "logs and data dirs kept in $RUN_TMP"; else rm -rf "$RUN_TMP"; fi
}
trap finish EXIT
trap 'exit 130' INT TERM

# Pids of processes whose environment says they serve a data dir under CELL_DIR: every server
# (and anything it spawned) gets L402_MCP_DATA_DIR=<cell>/data..., from us or from the client
# programs for stdio; the client programs themselves run without it.
leftovers() {
  "$PY" - "$1/" <<'PYEOF'
import os, sys
needle = b"L402_MCP_DATA_DIR=" + sys.argv[1].encode()
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            if any(kv.startswith(needle) for kv in f.read().split(b"\0")):
                print(pid)
    except OSError:
        pass
PYEOF
}

free_port() { "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# launch_server CELL_DIR DATA_DIR WALLET [TOKEN [PORT]]: starts one HTTP server in the background
# (on a free port unless given); sets PORT and PID and adds the pid to PIDS. Not in a subshell:
# the servers stay children of this script, so cleanup can reap them.
# INTEROP_BREAK=budget: every agent's per-payment cap is 1 sat, so no buy/sell loop can pay
# (shows that each cell checks a real payment, not only a connection).
BREAK_BUDGET=
[ "${INTEROP_BREAK:-}" = budget ] && BREAK_BUDGET=1
launch_server() {
  local dir=$1 data=$2 wallet=$3 token=${4:-}
  PORT=${5:-$(free_port)}
  # fetch_paid refuses loopback addresses by default: only the buyer may reach the shop on 127.0.0.1.
  env -u L402_MCP_WALLET -u L402_MCP_CONFIG -u L402_MCP_HTTP_TOKEN \
    -u L402_MCP_PER_PAYMENT_SATS -u L402_MCP_DAILY_SATS -u L402_MCP_HOURLY_SATS -u L402_MCP_PER_HOST_DAILY_SATS \
    -u L402_MCP_FETCH_ALLOW_PRIVATE -u L402_MCP_FETCH_ALLOW_LINK_LOCAL \
    XDG_CONFIG_HOME="$dir" L402_MCP_DATA_DIR="$data" L402_MCP_FETCH_ALLOW_LOOPBACK="$([ "$wallet" = buyer ] && echo 1 || echo 0)" \
    ${BREAK_BUDGET:+L402_MCP_PER_PAYMENT_SATS=1} \
    "$BIN" serve --data-dir "$data" --wallet "$wallet" --http "127.0.0.1:$PORT" ${token:+--http-token "$token"} \
    >>"$dir/$wallet.http.log" 2>&1 &
  PID=$!
  PIDS+=("$PID")
}

# wait_ready PID PORT: until the server accepts connections (10 s), or fails if it exits.
wait_ready() {
  for _ in $(seq 200); do
    kill -0 "$1" 2>/dev/null || return 1
    if (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null && kill -0 "$1" 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  return 1
}

# start_shop CELL_DIR: a static file behind `l402-mcp gateway` (wallet "seller", 21 sats) on the
# cell's data dir, ready; sets SHOP_URL.
start_shop() {
  local dir=$1 up gw
  mkdir -p "$dir/upstream"
  echo '{"joke":"knock knock"}' >"$dir/upstream/joke"
  up=$(free_port) gw=$(free_port)
  "$PY" -m http.server "$up" --bind 127.0.0.1 --directory "$dir/upstream" >>"$dir/upstream.log" 2>&1 &
  PIDS+=("$!")
  env -u L402_MCP_CONFIG -u L402_MCP_WALLET XDG_CONFIG_HOME="$dir" L402_MCP_DATA_DIR="$dir/data" \
    "$BIN" gateway --data-dir "$dir/data" --wallet seller --upstream "http://127.0.0.1:$up" \
    --price 21 --path /joke --listen "127.0.0.1:$gw" >>"$dir/gateway.log" 2>&1 &
  PIDS+=("$!")
  wait_ready "$!" "$gw" || return 1
  SHOP_URL="http://127.0.0.1:$gw/joke"
}

# start_server CELL_DIR WALLET [TOKEN]: one server on the cell's data dir, ready; sets PORT.
start_server() {
  local attempt
  for attempt in 1 2 3; do
    launch_server "$1" "$1/data" "$2" "${3:-}"
    wait_ready "$PID" "$PORT" && return 0
    kill -KILL "$PID" 2>/dev/null
    echo "--- attempt $attempt on port $PORT failed" >>"$1/$2.http.log"
  done
  return 1
}

# Two agents started at the same moment on one fresh data dir (as an agent host starting two
# mcpServers does): both must come up. Several rounds, since it is a race.
concurrent_start() {
  local dir=$1 round data spid sport bpid bport ok=0 line
  for round in 1 2 3 4 5 6; do
    data=$dir/data$round
    sport=$(free_port) bport=$(free_port)
    launch_server "$dir" "$data" seller "" "$sport"; spid=$PID
    launch_server "$dir" "$data" buyer "" "$bport"; bpid=$PID
    line=
    wait_ready "$spid" "$sport" || line+="seller: $(tail -n 1 "$dir/seller.http.log") "
    wait_ready "$bpid" "$bport" || line+="buyer: $(tail -n 1 "$dir/buyer.http.log")"
    printf '%-3s %-7s %-11s %-30s %s\n' srv - first-start "both up, fresh dir (round $round)" "$([ -z "$line" ] && echo PASS || echo "FAIL  $line")"
    [ -z "$line" ] || ok=1
    cleanup
  done
  return $ok
}

CELLS=(
  "py auto stdio"
  "py legacy stdio"
  "py auto http"
  "py legacy http"
  "ts - stdio"
  "ts - http"
  "py auto http+token"
  "ts - http+token"
  "py legacy sse"
  "py auto sse"
  "ts - sse"
  "srv - first-start"
  "py auto approval"
  "py legacy approval"
  "ts v1 approval"
  "ts v2 approval"
)
selected() {
  local o
  for o in ${SKIP[@]+"${SKIP[@]}"}; do [[ $1 == *"$o"* ]] && return 1; done
  [ ${#ONLY[@]} = 0 ] && return 0
  for o in "${ONLY[@]}"; do [[ $1 == *"$o"* ]] && return 0; done
  return 1
}

RESULTS=()
FAILED_CELLS=0
n=0
for cell in "${CELLS[@]}"; do
  selected "$cell" || continue
  n=$((n + 1))
  read -r client mode transport <<<"$cell"
  dir=$RUN_TMP/$n-${client}-${mode}-${transport/+/-}
  mkdir -p "$dir/data"
  t0=$(date +%s.%N)
  extra=()
  ok=1
  case $transport in
    stdio) ;;
    approval)
      if start_shop "$dir"; then
        extra=(--shop-url "$SHOP_URL")
      else
        ok=0
        printf '%-3s %-7s %-11s %-30s FAIL  the shop did not start (see %s)\n' "$client" "$mode" "$transport" "start shop" "$dir"
      fi
      ;;
    first-start)
      concurrent_start "$dir" >"$dir/client.out" || ok=0
      cat "$dir/client.out"
      ;;
    http|http+token|sse)
      token=
      [ "$transport" = http+token ] && token=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
      path=/mcp
      [ "$transport" = sse ] && path=/sse
      start_server "$dir" seller "$token" && sport=$PORT && start_server "$dir" buyer "$token" && bport=$PORT || ok=0
      if [ $ok = 1 ]; then
        extra=(--seller-url "http://127.0.0.1:$sport$path" --buyer-url "http://127.0.0.1:$bport$path" ${token:+--token "$token"})
      else
        printf '%-3s %-7s %-11s %-30s FAIL  the HTTP servers did not start (see %s)\n' "$client" "$mode" "$transport" "start servers" "$dir"
      fi
      ;;
  esac
  ctransport=${transport%+token}
  if [ $ok = 1 ] && [ "$client" != srv ]; then
    # The client's own output is the check lines; its stderr (SDK warnings, tracebacks) goes to a file.
    if [ "$transport" = approval ] && [ "$client" = py ]; then
      env -u L402_MCP_DATA_DIR -u L402_MCP_WALLET XDG_CONFIG_HOME="$dir" \
        timeout 300 "$PY" "$HERE/approval.py" --label "$cell" --mode "$mode" \
        --bin "$BIN" --data-dir "$dir/data" --log-dir "$dir" "${extra[@]}" 2>"$dir/client.err" | tee "$dir/client.out"
    elif [ "$transport" = approval ]; then
      env -u L402_MCP_DATA_DIR -u L402_MCP_WALLET XDG_CONFIG_HOME="$dir" MCP_TS_DIR="$TS_DIR" MCP_TS2_DIR="$TS2_DIR" \
        timeout 300 node "$HERE/approval.mjs" --label "$cell" --sdk "$mode" \
        --bin "$BIN" --data-dir "$dir/data" --log-dir "$dir" "${extra[@]}" 2>"$dir/client.err" | tee "$dir/client.out"
    elif [ "$client" = py ]; then
      env -u L402_MCP_DATA_DIR -u L402_MCP_WALLET XDG_CONFIG_HOME="$dir" \
        timeout 180 "$PY" "$HERE/buy_sell.py" --label "$cell" --mode "$mode" --transport "$ctransport" \
        --bin "$BIN" --data-dir "$dir/data" --log-dir "$dir" "${extra[@]}" 2>"$dir/client.err" | tee "$dir/client.out"
    else
      env -u L402_MCP_DATA_DIR -u L402_MCP_WALLET XDG_CONFIG_HOME="$dir" MCP_TS_DIR="$TS_DIR" \
        timeout 180 node "$HERE/buy_sell.mjs" --label "$cell" --transport "$ctransport" \
        --bin "$BIN" --data-dir "$dir/data" --log-dir "$dir" "${extra[@]}" 2>"$dir/client.err" | tee "$dir/client.out"
    fi
    rc=${PIPESTATUS[0]}
    [ "$rc" = 124 ] && printf '%-3s %-7s %-11s %-30s FAIL  killed after 180 s\n' "$client" "$mode" "$transport" "run completed" | tee -a "$dir/client.out"
    [ "$rc" = 0 ] || ok=0
  fi
  cleanup
  # Nothing may outlive the run: stdio servers are the SDKs' children, HTTP servers ours.
  left=$(leftovers "$dir" | tr '\n' ' ')
  if [ -n "$left" ]; then
    printf '%-3s %-7s %-11s %-30s FAIL  server processes left running: %s\n' "$client" "$mode" "$transport" "no processes left" "$left" | tee -a "$dir/client.out"
    for pid in $left; do kill -KILL "$pid" 2>/dev/null; done
    ok=0
  fi
  secs=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  npass=$(grep -c ' PASS$' "$dir/client.out" 2>/dev/null)
  nfail=$(grep -c ' FAIL' "$dir/client.out" 2>/dev/null)
  if [ $ok = 1 ]; then
    RESULTS+=("$(printf '%-6s %-7s %-11s PASS  %2s checks  %5ss' "$client" "$mode" "$transport" "$npass" "$secs")")
  else
    FAILED_CELLS=$((FAILED_CELLS + 1))
    RESULTS+=("$(printf '%-6s %-7s %-11s FAIL  %2s of %s checks failed  %5ss' "$client" "$mode" "$transport" "$nfail" "$((npass + nfail))" "$secs")")
    for f in "$dir/client.err" "$dir"/*.log; do
      [ -s "$f" ] || continue
      echo "    --- ${f#"$RUN_TMP"/} (last 25 lines)"
      grep -v 'unknown format "uint' "$f" | tail -n 25 | sed 's/^/    /'
    done
  fi
done

[ $n = 0 ] && die "no cell matches ${ONLY[*]}"
echo
echo "client mode    transport   result"
printf '%s\n' "${RESULTS[@]}"
echo "$((n - FAILED_CELLS)) of $n runs passed (SDK install/check ${INSTALL_SECS} s, total $SECONDS s)"
[ $FAILED_CELLS = 0 ]
