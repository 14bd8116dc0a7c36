#!/usr/bin/env bash
# The Payment scheme (MPP) against an independent implementation: mppx 0.11.0 (npm, wevm/mppx),
# both directions, over HTTP and over MCP, all on 127.0.0.1:
#
#   mppx->our-gateway           mppx's client (Mppx.fetch) pays `l402-mcp gateway --auth mpp`:
#                               200 with the upstream's data, the Payment-Receipt read by mppx,
#                               exactly the price paid once
#   mppx->our-mcp-gateway       mppx's MCP client (McpClient.wrap over the MCP TS SDK 1.32.2)
#                               pays a tool priced by `l402-mcp mcp-gateway`: the result, the
#                               receipt in _meta, one payment
#   fetch_paid->mppx-seller     OUR fetch_paid (the TS SDK drives `l402-mcp serve`) pays an mppx
#                               seller: 200, receipt decoded, a charge is single use
#   call_paid_tool->mppx-seller OUR call_paid_tool pays an mppx-priced MCP tool (TS SDK server
#                               with mppx's mcpSdk transport): the result and its receipt
#   alby->our-gateway           Alby's lightning-tools 10.0.0 (npm, fetch402) pays the same
#                               gateway: 200, one 21-sat payment, its credential not reusable
#
# Glue (ours, each file says so): mppx publishes no `lightning` method, so lightning.mjs adds
# one (charge) through mppx's documented custom-method API; wallet.mjs is the Lightning side:
# l402-mcp's embedded wallets of one data dir (wallets our-buyer, mppx-buyer, mppx-seller,
# alby-buyer, seller, tools), reached through our command line (`pay`, `invoice`, `decode`,
# `balance`).
#
# One line per check ("mppx <direction> <check> PASS|FAIL"); exit 1 if any failed, 2 if the
# suite could not be set up.
# Usage: tools/interop/mpp/run.sh [--install-only]
# Env:   L402_MCP_BIN=path     the l402-mcp binary (else: cargo build --bin l402-mcp)
#        L402_PEERS_CACHE=dir  where the npm folder is kept (default ~/.cache/l402-peers)
#        INTEROP_BREAK=preimage  our wallet glue hands mppx and Alby a wrong preimage: every
#                              mppx->ours and alby->ours check must go red
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
CACHE=${L402_PEERS_CACHE:-$HOME/.cache/l402-peers}
INSTALL_ONLY=0
for arg in "$@"; do
  case $arg in
    --install-only) INSTALL_ONLY=1 ;;
    -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $arg" >&2; exit 2 ;;
  esac
done
log() { echo "[interop mpp] $*" >&2; }
die() { log "ERROR: $*"; exit 2; }
command -v node >/dev/null && command -v npm >/dev/null || die "node and npm are needed (tools/interop/run.sh installs node 22)"

# mppx's required peer viem >= 2.57 declares an optional peer mppx >= 0.17, which the registry
# does not have: viem is pinned to 2.56.9 (the newest without it), or npm refuses (ERESOLVE).
SPEC='{"private":true,"dependencies":{"mppx":"0.11.0","viem":"2.56.9","@modelcontextprotocol/sdk":"1.32.2","@getalby/lightning-tools":"10.0.0"}}'
DIR=$CACHE/mppx
mkdir -p "$CACHE"
if [ "$(cat "$DIR/.l402-installed" 2>/dev/null)" != "$SPEC" ]; then
  log "npm install into $DIR (mppx 0.11.0, viem 2.56.9, @modelcontextprotocol/sdk 1.32.2, @getalby/lightning-tools 10.0.0)"
  rm -rf "$DIR" && mkdir -p "$DIR" && printf '%s\n' "$SPEC" >"$DIR/package.json"
  (cd "$DIR" && npm install --no-audit --no-fund --loglevel=error >"$DIR/npm.log" 2>&1) ||
    { tail -20 "$DIR/npm.log" >&2; die "npm install failed"; }
  echo "$SPEC" >"$DIR/.l402-installed"
fi
[ "$INSTALL_ONLY" = 1 ] && exit 0

if [ -z "${L402_MCP_BIN:-}" ]; then
  (cd "$ROOT" && cargo build --quiet --bin l402-mcp) || die "cargo build failed"
  L402_MCP_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/debug/l402-mcp
fi
BIN=$(cd "$(dirname "$L402_MCP_BIN")" && pwd)/$(basename "$L402_MCP_BIN")
[ -x "$BIN" ] || die "no l402-mcp binary at $BIN"

RUN=$(mktemp -d "${TMPDIR:-/tmp}/l402-mpp.XXXXXX") || die "mktemp failed"
# The scripts run from here, beside the cached node_modules (ESM resolves from the script's folder).
cp "$HERE"/*.mjs "$RUN/" && ln -s "$DIR/node_modules" "$RUN/node_modules"
DATA=$RUN/data
mkdir -p "$DATA"
export L402_MCP_BIN=$BIN MPP_DATA_DIR=$DATA
unset L402_MCP_CONFIG L402_MCP_BACKEND
export XDG_CONFIG_HOME=$DATA
PIDS=()
finish() {
  local pid
  for pid in ${PIDS[@]+"${PIDS[@]}"}; do kill -TERM "$pid" 2>/dev/null; done
  for pid in ${PIDS[@]+"${PIDS[@]}"}; do wait "$pid" 2>/dev/null; done
  if [ "${KEEP:-0}" = 1 ] || [ "${FAILED:-1}" != 0 ]; then log "logs kept in $RUN"; else rm -rf "$RUN"; fi
}
trap finish EXIT
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_up() {
  for _ in $(seq 200); do
    kill -0 "$1" 2>/dev/null || return 1
    [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$2")" != 000 ] && return 0
    sleep 0.1
  done
  return 1
}
start() {
  local name=$1 url=$2; shift 2
  "$@" >"$RUN/$name.log" 2>&1 </dev/null &
  PIDS+=($!)
  wait_up "$!" "$url" || { log "$name did not start:"; tail -20 "$RUN/$name.log" >&2; exit 2; }
}

# Every wallet exists before any process pays (the first open grants the demo sats).
for w in our-buyer mppx-buyer mppx-seller alby-buyer seller tools; do
  "$BIN" --data-dir "$DATA" --wallet "$w" balance >/dev/null || die "cannot open wallet $w"
done
up=$(free_port) gw=$(free_port) mcpgw=$(free_port) seller=$(free_port)
start upstream "http://127.0.0.1:$up/" node "$RUN/upstream.mjs" "$up"
start gateway "http://127.0.0.1:$gw/.well-known/l402/health" "$BIN" --data-dir "$DATA" --wallet seller \
  gateway --upstream "http://127.0.0.1:$up" --price 21 --path /paid --auth mpp --listen "127.0.0.1:$gw"
start mcp-gateway "http://127.0.0.1:$mcpgw/mcp" "$BIN" --data-dir "$DATA" --wallet seller mcp-gateway \
  --upstream-cmd "$BIN --data-dir $DATA --wallet tools serve" --price decode_invoice=5 \
  --listen "127.0.0.1:$mcpgw"
start mppx-seller "http://127.0.0.1:$seller/health" node "$RUN/mppx-seller.mjs" "$seller"

FAILED=0
if [ "${INTEROP_BREAK:-}" = preimage ]; then export MPP_BREAK_PREIMAGE=1; fi
(cd "$RUN" && node mppx-buyer.mjs "http://127.0.0.1:$gw/paid/data" "http://127.0.0.1:$mcpgw/mcp") || FAILED=1
(cd "$RUN" && node alby-buyer.mjs "http://127.0.0.1:$gw/paid/data") || FAILED=1
unset MPP_BREAK_PREIMAGE
(cd "$RUN" && node our-buyer.mjs "http://127.0.0.1:$seller") || FAILED=1
exit "$FAILED"
