// Package scaffold drafts a transform from the data: elt scaffold TABLE samples the newest records of a
// staging table, reports each JSON key with the types it holds and how often it is null or missing, and
// writes a draft transform step (sql/NNN_name.sql) and a draft migration for the user to edit.
//
// Profile walks the sampled records inside PostgreSQL in one query (jsonb_each, jsonb_typeof): the top-level
// keys of record and of parent (the parent record of a child resource), and one level into nested objects
// (outer.inner). From what it sees it guesses a column type for each key: ISO-8601 strings and epoch numbers
// (10 digits: seconds, 13 digits: milliseconds) are timestamptz, integers bigint, other numbers numeric,
// booleans boolean, objects and arrays jsonb, other strings text.
//
// Draft turns a Report into the text of a transform in the style of the default project's sql/010_customers.sql:
// typed columns, the newest version of each primary key wins by the incremental cursor and then by load order
// (batch, then staging id), and the tenant key on every row. DraftTable drafts the create table statement of
// its target, partitioned by list on the tenant key, for a migration. Both are drafts: every type is a guess
// from a sample, and the comments say what to check.
package scaffold
