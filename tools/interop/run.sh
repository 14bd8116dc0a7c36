#!/usr/bin/env bash
# Interop and conformance suite: l402-mcp against independent, third-party implementations, all
# on loopback, nothing mocked but the Lightning node behind some counterparts (see "glue" below).
#
#   section      counterpart (version)                       direction / what it proves
#   mcp          MCP Python SDK 2.3.0 (auto, legacy), TS SDK 1.32.2: tools/mcp-clients/run.sh, the
#                whole buy/sell loop over stdio, streamable HTTP (+bearer token), legacy SSE
#   inspector    MCP Inspector CLI 2.12.0 (node 22)      tools/list (8+ tools, fetch_paid among them)
#                                                        and tools/call decode_invoice, stdio + HTTP
#   conformance  @modelcontextprotocol/conformance 0.1.16  every active server scenario against
#                `serve --http`; conformance-baseline.yaml lists only the scenarios that need the
#                suite's own fixture tools/prompts/resources
#   macaroons    Go macaroon.v2, pymacaroons, js-macaroon: tools/interop/macaroons/run.sh
#   lsat-js      lsat-js 2.0.6: parses our gateway's 402 and identifier; its LSAT token is accepted
#                by our gateway; an lsat-js-made hex-identifier LSAT is accepted by our verifier
#   clients      l402-requests 0.9.0, l402sdk 0.1.0 pay OUR gateway (LNbits wallet B) from LNbits
#                wallet A and get the upstream's data
#   sellers      OUR fetch_paid (MCP Python SDK -> `l402-mcp serve`, LNbits wallet A) pays an
#                l402kit 1.10.1 server and a boltwall 6.0.3 server (both selling with wallet B)
#   mpp          the Payment scheme (MPP) against mppx 0.11.0 (npm), both directions, over HTTP
#                and MCP, and Alby's lightning-tools 10.0.0 (npm) as a buyer:
#                tools/interop/mpp/run.sh (mppx's and Alby's clients pay our gateway, mppx's our
#                mcp-gateway; our fetch_paid and call_paid_tool pay mppx sellers)
#
# Glue (the only non-third-party code between us and a counterpart; each file says so):
#   l402/lnbits_payer.py    pays from LNbits wallet A over its REST API; l402-requests uses it as a
#                           WalletBase subclass (its extension point)
#   l402/lnd_rest_shim.py   answers LND's POST /v2/router/send for l402sdk by paying through LNbits
#   boltwall/server.cjs     boltwall's three ln-service calls (authenticatedLndGrpc, createInvoice,
#                           getInvoice) answered by LNbits: no LND/OpenNode exists offline
#   mpp/lightning.mjs       mppx publishes no `lightning` method: a charge method through mppx's
#                           custom-method API; mpp/wallet.mjs pays and invoices with our embedded
#                           wallets through our command line
#
# Output: each check's own lines, then a matrix "counterpart  direction  PASS|FAIL"; exit 1 if any
# cell failed, 2 if the suite could not be set up.
#
# Usage: tools/interop/run.sh [--only SECTION]... [--skip SECTION]... [--install-only] [--keep]
# Env:   L402_PEERS_CACHE=dir   cache for venvs, npm folders, node 22 (default ~/.cache/l402-peers)
#        L402_MCP_BIN=path      the l402-mcp binary; L402_ORACLE=path the l402_oracle example
#                               (else: cargo build --bin l402-mcp --example l402_oracle, debug)
#        INTEROP_BREAK=what     sabotage one counterpart's path to see its check go red:
#                               preimage (clients, mpp), lsat-header (lsat-js), signature (boltwall),
#                               scheme (l402kit), invoice (inspector), baseline (conformance),
#                               macaroon-sig (macaroons: our signature corrupted), budget (mcp:
#                               every agent's per-payment cap is 1 sat)
#
# How each check was seen to fail (each tried once, 2026-11):
#   mcp           L402_MCP_BIN=/bin/true: every cell FAIL (the SDKs cannot connect);
#                 INTEROP_BREAK=budget (2026-12): the SDKs connect, fetch_paid is refused -> FAIL
#   inspector     INTEROP_BREAK=invoice: decode_invoice gets a corrupted bolt11 -> isError -> FAIL
#   conformance   INTEROP_BREAK=baseline (an empty baseline): 21 fixture scenarios fail -> FAIL
#   macaroons     L402_ORACLE=/bin/false: every ours->X / X->ours / bytes cell FAIL;
#                 INTEROP_BREAK=macaroon-sig (2026-12): every ours->X and bytes cell FAIL
#   lsat-js       INTEROP_BREAK=lsat-header: lsat-js cannot import the macaroon -> FAIL
#   clients       INTEROP_BREAK=preimage: the wallet glue returns a wrong preimage: our gateway
#                 answers 402 to l402-requests' retry, l402sdk refuses it itself -> FAIL for both
#   sellers       INTEROP_BREAK=signature: boltwall rotates its secret after each challenge, our
#                 credential is refused (401) -> FAIL; INTEROP_BREAK=scheme: l402kit's challenge says
#                 LSAT, we answer LSAT, l402kit takes only "L402 " -> FAIL
#   mpp           INTEROP_BREAK=preimage (2026-12): mppx and Alby present a wrong preimage: our
#                 gateway and mcp-gateway refuse it -> the mppx->ours and alby->ours cells FAIL
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
CACHE=${L402_PEERS_CACHE:-$HOME/.cache/l402-peers}
export L402_PEERS_CACHE=$CACHE
SECTIONS=(mcp inspector conformance macaroons lsat-js clients sellers mpp)
ONLY=() SKIP=() INSTALL_ONLY=0 KEEP=0
while [ $# -gt 0 ]; do
  case $1 in
    --only) [ $# -ge 2 ] || { echo "--only needs a section" >&2; exit 2; }; ONLY+=("$2"); shift ;;
    --skip) [ $# -ge 2 ] || { echo "--skip needs a section" >&2; exit 2; }; SKIP+=("$2"); shift ;;
    --install-only) INSTALL_ONLY=1 ;;
    --keep) KEEP=1 ;;
    -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $1 (sections: ${SECTIONS[*]})" >&2; exit 2 ;;
  esac
  shift
done
for s in ${ONLY[@]+"${ONLY[@]}"} ${SKIP[@]+"${SKIP[@]}"}; do
  [[ " ${SECTIONS[*]} " == *" $s "* ]] || { echo "unknown section: $s (sections: ${SECTIONS[*]})" >&2; exit 2; }
done
want() {
  local s
  for s in ${SKIP[@]+"${SKIP[@]}"}; do [ "$s" = "$1" ] && return 1; done
  [ ${#ONLY[@]} = 0 ] && return 0
  for s in "${ONLY[@]}"; do [ "$s" = "$1" ] && return 0; done
  return 1
}

log() { echo "[interop] $*" >&2; }
die() { log "ERROR: $*"; exit 2; }
T_START=$SECONDS

# ------------------------------------------------------------------ versions ---
NODE_MAJOR=22
INSPECTOR_VERSION=2.12.0
CONFORMANCE_VERSION=0.1.16
LSAT_JS_VERSION=2.0.6
MACAROON_JS_VERSION=3.0.4
BOLTWALL_VERSION=6.0.3
LN_SERVICE_VERSION=54.10.5     # in place of boltwall's git-only fork; only its module object is used
IS_BASE64_VERSION=1.1.0        # boltwall requires it without declaring it
PY_PEERS="l402-requests==0.9.0 l402sdk==0.1.0 l402kit==1.10.1 fastapi==0.165.0 uvicorn==0.54.0"

# ------------------------------------------------------------------- install ---
t_install=$SECONDS
mkdir -p "$CACHE" || die "cannot create $CACHE"
exec 8>"$CACHE/.interop.lock"
command -v flock >/dev/null && flock 8   # one installer per cache (parallel CI jobs may share it)
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_pkgs=()
command -v curl >/dev/null || apt_pkgs+=(curl)                       # tools/lnbits/start.sh
command -v npm >/dev/null || apt_pkgs+=(nodejs npm)
python3 -c 'import venv, ensurepip' 2>/dev/null || apt_pkgs+=(python3 python3-venv)
if [ ${#apt_pkgs[@]} -gt 0 ]; then
  log "apt-get install ${apt_pkgs[*]}"
  { as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive \
      apt-get install -y -qq --no-install-recommends "${apt_pkgs[@]}"; } >"$CACHE/apt.log" 2>&1 ||
    { tail -20 "$CACHE/apt.log" >&2; die "apt-get failed"; }
fi

# npm_folder DIR SPEC PACKAGE_JSON [npm args]: (re)installs DIR when its marker differs from SPEC.
npm_folder() {
  local dir=$1 spec=$2 pkg=$3; shift 3
  [ "$(cat "$dir/.l402-installed" 2>/dev/null)" = "$spec" ] && return 0
  log "npm install into $dir ($spec)"
  rm -rf "$dir" && mkdir -p "$dir" && printf '%s\n' "$pkg" >"$dir/package.json"
  (cd "$dir" && npm install --no-audit --no-fund --loglevel=error "$@" >"$dir/npm.log" 2>&1) ||
    { tail -20 "$dir/npm.log" >&2; die "npm install in $dir failed"; }
  echo "$spec" >"$dir/.l402-installed"
}

# Node 22 (the Inspector 2.x needs >= 22.19), from the npm registry's `node` package.
NODE_DIR=$CACHE/node$NODE_MAJOR
npm_folder "$NODE_DIR" "node@$NODE_MAJOR" "{\"private\":true,\"dependencies\":{\"node\":\"$NODE_MAJOR\"}}"
export PATH=$NODE_DIR/node_modules/node/bin:$PATH
node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>22||(a===22&&b>=19)?0:1)' ||
  die "node from $NODE_DIR is $(node --version), need >= 22.19"

MCP_TOOLS=$CACHE/mcp-node-tools
npm_folder "$MCP_TOOLS" "inspector@$INSPECTOR_VERSION conformance@$CONFORMANCE_VERSION node$(node --version)" \
  "{\"private\":true,\"dependencies\":{\"@modelcontextprotocol/inspector\":\"$INSPECTOR_VERSION\",\"@modelcontextprotocol/conformance\":\"$CONFORMANCE_VERSION\"}}"
LSAT_DIR=$CACHE/lsat-js
# lsat-js depends on a git build of js-macaroon (unreachable offline): the registry's 3.0.4 instead.
npm_folder "$LSAT_DIR" "lsat-js@$LSAT_JS_VERSION macaroon@$MACAROON_JS_VERSION" \
  "{\"private\":true,\"dependencies\":{\"lsat-js\":\"$LSAT_JS_VERSION\",\"macaroon\":\"$MACAROON_JS_VERSION\"},\"overrides\":{\"macaroon\":\"\$macaroon\"}}"
BOLTWALL_DIR=$CACHE/boltwall
# boltwall's git dependencies (an ln-service fork, js-macaroon) come from the registry instead;
# --ignore-scripts skips native builds (secp256k1 falls back to its JS code; no gRPC is used).
npm_folder "$BOLTWALL_DIR" "boltwall@$BOLTWALL_VERSION ln-service@$LN_SERVICE_VERSION macaroon@$MACAROON_JS_VERSION" \
  "{\"private\":true,\"dependencies\":{\"boltwall\":\"$BOLTWALL_VERSION\",\"ln-service\":\"$LN_SERVICE_VERSION\",\"macaroon\":\"$MACAROON_JS_VERSION\",\"is-base64\":\"$IS_BASE64_VERSION\"},\"overrides\":{\"macaroon\":\"\$macaroon\",\"ln-service\":\"\$ln-service\"}}" \
  --ignore-scripts

PEERS_VENV=$CACHE/l402-peers-venv
PEERS_PY=$PEERS_VENV/bin/python
if [ "$(cat "$PEERS_VENV/.l402-installed" 2>/dev/null)" != "$PY_PEERS" ] || ! [ -x "$PEERS_PY" ]; then
  log "creating $PEERS_VENV ($PY_PEERS)"
  rm -rf "$PEERS_VENV"
  # shellcheck disable=SC2086
  { python3 -m venv "$PEERS_VENV" && "$PEERS_VENV/bin/pip" install -q --disable-pip-version-check $PY_PEERS; } \
    >"$CACHE/l402-peers-venv.log" 2>&1 || { tail -20 "$CACHE/l402-peers-venv.log" >&2; die "pip install failed"; }
  echo "$PY_PEERS" >"$PEERS_VENV/.l402-installed"
fi

# Our side: one debug build of the binary and the oracle (shared with `cargo test`'s build).
if [ -z "${L402_MCP_BIN:-}" ] || [ -z "${L402_ORACLE:-}" ]; then
  log "cargo build --bin l402-mcp --example l402_oracle"
  (cd "$ROOT" && cargo build --quiet --bin l402-mcp --example l402_oracle) || die "cargo build failed"
  TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
  L402_MCP_BIN=${L402_MCP_BIN:-$TARGET/debug/l402-mcp}
  L402_ORACLE=${L402_ORACLE:-$TARGET/debug/examples/l402_oracle}
fi
abspath() { echo "$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"; }
BIN=$(abspath "$L402_MCP_BIN") ORACLE=$(abspath "$L402_ORACLE")
export L402_MCP_BIN=$BIN L402_ORACLE=$ORACLE
[ -x "$BIN" ] || die "no l402-mcp binary at $BIN"

# The sub-suites install their own peers (cached in the same folder).
if want mcp || want sellers; then
  "$ROOT/tools/mcp-clients/run.sh" --install-only >"$CACHE/mcp-clients-install.log" 2>&1 ||
    { tail -20 "$CACHE/mcp-clients-install.log" >&2; die "tools/mcp-clients/run.sh --install-only failed"; }
fi
if want macaroons; then
  "$HERE/macaroons/run.sh" --install-only >"$CACHE/macaroons-install.log" 2>&1 ||
    { tail -20 "$CACHE/macaroons-install.log" >&2; die "tools/interop/macaroons/run.sh --install-only failed"; }
fi
if want mpp; then
  "$HERE/mpp/run.sh" --install-only >"$CACHE/mpp-install.log" 2>&1 ||
    { tail -20 "$CACHE/mpp-install.log" >&2; die "tools/interop/mpp/run.sh --install-only failed"; }
fi
MCP_PY=$CACHE/mcp-py-venv/bin/python
INSTALL_SECS=$((SECONDS - t_install))
command -v flock >/dev/null && flock -u 8
log "peers ready in ${INSTALL_SECS}s (node $(node --version), cache $CACHE)"
[ "$INSTALL_ONLY" = 1 ] && exit 0

# ---------------------------------------------------------------- processes ---
RUN=$(mktemp -d "${TMPDIR:-/tmp}/l402-interop.XXXXXX") || die "mktemp failed"
PIDS=()
LNBITS_INFO=
stop_pids() {
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
  stop_pids
  # LNbits runs in its own session (start.sh): stopped by the pid its JSON records, always.
  [ -n "$LNBITS_INFO" ] && "$ROOT/tools/lnbits/stop.sh" "$LNBITS_INFO" >/dev/null 2>&1
  if [ "$KEEP" = 1 ] || [ "${FAILED:-1}" != 0 ]; then log "logs kept in $RUN"; else rm -rf "$RUN"; fi
}
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# wait_http PID URL: until URL answers (any HTTP status), 20 s; fails if PID exits.
wait_http() {
  for _ in $(seq 200); do
    kill -0 "$1" 2>/dev/null || return 1
    [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$2")" != 000 ] && return 0
    sleep 0.1
  done
  return 1
}
# start NAME URL_TO_WAIT_FOR CMD...: background process, logs to $RUN/NAME.log; sets PID.
start() {
  local name=$1 url=$2; shift 2
  "$@" >"$RUN/$name.log" 2>&1 </dev/null &
  PID=$!
  PIDS+=("$PID")
  wait_http "$PID" "$url" || { log "$name did not start; its log:"; tail -20 "$RUN/$name.log" >&2; return 1; }
}
# serve_http NAME: `l402-mcp serve --http` on a fresh embedded data dir; sets MCP_URL.
serve_http() {
  local port; port=$(free_port)
  mkdir -p "$RUN/$1"
  start "$1" "http://127.0.0.1:$port/mcp" env -u L402_MCP_HTTP_TOKEN -u L402_MCP_BACKEND -u L402_MCP_CONFIG \
    XDG_CONFIG_HOME="$RUN/$1" "$BIN" --data-dir "$RUN/$1" serve --http "127.0.0.1:$port" || return 1
  MCP_URL=http://127.0.0.1:$port/mcp
}

# ------------------------------------------------------------------- results ---
declare -A CELL DETAIL
ORDER=()
FAILED=0
# cell COUNTERPART DIRECTION PASS|FAIL [DETAIL]: one matrix cell (the worst result wins).
cell() {
  local key="$1|$2"
  [ -z "${CELL[$key]:-}" ] && ORDER+=("$key")
  if [ "${CELL[$key]:-PASS}" = FAIL ] || [ "$3" = FAIL ]; then CELL[$key]=FAIL; else CELL[$key]=PASS; fi
  [ -n "${4:-}" ] && DETAIL[$key]="${DETAIL[$key]:-}${DETAIL[$key]:+; }$4"
  [ "$3" = FAIL ] && FAILED=1
  return 0
}
# fold_lines FILE COUNTERPART_FIELD DIRECTION_FIELD: check lines "cp dir name... PASS|FAIL ..." -> cells.
fold_lines() {
  local line cp dir verdict name
  while IFS= read -r line; do
    read -r cp dir _ <<<"$line"
    if [[ $line =~ \ (PASS|FAIL)(\ \ .*)?$ ]]; then
      verdict=${BASH_REMATCH[1]}
      name=$(sed -E 's/^[^ ]+ +[^ ]+ +//; s/ +(PASS|FAIL)( .*)?$//' <<<"$line")
      if [ "$verdict" = FAIL ]; then cell "$cp" "$dir" FAIL "$name"; else cell "$cp" "$dir" PASS; fi
    fi
  done <"$1"
}
declare -A SECS
section() { echo; echo "=== $1"; T_SECTION=$SECONDS; }
section_done() { SECS[$1]=$((SECONDS - T_SECTION)); }

# ======================================================================== mcp ===
if want mcp; then
  section "mcp: official MCP SDKs drive the buy/sell loop and human approvals (tools/mcp-clients/run.sh)"
  # (INTEROP_BREAK=budget is applied by tools/mcp-clients to every agent it starts.)
  "$ROOT/tools/mcp-clients/run.sh" >"$RUN/mcp-clients.out" 2>"$RUN/mcp-clients.err"
  rc=$?
  sed -n '/^client mode/,$p' "$RUN/mcp-clients.out"
  rows=0
  while read -r client mode transport verdict rest; do
    [ "$verdict" = PASS ] || [ "$verdict" = FAIL ] || continue
    rows=$((rows + 1))
    case $client in
      py) cp="mcp-python-sdk $mode" ;;
      ts) [ "$mode" = - ] && cp="mcp-ts-sdk" || cp="mcp-ts-sdk $mode" ;;
      srv) cp="(no client)"; ;;
      *) cp=$client ;;
    esac
    [ "$client" = srv ] && dir="two servers, fresh dir" || dir="client->our-mcp $transport"
    cell "$cp" "$dir" "$verdict" "$([ "$verdict" = FAIL ] && echo "$rest")"
  done < <(sed -n '/^client mode/,$p' "$RUN/mcp-clients.out")
  if [ "$rc" != 0 ] && [ "$rows" = 0 ]; then
    tail -20 "$RUN/mcp-clients.out" "$RUN/mcp-clients.err"
    cell "mcp-clients" "run" FAIL "tools/mcp-clients/run.sh exit $rc, no results"
  elif [ "$rc" != 0 ]; then
    grep ' FAIL' "$RUN/mcp-clients.out" | head -20
    grep -q '^[a-z]* *[-a-z0-9]* *[-+a-z]* *FAIL' "$RUN/mcp-clients.out" || cell "mcp-clients" "run" FAIL "exit $rc"
  fi
  section_done mcp
fi

# ================================================================== inspector ===
if want inspector; then
  section "inspector: MCP Inspector CLI $INSPECTOR_VERSION (node $(node --version))"
  INSPECTOR=$MCP_TOOLS/node_modules/.bin/mcp-inspector
  idir=$RUN/inspector && mkdir -p "$idir"
  # An invoice to decode, from an embedded wallet of our own.
  BOLT11=$("$BIN" --data-dir "$idir" --json invoice 21 --description interop 2>>"$idir/invoice.err" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["bolt11"])')
  [ "${INTEROP_BREAK:-}" = invoice ] && BOLT11=${BOLT11%?????}qqqqq
  # inspect LABEL TARGET...: tools/list must list our tools; tools/call decode_invoice must decode.
  # (The Inspector's options go before the target: after `--` everything is the server's.)
  inspect() {
    local label=$1; shift
    local out=$idir/$label problems rc line
    timeout 60 "$INSPECTOR" --cli --method tools/list "$@" >"$out.list.json" 2>"$out.list.err"
    rc=$?
    problems=$(python3 - "$out.list.json" "$rc" <<'EOF'
import json, sys
want = {"fetch_paid", "create_l402_challenge", "verify_l402_payment", "wallet_balance",
        "pay_invoice", "create_invoice", "decode_invoice", "list_payments"}
try:
    tools = {t["name"]: t for t in json.load(open(sys.argv[1]))["tools"]}
except Exception as e:
    print(f"tools/list: exit {sys.argv[2]}, output is not a tools list ({e})")
    sys.exit()
missing = want - set(tools)
bad = [n for n, t in tools.items() if t.get("inputSchema", {}).get("type") != "object"]
print("; ".join(filter(None, [missing and f"tools/list: missing {sorted(missing)}",
                               bad and f"tools/list: inputSchema not an object: {bad}"])))
EOF
)
    line=$(grep -h 'Schema portability' "$out.list.err" | head -1)
    [ -n "$line" ] && echo "inspector $label tools/list: $line"
    timeout 60 "$INSPECTOR" --cli --method tools/call --tool-name decode_invoice --tool-arg "bolt11=$BOLT11" "$@" \
      >"$out.call.json" 2>"$out.call.err"
    rc=$?
    problems+=$(python3 - "$out.call.json" "$rc" <<'EOF'
import json, sys
try:
    r = json.load(open(sys.argv[1]))
except Exception as e:
    print(f"; tools/call: exit {sys.argv[2]}, no JSON result ({e})")
    sys.exit()
s = r.get("structuredContent") or {}
if r.get("isError") or s.get("amount_sats") != 21 or s.get("network") != "regtest" or s.get("description") != "interop":
    print(f"; tools/call decode_invoice: {json.dumps(r)[:400]}")
EOF
)
    problems=${problems#; }
    if [ -z "$problems" ]; then
      printf '%-14s %-22s %s\n' mcp-inspector "client->our-mcp $label" "tools/list + tools/call decode_invoice PASS"
      cell mcp-inspector "client->our-mcp $label" PASS
    else
      printf '%-14s %-22s %s\n' mcp-inspector "client->our-mcp $label" "FAIL  $problems"
      [ -s "$out.list.err" ] && grep -v ' INFO ' "$out.list.err" | tail -5 | sed 's/^/    /'
      cell mcp-inspector "client->our-mcp $label" FAIL "$problems"
    fi
  }
  # stdio: the Inspector spawns the server (with -e for its environment).
  inspect stdio -e "L402_MCP_DATA_DIR=$idir/stdio" -e "XDG_CONFIG_HOME=$idir" -- "$BIN" serve
  if serve_http inspector-http; then
    inspect http --transport http --server-url "$MCP_URL"
  else
    cell mcp-inspector "client->our-mcp http" FAIL "serve --http did not start"
  fi
  stop_pids
  section_done inspector
fi

# ================================================================ conformance ===
if want conformance; then
  section "conformance: @modelcontextprotocol/conformance $CONFORMANCE_VERSION server scenarios"
  baseline=$HERE/conformance-baseline.yaml
  if [ "${INTEROP_BREAK:-}" = baseline ]; then baseline=$RUN/empty-baseline.yaml; echo "server: []" >"$baseline"; fi
  if serve_http conformance-server; then
    timeout 300 "$MCP_TOOLS/node_modules/.bin/conformance" server --url "$MCP_URL" \
      --expected-failures "$baseline" -o "$RUN/conformance" >"$RUN/conformance.out" 2>&1
    rc=$?
    sed -n '/=== SUMMARY ===/,$p' "$RUN/conformance.out"
    # Unexpected results, with the check's own message (the request and what came back are in
    # $RUN/conformance/<scenario>/checks.json).
    detail=$(python3 - "$RUN/conformance" "$baseline" <<'EOF'
import glob, json, os, re, sys
out, baseline = sys.argv[1], open(sys.argv[2]).read()
expected = set(re.findall(r"^\s*-\s*([a-z0-9-]+)", baseline, re.M))
notes = []
for d in sorted(glob.glob(os.path.join(out, "server-*"))):
    name = re.sub(r"^server-|-\d{4}-\d\d-\d\dT.*$", "", os.path.basename(d))
    try:
        checks = json.load(open(os.path.join(d, "checks.json")))
    except Exception:
        continue
    failed = [c for c in checks if c.get("status") == "FAILURE"]
    if failed and name not in expected:
        notes.append(f"{name}: {failed[0].get('errorMessage', '')}")
    elif not failed and name in expected:
        notes.append(f"{name}: passes but is in the baseline (remove it)")
print("; ".join(notes))
EOF
)
    [ -n "$detail" ] && echo "unexpected: $detail"
    if [ "$rc" = 0 ]; then cell conformance "suite->our-mcp http" PASS
    else cell conformance "suite->our-mcp http" FAIL "exit $rc${detail:+: $detail}"; fi
  else
    cell conformance "suite->our-mcp http" FAIL "serve --http did not start"
  fi
  stop_pids
  section_done conformance
fi

# ================================================================== macaroons ===
if want macaroons; then
  section "macaroons: tools/interop/macaroons/run.sh"
  "$HERE/macaroons/run.sh" >"$RUN/macaroons.out" 2>"$RUN/macaroons.err"
  rc=$?
  sed -n '/^== matrix/,$p' "$RUN/macaroons.out"
  cols=()
  rows=0
  while read -r -a f; do
    if [ "${f[0]:-}" = vector ]; then cols=("${f[@]}"); continue; fi
    case ${f[0]:-} in go|python|js) ;; *) continue ;; esac
    rows=$((rows + 1))
    case ${f[0]} in go) cp="go macaroon.v2" ;; python) cp=pymacaroons ;; js) cp=js-macaroon ;; esac
    for i in "${!cols[@]}"; do
      v=${f[$((i + 1))]:-n/a}
      [ "$v" = n/a ] && continue
      cell "$cp" "${cols[$i]}" "$v"
    done
  done < <(sed -n '/^== matrix/,/^RESULT/p' "$RUN/macaroons.out")
  if grep -q '^ours *aperture-inspect *FAIL' "$RUN/macaroons.out"; then cell "aperture vector" "ours parses" FAIL
  elif grep -q '^ours *aperture-inspect *PASS' "$RUN/macaroons.out"; then cell "aperture vector" "ours parses" PASS; fi
  if [ "$rc" != 0 ]; then
    grep -E ' FAIL' "$RUN/macaroons.out" | head -20
    [ "$rows" = 0 ] && tail -20 "$RUN/macaroons.err"
    grep -q ' FAIL' "$RUN/macaroons.out" || cell macaroons run FAIL "tools/interop/macaroons/run.sh exit $rc"
  fi
  section_done macaroons
fi

# ============================================== LNbits, our gateway, sellers ===
if want lsat-js || want clients || want sellers; then
  section "LNbits (FakeWallet): wallet A pays, wallet B sells"
  LNBITS_INFO=$RUN/lnbits.json
  if ! "$ROOT/tools/lnbits/start.sh" "$LNBITS_INFO" 2>"$RUN/lnbits-start.log"; then
    tail -20 "$RUN/lnbits-start.log"
    LNBITS_INFO=  # nothing to stop: start.sh cleans up after a failed start
    for s in lsat-js clients sellers; do want "$s" && cell "$s" "setup" FAIL "LNbits did not start"; done
  else
    read -r LNB_URL B_ADMIN B_INVOICE < <(python3 -c 'import json, sys
i = json.load(open(sys.argv[1])); print(i["url"], i["b"]["admin_key"], i["b"]["invoice_key"])' "$LNBITS_INFO")
    echo "LNbits at $LNB_URL"
    section_done lnbits
  fi
fi

GW_PRICE=21
GATEWAY=
# `--auth l402`: these sections test L402 clients (lsat-js splits the folded header at LSAT/L402
# and reads the L402 JSON body, which a 402 that also offers Payment replaces by Aperture's
# problem+json); the Payment scheme has its own section (mpp).
if [ -n "$LNBITS_INFO" ] && { want lsat-js || want clients; }; then
  up_port=$(free_port) gw_port=$(free_port)
  mkdir -p "$RUN/gateway"
  if start upstream "http://127.0.0.1:$up_port/" "$PEERS_PY" "$HERE/l402/upstream.py" --port "$up_port" &&
     start gateway "http://127.0.0.1:$gw_port/.well-known/l402/health" env -u L402_MCP_CONFIG \
       XDG_CONFIG_HOME="$RUN/gateway" L402_MCP_BACKEND=lnbits L402_MCP_LNBITS_URL="$LNB_URL" \
       L402_MCP_LNBITS_ADMIN_KEY="$B_ADMIN" L402_MCP_LNBITS_INVOICE_KEY="$B_INVOICE" L402_MCP_NETWORK=mainnet \
       "$BIN" --data-dir "$RUN/gateway" gateway --upstream "http://127.0.0.1:$up_port" \
       --price "$GW_PRICE" --path /paid --auth l402 --listen "127.0.0.1:$gw_port"; then
    GATEWAY=http://127.0.0.1:$gw_port
    echo "our gateway at $GATEWAY (/paid: $GW_PRICE sats, LNbits wallet B) in front of $up_port"
  else
    for s in lsat-js clients; do want "$s" && cell "$s" "setup" FAIL "our gateway did not start"; done
  fi
fi

# ==================================================================== lsat-js ===
if want lsat-js && [ -n "$GATEWAY" ]; then
  section "lsat-js $LSAT_JS_VERSION against our gateway and verifier"
  LSAT_JS_DIR=$LSAT_DIR node "$HERE/lsat-js/check.mjs" --gateway "$GATEWAY" --path /paid/data \
    --price "$GW_PRICE" --lnbits "$LNBITS_INFO" --oracle "$ORACLE" >"$RUN/lsat-js.out" 2>&1
  rc=$?
  cat "$RUN/lsat-js.out"
  fold_lines "$RUN/lsat-js.out"
  [ "$rc" != 0 ] && ! grep -q ' FAIL' "$RUN/lsat-js.out" && cell lsat-js run FAIL "exit $rc"
  section_done lsat-js
fi

# ==================================================================== clients ===
if want clients && [ -n "$GATEWAY" ]; then
  section "L402 clients pay our gateway: l402-requests, l402sdk (via the LND REST shim)"
  "$PEERS_PY" "$HERE/l402/pay_gateway.py" --client l402-requests --gateway "$GATEWAY" --path /paid/data \
    --price "$GW_PRICE" --lnbits "$LNBITS_INFO" >"$RUN/l402-requests.out" 2>&1
  rc=$?
  cat "$RUN/l402-requests.out"
  fold_lines "$RUN/l402-requests.out"
  [ "$rc" != 0 ] && ! grep -q ' FAIL' "$RUN/l402-requests.out" && cell l402-requests run FAIL "exit $rc"

  shim_port=$(free_port) shim_mac=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
  read -r A_ADMIN < <(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["a"]["admin_key"])' "$LNBITS_INFO")
  if start lnd-shim "http://127.0.0.1:$shim_port/" "$PEERS_PY" "$HERE/l402/lnd_rest_shim.py" --port "$shim_port" \
      --lnbits-url "$LNB_URL" --admin-key "$A_ADMIN" --macaroon "$shim_mac"; then
    "$PEERS_PY" "$HERE/l402/pay_gateway.py" --client l402sdk --gateway "$GATEWAY" --path /paid/data \
      --price "$GW_PRICE" --lnbits "$LNBITS_INFO" --shim-url "http://127.0.0.1:$shim_port" \
      --shim-macaroon "$shim_mac" >"$RUN/l402sdk.out" 2>&1
    rc=$?
    cat "$RUN/l402sdk.out"
    fold_lines "$RUN/l402sdk.out"
    [ "$rc" != 0 ] && ! grep -q ' FAIL' "$RUN/l402sdk.out" && cell l402sdk run FAIL "exit $rc"
  else
    cell l402sdk "client->our-gateway" FAIL "the LND REST shim did not start"
  fi
  section_done clients
fi

# ==================================================================== sellers ===
if want sellers && [ -n "$LNBITS_INFO" ]; then
  section "our fetch_paid pays third-party sellers: l402kit, boltwall"
  kit_port=$(free_port) bw_port=$(free_port)
  KIT_PRICE=13 BW_PRICE=17
  if start l402kit "http://127.0.0.1:$kit_port/health" "$PEERS_PY" "$HERE/l402/l402kit_server.py" \
      --port "$kit_port" --lnbits-url "$LNB_URL" --invoice-key "$B_INVOICE" --price "$KIT_PRICE"; then
    mkdir -p "$RUN/buyer-l402kit"
    "$MCP_PY" "$HERE/l402/fetch_paid.py" --seller l402kit --url "http://127.0.0.1:$kit_port/premium" \
      --price "$KIT_PRICE" --scheme L402 --reuse single-use --lnbits "$LNBITS_INFO" --bin "$BIN" \
      --data-dir "$RUN/buyer-l402kit" >"$RUN/fetch-l402kit.out" 2>&1
    rc=$?
    cat "$RUN/fetch-l402kit.out"
    fold_lines "$RUN/fetch-l402kit.out"
    [ "$rc" != 0 ] && ! grep -q ' FAIL' "$RUN/fetch-l402kit.out" && cell l402kit run FAIL "exit $rc"
  else
    cell l402kit "fetch_paid->seller" FAIL "the l402kit server did not start"
  fi
  if start boltwall "http://127.0.0.1:$bw_port/health" env BOLTWALL_DIR="$BOLTWALL_DIR" \
      node "$HERE/boltwall/server.cjs" --port "$bw_port" --lnbits-url "$LNB_URL" --invoice-key "$B_INVOICE" \
      --price "$BW_PRICE"; then
    mkdir -p "$RUN/buyer-boltwall"
    "$MCP_PY" "$HERE/l402/fetch_paid.py" --seller boltwall --url "http://127.0.0.1:$bw_port/protected" \
      --price "$BW_PRICE" --scheme LSAT --reuse cached --lnbits "$LNBITS_INFO" --bin "$BIN" \
      --data-dir "$RUN/buyer-boltwall" >"$RUN/fetch-boltwall.out" 2>&1
    rc=$?
    cat "$RUN/fetch-boltwall.out"
    fold_lines "$RUN/fetch-boltwall.out"
    [ "$rc" != 0 ] && ! grep -q ' FAIL' "$RUN/fetch-boltwall.out" && cell boltwall run FAIL "exit $rc"
  else
    cell boltwall "fetch_paid->seller" FAIL "the boltwall server did not start"
  fi
  section_done sellers
fi

# ======================================================================== mpp ===
if want mpp; then
  section "the Payment scheme (MPP) against mppx: tools/interop/mpp/run.sh"
  "$HERE/mpp/run.sh" >"$RUN/mpp.out" 2>"$RUN/mpp.err"
  rc=$?
  cat "$RUN/mpp.out"
  fold_lines "$RUN/mpp.out"
  if [ "$rc" != 0 ] && ! grep -q ' FAIL' "$RUN/mpp.out"; then
    tail -20 "$RUN/mpp.err"
    cell mppx run FAIL "exit $rc"
  fi
  section_done mpp
fi

# ===================================================================== matrix ===
stop_pids
echo
echo "=== matrix (counterpart x direction)"
printf '%-22s %-30s %s\n' counterpart direction result
npass=0 nfail=0
for key in ${ORDER[@]+"${ORDER[@]}"}; do
  printf '%-22s %-30s %s' "${key%%|*}" "${key#*|}" "${CELL[$key]}"
  if [ "${CELL[$key]}" = FAIL ]; then
    nfail=$((nfail + 1)); printf '  %s' "$(cut -c1-300 <<<"${DETAIL[$key]:-}")"
  else npass=$((npass + 1)); fi
  echo
done
times=""
for s in "${SECTIONS[@]}" lnbits; do [ -n "${SECS[$s]:-}" ] && times+=" $s ${SECS[$s]}s"; done
echo "time: install/check ${INSTALL_SECS}s,${times}; total $((SECONDS - T_START))s"
echo "interop: $npass passed, $nfail failed"
[ "$((npass + nfail))" = 0 ] && { log "no check ran"; FAILED=1; }
exit "$FAILED"
