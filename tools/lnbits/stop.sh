#!/usr/bin/env bash
# Stop an LNbits started by tools/lnbits/start.sh and delete its data folder.
# Usage: tools/lnbits/stop.sh INFO_JSON   (the file start.sh wrote)
# Only the process recorded there is signalled, and only while it is still that LNbits.
set -euo pipefail
INFO=${1:?usage: stop.sh INFO_JSON}
[ -s "$INFO" ] || { echo "lnbits: $INFO is empty or missing: nothing to stop" >&2; exit 0; }

read -r PID WORK < <(python3 -c 'import json, sys; i = json.load(open(sys.argv[1])); print(i["pid"], i["data_dir"])' "$INFO")

ours() { tr '\0' ' ' <"/proc/$PID/cmdline" 2>/dev/null | grep -q 'uvicorn lnbits'; }

if ours; then
  kill -TERM "$PID" 2>/dev/null || true
  for _ in $(seq 1 100); do
    ours || break
    sleep 0.1
  done
  if ours; then
    echo "lnbits: pid $PID did not stop on SIGTERM; killing it" >&2
    kill -KILL "$PID" 2>/dev/null || true
  fi
fi
# Only ever a folder start.sh made.
case "$WORK" in
  */l402-lnbits.*) rm -rf "$WORK" ;;
esac
echo "lnbits: stopped (pid $PID)" >&2
