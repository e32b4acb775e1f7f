// Package pgtest gives each test a fresh, migrated PostgreSQL database of its own.
//
// With DATABASE_URL set, databases are created on that server (its role must be allowed to create
// databases and roles). Otherwise the first call starts one throwaway cluster for the whole test binary
// (fsync off, in a temporary folder) that a watcher process stops and removes when the binary exits, however
// it exits.
//
// The migrations are applied once, to a template database named after a hash of their rendered SQL; each test
// then gets CREATE DATABASE ... TEMPLATE, which takes tens of milliseconds. A failed test's database is kept
// and its URL logged, so it can be inspected with psql.
package pgtest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/elt-dev/elt/localpg"
	"github.com/elt-dev/elt/migrate"
)

// DB is one test's database.
type DB struct {
	Name string        // database name
	URL  string        // superuser connection string
	Pool *pgxpool.Pool // superuser pool, closed at cleanup
}

// ConnString returns a connection string to this test's database for role user with password, over TCP
// (as a tenant or any non-superuser would connect).
func (db *DB) ConnString(user, password string) string {
	return srv.tcpURL(db.Name, user, password)
}

// URLFor returns the superuser connection string of another database on the same server.
func (db *DB) URLFor(database string) string {
	return srv.urlFor(database)
}

// URLAs returns this test's database connection string for another role, over the same connection as the
// superuser's (the local cluster's Unix socket needs no password).
func (db *DB) URLAs(user string) string {
	u, err := url.Parse(db.URL)
	if err != nil {
		panic(err)
	}
	u.User = url.User(user)
	return u.String()
}

// server is the PostgreSQL server the test binary uses.
type server struct {
	adminURL string        // superuser URL of the maintenance database
	admin    *pgxpool.Pool // on adminURL: creates and drops the tests' databases
	tcpHost  string        // host:port reachable over TCP
	template string        // name of the migrated template database
}

func (s *server) urlFor(db string) string {
	u, _ := url.Parse(s.adminURL)
	u.Path = "/" + db
	return u.String()
}

func (s *server) tcpURL(db, user, password string) string {
	u := &url.URL{Scheme: "postgres", User: url.UserPassword(user, password), Host: s.tcpHost, Path: "/" + db, RawQuery: "sslmode=disable"}
	return u.String()
}

var (
	once   sync.Once
	srv    *server
	srvErr error
)

// New returns a fresh database migrated to the latest version, dropped when the test passes.
func New(t testing.TB) *DB {
	t.Helper()
	once.Do(func() { srv, srvErr = setup() })
	if srvErr != nil {
		t.Fatalf("pgtest: %v", srvErr)
	}
	ctx := context.Background()
	name := "t_" + randomHex(8)
	if _, err := srv.admin.Exec(ctx, "create database "+pgx.Identifier{name}.Sanitize()+" template "+pgx.Identifier{srv.template}.Sanitize()); err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	db := &DB{Name: name, URL: srv.urlFor(name)}
	cfg, err := pgxpool.ParseConfig(db.URL)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	cfg.MaxConns = 8
	db.Pool, err = pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("pgtest: connect: %v", err)
	}
	t.Cleanup(func() {
		db.Pool.Close()
		if t.Failed() {
			if os.Getenv("DATABASE_URL") == "" {
				t.Logf("pgtest: the failed test's database %s goes with the throwaway cluster when the test binary exits; set DATABASE_URL to keep it", db.Name)
			} else {
				t.Logf("pgtest: kept database of failed test: psql '%s'", db.URL)
			}
			return
		}
		if _, err := srv.admin.Exec(context.Background(), "drop database "+pgx.Identifier{name}.Sanitize()+" with (force)"); err != nil {
			t.Logf("pgtest: drop database %s: %v", name, err)
		}
	})
	return db
}

func setup() (*server, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	s := &server{}
	if u := os.Getenv("DATABASE_URL"); u != "" {
		s.adminURL = u
		cfg, err := pgx.ParseConfig(u)
		if err != nil {
			return nil, fmt.Errorf("DATABASE_URL: %w", err)
		}
		host := cfg.Host
		if strings.HasPrefix(host, "/") {
			host = "127.0.0.1"
		}
		s.tcpHost = host + ":" + strconv.Itoa(int(cfg.Port))
	} else {
		c, err := startCluster(ctx)
		if err != nil {
			return nil, err
		}
		s.adminURL = c.URL("postgres")
		s.tcpHost = "127.0.0.1:" + strconv.Itoa(c.Port)
	}
	admin, err := pgxpool.New(context.Background(), s.adminURL)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", redact(s.adminURL), err)
	}
	s.admin = admin
	tmpl, err := s.ensureTemplate(ctx)
	if err != nil {
		return nil, err
	}
	s.template = tmpl
	return s, nil
}

// startCluster starts a throwaway cluster and a watcher that stops it and removes its folder once this
// process is gone (normal exit, panic, timeout or kill).
func startCluster(ctx context.Context) (*localpg.Cluster, error) {
	dir, err := os.MkdirTemp("", "elt-pgtest-")
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, err
	}
	c, err := localpg.Start(ctx, localpg.Options{Dir: dir, Ephemeral: true})
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start throwaway cluster: %w", err)
	}
	stop := fmt.Sprintf("%s/pg_ctl -D %s -m immediate -w stop", c.BinDir, c.DataDir())
	if os.Geteuid() == 0 {
		stop = "runuser -u postgres -- " + stop
	}
	script := fmt.Sprintf("while kill -0 %d 2>/dev/null; do sleep 0.2; done; %s >/dev/null 2>&1; rm -rf %s", os.Getpid(), stop, dir)
	w := exec.Command("sh", "-c", script)
	w.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := w.Start(); err != nil {
		return nil, fmt.Errorf("start cluster watcher: %w", err)
	}
	go w.Wait()
	return c, nil
}

// ensureTemplate creates, once per distinct set of migrations, a template database migrated to the latest
// version. Concurrent test binaries serialize on an advisory lock.
func (s *server) ensureTemplate(ctx context.Context) (string, error) {
	ms, err := migrate.Load(nil)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	for _, m := range ms {
		h.Write([]byte(m.Name))
		h.Write([]byte{0})
		h.Write([]byte(m.SQL))
	}
	name := "elt_template_" + hex.EncodeToString(h.Sum(nil))[:16]

	conn, err := pgx.Connect(ctx, s.adminURL)
	if err != nil {
		return "", fmt.Errorf("connect to %s: %w", redact(s.adminURL), err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "select pg_advisory_lock(hashtextextended('elt:pgtest-template', 0))"); err != nil {
		return "", err
	}
	var exists bool
	if err := conn.QueryRow(ctx, "select exists (select from pg_database where datname = $1 and datistemplate)", name).Scan(&exists); err != nil {
		return "", err
	}
	if exists {
		return name, nil
	}
	building := name + "_build"
	if _, err := conn.Exec(ctx, "drop database if exists "+pgx.Identifier{building}.Sanitize()+" with (force)"); err != nil {
		return "", err
	}
	if _, err := conn.Exec(ctx, "create database "+pgx.Identifier{building}.Sanitize()); err != nil {
		return "", err
	}
	mconn, err := pgx.Connect(ctx, s.urlFor(building))
	if err != nil {
		return "", err
	}
	_, err = migrate.Up(ctx, mconn, nil, nil)
	mconn.Close(ctx)
	if err != nil {
		return "", fmt.Errorf("migrate template database: %w", err)
	}
	for _, q := range []string{
		"alter database " + pgx.Identifier{building}.Sanitize() + " rename to " + pgx.Identifier{name}.Sanitize(),
		"alter database " + pgx.Identifier{name}.Sanitize() + " is_template true",
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			return "", err
		}
	}
	return name, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}
