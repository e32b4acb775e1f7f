#!/usr/bin/env bash
# make demo / make demo-down: the whole elt pipeline on this machine, with its own PostgreSQL (in .elt/pg), the
# bundled demo export API, and the default project (elt.yaml, migrations/, views/ and sql/ at the root of the
# repository). Safe to run again: everything is reused, extract is incremental.
set -euo pipefail
cd "$(dirname "$0")/.."

STATE=.elt
ELT=bin/elt
API=bin/elt-demo-api
CUSTOMERS=(cus_0001 cus_0002 cus_0003)
export ELT_PROJECT=.
export ELT_DEMO_API_TOKEN=${ELT_DEMO_API_TOKEN:-demo-token}

say() { if [ -t 1 ]; then printf '\n\033[1m== %s\033[0m\n' "$*"; else printf '\n== %s\n' "$*"; fi; }

api_running() {
  [ -f "$STATE/demo-api.pid" ] && kill -0 "$(cat "$STATE/demo-api.pid")" 2>/dev/null &&
    [ -f "$STATE/demo-api.addr" ] && curl -fsS "http://$(cat "$STATE/demo-api.addr")/healthz" >/dev/null 2>&1
}

start_api() {
  if api_running; then
    echo "demo API already running on $(cat "$STATE/demo-api.addr")"
    return
  fi
  rm -f "$STATE/demo-api.addr"
  # The event window ends today (UTC), so "the last 7 days" has data.
  setsid "$API" --addr 127.0.0.1:0 --addr-file "$STATE/demo-api.addr" \
    --customers 5 --users-per-customer 40 --events 30000 --days 90 --seed 1 \
    >"$STATE/demo-api.log" 2>&1 </dev/null &
  echo $! >"$STATE/demo-api.pid"
  for _ in $(seq 100); do
    [ -s "$STATE/demo-api.addr" ] && break
    sleep 0.1
  done
  [ -s "$STATE/demo-api.addr" ] || { echo "demo API did not start; see $STATE/demo-api.log" >&2; exit 1; }
  echo "demo API listening on $(cat "$STATE/demo-api.addr")"
}

up() {
  mkdir -p "$STATE"
  say "PostgreSQL (local cluster in $STATE/pg)"
  DATABASE_URL=$("$ELT" db start)
  export DATABASE_URL
  echo "$DATABASE_URL"

  say "demo export API"
  start_api
  export ELT_DEMO_API_URL="http://$(cat "$STATE/demo-api.addr")"

  say "elt migrate (as the superuser: creates the roles elt_owner, elt_runner, elt_tenant)"
  "$ELT" migrate
  # From here on elt runs as elt_runner: a member of elt_owner, neither superuser nor BYPASSRLS.
  export DATABASE_URL=${DATABASE_URL/postgres@/elt_runner@}

  say "elt extract"
  "$ELT" extract

  say "elt refresh"
  "$ELT" refresh

  say "elt status"
  "$ELT" status

  say "elt doctor (what a nightly run needs, one line each)"
  "$ELT" doctor

  say "tenants: one login and one schema per customer"
  for c in "${CUSTOMERS[@]}"; do
    "$ELT" tenant add "$c" --if-not-exists --password-to "$STATE/$c.password"
  done
  "$ELT" tenant list

  say "tenant guard (enforces the tenants' time limits, which they cannot lift)"
  start_guard

  say "what each tenant's own login sees (and the owner's numbers for the same customer)"
  for c in "${CUSTOMERS[@]}"; do
    "$ELT" tenant report "$c" --password-from "$STATE/$c.password"
    echo
  done

  say "isolation audit"
  "$ELT" tenant check

  say "next steps (in a new shell, from $(pwd))"
  local c=${CUSTOMERS[0]}
  echo "  export DATABASE_URL='$DATABASE_URL'"
  echo "  export ELT_PROJECT=. ELT_DEMO_API_URL='$ELT_DEMO_API_URL' ELT_DEMO_API_TOKEN=$ELT_DEMO_API_TOKEN"
  echo "  bin/elt status                # what is fresh, what failed"
  echo "  bin/elt doctor                # config, API, database, migrations, tenant layer: one line each"
  echo "  psql \"\$(bin/elt tenant uri $c --format libpq --password-from $STATE/$c.password)\""
  echo "                                # psql as $c's own login (\\d lists what it can read)"
  echo "  bin/elt tenant uri $c --password-from $STATE/$c.password"
  echo "                                # the SQLAlchemy URI to paste into Superset"
  echo "  make superset                 # Apache Superset with a Database, user and starter dashboard per tenant"
  echo "  make demo-down                # stop PostgreSQL, the API and the guard (the data stays in $STATE)"
}

guard_running() {
  [ -f "$STATE/guard.pid" ] && kill -0 "$(cat "$STATE/guard.pid")" 2>/dev/null
}

start_guard() {
  if guard_running; then
    echo "tenant guard already running (pid $(cat "$STATE/guard.pid"))"
    return
  fi
  setsid "$ELT" --log-format json tenant guard >"$STATE/guard.log" 2>&1 </dev/null &
  echo $! >"$STATE/guard.pid"
  echo "tenant guard running (pid $!, log $STATE/guard.log)"
}

down() {
  if [ -f "$STATE/demo-api.pid" ] && kill -0 "$(cat "$STATE/demo-api.pid")" 2>/dev/null; then
    kill "$(cat "$STATE/demo-api.pid")"
    echo "demo API stopped"
  fi
  rm -f "$STATE/demo-api.pid" "$STATE/demo-api.addr"
  if guard_running; then
    kill "$(cat "$STATE/guard.pid")"
    echo "tenant guard stopped"
  fi
  rm -f "$STATE/guard.pid"
  "$ELT" db stop && echo "PostgreSQL stopped (data kept in $STATE/pg; rm -rf $STATE to start over)"
}

# make superset (after make demo): a pinned Apache Superset on this machine, its metadata database in the
# demo's cluster, provisioned for the demo's tenants by elt superset sync.
superset_up() {
  say "Apache Superset (pinned in superset/requirements.txt; venv cached outside the clone)"
  bash superset/superset.sh install
  DATABASE_URL=$("$ELT" db url) bash superset/superset.sh start "$STATE/superset"

  say "elt superset sync (a Database, role, user, datasets and starter dashboard per tenant)"
  export DATABASE_URL ELT_SUPERSET_URL ELT_SUPERSET_PASSWORD_FILE=$STATE/superset/admin.password ELT_SUPERSET_SECRETS=$STATE
  DATABASE_URL=$("$ELT" db url)
  DATABASE_URL=${DATABASE_URL/postgres@/elt_runner@}
  ELT_SUPERSET_URL=$(cat "$STATE/superset/url")
  "$ELT" superset sync

  say "Superset is running at $ELT_SUPERSET_URL"
  echo "  admin:     user admin, password in $STATE/superset/admin.password"
  for c in "${CUSTOMERS[@]}"; do
    echo "  $c:  user $c, password in $STATE/$c.superset-password; dashboard $ELT_SUPERSET_URL/superset/dashboard/$(printf 'elt-%s' "$c")/"
  done
  echo "  make superset-down stops it (its metadata database stays in the demo's cluster)"
}

superset_down() {
  bash superset/superset.sh stop "$STATE/superset"
}

case "${1:-up}" in
  up) up ;;
  down) superset_down; down ;;
  superset) superset_up ;;
  superset-down) superset_down ;;
  *) echo "usage: $0 up|down|superset|superset-down" >&2; exit 2 ;;
esac
