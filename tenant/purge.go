package tenant

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/elt-dev/elt/refresh"
)

// Purge deletes the data of customer everywhere elt keeps it, in one transaction: its partition of every
// partitioned table is dropped (a drop, not a scan), its rows in the project's other tables with the tenant
// key (and in default partitions) are deleted, and so are its raw records in staging (found with the
// expressions of tenants: staging: in elt.yaml). It records the purge in elt.purges (when, by whom, rows per
// table) and marks the customer purged: Add refuses it, and elt refresh deletes whatever of its data arrives
// later (Refuse). The customer's login must have been removed first (Remove). It returns the rows per table.
func Purge(ctx context.Context, pool *pgxpool.Pool, layer *Layer, customer string) (map[string]int64, error) {
	t, err := get(ctx, pool, customer)
	if err != nil {
		return nil, err
	}
	switch t.State {
	case "active":
		return nil, fmt.Errorf("purge %s: remove its login first (elt tenant remove --purge does both)", customer)
	case "purged":
		return nil, fmt.Errorf("purge %s: %w already (see elt.purges)", customer, ErrPurged)
	}
	counts := map[string]int64{}
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		// No refresh may write the customer's rows meanwhile, and no batch still in flight may commit below
		// the watermark recorded here (refresh reads its watermark under the same lock).
		var free bool
		if err := tx.QueryRow(ctx, `select pg_catalog.pg_try_advisory_xact_lock(pg_catalog.hashtextextended($1, 0))`, refresh.LockKey).Scan(&free); err != nil {
			return err
		}
		if !free {
			return errRefreshRunning
		}
		if _, err := tx.Exec(ctx, `select elt.lock_staging_exclusive()`); err != nil {
			return err
		}
		if err := asOwner(ctx, tx); err != nil {
			return err
		}
		if err := layer.deleteCustomer(ctx, tx, customer, t.Role, 0, 0, counts); err != nil {
			return err
		}
		b, err := json.Marshal(counts)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `select pg_catalog.set_config('role', 'none', true)`); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `insert into elt.purges (tenant_key, rows, through_batch)
			values ($1, $2, (select coalesce(max(batch_id), 0) from elt.batches))`, customer, b); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `update elt.tenants set state = 'purged' where tenant_key = $1`, customer)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("purge %s: %w; nothing was deleted", customer, describe(err))
	}
	return counts, nil
}

var errRefreshRunning = errors.New("an elt refresh is running: purge again when it is done")

// deleteCustomer deletes the rows of customer (whose login is role) from the project's tables and, for
// staging records, from the batches in (from, to] (to 0: all of staging), adding the counts to counts.
func (l *Layer) deleteCustomer(ctx context.Context, tx pgx.Tx, customer, role string, from, to int64, counts map[string]int64) error {
	key := pgx.Identifier{l.Key}.Sanitize()
	for _, t := range l.Tables {
		part := pgx.Identifier{t.Schema, PartitionName(t.Name, role)}.Sanitize()
		var exists bool
		if err := tx.QueryRow(ctx, `select to_regclass($1) is not null`, part).Scan(&exists); err != nil {
			return err
		}
		if exists {
			if err := endLockHolders(ctx, tx, false, part); err != nil {
				return err
			}
			var n int64
			if err := tx.QueryRow(ctx, "select count(*) from "+part).Scan(&n); err != nil {
				return fmt.Errorf("count %s: %w", part, err)
			}
			if _, err := tx.Exec(ctx, "drop table "+part); err != nil {
				return fmt.Errorf("drop partition %s: %w", part, err)
			}
			counts[t.String()] += n
		}
		// Rows that reached the default partition (a table created after the login was removed, or data
		// arriving after a purge).
		tag, err := tx.Exec(ctx, "delete from "+t.Ident()+" where "+key+" = $1", pgx.QueryExecModeSimpleProtocol, customer)
		if err != nil {
			return fmt.Errorf("delete from %s: %w", t, err)
		}
		counts[t.String()] += tag.RowsAffected()
	}
	for _, table := range l.keyed {
		tag, err := tx.Exec(ctx, "delete from "+table+" where "+key+" = $1", pgx.QueryExecModeSimpleProtocol, customer)
		if err != nil {
			return fmt.Errorf("delete from %s: %w", table, err)
		}
		counts[table] += tag.RowsAffected()
	}
	for _, table := range slices.Sorted(maps.Keys(l.staging)) {
		ident := pgx.Identifier{"staging", table}.Sanitize()
		var exists bool
		if err := tx.QueryRow(ctx, `select to_regclass($1) is not null`, ident).Scan(&exists); err != nil {
			return err
		}
		if !exists {
			continue
		}
		// The expression is the project's own SQL (elt.yaml, tenants: staging:), trusted like its transforms.
		q := "delete from " + ident + " where (" + l.staging[table] + ") = $1::text"
		args := []any{customer}
		if to > 0 {
			q += " and batch_id > $2 and batch_id <= $3"
			args = append(args, from, to)
		}
		tag, err := tx.Exec(ctx, q, args...)
		if err != nil {
			return fmt.Errorf("delete from %s (tenants: staging: %s: %s): %w", ident, table, l.staging[table], err)
		}
		counts["staging."+table] += tag.RowsAffected()
	}
	for k, n := range counts {
		if n == 0 {
			delete(counts, k)
		}
	}
	return nil
}

// Refuse deletes, for every purged customer, what of its data arrived since the purge: its raw records in the
// staging batches up to hi not yet searched, and any row in the project's tables (by the key's indexes). elt
// refresh calls it before the transforms, so they never see a purged customer's records; every row refused is
// counted in elt.purges.refused and logged.
func Refuse(ctx context.Context, pool *pgxpool.Pool, layer *Layer, hi int64, log *slog.Logger) (int64, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	rows, err := pool.Query(ctx, `
select t.tenant_key, t.role_name, p.purge_id, p.through_batch
from elt.tenants as t
join lateral (select purge_id, through_batch from elt.purges where tenant_key = t.tenant_key order by purge_id desc limit 1) as p on true
where t.state = 'purged'`)
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return 0, err
		}
		return 0, fmt.Errorf("read purged customers: %w", err)
	}
	type purged struct {
		Key, Role string
		ID, From  int64
	}
	ps, err := pgx.CollectRows(rows, pgx.RowToStructByPos[purged])
	if err != nil {
		return 0, fmt.Errorf("read purged customers: %w", err)
	}
	var total int64
	for _, p := range ps {
		counts := map[string]int64{}
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			if err := asOwner(ctx, tx); err != nil {
				return err
			}
			if err := layer.deleteCustomer(ctx, tx, p.Key, p.Role, p.From, hi, counts); err != nil {
				return err
			}
			var n int64
			for _, c := range counts {
				n += c
			}
			if _, err := tx.Exec(ctx, `select pg_catalog.set_config('role', 'none', true)`); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `update elt.purges set refused = refused + $2, through_batch = $3 where purge_id = $1`, p.ID, n, hi)
			return err
		})
		if err != nil {
			return total, fmt.Errorf("refuse the data of purged customer %s: %w", p.Key, describe(err))
		}
		var n int64
		for _, c := range counts {
			n += c
		}
		if n > 0 {
			log.Warn("deleted data of a purged customer that arrived after its purge", "customer", p.Key, "rows", n, "tables", counts,
				"hint", "the source still exports this customer: stop exporting it, or it will be deleted on every refresh")
		}
		total += n
	}
	return total, nil
}
