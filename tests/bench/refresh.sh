#!/usr/bin/env bash
# Benchmark of elt refresh (make bench-refresh): a year of history, then 1% new events on the latest day.
#
#   1. history: EVENTS events (default 10M) of CUSTOMERS customers (50) over DAYS days (365), generated
#      straight into staging with SQL (one elt.batches row per table, as extract would commit), not through
#      the HTTP extractor, which would take far longer on a small machine; then elt refresh (initial build);
#   2. +1%: EVENTS/100 new events on the latest day in a new batch; elt refresh (incremental), timed, while a
#      reader polls the marts with dashboard queries (pgbench, 20 queries/s) and logs every latency;
#   2b. +1% again, all of it for one customer (ONE_CUSTOMER, default 7); elt refresh (incremental), timed,
#      step by step: what the steps cost when one customer changed against when all of them did;
#   3. elt refresh --full, timed, with the same reader; then the marts are compared with those of step 2
#      (md5 of every row): the incremental and full paths must agree;
#   4. with BASELINE_REF (a commit; make bench-refresh sets it): that commit's elt and project (a git worktree
#      built in the temporary folder) rebuild the same database with --full, then this tree's elt again: an
#      A/B of the two binaries in the same run, new / baseline = mean of this tree's two rebuilds over the
#      baseline's; the marts of every rebuild must equal those of step 2.
#
# Every timed run but the initial build starts right after a CHECKPOINT (checkpoint(), below), as a nightly
# run does; the reader starts after it.
#
# Prints a summary (and the reader's longest waits) for docs/benchmarks.md. Uses DATABASE_URL (superuser; a
# database elt_bench_refresh is created there and dropped at the end) or else starts a throwaway cluster
# (fsync on, shared_buffers=1GB) in a temporary folder and removes it at exit.
#
# Environment: ELT (default bin/elt), EVENTS, CUSTOMERS, USERS (base users per customer, 50: 50-149 each),
# DAYS, LATEST (the latest day, 2026-11-24), AS_OF (elt refresh --as-of, the morning after LATEST), KEEP=1 to keep the database, SESSIONS (elt refresh --sessions),
# BASELINE_REF.
set -euo pipefail
cd "$(dirname "$0")/../.."

ELT=${ELT:-bin/elt}
EVENTS=${EVENTS:-10000000}
CUSTOMERS=${CUSTOMERS:-50}
USERS=${USERS:-50}
DAYS=${DAYS:-365}
LATEST=${LATEST:-2026-11-24}
NEW_EVENTS=${NEW_EVENTS:-$((EVENTS / 100))}
PGBIN=${PGBIN:-$(pg_config --bindir 2>/dev/null || ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)}

work=$(mktemp -d /tmp/elt-bench-refresh.XXXXXX)
chmod 0755 "$work"
cluster=""
cleanup() {
    if [ -n "${BASELINE_REF:-}" ] && [ -d "$work/baseline" ]; then
        git worktree remove --force "$work/baseline" >/dev/null 2>&1 || true
    fi
    if [ -n "$cluster" ]; then
        "$ELT" db --dir "$cluster" stop >/dev/null 2>&1 || true
    elif [ -n "${DATABASE_URL:-}" ] && [ "${KEEP:-0}" != 1 ]; then
        psql -X -q "$DATABASE_URL" -c 'drop database if exists elt_bench_refresh with (force)' >/dev/null 2>&1 || true
    fi
    [ "${KEEP:-0}" = 1 ] || rm -rf "$work"
}
trap cleanup EXIT

log() { printf '%s %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

if [ -n "${BASELINE_REF:-}" ]; then
    log "building the baseline, $BASELINE_REF, in a worktree"
    git worktree add --detach "$work/baseline" "$BASELINE_REF" >/dev/null 2>&1
    (cd "$work/baseline" && go build -o bin/elt ./cmd/elt)
fi
# Every run of this tree at one clock, the morning after the latest day (UTC): "today" is the next day in
# every customer's zone, so the latest day is complete and the runs compare at the same clock.
AS_OF=${AS_OF:-$(date -u -d "$LATEST + 1 day" +%Y-%m-%d)T06:00:00Z}
REFRESH_ARGS=(--as-of "$AS_OF")
[ -n "${SESSIONS:-}" ] && REFRESH_ARGS+=(--sessions "$SESSIONS")

if [ -z "${DATABASE_URL:-}" ]; then
    cluster=$work/pg
    admin=$("$ELT" db --dir "$cluster" --database postgres start \
        --set shared_buffers=1GB --set max_wal_size=8GB --set checkpoint_timeout=30min)
else
    admin=$DATABASE_URL
fi
psql -X -q "$admin" -c 'drop database if exists elt_bench_refresh with (force)' -c 'create database elt_bench_refresh'
base=${admin%%\?*}
query=""
[[ "$admin" == *\?* ]] && query="?${admin#*\?}"
db="${base%/*}/elt_bench_refresh$query"
export DATABASE_URL=$db
PSQL=(psql -X -q -v ON_ERROR_STOP=1 "$db")

"$ELT" migrate >/dev/null
# elt refresh runs as elt_runner (elt refuses a superuser's login for anything but elt migrate).
runner=${db/postgres@/elt_runner@}

log "generating $EVENTS events of $CUSTOMERS customers over $DAYS days in staging"
gen_start=$(date +%s)
"${PSQL[@]}" -v customers="$CUSTOMERS" -v users="$USERS" -v events="$EVENTS" -v days="$DAYS" -v latest="$LATEST" <<'SQL'
\o /dev/null
select setseed(0.42);
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
       jsonb_build_object('id', 'cus_' || lpad(c::text, 4, '0'), 'name', 'Customer ' || c,
                          'plan', (array['free', 'pro', 'enterprise'])[1 + c % 3],
                          'country', (array['IT', 'DE', 'IN', 'US', 'GB'])[1 + c % 5],
                          'timezone', (array['Europe/Rome', 'Europe/Berlin', 'Asia/Kolkata', 'America/New_York', 'Europe/London'])[1 + c % 5],
                          'created_at', '2024-01-01T00:00:00Z', 'updated_at', '2024-01-01T00:00:00Z')
from generate_series(1, :customers) as c;
insert into elt.batches (run_id, source, resource, staging_table, records, bytes)
select max(run_id), 'bench', 'users', 'users', 0, 0 from elt.runs;
insert into staging.users (batch_id, record)
select (select max(batch_id) from elt.batches),
       jsonb_build_object('id', 'usr_' || lpad(c::text, 4, '0') || '_' || lpad(u::text, 5, '0'),
                          'customer_id', 'cus_' || lpad(c::text, 4, '0'),
                          'email', 'user' || u || '@c' || c || '.example', 'name', 'User ' || u,
                          'role', (array['admin', 'member', 'viewer'])[1 + u % 3],
                          'created_at', '2024-01-01T00:00:00Z', 'updated_at', '2024-01-01T00:00:00Z')
from generate_series(1, :customers) as c
cross join lateral generate_series(1, :users + (c * 37) % (2 * :users)) as u;
update elt.batches set records = (select count(*) from staging.users) where batch_id = (select max(batch_id) from elt.batches);
SQL

# Events of a span of days, non-decreasing in time like the export API's order, in one new batch: skewed
# customers (a few big ones), skewed users and features.
gen_events() { # first_id count first_day days [customer: all of them for that one]
    "${PSQL[@]}" -v customers="$CUSTOMERS" -v users="$USERS" -v first_id="$1" -v events="$2" -v first_day="$3" -v days="$4" -v only="${5:-0}" <<'SQL'
insert into elt.batches (run_id, source, resource, staging_table, records, bytes)
select max(run_id), 'bench', 'events', 'events', :events, 0 from elt.runs;
insert into staging.events (batch_id, record)
select (select max(batch_id) from elt.batches),
       jsonb_build_object(
           'id', 'evt_' || lpad((:first_id + i)::text, 12, '0'),
           'customer_id', 'cus_' || lpad(c::text, 4, '0'),
           'user_id', 'usr_' || lpad(c::text, 4, '0') || '_'
                      || lpad((1 + floor(power(random(), 1.5) * (:users + (c * 37) % (2 * :users))))::int::text, 5, '0'),
           'feature', (array['dashboard.view', 'dashboard.view', 'dashboard.view', 'reports.view', 'reports.view',
                             'search.query', 'search.query', 'reports.export', 'alerts.create', 'alerts.view',
                             'settings.update', 'users.invite', 'api.call', 'export.csv'])[1 + floor(power(random(), 1.3) * 14)::int],
           'occurred_at', to_char(ts, 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
           'updated_at', to_char(ts + interval '3 seconds', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
           'properties', jsonb_build_object('client', (array['web', 'ios', 'android'])[1 + i % 3], 'duration_ms', i % 5000))
from (
    select i,
           coalesce(nullif(:only, 0), 1 + floor(power(random(), 1.7) * :customers)::int) as c,
           :'first_day'::date::timestamp + (i::float8 / :events) * (:days * interval '1 day') as ts
    from generate_series(0, :events - 1) as i
) as g;
SQL
}
first_day=$(psql -X -At "$db" -c "select (date '$LATEST' - $DAYS)")
gen_events 0 "$EVENTS" "$first_day" "$DAYS"
"${PSQL[@]}" -c 'vacuum analyze staging.customers, staging.users, staging.events'
log "generated in $(( $(date +%s) - gen_start )) s; staging.events is $(psql -X -At "$db" -c "select pg_size_pretty(pg_total_relation_size('staging.events'))")"

now_ms() { date +%s%3N; }
# Every timed run starts right after a checkpoint, as a nightly run does (the last one was minutes ago; the
# pages it touches were last written a day ago): each page it changes first then goes to the WAL whole (a
# full-page write). Without it, a run's cost would depend on when the server's last checkpoint happened to
# start (a run just after the initial build, within the same checkpoint cycle, writes few full pages).
checkpoint() { "${PSQL[@]}" -c checkpoint; }
timed() { # label command...: runs it, prints its wall time in ms on stdout
    local t0 t1
    t0=$(now_ms)
    "$@" >&2
    t1=$(now_ms)
    echo $((t1 - t0))
}

# The reader: what a customer's dashboard asks of the marts, 20 times a second, for a random customer.
cat >"$work/reader.sql" <<'SQL'
\set c random(1, 50)
select day, active_users, events from marts.rollup_customer_day where customer_id = 'cus_' || lpad(:c::text, 4, '0') order by day desc limit 30;
select feature, sum(events), max(users) from marts.rollup_feature_day where customer_id = 'cus_' || lpad(:c::text, 4, '0') and day > date '2026-10-01' group by feature;
select week, active_users from marts.active_users_weekly where customer_id = 'cus_' || lpad(:c::text, 4, '0') order by week desc limit 12;
select month, active_users from marts.active_users_monthly where customer_id = 'cus_' || lpad(:c::text, 4, '0');
select count(*), sum(events_30d), max(last_seen) from marts.user_activity where customer_id = 'cus_' || lpad(:c::text, 4, '0');
select cohort_week, week_number, active_users from marts.retention_weekly where customer_id = 'cus_' || lpad(:c::text, 4, '0') and cohort_week > date '2026-08-01';
SQL
reader_pid=""
reader_start() { # name
    rm -f "$work/$1".*
    "$PGBIN/pgbench" -n -c 1 -R 20 -T 36000 -l --log-prefix="$work/$1" -f "$work/reader.sql" "$db" >"$work/$1.out" 2>&1 &
    reader_pid=$!
    sleep 1
}
reader_stop() { # name: writes "queries max_ms max_without_lag_ms" to $work/name.result
    psql -X -q -At "$db" -c "select count(pg_terminate_backend(pid)) from pg_stat_activity where application_name = 'pgbench' and datname = current_database()" >/dev/null
    wait "$reader_pid" || true # pgbench writes its log when it exits
    cat "$work/$1".[0-9]* | awk '{ n++; if ($3 > m) m = $3; if ($3 - $7 > q) q = $3 - $7 } END { printf "%d %.1f %.1f\n", n, m / 1000, q / 1000 }' >"$work/$1.result"
}

marts_digest() {
    psql -X -At "$db" <<'SQL'
select string_agg(v || ' ' || d, E'\n' order by v) from (
    select 'active_users_daily' as v, md5(string_agg(m::text, ',' order by m::text)) as d from marts.rollup_customer_day as m
    union all select 'active_users_weekly', md5(string_agg(m::text, ',' order by m::text)) from marts.active_users_weekly as m
    union all select 'active_users_monthly', md5(string_agg(m::text, ',' order by m::text)) from marts.active_users_monthly as m
    union all select 'feature_usage_daily', md5(string_agg(m::text, ',' order by m::text)) from marts.rollup_feature_day as m
    union all select 'user_activity', md5(string_agg(m::text, ',' order by m::text)) from marts.user_activity as m
    union all select 'retention_weekly', md5(string_agg(m::text, ',' order by m::text)) from marts.retention_weekly as m
    union all select 'active_users_rolling', md5(string_agg(m::text, ',' order by m::text)) from marts.active_users_rolling as m
    union all select 'user_lifecycle', md5(string_agg(m::text, ',' order by m::text)) from marts.user_lifecycle as m
    union all select 'retention_signup', md5(string_agg(m::text, ',' order by m::text)) from marts.retention_signup as m
) as x
SQL
}

log "initial refresh of the history"
initial_ms=$(DATABASE_URL=$runner timed "$ELT" refresh "${REFRESH_ARGS[@]}")

log "adding $NEW_EVENTS events on $LATEST"
gen_events "$EVENTS" "$NEW_EVENTS" "$LATEST" 1

reader_start idle
sleep 5
reader_stop idle
read -r idle_n idle_max idle_q <"$work/idle.result"

log "incremental refresh"
checkpoint
reader_start incr
incr_ms=$(DATABASE_URL=$runner timed "$ELT" refresh "${REFRESH_ARGS[@]}")
reader_stop incr
read -r incr_n incr_max incr_q <"$work/incr.result"
steps_sql="select string_agg(format('%s %s ms', name, (extract(epoch from finished_at - started_at) * 1000)::int), '; ' order by seq) from elt.refresh_steps where run_id = (select max(run_id) from elt.runs where kind = 'refresh') and kind <> 'check'"
incr_steps=$(psql -X -At "$db" -c "$steps_sql")

ONE_CUSTOMER=${ONE_CUSTOMER:-7}
log "adding $NEW_EVENTS events on $LATEST, all of customer $ONE_CUSTOMER"
gen_events "$((EVENTS + NEW_EVENTS))" "$NEW_EVENTS" "$LATEST" 1 "$ONE_CUSTOMER"
log "incremental refresh, one customer changed"
checkpoint
one_ms=$(DATABASE_URL=$runner timed "$ELT" refresh "${REFRESH_ARGS[@]}")
one_steps=$(psql -X -At "$db" -c "$steps_sql")
digest_incr=$(marts_digest)

log "full rebuild"
checkpoint
reader_start full
full_ms=$(DATABASE_URL=$runner timed "$ELT" refresh --full "${REFRESH_ARGS[@]}")
reader_stop full
read -r full_n full_max full_q <"$work/full.result"
digest_full=$(marts_digest)

same=yes
[ "$digest_incr" = "$digest_full" ] || same=NO
full_steps=$(psql -X -At "$db" -c "$steps_sql")

ab=""
if [ -n "${BASELINE_REF:-}" ]; then
    log "full rebuild, baseline $BASELINE_REF"
    # The baseline runs at the same clock when it knows --as-of (since issue 12), so its marts can be compared.
    base_args=()
    if "$work/baseline/bin/elt" refresh --help 2>&1 | grep -q -- '--as-of'; then base_args=("${REFRESH_ARGS[@]}"); fi
    checkpoint
    base_ms=$(DATABASE_URL=$runner timed "$work/baseline/bin/elt" refresh --full --project "$work/baseline" "${base_args[@]}")
    base_steps=$(psql -X -At "$db" -c "$steps_sql")
    base_status=$(psql -X -At "$db" -c "select status from elt.runs where kind = 'refresh' order by run_id desc limit 1")
    if [ "$base_status" != succeeded ]; then
        base_same="not compared: the baseline's rebuild $base_status"
    elif [ "$(marts_digest)" = "$digest_incr" ]; then
        base_same=yes
    else
        base_same="no (expected when the model changed since $BASELINE_REF)"
    fi
    log "full rebuild, this tree again"
    checkpoint
    full2_ms=$(DATABASE_URL=$runner timed "$ELT" refresh --full "${REFRESH_ARGS[@]}")
    full2_steps=$(psql -X -At "$db" -c "$steps_sql")
    [ "$(marts_digest)" = "$digest_incr" ] || same=NO
    ab="A/B of full rebuilds, same database: this tree $full_ms ms and $full2_ms ms, baseline $BASELINE_REF $base_ms ms; ratio this tree / baseline: $(awk -v a="$full_ms" -v b="$full2_ms" -v c="$base_ms" 'BEGIN { printf "%.3f", (a + b) / 2 / c }')
baseline's marts equal this tree's: $base_same
full steps, baseline: $base_steps
full steps, this tree again: $full2_steps"
fi

sizes=$(psql -X -At "$db" -c "select string_agg(format('%s %s rows', relname, n_live_tup), ', ' order by relname) from pg_stat_user_tables where schemaname = 'marts'")
cat <<EOF

## elt refresh benchmark ($(date -u +%Y-%m-%d), $(nproc) cores, PostgreSQL $(psql -X -At "$db" -c 'show server_version'))
history: $EVENTS events, $CUSTOMERS customers, $(psql -X -At "$db" -c 'select count(*) from core.users') users, $DAYS days; new: $NEW_EVENTS events on $LATEST
initial refresh (empty core, all history):  $((initial_ms / 1000)).$(printf %03d $((initial_ms % 1000))) s
incremental refresh (+1%):                  $((incr_ms / 1000)).$(printf %03d $((incr_ms % 1000))) s
incremental refresh (+1%, one customer):    $((one_ms / 1000)).$(printf %03d $((one_ms % 1000))) s
full rebuild (--full):                      $((full_ms / 1000)).$(printf %03d $((full_ms % 1000))) s
ratio incremental / full:                   $(awk -v a="$incr_ms" -v b="$full_ms" 'BEGIN { printf "%.3f", a / b }')
reader, idle (5 s):          $idle_n queries, longest $idle_max ms (query time alone $idle_q ms)
reader, during incremental:  $incr_n queries, longest $incr_max ms (query time alone $incr_q ms)
reader, during --full:       $full_n queries, longest $full_max ms (query time alone $full_q ms)
marts identical after incremental and --full: $same
incremental steps: $incr_steps
full steps: $full_steps
$ab
incremental steps, one customer changed: $one_steps
rollups: $sizes
EOF
[ "$same" = yes ]
