#!/usr/bin/env bash
# Benchmark of elt extract (make bench-extract): the demo API on loopback serves N events from memory; elt
# extracts them into staging.events; then, as the baseline, psql \copy loads the very same records (the
# API's bytes, saved as NDJSON) into an identical jsonb table of the same cluster. Prints records/s, MB/s,
# peak RSS and the ratio elt / baseline for each N.
#
#   BENCH_EXTRACT_SIZES="1000000 5000000"  sizes to run (default)
#   ELT=bin/elt DEMOAPI=bin/elt-demo-api   binaries (make bench-extract builds them)
#   BENCH_KEEP=1                           keep the work folder (cluster stopped) for inspection
set -euo pipefail
cd "$(dirname "$0")/../.."

ELT=${ELT:-bin/elt}
DEMOAPI=${DEMOAPI:-bin/elt-demo-api}
SIZES=${BENCH_EXTRACT_SIZES:-"1000000 5000000"}
export ELT_DEMO_API_TOKEN=bench-token
for b in "$ELT" "$DEMOAPI"; do
	[ -x "$b" ] || { echo "bench-extract: $b is missing: run make build" >&2; exit 1; }
done
ELT=$(realpath "$ELT")
DEMOAPI=$(realpath "$DEMOAPI")

work=$(mktemp -d /tmp/elt-bench-extract.XXXXXX)
chmod 0755 "$work"
api_pid=""
cleanup() {
	[ -n "$api_pid" ] && kill "$api_pid" 2>/dev/null || true
	"$ELT" db stop --dir "$work/pg" >/dev/null 2>&1 || true
	[ "${BENCH_KEEP:-}" = 1 ] || rm -rf "$work"
}
trap cleanup EXIT

admin_url=$("$ELT" db start --dir "$work/pg" | tail -1)
psql_admin() { psql "$admin_url" -X -q -v ON_ERROR_STOP=1 "$@"; }
echo "bench-extract: PostgreSQL $(psql_admin -Atc 'show server_version'), $(nproc) cores, $(date -u +%FT%TZ)"

# peak_rss_mib and elapsed_s read a /usr/bin/time -v report.
peak_rss_mib() { awk -F': ' '/Maximum resident set size/ {printf "%.1f", $2/1024}' "$1"; }
elapsed_s() {
	awk -F': ' '/Elapsed \(wall clock\)/ {
		n = split($2, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s*60 + p[i]; printf "%.2f", s }' "$1"
}

results=()
for n in $SIZES; do
	echo "== $n events"
	db="bench_$n"
	url=$("$ELT" db start --dir "$work/pg" --database "$db") # creates the database, prints its URL
	"$ELT" --database-url "$url" migrate >/dev/null 2>&1

	rm -f "$work/addr"
	"$DEMOAPI" --addr 127.0.0.1:0 --addr-file "$work/addr" --events "$n" --customers 50 --days 365 \
		--now 2026-11-01T00:00:00Z >"$work/api.log" 2>&1 &
	api_pid=$!
	for _ in $(seq 100); do [ -s "$work/addr" ] && break; sleep 0.1; done
	addr=$(cat "$work/addr")

	cat >"$work/elt.yaml" <<-EOF
	sources:
	  - name: bench
	    base_url: http://$addr
	    auth: {kind: bearer, token_env: ELT_DEMO_API_TOKEN}
	    resources:
	      - name: events
	        path: /v1/events
	        params: {limit: "5000"}
	        records: data
	        primary_key: id
	        table: events
	        pagination: {kind: cursor, has_more_path: has_more}
	        incremental: {cursor_field: updated_at, param: updated_since}
	EOF

	# The same records as the API sends them, one per line (NDJSON pages, following Link rel="next").
	: >"$work/events.ndjson"
	next="http://$addr/v1/events.ndjson?limit=10000"
	while [ -n "$next" ]; do
		curl -sSf -H "Authorization: Bearer $ELT_DEMO_API_TOKEN" -D "$work/headers" "$next" >>"$work/events.ndjson"
		next=$(tr -d '\r' <"$work/headers" | sed -n 's/^[Ll]ink: *<\([^>]*\)>; *rel="next".*/\1/p')
	done
	bytes=$(stat -c %s "$work/events.ndjson")
	lines=$(wc -l <"$work/events.ndjson")
	[ "$lines" = "$n" ] || { echo "bench-extract: NDJSON has $lines lines, want $n" >&2; exit 1; }

	# Baseline: an identical table (same columns, identity, primary key, foreign key to elt.batches) loaded
	# by psql \copy in CSV mode with quote and delimiter bytes JSON never contains raw (text mode would
	# interpret the backslashes of JSON escapes). It runs before and after elt, and the mean of the two is
	# the baseline, so that a change in the machine's load during the round does not favour either side.
	psql "$url" -X -q -v ON_ERROR_STOP=1 <<-'EOF'
	insert into elt.runs (kind, target, status) values ('extract', 'baseline', 'succeeded');
	insert into elt.batches (run_id, source, resource, staging_table, records, bytes)
	select max(run_id), 'baseline', 'events', 'baseline', 0, 0 from elt.runs;
	-- The shape elt extract gives a staging table (extract.EnsureStagingTable), which does not exist yet.
	create table staging.baseline (
	    id       bigint generated always as identity primary key,
	    batch_id bigint not null references elt.batches (batch_id),
	    record   jsonb  not null,
	    parent   jsonb
	);
	create index baseline_batch_id_idx on staging.baseline using brin (batch_id) with (autosummarize = on);
	select max(batch_id) as batch from elt.batches \gset
	alter table staging.baseline alter column batch_id set default :batch;
	EOF
	baseline() {
		psql "$url" -X -q -c "truncate staging.baseline restart identity" -c checkpoint
		/usr/bin/time -v -o "$work/copy.time" psql "$url" -X -q -v ON_ERROR_STOP=1 \
			-c "\\copy staging.baseline (record) from '$work/events.ndjson' with (format csv, quote e'\\x01', delimiter e'\\x02')"
		elapsed_s "$work/copy.time"
	}
	copy1_s=$(baseline)

	psql "$url" -X -q -c checkpoint
	/usr/bin/time -v -o "$work/elt.time" "$ELT" --database-url "${url/postgres@/elt_runner@}" --config "$work/elt.yaml" \
		--log-format json extract bench 2>"$work/elt.log" || { cat "$work/elt.log" >&2; exit 1; }
	loaded=$(psql "$url" -XAtc "select count(*) from staging.events")
	[ "$loaded" = "$n" ] || { echo "bench-extract: staging.events has $loaded rows, want $n" >&2; exit 1; }
	elt_s=$(elapsed_s "$work/elt.time")
	elt_rss=$(peak_rss_mib "$work/elt.time")
	kill "$api_pid"; wait "$api_pid" 2>/dev/null || true; api_pid=""

	copy2_s=$(baseline)
	copy_s=$(awk -v a="$copy1_s" -v b="$copy2_s" 'BEGIN { printf "%.2f", (a+b)/2 }')
	same=$(psql "$url" -XAtc "select count(*) from staging.events e join staging.baseline b on b.id = e.id and b.record = e.record")
	[ "$same" = "$n" ] || echo "bench-extract: warning: only $same of $n records are identical in both tables" >&2

	line=$(awk -v n="$n" -v b="$bytes" -v es="$elt_s" -v cs="$copy_s" -v rss="$elt_rss" 'BEGIN {
		printf "| %d | %.0f | %.1f | %.0f | %.1f | %.2f | %s |", n, n/es, b/es/1e6, n/cs, b/cs/1e6, (n/es)/(n/cs), rss }')
	echo "elt extract: ${elt_s}s (peak RSS ${elt_rss} MiB); psql \\copy: ${copy1_s}s before, ${copy2_s}s after; $((bytes / 1000000)) MB"
	results+=("$line")
	psql_admin -c "drop database $db" >/dev/null
	rm -f "$work/events.ndjson"
done

echo
echo "| events | elt records/s | elt MB/s | psql \\copy records/s | psql \\copy MB/s | ratio elt / copy | elt peak RSS MiB |"
echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
printf '%s\n' "${results[@]}"
