// Package refresh runs the T of ELT inside PostgreSQL with the SQL of a project folder, read at run time:
// the transform steps of sql/, the data checks of sql/checks/, the mart steps of sql/marts/, and the
// concurrent refresh of the materialized views of the project's schemas.
//
// # Steps and watermarks
//
// A step is a file sql/NNN_name.sql (a transform) or sql/marts/NNN_name.sql (a mart step) of ordinary SQL
// statements, run in file-name order. The statements of a step run in one transaction together with the update
// of the step's watermark in elt.refresh_watermarks, so a failing step leaves every table as it was and the
// next run retries it. Each statement may use two named parameters: @batch_from (the step's watermark,
// exclusive) and @batch_to (the highest committed batch when the run started, inclusive), read under
// elt.lock_staging_exclusive() so no batch in flight can commit below it, and @as_of, the run's clock
// (Options.AsOf), the same in every step. A line "-- rebuild: schema.table,
// ..." lists the tables a step empties (with DELETE, so readers never wait) before running over every batch
// when it has no watermark: on its first run, and in a full run, which first deletes every watermark in a
// committed transaction, so that a full run interrupted half-way is finished by the next run. A line
// "-- rebuild in place: schema.table, ..." names tables a rebuild leaves as they are, for the step's
// statements to write only the rows that differ and delete those that are gone. A line
// "-- tenants: <query>" binds the keys the query returns to a third parameter, @tenants (an array), so that
// statements filtering partitioned tables with key = any(@tenants) are planned over those tenants'
// partitions only.
//
// # Changed files
//
// elt.refresh_files keeps the SHA-256 of every step and check as it last ran. A step file that changed,
// appeared or went away makes the next run a full rebuild (from staging, which keeps every raw record), and
// the log names the file; a changed check makes the checks look at every row again.
//
// # Staging coverage
//
// Before the first step, the staging tables the steps name (staging.x in their SQL) are compared with those
// extract created: a step reading one that does not exist fails the run, naming it; a staging table with
// records that no step reads, or an empty one while others have records, is logged as a warning.
//
// # Data checks
//
// A data check is a file sql/checks/name.sql holding one select that returns the rows violating a rule. It may
// use @checked_from (the batch up to which the checks last passed) and @batch_to. The checks run after the
// transforms, in one repeatable-read snapshot; if any returns rows, the run fails with a CheckError showing the
// first rows, and the mart steps and materialized views keep their previous contents.
//
// # Materialized views
//
// Every materialized view of the project's schemas is refreshed with refresh materialized view concurrently
// (readers are never blocked; each needs a unique index), each in its own transaction, in the order of their
// dependencies read from pg_depend.
//
// # Runs
//
// A session advisory lock keeps two runs from overlapping (ErrBusy). Each run is a row of elt.runs (kind
// refresh, target incremental or full) and each step a row of elt.refresh_steps with its time, row count and
// file hash. Every step runs with lock_timeout set, so a session holding a conflicting lock makes the run fail
// with a clear message instead of stalling it, and with TimeZone set to UTC.
package refresh
