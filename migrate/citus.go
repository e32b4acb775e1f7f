package migrate

// Citus: the few places where a Citus coordinator needs other SQL than PostgreSQL, chosen by Up from the server
// it finds (the citus extension in the database). Everything else, elt's migrations and the project's, is the
// same SQL on both.

import (
	"context"
	"embed"
	"fmt"

	"github.com/jackc/pgx/v5"
)

//go:embed citus/*.sql
var citusFiles embed.FS

func citusSQL(name string) string {
	b, err := citusFiles.ReadFile("citus/" + name)
	if err != nil {
		panic(err) // embedded
	}
	return string(b)
}

// citusBeforeElt makes elt's roles exist on every node (citus/roles.sql) before elt's own migrations, which
// run with DDL propagation off (up), so that elt's machinery stays on the coordinator.
func citusBeforeElt(ctx context.Context, conn *pgx.Conn) error {
	if _, err := conn.Exec(ctx, citusSQL("roles.sql")); err != nil {
		return fmt.Errorf("migrate: citus: create elt's roles on every node (migrate/citus/roles.sql): %w", err)
	}
	return nil
}

// citusAfterElt lets the roles Citus connects as log in on every node (citus/after_elt.sql), then hardens the
// workers as the coordinator is (citus/harden_workers.sql), each in a transaction of its own.
func citusAfterElt(ctx context.Context, conn *pgx.Conn) error {
	if _, err := conn.Exec(ctx, citusSQL("after_elt.sql")); err != nil {
		return fmt.Errorf("migrate: citus: prepare the nodes (migrate/citus/after_elt.sql): %w", err)
	}
	if _, err := conn.Exec(ctx, citusSQL("harden_workers.sql")); err != nil {
		return fmt.Errorf("migrate: citus: harden the workers (migrate/citus/harden_workers.sql): %w", err)
	}
	return nil
}

// distribute makes every table of the project's schemas that Citus does not distribute yet a distributed table
// (hash-distributed by key, co-located with the others) when it has the key column, else a reference table
// (citus/candidates.sql). Each table is one transaction: Citus moves its rows to the shards.
func distribute(ctx context.Context, conn *pgx.Conn, schemas []string, key string) error {
	rows, err := conn.Query(ctx, citusSQL("candidates.sql"), schemas, key)
	if err != nil {
		return fmt.Errorf("migrate: citus: list the tables to distribute: %w", err)
	}
	type cand struct {
		rel   string
		keyed bool
	}
	var cands []cand
	for rows.Next() {
		var c cand
		if err := rows.Scan(&c.rel, &c.keyed); err != nil {
			rows.Close()
			return err
		}
		cands = append(cands, c)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("migrate: citus: list the tables to distribute: %w", err)
	}
	for _, c := range cands {
		var err error
		if c.keyed && key != "" {
			_, err = conn.Exec(ctx, `select pg_catalog.create_distributed_table($1::regclass, $2)`, c.rel, key)
		} else {
			_, err = conn.Exec(ctx, `select pg_catalog.create_reference_table($1::regclass)`, c.rel)
		}
		if err != nil {
			how := "create_reference_table (it has no column " + key + ")"
			if c.keyed && key != "" {
				how = "create_distributed_table by " + key
			}
			return fmt.Errorf("migrate: citus: distribute %s with %s: %w (every unique constraint of a table with the tenant key must include it)", c.rel, how, err)
		}
	}
	return nil
}
