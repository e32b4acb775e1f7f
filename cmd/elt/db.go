package main

import (
	"context"
	"fmt"

	"github.com/elt-dev/elt/localpg"
)

// DBCmd manages a project-local PostgreSQL cluster.
type DBCmd struct {
	Dir      string `name:"dir" env:"ELT_DB_DIR" default:".elt/pg" placeholder:"DIR" help:"Folder of the local cluster (${default})."`
	Database string `name:"database" default:"elt" help:"Database that start creates and whose URL start and url print (${default})."`

	Start  DBStartCmd  `cmd:"" help:"Create (first time) and start the local cluster on a free port; print its URL. Installs Debian's postgresql package when no server binaries exist and you are root."`
	Stop   DBStopCmd   `cmd:"" help:"Stop the local cluster."`
	URL    DBURLCmd    `cmd:"" name:"url" help:"Print the superuser URL of the running local cluster (for DATABASE_URL)."`
	Status DBStatusCmd `cmd:"" help:"Say whether the local cluster runs, and where."`
}

// DBStartCmd starts the local cluster.
type DBStartCmd struct {
	Port      int               `name:"port" help:"TCP port on 127.0.0.1 (default: the last one if free, else any free port)."`
	Ephemeral bool              `name:"ephemeral" help:"Turn fsync, synchronous_commit and full_page_writes off at creation: fast, and unsafe for data you keep (CI and tests only)."`
	Set       map[string]string `name:"set" placeholder:"SETTING=VALUE" help:"A postgresql.conf setting written at creation (repeatable), e.g. --set shared_buffers=1GB."`
	StandbyOf string            `name:"standby-of" env:"ELT_STANDBY_OF" placeholder:"URL" help:"At creation, make this cluster a hot standby of the primary at URL (postgres://, a superuser or a role with REPLICATION; no password in it: PGPASSWORD or PGPASSFILE) instead of a new cluster. Tenants and BI read it as the primary."`
	Slot      string            `name:"slot" placeholder:"NAME" help:"With --standby-of: create replication slot NAME on the primary and stream through it (the primary keeps WAL the standby has not received, even while it is down: drop the slot when the standby goes away)."`
}

// Help is the long help of elt db start.
func (c *DBStartCmd) Help() string {
	return `Creates the cluster in --dir the first time (initdb, or with --standby-of a base backup of a primary) and
starts it; prints the superuser URL of --database. A standby is started and stopped like any local cluster:

  elt db start                                                   # the primary, in .elt/pg
  elt db --dir .elt/standby start --standby-of "$(elt db url)"   # its hot standby

Tenant logins connect to the standby with the same passwords (elt tenant uri CUSTOMER --port PORT); run
elt tenant guard against it too. elt status on either shows the replication lag. See docs/scale.md.`
}

// Run starts the cluster and prints its URL.
func (c *DBStartCmd) Run(ctx context.Context, db *DBCmd) error {
	if c.Slot != "" && c.StandbyOf == "" {
		return fmt.Errorf("--slot needs --standby-of")
	}
	cl, err := localpg.Start(ctx, localpg.Options{Dir: db.Dir, Port: c.Port, Ephemeral: c.Ephemeral, Settings: c.Set, StandbyOf: c.StandbyOf, Slot: c.Slot})
	if err != nil {
		return err
	}
	if err := cl.EnsureDatabase(ctx, db.Database); err != nil {
		return err
	}
	fmt.Println(cl.URL(db.Database))
	return nil
}

// DBStopCmd stops the local cluster.
type DBStopCmd struct{}

// Run stops the cluster if it runs.
func (c *DBStopCmd) Run(ctx context.Context, db *DBCmd) error {
	return localpg.Stop(ctx, db.Dir)
}

// DBURLCmd prints the URL of the running cluster.
type DBURLCmd struct{}

// Run prints the URL.
func (c *DBURLCmd) Run(ctx context.Context, db *DBCmd) error {
	cl, err := localpg.Open(ctx, db.Dir)
	if err != nil {
		return err
	}
	fmt.Println(cl.URL(db.Database))
	return nil
}

// DBStatusCmd reports the cluster's state.
type DBStatusCmd struct{}

// Run prints where the cluster runs, or that it does not.
func (c *DBStatusCmd) Run(ctx context.Context, db *DBCmd) error {
	cl, err := localpg.Open(ctx, db.Dir)
	if err != nil {
		return err
	}
	role := ""
	if cl.IsStandby() {
		role = ", a hot standby"
	}
	fmt.Printf("running: %s (port %d, server binaries %s%s)\n", cl.Dir, cl.Port, cl.BinDir, role)
	return nil
}
