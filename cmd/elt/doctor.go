package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/elt-dev/elt/extract"
	"github.com/elt-dev/elt/tenant"
)

// DoctorCmd checks what a nightly run needs, one line each.
type DoctorCmd struct {
	Timeout time.Duration `name:"timeout" default:"15s" help:"Longest wait for each source's answer (${default})."`
}

// errDoctor is the error of a doctor run with a failed check: the lines already said what.
var errDoctor = errors.New("doctor: a check failed (see the FAIL lines above)")

// Run prints one line per check and fails when one does.
func (c *DoctorCmd) Run(ctx context.Context, g *Globals) error {
	failed := false
	say := func(ok bool, what, detail string) {
		mark := "ok  "
		if !ok {
			mark, failed = "FAIL", true
		}
		fmt.Printf("%s %s: %s\n", mark, what, detail)
	}
	p, cfg, err := g.LoadSources()
	if err != nil {
		say(false, "project", err.Error())
		return errDoctor
	}
	resources := 0
	for _, s := range cfg.Sources {
		resources += len(s.Resources)
	}
	say(true, "project", fmt.Sprintf("%s: %d sources, %d resources", p.ConfigPath, len(cfg.Sources), resources))
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, s := range cfg.Sources {
		pctx, cancel := context.WithTimeout(ctx, c.Timeout)
		shown, took, err := extract.Probe(pctx, s, quiet)
		cancel()
		if err != nil {
			say(false, "source "+s.Name, err.Error())
			continue
		}
		say(true, "source "+s.Name, fmt.Sprintf("GET %s answered in %s", shown, took.Round(10*time.Microsecond)))
	}
	pool, err := g.Connect(ctx)
	if err != nil {
		say(false, "database", err.Error())
		return errDoctor
	}
	defer pool.Close()
	var version, user string
	if err := pool.QueryRow(ctx, `select current_setting('server_version'), current_user`).Scan(&version, &user); err != nil {
		say(false, "database", err.Error())
		return errDoctor
	}
	cc := pool.Config().ConnConfig
	say(true, "database", fmt.Sprintf("%s at %s:%d as %s (PostgreSQL %s)", cc.Database, cc.Host, cc.Port, user, version))
	sts, err := readStatus(ctx, pool, p)
	if err != nil {
		say(false, "migrations", err.Error())
	}
	for _, st := range sts {
		if n := len(st.Pending()); n > 0 {
			say(false, "migrations "+st.Track, fmt.Sprintf("version %d of %d, %d pending: run elt migrate", st.Current, len(st.All), n))
		} else {
			say(true, "migrations "+st.Track, fmt.Sprintf("version %d of %d", st.Current, len(st.All)))
		}
	}
	if p.Tenants != nil {
		l, err := tenant.LoadLayer(ctx, pool, p)
		if err != nil {
			say(false, "tenant layer", err.Error())
		} else {
			var active, stale int
			err := pool.QueryRow(ctx, `select count(*), count(*) filter (where layer_sha256 is distinct from $1)
				from elt.tenants where state = 'active'`, l.SHA).Scan(&active, &stale)
			switch {
			case err != nil:
				say(false, "tenant layer", err.Error())
			case stale > 0:
				say(false, "tenant layer", fmt.Sprintf("%d of %d tenants built from other declarations: run elt tenant sync (or elt migrate)", stale, active))
			default:
				say(true, "tenant layer", fmt.Sprintf("%d tenants, %d published relations, all built from the project's declarations", active, len(l.Publish)))
			}
		}
	}
	if failed {
		return errDoctor
	}
	fmt.Fprintln(os.Stdout, "doctor: ok")
	return nil
}
