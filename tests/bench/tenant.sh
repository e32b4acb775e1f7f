#!/usr/bin/env bash
# Benchmark of the tenant layer (make bench-tenant), in two parts (PART=ratio, scale or all, the default):
#
# ratio: typical dashboard queries run as a tenant login, on the views of its own schema over its own
#   partitions, versus the same queries run as the owner (elt_runner) on the project's tables with an explicit
#   WHERE customer_id = '...'. EVENTS events (default 10M) of CUSTOMERS customers (50, of unequal sizes) over
#   DAYS days, generated with SQL into core (how the data got there does not matter here), then elt tenant add
#   for the measured customer (CUSTOMER, cus_0025, which moves its rows into its partitions; timed), then the
#   rollups and marts built by the default project's own steps. Both sides log in over TCP with a password,
#   one pgbench client, ROUNDS rounds of TX queries per side, alternating; the median latency of each side and
#   the ratio tenant / owner (target <= 1.0), with the simple protocol (Superset, psql) and prepared.
#
# scale: the cost of the layer against the number of tenants, on the same data at every step: SCALE_EVENTS
#   events (300k) of SCALE_CUSTOMERS customers (5000) loaded into staging and built by elt refresh; then, for
#   N in STEPS (10 100 1000 5000): elt tenant add until N customers have a login (time per add), a project
#   migration that changes a published mart plus the declaration that publishes it (elt migrate, which
#   rebuilds every tenant's views), an incremental elt refresh after 1% new events, elt tenant check, a
#   tenant's dashboard query (planning and execution, pgbench, simple protocol), and the size of the catalogs.
#
# Always starts its own throwaway cluster (fsync on, shared_buffers=1GB, max_locks_per_transaction=1024: a
# refresh step over tables with thousands of partitions locks every partition and index) in a temporary
# folder, removed at exit (KEEP=1 keeps it): it sets elt_runner's password, which must not happen on a shared
# server.
#
# Environment: ELT (default bin/elt), PART, EVENTS, CUSTOMERS, DAYS, LATEST (2026-11-24), CUSTOMER, ROUNDS (3),
# TX (200 per round), SCALE_EVENTS, SCALE_CUSTOMERS, STEPS, KEEP.
set -euo pipefail
cd "$(dirname "$0")/../.."

ELT=${ELT:-$PWD/bin/elt}
PART=${PART:-all}
EVENTS=${EVENTS:-10000000}
CUSTOMERS=${CUSTOMERS:-50}
DAYS=${DAYS:-365}
LATEST=${LATEST:-2026-11-24}
CUSTOMER=${CUSTOMER:-cus_0025}
ROUNDS=${ROUNDS:-3}
TX=${TX:-200}
SCALE_EVENTS=${SCALE_EVENTS:-300000}
SCALE_CUSTOMERS=${SCALE_CUSTOMERS:-5000}
STEPS=${STEPS:-10 100 1000 5000}
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
now_ms() { date +%s%3N; }

# Local cluster (localpg): the superuser over the Unix socket, every other login over TCP with scram.
admin=$("$ELT" db --dir "$cluster" --database postgres start \
    --set shared_buffers=1GB --set max_wal_size=8GB --set checkpoint_timeout=30min --set max_locks_per_transaction=1024)
port=$(cat "$cluster/port")
owner_pw=$(head -c 18 /dev/urandom | base64 | tr '+/' '-_')

# newdb NAME: a database migrated with the default project; sets DB (superuser) and RUNNER (elt_runner).
newdb() {
    psql -X -q "$admin" -c "drop database if exists $1 with (force)" -c "create database $1"
    DB="${admin/\/postgres\?//$1?}"
    RUNNER=${DB/postgres@/elt_runner@}
    DATABASE_URL=$DB "$ELT" --project . migrate >/dev/null 2>&1
    psql -X -q "$DB" -c "alter role elt_runner password '$owner_pw'"
}

median_ms() { # files...: median of the latency column (us) in ms; pgbench now and then logs 0, which is no latency
    cat "$@" | awk '$3 > 0 {print $3}' | sort -n | awk '{a[NR]=$1} END {printf "%.3f", (NR % 2 ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2) / 1000}'
}

# pgb MODE LOGIN PASSWORD DB NAME SQL TX: runs SQL TX times as LOGIN, logging each latency to lat.NAME.*
pgb() {
    printf '%s\n' "$6" >"$work/$5.sql"
    (cd "$work" && PGPASSWORD=$3 "$PGBIN/pgbench" -n -M "$1" -h 127.0.0.1 -p "$port" -U "$2" -c 1 -t "$7" \
        -f "$5.sql" -l --log-prefix="lat.$5" "$4" >/dev/null 2>"$work/pgbench.err") ||
        { cat "$work/pgbench.err" >&2; exit 1; }
}

ratio() {
    newdb elt_bench_ratio
    local PSQL=(psql -X -q -v ON_ERROR_STOP=1 "$DB")
    log "ratio: generating $EVENTS events of $CUSTOMERS customers over $DAYS days in core"
    local t0
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

-- Every (customer, day) with events is a changed bucket for the rollups and marts.
insert into marts.dirty_days (customer_id, day)
select distinct customer_id, (occurred_at at time zone 'UTC')::date from core.events;
SQL
    log "ratio: rollups and marts (sql/040_rollups.sql, sql/marts/010_marts.sql, the default project's own steps)"
    # @tenants (bound by elt refresh) as NULL: every customer.
    for f in sql/040_rollups.sql sql/marts/010_marts.sql; do sed 's/@tenants/null::text[]/g' "$f" | "${PSQL[@]}" -1; done
    "${PSQL[@]}" -c 'vacuum analyze'
    log "ratio: data ready in $(( $(date +%s) - t0 )) s: $("${PSQL[@]}" -At -c "select count(*) || ' events, ' || (select count(*) from core.events where customer_id = '$CUSTOMER') || ' of them $CUSTOMER' from core.events")"

    local a0 a1
    a0=$(now_ms)
    DATABASE_URL=$RUNNER PGPASSWORD=$owner_pw "$ELT" --project . tenant add "$CUSTOMER" --password-to "$work/tenant.pw" >/dev/null
    a1=$(now_ms)
    add_ms=$((a1 - a0))
    "${PSQL[@]}" -c 'vacuum analyze'
    local role user tpw
    role=$("${PSQL[@]}" -At -c "select role_name from elt.tenants where tenant_key = '$CUSTOMER'")
    user=$("${PSQL[@]}" -At -c "select user_id from marts.rollup_user where customer_id = '$CUSTOMER' order by events desc limit 1")
    tpw=$(cat "$work/tenant.pw")

    # name|tenant query|owner query
    local queries=(
"dau_90d|select day, active_users from active_users_daily where day > date '$LATEST' - 90 order by day;|select day, active_users from marts.rollup_customer_day where customer_id = '$CUSTOMER' and day > date '$LATEST' - 90 order by day;"
"top10_features_30d|select feature, sum(events) as events from feature_usage_daily where day > date '$LATEST' - 30 group by feature order by events desc limit 10;|select feature, sum(events) as events from marts.rollup_feature_day where customer_id = '$CUSTOMER' and day > date '$LATEST' - 30 group by feature order by events desc limit 10;"
"one_user_activity|select day, events from user_activity_daily where user_id = '$user' order by day;|select day, events from marts.rollup_user_day where customer_id = '$CUSTOMER' and user_id = '$user' order by day;"
"events_per_day_30d_raw|select date_trunc('day', occurred_at) as day, count(*) from events where occurred_at >= timestamptz '$LATEST' - interval '29 days' group by 1 order by 1;|select date_trunc('day', occurred_at) as day, count(*) from core.events where customer_id = '$CUSTOMER' and occurred_at >= timestamptz '$LATEST' - interval '29 days' group by 1 order by 1;"
    )
    echo
    echo "## ratio: $EVENTS events, $CUSTOMERS customers; $CUSTOMER: $("${PSQL[@]}" -At -c "select count(*) from core.events where customer_id = '$CUSTOMER'") events; elt tenant add $CUSTOMER took $add_ms ms"
    for mode in simple prepared; do
        log "ratio: querying ($mode protocol) as $role (tenant of $CUSTOMER) and as elt_runner: $ROUNDS rounds x $TX queries each"
        printf '\n%-10s %-24s %10s %10s %7s\n' protocol query tenant_ms owner_ms ratio
        for q in "${queries[@]}"; do
            IFS='|' read -r name tsql osql <<<"$q"
            for r in $(seq "$ROUNDS"); do
                pgb "$mode" "$role" "$tpw" elt_bench_ratio "$mode.$name.tenant.$r" "$tsql" "$TX"
                pgb "$mode" elt_runner "$owner_pw" elt_bench_ratio "$mode.$name.owner.$r" "$osql" "$TX"
            done
            t=$(median_ms "$work"/lat."$mode"."$name".tenant.*)
            o=$(median_ms "$work"/lat."$mode"."$name".owner.*)
            printf '%-10s %-24s %10s %10s %7s\n' "$mode" "$name" "$t" "$o" "$(awk -v t="$t" -v o="$o" 'BEGIN {printf "%.2f", t / o}')"
        done
    done
    echo
    echo "plans as the tenant:"
    for q in "${queries[@]}"; do
        IFS='|' read -r name tsql osql <<<"$q"
        echo "-- $name"
        PGPASSWORD=$tpw psql -X -h 127.0.0.1 -p "$port" -U "$role" elt_bench_ratio -At -c "explain (costs off) $tsql" | grep -E 'Scan|Index Cond' | sed 's/^/   /'
    done
}

scale() {
    newdb elt_bench_scale
    local PSQL=(psql -X -q -v ON_ERROR_STOP=1 "$DB")
    export PGPASSWORD=$owner_pw
    log "scale: $SCALE_EVENTS events of $SCALE_CUSTOMERS customers into staging"
    "${PSQL[@]}" -v customers="$SCALE_CUSTOMERS" -v events="$SCALE_EVENTS" <<'SQL'
\o /dev/null
select setseed(0.25);
\o
-- The staging tables, as elt extract creates them on demand (extract.EnsureStagingTable).
do $$
declare t text;
begin
    foreach t in array array['customers', 'users', 'events'] loop
        execute format('create table staging.%I (id bigint generated always as identity primary key,
            batch_id bigint not null references elt.batches (batch_id), record jsonb not null, parent jsonb)', t);
        execute format('create index %I on staging.%I using brin (batch_id) with (autosummarize = on)', t || '_batch_id_idx', t);
        execute format('alter table staging.%I owner to elt_owner', t);
    end loop;
end $$;
insert into elt.runs (kind, target, status, finished_at) values ('extract', 'bench', 'succeeded', now());
insert into elt.batches (run_id, source, resource, staging_table, records, bytes)
select max(run_id), 'bench', 'customers', 'customers', :customers, 0 from elt.runs;
insert into staging.customers (batch_id, record)
select (select max(batch_id) from elt.batches),
       jsonb_build_object('id', 'cus_' || lpad(c::text, 5, '0'), 'name', 'Customer ' || c, 'plan', 'pro', 'country', 'IT',
                          'created_at', '2024-01-01T00:00:00Z', 'updated_at', '2024-01-01T00:00:00Z')
from generate_series(1, :customers) as c;
insert into elt.batches (run_id, source, resource, staging_table, records, bytes)
select max(run_id), 'bench', 'users', 'users', :customers * 5, 0 from elt.runs;
insert into staging.users (batch_id, record)
select (select max(batch_id) from elt.batches),
       jsonb_build_object('id', 'usr_' || c || '_' || u, 'customer_id', 'cus_' || lpad(c::text, 5, '0'), 'email', 'u' || u || '@c' || c,
                          'name', 'User ' || u, 'role', 'member', 'created_at', '2024-01-01T00:00:00Z', 'updated_at', '2024-01-01T00:00:00Z')
from generate_series(1, :customers) as c cross join generate_series(1, 5) as u;
insert into elt.batches (run_id, source, resource, staging_table, records, bytes)
select max(run_id), 'bench', 'events', 'events', :events, 0 from elt.runs;
insert into staging.events (batch_id, record)
select (select max(batch_id) from elt.batches),
       jsonb_build_object('id', 'evt_' || i, 'customer_id', 'cus_' || lpad(c::text, 5, '0'), 'user_id', 'usr_' || c || '_' || (1 + i % 5),
                          'feature', 'feature_' || (i % 12), 'occurred_at', to_char(ts, 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
                          'updated_at', to_char(ts, 'YYYY-MM-DD"T"HH24:MI:SS"Z"'))
from (select i, 1 + (i::bigint * 7919) % :customers as c, timestamp '2026-08-01' + (i::float8 / :events) * interval '115 days' as ts
      from generate_series(1, :events) as i) as g;
SQL
    DATABASE_URL=$RUNNER "$ELT" --project . refresh >/dev/null 2>&1
    log "scale: built: $("${PSQL[@]}" -At -c "select count(*) from core.events") events in core"

    # A copy of the default project that the steps change (a migration and a declaration per step).
    local proj=$work/project
    mkdir -p "$proj" && cp -r elt.yaml migrations views sql "$proj/"

    local have=0 seq=5 next_id=$SCALE_EVENTS
    printf '\n%s\n' "## scale: $SCALE_EVENTS events of $SCALE_CUSTOMERS customers; PostgreSQL $(psql -X -At "$DB" -c 'show server_version'), $(nproc) cores"
    printf '%-8s %12s %14s %12s %12s %12s %12s %12s %12s\n' tenants add_ms_each migrate_mart_s refresh_s check_s query_ms plan_ms pg_class catalog_MB
    for n in $STEPS; do
        log "scale: tenant add up to $n tenants"
        local a0 a1
        a0=$(now_ms)
        for i in $(seq $((have + 1)) "$n"); do
            DATABASE_URL=$RUNNER "$ELT" --project "$proj" tenant add "cus_$(printf %05d "$i")" --password-to "$work/t$i.pw" >/dev/null
        done
        a1=$(now_ms)
        local add_each
        add_each=$(awk -v ms=$((a1 - a0)) -v k=$((n - have)) 'BEGIN {printf "%.1f", ms / k}')
        have=$n

        log "scale: a migration changes a published mart (elt migrate, $n tenants rebuilt)"
        cat >"$proj/migrations/$(printf %03d $seq)_bench_$n.sql" <<EOF
set local lock_timeout = '10s';
alter table marts.active_users_weekly add column bench_$n bigint;
comment on column marts.active_users_weekly.bench_$n is 'Benchmark column $n.';
EOF
        python3 - "$proj/elt.yaml" "$n" <<'PY'
import sys
path, n = sys.argv[1], sys.argv[2]
s = open(path).read()
anchor = "        active_users: Distinct users with at least one event that week.\n"
s = s.replace(anchor, anchor + "        bench_%s: Benchmark column %s.\n" % (n, n), 1)
open(path, "w").write(s)
PY
        seq=$((seq + 1))
        a0=$(now_ms)
        DATABASE_URL=$RUNNER "$ELT" --project "$proj" migrate >/dev/null 2>"$work/migrate.err" || { cat "$work/migrate.err" >&2; exit 1; }
        a1=$(now_ms)
        local migrate_s
        migrate_s=$(awk -v ms=$((a1 - a0)) 'BEGIN {printf "%.2f", ms / 1000}')

        log "scale: 1% new events, incremental refresh"
        "${PSQL[@]}" -v customers="$SCALE_CUSTOMERS" -v events=$((SCALE_EVENTS / 100)) -v first=$next_id <<'SQL'
insert into elt.batches (run_id, source, resource, staging_table, records, bytes)
select max(run_id), 'bench', 'events', 'events', :events, 0 from elt.runs;
insert into staging.events (batch_id, record)
select (select max(batch_id) from elt.batches),
       jsonb_build_object('id', 'evt_' || (:first + i), 'customer_id', 'cus_' || lpad((1 + (i::bigint * 104729) % :customers)::text, 5, '0'),
                          'user_id', 'usr_' || (1 + (i::bigint * 104729) % :customers) || '_' || (1 + i % 5), 'feature', 'feature_' || (i % 12),
                          'occurred_at', '2026-11-24T12:00:00Z', 'updated_at', '2026-11-24T12:00:00Z')
from generate_series(1, :events) as i;
SQL
        next_id=$((next_id + SCALE_EVENTS / 100))
        a0=$(now_ms)
        DATABASE_URL=$RUNNER "$ELT" --project "$proj" refresh >/dev/null 2>"$work/refresh.err" || { cat "$work/refresh.err" >&2; exit 1; }
        a1=$(now_ms)
        local refresh_s
        refresh_s=$(awk -v ms=$((a1 - a0)) 'BEGIN {printf "%.2f", ms / 1000}')

        a0=$(now_ms)
        DATABASE_URL=$RUNNER "$ELT" --project "$proj" tenant check >"$work/check.out" || { cat "$work/check.out" >&2; exit 1; }
        a1=$(now_ms)
        local check_s
        check_s=$(awk -v ms=$((a1 - a0)) 'BEGIN {printf "%.2f", ms / 1000}')

        local role tpw q query_ms plan_ms
        role=$("${PSQL[@]}" -At -c "select role_name from elt.tenants where tenant_key = 'cus_00001'")
        tpw=$(cat "$work/t1.pw")
        q="select day, active_users, events from active_users_daily where day > date '2026-11-24' - 90 order by day;"
        rm -f "$work"/lat.scale.*
        pgb simple "$role" "$tpw" elt_bench_scale "scale.$n" "$q" 500
        query_ms=$(median_ms "$work"/lat.scale."$n".*)
        plan_ms=$(PGPASSWORD=$tpw psql -X -h 127.0.0.1 -p "$port" -U "$role" elt_bench_scale -At -c "explain (analyze, summary) $q" |
            awk '/Planning Time/ {print $3}')
        local classes catalog
        classes=$("${PSQL[@]}" -At -c "select count(*) from pg_class")
        catalog=$("${PSQL[@]}" -At -c "select round(sum(pg_total_relation_size(oid)) / 1048576.0, 1) from pg_class where relnamespace = 'pg_catalog'::regnamespace and relkind = 'r'")
        printf '%-8s %12s %14s %12s %12s %12s %12s %12s %12s\n' "$n" "$add_each" "$migrate_s" "$refresh_s" "$check_s" "$query_ms" "$plan_ms" "$classes" "$catalog"
    done
}

case "$PART" in
    ratio) ratio ;;
    scale) scale ;;
    all) ratio; scale ;;
    *) echo "PART must be ratio, scale or all" >&2; exit 2 ;;
esac
