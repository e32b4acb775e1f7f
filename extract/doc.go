// Package extract loads declarative HTTP sources into the staging schema: raw JSON records streamed from the
// API straight into COPY, exactly once.
//
// # Sources
//
// A source (Config, read by LoadConfig from the config file) is an API: base URL, headers, auth (bearer,
// basic, API key in a header or the query) with secrets taken only from environment variables or files, a
// request-rate limit and a retry policy. Each of its resources is an endpoint: path, query parameters, where
// the records are in the body (a dotted path, the body itself, or NDJSON lines), a primary key, a staging
// table, a pagination kind (page number, offset, cursor token, next URL, Link header) with its stop rules,
// and a write mode: append (incremental, by a cursor field) or replace (a snapshot swapped in atomically).
// A child resource is walked once per record of its parent, whose fields fill the path and go to the parent
// column of the child rows.
//
// # Exactly once
//
// Records are never decoded: the raw bytes of each record go to a jsonb column. A batch transaction takes
// elt.lock_staging_shared(), inserts its elt.batches row, copies its records, saves the cursor in
// elt.cursors and the counters in elt.runs, and commits. A batch ends only between two records with
// different cursor values, so a committed cursor C means that every record with cursor <= C is in staging;
// the next run asks the API for records from C on (inclusive) and drops those <= C. A run killed at any
// instant therefore resumes with neither gap nor duplicate. docs/extract.md has the whole argument,
// including look-back windows and replace mode.
//
// # Pipeline
//
// One goroutine fetches and decodes pages (retrying failed requests and truncated bodies, skipping on a
// retry the records of the page it already passed on) while the loader copies the previous ones; memory
// holds a few hundred records in flight, whatever the size of the source.
//
// # Operations
//
// A session advisory lock per source keeps two runs of one source apart, and the error names the holder.
// elt.runs is the run log that ReadStatus summarises for elt status.
package extract
