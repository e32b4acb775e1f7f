package tenant

import (
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Endpoint is where tenants connect: the address a BI tool can reach, which may differ from elt's own.
type Endpoint struct {
	Host     string // host name or IP address
	Port     int    // TCP port
	Database string // database name
	SSLMode  string // libpq sslmode; empty leaves it out (libpq's default, prefer)
}

// EndpointFrom derives an Endpoint from elt's own connection: same port and database; a Unix socket host
// (the local cluster) becomes 127.0.0.1, where tenants log in with their password.
func EndpointFrom(cfg *pgx.ConnConfig) Endpoint {
	host := cfg.Host
	if host == "" || strings.HasPrefix(host, "/") {
		host = "127.0.0.1"
	}
	return Endpoint{Host: host, Port: int(cfg.Port), Database: cfg.Database}
}

// URI formats.
const (
	FormatSQLAlchemy = "sqlalchemy" // postgresql+psycopg2://..., what Superset asks for
	FormatLibpq      = "libpq"      // postgresql://..., for psql, Metabase, Grafana and drivers
)

// URI is the connection URI of login role with password (empty: left out, for a tool that asks for it
// separately) at e, in format (FormatSQLAlchemy or FormatLibpq).
func (e Endpoint) URI(format, role, password string) string {
	scheme := "postgresql"
	if format == FormatSQLAlchemy {
		scheme = "postgresql+psycopg2"
	}
	u := &url.URL{Scheme: scheme, Host: net.JoinHostPort(e.Host, strconv.Itoa(e.Port)), Path: "/" + e.Database}
	if password != "" {
		u.User = url.UserPassword(role, password)
	} else {
		u.User = url.User(role)
	}
	if e.SSLMode != "" {
		u.RawQuery = url.Values{"sslmode": {e.SSLMode}}.Encode()
	}
	return u.String()
}

// ConnConfig is a pgx configuration to log in as role with password at e.
func (e Endpoint) ConnConfig(role, password string) (*pgx.ConnConfig, error) {
	cfg, err := pgx.ParseConfig(e.URI(FormatLibpq, role, password))
	if err != nil {
		return nil, err
	}
	cfg.RuntimeParams["application_name"] = "elt tenant"
	return cfg, nil
}
