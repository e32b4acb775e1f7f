package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/elt-dev/elt/project"
	"github.com/elt-dev/elt/superset"
	"github.com/elt-dev/elt/tenant"
)

// SupersetCmd provisions Apache Superset for the tenants.
type SupersetCmd struct {
	Sync SupersetSyncCmd `cmd:"" help:"Make Superset match the tenants: per tenant a Database with its own login, a role limited to its schema, users, datasets and the project's starter dashboard."`
}

// SupersetSyncCmd is elt superset sync.
type SupersetSyncCmd struct {
	URL     string `name:"url" env:"ELT_SUPERSET_URL" required:"" placeholder:"URL" help:"Superset's address, e.g. http://127.0.0.1:8088 (ELT_SUPERSET_URL)."`
	Secrets string `name:"secrets" env:"ELT_SUPERSET_SECRETS" required:"" placeholder:"DIR" help:"Folder of the tenants' passwords, CUSTOMER.password as elt tenant add --password-to writes them; the passwords of the Superset users elt creates are kept there too, as CUSTOMER.superset-password (0600) (ELT_SUPERSET_SECRETS)."`
	DryRun  bool   `name:"dry-run" help:"Print what would change, and change nothing."`
	EndpointFlags
}

// Help is the long help of elt superset sync.
func (c *SupersetSyncCmd) Help() string {
	return `Reads the active tenants from the database and, through Superset's REST API, makes Superset match them.
For every tenant (cus_0001 below):
  - Database "cus_0001 analytics", logging in as the tenant's own PostgreSQL login (URI as elt tenant uri
    prints it; --host, --port and --sslmode say where Superset reaches PostgreSQL), SQL Lab on, DML off;
  - role "elt tenant cus_0001", whose only permission is schema access to the tenant's schema of that Database;
  - users with that role and Gamma and sql_lab: those elt.yaml lists under superset: users: cus_0001, or else
    one user named cus_0001, created with the password in DIR/cus_0001.superset-password (written when missing);
  - one dataset per relation the project publishes, with the relation's comment as its description and its
    columns' comments;
  - the starter dashboard of the template elt.yaml names (superset: dashboard:), at /superset/dashboard/elt-cus_0001/.
Tenants that are gone lose all of it. A password changed with elt tenant rotate-password is carried over
once DIR has the new one. A second sync changes nothing; --dry-run prints the plan.

Superset's admin logs in with ELT_SUPERSET_USER (default admin) and the password in the file named by
ELT_SUPERSET_PASSWORD_FILE (or ELT_SUPERSET_PASSWORD): never a flag. See docs/superset.md.`
}

// supersetAdmin reads the Superset admin's credentials from the environment.
func supersetAdmin() (string, string, error) {
	user := os.Getenv("ELT_SUPERSET_USER")
	if user == "" {
		user = "admin"
	}
	if f := os.Getenv("ELT_SUPERSET_PASSWORD_FILE"); f != "" {
		pw, err := readPassword(f)
		return user, pw, err
	}
	if pw := os.Getenv("ELT_SUPERSET_PASSWORD"); pw != "" {
		return user, pw, nil
	}
	return "", "", errors.New("superset admin password: set ELT_SUPERSET_PASSWORD_FILE to a file holding it (or ELT_SUPERSET_PASSWORD)")
}

// Run syncs Superset.
func (c *SupersetSyncCmd) Run(ctx context.Context, g *Globals) error {
	adminUser, adminPW, err := supersetAdmin()
	if err != nil {
		return err
	}
	pool, err := g.Connect(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	p, l, err := layer(ctx, g, pool)
	if err != nil {
		return err
	}
	ts, err := tenant.ListAll(ctx, pool)
	if err != nil {
		return err
	}
	var cfg project.Superset
	if p.Superset != nil {
		cfg = *p.Superset
	}
	endpoint := c.endpoint(pool.Config().ConnConfig)
	// Superset's catalog is the database the tenants' URIs name.
	o := superset.Options{Relations: l.Publish, Catalog: endpoint.Database, DryRun: c.DryRun}
	if cfg.Dashboard != "" {
		published := map[string][]string{}
		for _, r := range l.Publish {
			for _, col := range r.Columns {
				published[r.Name] = append(published[r.Name], col.Name)
			}
		}
		o.Template, err = superset.LoadTemplate(filepath.Join(p.Dir, filepath.FromSlash(cfg.Dashboard)), published)
		if err != nil {
			return err
		}
	}
	// Every password is read before anything changes in Superset.
	var missing []string
	active := map[string]bool{}
	for _, t := range ts {
		if t.State != "active" {
			o.Gone = append(o.Gone, t.Key)
			continue
		}
		active[t.Key] = true
		pw, err := readPassword(filepath.Join(c.Secrets, t.Key+".password"))
		if errors.Is(err, fs.ErrNotExist) {
			missing = append(missing, t.Key)
			continue
		}
		if err != nil {
			return fmt.Errorf("tenant %s: %w", t.Key, err)
		}
		o.Tenants = append(o.Tenants, superset.Tenant{Key: t.Key, Schema: t.Role,
			URI: endpoint.URI(tenant.FormatSQLAlchemy, t.Role, pw), Users: cfg.Users[t.Key]})
	}
	if len(missing) > 0 {
		return fmt.Errorf("superset sync: no password file in %s for tenant(s) %s: set one with elt tenant rotate-password CUSTOMER --password-to %s/CUSTOMER.password, then sync again (nothing was changed)",
			c.Secrets, strings.Join(missing, ", "), c.Secrets)
	}
	for key := range cfg.Users {
		if !active[key] {
			return fmt.Errorf("elt.yaml superset: users: %q is not an active tenant of this database (elt tenant list); fix the key or remove it (nothing was changed)", key)
		}
	}
	o.UserPassword = func(key string) (string, error) { return userPassword(c.Secrets, key) }
	o.Warn = func(msg string) { fmt.Fprintln(os.Stderr, "superset sync: "+msg) }
	changes := 0
	// Every change is printed as it is made ("update database ... (password)"), or would be.
	o.Report = func(a superset.Action) {
		changes++
		if c.DryRun {
			fmt.Println("would " + a.String())
		} else {
			fmt.Println(a.String())
		}
	}
	client, err := superset.Login(ctx, c.URL, adminUser, adminPW)
	if err != nil {
		return err
	}
	if _, err := superset.Sync(ctx, client, o); err != nil {
		return err
	}
	verb := "changed"
	if c.DryRun {
		verb = "would change"
	}
	fmt.Printf("superset sync: %d tenants, %s %d objects at %s\n", len(o.Tenants), verb, changes, client.URL())
	return nil
}

// userPassword is the password of the Superset user elt creates for a tenant: DIR/KEY.superset-password,
// generated (0600) when missing.
func userPassword(dir, key string) (string, error) {
	path := filepath.Join(dir, key+".superset-password")
	pw, err := readPassword(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return pw, err
	}
	pw = tenant.GeneratePassword()
	return pw, writePassword(path, pw)
}
