package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/alecthomas/kong"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/elt-dev/elt/demoapi"
)

func parse(t *testing.T, args ...string) *cli {
	t.Helper()
	var c cli
	p, err := kong.New(&c, kong.Name("elt-demo-api"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Parse(args); err != nil {
		t.Fatalf("parse %q: %v", args, err)
	}
	return &c
}

func noEnv(string) string { return "" }

func TestOptions(t *testing.T) {
	t.Parallel()
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := func(k string) string {
		if k == "ELT_DEMO_API_TOKEN" {
			return "from-env"
		}
		return ""
	}
	now := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		name   string
		args   []string
		getenv func(string) string
		want   demoapi.Options
		err    string
	}{
		{"Defaults", nil, noEnv, demoapi.Options{Customers: 3, UsersPerCustomer: 40, Events: 20000, Days: 90, Seed: 1,
			Token: "demo-token", Faults: demoapi.Faults{RetryAfter: time.Second}}, ""},
		{"TokenFromEnv", nil, env, demoapi.Options{Customers: 3, UsersPerCustomer: 40, Events: 20000, Days: 90, Seed: 1,
			Token: "from-env", Faults: demoapi.Faults{RetryAfter: time.Second}}, ""},
		{"TokenFileWins", []string{"--token-file", tokenFile}, env, demoapi.Options{Customers: 3, UsersPerCustomer: 40,
			Events: 20000, Days: 90, Seed: 1, Token: "from-file", Faults: demoapi.Faults{RetryAfter: time.Second}}, ""},
		{"Everything", []string{"--customers=5", "--users-per-customer=7", "--events=0", "--days=3", "--seed=9",
			"--now=2026-11-25T00:00:00Z", "--updates=0", "--fault-429-every=2", "--retry-after=0", "--fault-500-every=3",
			"--fault-truncate-every=4", "--fault-slow=250ms", "--fault-slow-every=5"}, noEnv,
			demoapi.Options{Customers: 5, UsersPerCustomer: 7, Events: -1, Days: 3, Seed: 9, Now: now, Token: "demo-token",
				Faults: demoapi.Faults{Every429: 2, RetryAfter: -1, Every500: 3, EveryTruncate: 4, Slow: 250 * time.Millisecond, SlowEvery: 5}}, ""},
		{"BadNow", []string{"--now=yesterday"}, noEnv, demoapi.Options{}, "--now: "},
		{"ZeroCustomers", []string{"--customers=0"}, noEnv, demoapi.Options{}, "must be at least 1"},
		{"MissingTokenFile", []string{"--token-file=/nonexistent/token"}, noEnv, demoapi.Options{}, "read token file: "},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := parse(t, tc.args...).options(nil, tc.getenv)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got, cmpopts.IgnoreFields(demoapi.Options{}, "Logger")); diff != "" {
				t.Errorf("options (-want +got):\n%s", diff)
			}
		})
	}
}

// TestRun starts the server on a free port, finds it through --addr-file, and stops it by cancelling.
func TestRun(t *testing.T) {
	t.Parallel()
	addrFile := filepath.Join(t.TempDir(), "addr")
	c := parse(t, "--addr=127.0.0.1:0", "--addr-file="+addrFile, "--events=10", "--now=2026-11-25T00:00:00Z")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- c.run(ctx, slog.New(slog.NewTextHandler(io.Discard, nil)), noEnv) }()

	var addr []byte
	for addr == nil {
		select {
		case err := <-done:
			t.Fatalf("run returned early: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
		addr, _ = os.ReadFile(addrFile)
	}
	resp, err := http.Get("http://" + strings.TrimSpace(string(addr)) + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "ok" {
		t.Errorf("healthz: %q", body)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("run: %v", err)
	}
	if _, err := os.Stat(addrFile); !os.IsNotExist(err) {
		t.Errorf("addr file left behind: %v", err)
	}
}
