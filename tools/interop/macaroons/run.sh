#!/usr/bin/env bash
# Macaroon interop: our L402 macaroons (examples/l402_oracle.rs) against three
# independent implementations, both directions:
#   go      gopkg.in/macaroon.v2 (Aperture's library; Debian packages)   check.go
#   python  pymacaroons 0.13.0 (PyPI, in a cached venv)                  check.py
#   js      macaroon 3.0.4 (npm, js-macaroon; lsat-js/boltwall's)        check.mjs
#
# Checks, one line each ("counterpart  direction  PASS|FAIL"), then a matrix:
#   vector    the library reproduces libmacaroons' signature vector (key derivation)
#   ours->X   ours mints (services, capabilities, valid_until); X parses the standard
#             base64, verifies it with the root key accepting exactly those caveats,
#             rejects it with a wrong root key or a refused caveat, re-serializes it
#             to the same bytes
#   X->ours   X mints with the 66-byte Aperture identifier; ours verifies it (exit 0,
#             valid, right payment_hash/token_id/caveats); ours must exit 1 for a wrong
#             preimage, a wrong root key and a tampered signature
#   X->ours(hex-id)  js only: same with lsat-js/boltwall's 132-byte ASCII-hex identifier,
#             sent URL-safe unpadded as boltwall does
#   bytes     same root key, identifier and caveats: X and ours produce identical V2 bytes
#   peers     X verifies what the two other libraries mint (localizes disagreements)
#
# Usage: tools/interop/macaroons/run.sh [--peers-only] [--install-only]
# Env:   L402_ORACLE=path      prebuilt l402_oracle (else: cargo build --release --example)
#        L402_PEERS_CACHE=dir  cache for the venv, node_modules and the Go binary
#                              (default ~/.cache/l402-peers)
# Installs what it needs (apt: golang-go golang-gopkg-macaroon.v2-dev, and python3-venv /
# nodejs npm if missing); everything is cached, reruns only check.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
CACHE=${L402_PEERS_CACHE:-$HOME/.cache/l402-peers}
PEERS_ONLY=0 INSTALL_ONLY=0
for arg in "$@"; do
  case $arg in
    --peers-only) PEERS_ONLY=1 ;;
    --install-only) INSTALL_ONLY=1 ;;
    -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $arg" >&2; exit 2 ;;
  esac
done

log() { echo "[interop] $*" >&2; }
die() { log "ERROR: $*"; exit 2; }

# ---------------------------------------------------------------- install ---
t0=$SECONDS
mkdir -p "$CACHE"
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

VENV=$CACHE/pymacaroons-venv
PY=$VENV/bin/python
JS_DIR=$CACHE/js-macaroon
py_ok() { "$PY" -c 'import importlib.metadata as m, sys; sys.exit(m.version("pymacaroons") != "0.13.0")' 2>/dev/null; }
js_ok() { [ "$(node -p 'require(process.argv[1]).version' "$JS_DIR/node_modules/macaroon/package.json" 2>/dev/null)" = 3.0.4 ]; }

apt_pkgs=()
for p in golang-go golang-gopkg-macaroon.v2-dev; do installed "$p" || apt_pkgs+=("$p"); done
if ! py_ok && ! python3 -c 'import venv, ensurepip' 2>/dev/null; then apt_pkgs+=(python3 python3-venv); fi
command -v node >/dev/null || apt_pkgs+=(nodejs)
command -v npm >/dev/null || js_ok || apt_pkgs+=(npm)
if [ ${#apt_pkgs[@]} -gt 0 ]; then
  log "apt-get install ${apt_pkgs[*]}"
  apt_log=$(mktemp)
  { as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive \
      apt-get install -y -qq --no-install-recommends "${apt_pkgs[@]}"; } >"$apt_log" 2>&1 \
    || { cat "$apt_log" >&2; die "apt-get failed"; }
  rm -f "$apt_log"
fi

if ! py_ok; then
  log "creating $VENV (pymacaroons 0.13.0)"
  rm -rf "$VENV"
  if ! { python3 -m venv "$VENV" &&
          "$VENV/bin/pip" install -q --disable-pip-version-check pymacaroons==0.13.0; }; then
    die "pymacaroons install failed"
  fi
fi

if ! js_ok; then
  log "installing macaroon@3.0.4 into $JS_DIR"
  mkdir -p "$JS_DIR"
  echo '{"private": true, "dependencies": {"macaroon": "3.0.4"}}' >"$JS_DIR/package.json"
  (cd "$JS_DIR" && npm install --no-audit --no-fund --silent >/dev/null) || die "npm install failed"
fi
export JS_MACAROON_DIR=$JS_DIR

# The Go checker is built once per version of check.go.
GO_BIN=$CACHE/check-go-$(sha256sum "$HERE/check.go" | cut -c1-16)
if [ ! -x "$GO_BIN" ]; then
  log "building $GO_BIN"
  rm -f "$CACHE"/check-go-*
  (cd "$HERE" && CGO_ENABLED=0 GO111MODULE=off GOPATH=/usr/share/gocode go build -o "$GO_BIN" check.go) \
    || die "go build failed"
fi
log "peers ready in $((SECONDS - t0))s (cache: $CACHE)"
[ "$INSTALL_ONLY" = 1 ] && exit 0

# Our side: a prebuilt binary, or build the example once and run the executable.
ORACLE=
ORACLE_ERR=
if [ "$PEERS_ONLY" = 0 ]; then
  if [ -n "${L402_ORACLE:-}" ]; then
    ORACLE=$L402_ORACLE
    [ -x "$ORACLE" ] || { ORACLE_ERR="L402_ORACLE=$ORACLE is not executable"; ORACLE=; }
  else
    t1=$SECONDS
    log "cargo build --release --example l402_oracle"
    ORACLE=$(cd "$ROOT" && cargo build --quiet --release --example l402_oracle \
        --message-format=json-render-diagnostics \
      | "$PY" -c 'import json, sys
for line in sys.stdin:
    try: d = json.loads(line)
    except ValueError: continue
    if d.get("reason") == "compiler-artifact" and d["target"]["name"] == "l402_oracle" and d.get("executable"):
        print(d["executable"])')
    [ -n "$ORACLE" ] || ORACLE_ERR="cargo build --example l402_oracle failed"
    log "oracle built in $((SECONDS - t1))s: ${ORACLE:-none}"
  fi
  [ -n "$ORACLE_ERR" ] && log "ERROR: $ORACLE_ERR"
fi

# ------------------------------------------------------------------ inputs ---
ROOT_KEY=5b1f0d1c9a3e7f2468ace0135724bdf86e4a2c1b0f9d8e7c6b5a493827160514
TOKEN_ID=d4c3b2a1f0e9d8c7b6a5948372615049382716a5b4c3d2e1f0a9b8c7d6e5f4a3
PREIMAGE=2ca931a1c36b48f54948b898a271a53ed91ff7d0081939a5fa511249e81cba5c
PAYMENT_HASH=7cef93f2c51aa65208bec1447fc38fc58d9bce1375a532edb0dcd290a2c330ae
ID66=0000$PAYMENT_HASH$TOKEN_ID                  # Aperture v0 identifier, hex
WRONG_KEY=${ROOT_KEY%?}5                          # last nibble changed
ZERO=$(printf '0%.0s' {1..64})
VALID_UNTIL=$(( $(date +%s) + 3600 ))
CAV3=(services=demo:0 demo_capabilities=read "demo_valid_until=$VALID_UNTIL")  # ours -> X, bytes
CAV2=(services=demo:0 demo_capabilities=read)                                  # X -> ours
APERTURE_VECTOR=AgEEbHNhdAJCAAAwpHpumws6ufQoDwiTLNcge0QPUIWA0+tVY+tKPYAJ/zSfmEGlIpNm3VzxuzCqLhEp5KGiyPLUM9L+kcB7uzS+AAIPc2VydmljZXM9bWVtZTowAAISbWVtZV9jYXBhYmlsaXRpZXM9AAAGILA1VCEIExukt4nG+XR9tX8WJ2BVMiHG3UNt1uYJ+NRD

PEERS=(go python js)
# shellcheck disable=SC2317  # peer and ours are called through run()
peer() {  # peer NAME SUBCOMMAND ARGS...
  local who=$1; shift
  case $who in
    go) "$GO_BIN" "$@" ;;
    python) "$PY" "$HERE/check.py" "$@" ;;
    js) node "$HERE/check.mjs" "$@" ;;
  esac
}
# shellcheck disable=SC2317
ours() { "$ORACLE" "$@"; }
caveat_flags() { local c; for c in "$@"; do printf '%s\0' --caveat "$c"; done; }

# run CMD...: sets OUT (stdout), ERR (stderr) and RC.
run() { local e; e=$(mktemp); OUT=$("$@" 2>"$e"); RC=$?; ERR=$(<"$e"); rm -f "$e"; }

# Results: "PASS"/"FAIL" per peer and column; details of failures go to stderr.
declare -A RES
FAILED=0
record() {  # record PEER COLUMN STATUS DETAILS
  RES[$1|$2]=$3
  printf '%-8s %-18s %s\n' "$1" "$2" "$3"
  if [ "$3" != PASS ]; then FAILED=1; [ -n "${4:-}" ] && printf '%s\n' "$4" | sed 's/^/    /'; fi
  return 0
}

# json_expect JSON key=value...: value is compared as JSON if it parses, else as a string.
json_expect() {
  "$PY" - "$@" <<'EOF'
import json, sys
try:
    d = json.loads(sys.argv[1])
except ValueError as e:
    sys.exit("output is not one JSON object (%s): %r" % (e, sys.argv[1]))
bad = []
for kv in sys.argv[2:]:
    k, v = kv.split("=", 1)
    try: want = json.loads(v)
    except ValueError: want = v
    if d.get(k, "<missing>") != want:
        bad.append("%s: got %s, want %s" % (k, json.dumps(d.get(k, "<missing>")), json.dumps(want)))
sys.exit("\n".join(bad) or None)
EOF
}
# Base64 helpers accept standard or URL-safe, padded or not.
B64D='import base64, sys
def b64d(s): return base64.urlsafe_b64decode(s.replace("+", "-").replace("/", "_") + "=" * (-len(s) % 4))'
tamper() {  # flip the last bit of the signature (last byte of a V2 macaroon), same base64 style
  "$PY" -c "$B64D"'
s = sys.argv[1]; b = bytearray(b64d(s)); b[-1] ^= 1
out = base64.b64encode(b).decode()
if "-" in s or "_" in s or not s.endswith("="): out = out.replace("+", "-").replace("/", "_").rstrip("=")
print(out)' "$1"
}
hexdump_b64() { "$PY" -c "$B64D"'
b = b64d(sys.argv[1])
for i in range(0, len(b), 32): print("%04x  %s" % (i, b[i:i+32].hex(" ")))' "$1"; }
diffdump() {  # diffdump LABEL_A B64_A LABEL_B B64_B: first differing byte, then both hex dumps
  "$PY" -c "$B64D"'
la, a, lb, b = sys.argv[1], b64d(sys.argv[2]), sys.argv[3], b64d(sys.argv[4])
d = next((i for i in range(min(len(a), len(b))) if a[i] != b[i]), min(len(a), len(b)))
print("%s: %d bytes, %s: %d bytes, first difference at offset 0x%04x%s" % (la, len(a), lb, len(b), d,
      " (inside the trailing 32-byte signature)" if min(len(a), len(b)) - d <= 32 and len(a) == len(b) else ""))
for label, x in ((la, a), (lb, b)):
    print(label + ":")
    for i in range(0, len(x), 32): print("%04x  %s" % (i, x[i:i+32].hex(" ")))' "$@" 2>&1; }
json_list() { "$PY" -c 'import json, sys; print(json.dumps(sys.argv[1:]))' "$@"; }

# ours_verify LABEL B64 PAYMENT_HASH TOKEN_ID: positive + negative controls; prints problems.
ours_verify() {
  local b64=$1 ph=$2 tid=$3 problems=""
  local base=(verify --root-key "$ROOT_KEY" --service demo --capability read)
  run ours "${base[@]}" --macaroon "$b64" --preimage "$PREIMAGE"
  if [ "$RC" != 0 ]; then problems+="valid macaroon: exit $RC, want 0: $OUT $ERR"$'\n'
  else
    local j; j=$(json_expect "$OUT" valid=true reason=null payment_hash="$ph" token_id="$tid" \
      caveats="$(json_list "${CAV2[@]}")" 2>&1) || problems+="valid macaroon: $j"$'\n'
  fi
  local name args
  for name in wrong-preimage wrong-root-key tampered-signature; do
    case $name in
      wrong-preimage) args=(--macaroon "$b64" --preimage "$ZERO") ;;
      wrong-root-key) args=(--macaroon "$b64" --preimage "$PREIMAGE") ;;
      tampered-signature) args=(--macaroon "$(tamper "$b64")" --preimage "$PREIMAGE") ;;
    esac
    if [ $name = wrong-root-key ]; then
      run ours verify --root-key "$WRONG_KEY" --service demo --capability read "${args[@]}"
    else
      run ours "${base[@]}" "${args[@]}"
    fi
    if [ "$RC" != 1 ]; then problems+="$name: exit $RC, want 1: $OUT $ERR"$'\n'
    elif ! j=$(json_expect "$OUT" valid=false 2>&1); then problems+="$name: $j"$'\n'
    fi
  done
  printf '%s' "$problems"
}

# ----------------------------------------------------------------- checks ---
echo "== sanity"
for p in "${PEERS[@]}"; do
  run peer "$p" vector
  if [ "$RC" = 0 ]; then record "$p" vector PASS; else record "$p" vector FAIL "$OUT$ERR"; fi
done

if [ "$PEERS_ONLY" = 0 ] && [ -n "$ORACLE" ]; then
  # Our inspect of a real Aperture macaroon (parsing vector from lsat-js's tests).
  # Expected identifier and signature as pymacaroons reads them.
  read -r aid asig < <("$PY" -c 'import sys; from pymacaroons import Macaroon
m = Macaroon.deserialize(sys.argv[1]); print(m.identifier_bytes.hex(), m.signature)' "$APERTURE_VECTOR")
  run ours inspect --macaroon "$APERTURE_VECTOR"
  if [ "$RC" = 0 ] && j=$(json_expect "$OUT" location=lsat version=0 identifier_hex="$aid" \
       payment_hash="${aid:4:64}" token_id="${aid:68:64}" \
       caveats='["services=meme:0","meme_capabilities="]' signature="$asig" 2>&1); then
    record ours aperture-inspect PASS
  else
    record ours aperture-inspect FAIL "exit $RC: $OUT $ERR ${j:-}"
  fi
fi

if [ "$PEERS_ONLY" = 0 ]; then
  if [ -z "$ORACLE" ]; then
    for p in "${PEERS[@]}"; do
      for col in 'ours->X' 'X->ours' bytes; do record "$p" "$col" FAIL "$ORACLE_ERR"; done
    done
    record js 'X->ours(hex-id)' FAIL "$ORACLE_ERR"
    record ours aperture-inspect FAIL "$ORACLE_ERR"
  else
    echo "== a. ours -> X"
    mapfile -d '' cf < <(caveat_flags "${CAV3[@]}")
    run ours mint --root-key "$ROOT_KEY" --payment-hash "$PAYMENT_HASH" --token-id "$TOKEN_ID" "${cf[@]}"
    OURS_B64=$OUT
    if [ "${INTEROP_BREAK:-}" = macaroon-sig ] && [ "$RC" = 0 ]; then
      # Sabotage: flip one bit of our signature (the last byte of the V2 bytes); every peer
      # must now refuse our macaroon, and the bytes no longer match theirs.
      OURS_B64=$(python3 -c 'import base64,sys; b=bytearray(base64.b64decode(sys.argv[1])); b[-1]^=1; print(base64.b64encode(bytes(b)).decode())' "$OURS_B64")
      log "INTEROP_BREAK=macaroon-sig: our macaroon's signature is corrupted"
    fi
    if [ "$RC" != 0 ] || [ -z "$OURS_B64" ]; then
      for p in "${PEERS[@]}"; do record "$p" 'ours->X' FAIL "ours mint: exit $RC: $OUT $ERR"; done
    else
      for p in "${PEERS[@]}"; do
        run peer "$p" verify --root-key "$ROOT_KEY" --macaroon "$OURS_B64" --id-hex "$ID66" "${cf[@]}"
        if [ "$RC" = 0 ]; then record "$p" 'ours->X' PASS
        else record "$p" 'ours->X' FAIL "$ERR"$'\n'"ours: $OURS_B64"$'\n'"$(hexdump_b64 "$OURS_B64")"
        fi
      done
    fi

    echo "== b. X -> ours"
    mapfile -d '' cf2 < <(caveat_flags "${CAV2[@]}")
    for p in "${PEERS[@]}"; do
      run peer "$p" mint --root-key "$ROOT_KEY" --id-hex "$ID66" "${cf2[@]}"
      if [ "$RC" != 0 ]; then record "$p" 'X->ours' FAIL "$p mint: $ERR"; continue; fi
      problems=$(ours_verify "$OUT" "$PAYMENT_HASH" "$TOKEN_ID")
      if [ -z "$problems" ]; then record "$p" 'X->ours' PASS
      else record "$p" 'X->ours' FAIL "$problems$p: $OUT"; fi
    done
    # lsat-js / boltwall: identifier = the ASCII hex of the 66 bytes, URL-safe unpadded base64.
    run peer js mint --root-key "$ROOT_KEY" --id-text "$ID66" "${cf2[@]}"
    if [ "$RC" != 0 ]; then record js 'X->ours(hex-id)' FAIL "js mint: $ERR"
    else
      url=$(printf '%s' "$OUT" | tr '+/' '-_' | tr -d '=')
      problems=$(ours_verify "$url" "$PAYMENT_HASH" "$TOKEN_ID")
      if [ -z "$problems" ]; then record js 'X->ours(hex-id)' PASS
      else record js 'X->ours(hex-id)' FAIL "${problems}js: $url"; fi
    fi

    echo "== c. byte identity"
    for p in "${PEERS[@]}"; do
      run peer "$p" mint --root-key "$ROOT_KEY" --id-hex "$ID66" "${cf[@]}"
      if [ "$RC" = 0 ] && [ -n "$OURS_B64" ] && [ "$OUT" = "$OURS_B64" ]; then
        record "$p" bytes PASS
      else
        record "$p" bytes FAIL "$ERR$(diffdump "$p" "$OUT" ours "$OURS_B64")"
      fi
    done
  fi
fi

echo "== peers (each library verifies the other two)"
declare -A MINTED
mapfile -d '' cf < <(caveat_flags "${CAV3[@]}")
for p in "${PEERS[@]}"; do
  run peer "$p" mint --root-key "$ROOT_KEY" --id-hex "$ID66" "${cf[@]}"
  MINTED[$p]=$OUT
done
for v in "${PEERS[@]}"; do
  st=PASS details=""
  for m in "${PEERS[@]}"; do
    [ "$m" = "$v" ] && continue
    run peer "$v" verify --root-key "$ROOT_KEY" --macaroon "${MINTED[$m]}" --id-hex "$ID66" "${cf[@]}"
    if [ "$RC" != 0 ]; then st=FAIL details+="$m->$v: $ERR"$'\n'; fi
  done
  record "$v" peers "$st" "$details"
done

# ----------------------------------------------------------------- matrix ---
cols=(vector 'ours->X' 'X->ours' 'X->ours(hex-id)' bytes peers)
echo
echo "== matrix"
printf '%-8s' ""; for c in "${cols[@]}"; do printf ' %-16s' "$c"; done; echo
for p in "${PEERS[@]}"; do
  printf '%-8s' "$p"; for c in "${cols[@]}"; do printf ' %-16s' "${RES[$p|$c]:-n/a}"; done; echo
done
[ -n "${RES[ours|aperture-inspect]:-}" ] && echo "ours     aperture-inspect ${RES[ours|aperture-inspect]}"
[ "$PEERS_ONLY" = 1 ] && echo "(--peers-only: our side not checked)"
if [ "$FAILED" = 0 ]; then echo "RESULT: PASS"; else echo "RESULT: FAIL"; fi
exit "$FAILED"
