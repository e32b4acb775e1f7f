#!/usr/bin/env bash
# Benchmark of tenant isolation (make bench-tenant): typical dashboard queries run as a tenant login, through
# the analytics views (security barrier, filtered by session_user through elt.tenants), versus the same
# queries run as the owner straight on the private marts with an explicit WHERE customer_id = '...'.
#
#   1. data: EVENTS events (default 10M) of CUSTOMERS customers (50, of unequal sizes) and their users over
#      DAYS days (365) ending LATEST, generated with SQL straight into core (how the data got there does not
#      matter here), then the rollups built by elt refresh's own step (sql/040_rollups.sql, every day queued)
#      and the marts refreshed;
#   2. elt tenant add for the measured customer (CUSTOMER, default cus_0025, a mid-sized one) as elt_runner;
#   3. each query, as the tenant and as the owner (elt_runner, a member of elt_owner), both over TCP with a
#      password, one pgbench client, simple protocol (what Superset sends), ROUNDS rounds of TX queries each,
#      alternating tenant and owner; every latency is logged and the median of each side is printed with the
#      ratio tenant/owner (target <= 1.2).
#
# Always starts its own throwaway cluster (fsync on, shared_buffers=1GB) in a temporary folder, removed at
# exit (KEEP=1 keeps it): it sets elt_runner's password, which must not happen on a shared server.
#
# Environment: ELT (default bin/elt), EVENTS, CUSTOMERS, DAYS, LATEST (2026-11-24), CUSTOMER, ROUNDS (3),
# TX (200 per round), KEEP.
set -euo pipefail
cd "$(dirname "$0")/../.."

ELT=${ELT:-bin/elt}
EVENTS=${EVENTS:-10000000}
CUSTOMERS=${CUSTOMERS:-50}
DAYS=${DAYS:-365}
LATEST=${LATEST:-2026-11-24}
CUSTOMER=${CUSTOMER:-cus_0025}
ROUNDS=${ROUNDS:-3}
TX=${TX:-200}
PGBIN=${PGBIN:-$(pg_config --bindir 2>/dev/null || ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)}
[ -x "$PGBIN/postgres" ] || PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)

work=$(mktemp -d /tmp/elt-bench-tenant.XXXXXX)
chmod 0755 "$work"
cluster=$work/pg
cleanup() {
    "$ELT" db --dir "$cluster" stop >/dev/null 2>&1 || true
    [ "${KEEP:-0}" = 1 ] || rm -rf "$work"
}
trap cleanup EXIT
log() { printf '%s %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

# Local cluster (localpg): the superuser over the Unix socket, every other login over TCP with scram.
DATABASE_URL=$("$ELT" db --dir "$cluster" --database elt_bench_tenant start \
    --set shared_buffers=1GB --set max_wal_size=8GB --set checkpoint_timeout=30min)
export DATABASE_URL
port=$(cat "$cluster/port")
PSQL=(psql -X -q -v ON_ERROR_STOP=1 "$DATABASE_URL")
"$ELT" migrate >/dev/null 2>&1

log "generating $EVENTS events of $CUSTOMERS customers over $DAYS days in core"
t0=$(date +%s)
"${PSQL[@]}" -v customers="$CUSTOMERS" -v events="$EVENTS" -v days="$DAYS" -v latest="$LATEST" <<'SQL'
\o /dev/null
select setseed(0.5);
\o
-- Customer i has a weight 1 + (i * 7) % 10: sizes differ by up to 10x. Users: 40 + (i * 13) % 160.
create temp table w as
select i, 'cus_' || lpad(i::text, 4, '0') as customer_id, 1 + (i * 7) % 10 as weight, 40 + (i * 13) % 160 as users
from generate_series(1, :customers) as i;
create temp table wcum as
select *, sum(weight) over (order by i) - weight as lo, sum(weight) over (order by i) as hi, sum(weight) over () as total from w;

insert into core.customers (customer_id, name, plan, country, created_at, updated_at, staging_id, batch_id)
select customer_id, 'Customer ' || i, (array['free', 'team', 'enterprise'])[1 + i % 3], (array['FR', 'DE', 'US', 'GB', 'JP'])[1 + i % 5],
       timestamptz '2024-01-01' + i * interval '1 day', now(), i, 0
from w;
insert into core.users (customer_id, user_id, email, name, role, created_at, updated_at, staging_id, batch_id)
select w.customer_id, w.customer_id || '_u' || u, 'u' || u || '@' || w.customer_id || '.example', 'User ' || u, 'member',
       timestamptz '2024-06-01', now(), u, 0
from w cross join lateral generate_series(1, w.users) as u;

-- Events in customer order (as a bulk load would arrive), time uniform over the window, users and features skewed.
insert into core.events (customer_id, event_id, user_id, feature, occurred_at, updated_at, properties, staging_id, batch_id)
select c.customer_id, c.customer_id || '_e' || g.n,
       c.customer_id || '_u' || (1 + floor(power(random(), 2) * c.users)::int),
       'feature_' || lpad(floor(power(random(), 3) * 30)::int::text, 2, '0'),
       (date :'latest' + 1)::timestamptz - random() * (:days || ' days')::interval,
       now(), null, g.n, 0
from wcum as c
cross join lateral generate_series(1, (:events::bigint * c.weight / c.total)::bigint) as g(n);

-- Every (customer, day) with events is a changed bucket for the rollup step of elt refresh.
insert into elt.refresh_dirty_days (customer_id, day)
select distinct customer_id, (occurred_at at time zone 'UTC')::date from core.events;
SQL
log "rollups (sql/040_rollups.sql, elt refresh's own step, over every day)"
"${PSQL[@]}" -1 -f sql/040_rollups.sql -c 'delete from elt.refresh_dirty_days'
for mv in $("${PSQL[@]}" -At -c "select format('%I.%I', schemaname, matviewname) from pg_matviews where schemaname = 'marts' order by 1"); do
    "${PSQL[@]}" -c "refresh materialized view $mv"
done
"${PSQL[@]}" -c 'vacuum analyze'
log "data ready in $(( $(date +%s) - t0 )) s: $("${PSQL[@]}" -At -c "select count(*) || ' events, ' || (select count(*) from core.events where customer_id = '$CUSTOMER') || ' of them $CUSTOMER' from core.events")"

# elt_runner gets a password so that both sides connect the same way (TCP, scram).
owner_pw=$(head -c 18 /dev/urandom | base64 | tr '+/' '-_')
"${PSQL[@]}" -c "alter role elt_runner password '$owner_pw'"
DATABASE_URL=${DATABASE_URL/postgres@/elt_runner@} "$ELT" tenant add "$CUSTOMER" --password-to "$work/tenant.pw" >/dev/null
role=$("${PSQL[@]}" -At -c "select role_name from elt.tenants where customer_id = '$CUSTOMER' and kind = 'tenant'")
user=$("${PSQL[@]}" -At -c "select user_id from marts.rollup_user where customer_id = '$CUSTOMER' order by events desc limit 1")

# name|tenant query|owner query
queries=(
"dau_90d|select day, active_users from analytics.active_users_daily where day > date '$LATEST' - 90 order by day;|select day, active_users from marts.active_users_daily where customer_id = '$CUSTOMER' and day > date '$LATEST' - 90 order by day;"
"top10_features_30d|select feature, sum(events) as events from analytics.feature_usage_daily where day > date '$LATEST' - 30 group by feature order by events desc limit 10;|select feature, sum(events) as events from marts.feature_usage_daily where customer_id = '$CUSTOMER' and day > date '$LATEST' - 30 group by feature order by events desc limit 10;"
"one_user_activity|select day, events from analytics.user_activity_daily where user_id = '$user' order by day;|select day, events from marts.rollup_user_day where customer_id = '$CUSTOMER' and user_id = '$user' order by day;"
"events_per_day_30d_raw|select date_trunc('day', occurred_at) as day, count(*) from analytics.events where occurred_at >= timestamptz '$LATEST' - interval '29 days' group by 1 order by 1;|select date_trunc('day', occurred_at) as day, count(*) from core.events where customer_id = '$CUSTOMER' and occurred_at >= timestamptz '$LATEST' - interval '29 days' group by 1 order by 1;"
)

bench() { # mode side name sql
    local mode=$1 side=$2 name=$3 sql=$4 login pw
    if [ "$side" = tenant ]; then login=$role; pw=$(cat "$work/tenant.pw"); else login=elt_runner; pw=$owner_pw; fi
    printf '%s\n' "$sql" >"$work/$name.$side.sql"
    (cd "$work" && PGPASSWORD=$pw "$PGBIN/pgbench" -n -M "$mode" -h 127.0.0.1 -p "$port" -U "$login" -c 1 -t "$TX" \
        -f "$name.$side.sql" -l --log-prefix="lat.$mode.$name.$side" elt_bench_tenant >/dev/null 2>"$work/pgbench.err") ||
        { cat "$work/pgbench.err" >&2; exit 1; }
}
median_ms() { # files...: median of the latency column (us) in ms; pgbench now and then logs 0, which is no latency
    cat "$@" | awk '$3 > 0 {print $3}' | sort -n | awk '{a[NR]=$1} END {printf "%.3f", (NR % 2 ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2) / 1000}'
}

# simple: one query string per request, parsed and planned each time (what Superset and psql send);
# prepared: parsed and planned once per session (what pgx, JDBC and other drivers do with repeated queries).
for mode in simple prepared; do
    log "querying ($mode protocol) as $role (tenant of $CUSTOMER) and as elt_runner: $ROUNDS rounds x $TX queries each"
    printf '\n%-10s %-24s %10s %10s %7s\n' protocol query tenant_ms owner_ms ratio
    for q in "${queries[@]}"; do
        IFS='|' read -r name tsql osql <<<"$q"
        for _ in $(seq "$ROUNDS"); do
            bench "$mode" tenant "$name" "$tsql"
            bench "$mode" owner "$name" "$osql"
        done
        t=$(median_ms "$work"/lat."$mode"."$name".tenant.*)
        o=$(median_ms "$work"/lat."$mode"."$name".owner.*)
        printf '%-10s %-24s %10s %10s %7s\n' "$mode" "$name" "$t" "$o" "$(awk -v t="$t" -v o="$o" 'BEGIN {printf "%.2f", t / o}')"
    done
done
zeros=$(cat "$work"/lat.* | awk '$3 == 0' | wc -l)
[ "$zeros" = 0 ] || echo "warning: pgbench logged $zeros latencies of 0 us" >&2
echo
echo "plans as the tenant:"
for q in "${queries[@]}"; do
    IFS='|' read -r name tsql osql <<<"$q"
    echo "-- $name"
    PGPASSWORD=$(cat "$work/tenant.pw") psql -X -h 127.0.0.1 -p "$port" -U "$role" elt_bench_tenant -At -c "explain (costs off) $tsql" | grep -E 'Scan|Index Cond' | sed 's/^/   /'
done
