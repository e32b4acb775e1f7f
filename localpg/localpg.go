// Package localpg runs a PostgreSQL cluster in a project-local folder from the server binaries already on the
// machine, so neither the demo nor the tests need a Postgres installed and configured by hand.
//
// # Layout
//
// A cluster lives in one folder: data/ (the cluster), run/ (the Unix socket), postgres.log, and port (the
// TCP port it last listened on). The superuser postgres connects over the Unix socket without a password
// (the socket folder is reachable only by its owner); every other role connects over TCP on 127.0.0.1 with a
// scram-sha-256 password, which is what tenant logins use.
//
// # Root
//
// initdb refuses to run as root, so when the caller is root every server command runs as the postgres user
// (runuser -u postgres), which owns the folder.
package localpg

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Options configure Start. The zero value of every field but Dir is a sensible default.
type Options struct {
	// Dir holds the cluster; created if missing.
	Dir string
	// Port to listen on; 0 reuses the port of the last start when free, else picks a free one.
	Port int
	// Ephemeral trades durability for speed (fsync, synchronous_commit and full_page_writes off). For test
	// clusters only.
	Ephemeral bool
	// Settings are extra postgresql.conf settings written at initdb time.
	Settings map[string]string
	// StandbyOf, when the cluster does not exist yet, makes it a hot standby of the primary at this
	// postgres:// URL (without a password) instead of a new cluster: see IsStandby.
	StandbyOf string
	// Slot is the replication slot a new standby creates on the primary and streams through; empty for none.
	Slot string
}

// Cluster is a started local cluster.
type Cluster struct {
	Dir    string // the cluster's folder
	Port   int    // TCP port on 127.0.0.1
	BinDir string // server binaries used
}

// DataDir is the cluster's data directory.
func (c *Cluster) DataDir() string { return filepath.Join(c.Dir, "data") }

// SocketDir is where the server's Unix socket lives.
func (c *Cluster) SocketDir() string { return filepath.Join(c.Dir, "run") }

// URL is the superuser's connection string for database db, over the Unix socket.
func (c *Cluster) URL(db string) string {
	q := url.Values{"host": {c.SocketDir()}, "port": {strconv.Itoa(c.Port)}, "sslmode": {"disable"}}
	return (&url.URL{Scheme: "postgres", User: url.User("postgres"), Path: "/" + db, RawQuery: q.Encode()}).String()
}

// FindBinDir locates the PostgreSQL server binaries: $PG_BINDIR, then `pg_config --bindir` when it holds a
// server, then the newest /usr/lib/postgresql/*/bin.
func FindBinDir() (string, error) {
	if d := os.Getenv("PG_BINDIR"); d != "" {
		if hasServer(d) {
			return d, nil
		}
		return "", fmt.Errorf("PG_BINDIR=%s holds no initdb/pg_ctl/postgres", d)
	}
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		if d := strings.TrimSpace(string(out)); hasServer(d) {
			return d, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if hasServer(d) {
			return d, nil
		}
	}
	return "", errNoServer
}

var errNoServer = errors.New("no PostgreSQL server binaries found (looked at $PG_BINDIR, pg_config --bindir, /usr/lib/postgresql/*/bin); install them, e.g. on Debian/Ubuntu: apt-get install postgresql, or set PG_BINDIR")

func version(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

func hasServer(dir string) bool {
	for _, b := range []string{"initdb", "pg_ctl", "postgres"} {
		if fi, err := os.Stat(filepath.Join(dir, b)); err != nil || fi.IsDir() {
			return false
		}
	}
	return true
}

// EnsureBinDir is FindBinDir, but when no server is found and the caller is root on a machine with apt-get, it
// installs Debian's postgresql package first, saying so on standard error.
func EnsureBinDir(ctx context.Context) (string, error) {
	d, err := FindBinDir()
	if err == nil || os.Geteuid() != 0 {
		return d, err
	}
	if _, lerr := exec.LookPath("apt-get"); lerr != nil {
		return "", err
	}
	fmt.Fprintln(os.Stderr, "localpg: no PostgreSQL server binaries found; installing Debian's postgresql package with apt-get")
	for _, args := range [][]string{{"update"}, {"install", "-y", "--no-install-recommends", "postgresql"}} {
		cmd := exec.CommandContext(ctx, "apt-get", args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if out, aerr := cmd.CombinedOutput(); aerr != nil {
			return "", fmt.Errorf("apt-get %s: %w: %s", args[0], aerr, lastLine(out))
		}
	}
	return FindBinDir()
}

// Start initializes the cluster in opts.Dir when needed and starts it unless it is already running. It is
// safe to call on a running cluster: it returns the running one.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	c, err := at(opts.Dir, func() (string, error) { return EnsureBinDir(ctx) })
	if err != nil {
		return nil, err
	}
	if port, ok := c.running(ctx); ok {
		c.Port = port
		return c, nil
	}
	if err := c.prepare(ctx, opts); err != nil {
		return nil, err
	}
	dir := c.Dir
	port := opts.Port
	if port == 0 {
		port = previousPort(dir)
	}
	if port == 0 || !free(port) {
		if port, err = freePort(); err != nil {
			return nil, err
		}
	}
	c.Port = port
	logFile := filepath.Join(dir, "postgres.log")
	o := fmt.Sprintf("-p %d -k %s", port, c.SocketDir())
	if _, err := c.run(ctx, "pg_ctl", "-D", c.DataDir(), "-l", logFile, "-w", "-t", "60", "-o", o, "start"); err != nil {
		return nil, fmt.Errorf("start postgres in %s: %w (see %s)", dir, err, logFile)
	}
	if err := os.WriteFile(filepath.Join(dir, "port"), []byte(strconv.Itoa(port)+"\n"), 0o644); err != nil {
		return nil, err
	}
	if c.IsStandby() {
		return c, nil // read-only: the primary's privileges replicate
	}
	if err := c.closeMaintenanceDatabases(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// closeMaintenanceDatabases takes CONNECT on postgres and template1 from PUBLIC: every role may connect to
// them by default, and a tenant login has no business in any database but its own (elt tenant check reports
// it). Superusers, who bypass it, keep using them.
func (c *Cluster) closeMaintenanceDatabases(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		return fmt.Errorf("connect to local postgres: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "revoke connect on database postgres, template1 from public"); err != nil {
		return fmt.Errorf("revoke connect on the maintenance databases: %w", err)
	}
	return nil
}

// Open returns the cluster in dir if it is running.
func Open(ctx context.Context, dir string) (*Cluster, error) {
	c, err := at(dir, FindBinDir)
	if err != nil {
		return nil, err
	}
	port, ok := c.running(ctx)
	if !ok {
		return nil, fmt.Errorf("no local postgres running in %s (start it with: elt db start)", c.Dir)
	}
	c.Port = port
	return c, nil
}

// Stop stops the cluster in dir if it runs (fast shutdown: open sessions are ended).
func Stop(ctx context.Context, dir string) error {
	c, err := at(dir, FindBinDir)
	if err != nil {
		return err
	}
	return c.Stop(ctx)
}

// at is the cluster in dir (made absolute: server commands run from /), with the binaries find locates.
func at(dir string, find func() (string, error)) (*Cluster, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	bin, err := find()
	if err != nil {
		return nil, err
	}
	return &Cluster{Dir: abs, BinDir: bin}, nil
}

// Stop stops the cluster (fast shutdown: open sessions are ended). Stopping a stopped cluster is not an error.
func (c *Cluster) Stop(ctx context.Context) error {
	if _, ok := c.running(ctx); !ok {
		return nil
	}
	if _, err := c.run(ctx, "pg_ctl", "-D", c.DataDir(), "-w", "-m", "fast", "stop"); err != nil {
		return fmt.Errorf("stop postgres in %s: %w", c.Dir, err)
	}
	return nil
}

// running reports whether the server of this cluster is up, and its port.
func (c *Cluster) running(ctx context.Context) (int, bool) {
	pid, err := os.ReadFile(filepath.Join(c.DataDir(), "postmaster.pid"))
	if err != nil {
		return 0, false
	}
	if _, err := c.run(ctx, "pg_ctl", "-D", c.DataDir(), "status"); err != nil {
		return 0, false
	}
	// postmaster.pid: line 4 is the port.
	lines := strings.Split(string(pid), "\n")
	if len(lines) < 4 {
		return 0, false
	}
	port, err := strconv.Atoi(strings.TrimSpace(lines[3]))
	return port, err == nil
}

func (c *Cluster) prepare(ctx context.Context, opts Options) error {
	if err := os.MkdirAll(c.SocketDir(), 0o700); err != nil {
		return err
	}
	if asRoot() {
		if err := ensurePostgresUser(ctx); err != nil {
			return err
		}
		if err := exec.CommandContext(ctx, "chown", "-R", "postgres:postgres", c.Dir).Run(); err != nil {
			return fmt.Errorf("chown %s to postgres: %w", c.Dir, err)
		}
		if err := traversable(c.Dir); err != nil {
			return err
		}
	}
	if _, err := os.Stat(filepath.Join(c.DataDir(), "PG_VERSION")); err == nil {
		if opts.StandbyOf != "" && !c.IsStandby() {
			return fmt.Errorf("%s already holds a cluster that is not a standby: start the standby in another --dir", c.Dir)
		}
		return nil
	}
	if opts.StandbyOf != "" {
		return c.baseBackup(ctx, opts.StandbyOf, opts.Slot, opts.Settings)
	}
	if _, err := c.run(ctx, "initdb", "-D", c.DataDir(), "-U", "postgres", "-E", "UTF8", "--locale=C.UTF-8",
		"--auth-local=trust", "--auth-host=scram-sha-256", "--no-instructions"); err != nil {
		return fmt.Errorf("initdb %s: %w", c.DataDir(), err)
	}
	settings := map[string]string{
		"listen_addresses":        "'127.0.0.1'",
		"max_connections":         "200",
		"shared_buffers":          "'256MB'",
		"password_encryption":     "'scram-sha-256'",
		"log_min_messages":        "warning",
		"log_timezone":            "'UTC'",
		"timezone":                "'UTC'",
		"unix_socket_permissions": "0700",
	}
	if opts.Ephemeral {
		settings["fsync"] = "off"
		settings["synchronous_commit"] = "off"
		settings["full_page_writes"] = "off"
	}
	for k, v := range opts.Settings {
		settings[k] = v
	}
	return c.appendConf(settings, "")
}

// appendConf appends settings to postgresql.conf, in a block marked as elt's (what).
func (c *Cluster) appendConf(settings map[string]string, what string) error {
	keys := make([]string, 0, len(settings))
	for k := range settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var conf bytes.Buffer
	if what != "" {
		what = ", " + what
	}
	conf.WriteString("\n# written by elt (localpg" + what + ")\n")
	for _, k := range keys {
		fmt.Fprintf(&conf, "%s = %s\n", k, settings[k])
	}
	f, err := os.OpenFile(filepath.Join(c.DataDir(), "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.Write(conf.Bytes())
	return err
}

// run runs a server binary, as the postgres user when we are root.
func (c *Cluster) run(ctx context.Context, name string, args ...string) ([]byte, error) {
	path := filepath.Join(c.BinDir, name)
	var cmd *exec.Cmd
	if asRoot() {
		cmd = exec.CommandContext(ctx, "runuser", append([]string{"-u", "postgres", "--", path}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, path, args...)
	}
	cmd.Dir = "/"
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return out.Bytes(), fmt.Errorf("%s: %w: %s", name, err, lastLine(out.Bytes()))
	}
	return out.Bytes(), nil
}

func asRoot() bool { return os.Geteuid() == 0 }

func ensurePostgresUser(ctx context.Context) error {
	if _, err := user.Lookup("postgres"); err == nil {
		return nil
	}
	if out, err := exec.CommandContext(ctx, "useradd", "--system", "--user-group", "--no-create-home", "--shell", "/usr/sbin/nologin", "postgres").CombinedOutput(); err != nil {
		return fmt.Errorf("create the postgres system user: %w: %s", err, lastLine(out))
	}
	return nil
}

// traversable makes every parent of dir searchable by others, as the postgres user must reach it.
func traversable(dir string) error {
	for d := filepath.Dir(dir); d != "/" && d != "."; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return err
		}
		if fi.Mode().Perm()&0o001 == 0 {
			if err := os.Chmod(d, fi.Mode().Perm()|0o011); err != nil {
				return fmt.Errorf("make %s traversable for the postgres user: %w", d, err)
			}
		}
	}
	return nil
}

func previousPort(dir string) int {
	b, err := os.ReadFile(filepath.Join(dir, "port"))
	if err != nil {
		return 0
	}
	p, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return p
}

func free(port int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// EnsureDatabase creates database name (owned by the superuser) unless it exists, closed to PUBLIC: no role may
// connect to it or create temporary tables in it until granted (elt migrate and elt tenant sync grant what
// elt's roles and each tenant login need), so the tenant logins of another database in this cluster cannot
// connect to it before it is migrated (elt tenant check reports a database they can connect to).
func (c *Cluster) EnsureDatabase(ctx context.Context, name string) error {
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		return fmt.Errorf("connect to local postgres: %w", err)
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, "select exists (select from pg_catalog.pg_database where datname = $1)", name).Scan(&exists); err != nil {
		return fmt.Errorf("look up database %s: %w", name, err)
	}
	if exists {
		return nil
	}
	if c.IsStandby() {
		return fmt.Errorf("database %s does not exist on this standby: create it on the primary; the standby replays it", name)
	}
	ident := pgx.Identifier{name}.Sanitize()
	if _, err := conn.Exec(ctx, "create database "+ident); err != nil {
		return fmt.Errorf("create database %s: %w", name, err)
	}
	if _, err := conn.Exec(ctx, "revoke connect, temporary on database "+ident+" from public"); err != nil {
		return fmt.Errorf("close database %s to PUBLIC: %w", name, err)
	}
	return nil
}
