#!/usr/bin/env bash
# Benchmark of one tenant's load on another's dashboards (make bench-tenant, after tenant.sh): a victim tenant's
# dashboard queries, unloaded and then while an attacker tenant runs HEAVY sessions (8) of CPU-bound queries on
# its own data, each bounded by its statement time and watched by elt tenant guard. Prints the victim's median
# latencies and the ratio loaded / unloaded (target <= 2).
#
# EVENTS events (default 2M) of CUSTOMERS customers (10), generated with SQL into core, the rollups and marts
# built by the default project's steps; the victim is VICTIM (cus_0004), the attacker ATTACKER (cus_0010, the
# biggest). One pgbench client, ROUNDS rounds of TX queries per query, simple protocol.
#
# Own throwaway cluster (fsync on, shared_buffers=1GB), removed at exit (KEEP=1 keeps it).
#
# Environment: ELT (default bin/elt), EVENTS, CUSTOMERS, VICTIM, ATTACKER, HEAVY, ROUNDS (3), TX (200), KEEP.
set -euo pipefail
cd "$(dirname "$0")/../.."

ELT=${ELT:-$PWD/bin/elt}
EVENTS=${EVENTS:-2000000}
CUSTOMERS=${CUSTOMERS:-10}
VICTIM=${VICTIM:-cus_0004}
ATTACKER=${ATTACKER:-cus_0010}
HEAVY=${HEAVY:-8}
ROUNDS=${ROUNDS:-3}
TX=${TX:-200}
LATEST=2026-11-24
PGBIN=${PGBIN:-$(pg_config --bindir 2>/dev/null || ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)}
[ -x "$PGBIN/postgres" ] || PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)

work=$(mktemp -d /tmp/elt-bench-load.XXXXXX)
chmod 0755 "$work"
cluster=$work/pg
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    "$ELT" db --dir "$cluster" stop >/dev/null 2>&1 || true
    [ "${KEEP:-0}" = 1 ] || rm -rf "$work"
}
trap cleanup EXIT
log() { printf '%s %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

DB=$("$ELT" db --dir "$cluster" --database elt_bench_load start --set shared_buffers=1GB --set max_wal_size=8GB)
port=$(cat "$cluster/port")
RUNNER=${DB/postgres@/elt_runner@}
PSQL=(psql -X -q -v ON_ERROR_STOP=1 "$DB")
DATABASE_URL=$DB "$ELT" --project . migrate >/dev/null 2>&1

log "generating $EVENTS events of $CUSTOMERS customers in core"
"${PSQL[@]}" -v customers="$CUSTOMERS" -v events="$EVENTS" -v latest="$LATEST" <<'SQL'
\o /dev/null
select setseed(0.5);
\o
create temp table w as
select i, 'cus_' || lpad(i::text, 4, '0') as customer_id, i as weight, 50 + i * 20 as users
from generate_series(1, :customers) as i;
create temp table wcum as select *, sum(weight) over () as total from w;
insert into core.customers (customer_id, name, plan, country, created_at, updated_at, staging_id, batch_id)
select customer_id, 'Customer ' || i, 'team', 'FR', timestamptz '2024-01-01', now(), i, 0 from w;
insert into core.users (customer_id, user_id, email, name, role, created_at, updated_at, staging_id, batch_id)
select w.customer_id, w.customer_id || '_u' || u, 'u' || u || '@x.example', 'User ' || u, 'member', timestamptz '2024-06-01', now(), u, 0
from w cross join lateral generate_series(1, w.users) as u;
insert into core.events (customer_id, event_id, user_id, feature, occurred_at, updated_at, properties, staging_id, batch_id)
select c.customer_id, c.customer_id || '_e' || g.n, c.customer_id || '_u' || (1 + floor(power(random(), 2) * c.users)::int),
       'feature_' || lpad(floor(power(random(), 3) * 30)::int::text, 2, '0'),
       (date :'latest' + 1)::timestamptz - random() * interval '365 days', now(), null, g.n, 0
from wcum as c cross join lateral generate_series(1, (:events::bigint * c.weight / c.total)::bigint) as g(n);
insert into marts.dirty_days (customer_id, day) select distinct customer_id, (occurred_at at time zone 'UTC')::date from core.events;
SQL
# @tenants (bound by elt refresh) as NULL: every customer.
for f in sql/040_rollups.sql sql/marts/010_marts.sql; do sed 's/@tenants/null::text[]/g' "$f" | "${PSQL[@]}" -1; done
for c in "$VICTIM" "$ATTACKER"; do
    DATABASE_URL=$RUNNER "$ELT" --project . tenant add "$c" --password-to "$work/$c.pw" >/dev/null
done
"${PSQL[@]}" -c 'vacuum analyze'
victim_role=$("${PSQL[@]}" -At -c "select role_name from elt.tenants where tenant_key = '$VICTIM'")
attacker_role=$("${PSQL[@]}" -At -c "select role_name from elt.tenants where tenant_key = '$ATTACKER'")
log "victim $VICTIM: $("${PSQL[@]}" -At -c "select count(*) from core.events where customer_id = '$VICTIM'") events; attacker $ATTACKER: $("${PSQL[@]}" -At -c "select count(*) from core.events where customer_id = '$ATTACKER'") events"

DATABASE_URL=$RUNNER "$ELT" --project . tenant guard >"$work/guard.log" 2>&1 &
pids+=($!)

queries=(
"dau_90d|select day, active_users from active_users_daily where day > date '$LATEST' - 90 order by day;"
"top10_features_30d|select feature, sum(events) as events from feature_usage_daily where day > date '$LATEST' - 30 group by feature order by events desc limit 10;"
"events_per_day_30d_raw|select date_trunc('day', occurred_at) as day, count(*) from events where occurred_at >= timestamptz '$LATEST' - interval '29 days' group by 1 order by 1;"
)
median_ms() {
    cat "$@" | awk '$3 > 0 {print $3}' | sort -n | awk '{a[NR]=$1} END {printf "%.3f", (NR % 2 ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2) / 1000}'
}
measure() { # label
    for q in "${queries[@]}"; do
        IFS='|' read -r name sql <<<"$q"
        printf '%s\n' "$sql" >"$work/$name.sql"
        for r in $(seq "$ROUNDS"); do
            (cd "$work" && PGPASSWORD=$(cat "$work/$VICTIM.pw") "$PGBIN/pgbench" -n -M simple -h 127.0.0.1 -p "$port" -U "$victim_role" \
                -c 1 -t "$TX" -f "$name.sql" -l --log-prefix="lat.$1.$name.$r" elt_bench_load >/dev/null 2>>"$work/pgbench.err")
        done
    done
}

log "victim's dashboards, unloaded"
measure idle
log "attacker: $HEAVY heavy sessions"
heavy="select count(*), sum(hashtext(e.feature || f.feature)) from events as e join events as f on f.user_id = e.user_id and f.occurred_at < e.occurred_at + interval '1 hour' and f.occurred_at > e.occurred_at - interval '1 hour';"
for i in $(seq "$HEAVY"); do
    (while true; do PGPASSWORD=$(cat "$work/$ATTACKER.pw") psql -X -q -h 127.0.0.1 -p "$port" -U "$attacker_role" elt_bench_load \
        -c "set statement_timeout = 0" -c "$heavy" >/dev/null 2>>"$work/heavy.err" || true; done) &
    pids+=($!)
done
sleep 3
active=$("${PSQL[@]}" -At -c "select count(*) from pg_stat_activity where usename = '$attacker_role' and state = 'active'")
log "victim's dashboards, loaded ($active attacker statements running)"
measure loaded
echo
echo "## load: $EVENTS events, $CUSTOMERS customers; victim $VICTIM, attacker $ATTACKER with $HEAVY heavy sessions ($active active); $(nproc) cores; $(date -u '+%Y-%m-%d %H:%M UTC')"
printf '%-24s %10s %10s %7s\n' query idle_ms loaded_ms ratio
for q in "${queries[@]}"; do
    IFS='|' read -r name sql <<<"$q"
    i=$(median_ms "$work"/lat.idle."$name".*)
    l=$(median_ms "$work"/lat.loaded."$name".*)
    printf '%-24s %10s %10s %7s\n' "$name" "$i" "$l" "$(awk -v a="$l" -v b="$i" 'BEGIN {printf "%.2f", a / b}')"
done
echo "guard actions: $(grep -c 'tenant guard: cancel\|tenant guard: terminate' "$work/guard.log" || true)"
