#!/usr/bin/env bash
# The dashboard, the approval page and the MCP Apps approval card in a real headless browser:
# Debian's chromium, driven by playwright-core (npm; it never downloads a browser). Installs what
# is missing (apt chromium, npm playwright-core, @modelcontextprotocol/sdk and
# @modelcontextprotocol/ext-apps with esbuild into the cache), prepares data dirs through the
# command line, and runs dashboard.mjs and apps.mjs (the card under the official ext-apps host
# AppBridge in a plain page, l402-mcp serve over stdio under the TypeScript SDK client; one line
# per check). The screenshots they take stay in the log folder.
#
# Usage: tools/browser/run.sh
# Env:   L402_MCP_BIN=path        the binary (else: cargo build, target/debug/l402-mcp)
#        L402_BROWSER_LOG=dir     log folder, kept (default target/browser-test)
#        L402_PEERS_CACHE=dir     cache for node_modules (default ~/.cache/l402-peers)
#        PLAYWRIGHT_CORE_VERSION  default 1.65.2
#        MCP_TS_VERSION           @modelcontextprotocol/sdk, default 1.32.2 (as tools/mcp-clients)
#        EXT_APPS_VERSION         @modelcontextprotocol/ext-apps (AppBridge), default 2.0.4, with its
#                                 peers @modelcontextprotocol/client and core 2.4.0, zod 4.6.7, and
#                                 esbuild 0.28.2 (bundles AppBridge for the page)
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
CACHE=${L402_PEERS_CACHE:-$HOME/.cache/l402-peers}
LOG=${L402_BROWSER_LOG:-$ROOT/target/browser-test}
PW_VERSION=${PLAYWRIGHT_CORE_VERSION:-1.65.2}
PW_DIR=$CACHE/browser
MCP_TS_VERSION=${MCP_TS_VERSION:-1.32.2}
TS_DIR=$CACHE/mcp-ts   # shared with tools/mcp-clients/run.sh (same marker, same lock)
EXT_APPS_VERSION=${EXT_APPS_VERSION:-2.0.4}
EXT_APPS_DEPS="\"@modelcontextprotocol/ext-apps\":\"$EXT_APPS_VERSION\",\"@modelcontextprotocol/client\":\"2.4.0\",\"@modelcontextprotocol/core\":\"2.4.0\",\"zod\":\"4.6.7\",\"esbuild\":\"0.28.2\""
EXT_DIR=$CACHE/ext-apps
log() { echo "[browser] $*" >&2; }
die() { log "ERROR: $*"; exit 2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# ---------------------------------------------------------------- install ---
if [ ! -x /usr/bin/chromium ]; then
  log "installing chromium (apt)"
  as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null ||
    die "apt-get install chromium failed"
fi
command -v node >/dev/null || die "node (>= 18) is required"
mkdir -p "$CACHE" || die "cannot create $CACHE"
if [ "$(cat "$PW_DIR/.l402-installed" 2>/dev/null)" != "playwright-core@$PW_VERSION" ]; then
  log "installing playwright-core@$PW_VERSION into $PW_DIR"
  rm -rf "$PW_DIR" && mkdir -p "$PW_DIR"
  printf '{"name":"l402-mcp-browser","private":true,"dependencies":{"playwright-core":"%s"}}\n' "$PW_VERSION" >"$PW_DIR/package.json"
  (cd "$PW_DIR" && npm install --no-audit --no-fund --loglevel=error >/dev/null) || die "npm install playwright-core failed"
  echo "playwright-core@$PW_VERSION" >"$PW_DIR/.l402-installed"
fi
ts_ok() {
  [ "$(cat "$TS_DIR/.l402-installed" 2>/dev/null)" = "@modelcontextprotocol/sdk@$MCP_TS_VERSION" ] &&
    grep -q "\"version\": *\"$MCP_TS_VERSION\"" "$TS_DIR/node_modules/@modelcontextprotocol/sdk/package.json" 2>/dev/null
}
if ! ts_ok; then
  exec 9>"$CACHE/.mcp-clients.lock"
  command -v flock >/dev/null && flock 9
  if ! ts_ok; then
    log "installing @modelcontextprotocol/sdk@$MCP_TS_VERSION into $TS_DIR"
    rm -rf "$TS_DIR" && mkdir -p "$TS_DIR"
    printf '{"name":"l402-mcp-clients","private":true,"dependencies":{"@modelcontextprotocol/sdk":"%s"}}\n' "$MCP_TS_VERSION" >"$TS_DIR/package.json"
    (cd "$TS_DIR" && npm install --no-audit --no-fund --loglevel=error >/dev/null) || die "npm install @modelcontextprotocol/sdk failed"
    echo "@modelcontextprotocol/sdk@$MCP_TS_VERSION" >"$TS_DIR/.l402-installed"
    ts_ok || die "@modelcontextprotocol/sdk $MCP_TS_VERSION not found in $TS_DIR"
  fi
  exec 9>&-
fi
if [ "$(cat "$EXT_DIR/.l402-installed" 2>/dev/null)" != "$EXT_APPS_DEPS" ]; then
  log "installing @modelcontextprotocol/ext-apps@$EXT_APPS_VERSION (+ client, core, zod, esbuild) into $EXT_DIR"
  rm -rf "$EXT_DIR" && mkdir -p "$EXT_DIR"
  printf '{"name":"l402-mcp-ext-apps","private":true,"dependencies":{%s}}\n' "$EXT_APPS_DEPS" >"$EXT_DIR/package.json"
  (cd "$EXT_DIR" && npm install --no-audit --no-fund --loglevel=error >/dev/null) || die "npm install @modelcontextprotocol/ext-apps failed"
  grep -q "\"version\": *\"$EXT_APPS_VERSION\"" "$EXT_DIR/node_modules/@modelcontextprotocol/ext-apps/package.json" ||
    die "@modelcontextprotocol/ext-apps $EXT_APPS_VERSION not found in $EXT_DIR"
  echo "$EXT_APPS_DEPS" >"$EXT_DIR/.l402-installed"
fi
if [ -n "${L402_MCP_BIN:-}" ]; then
  BIN=$L402_MCP_BIN
else
  (cd "$ROOT" && cargo build --quiet --bin l402-mcp) || die "cargo build failed"
  BIN=${CARGO_TARGET_DIR:-$ROOT/target}/debug/l402-mcp
fi
[ -x "$BIN" ] || die "no binary at $BIN"
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")

# ------------------------------------------------------------ the wallet ---
rm -rf "$LOG" && mkdir -p "$LOG/data" || die "cannot create $LOG"
DATA=$LOG/data
PIN=2468
cli() { local w=$1; shift; env -u L402_MCP_CONFIG -u L402_MCP_WALLET XDG_CONFIG_HOME="$LOG" "$BIN" --json --data-dir "$DATA" --wallet "$w" "$@"; }
field() { node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const v=JSON.parse(s)[process.argv[1]];process.stdout.write(String(v??""))})' "$1"; }
# "me" sells a weather token to "customer" (an earning, a sale), buys 21 sats from "vendor"
# (spending), and is asked about two 50-sat payments (above 30 sats a person decides).
cli me approvals set --above-sats 30 >/dev/null || die "approvals set failed"
printf '%s\n%s\n' "$PIN" "$PIN" | script -qec "$BIN --data-dir $DATA --wallet me approvals pin" /dev/null >"$LOG/pin.log" 2>&1 ||
  die "approvals pin failed (see $LOG/pin.log)"
challenge=$(cli me challenge 30 --service weather) || die "challenge failed"
preimage=$(cli customer pay "$(field invoice <<<"$challenge")" | field preimage) || die "customer pay failed"
cli me verify "L402 $(field macaroon <<<"$challenge"):$preimage" --service weather >/dev/null || die "verify failed"
cli me pay "$(cli vendor invoice 21 | field bolt11)" >/dev/null || die "pay 21 failed"
HELD=()
for _ in 1 2; do
  out=$(cli me pay "$(cli vendor invoice 50 | field bolt11)")
  [ "$(field code <<<"$out")" = approval_required ] || die "50 sats was not held: $out"
  HELD+=("$(field error <<<"$out" | sed -n 's/.*(approval \([0-9a-f]*\),.*/\1/p')")
done
log "data dir ready: held ${HELD[*]}"

# ------------------------------------------------------------------- run ---
MCP_BROWSER_DIR=$PW_DIR timeout 180 node "$HERE/dashboard.mjs" --bin "$BIN" --data-dir "$DATA" --log-dir "$LOG" \
  --pin "$PIN" --expect-balance $((100000 + 30 - 21)) --held "$(IFS=,; echo "${HELD[*]}")" | tee "$LOG/result.txt"
rc=${PIPESTATUS[0]}

# The approval card (MCP Apps) under the ext-apps AppBridge: its own data dir, "buyer" holds above 30 sats.
APPS=$LOG/apps-data
mkdir -p "$APPS" || die "cannot create $APPS"
env -u L402_MCP_CONFIG -u L402_MCP_WALLET XDG_CONFIG_HOME="$LOG" "$BIN" --json --data-dir "$APPS" --wallet buyer \
  approvals set --above-sats 30 >/dev/null || die "approvals set (apps) failed"
env -u L402_MCP_CONFIG -u L402_MCP_WALLET -u L402_MCP_DATA_DIR MCP_BROWSER_DIR="$PW_DIR" MCP_TS_DIR="$TS_DIR" \
  MCP_EXT_APPS_DIR="$EXT_DIR" timeout 180 node "$HERE/apps.mjs" --bin "$BIN" --data-dir "$APPS" --log-dir "$LOG" | tee -a "$LOG/result.txt"
apps_rc=${PIPESTATUS[0]}
[ "$rc" = 0 ] && rc=$apps_rc
log "screenshots and logs in $LOG"
exit "$rc"
