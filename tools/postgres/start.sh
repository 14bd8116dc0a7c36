#!/usr/bin/env bash
# Start a throwaway PostgreSQL (Debian's `postgresql` package, installed when missing) on a free
# loopback port, with a database `l402` owned by a user `l402` with a random password, and say
# how to reach it:
#
#   DATABASE_URL=postgres://l402:PASSWORD@127.0.0.1:PORT/l402    (on stdout)
#
# Usage: tools/postgres/start.sh [OUT]
#   OUT, when given, gets (mode 0600) the lines DATABASE_URL=..., PGDIR=..., PGPID=..., PGPORT=...
#   Stop it with tools/postgres/stop.sh PGDIR (the cluster's folder, also printed on stderr).
#
# The cluster lives in a fresh folder (on /dev/shm when there is room) and runs without fsync:
# it is for tests, nothing in it survives. As root, it runs as the `postgres` user (the server
# refuses root). Env: L402_PG_USER to run it as another user when root; L402_PG_DURABLE=1 for a
# server as durable as a production one (for benchmarks): on disk under ${TMPDIR:-/tmp}, with
# PostgreSQL's defaults for fsync, synchronous_commit and full_page_writes (all on);
# L402_PG_OPTIONS for more server options (e.g. "-c shared_preload_libraries=pg_stat_statements").
set -euo pipefail
umask 077

OUT=${1:-}
log() { echo "postgres: $*" >&2; }

find_bin() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
  [ -n "$d" ] && [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && echo "$d"
}

BIN=$(find_bin || true)
if [ -z "$BIN" ]; then
  if [ "$(id -u)" != 0 ]; then
    log "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb) and we are not root: install Debian's postgresql package"
    exit 1
  fi
  log "installing Debian's postgresql package (once)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq postgresql >&2
  BIN=$(find_bin) || { log "postgresql installed, but no initdb under /usr/lib/postgresql/*/bin"; exit 1; }
fi

# Who runs the server: postgres refuses to run as root.
if [ "$(id -u)" = 0 ]; then
  RUN_AS=${L402_PG_USER:-postgres}
  id "$RUN_AS" >/dev/null 2>&1 || { log "no user $RUN_AS to run PostgreSQL as (set L402_PG_USER)"; exit 1; }
  # From /: the caller's folder may be closed to that user.
  as_owner() { (cd / && runuser -u "$RUN_AS" -- "$@"); }
else
  RUN_AS=$(id -un)
  as_owner() { "$@"; }
fi

# A fresh folder, on tmpfs when it has room: initdb and the tests write a lot, none of it kept.
BASE=${TMPDIR:-/tmp}
DURABLE=${L402_PG_DURABLE:-0}
if [ "$DURABLE" != 1 ] && [ -d /dev/shm ] && [ -w /dev/shm ] &&
  [ "$(df -Pk /dev/shm | awk 'NR == 2 { print $4 }')" -gt 524288 ]; then
  BASE=/dev/shm
fi
PGDIR=$(mktemp -d "$BASE/l402-pg.XXXXXX")
chmod 0700 "$PGDIR"
[ "$RUN_AS" = "$(id -un)" ] || chown "$RUN_AS" "$PGDIR"

# Until OUT is written nobody else knows this server: take it down on any way out.
abandon() {
  if [ -f "$PGDIR/data/postmaster.pid" ]; then
    as_owner "$BIN/pg_ctl" -D "$PGDIR/data" -m immediate -w -t 20 stop >/dev/null 2>&1 || true
  fi
  rm -rf "$PGDIR"
}
trap abandon EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

PASSWORD=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
# The superuser connects over the cluster's own socket only (trust); TCP needs the password.
as_owner "$BIN/initdb" -D "$PGDIR/data" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
  -E UTF8 --locale=C.UTF-8 --no-sync >"$PGDIR/initdb.log" 2>&1 || {
  log "initdb failed:"; tail -20 "$PGDIR/initdb.log" >&2; exit 1; }

free_port() {
  if command -v python3 >/dev/null 2>&1; then
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
  else
    echo $((20000 + RANDOM % 40000))
  fi
}

# Tests want speed, not durability; a benchmark wants what production has (the defaults).
FAST_FLAGS="-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
[ "$DURABLE" = 1 ] && FAST_FLAGS=

# A port taken between picking and binding is retried.
for attempt in 1 2 3; do
  PORT=$(free_port)
  if as_owner "$BIN/pg_ctl" -D "$PGDIR/data" -l "$PGDIR/server.log" -w -t 60 start \
    -o "-c listen_addresses=127.0.0.1 -p $PORT -k $PGDIR $FAST_FLAGS -c max_connections=200 ${L402_PG_OPTIONS:-}" \
    >/dev/null 2>&1; then
    break
  fi
  if grep -qi 'could not bind\|address already in use' "$PGDIR/server.log" 2>/dev/null && [ "$attempt" -lt 3 ]; then
    log "port $PORT was taken; trying another"
    continue
  fi
  log "PostgreSQL did not start; the end of its log:"
  tail -30 "$PGDIR/server.log" >&2 || true
  exit 1
done
PGPID=$(head -1 "$PGDIR/data/postmaster.pid")

as_owner "$BIN/psql" -h "$PGDIR" -p "$PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 -q \
  -c "CREATE ROLE l402 LOGIN PASSWORD '$PASSWORD'" \
  -c "CREATE DATABASE l402 OWNER l402" >&2

URL="postgres://l402:$PASSWORD@127.0.0.1:$PORT/l402"
if [ -n "$OUT" ]; then
  printf 'DATABASE_URL=%s\nPGDIR=%s\nPGPID=%s\nPGPORT=%s\n' "$URL" "$PGDIR" "$PGPID" "$PORT" >"$OUT"
fi
trap - EXIT INT TERM
echo "DATABASE_URL=$URL"
log "PostgreSQL $("$BIN/postgres" --version | awk '{ print $3 }') up on 127.0.0.1:$PORT (pid $PGPID); stop it with tools/postgres/stop.sh $PGDIR"
