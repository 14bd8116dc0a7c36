#!/usr/bin/env bash
# Stop a PostgreSQL started by tools/postgres/start.sh and delete its folder.
# Usage: tools/postgres/stop.sh PGDIR   (the folder start.sh made; PGDIR= in its OUT file)
# Only the server whose pid is recorded in PGDIR/data/postmaster.pid is signalled, and only while
# that pid is still a postgres process serving PGDIR.
set -euo pipefail
PGDIR=${1:?usage: stop.sh PGDIR}
log() { echo "postgres: $*" >&2; }

case "$(basename "$PGDIR")" in
  l402-pg.*) ;;
  *) log "$PGDIR is not a folder made by tools/postgres/start.sh; not touching it"; exit 1 ;;
esac
[ -d "$PGDIR" ] || { log "$PGDIR is gone: nothing to stop"; exit 0; }

PIDFILE=$PGDIR/data/postmaster.pid
PID=
[ -f "$PIDFILE" ] && PID=$(head -1 "$PIDFILE")
ours() {
  [ -n "$PID" ] && tr '\0' ' ' <"/proc/$PID/cmdline" 2>/dev/null | grep -q "postgres.*$PGDIR/data"
}

if ours; then
  # Fast shutdown: open sessions are cut, which is what a throwaway cluster wants.
  kill -INT "$PID" 2>/dev/null || true
  for _ in $(seq 1 100); do
    ours || break
    sleep 0.1
  done
  if ours; then
    log "pid $PID did not stop on SIGINT; killing it"
    kill -QUIT "$PID" 2>/dev/null || true
    sleep 1
    kill -KILL "$PID" 2>/dev/null || true
  fi
fi
rm -rf "$PGDIR"
log "stopped${PID:+ (pid $PID)}, $PGDIR deleted"
