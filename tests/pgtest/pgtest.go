// Package pgtest gives each test a fresh, migrated PostgreSQL database of its own.
//
// With DATABASE_URL set, databases are created on that server (its role must be allowed to create
// databases and roles). Otherwise the first call starts one throwaway cluster for the whole test binary
// (fsync off, in a temporary folder) that a watcher process stops and removes when the binary exits, however
// it exits.
//
// The migrations of both tracks (elt's own and a project's: the default project at the root of the
// repository, or another) are applied once, to a template database named after a hash of their rendered SQL;
// each test then gets CREATE DATABASE ... TEMPLATE, which takes tens of milliseconds, hardened like a
// migrated database (elt_dba.harden_database: database privileges are not copied from a template). A failed
// test's database is kept and its URL logged, so it can be inspected with psql.
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
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/elt-dev/elt/localpg"
	"github.com/elt-dev/elt/migrate"
	"github.com/elt-dev/elt/project"
	"github.com/elt-dev/elt/tenant"
)

// DB is one test's database.
type DB struct {
	Name    string           // database name
	URL     string           // superuser connection string
	Pool    *pgxpool.Pool    // superuser pool, closed at cleanup
	Project *project.Project // the project it was migrated with

	srv *server
}

// RepoRoot is the root of the repository this package was built from: the default project's folder.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// DefaultProject loads the default project (the repository's root).
func DefaultProject(t testing.TB) *project.Project {
	t.Helper()
	return LoadProject(t, RepoRoot())
}

// LoadProject loads the project in dir.
func LoadProject(t testing.TB, dir string) *project.Project {
	t.Helper()
	p, err := project.Load(project.Locate(dir, ""))
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return p
}

// ConnString returns a connection string to this test's database for role user with password, over TCP
// (as a tenant or any non-superuser would connect).
func (db *DB) ConnString(user, password string) string {
	return db.srv.tcpURL(db.Name, user, password)
}

// URLFor returns the superuser connection string of another database on the same server.
func (db *DB) URLFor(database string) string {
	return db.srv.urlFor(database)
}

// URLAs returns this test's database connection string for another role, over the same connection as the
// superuser's (the local cluster's Unix socket needs no password).
func (db *DB) URLAs(user string) string {
	return asUser(db.URL, user)
}

// Pinned returns the superuser URL u with the search_path a superuser's migrate needs as a startup parameter
// (migrate.SuperuserSearchPath).
func Pinned(u string) string {
	parsed, err := url.Parse(u)
	if err != nil {
		panic(err)
	}
	q := parsed.Query()
	q.Set("search_path", strings.ReplaceAll(migrate.SuperuserSearchPath, " ", ""))
	parsed.RawQuery = q.Encode()
	return parsed.String()
}

// RunnerOf returns a migrate.Options.Runner that connects to the database of the superuser URL u as
// elt_runner (the local cluster's Unix socket needs no password).
func RunnerOf(u string) func(context.Context) (*pgx.Conn, error) {
	runner := asUser(u, "elt_runner")
	return func(ctx context.Context) (*pgx.Conn, error) { return pgx.Connect(ctx, runner) }
}

// As returns the local cluster URL u for role user, without a password (its Unix socket needs none).
func As(u, user string) string { return asUser(u, user) }

// asUser returns the URL u for role user, without a password.
func asUser(u, user string) string {
	parsed, err := url.Parse(u)
	if err != nil {
		panic(err)
	}
	parsed.User = url.User(user)
	return parsed.String()
}

// server is the PostgreSQL server the test binary uses.
type server struct {
	adminURL  string        // superuser URL of the maintenance database
	admin     *pgxpool.Pool // on adminURL: creates and drops the tests' databases
	tcpHost   string        // host:port reachable over TCP
	mu        sync.Mutex
	templates map[string]string // project folder: name of its migrated template database
}

func (s *server) urlFor(db string) string {
	u, _ := url.Parse(s.adminURL)
	u.Path = "/" + db
	return u.String()
}

func (s *server) tcpURL(db, user, password string) string {
	return TCPURL(s.tcpHost, db, user, password)
}

// TCPURL is a password login of user to database db of the server at hostport (host:port), over TCP, as
// tenant logins connect.
func TCPURL(hostport, db, user, password string) string {
	u := &url.URL{Scheme: "postgres", User: url.UserPassword(user, password), Host: hostport, Path: "/" + db, RawQuery: "sslmode=disable"}
	return u.String()
}

var (
	once   sync.Once
	srv    *server
	srvErr error
)

// New returns a fresh database migrated to the latest version of elt's track and the default project's,
// dropped when the test passes.
func New(t testing.TB) *DB {
	t.Helper()
	return NewWith(t, DefaultProject(t))
}

// NewWith is New for the project p.
func NewWith(t testing.TB, p *project.Project) *DB {
	t.Helper()
	once.Do(func() { srv, srvErr = setup() })
	if srvErr != nil {
		t.Fatalf("pgtest: %v", srvErr)
	}
	return srv.newDB(t, p)
}

// Server is a private throwaway cluster, for a test that changes what a cluster shares (roles) or compares
// two clusters. It ignores DATABASE_URL and is stopped at the end of the test.
type Server struct {
	srv *server
}

// NewServer starts a private cluster with extra postgresql.conf settings.
func NewServer(t testing.TB, settings map[string]string) *Server {
	t.Helper()
	c := NewCluster(t, settings)
	s, err := newServer(c.URL("postgres"), "127.0.0.1:"+strconv.Itoa(c.Port))
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(s.admin.Close)
	return &Server{srv: s}
}

// NewCluster starts a private, empty cluster with extra postgresql.conf settings, stopped and removed at the
// end of the test (or when the test binary dies), for a test that builds its databases itself (Citus nodes).
func NewCluster(t testing.TB, settings map[string]string) *localpg.Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, err := startCluster(ctx, settings)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := c.Stop(ctx); err != nil {
			t.Logf("pgtest: stop private cluster: %v", err)
		}
		os.RemoveAll(c.Dir)
	})
	return c
}

// New returns a fresh database of this cluster migrated with project p.
func (s *Server) New(t testing.TB, p *project.Project) *DB {
	t.Helper()
	return s.srv.newDB(t, p)
}

func (srv *server) newDB(t testing.TB, p *project.Project) *DB {
	t.Helper()
	ctx := context.Background()
	tmpl, err := srv.template(ctx, p)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	name := "t_" + randomHex(8)
	if err := CreateDatabase(ctx, srv.admin, name, tmpl); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	db := &DB{Name: name, URL: srv.urlFor(name), Project: p, srv: srv}
	cfg, err := pgxpool.ParseConfig(db.URL)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	cfg.MaxConns = 8
	db.Pool, err = pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("pgtest: connect: %v", err)
	}
	if _, err := db.Pool.Exec(ctx, `call elt_dba.harden_database()`); err != nil {
		t.Fatalf("pgtest: harden database: %v", err)
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
	if u := os.Getenv("DATABASE_URL"); u != "" {
		cfg, err := pgx.ParseConfig(u)
		if err != nil {
			return nil, fmt.Errorf("DATABASE_URL: %w", err)
		}
		host := cfg.Host
		if strings.HasPrefix(host, "/") {
			host = "127.0.0.1"
		}
		return newServer(u, host+":"+strconv.Itoa(int(cfg.Port)))
	}
	c, err := startCluster(ctx, nil)
	if err != nil {
		return nil, err
	}
	return newServer(c.URL("postgres"), "127.0.0.1:"+strconv.Itoa(c.Port))
}

func newServer(adminURL, tcpHost string) (*server, error) {
	s := &server{adminURL: adminURL, tcpHost: tcpHost, templates: map[string]string{}}
	admin, err := pgxpool.New(context.Background(), s.adminURL)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", redact(s.adminURL), err)
	}
	s.admin = admin
	return s, nil
}

// startCluster starts a throwaway cluster and a watcher that stops it and removes its folder once this
// process is gone (normal exit, panic, timeout or kill).
func startCluster(ctx context.Context, settings map[string]string) (*localpg.Cluster, error) {
	dir, err := os.MkdirTemp("", "elt-pgtest-")
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, err
	}
	c, err := localpg.Start(ctx, localpg.Options{Dir: dir, Ephemeral: true, Settings: settings})
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

// template returns the template database of project p, creating it the first time.
func (s *server) template(ctx context.Context, p *project.Project) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if name, ok := s.templates[p.Dir]; ok {
		return name, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	name, err := s.ensureTemplate(ctx, p)
	if err != nil {
		return "", err
	}
	s.templates[p.Dir] = name
	return name, nil
}

// ensureTemplate creates, once per distinct set of migrations, a template database migrated to the latest
// version of both tracks, with the default partitions of the project's partitioned tables. Concurrent test
// binaries serialize on an advisory lock.
func (s *server) ensureTemplate(ctx context.Context, p *project.Project) (string, error) {
	tracks := []migrate.Track{migrate.Elt(), migrate.Project(p.Migrations())}
	h := sha256.New()
	for _, t := range tracks {
		ms, err := migrate.Load(t)
		if err != nil {
			return "", err
		}
		for _, m := range ms {
			h.Write([]byte(m.Track + "/" + m.Name))
			h.Write([]byte{0})
			h.Write([]byte(m.SQL))
		}
	}
	h.Write([]byte(strings.Join(p.Schemas, ",")))
	if p.Tenants != nil {
		h.Write([]byte(p.Tenants.Key))
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
	if err := CreateDatabase(ctx, conn, building, ""); err != nil {
		return "", err
	}
	mconn, err := pgx.Connect(ctx, Pinned(s.urlFor(building)))
	if err != nil {
		return "", err
	}
	// As elt migrate does it: the elt track as the superuser, the rest as elt_runner.
	runnerURL := asUser(s.urlFor(building), "elt_runner")
	_, err = migrate.Up(ctx, mconn, migrate.Options{Schemas: p.Schemas, Runner: RunnerOf(s.urlFor(building))}, tracks...)
	mconn.Close(ctx)
	if err != nil {
		return "", fmt.Errorf("migrate template database: %w", err)
	}
	if p.Tenants != nil {
		pool, err := pgxpool.New(ctx, runnerURL)
		if err != nil {
			return "", err
		}
		layer, err := tenant.LoadLayer(ctx, pool, p)
		if err == nil {
			_, err = tenant.Sync(ctx, pool, layer, false, nil)
		}
		pool.Close()
		if err != nil {
			return "", fmt.Errorf("template database: tenant layer: %w", err)
		}
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

// Execer runs a statement: a *pgx.Conn or a *pgxpool.Pool.
type Execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// CreateDatabase creates database name (from template, "" for the default) so that PUBLIC never has CONNECT
// or TEMPORARY on it, not even for an instant: it is created not accepting connections, its privileges are
// taken from PUBLIC, and then it opens. Database privileges are not copied from a template, and tests share a
// cluster: a tenant check in another test must never see a database any tenant login could connect to.
func CreateDatabase(ctx context.Context, db Execer, name, template string) error {
	ident := pgx.Identifier{name}.Sanitize()
	q := "create database " + ident + " allow_connections = false"
	if template != "" {
		q += " template " + pgx.Identifier{template}.Sanitize()
	}
	for _, stmt := range []string{q,
		"revoke connect, temporary on database " + ident + " from public",
		"alter database " + ident + " allow_connections = true",
	} {
		if _, err := db.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("create database %s: %w", name, err)
		}
	}
	return nil
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
