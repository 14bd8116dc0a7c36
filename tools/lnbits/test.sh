#!/usr/bin/env bash
# Run the LNbits tests (tests/lnbits.rs, and the ignored tests of tests/contract/: the wallet
# contract over a real LNbits, and NWC with a wallet service over LNbits) against a throwaway
# LNbits: build them, start LNbits (tools/lnbits/start.sh), run them one at a time, and always
# stop LNbits. Exits with the tests' status. Extra arguments go to tests/lnbits.rs, e.g.
# `tools/lnbits/test.sh doctor`.
set -euo pipefail
cd "$(dirname "$0")/../.."

# Build first, so that LNbits does not sit through a compile.
cargo test --locked --test lnbits --test contract --no-run

INFO=$(mktemp "${TMPDIR:-/tmp}/l402-lnbits-info.XXXXXX")
cleanup() {
  tools/lnbits/stop.sh "$INFO" || true
  rm -f "$INFO"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

tools/lnbits/start.sh "$INFO"

{
  read -r LNBITS_TEST_URL
  read -r LNBITS_TEST_A_ADMIN
  read -r LNBITS_TEST_A_INVOICE
  read -r LNBITS_TEST_B_ADMIN
  read -r LNBITS_TEST_B_INVOICE
} < <(python3 -c '
import json, sys
i = json.load(open(sys.argv[1]))
print(i["url"], i["a"]["admin_key"], i["a"]["invoice_key"], i["b"]["admin_key"], i["b"]["invoice_key"], sep="\n")
' "$INFO")
export LNBITS_TEST_URL LNBITS_TEST_A_ADMIN LNBITS_TEST_A_INVOICE LNBITS_TEST_B_ADMIN LNBITS_TEST_B_INVOICE

status=0
cargo test --locked --test lnbits -- --ignored --test-threads=1 "$@" || status=$?
if [ "$#" -eq 0 ]; then
  # Every ignored test of the contract binary is one that needs LNbits.
  cargo test --locked --test contract -- --ignored --test-threads=1 || status=$?
fi
exit "$status"
