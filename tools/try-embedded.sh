#!/usr/bin/env bash
# The whole L402 loop on the embedded wallets, offline, in a throwaway data dir:
# a seller mints a challenge, a buyer pays it under a budget, the seller verifies the credential,
# then the buyer's budget refuses a payment above its cap.
# Usage: tools/try-embedded.sh   (builds the binary if needed)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet --release
BIN=target/release/l402-mcp
export L402_MCP_DATA_DIR=$(mktemp -d)/l402-mcp
trap 'rm -rf "$(dirname "$L402_MCP_DATA_DIR")"' EXIT
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "Two embedded wallets, 'buyer' and 'seller', each starting with demo test sats"
$BIN --wallet buyer balance | head -2
$BIN --wallet seller balance | head -2

say "Seller: an L402 challenge for 21 sats (service 'weather', capability 'forecast', valid 1 h)"
CH=$($BIN --wallet seller challenge 21 --service weather --capability forecast --valid-for 3600)
grep '^WWW-Authenticate' <<<"$CH" | cut -c1-120
INVOICE=$(awk '$1 == "invoice" {print $2}' <<<"$CH"); MACAROON=$(awk '$1 == "macaroon" {print $2}' <<<"$CH")

say "Buyer: decode, then pay within the budget"
$BIN decode "$INVOICE" | head -3
PAID=$($BIN --wallet buyer pay "$INVOICE" --max-sats 50)
echo "$PAID"
PREIMAGE=$(awk '$1 == "preimage" {print $2}' <<<"$PAID")

say "Seller: verify the credential the buyer now holds"
$BIN --wallet seller verify "L402 $MACAROON:$PREIMAGE" --service weather --capability forecast
$BIN --wallet seller verify "L402 $MACAROON:$PREIMAGE" --service news || true

say "Buyer: a 5000-sat invoice is above the default 1000-sat per-payment cap"
BIG=$($BIN --wallet seller invoice 5000)
$BIN --wallet buyer pay "$BIG" || true

say "Both sides afterwards"
$BIN --wallet buyer balance
$BIN --wallet buyer history
$BIN --wallet seller balance | head -3
