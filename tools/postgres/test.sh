#!/usr/bin/env bash
# Run the PostgreSQL tests against a throwaway PostgreSQL: build them, start the server
# (tools/postgres/start.sh), run them one at a time, and always stop it. Exits with the tests'
# status. Extra arguments go to every test binary, e.g. `tools/postgres/test.sh free_tier`.
#
#   tests/storage_conformance.rs   the storage port's conformance suite on PostgreSQL
#   tests/gateway_postgres.rs      two gateway instances on one database
#   tests/fleet.rs                 l402-mcp serve processes sharing one wallet, budget and approvals
set -euo pipefail
cd "$(dirname "$0")/../.."

# Build first, so that the server does not sit through a compile.
TESTS=(storage_conformance gateway_postgres fleet)
for t in "${TESTS[@]}"; do cargo test --locked --test "$t" --no-run; done

INFO=$(mktemp "${TMPDIR:-/tmp}/l402-pg-info.XXXXXX")
cleanup() {
  local dir
  dir=$(sed -n 's/^PGDIR=//p' "$INFO" 2>/dev/null || true)
  [ -z "$dir" ] || tools/postgres/stop.sh "$dir" || true
  rm -f "$INFO"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

tools/postgres/start.sh "$INFO" >/dev/null
L402_TEST_DATABASE_URL=$(sed -n 's/^DATABASE_URL=//p' "$INFO")
export L402_TEST_DATABASE_URL

status=0
for t in "${TESTS[@]}"; do
  cargo test --locked --test "$t" -- --ignored --test-threads=1 "$@" || status=$?
done
exit "$status"
