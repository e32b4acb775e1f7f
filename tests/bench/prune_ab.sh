#!/usr/bin/env bash
# A/B of pruning by tenant (docs/benchmarks.md, Tenant, "Prune by tenant") on the database a scale run of
# tests/bench/tenant.sh kept (KEEP=1): one incremental refresh of 3,000 new events spread over the first
# CUSTOMERS customers, with the steps of PROJECT (a project folder: the kept run's project/, or a copy with
# other versions of sql/040_rollups.sql and sql/marts/010_marts.sql). The two steps' hashes in
# elt.refresh_files are set to PROJECT's first, so that switching folders does not make the run a full
# rebuild. Prints the time of each step and of the whole run.
#
#   bash tests/bench/prune_ab.sh /tmp/elt-bench-tenant.XXXXXX /tmp/elt-bench-tenant.XXXXXX/project 50
set -euo pipefail
work=$1 proj=$2 customers=${3:-5000}
ELT=${ELT:-bin/elt}
admin=$("$ELT" db --dir "$work/pg" --database elt_bench_scale start)
runner=${admin/postgres@/elt_runner@}
for f in sql/040_rollups.sql sql/marts/010_marts.sql; do
    echo "update elt.refresh_files set sha256 = :'sha' where name = :'f';" |
        psql -X -q "$admin" -v f="$f" -v sha="$(sha256sum "$proj/$f" | cut -d' ' -f1)"
done
psql -X -q "$admin" -v customers="$customers" <<'SQL'
insert into elt.batches (run_id, source, resource, staging_table, records, bytes)
select max(run_id), 'bench', 'events', 'events', 3000, 0 from elt.runs;
insert into staging.events (batch_id, record)
select (select max(batch_id) from elt.batches),
       jsonb_build_object('id', 'evt_ab_' || (select max(batch_id) from elt.batches) || '_' || i,
                          'customer_id', 'cus_' || lpad((1 + (i::bigint * 104729) % :customers)::text, 5, '0'),
                          'user_id', 'usr_' || (1 + (i::bigint * 104729) % :customers) || '_' || (1 + i % 5), 'feature', 'feature_' || (i % 12),
                          'occurred_at', '2026-11-24T12:00:00Z', 'updated_at', '2026-11-24T12:00:00Z')
from generate_series(1, 3000) as i;
SQL
t0=$(date +%s%3N)
DATABASE_URL=$runner "$ELT" --project "$proj" refresh 2>&1 >/dev/null |
    grep -o 'step=[^ ]* .*ms=[0-9]*' | sed 's/batches=[^ ]* //'
echo "refresh: $(( $(date +%s%3N) - t0 )) ms"
