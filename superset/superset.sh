#!/usr/bin/env bash
# A real Apache Superset for make superset and the tests, on this machine:
#
#   superset/superset.sh install       the pinned Superset (requirements.txt) in a venv cached outside the clone
#                                      ($ELT_SUPERSET_VENV, default ~/.cache/elt/superset-<sha of requirements>),
#                                      and Debian's chromium + chromium-driver when missing (screenshots)
#   superset/superset.sh start DIR     a Superset whose state lives in DIR: its metadata database in the
#                                      PostgreSQL cluster of $DATABASE_URL (a superuser's), its admin, and
#                                      gunicorn on a free port of 127.0.0.1; prints its URL
#   superset/superset.sh stop DIR      stops it (the metadata database stays)
#
# The metadata database and its owner are named $ELT_SUPERSET_METADATA_DB (default superset).
# DIR then holds: url, admin.password (0600), secret_key and metadata_uri (0600, read by superset_config.py),
# superset.pid and superset.log. The admin's user name is admin. Nothing secret is passed on a command line.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

venv() {
  if [ -n "${ELT_SUPERSET_VENV:-}" ]; then
    echo "$ELT_SUPERSET_VENV"
    return
  fi
  local sha
  sha=$(sha256sum "$here/requirements.txt" | cut -c1-12)
  echo "${XDG_CACHE_HOME:-$HOME/.cache}/elt/superset-$sha"
}

install() {
  local v
  v=$(venv)
  if [ -x "$v/bin/superset" ] && [ -f "$v/.elt-installed" ]; then
    echo "superset: venv $v (cached)"
  else
    echo "superset: installing $(grep -m1 '^apache-superset' "$here/requirements.txt") into $v (PyPI, a few minutes once)"
    # Only a half-made venv of ours is replaced, never some other folder.
    if [ -e "$v" ] && [ ! -f "$v/pyvenv.cfg" ]; then
      echo "superset: $v exists and is not a venv; set ELT_SUPERSET_VENV to a new folder" >&2
      exit 1
    fi
    rm -rf "$v"
    mkdir -p "$(dirname "$v")"
    python3 -m venv "$v"
    "$v/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
    touch "$v/.elt-installed"
  fi
  if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
    echo "superset: installing Debian's chromium and chromium-driver (dashboard screenshots)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null 2>&1 ||
      { apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null; }
  fi
}

# secret FILE: a new random secret in FILE (0600) unless it exists.
secret() {
  [ -s "$1" ] && return
  (umask 077 && python3 -c 'import secrets; print(secrets.token_urlsafe(32))' >"$1")
}

running() {
  [ -f "$1/superset.pid" ] && kill -0 "$(cat "$1/superset.pid")" 2>/dev/null
}

start() {
  local dir=${1:?usage: superset.sh start DIR}
  : "${DATABASE_URL:?superset.sh start: DATABASE_URL must name a superuser of the cluster that keeps the Superset metadata database}"
  local v
  v=$(venv)
  [ -x "$v/bin/superset" ] || { echo "superset: no venv at $v; run superset/superset.sh install (make superset does)" >&2; exit 1; }
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  if running "$dir" && curl -fsS "$(cat "$dir/url")/health" >/dev/null 2>&1; then
    echo "superset: already running at $(cat "$dir/url") (pid $(cat "$dir/superset.pid"))"
    return
  fi
  running "$dir" && stop "$dir" # running but not answering: start it again
  secret "$dir/secret_key"
  secret "$dir/metadata.password"
  secret "$dir/admin.password"

  # The metadata database and its owner role, closed to PUBLIC (tenant logins cannot connect). Superset's
  # Python does it, reading DATABASE_URL and the password from its environment: neither is on a command line.
  local meta=${ELT_SUPERSET_METADATA_DB:-superset}
  ELT_SUPERSET_METADATA_DB=$meta ELT_SUPERSET_DIR=$dir "$v/bin/python" - <<'PY' || { echo "superset: could not create the metadata database $meta (DATABASE_URL must be a superuser's)" >&2; exit 1; }
import os, psycopg2
from psycopg2 import sql
meta, d = os.environ["ELT_SUPERSET_METADATA_DB"], os.environ["ELT_SUPERSET_DIR"]
pw = open(os.path.join(d, "metadata.password")).read().strip()
conn = psycopg2.connect(os.environ["DATABASE_URL"])
conn.autocommit = True
cur = conn.cursor()
cur.execute("select exists (select from pg_roles where rolname = %s)", (meta,))
verb = "alter" if cur.fetchone()[0] else "create"
cur.execute(sql.SQL(verb + " role {} login password {}").format(sql.Identifier(meta), sql.Literal(pw)))
cur.execute("select exists (select from pg_database where datname = %s)", (meta,))
if not cur.fetchone()[0]:
    cur.execute(sql.SQL("create database {} owner {}").format(sql.Identifier(meta), sql.Identifier(meta)))
cur.execute(sql.SQL("revoke connect, temporary on database {} from public").format(sql.Identifier(meta)))
cur.execute(sql.SQL("grant connect, temporary on database {} to {}").format(sql.Identifier(meta), sql.Identifier(meta)))
# Superset reaches the cluster over TCP: the server's address for a TCP connection, 127.0.0.1 for a socket.
host = conn.info.host
if not host or host.startswith("/"):
    host = "127.0.0.1"
fd = os.open(os.path.join(d, "metadata_uri"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
with os.fdopen(fd, "w") as f:
    f.write(f"postgresql+psycopg2://{meta}:{pw}@{host}:{conn.info.port}/{meta}\n")
PY

  export SUPERSET_CONFIG_PATH=$here/superset_config.py
  export ELT_SUPERSET_SECRET_KEY_FILE=$dir/secret_key
  export ELT_SUPERSET_METADATA_URI_FILE=$dir/metadata_uri
  export FLASK_APP=superset SUPERSET_HOME=$dir
  echo "superset: superset db upgrade (log $dir/setup.log)"
  "$v/bin/superset" db upgrade >"$dir/setup.log" 2>&1 || { tail -20 "$dir/setup.log" >&2; exit 1; }
  # fab create-admin asks for the password (twice) when --password is left out: it is read from stdin,
  # never written on a command line. An existing admin is left as it is.
  local apw
  apw=$(cat "$dir/admin.password")
  printf '%s\n%s\n' "$apw" "$apw" | "$v/bin/superset" fab create-admin --username admin --firstname Superset \
    --lastname Admin --email admin@localhost >>"$dir/setup.log" 2>&1 || { tail -20 "$dir/setup.log" >&2; exit 1; }
  echo "superset: superset init"
  "$v/bin/superset" init >>"$dir/setup.log" 2>&1 || { tail -20 "$dir/setup.log" >&2; exit 1; }

  local free
  free=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  echo "http://127.0.0.1:$free" >"$dir/url"
  setsid "$v/bin/gunicorn" --workers 2 --worker-class gthread --threads 8 --timeout 120 --keep-alive 10 \
    --bind "127.0.0.1:$free" --pid "$dir/superset.pid" "superset.app:create_app()" \
    >"$dir/superset.log" 2>&1 </dev/null &
  for _ in $(seq 240); do
    curl -fsS "http://127.0.0.1:$free/health" >/dev/null 2>&1 && break
    sleep 0.5
  done
  curl -fsS "http://127.0.0.1:$free/health" >/dev/null 2>&1 ||
    { echo "superset: did not answer on 127.0.0.1:$free within 2 minutes; see $dir/superset.log" >&2; tail -20 "$dir/superset.log" >&2; exit 1; }
  echo "superset: running at $(cat "$dir/url") (pid $(cat "$dir/superset.pid"), log $dir/superset.log)"
}

stop() {
  local dir=${1:?usage: superset.sh stop DIR}
  if running "$dir"; then
    local pid
    pid=$(cat "$dir/superset.pid")
    kill "$pid"
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    echo "superset: stopped"
  fi
  rm -f "$dir/superset.pid"
}

case "${1:-}" in
  install) install ;;
  start) start "${2:-}" ;;
  stop) stop "${2:-}" ;;
  venv) venv ;;
  *) echo "usage: $0 install | start DIR | stop DIR | venv" >&2; exit 2 ;;
esac
