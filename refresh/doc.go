// Package refresh runs the T of ELT inside PostgreSQL: the transform steps of sql/ (staging to core, core to
// rollups), the data checks of sql/checks/, and the concurrent refresh of the materialized views of marts.
//
// # Steps and watermarks
//
// A transform step is a file sql/NNN_name.sql of ordinary SQL statements, run in file-name order. The
// statements of a step run in one transaction together with the update of the step's watermark in
// elt.refresh_watermarks, so a failing step leaves every table as it was and the next run retries it. Each
// statement may use two named parameters: @batch_from (the step's watermark, exclusive) and @batch_to (the
// highest committed batch when the run started, inclusive), read under elt.lock_staging_exclusive() so no batch
// in flight can commit below it. A line "-- rebuild: schema.table, ..." lists the tables a step empties before
// running over every batch when it has no watermark: on its first run, and in --full, which first deletes every
// watermark in a committed transaction, so that a --full interrupted half-way is finished by the next run.
// Before emptying them, it ends the sessions of tenant logins holding locks on them.
//
// # Data checks
//
// A data check is a file sql/checks/name.sql holding one select that returns the rows violating a rule. It may
// use @checked_from (the batch up to which the checks last passed) and @batch_to. The checks run after the
// transforms, in one repeatable-read snapshot; if any returns rows, the run fails with a CheckError showing the
// first rows, and the marts keep their previous contents.
//
// # Marts
//
// Every materialized view of schema marts is refreshed with refresh materialized view concurrently (readers
// are never blocked), each in its own transaction, in the order of their dependencies read from pg_depend.
//
// # Runs
//
// A session advisory lock keeps two runs from overlapping (ErrBusy). Each run is a row of elt.runs (kind
// refresh, target incremental or full) and each step a row of elt.refresh_steps with its time and row count.
// Every step runs with lock_timeout set, so a session holding a conflicting lock makes the run fail with a
// clear message instead of stalling it, and with TimeZone set to UTC.
package refresh
