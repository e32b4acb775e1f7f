// Command elt-demo-api serves the synthetic product-usage export API of package demoapi: the source elt's
// demo and benchmarks extract from. The bearer token comes from $ELT_DEMO_API_TOKEN or --token-file
// (never a flag value, which would show in ps); without either it is "demo-token".
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/alecthomas/kong"

	"github.com/elt-dev/elt/demoapi"
)

// tokenEnv names the environment variable that holds the token.
const tokenEnv = "ELT_DEMO_API_TOKEN"

// cli is the command line; see docs/demo-api.md.
type cli struct {
	Addr      string `default:"127.0.0.1:8089" help:"Address to listen on (127.0.0.1:0 picks a free port)."`
	AddrFile  string `type:"path" placeholder:"PATH" help:"Write the actual host:port here once listening."`
	TokenFile string `type:"path" placeholder:"PATH" help:"Read the bearer token from this file (default: $ELT_DEMO_API_TOKEN, else demo-token)."`

	Customers        int    `default:"3" help:"Number of customers."`
	UsersPerCustomer int    `default:"40" help:"Average number of users per customer."`
	Events           int64  `default:"20000" help:"Number of events."`
	Days             int    `default:"90" help:"Span of event time in days."`
	Seed             uint64 `default:"1" help:"Seed of the synthetic data."`
	Now              string `placeholder:"RFC3339" help:"End of the event time span (default: today 00:00 UTC)."`
	Updates          int64  `default:"0" help:"Number of events re-sent later as updated versions."`

	Fault429Every      int           `name:"fault-429-every" placeholder:"N" help:"Answer every Nth data request with 429."`
	RetryAfter         int           `default:"1" help:"Retry-After seconds of the 429 fault."`
	Fault500Every      int           `name:"fault-500-every" placeholder:"N" help:"Answer every Nth data request with 500."`
	FaultTruncateEvery int           `name:"fault-truncate-every" placeholder:"N" help:"Cut the body of every Nth data request mid-record and close the connection."`
	FaultSlow          time.Duration `name:"fault-slow" placeholder:"D" help:"Sleep D before responding to data requests."`
	FaultSlowEvery     int           `name:"fault-slow-every" placeholder:"N" help:"Apply --fault-slow to every Nth data request only."`

	Verbose bool `help:"Log one line per request."`
}

func main() {
	var c cli
	kctx := kong.Parse(&c,
		kong.Name("elt-demo-api"),
		kong.Description("Serve the synthetic product-usage export API that elt's demo and benchmarks extract from."),
		kong.UsageOnError(),
	)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := c.run(ctx, log, os.Getenv); err != nil {
		kctx.FatalIfErrorf(err)
	}
}

// options turns the flags into demoapi options.
func (c *cli) options(log *slog.Logger, getenv func(string) string) (demoapi.Options, error) {
	token, err := c.token(getenv)
	if err != nil {
		return demoapi.Options{}, err
	}
	o := demoapi.Options{
		Customers:        c.Customers,
		UsersPerCustomer: c.UsersPerCustomer,
		Events:           c.Events,
		Days:             c.Days,
		Seed:             c.Seed,
		Updates:          c.Updates,
		Token:            token,
		Faults: demoapi.Faults{
			Every429:      c.Fault429Every,
			RetryAfter:    time.Duration(c.RetryAfter) * time.Second,
			Every500:      c.Fault500Every,
			EveryTruncate: c.FaultTruncateEvery,
			Slow:          c.FaultSlow,
			SlowEvery:     c.FaultSlowEvery,
		},
	}
	if c.RetryAfter <= 0 {
		o.Faults.RetryAfter = -1 // Retry-After: 0
	}
	if c.Events == 0 {
		o.Events = -1 // zero would mean the default in Options
	}
	// Zero sizes would silently mean the defaults in Options: refuse them here.
	if c.Customers < 1 || c.UsersPerCustomer < 1 || c.Days < 1 {
		return o, errors.New("--customers, --users-per-customer and --days must be at least 1")
	}
	if c.Now != "" {
		now, err := time.Parse(time.RFC3339, c.Now)
		if err != nil {
			return o, fmt.Errorf("--now: %w", err)
		}
		o.Now = now
	}
	if c.Verbose {
		o.Logger = log
	}
	// Validate here so that bad flags are an error rather than New's panic.
	return o, o.Validate()
}

// token reads the bearer token from --token-file, else the environment, else the default.
func (c *cli) token(getenv func(string) string) (string, error) {
	if c.TokenFile != "" {
		b, err := os.ReadFile(c.TokenFile)
		if err != nil {
			return "", fmt.Errorf("read token file: %w", err)
		}
		t := strings.TrimSpace(string(b))
		if t == "" {
			return "", fmt.Errorf("token file %s is empty", c.TokenFile)
		}
		return t, nil
	}
	if t := getenv(tokenEnv); t != "" {
		return t, nil
	}
	return demoapi.DefaultToken, nil
}

// run serves until ctx is cancelled, then shuts down gracefully.
func (c *cli) run(ctx context.Context, log *slog.Logger, getenv func(string) string) error {
	o, err := c.options(log, getenv)
	if err != nil {
		return err
	}
	srv := demoapi.New(o)
	ln, err := net.Listen("tcp", c.Addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	addr := ln.Addr().String()
	if c.AddrFile != "" {
		if err := writeAtomic(c.AddrFile, addr); err != nil {
			ln.Close()
			return fmt.Errorf("write addr file: %w", err)
		}
		defer os.Remove(c.AddrFile)
	}
	o = srv.Options()
	log.Info("elt-demo-api listening", "addr", addr, "customers", o.Customers, "users", srv.UserCount(),
		"events", o.Events, "updates", o.Updates, "seed", o.Seed, "now", o.Now.Format(time.RFC3339), "days", o.Days)

	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	select {
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := hs.Shutdown(shutdown); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Info("elt-demo-api stopped")
	return nil
}

// writeAtomic writes a file under a temporary name and renames it, so a script polling for it never reads
// half of it.
func writeAtomic(path, content string) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	if _, err := tmp.WriteString(content); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), path)
}
