// Package replication reports streaming replication as elt status shows it: on a primary, each standby that
// streams from it and how far behind it is; on a hot standby, what it has received and replayed.
//
// It reads pg_stat_replication, pg_stat_wal_receiver and the WAL position functions, which elt migrate
// grants to elt_owner and pg_read_all_stats (elt_runner has both); it changes nothing.
package replication

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Status is the replication state of the server elt is connected to.
type Status struct {
	// Standby is true on a hot standby (pg_is_in_recovery()).
	Standby bool `json:"standby"`
	// Standbys are the standbys streaming from this primary (empty on a standby, or with none).
	Standbys []Standby `json:"standbys,omitempty"`
	// Receiver is a standby's view of its primary (nil on a primary).
	Receiver *Receiver `json:"receiver,omitempty"`
}

// Standby is one row of the primary's pg_stat_replication.
type Standby struct {
	Name   string `json:"application_name"`
	Client string `json:"client"` // client address, or "local" over a Unix socket
	State  string `json:"state"`  // streaming, catchup, ...
	// BytesBehind is how much WAL the primary wrote that the standby has not replayed yet; nil while the
	// standby has not reported a replay position (starting up).
	BytesBehind *int64 `json:"bytes_behind,omitempty"`
	// ReplayLag is how long the last WAL the standby replayed took from the primary's flush to its replay
	// (pg_stat_replication.replay_lag); nil when the primary has been idle since.
	ReplayLag *time.Duration `json:"replay_lag_ns,omitempty"`
	Slot      string         `json:"slot,omitempty"`
}

// Receiver is a standby's state: its WAL receiver and what it replayed.
type Receiver struct {
	Status string `json:"status"` // streaming, stopping, ... ("" when the receiver is not running)
	Sender string `json:"sender"` // the primary's host:port
	// BytesPending is the WAL received but not replayed yet.
	BytesPending int64 `json:"bytes_pending"`
	// LastReplayed is when the last transaction replayed committed on the primary; its age grows while the
	// primary commits nothing, so it is lag only while the primary is busy.
	LastReplayed *time.Time `json:"last_replayed,omitempty"`
	Paused       bool       `json:"replay_paused"`
}

// ReadStatus reads the replication state of the server of pool.
func ReadStatus(ctx context.Context, pool *pgxpool.Pool) (Status, error) {
	var st Status
	if err := pool.QueryRow(ctx, `select pg_catalog.pg_is_in_recovery()`).Scan(&st.Standby); err != nil {
		return st, fmt.Errorf("replication status: %w", err)
	}
	if !st.Standby {
		rows, err := pool.Query(ctx, `
select r.application_name, coalesce(host(r.client_addr), 'local'), r.state,
       pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), r.replay_lsn)::bigint,
       r.replay_lag, coalesce(s.slot_name::text, '')
from pg_catalog.pg_stat_replication as r
left join pg_catalog.pg_replication_slots as s on s.active_pid = r.pid
where r.state <> 'backup' -- a base backup streaming its WAL is not a standby
order by r.application_name, r.pid`)
		if err != nil {
			return st, fmt.Errorf("replication status: standbys of this primary: %w", err)
		}
		st.Standbys, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (Standby, error) {
			var s Standby
			err := row.Scan(&s.Name, &s.Client, &s.State, &s.BytesBehind, &s.ReplayLag, &s.Slot)
			return s, err
		})
		if err != nil {
			return st, fmt.Errorf("replication status: standbys of this primary: %w", err)
		}
		return st, nil
	}
	var r Receiver
	err := pool.QueryRow(ctx, `
select coalesce((select status from pg_catalog.pg_stat_wal_receiver), ''),
       coalesce((select sender_host || ':' || sender_port from pg_catalog.pg_stat_wal_receiver), ''),
       coalesce(pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_last_wal_receive_lsn(), pg_catalog.pg_last_wal_replay_lsn()), 0)::bigint,
       pg_catalog.pg_last_xact_replay_timestamp(),
       pg_catalog.pg_is_wal_replay_paused()`).Scan(&r.Status, &r.Sender, &r.BytesPending, &r.LastReplayed, &r.Paused)
	if err != nil {
		return st, fmt.Errorf("replication status: this standby's receiver: %w", err)
	}
	st.Receiver = &r
	return st, nil
}

// WriteStatus prints the status as elt status does; now dates the last replayed transaction.
func WriteStatus(w io.Writer, st Status, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	switch {
	case st.Standby:
		r := st.Receiver
		fmt.Fprintln(tw, "REPLICATION\tthis server is a hot standby (read-only)")
		state := r.Status
		if state == "" {
			state = "not receiving (is the primary up? see the standby's postgres.log)"
		}
		fmt.Fprintf(tw, "receiver\t%s\tfrom %s\n", state, orDash(r.Sender))
		fmt.Fprintf(tw, "received, not replayed\t%s\n", bytes(r.BytesPending))
		if r.LastReplayed != nil {
			fmt.Fprintf(tw, "last replayed commit\t%s\t(%s ago; this grows while the primary commits nothing)\n",
				r.LastReplayed.UTC().Format(time.RFC3339), now.Sub(*r.LastReplayed).Round(time.Millisecond))
		} else {
			fmt.Fprintln(tw, "last replayed commit\t-\t(none since the standby started)")
		}
		if r.Paused {
			fmt.Fprintln(tw, "replay\tPAUSED\t(pg_wal_replay_resume() as a superuser)")
		}
	case len(st.Standbys) == 0:
		fmt.Fprintln(tw, "REPLICATION\tno standby streams from this server")
	default:
		fmt.Fprintln(tw, "STANDBY\tCLIENT\tSTATE\tBEHIND\tREPLAY LAG\tSLOT")
		for _, s := range st.Standbys {
			lag := "-"
			if s.ReplayLag != nil {
				lag = s.ReplayLag.Round(time.Microsecond).String()
			}
			behind := "-"
			if s.BytesBehind != nil {
				behind = bytes(*s.BytesBehind)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", orDash(s.Name), s.Client, s.State, behind, lag, orDash(s.Slot))
		}
	}
	return tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func bytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
