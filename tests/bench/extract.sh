#!/usr/bin/env bash
# Benchmark of elt extract (make bench-extract): the demo API on loopback serves N events from memory; elt
# extracts them into staging.events, once with one COPY session and once with its default (parallel copy
# sessions); as the baseline, psql \copy loads the very same records (the API's bytes, saved as NDJSON) into
# an identical jsonb table of the same cluster, before and after; and dlt (pinned, in a venv from PyPI, its
# fastest documented settings) loads the same API into another database of the cluster. Prints records/s,
# MB/s, peak RSS and the ratios for each N.
#
#   BENCH_EXTRACT_SIZES="1000000 5000000"  sizes to run (default)
#   ELT=bin/elt DEMOAPI=bin/elt-demo-api   binaries (make bench-extract builds them)
#   BENCH_DLT=0                            leave dlt out
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
# dlt: a venv of its own, cached outside the clone like Superset's (tests/bench/dlt-requirements.txt).
dlt_py=""
if [ "${BENCH_DLT:-1}" != 0 ]; then
	req=tests/bench/dlt-requirements.txt
	venv="${XDG_CACHE_HOME:-$HOME/.cache}/elt/dlt-$(sha256sum "$req" | cut -c1-12)"
	if [ ! -x "$venv/bin/python" ]; then
		echo "bench-extract: installing dlt into $venv"
		python3 -m venv "$venv.tmp" && "$venv.tmp/bin/pip" install -q -r "$req" && mv "$venv.tmp" "$venv"
	fi
	dlt_py="$venv/bin/python"
	echo "bench-extract: $("$dlt_py" -c 'import dlt; print("dlt", dlt.__version__)')"
fi

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
	    copy_sessions: \${BENCH_SESSIONS}
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

	# elt with one COPY session, into a database of its own, then with its default (copy_sessions 0: the
	# client's cores) into this one.
	url1=$("$ELT" db start --dir "$work/pg" --database "${db}_one")
	"$ELT" --database-url "$url1" migrate >/dev/null 2>&1
	run_elt() { # run_elt URL SESSIONS TIMEFILE
		psql "$1" -X -q -c checkpoint
		BENCH_SESSIONS=$2 /usr/bin/time -v -o "$3" "$ELT" --database-url "${1/postgres@/elt_runner@}" --config "$work/elt.yaml" \
			--log-format json extract bench 2>"$work/elt.log" || { cat "$work/elt.log" >&2; exit 1; }
		loaded=$(psql "$1" -XAtc "select count(*) from staging.events")
		[ "$loaded" = "$n" ] || { echo "bench-extract: staging.events has $loaded rows, want $n" >&2; exit 1; }
	}
	run_elt "$url1" 1 "$work/elt1.time"
	one_s=$(elapsed_s "$work/elt1.time")
	one_rss=$(peak_rss_mib "$work/elt1.time")
	psql_admin -c "drop database ${db}_one" >/dev/null
	run_elt "$url" 0 "$work/elt.time"
	elt_s=$(elapsed_s "$work/elt.time")
	elt_rss=$(peak_rss_mib "$work/elt.time")
	sessions=$(awk -F'"copy_sessions":' 'NF > 1 { split($2, a, /[,}]/); print a[1]; exit }' "$work/elt.log")

	dlt_s="" dlt_rss=""
	if [ -n "$dlt_py" ]; then
		url_dlt=$("$ELT" db start --dir "$work/pg" --database "${db}_dlt")
		# dlt connects over TCP with a password: a role of its own, the password through stdin and the
		# environment, never on a command line.
		export DLT_BENCH_USER=dlt_bench DLT_BENCH_PASSWORD="dlt-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
		psql "$url_dlt" -X -q -v ON_ERROR_STOP=1 <<-EOF
		set client_min_messages = warning;
		drop role if exists dlt_bench;
		create role dlt_bench login password '$DLT_BENCH_PASSWORD';
		grant connect, create on database ${db}_dlt to dlt_bench;
		EOF
		/usr/bin/time -v -o "$work/dlt.time" "$dlt_py" tests/bench/dlt_events.py "http://$addr" "$url_dlt" >"$work/dlt.log" 2>&1 ||
			{ cat "$work/dlt.log" >&2; exit 1; }
		dlt_n=$(psql "$url_dlt" -XAtc "select count(*) from dlt_bench.events")
		[ "$dlt_n" = "$n" ] || { echo "bench-extract: dlt loaded $dlt_n rows, want $n" >&2; exit 1; }
		dlt_s=$(elapsed_s "$work/dlt.time")
		dlt_rss=$(peak_rss_mib "$work/dlt.time")
		psql_admin -c "drop database ${db}_dlt" -c "drop role dlt_bench" >/dev/null
	fi
	kill "$api_pid"; wait "$api_pid" 2>/dev/null || true; api_pid=""

	copy2_s=$(baseline)
	copy_s=$(awk -v a="$copy1_s" -v b="$copy2_s" 'BEGIN { printf "%.2f", (a+b)/2 }')
	# Compared by the record's id: parallel copy sessions interleave the staging ids of their batches.
	same=$(psql "$url" -XAtc "select count(*) from staging.events e join staging.baseline b on b.record ->> 'id' = e.record ->> 'id' and b.record = e.record")
	[ "$same" = "$n" ] || echo "bench-extract: warning: only $same of $n records are identical in both tables" >&2

	line=$(awk -v n="$n" -v b="$bytes" -v es="$elt_s" -v os="$one_s" -v cs="$copy_s" -v ds="$dlt_s" -v rss="$elt_rss" -v orss="$one_rss" -v drss="$dlt_rss" 'BEGIN {
		dlt = "n/a"; ratio = "n/a"
		if (ds != "") { dlt = sprintf("%.0f (%s MiB)", n/ds, drss); ratio = sprintf("%.1f", ds/es) }
		printf "| %d | %.0f (%s MiB) | %.0f (%s MiB) | %.0f | %s | %.2f | %.2f | %.2f | %s |", n, n/os, orss, n/es, rss, n/cs, dlt, (n/os)/(n/cs), (n/es)/(n/cs), os/es, ratio }')
	echo "elt extract: ${one_s}s with one session (peak RSS ${one_rss} MiB), ${elt_s}s with ${sessions:-?} (peak RSS ${elt_rss} MiB); psql \\copy: ${copy1_s}s before, ${copy2_s}s after; dlt: ${dlt_s:-n/a}s (peak RSS ${dlt_rss:-n/a} MiB); $((bytes / 1000000)) MB"
	results+=("$line")
	psql_admin -c "drop database $db" >/dev/null
	rm -f "$work/events.ndjson"
done

echo
echo "| events | elt, 1 session: records/s (peak RSS) | elt, default sessions: records/s (peak RSS) | psql \\copy records/s | dlt records/s (peak RSS) | elt 1 / copy | elt / copy | elt / elt 1 | elt / dlt |"
echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
printf '%s\n' "${results[@]}"
